//! Leases: work that must run on one replica at a time.

use std::future::Future;
use std::time::Duration;

use attest_domain::SharedClock;
use attest_store::{Store, StoreError};
use chrono::{DateTime, Utc};

use crate::wait::sleep;

/// Why leased work did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another replica holds the lease: the work is theirs for now.
    #[error("'{0}' is being done by another attest process right now")]
    Busy(String),
    /// The lease was taken over while working (this replica was presumed dead): the work was
    /// stopped so it is not done twice.
    #[error("the lease on '{0}' was lost while working; the work was stopped")]
    Lost(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A named lease in the database (`job_leases`), held by `owner` for `length` at a time.
#[derive(Debug, Clone)]
pub struct Lease {
    pub store: Store,
    pub clock: SharedClock,
    /// What is leased, e.g. `sync:3`.
    pub name: String,
    /// Who holds it: this process's instance name.
    pub owner: String,
    /// How long one take or renewal lasts. A replica that dies frees the work after this long.
    pub length: Duration,
}

impl Lease {
    /// Runs `work` while holding the lease, renewing it every third of its length; gives it
    /// back when the work ends. [`LeaseError::Busy`] when someone else holds it, and
    /// [`LeaseError::Lost`] (the work dropped at its next await) when it is taken over.
    pub async fn hold<T>(&self, work: impl Future<Output = T>) -> Result<T, LeaseError> {
        if !self.take().await? {
            return Err(LeaseError::Busy(self.name.clone()));
        }
        let renewed = while_renewing(&self.clock, self.length, || self.take(), work).await;
        // Given back even when lost: the statement only deletes the row while it is ours.
        if let Err(e) = self.store.leases().release_job_lease(&self.name, &self.owner).await {
            tracing::warn!(lease = %self.name, error = %e, "a lease was not given back; it expires by itself");
        }
        renewed.map_err(|LeaseLost| LeaseError::Lost(self.name.clone()))
    }

    /// Takes or renews the lease; whether this owner holds it now.
    async fn take(&self) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(self.length).unwrap_or(chrono::Duration::hours(1));
        self.store.leases().acquire_job_lease(&self.name, &self.owner, until, now).await
    }
}

/// A renewal was refused, or none succeeded for a whole lease: the lease is not ours any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLost;

/// Runs `work`, calling `renew` every third of `length` (by `clock`) while it runs. `renew`
/// answers whether the lease is still held; when it says no, or fails for as long as a lease
/// lasts (the database is away, so the lease lapses), the work is dropped and [`LeaseLost`] returned.
/// A failing renewal is logged and tried again at the next third.
pub async fn while_renewing<T, R, RF>(
    clock: &SharedClock,
    length: Duration,
    mut renew: R,
    work: impl Future<Output = T>,
) -> Result<T, LeaseLost>
where
    R: FnMut() -> RF,
    RF: Future<Output = Result<bool, StoreError>>,
{
    let every = (length / 3).max(Duration::from_millis(10));
    let renewing = async {
        let mut held_until: DateTime<Utc> = clock.now() + chrono::Duration::from_std(length).unwrap_or_default();
        loop {
            sleep(clock.as_ref(), every).await;
            match renew().await {
                Ok(true) => held_until = clock.now() + chrono::Duration::from_std(length).unwrap_or_default(),
                Ok(false) => return LeaseLost,
                Err(_) if clock.now() >= held_until => return LeaseLost,
                Err(e) => tracing::warn!(error = %e, "a lease could not be renewed; trying again"),
            }
        }
    };
    // Boxed: the work (a whole sync) is a large future, and whoever polls it may have a small stack.
    let work = Box::pin(work);
    tokio::select! {
        done = work => Ok(done),
        lost = renewing => Err(lost),
    }
}
