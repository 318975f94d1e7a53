//! The `redis-server` binary for the Redis tests (session-store's, and agent-glue's persistence
//! and hand-off tests).
//!
//! `session-store`'s `redis` tests start a real `redis-server` of their own on a free loopback
//! port (a child process, killed when the test ends), so the machine needs the binary, not a
//! running service. CI installs Debian's package when it is missing (`apt-get install -y
//! redis-server`, saying so first) and passes the binary's path to the tests as
//! `SESSION_STORE_REDIS_SERVER`. A `SESSION_STORE_REDIS_SERVER` already set is used as it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::py_compat::{ProvisionError, run};

/// The variable the Redis tests read to find the binary.
pub const REDIS_VAR: &str = "SESSION_STORE_REDIS_SERVER";

/// The binary's name on `PATH`.
const BINARY: &str = "redis-server";

/// The first executable file called `name` in the directories of `path` (a `PATH` value).
pub fn find_in_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The path of `redis-server`, installed with apt-get when missing.
pub fn provision() -> Result<PathBuf, ProvisionError> {
    let path = std::env::var_os("PATH");
    if let Some(found) = find_in_path(BINARY, path.as_deref()) {
        eprintln!("    {BINARY} found: {}", found.display());
        return Ok(found);
    }
    let Some(apt) = find_in_path("apt-get", path.as_deref()) else {
        return Err(ProvisionError::Command {
            command: BINARY.to_owned(),
            outcome: "is not installed and apt-get is not available to install it: install \
                      Redis (any version from 6 on) or set SESSION_STORE_REDIS_SERVER to its \
                      redis-server"
                .to_owned(),
        });
    };
    eprintln!(
        "    {BINARY} is missing: installing Debian's package with `apt-get install -y redis-server`"
    );
    let install = || {
        run(Command::new(&apt)
            .args(["install", "-y", "--no-install-recommends", "-q", BINARY])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if install().is_err() {
        eprintln!("    the install failed: `apt-get update`, then once more");
        run(Command::new(&apt).args(["update", "-q"]))?;
        install()?;
    }
    find_in_path(BINARY, path.as_deref())
        .or_else(|| Some(PathBuf::from("/usr/bin").join(BINARY)).filter(|p| is_executable(p)))
        .ok_or_else(|| ProvisionError::Command {
            command: format!("apt-get install -y {BINARY}"),
            outcome: "succeeded but left no redis-server on PATH".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_executable_file_is_found() {
        let dir = std::env::temp_dir().join(format!("xtask-redis-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (plain, exec) = (dir.join("plain"), dir.join("exec"));
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::create_dir_all(&exec).unwrap();
        std::fs::write(plain.join("redis-server"), "").unwrap();
        std::fs::write(exec.join("redis-server"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            exec.join("redis-server"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let path = std::env::join_paths([&plain, &exec]).unwrap();
        assert_eq!(
            find_in_path("redis-server", Some(&path)),
            Some(exec.join("redis-server"))
        );
        let only_plain = std::env::join_paths([&plain]).unwrap();
        assert_eq!(find_in_path("redis-server", Some(&only_plain)), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
