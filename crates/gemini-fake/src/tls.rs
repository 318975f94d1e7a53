//! `wss://`: a certificate and key for the server, and the TLS acceptor built from them.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A certificate and its private key, for [`FakeConfig::with_tls`](crate::FakeConfig::with_tls).
#[derive(Clone)]
pub struct TlsIdentity {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh self-signed certificate for `127.0.0.1`, `::1` and `localhost` (its own
    /// authority: a client that trusts [`TlsIdentity::cert_pem`], as Python does with
    /// `SSL_CERT_FILE`, accepts it).
    pub fn self_signed() -> Result<TlsIdentity, Error> {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| tls_error(&e))?;
        Ok(TlsIdentity {
            cert_der: certified.cert.der().to_vec(),
            cert_pem: certified.cert.pem(),
            key_der: certified.signing_key.serialize_der(),
        })
    }

    /// The certificate in PEM, to write where a client looks for trusted certificates.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate in DER.
    #[must_use]
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The rustls acceptor serving this identity (ring provider, TLS 1.2 and 1.3).
    pub(crate) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(self.cert_der.clone())], key)
            .map_err(|e| tls_error(&e))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

fn tls_error(error: &dyn std::fmt::Display) -> Error {
    Error::InvalidArgument {
        field: "tls".to_owned(),
        reason: error.to_string(),
    }
}
