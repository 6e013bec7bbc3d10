//! Just-in-time access from the command line, against the simulator: a policy set on a group's
//! membership, requests checked against it, approvals only by approvers (never one's own),
//! the membership given in Entra by the provisioner and removed on time by the sweep (at the
//! first sweep after a downtime, once), a denial, a timeout, relinquishing and extension, and
//! the mail each step owes.

use std::sync::Arc;

use attest_store::{MailFilter, db_test};
use chrono::Duration;

use crate::reviews::Tenant;

/// Makes the membership of a group the requester is not in requestable (up to a day,
/// approved by `approver`): the entitlement's id.
pub(crate) async fn requestable(web: &crate::web::Web, store: &attest_store::Store, approver: &str) -> i64 {
    let (group, _) = web.group_to_join(&web.requester);
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let name: attest_domain::access::EntitlementRef = format!("group:{group}:member").parse().unwrap();
    let (entitlement, resource) = attest_access::resolve(store, Some(connector.id), &name).await.unwrap();
    let policy = attest_domain::access::AccessPolicy {
        requestable: true,
        max_duration: Some(attest_domain::access::Span::days(1)),
        approvers: vec![attest_domain::access::Approver::Person(approver.to_owned())],
        ..Default::default()
    };
    let now = attest_domain::Clock::now(&attest_domain::SystemClock);
    attest_access::set_policy(store, &entitlement, &resource, &policy, "test", now).await.unwrap();
    entitlement.id.0
}

/// The requester asks for `entitlement` for 8 hours: the request's id.
pub(crate) async fn ask_for(web: &crate::web::Web, store: &attest_store::Store, entitlement: i64) -> i64 {
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let now = attest_domain::Clock::now(&attest_domain::SystemClock);
    let asker =
        attest_access::requester(store, connector.id, &web.requester.object_id, |p| p.name.clone()).await.unwrap();
    let ask = attest_access::Ask {
        entitlement: attest_domain::EntitlementId(entitlement),
        length: attest_domain::access::Length::For(attest_domain::access::Span::hours(8)),
        justification: "on call".into(),
        ticket: None,
        starts_at: None,
    };
    attest_access::request(store, &asker, &ask, now).await.unwrap().id
}

/// Makes `who` eligible for Helpdesk Administrator in Entra (PIM, and holding it in no other
/// way), and has the server sync until Attest sees it: the role's active assignment and the role.
pub(crate) async fn eligible_for_helpdesk(
    web: &crate::web::Web,
    store: &attest_store::Store,
    who: &crate::web::Person,
) -> (attest_domain::Entitlement, attest_domain::Resource) {
    let role_id = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    let now = web.sim.sim.now();
    web.sim
        .sim
        .write(|t| {
            t.role_assignments.retain(|a| !(a.principal_id == who.object_id && a.role_definition_id == role_id));
            t.role_eligibilities.retain(|e| !(e.principal_id == who.object_id && e.role_definition_id == role_id));
            t.add_role_eligibility(attest_entra_sim::RoleEligibility {
                id: format!("eligible-{}", who.object_id),
                role_definition_id: role_id.into(),
                principal_id: who.object_id.clone(),
                directory_scope_id: "/".into(),
                start: now - Duration::days(1),
                end: None,
            })
        })
        .unwrap();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let name: attest_domain::access::EntitlementRef = "role:Helpdesk Administrator:active".parse().unwrap();
    let (entitlement, resource) = attest_access::resolve(store, Some(connector.id), &name).await.unwrap();
    let holder = store.principals().find_user(connector.id, &who.object_id).await.unwrap().unwrap().id;
    let asked = web.post(&web.admin, "/connectors/contoso/sync", &[("mode", "full")]).await;
    assert!(asked.status().is_redirection(), "{}", asked.status());
    let seen = crate::web::eventually(std::time::Duration::from_secs(60), || {
        let store = store.clone();
        let ent = entitlement.id;
        async move {
            let now = attest_domain::Clock::now(&attest_domain::SystemClock);
            store.requests().holds_eligibility(ent, holder, now).await.unwrap()
        }
    });
    assert!(seen.await, "the sync found the eligibility");
    (entitlement, resource)
}

/// [`eligible_for_helpdesk`], the role's active assignment requestable up to a day, given at
/// once and activated by its holder, and `who` asks for 2 hours: the request's id, approved
/// and waiting for them to activate it.
pub(crate) async fn awaiting_activation(
    web: &crate::web::Web,
    store: &attest_store::Store,
    who: &crate::web::Person,
) -> i64 {
    let (entitlement, resource) = eligible_for_helpdesk(web, store, who).await;
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let policy = attest_domain::access::AccessPolicy {
        requestable: true,
        max_duration: Some(attest_domain::access::Span::days(1)),
        auto_approve: true,
        self_activate: true,
        ..Default::default()
    };
    let now = attest_domain::Clock::now(&attest_domain::SystemClock);
    attest_access::set_policy(store, &entitlement, &resource, &policy, "test", now).await.unwrap();
    let asker = attest_access::requester(store, connector.id, &who.object_id, |p| p.name.clone()).await.unwrap();
    let ask = attest_access::Ask {
        entitlement: entitlement.id,
        length: attest_domain::access::Length::For(attest_domain::access::Span::hours(2)),
        justification: "incident 4711".into(),
        ticket: None,
        starts_at: None,
    };
    let request = attest_access::request(store, &asker, &ask, now).await.unwrap();
    assert!(attest_access::awaits_activation(store, &request, now).await.unwrap(), "it waits for them");
    request.id
}

/// The access job and the provisioner of `attest serve`, run by hand on one test clock: a
/// removal queued "after downtime" is due at that time, and the provisioner must be there too
/// to apply it. The store signs audit events with the tenant's key, as the server's does.
pub(crate) struct Jobs {
    pub store: attest_store::Store,
    pub clock: attest_domain::TestClock,
    pub provisioner: attest_provisioner::Provisioner<attest_server::StoredConnectors>,
    pub job: attest_server::access_job::AccessSweeper,
}

impl Jobs {
    pub(crate) fn new(db: &attest_store::testing::TestDb, dir: &std::path::Path) -> Jobs {
        let key = Arc::new(attest_config::secrets::SecretKey::load(&dir.join("secret.key")).unwrap());
        let store = db.store.clone().with_audit_key(attest_domain::audit::ChainKey::new(&key.audit_chain_key()));
        let connectors = Arc::new(attest_server::StoredConnectors::new(store.clone(), key));
        let clock = attest_domain::TestClock::starting_now();
        let provisioner = attest_provisioner::Provisioner::new(store.clone(), connectors, Default::default(), "test")
            .with_clock(clock.shared());
        let outbox = attest_notify::Outbox::new(store.clone(), &attest_config::MailConfig::default()).unwrap();
        let job = attest_server::access_job::AccessSweeper::new(
            store.clone(),
            outbox,
            "https://attest.example.com",
            clock.shared(),
            "test",
        );
        Jobs { store, clock, provisioner, job }
    }
}

db_test!(requested_access_is_approved_given_in_entra_and_removed_on_time, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let (sim, dir) = (&tenant.sim, &tenant.dir);
    let run = |args: Vec<&str>| tenant.run(args);
    let (group, users) = sim.sim.write(|t| {
        let users: Vec<(String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member")
            .take(4)
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect();
        let group = t
            .groups
            .iter_mut()
            .find(|g| g.deleted.is_none() && g.accepts_membership_writes() && g.is_assignable_to_role != Some(true))
            .expect("a group Graph can change");
        group.owners = vec![users[0].0.clone()];
        group.members.retain(|m| !users[1..].iter().any(|(id, _)| id == m));
        (group.id.clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let (owner, asker, outsider) = (&users[0].1, &users[1].1, &users[2].1);
    let ent = format!("group:{group}:member");
    let members = || sim.sim.read(|t| t.group(&group).unwrap().members.clone());
    // `attest request create` as the requester for `ent`, with `more` arguments after these.
    let create = |duration: &str, justification: &str, more: &[&str]| {
        let mut args = vec![
            "request",
            "create",
            "--as",
            asker,
            "--entitlement",
            &ent,
            "--duration",
            duration,
            "--justification",
            justification,
        ];
        args.extend_from_slice(more);
        run(args)
    };

    // Not requestable until a policy says so.
    let closed = create("8h", "x", &[]).await;
    assert!(!closed.success && closed.error.as_deref().unwrap().contains("cannot be requested"), "{:?}", closed.error);
    let set = run(vec!["policy", "set", &ent, "--max-duration", "1d", "--approvers", "owners", "--json"]).await;
    assert!(set.success, "{:?}", set.error);
    let policy: serde_json::Value = serde_json::from_str(&set.stdout).unwrap();
    assert_eq!(
        (policy["requestable"].as_bool(), policy["max_duration"].as_str()),
        (Some(true), Some("1d")),
        "{policy}"
    );
    assert_eq!(policy["offered_presets"], serde_json::json!(["1h", "8h", "1d"]));

    // Checked against the policy: too long, no reason; a dry run says who approves.
    let long = create("2d", "x", &[]).await;
    assert!(!long.success && long.error.as_deref().unwrap().contains("at most 1 day"), "{:?}", long.error);
    let silent = run(vec!["request", "create", "--as", asker, "--entitlement", &ent, "--duration", "8h"]).await;
    assert!(!silent.success && silent.error.as_deref().unwrap().contains("justification"), "{:?}", silent.error);
    let dry = create("8h", "x", &["--dry-run", "--json"]).await;
    let plan: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(plan["stages"][0][0]["object_id"].as_str().unwrap().to_lowercase(), users[0].0.to_lowercase(), "{plan}");
    assert!(run(vec!["request", "list", "--json"]).await.stdout.trim() == "[]", "a dry run records nothing");

    let created = create("8h", "quarter close", &["--json"]).await;
    assert!(created.success, "{:?}", created.error);
    let request: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    assert_eq!(
        (request["id"].as_i64(), request["state"].as_str(), request["duration"].as_str()),
        (Some(1), Some("pending"), Some("8h"))
    );
    let twice = create("1h", "again", &[]).await;
    assert!(!twice.success && twice.error.as_deref().unwrap().contains("already asked"), "{:?}", twice.error);

    // The job of `attest serve`, run by hand at the times the test says: it mails the approvers.
    let Jobs { store, clock, provisioner, job } = Jobs::new(&db, dir);
    let now = clock.shared().now();
    let (_, mails) = job.once(now).await.unwrap();
    assert_eq!(mails, 1, "the owner is asked");
    assert_eq!(job.once(now).await.unwrap().1, 0, "once");

    // Nobody approves their own request, nor one they are not an approver of.
    let own = run(vec!["request", "approve", "1", "--as", asker]).await;
    assert!(!own.success && own.error.as_deref().unwrap().contains("own request"), "{:?}", own.error);
    let stranger = run(vec!["request", "approve", "1", "--as", outsider]).await;
    assert!(
        !stranger.success && stranger.error.as_deref().unwrap().contains("not an approver"),
        "{:?}",
        stranger.error
    );
    let waiting = run(vec!["request", "list", "--awaiting", owner, "--json"]).await;
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&waiting.stdout).unwrap().len(), 1);
    let approved = run(vec!["request", "approve", "1", "--as", owner, "--json"]).await;
    assert!(approved.success && approved.stdout.contains("\"approved\""), "{:?}\n{}", approved.error, approved.stdout);
    let again = run(vec!["request", "approve", "1", "--as", owner]).await;
    assert!(!again.success, "decided once");

    // The sweep queues the membership, the provisioner gives it, the sweep marks it active.
    let (swept, _) = job.once(now).await.unwrap();
    assert_eq!(swept.queued, 1, "{swept:?}");
    provisioner.run_until_idle().await.unwrap();
    assert!(members().contains(&users[1].0), "given in Entra");
    let (swept, _) = job.once(now).await.unwrap();
    assert_eq!(swept.activated, 1, "{swept:?}");
    let shown = run(vec!["request", "show", "1", "--json"]).await;
    let active: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(active["state"], "active");
    let expires: chrono::DateTime<chrono::Utc> = active["expires_at"].as_str().unwrap().parse().unwrap();
    let activated: chrono::DateTime<chrono::Utc> = active["activated_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - activated, Duration::hours(8));
    let grant_source = store
        .requests()
        .held_grant(
            attest_domain::EntitlementId(active["entitlement_id"].as_i64().unwrap()),
            attest_domain::PrincipalId(active["principal_id"].as_i64().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(grant_source.map(|held| held.expires_at), Some(Some(expires)), "the grant carries its end");
    // Holding it for a time, asking again is answered with an extension.
    let held = create("1h", "again", &[]).await;
    assert!(!held.success && held.error.as_deref().unwrap().contains("extend"), "{:?}", held.error);

    // Mail: the owner was asked, the requester told.
    let mail = store.outbox().list_mail(&MailFilter { limit: 100, ..Default::default() }).await.unwrap();
    let asked = mail.iter().find(|m| m.template == "access_approval_needed").expect("an approval mail");
    assert!(asked.subject.contains("request 1") && asked.text_body.contains("quarter close"), "{}", asked.text_body);
    let told = mail.iter().find(|m| m.template == "access_decided").expect("a decision mail");
    assert!(told.subject.starts_with("Request 1 approved") && told.text_body.contains("until"), "{}", told.subject);

    // Extension: asked before expiry, approved, takes over from the old end.
    let extend = run(vec!["request", "extend", "1", "--duration", "4h", "--as", asker, "--json"]).await;
    assert!(extend.success, "{:?}", extend.error);
    let extension: serde_json::Value = serde_json::from_str(&extend.stdout).unwrap();
    let extension_id = extension["id"].as_i64().unwrap().to_string();
    assert!(run(vec!["request", "approve", &extension_id, "--as", owner]).await.success);
    let (swept, _) = job.once(now).await.unwrap();
    assert_eq!(swept.extended, 1, "{swept:?}");
    let shown = run(vec!["request", "show", &extension_id, "--json"]).await;
    let extended: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let new_end: chrono::DateTime<chrono::Utc> = extended["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((extended["state"].as_str(), new_end), (Some("active"), expires + Duration::hours(4)), "{extended}");
    assert!(run(vec!["request", "show", "1"]).await.stdout.contains("extended by request 2"));

    // Downtime across the end: the first sweep after it queues the removal, once; the
    // provisioner removes it; the next sweep ends the request.
    let later = new_end + Duration::seconds(5);
    clock.set(later);
    // Two replicas on one database sweep at the same moment: one removal between them.
    // The replica signs its audit events with the same key, as `attest serve` would.
    let replica_key = attest_config::secrets::SecretKey::load(&dir.join("secret.key")).unwrap();
    let other = attest_store::Store::connect_url(&db.url, 5, std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .with_audit_key(attest_domain::audit::ChainKey::new(&replica_key.audit_chain_key()));
    let other_outbox = attest_notify::Outbox::new(other.clone(), &attest_config::MailConfig::default()).unwrap();
    let replica = attest_server::access_job::AccessSweeper::new(
        other,
        other_outbox,
        "https://attest.example.com",
        clock.shared(),
        "replica",
    );
    let (mine, theirs) = tokio::join!(job.once(later), replica.once(later));
    let swept = (mine.unwrap().0, theirs.unwrap().0);
    assert_eq!(swept.0.removing + swept.1.removing, 1, "{swept:?}");
    let (swept, _) = job.once(later).await.unwrap();
    assert_eq!(swept.removing, 0, "queued once");
    provisioner.run_until_idle().await.unwrap();
    assert!(!members().contains(&users[1].0), "removed in Entra");
    let (swept, _) = job.once(later).await.unwrap();
    assert_eq!(swept.ended, 1, "{swept:?}");
    let ended = run(vec!["request", "show", &extension_id, "--json"]).await;
    assert!(ended.stdout.contains("\"expired\""), "{}", ended.stdout);
    let changes =
        store.changes().list_changes(&attest_store::ChangeFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(changes.iter().filter(|c| c.origin == attest_domain::ChangeOrigin::Expiry).count(), 1, "removed once");

    // A denial needs a reason and ends the request; the requester is told who and why.
    let ask = |duration: &'static str| {
        let run = &run;
        let (asker, ent) = (asker.clone(), ent.clone());
        async move {
            let out = run(vec![
                "request",
                "create",
                "--as",
                &asker,
                "--entitlement",
                &ent,
                "--duration",
                duration,
                "--justification",
                "y",
                "--json",
            ])
            .await;
            assert!(out.success, "{:?}", out.error);
            serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["id"].as_i64().unwrap().to_string()
        }
    };
    let denied = ask("1h").await;
    let silent = run(vec!["request", "deny", &denied, "--as", owner, "--reason", " "]).await;
    assert!(!silent.success && silent.error.as_deref().unwrap().contains("reason"), "{:?}", silent.error);
    let out = run(vec!["request", "deny", &denied, "--as", owner, "--reason", "not in finance"]).await;
    assert!(out.success && out.stdout.contains("denied"), "{}", out.stdout);
    job.once(later).await.unwrap();
    let mail = store.outbox().list_mail(&MailFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert!(
        mail.iter()
            .any(|m| m.subject.starts_with(&format!("Request {denied} denied"))
                && m.text_body.contains("not in finance"))
    );

    // Unanswered for the approval timeout (7 days): denied, with that reason.
    let unanswered = ask("1h").await;
    clock.set(later + Duration::days(8));
    let (swept, _) = job.once(later + Duration::days(8)).await.unwrap();
    assert_eq!(swept.timed_out, 1, "{swept:?}");
    assert!(run(vec!["request", "show", &unanswered]).await.stdout.contains("nobody approved it within 1 week"));

    // Relinquish: the holder gives it up early; it is removed and ends revoked.
    let given_up = ask("8h").await;
    assert!(run(vec!["request", "approve", &given_up, "--as", owner]).await.success);
    job.once(later).await.unwrap();
    provisioner.run_until_idle().await.unwrap();
    job.once(later).await.unwrap();
    assert!(members().contains(&users[1].0));
    let stranger = run(vec!["request", "revoke", &given_up, "--as", outsider, "--reason", "mine now"]).await;
    assert!(!stranger.success, "an outsider cannot end someone's access");
    assert!(run(vec!["request", "revoke", &given_up, "--as", asker]).await.success);
    let (swept, _) = job.once(later).await.unwrap();
    assert_eq!(swept.removing, 1, "{swept:?}");
    provisioner.run_until_idle().await.unwrap();
    job.once(later).await.unwrap();
    assert!(!members().contains(&users[1].0));
    assert!(run(vec!["request", "show", &given_up, "--json"]).await.stdout.contains("\"revoked\""));

    // Expiry notices: a week before and a day before, each once.
    assert!(run(vec!["policy", "set", &ent, "--max-duration", "30d"]).await.success);
    let long = ask("10d").await;
    assert!(run(vec!["request", "approve", &long, "--as", owner]).await.success);
    let t = clock.shared().now();
    job.once(t).await.unwrap();
    provisioner.run_until_idle().await.unwrap();
    job.once(t).await.unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&run(vec!["request", "show", &long, "--json"]).await.stdout).unwrap();
    let end: chrono::DateTime<chrono::Utc> = shown["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(job.once(end - Duration::days(7) + Duration::minutes(1)).await.unwrap().1, 1, "a week before");
    assert_eq!(job.once(end - Duration::days(6)).await.unwrap().1, 0, "once");
    assert_eq!(job.once(end - Duration::hours(23)).await.unwrap().1, 1, "a day before");
    assert_eq!(job.once(end - Duration::hours(22)).await.unwrap().1, 0, "once");
    let mail = store.outbox().list_mail(&MailFilter { limit: 200, ..Default::default() }).await.unwrap();
    let notices: Vec<&str> =
        mail.iter().filter(|m| m.template == "access_expiring").map(|m| m.subject.as_str()).collect();
    assert!(notices.len() == 2 && notices.iter().any(|s| s.starts_with("Your access ends in 7 days")), "{notices:?}");

    // A default for every group: the shorter maximum wins over the entitlement's own.
    let default = run(vec!["policy", "default", "group", "--max-duration", "4h", "--json"]).await;
    assert!(default.success, "{:?}", default.error);
    let shown = run(vec!["policy", "show", &ent, "--json"]).await;
    let policy: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(policy["max_duration"], "4h", "{policy}");
    let long = create("8h", "x", &[]).await;
    assert!(!long.success && long.error.as_deref().unwrap().contains("at most 4 hours"), "{:?}", long.error);

    // Every step is in the audit log.
    let verified = run(vec!["audit", "verify"]).await;
    assert!(verified.success, "{:?}", verified.error);
});

db_test!(requests_through_the_pages_and_api_are_decided_only_by_their_approvers, true, |db| {
    use std::time::Duration as Wait;

    use crate::harness::location;
    use crate::web::{Web, eventually, sign_in};

    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let (group, group_name) = web.group_to_join(&web.requester);
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let name: attest_domain::access::EntitlementRef = format!("group:{group}:member").parse().unwrap();
    let (entitlement, resource) = attest_access::resolve(&store, Some(connector.id), &name).await.unwrap();
    let policy = attest_domain::access::AccessPolicy {
        requestable: true,
        max_duration: Some(attest_domain::access::Span::days(1)),
        approvers: vec![attest_domain::access::Approver::Person(web.owner.email.clone())],
        ..Default::default()
    };
    let now = attest_domain::Clock::now(&attest_domain::SystemClock);
    attest_access::set_policy(&store, &entitlement, &resource, &policy, "test", now).await.unwrap();
    // Someone with no role and no part in the request.
    let stranger = web.sim.sim.read(|t| {
        t.live_users()
            .filter(|u| u.user_type == "Member" && u.account_enabled && u.mail.is_some())
            .nth(6)
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .unwrap()
    });
    let stranger = sign_in(&web.base, &stranger.0, &stranger.1).await;

    // The catalog and the form.
    let (status, catalog) =
        web.get(Some(&web.requester), &format!("/catalog?q={}", group_name.replace(' ', "+"))).await;
    assert!(status == 200 && catalog.contains(&format!("/requests/new?entitlement={}", entitlement.id.0)), "{status}");
    let (status, form) =
        web.get(Some(&web.requester), &format!("/requests/new?entitlement={}", entitlement.id.0)).await;
    assert!(status == 200 && form.contains("value=\"8h\""), "{status}");
    let id_field = entitlement.id.0.to_string();
    let too_long = web
        .post(
            &web.requester,
            "/requests/ask",
            &[
                ("entitlement_id", &id_field),
                ("duration", "other"),
                ("other", "3d"),
                ("justification", "audit"),
                ("starts_at", "2031-01-02T03:04"),
            ],
        )
        .await;
    assert_eq!(too_long.status().as_u16(), 400);
    let page = too_long.text().await.unwrap();
    assert!(
        page.contains("at most 1 day")
            && page.contains(">audit</textarea>")
            && page.contains("value=\"2031-01-02T03:04\""),
        "the form keeps what was typed, the start too: {page}"
    );
    let asked = web
        .post(
            &web.requester,
            "/requests/ask",
            &[("entitlement_id", &id_field), ("duration", "8h"), ("justification", "quarter close")],
        )
        .await;
    assert_eq!(asked.status().as_u16(), 303);
    let path = location(&asked);
    let id: i64 = path.strip_prefix("/requests/").unwrap().parse().unwrap();

    // Who sees it, and who may decide it.
    assert_eq!(web.get(Some(&stranger), &path).await.0, 404, "someone it does not concern");
    assert_eq!(web.get(Some(&stranger), &format!("/api/v1/requests/{id}")).await.0, 404);
    assert_eq!(web.get(Some(&web.auditor), &path).await.0, 200, "an auditor reads it");
    let api = |who: &crate::web::Person, act: &str, body: serde_json::Value| {
        let request = crate::harness::browser()
            .post(format!("{}/api/v1/requests/{id}/{act}", web.base))
            .header("cookie", &who.cookie)
            .header("x-csrf-token", &who.csrf)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, own) = api(&web.requester, "approve", serde_json::json!({})).await;
    assert_eq!((status, own["error"]["code"].as_str()), (403, Some("forbidden")), "{own}");
    let (status, admin) = api(&web.admin, "approve", serde_json::json!({})).await;
    assert_eq!(status, 403, "an administrator who is not an approver: {admin}");
    let (status, _) = api(&stranger, "deny", serde_json::json!({"reason": "no"})).await;
    assert_eq!(status, 404);
    assert_eq!(web.post(&web.auditor, &format!("/requests/{id}/approve"), &[]).await.status().as_u16(), 403);
    let (status, blank) = api(&web.owner, "deny", serde_json::json!({})).await;
    assert_eq!((status, blank["error"]["code"].as_str()), (400, Some("bad_request")), "{blank}");

    // The approver finds it waiting, approves on the page; `attest serve` gives it in Entra.
    let (_, approvals) = web.get(Some(&web.owner), "/approvals").await;
    assert!(approvals.contains(&format!("/requests/{id}")), "the approvals inbox lists it");
    let (_, dashboard) = web.get(Some(&web.owner), "/api/v1/dashboard").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&dashboard).unwrap()["access_requests_awaiting"], 1);
    let approved = web.post(&web.owner, &format!("/requests/{id}/approve"), &[]).await;
    assert_eq!((approved.status().as_u16(), location(&approved)), (303, path.clone()));
    let member = |yes: bool| {
        let held = web.sim.sim.read(|t| t.group(&group).unwrap().members.contains(&web.requester.object_id));
        async move { held == yes }
    };
    assert!(eventually(Wait::from_secs(30), || member(true)).await, "given in Entra");
    let state = |want: &'static str| {
        let (base, cookie) = (web.base.clone(), web.requester.cookie.clone());
        async move {
            let response = crate::harness::browser()
                .get(format!("{base}/api/v1/requests/{id}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            response.json::<serde_json::Value>().await.unwrap()["state"] == want
        }
    };
    assert!(eventually(Wait::from_secs(30), || state("active")).await, "active");
    let (_, mine) = web.get(Some(&web.requester), "/requests").await;
    assert!(mine.contains("Give up") && mine.contains("left)"), "my time-bound access shows its time left");

    // The holder gives it up: removed in Entra, the request ends revoked.
    let (status, given_up) = api(&web.requester, "revoke", serde_json::json!({})).await;
    assert_eq!(status, 200, "{given_up}");
    assert!(eventually(Wait::from_secs(30), || member(false)).await, "removed in Entra");
    assert!(eventually(Wait::from_secs(30), || state("revoked")).await, "revoked");
    let (_, detail) = web.get(Some(&web.requester), &path).await;
    assert!(detail.contains("given in Entra") && detail.contains("ended early by"), "the timeline");
    web.stop().await;
});

db_test!(resource_owners_get_a_weekly_digest_of_the_time_bound_access_that_ends, true, |db| {
    let web = crate::web::Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    // A group with an owner who has a work email, and the requester's membership of it, given
    // for a time that ends in three days.
    let (groups, _) =
        store.directory().search_resources(attest_domain::ResourceKind::Group, "", None, 500, 0).await.unwrap();
    let mut found = None;
    for group in &groups {
        let owners = store.requests().owners_of(group.resource.id).await.unwrap();
        if let Some(owner) = owners.into_iter().find(|o| o.email.is_some()) {
            found = Some((group.resource.id, owner));
            break;
        }
    }
    let (resource, owner) = found.expect("a group with an owner");
    let member = store
        .resources()
        .list_entitlements(resource)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.data.key == attest_domain::EntitlementKey::Member)
        .unwrap();
    let requester = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    // Noon on the coming Monday: the digest's week is the same for a few days either side, and
    // nothing the server's own sweeper does now touches access ending after it.
    let today = attest_domain::Clock::now(&attest_domain::SystemClock);
    let days = 7 - i64::from(chrono::Datelike::weekday(&today).num_days_from_monday());
    let now = (today + Duration::days(days)).date_naive().and_hms_opt(12, 0, 0).unwrap().and_utc();
    let rows = [(member.id.0, requester.id.0, web.requester.object_id.clone())];
    store.requests().insert_active_for_benchmark(connector.id, &rows, &[now + Duration::days(3)], now).await.unwrap();

    let outbox = attest_notify::Outbox::new(store.clone(), &attest_config::MailConfig::default()).unwrap();
    let job = |clock_now| {
        let sweeper = attest_server::access_job::AccessSweeper::new(
            store.clone(),
            outbox.clone(),
            "http://attest.test",
            attest_domain::clock::system(),
            "test",
        );
        async move { sweeper.owner_digests(clock_now).await.unwrap() }
    };
    // One digest per owner of the group who has an address.
    let owners = store.requests().owners_of(resource).await.unwrap().into_iter().filter(|o| o.email.is_some()).count();
    assert_eq!(job(now).await, owners, "the owners' digests");
    let to = owner.email.clone().unwrap();
    let filter = MailFilter { recipient: Some(to.clone()), limit: 10, ..Default::default() };
    let digest =
        store.outbox().list_mail(&filter).await.unwrap().into_iter().find(|m| m.template == "access_digest").unwrap();
    let group = store.resources().get_resource(resource).await.unwrap().data.display_name;
    assert!(
        digest.text_body.contains(&format!("Member of {group} (group), ends on"))
            && digest.text_body.contains("/requests/"),
        "{}",
        digest.text_body
    );
    // Once a week: again this week, nothing; next week, another.
    assert_eq!(job(now + Duration::hours(2)).await, 0);
    assert_eq!(job(now + Duration::days(1)).await, 0);
    let next_week = now + Duration::days(7);
    assert_eq!(job(next_week).await, 0, "nothing ends in the week after: no empty digest");
    store
        .requests()
        .insert_active_for_benchmark(connector.id, &rows, &[next_week + Duration::days(2)], now)
        .await
        .unwrap();
    assert_eq!(job(next_week).await, owners);
    web.stop().await;
});

db_test!(time_bound_access_back_in_entra_is_shown_and_removed_again_when_authoritative, true, |db| {
    let web = crate::web::Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let (group_id, group_name) = web.group_to_join(&web.requester);
    let (found, _) =
        store.directory().search_resources(attest_domain::ResourceKind::Group, &group_name, None, 10, 0).await.unwrap();
    let resource = found.into_iter().find(|r| r.resource.data.external_id == group_id).unwrap().resource;
    let member = store
        .resources()
        .list_entitlements(resource.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.data.key == attest_domain::EntitlementKey::Member)
        .unwrap();
    let requester = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    // Time-bound membership that ended a minute ago: the server's sweeper ends the request.
    let now = attest_domain::Clock::now(&attest_domain::SystemClock);
    let rows = [(member.id.0, requester.id.0, web.requester.object_id.clone())];
    store
        .requests()
        .insert_active_for_benchmark(connector.id, &rows, &[now - Duration::minutes(1)], now - Duration::hours(1))
        .await
        .unwrap();
    let filter = attest_store::RequestFilter { requester: Some(web.requester.object_id.clone()), ..Default::default() };
    let ended = crate::web::eventually(std::time::Duration::from_secs(30), || {
        let (store, filter) = (store.clone(), filter.clone());
        async move { store.requests().list_requests(&filter).await.unwrap().first().is_some_and(|r| r.ended_at.is_some()) }
    });
    assert!(ended.await, "the request ended");
    let request = store.requests().list_requests(&filter).await.unwrap().remove(0);

    // Someone gives it again in Entra, outside Attest; the next sync finds it back.
    web.sim
        .sim
        .write(|t| t.add_group_link(&group_id, attest_entra_sim::journal::Relation::Members, &web.requester.object_id))
        .unwrap();
    assert_eq!(web.post(&web.admin, "/connectors/contoso/sync", &[("mode", "full")]).await.status().as_u16(), 303);
    let shown = crate::web::eventually(std::time::Duration::from_secs(60), || {
        let store = store.clone();
        async move { !store.requests().drifted(None, None, None, 10).await.unwrap().is_empty() }
    });
    assert!(shown.await, "the access back in Entra is noticed");
    let (status, api) = web.get(Some(&web.auditor), "/api/v1/requests/out-of-band").await;
    assert_eq!(status, 200);
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["out_of_band"][0]["request_id"], request.id, "{api}");
    assert_eq!(api["out_of_band"][0]["authoritative"], false);
    let (_, page) = web.get(Some(&web.admin), "/requests/out-of-band").await;
    assert!(page.contains(&format!("request {}", request.id)) && page.contains("shown only"), "{page}");
    let (_, page) = web.get(Some(&web.admin), &format!("/resources/{}", resource.id.0)).await;
    assert!(page.contains("Changed in Entra outside Attest"), "{page}");
    assert_eq!(web.get(Some(&web.requester), "/requests/out-of-band").await.0, 403);
    // Not authoritative: left alone.
    assert!(web.sim.sim.read(|t| t.group(&group_id).unwrap().members.contains(&web.requester.object_id)));

    // Under an authoritative policy, Attest removes it again, once, audited.
    let mut policy = request.policy();
    policy.authoritative = true;
    let policy = serde_json::to_string(&policy).unwrap();
    crate::harness::raw_sql(&db, &format!("UPDATE access_requests SET policy = '{policy}' WHERE id = {}", request.id))
        .await;
    let removed = crate::web::eventually(std::time::Duration::from_secs(60), || {
        let sim = web.sim.sim.clone();
        let (group_id, object_id) = (group_id.clone(), web.requester.object_id.clone());
        async move { sim.read(|t| !t.group(&group_id).unwrap().members.contains(&object_id)) }
    });
    assert!(removed.await, "removed again in Entra");
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "access.drift_reverted").count(), 1);
    web.stop().await;
});

db_test!(a_time_bound_role_made_permanent_in_entra_is_flagged_then_left_or_removed_by_its_policy, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let (sim, dir) = (&tenant.sim, &tenant.dir);
    let run = |args: Vec<&str>| tenant.run(args);
    let role = "Helpdesk Administrator";
    let role_id = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    // Two members who hold the role in no way.
    let users = members_without_role(sim, role_id, 2);
    assert!(run(vec!["sync", "--full"]).await.success);
    let ent = format!("role:{role}:active");
    let set = run(vec!["policy", "set", &ent, "--max-duration", "1d", "--auto-approve", "--json"]).await;
    assert!(set.success, "{:?}", set.error);
    let assignment_end = |who: &str| {
        sim.sim.read(|t| {
            t.role_assignments.iter().find(|a| a.principal_id == who && a.role_definition_id == role_id).map(|a| a.end)
        })
    };

    // `attest serve`'s access job and provisioner, on a test clock.
    let Jobs { store, clock, provisioner, job } = Jobs::new(&db, dir);
    // Each asks for 8 hours, approved at once; the sweep and the provisioner give it in Entra,
    // as a PIM schedule that ends by itself.
    let give = |upn: String| {
        let (run, job, provisioner, clock) = (&run, &job, &provisioner, &clock);
        let ent = ent.clone();
        async move {
            let args = vec!["request", "create", "--as", &upn, "--entitlement", &ent, "--duration", "8h"];
            let mut args: Vec<&str> = args;
            args.extend(["--justification", "incident", "--json"]);
            let created = run(args).await;
            assert!(created.success, "{:?}", created.error);
            let request: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
            let now = clock.shared().now();
            job.once(now).await.unwrap();
            provisioner.run_until_idle().await.unwrap();
            job.once(now).await.unwrap();
            let id = request["id"].as_i64().unwrap();
            let shown = run(vec!["request", "show", &id.to_string(), "--json"]).await;
            let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
            assert_eq!(shown["state"], "active", "{shown}");
            id
        }
    };
    let kept = give(users[0].1.clone()).await;
    let removed = give(users[1].1.clone()).await;
    assert!(assignment_end(&users[0].0).flatten().is_some(), "Entra holds it with an end");
    // As given, nothing is out of band.
    assert!(run(vec!["sync", "--full"]).await.success);
    assert!(store.requests().drifted(None, None, None, 10).await.unwrap().is_empty());

    // Someone in Entra makes both permanent; the next sync flags them, while they run.
    sim.sim.write(|t| {
        for a in t.role_assignments.iter_mut().filter(|a| a.role_definition_id == role_id) {
            if users.iter().any(|(id, _)| *id == a.principal_id) {
                a.end = None;
            }
        }
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let drifted = store.requests().drifted(None, None, None, 10).await.unwrap();
    assert_eq!(drifted.len(), 2, "{drifted:?}");
    assert!(drifted.iter().all(|d| d.kind == "extended"), "{drifted:?}");
    assert!(drifted.iter().any(|d| d.request_id == kept));

    // One request's policy is authoritative (as though asked under it).
    let mut policy: attest_domain::access::AccessPolicy =
        serde_json::from_str(&store.requests().get_request(removed).await.unwrap().policy).unwrap();
    policy.authoritative = true;
    let policy = serde_json::to_string(&policy).unwrap();
    crate::harness::raw_sql(&db, &format!("UPDATE access_requests SET policy = '{policy}' WHERE id = {removed}")).await;

    // Their end: the ordinary one is left to whoever made it permanent, and says so; the
    // authoritative one is removed in Entra.
    let later = clock.shared().now() + Duration::hours(8) + Duration::seconds(5);
    clock.set(later);
    job.once(later).await.unwrap();
    provisioner.run_until_idle().await.unwrap();
    job.once(later).await.unwrap();
    let shown = run(vec!["request", "show", &kept.to_string(), "--json"]).await;
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "expired", "{shown}");
    assert!(shown["end_reason"].as_str().unwrap().contains("left in place"), "{shown}");
    assert_eq!(assignment_end(&users[0].0), Some(None), "still in Entra, permanent");
    let shown = run(vec!["request", "show", &removed.to_string(), "--json"]).await;
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "expired", "{shown}");
    assert_eq!(assignment_end(&users[1].0), None, "removed in Entra");
    // Left in place, it is ordinary access now: a direct grant with no end, as Entra holds it,
    // and no longer out of band.
    assert!(run(vec!["sync", "--full"]).await.success);
    assert!(store.requests().drifted(None, None, None, 10).await.unwrap().is_empty());
    let person = store.principals().find_user(connector_of(&store).await, &users[0].0).await.unwrap().unwrap();
    let role_resource = store.resources().resource_ids_by_external_id(connector_of(&store).await).await.unwrap()
        [&(attest_domain::ResourceKind::DirectoryRole, role_id.to_owned())];
    let active = store
        .resources()
        .list_entitlements(role_resource)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.data.key == attest_domain::EntitlementKey::Active)
        .unwrap();
    let held = store.requests().held_grant(active.id, person.id).await.unwrap().unwrap();
    assert_eq!(held.expires_at, None, "no past end left on it");
});

/// `n` enabled members who hold directory role `role_id` in no way (neither active nor
/// eligible): their object ids and UPNs.
fn members_without_role(sim: &attest_entra_sim::SimHandle, role_id: &str, n: usize) -> Vec<(String, String)> {
    sim.sim.read(|t| {
        let holds = |id: &str| {
            t.role_assignments.iter().any(|a| a.principal_id == id && a.role_definition_id == role_id)
                || t.role_eligibilities.iter().any(|e| e.principal_id == id && e.role_definition_id == role_id)
        };
        t.live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member" && !holds(&u.id))
            .take(n)
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect()
    })
}

async fn connector_of(store: &attest_store::Store) -> attest_domain::ConnectorId {
    store.connectors().list_connectors().await.unwrap().remove(0).id
}

db_test!(an_eligible_requester_activates_the_role_in_entra_themselves_with_mfa, true, |db| {
    use std::time::Duration as Wait;

    use crate::harness::{browser, location};
    use crate::web::{Web, eventually};
    use attest_domain::Clock;

    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let role_id = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    let upn = web.sim.sim.read(|t| t.live_user(&web.requester.object_id).unwrap().user_principal_name.clone());
    // The requester is eligible for Helpdesk Administrator in Entra (PIM), and the sync sees it.
    let (entitlement, resource) = eligible_for_helpdesk(&web, &store, &web.requester).await;
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let holder = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap().id;
    // Only a role's active assignment can be activated by its holder.
    let policy = attest_domain::access::AccessPolicy {
        requestable: true,
        max_duration: Some(attest_domain::access::Span::days(1)),
        approvers: vec![attest_domain::access::Approver::Person(web.approver.email.clone())],
        self_activate: true,
        ..Default::default()
    };
    let clock_now = attest_domain::SystemClock.now();
    attest_access::set_policy(&store, &entitlement, &resource, &policy, "test", clock_now).await.unwrap();
    let member: attest_domain::access::EntitlementRef = {
        let (group, _) = web.group_to_join(&web.requester);
        format!("group:{group}:member").parse().unwrap()
    };
    let (group_ent, group_res) = attest_access::resolve(&store, Some(connector.id), &member).await.unwrap();
    let refused = attest_access::set_policy(&store, &group_ent, &group_res, &policy, "test", clock_now).await;
    assert!(refused.unwrap_err().to_string().contains("self_activate"), "a group membership is not activated");

    // Asked and approved, it waits for its requester: nothing is queued.
    let id_field = entitlement.id.0.to_string();
    let ask_approved = |duration: &'static str| {
        let (web, id_field) = (&web, &id_field);
        async move {
            let form =
                [("entitlement_id", id_field.as_str()), ("duration", duration), ("justification", "incident 4711")];
            let asked = web.post(&web.requester, "/requests/ask", &form).await;
            assert_eq!(asked.status().as_u16(), 303);
            let id: i64 = location(&asked).strip_prefix("/requests/").unwrap().parse().unwrap();
            let approved = web.post(&web.approver, &format!("/requests/{id}/approve"), &[]).await;
            assert_eq!(approved.status().as_u16(), 303);
            id
        }
    };
    // The requester starts an activation; to Microsoft, signing in there as `login`, and back
    // with the `session` cookie: the callback's address, the cookies it was called with, and
    // its answer.
    let activate = |id: i64, login: String, session: String| {
        let web = &web;
        async move {
            let started = web.post(&web.requester, &format!("/requests/{id}/activate"), &[]).await;
            assert_eq!(started.status().as_u16(), 303);
            let cookies = crate::harness::set_cookies(&started);
            assert!(cookies.iter().any(|c| c == &format!("attest_activate={id}")), "{cookies:?}");
            let authorize = location(&started);
            assert!(authorize.contains("prompt=login") && authorize.contains("amr_values=mfa"), "{authorize}");
            assert!(authorize.contains("RoleAssignmentSchedule.ReadWrite.Directory"), "{authorize}");
            let callback = crate::harness::at_simulator(&authorize, &login).await;
            let cookie = format!("{session}; {}", cookies.join("; "));
            let back = browser().get(&callback).header("cookie", &cookie).send().await.unwrap();
            (callback, cookie, back)
        }
    };
    // Longer than Entra's role settings allow (8 hours): Entra refuses and says why; the
    // request still waits, and its holder gives it up to ask again.
    let too_long = ask_approved("10h").await;
    let (callback, cookie, refused) = activate(too_long, upn.clone(), web.requester.cookie.clone()).await;
    assert_eq!(refused.status().as_u16(), 400);
    let said = refused.text().await.unwrap();
    assert!(said.contains("Entra did not activate the role") && said.contains("ExpirationRule"), "{said}");
    let state = store.requests().get_request(too_long).await.unwrap().state;
    assert_eq!(state, attest_domain::access::RequestState::Approved);
    // That attempt is used: played again, it is refused, and the request still waits.
    let again = browser().get(&callback).header("cookie", &cookie).send().await.unwrap();
    assert!(again.status().is_client_error(), "{}", again.status());
    let state = store.requests().get_request(too_long).await.unwrap().state;
    assert_eq!(state, attest_domain::access::RequestState::Approved);
    let given_up = web.post(&web.requester, &format!("/requests/{too_long}/revoke"), &[]).await;
    assert_eq!(given_up.status().as_u16(), 303);
    let id = ask_approved("2h").await;
    let swept = attest_access::sweep(&store, attest_domain::SystemClock.now()).await.unwrap();
    assert_eq!(swept.queued, 0, "{swept:?}");
    let request = store.requests().get_request(id).await.unwrap();
    assert_eq!((request.state, request.grant_change_id), (attest_domain::access::RequestState::Approved, None));
    let (_, page) = web.get(Some(&web.requester), &format!("/requests/{id}")).await;
    assert!(page.contains("Activate in Entra") && page.contains("multi-factor"), "{page}");
    let (_, page) = web.get(Some(&web.approver), &format!("/requests/{id}")).await;
    assert!(page.contains("waiting for") && !page.contains("Activate in Entra</button>"), "{page}");
    let (_, api) = web.get(Some(&web.requester), &format!("/api/v1/requests/{id}")).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!((api["awaits_activation"].as_bool(), api["can"]["activate"].as_bool()), (Some(true), Some(true)));
    // Nobody else activates it.
    let other = web.post(&web.approver, &format!("/requests/{id}/activate"), &[]).await;
    assert_eq!(other.status().as_u16(), 403);

    // Signing in at Microsoft as someone else, or coming back in someone else's session,
    // activates nothing.
    let approver_upn = web.sim.sim.read(|t| t.live_user(&web.approver.object_id).unwrap().user_principal_name.clone());
    let (_, _, wrong_account) = activate(id, approver_upn, web.requester.cookie.clone()).await;
    assert_eq!(wrong_account.status().as_u16(), 403);
    let (_, _, wrong_session) = activate(id, upn.clone(), web.approver.cookie.clone()).await;
    assert_eq!(wrong_session.status().as_u16(), 403);
    let request = store.requests().get_request(id).await.unwrap();
    assert_eq!(request.state, attest_domain::access::RequestState::Approved);
    let holds_role = |who: &str| {
        web.sim
            .sim
            .read(|t| t.role_assignments.iter().any(|a| a.principal_id == who && a.role_definition_id == role_id))
    };
    assert!(!holds_role(&web.requester.object_id) && !holds_role(&web.approver.object_id), "nothing was activated");
    // An ordinary sign-in with an activation's cookie left over is an ordinary sign-in.
    let (_, signed_in, binding) = crate::harness::sign_in_through_simulator(&web.base, &upn).await;
    let landed =
        browser().get(&signed_in).header("cookie", format!("{binding}; attest_activate={id}")).send().await.unwrap();
    assert_eq!(landed.status().as_u16(), 303);
    assert!(landed.headers()["set-cookie"].to_str().unwrap().starts_with("attest_session="), "signed in");

    // The requester activates it.
    let (callback, cookie, back) = activate(id, upn.clone(), web.requester.cookie.clone()).await;
    assert_eq!(back.status().as_u16(), 303, "{}", back.text().await.unwrap());
    assert_eq!(location(&back), format!("/requests/{id}"));

    // Active, in Entra as the requester's own activation, ending at the end asked.
    let request = store.requests().get_request(id).await.unwrap();
    assert_eq!(request.state, attest_domain::access::RequestState::Active);
    let until = request.expires_at.unwrap();
    let held = web.sim.sim.read(|t| {
        t.role_assignments
            .iter()
            .find(|a| a.principal_id == web.requester.object_id && a.role_definition_id == role_id)
            .map(|a| a.end)
    });
    let end = held.flatten().expect("Entra holds it with an end");
    assert!((end - until).num_seconds().abs() <= 60, "{end} vs {until}");
    let activation = web.sim.sim.read(|t| t.role_assignment_schedule_requests().last().cloned().unwrap());
    assert_eq!(activation["action"], "selfActivate");
    assert_eq!(activation["createdBy"]["user"]["id"], web.requester.object_id.as_str());
    assert!(activation["justification"].as_str().unwrap().contains("incident 4711"), "{activation:?}");
    let granted = store.requests().held_grant(entitlement.id, holder).await.unwrap().expect("in the graph at once");
    assert_eq!(granted.expires_at, Some(until));
    let (_, page) = web.get(Some(&web.requester), &format!("/requests/{id}")).await;
    assert!(page.contains("activated in Entra by") && !page.contains("Ask to extend"), "{page}");
    let events = store.audit().list_audit_events(0, 100_000).await.unwrap();
    assert!(events.iter().any(|e| e.action == "access.activated"), "audited");
    // The callback cannot be played again.
    let again = browser().get(&callback).header("cookie", &cookie).send().await.unwrap();
    assert!(again.status().is_client_error(), "{}", again.status());

    // Entra ends it by itself at its end (the simulator's conformance test follows its clock);
    // given up early, Attest's access job removes it in Entra through the queue, as any other.
    let given_up = web.post(&web.requester, &format!("/requests/{id}/revoke"), &[]).await;
    assert_eq!(given_up.status().as_u16(), 303);
    let (store2, requester) = (store.clone(), web.requester.object_id.clone());
    let removed = eventually(Wait::from_secs(60), || {
        let (store, gone) = (store2.clone(), !holds_role(&requester));
        async move {
            gone && store.requests().get_request(id).await.unwrap().state
                == attest_domain::access::RequestState::Revoked
        }
    });
    assert!(removed.await, "removed in Entra, the request revoked");
    web.stop().await;
});

db_test!(self_activation_waits_only_for_the_eligible_and_not_past_the_approval_timeout, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let (sim, dir) = (&tenant.sim, &tenant.dir);
    let run = |args: Vec<&str>| tenant.run(args);
    let role_id = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    // Two members without the role: the first is eligible for it in Entra, the second not.
    let users = members_without_role(sim, role_id, 2);
    let now = sim.sim.now();
    sim.sim
        .write(|t| {
            t.add_role_eligibility(attest_entra_sim::RoleEligibility {
                id: "eligible-first".into(),
                role_definition_id: role_id.into(),
                principal_id: users[0].0.clone(),
                directory_scope_id: "/".into(),
                start: now - Duration::days(1),
                end: None,
            })
        })
        .unwrap();
    assert!(run(vec!["sync", "--full"]).await.success);
    let ent = "role:Helpdesk Administrator:active";
    let set =
        run(vec!["policy", "set", ent, "--max-duration", "8h", "--auto-approve", "--self-activate", "--json"]).await;
    assert!(set.success, "{:?}", set.error);
    let shown = run(vec!["policy", "show", ent, "--json"]).await;
    assert!(shown.stdout.contains("\"self_activate\": true"), "{}", shown.stdout);
    let refused = run(vec!["policy", "set", "role:Helpdesk Administrator:eligible", "--self-activate"]).await;
    assert!(!refused.success && refused.error.unwrap().contains("self_activate"));

    let Jobs { store, clock, provisioner, job } = Jobs::new(&db, dir);
    let ask = |upn: String| {
        let run = &run;
        async move {
            let args = vec!["request", "create", "--as", &upn, "--entitlement", ent, "--duration", "4h"];
            let mut args: Vec<&str> = args;
            args.extend(["--justification", "incident", "--json"]);
            let created = run(args).await;
            assert!(created.success, "{:?}", created.error);
            serde_json::from_str::<serde_json::Value>(&created.stdout).unwrap()["id"].as_i64().unwrap()
        }
    };
    let eligible = ask(users[0].1.clone()).await;
    let not_eligible = ask(users[1].1.clone()).await;
    let start = clock.shared().now();
    job.once(start).await.unwrap();
    provisioner.run_until_idle().await.unwrap();
    job.once(start).await.unwrap();
    // Someone not eligible is given it by Attest, as under any policy.
    let given = store.requests().get_request(not_eligible).await.unwrap();
    assert_eq!(given.state, attest_domain::access::RequestState::Active);
    assert!(given.grant_change_id.is_some());
    // The eligible one waits for them, nothing queued, until the approval timeout (7 days).
    let waiting = store.requests().get_request(eligible).await.unwrap();
    assert_eq!((waiting.state, waiting.grant_change_id), (attest_domain::access::RequestState::Approved, None));
    // They are told to activate it, and by when.
    let to = waiting.requester_email.clone().expect("the requester has an address");
    let mail = store.outbox().list_mail(&MailFilter { limit: 100, ..Default::default() }).await.unwrap();
    let told = mail
        .iter()
        .find(|m| m.recipient == to && m.subject.starts_with(&format!("Request {eligible} approved, to activate")))
        .unwrap_or_else(|| panic!("{mail:?}"));
    assert!(told.text_body.contains("Activate in Entra") && told.text_body.contains(" by "), "{}", told.text_body);
    let later = start + Duration::days(6);
    clock.set(later);
    job.once(later).await.unwrap();
    assert_eq!(
        store.requests().get_request(eligible).await.unwrap().state,
        attest_domain::access::RequestState::Approved
    );
    let past = start + Duration::days(7) + Duration::minutes(1);
    clock.set(past);
    job.once(past).await.unwrap();
    let ended = store.requests().get_request(eligible).await.unwrap();
    assert_eq!(ended.state, attest_domain::access::RequestState::Failed);
    assert!(ended.end_reason.unwrap().contains("not activated in Entra"), "says why");
    assert!(
        sim.sim.read(|t| !t
            .role_assignments
            .iter()
            .any(|a| a.principal_id == users[0].0 && a.role_definition_id == role_id)),
        "nothing was given to the eligible one by Attest"
    );

    // An activation that never came back (Attest stopped while Entra was asked) counts as
    // given after ten minutes, and is removed at its end like any other.
    // (Asked through the library on the test clock, which never goes back.)
    let now = past + Duration::minutes(1);
    clock.set(now);
    let asker =
        attest_access::requester(&store, connector_of(&store).await, &users[0].0, |p| p.name.clone()).await.unwrap();
    let ask_again = attest_access::Ask {
        entitlement: attest_domain::EntitlementId(ended.entitlement_id),
        length: attest_domain::access::Length::For(attest_domain::access::Span::hours(4)),
        justification: "incident".into(),
        ticket: None,
        starts_at: None,
    };
    let again = attest_access::request(&store, &asker, &ask_again, now).await.unwrap().id;
    job.once(now).await.unwrap();
    let waiting = store.requests().get_request(again).await.unwrap();
    let claimed = attest_access::begin_activation(&store, &waiting, now).await.unwrap().expect("claimed");
    assert_eq!(claimed.state, attest_domain::access::RequestState::Provisioning);
    let soon = now + Duration::minutes(5);
    clock.set(soon);
    job.once(soon).await.unwrap();
    assert_eq!(
        store.requests().get_request(again).await.unwrap().state,
        attest_domain::access::RequestState::Provisioning
    );
    let unknown = now + Duration::minutes(11);
    clock.set(unknown);
    job.once(unknown).await.unwrap();
    let given = store.requests().get_request(again).await.unwrap();
    assert_eq!(given.state, attest_domain::access::RequestState::Active);
    assert_eq!(given.expires_at, Some(claimed.updated_at + Duration::hours(4)));
    let end = given.expires_at.unwrap() + Duration::seconds(5);
    clock.set(end);
    job.once(end).await.unwrap();
    provisioner.run_until_idle().await.unwrap();
    job.once(end).await.unwrap();
    assert_eq!(store.requests().get_request(again).await.unwrap().state, attest_domain::access::RequestState::Expired);
});
