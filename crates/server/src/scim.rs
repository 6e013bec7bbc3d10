//! The SCIM 2.0 service provider at `/scim/v2`, for Entra's provisioning service ("Tenant URL"
//! `{public_url}/scim/v2`, "Secret Token" from `attest scim token create`). The protocol is
//! `attest-scim`'s, the rows the store's `scim` area; this module authenticates the token,
//! routes (resource names case-insensitively, as clients vary), reads bodies (either media
//! type, within a size limit), and turns each request into one store transaction.
//!
//! A pushed user is an Attest account: keyed by its Entra object id when `externalId` carries
//! one (map `objectId` to `externalId` in Entra), else by its SCIM id until the person first
//! signs in with the same `userName`. `active: false` deactivates the account at once (its
//! sessions end); DELETE removes it.

use attest_scim::{GroupChange, Meta, ScimError, User};
use attest_store::{
    ScimAccount, ScimGroup, ScimGroupEdit, ScimMatch, ScimToken, ScimUser, ScimUserWrite, ScimWriteError,
};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;
use crate::roles::{Access, Guard};
use crate::session::hash;

/// The largest request body: a PATCH adding 10,000 members is about 600 KB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Attempts at a PATCH that lost a race with another write to the same user.
const PATCH_ATTEMPTS: usize = 5;

/// The tenant of accounts pushed with a token that names none.
const NO_TENANT: &str = "scim";

/// A SCIM answer: a resource, a list, nothing, or an error, as `application/scim+json`.
pub struct ScimResponse(StatusCode, Option<Value>, Option<String>);

impl ScimResponse {
    fn ok(body: Value) -> ScimResponse {
        ScimResponse(StatusCode::OK, Some(body), None)
    }

    fn created(body: Value, location: String) -> ScimResponse {
        ScimResponse(StatusCode::CREATED, Some(body), Some(location))
    }

    fn no_content() -> ScimResponse {
        ScimResponse(StatusCode::NO_CONTENT, None, None)
    }
}

impl From<ScimError> for ScimResponse {
    fn from(e: ScimError) -> ScimResponse {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        ScimResponse(status, Some(e.to_json()), None)
    }
}

impl From<attest_store::StoreError> for ScimResponse {
    fn from(e: attest_store::StoreError) -> ScimResponse {
        let reference = crate::request_id::current().unwrap_or_default();
        tracing::error!(request_id = %reference, error = %e, "a SCIM request failed");
        ScimError::new(
            500,
            None,
            format!("something went wrong on our side; it has been logged (reference {reference})"),
        )
        .into()
    }
}

impl From<ScimWriteError> for ScimResponse {
    fn from(e: ScimWriteError) -> ScimResponse {
        match e {
            ScimWriteError::Store(e) => e.into(),
            ScimWriteError::Duplicate(detail) => ScimError::uniqueness(detail).into(),
            ScimWriteError::NotFound(detail) => ScimError::not_found(detail).into(),
            ScimWriteError::UnknownMembers(detail) => ScimError::invalid_value(detail).into(),
        }
    }
}

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let ScimResponse(status, body, location) = self;
        let mut response = match body {
            Some(body) => (status, body.to_string()).into_response(),
            None => status.into_response(),
        };
        if response.status() != StatusCode::NO_CONTENT {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(attest_scim::CONTENT_TYPE));
        }
        if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The guard of the SCIM endpoint: a live bearer token from `attest scim token create`.
/// Sessions do not count. Every failure is the same 401, so nothing tells whether a token
/// exists or was revoked.
pub struct ScimClient {
    pub token: ScimToken,
}

impl ScimClient {
    /// Who the audit log names for this token's requests.
    fn actor(&self) -> String {
        format!("scim:{} (token {})", self.token.name, self.token.id)
    }
}

impl Guard for ScimClient {
    const ACCESS: Access = Access::ScimClient;
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimResponse;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimResponse> {
        let refused = || ScimResponse::from(ScimError::new(401, None, "a valid bearer token is required"));
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty() && token.len() <= 512)
            .ok_or_else(refused)?;
        let token = state.store.scim().authenticate(&hash(token), state.now()).await?.ok_or_else(refused)?;
        Ok(ScimClient { token })
    }
}

/// Every request under `/scim/v2/`.
pub async fn dispatch(
    client: ScimClient,
    State(state): State<AppState>,
    Path(rest): Path<String>,
    request: axum::extract::Request,
) -> ScimResponse {
    let (parts, body) = request.into_parts();
    let (method, headers, query) = (parts.method, parts.headers, parts.uri.query().map(str::to_owned));
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let resource = segments.first().map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    let id = segments.get(1).copied();
    if segments.len() > 2 {
        return ScimError::not_found(format!("no SCIM resource at /{rest}")).into();
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()).into_owned().collect();
    let scim = Scim { state: &state, client: &client, base: format!("{}/scim/v2", state.public_url) };
    let result = match (resource.as_str(), id, &method) {
        ("users", None, &Method::GET) => scim.list_users(&params).await,
        ("users", Some(id), &Method::GET) => scim.get_user(id, &params).await,
        ("users", None, &Method::POST) => match read_body(&headers, body).await {
            Ok(body) => scim.create_user(&body).await,
            Err(e) => Err(e),
        },
        ("users", Some(id), &Method::PUT) => match read_body(&headers, body).await {
            Ok(body) => scim.replace_user(id, &body).await,
            Err(e) => Err(e),
        },
        ("users", Some(id), &Method::PATCH) => match read_body(&headers, body).await {
            Ok(body) => scim.patch_user(id, &body).await,
            Err(e) => Err(e),
        },
        ("users", Some(id), &Method::DELETE) => scim.delete_user(id).await,
        ("groups", None, &Method::GET) => scim.list_groups(&params).await,
        ("groups", Some(id), &Method::GET) => scim.get_group(id, &params).await,
        ("groups", None, &Method::POST) => match read_body(&headers, body).await {
            Ok(body) => scim.create_group(&body).await,
            Err(e) => Err(e),
        },
        ("groups", Some(id), &Method::PUT) => match read_body(&headers, body).await {
            Ok(body) => scim.replace_group(id, &body).await,
            Err(e) => Err(e),
        },
        ("groups", Some(id), &Method::PATCH) => match read_body(&headers, body).await {
            Ok(body) => scim.patch_group(id, &body).await,
            Err(e) => Err(e),
        },
        ("groups", Some(id), &Method::DELETE) => scim.delete_group(id).await,
        ("serviceproviderconfig", None, &Method::GET) => {
            Ok(ScimResponse::ok(attest_scim::service_provider_config(&scim.base)))
        }
        ("resourcetypes", None, &Method::GET) => Ok(ScimResponse::ok(attest_scim::resource_types(&scim.base))),
        ("resourcetypes", Some(name), &Method::GET) => attest_scim::resource_type(&scim.base, name)
            .map(ScimResponse::ok)
            .ok_or_else(|| ScimError::not_found(format!("no resource type {name}")).into()),
        ("schemas", None, &Method::GET) => Ok(ScimResponse::ok(attest_scim::schemas(&scim.base))),
        ("schemas", Some(name), &Method::GET) => attest_scim::schema(&scim.base, name)
            .map(ScimResponse::ok)
            .ok_or_else(|| ScimError::not_found(format!("no schema {name}")).into()),
        ("users" | "groups" | "serviceproviderconfig" | "resourcetypes" | "schemas", _, _) => {
            Err(ScimError::new(405, None, format!("{method} is not supported here")).into())
        }
        _ => Err(ScimError::not_found(format!("no SCIM resource at /{rest}")).into()),
    };
    result.unwrap_or_else(|e| e)
}

/// The body as JSON: `application/scim+json` or `application/json` (or none said), at most
/// [`MAX_BODY_BYTES`] (413 beyond).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Value, ScimResponse> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/scim+json");
    let media = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !matches!(media.as_str(), "application/scim+json" | "application/json") {
        return Err(ScimError::new(415, None, "send application/scim+json (or application/json)").into());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ScimResponse::from(ScimError::new(
            413,
            None,
            format!("the body is larger than {} MiB", MAX_BODY_BYTES / (1024 * 1024)),
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")).into())
}

type Answer = Result<ScimResponse, ScimResponse>;

/// One request's context.
struct Scim<'a> {
    state: &'a AppState,
    client: &'a ScimClient,
    /// `{public_url}/scim/v2`.
    base: String,
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn not_found(kind: &str, id: &str) -> ScimResponse {
    ScimError::not_found(format!("{kind} {id} not found")).into()
}

/// The filter's terms as store conditions.
fn matches(filter: Option<&attest_scim::Filter>) -> Vec<ScimMatch> {
    use attest_scim::{FilterAttr, FilterValue};
    let Some(filter) = filter else { return Vec::new() };
    filter
        .terms
        .iter()
        .map(|(attr, value)| {
            let text = match value {
                FilterValue::Str(s) => s.clone(),
                FilterValue::Bool(b) => b.to_string(),
            };
            match (attr, value) {
                (FilterAttr::Active, FilterValue::Bool(b)) => ScimMatch::Active(*b),
                (FilterAttr::Active, FilterValue::Str(s)) => ScimMatch::Active(s.eq_ignore_ascii_case("true")),
                (FilterAttr::Id, _) => ScimMatch::Id(text),
                (FilterAttr::UserName, _) => ScimMatch::UserName(text),
                (FilterAttr::ExternalId, _) => ScimMatch::ExternalId(text),
                (FilterAttr::DisplayName, _) => ScimMatch::DisplayName(text),
                (FilterAttr::WorkEmail, _) => ScimMatch::WorkEmail(text),
                (FilterAttr::MembersValue, _) => ScimMatch::Member(text),
            }
        })
        .collect()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Scim<'_> {
    fn user_meta(&self, user: &ScimUser) -> Meta {
        Meta {
            created: rfc3339(user.created_at),
            last_modified: rfc3339(user.updated_at),
            location: format!("{}/Users/{}", self.base, user.id),
            version: Some(format!("W/\"{}\"", user.version)),
        }
    }

    fn group_meta(&self, group: &ScimGroup) -> Meta {
        Meta {
            created: rfc3339(group.created_at),
            last_modified: rfc3339(group.updated_at),
            location: format!("{}/Groups/{}", self.base, group.id),
            version: Some(format!("W/\"{}\"", group.version)),
        }
    }

    /// A kept user as SCIM shows it.
    fn user_json(&self, user: &ScimUser) -> Result<Value, ScimResponse> {
        Ok(self.parse_user(user)?.to_json(&user.id, &self.user_meta(user)))
    }

    fn parse_user(&self, user: &ScimUser) -> Result<User, ScimResponse> {
        let resource: Value = serde_json::from_str(&user.resource).map_err(|e| {
            ScimResponse::from(attest_store::StoreError::Internal(format!("scim user {}: {e}", user.id)))
        })?;
        User::from_json(&resource).map_err(|e| {
            ScimResponse::from(attest_store::StoreError::Internal(format!("scim user {}: {}", user.id, e.detail)))
        })
    }

    /// The account `user` is: keyed by the Entra object id its `externalId` carries, else by
    /// the synced user of the token's tenant with its `userName` as sign-in name (so the same
    /// person is one account), else by its `userName` until its owner first signs in.
    async fn account(&self, user: &User, display_name: String) -> Result<ScimAccount, ScimResponse> {
        let tenant_id = self.client.token.tenant_id.clone().unwrap_or_else(|| NO_TENANT.to_owned());
        let mut object_id = user
            .external_id
            .as_deref()
            .map(str::trim)
            .filter(|e| attest_domain::is_object_id(e))
            .map(str::to_lowercase);
        if object_id.is_none() {
            let connectors = self
                .state
                .caches
                .connectors(&self.state.store)
                .await
                .map_err(|e| ScimResponse::from(attest_store::StoreError::Internal(format!("connectors: {e}"))))?;
            for connector in connectors.iter().filter(|c| c.tenant_id.as_deref() == Some(tenant_id.as_str())) {
                if let Some(principal) = self.state.store.principals().find_user(connector.id, &user.user_name).await? {
                    object_id = Some(principal.data.external_id);
                    break;
                }
            }
        }
        Ok(ScimAccount {
            tenant_id,
            object_id: object_id.unwrap_or_else(|| format!("scim:{}", user.user_name.to_lowercase())),
            display_name,
            email: user.work_email().map(str::to_owned),
            phone: user.work_phone().map(str::to_owned),
        })
    }

    /// What the store keeps of `user`, and the account it is.
    async fn write(&self, user: &User) -> Result<ScimUserWrite, ScimResponse> {
        let display_name = user
            .display_name
            .clone()
            .or_else(|| user.name.formatted.clone())
            .or_else(|| {
                let parts: Vec<&str> =
                    [user.name.given_name.as_deref(), user.name.family_name.as_deref()].into_iter().flatten().collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
            .unwrap_or_else(|| user.user_name.clone());
        // What is kept is the resource as sent, laid out by the protocol (id and meta apart).
        let resource = user.to_json("", &Meta::default()).to_string();
        Ok(ScimUserWrite {
            user_name: user.user_name.clone(),
            external_id: user.external_id.clone(),
            display_name: user.display_name.clone(),
            work_email: user.work_email().map(str::to_owned),
            active: user.active,
            resource,
            account: self.account(user, display_name).await?,
        })
    }

    async fn list_users(&self, params: &[(String, String)]) -> Answer {
        let query = attest_scim::parse_list_query(attest_scim::Resource::Users, params)?;
        let found =
            self.state.store.scim().find_users(&matches(query.filter.as_ref()), query.start_index, query.count).await?;
        let mut resources = Vec::with_capacity(found.items.len());
        for user in &found.items {
            let json = self.user_json(user)?;
            resources.push(attest_scim::project(json, &query.attributes, &query.excluded_attributes));
        }
        Ok(ScimResponse::ok(attest_scim::list_response(resources, found.total, query.start_index)))
    }

    async fn get_user(&self, id: &str, params: &[(String, String)]) -> Answer {
        let query = attest_scim::parse_list_query(attest_scim::Resource::Users, params)?;
        let user = self.state.store.scim().get_user(id).await?.ok_or_else(|| not_found("user", id))?;
        let json = self.user_json(&user)?;
        Ok(ScimResponse::ok(attest_scim::project(json, &query.attributes, &query.excluded_attributes)))
    }

    async fn create_user(&self, body: &Value) -> Answer {
        let user = User::from_json(body)?;
        let id = new_id();
        let write = self.write(&user).await?;
        let kept = self.state.store.scim().create_user(&id, &write, &self.client.actor(), self.state.now()).await?;
        let location = format!("{}/Users/{id}", self.base);
        Ok(ScimResponse::created(self.user_json(&kept)?, location))
    }

    /// Stores `user` as user `id`'s new state (read at `version`; a change of `active` is
    /// audited with it); `None` when another write came first.
    async fn save_user(&self, current: &ScimUser, user: &User) -> Result<Option<ScimUser>, ScimResponse> {
        let write = self.write(user).await?;
        let (actor, now) = (self.client.actor(), self.state.now());
        Ok(self.state.store.scim().replace_user(&current.id, current.version, &write, &actor, now).await?)
    }

    async fn replace_user(&self, id: &str, body: &Value) -> Answer {
        let user = User::from_json(body)?;
        for _ in 0..PATCH_ATTEMPTS {
            let current = self.state.store.scim().get_user(id).await?.ok_or_else(|| not_found("user", id))?;
            if let Some(saved) = self.save_user(&current, &user).await? {
                return Ok(ScimResponse::ok(self.user_json(&saved)?));
            }
        }
        Err(ScimError::new(409, None, "the user kept changing under this request; send it again").into())
    }

    async fn patch_user(&self, id: &str, body: &Value) -> Answer {
        let patch = attest_scim::parse_patch(body)?;
        for _ in 0..PATCH_ATTEMPTS {
            let current = self.state.store.scim().get_user(id).await?.ok_or_else(|| not_found("user", id))?;
            let mut user = self.parse_user(&current)?;
            // All or nothing: the protocol applies every operation or none.
            attest_scim::apply_user_patch(&mut user, &patch)?;
            if let Some(saved) = self.save_user(&current, &user).await? {
                return Ok(ScimResponse::ok(self.user_json(&saved)?));
            }
        }
        Err(ScimError::new(409, None, "the user kept changing under this request; send it again").into())
    }

    async fn delete_user(&self, id: &str) -> Answer {
        if !self.state.store.scim().delete_user(id, &self.client.actor(), self.state.now()).await? {
            return Err(not_found("user", id));
        }
        Ok(ScimResponse::no_content())
    }

    /// Groups as SCIM shows them, with their members unless excluded.
    async fn groups_json(
        &self,
        groups: &[ScimGroup],
        query: &attest_scim::ListQuery,
    ) -> Result<Vec<Value>, ScimResponse> {
        let excluded = |name: &str| query.excluded_attributes.iter().any(|a| a.eq_ignore_ascii_case(name));
        let asked = query.attributes.is_empty()
            || query.attributes.iter().any(|a| a.to_ascii_lowercase().starts_with("members"));
        let with_members = asked && !excluded("members");
        let mut members: std::collections::HashMap<String, Vec<attest_scim::Member>> = std::collections::HashMap::new();
        if with_members {
            let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
            for (group, member) in self.state.store.scim().members(&ids).await? {
                members.entry(group).or_default().push(attest_scim::Member {
                    location: Some(format!("{}/Users/{}", self.base, member.user_id)),
                    value: member.user_id,
                    display: member.display,
                });
            }
        }
        Ok(groups
            .iter()
            .map(|g| {
                let group =
                    attest_scim::Group { display_name: g.display_name.clone(), external_id: g.external_id.clone() };
                let list = with_members.then(|| members.get(&g.id).map(Vec::as_slice).unwrap_or_default());
                let json = group.to_json(&g.id, list, &self.group_meta(g));
                attest_scim::project(json, &query.attributes, &query.excluded_attributes)
            })
            .collect())
    }

    async fn list_groups(&self, params: &[(String, String)]) -> Answer {
        let query = attest_scim::parse_list_query(attest_scim::Resource::Groups, params)?;
        let found = self
            .state
            .store
            .scim()
            .find_groups(&matches(query.filter.as_ref()), query.start_index, query.count)
            .await?;
        let resources = self.groups_json(&found.items, &query).await?;
        Ok(ScimResponse::ok(attest_scim::list_response(resources, found.total, query.start_index)))
    }

    async fn get_group(&self, id: &str, params: &[(String, String)]) -> Answer {
        let query = attest_scim::parse_list_query(attest_scim::Resource::Groups, params)?;
        let group = self.state.store.scim().get_group(id).await?.ok_or_else(|| not_found("group", id))?;
        let mut json = self.groups_json(std::slice::from_ref(&group), &query).await?;
        Ok(ScimResponse::ok(json.pop().unwrap_or_default()))
    }

    async fn create_group(&self, body: &Value) -> Answer {
        let (group, members) = attest_scim::Group::from_json(body)?;
        let id = new_id();
        let now = self.state.now();
        let actor = self.client.actor();
        let external = group.external_id.as_deref();
        let kept =
            self.state.store.scim().create_group(&id, &group.display_name, external, &members, &actor, now).await?;
        let query = attest_scim::ListQuery::default();
        let mut json = self.groups_json(std::slice::from_ref(&kept), &query).await?;
        Ok(ScimResponse::created(json.pop().unwrap_or_default(), format!("{}/Groups/{id}", self.base)))
    }

    async fn replace_group(&self, id: &str, body: &Value) -> Answer {
        let (group, members) = attest_scim::Group::from_json(body)?;
        let edits = vec![
            ScimGroupEdit::Rename(group.display_name.clone()),
            ScimGroupEdit::SetExternalId(group.external_id.clone()),
            ScimGroupEdit::Replace(members),
        ];
        let kept = self.state.store.scim().edit_group(id, &edits, &self.client.actor(), self.state.now()).await?;
        let mut json = self.groups_json(std::slice::from_ref(&kept), &attest_scim::ListQuery::default()).await?;
        Ok(ScimResponse::ok(json.pop().unwrap_or_default()))
    }

    async fn patch_group(&self, id: &str, body: &Value) -> Answer {
        let patch = attest_scim::parse_patch(body)?;
        let edits: Vec<ScimGroupEdit> = attest_scim::group_changes(&patch)?
            .into_iter()
            .map(|change| match change {
                GroupChange::SetDisplayName(name) => ScimGroupEdit::Rename(name),
                GroupChange::SetExternalId(external) => ScimGroupEdit::SetExternalId(external),
                GroupChange::AddMembers(members) => ScimGroupEdit::Add(members),
                GroupChange::RemoveMembers(members) => ScimGroupEdit::Remove(members),
                GroupChange::ReplaceMembers(members) => ScimGroupEdit::Replace(members),
                GroupChange::RemoveAllMembers => ScimGroupEdit::RemoveAll,
            })
            .collect();
        self.state.store.scim().edit_group(id, &edits, &self.client.actor(), self.state.now()).await?;
        Ok(ScimResponse::no_content())
    }

    async fn delete_group(&self, id: &str) -> Answer {
        if !self.state.store.scim().delete_group(id, &self.client.actor(), self.state.now()).await? {
            return Err(not_found("group", id));
        }
        Ok(ScimResponse::no_content())
    }
}

/// The longest token name.
const MAX_TOKEN_NAME: usize = 100;

/// Makes a token for Entra's provisioning service named `name`, provisioning people of
/// `tenant_id` (else the tenant of the first connector, the one people sign in from): the token
/// itself, shown once (only its hash is kept), and what is kept. Audited.
pub async fn create_token(
    store: &attest_store::Store,
    name: &str,
    tenant_id: Option<&str>,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(ScimToken, String), crate::error::WebError> {
    use crate::error::WebError;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
        return Err(WebError::BadRequest(format!("name: 1 to {MAX_TOKEN_NAME} characters, such as \"Entra ID\"")));
    }
    let tenant_id = match tenant_id.map(str::trim).filter(|t| !t.is_empty()) {
        Some(tenant) if attest_domain::is_object_id(tenant) => Some(tenant.to_lowercase()),
        Some(tenant) => return Err(WebError::BadRequest(format!("tenant: '{tenant}' is not a tenant id (a GUID)"))),
        None => store.connectors().list_connectors().await?.into_iter().find_map(|c| c.tenant_id),
    };
    let secret = format!("attest-scim-{}", crate::session::random_token().map_err(WebError::Internal)?);
    let token = store.scim().create_token(name, &hash(&secret), tenant_id.as_deref(), actor, now).await?;
    let draft = attest_domain::AuditEventDraft::about(
        actor,
        "scim.token_created",
        "scim_token",
        token.id,
        json!({"name": token.name, "tenant_id": token.tenant_id}),
        now,
    );
    store.audit().append_audit_event(draft).await?;
    Ok((token, secret))
}

/// Revokes token `id` at once (Entra's next request with it is refused). Audited.
pub async fn revoke_token(
    store: &attest_store::Store,
    id: i64,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ScimToken, crate::error::WebError> {
    let token = store
        .scim()
        .revoke_token(id, now)
        .await?
        .ok_or_else(|| crate::error::WebError::NotFound(format!("no SCIM token {id}")))?;
    let draft = attest_domain::AuditEventDraft::about(
        actor,
        "scim.token_revoked",
        "scim_token",
        token.id,
        json!({"name": token.name}),
        now,
    );
    store.audit().append_audit_event(draft).await?;
    Ok(token)
}
