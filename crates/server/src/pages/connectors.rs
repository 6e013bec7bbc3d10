//! Connectors in the web application: the list, "Add a connector" (administrators), the
//! connector page (status and why, owners and their invitations, the permission checklist
//! with "Check again", the first sync's progress, secret rotation, troubleshooting), and the
//! integration owner's setup page reached from their mail, with the trip to Microsoft's
//! admin-consent page and back. The JSON API offers the same.

use attest_domain::setup::{Follower, Invitation};
use attest_domain::{Connector, ConnectorStatus};
use attest_entra::EntraSettings;
use attest_entra::readiness;
use attest_entra::sync::settings::Features;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{page, url_encode};
use crate::AppState;
use crate::error::{ApiError, WebError};
use crate::extract::Query;
use crate::forms::{Submitted, flag, one_or_many};
use crate::roles::{Allowed, Role, Viewer, rule};
use crate::session::hash;
use crate::setup::{self, NewConnection, NewCredentials};

/// The "Add a connector" form, and `POST /api/v1/connectors`. No `Debug`: it holds a secret.
#[derive(Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub cloud: String,
    #[serde(default)]
    pub graph_url: String,
    #[serde(default)]
    pub login_url: String,
    #[serde(default, deserialize_with = "flag")]
    pub provisioning: bool,
    #[serde(default, deserialize_with = "flag")]
    pub sign_in_activity: bool,
    #[serde(default, deserialize_with = "flag")]
    pub pim: bool,
    /// Email addresses (a list, or one text with commas or lines).
    #[serde(default, deserialize_with = "one_or_many")]
    pub owners: Vec<String>,
    /// `same_as` (another connector's app registration), `secret`, `certificate` (one given)
    /// or `generate` (one Attest makes).
    #[serde(default)]
    pub credentials: String,
    #[serde(default)]
    pub same_as: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    /// With `credentials = certificate`: the certificate uploaded to the registration and its
    /// private key, PEM.
    #[serde(default)]
    pub certificate: String,
    #[serde(default)]
    pub private_key: String,
}

impl AddForm {
    fn connection(&self) -> NewConnection {
        let credentials = if self.credentials == "same_as" || (self.credentials.is_empty() && !self.same_as.is_empty())
        {
            NewCredentials::SameAs(self.same_as.clone())
        } else if self.credentials == "generate" {
            NewCredentials::Generate { client_id: self.client_id.clone() }
        } else if self.credentials == "certificate" {
            NewCredentials::Certificate {
                client_id: self.client_id.clone(),
                certificate: self.certificate.clone(),
                private_key: self.private_key.clone(),
            }
        } else {
            NewCredentials::Secret { client_id: self.client_id.clone(), client_secret: self.client_secret.clone() }
        };
        NewConnection {
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            cloud: self.cloud.clone(),
            graph_url: self.graph_url.clone(),
            login_url: self.login_url.clone(),
            features: Features {
                provisioning: self.provisioning,
                sign_in_activity: self.sign_in_activity,
                pim: self.pim,
            },
            owners: self.owners.clone(),
            credentials,
        }
    }
}

/// After a connector was added, checked or connected: this replica's scheduler looks for the
/// sync that may have been asked for at once, and roles are read afresh (an owner bound).
async fn changed(state: &AppState) {
    state.sync_wake.notify_one();
    state.caches.forget_connectors().await;
}

/// The connector named `name`, if this viewer reads it (404 otherwise: its existence is not
/// theirs to learn).
async fn readable(state: &AppState, viewer: &Viewer, name: &str) -> Result<Connector, WebError> {
    let not_found = || WebError::NotFound(format!("no connector named '{name}'"));
    let connector = state.store.connectors().find_connector_by_name(name).await?.ok_or_else(not_found)?;
    if viewer.can_read(connector.id) { Ok(connector) } else { Err(not_found()) }
}

/// The same, for a change: administrators and its owners.
async fn operable(state: &AppState, viewer: &Viewer, name: &str) -> Result<Connector, WebError> {
    let connector = readable(state, viewer, name).await?;
    if viewer.can_operate(connector.id) {
        Ok(connector)
    } else {
        Err(WebError::Forbidden("only administrators and this connector's owners manage it".into()))
    }
}

fn status_words(status: ConnectorStatus) -> &'static str {
    match status {
        ConnectorStatus::NotConnected => "not connected",
        ConnectorStatus::AwaitingConsent => "awaiting consent",
        ConnectorStatus::Connected => "connected",
        ConnectorStatus::NeedsReauthorization => "needs reauthorization",
        ConnectorStatus::Error => "error",
    }
}

fn invitation_json(invitation: &Invitation, now: chrono::DateTime<chrono::Utc>) -> Value {
    let state = if invitation.used_at.is_some() {
        "used"
    } else if now >= invitation.expires_at {
        "expired"
    } else {
        "open"
    };
    json!({
        "id": invitation.id,
        "owner": invitation.email,
        "invited_by": invitation.invited_by,
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
        "reminded_at": invitation.reminded_at,
        "used_at": invitation.used_at,
        "used_by": invitation.used_by,
        "state": state,
    })
}

/// The permission checklist of the last readiness check: per enabled feature, each permission
/// granted or missing, with what it is for.
fn checklist(report: &Value, features: &Features) -> Value {
    let enabled = features.names();
    let mut rows = Vec::new();
    for feature in report["features"].as_array().into_iter().flatten() {
        let name = feature["feature"].as_str().unwrap_or_default();
        if !enabled.contains(&name) {
            continue;
        }
        let missing: Vec<&str> =
            feature["missing_permissions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let permissions: Vec<Value> = readiness::needs(name)
            .into_iter()
            .map(|p| json!({"name": p, "granted": !missing.contains(&p), "purpose": readiness::purpose(p)}))
            .collect();
        rows.push(json!({
            "feature": name,
            "ready": feature["ready"],
            "permissions": permissions,
            "problems": feature["problems"],
        }));
    }
    json!(rows)
}

/// What the troubleshooting section knows of this connector: the changes Graph refused for a
/// missing permission (with the permission and the feature it belongs to), and the groups
/// Graph cannot change, by why.
async fn troubles(state: &AppState, connector: &Connector) -> Result<Value, WebError> {
    let filter = attest_store::ChangeFilter {
        state: Some(attest_domain::ChangeState::Failed),
        connector: Some(connector.id),
        limit: 200,
        ..Default::default()
    };
    let refused: Vec<Value> = state
        .store
        .changes()
        .list_changes(&filter)
        .await?
        .into_iter()
        // The words `attest_entra::apply` gives a 403 refusal (a change records its error as
        // text only).
        .filter(|c| c.last_error.as_deref().is_some_and(|e| e.contains("lacks the permission")))
        .take(10)
        .map(|c| {
            let permission = readiness::permission_for(c.kind.as_str());
            json!({
                "id": c.id.0,
                "description": c.action.describe(),
                "permission": permission,
                "purpose": permission.map(readiness::purpose),
            })
        })
        .collect();
    let mut elsewhere: Vec<(String, Vec<Value>)> = Vec::new();
    for (id, name, attributes) in state.store.setup().group_attributes(connector.id).await? {
        let attributes: Value = serde_json::from_str(&attributes).unwrap_or_default();
        let Some(why) =
            attest_domain::resource::group_managed_elsewhere(&attributes, &attest_domain::EntitlementKey::Member)
        else {
            continue;
        };
        let group = json!({"id": id, "name": name});
        match elsewhere.iter_mut().find(|(w, _)| w == why) {
            Some((_, groups)) => groups.push(group),
            None => elsewhere.push((why.to_owned(), vec![group])),
        }
    }
    let unmanaged: Vec<Value> = elsewhere
        .into_iter()
        .map(|(why, groups)| json!({"why": why, "count": groups.len(), "examples": groups.into_iter().take(5).collect::<Vec<_>>()}))
        .collect();
    Ok(json!({"refused_changes": refused, "unmanaged_groups": unmanaged}))
}

/// A certificate as the API and the connector page show it (public: no key).
fn certificate_json(certificate: &attest_entra::certificate::ClientCertificate) -> Value {
    json!({"thumbprint": certificate.thumbprint(), "pem": certificate.certificate_pem()})
}

/// A connector as the API and its page show it.
pub async fn detail(state: &AppState, viewer: &Viewer, connector: &Connector) -> Result<Value, WebError> {
    let store = &state.store;
    let settings = EntraSettings::from_json(&connector.settings).map_err(WebError::Internal)?;
    let now = state.now();
    let invitations = store.setup().invitations(connector.id).await?;
    let last_check = store.setup().last_check(connector.id).await?;
    let runs = store.syncs().list_sync_runs(connector.id, 1).await?;
    let requested = store.syncs().find_sync_request(connector.id).await?;
    let bound = |email: &str| invitations.iter().any(|i| i.email == email && i.used_at.is_some());
    let (read, write) = readiness::permissions(&settings.features);
    // The certificate to upload to the registration (public), when the app uses one.
    let certificate = attest_entra::stored::credentials(store, &state.key, connector)
        .await
        .ok()
        .and_then(|c| c.certificate)
        .map(|c| certificate_json(&c));
    // A certificate generated for rotation, waiting to be uploaded.
    let pending_certificate = attest_entra::stored::pending_credentials(store, &state.key, connector)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.certificate)
        .map(|c| certificate_json(&c));
    Ok(json!({
        "name": connector.name,
        "certificate": certificate,
        "pending_certificate": pending_certificate,
        "kind": connector.kind,
        "tenant_id": connector.tenant_id,
        "status": connector.status,
        "status_words": status_words(connector.status),
        "status_reason": connector.status_reason,
        "connected_at": connector.connected_at,
        "connected_by": connector.connected_by,
        "graph_url": settings.graph_url,
        "login_url": settings.login_url,
        "features": {
            "sync": true,
            "provisioning": settings.features.provisioning,
            "sign_in_activity": settings.features.sign_in_activity,
            "pim": settings.features.pim,
        },
        "feature_words": setup::feature_words(&settings.features),
        "permissions": {"read_only": read, "provisioning": write},
        "scope": settings.scope,
        "owners": connector.owners.iter().map(|o| json!({"email": o, "finished_setup": bound(o)})).collect::<Vec<_>>(),
        "invitations": invitations.iter().map(|i| invitation_json(i, now)).collect::<Vec<_>>(),
        "checked_at": last_check.as_ref().map(|(_, at)| *at),
        "checklist": last_check.as_ref().map(|(report, _)| checklist(report, &settings.features)),
        "check_problem": last_check.as_ref().and_then(|(report, _)| report["problem"].as_str().map(str::to_owned)),
        "last_sync": runs.first().map(|r| json!({
            "mode": r.mode, "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
            "principals": r.counts.principals.added, "grants": r.counts.grants.added, "error": r.error,
        })),
        "sync_requested": requested.is_some(),
        "last_full_sync_at": connector.last_full_sync_at,
        "last_delta_sync_at": connector.last_delta_sync_at,
        "can_operate": viewer.can_operate(connector.id),
        "redirect_uri": setup::redirect_uri(&state.public_url),
        "troubleshooting": troubles(state, connector).await?,
    }))
}

/// Every connector this viewer reads, as the list shows it.
async fn list_data(state: &AppState, viewer: &Viewer) -> Result<Value, WebError> {
    let connectors: Vec<Value> = state
        .store
        .connectors()
        .list_connectors()
        .await?
        .into_iter()
        .filter(|c| viewer.can_read(c.id))
        .map(|c| {
            json!({
                "name": c.name,
                "tenant_id": c.tenant_id,
                "status": c.status,
                "status_words": status_words(c.status),
                "status_reason": c.status_reason,
                "connected_at": c.connected_at,
                "owners": c.owners,
                "last_synced_at": c.last_synced_at(),
                "url": format!("/connectors/{}", url_encode(&c.name)),
            })
        })
        .collect();
    Ok(json!({"connectors": connectors, "can_add": viewer.roles.has(Role::Admin)}))
}

/// `GET /connectors`
pub async fn connectors(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
) -> Result<Html<String>, WebError> {
    let data = list_data(&state, &viewer).await?;
    page(&viewer, "connectors.html", data)
}

/// What the add form needs besides what was typed.
async fn form_page(
    state: &AppState,
    viewer: &Viewer,
    form: &AddForm,
    error: Option<String>,
) -> Result<Response, WebError> {
    let all = state.store.connectors().list_connectors().await?;
    let connectors: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
    let mut people = Vec::new();
    // The people to pick owners from: the first connector's (the sign-in tenant's).
    if let Some(first) = all.iter().min_by_key(|c| c.id) {
        for p in
            state.store.principals().list_principals(first.id, Some(attest_domain::PrincipalKind::User), 0, 500).await?
        {
            if let Some(email) = p.data.email.clone().filter(|_| p.data.account_enabled.unwrap_or(true)) {
                people.push(json!({"email": email, "name": p.data.display_name}));
            }
        }
    }
    let clouds: Vec<Value> = setup::CLOUDS
        .iter()
        .map(|(id, words, graph, login)| json!({"id": id, "words": words, "graph": graph, "login": login}))
        .collect();
    let fresh = form.name.is_empty() && error.is_none();
    let data = json!({
        "form": {
            "name": form.name, "tenant": form.tenant, "cloud": if form.cloud.is_empty() { "global" } else { form.cloud.as_str() },
            "graph_url": form.graph_url, "login_url": form.login_url,
            "provisioning": fresh || form.provisioning, "sign_in_activity": fresh || form.sign_in_activity, "pim": fresh || form.pim,
            "owners": form.owners.join(", "),
            "credentials": if form.credentials.is_empty() { if connectors.is_empty() { "secret" } else { "same_as" } } else { form.credentials.as_str() },
            "same_as": form.same_as, "client_id": form.client_id,
        },
        "connectors": connectors,
        "people": people,
        "clouds": clouds,
        "error": error,
        "redirect_uri": setup::redirect_uri(&state.public_url),
    });
    let status = if data["error"].is_null() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok((status, page(viewer, "connector_form.html", data)?).into_response())
}

/// `GET /connectors/new`
pub async fn new_connector(viewer: Allowed<rule::Admin>, State(state): State<AppState>) -> Result<Response, WebError> {
    form_page(&state, &viewer, &AddForm::default(), None).await
}

/// `POST /connectors/add`
pub async fn add(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<AddForm>,
) -> Result<Response, WebError> {
    match setup::add(&state, &form.connection(), &viewer.actor(), viewer.user().email.as_deref()).await {
        Ok((connector, _)) => {
            changed(&state).await;
            Ok(Redirect::to(&format!("/connectors/{}", url_encode(&connector.name))).into_response())
        }
        Err(e @ (WebError::BadRequest(_) | WebError::Conflict(_))) => {
            form_page(&state, &viewer, &form, Some(e.to_string())).await
        }
        Err(e) => Err(e),
    }
}

/// `GET /connectors/{name}`
pub async fn connector(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Html<String>, WebError> {
    let connector = readable(&state, &viewer, &name).await?;
    let data = detail(&state, &viewer, &connector).await?;
    page(&viewer, "connector.html", json!({"connector": data}))
}

/// `POST /connectors/{name}/check`: "Check again".
pub async fn check(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    let connector = operable(&state, &viewer, &name).await?;
    setup::check(&state.store, &state.key, &connector, &viewer.actor(), state.now()).await?;
    changed(&state).await;
    Ok(Redirect::to(&format!("/connectors/{}#checklist", url_encode(&connector.name))).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    pub owner: String,
}

/// `POST /connectors/{name}/invite`: a new setup link for an owner (named, or added).
pub async fn invite(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(form): Submitted<InviteForm>,
) -> Result<Response, WebError> {
    let connector = operable(&state, &viewer, &name).await?;
    invite_owner(&state, &viewer, &connector, &form).await?;
    Ok(Redirect::to(&format!("/connectors/{}#owners", url_encode(&connector.name))).into_response())
}

async fn invite_owner(
    state: &AppState,
    viewer: &Viewer,
    connector: &Connector,
    form: &InviteForm,
) -> Result<Invitation, WebError> {
    let owner = setup::check_owners(std::slice::from_ref(&form.owner))?
        .pop()
        .ok_or_else(|| WebError::BadRequest("owner: the email address of the owner to invite".into()))?;
    setup::invite(state, connector, &owner, &viewer.actor(), viewer.user().email.as_deref()).await
}

/// No `Debug`: it holds a secret.
#[derive(Default, Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub certificate: String,
    #[serde(default)]
    pub private_key: String,
}

/// `POST /connectors/{name}/credentials`: a new client secret or certificate (rotation), then a
/// check.
pub async fn credentials(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(form): Submitted<CredentialsForm>,
) -> Result<Response, WebError> {
    let connector = operable(&state, &viewer, &name).await?;
    let actor = viewer.actor();
    let certificate = (form.certificate.as_str(), form.private_key.as_str());
    let (id, secret) = (&form.client_id, &form.client_secret);
    setup::rotate(&state.store, &state.key, &connector, id, secret, certificate, &actor, state.now()).await?;
    changed(&state).await;
    Ok(Redirect::to(&format!("/connectors/{}#checklist", url_encode(&connector.name))).into_response())
}

/// What to do with a rotation's certificate: generate it, switch to it, or forget it.
#[derive(Clone, Copy)]
enum CertificateStep {
    Generate,
    Switch,
    Discard,
}

async fn certificate_step(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    step: CertificateStep,
) -> Result<Connector, WebError> {
    let connector = operable(state, viewer, name).await?;
    let (store, key, actor, now) = (&state.store, state.key.as_ref(), viewer.actor(), state.now());
    match step {
        CertificateStep::Generate => {
            setup::prepare_certificate(store, key, &connector, &actor, now).await?;
        }
        CertificateStep::Switch => {
            setup::switch_certificate(store, key, &connector, &actor, now).await?;
            changed(state).await;
        }
        CertificateStep::Discard => setup::discard_certificate(store, &connector, &actor, now).await?,
    }
    Ok(store.connectors().get_connector(connector.id).await?)
}

/// `POST /connectors/{name}/certificate`: rotation, step 1 (a new certificate to upload).
pub async fn generate_certificate(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    let connector = certificate_step(&state, &viewer, &name, CertificateStep::Generate).await?;
    Ok(Redirect::to(&format!("/connectors/{}#certificate", url_encode(&connector.name))).into_response())
}

/// `POST /connectors/{name}/certificate/switch`: rotation, step 2 (once uploaded).
pub async fn switch_certificate(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    let connector = certificate_step(&state, &viewer, &name, CertificateStep::Switch).await?;
    Ok(Redirect::to(&format!("/connectors/{}#checklist", url_encode(&connector.name))).into_response())
}

/// `POST /connectors/{name}/certificate/discard`
pub async fn discard_certificate(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    let connector = certificate_step(&state, &viewer, &name, CertificateStep::Discard).await?;
    Ok(Redirect::to(&format!("/connectors/{}#certificate", url_encode(&connector.name))).into_response())
}

/// `POST /api/v1/connectors/{name}/certificate`, `.../certificate/switch` and
/// `.../certificate/discard`: the connector afterwards.
async fn api_certificate_step(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    step: CertificateStep,
) -> Result<Json<Value>, ApiError> {
    let connector = certificate_step(state, viewer, name, step).await?;
    Ok(Json(detail(state, viewer, &connector).await?))
}

/// `POST /api/v1/connectors/{name}/certificate`
pub async fn api_generate_certificate(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Json<Value>, ApiError> {
    api_certificate_step(&state, &viewer, &name, CertificateStep::Generate).await
}

/// `POST /api/v1/connectors/{name}/certificate/switch`
pub async fn api_switch_certificate(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Json<Value>, ApiError> {
    api_certificate_step(&state, &viewer, &name, CertificateStep::Switch).await
}

/// `POST /api/v1/connectors/{name}/certificate/discard`
pub async fn api_discard_certificate(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Json<Value>, ApiError> {
    api_certificate_step(&state, &viewer, &name, CertificateStep::Discard).await
}

/// `GET /connectors/{name}/consent`: an owner or administrator grants (again) admin consent.
/// It only stores a fresh `state` for this session and sends them to Microsoft, as signing in
/// does.
pub async fn consent(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let connector = operable(&state, &viewer, &name).await?;
    let url = setup::consent_url(
        &state.store,
        &state.key,
        &connector,
        None,
        viewer.user().id,
        &state.public_url,
        state.now(),
    )
    .await?;
    Ok(Redirect::to(&url).into_response())
}

/// The invitation behind a setup link, for the person who followed it.
async fn invitation_for(state: &AppState, viewer: &Viewer, token: &str) -> Result<(Invitation, Connector), WebError> {
    let invitation = state
        .store
        .setup()
        .find_invitation(&hash(token))
        .await?
        .ok_or_else(|| WebError::NotFound("This setup link is not known: it may have been replaced by a newer one (see your latest mail from Attest).".into()))?;
    let user = viewer.user();
    let who = Follower { object_id: &user.object_id, email: user.email.as_deref() };
    invitation.check(who, state.now()).map_err(|refusal| WebError::Forbidden(refusal.to_string()))?;
    let connector = state.store.connectors().get_connector(invitation.connector_id).await?;
    Ok((invitation, connector))
}

/// `GET /setup/{token}`: the invited owner's setup page.
pub async fn setup_page(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Html<String>, WebError> {
    let (invitation, connector) = invitation_for(&state, &viewer, &token).await?;
    let settings = EntraSettings::from_json(&connector.settings).map_err(WebError::Internal)?;
    let (read, write) = readiness::permissions(&settings.features);
    let describe = |names: Vec<&str>| -> Vec<Value> {
        names.into_iter().map(|p| json!({"name": p, "purpose": readiness::purpose(p)})).collect()
    };
    let data = json!({
        "connector": {"name": connector.name, "tenant_id": connector.tenant_id, "status": connector.status, "status_words": status_words(connector.status)},
        "invitation": {"invited_by": invitation.invited_by, "expires_at": invitation.expires_at},
        "features": setup::feature_words(&settings.features),
        "read_permissions": describe(read),
        "write_permissions": describe(write),
        "token": token,
    });
    page(&viewer, "setup.html", data)
}

/// `GET /setup/{token}/consent`: off to Microsoft's admin-consent page.
pub async fn setup_consent(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let (invitation, connector) = invitation_for(&state, &viewer, &token).await?;
    let url = setup::consent_url(
        &state.store,
        &state.key,
        &connector,
        Some(invitation.id),
        viewer.user().id,
        &state.public_url,
        state.now(),
    )
    .await?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ConsentAnswer {
    state: Option<String>,
    admin_consent: Option<String>,
    tenant: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /setup/callback`: back from Microsoft's admin-consent page.
pub async fn callback(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Query(answer): Query<ConsentAnswer>,
) -> Result<Response, WebError> {
    let now = state.now();
    let stale = || {
        WebError::Forbidden(
            "This answer from Microsoft does not belong to a setup in progress here: it expired, was already used, or \
             was started by someone else. Start again from your setup link or the connector page."
                .into(),
        )
    };
    let returned = answer.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        WebError::BadRequest("This is not an answer from Microsoft's consent page: it carries no state.".into())
    })?;
    let attempt = state.store.setup().take_consent_attempt(&hash(returned), now).await?.ok_or_else(stale)?;
    if attempt.user_id != viewer.user().id {
        return Err(stale());
    }
    let connector = state.store.connectors().get_connector(attempt.connector_id).await?;
    let connector_url = format!("/connectors/{}", url_encode(&connector.name));
    if let Some(error) = answer.error.as_deref() {
        let (title, what) = setup::consent_refusal(error, answer.error_description.as_deref().unwrap_or_default());
        let data = json!({
            "title": title, "what": what, "connector": connector.name, "tenant": connector.tenant_id,
            "status_words": status_words(connector.status), "connector_url": connector_url,
        });
        let body = page(&viewer, "setup_result.html", data)?;
        return Ok((StatusCode::OK, body).into_response());
    }
    if !answer.admin_consent.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(WebError::BadRequest(
            "Microsoft's answer says neither that consent was granted nor why not".into(),
        ));
    }
    // Microsoft's `tenant` is not trusted: a token for the connector's tenant decides.
    let actor = viewer.actor();
    let user = viewer.user();
    if let Some(invitation) = attempt.invitation_id {
        state
            .store
            .setup()
            .finish_invitation(
                invitation,
                &user.tenant_id,
                &user.object_id,
                &actor,
                connector.tenant_id.as_deref(),
                now,
            )
            .await?;
    }
    let report = setup::check(&state.store, &state.key, &connector, &actor, now).await?;
    changed(&state).await;
    let elsewhere = answer
        .tenant
        .as_deref()
        .filter(|t| connector.tenant_id.as_deref().is_some_and(|own| !own.eq_ignore_ascii_case(t)));
    if report.signed_in && elsewhere.is_none() {
        return Ok(Redirect::to(&format!("{connector_url}#checklist")).into_response());
    }
    let what = match elsewhere {
        Some(other) => format!(
            "Microsoft reports consent in tenant {other}, not in this connector's tenant {}: sign in on Microsoft's page \
             with an administrator of the connector's tenant. {}",
            connector.tenant_id.clone().unwrap_or_default(),
            report.problem.clone().unwrap_or_default()
        ),
        None => report.problem.clone().unwrap_or_default(),
    };
    let data = json!({
        "title": "Attest still cannot sign in to the tenant", "what": what, "connector": connector.name,
        "tenant": connector.tenant_id, "status_words": status_words(connector.status), "connector_url": connector_url,
    });
    Ok((StatusCode::OK, page(&viewer, "setup_result.html", data)?).into_response())
}

// The JSON API.

/// `GET /api/v1/connectors`
pub async fn api_list(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(list_data(&state, &viewer).await?))
}

/// `POST /api/v1/connectors`
pub async fn api_add(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<AddForm>,
) -> Result<Response, ApiError> {
    let (connector, _) =
        setup::add(&state, &form.connection(), &viewer.actor(), viewer.user().email.as_deref()).await?;
    changed(&state).await;
    Ok((StatusCode::CREATED, Json(detail(&state, &viewer, &connector).await?)).into_response())
}

/// `GET /api/v1/connectors/{name}`
pub async fn api_connector(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let connector = readable(&state, &viewer, &name).await?;
    Ok(Json(detail(&state, &viewer, &connector).await?))
}

/// `POST /api/v1/connectors/{name}/check`
pub async fn api_check(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(_): Submitted<Value>,
) -> Result<Json<Value>, ApiError> {
    let connector = operable(&state, &viewer, &name).await?;
    setup::check(&state.store, &state.key, &connector, &viewer.actor(), state.now()).await?;
    changed(&state).await;
    let connector = state.store.connectors().get_connector(connector.id).await?;
    Ok(Json(detail(&state, &viewer, &connector).await?))
}

/// `POST /api/v1/connectors/{name}/invite`
pub async fn api_invite(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(form): Submitted<InviteForm>,
) -> Result<Response, ApiError> {
    let connector = operable(&state, &viewer, &name).await?;
    let invitation = invite_owner(&state, &viewer, &connector, &form).await?;
    Ok((StatusCode::CREATED, Json(invitation_json(&invitation, state.now()))).into_response())
}
