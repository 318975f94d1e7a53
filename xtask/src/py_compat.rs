//! The Python environment for `gemini-fake`'s compatibility tests.
//!
//! `gemini-fake` promises to work with Google's Python SDK (`google-genai`) and LiveKit's Google
//! plugin, and two of its tests prove it by running Python scripts against the fake. A fresh
//! machine has neither package, so CI provisions them itself: a virtualenv at
//! `<target dir>/py-compat/venv` (the target dir is `$CARGO_TARGET_DIR`, else `target/`), filled
//! with `pip install -r crates/gemini-fake/tests/python/requirements.txt` (every version pinned).
//! The tests find its interpreter through `GEMINI_FAKE_PYTHON`.
//!
//! The step is idempotent: after a successful install the requirements file is copied to
//! `py-compat/installed-requirements.txt`, and a later run whose requirements are byte-identical
//! (and whose interpreter still starts) reuses the venv in well under a second. Any difference
//! rebuilds the venv from scratch, so it never holds packages the file no longer lists.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The variable the compatibility tests read to find their interpreter.
pub const PYTHON_VAR: &str = "GEMINI_FAKE_PYTHON";

/// The pinned requirements, relative to the workspace root.
const REQUIREMENTS: &str = "crates/gemini-fake/tests/python/requirements.txt";

/// Why the environment could not be provisioned.
#[derive(Debug)]
pub enum ProvisionError {
    /// A file could not be read or written, or a directory created or removed.
    Io {
        /// What was being done, naming the path.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command could not start or exited unsuccessfully.
    Command {
        /// The command line.
        command: String,
        /// Its exit status, or why it could not start.
        outcome: String,
    },
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisionError::Io { action, source } => write!(f, "could not {action}: {source}"),
            ProvisionError::Command { command, outcome } => write!(f, "`{command}` {outcome}"),
        }
    }
}

/// Where the venv lives and what it must contain.
pub struct CompatEnv {
    requirements: PathBuf,
    root: PathBuf,
}

impl CompatEnv {
    /// The environment for the workspace at `workspace`, under `target_dir`.
    pub fn new(workspace: &Path, target_dir: &Path) -> CompatEnv {
        CompatEnv {
            requirements: workspace.join(REQUIREMENTS),
            root: target_dir.join("py-compat"),
        }
    }

    fn venv(&self) -> PathBuf {
        self.root.join("venv")
    }

    fn stamp(&self) -> PathBuf {
        self.root.join("installed-requirements.txt")
    }

    /// The venv's interpreter (absolute when the target dir is).
    pub fn interpreter(&self) -> PathBuf {
        self.venv().join("bin").join("python")
    }

    /// Makes sure the venv holds exactly the pinned requirements; returns its interpreter.
    pub fn provision(&self) -> Result<PathBuf, ProvisionError> {
        let wanted = std::fs::read(&self.requirements).map_err(|source| ProvisionError::Io {
            action: format!("read {}", self.requirements.display()),
            source,
        })?;
        let python = self.interpreter();
        if std::fs::read(self.stamp()).is_ok_and(|installed| installed == wanted)
            && run(Command::new(&python).args(["-c", ""])).is_ok()
        {
            eprintln!("    venv up to date: {}", self.venv().display());
            return Ok(python);
        }
        let started = Instant::now();
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root).map_err(|source| ProvisionError::Io {
                action: format!("remove the stale {}", self.root.display()),
                source,
            })?;
        }
        std::fs::create_dir_all(&self.root).map_err(|source| ProvisionError::Io {
            action: format!("create {}", self.root.display()),
            source,
        })?;
        run(Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(self.venv()))?;
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .args(["--disable-pip-version-check", "--progress-bar", "off"])
            .args(["--retries", "3", "--timeout", "30", "-r"])
            .arg(&self.requirements))?;
        std::fs::write(self.stamp(), &wanted).map_err(|source| ProvisionError::Io {
            action: format!("write {}", self.stamp().display()),
            source,
        })?;
        eprintln!(
            "    installed {} into {} in {:.1}s",
            REQUIREMENTS,
            self.venv().display(),
            started.elapsed().as_secs_f64()
        );
        Ok(python)
    }
}

/// Runs `cmd` with inherited output; an error names the command line.
pub fn run(cmd: &mut Command) -> Result<(), ProvisionError> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(ProvisionError::Command {
            command: line,
            outcome: format!("exited with {status}"),
        }),
        Err(err) => Err(ProvisionError::Command {
            command: line,
            outcome: format!("could not start: {err}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch workspace with the given requirements and, when `stamp` is given, a venv whose
    /// "interpreter" is `/bin/true` and whose stamp holds `stamp`.
    fn scratch(name: &str, requirements: &str, stamp: Option<&str>) -> (PathBuf, CompatEnv) {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let req = dir.join(REQUIREMENTS);
        std::fs::create_dir_all(req.parent().unwrap()).unwrap();
        std::fs::write(&req, requirements).unwrap();
        let env = CompatEnv::new(&dir, &dir.join("target"));
        if let Some(stamp) = stamp {
            std::fs::create_dir_all(env.interpreter().parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("/bin/true", env.interpreter()).unwrap();
            std::fs::write(env.stamp(), stamp).unwrap();
        }
        (dir, env)
    }

    #[test]
    fn an_up_to_date_venv_is_reused_without_installing() {
        let (dir, env) = scratch("reuse", "pkg==1.0\n", Some("pkg==1.0\n"));
        let python = env.provision().unwrap();
        assert_eq!(python, dir.join("target/py-compat/venv/bin/python"));
        // Still the placeholder: nothing was rebuilt.
        assert_eq!(
            std::fs::read_link(&python).unwrap(),
            PathBuf::from("/bin/true")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_requirements_file_is_an_error_naming_it() {
        let (dir, env) = scratch("missing", "", None);
        std::fs::remove_file(dir.join(REQUIREMENTS)).unwrap();
        let err = env.provision().unwrap_err().to_string();
        assert!(err.contains("requirements.txt"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
