//! TLS for `wss://` endpoints: rustls with Mozilla's roots (webpki-roots) and the `ring` crypto
//! provider chosen explicitly.
//!
//! Choosing the provider here (instead of relying on rustls' process-wide default) means a build
//! never fails at run time with "no process-level CryptoProvider available", whatever other crates
//! in the binary enable.

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

static DEFAULT_CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();

/// The client TLS configuration used when [`ConnectConfig`](crate::ConnectConfig) names none:
/// webpki roots, `ring`, TLS 1.2 and 1.3. Built once per process and shared.
///
/// # Errors
/// [`Error::Tls`] if rustls rejects the protocol versions for the provider (it does not for
/// `ring`; the error exists so that this never panics).
pub fn default_client_config() -> Result<Arc<ClientConfig>, Error> {
    if let Some(config) = DEFAULT_CONFIG.get() {
        return Ok(Arc::clone(config));
    }
    let built = Arc::new(build()?);
    Ok(Arc::clone(DEFAULT_CONFIG.get_or_init(|| built)))
}

fn build() -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                authority: String::new(),
                detail: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_without_a_process_default_provider() {
        let a = default_client_config().unwrap();
        let b = default_client_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
