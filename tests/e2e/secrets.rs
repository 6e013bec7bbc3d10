//! No secret or token is ever logged or shown where it should not be: session cookies, CSRF
//! tokens, authorization codes, the connector's client secret, login links and temporary
//! passwords, through a whole working session at Attest's debug log level.

use attest_domain::ChangeId;
use attest_store::db_test;

use crate::harness::{attest, browser, captured_logs, sign_in_through_simulator};
use crate::web::{Web, change_id};

db_test!(no_secret_or_token_reaches_the_logs_or_the_pages, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let client_secret = web.sim.sim.client().client_secret.clone();

    // A sign-in whose authorization code and state we keep.
    let (_, callback, binding) = sign_in_through_simulator(&web.base, &web.requester.email).await;
    let query: Vec<(String, String)> = url::Url::parse(&callback).unwrap().query_pairs().into_owned().collect();
    let code = query.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let state = query.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    assert_eq!(browser().get(&callback).header("cookie", binding).send().await.unwrap().status().as_u16(), 303);

    // A login link, used.
    let link = attest(&["--database-url", db.url.expose(), "admin", "create-login-link"]).await;
    let link = link.stdout.lines().next().unwrap().to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    let used = browser().get(format!("{}/auth/link/{token}", web.base)).send().await.unwrap();
    assert_eq!(used.status().as_u16(), 303);

    // A password reset, approved and shown once.
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let actions = format!("/principals/{}/actions", target.id.0);
    let asked =
        web.post(&web.admin, &actions, &[("action", "reset_password"), ("nonce", "nonce-secret-0123456789")]).await;
    let id = change_id(&asked);
    let shown = web.post(&web.approver, &format!("/changes/{id}/approve"), &[]).await.text().await.unwrap();
    let password = shown.split("id=\"secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(password.len() >= 16);
    assert!(store.changes().get_change(ChangeId(id)).await.unwrap().result.is_some());

    let people = [&web.admin, &web.approver, &web.auditor, &web.owner, &web.requester];
    let mut secrets: Vec<(String, String)> = vec![
        ("client secret".into(), client_secret.clone()),
        ("authorization code".into(), code),
        ("sign-in state".into(), state),
        ("login link".into(), token),
        ("temporary password".into(), password.clone()),
    ];
    for p in people {
        secrets.push(("session cookie".into(), p.cookie.split_once('=').unwrap().1.to_owned()));
        secrets.push(("CSRF token".into(), p.csrf.clone()));
    }
    let logs = captured_logs();
    assert!(logs.contains("attest is serving"), "the logs were captured");
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "the {what} was logged");
    }

    // Pages and API answers never show the client secret, nor the password again.
    let principal = format!("/principals/{}", target.id.0);
    let change = format!("/changes/{id}");
    for path in
        ["/", "/syncs", "/changes", change.as_str(), principal.as_str(), "/api/v1/dashboard", "/api/v1/syncs", "/audit"]
    {
        let (status, body) = web.get(Some(&web.admin), path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains(&client_secret) && !body.contains(&password), "{path} shows a secret");
    }
    let export = browser()
        .get(format!("{}/audit/export.json", web.base))
        .header("cookie", &web.auditor.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, secret) in &secrets {
        assert!(!export.contains(secret.as_str()), "the audit log holds the {what}");
    }
    web.stop().await;
});
