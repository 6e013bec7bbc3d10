//! `attest bench sim`: the simulator must never be the bottleneck of a sync benchmark.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use attest_entra_sim::{ClientApp, TenantSpec, generate, spawn};
use clap::Args;

use super::rss::peak_rss_mib;

#[derive(Debug, Args)]
pub struct SimBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 20_000)]
    groups: usize,
    #[arg(long, default_value_t = 2_000)]
    apps: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(args: SimBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let tenant = generate(TenantSpec {
        users: args.users,
        groups: args.groups,
        apps: args.apps,
        assignments_per_app: 50,
        seed: args.seed,
    });
    let generated = started.elapsed().as_secs_f64();
    let memberships: usize = tenant.groups.iter().map(|g| g.members.len()).sum();
    writeln!(
        out,
        "generated {} users, {} groups, {memberships} memberships, {} service principals, {} app role assignments in {generated:.1} s",
        tenant.users.len(),
        tenant.groups.len(),
        tenant.service_principals.len(),
        tenant.app_role_assignments.len()
    )?;
    let largest = tenant.groups.iter().max_by_key(|g| g.members.len()).map(|g| g.id.clone()).unwrap_or_default();
    let client = ClientApp::attest(args.seed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = spawn(listener, tenant, client.clone()).await?;
    let http = crate::commands::connector::http_client()?;
    let token: serde_json::Value = http
        .post(format!("{}/{}/oauth2/v2.0/token", sim.login_url, sim.tenant_id()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().unwrap_or_default().to_owned();
    for (name, first) in [
        ("/users ($top=999)", format!("{}/v1.0/users?$top=999", sim.graph_url)),
        (
            "/users ($top=999, $select)",
            format!(
                "{}/v1.0/users?$top=999&$select=id,displayName,userPrincipalName,mail,accountEnabled,userType,department",
                sim.graph_url
            ),
        ),
        ("/groups ($top=999)", format!("{}/v1.0/groups?$top=999", sim.graph_url)),
        (
            "largest group's members ($top=999, $select=id)",
            format!("{}/v1.0/groups/{largest}/members?$top=999&$select=id", sim.graph_url),
        ),
        ("/users/delta ($select)", format!("{}/v1.0/users/delta?$select=id,displayName,accountEnabled", sim.graph_url)),
        (
            "/groups/delta ($select=members): groups + links",
            format!("{}/v1.0/groups/delta?$select=displayName,members", sim.graph_url),
        ),
    ] {
        let started = Instant::now();
        let units_before = sim.sim.stats().resource_units;
        let (mut next, mut objects, mut pages) = (Some(first), 0usize, 0usize);
        while let Some(url) = next {
            let body: serde_json::Value =
                http.get(url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
            for item in body["value"].as_array().into_iter().flatten() {
                // A delta item counts once, plus one per membership it carries.
                objects += 1 + item["members@delta"].as_array().map(Vec::len).unwrap_or_default();
            }
            pages += 1;
            next = body["@odata.nextLink"].as_str().map(str::to_owned);
        }
        let seconds = started.elapsed().as_secs_f64();
        let units = sim.sim.stats().resource_units - units_before;
        writeln!(
            out,
            "{name:<48} {objects:>8} objects in {pages:>4} pages, {units:>5} RU, {seconds:>6.2} s, {:>9.0} objects/s",
            objects as f64 / seconds
        )?;
    }
    let stats = sim.sim.stats();
    writeln!(out, "requests {} resource units {}", stats.requests, stats.resource_units)?;
    if let Some(rss) = peak_rss_mib() {
        writeln!(out, "peak RSS (tenant + server + client): {rss:.0} MiB")?;
    }
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
