//! Benchmark scenarios: binaries that print figures, not timed tests.

mod expiry;
mod ingest;
mod loader;
mod provision;
mod review;
mod rss;
mod scim;
mod sim;
mod sync;
mod synth;
mod web;

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use crate::commands::Context;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load a synthetic entitlement graph through the sync sink, load it again unchanged, and
    /// compare the first load with the database's own bulk loader. Needs an empty database
    /// (--database-url); it creates the schema and empties the grants table along the way.
    Ingest(ingest::IngestArgs),
    /// Generate a tenant in the Entra simulator and page through it over HTTP: generation
    /// time, objects served per second, memory.
    Sim(sim::SimBenchArgs),
    /// Full sync of a generated tenant through the Entra connector (20 ms latency per
    /// request), then a delta after churn: wall time, requests, resource units, exactness
    /// against the tenant, memory; and the per-group member-listing pattern's cost beside it.
    /// Uses --database-url (migrating it) and adds a connector named bench-<time>.
    Sync(sync::SyncBenchArgs),
    /// Mixed changes (memberships added and removed, app roles, sign-in blocked) through the
    /// queue and workers into the simulator with 20 ms latency and Graph's throttling, including
    /// the write quota: throughput and total time beside the write quota's bound, and requests
    /// sent inside a Retry-After window. Uses --database-url (migrating it).
    Provision(provision::ProvisionBenchArgs),
    /// The people search, a person's page and the dashboard under load (50 requests in flight)
    /// with a generated tenant synced: p50/p95/p99 latency and requests per second per page.
    /// Uses --database-url (migrating it) and a connector named bench-web (--reuse keeps it).
    Web(web::WebBenchArgs),
    /// An access review at scale: a synthetic graph (100,000 users, about a million
    /// memberships) loaded, a campaign over every membership started, a reviewer's inbox under
    /// load (50 requests in flight), a bulk decision, and closing with 100,000 revocations
    /// queued. Uses --database-url (migrating it) and adds a connector named bench-review-<time>.
    Review(review::ReviewBenchArgs),
    /// Just-in-time grants (10,000 by default) ending in the same minute, removed in the
    /// simulator (20 ms latency, Graph's write quota) by the access sweep and two workers: the
    /// delay from expires_at to removal confirmed (median, p99, max) beside the quota's bound.
    /// Uses --database-url (migrating it) and adds a connector named bench-expiry-<time>.
    Expiry(expiry::ExpiryBenchArgs),
    /// Entra's provisioning service filling Attest over SCIM: an initial cycle of a generated
    /// tenant (10,000 users, 1,000 groups) and an incremental one after churn: each cycle's time,
    /// requests per second, p50/p99 latency. Uses --database-url (migrating it; a fresh one).
    Scim(scim::ScimBenchArgs),
}

pub async fn run(context: &Context, command: BenchCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(context, args, out).await,
        BenchCommand::Sim(args) => sim::run(args, out).await,
        BenchCommand::Sync(args) => sync::run(context, args, out).await,
        BenchCommand::Provision(args) => provision::run(context, args, out).await,
        BenchCommand::Web(args) => web::run(context, args, out).await,
        BenchCommand::Review(args) => Box::pin(review::run(context, args, out)).await,
        BenchCommand::Expiry(args) => Box::pin(expiry::run(context, args, out)).await,
        BenchCommand::Scim(args) => Box::pin(scim::run(context, args, out)).await,
    }
}
