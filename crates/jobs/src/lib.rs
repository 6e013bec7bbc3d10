//! Background jobs, run one way.
//!
//! Every job of `attest serve` (the sync scheduler, the provisioner's workers, the mail sender,
//! the job that queues mail about changes, and the review and expiry jobs to come) is a
//! [`Runner`] around a piece of work: the runner decides *when* it runs (every so often, or at
//! once when woken), tells the time by the process's [`Clock`](attest_domain::Clock) (so a test
//! moves a job forward by moving its clock), gives each run a tracing span, logs a failing job
//! once rather than every tick, and on shutdown lets the run in hand finish before it returns.
//!
//! Work that must run on one replica at a time holds a [`Lease`] in the database, renewed every
//! third of its length while the work goes on; if another replica takes it over (this one was
//! presumed dead), the work is stopped at its next await rather than done twice.

mod lease;
mod runner;
mod wait;

pub use lease::{Lease, LeaseError, LeaseLost, while_renewing};
pub use runner::{Ran, Runner};
pub use wait::{sleep, wait_until};
