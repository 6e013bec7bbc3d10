//! Just-in-time access from the command line, against the simulator: a policy set on a group's
//! membership, requests checked against it, approvals only by approvers (never one's own),
//! the membership given in Entra by the provisioner and removed on time by the sweep (at the
//! first sweep after a downtime, once), a denial, a timeout, relinquishing and extension, and
//! the mail each step owes.

use std::sync::Arc;

use attest_store::{MailFilter, db_test};
use chrono::Duration;

use crate::reviews::Tenant;

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

    // Not requestable until a policy says so.
    let closed = run(vec![
        "request",
        "create",
        "--as",
        asker,
        "--entitlement",
        &ent,
        "--duration",
        "8h",
        "--justification",
        "x",
    ])
    .await;
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
    let long = run(vec![
        "request",
        "create",
        "--as",
        asker,
        "--entitlement",
        &ent,
        "--duration",
        "2d",
        "--justification",
        "x",
    ])
    .await;
    assert!(!long.success && long.error.as_deref().unwrap().contains("at most 1 day"), "{:?}", long.error);
    let silent = run(vec!["request", "create", "--as", asker, "--entitlement", &ent, "--duration", "8h"]).await;
    assert!(!silent.success && silent.error.as_deref().unwrap().contains("justification"), "{:?}", silent.error);
    let dry = run(vec![
        "request",
        "create",
        "--as",
        asker,
        "--entitlement",
        &ent,
        "--duration",
        "8h",
        "--justification",
        "x",
        "--dry-run",
        "--json",
    ])
    .await;
    let plan: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(plan["stages"][0][0]["object_id"].as_str().unwrap().to_lowercase(), users[0].0.to_lowercase(), "{plan}");
    assert!(run(vec!["request", "list", "--json"]).await.stdout.trim() == "[]", "a dry run records nothing");

    let created = run(vec![
        "request",
        "create",
        "--as",
        asker,
        "--entitlement",
        &ent,
        "--duration",
        "8h",
        "--justification",
        "quarter close",
        "--json",
    ])
    .await;
    assert!(created.success, "{:?}", created.error);
    let request: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    assert_eq!(
        (request["id"].as_i64(), request["state"].as_str(), request["duration"].as_str()),
        (Some(1), Some("pending"), Some("8h"))
    );
    let twice = run(vec![
        "request",
        "create",
        "--as",
        asker,
        "--entitlement",
        &ent,
        "--duration",
        "1h",
        "--justification",
        "again",
    ])
    .await;
    assert!(!twice.success && twice.error.as_deref().unwrap().contains("already asked"), "{:?}", twice.error);

    // The job of `attest serve`, run by hand at the times the test says: it mails the approvers.
    let key = Arc::new(attest_config::secrets::SecretKey::load(&dir.join("secret.key")).unwrap());
    let store = db.store.clone().with_audit_key(attest_domain::audit::ChainKey::new(&key.audit_chain_key()));
    let connectors = Arc::new(attest_server::StoredConnectors::new(store.clone(), key));
    // One test clock for the job and the provisioner: a removal queued "after downtime" is due
    // at that time, and the provisioner must be there too to apply it.
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
    assert_eq!(grant_source.map(|(_, end)| end), Some(Some(expires)), "the grant carries its end");
    // Holding it for a time, asking again is answered with an extension.
    let held = run(vec![
        "request",
        "create",
        "--as",
        asker,
        "--entitlement",
        &ent,
        "--duration",
        "1h",
        "--justification",
        "again",
    ])
    .await;
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
    let (swept, _) = job.once(later).await.unwrap();
    assert_eq!(swept.removing, 1, "{swept:?}");
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

    // Every step is in the audit log.
    let verified = run(vec!["audit", "verify"]).await;
    assert!(verified.success, "{:?}", verified.error);
});
