//! `attest bench review`: an access review at scale. A synthetic graph (100,000 users, every
//! group membership about a million grants) is loaded through the sync sink; then a campaign
//! over every membership is started (snapshot, reviewer resolution, recommendations), a
//! reviewer's inbox is driven over HTTP with 50 requests in flight, 10,000 items are decided at
//! once, and closing queues 100,000 revocations. Prints each figure beside its target.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use attest_domain::review::Decision;
use attest_store::{Decided, ItemFilter, NewConnector};
use clap::Args;

use super::ingest::load_grants;
use super::synth::Synth;
use super::web::drive;
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
        "    of which: reading the grants in scope {:.1} s, reviewers and recommendations {:.1} s, writing the items {:.1} s",
        begun.took.read.as_secs_f64(),
        begun.took.resolve.as_secs_f64(),
        begun.took.write.as_secs_f64()
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
    writeln!(
        out,
        "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "page", "requests", "p50 ms", "p95 ms", "p99 ms", "errors"
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
        let f = drive(&base, &cookie, paths, args.connections, Duration::from_secs(args.seconds)).await?;
        writeln!(out, "  {label:<34} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>7}", f.requests, f.p50, f.p95, f.p99, f.errors)?;
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
    let mut revoke: Vec<i64> = Vec::new();
    let mut after = None;
    while revoke.len() + items.len() < args.revocations {
        let page = ItemFilter {
            instance: Some(instance),
            decision: Some(Decision::Pending),
            after,
            limit: 20_000,
            ..Default::default()
        };
        let page = store.reviews().list_items(&page).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        revoke.extend(page.iter().map(|i| i.id).take(args.revocations - revoke.len() - items.len()));
    }
    let decided = Decided {
        items: &revoke,
        decision: Decision::Revoke,
        justification: Some("bench"),
        by: "bench reviewers",
        by_id: None,
        how: "bulk",
    };
    store.reviews().decide(instance, &decided, crate::now()).await?;
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
    // how fast any client can apply them; `attest bench provision` measures Attest against it.
    let quota = attest_entra_sim::ThrottleConfig::default();
    let bound = ((applied.queued as f64) - quota.write_quota).max(0.0) / (quota.write_quota / quota.write_window_secs);
    writeln!(
        out,
        "  applying {} revocations is bounded by the write quota ({} per {} s): at least {:.0} s ({:.1} h); not applied here (the synthetic graph has no tenant behind it; see bench provision for Attest's share of that bound)",
        applied.queued,
        quota.write_quota,
        quota.write_window_secs,
        bound,
        bound / 3600.0
    )?;
    writeln!(out, "  peak memory: {:.0} MiB", super::rss::peak_rss_mib().unwrap_or_default())?;
    Ok(ExitCode::SUCCESS)
}
