//! `attest sim`: run the Entra simulator on its own, for trying the connector by hand.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use attest_entra_sim::provision::{CycleReport, ProvisioningClient, RequestForm, Scope};
use attest_entra_sim::{ClientApp, FaultPlan, SimHandle, SimOptions, TenantSpec, ThrottleConfig, generate, spawn_with};
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Users to generate.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Groups to generate.
    #[arg(long, default_value_t = 100)]
    groups: usize,
    /// Enterprise applications to generate.
    #[arg(long, default_value_t = 20)]
    apps: usize,
    /// Seed: the same seed gives the same tenant, ids included.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use this tenant id instead of the generated one.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Use this client id instead of a generated one.
    #[arg(long)]
    client_id: Option<String>,
    /// Use this client secret instead of a generated one.
    #[arg(long)]
    client_secret: Option<String>,
    /// Throttle Graph requests as Microsoft does (resource-unit token bucket per app and
    /// tenant, 429 with Retry-After).
    #[arg(long)]
    throttle: bool,
    /// Milliseconds added to every Graph request, as a network round trip.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share (0-1) of Graph requests given a random transient fault (503/504 with or without
    /// Retry-After, 429 without Retry-After, dropped connection, slow response, replayed delta
    /// page), seeded by --seed. Injected faults are listed at /_sim/faults.
    #[arg(long, default_value_t = 0.0, value_parser = fault_rate)]
    fault_rate: f64,
    /// Register a redirect URI for sign-in and admin consent (repeatable): the identity
    /// platform accepts exactly the registered ones.
    #[arg(long = "redirect-uri", value_name = "URL")]
    redirect_uris: Vec<String>,
    /// Start without admin consent: token requests fail with AADSTS700016 until an
    /// administrator approves the app at the printed admin_consent_url.
    #[arg(long)]
    unconsented: bool,
    /// Print the connection details as one JSON object (and, when provisioning, one JSON
    /// object per cycle).
    #[arg(long)]
    json: bool,
    /// Act as Entra's provisioning service too: provision the simulated tenant's users and
    /// groups into the SCIM 2.0 endpoint at this "Tenant URL" (for example
    /// http://127.0.0.1:8080/scim/v2), with Entra's exact requests. The simulator runs Test
    /// Connection, then the initial cycle, then an incremental cycle every --provision-every
    /// seconds. Append ?aadOptscim062020 to get the SCIM-compliant request form, as in Entra.
    #[arg(long, value_name = "URL", requires = "token")]
    provision_to: Option<String>,
    /// The "Secret Token" for --provision-to, sent as `Authorization: Bearer <token>` on every
    /// SCIM request.
    #[arg(long, value_name = "TOKEN", requires = "provision_to")]
    token: Option<String>,
    /// How provisioning words its requests: `default` is what a new Entra SCIM app sends
    /// (capitalised ops, `active` as "True"/"False"); `compliant` is the form of the
    /// aadOptscim062020 flag (lower-case ops, booleans, one `replace` for several attributes).
    #[arg(long, value_enum, default_value_t = ProvisionForm::Default, requires = "provision_to")]
    provision_form: ProvisionForm,
    /// Seconds between incremental provisioning cycles; Entra runs one about every 40 minutes.
    #[arg(long, value_name = "SECONDS", default_value_t = 40 * 60, requires = "provision_to")]
    provision_every: u64,
    /// Which users and groups to provision: `assigned` (Entra's default, "Sync only assigned
    /// users and groups": those assigned to --provision-app, and the direct members of assigned
    /// groups) or `all` ("Sync all users and groups").
    #[arg(long, value_enum, default_value_t = ProvisionScope::Assigned, requires = "provision_to")]
    provision_scope: ProvisionScope,
    /// The enterprise application whose assignments make up the `assigned` scope: an app id
    /// or a service principal id. Defaults to the generated application with the most user
    /// and group assignments.
    #[arg(long, value_name = "APP", requires = "provision_to")]
    provision_app: Option<String>,
}

/// `--provision-form`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProvisionForm {
    Default,
    Compliant,
}

/// `--provision-scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProvisionScope {
    Assigned,
    All,
}

/// What `--provision-to` and friends asked for.
struct Provisioning {
    url: String,
    token: String,
    form: RequestForm,
    every: std::time::Duration,
    scope: ProvisionScope,
    app: Option<String>,
}

impl SimArgs {
    fn provisioning(&self) -> Option<Provisioning> {
        let (url, token) = (self.provision_to.clone()?, self.token.clone()?);
        Some(Provisioning {
            url,
            token,
            form: match self.provision_form {
                ProvisionForm::Default => RequestForm::Default,
                ProvisionForm::Compliant => RequestForm::Compliant,
            },
            every: std::time::Duration::from_secs(self.provision_every),
            scope: self.provision_scope,
            app: self.provision_app.clone(),
        })
    }
}

pub async fn run(args: SimArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let provisioning = args.provisioning();
    let (sim, details) = start(args).await?;
    if json {
        writeln!(out, "{details}")?;
    } else {
        writeln!(out, "Entra simulator running (Ctrl-C to stop)")?;
        let keys = [
            "graph_url",
            "login_url",
            "tenant_id",
            "client_id",
            "client_secret",
            "openid_configuration",
            "admin_consent_url",
        ];
        for key in keys {
            writeln!(out, "  {key:<20} {}", details[key].as_str().unwrap_or_default())?;
        }
    }
    out.flush()?;
    match provisioning {
        None => tokio::signal::ctrl_c().await?,
        Some(provisioning) => {
            // Provisioning runs until Ctrl-C; it ends early only when Test Connection fails.
            let outcome = tokio::select! {
                stopped = tokio::signal::ctrl_c() => stopped.map_err(anyhow::Error::from),
                failed = provision(&sim, provisioning, json, out) => failed,
            };
            if let Err(e) = outcome {
                sim.shutdown().await;
                return Err(e);
            }
        }
    }
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Test Connection, the initial cycle, then incremental cycles on the interval, as Entra's
/// provisioning service runs a job. Returns only on failure.
async fn provision(sim: &SimHandle, settings: Provisioning, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let scope = match settings.scope {
        ProvisionScope::All => Scope::AllUsersAndGroups,
        ProvisionScope::Assigned => {
            let app = match settings.app {
                Some(app) => app,
                None => busiest_app(sim).context("the tenant has no application to take assignments from")?,
            };
            Scope::AssignedTo(app)
        }
    };
    let http = attest_http::client()?;
    let mut client = ProvisioningClient::new(http, &settings.url, &settings.token, settings.form, scope.clone());
    client.test_connection().await.map_err(|e| anyhow::anyhow!("Test Connection to {} failed: {e}", settings.url))?;
    if !json {
        let scope = match &scope {
            Scope::AllUsersAndGroups => "all users and groups".to_owned(),
            Scope::AssignedTo(app) => format!("users and groups assigned to {app}"),
        };
        let form = match client.form() {
            RequestForm::Default => "default",
            RequestForm::Compliant => "compliant (aadOptscim062020)",
        };
        writeln!(out, "Provisioning {scope} to {} ({form} requests): Test Connection succeeded", settings.url)?;
        out.flush()?;
    }
    let report = client.initial_cycle(&sim.sim).await;
    summarise("initial", &report, json, out)?;
    loop {
        tokio::time::sleep(settings.every).await;
        let report = client.incremental_cycle(&sim.sim).await;
        summarise("incremental", &report, json, out)?;
    }
}

/// The tenant's application with the most user and group assignments: the natural target for
/// "Sync only assigned users and groups" when none is named.
fn busiest_app(sim: &SimHandle) -> Option<String> {
    sim.sim.read(|t| {
        let owned = t.live_service_principals().filter(|sp| {
            sp.service_principal_type == "Application" && sp.app_owner_organization_id.as_deref() == Some(&t.id)
        });
        let assignments = |id: &str| {
            t.app_role_assignments
                .iter()
                .filter(|a| a.resource_id == id && (a.principal_type == "User" || a.principal_type == "Group"))
                .count()
        };
        // Most assignments; the earlier application on a tie.
        owned.min_by_key(|sp| std::cmp::Reverse(assignments(&sp.id))).map(|sp| sp.app_id.clone())
    })
}

/// One line per cycle (one JSON object with --json); errors go to the log.
fn summarise(cycle: &str, report: &CycleReport, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    const SHOWN: usize = 10;
    for error in report.errors.iter().take(SHOWN) {
        tracing::warn!("{cycle} provisioning cycle: {error}");
    }
    if report.errors.len() > SHOWN {
        tracing::warn!("{cycle} provisioning cycle: {} more errors", report.errors.len() - SHOWN);
    }
    if json {
        let line = serde_json::json!({
            "cycle": cycle,
            "requests": report.requests,
            "created_users": report.created_users,
            "updated_users": report.updated_users,
            "disabled_users": report.disabled_users,
            "deleted_users": report.deleted_users,
            "created_groups": report.created_groups,
            "updated_groups": report.updated_groups,
            "deleted_groups": report.deleted_groups,
            "member_adds": report.member_adds,
            "member_removes": report.member_removes,
            "errors": report.errors.len(),
            "elapsed_ms": report.elapsed.as_millis() as u64,
            "p50_ms": report.latency_percentile_ms(0.5),
            "p99_ms": report.latency_percentile_ms(0.99),
        });
        writeln!(out, "{line}")?;
    } else {
        let cycle = if cycle == "initial" { "Initial cycle" } else { "Incremental cycle" };
        writeln!(out, "{cycle}: {report}")?;
    }
    out.flush()?;
    Ok(())
}

/// Generates the tenant and starts serving it; returns the handle and what to print.
async fn start(args: SimArgs) -> anyhow::Result<(SimHandle, serde_json::Value)> {
    let mut tenant = generate(TenantSpec {
        users: args.users,
        groups: args.groups,
        apps: args.apps,
        seed: args.seed,
        ..TenantSpec::default()
    });
    if let Some(id) = args.tenant_id {
        tenant.id = id;
    }
    let mut client = ClientApp::attest(args.seed).with_provisioning();
    if let Some(id) = args.client_id {
        client.client_id = id;
    }
    if let Some(secret) = args.client_secret {
        client.client_secret = secret;
    }
    client.redirect_uris = args.redirect_uris;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let options = SimOptions {
        throttle: args.throttle.then(ThrottleConfig::default),
        latency: std::time::Duration::from_millis(args.latency_ms),
        faults: FaultPlan::random(args.seed, args.fault_rate),
        consented: !args.unconsented,
        ..SimOptions::default()
    };
    let sim = spawn_with(listener, tenant, client.clone(), options).await?;
    let tenant_id = sim.tenant_id();
    let consent = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client.client_id)
        .append_pair("scope", "https://graph.microsoft.com/.default")
        .append_pair("redirect_uri", client.redirect_uris.first().map(String::as_str).unwrap_or_default())
        .finish();
    let details = serde_json::json!({
        "graph_url": sim.graph_url,
        "login_url": sim.login_url,
        "tenant_id": tenant_id,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "openid_configuration": format!("{}/{tenant_id}/v2.0/.well-known/openid-configuration", sim.login_url),
        "admin_consent_url": format!("{}/{tenant_id}/v2.0/adminconsent?{consent}", sim.login_url),
    });
    Ok((sim, details))
}

fn fault_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("expected a share between 0 and 1, got '{text}'")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: SimArgs,
    }

    /// A small tenant, so each test starts in milliseconds.
    const SMALL: &[&str] = &["--users", "60", "--groups", "6", "--apps", "2"];

    async fn started(args: &[&str]) -> (SimHandle, serde_json::Value) {
        let argv = std::iter::once("sim").chain(SMALL.iter().copied()).chain(args.iter().copied());
        let args = Command::try_parse_from(argv).unwrap().args;
        start(args).await.unwrap()
    }

    async fn token(http: &reqwest::Client, details: &serde_json::Value) -> reqwest::Response {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            details["login_url"].as_str().unwrap(),
            details["tenant_id"].as_str().unwrap()
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", details["client_id"].as_str().unwrap()),
            ("client_secret", details["client_secret"].as_str().unwrap()),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        http.post(url).form(&form).send().await.unwrap()
    }

    #[tokio::test]
    async fn fixed_ids_latency_and_redirect_uris() {
        let tenant = "11111111-2222-3333-4444-555555555555";
        let (sim, details) = started(&[
            "--tenant-id",
            tenant,
            "--client-id",
            "my-client",
            "--client-secret",
            "s3cret",
            "--latency-ms",
            "40",
            "--redirect-uri",
            "http://localhost:1/cb",
        ])
        .await;
        assert_eq!((details["tenant_id"].as_str(), details["client_id"].as_str()), (Some(tenant), Some("my-client")));
        let http = attest_http::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let issued: serde_json::Value = token(&http, &details).await.json().await.unwrap();
        let access = issued["access_token"].as_str().unwrap();
        let started = std::time::Instant::now();
        for _ in 0..5 {
            let url = format!("{}/v1.0/users?$top=1", details["graph_url"].as_str().unwrap());
            assert_eq!(http.get(url).bearer_auth(access).send().await.unwrap().status(), 200);
        }
        assert!(started.elapsed() >= std::time::Duration::from_millis(5 * 40), "latency on every request");
        assert!(sim.sim.faults().is_empty(), "no faults unless asked for");
        // The registered redirect URI is accepted by the sign-in page; another is not.
        let authorize = format!("{}/{tenant}/oauth2/v2.0/authorize", details["login_url"].as_str().unwrap());
        for (redirect, status) in [("http://localhost:1/cb", 200), ("http://localhost:2/cb", 400)] {
            let query = [
                ("client_id", "my-client"),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                ("scope", "openid"),
            ];
            assert_eq!(http.get(&authorize).query(&query).send().await.unwrap().status(), status, "{redirect}");
        }
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn fault_rate_faults_graph_requests() {
        let (sim, details) = started(&["--fault-rate", "1"]).await;
        let http = attest_http::client().unwrap();
        let issued: serde_json::Value = token(&http, &details).await.json().await.unwrap();
        let access = issued["access_token"].as_str().unwrap();
        for _ in 0..10 {
            let url = format!("{}/v1.0/users?$top=1", details["graph_url"].as_str().unwrap());
            let _ = http.get(url).bearer_auth(access).timeout(std::time::Duration::from_secs(5)).send().await;
        }
        // At rate 1 every GET /users draws a fault; the two kinds that cannot apply to it
        // (replayed delta page, removed-references variant) leave it alone.
        let faulted = sim.sim.faults().len();
        assert!((4..=10).contains(&faulted), "{faulted} of 10");
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn unconsented_until_an_administrator_accepts() {
        let (sim, details) = started(&["--unconsented", "--redirect-uri", "http://localhost:1/cb"]).await;
        let http = attest_http::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let refused: serde_json::Value = token(&http, &details).await.json().await.unwrap();
        assert_eq!(refused["error_codes"][0], 700016);
        let consent = details["admin_consent_url"].as_str().unwrap();
        assert_eq!(http.get(consent).send().await.unwrap().status(), 200);
        // The page posts its request back with the administrator's answer.
        let admin = sim.sim.read(|t| {
            t.live_users()
                .find(|u| u.account_enabled && t.can_grant_consent(&u.id))
                .unwrap()
                .user_principal_name
                .clone()
        });
        let (action, query) = consent.split_once('?').unwrap();
        let mut form: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        form.extend([("login".into(), admin), ("accept".into(), "1".into())]);
        let accepted = http.post(action).form(&form).send().await.unwrap();
        assert_eq!(accepted.status(), 303);
        assert!(
            accepted.headers()["location"].to_str().unwrap().starts_with("http://localhost:1/cb?admin_consent=True")
        );
        assert_eq!(token(&http, &details).await.status(), 200);
        sim.shutdown().await;
    }

    #[test]
    fn provisioning_flags() {
        let parse = |args: &[&str]| Command::try_parse_from(std::iter::once("sim").chain(args.iter().copied()));
        assert!(parse(&[]).unwrap().args.provisioning().is_none());
        assert!(parse(&["--provision-to", "http://127.0.0.1:1/scim"]).is_err(), "a Tenant URL needs its token");
        assert!(parse(&["--token", "t"]).is_err(), "a token needs a Tenant URL");
        assert!(parse(&["--provision-scope", "all"]).is_err());
        let args = parse(&["--provision-to", "http://h/scim", "--token", "t"]).unwrap().args;
        let settings = args.provisioning().unwrap();
        assert_eq!((settings.url.as_str(), settings.token.as_str()), ("http://h/scim", "t"));
        assert_eq!(settings.form, RequestForm::Default);
        assert_eq!(settings.every, std::time::Duration::from_secs(40 * 60), "Entra's 40 minutes");
        assert_eq!(settings.scope, ProvisionScope::Assigned, "Entra's default scope");
        let args = parse(&[
            "--provision-to",
            "http://h/scim",
            "--token",
            "t",
            "--provision-form",
            "compliant",
            "--provision-every",
            "5",
            "--provision-scope",
            "all",
        ])
        .unwrap()
        .args;
        let settings = args.provisioning().unwrap();
        assert_eq!(settings.form, RequestForm::Compliant);
        assert_eq!((settings.every.as_secs(), settings.scope), (5, ProvisionScope::All));
    }

    #[tokio::test]
    async fn provisioning_stops_when_test_connection_fails() {
        let argv =
            ["sim", "--users", "20", "--groups", "2", "--apps", "2", "--provision-to", "http://127.0.0.1:1/scim"];
        let args = Command::try_parse_from(argv.into_iter().chain(["--token", "t"])).unwrap().args;
        let mut out = Vec::new();
        let error = run(args, &mut out).await.unwrap_err().to_string();
        assert!(error.contains("Test Connection to http://127.0.0.1:1/scim failed"), "{error}");
        assert!(String::from_utf8(out).unwrap().contains("Entra simulator running"));
    }

    #[tokio::test]
    async fn the_busiest_app_is_the_default_for_assigned_scope() {
        let (sim, _) = started(&[]).await;
        let app = busiest_app(&sim).unwrap();
        let count = |app_id: &str| {
            sim.sim.read(|t| {
                let sp = t.service_principals.iter().find(|s| s.app_id == app_id).unwrap().id.clone();
                t.app_role_assignments
                    .iter()
                    .filter(|a| a.resource_id == sp && a.principal_type != "ServicePrincipal")
                    .count()
            })
        };
        let others: Vec<String> = sim.sim.read(|t| {
            t.service_principals
                .iter()
                .filter(|s| s.app_owner_organization_id.as_deref() == Some(&t.id))
                .map(|s| s.app_id.clone())
                .collect()
        });
        assert!(others.iter().all(|other| count(other) <= count(&app)));
        sim.shutdown().await;
    }

    #[test]
    fn fault_rates_are_shares() {
        assert!(fault_rate("0.25").is_ok());
        assert!(fault_rate("1.5").unwrap_err().contains("between 0 and 1"));
        assert!(fault_rate("lots").is_err());
    }
}
