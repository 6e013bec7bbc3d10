//! Connecting a tenant from the web: an administrator adds a connector naming an integration
//! owner, the owner's mail carries a link bound to them, the owner signs in, goes through the
//! simulator's admin-consent page (declining first, then accepting) and lands on a verified
//! checklist while the first sync runs. Then the ways a connection breaks (partial consent,
//! consent revoked, an expired secret) end in the right state, with one mail per episode.

use std::time::Duration;

use attest_config::MailConfig;
use attest_domain::{Clock as _, ConnectorStatus, SystemClock};
use attest_entra_sim::{SimHandle, SimOptions, TenantSpec, generate, spawn_with};
use attest_notify::Outbox;
use attest_server::setup_job::SetupMailer;
use attest_store::{MailFilter, Store, db_test};

use crate::harness::{browser, location};
use crate::web::{Person, Web, eventually};

/// A second tenant, the same multi-tenant app not yet consented in it.
pub(crate) async fn subsidiary(base: &str) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 40, groups: 5, apps: 2, assignments_per_app: 3, seed: 31 };
    let options = SimOptions { consented: false, ..SimOptions::default() };
    spawn_with(listener, generate(spec), Web::client_app(base), options).await.unwrap()
}

/// The setup links mailed to `to`, newest last.
async fn setup_links(store: &Store, to: &str) -> Vec<String> {
    let filter = MailFilter { recipient: Some(to.to_owned()), limit: 100, ..Default::default() };
    let mut mails = store.outbox().list_mail(&filter).await.unwrap();
    mails.retain(|m| m.template == "connector_setup");
    mails.sort_by_key(|m| m.id.0);
    mails
        .iter()
        .map(|m| {
            let at = m.text_body.find("/setup/").unwrap();
            let token: String = m.text_body[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            format!("/setup/{token}")
        })
        .collect()
}

/// How many mails of `template` went to `to`.
async fn mails(store: &Store, to: &str, template: &str) -> usize {
    let filter = MailFilter { recipient: Some(to.to_owned()), limit: 100, ..Default::default() };
    store.outbox().list_mail(&filter).await.unwrap().iter().filter(|m| m.template == template).count()
}

/// `who` sets off for Microsoft from `path` (a setup link's consent, or the connector page's):
/// the admin-consent address they are sent to.
async fn set_off(web: &Web, who: &Person, path: &str) -> String {
    let response = browser().get(format!("{}{path}", web.base)).header("cookie", &who.cookie).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "{path}");
    let to = location(&response);
    assert!(to.contains("/v2.0/adminconsent?") && to.contains("state=") && to.contains("%2F.default"), "{to}");
    to
}

/// The administrator on the simulator's consent page accepts (as `login`) or cancels: the
/// callback address Microsoft sends the browser back to, relative to Attest.
async fn answer(consent: &str, login: Option<&str>, base: &str) -> String {
    let (endpoint, query) = consent.split_once('?').unwrap();
    let mut form: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    match login {
        Some(login) => form.extend([("login".to_owned(), login.to_owned()), ("accept".into(), "1".into())]),
        None => form.push(("cancel".into(), "1".into())),
    }
    let answered = browser().post(endpoint).form(&form).send().await.unwrap();
    assert_eq!(answered.status().as_u16(), 303, "{}", answered.text().await.unwrap());
    location(&answered).strip_prefix(base).unwrap().to_owned()
}

/// `POST path` to the API as `who` with a JSON `body` (and their CSRF token).
async fn post_json(web: &Web, who: &Person, path: &str, body: &serde_json::Value) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", web.base))
        .header("cookie", &who.cookie)
        .header("x-csrf-token", &who.csrf)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn mailer(store: &Store) -> SetupMailer {
    let outbox = Outbox::new(store.clone(), &MailConfig::default()).unwrap();
    SetupMailer::new(store.clone(), outbox, "http://attest.test", attest_domain::clock::system(), "test")
}

db_test!(an_owner_connects_a_tenant_from_their_mail_and_breakage_is_explained_once, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let fabrikam = subsidiary(&web.base).await;
    let admin_login = fabrikam.sim.read(|t| {
        t.live_users().find(|u| u.account_enabled && t.can_grant_consent(&u.id)).unwrap().user_principal_name.clone()
    });
    let member_login = fabrikam.sim.read(|t| {
        t.live_users().find(|u| u.account_enabled && !t.can_grant_consent(&u.id)).unwrap().user_principal_name.clone()
    });
    let domain = fabrikam.sim.read(|t| t.domain.clone());
    let owner = web.requester.clone();

    // Bad input is refused with what to fix, and nothing is created.
    let bad = serde_json::json!({"name": "Fab Rikam!", "tenant": domain, "cloud": "custom"});
    let refused = post_json(&web, &web.admin, "/api/v1/connectors", &bad).await;
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.unwrap().contains("lowercase"));

    // The administrator adds the tenant by its domain, with the demo app's registration, and
    // names the owner; only administrators may.
    let body = serde_json::json!({
        "name": "fabrikam", "tenant": domain, "cloud": "custom", "graph_url": fabrikam.graph_url,
        "login_url": fabrikam.login_url, "provisioning": true, "sign_in_activity": true, "pim": true,
        "owners": [owner.email], "credentials": "same_as", "same_as": "contoso",
    });
    for who in [&web.owner, &web.auditor] {
        let response = post_json(&web, who, "/api/v1/connectors", &body).await;
        assert_eq!(response.status().as_u16(), 403);
    }
    let added = post_json(&web, &web.admin, "/api/v1/connectors", &body).await;
    assert_eq!(added.status().as_u16(), 201);
    let added: serde_json::Value = added.json().await.unwrap();
    assert_eq!(added["tenant_id"], fabrikam.tenant_id().as_str(), "the domain is resolved to the id: {added}");
    assert_eq!(added["status"], "awaiting_consent", "{added}");
    assert!(added["status_reason"].as_str().unwrap().contains("AADSTS700016"), "{added}");

    // The owner's mail: who asked, the permissions split, a link.
    let filter = MailFilter { recipient: Some(owner.email.clone()), limit: 10, ..Default::default() };
    let mail =
        store.outbox().list_mail(&filter).await.unwrap().into_iter().find(|m| m.template == "connector_setup").unwrap();
    assert!(
        mail.subject.contains(&web.admin.email) && mail.subject.contains(&fabrikam.tenant_id()),
        "{}",
        mail.subject
    );
    for expected in ["Read-only:", "User.Read.All", "Provisioning", "GroupMember.ReadWrite.All", "AuditLog.Read.All"] {
        assert!(mail.text_body.contains(expected), "{expected}: {}", mail.text_body);
    }
    let link = setup_links(&store, &owner.email).await.pop().unwrap();

    // The link is bound to the owner: someone else is refused, signed out is asked to sign in.
    let (status, page) = web.get(Some(&web.auditor), &link).await;
    assert_eq!(status, 403);
    assert!(page.contains("only they can use it"), "{page}");
    assert_eq!(web.get(None, &link).await.0, 401);
    assert_eq!(web.get(Some(&owner), "/setup/not-a-link").await.0, 404);
    assert_eq!(web.get(Some(&web.auditor), &format!("{link}/consent")).await.0, 403);
    let (status, page) = web.get(Some(&owner), &link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("RoleManagement.ReadWrite.Directory") && page.contains("Continue to Microsoft"), "{page}");

    // Declined: said plainly, still awaiting consent; the answer cannot be replayed.
    let consent = set_off(&web, &owner, &format!("{link}/consent")).await;
    let declined = answer(&consent, None, &web.base).await;
    let (status, page) = web.get(Some(&owner), &declined).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Consent was declined") && page.contains("AADSTS65004"), "{page}");
    assert_eq!(web.get(Some(&owner), &declined).await.0, 403, "a replayed state is refused");
    // A non-administrator on Microsoft's page is told there; nothing comes back.
    let consent = set_off(&web, &owner, &format!("{link}/consent")).await;
    let (endpoint, query) = consent.split_once('?').unwrap();
    let mut form: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    form.extend([("login".to_owned(), member_login), ("accept".into(), "1".into())]);
    let page = browser().post(endpoint).form(&form).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("AADSTS90094"));
    // Somebody else cannot use the owner's answer.
    let accepted = answer(&consent, Some(&admin_login), &web.base).await;
    assert_eq!(web.get(Some(&web.auditor), &accepted).await.0, 403);
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert_eq!(connector.status, ConnectorStatus::AwaitingConsent);

    // The app registration lists only the read-only permissions: consent grants those, the
    // checklist names what is missing and which feature it blocks, and the owners are told once.
    fabrikam.sim.register_only(attest_entra_sim::ATTEST_PERMISSIONS);
    let consent = set_off(&web, &owner, &format!("{link}/consent")).await;
    let accepted = answer(&consent, Some(&admin_login), &web.base).await;
    let landed = browser().get(format!("{}{accepted}", web.base)).header("cookie", &owner.cookie).send().await.unwrap();
    assert_eq!(landed.status().as_u16(), 303);
    assert_eq!(location(&landed), "/connectors/fabrikam#checklist");
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert_eq!(connector.status, ConnectorStatus::NeedsReauthorization);
    assert!(connector.status_reason.as_deref().unwrap().contains("GroupMember.ReadWrite.All (provisioning)"));
    assert_eq!(connector.connected_by.as_deref(), Some(owner.email.as_str()));
    // The owner is now the connector's owner, and reads its page.
    let (status, page) = web.get(Some(&owner), "/connectors/fabrikam").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("missing: blocks provisioning") && page.contains("Needs reauthorization"), "{page}");
    // The link is used up.
    let (status, page) = web.get(Some(&owner), &link).await;
    assert_eq!(status, 403);
    assert!(page.contains("already used"), "{page}");
    let mailer = mailer(&store);
    mailer.once(SystemClock.now()).await.unwrap();
    mailer.once(SystemClock.now()).await.unwrap();
    assert_eq!(mails(&store, &owner.email, "connector_attention").await, 1, "once per episode");

    // The administrator adds the rest; the owner grants consent again from the connector page:
    // connected, the first sync runs, the administrator who asked is told.
    fabrikam.sim.register_only(
        &attest_entra_sim::ATTEST_PERMISSIONS
            .iter()
            .chain(attest_entra_sim::ATTEST_PROVISIONING_PERMISSIONS)
            .copied()
            .collect::<Vec<_>>(),
    );
    let consent = set_off(&web, &owner, "/connectors/fabrikam/consent").await;
    let accepted = answer(&consent, Some(&admin_login), &web.base).await;
    let landed = browser().get(format!("{}{accepted}", web.base)).header("cookie", &owner.cookie).send().await.unwrap();
    assert_eq!(location(&landed), "/connectors/fabrikam#checklist");
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert_eq!(connector.status, ConnectorStatus::Connected, "{:?}", connector.status_reason);
    let synced = eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap().last_full_sync_at.is_some()
        }
    });
    assert!(synced.await, "the first sync ran");
    let (_, page) = web.get(Some(&owner), "/connectors/fabrikam").await;
    assert!(page.contains("Connected</strong>: connected on") && !page.contains("missing: blocks"), "{page}");
    // Troubleshooting names the groups Graph cannot change, by why.
    if fabrikam.sim.read(|t| t.live_groups().any(|g| !g.accepts_membership_writes())) {
        assert!(page.contains("id=\"unmanaged-groups\""), "{page}");
    }
    mailer.once(SystemClock.now()).await.unwrap();
    assert_eq!(mails(&store, &web.admin.email, "connector_connected").await, 1);

    // Consent revoked after connection: the provisioner, applying a change, finds out; the
    // change waits for the fix instead of failing.
    fabrikam.sim.remove_app();
    let user = fabrikam.sim.read(|t| t.live_users().next().unwrap().id.clone());
    let change = attest_domain::NewChange {
        connector_id: connector.id,
        action: attest_domain::ChangeAction::RevokeSessions { user },
        idempotency_key: "setup-revoked".into(),
        origin: attest_domain::ChangeOrigin::Manual,
        origin_ref: None,
        requested_by: web.admin.email.clone(),
        requested_by_id: None,
        reason: None,
    };
    let change = store.changes().enqueue_change(change, false, SystemClock.now()).await.unwrap().change;
    let reauthorize = |store: Store| async move {
        store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap().status
            == ConnectorStatus::NeedsReauthorization
    };
    assert!(eventually(Duration::from_secs(60), || reauthorize(store.clone())).await, "the provisioner notices");
    let retried = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move { store.changes().get_change(change.id).await.unwrap().last_error.is_some() }
    });
    assert!(retried.await, "the attempt is recorded");
    let waiting = store.changes().get_change(change.id).await.unwrap();
    assert!(waiting.last_error.as_deref().unwrap().contains("AADSTS700016"), "{waiting:?}");
    assert_ne!(waiting.state, attest_domain::ChangeState::Failed, "it waits for the fix");
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert!(connector.status_reason.as_deref().unwrap().contains("admin consent"), "{:?}", connector.status_reason);
    mailer.once(SystemClock.now()).await.unwrap();
    mailer.once(SystemClock.now()).await.unwrap();
    assert_eq!(mails(&store, &owner.email, "connector_attention").await, 2, "a second episode, one mail");

    // Fixed; revoked again: the next sync finds out, too.
    fabrikam.sim.grant_consent();
    assert_eq!(web.post(&owner, "/connectors/fabrikam/check", &[]).await.status().as_u16(), 303);
    fabrikam.sim.remove_app();
    let asked = web.post(&owner, "/connectors/fabrikam/sync", &[("mode", "delta")]).await;
    assert_eq!(asked.status().as_u16(), 303);
    if !eventually(Duration::from_secs(60), || reauthorize(store.clone())).await {
        let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
        let runs = store.syncs().list_sync_runs(connector.id, 10).await.unwrap();
        panic!("the revoked consent is not noticed: {connector:?}\n{runs:#?}\n{}", crate::harness::captured_logs());
    }
    mailer.once(SystemClock.now()).await.unwrap();
    assert_eq!(mails(&store, &owner.email, "connector_attention").await, 3, "a third episode, one mail");

    // Fixed, then the secret expires: "Check again" says so.
    fabrikam.sim.grant_consent();
    assert_eq!(web.post(&owner, "/connectors/fabrikam/check", &[]).await.status().as_u16(), 303);
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert_eq!(connector.status, ConnectorStatus::Connected);
    fabrikam.sim.set_secret_expired(true);
    let checked = post_json(&web, &owner, "/api/v1/connectors/fabrikam/check", &serde_json::json!({})).await;
    let checked: serde_json::Value = checked.json().await.unwrap();
    assert_eq!(checked["status"], "needs_reauthorization", "{checked}");
    assert!(checked["status_reason"].as_str().unwrap().contains("AADSTS7000222"), "{checked}");
    mailer.once(SystemClock.now()).await.unwrap();
    assert_eq!(mails(&store, &owner.email, "connector_attention").await, 4);
    // Renewed, then a Conditional Access policy blocks the app: said, and mailed once more.
    fabrikam.sim.set_secret_expired(false);
    fabrikam.sim.set_conditional_access_block(true);
    assert_eq!(web.post(&owner, "/connectors/fabrikam/check", &[]).await.status().as_u16(), 303);
    let connector = store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap();
    assert_eq!(connector.status, ConnectorStatus::NeedsReauthorization);
    assert!(connector.status_reason.as_deref().unwrap().contains("AADSTS53003"), "{:?}", connector.status_reason);
    fabrikam.sim.set_conditional_access_block(false);
    assert_eq!(web.post(&owner, "/connectors/fabrikam/check", &[]).await.status().as_u16(), 303);
    fabrikam.sim.set_conditional_access_block(true);
    assert_eq!(web.post(&owner, "/connectors/fabrikam/check", &[]).await.status().as_u16(), 303);
    mailer.once(SystemClock.now()).await.unwrap();
    assert_eq!(mails(&store, &owner.email, "connector_attention").await, 5);
    // Monitoring sees it too.
    let (_, metrics) = web.get(None, "/metrics").await;
    assert!(
        metrics.contains("attest_connector_status{connector=\"fabrikam\",status=\"needs_reauthorization\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("attest_connector_status{connector=\"contoso\",status=\"connected\"} 1"), "{metrics}");

    // Every step is in the audit log.
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    for action in ["connector.owner_invited", "connector.consented", "connector.status_changed"] {
        assert!(events.iter().any(|e| e.action == action), "{action}");
    }
    fabrikam.shutdown().await;
    web.stop().await;
});

db_test!(setup_links_are_reminded_once_with_a_fresh_link_and_expire, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let fabrikam = subsidiary(&web.base).await;
    let form = [
        ("name", "fabrikam"),
        ("tenant", &fabrikam.tenant_id()),
        ("cloud", "custom"),
        ("graph_url", &fabrikam.graph_url),
        ("login_url", &fabrikam.login_url),
        ("owners", &web.requester.email),
        ("credentials", "same_as"),
        ("same_as", "contoso"),
    ];
    let added = web.post(&web.admin, "/connectors/add", &form).await;
    assert_eq!(added.status().as_u16(), 303);
    assert_eq!(location(&added), "/connectors/fabrikam");
    let (_, page) = web.get(Some(&web.admin), "/connectors/fabrikam").await;
    assert!(page.contains("Awaiting consent") && page.contains(&web.requester.email), "{page}");
    // A duplicate name is refused on the form, which keeps what was typed.
    let again = web.post(&web.admin, "/connectors/add", &form).await;
    assert_eq!(again.status().as_u16(), 400);
    assert!(again.text().await.unwrap().contains("already exists"));

    let first = setup_links(&store, &web.requester.email).await;
    assert_eq!(first.len(), 1);
    let mailer = mailer(&store);
    let now = SystemClock.now();
    assert_eq!(mailer.once(now + chrono::Duration::days(2)).await.unwrap(), 0, "not yet");
    assert_eq!(mailer.once(now + chrono::Duration::days(3) + chrono::Duration::minutes(1)).await.unwrap(), 1);
    assert_eq!(mailer.once(now + chrono::Duration::days(4)).await.unwrap(), 0, "once");
    let links = setup_links(&store, &web.requester.email).await;
    assert_eq!(links.len(), 2);
    assert_eq!(web.get(Some(&web.requester), &first[0]).await.0, 404, "the reminder's link replaces the first");
    assert_eq!(web.get(Some(&web.requester), &links[1]).await.0, 200);
    // Past its seven days the link is refused, and says so.
    crate::harness::raw_sql(&db, "UPDATE connector_invitations SET expires_at = created_at").await;
    let (status, page) = web.get(Some(&web.requester), &links[1]).await;
    assert_eq!(status, 403);
    assert!(page.contains("expired"), "{page}");
    fabrikam.shutdown().await;
    web.stop().await;
});

db_test!(a_tenant_is_connected_with_a_certificate_instead_of_a_secret, true, |db| {
    const CERT: &str = include_str!("../../crates/entra-sim/keys/client-cert.pem");
    const KEY: &str = include_str!("../../crates/entra-sim/keys/client-key.pem");
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    // The certificate is uploaded to the registration, and the tenant has consented.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 40, groups: 5, apps: 2, assignments_per_app: 3, seed: 32 };
    let app = Web::client_app(&web.base).with_certificate(CERT).unwrap();
    let client_id = app.client_id.clone();
    let fabrikam = spawn_with(listener, generate(spec), app, SimOptions::default()).await.unwrap();
    let body = |key: &str| {
        serde_json::json!({
            "name": "fabrikam", "tenant": fabrikam.tenant_id(), "cloud": "custom", "graph_url": fabrikam.graph_url,
            "login_url": fabrikam.login_url, "credentials": "certificate", "client_id": client_id,
            "certificate": CERT, "private_key": key,
        })
    };
    // A key that is not the certificate's is refused before anything is stored.
    let wrong = post_json(&web, &web.admin, "/api/v1/connectors", &body(CERT)).await;
    assert_eq!(wrong.status().as_u16(), 400);
    assert!(wrong.text().await.unwrap().contains("certificate:"));
    assert!(store.connectors().find_connector_by_name("fabrikam").await.unwrap().is_none());
    // The pair: a token comes with a signed assertion, the checklist is green, the first sync runs.
    let added = post_json(&web, &web.admin, "/api/v1/connectors", &body(KEY)).await;
    assert_eq!(added.status().as_u16(), 201);
    let added: serde_json::Value = added.json().await.unwrap();
    assert_eq!(added["status"], "connected", "{added}");
    let thumbprint = added["certificate"]["thumbprint"].as_str().unwrap().to_owned();
    assert_eq!(thumbprint.len(), 40);
    assert!(added["certificate"]["pem"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let (_, page) = web.get(Some(&web.admin), "/connectors/fabrikam").await;
    assert!(page.contains(&thumbprint) && !page.contains("PRIVATE KEY"), "the certificate is shown, never its key");
    // Its app cannot be shared by name (the key is never opened as PEM again): refused, and
    // nothing is left half-made.
    let shared = serde_json::json!({"name": "fabrikam-2", "tenant": fabrikam.tenant_id(), "cloud": "custom",
        "graph_url": fabrikam.graph_url, "login_url": fabrikam.login_url, "credentials": "same_as", "same_as": "fabrikam"});
    let refused = post_json(&web, &web.admin, "/api/v1/connectors", &shared).await;
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.unwrap().contains("give the certificate and its key again"));
    assert!(store.connectors().find_connector_by_name("fabrikam-2").await.unwrap().is_none());
    let synced = eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            store.connectors().find_connector_by_name("fabrikam").await.unwrap().unwrap().last_full_sync_at.is_some()
        }
    });
    assert!(synced.await, "the first sync ran with certificate credentials");
    // The key is sealed: not in the database file in clear.
    if let Some(path) = db.url.sqlite_path() {
        let bytes = std::fs::read(path).unwrap();
        let marker = KEY.lines().nth(1).unwrap().as_bytes();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker), "the private key is stored encrypted");
    }
    // The same from the command line.
    let (cert_file, key_file) = (web.dir.join("cert.pem"), web.dir.join("key.pem"));
    std::fs::write(&cert_file, CERT).unwrap();
    std::fs::write(&key_file, KEY).unwrap();
    let config = web.dir.join("attest.toml").display().to_string();
    let tenant = fabrikam.tenant_id();
    let args = [
        "--config",
        &config,
        "--database-url",
        db.url.expose(),
        "connector",
        "add",
        "entra",
        "--name",
        "fabrikam-cli",
        "--tenant-id",
        &tenant,
        "--client-id",
        &client_id,
        "--certificate-file",
        cert_file.to_str().unwrap(),
        "--private-key-file",
        key_file.to_str().unwrap(),
        "--graph-url",
        &fabrikam.graph_url,
        "--login-url",
        &fabrikam.login_url,
    ];
    let added = crate::harness::attest(&args).await;
    assert!(added.success, "{:?}\n{}", added.error, added.stdout);
    assert!(
        added.stdout.contains("certificate's private key is stored encrypted")
            && added.stdout.contains("sync              ready"),
        "{}",
        added.stdout
    );
    fabrikam.shutdown().await;
    web.stop().await;
});

db_test!(a_certificate_attest_generates_is_uploaded_then_rotated_without_downtime, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 40, groups: 5, apps: 2, assignments_per_app: 3, seed: 33 };
    let app = Web::client_app(&web.base);
    let client_id = app.client_id.clone();
    let fabrikam = spawn_with(listener, generate(spec), app, SimOptions::default()).await.unwrap();
    let add = serde_json::json!({
        "name": "fabrikam", "tenant": fabrikam.tenant_id(), "cloud": "custom", "graph_url": fabrikam.graph_url,
        "login_url": fabrikam.login_url, "credentials": "generate", "client_id": client_id,
    });
    let added = post_json(&web, &web.admin, "/api/v1/connectors", &add).await;
    assert_eq!(added.status().as_u16(), 201);
    let added: serde_json::Value = added.json().await.unwrap();
    // Not uploaded yet: Entra refuses the assertion, and the reason says what to do.
    assert_eq!(added["status"], "needs_reauthorization", "{added}");
    assert!(added["status_reason"].as_str().unwrap().contains("AADSTS700027"), "{added}");
    let first = added["certificate"]["pem"].as_str().unwrap().to_owned();
    let first_thumbprint = added["certificate"]["thumbprint"].as_str().unwrap().to_owned();
    let (_, page) = web.get(Some(&web.admin), "/connectors/fabrikam").await;
    assert!(page.contains(&first_thumbprint) && !page.contains("PRIVATE KEY"), "the certificate, never its key");
    // The administrator uploads it; "Check again" connects.
    assert!(fabrikam.sim.upload_certificate(&first));
    let checked: serde_json::Value =
        post_json(&web, &web.admin, "/api/v1/connectors/fabrikam/check", &serde_json::json!({}))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(checked["status"], "connected", "{checked}");

    // Rotation, step 1: a new certificate is generated and kept aside.
    let rotate = "/api/v1/connectors/fabrikam/certificate";
    let nobody = post_json(&web, &web.requester, rotate, &serde_json::json!({})).await;
    assert!(matches!(nobody.status().as_u16(), 403 | 404), "{}", nobody.status());
    let pending: serde_json::Value =
        post_json(&web, &web.admin, rotate, &serde_json::json!({})).await.json().await.unwrap();
    let second = pending["pending_certificate"]["pem"].as_str().unwrap().to_owned();
    let second_thumbprint = pending["pending_certificate"]["thumbprint"].as_str().unwrap().to_owned();
    assert_ne!(second_thumbprint, first_thumbprint);
    assert_eq!(pending["certificate"]["thumbprint"], first_thumbprint.as_str(), "the old one is still in use");
    // Switching before the upload is refused, and nothing changes: the connector keeps working.
    let early = post_json(&web, &web.admin, &format!("{rotate}/switch"), &serde_json::json!({})).await;
    assert_eq!(early.status().as_u16(), 400);
    let text = early.text().await.unwrap();
    assert!(text.contains("not accepted yet") && text.contains("AADSTS700027"), "{text}");
    let still: serde_json::Value =
        serde_json::from_str(&web.get(Some(&web.admin), "/api/v1/connectors/fabrikam").await.1).unwrap();
    assert_eq!(
        (still["status"].as_str(), still["certificate"]["thumbprint"].as_str()),
        (Some("connected"), Some(first_thumbprint.as_str()))
    );
    // Step 2, after the upload: switched, checked, and audited (thumbprints, never keys).
    assert!(fabrikam.sim.upload_certificate(&second));
    let switched: serde_json::Value =
        post_json(&web, &web.admin, &format!("{rotate}/switch"), &serde_json::json!({})).await.json().await.unwrap();
    assert_eq!(switched["certificate"]["thumbprint"], second_thumbprint.as_str(), "{switched}");
    assert!(switched["pending_certificate"].is_null());
    assert_eq!(switched["status"], "connected");
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"connector.certificate_generated") && actions.contains(&"connector.credentials_replaced")
    );
    assert!(events.iter().all(|e| !e.details.contains("PRIVATE")));
    // A certificate generated and not wanted is discarded from the page.
    post_json(&web, &web.admin, rotate, &serde_json::json!({})).await;
    let page_form = web.post(&web.admin, "/connectors/fabrikam/certificate/discard", &[]).await;
    assert!(page_form.status().is_redirection(), "{}", page_form.status());
    let after: serde_json::Value =
        serde_json::from_str(&web.get(Some(&web.admin), "/api/v1/connectors/fabrikam").await.1).unwrap();
    assert!(after["pending_certificate"].is_null() && after["certificate"]["thumbprint"] == second_thumbprint.as_str());
    // The same from the command line: the certificate is printed to upload, the key kept.
    let config = web.dir.join("attest.toml").display().to_string();
    let tenant = fabrikam.tenant_id();
    let args = [
        "--config",
        &config,
        "--database-url",
        db.url.expose(),
        "connector",
        "add",
        "entra",
        "--name",
        "fabrikam-cli",
        "--tenant-id",
        &tenant,
        "--client-id",
        &client_id,
        "--generate-certificate",
        "--graph-url",
        &fabrikam.graph_url,
        "--login-url",
        &fabrikam.login_url,
    ];
    let added = crate::harness::attest(&args).await;
    assert!(!added.success, "not uploaded yet, so the check fails: {}", added.stdout);
    assert!(
        added.stdout.contains("generated a certificate (thumbprint")
            && added.stdout.contains("-----BEGIN CERTIFICATE-----")
            && !added.stdout.contains("PRIVATE KEY")
            && added.stdout.contains("AADSTS700027"),
        "{}",
        added.stdout
    );
    fabrikam.shutdown().await;
    web.stop().await;
});
