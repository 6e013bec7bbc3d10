//! Access reviews on time, a background job of `attest serve`: each running instance's
//! reviewers are mailed when it starts (one mail each, with their count), reminded at the
//! midpoint and a day before the deadline if they still have pending items (one digest each,
//! never one mail per item), and the instance is closed at its deadline (default decisions,
//! auto-applied revocations); its owners then get the summary; a recurring campaign's next
//! instance starts when due.
//!
//! Like the other jobs it runs under a lease (one replica at a time) and looks at the state
//! rather than being told: after downtime the first scan closes what is overdue and sends what
//! was missed, once (each mail is claimed on the instance before it is queued, and keyed).

use std::time::Duration;

use attest_domain::SharedClock;
use attest_domain::review::{CampaignState, DefaultDecision};
use attest_jobs::{Lease, Ran, Runner};
use attest_notify::{Email, NotifyError, Outbox, Template, is_email_address};
use attest_review::ReviewError;
use attest_store::{Instance, InstanceMail, Store, StoreError};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// How often the job looks.
pub const REVIEW_TICK: Duration = Duration::from_secs(30);

/// Who closes at the deadline and starts on schedule, in the audit log.
pub const SCHEDULER: &str = "system (review schedule)";

#[derive(Debug, thiserror::Error)]
pub enum ReviewJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    pub mails: usize,
    /// Stages ended with a later one started.
    pub stages: usize,
    pub closed: usize,
    pub started: usize,
}

/// The job. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReviewScheduler {
    store: Store,
    outbox: Outbox,
    public_url: String,
    tick: Duration,
    clock: SharedClock,
    /// This process's name in the job's lease.
    owner: String,
}

/// How long the job's lease lasts at a time (renewed while a scan runs).
const LEASE: Duration = Duration::from_secs(120);

/// A time for people: "on 18 December 2026 at 09:00 UTC".
pub fn when(at: DateTime<Utc>) -> String {
    at.format("on %-d %B %Y at %H:%M UTC").to_string()
}

impl ReviewScheduler {
    pub fn new(store: Store, outbox: Outbox, public_url: &str, clock: SharedClock, owner: &str) -> ReviewScheduler {
        let public_url = public_url.trim_end_matches('/').to_owned();
        ReviewScheduler { store, outbox, public_url, tick: REVIEW_TICK, clock, owner: owner.to_owned() }
    }

    pub fn with_tick(self, tick: Duration) -> ReviewScheduler {
        ReviewScheduler { tick, ..self }
    }

    /// Scans every tick until `shutdown` says stop.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let this = &self;
        let lease = Lease {
            store: self.store.clone(),
            clock: self.clock.clone(),
            name: "reviews".to_owned(),
            owner: self.owner.clone(),
            length: LEASE,
        };
        Runner::new("reviews", self.clock.clone(), self.tick)
            .leased(lease)
            .run(shutdown, |now| async move {
                let done = this.scan(now).await?;
                if done != Scanned::default() {
                    tracing::info!(
                        mails = done.mails,
                        stages = done.stages,
                        closed = done.closed,
                        started = done.started,
                        "access reviews"
                    );
                }
                Ok::<_, ReviewJobError>(Ran::Idle)
            })
            .await;
    }

    /// Does what is due at `now`.
    pub async fn scan(&self, now: DateTime<Utc>) -> Result<Scanned, ReviewJobError> {
        let mut done = Scanned::default();
        let reviews = self.store.reviews();
        for mut instance in reviews.list_running_instances().await? {
            // A stage past its deadline ends; a later one starts (and is announced below), the
            // last closes the instance. After downtime, stages overdue end one after another.
            let mut closed = false;
            while !closed && now >= instance.stage_due() {
                match attest_review::end_stage(&self.store, instance.id, SCHEDULER, now).await? {
                    attest_review::StageEnded::Closed(_) => closed = true,
                    attest_review::StageEnded::Advanced { .. } => {
                        done.stages += 1;
                        instance = reviews.get_instance(instance.id).await?;
                    }
                }
            }
            if closed {
                done.closed += 1;
                continue;
            }
            if instance.announced_at.is_none() && reviews.mark_mailed(instance.id, InstanceMail::Announced, now).await?
            {
                done.mails += self.announce(&instance, now).await?;
            }
            // Reminders are per stage: its reviewers, its deadline.
            let (began, due) = (instance.stage_started(), instance.stage_due());
            let midpoint = began + (due - began) / 2;
            let last_day = due - chrono::Duration::days(1);
            // The day-before reminder replaces a midpoint one not sent yet (a short campaign,
            // or downtime across both).
            if now >= last_day && instance.final_reminded_at.is_none() {
                reviews.mark_mailed(instance.id, InstanceMail::Midpoint, now).await?;
                if reviews.mark_mailed(instance.id, InstanceMail::Final, now).await? {
                    done.mails += self.remind(&instance, true, now).await?;
                }
            } else if now >= midpoint
                && instance.midpoint_reminded_at.is_none()
                && reviews.mark_mailed(instance.id, InstanceMail::Midpoint, now).await?
            {
                done.mails += self.remind(&instance, false, now).await?;
            }
        }
        for instance in reviews.list_unsummarized_instances().await? {
            if reviews.mark_mailed(instance.id, InstanceMail::Summarized, now).await? {
                done.mails += self.summarize(&instance, now).await?;
            }
        }
        for campaign in reviews.list_campaigns_due(now).await? {
            let found = reviews.get_campaign(campaign).await?;
            if found.instance.as_ref().is_some_and(|i| i.state == CampaignState::Running) {
                continue;
            }
            match attest_review::start(&self.store, campaign, SCHEDULER, now).await {
                Ok(_) => done.started += 1,
                // Nothing in scope or nobody to review: the series stops here, said in the log
                // and the audit log rather than retried every tick.
                Err(e @ (ReviewError::NotStartable(_) | ReviewError::Definition(_))) => {
                    tracing::warn!(campaign, error = %e, "the next instance of a recurring campaign could not start");
                    reviews.stop_recurrence(campaign, SCHEDULER, &e.to_string(), now).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    fn inbox(&self, campaign: i64) -> String {
        format!("{}/reviews?campaign={campaign}", self.public_url)
    }

    async fn announce(&self, instance: &Instance, now: DateTime<Utc>) -> Result<usize, ReviewJobError> {
        let campaign = self.store.reviews().get_campaign(instance.campaign_id).await?;
        let mut sent = 0;
        for (reviewer, pending) in attest_review::reviewers_with_pending(&self.store, instance).await? {
            let Some(to) = reviewer.email.filter(|e| is_email_address(e)) else { continue };
            let template = Template::ReviewStarted {
                campaign: campaign.name.clone(),
                description: campaign.description.clone(),
                items: pending,
                due: when(instance.stage_due()),
                inbox_url: self.inbox(campaign.id),
            };
            let key = format!("review-started:{}:{}", instance.id, reviewer.object_id.to_lowercase());
            self.outbox.enqueue(Email { key, to, template }, now).await?;
            sent += 1;
        }
        Ok(sent)
    }

    async fn remind(&self, instance: &Instance, last: bool, now: DateTime<Utc>) -> Result<usize, ReviewJobError> {
        let campaign = self.store.reviews().get_campaign(instance.campaign_id).await?;
        let definition = attest_review::definition_of(&campaign)?;
        let default_decision = match definition.settings.default_decision {
            DefaultDecision::None => None,
            DefaultDecision::Approve => Some("approved".to_owned()),
            DefaultDecision::Revoke => Some("revoked".to_owned()),
            DefaultDecision::Recommendation => Some("decided as Attest recommends".to_owned()),
        };
        let which = if last { "final" } else { "midpoint" };
        let mut sent = 0;
        for (reviewer, pending) in attest_review::reviewers_with_pending(&self.store, instance).await? {
            let Some(to) = reviewer.email.filter(|e| is_email_address(e)) else { continue };
            let template = Template::ReviewReminder {
                campaign: campaign.name.clone(),
                pending,
                due: when(instance.stage_due()),
                last,
                default_decision: default_decision.clone(),
                inbox_url: self.inbox(campaign.id),
            };
            let key = format!("review-reminder:{}:{which}:{}", instance.id, reviewer.object_id.to_lowercase());
            self.outbox.enqueue(Email { key, to, template }, now).await?;
            sent += 1;
        }
        Ok(sent)
    }

    async fn summarize(&self, instance: &Instance, now: DateTime<Utc>) -> Result<usize, ReviewJobError> {
        let reviews = self.store.reviews();
        let campaign = reviews.get_campaign(instance.campaign_id).await?;
        let definition = attest_review::definition_of(&campaign)?;
        let progress = reviews.progress(instance.id).await?;
        let applied = if progress.revoked == 0 {
            "Nothing was revoked.".to_owned()
        } else if definition.settings.auto_apply {
            format!("{} revocation(s) queued in Entra; each item shows its result.", progress.revoked)
        } else {
            format!("{} revocation(s) wait for an owner to apply them.", progress.revoked)
        };
        // Owners by address, or by the address of the person named.
        let owners = reviews.people_named(campaign.connector_id, &definition.owners).await?;
        let mut addresses: Vec<String> = owners.into_iter().filter_map(|p| p.email).collect();
        addresses.extend(definition.owners.iter().filter(|o| is_email_address(o)).cloned());
        addresses.sort_by_key(|a| a.to_lowercase());
        addresses.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let mut sent = 0;
        for to in addresses.into_iter().filter(|a| is_email_address(a)) {
            let template = Template::CampaignClosed {
                campaign: campaign.name.clone(),
                instance: instance.number,
                closed: when(instance.closed_at.unwrap_or(now)),
                items: progress.items,
                approved: progress.approved,
                revoked: progress.revoked,
                not_sure: progress.not_sure,
                undecided: progress.pending,
                applied: applied.clone(),
                campaign_url: format!("{}/campaigns/{}", self.public_url, campaign.id),
            };
            let key = format!("campaign-closed:{}:{}", instance.id, to.to_lowercase());
            self.outbox.enqueue(Email { key, to, template }, now).await?;
            sent += 1;
        }
        Ok(sent)
    }
}
