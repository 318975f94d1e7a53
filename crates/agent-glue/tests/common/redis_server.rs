//! A `redis-server` of the test's own on a free loopback port (as session-store's Redis tests
//! run one): the binary in `SESSION_STORE_REDIS_SERVER`, else `redis-server` on `PATH`; no
//! persistence; killed on drop. Without the binary, `start` fails when `CI` is set and skips
//! (`None`, said on stderr) otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A `redis-server` child process on a loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The binary in `SESSION_STORE_REDIS_SERVER`, else `redis-server` on `PATH`.
fn binary() -> Option<PathBuf> {
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
    /// A fresh server without persistence, or `None` (skip, said on stderr) when there is
    /// no binary outside CI.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = binary() else {
            assert!(
                !in_ci(),
                "no redis-server: set SESSION_STORE_REDIS_SERVER or run `cargo xtask redis-server`"
            );
            eprintln!("SKIPPED: no redis-server (run `cargo xtask redis-server` to install it)");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agent-glue-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The remaining time of the Redis key `name` as Redis counts it (`PTTL`), `None` when
    /// the key does not exist or has no expiry; asked over a plain socket of the caller's
    /// own.
    pub fn pttl(&self, name: &str) -> Option<Duration> {
        let mut socket = TcpStream::connect(("127.0.0.1", self.port)).expect("redis-server");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("a read timeout");
        write!(socket, "*2\r\n$4\r\nPTTL\r\n${}\r\n{name}\r\n", name.len()).expect("PTTL sent");
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            socket.read_exact(&mut byte).expect("PTTL answered");
            reply.push(byte[0]);
        }
        let reply = String::from_utf8_lossy(&reply);
        let ms: i64 = reply
            .trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("PTTL answered {reply:?}"));
        u64::try_from(ms).ok().map(Duration::from_millis)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
