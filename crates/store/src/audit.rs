//! The audit log: appended in a hash chain, verified end to end.

use attest_domain::audit::BreakReason;
use attest_domain::{AuditEvent, AuditEventDraft, ChainBreak, ChainVerifier};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::StoreError;
use crate::areas::Audit;
use crate::entity::audit_event::{self, Column};
use crate::sql::Sql;

const PAGE: u64 = 5_000;

/// Which events a reader wants; every field narrows, `None` does not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Actors with a word beginning with this (case-insensitive): `ada` finds
    /// `ada@contoso.com`, `ada@contoso.com (in person)` and `ada@contoso.com (command line)`;
    /// `in person` finds every approval applied in person.
    pub actor: Option<String>,
    /// Actions starting with this (`change.` for every change event).
    pub action: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// At or after.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Before.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a page of events starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AuditPage {
    /// Newest first, before this sequence number (from the newest when `None`): reading.
    NewestBefore(Option<i64>),
    /// Oldest first, after this sequence number: exporting.
    OldestAfter(i64),
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditVerification {
    /// Events that verified before the first break (all of them when intact).
    pub checked: u64,
    /// The sequence number of the last event appended, per the chain head.
    pub head_seq: i64,
    /// The first untrustworthy event, if any.
    pub broken: Option<ChainBreak>,
}

impl Audit<'_> {
    /// Appends an event at the end of the chain. Appends are serialised through the chain head
    /// row (a row lock on PostgreSQL, the write lock on SQLite), so concurrent writers and
    /// replicas always produce one unbroken chain.
    pub async fn append_audit_event(self, draft: AuditEventDraft) -> Result<AuditEvent, StoreError> {
        let txn = self.begin_write().await?;
        let event = self.append_audit_in(&txn, draft).await?;
        txn.commit().await?;
        Ok(event)
    }

    /// Appends, within the caller's transaction, that `actor` did `action` to the `kind` row
    /// `id`: how every area records its own steps.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_in(
        self,
        txn: &impl ConnectionTrait,
        actor: &str,
        action: &str,
        kind: &str,
        id: i64,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<AuditEvent, StoreError> {
        self.append_audit_in(txn, AuditEventDraft::about(actor, action, kind, id, details, now)).await
    }

    /// Appends within the caller's transaction, so an event and the change it records commit
    /// together or not at all.
    pub(crate) async fn append_audit_in(
        self,
        txn: &impl ConnectionTrait,
        draft: AuditEventDraft,
    ) -> Result<AuditEvent, StoreError> {
        let backend = self.backend();
        // Writing first takes the lock before anything is read.
        txn.execute_raw(Sql::new(backend, "UPDATE audit_head SET seq = seq + 1 WHERE id = 1").build()).await?;
        let head = txn
            .query_one_raw(Sql::new(backend, "SELECT seq, hash FROM audit_head WHERE id = 1").build())
            .await?
            .ok_or_else(|| {
                StoreError::Internal("the audit chain head is missing; was the database migrated?".into())
            })?;
        let seq: i64 = head.try_get_by_index(0)?;
        let prev_hash: String = head.try_get_by_index(1)?;
        let event = AuditEvent::seal(draft, seq, &prev_hash, self.audit_key.as_ref());
        audit_event::ActiveModel {
            seq: Set(event.seq),
            occurred_at: Set(event.occurred_at),
            actor: Set(event.actor.clone()),
            action: Set(event.action.clone()),
            target_kind: Set(event.target_kind.clone()),
            target_id: Set(event.target_id.clone()),
            details: Set(event.details.clone()),
            prev_hash: Set(event.prev_hash.clone()),
            hash: Set(event.hash.clone()),
        }
        .insert(txn)
        .await?;
        let mut sql = Sql::new(backend, "UPDATE audit_head SET hash = ");
        sql.value(event.hash.clone()).push(" WHERE id = 1");
        txn.execute_raw(sql.build()).await?;
        Ok(event)
    }

    /// Appends many events in the caller's transaction, in order, as [`Self::append_audit_in`]
    /// would one by one: one move of the head, one multi-row insert per batch. For bulk work
    /// (a campaign's revocations queued at once) whose every step must still be in the chain.
    pub(crate) async fn append_audit_batch_in(
        self,
        txn: &impl ConnectionTrait,
        drafts: Vec<AuditEventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let count = i64::try_from(drafts.len()).unwrap_or(i64::MAX);
        // Writing first takes the lock before anything is read.
        let mut sql = Sql::new(backend, "UPDATE audit_head SET seq = seq + ");
        sql.value(count).push(" WHERE id = 1");
        txn.execute_raw(sql.build()).await?;
        let head = txn
            .query_one_raw(Sql::new(backend, "SELECT seq, hash FROM audit_head WHERE id = 1").build())
            .await?
            .ok_or_else(|| {
                StoreError::Internal("the audit chain head is missing; was the database migrated?".into())
            })?;
        let last: i64 = head.try_get_by_index(0)?;
        let mut prev_hash: String = head.try_get_by_index(1)?;
        let mut events = Vec::with_capacity(drafts.len());
        for (i, draft) in drafts.into_iter().enumerate() {
            let seq = last - count + 1 + i64::try_from(i).unwrap_or(0);
            let event = AuditEvent::seal(draft, seq, &prev_hash, self.audit_key.as_ref());
            prev_hash = event.hash.clone();
            events.push(event);
        }
        for chunk in events.chunks(crate::sql::rows_per_statement(9)) {
            let mut sql = Sql::new(
                backend,
                "INSERT INTO audit_events (seq, occurred_at, actor, action, target_kind, target_id, details, prev_hash, hash) VALUES ",
            );
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(",");
                }
                sql.tuple([
                    e.seq.into(),
                    e.occurred_at.into(),
                    e.actor.clone().into(),
                    e.action.clone().into(),
                    e.target_kind.clone().into(),
                    e.target_id.clone().into(),
                    e.details.clone().into(),
                    e.prev_hash.clone().into(),
                    e.hash.clone().into(),
                ]);
            }
            txn.execute_raw(sql.build()).await?;
        }
        let mut sql = Sql::new(backend, "UPDATE audit_head SET hash = ");
        sql.value(prev_hash).push(" WHERE id = 1");
        txn.execute_raw(sql.build()).await?;
        Ok(events)
    }

    /// Up to `limit` events after sequence number `after`, oldest first.
    pub async fn list_audit_events(self, after: i64, limit: u64) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(audit_event::Entity::find()
            .filter(Column::Seq.gt(after))
            .order_by_asc(Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(AuditEvent::from)
            .collect())
    }

    /// Up to `limit` events matching `filter`, from `page`.
    pub async fn list_audit_events_matching(
        self,
        filter: &AuditFilter,
        page: AuditPage,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
        let mut query = audit_event::Entity::find();
        if let Some(actor) = filter.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            let escaped = actor.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let lower = || Expr::expr(Func::lower(Expr::col(Column::Actor)));
            // From the start, or from a word's start (after a space or an opening bracket).
            let starts = lower().like(LikeExpr::new(format!("{escaped}%")).escape('\\'));
            let word = lower().like(LikeExpr::new(format!("% {escaped}%")).escape('\\'));
            let bracketed = lower().like(LikeExpr::new(format!("%({escaped}%")).escape('\\'));
            query = query.filter(starts.or(word).or(bracketed));
        }
        if let Some(action) = filter.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            let escaped = action.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            query = query.filter(Expr::col(Column::Action).like(LikeExpr::new(format!("{escaped}%")).escape('\\')));
        }
        if let Some(kind) = filter.target_kind.as_deref().filter(|k| !k.is_empty()) {
            query = query.filter(Column::TargetKind.eq(kind));
        }
        if let Some(id) = filter.target_id.as_deref().filter(|i| !i.is_empty()) {
            query = query.filter(Column::TargetId.eq(id));
        }
        if let Some(since) = filter.since {
            query = query.filter(Column::OccurredAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(Column::OccurredAt.lt(until));
        }
        query = match page {
            AuditPage::NewestBefore(before) => {
                let query = query.order_by_desc(Column::Seq);
                match before {
                    Some(before) => query.filter(Column::Seq.lt(before)),
                    None => query,
                }
            }
            AuditPage::OldestAfter(after) => query.filter(Column::Seq.gt(after)).order_by_asc(Column::Seq),
        };
        Ok(query.limit(limit).all(&self.db).await?.into_iter().map(AuditEvent::from).collect())
    }

    /// Recomputes every hash and link, in pages, and names the first broken event.
    pub async fn verify_audit_chain(self) -> Result<AuditVerification, StoreError> {
        self.verify_audit_chain_against(None).await
    }

    /// The chain's head: the sequence number and hash of the last event appended. Kept
    /// somewhere else (printed by `attest audit head`), it lets a later check prove that the
    /// log up to it was not rewritten, even by someone who can write the database.
    pub async fn audit_head(self) -> Result<(i64, String), StoreError> {
        let head = self
            .db
            .query_one_raw(Sql::new(self.backend(), "SELECT seq, hash FROM audit_head WHERE id = 1").build())
            .await?
            .ok_or_else(|| {
                StoreError::Internal("the audit chain head is missing; was the database migrated?".into())
            })?;
        Ok((head.try_get_by_index(0)?, head.try_get_by_index(1)?))
    }

    /// [`Audit::verify_audit_chain`], also checking that event `anchor.0` is the one with hash
    /// `anchor.1` (a head recorded earlier, elsewhere).
    pub async fn verify_audit_chain_against(
        self,
        anchor: Option<(i64, String)>,
    ) -> Result<AuditVerification, StoreError> {
        let backend = self.backend();
        let head = self
            .db
            .query_one_raw(Sql::new(backend, "SELECT seq, hash FROM audit_head WHERE id = 1").build())
            .await?
            .ok_or_else(|| {
                StoreError::Internal("the audit chain head is missing; was the database migrated?".into())
            })?;
        let head_seq: i64 = head.try_get_by_index(0)?;
        let head_hash: String = head.try_get_by_index(1)?;
        let mut verifier = match &self.audit_key {
            Some(key) => ChainVerifier::keyed(key.clone()),
            None => ChainVerifier::default(),
        };
        let mut after = 0;
        loop {
            let page = self.list_audit_events(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for event in &page {
                let anchored = match &anchor {
                    Some((seq, hash)) if *seq == event.seq && *hash != event.hash => Err(ChainBreak {
                        seq: event.seq,
                        reason: BreakReason::NotAnchored { anchored_hash: hash.clone() },
                    }),
                    _ => Ok(()),
                };
                if let Err(broken) = verifier.check(event).and(anchored) {
                    return Ok(AuditVerification { checked: verifier.checked(), head_seq, broken: Some(broken) });
                }
            }
        }
        let head = (head_seq > 0).then_some((head_seq, head_hash.as_str()));
        let mut broken = verifier.finish(head).err();
        if let Some((seq, hash)) = anchor.filter(|(seq, _)| *seq > i64::try_from(verifier.checked()).unwrap_or(0))
            && broken.is_none()
        {
            // The anchored event is past the end: the log was cut back before it.
            broken = Some(ChainBreak { seq, reason: BreakReason::Truncated { head_seq: seq, head_hash: hash } });
        }
        Ok(AuditVerification { checked: verifier.checked(), head_seq, broken })
    }
}
