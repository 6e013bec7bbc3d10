//! `attest bench review`: an access review at scale. A synthetic graph (100,000 users, every
//! group membership about a million grants) is loaded through the sync sink; then a campaign
//! over every membership is started (snapshot, reviewer resolution, recommendations), a
//! reviewer's inbox is driven over HTTP with 50 requests in flight, 10,000 items are decided at
//! once, and closing queues 100,000 revocations. Then revocations are applied in Entra: a
//! simulated tenant (Graph's write quota and latency) is synced, reviewed, closed and its
//! revocations applied by the provisioner's workers. Prints each figure beside its target.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use attest_domain::review::Decision;
use attest_entra_sim::TenantSpec;
use attest_store::{Decided, ItemFilter, NewConnector, Store};
use clap::Args;

use super::provision::{Throttled, apply_queue, quota_bound, throttled_tenant};

use super::ingest::load_grants;
use super::synth::Synth;
use super::web::Driver;
use crate::commands::Context;

#[derive(Debug, Args)]
pub struct ReviewBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 10_000)]
    groups: usize,
    /// Direct grants (memberships, one owner per group, some nesting).
    #[arg(long, default_value_t = 1_000_000)]
    grants: usize,
    /// Items the reviewer whose inbox is driven should have (the nearest is chosen).
    #[arg(long, default_value_t = 10_000)]
    inbox_items: u64,
    /// Items decided at once.
    #[arg(long, default_value_t = 10_000)]
    bulk: usize,
    /// Revocations queued when the campaign closes.
    #[arg(long, default_value_t = 100_000)]
    revocations: usize,
    /// Requests in flight on the inbox.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// How long the inbox is driven.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The load generator: `wrk` (lighter, so more of the cores serve pages) or `rust` (a
    /// reqwest client in this process). Default: wrk when installed.
    #[arg(long)]
    driver: Option<String>,
    /// Revocations applied in Entra (the simulator, with Graph's write quota and latency) to
    /// measure applying against the quota; more than 3,000 goes past the quota's burst.
    #[arg(long, default_value_t = 4_500)]
    apply: usize,
    /// Users in that simulated tenant (and a tenth as many groups).
    #[arg(long, default_value_t = 20_000)]
    apply_users: usize,
    /// Round-trip latency added to every simulated Graph request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(context: &Context, args: ReviewBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let store = context.connect().await?;
    store.migrate_up(None).await?;
    let name = format!("bench-review-{}", crate::now().timestamp_millis());
    let tenant = "bench-tenant".to_owned();
    let new = NewConnector { tenant_id: Some(tenant.clone()), ..NewConnector::entra(&name) };
    let connector = store.connectors().create_connector(new, crate::now()).await?.id;
    let synth = Synth::new(args.users, args.groups, args.grants, args.seed)?;
    writeln!(
        out,
        "bench review: {} users, {} groups, {} grants (seed {}) into {}",
        args.users, args.groups, args.grants, args.seed, context.config.database.url
    )?;
    let started = Instant::now();
    let principals = synth.principals();
    load_grants(&store, connector, &synth, &principals, &synth.resources(), &synth.entitlements()).await?;
    writeln!(out, "  graph loaded through the sync sink in {:.1} s", started.elapsed().as_secs_f64())?;

    // Every membership, reviewed by each group's owner; the first user is the fallback.
    let fallback = principals[0].user_principal_name.clone().unwrap_or_default();
    let text = format!(
        "name = \"Bench: every membership\"\nowners = [\"{fallback}\"]\n[scope]\nconnector = \"{name}\"\n\
         resource_kinds = [\"group\"]\nentitlements = [\"member\"]\nprincipals = \"users\"\n\
         [reviewers]\nmode = \"resource_owner\"\nfallback = [\"{fallback}\"]\n[settings]\njustification_required = \"none\"\n"
    );
    let definition = attest_review::parse_definition(&text)?;
    let campaign = attest_review::create(&store, &definition, "bench", crate::now()).await?;
    let clock = Instant::now();
    let begun = attest_review::start(&store, campaign.id, "bench", crate::now()).await?;
    let start_secs = clock.elapsed().as_secs_f64();
    writeln!(
        out,
        "  start (snapshot + reviewers + recommendations): {} items, {} reviewers, {} recommended for revocation in {start_secs:.1} s (target < 30 s)",
        begun.items, begun.reviewers, begun.recommended_revoke
    )?;
    writeln!(
        out,
        "    of which: reading the grants in scope {:.1} s, then writing the items {:.1} s (reviewers and recommendations worked out alongside, {:.1} s of it)",
        begun.took.read.as_secs_f64(),
        begun.took.write.as_secs_f64(),
        begun.took.resolve.as_secs_f64()
    )?;
    let instance = begun.instance.id;

    // The reviewer whose pending count is nearest the asked size.
    let reviewers = store.reviews().pending_by_reviewer(instance).await?;
    let (reviewer, reviewer_name, _, pending) = reviewers
        .into_iter()
        .min_by_key(|r| (u64::try_from(r.3).unwrap_or(0)).abs_diff(args.inbox_items))
        .ok_or_else(|| anyhow::anyhow!("the campaign has no reviewers"))?;
    writeln!(out, "  inbox of {reviewer_name}: {pending} items")?;

    // Their inbox over HTTP, as `attest serve` answers it.
    let config = context.config.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(attest_server::run(config, attest_domain::clock::system(), listener, async move {
        let _ = stopped.await;
    }));
    let user = store.web().sign_in_web_user(&tenant, &reviewer, &reviewer_name, None, crate::now()).await?;
    let token = attest_server::session::random_token().map_err(|e| anyhow::anyhow!(e))?;
    let csrf = attest_server::session::random_token().map_err(|e| anyhow::anyhow!(e))?;
    let expires = crate::now() + chrono::Duration::hours(1);
    store
        .web()
        .create_web_session(&attest_server::session::hash(&token), user.id, &csrf, expires, crate::now())
        .await?;
    let cookie = format!("{}={token}", attest_server::session::SESSION_COOKIE);
    let driver = Driver::choose(args.driver.as_deref())?;
    writeln!(out, "  driven by {}", driver.name())?;
    writeln!(
        out,
        "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "page", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s", "errors"
    )?;
    let pages = [
        ("inbox, first page", vec!["/reviews".to_owned()]),
        (
            "inbox by resource, deep pages",
            (1..=20).map(|p| format!("/reviews?order=resource&page={}", p * 7)).collect(),
        ),
        ("inbox API", vec!["/api/v1/reviews".to_owned()]),
    ];
    for (label, paths) in &pages {
        let f = driver.drive(&base, &cookie, paths, args.connections, Duration::from_secs(args.seconds)).await?;
        writeln!(
            out,
            "  {label:<34} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            f.requests,
            f.p50,
            f.p95,
            f.p99,
            f.requests as f64 / f.elapsed,
            f.errors
        )?;
    }
    writeln!(out, "  (target: inbox p95 < 50 ms at {} connections)", args.connections)?;
    let _ = stop.send(());
    let _ = server.await;

    // A bulk decision: the reviewer revokes their first items at once.
    let filter = ItemFilter {
        instance: Some(instance),
        reviewer: Some(reviewer.clone()),
        decision: Some(Decision::Pending),
        limit: args.bulk as u64,
        ..Default::default()
    };
    let items: Vec<i64> = store.reviews().list_items(&filter).await?.iter().map(|i| i.id).collect();
    let me = attest_review::Reviewer { object_id: reviewer.clone(), name: reviewer_name.clone(), identity: None };
    let act = attest_review::Decide {
        items: &items,
        decision: Decision::Revoke,
        justification: "no longer needed",
        how: "bulk",
    };
    let clock = Instant::now();
    let decided = attest_review::decide(&store, instance, &me, &act, crate::now()).await?;
    writeln!(out, "  bulk decision: {decided} items in {:.2} s (target < 2 s)", clock.elapsed().as_secs_f64())?;

    // Closing with many revocations: the other reviewers' decisions are recorded as theirs
    // would be (the store's decision), then close and apply queue one change per item.
    let pending = ItemFilter { instance: Some(instance), decision: Some(Decision::Pending), ..Default::default() };
    let revoke = first_items(&store, pending, args.revocations.saturating_sub(items.len()), |_| true).await?;
    revoke_as_reviewers(&store, instance, &revoke).await?;
    let clock = Instant::now();
    let closed = attest_review::close(&store, instance, "bench", crate::now()).await?;
    let close_secs = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let applied = attest_review::apply_revocations(&store, instance, "bench", crate::now()).await?;
    let apply_secs = clock.elapsed().as_secs_f64();
    writeln!(
        out,
        "  close: {:.1} s ({} default decisions); revocations queued: {} in {apply_secs:.1} s, {} already removed, {} not through Graph; together {:.1} s (target < 20 s)",
        close_secs,
        closed.defaulted,
        applied.queued,
        applied.already_removed,
        applied.failed,
        close_secs + apply_secs
    )?;
    // Graph's write quota (3,000 writes per 150 s per tenant, the simulator's default) bounds
    // how fast any client can apply them: measured below against the simulator.
    let quota = attest_entra_sim::ThrottleConfig::default();
    let bound = ((applied.queued as f64) - quota.write_quota).max(0.0) / (quota.write_quota / quota.write_window_secs);
    writeln!(
        out,
        "  applying {} revocations is bounded by the write quota ({} per {} s): at least {:.0} s ({:.1} h)",
        applied.queued,
        quota.write_quota,
        quota.write_window_secs,
        bound,
        bound / 3600.0
    )?;
    // The synthetic tenant cannot apply them; the workers below must not take them either.
    store.changes().cancel_waiting_for_benchmark(connector).await?;
    if args.apply > 0 {
        apply_in_entra(&store, &args, out).await?;
    }
    writeln!(out, "  peak memory: {:.0} MiB", super::rss::peak_rss_mib().unwrap_or_default())?;
    Ok(ExitCode::SUCCESS)
}

/// Revocations from a closed campaign applied in Entra: a simulated tenant (Graph's write quota
/// and latency) is synced, a campaign over its memberships started and `args.apply` items
/// revoked, closed and queued; the provisioner's workers apply them. Prints the time beside the
/// quota's bound for the writes made, and how the items ended.
async fn apply_in_entra(store: &Store, args: &ReviewBenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let spec = TenantSpec {
        users: args.apply_users,
        groups: (args.apply_users / 10).max(10),
        apps: 20,
        assignments_per_app: 10,
        seed: args.seed,
    };
    let Throttled { sim, connector, name, throttle, .. } =
        throttled_tenant(store, spec, args.latency_ms, "bench-review-apply").await?;
    let (write_quota, write_window) = (throttle.write_quota, throttle.write_window_secs);
    let (reviewer, fallback) = sim.sim.read(|t| {
        let mut users = t.live_users().filter(|u| u.account_enabled).map(|u| u.user_principal_name.clone());
        (users.next().unwrap_or_default(), users.next().unwrap_or_default())
    });
    let text = format!(
        "name = \"Bench: applied in Entra\"\nowners = [\"{reviewer}\"]\n[scope]\nconnector = \"{name}\"\n\
         resource_kinds = [\"group\"]\nentitlements = [\"member\"]\nprincipals = \"users\"\n\
         [reviewers]\nmode = \"named\"\nnamed = [\"{reviewer}\"]\nfallback = [\"{fallback}\"]\n\
         [settings]\njustification_required = \"none\"\n"
    );
    let definition = attest_review::parse_definition(&text)?;
    let campaign = attest_review::create(store, &definition, "bench", crate::now()).await?;
    let instance = attest_review::start(store, campaign.id, "bench", crate::now()).await?.instance.id;
    // Revocations Graph can make (not dynamic or on-premises groups), as many as asked.
    let any = ItemFilter { instance: Some(instance), ..Default::default() };
    let revoke = first_items(store, any, args.apply, |i| i.revoke_blocked.is_none()).await?;
    revoke_as_reviewers(store, instance, &revoke).await?;
    attest_review::close(store, instance, "bench", crate::now()).await?;
    let before = sim.sim.stats();
    let clock = Instant::now();
    let queued = attest_review::apply_revocations(store, instance, "bench", crate::now()).await?;
    apply_queue(store, &connector, 2, 8).await?;
    let took = clock.elapsed().as_secs_f64();
    let after_stats = sim.sim.stats();
    let (writes, bound) = quota_bound(&sim, &throttle);
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for item in store.reviews().all_items(instance).await? {
        if let Some(outcome) = item.outcome() {
            *outcomes.entry(outcome.to_string()).or_default() += 1;
        }
    }
    let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
    writeln!(
        out,
        "  applied in Entra (simulator, {} ms latency, write quota {write_quota} per {write_window} s): {} revocations in {took:.1} s; \
         {writes} accepted writes, {} throttled (429); quota bound for those writes {bound:.1} s, so {:.0}% of the physical limit",
        args.latency_ms,
        queued.queued,
        after_stats.throttled - before.throttled,
        if took > 0.0 { 100.0 * bound.max(0.001) / took } else { 0.0 }
    )?;
    writeln!(out, "    the items say: {}", outcomes.join(", "))?;
    sim.shutdown().await;
    Ok(())
}

/// The first `n` items matching `filter` that `keep` keeps, in id order, read in pages.
async fn first_items(
    store: &Store,
    filter: ItemFilter,
    n: usize,
    keep: impl Fn(&attest_store::Item) -> bool,
) -> anyhow::Result<Vec<i64>> {
    let mut found = Vec::new();
    let mut after = None;
    while found.len() < n {
        let page = store.reviews().list_items(&ItemFilter { after, limit: 20_000, ..filter.clone() }).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        found.extend(page.iter().filter(|i| keep(i)).map(|i| i.id).take(n - found.len()));
    }
    Ok(found)
}

/// Records `items` as revoked, as their reviewers would (the store's decision, in bulk).
async fn revoke_as_reviewers(store: &Store, instance: i64, items: &[i64]) -> anyhow::Result<()> {
    let decided = Decided {
        items,
        decision: Decision::Revoke,
        justification: Some("bench"),
        by: "bench reviewers",
        by_id: None,
        how: "bulk",
    };
    store.reviews().decide(instance, &decided, crate::now()).await?;
    Ok(())
}
