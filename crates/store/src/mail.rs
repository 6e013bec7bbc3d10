//! The mail outbox. A mail is rendered before it is queued and is claimed for sending with a
//! lease, like the change queue: one `UPDATE … WHERE id IN (SELECT … LIMIT n)` statement, with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL so replicas claim disjoint sets; SQLite runs one
//! writer at a time (an `IMMEDIATE` transaction), which gives the same guarantee. A sender that
//! dies mid-send leaves its lease to expire and the mail is claimed again. An outcome is
//! recorded only by the sender still holding the lease, so one that overslept its lease cannot
//! overwrite what the sender that took over recorded.

use attest_domain::time::micros;
use attest_domain::{Mail, MailId, MailState, NewMail};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect};

use crate::StoreError;
use crate::areas::Outbox;
use crate::entity::mail::{self, Column};
use crate::queue::{self, Claim, Queue};
use crate::sql::Sql;

/// Which mails to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct MailFilter {
    pub state: Option<MailState>,
    /// Only mail to this address (compared without regard to case).
    pub recipient: Option<String>,
    pub limit: u64,
    pub offset: u64,
}

impl Outbox<'_> {
    /// Queues a rendered mail (`pending`, due now), or holds it (`kept`) when `new.keep` says
    /// so. A second call with the same idempotency key returns the mail already queued under
    /// it, unchanged: nothing is queued twice.
    pub async fn enqueue_mail(self, new: &NewMail, now: DateTime<Utc>) -> Result<Mail, StoreError> {
        if new.idempotency_key.trim().is_empty() {
            return Err(StoreError::Invalid("a mail needs an idempotency key".into()));
        }
        if new.recipient.trim().is_empty() {
            return Err(StoreError::Invalid("a mail needs a recipient".into()));
        }
        let now = micros(now);
        let state = if new.keep { MailState::Kept } else { MailState::Pending };
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO mail_outbox (idempotency_key, template, recipient, subject, text_body, html_body, state, \
             attempts, next_attempt_at, created_at, updated_at) VALUES (",
        );
        sql.value(new.idempotency_key.clone()).push(", ").value(new.template.clone());
        sql.push(", ").value(new.recipient.clone()).push(", ").value(new.subject.clone());
        sql.push(", ").value(new.text_body.clone()).push(", ").value(new.html_body.clone());
        sql.push(", ").value(state.as_str()).push(", 0, ").value(now).push(", ").value(now).push(", ").value(now);
        sql.push(") ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
        if let Some(row) = self.db.query_one_raw(sql.build()).await? {
            return load(&self.db, row.try_get_by_index::<i64>(0)?).await;
        }
        self.find_mail_by_key(&new.idempotency_key)
            .await?
            .ok_or_else(|| StoreError::Internal("a mail vanished while being queued".into()))
    }

    /// Claims up to `limit` mails for `owner` for `lease`: pending ones whose time has come,
    /// and ones being sent whose lease expired (their sender died). Each claim counts as an
    /// attempt.
    pub async fn claim_mail(
        self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u64,
    ) -> Result<Vec<Mail>, StoreError> {
        let now = micros(now);
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| StoreError::Invalid(format!("a lease of {lease:?} is too long")))?;
        let txn = self.begin_write().await?;
        let queue = Queue { table: "mail_outbox", working: "sending" };
        let sql = queue::claim(self.backend(), &queue, &Claim { owner, lease_until: now + lease, now, limit }, |_| {});
        let rows = txn.query_all_raw(sql.build()).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            claimed.push(mail::Model::from_query_result(&row, "")?.into_domain()?);
        }
        txn.commit().await?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    /// Records that the SMTP server accepted the mail. Refused unless `owner` still holds it.
    pub async fn record_mail_sent(self, id: MailId, owner: &str, now: DateTime<Utc>) -> Result<Mail, StoreError> {
        let now = micros(now);
        let update = mail::Entity::update_many()
            .col_expr(Column::State, MailState::Sent.as_str().into())
            .col_expr(Column::SentAt, Some(now).into())
            .col_expr(Column::LeaseOwner, Option::<String>::None.into())
            .col_expr(Column::LeaseExpiresAt, Option::<DateTime<Utc>>::None.into())
            .col_expr(Column::UpdatedAt, now.into());
        self.settle(id, owner, update).await
    }

    /// Records a failed attempt: tried again at `next_attempt_at`, or, with `None`, given up
    /// (`failed`) for good. Refused unless `owner` still holds the mail.
    pub async fn record_mail_failed(
        self,
        id: MailId,
        owner: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Mail, StoreError> {
        let mut update = mail::Entity::update_many()
            .col_expr(Column::LastError, Some(error.to_owned()).into())
            .col_expr(Column::UpdatedAt, micros(now).into())
            .col_expr(Column::LeaseOwner, Option::<String>::None.into())
            .col_expr(Column::LeaseExpiresAt, Option::<DateTime<Utc>>::None.into());
        update = match next_attempt_at {
            Some(at) => update
                .col_expr(Column::State, MailState::Pending.as_str().into())
                .col_expr(Column::NextAttemptAt, micros(at).into()),
            None => update.col_expr(Column::State, MailState::Failed.as_str().into()),
        };
        self.settle(id, owner, update).await
    }

    /// Applies `update` to a mail `owner` holds, in one statement fenced by the lease.
    async fn settle(
        self,
        id: MailId,
        owner: &str,
        update: sea_orm::UpdateMany<mail::Entity>,
    ) -> Result<Mail, StoreError> {
        let fenced = update
            .filter(Column::Id.eq(id.0))
            .filter(Column::State.eq(MailState::Sending.as_str()))
            .filter(Column::LeaseOwner.eq(owner));
        if fenced.exec(&self.db).await?.rows_affected == 1 {
            return load(&self.db, id.0).await;
        }
        let now = load(&self.db, id.0).await?;
        Err(StoreError::LeaseLost {
            what: "mail",
            id: id.0,
            by: owner.to_owned(),
            state: now.state.to_string(),
            holder: now.lease_owner,
        })
    }

    /// The mail with this id, or `NotFound`.
    pub async fn get_mail(self, id: MailId) -> Result<Mail, StoreError> {
        load(&self.db, id.0).await
    }

    /// The mail queued under this idempotency key, if any.
    pub async fn find_mail_by_key(self, key: &str) -> Result<Option<Mail>, StoreError> {
        mail::Entity::find()
            .filter(Column::IdempotencyKey.eq(key))
            .one(&self.db)
            .await?
            .map(mail::Model::into_domain)
            .transpose()
    }

    /// Which of `keys` a mail is queued under already (to skip rendering what is not new).
    pub async fn list_mail_keys_among(self, keys: &[String]) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in keys.chunks(500) {
            let rows: Vec<String> = mail::Entity::find()
                .select_only()
                .column(Column::IdempotencyKey)
                .filter(Column::IdempotencyKey.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Mails, newest first.
    pub async fn list_mail(self, filter: &MailFilter) -> Result<Vec<Mail>, StoreError> {
        let mut query = mail::Entity::find().order_by_desc(Column::Id).limit(filter.limit.max(1)).offset(filter.offset);
        if let Some(state) = filter.state {
            query = query.filter(Column::State.eq(state.as_str()));
        }
        if let Some(recipient) = &filter.recipient {
            use sea_orm::sea_query::{Expr, ExprTrait, Func};
            query = query.filter(Expr::expr(Func::lower(Expr::col(Column::Recipient))).eq(recipient.to_lowercase()));
        }
        query.all(&self.db).await?.into_iter().map(mail::Model::into_domain).collect()
    }

    /// How many mails are in each state (for `/metrics` and the dashboard).
    pub async fn count_mail_by_state(self) -> Result<Vec<(MailState, u64)>, StoreError> {
        crate::entity::count_by::<mail::Entity, _>(&self.db, "mail_outbox", Column::State).await
    }
}

async fn load(conn: &impl ConnectionTrait, id: i64) -> Result<Mail, StoreError> {
    mail::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "mail", key: id.to_string() })?
        .into_domain()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use attest_domain::{MailId, MailState, NewMail};
    use chrono::{DateTime, TimeZone, Utc};

    use super::MailFilter;
    use crate::{StoreError, store_test};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    fn mail(key: &str, to: &str) -> NewMail {
        NewMail {
            idempotency_key: key.into(),
            template: "change_failed".into(),
            recipient: to.into(),
            subject: format!("Subject {key}"),
            text_body: "text".into(),
            html_body: "<p>html</p>".into(),
            keep: false,
        }
    }

    const LEASE: Duration = Duration::from_secs(60);

    store_test!(mail_is_queued_once_per_key_and_listed, |store| {
        let first = store.outbox().enqueue_mail(&mail("k1", "Ada@Contoso.com"), t(0)).await.unwrap();
        assert_eq!((first.state, first.attempts, first.next_attempt_at), (MailState::Pending, 0, t(0)));
        let changed = NewMail { subject: "another subject".into(), ..mail("k1", "Ada@Contoso.com") };
        let again = store.outbox().enqueue_mail(&changed, t(5)).await.unwrap();
        assert_eq!(again, first, "the same key returns the mail already queued, unchanged");
        assert_eq!(store.outbox().get_mail(first.id).await.unwrap(), first);
        assert_eq!(store.outbox().find_mail_by_key("k1").await.unwrap(), Some(first.clone()));
        assert_eq!(store.outbox().find_mail_by_key("nope").await.unwrap(), None);
        let keys: Vec<String> = (0..1200).map(|i| format!("k{i}")).chain(["nope".to_owned()]).collect();
        let known = store.outbox().list_mail_keys_among(&keys).await.unwrap();
        assert_eq!(known, ["k1".to_owned()].into_iter().collect(), "found among many keys, in chunks");
        assert!(matches!(store.outbox().get_mail(MailId(999)).await, Err(StoreError::NotFound { what: "mail", .. })));
        assert!(matches!(store.outbox().enqueue_mail(&mail(" ", "a@b.c"), t(0)).await, Err(StoreError::Invalid(_))));

        let kept =
            store.outbox().enqueue_mail(&NewMail { keep: true, ..mail("k2", "bob@contoso.com") }, t(1)).await.unwrap();
        assert_eq!(kept.state, MailState::Kept);
        store.outbox().enqueue_mail(&mail("k3", "bob@contoso.com"), t(2)).await.unwrap();

        let all = store.outbox().list_mail(&MailFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.iter().map(|m| m.idempotency_key.as_str()).collect::<Vec<_>>(), vec!["k3", "k2", "k1"]);
        let page = store.outbox().list_mail(&MailFilter { limit: 1, offset: 1, ..Default::default() }).await.unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), vec![kept.id]);
        let to_ada = MailFilter { recipient: Some("ada@contoso.COM".into()), limit: 10, ..Default::default() };
        assert_eq!(store.outbox().list_mail(&to_ada).await.unwrap().len(), 1);
        let kept_only = MailFilter { state: Some(MailState::Kept), limit: 10, ..Default::default() };
        assert_eq!(
            store.outbox().list_mail(&kept_only).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![kept.id]
        );
        let mut counts = store.outbox().count_mail_by_state().await.unwrap();
        counts.sort();
        assert_eq!(counts, vec![(MailState::Pending, 2), (MailState::Kept, 1)]);

        // Kept mail is never claimed.
        let claimed = store.outbox().claim_mail("s1", t(10), LEASE, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|m| m.idempotency_key.as_str()).collect::<Vec<_>>(), vec!["k1", "k3"]);
    });

    store_test!(two_senders_never_claim_the_same_mail, |store| {
        for i in 0..40 {
            store.outbox().enqueue_mail(&mail(&format!("k{i}"), "ada@contoso.com"), t(i)).await.unwrap();
        }
        let claim_all = |owner: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.outbox().claim_mail(owner, t(100), LEASE, 3).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    assert!(batch.iter().all(|m| m.lease_owner.as_deref() == Some(owner) && m.attempts == 1));
                    mine.extend(batch.into_iter().map(|m| m.id));
                }
            })
        };
        let (a, b) = (claim_all("s1"), claim_all("s2"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let union: BTreeSet<MailId> = a.iter().chain(&b).copied().collect();
        assert_eq!(a.len() + b.len(), 40, "s1 {a:?} s2 {b:?}");
        assert_eq!(union.len(), 40, "no mail claimed twice: s1 {a:?} s2 {b:?}");
    });

    store_test!(a_lost_lease_cannot_record_and_an_expired_lease_is_reclaimed, |store| {
        let queued = store.outbox().enqueue_mail(&mail("k1", "ada@contoso.com"), t(0)).await.unwrap();
        // s1 claims it and "crashes": the mail is not lost, it waits for the lease to expire.
        let claimed = store.outbox().claim_mail("s1", t(1), LEASE, 10).await.unwrap();
        assert_eq!(claimed[0].state, MailState::Sending);
        assert_eq!(claimed[0].lease_expires_at, Some(t(61)));
        assert!(store.outbox().claim_mail("s2", t(30), LEASE, 10).await.unwrap().is_empty(), "held by s1");
        let taken = store.outbox().claim_mail("s2", t(62), LEASE, 10).await.unwrap();
        assert_eq!((taken.len(), taken[0].attempts, taken[0].lease_owner.as_deref()), (1, 2, Some("s2")));

        // s1 wakes up: it can record nothing.
        let late = store.outbox().record_mail_sent(queued.id, "s1", t(63)).await.unwrap_err();
        assert!(late.to_string().contains("no longer held by s1") && late.to_string().contains("held by s2"), "{late}");
        assert!(store.outbox().record_mail_failed(queued.id, "s1", "timeout", None, t(63)).await.is_err());

        // s2 fails transiently: retried later, not before.
        let retry =
            store.outbox().record_mail_failed(queued.id, "s2", "421 try later", Some(t(120)), t(64)).await.unwrap();
        assert_eq!((retry.state, retry.next_attempt_at), (MailState::Pending, t(120)));
        assert_eq!((retry.last_error.as_deref(), retry.lease_owner), (Some("421 try later"), None));
        assert!(store.outbox().record_mail_sent(queued.id, "s2", t(65)).await.is_err(), "not held after recording");
        assert!(store.outbox().claim_mail("s1", t(119), LEASE, 10).await.unwrap().is_empty(), "not due yet");
        assert_eq!(store.outbox().claim_mail("s1", t(120), LEASE, 10).await.unwrap()[0].attempts, 3);
        let sent = store.outbox().record_mail_sent(queued.id, "s1", t(121)).await.unwrap();
        assert_eq!((sent.state, sent.sent_at, sent.lease_expires_at), (MailState::Sent, Some(t(121)), None));
        assert!(store.outbox().claim_mail("s2", t(1000), LEASE, 10).await.unwrap().is_empty(), "sent once");

        // A permanent failure is final.
        let other = store.outbox().enqueue_mail(&mail("k2", "bob@contoso.com"), t(200)).await.unwrap();
        store.outbox().claim_mail("s1", t(200), LEASE, 10).await.unwrap();
        let failed = store.outbox().record_mail_failed(other.id, "s1", "550 no such user", None, t(201)).await.unwrap();
        assert_eq!((failed.state, failed.updated_at), (MailState::Failed, t(201)));
        assert!(store.outbox().claim_mail("s2", t(5000), LEASE, 10).await.unwrap().is_empty());
    });
}
