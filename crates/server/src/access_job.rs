//! Just-in-time access on time, a background job of `attest serve`: every few seconds it
//! sweeps requests (`attest_access::sweep`: gives approved access through the queue, marks it
//! active when Entra has it, queues its removal at `expires_at`, ends it when removed, denies
//! requests nobody answered in time), then mails what is owed: each approval stage's approvers
//! when it opens, and the requester when their request is decided.
//!
//! It runs under a lease (one replica at a time) and looks at the state rather than being
//! told, so after downtime its first sweep removes everything that expired meanwhile, once.
//! Each mail is claimed on its request before it is queued, and keyed.

use std::time::Duration;

use attest_access::{AccessError, Swept};
use attest_domain::SharedClock;
use attest_domain::access::{Notice, RequestState, Span, expiry_notice};
use attest_jobs::{Lease, Ran, Runner};
use attest_notify::{Email, NotifyError, Outbox, Template, is_email_address};
use attest_store::{Request, Store, StoreError};
use chrono::{DateTime, Datelike, Utc};
use tokio::sync::watch;

/// How often the job looks: removals are queued within this of `expires_at`, and the
/// provisioner applies them within seconds (the bound is 60 s).
pub const ACCESS_TICK: Duration = Duration::from_secs(5);

/// How long the job's lease lasts at a time (renewed while a sweep runs).
const LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AccessJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// The job. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessSweeper {
    store: Store,
    outbox: Outbox,
    public_url: String,
    tick: Duration,
    clock: SharedClock,
    owner: String,
    /// When the owners' weekly digests were last looked at (hourly is enough: each is keyed by
    /// its week, so looking again sends nothing twice).
    digests_checked: std::sync::Arc<std::sync::Mutex<Option<DateTime<Utc>>>>,
}

impl AccessSweeper {
    pub fn new(store: Store, outbox: Outbox, public_url: &str, clock: SharedClock, owner: &str) -> AccessSweeper {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let digests_checked = std::sync::Arc::default();
        AccessSweeper { store, outbox, public_url, tick: ACCESS_TICK, clock, owner: owner.to_owned(), digests_checked }
    }

    pub fn with_tick(self, tick: Duration) -> AccessSweeper {
        AccessSweeper { tick, ..self }
    }

    /// Sweeps every tick until `shutdown` says stop.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let this = &self;
        let lease = Lease {
            store: self.store.clone(),
            clock: self.clock.clone(),
            name: "access".to_owned(),
            owner: self.owner.clone(),
            length: LEASE,
        };
        Runner::new("access", self.clock.clone(), self.tick)
            .leased(lease)
            .run(shutdown, |now| async move {
                let (swept, mails) = this.once(now).await?;
                let mails = mails + this.owner_digests(now).await?;
                if swept != (Swept { looked_at: swept.looked_at, ..Swept::default() }) || mails > 0 {
                    tracing::info!(?swept, mails, "just-in-time access");
                }
                Ok::<_, AccessJobError>(if swept.looked_at as u64 >= attest_access::BATCH {
                    Ran::More
                } else {
                    Ran::Idle
                })
            })
            .await;
    }

    /// Does what is due at `now`: the sweep, then the mail it made owed.
    pub async fn once(&self, now: DateTime<Utc>) -> Result<(Swept, usize), AccessJobError> {
        let swept = attest_access::sweep(&self.store, now).await?;
        let mails = self.mail(now).await?;
        Ok((swept, mails))
    }

    fn request_url(&self, id: i64) -> String {
        format!("{}/requests/{id}", self.public_url)
    }

    async fn mail(&self, now: DateTime<Utc>) -> Result<usize, AccessJobError> {
        let mut sent = self.expiry_notices(now).await?;
        for request in self.store.requests().mail_owed(500).await? {
            if request.state == RequestState::Pending {
                if self.store.requests().claim_approver_mail(request.id, request.stage).await? {
                    sent += self.ask_approvers(&request, now).await?;
                }
            } else if self.store.requests().claim_decision_mail(request.id, now).await? {
                sent += self.tell_requester(&request, now).await?;
            }
        }
        Ok(sent)
    }

    /// Tells holders their access ends soon: a week and a day before (see
    /// `attest_domain::access::expiry_notice`), each claimed before it is queued.
    async fn expiry_notices(&self, now: DateTime<Utc>) -> Result<usize, AccessJobError> {
        let mut sent = 0;
        for request in self.store.requests().ending_within_a_week(now, 1_000).await? {
            let (Some(from), Some(end)) = (request.activated_at, request.expires_at) else { continue };
            let Some(notice) = expiry_notice(from, end, request.expiry_notice_at, now) else { continue };
            let (since, left) = match notice {
                Notice::Week => (None, "7 days"),
                Notice::Day => (Some(end - chrono::Duration::days(1)), "1 day"),
            };
            if !self.store.requests().claim_expiry_notice(request.id, since, now).await? {
                continue;
            }
            let Some(to) = request.requester_email.clone().filter(|e| is_email_address(e)) else { continue };
            let template = Template::AccessExpiring {
                request_id: request.id,
                access: request.describe(),
                ends: crate::review_job::when(end),
                left: left.to_owned(),
                request_url: self.request_url(request.id),
            };
            let key = format!("access-expiring:{}:{left}", request.id);
            self.outbox.enqueue(Email { key, to, template }, now).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Once a week, each resource owner's digest of the time-bound access to their resources
    /// that ends in the coming seven days (who, what, when), so nothing they own lapses or
    /// lingers unnoticed. Keyed by the ISO week: looked at hourly and after a restart, sent once.
    pub async fn owner_digests(&self, now: DateTime<Utc>) -> Result<usize, AccessJobError> {
        {
            let Ok(mut checked) = self.digests_checked.lock() else { return Ok(0) };
            if checked.is_some_and(|at| now - at < chrono::Duration::hours(1) && now >= at) {
                return Ok(0);
            }
            *checked = Some(now);
        }
        let week = now.iso_week();
        let week = format!("{}-W{:02}", week.year(), week.week());
        let mut owners: std::collections::HashMap<i64, Vec<attest_domain::review::Person>> = Default::default();
        let mut digests: std::collections::BTreeMap<String, (String, Vec<attest_notify::DigestLine>)> =
            Default::default();
        for request in self.store.requests().ending_within_a_week(now, 5_000).await? {
            let Some(end) = request.expires_at else { continue };
            if let std::collections::hash_map::Entry::Vacant(entry) = owners.entry(request.resource_id) {
                entry.insert(self.store.requests().owners_of(attest_domain::ResourceId(request.resource_id)).await?);
            }
            for owner in owners.get(&request.resource_id).into_iter().flatten() {
                let Some(email) = owner.email.clone().filter(|e| is_email_address(e)) else { continue };
                let entry = digests.entry(email.to_lowercase()).or_insert_with(|| (owner.name.clone(), Vec::new()));
                entry.1.push(attest_notify::DigestLine {
                    who: request.requester_name.clone(),
                    access: request.describe(),
                    ends: crate::review_job::when(end),
                    request_url: self.request_url(request.id),
                });
            }
        }
        let mut sent = 0;
        for (to, (name, items)) in digests {
            let key = format!("access-digest:{week}:{to}");
            let template = Template::AccessDigest { owner: name, week: week.clone(), items };
            let mail = self.outbox.enqueue(Email { key, to, template }, now).await?;
            sent += usize::from(mail.created_at == now);
        }
        Ok(sent)
    }

    async fn ask_approvers(&self, request: &Request, now: DateTime<Utc>) -> Result<usize, AccessJobError> {
        let mut sent = 0;
        for approver in self.store.requests().approvers(request.id).await? {
            if approver.stage != request.stage || approver.approve.is_some() {
                continue;
            }
            let Some(to) = approver.email.filter(|e| is_email_address(e)) else { continue };
            let template = Template::AccessApprovalNeeded {
                request_id: request.id,
                requester: request.requester_name.clone(),
                access: request.describe(),
                duration: length(request),
                justification: request.justification.clone(),
                ticket: request.ticket.clone(),
                stage: request.stage,
                stages: request.stages,
                due: crate::review_job::when(request.approval_due_at),
                approve_url: self.request_url(request.id),
            };
            let key = format!("access-approval:{}:{}:{}", request.id, request.stage, approver.object_id.to_lowercase());
            self.outbox.enqueue(Email { key, to, template }, now).await?;
            sent += 1;
        }
        Ok(sent)
    }

    async fn tell_requester(&self, request: &Request, now: DateTime<Utc>) -> Result<usize, AccessJobError> {
        let Some(to) = request.requester_email.clone().filter(|e| is_email_address(e)) else { return Ok(0) };
        let outcome = match request.state {
            RequestState::Active => "approved",
            RequestState::Denied => "denied",
            RequestState::Approved => "approved, to activate",
            _ => "failed",
        };
        // Waiting for them to activate it in Entra: by when.
        let until = match request.state {
            RequestState::Approved => Some(attest_access::activation_due(request)),
            _ => request.expires_at,
        };
        let template = Template::AccessDecided {
            request_id: request.id,
            access: request.describe(),
            outcome: outcome.to_owned(),
            decided_by: (request.state == RequestState::Denied).then(|| request.ended_by.clone()).flatten(),
            reason: request.end_reason.clone(),
            until: until.map(attest_access::when),
            request_url: self.request_url(request.id),
        };
        let key = format!("access-decided:{}", request.id);
        self.outbox.enqueue(Email { key, to, template }, now).await?;
        Ok(1)
    }
}

/// "8 hours", or "no end".
pub fn length(request: &Request) -> String {
    request.duration_minutes.map(|m| Span::minutes(m).words()).unwrap_or_else(|| "no end".to_owned())
}
