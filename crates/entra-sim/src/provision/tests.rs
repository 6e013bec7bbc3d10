//! The provisioning client against a small in-test SCIM server that records every request:
//! the request shapes of graph-facts §10, in both forms, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::*;
use crate::changes::DEFAULT_ACCESS_ROLE;
use crate::journal::Relation;
use crate::tenant::{AppRoleAssignment, Group, ServicePrincipal};
use crate::{ClientApp, SimOptions, TenantSpec, generate};

const TOKEN: &str = "s3cret-token";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
const DEPARTMENT_PATH: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";

// --- A minimal SCIM server that records what it is sent -------------------------------------

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    /// Relative to the Tenant URL (`/Users`, `/Groups/{id}`).
    path: String,
    /// The query exactly as sent.
    raw_query: String,
    query: Vec<(String, String)>,
    body: Value,
    content_type: Option<String>,
    authorization: Option<String>,
}

impl Recorded {
    fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn ops(&self) -> &Value {
        &self.body["Operations"]
    }

    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Store {
    users: Vec<Value>,
    groups: Vec<Value>,
    requests: Vec<Recorded>,
    next: u64,
    /// Finds answered empty regardless (to provoke a 409 on the create that follows).
    blind_finds: usize,
}

struct Shared {
    store: Mutex<Store>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Duration,
}

struct Recorder {
    url: String,
    shared: Arc<Shared>,
}

impl Recorder {
    async fn start() -> Recorder {
        Recorder::with_delay(Duration::ZERO).await
    }

    async fn with_delay(delay: Duration) -> Recorder {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            delay,
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/scim/v2", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Recorder { url, shared }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.store().requests.clone()
    }

    fn clear(&self) {
        self.store().requests.clear();
    }

    fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    fn user(&self, id: &str) -> Value {
        self.store().users.iter().find(|u| u["id"] == id).cloned().unwrap_or(Value::Null)
    }

    fn group(&self, id: &str) -> Value {
        self.store().groups.iter().find(|g| g["id"] == id).cloned().unwrap_or(Value::Null)
    }

    fn members(&self, id: &str) -> BTreeSet<String> {
        let group = self.group(id);
        let members = group["members"].as_array().cloned().unwrap_or_default();
        members.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect()
    }

    /// A user that already exists in the target, as Entra would have created it.
    fn seed_user(&self, id: &str, mut resource: Value) {
        resource["id"] = id.into();
        self.store().users.push(resource);
    }

    fn client(&self, form: RequestForm, scope: Scope) -> ProvisioningClient {
        let mut client = ProvisioningClient::new(attest_http::client().unwrap(), &self.url, TOKEN, form, scope);
        // One request at a time, so the request order is deterministic.
        client.concurrency = 1;
        client
    }
}

fn scim(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/scim+json")], body.to_string()).into_response()
}

fn error(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    scim(status, body)
}

fn list(resources: Vec<Value>) -> Response {
    scim(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": resources.len(),
            "Resources": resources,
            "startIndex": 1,
            "itemsPerPage": 20,
        }),
    )
}

/// `attr eq "value"` → value (the only filter Entra sends, besides `and`).
fn eq_value(filter: &str, attribute: &str) -> Option<String> {
    let rest = filter.strip_prefix(attribute)?.strip_prefix(" eq \"")?.strip_suffix('"')?;
    Some(rest.replace("\\\"", "\"").replace("\\\\", "\\"))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    let response = answer(&shared, method.as_str(), &uri, &headers, &body);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

fn answer(shared: &Shared, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let recorded = Recorded {
        method: method.to_owned(),
        path: uri.path().strip_prefix("/scim/v2").unwrap_or(uri.path()).to_owned(),
        query: url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect(),
        raw_query,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        content_type: header(header::CONTENT_TYPE),
        authorization: header(header::AUTHORIZATION),
    };
    let mut store = shared.store.lock().unwrap();
    store.requests.push(recorded.clone());
    if recorded.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return error(StatusCode::UNAUTHORIZED, "Authorization failed");
    }
    let path: Vec<&str> = recorded.path.trim_start_matches('/').split('/').collect();
    let body = recorded.body;
    match (method, path.as_slice()) {
        ("GET", ["Users"]) => {
            let user_name =
                recorded.query.iter().find(|(k, _)| k == "filter").and_then(|(_, f)| eq_value(f, "userName"));
            if store.blind_finds > 0 {
                store.blind_finds -= 1;
                return list(vec![]);
            }
            list(store.users.iter().filter(|u| u["userName"].as_str() == user_name.as_deref()).cloned().collect())
        }
        ("POST", ["Users"]) => {
            if store.users.iter().any(|u| u["userName"] == body["userName"]) {
                return error(StatusCode::CONFLICT, "userName is already taken");
            }
            store.next += 1;
            let mut user = body;
            user["id"] = format!("user-{}", store.next).into();
            store.users.push(user.clone());
            scim(StatusCode::CREATED, user)
        }
        ("PATCH", ["Users", id]) => {
            let Some(user) = store.users.iter_mut().find(|u| u["id"] == *id) else {
                return error(StatusCode::NOT_FOUND, "no such user");
            };
            for op in body["Operations"].as_array().cloned().unwrap_or_default() {
                apply_user_op(user, &op);
            }
            scim(StatusCode::OK, user.clone())
        }
        ("DELETE", ["Users", id]) => {
            let before = store.users.len();
            store.users.retain(|u| u["id"] != *id);
            if store.users.len() == before {
                return error(StatusCode::NOT_FOUND, "no such user");
            }
            for group in &mut store.groups {
                if let Some(members) = group["members"].as_array_mut() {
                    members.retain(|m| m["value"] != *id);
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["Groups"]) => {
            let name = recorded.query.iter().find(|(k, _)| k == "filter").and_then(|(_, f)| eq_value(f, "displayName"));
            let found = store.groups.iter().filter(|g| g["displayName"].as_str() == name.as_deref());
            list(
                found
                    .map(|g| {
                        let mut g = g.clone();
                        g.as_object_mut().unwrap().remove("members");
                        g
                    })
                    .collect(),
            )
        }
        ("POST", ["Groups"]) => {
            if store.groups.iter().any(|g| g["displayName"] == body["displayName"]) {
                return error(StatusCode::CONFLICT, "displayName is already taken");
            }
            store.next += 1;
            let mut group = body;
            group["id"] = format!("group-{}", store.next).into();
            if group.get("members").is_none() {
                group["members"] = json!([]);
            }
            store.groups.push(group.clone());
            scim(StatusCode::CREATED, group)
        }
        ("PATCH", ["Groups", id]) => {
            let Some(group) = store.groups.iter_mut().find(|g| g["id"] == *id) else {
                return error(StatusCode::NOT_FOUND, "no such group");
            };
            for op in body["Operations"].as_array().cloned().unwrap_or_default() {
                apply_group_op(group, &op);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("DELETE", ["Groups", id]) => {
            store.groups.retain(|g| g["id"] != *id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// Applies one PATCH op to a stored user, both forms (op names case-insensitively).
fn apply_user_op(user: &mut Value, op: &Value) {
    let remove = op["op"].as_str().unwrap().eq_ignore_ascii_case("remove");
    match op["path"].as_str() {
        None => {
            for (path, value) in op["value"].as_object().unwrap() {
                set_user_path(user, path, Some(value));
            }
        }
        Some(path) => set_user_path(user, path, (!remove).then_some(&op["value"])),
    }
}

fn set_user_path(user: &mut Value, path: &str, value: Option<&Value>) {
    let object = |v: &mut Value| v.as_object_mut().map(std::mem::take).unwrap_or_default();
    if path == "active" {
        let active = match value {
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Some(v) => v.as_bool().unwrap(),
            None => true,
        };
        user["active"] = active.into();
    } else if path == "emails[type eq \"work\"].value" {
        user["emails"] = value.map_or(json!([]), |v| json!([{"primary": true, "type": "work", "value": v}]));
    } else if let Some(key) = path.strip_prefix(&format!("{ENTERPRISE}:")) {
        let mut enterprise = object(&mut user[ENTERPRISE]);
        match value {
            Some(v) if key == "manager" => enterprise.insert(key.into(), json!({"value": v})),
            Some(v) => enterprise.insert(key.into(), v.clone()),
            None => enterprise.remove(key),
        };
        user[ENTERPRISE] = enterprise.into();
    } else if let Some((outer, inner)) = path.split_once('.') {
        let mut complex = object(&mut user[outer]);
        match value {
            Some(v) => complex.insert(inner.into(), v.clone()),
            None => complex.remove(inner),
        };
        user[outer] = complex.into();
    } else {
        match value {
            Some(v) => user[path] = v.clone(),
            None => {
                user.as_object_mut().unwrap().remove(path);
            }
        }
    }
}

fn apply_group_op(group: &mut Value, op: &Value) {
    let name = op["op"].as_str().unwrap().to_ascii_lowercase();
    let path = op["path"].as_str().unwrap_or_default();
    let members = group["members"].as_array_mut().unwrap();
    if path == "displayName" {
        group["displayName"] = op["value"].clone();
    } else if path == "members" && name == "add" {
        for member in op["value"].as_array().unwrap() {
            if !members.iter().any(|m| m["value"] == member["value"]) {
                members.push(json!({"value": member["value"]}));
            }
        }
    } else if path == "members" && name == "remove" {
        let gone: Vec<&Value> = op["value"].as_array().unwrap().iter().map(|m| &m["value"]).collect();
        members.retain(|m| !gone.contains(&&m["value"]));
    } else if let Some(id) = path.strip_prefix("members[value eq \"").and_then(|p| p.strip_suffix("\"]")) {
        assert_eq!(name, "remove", "{op}");
        members.retain(|m| m["value"] != id);
    } else {
        panic!("unexpected group op {op}");
    }
}

// --- A small tenant --------------------------------------------------------------------------

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn person(id: &str, given: &str, surname: &str, title: &str, department: &str, n: u32) -> User {
    let upn = format!("{}@contoso.com", given.to_ascii_lowercase());
    User {
        id: id.into(),
        display_name: format!("{given} {surname}"),
        given_name: Some(given.into()),
        surname: Some(surname.into()),
        user_principal_name: upn.clone(),
        mail: Some(upn),
        business_phones: Vec::new(),
        mobile_phone: None,
        job_title: Some(title.into()),
        department: Some(department.into()),
        office_location: None,
        usage_location: Some("GB".into()),
        employee_id: Some(format!("E{n}")),
        account_enabled: true,
        user_type: "Member".into(),
        created: at(),
        manager: None,
        sign_in_activity: None,
        password_changed: None,
        force_change_password_next_sign_in: false,
        sign_in_sessions_valid_from: None,
        deleted: None,
        purged: false,
    }
}

fn group(id: &str, name: &str, members: &[&str]) -> Group {
    Group {
        id: id.into(),
        display_name: name.into(),
        description: None,
        group_types: vec![],
        mail_enabled: false,
        security_enabled: true,
        is_assignable_to_role: None,
        membership_rule: None,
        on_premises_sync_enabled: None,
        mail: None,
        mail_nickname: name.to_ascii_lowercase(),
        created: at(),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        owners: vec![],
        deleted: None,
        purged: false,
    }
}

fn assignment(id: &str, principal: &str, kind: &str) -> AppRoleAssignment {
    AppRoleAssignment {
        id: id.into(),
        app_role_id: DEFAULT_ACCESS_ROLE.into(),
        principal_id: principal.into(),
        principal_type: kind.into(),
        principal_display_name: principal.into(),
        resource_id: "sp-app".into(),
        resource_display_name: "HR App".into(),
        created: at(),
    }
}

/// Ada (manages Alan), Alan, Grace (disabled), Linus (soft-deleted), Ken. "Engineering" holds
/// all five and the nested "Operations" (Ken). "HR App" has Ada and "Operations" assigned.
fn sim() -> Sim {
    let mut alan = person("u-alan", "Alan", "Turing", "Analyst", "Research", 2);
    alan.manager = Some("u-ada".into());
    let mut grace = person("u-grace", "Grace", "Hopper", "Admiral", "Navy", 3);
    grace.account_enabled = false;
    let mut linus = person("u-linus", "Linus", "Torvalds", "Maintainer", "Kernel", 4);
    linus.deleted = Some(at());
    let mut ada = person("u-ada", "Ada", "Lovelace", "Engineer", "Research", 1);
    ada.business_phones = vec!["+44 20 7946 0001".into()];
    let users = vec![ada, alan, grace, linus, person("u-ken", "Ken", "Thompson", "Hacker", "Unix", 5)];
    let groups = vec![
        group("g-eng", "Engineering", &["u-ada", "u-alan", "g-ops", "u-grace", "u-linus", "u-ken"]),
        group("g-ops", "Operations", &["u-ken"]),
        group("g-tmp", "Temporary", &["u-ada"]),
    ];
    let app = ServicePrincipal {
        id: "sp-app".into(),
        app_id: "app-hr".into(),
        display_name: "HR App".into(),
        service_principal_type: "Application".into(),
        app_owner_organization_id: Some("tenant".into()),
        account_enabled: true,
        app_role_assignment_required: true,
        tags: vec![],
        app_roles: vec![],
        owners: vec![],
        created: at(),
        deleted: None,
        purged: false,
    };
    let mut tenant = Tenant {
        id: "tenant".into(),
        domain: "contoso.com".into(),
        display_name: "Contoso".into(),
        users,
        groups,
        service_principals: vec![app],
        app_role_assignments: vec![assignment("a-ada", "u-ada", "User"), assignment("a-ops", "g-ops", "Group")],
        ..Tenant::default()
    };
    tenant.reindex();
    Sim::new(tenant, ClientApp::attest(1), "http://sim.invalid".into(), SimOptions::default())
}

/// Ada's create request, written out as Entra sends it (graph-facts §10, request 2).
fn ada_create_body() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "ada",
        "userName": "ada@contoso.com",
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": "ada@contoso.com"}],
        "phoneNumbers": [{"type": "work", "value": "+44 20 7946 0001"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
        "displayName": "Ada Lovelace",
        "title": "Engineer",
        "roles": [],
        ENTERPRISE: {"department": "Research", "employeeNumber": "E1"},
    })
}

/// Grace as an earlier provisioning left her in the target: active (she is disabled in Entra).
fn seed_grace(recorder: &Recorder) {
    recorder.seed_user(
        "pre-grace",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "externalId": "grace",
            "userName": "grace@contoso.com",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "grace@contoso.com"}],
            "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
            "displayName": "Grace Hopper",
            "title": "Admiral",
            ENTERPRISE: {"department": "Navy", "employeeNumber": "E3"},
        }),
    );
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn find<'a>(requests: &'a [Recorded], line: &str) -> &'a Recorded {
    requests.iter().find(|r| r.line() == line).unwrap_or_else(|| panic!("no {line} in {requests:#?}"))
}

// --- Tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn test_connection_asks_for_a_random_user_that_does_not_exist() {
    let recorder = Recorder::start().await;
    let client = recorder.client(RequestForm::Default, Scope::AllUsersAndGroups);
    client.test_connection().await.unwrap();
    client.test_connection().await.unwrap();
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2);
    let mut guids = Vec::new();
    for request in &requests {
        assert_eq!(request.line(), "GET /Users");
        assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        let guid = eq_value(request.query("filter").unwrap(), "userName").unwrap();
        uuid::Uuid::parse_str(&guid).unwrap();
        assert!(request.raw_query.starts_with("filter=userName+eq+%22"), "{}", request.raw_query);
        guids.push(guid);
    }
    assert_ne!(guids[0], guids[1], "a fresh GUID each time");

    let wrong = ProvisioningClient::new(
        attest_http::client().unwrap(),
        &recorder.url,
        "wrong",
        RequestForm::Default,
        Scope::AllUsersAndGroups,
    );
    let refused = wrong.test_connection().await.unwrap_err();
    assert!(refused.contains("invalid credentials") && refused.contains("401"), "{refused}");

    let nowhere = ProvisioningClient::new(
        attest_http::client().unwrap(),
        "http://127.0.0.1:1/scim",
        TOKEN,
        RequestForm::Default,
        Scope::AllUsersAndGroups,
    );
    assert!(nowhere.test_connection().await.unwrap_err().contains("could not reach"));
}

#[tokio::test]
async fn initial_cycle_in_the_default_form() {
    let recorder = Recorder::start().await;
    seed_grace(&recorder);
    let sim = sim();
    let mut client = recorder.client(RequestForm::Default, Scope::AllUsersAndGroups);
    client.batch_size = 2;
    let report = client.initial_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let t = |id: &str| client.target_id(id).unwrap().to_owned();
    let (ada, alan, ken, eng, ops) = (t("u-ada"), t("u-alan"), t("u-ken"), t("g-eng"), t("g-ops"));
    assert_eq!(t("u-grace"), "pre-grace", "matched, not created");
    assert_eq!(client.target_id("u-linus"), None, "soft-deleted and absent: not created");
    assert_eq!(
        recorder.lines(),
        [
            "GET /Users".to_owned(), // Ada: find, then create
            "POST /Users".into(),
            "GET /Users".into(), // Alan
            "POST /Users".into(),
            "GET /Users".into(), // Grace: found, disabled
            "PATCH /Users/pre-grace".into(),
            "GET /Users".into(), // Linus: soft-deleted, not there: skipped
            "GET /Users".into(), // Ken
            "POST /Users".into(),
            format!("PATCH /Users/{alan}"), // Alan's manager, once Ada exists
            "GET /Groups".into(),
            "POST /Groups".into(),
            "GET /Groups".into(),
            "POST /Groups".into(),
            "GET /Groups".into(),
            "POST /Groups".into(),
            format!("PATCH /Groups/{eng}"),
            format!("PATCH /Groups/{eng}"),
            format!("PATCH /Groups/{ops}"),
            format!("PATCH /Groups/{}", t("g-tmp")),
        ]
    );
    let requests = recorder.requests();
    let user_names: Vec<String> =
        requests.iter().filter(|r| r.line() == "GET /Users").map(|r| r.query("filter").unwrap().to_owned()).collect();
    assert_eq!(
        user_names,
        [
            "userName eq \"ada@contoso.com\"",
            "userName eq \"alan@contoso.com\"",
            "userName eq \"grace@contoso.com\"",
            "userName eq \"linus@contoso.com\"",
            "userName eq \"ken@contoso.com\""
        ]
    );
    assert_eq!(requests[1].body, ada_create_body());
    assert_eq!(requests[1].content_type.as_deref(), Some("application/scim+json"));
    assert!(requests.iter().all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));
    // Disabled in Entra: the default job's string "False".
    assert_eq!(requests[5].body, patch(json!([{"op": "Replace", "path": "active", "value": "False"}])));
    assert_eq!(requests[9].body, patch(json!([{"op": "Add", "path": MANAGER, "value": ada}])));
    // Groups: found by displayName without members, then created empty.
    assert_eq!(
        requests[10].query,
        [
            ("excludedAttributes".to_owned(), "members".to_owned()),
            ("filter".into(), "displayName eq \"Engineering\"".into())
        ]
    );
    assert_eq!(
        requests[11].body,
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:Group",
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
            ],
            "externalId": "g-eng",
            "displayName": "Engineering",
            "meta": {"resourceType": "Group"},
        })
    );
    // Members: provisioned users only (not soft-deleted Linus, not the nested group), at most
    // two per PATCH.
    let member = |id: &str| json!({"$ref": null, "value": id});
    assert_eq!(
        requests[16].body,
        patch(json!([{"op": "Add", "path": "members", "value": [member(&ada), member(&alan)]}]))
    );
    assert_eq!(
        requests[17].body,
        patch(json!([{"op": "Add", "path": "members", "value": [member("pre-grace"), member(&ken)]}]))
    );
    assert_eq!(requests[18].body, patch(json!([{"op": "Add", "path": "members", "value": [member(&ken)]}])));
    assert_eq!(recorder.members(&eng), BTreeSet::from([ada.clone(), alan.clone(), "pre-grace".into(), ken.clone()]));
    assert_eq!(recorder.user("pre-grace")["active"], false);
    assert_eq!(recorder.user(&alan)[ENTERPRISE]["manager"]["value"], ada.as_str());

    assert_eq!((report.created_users, report.updated_users, report.disabled_users, report.deleted_users), (3, 0, 1, 0));
    assert_eq!((report.created_groups, report.member_adds, report.member_removes), (3, 6, 0));
    assert_eq!(report.requests, requests.len() as u64);
    assert_eq!(report.latencies_ms.len(), requests.len());
    assert!(report.latency_percentile_ms(0.99).unwrap() >= report.latency_percentile_ms(0.5).unwrap());
    assert!(report.to_string().starts_with("3 users created, 0 updated, 1 disabled, 0 deleted; 3 groups created"));

    // Nothing changed: nothing is sent.
    recorder.clear();
    let report = client.incremental_cycle(&sim).await;
    assert_eq!((report.requests, recorder.requests().len()), (0, 0), "{report}");
}

#[tokio::test]
async fn initial_cycle_in_the_compliant_form() {
    let recorder = Recorder::start().await;
    seed_grace(&recorder);
    let sim = sim();
    // The flag on the Tenant URL selects the form, and is not sent on.
    let url = format!("{}/?{COMPLIANCE_FLAG}", recorder.url);
    let mut client = ProvisioningClient::new(
        attest_http::client().unwrap(),
        &url,
        TOKEN,
        RequestForm::Default,
        Scope::AllUsersAndGroups,
    );
    client.concurrency = 1;
    assert_eq!(client.form(), RequestForm::Compliant);
    let report = client.initial_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let requests = recorder.requests();
    assert!(requests.iter().all(|r| !r.raw_query.contains(COMPLIANCE_FLAG)));
    assert_eq!(find(&requests, "POST /Users").body, ada_create_body(), "creates are the same in both forms");
    assert_eq!(
        find(&requests, "PATCH /Users/pre-grace").body,
        patch(json!([{"op": "replace", "path": "active", "value": false}]))
    );
    let (ada, alan) = (client.target_id("u-ada").unwrap(), client.target_id("u-alan").unwrap());
    assert_eq!(
        find(&requests, &format!("PATCH /Users/{alan}")).body,
        patch(json!([{"op": "add", "path": MANAGER, "value": ada}]))
    );
    let eng = client.target_id("g-eng").unwrap();
    let adds = find(&requests, &format!("PATCH /Groups/{eng}"));
    assert_eq!(adds.ops()[0]["op"], "add");
    assert_eq!(adds.ops()[0]["path"], "members");
    assert_eq!(adds.ops()[0]["value"].as_array().unwrap().len(), 4, "one PATCH of up to 100");
    assert_eq!(report.disabled_users, 1);
}

/// Initial cycle, then: Ada's department and job title change (and, in the compliant run, her
/// mail), Alan is disabled, Grace re-enabled, Ken hard-deleted, Alan leaves Engineering,
/// Operations is renamed and Temporary deleted.
async fn incremental(form: RequestForm) -> (Recorder, ProvisioningClient, Vec<Recorded>, CycleReport) {
    let recorder = Recorder::start().await;
    seed_grace(&recorder);
    let sim = sim();
    let mut client = recorder.client(form, Scope::AllUsersAndGroups);
    let report = client.initial_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    recorder.clear();
    sim.write(|t| {
        t.update_user("u-ada", |u| {
            u.department = Some("Compilers".into());
            u.job_title = Some("Principal Engineer".into());
            if form == RequestForm::Compliant {
                u.mail = Some("ada.l@contoso.com".into());
                u.business_phones = vec!["+44 20 7946 0100".into()];
            } else {
                u.mobile_phone = Some("+44 7700 900001".into());
            }
            vec!["department", "jobTitle", "mail", "businessPhones", "mobilePhone"]
        })
        .unwrap();
        t.update_user("u-alan", |u| {
            u.account_enabled = false;
            vec!["accountEnabled"]
        })
        .unwrap();
        t.update_user("u-grace", |u| {
            u.account_enabled = true;
            vec!["accountEnabled"]
        })
        .unwrap();
        t.delete_user("u-ken", at()).unwrap();
        t.purge("u-ken", at());
        t.remove_group_link("g-eng", Relation::Members, "u-alan").unwrap();
        t.update_group("g-ops", |g| {
            g.display_name = "Platform Ops".into();
            vec!["displayName"]
        })
        .unwrap();
        t.delete_group("g-tmp", at()).unwrap();
    });
    let ken = client.target_id("u-ken").unwrap().to_owned();
    let tmp = client.target_id("g-tmp").unwrap().to_owned();
    let report = client.incremental_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let t = |id: &str| client.target_id(id).unwrap().to_owned();
    assert_eq!(
        recorder.lines(),
        [
            format!("PATCH /Users/{}", t("u-ada")),
            format!("PATCH /Users/{}", t("u-alan")),
            "PATCH /Users/pre-grace".into(),
            format!("DELETE /Users/{ken}"),
            format!("PATCH /Groups/{}", t("g-ops")),
            format!("DELETE /Groups/{tmp}"),
            format!("PATCH /Groups/{}", t("g-eng")),
        ],
        "only what changed, and no finds"
    );
    assert_eq!(client.target_id("u-ken"), None);
    assert_eq!(client.target_id("g-tmp"), None);
    assert_eq!(recorder.user(&ken), Value::Null);
    assert_eq!(recorder.members(&t("g-eng")), BTreeSet::from([t("u-ada"), "pre-grace".to_owned()]));
    assert_eq!(recorder.group(&t("g-ops"))["displayName"], "Platform Ops");
    assert_eq!(recorder.user(&t("u-ada"))[ENTERPRISE]["department"], "Compilers");
    assert_eq!(recorder.user(&t("u-alan"))["active"], false);
    assert_eq!(recorder.user("pre-grace")["active"], true);
    assert_eq!(
        (report.updated_users, report.disabled_users, report.deleted_users),
        (2, 1, 1),
        "Ada and Grace updated, Alan disabled, Ken deleted"
    );
    assert_eq!((report.updated_groups, report.deleted_groups, report.member_removes), (1, 1, 1));
    let requests = recorder.requests();
    recorder.clear();
    let quiet = client.incremental_cycle(&sim).await;
    assert_eq!(quiet.requests, 0, "{:?}", recorder.lines());
    (recorder, client, requests, report)
}

#[tokio::test]
async fn incremental_cycle_in_the_default_form() {
    let (_recorder, client, requests, _) = incremental(RequestForm::Default).await;
    let t = |id: &str| client.target_id(id).unwrap().to_owned();
    assert_eq!(
        requests[0].body,
        patch(json!([
            {"op": "Replace", "path": "title", "value": "Principal Engineer"},
            {"op": "Replace", "path": DEPARTMENT_PATH, "value": "Compilers"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+44 7700 900001"},
        ]))
    );
    assert_eq!(requests[1].body, patch(json!([{"op": "Replace", "path": "active", "value": "False"}])));
    assert_eq!(requests[2].body, patch(json!([{"op": "Replace", "path": "active", "value": "True"}])));
    assert_eq!(requests[3].body, Value::Null, "DELETE has no body");
    assert_eq!(requests[4].body, patch(json!([{"op": "Replace", "path": "displayName", "value": "Platform Ops"}])));
    assert_eq!(
        requests[6].body,
        patch(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": t("u-alan")}]}]))
    );
}

#[tokio::test]
async fn incremental_cycle_in_the_compliant_form() {
    let (_recorder, client, requests, _) = incremental(RequestForm::Compliant).await;
    let t = |id: &str| client.target_id(id).unwrap().to_owned();
    assert_eq!(
        requests[0].body,
        patch(json!([
            {"op": "replace", "value": {"title": "Principal Engineer", DEPARTMENT_PATH: "Compilers"}},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@contoso.com"},
            {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+44 20 7946 0100"},
        ]))
    );
    assert_eq!(requests[1].body, patch(json!([{"op": "replace", "path": "active", "value": false}])));
    assert_eq!(requests[2].body, patch(json!([{"op": "replace", "path": "active", "value": true}])));
    assert_eq!(requests[4].body, patch(json!([{"op": "replace", "path": "displayName", "value": "Platform Ops"}])));
    assert_eq!(
        requests[6].body,
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", t("u-alan"))}]))
    );
}

#[tokio::test]
async fn a_401_stops_the_cycle() {
    let recorder = Recorder::start().await;
    let sim = sim();
    let mut client = ProvisioningClient::new(
        attest_http::client().unwrap(),
        &recorder.url,
        "expired",
        RequestForm::Default,
        Scope::AllUsersAndGroups,
    );
    client.concurrency = 1;
    let report = client.initial_cycle(&sim).await;
    assert_eq!(report.requests, 1, "nothing after the refusal");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].contains("HTTP 401") && report.errors[0].contains("invalid credentials"));
    assert_eq!(recorder.lines(), ["GET /Users"]);

    // In parallel, only what was already in flight goes out.
    recorder.clear();
    client.concurrency = 3;
    let report = client.initial_cycle(&sim).await;
    assert!(report.requests <= 3 && report.created_users == 0, "{report}");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
}

#[tokio::test]
async fn provision_on_demand_sends_one_user_in_the_default_form() {
    let recorder = Recorder::start().await;
    seed_grace(&recorder);
    let sim = sim();
    // The compliance flag does not apply on demand.
    let mut client = recorder.client(RequestForm::Compliant, Scope::AllUsersAndGroups);
    let report = client.provision_on_demand(&sim, "u-alan").await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(recorder.lines(), ["GET /Users", "POST /Users"], "Alan alone; his manager is not there yet");
    assert_eq!(report.created_users, 1);
    assert!(client.target_id("u-ada").is_none());

    recorder.clear();
    let report = client.provision_on_demand(&sim, "grace@contoso.com").await;
    assert_eq!(recorder.lines(), ["GET /Users", "PATCH /Users/pre-grace"]);
    assert_eq!(recorder.requests()[1].body, patch(json!([{"op": "Replace", "path": "active", "value": "False"}])));
    assert_eq!(report.disabled_users, 1);

    // Ada now, then Alan again: his manager link follows.
    client.provision_on_demand(&sim, "u-ada").await;
    recorder.clear();
    let report = client.provision_on_demand(&sim, "u-alan").await;
    let ada = client.target_id("u-ada").unwrap();
    assert_eq!(recorder.lines(), [format!("PATCH /Users/{}", client.target_id("u-alan").unwrap())]);
    assert_eq!(recorder.requests()[0].body, patch(json!([{"op": "Add", "path": MANAGER, "value": ada}])));
    assert_eq!(report.updated_users, 1);

    let report = client.provision_on_demand(&sim, "nobody@contoso.com").await;
    assert!(report.errors[0].contains("no such user"), "{:?}", report.errors);
    assert_eq!(report.requests, 0);
}

#[tokio::test]
async fn assigned_scope_provisions_assignees_and_assigned_groups_members() {
    let recorder = Recorder::start().await;
    let sim = sim();
    let mut client = recorder.client(RequestForm::Default, Scope::AssignedTo("app-hr".into()));
    let report = client.initial_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let posted = |line: &str, key: &str| -> Vec<Value> {
        recorder.requests().iter().filter(|r| r.line() == line).map(|r| r.body[key].clone()).collect()
    };
    assert_eq!(posted("POST /Users", "userName"), [json!("ada@contoso.com"), json!("ken@contoso.com")]);
    assert_eq!(posted("POST /Groups", "displayName"), [json!("Operations")], "assigned groups only");
    assert_eq!(
        recorder.members(client.target_id("g-ops").unwrap()),
        BTreeSet::from([client.target_id("u-ken").unwrap().to_owned()])
    );
    assert_eq!(client.target_id("u-alan"), None, "not assigned");

    // Unassigned: disabled in the target, not deleted.
    recorder.clear();
    sim.write(|t| t.remove_app_role_assignment("sp-app", "a-ada").unwrap());
    let report = client.incremental_cycle(&sim).await;
    let ada = client.target_id("u-ada").unwrap();
    assert_eq!(recorder.lines(), [format!("PATCH /Users/{ada}")]);
    assert_eq!(recorder.requests()[0].body, patch(json!([{"op": "Replace", "path": "active", "value": "False"}])));
    assert_eq!(report.disabled_users, 1);

    // The service principal's object id names the same application.
    let other = Recorder::start().await;
    let mut by_id = other.client(RequestForm::Default, Scope::AssignedTo("sp-app".into()));
    by_id.initial_cycle(&sim).await;
    assert!(by_id.target_id("u-ken").is_some() && by_id.target_id("g-ops").is_some());
    assert!(by_id.target_id("u-ada").is_none(), "no longer assigned");
}

#[tokio::test]
async fn a_409_on_create_matches_and_updates_instead() {
    let recorder = Recorder::start().await;
    let mut existing = ada_create_body();
    existing[ENTERPRISE]["department"] = "Old".into();
    recorder.seed_user("pre-ada", existing);
    // The first find misses (created meanwhile, or an eventually consistent index).
    recorder.store().blind_finds = 1;
    let sim = sim();
    let mut client = recorder.client(RequestForm::Default, Scope::AllUsersAndGroups);
    let report = client.initial_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let lines = recorder.lines();
    assert_eq!(lines[..4], ["GET /Users", "POST /Users", "GET /Users", "PATCH /Users/pre-ada"]);
    assert_eq!(
        recorder.requests()[3].body,
        patch(json!([{"op": "Replace", "path": DEPARTMENT_PATH, "value": "Research"}]))
    );
    assert_eq!(client.target_id("u-ada"), Some("pre-ada"));
    assert_eq!(report.created_users, 2, "Alan and Ken; Ada matched");
    assert_eq!(report.updated_users, 1);
}

#[tokio::test]
async fn failures_are_reported_and_retried_next_cycle() {
    let recorder = Recorder::start().await;
    let sim = sim();
    let mut client = recorder.client(RequestForm::Default, Scope::AllUsersAndGroups);
    client.initial_cycle(&sim).await;
    // The target lost Ada: the PATCH for her change answers 404.
    let ada = client.target_id("u-ada").unwrap().to_owned();
    recorder.store().users.retain(|u| u["id"] != ada.as_str());
    sim.write(|t| {
        t.update_user("u-ada", |u| {
            u.job_title = Some("Fellow".into());
            vec!["jobTitle"]
        })
    })
    .unwrap();
    recorder.clear();
    let report = client.incremental_cycle(&sim).await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].starts_with(&format!("PATCH /Users/{ada}: HTTP 404")), "{:?}", report.errors);
    // Next cycle: matched again by userName, and created.
    recorder.clear();
    let report = client.incremental_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(recorder.lines()[..2], ["GET /Users", "POST /Users"]);
    assert_eq!(report.created_users, 1);
    assert_ne!(client.target_id("u-ada"), Some(ada.as_str()));
}

#[tokio::test]
async fn requests_run_in_parallel_up_to_the_bound() {
    let recorder = Recorder::with_delay(Duration::from_millis(15)).await;
    let sim = sim();
    sim.write(|t| {
        for n in 0..30 {
            t.add_user(person(&format!("u-extra-{n}"), &format!("Extra{n}"), "Person", "Clerk", "Ops", 100 + n));
        }
    });
    let mut client = recorder.client(RequestForm::Default, Scope::AllUsersAndGroups);
    client.concurrency = 4;
    let report = client.initial_cycle(&sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let max = recorder.shared.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "{max} in flight at most");
    assert_eq!(report.created_users, 33);
    assert_eq!(report.latencies_ms.len() as u64, report.requests);
    assert!(report.latencies_ms.iter().all(|ms| *ms >= 15.0));
}

/// The target holds exactly what Entra's mappings give for the tenant as it now is.
fn assert_converged(sim: &Sim, client: &ProvisioningClient, recorder: &Recorder) {
    sim.read(|t| {
        for user in &t.users {
            let target = client.target_id(&user.id);
            if user.purged {
                assert!(target.is_none(), "{} purged", user.id);
                continue;
            }
            let active = user.account_enabled && user.deleted.is_none();
            let Some(target) = target else {
                assert!(!active, "{} active but not provisioned", user.id);
                continue;
            };
            let resource = recorder.user(target);
            assert_eq!(resource["userName"], user.user_principal_name.as_str());
            assert_eq!(resource["active"], active, "{}", user.id);
            assert_eq!(resource["title"].as_str(), user.job_title.as_deref());
            assert_eq!(resource[ENTERPRISE]["department"].as_str(), user.department.as_deref());
            let manager = user.manager.as_deref().and_then(|m| client.target_id(m));
            assert_eq!(resource[ENTERPRISE]["manager"]["value"].as_str(), manager, "{}'s manager", user.id);
        }
        let mut groups = 0;
        for group in t.live_groups() {
            let target = client.target_id(&group.id).unwrap();
            groups += 1;
            assert_eq!(recorder.group(target)["displayName"], group.display_name.as_str());
            let expected: BTreeSet<String> = group
                .members
                .iter()
                .filter(|m| t.live_user(m).is_some())
                .filter_map(|m| client.target_id(m).map(str::to_owned))
                .collect();
            assert_eq!(recorder.members(target), expected, "{}", group.display_name);
        }
        assert_eq!(recorder.store().groups.len(), groups, "deleted groups are gone");
    });
}

#[tokio::test]
async fn a_generated_tenant_converges_through_random_changes_in_both_forms() {
    for form in [RequestForm::Default, RequestForm::Compliant] {
        let recorder = Recorder::start().await;
        let tenant = generate(TenantSpec { users: 80, groups: 8, apps: 2, assignments_per_app: 10, seed: 5 });
        let sim = Sim::new(tenant, ClientApp::attest(1), "http://sim.invalid".into(), SimOptions::default());
        let mut client = ProvisioningClient::new(
            attest_http::client().unwrap(),
            &recorder.url,
            TOKEN,
            form,
            Scope::AllUsersAndGroups,
        );
        client.batch_size = 7;
        let report = client.initial_cycle(&sim).await;
        assert!(report.errors.is_empty(), "{form:?}: {:?}", report.errors);
        assert!(report.created_users > 50 && report.member_adds > 0, "{report}");
        assert_converged(&sim, &client, &recorder);
        for seed in 1..=3 {
            let now = sim.now();
            sim.write(|t| crate::mutate::mutate(t, seed, 2, now));
            let report = client.incremental_cycle(&sim).await;
            assert!(report.errors.is_empty(), "{form:?}: {:?}", report.errors);
            assert!(report.requests > 0);
            assert_converged(&sim, &client, &recorder);
        }
        let member_batches = recorder
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.starts_with("/Groups/"))
            .flat_map(|r| r.ops().as_array().cloned().unwrap_or_default())
            .filter(|op| op["path"] == "members")
            .map(|op| op["value"].as_array().map_or(0, Vec::len))
            .max()
            .unwrap();
        assert!(member_batches <= 7, "{member_batches} members in one op");
    }
}
