//! Connecting a tenant and syncing it from the command line, against the simulator:
//! `connector add`, `connector check`, `sync`, `graph export`.

use attest_entra_sim::{ClientApp, SimHandle, SimOptions, TenantSpec, Truth, generate, spawn_with};
use attest_store::db_test;

use crate::harness::attest;

pub(crate) async fn sim(app: ClientApp) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 300, groups: 25, apps: 5, assignments_per_app: 10, seed: 21 };
    spawn_with(listener, generate(spec), app, SimOptions::default()).await.unwrap()
}

/// A scratch directory with a config file pointing the secret key into it.
pub(crate) fn scratch() -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("attest-e2e-sync-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("attest.toml");
    std::fs::write(&config, format!("[secrets]\nkey_file = \"{}\"\n", dir.join("secret.key").display())).unwrap();
    (dir, config.display().to_string())
}

/// `connector add entra` for the simulator's app, with its secret in `secret_file`.
pub(crate) fn add_entra(sim: &SimHandle, name: &str, secret_file: &std::path::Path) -> Vec<String> {
    let app = sim.sim.client();
    [
        "connector",
        "add",
        "entra",
        "--name",
        name,
        "--tenant-id",
        &sim.tenant_id(),
        "--client-id",
        &app.client_id,
        "--client-secret-file",
        secret_file.to_str().unwrap(),
        "--graph-url",
        &sim.graph_url,
        "--login-url",
        &sim.login_url,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}")
}

db_test!(connect_check_sync_and_export_a_tenant, true, |db| {
    let sim = sim(ClientApp::attest(21)).await;
    let (dir, config) = scratch();
    let url = db.url.expose().to_owned();
    let run = |args: Vec<String>| {
        let mut full = vec!["--config".to_owned(), config.clone(), "--database-url".to_owned(), url.clone()];
        full.extend(args);
        async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let app = sim.sim.client().clone();
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, format!("{}\n", app.client_secret)).unwrap();
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let added = run(add_entra(&sim, "contoso", &secret_file)).await;
    // Provisioning permissions are not granted, so the check says so but sync is ready.
    assert!(added.success, "{:?}\n{}", added.error, added.stdout);
    assert!(added.stdout.contains("sync              ready"), "{}", added.stdout);
    assert!(added.stdout.contains("missing permission AppRoleAssignment.ReadWrite.All"), "{}", added.stdout);
    // The secret is stored encrypted: it appears nowhere in the database file or output.
    assert!(!added.stdout.contains(&app.client_secret));
    if let Some(path) = db.url.sqlite_path() {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(app.client_secret.len()).any(|w| w == app.client_secret.as_bytes()));
    }

    // Set up for provisioning too, it needs its owners to grant more; it still syncs.
    let list = run(args(&["connector", "list"])).await;
    assert!(list.stdout.contains("contoso\tentra") && list.stdout.contains("needs_reauthorization"), "{}", list.stdout);

    let first = run(args(&["sync", "contoso"])).await;
    assert!(first.success, "{:?}\n{}", first.error, first.stdout);
    assert!(first.stdout.contains("full sync finished"), "{}", first.stdout);
    assert!(first.stdout.contains("ran as a full sync: no delta state"), "{}", first.stdout);
    let none = run(args(&["events"])).await;
    assert!(none.success && none.stdout.contains("no lifecycle events"), "{:?}\n{}", none.error, none.stdout);

    sim.mutate(5, 3);
    let second = run(args(&["sync", "--json"])).await;
    assert!(second.success, "{:?}", second.error);
    let runs: serde_json::Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(runs[0]["run"]["mode"], "delta", "{runs}");
    assert!(runs[0]["run"]["requests"].as_u64().unwrap() > 0);
    // The delta's changes are lifecycle events: one line each, filterable by kind.
    let joined =
        run(args(&["events", "--connector", "contoso", "--kind", "membership_added,membership_removed"])).await;
    assert!(joined.success, "{:?}", joined.error);
    let lines: Vec<&str> = joined.stdout.lines().collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.contains("  membership_")), "{}", joined.stdout);
    assert!(lines.iter().all(|l| l.ends_with(": member")), "{}", joined.stdout);

    // A delta does not re-read application role assignments within the hour; --full does.
    assert!(second.stdout.contains("application role assignments were not re-read"), "{}", second.stdout);
    let full = run(args(&["sync", "contoso", "--full"])).await;
    assert!(full.success && full.stdout.contains("full sync finished"), "{:?}\n{}", full.error, full.stdout);

    // Scope: without guests, a full sync leaves them out (marked deleted); back again after.
    let configured = run(args(&["connector", "configure", "contoso", "--include-guests", "false"])).await;
    assert!(configured.success && configured.stdout.contains("\"include_guests\": false"), "{}", configured.stdout);
    let narrowed = run(args(&["sync", "contoso", "--full", "--json"])).await;
    let runs: serde_json::Value = serde_json::from_str(&narrowed.stdout).unwrap();
    let removed = runs[0]["run"]["counts"]["principals"]["removed"].as_u64().unwrap();
    assert!(removed > 0, "{runs}");
    let run_id = runs[0]["run"]["id"].clone();
    let all = run(args(&["events", "--json", "--limit", "100000"])).await;
    let events: serde_json::Value = serde_json::from_str(&all.stdout).unwrap();
    let deleted: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sync_run_id"] == run_id && e["kind"] == "principal_deleted")
        .collect();
    assert_eq!(deleted.len() as u64, removed, "one principal_deleted event per guest left out");
    assert!(deleted.iter().all(|e| e["principal_kind"] == "user" && e["principal_upn"].is_string()));
    // --after pages from a remembered id.
    let last = events.as_array().unwrap().last().unwrap()["id"].as_i64().unwrap();
    let after = run(args(&["events", "--after", &last.to_string()])).await;
    assert!(after.stdout.contains("no lifecycle events"), "{}", after.stdout);
    assert!(run(args(&["connector", "configure", "contoso", "--include-guests", "true"])).await.success);
    assert!(run(args(&["sync", "contoso", "--full"])).await.success);

    // The JSON export holds the graph, consistent with the tenant.
    let export = run(args(&["graph", "export"])).await;
    assert!(export.success, "{:?}", export.error);
    let graph: serde_json::Value = serde_json::from_str(&export.stdout).unwrap();
    assert_eq!(graph["format"], "attest-graph/1");
    let truth = sim.sim.read(Truth::of);
    let live_users = graph["principals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "user" && p["deleted_at"].is_null())
        .count();
    assert_eq!(live_users, truth.counts["users"]);
    let direct_members =
        graph["grants"].as_array().unwrap().iter().filter(|g| g["grant"]["source"] == "direct").count();
    let direct_in_tenant: usize =
        ["memberships", "group_owners", "app_owners", "app_role_assignments", "role_assignments", "role_eligibilities"]
            .iter()
            .map(|k| truth.counts[*k])
            .sum();
    assert_eq!(direct_members, direct_in_tenant);
    // Every grant says whether Entra gives it; inherited ones Entra does not, why.
    let grants = graph["grants"].as_array().unwrap();
    assert!(grants.iter().all(|g| g["grant"]["effective"].is_boolean()), "effective on every grant");
    let ineffective: Vec<&serde_json::Value> = grants.iter().filter(|g| g["grant"]["effective"] == false).collect();
    assert!(!ineffective.is_empty(), "the tenant has nested members of groups assigned app roles");
    assert!(ineffective.iter().all(|g| {
        g["grant"]["source"] == "inherited"
            && ["nested_group", "service_principal", "nested_role_group"]
                .contains(&g["grant"]["ineffective_reason"].as_str().unwrap())
    }));
    assert!(
        grants.iter().filter(|g| g["grant"]["effective"] == true).all(|g| g["grant"]["ineffective_reason"].is_null())
    );

    // The CSV export: a header and one row per current grant.
    let csv_path = dir.join("graph.csv");
    let csv = run(args(&["graph", "export", "--format", "csv", "--output", csv_path.to_str().unwrap()])).await;
    assert!(csv.success, "{:?}", csv.error);
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(text.starts_with("connector,principal_external_id,principal_kind"), "{}", &text[..200]);
    assert_eq!(text.lines().count() - 1, graph["grants"].as_array().unwrap().len());
    assert!(text.lines().next().unwrap().ends_with(",expires_at,effective,ineffective_reason"));
    assert_eq!(
        text.lines()
            .filter(|l| l.ends_with(",false,nested_group")
                || l.ends_with(",false,service_principal")
                || l.ends_with(",false,nested_role_group"))
            .count(),
        ineffective.len()
    );

    // Set up for read-only features, the same app is connected.
    let mut read_only = add_entra(&sim, "contoso-read", &secret_file);
    read_only.extend(args(&["--features", "sync,sign-in-activity,pim"]));
    let added = run(read_only).await;
    assert!(added.success, "{:?}\n{}", added.error, added.stdout);
    let list = run(args(&["connector", "list"])).await;
    assert!(list.stdout.contains("contoso-read\tentra") && list.stdout.contains("\tconnected\t"), "{}", list.stdout);
    let _ = std::fs::remove_dir_all(&dir);
});

db_test!(a_connector_without_consent_is_reported_clearly, true, |db| {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 50, groups: 5, apps: 2, assignments_per_app: 3, seed: 22 };
    let options = SimOptions { consented: false, ..SimOptions::default() };
    let sim = spawn_with(listener, generate(spec), ClientApp::attest(22), options).await.unwrap();
    let (dir, config) = scratch();
    let secret_file = dir.join("client-secret");
    let app = sim.sim.client().clone();
    std::fs::write(&secret_file, &app.client_secret).unwrap();
    let url = db.url.expose().to_owned();
    let base = ["--config", &config, "--database-url", &url];
    let mut add = base.to_vec();
    let add_args = add_entra(&sim, "fabrikam", &secret_file);
    add.extend(add_args.iter().map(String::as_str));
    let added = attest(&add).await;
    assert!(!added.success);
    assert!(added.stdout.contains("cannot sign in") && added.stdout.contains("admin consent"), "{}", added.stdout);
    let mut list = base.to_vec();
    list.extend(["connector", "list"]);
    assert!(attest(&list).await.stdout.contains("awaiting_consent"));
    let mut sync = base.to_vec();
    sync.extend(["sync", "fabrikam"]);
    let synced = attest(&sync).await;
    assert!(!synced.success && synced.stdout.contains("admin consent"), "{}", synced.stdout);
    let _ = std::fs::remove_dir_all(&dir);
});
