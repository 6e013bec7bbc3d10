//! Connecting a tenant: adding a connector, inviting its integration owners, the trip to
//! Microsoft's admin-consent page and back, and the readiness check that decides where a
//! connector stands. Pages, the API, the sync scheduler and the setup job all go through here.
//!
//! Admin consent with `/.default` grants what the app registration lists, so Attest cannot
//! ask for less at consent time: least privilege is what the owner's mail and the setup page
//! ask the administrator to configure, and what the readiness check then verifies from the
//! token's `roles` (the `tenant` Microsoft returns is never trusted: a token is).

use attest_config::secrets::SecretKey;
use attest_domain::setup::{CONSENT_WINDOW, INVITATION_LIFETIME, Invitation};
use attest_domain::{Connector, ConnectorStatus, SyncMode};
use attest_entra::certificate::ClientCertificate;
use attest_entra::readiness::{self, Readiness};
use attest_entra::stored;
use attest_entra::sync::settings::Features;
use attest_entra::{EntraSettings, GraphClient, RetryPolicy};
use attest_store::{ConsentAttempt, NewConnector, Store};
use chrono::{DateTime, Utc};

use crate::AppState;
use crate::error::WebError;
use crate::session::{hash, random_token};

/// Public clouds and their Graph and sign-in addresses (graph-facts §9); `custom` takes both.
pub const CLOUDS: &[(&str, &str, &str, &str)] = &[
    ("global", "Microsoft Entra ID (global)", "https://graph.microsoft.com", "https://login.microsoftonline.com"),
    ("usgov", "US Government L4 (GCC High)", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
    ("dod", "US Government L5 (DoD)", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
    (
        "china",
        "China (operated by 21Vianet)",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
    ),
];

/// What an administrator gives to add a connector. No `Debug`: it holds a secret.
#[derive(Clone, Default, serde::Deserialize)]
pub struct NewConnection {
    pub name: String,
    /// The tenant's id, or one of its verified domains (resolved to the id).
    pub tenant: String,
    /// `global`, `usgov`, `dod`, `china`, or `custom` with `graph_url` and `login_url`.
    #[serde(default)]
    pub cloud: String,
    #[serde(default)]
    pub graph_url: String,
    #[serde(default)]
    pub login_url: String,
    pub features: Features,
    /// Integration owners: email addresses (or directory object ids).
    pub owners: Vec<String>,
    /// The credentials: those of another connector (the same multi-tenant app registration),
    /// or a client id and secret.
    pub credentials: NewCredentials,
}

/// Where a new connector's credentials come from. No `Debug`: it holds a secret.
#[derive(Clone, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewCredentials {
    /// The app registration another connector uses (its secret is copied, never shown).
    SameAs(String),
    Secret {
        client_id: String,
        client_secret: String,
    },
    /// A certificate uploaded to the registration and its private key (PEM), which Attest keeps.
    Certificate {
        client_id: String,
        certificate: String,
        private_key: String,
    },
    /// A certificate Attest generates: the key never leaves Attest, and the certificate is
    /// shown on the connector page (and returned by the API) for upload to the registration.
    Generate {
        client_id: String,
    },
}

impl Default for NewCredentials {
    fn default() -> Self {
        NewCredentials::Secret { client_id: String::new(), client_secret: String::new() }
    }
}

/// Names that would shadow a page's own address.
const RESERVED: &[&str] = &["new", "add"];

/// A connector name: 1–64 of `a-z 0-9 - _ .`, not a reserved word.
pub fn check_name(name: &str) -> Result<String, WebError> {
    let name = name.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && !RESERVED.contains(&name.as_str());
    if ok {
        Ok(name)
    } else {
        Err(WebError::BadRequest(
            "name: 1 to 64 lowercase letters, digits, dots, dashes or underscores (such as contoso-emea); not new or add"
                .into(),
        ))
    }
}

/// The Graph and sign-in base URLs of `cloud` (`custom`: as given, checked).
pub fn cloud_urls(cloud: &str, graph_url: &str, login_url: &str) -> Result<(String, String), WebError> {
    match cloud.trim() {
        "" => Ok((CLOUDS[0].2.to_owned(), CLOUDS[0].3.to_owned())),
        "custom" => {
            let mut urls = Vec::new();
            for (field, url) in [("graph_url", graph_url), ("login_url", login_url)] {
                let parsed = url::Url::parse(url.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
                    .ok_or_else(|| WebError::BadRequest(format!("{field}: not an http(s) address: {url}")))?;
                urls.push(parsed.as_str().trim_end_matches('/').to_owned());
            }
            Ok((urls[0].clone(), urls[1].clone()))
        }
        other => CLOUDS
            .iter()
            .find(|(id, ..)| *id == other)
            .map(|(_, _, graph, login)| ((*graph).to_owned(), (*login).to_owned()))
            .ok_or_else(|| WebError::BadRequest(format!("cloud '{other}': use global, usgov, dod, china or custom"))),
    }
}

/// The tenant id for `tenant`: an id as given, a verified domain through the identity
/// platform's discovery document (its issuer names the tenant id).
pub async fn resolve_tenant(login_url: &str, tenant: &str) -> Result<String, WebError> {
    let tenant = tenant.trim();
    if attest_domain::is_object_id(tenant) {
        return Ok(tenant.to_lowercase());
    }
    let domain_like = !tenant.is_empty()
        && tenant.contains('.')
        && tenant.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !domain_like {
        return Err(WebError::BadRequest(format!(
            "tenant '{tenant}': give the tenant id (a GUID) or one of its verified domains (contoso.onmicrosoft.com)"
        )));
    }
    let url = format!("{}/{tenant}/v2.0/.well-known/openid-configuration", login_url.trim_end_matches('/'));
    let http = crate::http_client().map_err(WebError::Internal)?;
    let unknown = || {
        WebError::BadRequest(format!(
            "tenant '{tenant}' is not known to {login_url}: check the domain (and the cloud), or give the tenant id"
        ))
    };
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| WebError::Unavailable(format!("cannot reach {login_url} to look up '{tenant}': {e}")))?;
    if !response.status().is_success() {
        return Err(unknown());
    }
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: String,
    }
    let discovery: Discovery = response.json().await.map_err(|_| unknown())?;
    discovery
        .issuer
        .trim_end_matches('/')
        .trim_end_matches("/v2.0")
        .rsplit('/')
        .next()
        .filter(|id| attest_domain::is_object_id(id))
        .map(str::to_lowercase)
        .ok_or_else(unknown)
}

/// The owners named: trimmed, lowercased, each an email address or an object id.
pub fn check_owners(owners: &[String]) -> Result<Vec<String>, WebError> {
    let mut checked = Vec::new();
    for owner in owners.iter().flat_map(|o| o.split([',', ';', '\n'])) {
        let owner = owner.trim().to_lowercase();
        if owner.is_empty() || checked.contains(&owner) {
            continue;
        }
        if !attest_notify::is_email_address(&owner) && !attest_domain::is_object_id(&owner) {
            return Err(WebError::BadRequest(format!(
                "owner '{owner}' is not an email address (or a directory object id)"
            )));
        }
        checked.push(owner);
    }
    Ok(checked)
}

/// Adds the connector `new` describes, invites its owners and checks it: where it stands.
pub async fn add(
    state: &AppState,
    new: &NewConnection,
    actor: &str,
    actor_email: Option<&str>,
) -> Result<(Connector, Readiness), WebError> {
    let (store, key, now) = (&state.store, state.key.as_ref(), state.now());
    let name = check_name(&new.name)?;
    let (graph_url, login_url) = cloud_urls(&new.cloud, &new.graph_url, &new.login_url)?;
    let owners = check_owners(&new.owners)?;
    // Everything is checked before the connector is stored, so a refusal leaves nothing behind.
    let credentials = resolve_credentials(store, key, &name, &new.credentials, now).await?;
    let tenant_id = resolve_tenant(&login_url, &new.tenant).await?;
    let settings = EntraSettings { graph_url, login_url, features: new.features, ..EntraSettings::default() };
    let create = NewConnector {
        tenant_id: Some(tenant_id),
        settings: settings.to_json(),
        owners: Vec::new(),
        ..NewConnector::entra(name)
    };
    let connector = store.connectors().create_connector(create, now).await.map_err(|e| match e {
        attest_store::StoreError::Conflict { what } => WebError::Conflict(format!("{what} already exists")),
        other => other.into(),
    })?;
    let sealed = credentials.seal(key, connector.id)?;
    store.connectors().set_connector_credentials(connector.id, Some(sealed), now).await?;
    for owner in &owners {
        invite(state, &connector, owner, actor, actor_email).await?;
    }
    let connector = store.connectors().get_connector(connector.id).await?;
    let report = check(store, key, &connector, actor, now).await?;
    Ok((store.connectors().get_connector(connector.id).await?, report))
}

/// A new connector's credentials, checked: what is sealed once the connector exists.
enum Checked {
    Secret { client_id: String, secret: String },
    Certificate { client_id: String, certificate: String, private_key: String },
}

impl Checked {
    fn seal(&self, key: &SecretKey, id: attest_domain::ConnectorId) -> Result<Vec<u8>, WebError> {
        match self {
            Checked::Secret { client_id, secret } => {
                stored::seal_credentials(key, id, client_id, secret).map_err(|e| WebError::Internal(e.to_string()))
            }
            Checked::Certificate { client_id, certificate, private_key } => {
                stored::seal_certificate(key, id, client_id, certificate, private_key)
                    .map_err(|e| WebError::Internal(e.to_string()))
            }
        }
    }
}

/// Checks what an administrator gave as credentials: a client id that is a GUID, a secret
/// that is not empty, a certificate whose key is its own, or a connector whose app (with a
/// secret) to share.
async fn resolve_credentials(
    store: &Store,
    key: &SecretKey,
    name: &str,
    given: &NewCredentials,
    now: DateTime<Utc>,
) -> Result<Checked, WebError> {
    let client_id = |id: &str| {
        let id = id.trim();
        if attest_domain::is_object_id(id) {
            Ok(id.to_owned())
        } else {
            Err(WebError::BadRequest("client_id: the app registration's Application (client) ID, a GUID".into()))
        }
    };
    match given {
        NewCredentials::Secret { client_id: id, client_secret } => {
            let secret = client_secret.trim();
            if secret.is_empty() {
                return Err(WebError::BadRequest("client_secret: the secret's value (not its id)".into()));
            }
            Ok(Checked::Secret { client_id: client_id(id)?, secret: secret.to_owned() })
        }
        NewCredentials::Certificate { client_id: id, certificate, private_key } => {
            attest_entra::certificate::ClientCertificate::from_pem(certificate, private_key)
                .map_err(|e| WebError::BadRequest(format!("certificate: {e}")))?;
            Ok(Checked::Certificate {
                client_id: client_id(id)?,
                certificate: certificate.clone(),
                private_key: private_key.clone(),
            })
        }
        NewCredentials::Generate { client_id: id } => {
            let client_id = client_id(id)?;
            let (certificate, private_key) = generate_certificate(name, now)?;
            Ok(Checked::Certificate { client_id, certificate: certificate.certificate_pem().to_owned(), private_key })
        }
        NewCredentials::SameAs(other) => {
            let other = other.trim();
            let source = store.connectors().find_connector_by_name(other).await?.ok_or_else(|| {
                WebError::BadRequest(format!("there is no connector named '{other}' to share an app registration with"))
            })?;
            let shared = stored::credentials(store, key, &source)
                .await
                .map_err(|e| WebError::BadRequest(format!("connector '{}': {e}", source.name)))?;
            if let Some(certificate) = &shared.certificate {
                // Its key is sealed to that connector and never opened as PEM again.
                return Err(WebError::BadRequest(format!(
                    "connector '{other}' proves itself with a certificate (thumbprint {}): give the certificate and its key again",
                    certificate.thumbprint()
                )));
            }
            Ok(Checked::Secret { client_id: shared.client_id, secret: shared.client_secret })
        }
    }
}

/// How long a certificate Attest generates is valid: two years, as Entra's longest
/// recommended secret, so rotation stays a habit.
const GENERATED_CERTIFICATE_DAYS: u32 = 730;

/// A new certificate and private key (PEM) for the connector `name`.
fn generate_certificate(name: &str, now: DateTime<Utc>) -> Result<(ClientCertificate, String), WebError> {
    ClientCertificate::generate(&format!("Attest {name}"), now.date_naive(), GENERATED_CERTIFICATE_DAYS)
        .map_err(WebError::Internal)
}

/// Starts a certificate rotation without downtime: a new key pair is generated and kept aside
/// (sealed) while the connector goes on with its current credentials; the certificate is
/// returned, to upload to the app registration before [`switch_certificate`]. A second call
/// replaces a certificate not switched to yet.
pub async fn prepare_certificate(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<ClientCertificate, WebError> {
    let current = stored::credentials(store, key, connector).await.map_err(|e| WebError::BadRequest(e.to_string()))?;
    let (certificate, private_key) = generate_certificate(&connector.name, now)?;
    let sealed =
        stored::seal_certificate(key, connector.id, &current.client_id, certificate.certificate_pem(), &private_key)
            .map_err(|e| WebError::Internal(e.to_string()))?;
    store.connectors().set_pending_credentials(connector.id, Some(sealed), now).await?;
    let details = certificate_details(&current.client_id, &certificate);
    audit_connector(store, connector, actor, "connector.certificate_generated", details, now).await?;
    Ok(certificate)
}

/// Finishes a rotation: the certificate from [`prepare_certificate`] replaces the credentials
/// only once Entra gives a token for it (so it is uploaded), then the connector is checked.
/// Refused, with Entra's reason in Attest's words, while it is not.
pub async fn switch_certificate(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Readiness, WebError> {
    let pending = stored::pending_credentials(store, key, connector)
        .await
        .map_err(|e| WebError::BadRequest(e.to_string()))?
        .ok_or_else(|| WebError::BadRequest("there is no new certificate to switch to: generate one first".into()))?;
    let certificate = pending
        .certificate
        .clone()
        .ok_or_else(|| WebError::Internal("pending credentials hold no certificate".into()))?;
    let client_id = pending.client_id.clone();
    let http = crate::http_client().map_err(WebError::Internal)?;
    let client = GraphClient::connect(http, pending, RetryPolicy::default());
    if let Err(e) = client.tokens().token().await {
        return Err(WebError::BadRequest(format!(
            "the new certificate (thumbprint {}) is not accepted yet, so the connector keeps its current credentials: {e}",
            certificate.thumbprint()
        )));
    }
    let sealed = store.connectors().find_pending_credentials(connector.id).await?;
    store.connectors().set_connector_credentials(connector.id, sealed, now).await?;
    store.connectors().set_pending_credentials(connector.id, None, now).await?;
    let details = certificate_details(&client_id, &certificate);
    audit_connector(store, connector, actor, "connector.credentials_replaced", details, now).await?;
    check(store, key, connector, actor, now).await
}

/// Forgets a certificate generated for rotation and never switched to.
pub async fn discard_certificate(
    store: &Store,
    connector: &Connector,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), WebError> {
    store.connectors().set_pending_credentials(connector.id, None, now).await?;
    audit_connector(store, connector, actor, "connector.certificate_discarded", serde_json::json!({}), now).await
}

/// Audits what was done to a connector's credentials: which app and which certificate, never a
/// secret or a key.
async fn audit_connector(
    store: &Store,
    connector: &Connector,
    actor: &str,
    action: &str,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), WebError> {
    let draft = attest_domain::AuditEventDraft::about(actor, action, "connector", connector.id.0, details, now);
    store.audit().append_audit_event(draft).await?;
    Ok(())
}

/// The audit details naming a certificate.
fn certificate_details(client_id: &str, certificate: &ClientCertificate) -> serde_json::Value {
    serde_json::json!({"client_id": client_id, "thumbprint": certificate.thumbprint()})
}

/// Replaces a connector's credentials, then checks it: a new client secret, or a new
/// certificate and its key (`certificate` not empty); the client id stays unless given.
#[allow(clippy::too_many_arguments)]
pub async fn rotate(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    client_id: &str,
    client_secret: &str,
    certificate: (&str, &str),
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Readiness, WebError> {
    let client_id = match client_id.trim() {
        "" => {
            stored::credentials(store, key, connector).await.map_err(|e| WebError::BadRequest(e.to_string()))?.client_id
        }
        id if attest_domain::is_object_id(id) => id.to_owned(),
        _ => return Err(WebError::BadRequest("client_id: the Application (client) ID, a GUID".into())),
    };
    let sealed = match (certificate, client_secret.trim()) {
        ((certificate, private_key), _) if !certificate.trim().is_empty() => {
            stored::seal_certificate(key, connector.id, &client_id, certificate, private_key)
                .map_err(|e| WebError::BadRequest(format!("certificate: {e}")))?
        }
        (_, "") => {
            return Err(WebError::BadRequest(
                "client_secret: the new secret's value (not its id), or a certificate and its private key".into(),
            ));
        }
        (_, secret) => stored::seal_credentials(key, connector.id, &client_id, secret)
            .map_err(|e| WebError::Internal(e.to_string()))?,
    };
    store.connectors().set_connector_credentials(connector.id, Some(sealed), now).await?;
    // Which app, never the secret.
    let details = serde_json::json!({"client_id": client_id});
    audit_connector(store, connector, actor, "connector.credentials_replaced", details, now).await?;
    check(store, key, connector, actor, now).await
}

/// Asks `owner` to finish `connector`'s setup: a new link, mailed at once (the mail is the
/// only place the link is kept). Returns the invitation.
pub async fn invite(
    state: &AppState,
    connector: &Connector,
    owner: &str,
    actor: &str,
    actor_email: Option<&str>,
) -> Result<Invitation, WebError> {
    let invitation =
        invite_with(&state.store, &state.outbox, &state.public_url, connector, owner, actor, actor_email, state.now())
            .await?;
    state.caches.forget_connectors().await;
    Ok(invitation)
}

/// [`invite`], outside a request (the demo seeds one).
#[allow(clippy::too_many_arguments)]
pub async fn invite_with(
    store: &Store,
    outbox: &attest_notify::Outbox,
    public_url: &str,
    connector: &Connector,
    owner: &str,
    actor: &str,
    actor_email: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Invitation, WebError> {
    let token = random_token().map_err(WebError::Internal)?;
    let invitation = store
        .setup()
        .invite(connector.id, owner, &hash(&token), actor, actor_email, now + INVITATION_LIFETIME, now)
        .await?;
    mail_invitation(store, outbox, public_url, connector, &invitation, &token, false, now).await?;
    Ok(invitation)
}

/// Runs the readiness check against the tenant and records where the connector stands (as
/// `actor`), with the report the connector page shows.
pub async fn assess(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(Readiness, ConnectorStatus), WebError> {
    let settings = EntraSettings::from_json(&connector.settings).map_err(WebError::Internal)?;
    let credentials =
        stored::credentials(store, key, connector).await.map_err(|e| WebError::BadRequest(e.to_string()))?;
    let http = crate::http_client().map_err(WebError::Internal)?;
    let client = GraphClient::connect(http, credentials, RetryPolicy::default());
    let report = readiness::check(&client).await;
    let json = serde_json::to_value(&report).map_err(|e| WebError::Internal(e.to_string()))?;
    store.setup().record_check(connector.id, &json, now).await?;
    let (status, reason) = report.status(&settings.features, connector.connected_at.is_some());
    store.setup().set_status(connector.id, status, reason.as_deref(), actor, now).await?;
    Ok((report, status))
}

/// [`assess`], and when the connector is connected but never synced, the first (full) sync is
/// asked for.
pub async fn check(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Readiness, WebError> {
    let (report, status) = assess(store, key, connector, actor, now).await?;
    if status == ConnectorStatus::Connected && connector.last_full_sync_at.is_none() {
        store.syncs().request_sync(connector.id, SyncMode::Full, actor, now).await?;
    }
    Ok(report)
}

/// The admin-consent address for `connector`, with a fresh `state` kept for the callback
/// (bound to the Attest account `user_id` and, when it came from one, the invitation).
pub async fn consent_url(
    store: &Store,
    key: &SecretKey,
    connector: &Connector,
    invitation: Option<i64>,
    user_id: i64,
    public_url: &str,
    now: DateTime<Utc>,
) -> Result<String, WebError> {
    let credentials =
        stored::credentials(store, key, connector).await.map_err(|e| WebError::BadRequest(e.to_string()))?;
    let state = random_token().map_err(WebError::Internal)?;
    let attempt = ConsentAttempt { connector_id: connector.id, invitation_id: invitation, user_id };
    store.setup().save_consent_attempt(&hash(&state), &attempt, now + CONSENT_WINDOW, now).await?;
    let mut url = url::Url::parse(&format!(
        "{}/{}/v2.0/adminconsent",
        credentials.login_url.trim_end_matches('/'),
        credentials.tenant_id
    ))
    .map_err(|e| WebError::Internal(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("client_id", &credentials.client_id)
        .append_pair("scope", &format!("{}/.default", credentials.graph_url.trim_end_matches('/')))
        .append_pair("redirect_uri", &redirect_uri(public_url))
        .append_pair("state", &state);
    Ok(url.into())
}

/// Where Microsoft sends the administrator back after consent: register it on the app.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{}/setup/callback", public_url.trim_end_matches('/'))
}

/// What a consent that Microsoft refused means, in Attest's words (only the error code and
/// AADSTS number are read: see `auth::MicrosoftError`).
pub fn consent_refusal(error: &str, description: &str) -> (&'static str, String) {
    let said = crate::auth::MicrosoftError::read(error, description);
    let (title, what) = match (error, said.aadsts.as_deref().unwrap_or_default()) {
        (_, "65004") | ("consent_required", _) => (
            "Consent was declined",
            "The administrator on Microsoft's page declined (or cancelled) the consent, so Attest has no access to the tenant. \
             When you are ready, try again and choose Accept.",
        ),
        ("access_denied", _) => (
            "Consent was cancelled",
            "Microsoft's page was left without granting consent. Try again, and sign in there as an administrator.",
        ),
        (_, "90094" | "90093" | "90008") => (
            "This account cannot grant admin consent",
            "The account used on Microsoft's page is not an administrator who may consent for the organisation. Try again \
             signed in as a Global Administrator, Privileged Role Administrator or Cloud Application Administrator.",
        ),
        (_, "50020" | "90072" | "50177") => (
            "The account is from another tenant",
            "The account used on Microsoft's page does not belong to this connector's tenant. Try again, signed in with an \
             administrator account of that tenant.",
        ),
        (_, "50011" | "700016" | "900144" | "50194") => (
            "The app registration is not set up for this",
            "Microsoft refused the request itself: check that the app registration is multi-tenant and lists this redirect \
             URI (see the administrator guide), then try again.",
        ),
        _ => (
            "Consent did not finish",
            "Microsoft did not grant consent. Try again; if it keeps failing, tell an Attest administrator.",
        ),
    };
    (title, format!("{what} ({})", said.said()))
}

/// The mail asking `invitation`'s owner to finish `connector`'s setup through `token`'s link
/// (`reminder`: the second, with a fresh link); marks it sent.
#[allow(clippy::too_many_arguments)]
pub async fn mail_invitation(
    store: &Store,
    outbox: &attest_notify::Outbox,
    public_url: &str,
    connector: &Connector,
    invitation: &Invitation,
    token: &str,
    reminder: bool,
    now: DateTime<Utc>,
) -> Result<(), WebError> {
    let to = invitation.email.clone();
    if !attest_notify::is_email_address(&to) {
        // An owner named by object id has no address to write to: the administrator passes
        // the link on (the connector page offers a new one).
        return Ok(());
    }
    let settings = EntraSettings::from_json(&connector.settings).map_err(WebError::Internal)?;
    let (read, write) = readiness::permissions(&settings.features);
    let lines = |names: Vec<&'static str>| {
        names
            .into_iter()
            .map(|name| attest_notify::PermissionLine {
                name: name.to_owned(),
                purpose: readiness::purpose(name).to_owned(),
            })
            .collect::<Vec<_>>()
    };
    let template = attest_notify::Template::ConnectorSetup {
        connector: connector.name.clone(),
        tenant: connector.tenant_id.clone().unwrap_or_default(),
        invited_by: invitation.invited_by.clone(),
        features: feature_words(&settings.features),
        read_permissions: lines(read),
        write_permissions: lines(write),
        setup_url: format!("{}/setup/{token}", public_url.trim_end_matches('/')),
        expires: invitation.expires_at.format("%-d %B %Y at %H:%M UTC").to_string(),
        reminder,
    };
    let key = format!("connector-setup:{}:{}", invitation.id, if reminder { "reminder" } else { "first" });
    outbox
        .enqueue(attest_notify::Email { key, to, template }, now)
        .await
        .map_err(|e| WebError::Unavailable(format!("the setup mail could not be queued: {e}")))?;
    if !reminder {
        store.setup().mark_invitation_mailed(invitation.id, false, now).await?;
    }
    Ok(())
}

/// What a connector set up for `features` does, in words.
pub fn feature_words(features: &Features) -> Vec<String> {
    let mut words = vec!["read users, groups, applications and roles (read-only sync)".to_owned()];
    if features.sign_in_activity {
        words.push("read sign-in activity".into());
    }
    if features.pim {
        words.push("read Privileged Identity Management eligibility".into());
    }
    if features.provisioning {
        words.push("make approved changes (provisioning)".into());
    }
    words
}
