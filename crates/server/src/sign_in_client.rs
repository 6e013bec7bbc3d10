//! The sign-in client: Attest's OpenID Connect client for the sign-in connector, made on first
//! use from its stored credentials. A leaf, so the application state can hold it.

use std::sync::Arc;

use attest_config::secrets::SecretKey;
use attest_store::Store;
use tokio::sync::OnceCell;

use crate::oidc::OidcClient;

/// The sign-in client, made on first use from the sign-in connector's stored credentials (so a
/// connector added after start is picked up).
pub struct SignIn {
    store: Store,
    key: Arc<SecretKey>,
    connector: Option<String>,
    redirect_uri: String,
    client: OnceCell<OidcClient>,
}

impl SignIn {
    pub fn new(store: Store, key: Arc<SecretKey>, connector: Option<String>, public_url: &str) -> SignIn {
        SignIn { store, key, connector, redirect_uri: format!("{public_url}/auth/callback"), client: OnceCell::new() }
    }

    pub(crate) async fn client(&self) -> Result<&OidcClient, String> {
        self.client
            .get_or_try_init(|| async {
                let connectors = self.store.connectors().list_connectors().await.map_err(|e| e.to_string())?;
                // Unnamed, it is the first connector added: connecting more tenants later (a
                // subsidiary's, from the web) does not move sign-in.
                let connector = match &self.connector {
                    Some(name) => connectors.into_iter().find(|c| &c.name == name),
                    None => connectors.into_iter().min_by_key(|c| c.id),
                }
                .ok_or_else(|| match &self.connector {
                    Some(name) => format!("the sign-in connector '{name}' does not exist"),
                    None => "sign-in needs a connector: add one with `attest connector add entra`".to_owned(),
                })?;
                let credentials = attest_entra::stored::credentials(&self.store, &self.key, &connector)
                    .await
                    .map_err(|e| e.to_string())?;
                let http = crate::http_client()?;
                OidcClient::discover(
                    http,
                    &credentials.login_url,
                    &credentials.tenant_id,
                    &credentials.client_id,
                    &credentials.client_secret,
                    &self.redirect_uri,
                )
                .await
                .map(|client| client.with_certificate(credentials.certificate.clone()))
                .map_err(|e| e.to_string())
            })
            .await
    }
}
