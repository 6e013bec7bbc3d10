//! Security hardening, tried from the attacker's side: a sign-in link made in another browser
//! (login CSRF), a refused sign-in carrying someone's text, Attest framed by another page.

use attest_domain::{Clock as _, SystemClock};
use attest_store::db_test;

use crate::harness::{browser, sign_in_through_simulator};
use crate::web::Web;

db_test!(a_sign_in_finishes_only_in_the_browser_that_started_it, true, |db| {
    let web = Web::boot(&db).await;
    // The attacker signs in as themselves and keeps the callback link instead of following it.
    let (_, callback, attackers_binding) = sign_in_through_simulator(&web.base, &web.requester.email).await;
    // The victim's browser follows it: with no binding, or with its own from a sign-in it began.
    let victims_start = browser().get(format!("{}/auth/sign-in", web.base)).send().await.unwrap();
    let victims_binding = victims_start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("attest_sign_in="))
        .unwrap();
    for cookie in [None, Some(victims_binding.as_str())] {
        let mut request = browser().get(&callback);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let landed = request.send().await.unwrap();
        assert_eq!(landed.status().as_u16(), 403, "{cookie:?}");
        let set: Vec<&str> = landed.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert!(!set.iter().any(|c| c.starts_with("attest_session=")), "no session for the victim: {set:?}");
        let page = landed.text().await.unwrap();
        assert!(
            page.contains("Sign-in did not finish") && page.contains("href=\"/auth/sign-in\">Sign in again"),
            "{page}"
        );
    }
    // The browser that started it finishes it.
    let own = browser().get(&callback).header("cookie", &attackers_binding).send().await.unwrap();
    assert_eq!(own.status().as_u16(), 303);
    assert!(own.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("attest_session=")));
    web.stop().await;
});

db_test!(a_refused_sign_in_shows_attest_s_words_never_the_text_in_the_link, true, |db| {
    let web = Web::boot(&db).await;
    let cases = [
        (
            "access_denied",
            "Your+account+is+locked.+Call+%2B1-555-0100+or+visit+https%3A%2F%2Fevil.example",
            "cancelled",
        ),
        ("consent_required", "AADSTS65001%3A+see+https%3A%2F%2Fevil.example", "grant it consent"),
        (
            "invalid_request",
            "AADSTS65004%3A+User+declined+to+consent.+https%3A%2F%2Fevil.example",
            "consent was declined",
        ),
        ("%3Cscript%3Ex%3C%2Fscript%3E", "https%3A%2F%2Fevil.example", "Microsoft refused the sign-in"),
    ];
    for (error, description, words) in cases {
        let path = format!("/auth/callback?error={error}&error_description={description}");
        let (status, page) = web.get(None, &path).await;
        assert_eq!(status, 403, "{path}");
        assert!(page.contains(words), "{path}: {page}");
        assert!(!page.contains("evil.example") && !page.contains("555-0100") && !page.contains("<script>x"), "{page}");
        assert!(page.contains("href=\"/auth/sign-in\">Sign in again"), "a way to try again: {page}");
    }
    let (_, page) = web.get(None, "/auth/callback?error=invalid_request&error_description=AADSTS65004%3A+no").await;
    assert!(page.contains("(error invalid_request, AADSTS65004)"), "the codes, and only them: {page}");
    web.stop().await;
});

db_test!(every_response_forbids_framing_inline_script_and_sniffing, true, |db| {
    let web = Web::boot(&db).await;
    let people = web.get(Some(&web.admin), "/api/v1/people").await.1;
    let someone = serde_json::from_str::<serde_json::Value>(&people).unwrap()["people"][0]["id"].clone();
    for (who, path) in [
        (None, "/".to_owned()),
        (Some(&web.admin), format!("/principals/{someone}")),
        (Some(&web.admin), "/changes".to_owned()),
        (Some(&web.admin), "/api/v1/me".to_owned()),
        (None, "/no/such/page".to_owned()),
        (None, "/assets/attest.css".to_owned()),
        (None, "/auth/callback?error=access_denied".to_owned()),
    ] {
        let mut request = browser().get(format!("{}{path}", web.base));
        if let Some(who) = who {
            request = request.header("cookie", &who.cookie);
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let policy = header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'self'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{path}: {policy}");
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(header("referrer-policy").as_deref(), Some("same-origin"), "{path}");
        assert_eq!(header("strict-transport-security"), None, "{path}: not over http");
        let body = response.text().await.unwrap();
        if path != "/assets/attest.css" {
            // The one script is a file of Attest's own (allowed by 'self'); nothing inline.
            let body = body.replace(r#"<script src="/assets/attest.js" defer></script>"#, "");
            assert!(
                !body.contains("<style") && !body.contains(" style=") && !body.contains("<script"),
                "{path}: {body}"
            );
        }
    }
    let (status, css) = web.get(None, "/assets/attest.css").await;
    assert!(status == 200 && css.contains("aside.panel"), "the stylesheet is served: {css}");
    web.stop().await;
});

db_test!(another_site_cannot_make_a_browser_export_the_audit_log, true, |db| {
    let web = Web::boot(&db).await;
    let exports = async || {
        let (_, body) = web.get(Some(&web.auditor), "/api/v1/audit?action=audit.exported").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["events"].as_array().unwrap().len()
    };
    let before = exports().await;
    for path in ["/audit/export.csv", "/audit/export.json"] {
        for site in ["cross-site", "same-site"] {
            let response = browser()
                .get(format!("{}{path}", web.base))
                .header("cookie", &web.auditor.cookie)
                .header("sec-fetch-site", site)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 403, "{path} from {site}");
            assert!(response.text().await.unwrap().contains("own pages: open the audit log"));
        }
    }
    assert_eq!(exports().await, before, "a refused export records nothing");
    for site in ["same-origin", "none"] {
        let response = browser()
            .get(format!("{}/audit/export.csv", web.base))
            .header("cookie", &web.auditor.cookie)
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "from {site}");
    }
    assert_eq!(exports().await, before + 2);
    // Each names who exported by identity, not only by address.
    let (_, body) = web.get(Some(&web.auditor), "/api/v1/audit?action=audit.exported").await;
    let identity = format!("{}/{}", web.sim.tenant_id(), web.auditor.object_id);
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(events["events"].as_array().unwrap().iter().all(|e| e.to_string().contains(&identity)), "{body}");
    web.stop().await;
});

/// Changes `object_id`'s `mail` in Entra (what a User Administrator or a synced on-premises
/// attribute can do), and lets Attest sync it.
async fn set_mail_in_entra(web: &Web, db: &attest_store::testing::TestDb, object_id: &str, mail: &str) {
    web.sim.sim.write(|t| {
        t.update_user(object_id, |u| {
            u.mail = Some(mail.to_owned());
            vec!["mail"]
        })
        .unwrap()
    });
    let config = web.dir.join("attest.toml").display().to_string();
    let synced =
        crate::harness::attest(&["--config", &config, "--database-url", db.url.expose(), "sync", "contoso"]).await;
    assert!(synced.success, "{:?}\n{}", synced.error, synced.stdout);
}

db_test!(an_address_borrowed_in_entra_gives_neither_ownership_nor_a_second_approval, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    assert_eq!(connector.owner_ids, vec![web.owner.object_id.clone()], "the owner is who their address named");
    let upn = |object_id: &str| web.sim.sim.read(|t| t.live_user(object_id).unwrap().user_principal_name.clone());

    // (a) Someone without a role takes the integration owner's address and signs in again.
    set_mail_in_entra(&web, &db, &web.requester.object_id, &web.owner.email).await;
    let eve = crate::web::sign_in(&web.base, &web.requester.object_id, &upn(&web.requester.object_id)).await;
    assert!(eve.email.eq_ignore_ascii_case(&web.owner.email), "they now carry the owner's address: {eve:?}");
    assert_eq!(store.connectors().list_connectors().await.unwrap()[0].owner_ids, vec![web.owner.object_id.clone()]);
    let (_, me) = web.get(Some(&eve), "/api/v1/me").await;
    assert!(!me.contains("integration owner"), "{me}");
    assert_eq!(web.get(Some(&eve), "/people").await.0, 403);
    let target = web.admin.object_id.clone();
    let principal = store.principals().find_user(connector.id, &target).await.unwrap().unwrap();
    let path = format!("/principals/{}/actions", principal.id.0);
    let refused = web.post(&eve, &path, &[("action", "revoke_sessions"), ("nonce", "eve-nonce-0123456789")]).await;
    assert_eq!(refused.status().as_u16(), 403);
    // The real owner keeps their rights.
    assert_eq!(web.get(Some(&web.owner), "/people").await.0, 200);

    // (b) An administrator asks for a sensitive change, changes their own address, signs in
    // again and tries to approve it themselves.
    let someone = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let asked = web
        .post(
            &web.admin,
            &format!("/principals/{}/actions", someone.id.0),
            &[("action", "block"), ("nonce", "block-nonce-0123456789"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(asked.status().as_u16(), 303);
    let id = crate::web::change_id(&asked);
    set_mail_in_entra(&web, &db, &web.admin.object_id, "someone.else@contoso.example").await;
    let again = crate::web::sign_in(&web.base, &web.admin.object_id, &upn(&web.admin.object_id)).await;
    assert_eq!(again.email, "someone.else@contoso.example");
    let own = web.post(&again, &format!("/changes/{id}/approve"), &[]).await;
    assert_eq!(own.status().as_u16(), 409, "still the person who asked");
    assert!(own.text().await.unwrap().contains("a second person must approve it"));
    // Someone else may.
    let approved = web.post(&web.approver, &format!("/changes/{id}/approve"), &[]).await;
    assert_eq!(approved.status().as_u16(), 303);
    let change = store.changes().get_change(attest_domain::ChangeId(id)).await.unwrap();
    let tenant = web.sim.tenant_id();
    assert_eq!(change.requested_by_id, Some(format!("{tenant}/{}", web.admin.object_id)));
    assert_eq!(change.approved_by_id, Some(format!("{tenant}/{}", web.approver.object_id)));
    // The audit log carries the identities too.
    let (_, body) = web.get(Some(&web.auditor), &format!("/api/v1/audit?target_id={id}")).await;
    assert!(body.contains(&format!("{tenant}/{}", web.admin.object_id)), "{body}");
    assert!(body.contains(&format!("{tenant}/{}", web.approver.object_id)), "{body}");
    web.stop().await;
});

db_test!(someone_disabled_or_deleted_in_entra_is_signed_out_of_attest, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    assert_eq!(web.get(Some(&web.auditor), "/api/v1/me").await.0, 200);
    // Disabled in Entra: the next sync sees it, and the session is over.
    web.sim.sim.write(|t| {
        t.update_user(&web.auditor.object_id, |u| {
            u.account_enabled = false;
            vec!["accountEnabled"]
        })
        .unwrap()
    });
    let config = web.dir.join("attest.toml").display().to_string();
    let synced =
        crate::harness::attest(&["--config", &config, "--database-url", db.url.expose(), "sync", "contoso"]).await;
    assert!(synced.success, "{:?}", synced.error);
    assert_eq!(web.get(Some(&web.auditor), "/api/v1/me").await.0, 401);
    assert_eq!(web.get(Some(&web.auditor), "/audit").await.0, 401);
    // Blocked through Attest itself (written through before any sync): refused at once.
    let requester = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    assert_eq!(web.get(Some(&web.requester), "/api/v1/me").await.0, 200);
    store
        .principals()
        .set_principal_account_enabled(connector.id, &requester.data.external_id, false, SystemClock.now())
        .await
        .unwrap();
    assert_eq!(web.get(Some(&web.requester), "/api/v1/me").await.0, 401);
    // Everyone else is still signed in.
    assert_eq!(web.get(Some(&web.admin), "/api/v1/me").await.0, 200);
    web.stop().await;
});

db_test!(an_audit_log_rewritten_with_database_access_but_not_the_key_is_caught, true, |db| {
    let web = Web::boot(&db).await;
    let config = web.dir.join("attest.toml").display().to_string();
    let cli = async |args: &[&str]| {
        let mut full = vec!["--config", config.as_str(), "--database-url", db.url.expose()];
        full.extend_from_slice(args);
        crate::harness::attest(&full).await
    };
    // Something worth hiding: a sensitive change asked for by an administrator.
    let connector = db.store.connectors().list_connectors().await.unwrap().remove(0);
    let target = db.store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let path = format!("/principals/{}/actions", target.id.0);
    let asked = web
        .post(&web.admin, &path, &[("action", "block"), ("nonce", "audit-nonce-0123456789"), ("confirm", "yes")])
        .await;
    assert_eq!(asked.status().as_u16(), 303);
    let head = cli(&["audit", "head"]).await;
    assert!(head.success, "{:?}", head.error);
    let anchored = head.stdout.trim().to_owned();
    assert!(anchored.contains(":hmac-sha256:"), "the head is signed: {anchored}");
    assert!(cli(&["audit", "verify", "--head", &anchored]).await.success);

    // The attacker rewrites who asked, and recomputes every hash after it (and the head).
    let events = db.store.audit().list_audit_events(0, 10_000).await.unwrap();
    let at = events.iter().position(|e| e.action == "change.requested").unwrap();
    let mut forged = events[at..].to_vec();
    forged[0].actor = "nobody@contoso.com".into();
    let mut prev = forged[0].prev_hash.clone();
    for e in &mut forged {
        e.prev_hash.clone_from(&prev);
        e.hash = e.content_hash();
        prev.clone_from(&e.hash);
    }
    for e in &forged {
        let sql = format!(
            "UPDATE audit_events SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            e.actor, e.prev_hash, e.hash, e.seq
        );
        crate::harness::raw_sql(&db, &sql).await;
    }
    crate::harness::raw_sql(&db, &format!("UPDATE audit_head SET hash = '{prev}'")).await;
    let verified = cli(&["audit", "verify"]).await;
    assert!(!verified.success, "{}", verified.stdout);
    assert!(
        verified.stdout.contains(&format!("event {} carries a plain hash after keyed events", forged[0].seq)),
        "{}",
        verified.stdout
    );
    // And checked against the head kept elsewhere, the rewrite shows too.
    let against = cli(&["audit", "verify", "--head", &anchored]).await;
    assert!(!against.success);
    let (status, page) = web.get(Some(&web.auditor), "/audit").await;
    assert!(status == 200 && page.contains("BROKEN"), "the audit page says so too");
    assert!(!cli(&["audit", "verify", "--head", "nonsense"]).await.success);
    web.stop().await;
});
