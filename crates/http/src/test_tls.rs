//! HTTPS for tests: a TLS-terminating front that forwards each connection to a plain-HTTP server (the
//! simulator), so clients are tested over real TLS exactly as they reach Microsoft Graph.
//!
//! The certificates are a test-only CA and a leaf for `localhost` and `127.0.0.1` (EC P-256, valid until
//! 2126); the CA's private key was discarded after signing, so nothing else can be issued under it.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// The test CA, to trust with `ClientBuilder::add_root_certificate`.
pub const CA_PEM: &[u8] = include_bytes!("test_tls_fixtures/ca.pem");
const LEAF_PEM: &[u8] = include_bytes!("test_tls_fixtures/localhost.pem");
const LEAF_KEY_PEM: &[u8] = include_bytes!("test_tls_fixtures/localhost.key");

/// A client builder that trusts the test CA (on top of the platform's roots).
pub fn client_builder() -> Result<reqwest::ClientBuilder, reqwest::Error> {
    Ok(crate::client_builder().add_root_certificate(reqwest::Certificate::from_pem(CA_PEM)?))
}

/// Serves TLS on `listener` and forwards every connection's plaintext to `upstream`, until the runtime stops.
/// Reach it as `https://localhost:{port}`.
pub fn spawn_front(listener: TcpListener, upstream: SocketAddr) -> Result<(), rustls::Error> {
    let chain = vec![CertificateDer::from_pem_slice(LEAF_PEM).map_err(pem_error)?];
    let key = PrivateKeyDer::from_pem_slice(LEAF_KEY_PEM).map_err(pem_error)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate aborts the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Ok(())
}

fn pem_error(error: rustls_pki_types::pem::Error) -> rustls::Error {
    rustls::Error::General(format!("test certificate: {error}"))
}
