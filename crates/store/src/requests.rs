//! Just-in-time access as stored: request policies (per entitlement, or per kind of resource),
//! the catalog they make, requests with their approvers and votes, and the rows the expiry job
//! works through. Every step on a request is one transaction that checks the state it starts
//! from and appends its audit event, so two approvers, two replicas or a retried form cannot
//! move a request twice.

use std::collections::HashMap;

use attest_domain::access::{AccessPolicy, AccessRefusal, RequestState, Tally, tally};
use attest_domain::review::Person;
use attest_domain::time::micros;
use attest_domain::{AuditEventDraft, ConnectorId, EntitlementId, GrantId, PrincipalId, ResourceKind};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::StoreError;
use crate::areas::Requests;
use crate::sql::{Sql, select_json};

/// What a policy is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyScope {
    Entitlement(EntitlementId),
    /// The default for every entitlement of this kind of resource without its own policy.
    Kind(ResourceKind),
}

impl PolicyScope {
    fn key(self) -> String {
        match self {
            PolicyScope::Entitlement(id) => format!("entitlement:{}", id.0),
            PolicyScope::Kind(kind) => format!("kind:{kind}"),
        }
    }
}

/// An entitlement that can be asked for, with the policy that applies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    pub entitlement_id: i64,
    pub connector_id: i64,
    pub resource_id: i64,
    pub resource_kind: ResourceKind,
    pub resource_name: String,
    pub resource_object: String,
    pub entitlement_key: String,
    pub entitlement_name: String,
    pub description: Option<String>,
    pub policy: AccessPolicy,
}

/// A request as asked.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub connector_id: ConnectorId,
    pub entitlement_id: EntitlementId,
    pub principal_id: PrincipalId,
    pub requester: Person,
    /// Who typed it, for the audit log (the requester, or the command line on their behalf).
    pub asked_by: String,
    pub duration_minutes: Option<u32>,
    pub justification: String,
    pub ticket: Option<String>,
    pub policy: AccessPolicy,
    pub starts_at: Option<DateTime<Utc>>,
    /// The access this asks to extend (a request of the same person and entitlement).
    pub extends: Option<i64>,
    /// The approvers of each stage, the requester left out (empty when auto-approved).
    pub approvers: Vec<Vec<Person>>,
}

/// A grant a person holds on an entitlement themselves (see `Requests::held_grant`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeldAccess {
    pub id: GrantId,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when a sync found it made permanent, or extended, in the directory itself.
    pub extended_in_directory_at: Option<DateTime<Utc>>,
}

/// Time-bound access changed in the directory behind Attest's back (see `Requests::drifted`):
/// back after its request ended, or made permanent (or extended) there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub request_id: i64,
    pub connector_id: i64,
    pub entitlement_id: i64,
    pub principal_id: i64,
    /// The grant that came back.
    pub grant_id: i64,
    pub requester_name: String,
    pub resource_id: i64,
    pub resource_kind: ResourceKind,
    pub resource_name: String,
    pub entitlement_name: String,
    /// `returned`: back in the directory after Attest ended it. `extended`: made permanent, or
    /// given a later end, in the directory (a PIM schedule), before or after Attest's end.
    pub kind: String,
    /// When Attest ended the access, or (`extended`, still running) when it is to end.
    pub ended_at: DateTime<Utc>,
    /// When a sync found it back, or extended.
    pub seen_at: DateTime<Utc>,
    /// The policy the request was asked under (JSON): `authoritative` says whether Attest
    /// removes it again.
    pub policy: String,
}

impl Drift {
    /// Whether Attest removes it again by itself (the request's policy is authoritative).
    pub fn authoritative(&self) -> bool {
        serde_json::from_str::<AccessPolicy>(&self.policy).is_ok_and(|p| p.authoritative)
    }
}

const DRIFT_COLUMNS: &[&str] = &[
    "request_id",
    "connector_id",
    "entitlement_id",
    "principal_id",
    "grant_id",
    "requester_name",
    "resource_id",
    "resource_kind",
    "resource_name",
    "entitlement_name",
    "kind",
    "ended_at",
    "seen_at",
    "policy",
];

/// A request as it stands, with what it is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: i64,
    pub connector_id: i64,
    pub entitlement_id: i64,
    pub principal_id: i64,
    pub requester_object: String,
    pub requester_name: String,
    pub requester_email: Option<String>,
    pub asked_by: String,
    /// Minutes asked for; `None`: no end.
    pub duration_minutes: Option<u32>,
    pub justification: String,
    pub ticket: Option<String>,
    pub state: RequestState,
    /// The approval stage it is in (or was last in), of `stages` (0: auto-approved).
    pub stage: u32,
    pub stages: u32,
    pub quorum: u32,
    #[serde(skip_serializing)]
    pub policy: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub approval_due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    pub grant_change_id: Option<i64>,
    pub revoke_change_id: Option<i64>,
    pub extends_id: Option<i64>,
    #[serde(skip_serializing)]
    pub approvers_mailed_stage: u32,
    #[serde(skip_serializing)]
    pub decision_mailed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing)]
    pub expiry_notice_at: Option<DateTime<Utc>>,
    pub resource_id: i64,
    pub resource_kind: ResourceKind,
    pub resource_name: String,
    pub resource_object: String,
    pub entitlement_key: String,
    pub entitlement_name: String,
}

impl Request {
    /// The policy it was asked under.
    pub fn policy(&self) -> AccessPolicy {
        serde_json::from_str(&self.policy).unwrap_or_default()
    }

    /// Whether its holder activated it in Entra themselves (PIM self-activation), rather than
    /// Attest giving it through a change: such access is activated again, not extended.
    pub fn activated_by_holder(&self) -> bool {
        self.grant_change_id.is_none() && self.extends_id.is_none() && self.policy().self_activate
    }

    /// What it is for, for people: "Member of Finance Team (group)".
    pub fn describe(&self) -> String {
        let kind = self.resource_kind.as_str().replace('_', " ");
        format!("{} of {} ({kind})", self.entitlement_name, self.resource_name)
    }
}

const REQUEST_COLUMNS: &[&str] = &[
    "id",
    "connector_id",
    "entitlement_id",
    "principal_id",
    "requester_object",
    "requester_name",
    "requester_email",
    "asked_by",
    "duration_minutes",
    "justification",
    "ticket",
    "state",
    "stage",
    "stages",
    "quorum",
    "policy",
    "starts_at",
    "approval_due_at",
    "created_at",
    "updated_at",
    "decided_at",
    "activated_at",
    "expires_at",
    "ended_at",
    "ended_by",
    "end_reason",
    "grant_change_id",
    "revoke_change_id",
    "extends_id",
    "approvers_mailed_stage",
    "decision_mailed_at",
    "expiry_notice_at",
    "resource_id",
    "resource_kind",
    "resource_name",
    "resource_object",
    "entitlement_key",
    "entitlement_name",
];

/// The request rows joined with what they are for; a caller appends ` WHERE …`.
fn select_requests(backend: sea_orm::DbBackend) -> Sql {
    let own: Vec<String> = REQUEST_COLUMNS[..32].iter().map(|c| format!("q.{c}")).collect();
    Sql::new(
        backend,
        &format!(
            "SELECT {}, r.id AS resource_id, r.kind AS resource_kind, r.display_name AS resource_name, \
             r.external_id AS resource_object, e.key AS entitlement_key, e.display_name AS entitlement_name \
             FROM access_requests q JOIN entitlements e ON e.id = q.entitlement_id JOIN resources r ON r.id = e.resource_id",
            own.join(", ")
        ),
    )
}

/// A request's approver in one stage, and what they said if they did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestApprover {
    pub stage: u32,
    pub object_id: String,
    pub name: String,
    pub email: Option<String>,
    #[serde(default, deserialize_with = "crate::sql::optional_bool")]
    pub approve: Option<bool>,
    pub reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Asked by this person (object id).
    pub requester: Option<String>,
    /// Waiting for this approver (object id): pending, in a stage they approve, not voted yet.
    pub awaiting: Option<String>,
    pub state: Option<RequestState>,
    /// Only in these connectors (a reader's scope); `None` for all.
    pub within: Option<Vec<ConnectorId>>,
    pub limit: u64,
}

/// What a vote came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Voted {
    pub request: Request,
    pub tally: Tally,
}

/// The rows the expiry job has to act on, with their changes' states.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DueRequest {
    pub id: i64,
    pub entitlement_id: i64,
    pub principal_id: i64,
    pub state: RequestState,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub approval_due_at: DateTime<Utc>,
    pub grant_change_id: Option<i64>,
    pub grant_change_state: Option<String>,
    pub grant_change_error: Option<String>,
    pub grant_change_finished_at: Option<DateTime<Utc>>,
    pub revoke_change_id: Option<i64>,
    pub revoke_change_state: Option<String>,
    pub revoke_change_result: Option<String>,
    pub revoke_change_error: Option<String>,
    pub revoke_change_finished_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// Set when someone ended it early (then it ends `revoked`, not `expired`).
    pub ended_by: Option<String>,
}

/// One column to set in a step: its name and value.
pub type Set = (&'static str, Value);

/// An activation in Entra (PIM self-activation) still under way after this long has an unknown
/// outcome: the access job takes it as given, to be removed at its end.
pub const ACTIVATION_UNKNOWN_AFTER_MINUTES: i64 = 10;

impl Requests<'_> {
    /// The policies that bear on an entitlement: its own and its kind's default.
    pub async fn policies_for(
        self,
        connector: ConnectorId,
        entitlement: EntitlementId,
        kind: ResourceKind,
    ) -> Result<(Option<AccessPolicy>, Option<AccessPolicy>), StoreError> {
        let own = self.policy(connector, PolicyScope::Entitlement(entitlement)).await?;
        let default = self.policy(connector, PolicyScope::Kind(kind)).await?;
        Ok((own, default))
    }

    /// The policy set on `scope`, if any.
    pub async fn policy(self, connector: ConnectorId, scope: PolicyScope) -> Result<Option<AccessPolicy>, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT policy FROM access_policies WHERE connector_id = ");
        sql.value(connector.0).push(" AND scope_key = ").value(scope.key());
        let rows: Vec<(String,)> = select_json(&self.db, sql, &["policy"]).await?;
        rows.into_iter()
            .next()
            .map(|(text,)| {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    table: "access_policies",
                    id: 0,
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// Sets (replaces) the policy on `scope`, audited with what it was before.
    pub async fn set_policy(
        self,
        connector: ConnectorId,
        scope: PolicyScope,
        policy: &AccessPolicy,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        let before = self.policy(connector, scope).await?;
        let text = serde_json::to_string(policy).map_err(|e| StoreError::Internal(e.to_string()))?;
        let txn = self.begin_write().await?;
        let (entitlement, kind) = match scope {
            PolicyScope::Entitlement(id) => (Some(id.0), None),
            PolicyScope::Kind(kind) => (None, Some(kind.as_str())),
        };
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO access_policies (connector_id, scope_key, entitlement_id, resource_kind, policy, updated_by, updated_at) VALUES (",
        );
        sql.value(connector.0).push(", ").value(scope.key()).push(", ").value(entitlement);
        sql.push(", ").value(kind).push(", ").value(text.clone()).push(", ").value(by.to_owned());
        sql.push(", ").value(now).push(") ON CONFLICT (connector_id, scope_key) DO UPDATE SET policy = ");
        sql.value(text).push(", updated_by = ").value(by.to_owned()).push(", updated_at = ").value(now);
        txn.execute_raw(sql.build()).await?;
        if let PolicyScope::Entitlement(id) = scope {
            // The catalog's flag: an entitlement's own policy says whether it is requestable.
            let mut sql = Sql::new(self.backend(), "UPDATE entitlements SET requestable = ");
            sql.value(policy.requestable).push(" WHERE id = ").value(id.0);
            txn.execute_raw(sql.build()).await?;
        }
        let draft = AuditEventDraft {
            occurred_at: now,
            actor: by.to_owned(),
            action: "access.policy_set".to_owned(),
            target_kind: Some(match scope {
                PolicyScope::Entitlement(_) => "entitlement".to_owned(),
                PolicyScope::Kind(_) => "resource_kind".to_owned(),
            }),
            target_id: Some(match scope {
                PolicyScope::Entitlement(id) => id.0.to_string(),
                PolicyScope::Kind(kind) => kind.to_string(),
            }),
            details: json!({"connector_id": connector.0, "before": before, "after": policy}),
        };
        self.audit().append_audit_in(&txn, draft).await?;
        txn.commit().await?;
        Ok(())
    }

    /// What can be asked for in `connector` (every connector when `None`), matching `search`
    /// in the resource's or entitlement's name, by resource name. Entitlements of a kind whose
    /// default policy is requestable are in it unless their own policy says otherwise.
    pub async fn catalog(
        self,
        connector: Option<ConnectorId>,
        search: Option<&str>,
        limit: u64,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        let mut defaults: HashMap<(i64, String), AccessPolicy> = HashMap::new();
        let sql = Sql::new(
            self.backend(),
            "SELECT connector_id, resource_kind, policy FROM access_policies WHERE resource_kind IS NOT NULL",
        );
        let rows: Vec<(i64, String, String)> =
            select_json(&self.db, sql, &["connector_id", "resource_kind", "policy"]).await?;
        for (connector, kind, text) in rows {
            if let Ok(policy) = serde_json::from_str::<AccessPolicy>(&text) {
                defaults.insert((connector, kind), policy);
            }
        }
        let mut sql = Sql::new(
            self.backend(),
            "SELECT e.id AS entitlement_id, e.connector_id, r.id AS resource_id, r.kind AS resource_kind, \
             r.display_name AS resource_name, r.external_id AS resource_object, e.key AS entitlement_key, \
             e.display_name AS entitlement_name, COALESCE(e.description, r.description) AS description, p.policy, \
             r.attributes \
             FROM entitlements e JOIN resources r ON r.id = e.resource_id \
             LEFT JOIN access_policies p ON p.connector_id = e.connector_id AND p.entitlement_id = e.id \
             WHERE e.deleted_at IS NULL AND r.deleted_at IS NULL AND (e.requestable",
        );
        let open: Vec<(i64, String)> = defaults.iter().filter(|(_, p)| p.requestable).map(|(k, _)| k.clone()).collect();
        for (connector, kind) in &open {
            sql.push(" OR (p.id IS NULL AND e.connector_id = ").value(*connector);
            sql.push(" AND r.kind = ").value(kind.clone()).push(")");
        }
        sql.push(")");
        if let Some(connector) = connector {
            sql.push(" AND e.connector_id = ").value(connector.0);
        }
        if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
            let like = format!("%{}%", search.to_lowercase().replace('%', "\\%").replace('_', "\\_"));
            sql.push(" AND (lower(r.display_name) LIKE ").value(like.clone()).push(" ESCAPE '\\'");
            sql.push(" OR lower(e.display_name) LIKE ").value(like).push(" ESCAPE '\\')");
        }
        sql.push(" ORDER BY r.display_name, e.display_name, e.id LIMIT ")
            .value(i64::try_from(limit).unwrap_or(i64::MAX));
        #[derive(Deserialize)]
        struct Row {
            entitlement_id: i64,
            connector_id: i64,
            resource_id: i64,
            resource_kind: ResourceKind,
            resource_name: String,
            resource_object: String,
            entitlement_key: String,
            entitlement_name: String,
            description: Option<String>,
            policy: Option<String>,
            attributes: Option<String>,
        }
        let rows: Vec<Row> = select_json(
            &self.db,
            sql,
            &[
                "entitlement_id",
                "connector_id",
                "resource_id",
                "resource_kind",
                "resource_name",
                "resource_object",
                "entitlement_key",
                "entitlement_name",
                "description",
                "policy",
                "attributes",
            ],
        )
        .await?;
        Ok(rows
            .into_iter()
            // A group Graph cannot change (dynamic, distribution, mail-enabled, on-premises)
            // is never offered, whatever a default says.
            .filter(|row| {
                let attributes: serde_json::Value =
                    row.attributes.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or_default();
                let key = row.entitlement_key.parse::<attest_domain::EntitlementKey>();
                row.resource_kind != ResourceKind::Group
                    || key.is_ok_and(|k| attest_domain::resource::group_managed_elsewhere(&attributes, &k).is_none())
            })
            .map(|row| {
                let own = row.policy.as_deref().and_then(|t| serde_json::from_str::<AccessPolicy>(t).ok());
                let default = defaults.get(&(row.connector_id, row.resource_kind.as_str().to_owned()));
                CatalogEntry {
                    entitlement_id: row.entitlement_id,
                    connector_id: row.connector_id,
                    resource_id: row.resource_id,
                    resource_kind: row.resource_kind,
                    resource_name: row.resource_name,
                    resource_object: row.resource_object,
                    entitlement_key: row.entitlement_key,
                    entitlement_name: row.entitlement_name,
                    description: row.description,
                    policy: AccessPolicy::effective(own.as_ref(), default),
                }
            })
            .filter(|entry| entry.policy.requestable)
            .collect())
    }

    /// Records a new request (`pending`, or `approved` when it needs no approval) with its
    /// approvers, audited as `access.requested`.
    pub async fn create_request(self, new: &NewRequest, now: DateTime<Utc>) -> Result<Request, StoreError> {
        let now = micros(now);
        let stages = u32::try_from(new.approvers.len()).unwrap_or(0);
        let state = if stages == 0 { RequestState::Approved } else { RequestState::Pending };
        let due = now + new.policy.approval_timeout.duration();
        let policy = serde_json::to_string(&new.policy).map_err(|e| StoreError::Internal(e.to_string()))?;
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO access_requests (connector_id, entitlement_id, principal_id, requester_object, requester_name, \
             requester_email, asked_by, duration_minutes, justification, ticket, state, stage, stages, quorum, policy, \
             starts_at, approval_due_at, created_at, updated_at, decided_at, extends_id, approvers_mailed_stage) VALUES (",
        );
        sql.value(new.connector_id.0).push(", ").value(new.entitlement_id.0).push(", ").value(new.principal_id.0);
        sql.push(", ").value(new.requester.object_id.clone()).push(", ").value(new.requester.name.clone());
        sql.push(", ").value(new.requester.email.clone()).push(", ").value(new.asked_by.clone());
        sql.push(", ").value(new.duration_minutes.map(|m| m as i32)).push(", ").value(new.justification.clone());
        sql.push(", ").value(new.ticket.clone()).push(", ").value(state.as_str());
        sql.push(", ").value(if stages == 0 { 0 } else { 1 }).push(", ").value(stages as i32);
        sql.push(", ").value(new.policy.quorum as i32).push(", ").value(policy);
        sql.push(", ").value(new.starts_at.map(micros)).push(", ").value(due).push(", ").value(now);
        sql.push(", ").value(now).push(", ").value((stages == 0).then_some(now)).push(", ").value(new.extends);
        sql.push(", 0) RETURNING id");
        let row = txn
            .query_one_raw(sql.build())
            .await?
            .ok_or_else(|| StoreError::Internal("a new request has no id".into()))?;
        let id: i64 = row.try_get_by_index(0)?;
        for (index, people) in new.approvers.iter().enumerate() {
            if people.is_empty() {
                continue;
            }
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO access_request_approvers (request_id, stage, approver_object, approver_name, approver_email) VALUES ",
            );
            for (n, person) in people.iter().enumerate() {
                if n > 0 {
                    sql.push(", ");
                }
                sql.push("(").value(id).push(", ").value(index as i32 + 1).push(", ");
                sql.value(person.object_id.clone()).push(", ").value(person.name.clone()).push(", ");
                sql.value(person.email.clone()).push(")");
            }
            txn.execute_raw(sql.build()).await?;
        }
        let details = json!({
            "requester": new.requester.object_id,
            "requester_name": new.requester.name,
            "entitlement_id": new.entitlement_id.0,
            "principal_id": new.principal_id.0,
            "duration_minutes": new.duration_minutes,
            "justification": new.justification,
            "ticket": new.ticket,
            "starts_at": new.starts_at,
            "extends": new.extends,
            "state": state,
            "approvers": new.approvers.iter().map(|s| s.iter().map(|p| &p.object_id).collect::<Vec<_>>()).collect::<Vec<_>>(),
        });
        audit(&txn, self, &new.asked_by, "access.requested", id, details, now).await?;
        txn.commit().await?;
        self.get_request(id).await
    }

    pub async fn get_request(self, id: i64) -> Result<Request, StoreError> {
        let mut sql = select_requests(self.backend());
        sql.push(" WHERE q.id = ").value(id);
        select_json::<Request>(&self.db, sql, REQUEST_COLUMNS)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound { what: "access request", key: id.to_string() })
    }

    /// Requests, newest first.
    pub async fn list_requests(self, filter: &RequestFilter) -> Result<Vec<Request>, StoreError> {
        let mut sql = select_requests(self.backend());
        sql.push(" WHERE 1 = 1");
        if let Some(requester) = &filter.requester {
            sql.push(" AND q.requester_object = ").value(requester.clone());
        }
        if let Some(approver) = &filter.awaiting {
            sql.push(" AND q.state = 'pending' AND EXISTS (SELECT 1 FROM access_request_approvers a WHERE a.request_id = q.id AND a.stage = q.stage AND a.approver_object = ");
            sql.value(approver.clone());
            sql.push(") AND NOT EXISTS (SELECT 1 FROM access_request_votes v WHERE v.request_id = q.id AND v.stage = q.stage AND v.approver_object = ");
            sql.value(approver.clone()).push(")");
        }
        if let Some(state) = filter.state {
            sql.push(" AND q.state = ").value(state.as_str());
        }
        if let Some(within) = &filter.within {
            sql.push(" AND q.connector_id IN ").tuple(within.iter().map(|c| Value::from(c.0)));
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        sql.push(" ORDER BY q.id DESC LIMIT ").value(i64::try_from(limit).unwrap_or(i64::MAX));
        select_json(&self.db, sql, REQUEST_COLUMNS).await
    }

    /// How many requests wait for this approver's answer.
    pub async fn count_awaiting(self, approver: &str) -> Result<u64, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT COUNT(*) FROM access_requests q JOIN access_request_approvers a ON a.request_id = q.id AND a.stage = q.stage \
             WHERE q.state = 'pending' AND a.approver_object = ",
        );
        sql.value(approver.to_owned());
        sql.push(" AND NOT EXISTS (SELECT 1 FROM access_request_votes v WHERE v.request_id = q.id AND v.stage = q.stage AND v.approver_object = ");
        sql.value(approver.to_owned()).push(")");
        let row = self.db.query_one_raw(sql.build()).await?;
        Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u64)
    }

    /// The request's approvers, stage by stage, with their votes.
    pub async fn approvers(self, request: i64) -> Result<Vec<RequestApprover>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT a.stage, a.approver_object AS object_id, a.approver_name AS name, a.approver_email AS email, \
             v.approve, v.reason, v.decided_at FROM access_request_approvers a LEFT JOIN access_request_votes v \
             ON v.request_id = a.request_id AND v.stage = a.stage AND v.approver_object = a.approver_object \
             WHERE a.request_id = ",
        );
        sql.value(request).push(" ORDER BY a.stage, a.approver_name, a.approver_object");
        select_json(&self.db, sql, &["stage", "object_id", "name", "email", "approve", "reason", "decided_at"]).await
    }

    /// An approver's answer in the request's current stage, and where that leaves it: the
    /// stage passes with its quorum (the next stage starts, or the request is approved); one
    /// denial denies. Refused unless the request is pending in that stage, the approver is
    /// one of it, and has not answered yet.
    pub async fn vote(
        self,
        request: i64,
        approver: &Person,
        by: &str,
        approve: bool,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Voted, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let before = self.get_request_in(&txn, request).await?;
        if before.state != RequestState::Pending {
            return Err(AccessRefusal::WrongState(before.state, "decided").into());
        }
        let stage = before.stage;
        let mut sql = Sql::new(self.backend(), "SELECT COUNT(*) FROM access_request_approvers WHERE request_id = ");
        sql.value(request).push(" AND stage = ").value(stage as i32).push(" AND approver_object = ");
        sql.value(approver.object_id.clone());
        let listed: i64 =
            txn.query_one_raw(sql.build()).await?.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
        if listed == 0 {
            return Err(AccessRefusal::NotAnApprover(Some(stage)).into());
        }
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO access_request_votes (request_id, stage, approver_object, approver_name, approve, reason, decided_at) VALUES (",
        );
        sql.value(request).push(", ").value(stage as i32).push(", ").value(approver.object_id.clone());
        sql.push(", ").value(approver.name.clone()).push(", ").value(approve).push(", ");
        sql.value(reason.map(str::to_owned)).push(", ").value(now).push(") ON CONFLICT DO NOTHING");
        if txn.execute_raw(sql.build()).await?.rows_affected() == 0 {
            return Err(AccessRefusal::AlreadyDecided.into());
        }
        let mut sql = Sql::new(
            self.backend(),
            "SELECT SUM(CASE WHEN approve THEN 1 ELSE 0 END), SUM(CASE WHEN approve THEN 0 ELSE 1 END) FROM access_request_votes WHERE request_id = ",
        );
        sql.value(request).push(" AND stage = ").value(stage as i32);
        let row = txn.query_one_raw(sql.build()).await?.ok_or_else(|| StoreError::Internal("no vote count".into()))?;
        let approvals: i64 = row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0);
        let denials: i64 = row.try_get_by_index::<Option<i64>>(1)?.unwrap_or(0);
        let outcome = tally(stage, before.stages, before.quorum, approvals as u32, denials as u32);
        let (sets, action): (Vec<Set>, &str) = match outcome {
            Tally::Waiting { .. } => (vec![], if approve { "access.approval_given" } else { "access.denied" }),
            Tally::NextStage(next) => (vec![("stage", Value::from(next as i32))], "access.stage_approved"),
            Tally::Approved => (
                vec![("state", Value::from(RequestState::Approved.as_str())), ("decided_at", Value::from(now))],
                "access.approved",
            ),
            Tally::Denied => (
                vec![
                    ("state", Value::from(RequestState::Denied.as_str())),
                    ("decided_at", Value::from(now)),
                    ("ended_at", Value::from(now)),
                    ("ended_by", Value::from(approver.name.clone())),
                    ("end_reason", Value::from(reason.map(str::to_owned))),
                ],
                "access.denied",
            ),
        };
        self.update(&txn, request, &sets, now).await?;
        let details = json!({
            "stage": stage,
            "approver": approver.object_id,
            "approver_name": approver.name,
            "approve": approve,
            "reason": reason,
            "approvals": approvals,
            "quorum": before.quorum,
            "state": match outcome { Tally::Approved => RequestState::Approved, Tally::Denied => RequestState::Denied, _ => RequestState::Pending },
        });
        audit(&txn, self, by, action, request, details, now).await?;
        let request = self.get_request_in(&txn, request).await?;
        txn.commit().await?;
        Ok(Voted { request, tally: outcome })
    }

    /// Moves a request from one of `from` by setting `sets` (which name the new `state`, if it
    /// changes), audited as `action`. Returns `None`, changing nothing, when it is no longer
    /// in one of `from` (someone else moved it first).
    #[allow(clippy::too_many_arguments)]
    pub async fn step(
        self,
        request: i64,
        from: &[RequestState],
        sets: &[Set],
        by: &str,
        action: &str,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Option<Request>, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET updated_at = ");
        sql.value(now);
        for (column, value) in sets {
            sql.push(&format!(", {column} = ")).value(value.clone());
        }
        sql.push(" WHERE id = ").value(request);
        sql.push(" AND state IN ").tuple(from.iter().map(|s| Value::from(s.as_str())));
        if txn.execute_raw(sql.build()).await?.rows_affected() == 0 {
            return Ok(None);
        }
        audit(&txn, self, by, action, request, details, now).await?;
        let after = self.get_request_in(&txn, request).await?;
        txn.commit().await?;
        Ok(Some(after))
    }

    /// Requests the expiry job has to act on at `now`, oldest first: approved ones to give,
    /// ones being given or taken away (with their change's state), active ones past their
    /// end, pending ones past their approval deadline.
    pub async fn due(self, now: DateTime<Utc>, limit: u64) -> Result<Vec<DueRequest>, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(
            self.backend(),
            "SELECT q.id, q.entitlement_id, q.principal_id, q.state, q.starts_at, q.expires_at, q.approval_due_at, q.grant_change_id, \
             gc.state AS grant_change_state, gc.last_error AS grant_change_error, gc.finished_at AS grant_change_finished_at, \
             q.revoke_change_id, rc.state AS revoke_change_state, rc.result AS revoke_change_result, \
             rc.last_error AS revoke_change_error, rc.finished_at AS revoke_change_finished_at, q.end_reason, q.ended_by \
             FROM access_requests q LEFT JOIN changes gc ON gc.id = q.grant_change_id \
             LEFT JOIN changes rc ON rc.id = q.revoke_change_id \
             WHERE (q.state = 'approved' AND (q.starts_at IS NULL OR q.starts_at <= ",
        );
        // Only what needs a step now: a change still in the queue needs nothing until it ends,
        // so thousands waiting on the write quota never crowd out what is due; nor do requests
        // waiting for their requester to activate them in Entra, until their deadline; nor an
        // activation under way, unless it has been for ten minutes (its outcome is unknown).
        sql.value(now).push(") AND (q.activation_due_at IS NULL OR q.activation_due_at <= ").value(now);
        sql.push(
            ")) OR (q.state = 'provisioning' AND gc.state IN ('applied', 'failed', 'cancelled', 'denied', 'outcome_unknown')) \
             OR (q.state = 'provisioning' AND q.grant_change_id IS NULL AND q.updated_at <= ",
        );
        sql.value(micros(now - chrono::Duration::minutes(ACTIVATION_UNKNOWN_AFTER_MINUTES))).push(
            ") \
             OR (q.state = 'active' AND rc.state = 'applied') \
             OR (q.state = 'active' AND q.revoke_change_id IS NULL AND (q.ended_by IS NOT NULL OR q.expires_at <= ",
        );
        sql.value(now).push(")) OR (q.state = 'pending' AND q.approval_due_at <= ").value(now);
        sql.push(") ORDER BY q.id LIMIT ").value(i64::try_from(limit).unwrap_or(i64::MAX));
        select_json(
            &self.db,
            sql,
            &[
                "id",
                "entitlement_id",
                "principal_id",
                "state",
                "starts_at",
                "expires_at",
                "approval_due_at",
                "grant_change_id",
                "grant_change_state",
                "grant_change_error",
                "grant_change_finished_at",
                "revoke_change_id",
                "revoke_change_state",
                "revoke_change_result",
                "revoke_change_error",
                "revoke_change_finished_at",
                "end_reason",
                "ended_by",
            ],
        )
        .await
    }

    /// The open request (pending, approved, being given or active) of a person for an
    /// entitlement, if any.
    pub async fn open_request(
        self,
        entitlement: EntitlementId,
        principal: PrincipalId,
    ) -> Result<Option<Request>, StoreError> {
        let mut sql = select_requests(self.backend());
        sql.push(" WHERE q.entitlement_id = ").value(entitlement.0).push(" AND q.principal_id = ").value(principal.0);
        sql.push(" AND q.state IN ('pending', 'approved', 'provisioning', 'active') ORDER BY q.id DESC LIMIT 1");
        Ok(select_json::<Request>(&self.db, sql, REQUEST_COLUMNS).await?.pop())
    }

    /// The current grant a person holds on an entitlement themselves (not through a group),
    /// if they hold it.
    pub async fn held_grant(
        self,
        entitlement: EntitlementId,
        principal: PrincipalId,
    ) -> Result<Option<HeldAccess>, StoreError> {
        let columns = ["id", "expires_at", "extended_in_directory_at"];
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "SELECT {} FROM grants WHERE ended_at IS NULL AND source <> 'inherited' AND entitlement_id = ",
                columns.join(", ")
            ),
        );
        sql.value(entitlement.0).push(" AND principal_id = ").value(principal.0).push(" ORDER BY id LIMIT 1");
        type Row = (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = select_json(&self.db, sql, &columns).await?;
        Ok(rows.into_iter().next().map(|(id, expires_at, extended_in_directory_at)| HeldAccess {
            id: GrantId(id),
            expires_at,
            extended_in_directory_at,
        }))
    }

    /// Whether `principal` is eligible now, through a direct PIM eligibility for the whole
    /// directory (scope `/`), for the directory role whose active assignment is `active` (what
    /// PIM's self-activation needs, and what Attest asks it for).
    pub async fn holds_eligibility(
        self,
        active: EntitlementId,
        principal: PrincipalId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT g.id AS id FROM grants g JOIN entitlements el ON el.id = g.entitlement_id \
             JOIN entitlements ea ON ea.resource_id = el.resource_id WHERE el.key = 'eligible' \
             AND g.ended_at IS NULL AND g.source <> 'inherited' AND g.scope = '/' AND (g.expires_at IS NULL OR g.expires_at > ",
        );
        sql.value(micros(now)).push(") AND ea.id = ");
        sql.value(active.0).push(" AND g.principal_id = ").value(principal.0).push(" LIMIT 1");
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        Ok(!rows.is_empty())
    }

    /// Notes that approved request `id` waits for its requester to activate it in Entra, until
    /// `due_at` (the access job looks at it again only then). Returns whether this is news (it
    /// was not noted before).
    pub async fn await_activation(self, id: i64, due_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET activation_due_at = ");
        sql.value(micros(due_at)).push(" WHERE state = 'approved' AND activation_due_at IS NULL AND id = ").value(id);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() == 1)
    }

    /// Lets go of a just-in-time grant someone made permanent in the directory: it becomes an
    /// ordinary direct grant with no end, as the directory holds it.
    pub async fn release_grant(self, grant: GrantId) -> Result<(), StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "UPDATE grants SET source = 'direct', expires_at = NULL, extended_in_directory_at = NULL WHERE id = ",
        );
        sql.value(grant.0).push(" AND source = 'jit'");
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Marks the grant a request gave as just in time, ending at `expires_at` (sync keeps
    /// both). Returns whether the graph had it yet (the provisioner writes it through).
    pub async fn mark_grant_jit(
        self,
        entitlement: EntitlementId,
        principal: PrincipalId,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE grants SET source = 'jit', expires_at = ");
        sql.value(expires_at.map(micros))
            .push(" WHERE ended_at IS NULL AND source <> 'inherited' AND entitlement_id = ");
        sql.value(entitlement.0).push(" AND principal_id = ").value(principal.0);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() > 0)
    }

    /// Claims sending the mail about stage `stage` to its approvers (true: this caller sends).
    pub async fn claim_approver_mail(self, request: i64, stage: u32) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET approvers_mailed_stage = ");
        sql.value(stage as i32).push(" WHERE id = ").value(request).push(" AND approvers_mailed_stage < ");
        sql.value(stage as i32);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() > 0)
    }

    /// Claims sending the requester the outcome (true: this caller sends).
    pub async fn claim_decision_mail(self, request: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET decision_mailed_at = ");
        sql.value(micros(now)).push(" WHERE decision_mailed_at IS NULL AND id = ").value(request);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() > 0)
    }

    /// Requests with mail owed: pending ones whose current stage's approvers were not told,
    /// and decided ones (or approved ones waiting for their requester to activate them in
    /// Entra) whose requester was not.
    pub async fn mail_owed(self, limit: u64) -> Result<Vec<Request>, StoreError> {
        let mut sql = select_requests(self.backend());
        sql.push(
            " WHERE (q.state = 'pending' AND q.approvers_mailed_stage < q.stage) \
             OR (q.decision_mailed_at IS NULL AND q.state IN ('denied', 'active', 'failed') AND q.stages > 0) \
             OR (q.decision_mailed_at IS NULL AND q.state = 'approved' AND q.activation_due_at IS NOT NULL) \
             ORDER BY q.id LIMIT ",
        );
        sql.value(i64::try_from(limit).unwrap_or(i64::MAX));
        select_json(&self.db, sql, REQUEST_COLUMNS).await
    }

    /// Entitlements matching a name: of resources of `kind` whose object id or display name
    /// (any case) is `resource`, with the key `key`, or an app role of that display name (or
    /// id). Every match, so a caller can say a name is ambiguous: `(entitlement, connector,
    /// resource display name)`.
    pub async fn find_entitlements(
        self,
        connector: Option<ConnectorId>,
        kind: ResourceKind,
        resource: &str,
        key: Option<&str>,
        app_role: Option<&str>,
    ) -> Result<Vec<(i64, i64, String)>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT e.id, e.connector_id, r.display_name FROM entitlements e JOIN resources r ON r.id = e.resource_id \
             WHERE e.deleted_at IS NULL AND r.deleted_at IS NULL AND r.kind = ",
        );
        sql.value(kind.as_str()).push(" AND (r.external_id = ").value(resource.trim().to_owned());
        sql.push(" OR lower(r.display_name) = ").value(resource.trim().to_lowercase()).push(")");
        if let Some(connector) = connector {
            sql.push(" AND e.connector_id = ").value(connector.0);
        }
        match (key, app_role) {
            (Some(key), _) => {
                sql.push(" AND e.key = ").value(key.to_owned());
            }
            (None, Some(role)) => {
                sql.push(" AND e.key LIKE 'role:%' AND (lower(e.display_name) = ").value(role.trim().to_lowercase());
                sql.push(" OR e.key = ").value(format!("role:{}", role.trim())).push(")");
            }
            (None, None) => return Ok(Vec::new()),
        }
        sql.push(" ORDER BY e.id");
        select_json(&self.db, sql, &["id", "connector_id", "display_name"]).await
    }

    /// A resource's owners who are people.
    pub async fn owners_of(self, resource: attest_domain::ResourceId) -> Result<Vec<Person>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT p.external_id, p.display_name, COALESCE(p.email, p.user_principal_name) AS address \
             FROM grants g JOIN entitlements e ON e.id = g.entitlement_id JOIN principals p ON p.id = g.principal_id \
             WHERE e.key = 'owner' AND g.ended_at IS NULL AND p.kind = 'user' AND p.deleted_at IS NULL AND e.resource_id = ",
        );
        sql.value(resource.0).push(" ORDER BY p.display_name");
        let rows: Vec<(String, String, Option<String>)> =
            select_json(&self.db, sql, &["external_id", "display_name", "address"]).await?;
        Ok(rows.into_iter().map(|(object_id, name, email)| Person { object_id, name, email }).collect())
    }

    /// A group's object id, by object id or display name (any case); `None` if no live group
    /// of the connector has it, or several share the name.
    pub async fn group_object(self, connector: ConnectorId, name: &str) -> Result<Option<String>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT external_id FROM resources WHERE kind = 'group' AND deleted_at IS NULL AND connector_id = ",
        );
        sql.value(connector.0).push(" AND (external_id = ").value(name.trim().to_owned());
        sql.push(" OR lower(display_name) = ").value(name.trim().to_lowercase()).push(") ORDER BY id LIMIT 2");
        let rows: Vec<(String,)> = select_json(&self.db, sql, &["external_id"]).await?;
        Ok(if rows.len() == 1 { rows.into_iter().next().map(|(id,)| id) } else { None })
    }

    /// Whether a person is a direct member of a group (by object ids).
    pub async fn is_member(self, connector: ConnectorId, group: &str, person: &str) -> Result<bool, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT COUNT(*) FROM grants g JOIN entitlements e ON e.id = g.entitlement_id JOIN resources r ON r.id = e.resource_id \
             JOIN principals p ON p.id = g.principal_id WHERE e.key = 'member' AND g.ended_at IS NULL AND g.ineffective_reason IS NULL \
             AND r.kind = 'group' AND g.connector_id = ",
        );
        sql.value(connector.0).push(" AND r.external_id = ").value(group.to_owned());
        sql.push(" AND p.external_id = ").value(person.to_owned());
        let row = self.db.query_one_raw(sql.build()).await?;
        Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) > 0)
    }

    /// Benchmarks only: records requests that are already active, for grants the directory
    /// already has (`(entitlement, principal, principal's object id)`), ending at
    /// `expires_at[i]`. Never called by the product.
    #[cfg(feature = "bench")]
    pub async fn insert_active_for_benchmark(
        self,
        connector: ConnectorId,
        rows: &[(i64, i64, String)],
        expires_at: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        let policy = serde_json::to_string(&AccessPolicy { requestable: true, ..Default::default() })
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        for (chunk, ends) in rows.chunks(500).zip(expires_at.chunks(500)) {
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO access_requests (connector_id, entitlement_id, principal_id, requester_object, requester_name, \
                 asked_by, duration_minutes, justification, state, stage, stages, quorum, policy, approval_due_at, created_at, \
                 updated_at, decided_at, activated_at, expires_at, approvers_mailed_stage, decision_mailed_at) VALUES ",
            );
            for (n, ((entitlement, principal, object), end)) in chunk.iter().zip(ends).enumerate() {
                if n > 0 {
                    sql.push(", ");
                }
                sql.push("(").value(connector.0).push(", ").value(*entitlement).push(", ").value(*principal);
                sql.push(", ").value(object.clone()).push(", 'bench', 'bench', 60, 'bench', 'active', 0, 0, 1, ");
                sql.value(policy.clone()).push(", ").value(now).push(", ").value(now).push(", ").value(now);
                sql.push(", ").value(now).push(", ").value(now).push(", ").value(micros(*end)).push(", 0, ");
                sql.value(now).push(")");
            }
            self.db.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    /// Benchmarks only: each ended request's delay from `expires_at` to its removal's change
    /// finishing, in milliseconds, and how many have not ended yet.
    #[cfg(feature = "bench")]
    pub async fn expiry_delays_for_benchmark(self) -> Result<(Vec<i64>, u64), StoreError> {
        let sql = Sql::new(
            self.backend(),
            "SELECT q.state, q.expires_at, c.finished_at FROM access_requests q LEFT JOIN changes c ON c.id = q.revoke_change_id",
        );
        type Row = (RequestState, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = select_json(&self.db, sql, &["state", "expires_at", "finished_at"]).await?;
        let mut delays = Vec::new();
        let mut open = 0;
        for (state, expires, finished) in rows {
            match (state, expires, finished) {
                (RequestState::Expired, Some(e), Some(f)) => delays.push((f - e).num_milliseconds()),
                (RequestState::Expired, _, _) => {}
                _ => open += 1,
            }
        }
        Ok((delays, open))
    }

    /// Active time-bound access ending within a week of `now` (not being removed): the
    /// candidates for an expiry notice.
    pub async fn ending_within_a_week(self, now: DateTime<Utc>, limit: u64) -> Result<Vec<Request>, StoreError> {
        let mut sql = select_requests(self.backend());
        sql.push(
            " WHERE q.state = 'active' AND q.revoke_change_id IS NULL AND q.ended_by IS NULL AND q.expires_at <= ",
        );
        sql.value(micros(now + chrono::Duration::days(7))).push(" AND q.expires_at > ").value(micros(now));
        sql.push(" ORDER BY q.expires_at LIMIT ").value(i64::try_from(limit).unwrap_or(i64::MAX));
        select_json(&self.db, sql, REQUEST_COLUMNS).await
    }

    /// Time-bound access changed in the directory outside Attest, with no newer request for
    /// it: `returned`, requests that ended (expired or revoked, so Attest removed the access)
    /// whose holder has the entitlement again from a grant first seen after the end; and
    /// `extended`, just-in-time grants a sync found made permanent or given a later end there
    /// (PIM schedules), whether their request still runs or ended and left them in place.
    /// Newest first; within `within` connectors and on `resource` when given.
    pub async fn drifted(
        self,
        kind: Option<&str>,
        within: Option<&[ConnectorId]>,
        resource: Option<attest_domain::ResourceId>,
        limit: u64,
    ) -> Result<Vec<Drift>, StoreError> {
        // Both kinds look at the person's latest request for the entitlement only: a newer one
        // explains the access.
        let (columns, latest) = (
            "q.id AS request_id, q.connector_id AS connector_id, q.entitlement_id AS entitlement_id, \
             q.principal_id AS principal_id, g.id AS grant_id, q.requester_name AS requester_name, r.id AS resource_id, \
             r.kind AS resource_kind, r.display_name AS resource_name, e.display_name AS entitlement_name, \
             q.policy AS policy",
            "JOIN entitlements e ON e.id = q.entitlement_id JOIN resources r ON r.id = e.resource_id \
             WHERE NOT EXISTS (SELECT 1 FROM access_requests n WHERE n.entitlement_id = q.entitlement_id \
             AND n.principal_id = q.principal_id AND n.id > q.id)",
        );
        let mut sql = Sql::new(
            self.backend(),
            &format!(
                "SELECT * FROM (SELECT 'returned' AS kind, {columns}, q.ended_at AS ended_at, g.first_seen_at AS seen_at \
                 FROM access_requests q JOIN grants g ON g.entitlement_id = q.entitlement_id \
                 AND g.principal_id = q.principal_id AND g.ended_at IS NULL AND g.first_seen_at > q.ended_at {latest} \
                 AND q.state IN ('expired', 'revoked') AND q.ended_at IS NOT NULL \
                 UNION ALL SELECT 'extended' AS kind, {columns}, COALESCE(q.ended_at, q.expires_at) AS ended_at, \
                 g.extended_in_directory_at AS seen_at FROM access_requests q JOIN grants g \
                 ON g.entitlement_id = q.entitlement_id AND g.principal_id = q.principal_id AND g.ended_at IS NULL \
                 AND g.source = 'jit' AND g.extended_in_directory_at IS NOT NULL {latest} \
                 AND q.state IN ('active', 'expired', 'revoked') AND q.expires_at IS NOT NULL) d WHERE 1 = 1"
            ),
        );
        if let Some(kind) = kind {
            sql.push(" AND d.kind = ").value(kind.to_owned());
        }
        if let Some(within) = within {
            sql.push(" AND d.connector_id IN ").tuple(within.iter().map(|c| Value::from(c.0)));
        }
        if let Some(resource) = resource {
            sql.push(" AND d.resource_id = ").value(resource.0);
        }
        sql.push(" ORDER BY d.seen_at DESC LIMIT ").value(i64::try_from(limit).unwrap_or(i64::MAX));
        select_json(&self.db, sql, DRIFT_COLUMNS).await
    }

    /// Claims sending an expiry notice: true when no notice went since `since` (or ever, for
    /// `None`), and records it as sent now.
    pub async fn claim_expiry_notice(
        self,
        request: i64,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET expiry_notice_at = ");
        sql.value(micros(now)).push(" WHERE id = ").value(request).push(" AND (expiry_notice_at IS NULL");
        if let Some(since) = since {
            sql.push(" OR expiry_notice_at < ").value(micros(since));
        }
        sql.push(")");
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() > 0)
    }

    /// Records the removals queued for active requests (`(request, change, audit action)`),
    /// in one transaction with each one's audit event; a request no longer active without a
    /// removal is left alone. Returns how many were recorded.
    pub async fn mark_removals(
        self,
        removals: &[(i64, i64, &str)],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut done = 0;
        for (request, change, action) in removals {
            let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET revoke_change_id = ");
            sql.value(*change).push(", updated_at = ").value(now).push(" WHERE id = ").value(*request);
            sql.push(" AND state = 'active' AND revoke_change_id IS NULL");
            if txn.execute_raw(sql.build()).await?.rows_affected() > 0 {
                audit(&txn, self, by, action, *request, json!({"change": change}), now).await?;
                done += 1;
            }
        }
        txn.commit().await?;
        Ok(done)
    }

    async fn update(
        self,
        txn: &impl ConnectionTrait,
        request: i64,
        sets: &[Set],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE access_requests SET updated_at = ");
        sql.value(now);
        for (column, value) in sets {
            sql.push(&format!(", {column} = ")).value(value.clone());
        }
        sql.push(" WHERE id = ").value(request);
        txn.execute_raw(sql.build()).await?;
        Ok(())
    }

    async fn get_request_in(self, txn: &impl ConnectionTrait, id: i64) -> Result<Request, StoreError> {
        let mut sql = select_requests(self.backend());
        sql.push(" WHERE q.id = ").value(id);
        select_json::<Request>(txn, sql, REQUEST_COLUMNS)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound { what: "access request", key: id.to_string() })
    }
}

async fn audit(
    txn: &impl ConnectionTrait,
    requests: Requests<'_>,
    actor: &str,
    action: &str,
    request: i64,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    requests.audit().record_in(txn, actor, action, "access_request", request, details, now).await?;
    Ok(())
}
