//! The conformance suite on `RedisStore` against a real `redis-server`, and what only the
//! Redis store has: its keys, a lost epoch counter, an unreachable server.
//!
//! Each test starts its own `redis-server` (the binary in `SESSION_STORE_REDIS_SERVER`, else
//! `redis-server` on `PATH`; `cargo xtask ci` installs it) on a free port of 127.0.0.1, with
//! no persistence, and kills it when the test ends. Without the binary the tests fail when
//! `CI` is set and skip, saying so, otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use conformance::{Harness, conformance_suite, key, owner, realistic_session};
use session_store::{Error, RedisStore, SessionKey, SessionStore};

/// A `redis-server` child process on a loopback port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn redis_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SESSION_STORE_REDIS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

impl RedisServer {
    /// A fresh server, or `None` (skip) when there is no binary outside CI.
    fn start() -> Option<RedisServer> {
        let Some(binary) = redis_binary() else {
            assert!(
                !in_ci(),
                "no redis-server: set SESSION_STORE_REDIS_SERVER or run `cargo xtask redis-server`"
            );
            eprintln!("SKIPPED: no redis-server (run `cargo xtask redis-server` to install it)");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "session-store-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        // A free port: the kernel picks one, and the server takes it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("could not start {}: {err}", binary.display()));
        let mut server = RedisServer { child, port, dir };
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server on port {port} exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {port} did not listen within 5 s");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Redis {
    a: RedisStore,
    b: RedisStore,
    raw: redis::aio::MultiplexedConnection,
    server: RedisServer,
}

impl Harness for Redis {
    type Store = RedisStore;

    fn a(&self) -> &RedisStore {
        &self.a
    }

    fn b(&self) -> &RedisStore {
        &self.b
    }

    async fn pass(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    fn real_time(&self) -> bool {
        true
    }

    async fn write_raw(&self, key: &SessionKey, bytes: &[u8]) -> bool {
        let mut raw = self.raw.clone();
        let _: () = redis::cmd("HSET")
            .arg(self.a.redis_key(key, "state"))
            .arg("data")
            .arg(bytes)
            .query_async(&mut raw)
            .await
            .expect("HSET");
        true
    }
}

async fn redis() -> Option<Redis> {
    let server = RedisServer::start()?;
    let a = RedisStore::connect(&server.url()).await.expect("connect");
    let b = RedisStore::connect(&server.url()).await.expect("connect");
    let raw = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    Some(Redis { a, b, raw, server })
}

conformance_suite!(redis());

#[tokio::test]
async fn the_state_is_one_hash_and_the_lease_a_key_with_a_ttl() {
    let Some(h) = redis().await else { return };
    let k = key("layout");
    let lease =
        h.a.acquire(&k, &owner("a"), Duration::from_secs(30))
            .await
            .expect("free");
    h.a.save(&lease, &realistic_session("l"))
        .await
        .expect("current");
    let mut raw = h.raw.clone();
    let kind: String = redis::cmd("TYPE")
        .arg(h.a.redis_key(&k, "state"))
        .query_async(&mut raw)
        .await
        .expect("TYPE");
    assert_eq!(kind, "hash");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(h.a.redis_key(&k, "lease"))
        .query_async(&mut raw)
        .await
        .expect("PTTL");
    assert!((1..=30_000).contains(&pttl), "{pttl}");
    let holder: String = redis::cmd("GET")
        .arg(h.a.redis_key(&k, "lease"))
        .query_async(&mut raw)
        .await
        .expect("GET");
    assert_eq!(holder, format!("{}:a", lease.epoch()));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter()
            .all(|name| name.starts_with("gemini-live:{layout}:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_lost_epoch_counter_never_hands_out_an_epoch_below_the_saved_state() {
    let Some(h) = redis().await else { return };
    let k = key("counter");
    let mut last = None;
    for _ in 0..3 {
        let lease =
            h.a.acquire(&k, &owner("a"), Duration::from_secs(30))
                .await
                .expect("free");
        h.a.save(&lease, &realistic_session("c"))
            .await
            .expect("current");
        h.a.release(&lease).await.expect("current");
        last = Some(lease.epoch());
    }
    // A failover to a replica that had not seen the counter, as far as the counter goes.
    let mut raw = h.raw.clone();
    let _: () = redis::cmd("DEL")
        .arg(h.a.redis_key(&k, "epoch"))
        .query_async(&mut raw)
        .await
        .expect("DEL");
    let next =
        h.b.acquire(&k, &owner("b"), Duration::from_secs(30))
            .await
            .expect("free");
    assert!(Some(next.epoch()) > last, "{next:?} after {last:?}");
    h.b.save(&next, &realistic_session("after"))
        .await
        .expect("current");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_transient_error_never_a_fence() {
    let Some(mut h) = redis().await else { return };
    let k = key("down");
    let lease =
        h.a.acquire(&k, &owner("a"), Duration::from_secs(30))
            .await
            .expect("free");
    h.server.stop();
    for result in [
        h.a.renew(&lease).await,
        h.a.save(&lease, &realistic_session("d")).await,
        h.a.load(&k).await.map(|_| ()),
    ] {
        match result {
            Err(err) if err.is_transient() => {}
            other => panic!("expected a transient error, got {other:?}"),
        }
    }
    let refused = RedisStore::connect(&h.server.url()).await;
    assert!(
        refused.as_ref().is_err_and(Error::is_transient),
        "{refused:?}"
    );
    assert!(matches!(
        RedisStore::connect("not a url").await,
        Err(Error::Redis(_))
    ));
}
