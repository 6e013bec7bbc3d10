//! The one way Attest builds an HTTP client.
//!
//! Real Microsoft Graph and the identity platform are HTTPS only, so every client speaks TLS: reqwest over
//! rustls, with *ring* as the crypto provider (already in the tree for the simulator's RS256 tokens; aws-lc-rs
//! would be a long C build on small machines) and the platform's certificate verifier (the operating system's
//! trust store, so a company's TLS-inspecting proxy CA installed there is honoured).
//!
//! rustls needs a process-wide crypto provider before any client is built, and Cargo's feature unification
//! means that requirement reaches every crate in the workspace that builds a client, tests included. Building
//! clients only through [`client_builder`] installs it exactly once; clippy's `disallowed-methods` keeps
//! `reqwest::Client::new` and `reqwest::Client::builder` out of the rest of the code.

use std::sync::{Once, OnceLock};

static CRYPTO_PROVIDER: Once = Once::new();
static SYSTEM_HAS_ROOTS: OnceLock<bool> = OnceLock::new();

/// A reqwest builder with TLS ready. Callers add what they need (timeouts, redirect policy, extra roots).
#[allow(clippy::disallowed_methods)]
pub fn client_builder() -> reqwest::ClientBuilder {
    CRYPTO_PROVIDER.call_once(|| {
        // `Err` means another provider was installed first (an embedding application's choice); keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let builder = reqwest::Client::builder();
    if system_has_roots() {
        builder
    } else {
        // The platform verifier refuses to be built without any trusted root, which would stop even plain-HTTP
        // uses (the demo's in-process simulator). Trust nothing instead: HTTPS fails, and the warning says why.
        builder.tls_certs_only([])
    }
}

/// A client with reqwest's defaults.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    client_builder().build()
}

/// Whether the operating system has any CA certificate (minimal containers often have none), read once.
fn system_has_roots() -> bool {
    *SYSTEM_HAS_ROOTS.get_or_init(|| {
        let found = !rustls_native_certs::load_native_certs().certs.is_empty();
        if !found {
            tracing::warn!(
                "no CA certificates found on this system: HTTPS to Microsoft Graph will fail until they are \
                 installed (Debian: apt-get install ca-certificates) or SSL_CERT_FILE names a PEM bundle"
            );
        }
        found
    })
}

#[cfg(feature = "test-tls")]
pub mod test_tls;
