//! Authorization from the side of those who should fail: every route in the server's route
//! table, called as every role (and as nobody), answers as the table says; every form refuses a
//! missing or wrong CSRF token.

use attest_domain::{ChangeAction, ChangeOrigin, NewChange, NewMail, PrincipalKind, ResourceKind};
use attest_domain::{Clock as _, SystemClock};
use attest_server::error::Surface;
use attest_server::roles::Access;
use attest_store::db_test;

use crate::web::{Person, Web};

/// A role in the matrix: its name, who plays it (nobody when signed out), and what it may reach.
type Caller<'a> = (&'a str, Option<&'a Person>, fn(Access) -> bool);

/// The example values the matrix fills path parameters with.
struct Examples {
    principal: i64,
    resource: i64,
    change: i64,
    mail: i64,
    campaign: i64,
}

impl Examples {
    fn path(&self, template: &str) -> String {
        let id = if template.contains("/principals/") {
            self.principal
        } else if template.contains("/resources/") {
            self.resource
        } else if template.contains("/admin/mail/") {
            self.mail
        } else if template.contains("/campaigns/") {
            self.campaign
        } else {
            self.change
        };
        template.replace("{id}", &id.to_string()).replace("{name}", "contoso").replace("{token}", "not-a-link")
    }
}

db_test!(every_route_answers_every_role_as_the_route_table_says, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let people = store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 1).await.unwrap();
    let (groups, _) = store.directory().search_resources(ResourceKind::Group, "", None, 1, 0).await.unwrap();
    assert_eq!(people[0].data.kind, PrincipalKind::User);
    // A change nobody may act on without the role: revoking someone's sessions, awaiting approval.
    let change = NewChange {
        connector_id: connector.id,
        action: ChangeAction::RevokeSessions { user: people[0].data.external_id.clone() },
        idempotency_key: "authz-matrix".into(),
        origin: ChangeOrigin::Manual,
        origin_ref: None,
        requested_by: "someone-else@contoso.com".into(),
        requested_by_id: None,
        reason: None,
    };
    let change = store.changes().enqueue_change(change, true, SystemClock.now()).await.unwrap().change;
    // A mail in the outbox, for the outbox's pages.
    let mail = NewMail {
        idempotency_key: "authz-matrix".into(),
        template: "change_awaiting_approval".into(),
        recipient: "someone-else@contoso.com".into(),
        subject: "A mail".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        keep: true,
    };
    let mail = store.outbox().enqueue_mail(&mail, SystemClock.now()).await.unwrap();
    // A running campaign the requester reviews in, owned by the integration owner (so the
    // matrix's integration owner runs it, and its auditor and requester do not).
    let campaign = web.campaign(&store, &groups[0].resource.data.external_id, &web.requester).await;
    let examples = Examples {
        principal: people[0].id.0,
        resource: groups[0].resource.id.0,
        change: change.id.0,
        mail: mail.id.0,
        campaign,
    };

    let mut table = attest_server::route_table();
    // Signing out ends the session the rest of the matrix uses: last.
    table.sort_by_key(|r| r.path == "/auth/sign-out");
    assert!(table.len() >= 30, "the table lists every route: {}", table.len());
    let roles: [Caller; 5] = [
        ("nobody", None, |a| a == Access::Public),
        ("requester", Some(&web.requester), |a| matches!(a, Access::Public | Access::SignedIn | Access::Reviewer)),
        ("auditor", Some(&web.auditor), |a| !matches!(a, Access::Operator | Access::Admin | Access::CampaignOwner)),
        ("integration owner", Some(&web.owner), |a| !matches!(a, Access::AuditReader | Access::Admin)),
        ("admin", Some(&web.admin), |_| true),
    ];
    let mut checked = 0;
    for (role, who, allowed) in roles {
        for route in &table {
            let path = examples.path(route.path);
            let (status, body) = match route.method {
                "GET" => web.get(who, &path).await,
                "PUT" | "PATCH" | "DELETE" => {
                    let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
                    let mut request = crate::harness::browser().request(method, format!("{}{path}", web.base));
                    if let Some(who) = who {
                        request = request.header("cookie", &who.cookie);
                    }
                    let response = request.send().await.unwrap();
                    (response.status().as_u16(), response.text().await.unwrap())
                }
                _ => {
                    let csrf = who.map(|p| p.csrf.as_str());
                    let response = web.post_with(who, &path, &[("action", "nothing"), ("nonce", "x")], csrf).await;
                    (response.status().as_u16(), response.text().await.unwrap())
                }
            };
            // A refusal is answered in the route's own surface: JSON for the API, a page otherwise.
            if [401, 403].contains(&status) {
                match route.surface {
                    Surface::Api => assert!(
                        serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|b| b["error"]["code"].is_string()),
                        "{role} {} {path}: {body}",
                        route.method
                    ),
                    Surface::Scim => assert!(
                        serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|b| b["status"] == "401"),
                        "{role} {} {path}: {body}",
                        route.method
                    ),
                    Surface::Page => assert!(body.contains("<html"), "{role} {} {path}: {body}", route.method),
                }
            }
            let expected_allowed = allowed(route.access);
            if route.access == Access::ScimClient {
                // Only a SCIM bearer token opens it: no session, whatever its roles.
                assert_eq!(status, 401, "{role} {} {path}: {body}", route.method);
            } else if route.access == Access::Public {
                // No guard: answered the same for everyone (a login link that does not exist is 403).
                assert_ne!(status, 401, "{role} {} {path}", route.method);
            } else if expected_allowed {
                assert!(![401, 403].contains(&status), "{role} may {} {path}, got {status}", route.method);
            } else if who.is_none() {
                assert_eq!(status, 401, "nobody {} {path}", route.method);
            } else {
                assert_eq!(status, 403, "{role} may not {} {path}", route.method);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * table.len());
    web.stop().await;
});

db_test!(every_form_refuses_a_missing_or_wrong_csrf_token, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let people = store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 1).await.unwrap();
    let before = store
        .changes()
        .list_changes(&attest_store::ChangeFilter { limit: 10_000, ..Default::default() })
        .await
        .unwrap()
        .len();
    // SCIM takes no session, so no CSRF token either: its bearer token is checked instead.
    for route in attest_server::route_table().iter().filter(|r| r.method == "POST" && r.surface != Surface::Scim) {
        let path = route.path.replace("{id}", &people[0].id.0.to_string()).replace("{name}", "contoso");
        let form = [("action", "revoke_sessions"), ("nonce", "0123456789abcdef0123")];
        for csrf in [None, Some("wrong"), Some(web.requester.csrf.as_str())] {
            let status = web.post_with(Some(&web.admin), &path, &form, csrf).await.status().as_u16();
            assert_eq!(status, 403, "POST {path} with CSRF {csrf:?}");
        }
    }
    // A hostile form: far too large, or not what the page sends. Refused with a reason.
    let actions = format!("/principals/{}/actions", people[0].id.0);
    let huge = "x".repeat(100 * 1024);
    let too_big = web.post(&web.admin, &actions, &[("action", "block"), ("nonce", &huge)]).await;
    assert_eq!(too_big.status().as_u16(), 400);
    let odd = web.post(&web.admin, &actions, &[("nonce", "0123456789abcdef0123")]).await;
    assert_eq!(odd.status().as_u16(), 400, "no action");
    // Nothing was queued and nobody was signed out by the refused posts.
    assert_eq!(
        store
            .changes()
            .list_changes(&attest_store::ChangeFilter { limit: 10_000, ..Default::default() })
            .await
            .unwrap()
            .len(),
        before
    );
    assert_eq!(web.get(Some(&web.admin), "/api/v1/me").await.0, 200);
    web.stop().await;
});
