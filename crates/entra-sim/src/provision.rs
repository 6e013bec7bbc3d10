//! An imitation of Microsoft Entra's provisioning service: the SCIM 2.0 *client* an enterprise
//! application with a "Tenant URL" and "Secret Token" gets (graph-facts §10). It reads the
//! simulated tenant and sends a SCIM server exactly the requests Entra sends, in both of
//! Entra's request forms, so a SCIM server can be tested against Entra's behaviour rather
//! than against our own idea of SCIM.
//!
//! Like Entra, the client keeps its own cache of what it has provisioned (source object id →
//! target SCIM id, and the values it last sent). An incremental cycle diffs the tenant against
//! that cache and sends only the differences; Entra learns the changes from Graph delta
//! queries instead, which comes to the same requests.
//!
//! Where the documentation is silent the code says [INFER]; where it follows requests seen from
//! the real service (issue threads quoting its traffic) it says [OBS].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::state::Sim;
use crate::tenant::{Kind, Tenant, User};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Microsoft's own group schema URI, which Entra lists on every group it creates.
const AD_GROUP_SCHEMA: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";
/// The enterprise extension's `manager`, which Entra links in a PATCH of its own.
const MANAGER_PATH: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
/// The Tenant URL suffix that switches a job to the SCIM-compliant request form.
const COMPLIANCE_FLAG: &str = "aadOptscim062020";
/// How much of an unexpected response body an error message quotes.
const SNIPPET_CHARS: usize = 200;

/// The user attributes Entra maps by default (graph-facts §10, mapping table), as PATCH paths,
/// in the order it sends them. `active` is kept apart: its value changes type between forms.
const USER_PATHS: [&str; 12] = [
    "externalId",
    "userName",
    "emails[type eq \"work\"].value",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    "displayName",
    "title",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "phoneNumbers[type eq \"work\"].value",
    "phoneNumbers[type eq \"mobile\"].value",
];
const EXTERNAL_ID: usize = 0;
const USER_NAME: usize = 1;
const EMAIL: usize = 2;
const GIVEN_NAME: usize = 3;
const FAMILY_NAME: usize = 4;
const FORMATTED: usize = 5;
const DISPLAY_NAME: usize = 6;
const TITLE: usize = 7;
const DEPARTMENT: usize = 8;
const EMPLOYEE_NUMBER: usize = 9;
const WORK_PHONE: usize = 10;
const MOBILE_PHONE: usize = 11;

/// How Entra words its requests: the documented default of a `scim` job, or the SCIM-compliant
/// form a job gets when `aadOptscim062020` is appended to the Tenant URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestForm {
    /// Capitalised ops (`Add`, `Replace`, `Remove`), one op per changed attribute, `active` as
    /// the strings `"True"`/`"False"`, member removal by a value list.
    #[default]
    Default,
    /// `aadOptscim062020`: lower-case ops, changed simple attributes in one `replace` without a
    /// path, `active` as a boolean, member removal as one `members[value eq "…"]` op each.
    Compliant,
}

/// Which users and groups a job provisions (the application's "Scope" setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// "Sync all users and groups": every user and group in the tenant.
    AllUsersAndGroups,
    /// "Sync only assigned users and groups" (Entra's default): users and groups assigned to
    /// this application (its app id or service principal id), and the direct user members of
    /// assigned groups; nested groups' members are not in scope.
    AssignedTo(String),
}

/// What one cycle did.
#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    /// HTTP requests sent (every method, including finds).
    pub requests: u64,
    pub created_users: u64,
    /// Users whose attributes were changed, matched users brought up to date and re-enabled
    /// users included.
    pub updated_users: u64,
    /// Users set `active` false: disabled, soft-deleted or gone out of scope in Entra.
    pub disabled_users: u64,
    /// Users deleted (`DELETE`) because they were hard-deleted in Entra.
    pub deleted_users: u64,
    pub created_groups: u64,
    /// Groups renamed.
    pub updated_groups: u64,
    /// Groups deleted, or gone out of scope.
    pub deleted_groups: u64,
    /// Memberships added (not PATCH requests: one request adds up to a batch).
    pub member_adds: u64,
    pub member_removes: u64,
    /// What went wrong, one line each (`PATCH /Users/…: HTTP 400: …`). A 401 stops the cycle.
    pub errors: Vec<String>,
    /// Every request's latency in milliseconds, in completion order.
    pub latencies_ms: Vec<f64>,
    pub elapsed: Duration,
}

impl CycleReport {
    /// The latency below which `share` (0–1) of the requests fell, nearest rank; `None` when no
    /// request was sent.
    pub fn latency_percentile_ms(&self, share: f64) -> Option<f64> {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((share.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
        sorted.get(rank - 1).copied()
    }

    /// Requests per second over the whole cycle.
    pub fn requests_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.requests as f64 / secs } else { 0.0 }
    }

    fn absorb(&mut self, calls: Calls) {
        self.requests += calls.requests;
        self.latencies_ms.extend(calls.latencies_ms);
        self.errors.extend(calls.errors);
    }
}

/// One line: what changed, how many requests, how long.
impl fmt::Display for CycleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |count: u64, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
        write!(
            f,
            "{} created, {} updated, {} disabled, {} deleted; {} created, {} renamed, {} deleted; \
             {} added, {} removed; {} in {:.1}s",
            n(self.created_users, "user", "users"),
            self.updated_users,
            self.disabled_users,
            self.deleted_users,
            n(self.created_groups, "group", "groups"),
            self.updated_groups,
            self.deleted_groups,
            n(self.member_adds, "membership", "memberships"),
            self.member_removes,
            n(self.requests, "request", "requests"),
            self.elapsed.as_secs_f64(),
        )?;
        if let (Some(p50), Some(p99)) = (self.latency_percentile_ms(0.5), self.latency_percentile_ms(0.99)) {
            write!(f, " (p50 {p50:.1} ms, p99 {p99:.1} ms)")?;
        }
        if !self.errors.is_empty() {
            write!(f, "; {}", n(self.errors.len() as u64, "error", "errors"))?;
        }
        Ok(())
    }
}

/// A user's SCIM attributes, as Entra maps them (or as a matched target resource holds them).
#[derive(Debug, Clone, PartialEq, Default)]
struct UserState {
    /// Aligned with [`USER_PATHS`] (boxed: jobs and cache entries carry these by value).
    values: Box<[Option<String>; USER_PATHS.len()]>,
    active: bool,
}

impl UserState {
    /// Entra's default mappings applied to `user`. `in_scope`: still assigned (or "all").
    fn of(user: &User, in_scope: bool) -> UserState {
        let upn = &user.user_principal_name;
        let mut values: Box<[Option<String>; USER_PATHS.len()]> = Box::default();
        // The simulated user has no mailNickname; Entra's own default for it is the UPN prefix.
        values[EXTERNAL_ID] = Some(upn.split('@').next().unwrap_or(upn).to_owned());
        values[USER_NAME] = Some(upn.clone());
        values[EMAIL] = user.mail.clone();
        values[GIVEN_NAME] = user.given_name.clone();
        values[FAMILY_NAME] = user.surname.clone();
        // Default mapping: Join(" ", [givenName], [surname]).
        let parts: Vec<&str> = [&user.given_name, &user.surname].into_iter().flatten().map(String::as_str).collect();
        values[FORMATTED] = (!parts.is_empty()).then(|| parts.join(" "));
        values[DISPLAY_NAME] = Some(user.display_name.clone());
        values[TITLE] = user.job_title.clone();
        values[DEPARTMENT] = user.department.clone();
        values[EMPLOYEE_NUMBER] = user.employee_id.clone();
        // Entra's telephoneNumber is Graph's first business phone; mobile is mobilePhone.
        values[WORK_PHONE] = user.business_phones.first().cloned();
        values[MOBILE_PHONE] = user.mobile_phone.clone();
        // IsSoftDeleted is true for soft-deleted, blocked and unassigned users alike.
        let active = in_scope && user.account_enabled && user.deleted.is_none();
        UserState { values, active }
    }

    /// What a target resource holds, and the manager id it points at.
    fn of_resource(resource: &Value) -> (UserState, Option<String>) {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let mut values: Box<[Option<String>; USER_PATHS.len()]> = Box::default();
        values[EXTERNAL_ID] = text(&resource["externalId"]);
        values[USER_NAME] = text(&resource["userName"]);
        let typed = |attribute: &str, kind: &str| {
            resource[attribute]
                .as_array()
                .and_then(|values| values.iter().find(|e| e["type"] == kind))
                .and_then(|e| text(&e["value"]))
        };
        values[EMAIL] = typed("emails", "work");
        values[WORK_PHONE] = typed("phoneNumbers", "work");
        values[MOBILE_PHONE] = typed("phoneNumbers", "mobile");
        values[GIVEN_NAME] = text(&resource["name"]["givenName"]);
        values[FAMILY_NAME] = text(&resource["name"]["familyName"]);
        values[FORMATTED] = text(&resource["name"]["formatted"]);
        values[DISPLAY_NAME] = text(&resource["displayName"]);
        values[TITLE] = text(&resource["title"]);
        let enterprise = &resource[ENTERPRISE_USER_SCHEMA];
        values[DEPARTMENT] = text(&enterprise["department"]);
        values[EMPLOYEE_NUMBER] = text(&enterprise["employeeNumber"]);
        let manager = text(&enterprise["manager"]["value"]).or_else(|| text(&enterprise["manager"]));
        // Servers answer with a boolean; a string is what a default-form PATCH may have left.
        let active = match &resource["active"] {
            Value::Bool(active) => *active,
            Value::String(active) => !active.eq_ignore_ascii_case("false"),
            _ => true,
        };
        (UserState { values, active }, manager)
    }

    fn user_name(&self) -> &str {
        self.values[USER_NAME].as_deref().unwrap_or_default()
    }

    /// `POST /Users` as Entra sends it (graph-facts §10, request 2). The manager is not in it:
    /// Entra links managers in a PATCH after both users exist.
    fn create_body(&self) -> Value {
        let v = |i: usize| self.values[i].clone();
        let mut body = Map::new();
        body.insert("schemas".into(), json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        if let Some(external_id) = v(EXTERNAL_ID) {
            body.insert("externalId".into(), external_id.into());
        }
        body.insert("userName".into(), v(USER_NAME).into());
        body.insert("active".into(), self.active.into());
        if let Some(mail) = v(EMAIL) {
            body.insert("emails".into(), json!([{"primary": true, "type": "work", "value": mail}]));
        }
        let phones: Vec<Value> = [("work", WORK_PHONE), ("mobile", MOBILE_PHONE)]
            .into_iter()
            .filter_map(|(kind, i)| v(i).map(|number| json!({"type": kind, "value": number})))
            .collect();
        if !phones.is_empty() {
            body.insert("phoneNumbers".into(), phones.into());
        }
        body.insert("meta".into(), json!({"resourceType": "User"}));
        let mut name = Map::new();
        for (key, i) in [("formatted", FORMATTED), ("familyName", FAMILY_NAME), ("givenName", GIVEN_NAME)] {
            if let Some(value) = v(i) {
                name.insert(key.into(), value.into());
            }
        }
        if !name.is_empty() {
            body.insert("name".into(), name.into());
        }
        for (key, i) in [("displayName", DISPLAY_NAME), ("title", TITLE)] {
            if let Some(value) = v(i) {
                body.insert(key.into(), value.into());
            }
        }
        body.insert("roles".into(), json!([]));
        let mut enterprise = Map::new();
        for (key, i) in [("department", DEPARTMENT), ("employeeNumber", EMPLOYEE_NUMBER)] {
            if let Some(value) = v(i) {
                enterprise.insert(key.into(), value.into());
            }
        }
        if !enterprise.is_empty() {
            body.insert(ENTERPRISE_USER_SCHEMA.into(), enterprise.into());
        }
        body.into()
    }
}

/// The PATCH operations that turn `sent` into `desired`, worded as `form` words them.
fn user_ops(sent: &UserState, desired: &UserState, form: RequestForm) -> Vec<Value> {
    let mut ops = Vec::new();
    // Compliant form: changed simple attributes travel together in one path-less `replace`.
    let mut grouped: Vec<(&str, Value)> = Vec::new();
    for (i, path) in USER_PATHS.iter().enumerate() {
        let (before, after) = (&sent.values[i], &desired.values[i]);
        if before == after {
            continue;
        }
        let filtered = path.contains('[');
        match (before, after, form) {
            (None, Some(value), RequestForm::Default) => ops.push(json!({"op": "Add", "path": path, "value": value})),
            (None, Some(value), RequestForm::Compliant) => ops.push(json!({"op": "add", "path": path, "value": value})),
            (Some(_), Some(value), RequestForm::Default) => {
                ops.push(json!({"op": "Replace", "path": path, "value": value}))
            }
            (Some(_), Some(value), RequestForm::Compliant) if filtered => {
                ops.push(json!({"op": "replace", "path": path, "value": value}))
            }
            (Some(_), Some(value), RequestForm::Compliant) => grouped.push((path, value.clone().into())),
            // [INFER] A value cleared in Entra: the docs show no example; a path-only remove.
            (_, None, RequestForm::Default) => ops.push(json!({"op": "Remove", "path": path})),
            (_, None, RequestForm::Compliant) => ops.push(json!({"op": "remove", "path": path})),
        }
    }
    if sent.active != desired.active {
        match form {
            // The pre-2020 behaviour the default job keeps: the boolean as a capitalised string.
            RequestForm::Default => {
                let value = if desired.active { "True" } else { "False" };
                ops.push(json!({"op": "Replace", "path": "active", "value": value}));
            }
            RequestForm::Compliant => grouped.push(("active", desired.active.into())),
        }
    }
    match grouped.len() {
        0 => {}
        // [INFER] One attribute keeps its path, as the documented disable does
        // (`{"op":"replace","path":"active","value":false}`); several share a value object.
        1 => {
            let (path, value) = grouped.swap_remove(0);
            ops.insert(0, json!({"op": "replace", "path": path, "value": value}));
        }
        _ => {
            let value: Map<String, Value> = grouped.into_iter().map(|(p, v)| (p.to_owned(), v)).collect();
            ops.insert(0, json!({"op": "replace", "value": value}));
        }
    }
    ops
}

/// The PATCH operation that points a user at `manager` (a target id), or clears it.
///
/// [OBS] Entra sends the enterprise extension's full path with the manager's id as a plain
/// string (requests quoted in Captain-P-Goldfish/SCIM-SDK#686 and apache/directory-scimple#1242),
/// not the `[{"$ref":…,"value":…}]` list of an older documentation example.
fn manager_op(manager: Option<&str>, form: RequestForm) -> Value {
    match (manager, form) {
        (Some(id), RequestForm::Default) => json!({"op": "Add", "path": MANAGER_PATH, "value": id}),
        (Some(id), RequestForm::Compliant) => json!({"op": "add", "path": MANAGER_PATH, "value": id}),
        // [INFER] Clearing a manager: a path-only remove.
        (None, RequestForm::Default) => json!({"op": "Remove", "path": MANAGER_PATH}),
        (None, RequestForm::Compliant) => json!({"op": "remove", "path": MANAGER_PATH}),
    }
}

/// Member-add and member-remove operations for one PATCH (target user ids).
fn member_ops(ids: &[String], add: bool, form: RequestForm) -> Vec<Value> {
    let values = || ids.iter().map(|id| json!({"$ref": null, "value": id})).collect::<Vec<_>>();
    match (add, form) {
        (true, RequestForm::Default) => vec![json!({"op": "Add", "path": "members", "value": values()})],
        (true, RequestForm::Compliant) => vec![json!({"op": "add", "path": "members", "value": values()})],
        (false, RequestForm::Default) => vec![json!({"op": "Remove", "path": "members", "value": values()})],
        (false, RequestForm::Compliant) => {
            ids.iter().map(|id| json!({"op": "remove", "path": format!("members[value eq {}]", quoted(id))})).collect()
        }
    }
}

fn patch_body(ops: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

/// A filter string literal: in double quotes, with `"` and `\` escaped (RFC 7644 §3.4.2.2).
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What the client last sent for a user.
#[derive(Debug, Clone)]
struct UserEntry {
    /// The target's id; `None` for a user evaluated but not created (inactive, or answered
    /// 404 later): it is matched again when it becomes active.
    target: Option<String>,
    sent: UserState,
    /// The manager's target id as last sent (or found).
    manager: Option<String>,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    target: String,
    display_name: String,
    /// Source ids of the users the target group holds, as far as the client sent them.
    members: BTreeSet<String>,
}

/// Entra's provisioning service for one application: Tenant URL, Secret Token, scope, and the
/// cache of what it provisioned.
pub struct ProvisioningClient {
    http: reqwest::Client,
    /// The Tenant URL without a trailing `/` or query: requests go to `{base}/Users`.
    base: String,
    token: String,
    form: RequestForm,
    scope: Scope,
    /// Memberships per group PATCH. Entra's gallery guidance asks servers to take several in
    /// one request; 100 keeps a request body well under common size limits [INFER].
    pub batch_size: usize,
    /// Requests in flight at once: Entra's service works on many objects in parallel.
    pub concurrency: usize,
    users: HashMap<String, UserEntry>,
    groups: HashMap<String, GroupEntry>,
}

impl ProvisioningClient {
    /// A client for the SCIM endpoint at `tenant_url` (`http://host/scim/v2`, trailing `/`
    /// optional). As in Entra, `?aadOptscim062020` on the Tenant URL selects the compliant
    /// form whatever `form` says; the query itself is not sent on.
    pub fn new(http: reqwest::Client, tenant_url: &str, token: &str, form: RequestForm, scope: Scope) -> Self {
        let (base, query) = tenant_url.split_once('?').unwrap_or((tenant_url, ""));
        let flagged = query.split('&').any(|flag| flag == COMPLIANCE_FLAG);
        ProvisioningClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            form: if flagged { RequestForm::Compliant } else { form },
            scope,
            batch_size: 100,
            concurrency: 8,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// The request form in use.
    pub fn form(&self) -> RequestForm {
        self.form
    }

    /// The target SCIM id of a provisioned user or group (by Entra object id).
    pub fn target_id(&self, source_id: &str) -> Option<&str> {
        self.users
            .get(source_id)
            .and_then(|u| u.target.as_deref())
            .or_else(|| self.groups.get(source_id).map(|g| g.target.as_str()))
    }

    /// "Test Connection": asks for a user that cannot exist (a random GUID as the matching
    /// attribute) and expects `200` with an empty ListResponse.
    pub async fn test_connection(&self) -> Result<(), String> {
        let filter = format!("userName eq {}", quoted(&random_guid()));
        let url = format!("{}/Users", self.base);
        let response = self
            .http
            .get(&url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .query(&[("filter", filter.as_str())])
            .send()
            .await
            .map_err(|e| format!("could not reach the Tenant URL {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status == 401 || status == 403 {
            return Err(format!(
                "You appear to have entered invalid credentials: the Tenant URL answered HTTP {status} \
                 (check the Secret Token): {}",
                snippet(&text)
            ));
        }
        if status != 200 {
            return Err(format!(
                "The Tenant URL answered HTTP {status} to a query for a user that does not exist; \
                 expected 200 with an empty ListResponse: {}",
                snippet(&text)
            ));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let resources = body["Resources"].as_array().map_or(0, Vec::len);
        if body["totalResults"].as_u64() != Some(0) || resources != 0 {
            return Err(format!(
                "The Tenant URL's answer to a query for a user that does not exist is not an empty \
                 ListResponse (totalResults 0): {}",
                snippet(&text)
            ));
        }
        Ok(())
    }

    /// The initial cycle: forgets the cache (as "Restart provisioning" does), then evaluates
    /// every in-scope user and group, matching existing target objects before creating.
    pub async fn initial_cycle(&mut self, sim: &Sim) -> CycleReport {
        self.users.clear();
        self.groups.clear();
        self.cycle(sim, None, self.form).await
    }

    /// An incremental cycle: only what changed since the last one.
    pub async fn incremental_cycle(&mut self, sim: &Sim) -> CycleReport {
        self.cycle(sim, None, self.form).await
    }

    /// "Provision on demand" for one user (object id or UPN): the user and their manager link,
    /// nothing else. As documented, the compliance flag does not apply to on-demand
    /// provisioning, so requests always take the default form.
    pub async fn provision_on_demand(&mut self, sim: &Sim, user_id: &str) -> CycleReport {
        let found = sim.read(|t| {
            t.locate(&user_id.to_ascii_lowercase())
                .and_then(|(kind, i)| (kind == Kind::User).then(|| t.users.get(i)).flatten())
                .or_else(|| t.users.iter().find(|u| u.user_principal_name.eq_ignore_ascii_case(user_id)))
                .map(|u| u.id.clone())
        });
        match found {
            Some(id) => self.cycle(sim, Some(&id), RequestForm::Default).await,
            None => {
                CycleReport { errors: vec![format!("{user_id}: no such user in the tenant")], ..CycleReport::default() }
            }
        }
    }

    async fn cycle(&mut self, sim: &Sim, only: Option<&str>, form: RequestForm) -> CycleReport {
        let started = Instant::now();
        let mut report = CycleReport::default();
        let wire = Wire {
            http: self.http.clone(),
            base: self.base.as_str().into(),
            authorization: format!("Bearer {}", self.token).into(),
            form,
            aborted: Arc::new(AtomicBool::new(false)),
        };
        let snapshot = sim.read(|t| Snapshot::read(t, &self.scope, &self.users, only));
        if let Some(id) = only
            && !snapshot.users.iter().any(|u| u.id == id)
            && !snapshot.gone_users.iter().any(|g| g == id)
        {
            report.errors.push(format!("{id}: skipped, not in scope (not assigned to the application)"));
        }
        let mut touched = HashSet::new();
        self.sync_users(&wire, &snapshot, &mut report, &mut touched).await;
        if !wire.aborted() {
            self.sync_managers(&wire, &snapshot, &mut report, &mut touched).await;
        }
        if only.is_none() && !wire.aborted() {
            self.sync_groups(&wire, &snapshot, &mut report).await;
            if !wire.aborted() {
                self.sync_members(&wire, &snapshot, &mut report).await;
            }
        }
        report.elapsed = started.elapsed();
        report
    }

    /// Creates, updates, disables and deletes users.
    async fn sync_users(
        &mut self,
        wire: &Wire,
        snapshot: &Snapshot,
        report: &mut CycleReport,
        touched: &mut HashSet<String>,
    ) {
        let mut jobs = Vec::new();
        for user in &snapshot.users {
            match self.users.get_mut(&user.id) {
                Some(UserEntry { target: Some(target), sent, manager }) => {
                    let ops = user_ops(sent, &user.state, wire.form);
                    if !ops.is_empty() {
                        jobs.push(UserJob::Patch {
                            source: user.id.clone(),
                            target: target.clone(),
                            ops,
                            before: sent.clone(),
                            desired: user.state.clone(),
                            manager: manager.clone(),
                        });
                    }
                }
                Some(entry) if user.state.active => {
                    entry.sent = user.state.clone();
                    jobs.push(UserJob::Match { source: user.id.clone(), desired: user.state.clone(), create: true });
                }
                // Known, never created, still inactive: nothing to send.
                Some(entry) => entry.sent = user.state.clone(),
                None => jobs.push(UserJob::Match {
                    source: user.id.clone(),
                    desired: user.state.clone(),
                    // Entra creates only users it would leave active [INFER]; an inactive one is
                    // still looked up, to disable a match.
                    create: user.state.active,
                }),
            }
        }
        for id in &snapshot.gone_users {
            match self.users.get(id).and_then(|u| u.target.clone()) {
                Some(target) => jobs.push(UserJob::Delete { source: id.clone(), target }),
                None => {
                    self.users.remove(id);
                }
            }
        }
        let (done, failures) = run_jobs(wire, self.concurrency, jobs, user_job).await;
        report.errors.extend(failures);
        for done in done {
            report.absorb(done.calls);
            match done.counted {
                Counted::Nothing => {}
                Counted::Created => report.created_users += 1,
                Counted::Updated => report.updated_users += 1,
                Counted::Disabled => report.disabled_users += 1,
                Counted::Deleted => report.deleted_users += 1,
            }
            if done.counted != Counted::Nothing {
                touched.insert(done.source.clone());
            }
            match done.update {
                Update::Keep => {}
                Update::Set(entry) => {
                    self.users.insert(done.source, entry);
                }
                Update::Remove => {
                    // The target drops a deleted user from its groups itself.
                    for group in self.groups.values_mut() {
                        group.members.remove(&done.source);
                    }
                    self.users.remove(&done.source);
                }
            }
        }
    }

    /// Links users to their managers, once both exist in the target.
    async fn sync_managers(
        &mut self,
        wire: &Wire,
        snapshot: &Snapshot,
        report: &mut CycleReport,
        touched: &mut HashSet<String>,
    ) {
        let mut jobs = Vec::new();
        for user in &snapshot.users {
            let Some(UserEntry { target: Some(target), manager: sent, .. }) = self.users.get(&user.id) else {
                continue;
            };
            let desired = match &user.manager {
                None => None,
                Some(manager) => match self.users.get(manager).and_then(|m| m.target.clone()) {
                    Some(manager_target) => Some(manager_target),
                    // The manager is not (yet) in the target: nothing to point at.
                    None => continue,
                },
            };
            if &desired != sent {
                let body = patch_body(vec![manager_op(desired.as_deref(), wire.form)]);
                jobs.push(ManagerJob { source: user.id.clone(), target: target.clone(), body, manager: desired });
            }
        }
        let (done, failures) = run_jobs(wire, self.concurrency, jobs, manager_job).await;
        report.errors.extend(failures);
        for (source, manager, calls) in done {
            report.absorb(calls);
            let Some(manager) = manager else { continue };
            if let Some(entry) = self.users.get_mut(&source) {
                entry.manager = manager;
            }
            if touched.insert(source) {
                report.updated_users += 1;
            }
        }
    }

    /// Creates, renames and deletes groups (members follow in [`Self::sync_members`]).
    async fn sync_groups(&mut self, wire: &Wire, snapshot: &Snapshot, report: &mut CycleReport) {
        let mut jobs = Vec::new();
        let in_scope: HashSet<&str> = snapshot.groups.iter().map(|g| g.id.as_str()).collect();
        for group in &snapshot.groups {
            match self.groups.get(&group.id) {
                Some(entry) if entry.display_name != group.display_name => jobs.push(GroupJob::Rename {
                    source: group.id.clone(),
                    target: entry.target.clone(),
                    display_name: group.display_name.clone(),
                }),
                Some(_) => {}
                None => {
                    jobs.push(GroupJob::Match { source: group.id.clone(), display_name: group.display_name.clone() })
                }
            }
        }
        let mut gone: Vec<(&String, &GroupEntry)> =
            self.groups.iter().filter(|(id, _)| !in_scope.contains(id.as_str())).collect();
        gone.sort_by_key(|(id, _)| id.as_str());
        for (id, entry) in gone {
            jobs.push(GroupJob::Delete { source: id.clone(), target: entry.target.clone() });
        }
        let (done, failures) = run_jobs(wire, self.concurrency, jobs, group_job).await;
        report.errors.extend(failures);
        for done in done {
            report.absorb(done.calls);
            match done.counted {
                Counted::Created => report.created_groups += 1,
                Counted::Updated => report.updated_groups += 1,
                Counted::Deleted => report.deleted_groups += 1,
                Counted::Nothing | Counted::Disabled => {}
            }
            if let (Some(name), Some(entry)) = (done.renamed, self.groups.get_mut(&done.source)) {
                entry.display_name = name;
            }
            match done.update {
                Update::Keep => {}
                Update::Set(entry) => {
                    self.groups.insert(done.source, entry);
                }
                Update::Remove => {
                    self.groups.remove(&done.source);
                }
            }
        }
    }

    /// Adds and removes memberships in batches, once groups and users exist.
    async fn sync_members(&mut self, wire: &Wire, snapshot: &Snapshot, report: &mut CycleReport) {
        let mut jobs = Vec::new();
        let batch = self.batch_size.max(1);
        for group in &snapshot.groups {
            let Some(entry) = self.groups.get_mut(&group.id) else { continue };
            let target_of = |id: &str| self.users.get(id).and_then(|u| u.target.clone());
            let desired: Vec<(String, String)> = group
                .members
                .iter()
                .filter(|m| !snapshot.inactive_members.contains(m.as_str()))
                .filter_map(|m| target_of(m).map(|t| (m.clone(), t)))
                .collect();
            let wanted: HashSet<&str> = desired.iter().map(|(m, _)| m.as_str()).collect();
            let adds: Vec<(String, String)> =
                desired.iter().filter(|(m, _)| !entry.members.contains(m)).cloned().collect();
            let mut removes = Vec::new();
            for member in entry.members.iter().filter(|m| !wanted.contains(m.as_str())) {
                if let Some(target) = target_of(member) {
                    removes.push((member.clone(), target));
                }
            }
            // A member whose user has no target id (it answered 404) cannot be named: forget it.
            entry.members.retain(|m| wanted.contains(m.as_str()) || target_of(m).is_some());
            for (add, members) in [(false, removes), (true, adds)] {
                for chunk in members.chunks(batch) {
                    let ids: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
                    jobs.push(MemberJob {
                        group: group.id.clone(),
                        target: entry.target.clone(),
                        add,
                        body: patch_body(member_ops(&ids, add, wire.form)),
                        members: chunk.iter().map(|(m, _)| m.clone()).collect(),
                    });
                }
            }
        }
        let (done, failures) = run_jobs(wire, self.concurrency, jobs, member_job).await;
        report.errors.extend(failures);
        for (job, ok, calls) in done {
            report.absorb(calls);
            if !ok {
                continue;
            }
            let Some(entry) = self.groups.get_mut(&job.group) else { continue };
            let count = job.members.len() as u64;
            for member in job.members {
                if job.add {
                    entry.members.insert(member);
                } else {
                    entry.members.remove(&member);
                }
            }
            if job.add {
                report.member_adds += count;
            } else {
                report.member_removes += count;
            }
        }
    }
}

/// The source side of one cycle, read under the tenant lock and released before any request.
struct Snapshot {
    /// Users to evaluate, in directory order: in scope, or provisioned by an earlier cycle.
    users: Vec<SourceUser>,
    /// Users the client knows whose source object is gone for good (hard-deleted).
    gone_users: Vec<String>,
    /// In-scope groups.
    groups: Vec<SourceGroup>,
    /// Soft-deleted users: Graph no longer lists them among their groups' members.
    inactive_members: HashSet<String>,
}

struct SourceUser {
    id: String,
    state: UserState,
    /// The manager's object id.
    manager: Option<String>,
}

struct SourceGroup {
    id: String,
    display_name: String,
    /// Direct members that are users (Entra does not provision nested groups' members).
    members: Vec<String>,
}

impl Snapshot {
    fn read(t: &Tenant, scope: &Scope, known_users: &HashMap<String, UserEntry>, only: Option<&str>) -> Snapshot {
        let (user_scope, group_scope) = in_scope(t, scope);
        let in_scope_user = |id: &str| user_scope.as_ref().is_none_or(|s| s.contains(id));
        let wanted = |id: &str| only.is_none_or(|o| o == id);
        let users = t
            .users
            .iter()
            .filter(|u| !u.purged && wanted(&u.id))
            .filter(|u| in_scope_user(&u.id) || known_users.contains_key(&u.id))
            .map(|u| SourceUser {
                id: u.id.clone(),
                state: UserState::of(u, in_scope_user(&u.id)),
                manager: u.manager.clone(),
            })
            .collect();
        let mut gone_users: Vec<String> = known_users
            .keys()
            .filter(|id| wanted(id))
            .filter(|id| match t.locate(id) {
                Some((Kind::User, i)) => t.users.get(i).is_none_or(|u| u.purged),
                _ => true,
            })
            .cloned()
            .collect();
        gone_users.sort();
        let is_user = |id: &String| matches!(t.locate(id), Some((Kind::User, _)));
        let groups = if only.is_some() {
            Vec::new()
        } else {
            t.live_groups()
                .filter(|g| group_scope.as_ref().is_none_or(|s| s.contains(g.id.as_str())))
                .map(|g| SourceGroup {
                    id: g.id.clone(),
                    display_name: g.display_name.clone(),
                    members: g.members.iter().filter(|m| is_user(m)).cloned().collect(),
                })
                .collect()
        };
        // Only groups need these; a cycle limited to one user skips groups.
        let inactive_members = if only.is_some() {
            HashSet::new()
        } else {
            t.users.iter().filter(|u| u.deleted.is_some()).map(|u| u.id.clone()).collect()
        };
        Snapshot { users, gone_users, groups, inactive_members }
    }
}

/// The users and groups in scope; `None` means every one.
fn in_scope(t: &Tenant, scope: &Scope) -> (Option<HashSet<String>>, Option<HashSet<String>>) {
    let Scope::AssignedTo(app) = scope else { return (None, None) };
    let apps: HashSet<&str> =
        t.live_service_principals().filter(|sp| sp.id == *app || sp.app_id == *app).map(|sp| sp.id.as_str()).collect();
    let mut users = HashSet::new();
    let mut groups = HashSet::new();
    for assignment in t.app_role_assignments.iter().filter(|a| apps.contains(a.resource_id.as_str())) {
        match t.locate(&assignment.principal_id) {
            Some((Kind::User, _)) => {
                users.insert(assignment.principal_id.clone());
            }
            Some((Kind::Group, _)) => {
                if let Some(group) = t.group(&assignment.principal_id) {
                    groups.insert(group.id.clone());
                    // Direct user members only: nested groups are not in scope.
                    for member in &group.members {
                        if matches!(t.locate(member), Some((Kind::User, _))) {
                            users.insert(member.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (Some(users), Some(groups))
}

/// Everything a request needs, cloned into each task.
#[derive(Clone)]
struct Wire {
    http: reqwest::Client,
    base: Arc<str>,
    authorization: Arc<str>,
    form: RequestForm,
    /// Set by the first 401: the cycle stops sending.
    aborted: Arc<AtomicBool>,
}

/// What a task's requests came to.
#[derive(Debug, Default)]
struct Calls {
    requests: u64,
    latencies_ms: Vec<f64>,
    errors: Vec<String>,
}

struct Answer {
    status: u16,
    body: Value,
    text: String,
}

impl Wire {
    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Sends one request; `None` when it could not be sent or was refused with 401 (both
    /// recorded in `calls`). Other statuses are the caller's to judge.
    async fn send(
        &self,
        calls: &mut Calls,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Option<Answer> {
        if self.aborted() {
            return None;
        }
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        request = request.header(AUTHORIZATION, &*self.authorization);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, SCIM_JSON).body(body.to_string());
        }
        let started = Instant::now();
        let sent = request.send().await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                response.text().await.map(|text| (status, text))
            }
            Err(e) => Err(e),
        };
        calls.requests += 1;
        calls.latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let (status, text) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                calls.errors.push(format!("{method} {path}: {e}"));
                return None;
            }
        };
        if status == 401 {
            // Entra stops and reports the credentials; later requests would fail the same way.
            if !self.aborted.swap(true, Ordering::SeqCst) {
                calls.errors.push(format!(
                    "{method} {path}: HTTP 401: invalid credentials, the SCIM endpoint refused the Secret Token; \
                     cycle stopped: {}",
                    snippet(&text)
                ));
            }
            return None;
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Some(Answer { status, body, text })
    }

    async fn find(&self, calls: &mut Calls, path: &str, query: &[(&str, &str)]) -> Found {
        let Some(answer) = self.send(calls, Method::GET, path, query, None).await else { return Found::Failed };
        if answer.status != 200 {
            calls.errors.push(unexpected("GET", path, &answer));
            return Found::Failed;
        }
        let first = answer.body["Resources"].as_array().and_then(|r| r.first()).cloned();
        match first {
            Some(resource) => match resource["id"].as_str() {
                Some(id) => Found::Yes(id.to_owned(), resource),
                None => {
                    calls.errors.push(format!("GET {path}: a matching resource without an id"));
                    Found::Failed
                }
            },
            None => Found::No,
        }
    }

    /// `GET /Users?filter=userName eq "…"` (matching attribute: userName).
    async fn find_user(&self, calls: &mut Calls, user_name: &str) -> Found {
        let filter = format!("userName eq {}", quoted(user_name));
        self.find(calls, "/Users", &[("filter", &filter)]).await
    }

    /// `GET /Groups?excludedAttributes=members&filter=displayName eq "…"`.
    async fn find_group(&self, calls: &mut Calls, display_name: &str) -> Found {
        let filter = format!("displayName eq {}", quoted(display_name));
        self.find(calls, "/Groups", &[("excludedAttributes", "members"), ("filter", &filter)]).await
    }

    /// A create; the new resource's id, or `Err(true)` on 409 (already there: match instead).
    async fn create(&self, calls: &mut Calls, path: &str, body: &Value) -> Result<String, bool> {
        let Some(answer) = self.send(calls, Method::POST, path, &[], Some(body)).await else { return Err(false) };
        match (answer.status, answer.body["id"].as_str()) {
            (200 | 201, Some(id)) => Ok(id.to_owned()),
            (409, _) => Err(true),
            _ => {
                calls.errors.push(unexpected("POST", path, &answer));
                Err(false)
            }
        }
    }

    /// A PATCH or DELETE; its status when it got an answer. Anything but 2xx is recorded as an
    /// error, except a DELETE's 404 (already gone is what a delete wants).
    async fn change(&self, calls: &mut Calls, method: Method, path: &str, body: Option<&Value>) -> Option<u16> {
        let answer = self.send(calls, method.clone(), path, &[], body).await?;
        let gone = method == Method::DELETE && answer.status == 404;
        if !(200..300).contains(&answer.status) && !gone {
            calls.errors.push(unexpected(method.as_str(), path, &answer));
        }
        Some(answer.status)
    }
}

enum Found {
    Yes(String, Value),
    No,
    Failed,
}

fn unexpected(method: &str, path: &str, answer: &Answer) -> String {
    format!("{method} {path}: HTTP {}: {}", answer.status, snippet(&answer.text))
}

fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s
}

/// A random GUID for Test Connection's query. No seeded generator wanted here: std's hasher
/// keys are random per process and per `RandomState`.
fn random_guid() -> String {
    let mut bytes = [0u8; 16];
    for (i, half) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        half.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// Runs `work` on every job, at most `concurrency` at once; results in completion order, plus
/// an error line for each task that died. After a 401 no further job starts.
async fn run_jobs<J, R, F, Fut>(wire: &Wire, concurrency: usize, jobs: Vec<J>, work: F) -> (Vec<R>, Vec<String>)
where
    J: Send + 'static,
    R: Send + 'static,
    F: Fn(Wire, J) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut results = Vec::with_capacity(jobs.len());
    let mut failures = Vec::new();
    let mut collect = |joined: Result<R, tokio::task::JoinError>| match joined {
        Ok(result) => results.push(result),
        Err(e) => failures.push(format!("a provisioning task failed: {e}")),
    };
    for job in jobs {
        if wire.aborted() {
            break;
        }
        while set.len() >= concurrency.max(1) {
            if let Some(joined) = set.join_next().await {
                collect(joined);
            }
        }
        set.spawn(work(wire.clone(), job));
    }
    while let Some(joined) = set.join_next().await {
        collect(joined);
    }
    (results, failures)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Nothing,
    Created,
    Updated,
    Disabled,
    Deleted,
}

enum Update<T> {
    Keep,
    Set(T),
    Remove,
}

enum UserJob {
    /// A known user: send what changed.
    Patch {
        source: String,
        target: String,
        ops: Vec<Value>,
        before: UserState,
        desired: UserState,
        manager: Option<String>,
    },
    /// Not known (yet): find by userName, create when absent (and `create`), else bring the
    /// match up to date.
    Match { source: String, desired: UserState, create: bool },
    /// Hard-deleted in Entra.
    Delete { source: String, target: String },
}

struct UserDone {
    source: String,
    calls: Calls,
    update: Update<UserEntry>,
    counted: Counted,
}

fn user_change(before: &UserState, after: &UserState) -> Counted {
    if before.active && !after.active { Counted::Disabled } else { Counted::Updated }
}

async fn user_job(wire: Wire, job: UserJob) -> UserDone {
    let mut calls = Calls::default();
    let (source, update, counted) = match job {
        UserJob::Patch { source, target, ops, before, desired, manager } => {
            let path = format!("/Users/{target}");
            let body = patch_body(ops);
            let (update, counted) = match wire.change(&mut calls, Method::PATCH, &path, Some(&body)).await {
                Some(200..=299) => {
                    let counted = user_change(&before, &desired);
                    (Update::Set(UserEntry { target: Some(target), sent: desired, manager }), counted)
                }
                // Gone from the target: forget the id, match again when next active.
                Some(404) => (Update::Set(UserEntry { target: None, sent: desired, manager: None }), Counted::Nothing),
                _ => (Update::Keep, Counted::Nothing),
            };
            (source, update, counted)
        }
        UserJob::Match { source, desired, create } => {
            let (update, counted) = match_user(&wire, &mut calls, desired, create).await;
            (source, update, counted)
        }
        UserJob::Delete { source, target } => {
            let path = format!("/Users/{target}");
            match wire.change(&mut calls, Method::DELETE, &path, None).await {
                Some(200..=299) => (source, Update::Remove, Counted::Deleted),
                Some(404) => (source, Update::Remove, Counted::Nothing),
                _ => (source, Update::Keep, Counted::Nothing),
            }
        }
    };
    UserDone { source, calls, update, counted }
}

async fn match_user(wire: &Wire, calls: &mut Calls, desired: UserState, create: bool) -> (Update<UserEntry>, Counted) {
    let mut found = wire.find_user(calls, desired.user_name()).await;
    if let Found::No = found {
        if !create {
            return (Update::Set(UserEntry { target: None, sent: desired, manager: None }), Counted::Nothing);
        }
        match wire.create(calls, "/Users", &desired.create_body()).await {
            Ok(id) => {
                let entry = UserEntry { target: Some(id), sent: desired, manager: None };
                return (Update::Set(entry), Counted::Created);
            }
            // 409: someone created it meanwhile; Entra matches and updates it.
            Err(true) => found = wire.find_user(calls, desired.user_name()).await,
            Err(false) => return (Update::Keep, Counted::Nothing),
        }
    }
    let Found::Yes(id, resource) = found else {
        if let Found::No = found {
            calls.errors.push(format!("POST /Users: 409 for {}, yet no user matches it", desired.user_name()));
        }
        return (Update::Keep, Counted::Nothing);
    };
    let (current, manager) = UserState::of_resource(&resource);
    let ops = user_ops(&current, &desired, wire.form);
    if ops.is_empty() {
        return (Update::Set(UserEntry { target: Some(id), sent: desired, manager }), Counted::Nothing);
    }
    let path = format!("/Users/{id}");
    match wire.change(calls, Method::PATCH, &path, Some(&patch_body(ops))).await {
        Some(200..=299) => {
            let counted = user_change(&current, &desired);
            (Update::Set(UserEntry { target: Some(id), sent: desired, manager }), counted)
        }
        // Keep what the target holds, so the next cycle tries the difference again.
        _ => (Update::Set(UserEntry { target: Some(id), sent: current, manager }), Counted::Nothing),
    }
}

struct ManagerJob {
    source: String,
    target: String,
    body: Value,
    manager: Option<String>,
}

/// The source id, the manager now linked (`None` when the PATCH failed), and the calls.
async fn manager_job(wire: Wire, job: ManagerJob) -> (String, Option<Option<String>>, Calls) {
    let mut calls = Calls::default();
    let path = format!("/Users/{}", job.target);
    let ok = matches!(wire.change(&mut calls, Method::PATCH, &path, Some(&job.body)).await, Some(200..=299));
    (job.source, ok.then_some(job.manager), calls)
}

enum GroupJob {
    Match { source: String, display_name: String },
    Rename { source: String, target: String, display_name: String },
    Delete { source: String, target: String },
}

struct GroupDone {
    source: String,
    calls: Calls,
    update: Update<GroupEntry>,
    /// The name a rename gave the target group.
    renamed: Option<String>,
    counted: Counted,
}

async fn group_job(wire: Wire, job: GroupJob) -> GroupDone {
    let mut calls = Calls::default();
    let mut renamed = None;
    let (source, update, counted) = match job {
        GroupJob::Match { source, display_name } => {
            let (update, counted) = match_group(&wire, &mut calls, &source, display_name).await;
            (source, update, counted)
        }
        GroupJob::Rename { source, target, display_name } => {
            let op = match wire.form {
                RequestForm::Default => json!({"op": "Replace", "path": "displayName", "value": display_name}),
                RequestForm::Compliant => json!({"op": "replace", "path": "displayName", "value": display_name}),
            };
            let path = format!("/Groups/{target}");
            match wire.change(&mut calls, Method::PATCH, &path, Some(&patch_body(vec![op]))).await {
                Some(200..=299) => {
                    renamed = Some(display_name);
                    (source, Update::Keep, Counted::Updated)
                }
                _ => (source, Update::Keep, Counted::Nothing),
            }
        }
        GroupJob::Delete { source, target } => {
            let path = format!("/Groups/{target}");
            match wire.change(&mut calls, Method::DELETE, &path, None).await {
                Some(200..=299) => (source, Update::Remove, Counted::Deleted),
                Some(404) => (source, Update::Remove, Counted::Nothing),
                _ => (source, Update::Keep, Counted::Nothing),
            }
        }
    };
    GroupDone { source, calls, update, renamed, counted }
}

async fn match_group(
    wire: &Wire,
    calls: &mut Calls,
    source: &str,
    display_name: String,
) -> (Update<GroupEntry>, Counted) {
    let entry = |target: String, display_name: String| GroupEntry { target, display_name, members: BTreeSet::new() };
    let mut found = wire.find_group(calls, &display_name).await;
    if let Found::No = found {
        // Created empty; members follow in batches.
        let body = json!({
            "schemas": [GROUP_SCHEMA, AD_GROUP_SCHEMA],
            "externalId": source,
            "displayName": display_name,
            "meta": {"resourceType": "Group"},
        });
        match wire.create(calls, "/Groups", &body).await {
            Ok(id) => return (Update::Set(entry(id, display_name)), Counted::Created),
            Err(true) => found = wire.find_group(calls, &display_name).await,
            Err(false) => return (Update::Keep, Counted::Nothing),
        }
    }
    match found {
        // Matched by displayName, so nothing to update; its members are unknown (the find
        // excluded them), so every member is added.
        Found::Yes(id, _) => (Update::Set(entry(id, display_name)), Counted::Nothing),
        Found::No => {
            calls.errors.push(format!("POST /Groups: 409 for {display_name}, yet no group matches it"));
            (Update::Keep, Counted::Nothing)
        }
        Found::Failed => (Update::Keep, Counted::Nothing),
    }
}

struct MemberJob {
    group: String,
    target: String,
    add: bool,
    body: Value,
    /// Source ids of the users in this batch.
    members: Vec<String>,
}

async fn member_job(wire: Wire, job: MemberJob) -> (MemberJob, bool, Calls) {
    let mut calls = Calls::default();
    let path = format!("/Groups/{}", job.target);
    let ok = matches!(wire.change(&mut calls, Method::PATCH, &path, Some(&job.body)).await, Some(200..=299));
    (job, ok, calls)
}

#[cfg(test)]
mod tests;
