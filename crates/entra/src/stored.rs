//! A connector as stored: its sealed credentials and settings, opened into a working
//! [`EntraConnector`]. The client secret is decrypted only here, into [`Credentials`], whose
//! `Debug` never prints it.

use attest_config::secrets::{SecretError, SecretKey};
use attest_domain::{Connector, ConnectorId};
use attest_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::auth::Credentials;
use crate::certificate::ClientCertificate;
use crate::graph::{GraphClient, RetryPolicy};
use crate::sync::{EntraConnector, EntraSettings};

/// What is sealed in the connector row.
#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    client_id: String,
    /// Empty with a certificate.
    client_secret: String,
    /// Certificate credentials: the certificate and its private key, as PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
}

/// Why a stored connector cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("connector '{0}' has no credentials yet: add them with `attest connector add`")]
    NoCredentials(String),
    #[error("connector '{0}' has no tenant id")]
    NoTenant(String),
    #[error("connector '{name}': {message}")]
    Invalid { name: String, message: String },
}

fn context(id: ConnectorId) -> String {
    format!("connector:{}", id.0)
}

/// Seals an app's client id and secret for the connector `id`.
pub fn seal_credentials(
    key: &SecretKey,
    id: ConnectorId,
    client_id: &str,
    client_secret: &str,
) -> Result<Vec<u8>, SecretError> {
    seal(
        key,
        id,
        &StoredCredentials {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            certificate: None,
            private_key: None,
        },
    )
}

/// Seals an app's client id and certificate credentials (the certificate and its private key,
/// PEM) for the connector `id`, once they are checked to belong together.
pub fn seal_certificate(
    key: &SecretKey,
    id: ConnectorId,
    client_id: &str,
    certificate: &str,
    private_key: &str,
) -> Result<Vec<u8>, OpenError> {
    ClientCertificate::from_pem(certificate, private_key)
        .map_err(|message| OpenError::Invalid { name: format!("#{}", id.0), message })?;
    let stored = StoredCredentials {
        client_id: client_id.to_owned(),
        client_secret: String::new(),
        certificate: Some(certificate.to_owned()),
        private_key: Some(private_key.to_owned()),
    };
    Ok(seal(key, id, &stored)?)
}

fn seal(key: &SecretKey, id: ConnectorId, stored: &StoredCredentials) -> Result<Vec<u8>, SecretError> {
    let plain = serde_json::to_vec(stored).map_err(|_| SecretError::Undecryptable)?;
    key.seal(&plain, &context(id))
}

/// The connector's credentials, decrypted.
pub async fn credentials(store: &Store, key: &SecretKey, connector: &Connector) -> Result<Credentials, OpenError> {
    let sealed = store
        .connectors()
        .find_connector_credentials(connector.id)
        .await?
        .ok_or_else(|| OpenError::NoCredentials(connector.name.clone()))?;
    unseal(key, connector, &sealed)
}

/// The credentials the connector will switch to once proven (a new certificate waiting to be
/// uploaded), decrypted; `None` when there are none.
pub async fn pending_credentials(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
) -> Result<Option<Credentials>, OpenError> {
    match store.connectors().find_pending_credentials(connector.id).await? {
        Some(sealed) => Ok(Some(unseal(key, connector, &sealed)?)),
        None => Ok(None),
    }
}

fn unseal(key: &SecretKey, connector: &Connector, sealed: &[u8]) -> Result<Credentials, OpenError> {
    let plain = key.open(sealed, &context(connector.id))?;
    let stored: StoredCredentials = serde_json::from_slice(&plain).map_err(|_| SecretError::Undecryptable)?;
    let settings = EntraSettings::from_json(&connector.settings)
        .map_err(|message| OpenError::Invalid { name: connector.name.clone(), message })?;
    let certificate = match (&stored.certificate, &stored.private_key) {
        (Some(certificate), Some(private_key)) => Some(std::sync::Arc::new(
            ClientCertificate::from_pem(certificate, private_key)
                .map_err(|message| OpenError::Invalid { name: connector.name.clone(), message })?,
        )),
        _ => None,
    };
    Ok(Credentials {
        login_url: settings.login_url,
        graph_url: settings.graph_url,
        tenant_id: connector.tenant_id.clone().ok_or_else(|| OpenError::NoTenant(connector.name.clone()))?,
        client_id: stored.client_id,
        client_secret: stored.client_secret,
        certificate,
    })
}

/// Opens a stored connector with the default retry policy.
pub async fn open(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    http: reqwest::Client,
) -> Result<EntraConnector, OpenError> {
    let credentials = credentials(store, key, connector).await?;
    let settings = EntraSettings::from_json(&connector.settings)
        .map_err(|message| OpenError::Invalid { name: connector.name.clone(), message })?;
    let client = GraphClient::connect(http, credentials, RetryPolicy::default());
    Ok(EntraConnector::new(client, settings))
}
