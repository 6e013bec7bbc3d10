//! Delta queries: `/users/delta`, `/groups/delta`, `/servicePrincipals/delta` (graph-facts §2).
//!
//! A round starts without a token (everything, as it is now) or from a `deltaLink` (what the
//! journal recorded since). Every page of a round carries the journal version the round reads
//! up to, so the round's `deltaLink` continues exactly there: a change made while a client
//! pages is delivered again in the next round, never lost (replays are documented and
//! harmless). Tokens are opaque, carry the query's options, and expire after 7 days or when
//! the simulator resets sync state, answering 410 `syncStateNotFound` with a `Location`.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::GraphError;
use crate::faults::ExpireDelta;
use crate::identity::authorize;
use crate::journal::{Relation, Touched, touched};
use crate::state::Sim;
use crate::tenant::{Group, Kind, ServicePrincipal, Tenant, User};

/// [INFER] Graph does not document delta page sizes; these are the list default and a link
/// budget that makes a large group span several pages, as the docs say large groups do.
const OBJECTS_PER_PAGE: usize = 100;
const LINKS_PER_PAGE: usize = 2_000;
/// Delta tokens for directory objects are valid for 7 days (delta-query-overview.md).
const TOKEN_LIFETIME_DAYS: i64 = 7;
/// `$filter=id eq '…' or …` takes at most 50 ids (user-delta.md, group-delta.md).
const MAX_FILTER_IDS: usize = 50;

/// One delta-capable collection.
struct DeltaCollection {
    kind: Kind,
    name: &'static str,
    entity: &'static str,
    /// Plain properties a client may select (`id` is always returned).
    properties: &'static [&'static str],
    default_select: &'static [&'static str],
    /// Relationships a client may select to track them (`members@delta`...).
    relations: &'static [Relation],
    accepted: &'static [&'static str],
}

const USERS: DeltaCollection = DeltaCollection {
    kind: Kind::User,
    name: "users",
    entity: "user",
    // [UNVERIFIED] whether users/delta tracks signInActivity; served as the list serves it,
    // with the same licence and permission checks.
    properties: User::PROPERTIES,
    default_select: User::DEFAULT_PROPERTIES,
    relations: &[Relation::Manager],
    accepted: crate::graph::USERS_READ,
};

const GROUPS: DeltaCollection = DeltaCollection {
    kind: Kind::Group,
    name: "groups",
    entity: "group",
    properties: Group::DEFAULT_PROPERTIES,
    default_select: Group::DEFAULT_PROPERTIES,
    relations: &[Relation::Members, Relation::Owners],
    accepted: crate::graph::GROUPS_READ,
};

const SERVICE_PRINCIPALS: DeltaCollection = DeltaCollection {
    kind: Kind::ServicePrincipal,
    name: "servicePrincipals",
    entity: "servicePrincipal",
    properties: ServicePrincipal::DEFAULT_PROPERTIES,
    default_select: ServicePrincipal::DEFAULT_PROPERTIES,
    relations: &[Relation::Owners],
    accepted: crate::apps::APPLICATIONS_READ,
};

/// What a token remembers: the query, the round, and where the next page starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeltaState {
    /// Tenant and collection the token belongs to.
    tenant: String,
    collection: String,
    select: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    /// `None`: the initial round (everything).
    from: Option<u64>,
    /// The journal version this round reads up to.
    to: u64,
    /// When the round started (simulator clock, Unix seconds).
    issued: i64,
    position: usize,
    link: usize,
}

fn seal(state: &DeltaState) -> String {
    let payload = serde_json::to_vec(state).unwrap_or_default();
    let check = &Sha256::digest(&payload)[..6];
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(check))
}

fn unseal(token: &str) -> Option<DeltaState> {
    let (payload, check) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    if URL_SAFE_NO_PAD.decode(check).ok()? != Sha256::digest(&payload)[..6] {
        return None;
    }
    serde_json::from_slice(&payload).ok()
}

/// The request's options, before they become a [`DeltaState`].
enum Start {
    Fresh {
        select: Option<Vec<String>>,
        ids: Option<Vec<String>>,
        latest: bool,
    },
    /// A `$skiptoken` (next page of a round) or a `$deltatoken` (a new round).
    Token {
        token: String,
        new_round: bool,
    },
}

fn parse(raw: Option<&str>, collection: &DeltaCollection) -> Result<Start, GraphError> {
    let (mut select, mut ids, mut skip, mut delta) = (None, None, None, None);
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.to_lowercase().as_str() {
            "$select" => {
                let names: Vec<String> =
                    value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                for name in &names {
                    let known = collection.properties.iter().any(|p| p.eq_ignore_ascii_case(name))
                        || collection.relations.iter().any(|r| r.property().eq_ignore_ascii_case(name));
                    if !known {
                        return Err(GraphError::bad_request(format!(
                            "Could not find a property named '{name}' on type 'microsoft.graph.{}'.",
                            collection.entity
                        )));
                    }
                }
                select = Some(names);
            }
            "$filter" => ids = Some(parse_id_filter(&value)?),
            "$skiptoken" => skip = Some(value.into_owned()),
            "$deltatoken" => delta = Some(value.into_owned()),
            // Documented as unsupported on directory-object delta (graph-facts §2). [INFER] wording.
            option @ ("$expand" | "$top" | "$orderby" | "$search" | "$count" | "$skip") => {
                return Err(GraphError::unsupported_query(format!(
                    "The query option '{option}' is not supported with delta queries."
                )));
            }
            _ => {}
        }
    }
    let latest = delta.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("latest"));
    if (select.is_some() || ids.is_some()) && (skip.is_some() || (delta.is_some() && !latest)) {
        // Documented: $select with $skipToken is not supported; options travel inside the token.
        return Err(GraphError::unsupported_query(
            "Query options cannot be combined with a state token: use the nextLink or deltaLink exactly as returned.",
        ));
    }
    Ok(match (skip, delta) {
        (Some(token), _) => Start::Token { token, new_round: false },
        (None, Some(token)) if !latest => Start::Token { token, new_round: true },
        (None, _) => Start::Fresh { select, ids, latest },
    })
}

/// `id eq '…' or id eq '…'`: the only filter delta takes. Object ids are GUIDs, so the
/// whole expression can be compared in lower case.
fn parse_id_filter(text: &str) -> Result<Vec<String>, GraphError> {
    let invalid = || {
        GraphError::unsupported_query(
            "Only 'id eq' filters joined by 'or' are supported with delta queries, for at most 50 ids.",
        )
    };
    let text = text.to_lowercase();
    let ids = text
        .split(" or ")
        .map(|clause| {
            let value = clause.trim().strip_prefix("id eq '").and_then(|v| v.strip_suffix('\''));
            value.filter(|v| !v.contains('\'')).map(str::to_owned).ok_or_else(invalid)
        })
        .collect::<Result<Vec<String>, GraphError>>()?;
    if ids.len() > MAX_FILTER_IDS {
        return Err(invalid());
    }
    Ok(ids)
}

/// 410 with `syncStateNotFound` and where to start over.
fn sync_state_not_found(sim: &Sim, collection: &DeltaCollection, select: Option<&Vec<String>>) -> Response {
    // errors.md: "The delta token is expired and data must be synchronized again."
    let error = GraphError::new(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    );
    let mut location = format!("{}/v1.0/{}/delta", sim.graph_url, collection.name);
    if let Some(select) = select {
        let query =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("$select", &select.join(",")).finish();
        location = format!("{location}?{query}");
    }
    let mut response = error.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

async fn delta(
    sim: Arc<Sim>,
    headers: HeaderMap,
    raw: Option<String>,
    force_expired: bool,
    collection: &DeltaCollection,
) -> Response {
    let roles = match authorize(&sim, &headers, collection.accepted) {
        Ok(roles) => roles,
        Err(e) => return e.into_response(),
    };
    let start = match parse(raw.as_deref(), collection) {
        Ok(start) => start,
        Err(e) => return e.into_response(),
    };
    if let Start::Fresh { select, .. } = &start
        && let Err(e) = crate::graph::check_sign_in_activity(&sim, select.as_ref(), &roles)
    {
        return e.into_response();
    }
    let now = sim.now();
    let tenant_id = sim.tenant_id();
    let (version, floor) = sim.read(|t| (t.journal.version(), t.journal.floor()));
    let state = match start {
        Start::Fresh { select, ids, latest } => {
            let state = DeltaState {
                tenant: tenant_id,
                collection: collection.name.into(),
                select,
                ids,
                from: latest.then_some(version),
                to: version,
                issued: now.timestamp(),
                position: 0,
                link: 0,
            };
            if latest {
                // "Sync from now": no data, only a deltaLink.
                return respond(&sim, collection, &state, Vec::new(), None, false);
            }
            state
        }
        Start::Token { token, new_round } => {
            let Some(previous) = unseal(&token) else {
                return GraphError::bad_request(format!("The state token '{token}' is not valid for this request."))
                    .into_response();
            };
            if new_round {
                DeltaState { from: Some(previous.to), to: version, position: 0, link: 0, ..previous }
            } else {
                previous
            }
        }
    };
    if state.collection != collection.name {
        return GraphError::bad_request("The state token belongs to another collection.").into_response();
    }
    let expired = now.timestamp() - state.issued > Duration::days(TOKEN_LIFETIME_DAYS).num_seconds();
    let forgotten = state.tenant != sim.tenant_id()
        || state.from.is_some_and(|from| from < floor || from > version)
        || state.to > version;
    if expired || forgotten || force_expired {
        return sync_state_not_found(&sim, collection, state.select.as_ref());
    }
    let minimal = minimal(&headers) && state.from.is_some();
    let rendered = sim.read(|t| render_page(t, collection, &state, minimal));
    let (items, next) = match rendered {
        Some(page) => page,
        None => return sync_state_not_found(&sim, collection, state.select.as_ref()),
    };
    respond(&sim, collection, &state, items, next, minimal)
}

fn respond(
    sim: &Sim,
    collection: &DeltaCollection,
    state: &DeltaState,
    items: Vec<Value>,
    next: Option<Resume>,
    minimal: bool,
) -> Response {
    let base = format!("{}/v1.0/{}/delta", sim.graph_url, collection.name);
    let plain: Vec<&String> = state
        .select
        .iter()
        .flatten()
        .filter(|s| !collection.relations.iter().any(|r| r.property().eq_ignore_ascii_case(s)))
        .collect();
    let suffix = if state.select.is_some() {
        format!("({})", plain.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
    } else {
        String::new()
    };
    let mut out = Map::new();
    out.insert("@odata.context".into(), format!("{}/v1.0/$metadata#{}{suffix}", sim.graph_url, collection.name).into());
    match next {
        Some((position, link)) => {
            let token = seal(&DeltaState { position, link, ..state.clone() });
            out.insert("@odata.nextLink".into(), format!("{base}?$skiptoken={token}").into());
        }
        None => {
            // The next round starts where this one read up to.
            let token = seal(&DeltaState { from: Some(state.to), position: 0, link: 0, ..state.clone() });
            out.insert("@odata.deltaLink".into(), format!("{base}?$deltatoken={token}").into());
        }
    }
    out.insert("value".into(), Value::Array(items));
    let mut response = Json(Value::Object(out)).into_response();
    if minimal {
        response.headers_mut().insert("preference-applied", HeaderValue::from_static("return=minimal"));
    }
    response
}

/// Where the next page of a round starts: a position among the round's objects and, for an
/// object whose links did not fit, how many links were already sent.
type Resume = (usize, usize);

/// The objects a round walks through, by position.
enum Candidates {
    /// The initial round: every object of the collection, by its position in the tenant.
    All(usize),
    /// A later round: the objects changed in the window, in the order they changed.
    Changed(Vec<(String, Touched)>),
}

impl Candidates {
    fn len(&self) -> usize {
        match self {
            Candidates::All(n) => *n,
            Candidates::Changed(changed) => changed.len(),
        }
    }

    /// The id at `position` and what changed about it (nothing known in the initial round);
    /// `None` for a purged object in the initial round.
    fn get<'a>(&'a self, t: &'a Tenant, kind: Kind, position: usize) -> Option<(&'a str, Option<&'a Touched>)> {
        match self {
            Candidates::All(_) => {
                let id = match kind {
                    Kind::User => t.users.get(position).filter(|o| !o.purged).map(|o| &o.id),
                    Kind::Group => t.groups.get(position).filter(|o| !o.purged).map(|o| &o.id),
                    Kind::ServicePrincipal => t.service_principals.get(position).filter(|o| !o.purged).map(|o| &o.id),
                };
                id.map(|id| (id.as_str(), None))
            }
            Candidates::Changed(changed) => changed.get(position).map(|(id, touched)| (id.as_str(), Some(touched))),
        }
    }
}

/// Renders one page: the items and, when more remain, where the next page starts. `None`
/// when the journal no longer holds the round's window.
fn render_page(
    t: &Tenant,
    collection: &DeltaCollection,
    state: &DeltaState,
    minimal: bool,
) -> Option<(Vec<Value>, Option<Resume>)> {
    let selected = |name: &str| match &state.select {
        Some(select) => select.iter().any(|s| s.eq_ignore_ascii_case(name)),
        None => collection.default_select.contains(&name),
    };
    let relations: Vec<Relation> =
        collection.relations.iter().copied().filter(|r| state.select.is_some() && selected(r.property())).collect();
    let wanted = |id: &str| state.ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == id));
    let candidates = match state.from {
        None => Candidates::All(match collection.kind {
            Kind::User => t.users.len(),
            Kind::Group => t.groups.len(),
            Kind::ServicePrincipal => t.service_principals.len(),
        }),
        Some(from) => Candidates::Changed(touched(t.journal.between(from, state.to)?, collection.kind)),
    };

    let mut items = Vec::new();
    let mut links_used = 0;
    let (mut position, mut link) = (state.position, state.link);
    while position < candidates.len() && items.len() < OBJECTS_PER_PAGE && links_used < LINKS_PER_PAGE {
        let Some((id, touched)) = candidates.get(t, collection.kind, position).filter(|(id, _)| wanted(id)) else {
            (position, link) = (position + 1, 0);
            continue;
        };
        let Some(mut object) = render_object(t, collection, id) else {
            // Deleted: soft-deleted objects can be restored (`changed`), purged ones cannot.
            let reason = if t.locate(id).is_some() { "changed" } else { "deleted" };
            items.push(json!({"id": id, "@removed": {"reason": reason}}));
            (position, link) = (position + 1, 0);
            continue;
        };
        let links: Vec<(Relation, String, bool)> = match touched {
            None => current_links(t, collection.kind, id, &relations),
            Some(touched) => touched.links.iter().filter(|(r, _, _)| relations.contains(r)).cloned().collect(),
        };
        let keep: Vec<&str> = match (touched, minimal) {
            (Some(touched), true) if !touched.created => {
                touched.properties.iter().copied().filter(|p| selected(p)).collect()
            }
            _ => collection.properties.iter().copied().filter(|p| selected(p)).collect(),
        };
        if let Some(touched) = touched {
            let relevant = touched.created || !links.is_empty() || touched.properties.iter().any(|p| selected(p));
            if !relevant {
                (position, link) = (position + 1, 0);
                continue;
            }
        }
        object.retain(|k, _| k == "id" || keep.iter().any(|p| p.eq_ignore_ascii_case(k)));
        let room = LINKS_PER_PAGE - links_used;
        let chunk = &links[link.min(links.len())..(link + room).min(links.len())];
        for relation in &relations {
            let entries: Vec<Value> = chunk
                .iter()
                .filter(|(r, _, _)| r == relation)
                .map(|(_, target, added)| link_json(t, target, *added))
                .collect();
            if !entries.is_empty() {
                object.insert(format!("{}@delta", relation.property()), Value::Array(entries));
            }
        }
        links_used += chunk.len();
        items.push(Value::Object(object));
        if link + chunk.len() < links.len() {
            // A large group continues on the next page under the same id.
            link += chunk.len();
            return Some((items, Some((position, link))));
        }
        (position, link) = (position + 1, 0);
    }
    let next = (position < candidates.len()).then_some((position, link));
    Some((items, next))
}

fn render_object(t: &Tenant, collection: &DeltaCollection, id: &str) -> Option<Map<String, Value>> {
    match (collection.kind, t.locate(id)?) {
        (Kind::User, (Kind::User, i)) => t.users.get(i).filter(|o| o.deleted.is_none()).map(User::to_json),
        (Kind::Group, (Kind::Group, i)) => t.groups.get(i).filter(|o| o.deleted.is_none()).map(Group::to_json),
        (Kind::ServicePrincipal, (Kind::ServicePrincipal, i)) => {
            t.service_principals.get(i).filter(|o| o.deleted.is_none()).map(ServicePrincipal::to_json)
        }
        _ => None,
    }
}

/// An object's current links, for the initial round (live targets only).
fn current_links(t: &Tenant, kind: Kind, id: &str, relations: &[Relation]) -> Vec<(Relation, String, bool)> {
    let Some((_, i)) = t.locate(id) else { return Vec::new() };
    let mut out = Vec::new();
    for relation in relations {
        let targets: Vec<&String> = match (kind, relation) {
            (Kind::User, Relation::Manager) => t.users[i].manager.iter().collect(),
            (Kind::Group, Relation::Members) => t.groups[i].members.iter().collect(),
            (Kind::Group, Relation::Owners) => t.groups[i].owners.iter().collect(),
            (Kind::ServicePrincipal, Relation::Owners) => t.service_principals[i].owners.iter().collect(),
            _ => Vec::new(),
        };
        out.extend(targets.into_iter().filter(|m| t.is_live(m)).map(|m| (*relation, m.clone(), true)));
    }
    out
}

fn link_json(t: &Tenant, target: &str, added: bool) -> Value {
    let odata_type = t.locate(target).map(|(k, _)| k.odata_type()).unwrap_or("#microsoft.graph.directoryObject");
    if added {
        json!({"@odata.type": odata_type, "id": target})
    } else {
        json!({"@odata.type": odata_type, "id": target, "@removed": {"reason": "deleted"}})
    }
}

/// `GET /v1.0/users/delta`
pub(crate) async fn users(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    expire: Option<Extension<ExpireDelta>>,
) -> Response {
    delta(sim, headers, raw, expire.is_some(), &USERS).await
}

/// `GET /v1.0/groups/delta`
pub(crate) async fn groups(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    expire: Option<Extension<ExpireDelta>>,
) -> Response {
    delta(sim, headers, raw, expire.is_some(), &GROUPS).await
}

/// `GET /v1.0/servicePrincipals/delta`
pub(crate) async fn service_principals(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    expire: Option<Extension<ExpireDelta>>,
) -> Response {
    delta(sim, headers, raw, expire.is_some(), &SERVICE_PRINCIPALS).await
}
