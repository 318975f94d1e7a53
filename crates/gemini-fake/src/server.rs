//! The listening server: start, address, inspection, faults and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::connection;
use crate::endpoint;
use crate::faults::Faults;
use crate::inspect::ServerView;
use crate::session::{ConnectionRecord, SessionId, SessionSnapshot};
use crate::shared::Shared;
use crate::{Error, FakeConfig};

/// A running fake Gemini Live server. Dropping it stops the server (like
/// [`FakeServer::shutdown`], without waiting).
#[derive(Debug)]
pub struct FakeServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds the configured address (default `127.0.0.1:0`, a free port) and starts serving in
    /// the background on the current tokio runtime. Returns as soon as the socket listens.
    pub async fn start(config: FakeConfig) -> Result<FakeServer, Error> {
        let listen = config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: listen.to_string(),
            source,
        })?;
        let tls = config
            .tls
            .as_ref()
            .map(crate::TlsIdentity::acceptor)
            .transpose()?;
        let shared = Arc::new(Shared::new(config));
        let accept = tokio::spawn(accept_loop(Arc::clone(&shared), listener, tls));
        tracing::info!(%addr, family = %shared.config.family, vertex = shared.config.vertex, "fake Gemini Live server listening");
        Ok(FakeServer {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// The base URL, `ws://127.0.0.1:PORT` (`wss://` with [`FakeConfig::with_tls`]); a client
    /// appends the service path to it.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The full URL of the default path: `.../ws/google.ai.generativelanguage.v1beta.
    /// GenerativeService.BidiGenerateContent`, or the Vertex path when serving Vertex.
    #[must_use]
    pub fn endpoint_url(&self) -> String {
        let path = endpoint::default_path(self.shared.config.vertex);
        format!("{}{path}", self.url())
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it serves.
    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// Fault injection.
    #[must_use]
    pub fn faults(&self) -> Faults {
        Faults {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Session ids in creation order.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionId> {
        self.shared.session_ids()
    }

    /// A copy of one session's state.
    #[must_use]
    pub fn session(&self, id: SessionId) -> Option<SessionSnapshot> {
        self.shared.session_copy(id)
    }

    /// A copy of the most recently created session.
    #[must_use]
    pub fn latest_session(&self) -> Option<SessionSnapshot> {
        self.shared.latest_session_copy()
    }

    /// Copies of every connection ever accepted, in accept order.
    #[must_use]
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.connection_copies()
    }

    /// The audio chunks load mode took in and sent out so far, over all connections (zero
    /// unless [`FakeConfig::with_audio_load`] is on).
    #[must_use]
    pub fn load_counts(&self) -> crate::LoadCounts {
        self.shared.load_counters.read()
    }

    /// Reads the state through a borrowed view.
    pub fn inspect<T>(&self, f: impl FnOnce(&ServerView<'_>) -> T) -> T {
        self.shared.inspect(f)
    }

    /// Waits until `condition` holds, re-checking after every change of the server's state.
    ///
    /// The timeout is measured in real (wall-clock) time, so it is not cut short when a test
    /// runs with paused tokio time. `what` names the condition in the timeout error.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&ServerView<'_>) -> bool,
    ) -> Result<(), Error> {
        let mut changes = self.shared.subscribe();
        let mut expired = wall_clock_timer(timeout);
        loop {
            changes.borrow_and_update();
            if self.inspect(&mut condition) {
                return Ok(());
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(Error::ShutDown);
                    }
                }
                _ = &mut expired => {
                    return if self.inspect(&mut condition) {
                        Ok(())
                    } else {
                        Err(Error::Timeout { waited: timeout, what: what.to_owned() })
                    };
                }
            }
        }
    }

    /// Waits until the latest session satisfies `condition` and returns a copy of it.
    pub async fn wait_for_session(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&SessionSnapshot) -> bool,
    ) -> Result<SessionSnapshot, Error> {
        self.wait_for(timeout, what, |view| {
            view.latest_session().is_some_and(&mut condition)
        })
        .await?;
        self.latest_session().ok_or(Error::ShutDown)
    }

    /// Stops accepting, closes every connection with 1001 and waits for them to end.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// A receiver that completes after `timeout` of wall-clock time.
fn wall_clock_timer(timeout: Duration) -> oneshot::Receiver<()> {
    const POLL: Duration = Duration::from_millis(20);
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + timeout;
        // Ends early once the waiter has gone.
        while !tx.is_closed() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                let _ = tx.send(());
                return;
            }
            std::thread::sleep(left.min(POLL));
        }
    });
    rx
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "accepted");
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    match tls.clone() {
                        None => {
                            connections.spawn(connection::serve(shared, stream));
                        }
                        Some(acceptor) => {
                            connections.spawn(async move {
                                // A client that never completes the handshake does not hold
                                // up shutdown.
                                let mut shutdown = shared.shutdown.subscribe();
                                let accepted = tokio::select! {
                                    accepted = acceptor.accept(stream) => accepted,
                                    () = until_shutdown(&mut shutdown) => return,
                                };
                                match accepted {
                                    Ok(stream) => connection::serve(shared, stream).await,
                                    Err(error) => tracing::debug!(%error, "TLS handshake failed"),
                                }
                            });
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = until_shutdown(&mut shutdown) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Completes when the server shuts down (or its state is gone).
pub(crate) async fn until_shutdown(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await.map(|_| ());
}
