//! `attest graph export`: the whole entitlement graph in a documented, stable format (see
//! README, "Graph export"), for auditors and scripts.
//!
//! - `json`: one object `{"format": "attest-graph/1", "exported_at", "connectors",
//!   "principals", "resources", "entitlements", "grants"}`; rows reference each other by
//!   `id`; grants are the current ones (direct, jit and inherited with `via_principal_id`),
//!   each with `effective` (false for an inherited grant Entra does not honour, with its
//!   `ineffective_reason`).
//! - `csv`: one row per current grant, with the principal, resource and entitlement spelled
//!   out, for a spreadsheet.
//!
//! Rows are written as they are read, so memory stays flat except for the names a CSV row
//! needs.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use attest_domain::{Connector, Entitlement, Principal, Resource};
use attest_store::Store;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::Context;
use super::connector::find;

#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Write the entitlement graph: principals, resources, entitlements and current grants.
    Export {
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Only this connector (default: all).
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

/// The format's name and version: bumped only when a field changes meaning or disappears.
pub const FORMAT: &str = "attest-graph/1";

pub async fn run(context: &Context, command: GraphCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let GraphCommand::Export { format, connector, output } = command;
    let store = context.store().await?;
    let connectors = match connector {
        Some(name) => vec![find(&store, &name).await?],
        None => store.connectors().list_connectors().await?,
    };
    let mut file;
    let mut stdout_buffer;
    let sink: &mut dyn Write = match &output {
        Some(path) => {
            file = BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            );
            &mut file
        }
        None => {
            stdout_buffer = BufWriter::new(out);
            &mut stdout_buffer
        }
    };
    match format {
        Format::Json => export_json(&store, &connectors, sink).await?,
        Format::Csv => export_csv(&store, &connectors, sink).await?,
    }
    sink.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn all_principals(
    store: &Store,
    connector: &Connector,
    mut each: impl FnMut(Principal) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut page = 0;
    loop {
        let batch = store.principals().list_principals(connector.id, None, page, 10_000).await?;
        if batch.is_empty() {
            return Ok(());
        }
        for p in batch {
            each(p)?;
        }
        page += 1;
    }
}

/// Writes `items` as the elements of a JSON array already opened, comma-separated.
fn element(out: &mut dyn Write, first: &mut bool, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if !std::mem::take(first) {
        out.write_all(b",\n")?;
    }
    serde_json::to_writer(&mut *out, value)?;
    Ok(())
}

async fn export_json(store: &Store, connectors: &[Connector], out: &mut dyn Write) -> anyhow::Result<()> {
    let header = json!({
        "format": FORMAT,
        "exported_at": crate::now(),
        "connectors": connectors.iter().map(|c| json!({"id": c.id, "name": c.name, "kind": c.kind, "tenant_id": c.tenant_id})).collect::<Vec<_>>(),
    });
    let header = serde_json::to_string(&header)?;
    // The header object without its closing brace; the arrays follow.
    out.write_all(header.trim_end_matches('}').as_bytes())?;
    out.write_all(b",\n\"principals\": [\n")?;
    let mut first = true;
    for c in connectors {
        all_principals(store, c, |p| element(out, &mut first, &p)).await?;
    }
    out.write_all(b"],\n\"resources\": [\n")?;
    let mut first = true;
    for c in connectors {
        for r in store.resources().list_resources(c.id, None).await? {
            element(out, &mut first, &r)?;
        }
    }
    out.write_all(b"],\n\"entitlements\": [\n")?;
    let mut first = true;
    for c in connectors {
        for e in store.resources().list_connector_entitlements(c.id).await? {
            element(out, &mut first, &e)?;
        }
    }
    out.write_all(b"],\n\"grants\": [\n")?;
    let mut first = true;
    for c in connectors {
        let mut failed = None;
        store
            .grants()
            .scan_current_grants(c.id, |g| {
                if failed.is_none()
                    && let Err(e) = element(out, &mut first, &json!({"connector_id": c.id, "grant": grant_json(&g)}))
                {
                    failed = Some(e);
                }
            })
            .await?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    out.write_all(b"]}\n")?;
    Ok(())
}

/// A grant as the JSON export writes it: the stored row, plus `effective` and, for an
/// inherited grant Entra does not honour, its `ineffective_reason` (null otherwise).
fn grant_json(g: &attest_store::GrantRow) -> serde_json::Value {
    let mut value = json!(g);
    value["effective"] = json!(g.ineffective_reason.is_none());
    value
}

/// CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "connector",
    "principal_external_id",
    "principal_kind",
    "principal_name",
    "principal_email",
    "resource_kind",
    "resource_external_id",
    "resource_name",
    "entitlement",
    "entitlement_name",
    "source",
    "via_group_external_id",
    "via_group_name",
    "scope",
    "external_ref",
    "first_seen_at",
    "expires_at",
    "effective",
    "ineffective_reason",
];

async fn export_csv(store: &Store, connectors: &[Connector], out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    for c in connectors {
        let mut principals: HashMap<i64, Principal> = HashMap::new();
        all_principals(store, c, |p| {
            principals.insert(p.id.0, p);
            Ok(())
        })
        .await?;
        let resources: HashMap<i64, Resource> =
            store.resources().list_resources(c.id, None).await?.into_iter().map(|r| (r.id.0, r)).collect();
        let entitlements: HashMap<i64, Entitlement> =
            store.resources().list_connector_entitlements(c.id).await?.into_iter().map(|e| (e.id.0, e)).collect();
        let mut failed = None;
        store
            .grants()
            .scan_current_grants(c.id, |g| {
                let (Some(p), Some(e)) = (principals.get(&g.principal_id), entitlements.get(&g.entitlement_id)) else {
                    return;
                };
                let Some(r) = resources.get(&e.data.resource_id.0) else { return };
                let via = g.via_principal_id.and_then(|v| principals.get(&v));
                let fields = [
                    c.name.clone(),
                    p.data.external_id.clone(),
                    p.data.kind.to_string(),
                    p.data.display_name.clone(),
                    p.data.email.clone().unwrap_or_default(),
                    r.data.kind.to_string(),
                    r.data.external_id.clone(),
                    r.data.display_name.clone(),
                    e.data.key.to_string(),
                    e.data.display_name.clone(),
                    g.source.clone(),
                    via.map(|v| v.data.external_id.clone()).unwrap_or_default(),
                    via.map(|v| v.data.display_name.clone()).unwrap_or_default(),
                    g.scope.clone(),
                    g.external_ref.clone().unwrap_or_default(),
                    g.first_seen_at.to_rfc3339(),
                    g.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    g.ineffective_reason.is_none().to_string(),
                    g.ineffective_reason.clone().unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| attest_domain::csv::field(f)).collect();
                if failed.is_none()
                    && let Err(e) = writeln!(out, "{}", line.join(","))
                {
                    failed = Some(e);
                }
            })
            .await?;
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(())
}
