//! The runner: when a job runs, and what happens around each run.

use std::fmt::Display;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use attest_domain::SharedClock;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::lease::{Lease, LeaseError};
use crate::wait::sleep;

/// What a run came to, for the runner's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Nothing more to do now: wait for the interval (or a wake-up).
    Idle,
    /// There may be more (a full batch was done): run again at once.
    More,
}

/// Runs one job until shutdown. Built once per job in `attest serve`.
#[derive(Debug, Clone)]
pub struct Runner {
    name: &'static str,
    clock: SharedClock,
    every: Duration,
    wake: Option<Arc<Notify>>,
    lease: Option<Lease>,
}

impl Runner {
    /// A job called `name` (in its span and logs), run every `every` by `clock`.
    pub fn new(name: &'static str, clock: SharedClock, every: Duration) -> Runner {
        Runner { name, clock, every, wake: None, lease: None }
    }

    /// Also runs as soon as `wake` is notified (something was queued for it). A notification
    /// that comes during a run is kept, so the job runs once more right after.
    pub fn woken_by(self, wake: Arc<Notify>) -> Runner {
        Runner { wake: Some(wake), ..self }
    }

    /// Runs only while holding `lease`: on one replica at a time, the others skipping a run
    /// while it is held. The lease is renewed during a run, and a run whose lease is taken
    /// over is stopped.
    pub fn leased(self, lease: Lease) -> Runner {
        Runner { lease: Some(lease), ..self }
    }

    /// Runs `work` (given the time the run starts) until `shutdown` turns true, then returns
    /// once the run in hand has finished: a shutdown never cuts a run off. A run that fails is
    /// logged as a warning once, and quietly after that until one succeeds again.
    pub async fn run<W, F, E>(self, mut shutdown: watch::Receiver<bool>, mut work: W)
    where
        W: FnMut(DateTime<Utc>) -> F,
        F: Future<Output = Result<Ran, E>>,
        E: Display,
    {
        let mut failing = false;
        while !*shutdown.borrow() {
            let now = self.clock.now();
            let span = tracing::debug_span!("job", job = self.name, at = %now);
            let outcome = match &self.lease {
                None => work(now).instrument(span).await.map_err(|e| e.to_string()),
                Some(lease) => match lease.hold(work(now).instrument(span)).await {
                    Ok(ran) => ran.map_err(|e| e.to_string()),
                    // Another replica has it this time round.
                    Err(LeaseError::Busy(_)) => Ok(Ran::Idle),
                    Err(e) => Err(e.to_string()),
                },
            };
            let pace = match outcome {
                Ok(ran) => {
                    if failing {
                        tracing::info!(job = self.name, "the job works again");
                        failing = false;
                    }
                    ran
                }
                Err(error) if !failing => {
                    tracing::warn!(job = self.name, %error, "the job failed; it is tried again");
                    failing = true;
                    Ran::Idle
                }
                Err(error) => {
                    tracing::debug!(job = self.name, %error, "the job still fails");
                    Ran::Idle
                }
            };
            if pace == Ran::Idle && self.idle(&mut shutdown).await.is_break() {
                break;
            }
        }
    }

    /// Waits out the interval, cut short by a wake-up or shutdown; `Break` when whoever could
    /// say "shut down" is gone (the process is going away too).
    async fn idle(&self, shutdown: &mut watch::Receiver<bool>) -> ControlFlow<()> {
        let woken = async {
            match &self.wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep(self.clock.as_ref(), self.every) => ControlFlow::Continue(()),
            _ = woken => ControlFlow::Continue(()),
            changed = shutdown.changed() => match changed {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            },
        }
    }
}
