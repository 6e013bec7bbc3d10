//! Opening stored connectors: credentials decrypted with the secret key, one client per
//! connector, reused while the process runs.

use std::collections::HashMap;
use std::sync::Arc;

use attest_config::secrets::SecretKey;
use attest_domain::ConnectorId;
use attest_entra::EntraConnector;
use attest_provisioner::Connectors;
use attest_store::Store;
use tokio::sync::Mutex;

/// The HTTP client every connector uses.
pub fn http_client() -> Result<reqwest::Client, String> {
    attest_http::client_builder()
        .user_agent(concat!("attest/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Stored Entra connectors, opened on first use.
pub struct StoredConnectors {
    store: Store,
    key: Arc<SecretKey>,
    opened: Mutex<HashMap<ConnectorId, Arc<EntraConnector>>>,
}

impl StoredConnectors {
    pub fn new(store: Store, key: Arc<SecretKey>) -> StoredConnectors {
        StoredConnectors { store, key, opened: Mutex::new(HashMap::new()) }
    }
}

impl Connectors for StoredConnectors {
    type Connector = EntraConnector;
    async fn open(&self, id: ConnectorId) -> Result<Arc<EntraConnector>, String> {
        let mut opened = self.opened.lock().await;
        if let Some(connector) = opened.get(&id) {
            return Ok(connector.clone());
        }
        let row = self.store.connectors().get_connector(id).await.map_err(|e| e.to_string())?;
        let connector = attest_entra::stored::open(&self.store, &self.key, &row, http_client()?).await;
        let connector = Arc::new(connector.map_err(|e| e.to_string())?);
        opened.insert(id, connector.clone());
        Ok(connector)
    }
}
