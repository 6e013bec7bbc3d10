//! `attest demo`: the whole product on one machine with one command and no setup. Embedded
//! SQLite under `./attest-data/demo` (started fresh each time), the Entra simulator in this
//! process with a seeded tenant, a connector already connected and synced, and sign-in through
//! the simulator's login page (pick any demo user; one is an administrator). No mail leaves the
//! machine: mail is kept in the outbox, where the administrator reads it (`/admin/mail`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use attest_config::secrets::SecretKey;
use attest_config::{Config, RawConfig};
use attest_domain::{SyncMode, SyncTrigger};
use attest_entra::EntraSettings;
use attest_entra_sim::{ClientApp, SimOptions, TenantSpec, generate, spawn_with};
use attest_store::{NewConnector, Store};
use clap::Args;

use super::Context;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port to serve on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Users in the demo tenant.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Where the demo keeps its database and key; emptied at start.
    #[arg(long, default_value = "./attest-data/demo")]
    dir: PathBuf,
}

impl DemoArgs {
    pub fn new(port: u16, users: usize, dir: PathBuf) -> DemoArgs {
        DemoArgs { port, users, dir }
    }
}

pub async fn run(_context: &Context, args: DemoArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    demo(args, out, super::serve::stop_signal()).await
}

/// The demo, until `shutdown` completes.
pub async fn demo(
    args: DemoArgs,
    out: &mut dyn Write,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    if args.users == 0 || args.users > 200_000 {
        anyhow::bail!("--users: between 1 and 200000");
    }
    // A demo starts from nothing, so every run shows the same thing. Only this directory goes.
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).with_context(|| format!("cannot empty {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} (choose another with --port)", args.port))?;
    let base = format!("http://{}", listener.local_addr()?);

    let spec = TenantSpec {
        users: args.users,
        groups: (args.users / 10).max(5),
        apps: 12,
        assignments_per_app: (args.users / 20).max(3),
        seed: 7,
    };
    let app = ClientApp::attest(7)
        .with_provisioning()
        .with_redirect_uri(&format!("{base}/auth/callback"))
        .with_redirect_uri(&attest_server::setup::redirect_uri(&base));
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = spawn_with(sim_listener, generate(spec), app.clone(), SimOptions::default()).await?;
    // A second tenant (a subsidiary) the same multi-tenant app is not yet consented in: its
    // integration owner has a setup mail waiting.
    let subsidiary_spec = TenantSpec { users: 40, groups: 6, apps: 3, assignments_per_app: 4, seed: 8 };
    let subsidiary_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let subsidiary = spawn_with(
        subsidiary_listener,
        generate(subsidiary_spec),
        app.clone(),
        SimOptions { consented: false, ..SimOptions::default() },
    )
    .await?;

    let mut raw = RawConfig::default();
    raw.database.url = Some(format!("sqlite://{}/attest.db?mode=rwc", args.dir.display()));
    raw.secrets.key_file = Some(args.dir.join("secret.key"));
    raw.server.public_url = base.clone();
    // No SMTP server: mail is kept in the outbox and read at /admin/mail, never sent.
    raw.mail.smtp_host = None;
    let config = Config::check(raw, None)?;
    let config_file = write_config(&args.dir, &base)?;
    let key = Arc::new(SecretKey::load_or_create(&config.secret_key_file)?);
    let store = Store::connect(&config.database)
        .await?
        .with_audit_key(attest_domain::audit::ChainKey::new(&key.audit_chain_key()));
    store.migrate_up(None).await?;

    let settings = EntraSettings {
        graph_url: sim.graph_url.clone(),
        login_url: sim.login_url.clone(),
        ..EntraSettings::default()
    };
    let now = crate::now();
    // Two administrators: a sensitive change one of them asks for, the other approves.
    let admins: Vec<(String, String, String, Option<String>)> = sim.sim.read(|t| {
        let mut members: Vec<_> = t.live_users().filter(|u| u.user_type == "Member" && u.account_enabled).collect();
        members.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
        members
            .iter()
            .take(2)
            .map(|u| (u.id.clone(), u.user_principal_name.clone(), u.display_name.clone(), u.mail.clone()))
            .collect()
    });
    let owners: Vec<String> = admins.iter().take(1).filter_map(|(_, _, _, mail)| mail.clone()).collect();
    let new = NewConnector {
        tenant_id: Some(sim.tenant_id()),
        settings: settings.to_json(),
        owners,
        ..NewConnector::entra("demo")
    };
    let connector = store.connectors().create_connector(new, now).await?;
    let sealed = attest_entra::stored::seal_credentials(&key, connector.id, &app.client_id, &app.client_secret)?;
    store.connectors().set_connector_credentials(connector.id, Some(sealed), now).await?;
    writeln!(out, "attest demo: a tenant of {} users in the built-in Entra simulator; syncing it…", args.users)?;
    out.flush()?;
    let syncer = attest_server::sync_job::Syncer {
        store: store.clone(),
        key: key.clone(),
        clock: attest_domain::clock::system(),
        owner: "demo".into(),
    };
    // The first administrator is eligible for a directory role in PIM, to activate it themselves.
    let eligible_role = make_eligible(&sim, &admins, now);
    let outcome = syncer.sync(&connector, SyncMode::Full, SyncTrigger::Manual, None).await?;
    let run = &outcome.summary.run;
    writeln!(
        out,
        "synced {} principals and {} grants in {:.1} s",
        run.counts.principals.added,
        run.counts.grants.added,
        run.finished_at.map_or(0.0, |f| (f - run.started_at).num_milliseconds() as f64 / 1000.0)
    )?;
    for (id, _, name, _) in &admins {
        store.web().set_web_user_roles(&sim.tenant_id(), id, name, &["admin".to_owned()], now).await?;
    }
    // A running access review: the members of three groups, reviewed by both administrators.
    let review = seed_review(&store, &sim, &admins, now).await?;
    // Requestable access, and a request waiting for the administrators' approval.
    let request = seed_requests(&store, &sim, connector.id, &admins, now).await?;
    // An approved request the first administrator activates in Entra themselves (PIM).
    let activation = match &eligible_role {
        Some(role) => seed_activation(&store, connector.id, &admins, role, now).await?,
        None => None,
    };
    // A tenant waiting for its integration owner to finish the setup.
    let setup = seed_setup(&store, &key, &config, &subsidiary, &app, &admins, &base, now).await?;
    // Entra's provisioning service pushes the tenant's people and groups to Attest over SCIM.
    let (_, scim_token) =
        attest_server::scim::create_token(&store, "Entra ID (demo)", Some(&sim.tenant_id()), "demo", now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The sign-in page lists the demo's Attest administrators first, as such.
    sim.sim.feature_on_sign_in(admins.iter().map(|(id, ..)| (id.clone(), "Attest administrator".to_owned())).collect());
    match admins.as_slice() {
        [] => writeln!(out, "open {base} and sign in as any demo user")?,
        [(_, upn, _, _), rest @ ..] => {
            writeln!(out, "open {base} and sign in as {upn} (an administrator), or as any other demo user")?;
            if let Some((_, second, _, _)) = rest.first() {
                writeln!(
                    out,
                    "{second} is a second administrator: sensitive changes (blocking sign-in, resetting a password…) one asks for, the other approves"
                )?;
            }
        }
    }
    if let Some((name, items)) = &review {
        writeln!(
            out,
            "an access review is running, \"{name}\": {items} items for the administrators to decide at {base}/reviews"
        )?;
    }
    if let Some((id, who, what)) = &request {
        writeln!(
            out,
            "{who} asked for {what}: request {id} waits for an administrator's approval at {base}/approvals"
        )?;
    }
    if let Some((id, who, role)) = &activation {
        writeln!(
            out,
            "{who} is eligible for {role} in PIM: request {id} is approved and waits for them to activate it in Entra themselves, with MFA, at {base}/requests/{id}"
        )?;
    }
    if let Some((connector, owner, upn)) = &setup {
        writeln!(
            out,
            "the tenant \"{connector}\" waits for its integration owner {owner} (who signs in as {upn}): their setup mail is at {base}/admin/mail"
        )?;
    }
    writeln!(
        out,
        "Entra's provisioning service (simulated) pushes the tenant's people and groups over SCIM, as on a real tenant: watch the accounts arrive at {base}/admin/accounts"
    )?;
    writeln!(out, "mail is kept, not sent: an administrator reads it at {base}/admin/mail")?;
    writeln!(out, "data in {} (emptied on the next start); Ctrl-C stops the demo", args.dir.display())?;
    writeln!(
        out,
        "commands work on the demo from its folder, or with --config: attest --config {} change list",
        config_file.display()
    )?;
    out.flush()?;
    drop(store);
    let sim = Arc::new(sim);
    let provisioning = tokio::spawn(provision(Arc::clone(&sim), format!("{base}/scim/v2"), scim_token));
    attest_server::run(config, attest_domain::clock::system(), listener, shutdown).await?;
    provisioning.abort();
    // Its handle on the simulator is dropped once the task is.
    let _ = provisioning.await;
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.shutdown().await;
    }
    subsidiary.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// How often the demo's provisioning runs an incremental cycle (Entra: about 40 minutes).
const DEMO_PROVISIONING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Entra's provisioning service for the demo: once the server answers, Test Connection and the
/// initial cycle, then an incremental cycle every minute. Its figures go to the log.
async fn provision(sim: Arc<attest_entra_sim::SimHandle>, url: String, token: String) {
    use attest_entra_sim::provision::{ProvisioningClient, RequestForm, Scope};
    let Ok(http) = attest_http::client_builder().build() else { return };
    let mut client = ProvisioningClient::new(http, &url, &token, RequestForm::Default, Scope::AllUsersAndGroups);
    // The server starts listening as this task starts: Test Connection until it answers.
    let mut connected = false;
    for _ in 0..100 {
        if client.test_connection().await.is_ok() {
            connected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !connected {
        tracing::warn!("the demo's SCIM provisioning could not reach Attest");
        return;
    }
    let report = client.initial_cycle(&sim.sim).await;
    tracing::info!(%report, "demo provisioning: initial cycle");
    loop {
        tokio::time::sleep(DEMO_PROVISIONING_EVERY).await;
        let report = client.incremental_cycle(&sim.sim).await;
        tracing::info!(%report, "demo provisioning: incremental cycle");
    }
}

/// Adds the subsidiary's tenant as connector `emea` (the same app registration as the demo's),
/// awaiting consent, and mails its integration owner (a demo user who is not an administrator)
/// the setup link: the connector's name, the owner's address and the name they sign in with.
#[allow(clippy::too_many_arguments)]
async fn seed_setup(
    store: &Store,
    key: &SecretKey,
    config: &Config,
    subsidiary: &attest_entra_sim::SimHandle,
    app: &ClientApp,
    admins: &[(String, String, String, Option<String>)],
    base: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<(String, String, String)>> {
    let admin_ids: Vec<&str> = admins.iter().map(|(id, ..)| id.as_str()).collect();
    let Some((_, _, _, Some(admin_mail))) = admins.first() else { return Ok(None) };
    let owner = store
        .principals()
        .list_principals(attest_domain::ConnectorId(1), Some(attest_domain::PrincipalKind::User), 0, 50)
        .await?
        .into_iter()
        .filter(|p| !admin_ids.contains(&p.data.external_id.as_str()) && p.data.account_enabled == Some(true))
        .find_map(|p| Some((p.data.email.filter(|e| !e.contains("#EXT#"))?, p.data.user_principal_name?)));
    let Some((owner, upn)) = owner else { return Ok(None) };
    let settings = EntraSettings {
        graph_url: subsidiary.graph_url.clone(),
        login_url: subsidiary.login_url.clone(),
        ..EntraSettings::default()
    };
    let new = NewConnector {
        tenant_id: Some(subsidiary.tenant_id()),
        settings: settings.to_json(),
        ..NewConnector::entra("emea")
    };
    let connector = store.connectors().create_connector(new, now).await?;
    let sealed = attest_entra::stored::seal_credentials(key, connector.id, &app.client_id, &app.client_secret)?;
    store.connectors().set_connector_credentials(connector.id, Some(sealed), now).await?;
    let outbox = attest_notify::Outbox::new(store.clone(), &config.mail)?;
    let connector = store.connectors().get_connector(connector.id).await?;
    attest_server::setup::invite_with(store, &outbox, base, &connector, &owner, admin_mail, Some(admin_mail), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let connector = store.connectors().get_connector(connector.id).await?;
    attest_server::setup::assess(store, key, &connector, admin_mail, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some((connector.name, owner, upn)))
}

/// Starts a campaign over the members of three groups Graph can change, reviewed by the demo's
/// administrators (each sees every item; one decision settles one), then signed off in a second
/// stage by the first, who owns it; the last has answered one item "not sure": its name and how
/// many items it has. `None` when the tenant is too small to have such groups.
async fn seed_review(
    store: &Store,
    sim: &attest_entra_sim::SimHandle,
    admins: &[(String, String, String, Option<String>)],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<(String, usize)>> {
    let groups: Vec<String> = sim.sim.read(|t| {
        let mut groups: Vec<_> = t
            .live_groups()
            .filter(|g| g.accepts_membership_writes() && g.members.iter().any(|m| t.live_user(m).is_some()))
            .collect();
        groups.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        groups.iter().take(3).map(|g| g.id.clone()).collect()
    });
    let reviewers: Vec<&String> = admins.iter().map(|(_, upn, _, _)| upn).collect();
    let (Some(first), false) = (reviewers.first(), groups.is_empty()) else { return Ok(None) };
    let quoted = |items: &[&String]| items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "name = \"Quarterly access review: project groups\"\n\
         description = \"Does each member still need to be in the group? Revoke what is no longer needed.\"\n\
         owners = [\"{first}\"]\n\
         [scope]\nconnector = \"demo\"\nresource_kinds = [\"group\"]\nresources = [{}]\nentitlements = [\"member\"]\n\
         principals = \"users\"\n\
         [reviewers]\nmode = \"named\"\nnamed = [{}]\nfallback = [\"{first}\"]\n\
         [schedule]\nduration = \"14d\"\nrecurrence = \"quarterly\"\n\
         [settings]\njustification_required = \"revoke\"\nstages = 2\n\
         [[later_stages]]\nmode = \"named\"\nnamed = [\"{first}\"]\nfallback = [{}]\nduration = \"7d\"\n",
        quoted(&groups.iter().collect::<Vec<_>>()),
        quoted(&reviewers),
        quoted(&reviewers)
    );
    let definition = attest_review::parse_definition(&text)?;
    let campaign = attest_review::create(store, &definition, "demo", now).await?;
    let started = attest_review::start(store, campaign.id, "demo", now).await?;
    // One answer already given, so the campaign's progress shows a "not sure" and why: the
    // last administrator cannot tell about someone else's membership.
    if let Some((object_id, _, name, mail)) = admins.last() {
        let filter = attest_store::ItemFilter {
            instance: Some(started.instance.id),
            reviewer: Some(object_id.clone()),
            decision: Some(attest_domain::review::Decision::Pending),
            limit: 20,
            ..Default::default()
        };
        let items = store.reviews().list_items(&filter).await?;
        if let Some(item) = items.iter().find(|i| !i.principal_object.eq_ignore_ascii_case(object_id)) {
            let me = attest_review::Reviewer {
                object_id: object_id.clone(),
                name: mail.clone().unwrap_or_else(|| name.clone()),
                identity: Some(format!("{}/{object_id}", sim.tenant_id())),
            };
            let act = attest_review::Decide {
                items: &[item.id],
                decision: attest_domain::review::Decision::NotSure,
                justification: "Joined the project this month; their lead should confirm",
                how: "reviewer",
            };
            attest_review::decide(store, started.instance.id, &me, &act, now).await?;
        }
    }
    Ok(Some((campaign.name, started.items)))
}

/// Makes the membership of two groups Graph can change requestable (one approved by the
/// administrators, up to 30 days; one given at once, up to 8 hours), and has a user who is not
/// an administrator ask for the first: the request's id, who asked, and for what. `None` when
/// the tenant is too small.
async fn seed_requests(
    store: &Store,
    sim: &attest_entra_sim::SimHandle,
    connector: attest_domain::ConnectorId,
    admins: &[(String, String, String, Option<String>)],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<(i64, String, String)>> {
    use attest_domain::access::{AccessPolicy, Approver, EntitlementRef, Length, Span};
    let found: Option<(Vec<String>, String)> = sim.sim.read(|t| {
        let mut groups: Vec<_> = t.live_groups().filter(|g| g.accepts_membership_writes()).collect();
        groups.sort_by(|a, b| b.display_name.cmp(&a.display_name));
        let groups: Vec<_> = groups.into_iter().take(2).collect();
        let first = groups.first()?;
        let asker = t
            .live_users()
            .filter(|u| u.user_type == "Member" && u.account_enabled && u.mail.is_some())
            .filter(|u| !admins.iter().any(|(id, ..)| id == &u.id) && !first.members.contains(&u.id))
            .min_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name))?;
        Some((groups.iter().map(|g| g.id.clone()).collect(), asker.id.clone()))
    });
    let Some((groups, asker)) = found else { return Ok(None) };
    let approvers: Vec<Approver> = admins.iter().map(|(_, upn, _, _)| Approver::Person(upn.clone())).collect();
    let policies = [
        AccessPolicy { requestable: true, max_duration: Some(Span::days(30)), approvers, ..AccessPolicy::default() },
        AccessPolicy {
            requestable: true,
            max_duration: Some(Span::hours(8)),
            auto_approve: true,
            justification_required: false,
            ..AccessPolicy::default()
        },
    ];
    let mut first = None;
    for (group, policy) in groups.iter().zip(policies) {
        let name: EntitlementRef = format!("group:{group}:member").parse()?;
        let (entitlement, resource) = attest_access::resolve(store, Some(connector), &name).await?;
        attest_access::set_policy(store, &entitlement, &resource, &policy, "demo", now).await?;
        first.get_or_insert((entitlement, resource));
    }
    let Some((entitlement, resource)) = first else { return Ok(None) };
    let requester =
        attest_access::requester(store, connector, &asker, |p| p.email.clone().unwrap_or(p.name.clone())).await?;
    let ask = attest_access::Ask {
        entitlement: entitlement.id,
        length: Length::For(Span::days(7)),
        justification: "Covering the on-call rota next week".into(),
        ticket: Some("OPS-1042".into()),
        starts_at: None,
    };
    let request = attest_access::request(store, &requester, &ask, now).await?;
    let what = format!("{} of {} for 7 days", entitlement.data.display_name, resource.data.display_name);
    Ok(Some((request.id, requester.actor.person.name, what)))
}

/// The directory role the first administrator is made eligible for in the simulator (and
/// holds in no other way), before the first sync: its display name.
fn make_eligible(
    sim: &attest_entra_sim::SimHandle,
    admins: &[(String, String, String, Option<String>)],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    const HELPDESK_ADMINISTRATOR: &str = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    let (admin, ..) = admins.first()?;
    sim.sim.write(|t| {
        let name = t.role_definitions.iter().find(|d| d.id == HELPDESK_ADMINISTRATOR)?.display_name.clone();
        t.role_assignments.retain(|a| !(a.principal_id == *admin && a.role_definition_id == HELPDESK_ADMINISTRATOR));
        t.role_eligibilities.retain(|e| !(e.principal_id == *admin && e.role_definition_id == HELPDESK_ADMINISTRATOR));
        let eligibility = attest_entra_sim::RoleEligibility {
            id: "demo-eligibility".into(),
            role_definition_id: HELPDESK_ADMINISTRATOR.into(),
            principal_id: admin.clone(),
            directory_scope_id: "/".into(),
            start: now - chrono::Duration::days(30),
            end: None,
        };
        t.add_role_eligibility(eligibility).ok()?;
        Some(name)
    })
}

/// Makes `role`'s active assignment requestable for up to 8 hours, given at once and activated
/// by its holder in Entra (PIM), and has the first administrator ask for an hour: the request's
/// id, who asked, and the role.
async fn seed_activation(
    store: &Store,
    connector: attest_domain::ConnectorId,
    admins: &[(String, String, String, Option<String>)],
    role: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<(i64, String, String)>> {
    use attest_domain::access::{AccessPolicy, EntitlementRef, Length, Span};
    let Some((admin, upn, ..)) = admins.first() else { return Ok(None) };
    let name: EntitlementRef = format!("role:{role}:active").parse()?;
    let (entitlement, resource) = attest_access::resolve(store, Some(connector), &name).await?;
    let policy = AccessPolicy {
        requestable: true,
        max_duration: Some(Span::hours(8)),
        auto_approve: true,
        self_activate: true,
        ..AccessPolicy::default()
    };
    attest_access::set_policy(store, &entitlement, &resource, &policy, "demo", now).await?;
    let requester =
        attest_access::requester(store, connector, admin, |p| p.email.clone().unwrap_or(p.name.clone())).await?;
    let ask = attest_access::Ask {
        entitlement: entitlement.id,
        length: Length::For(Span::hours(1)),
        justification: "Resetting a locked-out colleague's password".into(),
        ticket: None,
        starts_at: None,
    };
    let request = attest_access::request(store, &requester, &ask, now).await?;
    Ok(Some((request.id, upn.clone(), role.to_owned())))
}

/// Writes `attest.toml` in the demo's folder, naming its database, key and address with
/// absolute paths: a command run in that folder (or given `--config` with it) works on the
/// demo, and `admin create-login-link` links to the demo's port.
fn write_config(dir: &std::path::Path, base: &str) -> anyhow::Result<PathBuf> {
    let dir = std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let quoted = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let text = format!(
        "# Written by `attest demo` (replaced at its next start): commands run in this folder, or\n\
         # with --config naming this file, work on the demo.\n\n\
         [database]\nurl = {}\n\n[secrets]\nkey_file = {}\n\n[server]\npublic_url = {}\n",
        quoted(&format!("sqlite://{}/attest.db?mode=rwc", dir.display())),
        quoted(&dir.join("secret.key").display().to_string()),
        quoted(base),
    );
    let file = dir.join("attest.toml");
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}
