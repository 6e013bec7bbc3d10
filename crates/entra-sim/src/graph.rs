//! Graph v1.0 read endpoints: users, groups, group members and owners.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::error::GraphError;
use crate::identity::authorize;
use crate::odata::{Collection, ListQuery};
use crate::state::Sim;
use crate::tenant::{Group, User};

pub(crate) const USERS_READ: &[&str] =
    &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
pub(crate) const GROUPS_READ: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];

pub(crate) const USERS: Collection = Collection {
    entity: "user",
    context: "users",
    properties: User::PROPERTIES,
    default_select: User::DEFAULT_PROPERTIES,
    filterable: &[
        "id",
        "displayName",
        "userPrincipalName",
        "mail",
        "accountEnabled",
        "userType",
        "department",
        "jobTitle",
        "employeeId",
        "usageLocation",
        "givenName",
        "surname",
    ],
    default_page: 100,
    max_page: 999,
    single_entity_only: User::SINGLE_ENTITY_ONLY,
    typed_items: false,
};

const GROUPS: Collection = Collection {
    entity: "group",
    context: "groups",
    properties: Group::DEFAULT_PROPERTIES,
    default_select: Group::DEFAULT_PROPERTIES,
    filterable: &[
        "id",
        "displayName",
        "mail",
        "mailEnabled",
        "mailNickname",
        "securityEnabled",
        "isAssignableToRole",
        "onPremisesSyncEnabled",
        "groupTypes",
    ],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

/// Relationship collections hold users, groups and service principals alike.
pub(crate) const DIRECTORY_OBJECTS: Collection = Collection {
    entity: "directoryObject",
    context: "directoryObjects",
    properties: &[
        "id",
        "displayName",
        "userPrincipalName",
        "mail",
        "accountEnabled",
        "userType",
        "jobTitle",
        "givenName",
        "surname",
        "appId",
        "servicePrincipalType",
        "appOwnerOrganizationId",
        "groupTypes",
        "securityEnabled",
        "mailEnabled",
    ],
    default_select: &[],
    filterable: &[],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: true,
};

pub(crate) fn eventual(headers: &HeaderMap) -> bool {
    headers.get("consistencylevel").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// What every Graph handler does first: check the token holds one of `accepted`, then read
/// the query options for `collection`. Returns the token's roles and the options.
pub(crate) fn begin(
    sim: &Sim,
    headers: &HeaderMap,
    raw: Option<&str>,
    accepted: &[&str],
    collection: &Collection,
) -> Result<(Vec<String>, ListQuery), GraphError> {
    let roles = authorize(sim, headers, accepted)?;
    let query = ListQuery::parse(raw, eventual(headers), collection)?;
    Ok((roles, query))
}

/// One page of a collection: filter, count, project, link to the next page.
///
/// `item(i)` renders the i-th object of the collection (`None` for one that is not listed,
/// such as a soft-deleted user). Only what the page needs is rendered: objects before the
/// page are skipped by position unless a filter has to look at them.
pub(crate) fn page(
    sim: &Sim,
    query: &ListQuery,
    collection: &Collection,
    path: &str,
    len: usize,
    item: impl Fn(usize) -> Option<Map<String, Value>>,
) -> Result<Json<Value>, GraphError> {
    let offset = query.offset()?;
    let size = query.page_size(collection);
    let matches = |o: &Map<String, Value>| query.filter.as_ref().is_none_or(|f| f.matches(o));
    let mut out = Map::new();
    let select_suffix = query.select.as_ref().map(|s| format!("({})", s.join(","))).unwrap_or_default();
    out.insert(
        "@odata.context".into(),
        format!("{}/v1.0/$metadata#{}{select_suffix}", sim.graph_url, collection.context).into(),
    );
    if query.wants_count() {
        out.insert("@odata.count".into(), (0..len).filter_map(&item).filter(|o| matches(o)).count().into());
    }
    let mut value = Vec::with_capacity(size);
    let mut next = None;
    for i in offset..len {
        let Some(object) = item(i) else { continue };
        if !matches(&object) {
            continue;
        }
        if value.len() == size {
            next = Some(i);
            break;
        }
        value.push(Value::Object(query.project(collection, object)));
    }
    if let Some(next) = next {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query.carried {
            link.append_pair(k, v);
        }
        link.append_pair("$skiptoken", &query.token_for(next));
        out.insert("@odata.nextLink".into(), format!("{}{path}?{}", sim.graph_url, link.finish()).into());
    }
    out.insert("value".into(), Value::Array(value));
    Ok(Json(Value::Object(out)))
}

/// A page of the directory objects named by `ids` (members, owners); objects no longer live
/// are left out, as Graph leaves out deleted members.
pub(crate) fn objects_page(
    sim: &Sim,
    t: &crate::Tenant,
    query: &ListQuery,
    path: &str,
    ids: &[String],
) -> Result<Json<Value>, GraphError> {
    // Reading a big group's members back is what a provisioner does after every write: with
    // only `id` selected (and nothing to filter on), the object is not rendered whole just to
    // be projected down to its id. The answer is the same either way.
    let ids_only =
        query.filter.is_none() && query.select.as_ref().is_some_and(|s| s.iter().all(|p| p.eq_ignore_ascii_case("id")));
    let item = |i: usize| {
        let id = ids.get(i)?;
        if ids_only {
            let kind = t.live_kind(id)?;
            let mut object = Map::new();
            object.insert("@odata.type".into(), kind.odata_type().into());
            object.insert("id".into(), id.clone().into());
            return Some(object);
        }
        t.directory_object(id).map(|(_, o)| o)
    };
    page(sim, query, &DIRECTORY_OBJECTS, path, ids.len(), item)
}

/// A single object, projected, with its `@odata.context`.
pub(crate) fn entity(sim: &Sim, query: &ListQuery, collection: &Collection, object: Map<String, Value>) -> Json<Value> {
    let mut object = query.project(collection, object);
    object.insert(
        "@odata.context".into(),
        format!("{}/v1.0/$metadata#{}/$entity", sim.graph_url, collection.context).into(),
    );
    Json(Value::Object(object))
}

/// `signInActivity` needs a premium tenant and `AuditLog.Read.All` (graph-facts §1).
pub(crate) fn check_sign_in_activity(
    sim: &Sim,
    select: Option<&Vec<String>>,
    roles: &[String],
) -> Result<(), GraphError> {
    if !select.into_iter().flatten().any(|p| p.eq_ignore_ascii_case("signInActivity")) {
        return Ok(());
    }
    if sim.read(|t| t.non_premium) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        ));
    }
    if !roles.iter().any(|r| r.eq_ignore_ascii_case("AuditLog.Read.All")) {
        return Err(GraphError::denied());
    }
    Ok(())
}

/// `GET /v1.0/users`
pub(crate) async fn list_users(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (roles, query) = begin(&sim, &headers, raw.as_deref(), USERS_READ, &USERS)?;
    check_sign_in_activity(&sim, query.select.as_ref(), &roles)?;
    sim.read(|t| {
        let item = |i: usize| t.users.get(i).filter(|u| u.deleted.is_none()).map(User::to_json);
        page(&sim, &query, &USERS, "/v1.0/users", t.users.len(), item)
    })
}

/// `GET /v1.0/users/{id | userPrincipalName}`
pub(crate) async fn get_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let roles = authorize(&sim, &headers, USERS_READ)?;
    let query = ListQuery::parse_entity(raw.as_deref(), eventual(&headers), &USERS)?;
    check_sign_in_activity(&sim, query.select.as_ref(), &roles)?;
    let user = sim.read(|t| t.live_user(&id).map(User::to_json)).ok_or_else(|| GraphError::not_found(&id))?;
    Ok(entity(&sim, &query, &USERS, user))
}

/// `GET /v1.0/groups`
pub(crate) async fn list_groups(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), GROUPS_READ, &GROUPS)?;
    sim.read(|t| {
        let item = |i: usize| t.groups.get(i).filter(|g| g.deleted.is_none()).map(Group::to_json);
        page(&sim, &query, &GROUPS, "/v1.0/groups", t.groups.len(), item)
    })
}

/// `GET /v1.0/groups/{id}`
pub(crate) async fn get_group(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), GROUPS_READ, &GROUPS)?;
    let group = sim.read(|t| t.group(&id).map(Group::to_json)).ok_or_else(|| GraphError::not_found(&id))?;
    Ok(entity(&sim, &query, &GROUPS, group))
}

async fn relationship(
    sim: Arc<Sim>,
    id: String,
    headers: HeaderMap,
    raw: Option<String>,
    relation: &'static str,
    pick: fn(&Group) -> &Vec<String>,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), GROUPS_READ, &DIRECTORY_OBJECTS)?;
    let path = format!("/v1.0/groups/{id}/{relation}");
    sim.read(|t| {
        let group = t.group(&id).ok_or_else(|| GraphError::not_found(&id))?;
        objects_page(&sim, t, &query, &path, pick(group))
    })
}

/// `GET /v1.0/groups/{id}/members`
pub(crate) async fn list_members(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    relationship(sim, id, headers, raw, "members", |g| &g.members).await
}

/// `GET /v1.0/groups/{id}/owners`
pub(crate) async fn list_owners(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    relationship(sim, id, headers, raw, "owners", |g| &g.owners).await
}
