//! `attest bench sync`: a full sync of a generated tenant through the real connector and
//! store, a delta sync after churn, the exactness check against the tenant's truth, and what
//! the per-group member-listing pattern would have cost on the same tenant.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_connector::{SyncOutcome, run_sync};
use attest_domain::{ConnectorId, SyncMode, SyncTrigger};
use attest_entra::{Credentials, EntraConnector, EntraSettings, GraphClient, RetryPolicy};
use attest_entra_sim::{ClientApp, SimHandle, SimOptions, TenantSpec, ThrottleConfig, Truth, generate, spawn_with};
use attest_store::{NewConnector, Store};
use clap::Args;

use super::rss::{current_rss_mib, peak_rss_mib, reset_peak};
use crate::commands::Context;

#[derive(Debug, Args)]
pub struct SyncBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 20_000)]
    groups: usize,
    #[arg(long, default_value_t = 2_000)]
    apps: usize,
    #[arg(long, default_value_t = 50)]
    assignments_per_app: usize,
    /// Round-trip latency added to every Graph request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Share of users changed before the delta sync (changes spread over every kind).
    #[arg(long, default_value_t = 0.01)]
    churn: f64,
    /// Throttle as Graph does for a large tenant (8,000 resource units per 10 s).
    #[arg(long)]
    throttle: bool,
    /// Skip measuring the per-group member-listing pattern.
    #[arg(long)]
    skip_member_listing: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(context: &Context, args: SyncBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let url = context.config.database.url.clone();
    let store = context.connect().await?;
    store.migrate_up(None).await?;
    let spec = TenantSpec {
        users: args.users,
        groups: args.groups,
        apps: args.apps,
        assignments_per_app: args.assignments_per_app,
        seed: args.seed,
    };
    let tenant = generate(spec);
    let memberships: usize = tenant.groups.iter().map(|g| g.members.len()).sum();
    writeln!(
        out,
        "bench sync: {} users, {} groups, {memberships} memberships, {} service principals, {} app role assignments; {} ms latency{}; into {url}",
        tenant.users.len(),
        tenant.groups.len(),
        tenant.service_principals.len(),
        tenant.app_role_assignments.len(),
        args.latency_ms,
        if args.throttle { ", throttled" } else { "" }
    )?;
    let options = SimOptions {
        latency: Duration::from_millis(args.latency_ms),
        throttle: args.throttle.then(ThrottleConfig::default),
        ..SimOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = spawn_with(listener, tenant, ClientApp::attest(args.seed), options).await?;
    let name = format!("bench-{}", crate::now().timestamp_millis());
    let id = store.connectors().create_connector(NewConnector::entra(&name), crate::now()).await?.id;
    let connector = connector_for(&sim)?;

    // The simulator holds the whole tenant in this process; measure the sync's peak on top of it.
    let before = current_rss_mib().filter(|_| reset_peak());
    let full = timed_sync(&connector, &store, id, SyncMode::Full).await?;
    report(out, "full sync", &full)?;
    if let (Some(before), Some(peak)) = (before, peak_rss_mib()) {
        writeln!(
            out,
            "  memory: {before:.0} MiB resident before the sync (the simulator's tenant), peak {peak:.0} MiB during it: the sync added at most {:.0} MiB",
            peak - before
        )?;
    }
    let exact = exactness(&sim, &store, id).await?;
    writeln!(out, "  graph equals the tenant's truth: {exact}")?;

    let per_kind = ((args.users as f64 * args.churn) / attest_entra_sim::mutate::KINDS.len() as f64).ceil() as usize;
    let report_of_changes = sim.mutate(args.seed + 1, per_kind.max(1));
    let changes: usize = report_of_changes.applied.values().sum();
    writeln!(out, "churn: {changes} changes ({per_kind} of each of {} kinds)", report_of_changes.applied.len())?;
    let delta = timed_sync(&connector, &store, id, SyncMode::Delta).await?;
    report(out, "delta sync", &delta)?;
    let share = 100.0 * delta.1.summary.run.resource_units as f64 / full.1.summary.run.resource_units.max(1) as f64;
    writeln!(out, "  delta resource units: {share:.1}% of the full sync's")?;
    let refresh = EntraConnector::new(
        client_for(&sim)?,
        EntraSettings { app_assignments_refresh_minutes: 0, ..EntraSettings::default() },
    );
    let with_refresh = timed_sync(&refresh, &store, id, SyncMode::Delta).await?;
    report(out, "delta sync re-reading app role assignments", &with_refresh)?;
    let exact = exactness(&sim, &store, id).await?;
    writeln!(out, "  graph equals the tenant's truth: {exact}")?;

    if !args.skip_member_listing {
        member_listing(&sim, out).await?;
    }
    writeln!(out, "early requests (inside a Retry-After window): {}", sim.sim.stats().early_requests)?;
    if let Some(rss) = peak_rss_mib() {
        writeln!(out, "peak RSS since the full sync began (exactness checks and listing included): {rss:.0} MiB")?;
    }
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// A Graph client for the simulator's app.
pub(super) fn client_for(sim: &SimHandle) -> anyhow::Result<GraphClient> {
    let app = sim.sim.client().clone();
    let credentials = Credentials {
        login_url: sim.login_url.clone(),
        graph_url: sim.graph_url.clone(),
        tenant_id: sim.tenant_id(),
        client_id: app.client_id,
        client_secret: app.client_secret,
        certificate: None,
    };
    Ok(GraphClient::connect(crate::commands::connector::http_client()?, credentials, RetryPolicy::default()))
}

fn connector_for(sim: &SimHandle) -> anyhow::Result<EntraConnector> {
    Ok(EntraConnector::new(client_for(sim)?, EntraSettings::default()))
}

async fn timed_sync(
    connector: &EntraConnector,
    store: &Store,
    id: ConnectorId,
    mode: SyncMode,
) -> anyhow::Result<(f64, SyncOutcome)> {
    let started = Instant::now();
    let outcome = run_sync(connector, store, id, mode, SyncTrigger::Bench, &attest_domain::SystemClock, None).await?;
    Ok((started.elapsed().as_secs_f64(), outcome))
}

fn report(out: &mut dyn Write, what: &str, (seconds, outcome): &(f64, SyncOutcome)) -> std::io::Result<()> {
    let run = &outcome.summary.run;
    writeln!(out, "{what}: {seconds:.1} s, {} Graph requests, {} resource units", run.requests, run.resource_units)?;
    let c = &run.counts;
    writeln!(
        out,
        "  principals +{} ~{} -{}; grants +{} ~{} -{}; inherited {} current after +{} -{}",
        c.principals.added,
        c.principals.changed,
        c.principals.removed,
        c.grants.added,
        c.grants.changed,
        c.grants.removed,
        c.inherited_grants.added + c.inherited_grants.unchanged,
        c.inherited_grants.added,
        c.inherited_grants.removed
    )?;
    let mut timings: Vec<(&&str, &f64)> = outcome.summary.timings.iter().collect();
    timings.sort_by(|a, b| b.1.total_cmp(a.1));
    let timings: Vec<String> = timings.iter().map(|(k, v)| format!("{k} {v:.1} s")).collect();
    writeln!(out, "  database time: {}", timings.join(", "))?;
    for note in &run.notes {
        writeln!(out, "  note: {note}")?;
    }
    Ok(())
}

/// "yes", or the kinds that differ.
async fn exactness(sim: &SimHandle, store: &Store, id: ConnectorId) -> anyhow::Result<String> {
    let truth: BTreeMap<&'static str, Vec<String>> = sim.sim.read(Truth::lines);
    let graph = attest_entra::sync::canonical_lines(store, id).await?;
    let differing: Vec<String> = truth
        .iter()
        .filter(|(kind, lines)| graph.get(*kind) != Some(lines))
        .map(|(kind, lines)| format!("{kind} ({} vs {})", graph.get(*kind).map_or(0, Vec::len), lines.len()))
        .collect();
    Ok(if differing.is_empty() { "yes".into() } else { format!("NO: {}", differing.join(", ")) })
}

/// What existing connectors do: one `/groups/{id}/members` walk (and one owners listing) per
/// group, 16 at a time.
async fn member_listing(sim: &SimHandle, out: &mut dyn Write) -> anyhow::Result<()> {
    let client = Arc::new(client_for(sim)?);
    let groups: Vec<String> = sim.sim.read(|t| t.live_groups().map(|g| g.id.clone()).collect());
    let before = sim.sim.stats();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut links = 0usize;
    for chunk in groups.chunks(groups.len().div_ceil(16).max(1)) {
        let client = client.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            let mut n = 0;
            for id in chunk {
                for relation in ["members", "owners"] {
                    client.pages(&format!("/groups/{id}/{relation}?$top=999"), &[], |items| n += items.len()).await?;
                }
            }
            Ok::<usize, attest_entra::GraphError>(n)
        });
    }
    while let Some(done) = tasks.join_next().await {
        links += done??;
    }
    let after = sim.sim.stats();
    writeln!(
        out,
        "per-group listing (members + owners of each group): {links} links, {} requests, {} resource units, {:.1} s",
        after.requests - before.requests,
        after.resource_units - before.resource_units,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
