//! The change queue (outbox). Every state transition is one transaction that also appends its
//! audit event, so the log and the queue never disagree.
//!
//! Workers claim due changes with a lease: one `UPDATE … WHERE id IN (SELECT … LIMIT n)`
//! statement, with `FOR UPDATE SKIP LOCKED` on PostgreSQL so replicas claim disjoint sets
//! without waiting on each other; SQLite runs one writer at a time, which gives the same
//! guarantee. A worker that dies leaves its lease to expire, and the change is claimed again.
//! Finishing checks the lease is still the worker's, so a worker that overslept its lease
//! cannot overwrite the outcome of the one that took over.

use std::collections::HashMap;

use attest_domain::change_flow::{self, ChangeRefusal, ChangeStep, Person};
use attest_domain::time::micros;
use attest_domain::{
    Actor, ApplyResult, AuditEventDraft, Change, ChangeAction, ChangeId, ChangeKind, ChangeState, ConnectorId,
    NewChange,
};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    Value,
};
use serde_json::json;

use crate::StoreError;
use crate::areas::Changes;
use crate::entity::change::{self, Column};
use crate::queue::{self, Claim, Queue};
use crate::sql::Sql;

/// Which changes to list.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub state: Option<ChangeState>,
    pub connector: Option<ConnectorId>,
    /// Only changes in these connectors (a reader's scope); `None` for all.
    pub within: Option<Vec<ConnectorId>>,
    /// Only changes with a smaller id (paging backwards from the newest).
    pub before: Option<ChangeId>,
    /// Only changes naming this directory object (as target or as the principal).
    pub involving: Option<String>,
    /// Only changes requested by this person (case-insensitive).
    pub requested_by: Option<String>,
    pub limit: u64,
}

/// How one attempt ended, as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// Final: the change is settled (`result` says how; `Failed` results end as `failed`).
    Settled {
        result: ApplyResult,
        verified: Option<bool>,
        graph_request_id: Option<String>,
        /// For failures: what went wrong and what to do.
        error: Option<String>,
        /// Anything worth keeping in the audit event (e.g. the new assignment's id).
        details: serde_json::Value,
    },
    /// Transient: try again at `next_attempt_at`.
    Retry { error: String, next_attempt_at: DateTime<Utc> },
}

/// The result of enqueueing: the change, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub change: Change,
    pub created: bool,
}

impl Changes<'_> {
    /// Benchmarks only: cancels a connector's changes still waiting, so workers started later
    /// (for another connector) do not take them. Never called by the product.
    #[cfg(feature = "bench")]
    pub async fn cancel_waiting_for_benchmark(self, connector: ConnectorId) -> Result<u64, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "UPDATE changes SET state = 'cancelled' WHERE state = 'pending' AND connector_id = ",
        );
        sql.value(connector.0);
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected())
    }

    /// Queues a change, or returns the one already queued under the same idempotency key, or
    /// the same operation still open (pending, awaiting approval or in progress) in the same
    /// connector: asking twice for one thing (a second click on "Block sign-in") queues it
    /// once. `needs_approval` puts it in `awaiting_approval` instead of `pending`.
    pub async fn enqueue_change(
        self,
        new: NewChange,
        needs_approval: bool,
        now: DateTime<Utc>,
    ) -> Result<Enqueued, StoreError> {
        let now = micros(now);
        let state = if needs_approval { ChangeState::AwaitingApproval } else { ChangeState::Pending };
        let action = serde_json::to_string(&new.action)
            .map_err(|e| StoreError::Internal(format!("a change cannot be encoded: {e}")))?;
        let txn = self.begin_write().await?;
        let open = [ChangeState::Pending, ChangeState::AwaitingApproval, ChangeState::InProgress].map(|s| s.as_str());
        let same = change::Entity::find()
            .filter(Column::ConnectorId.eq(new.connector_id.0))
            .filter(Column::Action.eq(action.clone()))
            .filter(Column::State.is_in(open))
            .order_by_asc(Column::Id)
            .one(&txn)
            .await?;
        if let Some(same) = same {
            let change = load(&txn, same.id).await?;
            txn.commit().await?;
            return Ok(Enqueued { change, created: false });
        }
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO changes (connector_id, kind, action, target_object, principal_object, idempotency_key, \
             origin, origin_ref, requested_by, requested_by_id, reason, state, attempts, next_attempt_at, created_at, updated_at) VALUES (",
        );
        sql.value(new.connector_id.0).push(", ").value(new.action.kind().as_str()).push(", ").value(action);
        sql.push(", ").value(new.action.target().to_owned());
        sql.push(", ").value(new.action.principal().map(str::to_owned));
        sql.push(", ").value(new.idempotency_key.clone()).push(", ").value(new.origin.as_str());
        sql.push(", ").value(new.origin_ref.clone()).push(", ").value(new.requested_by.clone());
        sql.push(", ").value(new.requested_by_id.clone()).push(", ").value(new.reason.clone());
        sql.push(", ").value(state.as_str()).push(", 0, ").value(now).push(", ").value(now).push(", ").value(now);
        sql.push(") ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
        let inserted = txn.query_one_raw(sql.build()).await?;
        let (id, created) = match inserted {
            Some(row) => (row.try_get_by_index::<i64>(0)?, true),
            None => {
                let existing = change::Entity::find()
                    .filter(Column::IdempotencyKey.eq(new.idempotency_key.clone()))
                    .one(&txn)
                    .await?
                    .ok_or_else(|| StoreError::Internal("a change vanished while being enqueued".into()))?;
                (existing.id, false)
            }
        };
        if created {
            let details = json!({
                "kind": new.action.kind(),
                "action": new.action,
                "description": new.action.describe(),
                "origin": new.origin,
                "origin_ref": new.origin_ref,
                "connector_id": new.connector_id,
                "state": state,
                "requested_by_id": new.requested_by_id,
                "reason": new.reason,
            });
            self.audit_change(&txn, id, &new.requested_by, "change.requested", details, now).await?;
        }
        let change = load(&txn, id).await?;
        txn.commit().await?;
        Ok(Enqueued { change, created })
    }

    /// Queues many changes at once (pending: already approved by whatever asked for them, such
    /// as a campaign's reviewers), as [`Self::enqueue_change`] would one by one: the same key
    /// or the same open operation gives the change already queued, and each new one is audited
    /// as requested. Returns each one's change id, in order.
    pub async fn enqueue_changes(self, news: &[NewChange], now: DateTime<Utc>) -> Result<Vec<ChangeId>, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut ids = Vec::with_capacity(news.len());
        let mut drafts = Vec::new();
        let open = [ChangeState::Pending, ChangeState::AwaitingApproval, ChangeState::InProgress].map(|s| s.as_str());
        for chunk in news.chunks(1_000) {
            let actions: Vec<String> = chunk
                .iter()
                .map(|n| serde_json::to_string(&n.action))
                .collect::<Result<_, _>>()
                .map_err(|e| StoreError::Internal(format!("a change cannot be encoded: {e}")))?;
            // What is already there: by key, or as the same open operation in the connector.
            let mut sql = Sql::new(
                self.backend(),
                "SELECT id, idempotency_key, connector_id, action, state FROM changes WHERE idempotency_key IN ",
            );
            sql.tuple(chunk.iter().map(|n| n.idempotency_key.clone().into()));
            sql.push(" OR (state IN ").tuple(open.iter().map(|s| (*s).into()));
            sql.push(" AND action IN ").tuple(actions.iter().map(|a| a.clone().into())).push(")");
            let rows: Vec<(i64, String, i64, String, String)> =
                crate::sql::select_json(&txn, sql, &["id", "idempotency_key", "connector_id", "action", "state"])
                    .await?;
            let by_key: HashMap<&str, i64> = rows.iter().map(|r| (r.1.as_str(), r.0)).collect();
            let by_action: HashMap<(i64, &str), i64> =
                rows.iter().filter(|r| open.contains(&r.4.as_str())).map(|r| ((r.2, r.3.as_str()), r.0)).collect();
            let mut found: Vec<Option<i64>> = chunk
                .iter()
                .zip(&actions)
                .map(|(n, a)| {
                    by_key
                        .get(n.idempotency_key.as_str())
                        .or_else(|| by_action.get(&(n.connector_id.0, a.as_str())))
                        .copied()
                })
                .collect();
            let fresh: Vec<usize> = (0..chunk.len()).filter(|i| found[*i].is_none()).collect();
            if !fresh.is_empty() {
                let mut sql = Sql::new(
                    self.backend(),
                    "INSERT INTO changes (connector_id, kind, action, target_object, principal_object, idempotency_key, \
                     origin, origin_ref, requested_by, requested_by_id, reason, state, attempts, next_attempt_at, created_at, updated_at) VALUES ",
                );
                for (k, i) in fresh.iter().enumerate() {
                    let n = &chunk[*i];
                    if k > 0 {
                        sql.push(",");
                    }
                    sql.tuple([
                        n.connector_id.0.into(),
                        n.action.kind().as_str().into(),
                        actions[*i].clone().into(),
                        n.action.target().to_owned().into(),
                        n.action.principal().map(str::to_owned).into(),
                        n.idempotency_key.clone().into(),
                        n.origin.as_str().into(),
                        n.origin_ref.clone().into(),
                        n.requested_by.clone().into(),
                        n.requested_by_id.clone().into(),
                        n.reason.clone().into(),
                        ChangeState::Pending.as_str().into(),
                        0i32.into(),
                        now.into(),
                        now.into(),
                        now.into(),
                    ]);
                }
                sql.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key");
                let inserted: HashMap<String, i64> = txn
                    .query_all_raw(sql.build())
                    .await?
                    .into_iter()
                    .map(|row| Ok((row.try_get_by_index::<String>(1)?, row.try_get_by_index::<i64>(0)?)))
                    .collect::<Result<_, sea_orm::DbErr>>()?;
                for i in fresh {
                    let n = &chunk[i];
                    let Some(id) = inserted.get(&n.idempotency_key).copied() else { continue };
                    found[i] = Some(id);
                    drafts.push(AuditEventDraft {
                        occurred_at: now,
                        actor: n.requested_by.clone(),
                        action: "change.requested".to_owned(),
                        target_kind: Some("change".to_owned()),
                        target_id: Some(id.to_string()),
                        details: json!({
                            "kind": n.action.kind(),
                            "action": n.action,
                            "description": n.action.describe(),
                            "origin": n.origin,
                            "origin_ref": n.origin_ref,
                            "connector_id": n.connector_id,
                            "state": ChangeState::Pending,
                            "requested_by_id": n.requested_by_id,
                            "reason": n.reason,
                        }),
                    });
                }
            }
            // A key another transaction inserted meanwhile (a second replica queueing the same
            // change) conflicted: that change is the one, read now that it has committed.
            let raced: Vec<Value> = (0..chunk.len())
                .filter(|i| found[*i].is_none())
                .map(|i| chunk[i].idempotency_key.clone().into())
                .collect();
            if !raced.is_empty() {
                let mut sql =
                    Sql::new(self.backend(), "SELECT id, idempotency_key FROM changes WHERE idempotency_key IN ");
                sql.tuple(raced);
                let rows: Vec<(i64, String)> = crate::sql::select_json(&txn, sql, &["id", "idempotency_key"]).await?;
                let by_key: HashMap<&str, i64> = rows.iter().map(|r| (r.1.as_str(), r.0)).collect();
                for (i, n) in chunk.iter().enumerate() {
                    if found[i].is_none() {
                        found[i] = by_key.get(n.idempotency_key.as_str()).copied();
                    }
                }
            }
            for (i, id) in found.into_iter().enumerate() {
                let id = id.ok_or_else(|| {
                    StoreError::Internal(format!("change {} vanished while being enqueued", chunk[i].idempotency_key))
                })?;
                ids.push(ChangeId(id));
            }
        }
        self.audit().append_audit_batch_in(&txn, drafts).await?;
        txn.commit().await?;
        self.statistics.record(&self.db, "changes", ids.len() as u64).await?;
        Ok(ids)
    }

    /// Claims up to `limit` due changes for `worker` until `lease_until`: pending ones whose
    /// time has come, and in-progress ones whose lease expired (their worker died). Kinds in
    /// `skip` are left for someone else (a password reset is applied only where someone is
    /// present to be shown the password).
    pub async fn claim_changes(
        self,
        worker: &str,
        limit: u64,
        lease_until: DateTime<Utc>,
        skip: &[ChangeKind],
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let queue = Queue { table: "changes", working: "in_progress" };
        let sql = queue::claim(self.backend(), &queue, &Claim { owner: worker, lease_until, now, limit }, |sql| {
            if !skip.is_empty() {
                sql.push(" AND kind NOT IN ").tuple(skip.iter().map(|k| Value::from(k.as_str())));
            }
        });
        let rows = txn.query_all_raw(sql.build()).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let model = change::Model::from_query_result(&row, "")?;
            claimed.push(model.into_domain()?);
        }
        claimed.sort_by_key(|c| c.id);
        for c in &claimed {
            let details = json!({"attempt": c.attempts, "worker": worker, "lease_until": lease_until});
            self.audit_change(&txn, c.id.0, worker, "change.claimed", details, now).await?;
        }
        txn.commit().await?;
        Ok(claimed)
    }

    /// Changes of `kinds` (those applied only in person, whose effect cannot be read back)
    /// whose applier's lease ran out: whoever applied them stopped mid-way, so they may or may
    /// not have taken effect. They become `outcome_unknown`, for a person to retry or cancel,
    /// instead of staying "in progress" for ever. Returns them.
    pub async fn mark_outcome_unknown(
        self,
        kinds: &[ChangeKind],
        now: DateTime<Utc>,
    ) -> Result<Vec<ChangeId>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "UPDATE changes SET state = ");
        sql.value(ChangeState::OutcomeUnknown.as_str()).push(", lease_owner = NULL, lease_expires_at = NULL");
        sql.push(", last_error = ").value(OUTCOME_UNKNOWN.to_owned());
        sql.push(", updated_at = ").value(now).push(", finished_at = ").value(now);
        sql.push(" WHERE state = 'in_progress' AND lease_expires_at < ").value(now).push(" AND kind IN ");
        sql.tuple(kinds.iter().map(|k| Value::from(k.as_str()))).push(" RETURNING id");
        let mut ids = Vec::new();
        for row in txn.query_all_raw(sql.build()).await? {
            ids.push(ChangeId(row.try_get_by_index::<i64>(0)?));
        }
        ids.sort();
        for id in &ids {
            let details = json!({"after": {"state": ChangeState::OutcomeUnknown}, "reason": OUTCOME_UNKNOWN});
            self.audit_change(&txn, id.0, "system", "change.outcome_unknown", details, now).await?;
        }
        txn.commit().await?;
        Ok(ids)
    }

    /// Claims one particular change for `worker` (an actor applying it in person, e.g. a
    /// password reset). `None` when it is not due or someone else holds it.
    pub async fn claim_change(
        self,
        id: ChangeId,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Change>, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(self.backend(), "UPDATE changes SET state = 'in_progress', lease_owner = ");
        sql.value(worker.to_owned()).push(", lease_expires_at = ").value(micros(lease_until));
        sql.push(", attempts = attempts + 1, updated_at = ").value(now).push(" WHERE id = ").value(id.0);
        sql.push(" AND (state = 'pending' OR (state = 'in_progress' AND lease_expires_at < ").value(now);
        sql.push(")) RETURNING *");
        let Some(row) = txn.query_one_raw(sql.build()).await? else { return Ok(None) };
        let claimed = change::Model::from_query_result(&row, "")?.into_domain()?;
        let details = json!({"attempt": claimed.attempts, "worker": worker, "lease_until": lease_until});
        self.audit_change(&txn, id.0, worker, "change.claimed", details, now).await?;
        txn.commit().await?;
        Ok(Some(claimed))
    }

    /// Keeps `worker`'s claims alive until `until` while it is still working on them (a
    /// heartbeat): a change waiting out a long `Retry-After` is not taken over meanwhile.
    pub async fn extend_leases(
        self,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE changes SET lease_expires_at = ");
        sql.value(micros(until)).push(" WHERE state = 'in_progress' AND lease_owner = ");
        sql.value(worker.to_owned()).push(" AND lease_expires_at >= ").value(micros(now));
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected())
    }

    /// Records how an attempt ended. Refused unless `worker` still holds the change's lease.
    pub async fn record_attempt(
        self,
        id: ChangeId,
        worker: &str,
        outcome: AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let before = load(&txn, id.0).await?;
        if before.state != ChangeState::InProgress || before.lease_owner.as_deref() != Some(worker) {
            return Err(StoreError::LeaseLost {
                what: "change",
                id: id.0,
                by: worker.to_owned(),
                state: before.state.to_string(),
                holder: before.lease_owner.clone(),
            });
        }
        let mut model = change::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(id.0),
            lease_owner: Set(None),
            lease_expires_at: Set(None),
            updated_at: Set(now),
            ..Default::default()
        };
        let (action, details) = match &outcome {
            AttemptOutcome::Settled { result, verified, graph_request_id, error, details } => {
                let state = if *result == ApplyResult::Failed || *result == ApplyResult::NotSupported {
                    ChangeState::Failed
                } else {
                    ChangeState::Applied
                };
                model.state = Set(state.as_str().to_owned());
                model.result = Set(Some(result.as_str().to_owned()));
                model.verified = Set(*verified);
                model.graph_request_id = Set(graph_request_id.clone());
                model.last_error = Set(error.clone());
                model.finished_at = Set(Some(now));
                let action = if state == ChangeState::Applied { "change.applied" } else { "change.failed" };
                let details = json!({
                    "before": {"state": before.state, "attempts": before.attempts},
                    "after": {"state": state, "result": result, "verified": verified},
                    "graph_request_id": graph_request_id,
                    "error": error,
                    "detail": details,
                });
                (action, details)
            }
            AttemptOutcome::Retry { error, next_attempt_at } => {
                model.state = Set(ChangeState::Pending.as_str().to_owned());
                model.next_attempt_at = Set(micros(*next_attempt_at));
                model.last_error = Set(Some(error.clone()));
                let details = json!({"attempt": before.attempts, "error": error, "next_attempt_at": next_attempt_at});
                ("change.retry_scheduled", details)
            }
        };
        model.update(&txn).await?;
        self.audit_change(&txn, id.0, worker, action, details, now).await?;
        let after = load(&txn, id.0).await?;
        txn.commit().await?;
        Ok(after)
    }

    /// A second person approves a sensitive change: it becomes pending. The requester cannot
    /// approve their own change: `approver_id` (their `tenant/objectId`) is compared with the
    /// requester's, so a changed name or address does not make them someone else.
    pub async fn approve_change(
        self,
        id: ChangeId,
        approver: &str,
        approver_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        let person = Person { name: approver, id: approver_id };
        self.transition(id, Actor::from(approver), "change.approved", now, ChangeStep::Approve(person)).await
    }

    /// A second person refuses a sensitive change, saying why: it ends `denied`, never applied.
    /// The requester cannot deny their own (they cancel it).
    pub async fn deny_change(
        self,
        id: ChangeId,
        denier: &str,
        denier_id: Option<&str>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        let person = Person { name: denier, id: denier_id };
        let actor = Actor { name: denier, id: denier_id };
        self.transition(id, actor, "change.denied", now, ChangeStep::Deny(person, reason)).await
    }

    /// Withdraws a change that has not been applied (pending or awaiting approval).
    pub async fn cancel_change<'a>(
        self,
        id: ChangeId,
        actor: impl Into<Actor<'a>>,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        self.transition(id, actor.into(), "change.cancelled", now, ChangeStep::Cancel).await
    }

    /// Queues a failed change again, from a fresh count of attempts.
    pub async fn retry_change<'a>(
        self,
        id: ChangeId,
        actor: impl Into<Actor<'a>>,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        self.transition(id, actor.into(), "change.retried", now, ChangeStep::Retry).await
    }

    /// Each change described in words, with the directory's names for the objects it touches
    /// ("add member Ada Lovelace to group Finance"), in the order given. An object the graph
    /// does not know keeps its id.
    pub async fn describe_changes(self, changes: &[Change]) -> Result<Vec<String>, StoreError> {
        let actions: Vec<_> = changes.iter().map(|c| (c.connector_id, &c.action)).collect();
        self.describe_actions(&actions).await
    }

    /// The same for operations not queued (yet): what a confirmation page asks about.
    pub async fn describe_actions(self, actions: &[(ConnectorId, &ChangeAction)]) -> Result<Vec<String>, StoreError> {
        let mut by_connector: HashMap<ConnectorId, Vec<&str>> = HashMap::new();
        for (connector, action) in actions {
            let ids = by_connector.entry(*connector).or_default();
            ids.push(action.target());
            ids.extend(action.principal());
        }
        let mut names: HashMap<(ConnectorId, String), String> = HashMap::new();
        for (connector, ids) in by_connector {
            for (id, name) in self.directory().names_by_external_id(connector, &ids).await? {
                names.insert((connector, id), name);
            }
        }
        // App roles by their names, not their ids.
        let mut roles: HashMap<ConnectorId, Vec<(&str, &str)>> = HashMap::new();
        for (connector, action) in actions {
            if let ChangeAction::AssignAppRole { app, app_role, .. }
            | ChangeAction::RemoveAppRoleAssignment { app, app_role, .. } = action
            {
                roles.entry(*connector).or_default().push((app.as_str(), app_role.as_str()));
            }
        }
        let mut role_names: HashMap<(ConnectorId, String, String), String> = HashMap::new();
        for (connector, wanted) in roles {
            for ((app, role), name) in self.directory().app_role_names(connector, &wanted).await? {
                role_names.insert((connector, app, role), name);
            }
        }
        Ok(actions
            .iter()
            .map(|(connector, action)| {
                let mut description = action.describe();
                if let ChangeAction::AssignAppRole { app, app_role, .. }
                | ChangeAction::RemoveAppRoleAssignment { app, app_role, .. } = action
                    && let Some(name) = role_names.get(&(*connector, app.clone(), app_role.clone()))
                {
                    description = description.replace(&format!("app role {app_role}"), &format!("app role {name}"));
                }
                for id in [Some(action.target()), action.principal()].into_iter().flatten() {
                    if let Some(name) = names.get(&(*connector, id.to_owned())) {
                        description = description.replace(id, name);
                    }
                }
                description
            })
            .collect())
    }

    /// The change with this id, or `NotFound`.
    pub async fn get_change(self, id: ChangeId) -> Result<Change, StoreError> {
        load(&self.db, id.0).await
    }

    /// Changes, newest first.
    pub async fn list_changes(self, filter: &ChangeFilter) -> Result<Vec<Change>, StoreError> {
        let mut query = change::Entity::find().order_by_desc(Column::Id).limit(filter.limit.max(1));
        if let Some(state) = filter.state {
            query = query.filter(Column::State.eq(state.as_str()));
        }
        if let Some(connector) = filter.connector {
            query = query.filter(Column::ConnectorId.eq(connector.0));
        }
        if let Some(within) = &filter.within {
            query = query.filter(Column::ConnectorId.is_in(within.iter().map(|c| c.0)));
        }
        if let Some(before) = filter.before {
            query = query.filter(Column::Id.lt(before.0));
        }
        if let Some(object) = filter.involving.as_deref() {
            query = query.filter(
                sea_orm::Condition::any().add(Column::TargetObject.eq(object)).add(Column::PrincipalObject.eq(object)),
            );
        }
        if let Some(requester) = filter.requested_by.as_deref() {
            use sea_orm::sea_query::{Expr, ExprTrait, Func};
            query = query.filter(Expr::expr(Func::lower(Expr::col(Column::RequestedBy))).eq(requester.to_lowercase()));
        }
        query.all(&self.db).await?.into_iter().map(change::Model::into_domain).collect()
    }

    /// How many changes are in each state (for `/metrics` and the dashboard).
    pub async fn count_changes_by_state(self) -> Result<Vec<(ChangeState, u64)>, StoreError> {
        crate::entity::count_by::<change::Entity, _>(&self.db, "changes", Column::State).await
    }

    async fn transition(
        self,
        id: ChangeId,
        actor: Actor<'_>,
        action: &str,
        now: DateTime<Utc>,
        step: ChangeStep<'_>,
    ) -> Result<Change, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let before = load(&txn, id.0).await?;
        let to = change_flow::step(&before, step)?;
        // The state is part of the condition, so a concurrent transition makes this one fail
        // instead of overwriting it.
        let mut update = change::Entity::update_many()
            .col_expr(Column::State, to.state.as_str().into())
            .col_expr(Column::UpdatedAt, now.into())
            .filter(Column::Id.eq(id.0))
            .filter(Column::State.eq(before.state.as_str()));
        if let Some((approver, approver_id)) = &to.approved_by {
            update = update
                .col_expr(Column::ApprovedBy, approver.clone().into())
                .col_expr(Column::ApprovedById, approver_id.clone().into());
        }
        if let Some(denial) = &to.denied {
            update = update
                .col_expr(Column::DeniedBy, denial.by.clone().into())
                .col_expr(Column::DeniedById, denial.by_id.clone().into())
                .col_expr(Column::DenialReason, denial.reason.clone().into());
        }
        if to.state.is_final() {
            update = update.col_expr(Column::FinishedAt, now.into());
        }
        if to.reset {
            update = update
                .col_expr(Column::Attempts, 0.into())
                .col_expr(Column::NextAttemptAt, now.into())
                .col_expr(Column::Result, Option::<String>::None.into())
                .col_expr(Column::FinishedAt, Option::<DateTime<Utc>>::None.into());
        }
        if update.exec(&txn).await?.rows_affected != 1 {
            return Err(ChangeRefusal::ChangedMeanwhile { id: id.0 }.into());
        }
        let mut details = json!({"before": {"state": before.state}, "after": {"state": to.state}});
        if let Some((_, Some(approver_id))) = &to.approved_by {
            details["approved_by_id"] = json!(approver_id);
        }
        if let Some(denial) = &to.denied {
            details["reason"] = json!(denial.reason);
        }
        if let Some(actor_id) = actor.id {
            details["actor_id"] = json!(actor_id);
        }
        self.audit_change(&txn, id.0, actor.name, action, details, now).await?;
        let after = load(&txn, id.0).await?;
        txn.commit().await?;
        Ok(after)
    }

    async fn audit_change(
        self,
        txn: &impl ConnectionTrait,
        id: i64,
        actor: &str,
        action: &str,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.audit().record_in(txn, actor, action, "change", id, details, now).await?;
        Ok(())
    }
}

/// Why a change is `outcome_unknown`, as its error says.
const OUTCOME_UNKNOWN: &str = "whoever was applying this change stopped before it finished, and whether it took effect \
     cannot be read back: retry to apply it again, or cancel it";

async fn load(conn: &impl ConnectionTrait, id: i64) -> Result<Change, StoreError> {
    change::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "change", key: id.to_string() })?
        .into_domain()
}
