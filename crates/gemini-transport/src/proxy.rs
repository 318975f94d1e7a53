//! Dialing through an HTTP proxy with `CONNECT` (RFC 9110 section 9.3.6), as production
//! networks often require: the proxy opens a TCP tunnel to the service, and TLS and the
//! WebSocket upgrade run through it end to end (the proxy sees neither the credential nor the
//! traffic).
//!
//! [`ProxyConfig::FromEnv`] (the default) reads `HTTPS_PROXY` for `wss://` and `HTTP_PROXY`
//! for `ws://` (either case, then `ALL_PROXY`), honours `NO_PROXY` (comma-separated hosts or
//! domain suffixes, `*` for all), and never proxies a loopback host (`localhost`,
//! `127.0.0.0/8`, `::1`), so a local server is reached directly whatever the environment says.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// How a dial reaches the server.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// The proxy the environment names (see the module documentation), if any.
    #[default]
    FromEnv,
    /// Straight to the server, whatever the environment says.
    Direct,
    /// Through this proxy (also for loopback hosts).
    Via(Proxy),
}

/// An HTTP proxy that tunnels with `CONNECT`: `http://[user:password@]host[:port]` (port 80 by
/// default; a proxy reached over TLS, `https://`, is not supported). Credentials go in a
/// `Proxy-Authorization: Basic` header and never appear in `Debug` or an error.
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    authorization: Option<SecretString>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

impl Proxy {
    /// Parses a proxy URL; an error says what is wrong (never repeating a credential).
    ///
    /// ```
    /// use gemini_transport::Proxy;
    ///
    /// let proxy = Proxy::parse("http://me:secret@proxy.internal:3128").unwrap();
    /// assert_eq!(proxy.authority(), "proxy.internal:3128");
    /// assert!(!format!("{proxy:?}").contains("secret"));
    /// assert!(Proxy::parse("https://proxy.internal").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            field: "proxy",
            reason: reason.to_owned(),
        };
        let rest = match url.trim().split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(invalid(
                    "a proxy reached over TLS (https://) is not supported",
                ));
            }
            Some(_) => return Err(invalid("must be an http:// URL")),
            // `host:port` alone, as many environments set it.
            None => url.trim(),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || hostport.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| invalid("has an invalid port"))?;
                (host, port)
            }
            _ => (hostport, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid("has no host"));
        }
        let authorization = match userinfo {
            Some(userinfo) => {
                let decoded = percent_decode(userinfo)
                    .ok_or_else(|| invalid("has badly encoded credentials"))?;
                Some(SecretString::from(base64_encode(decoded.as_bytes())))
            }
            None => None,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            authorization,
        })
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The proxy a dial to `host` goes through, if any; `env` reads an environment variable.
pub(crate) fn resolve(
    config: &ProxyConfig,
    host: &str,
    tls: bool,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, Error> {
    match config {
        ProxyConfig::Direct => Ok(None),
        ProxyConfig::Via(proxy) => Ok(Some(proxy.clone())),
        ProxyConfig::FromEnv => {
            if is_loopback(host) {
                return Ok(None);
            }
            let names: &[&str] = if tls {
                &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            };
            let Some(url) = names
                .iter()
                .find_map(|name| env(name).filter(|v| !v.trim().is_empty()))
            else {
                return Ok(None);
            };
            let no_proxy = env("NO_PROXY").or_else(|| env("no_proxy"));
            if no_proxy.is_some_and(|list| excluded(&list, host)) {
                return Ok(None);
            }
            Proxy::parse(&url).map(Some)
        }
    }
}

/// Whether `NO_PROXY`'s `list` excludes `host`.
fn excluded(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('*').trim_start_matches('.');
        !entry.is_empty()
            && (host.eq_ignore_ascii_case(entry)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", entry.to_ascii_lowercase())))
    })
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The largest `CONNECT` response head read.
const MAX_HEAD: usize = 8 << 10;

/// Opens a tunnel through `proxy` to `host:port`; returns the TCP stream, ready for TLS or
/// the upgrade.
pub(crate) async fn tunnel(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream, Error> {
    let failed = |status: Option<u16>, detail: String| Error::Proxy {
        proxy: proxy.authority(),
        status,
        detail,
    };
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|source| Error::Connect {
            authority: proxy.authority(),
            source,
        })?;
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(authorization) = &proxy.authorization {
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(authorization.expose_secret());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| failed(None, format!("writing CONNECT: {e}")))?;
    // Read the response head, byte by byte past what is read so far: nothing of the tunnel
    // after it may be consumed here.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(failed(None, "response head too large".to_owned()));
        }
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| failed(None, format!("reading the CONNECT response: {e}")))?;
        if n == 0 {
            return Err(failed(None, "closed before answering CONNECT".to_owned()));
        }
        head.push(byte[0]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(failed(None, "malformed CONNECT response".to_owned())),
    }
    match response.code {
        Some(code @ 200..=299) => {
            tracing::trace!(code, "proxy tunnel open");
            Ok(tcp)
        }
        Some(code) => Err(failed(
            Some(code),
            response.reason.unwrap_or_default().to_owned(),
        )),
        None => Err(failed(None, "no status in the CONNECT response".to_owned())),
    }
}

/// `%XX` sequences decoded; `None` for a bad sequence or invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut k = 0;
    while k < bytes.len() {
        if bytes[k] == b'%' {
            let hex = std::str::from_utf8(bytes.get(k + 1..k + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            k += 3;
        } else {
            out.push(bytes[k]);
            k += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::{Proxy, ProxyConfig, resolve};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn chosen(
        config: &ProxyConfig,
        host: &str,
        tls: bool,
        vars: &[(&str, &str)],
    ) -> Option<String> {
        resolve(config, host, tls, env(vars))
            .unwrap()
            .map(|p| p.authority())
    }

    #[test]
    fn the_environment_names_the_proxy_for_each_scheme() {
        let vars = [
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "plain:8080"),
        ];
        let from_env = ProxyConfig::FromEnv;
        assert_eq!(
            chosen(&from_env, "generativelanguage.googleapis.com", true, &vars),
            Some("secure:3128".to_owned())
        );
        assert_eq!(
            chosen(&from_env, "example.com", false, &vars),
            Some("plain:8080".to_owned())
        );
        assert_eq!(chosen(&from_env, "example.com", true, &[]), None);
        assert_eq!(
            chosen(&from_env, "example.com", true, &[("ALL_PROXY", "all:1")]),
            Some("all:1".to_owned())
        );
    }

    #[test]
    fn loopback_and_no_proxy_hosts_are_dialed_directly() {
        let vars = [
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "internal.example, .corp.example"),
        ];
        let from_env = ProxyConfig::FromEnv;
        for host in [
            "127.0.0.1",
            "localhost",
            "::1",
            "[::1]",
            "internal.example",
            "a.corp.example",
        ] {
            assert_eq!(chosen(&from_env, host, true, &vars), None, "{host}");
        }
        assert_eq!(
            chosen(&from_env, "corp.example.org", true, &vars),
            Some("proxy:3128".to_owned())
        );
        let all = [("HTTPS_PROXY", "http://proxy:3128"), ("no_proxy", "*")];
        assert_eq!(chosen(&from_env, "example.com", true, &all), None);
        let all_in_a_list = [
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "a.example, *"),
        ];
        assert_eq!(chosen(&from_env, "example.com", true, &all_in_a_list), None);
        // An explicit proxy is used even for loopback; `Direct` never proxies.
        let via = ProxyConfig::Via(Proxy::parse("proxy:1").unwrap());
        assert_eq!(
            chosen(&via, "127.0.0.1", true, &[]),
            Some("proxy:1".to_owned())
        );
        assert_eq!(
            chosen(&ProxyConfig::Direct, "example.com", true, &vars),
            None
        );
    }

    #[test]
    fn bad_proxy_urls_are_typed_errors_that_keep_credentials_out() {
        for url in [
            "https://proxy",
            "socks5://proxy:1080",
            "http://",
            "http://proxy:notaport",
            "http://user:%zz@proxy:1",
        ] {
            let error = Proxy::parse(url).unwrap_err();
            assert!(
                matches!(error, crate::Error::InvalidEndpoint { field: "proxy", .. }),
                "{url}: {error:?}"
            );
            assert!(!error.to_string().contains("%zz"), "{error}");
        }
        let proxy = Proxy::parse("http://us%40er:p%3Ass@[::1]:3128/").unwrap();
        assert_eq!(proxy.authority(), "[::1]:3128");
        assert!(!format!("{proxy:?}").contains("p%3Ass"));
        // `us@er:p:ss`, as the header carries it.
        use secrecy::ExposeSecret as _;
        assert_eq!(
            proxy.authorization.as_ref().unwrap().expose_secret(),
            "dXNAZXI6cDpzcw=="
        );
    }
}
