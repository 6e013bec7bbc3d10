//! `attest serve` through its boot function: health, readiness, metrics, the scheduled sync and
//! the provisioner's workers running in the background, and a graceful stop.

use std::time::Duration;

use attest_config::Config;
use attest_domain::{ChangeAction, ChangeOrigin, ChangeState, NewChange};
use attest_domain::{Clock as _, SystemClock};
use attest_entra_sim::ClientApp;
use attest_store::db_test;

use crate::harness::{attest, browser, location, sign_in_through_simulator};
use crate::sync::{add_entra, scratch, sim};
use crate::web::eventually;

/// The configuration in `config_file`, on the test database.
fn config(config_file: &str, db: &attest_store::testing::TestDb) -> Config {
    let mut config = Config::load(Some(std::path::Path::new(config_file)), Vec::new()).unwrap();
    config.database.url = db.url.clone();
    config
}

/// A running server: its base URL, the stop trigger and the task.
type Running = (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>);

/// Boots the server on an ephemeral port.
async fn boot(config: Config) -> Running {
    boot_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
}

fn boot_on(listener: tokio::net::TcpListener, config: Config) -> Running {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(attest_server::run(config, attest_domain::clock::system(), listener, async move {
        let _ = stopped.await;
    }));
    (base, stop, task)
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let response = attest_http::client().unwrap().get(format!("{base}{path}")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

db_test!(serve_syncs_on_schedule_applies_changes_and_reports_health_and_metrics, true, |db| {
    let sim = sim(ClientApp::attest(21).with_provisioning()).await;
    let (dir, config_file) = scratch();
    // A short schedule so the test sees the scheduler at work.
    let mut text = std::fs::read_to_string(&config_file).unwrap();
    text.push_str("[server]\nsync_interval = \"1s\"\n");
    std::fs::write(&config_file, text).unwrap();
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, &sim.sim.client().client_secret).unwrap();
    let url = db.url.expose().to_owned();
    let mut add = vec!["--config".to_owned(), config_file.clone(), "--database-url".to_owned(), url];
    add.extend(add_entra(&sim, "contoso", &secret_file));
    let added = attest(&add.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(added.success, "{:?}", added.error);

    let (base, stop, task) = boot(config(&config_file, &db)).await;
    assert_eq!(get(&base, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(&base, "/readyz").await, (200, "ready\n".to_owned()));

    // The scheduler syncs the new connector (a full sync first) without being asked.
    let store = db.store.clone();
    let synced = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move { store.connectors().list_connectors().await.unwrap()[0].last_full_sync_at.is_some() }
    })
    .await;
    assert!(synced, "the scheduled sync ran");
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);

    // A queued change is applied by the background workers.
    let (group, user) = sim.sim.read(|t| {
        let g = t.live_groups().find(|g| g.accepts_membership_writes()).unwrap();
        let u = t.live_users().find(|u| !g.members.contains(&u.id)).unwrap();
        (g.id.clone(), u.id.clone())
    });
    let change = NewChange {
        connector_id: connector.id,
        action: ChangeAction::AddGroupMember { group: group.clone(), member: user.clone() },
        idempotency_key: "serve-test-1".into(),
        origin: ChangeOrigin::Manual,
        origin_ref: None,
        requested_by: "ada@contoso.com".into(),
        requested_by_id: None,
        reason: None,
    };
    let id = store.changes().enqueue_change(change, false, SystemClock.now()).await.unwrap().change.id;
    let applied = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move { store.changes().get_change(id).await.unwrap().state == ChangeState::Applied }
    })
    .await;
    assert!(applied, "the worker applied the change");
    assert!(sim.sim.read(|t| t.group(&group).unwrap().members.contains(&user)));

    let (status, metrics) = get(&base, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "attest_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",status=\"2xx\",le=\"0.005\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("attest_changes{state=\"applied\"} 1"), "{metrics}");
    assert!(metrics.contains("attest_mail{state=\"kept\"} 0"), "{metrics}");
    assert!(metrics.contains("attest_connector_last_sync_age_seconds{connector=\"contoso\"}"), "{metrics}");

    // A graceful stop: the boot function returns.
    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(20), task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    let _ = std::fs::remove_dir_all(&dir);
});

db_test!(readiness_fails_on_an_unmigrated_database_while_health_answers, false, |db| {
    let (dir, config_file) = scratch();
    let (base, stop, task) = boot(config(&config_file, &db)).await;
    assert_eq!(get(&base, "/healthz").await.0, 200);
    let (status, body) = get(&base, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("attest migrate up"), "{body}");
    stop.send(()).unwrap();
    assert!(matches!(tokio::time::timeout(Duration::from_secs(20), task).await, Ok(Ok(Ok(())))));
    let _ = std::fs::remove_dir_all(&dir);
});

/// The `attest_session=…` pair of a response's Set-Cookie.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

async fn me(base: &str, cookie: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = browser().get(format!("{base}/api/v1/me"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or_default())
}

db_test!(people_sign_in_with_entra_and_sessions_and_csrf_hold, true, |db| {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sim = sim(ClientApp::attest(21).with_provisioning().with_redirect_uri(&format!("{base}/auth/callback"))).await;
    let (dir, config_file) = scratch();
    let mut text = std::fs::read_to_string(&config_file).unwrap();
    text.push_str(&format!("[server]\npublic_url = \"{base}\"\n"));
    std::fs::write(&config_file, text).unwrap();
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, &sim.sim.client().client_secret).unwrap();
    let cli = |args: Vec<String>| {
        let mut full =
            vec!["--config".to_owned(), config_file.clone(), "--database-url".to_owned(), db.url.expose().to_owned()];
        full.extend(args);
        async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    assert!(cli(add_entra(&sim, "contoso", &secret_file)).await.success);
    let (_, stop, task) = boot_on(listener, config(&config_file, &db));
    let (user, upn) = sim.sim.read(|t| {
        let u = t.live_users().find(|u| u.user_type == "Member").unwrap();
        (u.id.clone(), u.user_principal_name.clone())
    });

    assert_eq!(me(&base, None).await.0, 401, "nobody is signed in");
    // Sign-in: to Microsoft (the simulator), pick the user, back to the callback.
    let (authorize, callback, binding) = sign_in_through_simulator(&base, &upn).await;
    assert!(authorize.starts_with(&sim.login_url) && authorize.contains("code_challenge_method=S256"), "{authorize}");
    assert!(callback.starts_with(&format!("{base}/auth/callback?")), "{callback}");
    let landed = browser().get(&callback).header("cookie", &binding).send().await.unwrap();
    assert_eq!((landed.status().as_u16(), location(&landed).as_str()), (303, "/"));
    let cookie = session_cookie(&landed);
    let (status, who) = me(&base, Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (who["object_id"].as_str(), who["tenant_id"].as_str()),
        (Some(user.as_str()), Some(sim.tenant_id().as_str()))
    );
    let csrf = who["csrf_token"].as_str().unwrap().to_owned();

    // Pages: the landing page for strangers, the dashboard for the signed in; the directory is
    // not for a plain requester.
    let page = |path: &str, cookie: Option<String>| {
        let url = format!("{base}{path}");
        async move {
            let mut request = browser().get(url);
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, landing) = page("/", None).await;
    assert!(status == 200 && landing.contains("Sign in with Microsoft"), "{landing}");
    let (status, dashboard) = page("/", Some(cookie.clone())).await;
    assert_eq!(status, 200, "{dashboard}");
    assert!(dashboard.contains("<h1>Dashboard</h1>") && dashboard.contains("Your requests"), "{dashboard}");
    assert!(!dashboard.contains("contoso"), "connectors are for those who read the directory: {dashboard}");
    assert!(dashboard.contains(&format!("name=\"csrf\" value=\"{csrf}\"")), "the sign-out form carries the CSRF token");
    assert!(!dashboard.contains("href=\"/people\""), "no directory link for a requester");
    let (status, refused) = page("/people", Some(cookie.clone())).await;
    assert!(status == 403 && refused.contains("administrators, auditors and integration owners"), "{refused}");
    assert_eq!(page("/people", None).await.0, 401);
    // Granting a role takes effect on the next request; only grantable roles are accepted. The
    // user must have been synced first.
    let store = db.store.clone();
    let synced = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move { store.connectors().list_connectors().await.unwrap()[0].last_full_sync_at.is_some() }
    });
    assert!(synced.await);
    let bad =
        cli(vec!["admin".into(), "set-roles".into(), "--user".into(), upn.clone(), "--roles".into(), "root".into()])
            .await;
    assert!(!bad.success && bad.error.as_deref().unwrap().contains("'root' is not a role"), "{:?}", bad.error);
    let granted =
        cli(vec!["admin".into(), "set-roles".into(), "--user".into(), upn.clone(), "--roles".into(), "auditor".into()])
            .await;
    assert!(granted.success && granted.stdout.contains("now has: auditor"), "{:?}\n{}", granted.error, granted.stdout);
    assert_eq!(page("/people", Some(cookie.clone())).await.0, 200, "an auditor browses the directory");
    let revoked =
        cli(vec!["admin".into(), "set-roles".into(), "--user".into(), upn.clone(), "--roles".into(), String::new()])
            .await;
    assert!(revoked.success && revoked.stdout.contains("now has: no roles"), "{}", revoked.stdout);
    assert_eq!(page("/people", Some(cookie.clone())).await.0, 403, "and no longer once the role is gone");

    // The same callback again: the sign-in was used up.
    assert_eq!(browser().get(&callback).header("cookie", &binding).send().await.unwrap().status().as_u16(), 403);
    // A made-up session is nobody.
    assert_eq!(me(&base, Some("attest_session=forged")).await.0, 401);
    // Sign-out needs the CSRF token.
    let sign_out = |csrf: Option<String>| {
        let (base, cookie) = (base.clone(), cookie.clone());
        async move {
            let form: Vec<(&str, String)> = csrf.map(|c| vec![("csrf", c)]).unwrap_or_default();
            browser().post(format!("{base}/auth/sign-out")).header("cookie", cookie).form(&form).send().await.unwrap()
        }
    };
    assert_eq!(sign_out(None).await.status().as_u16(), 403);
    assert_eq!(sign_out(Some("wrong".into())).await.status().as_u16(), 403);
    assert_eq!(me(&base, Some(&cookie)).await.0, 200, "still signed in after refused sign-outs");
    let out = sign_out(Some(csrf)).await;
    assert_eq!(out.status().as_u16(), 303);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(me(&base, Some(&cookie)).await.0, 401, "the session is gone server-side");

    // Break-glass: a one-time link signs in the local administrator.
    let printed = cli(vec!["admin".into(), "create-login-link".into()]).await;
    assert!(printed.success, "{:?}", printed.error);
    let link = printed.stdout.lines().next().unwrap().to_owned();
    assert!(link.starts_with(&format!("{base}/auth/link/")), "{link}");
    let used = browser().get(&link).send().await.unwrap();
    assert_eq!(used.status().as_u16(), 303);
    let (status, admin) = me(&base, Some(&session_cookie(&used))).await;
    assert_eq!((status, admin["tenant_id"].as_str(), admin["roles"][0].as_str()), (200, Some("local"), Some("admin")));
    assert_eq!(browser().get(&link).send().await.unwrap().status().as_u16(), 403, "once only");
    let admin_cookie = session_cookie(&used);
    // The directory shows what the scheduled sync brought in.
    let store = db.store.clone();
    let synced = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move { store.connectors().list_connectors().await.unwrap()[0].last_full_sync_at.is_some() }
    });
    assert!(synced.await);
    let prefix: String = upn.chars().take(6).collect();
    let (status, directory) = page(&format!("/people?q={prefix}"), Some(admin_cookie.clone())).await;
    assert_eq!(status, 200, "{directory}");
    assert!(directory.contains(&upn) && directory.contains("match"), "{directory}");
    let (status, odd) = page("/people?q=%25_%27%3Cscript%3E&page=9999", Some(admin_cookie)).await;
    assert!(status == 200 && odd.contains("0 matches") && !odd.contains("<script>"), "{odd}");

    stop.send(()).unwrap();
    assert!(matches!(tokio::time::timeout(Duration::from_secs(20), task).await, Ok(Ok(Ok(())))));
    let _ = std::fs::remove_dir_all(&dir);
});
