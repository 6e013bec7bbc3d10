//! `attest bench ingest`: bulk upsert throughput, steady state, and the bulk-loader yardstick.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use attest_connector::{SyncSink, SyncSummary};
use attest_domain::{SyncMode, SyncTrigger};
use attest_store::{NewConnector, Store};
use clap::Args;

use super::loader;
use super::rss::peak_rss_mib;
use super::synth::Synth;
use crate::commands::Context;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Users to generate.
    #[arg(long, default_value_t = 100_000)]
    principals: usize,
    /// Groups to generate (each is a principal and a resource).
    #[arg(long, default_value_t = 20_000)]
    groups: usize,
    /// Direct grants to generate (memberships, owners, nesting).
    #[arg(long, default_value_t = 2_000_000)]
    grants: usize,
    /// Seed for the generator: the same seed gives the same graph.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the bulk-loader comparison.
    #[arg(long)]
    no_loader: bool,
}

const BATCH: usize = 10_000;

struct Row {
    phase: String,
    rows: u64,
    written: Option<u64>,
    seconds: f64,
}

pub async fn run(context: &Context, args: IngestArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let url = context.config.database.url.clone();
    let store = context.connect().await?;
    let status = store.schema_status().await?;
    anyhow::ensure!(
        status.migrations.iter().all(|(_, s)| *s != attest_store::MigrationState::Applied),
        "bench ingest needs an empty database: {url} already has a schema (it would empty its grants)"
    );
    store.migrate_up(None).await?;
    let synth = Synth::new(args.principals, args.groups, args.grants, args.seed)?;
    writeln!(
        out,
        "bench ingest: {} users, {} groups, {} grants (seed {}) into {url}",
        args.principals, args.groups, args.grants, args.seed
    )?;
    let connector = store.connectors().create_connector(NewConnector::entra("bench"), crate::now()).await?.id;
    let mut rows = Vec::new();

    // 1. Principals, resources, entitlements: first load.
    let (principals, resources, entitlements) = (synth.principals(), synth.resources(), synth.entitlements());
    let mut sink = SyncSink::begin(&store, connector, SyncMode::Full, SyncTrigger::Bench, crate::now()).await?;
    for chunk in principals.chunks(BATCH) {
        sink.put_principals(chunk).await?;
    }
    sink.put_resources(&resources).await?;
    sink.put_entitlements(&entitlements).await?;
    let summary = sink.finish(crate::now()).await?;
    let t = |k: &str| summary.timings.get(k).copied().unwrap_or_default();
    rows.push(Row {
        phase: "principals, first load".into(),
        rows: principals.len() as u64,
        written: Some(summary.run.counts.principals.written()),
        seconds: t("principals"),
    });
    rows.push(Row {
        phase: "resources + entitlements, first load".into(),
        rows: (resources.len() + entitlements.len()) as u64,
        written: Some(summary.run.counts.resources.written() + summary.run.counts.entitlements.written()),
        seconds: t("resources") + t("entitlements"),
    });

    // 2. The database's own bulk loader on the same grant rows, into the same indexed table.
    let mut loader_seconds = None;
    if !args.no_loader {
        let csv = write_csv(&store, connector, &synth).await?;
        match loader::load(&url, &csv)? {
            Some(run) => {
                rows.push(Row {
                    phase: format!("grants via {} (yardstick)", run.tool),
                    rows: args.grants as u64,
                    written: None,
                    seconds: run.seconds,
                });
                loader_seconds = Some(run.seconds);
            }
            None => writeln!(out, "(bulk loader not installed: skipping the comparison)")?,
        }
        let _ = std::fs::remove_file(&csv);
        store.grants().purge_grants_for_benchmark().await?;
    }

    // 3. Grants through the sync sink: first load, then the same snapshot unchanged.
    let first = load_grants(&store, connector, &synth, &principals, &resources, &entitlements).await?;
    rows.push(Row {
        phase: "grants, first load".into(),
        rows: args.grants as u64,
        written: Some(first.1.run.counts.grants.written()),
        seconds: first.0.grants,
    });
    rows.push(Row {
        phase: "  sweep + inherited grants".into(),
        rows: first.1.run.counts.inherited_grants.added,
        written: Some(first.1.run.counts.inherited_grants.written()),
        seconds: first.0.finish,
    });
    let second = load_grants(&store, connector, &synth, &principals, &resources, &entitlements).await?;
    let c = &second.1.run.counts;
    rows.push(Row {
        phase: "principals, unchanged".into(),
        rows: principals.len() as u64,
        written: Some(c.principals.written()),
        seconds: second.0.principals,
    });
    rows.push(Row {
        phase: "grants, unchanged".into(),
        rows: args.grants as u64,
        written: Some(c.grants.written()),
        seconds: second.0.grants,
    });
    rows.push(Row {
        phase: "  sweep (inherited: unchanged, skipped)".into(),
        rows: 0,
        written: Some(c.grants.removed + c.inherited_grants.written()),
        seconds: second.0.finish,
    });

    writeln!(out, "\n{:<42} {:>10} {:>10} {:>9} {:>12}", "phase", "rows", "written", "seconds", "rows/s")?;
    for row in &rows {
        let written = row.written.map(|w| w.to_string()).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<42} {:>10} {:>10} {:>9.2} {:>12.0}",
            row.phase,
            row.rows,
            written,
            row.seconds,
            row.rows as f64 / row.seconds.max(1e-9)
        )?;
    }
    writeln!(out)?;
    if let Some(loader) = loader_seconds {
        writeln!(
            out,
            "first load vs bulk loader: {:.2}x the loader's time (target: within 2x)",
            first.0.grants / loader
        )?;
    }
    writeln!(
        out,
        "unchanged re-upsert vs first load: {:.2}x faster (target: at least 3x)",
        first.0.grants / second.0.grants.max(1e-9)
    )?;
    if let Some(rss) = peak_rss_mib() {
        writeln!(out, "peak RSS: {rss:.0} MiB")?;
    }
    let written = c.grants.written() + c.principals.written() + c.inherited_grants.written();
    anyhow::ensure!(written == 0, "the unchanged re-upsert wrote {written} rows; it must write none");
    Ok(ExitCode::SUCCESS)
}

pub(super) struct GrantTimings {
    principals: f64,
    grants: f64,
    finish: f64,
}

/// One full snapshot through the sink; the grants are streamed in batches.
pub(super) async fn load_grants(
    store: &Store,
    connector: attest_domain::ConnectorId,
    synth: &Synth,
    principals: &[attest_domain::PrincipalData],
    resources: &[attest_domain::ResourceData],
    entitlements: &[attest_connector::ObservedEntitlement],
) -> anyhow::Result<(GrantTimings, SyncSummary)> {
    let mut sink = SyncSink::begin(store, connector, SyncMode::Full, SyncTrigger::Bench, crate::now()).await?;
    for chunk in principals.chunks(BATCH) {
        sink.put_principals(chunk).await?;
    }
    sink.put_resources(resources).await?;
    sink.put_entitlements(entitlements).await?;
    let mut batch = Vec::with_capacity(BATCH);
    for (g, p, kind) in synth.grants() {
        batch.push(Synth::grant(g, p, kind));
        if batch.len() == BATCH {
            sink.put_grants(&batch).await?;
            batch.clear();
        }
    }
    sink.put_grants(&batch).await?;
    let summary = sink.finish(crate::now()).await?;
    let t = |k: &str| summary.timings.get(k).copied().unwrap_or_default();
    Ok((
        GrantTimings { principals: t("principals"), grants: t("grants"), finish: t("sweep") + t("inherited") },
        summary,
    ))
}

/// The grant rows as the loader will insert them, ids resolved exactly as the sink resolves them.
async fn write_csv(
    store: &Store,
    connector: attest_domain::ConnectorId,
    synth: &Synth,
) -> anyhow::Result<std::path::PathBuf> {
    let principals = store.principals().principal_ids_by_external_id(connector).await?;
    let resources = store.resources().resource_ids_by_external_id(connector).await?;
    let entitlements = store.resources().entitlement_ids_by_key(connector).await?;
    let path = std::env::temp_dir().join(format!("attest-bench-grants-{}.csv", std::process::id()));
    let mut out = BufWriter::new(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    out.write_all(loader::csv_header().as_bytes())?;
    let now = crate::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
    for (g, p, kind) in synth.grants() {
        let grant = Synth::grant(g, p, kind);
        let resolved = resources
            .get(&(grant.resource_kind, grant.resource_external_id))
            .and_then(|r| entitlements.get(&(*r, grant.key)))
            .zip(principals.get(&grant.principal_external_id));
        match resolved {
            Some((e, p)) => writeln!(out, "{connector},{e},{p},direct,,{now},{now}")?,
            None => anyhow::bail!("generated grant {g}/{p} did not resolve"),
        }
    }
    out.flush()?;
    Ok(path)
}
