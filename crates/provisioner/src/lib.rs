//! The provisioner: workers that take changes from the durable queue and make them true in the
//! directory.
//!
//! One change at a time goes: claimed with a lease → applied by its connector → read back →
//! written through to the graph → recorded (with its audit event). A transient failure is
//! tried again later with exponential backoff (longer if the directory asked for it); a
//! permanent one fails at once with what to do. A worker that dies mid-change leaves its lease
//! to expire and another worker applies the change again, which is safe because every apply is
//! idempotent in effect.
//!
//! Password resets are never picked up by background workers: the temporary password must be
//! shown to a person, once, and never stored, so they are applied in person
//! ([`Provisioner::apply_in_person`]).

mod write_through;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use attest_connector::{ApplyError, Connector, Secret};
use attest_domain::command::AccessCommand;
use attest_domain::{
    ApplyResult, Change, ChangeClass, ChangeId, ChangeKind, ChangeOrigin, ChangeState, ConnectorId, NewChange,
    SharedClock, retry_delay,
};
use attest_jobs::{Ran, Runner};
use attest_store::{AttemptOutcome, Enqueued, Store, StoreError};
use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub use write_through::write_through;

/// How the provisioner behaves.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Changes of these classes wait in `awaiting_approval` until a second person approves.
    pub sensitive: Vec<ChangeClass>,
    /// Attempts before a change that keeps failing transiently is given up as failed.
    pub max_attempts: u32,
    /// How long a claimed change is a worker's before others may take it over.
    pub lease: Duration,
    /// Changes claimed at once.
    pub batch: u64,
    /// Changes applied at the same time by one worker.
    pub concurrency: usize,
    /// How long an idle worker waits before looking again.
    pub poll: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            sensitive: vec![ChangeClass::UserAction, ChangeClass::DirectoryRole, ChangeClass::Ownership],
            max_attempts: 8,
            // Renewed every third of itself while working, so it can be short: a change cut
            // off by a crash is taken up again (or, a password reset, declared unknown) within
            // a minute.
            lease: Duration::from_secs(60),
            batch: 32,
            concurrency: 4,
            poll: Duration::from_secs(2),
        }
    }
}

impl Policy {
    pub fn is_sensitive(&self, kind: ChangeKind) -> bool {
        self.sensitive.contains(&kind.class())
    }
}

/// Opens the connector a change belongs to.
pub trait Connectors: Send + Sync + 'static {
    type Connector: Connector + 'static;
    fn open(&self, id: ConnectorId) -> impl Future<Output = Result<Arc<Self::Connector>, String>> + Send;
}

/// One connector for every change (a single-tenant tool, tests, benchmarks).
pub struct Single<C>(pub Arc<C>);

impl<C: Connector + 'static> Connectors for Single<C> {
    type Connector = C;
    async fn open(&self, _: ConnectorId) -> Result<Arc<C>, String> {
        Ok(self.0.clone())
    }
}

/// Errors of the provisioner itself (the queue's store); a change's own failure is recorded on it.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("change {0} cannot be applied now: it is not pending (see `attest change show {0}`)")]
    NotClaimable(i64),
}

/// A change applied in person, with what is shown only once.
#[derive(Debug)]
pub struct InPerson {
    pub change: Change,
    pub secret: Option<Secret>,
}

/// Workers over one store and set of connectors.
pub struct Provisioner<D: Connectors> {
    store: Store,
    connectors: Arc<D>,
    policy: Policy,
    worker: String,
    clock: SharedClock,
}

impl<D: Connectors> Clone for Provisioner<D> {
    fn clone(&self) -> Self {
        Provisioner {
            store: self.store.clone(),
            connectors: self.connectors.clone(),
            policy: self.policy.clone(),
            worker: self.worker.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// Kinds applied only where a person is present (a temporary password is shown to them): the
/// workers never pick them up, and one whose applier vanished becomes `outcome_unknown`.
const IN_PERSON_ONLY: &[ChangeKind] = &[ChangeKind::ResetPassword];

impl<D: Connectors> Provisioner<D> {
    /// `worker` names this worker in leases and the audit log (e.g. `host:pid`).
    pub fn new(store: Store, connectors: Arc<D>, policy: Policy, worker: impl Into<String>) -> Self {
        Provisioner { store, connectors, policy, worker: worker.into(), clock: attest_domain::clock::system() }
    }

    /// Tells the time by `clock` (leases, retries, audit times) instead of the system's.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Provisioner { clock, ..self }
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Queues a change; sensitive ones (by policy) wait for approval.
    pub async fn enqueue(&self, new: NewChange, now: DateTime<Utc>) -> Result<Enqueued, ProvisionError> {
        let needs_approval = self.policy.is_sensitive(new.action.kind());
        Ok(self.store.changes().enqueue_change(new, needs_approval, now).await?)
    }

    /// Queues what a feature asks in the graph's terms (grant an entitlement, revoke a grant),
    /// as the directory operation it comes to (`Grants::resolve_command`): reviews, requests and
    /// expiry never build a directory operation themselves. `origin` and `origin_ref` say what
    /// asked (a review item, a request); the same command from the same origin is queued once.
    pub async fn submit(
        &self,
        command: &AccessCommand,
        origin: ChangeOrigin,
        origin_ref: &str,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Enqueued, ProvisionError> {
        let (connector_id, action) = self.store.grants().resolve_command(command).await?;
        let idempotency_key = format!("{origin}:{origin_ref}:{}", serde_json::to_string(&action).unwrap_or_default());
        let new = NewChange {
            connector_id,
            action,
            idempotency_key,
            origin,
            origin_ref: Some(origin_ref.to_owned()),
            requested_by: requested_by.to_owned(),
            requested_by_id: None,
            reason: None,
        };
        self.enqueue(new, now).await
    }

    /// Claims a batch of due changes and applies them, up to `concurrency` at a time. Returns
    /// how many were processed.
    pub async fn run_once(&self) -> Result<usize, ProvisionError> {
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(self.policy.lease).unwrap_or(chrono::Duration::minutes(5));
        // Applied only in person, and unreadable afterwards: one cut off is nobody's to finish.
        for id in self.store.changes().mark_outcome_unknown(IN_PERSON_ONLY, now).await? {
            tracing::warn!(change = id.0, "a change was cut off while being applied; its outcome is unknown");
        }
        let claimed = self
            .store
            .changes()
            .claim_changes(&self.worker, self.policy.batch, lease_until, IN_PERSON_ONLY, now)
            .await?;
        let count = claimed.len();
        if count == 0 {
            return Ok(0);
        }
        let mut queue = claimed.into_iter();
        let mut running = tokio::task::JoinSet::new();
        let work = async {
            loop {
                while running.len() < self.policy.concurrency.max(1) {
                    let Some(change) = queue.next() else { break };
                    let this = self.clone();
                    running.spawn(async move { this.process(change).await });
                }
                match running.join_next().await {
                    Some(Ok(Ok(_))) => {}
                    Some(Ok(Err(e))) => {
                        tracing::error!(worker = %self.worker, error = %e, "recording a change failed")
                    }
                    Some(Err(e)) => tracing::error!(worker = %self.worker, error = %e, "a change task panicked"),
                    None => break,
                }
            }
        };
        self.renewing_claims(work).await;
        Ok(count)
    }

    /// Runs `work` while extending this worker's leases every third of a lease, so claims it
    /// is still working through (a batch waiting its turn, a long `Retry-After`) are not taken
    /// over. A lease already expired is not revived: another worker may hold the change by now,
    /// and recording its outcome will be refused. (Each claim's own lease decides, so unlike a
    /// job's [`Lease`](attest_jobs::Lease) this never stops the work.)
    async fn renewing_claims<T>(&self, work: impl Future<Output = T>) -> T {
        let (store, worker, lease, clock) = (&self.store, &self.worker, self.policy.lease, &self.clock);
        let heartbeat = async {
            loop {
                attest_jobs::sleep(clock.as_ref(), lease / 3).await;
                let now = clock.now();
                let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
                if let Err(e) = store.changes().extend_leases(worker, until, now).await {
                    tracing::warn!(%worker, error = %e, "could not extend leases");
                }
            }
        };
        // Boxed: applying a change is a deep future, and a request handler or a test thread
        // polling it inline has a small stack.
        let work = Box::pin(work);
        tokio::select! {
            done = work => done,
            never = heartbeat => match never {},
        }
    }

    /// Works until no change is pending or in progress (a retry waiting for its time counts as
    /// pending): a benchmark's or a test's "apply everything queued".
    pub async fn run_until_idle(&self) -> Result<(), ProvisionError> {
        loop {
            if self.run_once().await? > 0 {
                continue;
            }
            let open = self
                .store
                .changes()
                .count_changes_by_state()
                .await?
                .into_iter()
                .any(|(state, n)| n > 0 && matches!(state, ChangeState::Pending | ChangeState::InProgress));
            if !open {
                return Ok(());
            }
            attest_jobs::sleep(self.clock.as_ref(), self.policy.poll).await;
        }
    }

    /// Works until `shutdown` says stop, finishing the batch in hand first.
    pub async fn run(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        Runner::new("provisioner", self.clock.clone(), self.policy.poll)
            .run(shutdown, |_| async move {
                let processed = self.run_once().await?;
                Ok::<_, ProvisionError>(if processed > 0 { Ran::More } else { Ran::Idle })
            })
            .await;
    }

    /// Applies one change now, by `actor` in person: a password reset shows its temporary
    /// password to them and nobody else. The change must be pending (approved, if it needed it).
    pub async fn apply_in_person(&self, id: ChangeId, actor: &str) -> Result<InPerson, ProvisionError> {
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(self.policy.lease).unwrap_or(chrono::Duration::minutes(5));
        let worker = format!("{actor} (in person)");
        let change = self
            .store
            .changes()
            .claim_change(id, &worker, lease_until, now)
            .await?
            .ok_or(ProvisionError::NotClaimable(id.0))?;
        let in_person = Provisioner { worker, ..self.clone() };
        let (change, secret) = in_person.renewing_claims(in_person.process(change)).await?;
        Ok(InPerson { change, secret })
    }

    /// Applies a claimed change and records how it went.
    async fn process(&self, change: Change) -> Result<(Change, Option<Secret>), ProvisionError> {
        let now = self.clock.now();
        let outcome = match self.connectors.open(change.connector_id).await {
            Err(e) => Err(ApplyError::Transient(format!("the connector cannot be opened: {e}"))),
            Ok(connector) => match connector.apply(&change.action, now).await {
                Ok(applied) => {
                    let verified = if applied.result.succeeded() {
                        match connector.verify(&change.action).await {
                            Ok(verified) => verified,
                            Err(e) => {
                                tracing::warn!(change = change.id.0, error = %e, "could not read the change back");
                                None
                            }
                        }
                    } else {
                        None
                    };
                    if verified == Some(false) {
                        tracing::warn!(change = change.id.0, "applied, but reading back does not show it yet");
                    }
                    Ok((applied, verified))
                }
                Err(e) => Err(e),
            },
        };
        let (record, secret) = match outcome {
            Ok((mut applied, verified)) => {
                if applied.result.succeeded() {
                    match write_through(&self.store, change.connector_id, &change.action, &applied, now).await {
                        Ok(written) => {
                            applied.details = json!({"directory": applied.details, "graph_updated": written});
                        }
                        Err(e) => {
                            tracing::warn!(change = change.id.0, error = %e, "the graph was not updated; the next sync will")
                        }
                    }
                }
                let record = AttemptOutcome::Settled {
                    result: applied.result,
                    verified,
                    graph_request_id: applied.request_id.clone(),
                    error: None,
                    details: applied.details.clone(),
                };
                (record, applied.secret.take())
            }
            Err(ApplyError::Transient(error)) if change.attempts >= self.policy.max_attempts => {
                let error = format!("gave up after {} attempts; the last said: {error}", change.attempts);
                (settled_failure(ApplyResult::Failed, error, None), None)
            }
            Err(ApplyError::Transient(error)) => {
                let delay = jittered(retry_delay(change.attempts.saturating_sub(1), None), change.id, now);
                let next_attempt_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(5));
                (AttemptOutcome::Retry { error, next_attempt_at }, None)
            }
            Err(ApplyError::Permanent { message, request_id }) => {
                (settled_failure(ApplyResult::Failed, message, request_id), None)
            }
            Err(ApplyError::NotSupported(message)) => (settled_failure(ApplyResult::NotSupported, message, None), None),
            // The app itself was refused: the connector needs its owners (recorded, so the
            // page, the metrics and the owners' mail say so), and the change waits for the fix
            // as a transient failure would, until its attempts run out.
            Err(ApplyError::Unauthorized(error)) => {
                let status = attest_domain::ConnectorStatus::NeedsReauthorization;
                if let Err(e) =
                    self.store.setup().set_status(change.connector_id, status, Some(&error), "system", now).await
                {
                    tracing::warn!(change = change.id.0, error = %e, "the connector's status was not recorded");
                }
                if change.attempts >= self.policy.max_attempts {
                    let error = format!("gave up after {} attempts; the last said: {error}", change.attempts);
                    (settled_failure(ApplyResult::Failed, error, None), None)
                } else {
                    let delay = jittered(retry_delay(change.attempts.saturating_sub(1), None), change.id, now);
                    let next_attempt_at =
                        now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(5));
                    (AttemptOutcome::Retry { error, next_attempt_at }, None)
                }
            }
        };
        let recorded = self.store.changes().record_attempt(change.id, &self.worker, record, self.clock.now()).await?;
        tracing::info!(
            change = recorded.id.0,
            kind = %recorded.kind,
            state = %recorded.state,
            result = recorded.result.map_or("none", |r| r.as_str()),
            "change processed"
        );
        Ok((recorded, secret))
    }
}

fn settled_failure(result: ApplyResult, error: String, request_id: Option<String>) -> AttemptOutcome {
    AttemptOutcome::Settled {
        result,
        verified: None,
        graph_request_id: request_id,
        error: Some(error),
        details: json!({}),
    }
}

/// ±20 % so many changes failing together do not come back together (not security-relevant).
fn jittered(delay: Duration, change: ChangeId, now: DateTime<Utc>) -> Duration {
    let nanos = now.timestamp_subsec_nanos();
    let mut rng = SmallRng::seed_from_u64(u64::from(nanos) ^ change.0.unsigned_abs().rotate_left(32));
    delay.mul_f64(rng.random_range(0.8..1.2))
}
