//! Dialing through an HTTP proxy with `CONNECT`: a proxy on loopback (written here: it reads
//! the `CONNECT` head, dials the target and relays bytes both ways) tunnels the WebSocket
//! upgrade to the server, with its credentials in `Proxy-Authorization`; a proxy that refuses
//! is a typed error, 407 classified as needing other credentials.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connection_support;

use connection_support::{accept, bind};
use gemini_transport::{
    CloseClass, ConnectConfig, Connection, Endpoint, Error, Proxy, ProxyConfig,
};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads an HTTP head (through the blank line) from `tcp`.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "head cut short");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A proxy that answers one `CONNECT` with `status`, and on 200 relays to the target; returns
/// its `http://` URL (with `userinfo`, if any) and the head it received.
async fn proxy(status: u16, userinfo: &str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{userinfo}{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let head = read_head(&mut client).await;
        if status != 200 {
            let reply = format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n");
            client.write_all(reply.as_bytes()).await.unwrap();
            return head;
        }
        let target = head
            .lines()
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap()
            .to_owned();
        let mut server = TcpStream::connect(target).await.unwrap();
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        head
    });
    (url, task)
}

#[tokio::test]
async fn the_upgrade_goes_through_the_proxys_tunnel_with_its_credentials() {
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move {
        let (_ws, captured) = accept(&listener).await;
        captured.header("x-goog-api-key").map(str::to_owned)
    });
    let (url, proxy_task) = proxy(200, "me:s%3Acret@").await;
    let endpoint = Endpoint::api_key(SecretString::from("the-key"))
        .with_base_url(&base)
        .unwrap();
    let config = ConnectConfig::default().with_proxy(ProxyConfig::Via(Proxy::parse(&url).unwrap()));
    let _connection = Connection::connect(&endpoint, &config).await.unwrap();
    // The service got the request (and its credential) end to end through the tunnel.
    assert_eq!(server.await.unwrap().as_deref(), Some("the-key"));
    let head = proxy_task.await.unwrap();
    let authority = base.trim_start_matches("ws://");
    assert!(
        head.starts_with(&format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        )),
        "{head}"
    );
    // `me:s:cret`, decoded from the URL and sent as Basic credentials.
    assert!(
        head.contains("Proxy-Authorization: Basic bWU6czpjcmV0\r\n"),
        "{head}"
    );
    // The proxy saw no WebSocket request and no API key: only the tunnel's target.
    assert!(
        !head.contains("the-key") && !head.contains("Upgrade"),
        "{head}"
    );
}

#[tokio::test]
async fn a_refused_tunnel_is_a_typed_error_and_407_asks_for_credentials() {
    for (status, class) in [
        (407, CloseClass::AuthOrQuota),
        (403, CloseClass::NeedsDifferentRequest),
        (502, CloseClass::Transient),
    ] {
        let (url, proxy_task) = proxy(status, "").await;
        let endpoint = Endpoint::api_key(SecretString::from("the-key"))
            .with_base_url("ws://127.0.0.1:9")
            .unwrap();
        let config =
            ConnectConfig::default().with_proxy(ProxyConfig::Via(Proxy::parse(&url).unwrap()));
        let error = Connection::connect(&endpoint, &config).await.err().unwrap();
        assert!(
            matches!(error, Error::Proxy { status: Some(s), .. } if s == status),
            "{error:?}"
        );
        assert_eq!(error.class(), class, "{status}");
        assert!(error.ends_connection());
        proxy_task.await.unwrap();
    }
}

#[tokio::test]
async fn the_default_dials_a_loopback_server_directly() {
    // The default reads the environment and never proxies a loopback host (the resolution
    // itself, with proxy variables set, is unit-tested in `proxy.rs`).
    let (listener, base) = bind().await;
    let server = tokio::spawn(async move { accept(&listener).await.1 });
    let endpoint = Endpoint::api_key(SecretString::from("k"))
        .with_base_url(&base)
        .unwrap();
    let _connection = Connection::connect(&endpoint, &ConnectConfig::default())
        .await
        .unwrap();
    server.await.unwrap();
}
