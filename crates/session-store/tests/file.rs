//! The conformance suite on `FileStore` (two stores on one directory, as two processes would
//! hold, on a shared manual clock), and what only a file store has: its files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use conformance::{Harness, conformance_suite, key, owner, realistic_session};
use session_store::{Error, FileStore, ManualClock, SessionKey, SessionStore};

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "session-store-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Files {
    a: FileStore,
    b: FileStore,
    clock: ManualClock,
    _dir: TempDir,
}

impl Harness for Files {
    type Store = FileStore;

    fn a(&self) -> &FileStore {
        &self.a
    }

    fn b(&self) -> &FileStore {
        &self.b
    }

    async fn pass(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn real_time(&self) -> bool {
        false
    }

    async fn write_raw(&self, key: &SessionKey, bytes: &[u8]) -> bool {
        std::fs::write(self.a.session_path(key), bytes).expect("write");
        true
    }
}

fn files_in(dir: TempDir) -> Files {
    let clock = ManualClock::new(1_000_000);
    let store = |dir: &Path| {
        FileStore::new(dir)
            .expect("store")
            .with_clock(Arc::new(clock.clone()))
    };
    Files {
        a: store(&dir.0),
        b: store(&dir.0),
        clock: clock.clone(),
        _dir: dir,
    }
}

async fn files() -> Option<Files> {
    Some(files_in(TempDir::new()))
}

conformance_suite!(files());

#[tokio::test]
async fn a_corrupt_or_foreign_lease_file_refuses_every_lease_operation() {
    let h = files_in(TempDir::new());
    let k = key("lease-file");
    let lease =
        h.a.acquire(&k, &owner("a"), Duration::from_secs(60))
            .await
            .expect("free");
    let path = h.a.lease_path(&k);
    for (bytes, foreign) in [
        (&b"{\"format\":\"gemini-live-rs/se"[..], false),
        (b"{\"format\":\"x\"}", true),
    ] {
        std::fs::write(&path, bytes).expect("write");
        let acquired = h.b.acquire(&k, &owner("b"), Duration::from_secs(60)).await;
        let saved = h.a.save(&lease, &realistic_session("s")).await;
        for result in [acquired.err(), saved.err()] {
            match result {
                Some(Error::Corrupt { .. }) if !foreign => {}
                Some(Error::Foreign { .. }) if foreign => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
            }
        }
        // Left as it was, for an operator to look at.
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }
    assert!(
        h.a.load(&k).await.expect("readable").is_none(),
        "nothing saved"
    );
}

#[tokio::test]
async fn files_are_private_and_no_temporary_file_is_left() {
    let h = files_in(TempDir::new());
    let k = key("files");
    let lease =
        h.a.acquire(&k, &owner("a"), Duration::from_secs(60))
            .await
            .expect("free");
    h.a.save(&lease, &realistic_session("f"))
        .await
        .expect("current");
    h.a.renew(&lease).await.expect("current");
    let mut names: Vec<String> = std::fs::read_dir(h.a.dir())
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["files.lease.json", "files.lock", "files.session.json"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in &names {
            let mode = std::fs::metadata(h.a.dir().join(name))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name} is readable by others: {mode:o}");
        }
    }
    // The handle's token is in the file (it is what a resume needs), and nowhere in Debug.
    let text = std::fs::read_to_string(h.a.session_path(&k)).expect("read");
    assert!(text.contains("handle-token-f"));
    let saved = h.b.load(&k).await.expect("readable").expect("saved");
    assert!(!format!("{saved:?}").contains("handle-token-f"));
}

#[tokio::test]
async fn concurrent_acquires_from_many_stores_grant_one_lease() {
    // Eight "processes" race for one session: the lock makes exactly one win.
    let h = files_in(TempDir::new());
    let k = key("race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = FileStore::new(h.a.dir())
            .expect("store")
            .with_clock(Arc::new(h.clock.clone()));
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            store
                .acquire(&k, &owner(&format!("w{i}")), Duration::from_secs(60))
                .await
        }));
    }
    let mut granted = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => granted += 1,
            Err(Error::Held { .. }) => {}
            Err(err) => panic!("{err:?}"),
        }
    }
    assert_eq!(granted, 1);
}
