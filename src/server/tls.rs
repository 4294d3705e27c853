//! TLS for client connections: a certificate chain and private key from PEM files.
//!
//! A key or certificate that cannot be used stops the server from starting. (The
//! datafusion-postgres listener logs a warning and serves plaintext instead; a server
//! configured for TLS that quietly accepts passwords in the clear is worse than one
//! that does not start.)

use super::ServerError;
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

/// Where the server's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM file with the private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

fn tls_error(path: &Path, reason: impl ToString) -> ServerError {
    ServerError::Tls {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The acceptor for `config`, or why the files cannot be used.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| tls_error(&config.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&config.cert, e))?;
    if certs.is_empty() {
        return Err(tls_error(&config.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|e| tls_error(&config.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&config.cert, e))?
        .with_no_client_auth()
        // Checks that the key matches the certificate.
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&config.key, e))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
