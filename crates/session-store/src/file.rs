//! `FileStore`: sessions in files of one directory on a local filesystem.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::record::LeaseState;
use crate::stored::{FORMAT_VERSION, check_envelope, decode_saved, encode_saved};
use crate::{
    Clock, Error, Lease, OwnerId, Saved, SessionKey, SessionStore, StoredSession, SystemClock,
};

/// The format marker of a lease file.
const LEASE_FORMAT: &str = "gemini-live-rs/session-lease";

/// Sessions in files of one directory, shared by the processes of one machine.
///
/// Each session key `K` has three files: `K.session.json` (the saved state, the format
/// [`load`](SessionStore::load) reads), `K.lease.json` (the highest epoch granted and the live
/// lease, if any) and `K.lock`, which every lease operation locks (`flock`, exclusive) for its
/// read-check-write, so that two processes never both see a lease as free. Files are replaced
/// atomically: written to a temporary file, flushed to disk (`fsync`), renamed over the old
/// one, and the directory flushed; a crash leaves the old version or the new, never a mix.
/// Files are created readable by their owner only (they hold the handle's token).
///
/// Leases expire on a [`Clock`] ([`SystemClock`] unless [`with_clock`](Self::with_clock) says
/// otherwise), which every process sharing the directory must share: use a local filesystem
/// (`flock` on a network filesystem is not to be relied on), and no clock but the system's
/// outside tests. A file this store cannot read is a typed error, and it is left as it is; a
/// [`save`](SessionStore::save) under the current lease replaces the state file whatever it held.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: Arc<Path>,
    clock: Arc<dyn Clock>,
}

/// The stored form of a lease file.
#[derive(Serialize, Deserialize)]
struct LeaseFile {
    format: String,
    version: u64,
    #[serde(flatten)]
    state: LeaseState,
}

impl FileStore {
    /// A store in `dir`, created if missing, on the system clock.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: format!("create the store directory {}", dir.display()),
            source,
        })?;
        Ok(Self {
            dir: Arc::from(dir),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store deciding expiry on `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `key`'s saved state.
    pub fn session_path(&self, key: &SessionKey) -> PathBuf {
        self.dir.join(format!("{key}.session.json"))
    }

    /// The file holding `key`'s lease.
    pub fn lease_path(&self, key: &SessionKey) -> PathBuf {
        self.dir.join(format!("{key}.lease.json"))
    }

    fn lock_path(&self, key: &SessionKey) -> PathBuf {
        self.dir.join(format!("{key}.lock"))
    }

    /// Runs `step` on `key`'s lease state under its lock, on a blocking thread, and writes the
    /// lease back when `step` succeeds.
    async fn with_lease<T, F>(&self, key: &SessionKey, step: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&FileStore, &mut LeaseState, u64) -> Result<T, Error> + Send + 'static,
    {
        let store = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            let lock_path = store.lock_path(&key);
            let lock = open_private(&lock_path, false)?;
            lock.lock().map_err(|source| Error::Io {
                action: format!("lock {}", lock_path.display()),
                source,
            })?;
            let lease_path = store.lease_path(&key);
            let mut state = match read_optional(&lease_path)? {
                None => LeaseState::default(),
                Some(bytes) => {
                    let value = check_envelope(&key, &bytes, LEASE_FORMAT)?;
                    let file: LeaseFile =
                        serde_json::from_value(value).map_err(|err| Error::Corrupt {
                            key: key.clone(),
                            reason: format!("lease file: {err}"),
                        })?;
                    file.state
                }
            };
            let now = store.clock.now_ms();
            let out = step(&store, &mut state, now)?;
            let file = LeaseFile {
                format: LEASE_FORMAT.to_owned(),
                version: FORMAT_VERSION,
                state,
            };
            let bytes = serde_json::to_vec(&file).map_err(Error::Encode)?;
            write_atomically(&store.dir, &lease_path, &bytes)?;
            // The lock is released when `lock` is dropped, after the write is on disk.
            drop(lock);
            Ok(out)
        })
        .await
        .map_err(|join| Error::Io {
            action: "run the file store's blocking task".to_owned(),
            source: std::io::Error::other(join.to_string()),
        })?
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        let (key2, owner) = (key.clone(), owner.clone());
        self.with_lease(key, move |_, state, now| {
            state.acquire(&key2, &owner, ttl, now)
        })
        .await
    }

    async fn renew(&self, lease: &Lease) -> Result<(), Error> {
        let lease = lease.clone();
        self.with_lease(&lease.key().clone(), move |_, state, now| {
            state.renew(&lease, now)
        })
        .await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, Error> {
        let path = self.session_path(key);
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            read_optional(&path)?
                .map(|bytes| decode_saved(&key, &bytes))
                .transpose()
        })
        .await
        .map_err(|join| Error::Io {
            action: "run the file store's blocking task".to_owned(),
            source: std::io::Error::other(join.to_string()),
        })?
    }

    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), Error> {
        let bytes = encode_saved(lease.epoch(), session)?;
        let lease = lease.clone();
        self.with_lease(&lease.key().clone(), move |store, state, now| {
            state.check_current(&lease, now)?;
            write_atomically(&store.dir, &store.session_path(lease.key()), &bytes)
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), Error> {
        let lease = lease.clone();
        self.with_lease(&lease.key().clone(), move |_, state, now| {
            state.release(&lease, now)
        })
        .await
    }
}

/// Opens (creating it, readable and writable by its owner only) `path`; `truncate` empties it.
fn open_private(path: &Path, truncate: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| Error::Io {
        action: format!("open {}", path.display()),
        source,
    })
}

/// The contents of `path`, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: format!("read {}", path.display()),
            source,
        }),
    }
}

/// Replaces `path` with `bytes`: a temporary file beside it, flushed, renamed over it, and the
/// directory flushed. Callers hold the key's lock, so the temporary name is theirs alone.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let io = |action: &str, path: &Path| {
        let action = format!("{action} {}", path.display());
        move |source| Error::Io { action, source }
    };
    let mut file = open_private(&tmp, true)?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("flush", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("flush the directory", dir))
}
