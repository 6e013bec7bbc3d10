//! `attest bench scim`: Entra's provisioning service filling Attest over SCIM. A tenant is
//! generated in the simulator (10,000 users, 1,000 groups and 100,000 memberships by default), `attest serve` is
//! booted on the database through the same `run` function, and the simulator's provisioning
//! client runs an initial cycle (Test Connection, a find then a create per user, manager links,
//! groups created empty, members added in batches), then an incremental cycle after churn.
//! Prints each cycle's total time, requests per second and p50/p99 latency, beside the goal:
//! 1,000 requests per second with p99 under 50 ms (Entra asks 25 per second of gallery apps).
//!
//! The client shares the machine (and its two cores) with the server, as in `bench web`.

use std::io::Write;
use std::process::ExitCode;

use attest_entra_sim::provision::{CycleReport, ProvisioningClient, RequestForm, Scope};
use attest_entra_sim::{ClientApp, SimOptions, TenantSpec, generate, spawn_with};
use clap::Args;

use crate::commands::Context;

#[derive(Debug, Args)]
pub struct ScimBenchArgs {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Group memberships in all: the generated tenant's power-law groups are topped up with
    /// random members to reach it.
    #[arg(long, default_value_t = 100_000)]
    memberships: usize,
    /// Requests the client keeps in flight (Entra's service sends several at once; past 8, on
    /// two cores shared with the client, latency grows faster than throughput).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Members per PATCH.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// `default` (the default job's requests) or `compliant` (`aadOptscim062020`).
    #[arg(long, default_value = "default")]
    form: String,
    /// Objects changed in the tenant before the incremental cycle.
    #[arg(long, default_value_t = 500)]
    churn: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(context: &Context, args: ScimBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let form = match args.form.as_str() {
        "default" => RequestForm::Default,
        "compliant" => RequestForm::Compliant,
        other => anyhow::bail!("--form: default or compliant, not {other}"),
    };
    let store = context.connect().await?;
    store.migrate_up(None).await?;
    anyhow::ensure!(
        store.scim().find_users(&[], 1, 0).await?.total == 0,
        "this database already holds SCIM users: use a fresh one (--database-url)"
    );

    let spec = TenantSpec { users: args.users, groups: args.groups, apps: 0, assignments_per_app: 0, seed: args.seed };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = spawn_with(listener, generate(spec), ClientApp::attest(args.seed), SimOptions::default()).await?;
    let memberships = top_up(&sim, args.memberships, args.seed);

    // Serve, exactly as `attest serve` does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(attest_server::run(
        context.config.clone(),
        attest_domain::clock::system(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let now = crate::now();
    let tenant = sim.tenant_id();
    let (_, token) = attest_server::scim::create_token(&store, "bench", Some(&tenant), "bench", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = attest_http::client_builder().pool_max_idle_per_host(args.concurrency).build()?;
    let mut client = ProvisioningClient::new(http, &format!("{base}/scim/v2"), &token, form, Scope::AllUsersAndGroups);
    client.concurrency = args.concurrency;
    client.batch_size = args.batch;
    let backend = format!("{:?}", store.backend()).to_lowercase();
    writeln!(
        out,
        "bench scim on {backend}: {} users, {} groups, {memberships} memberships; {} requests in flight, {} members per PATCH, {} form",
        args.users, args.groups, args.concurrency, args.batch, args.form
    )?;
    client.test_connection().await.map_err(anyhow::Error::msg)?;
    writeln!(
        out,
        "{:<12} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}   goal: 1,000 req/s, p99 < 50 ms",
        "cycle", "requests", "seconds", "req/s", "p50 ms", "p99 ms", "errors"
    )?;
    let initial = client.initial_cycle(&sim.sim).await;
    print_cycle(out, "initial", &initial)?;
    let mutated = sim.mutate(args.seed + 1, args.churn);
    let incremental = client.incremental_cycle(&sim.sim).await;
    print_cycle(out, "incremental", &incremental)?;
    writeln!(out, "churn before the incremental cycle: {mutated:?}")?;
    let users = store.scim().find_users(&[], 1, 0).await?.total;
    let groups = store.scim().find_groups(&[], 1, 0).await?.total;
    writeln!(out, "attest holds {users} users and {groups} groups")?;
    let _ = stop.send(());
    server.await??;
    sim.shutdown().await;
    let failed = initial.errors.len() + incremental.errors.len();
    for error in initial.errors.iter().chain(&incremental.errors).take(5) {
        writeln!(out, "error: {error}")?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Adds random users to random groups until the tenant holds `target` memberships; how many
/// it holds.
fn top_up(sim: &attest_entra_sim::SimHandle, target: usize, seed: u64) -> usize {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(seed);
    sim.sim.write(|t| {
        let users: Vec<String> = t.users.iter().filter(|u| u.deleted.is_none()).map(|u| u.id.clone()).collect();
        let groups: Vec<usize> = (0..t.groups.len()).filter(|&i| t.groups[i].deleted.is_none()).collect();
        let mut held: std::collections::HashSet<(usize, String)> = std::collections::HashSet::new();
        for &g in &groups {
            held.extend(t.groups[g].members.iter().map(|m| (g, m.clone())));
        }
        let mut count = held.len();
        // Bounded: a tenant too small for the target stops short of it.
        let mut tries = target.saturating_mul(4);
        while count < target && tries > 0 && !users.is_empty() && !groups.is_empty() {
            tries -= 1;
            let g = groups[rng.random_range(0..groups.len())];
            let u = &users[rng.random_range(0..users.len())];
            if held.insert((g, u.clone())) {
                t.groups[g].members.push(u.clone());
                count += 1;
            }
        }
        t.groups.iter().map(|g| g.members.len()).sum()
    })
}

fn print_cycle(out: &mut dyn Write, name: &str, report: &CycleReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{name:<12} {:>9} {:>10.1} {:>9.0} {:>9.1} {:>9.1} {:>7}",
        report.requests,
        report.elapsed.as_secs_f64(),
        report.requests_per_second(),
        report.latency_percentile_ms(0.50).unwrap_or_default(),
        report.latency_percentile_ms(0.99).unwrap_or_default(),
        report.errors.len()
    )
}
