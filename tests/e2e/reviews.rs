//! Access review campaigns from the command line, against the simulator: a definition checked
//! key by key, an instance snapshotted with reviewers resolved (nobody reviews their own
//! access), decisions with justifications, closing with auto-apply, the revocation applied in
//! Entra by the provisioner and its outcome on the item, and the evidence exported.

use std::sync::Arc;

use attest_entra_sim::ClientApp;
use attest_store::db_test;

use crate::harness::attest;
use crate::sync::{add_entra, scratch, sim};

db_test!(a_campaign_snapshots_decides_closes_and_removes_access_in_entra, true, |db| {
    let sim = sim(ClientApp::attest(21).with_provisioning()).await;
    let (dir, config) = scratch();
    let url = db.url.expose().to_owned();
    let run = |args: Vec<&str>| {
        let mut full = vec!["--config".to_owned(), config.clone(), "--database-url".to_owned(), url.clone()];
        full.extend(args.into_iter().map(str::to_owned));
        async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, &sim.sim.client().client_secret).unwrap();
    assert!(run(add_entra(&sim, "contoso", &secret_file).iter().map(String::as_str).collect()).await.success);

    // A security group with an owner who is also a member, and three other members.
    let (group, group_name, users) = sim.sim.write(|t| {
        let users: Vec<(String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member")
            .take(6)
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect();
        let group = t
            .groups
            .iter_mut()
            .find(|g| g.deleted.is_none() && g.accepts_membership_writes() && g.is_assignable_to_role != Some(true))
            .expect("a group Graph can change");
        group.owners = vec![users[0].0.clone()];
        group.members = users[..4].iter().map(|(id, _)| id.clone()).collect();
        (group.id.clone(), group.display_name.clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let (owner, fallback, outsider) = (&users[0].1, &users[5].1, &users[4].1);

    // A definition is checked key by key.
    let definition = format!(
        "name = \"Q1 review: {group_name}\"\ndescription = \"Does each member still need it?\"\nowners = [\"{fallback}\"]\n\
         [scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\nresources = [\"{group}\"]\nentitlements = [\"member\"]\n\
         [reviewers]\nmode = \"resource_owner\"\nfallback = [\"{fallback}\"]\n\
         [settings]\nauto_apply = true\njustification_required = \"revoke\"\n"
    );
    let file = dir.join("campaign.toml");
    std::fs::write(&file, definition.replace("auto_apply = true", "auto_apply = true\ncolour = \"red\"")).unwrap();
    let path = file.display().to_string();
    let unknown = run(vec!["campaign", "create", "--file", &path]).await;
    assert!(
        !unknown.success && unknown.error.as_deref().unwrap().contains("unknown field `colour`"),
        "{:?}",
        unknown.error
    );
    std::fs::write(&file, definition.replace("mode = \"resource_owner\"", "mode = \"boss\"")).unwrap();
    let bad = run(vec!["campaign", "create", "--file", &path]).await;
    assert!(!bad.success && bad.error.as_deref().unwrap().contains("expected"), "{:?}", bad.error);
    std::fs::write(&file, &definition).unwrap();
    let created = run(vec!["campaign", "create", "--file", &path]).await;
    assert!(
        created.success && created.stdout.contains("campaign 1 created"),
        "{:?}\n{}",
        created.error,
        created.stdout
    );

    // Start: four memberships; the owner reviews the other three, the fallback reviews the owner's.
    let started = run(vec!["campaign", "start", "1"]).await;
    assert!(
        started.success && started.stdout.contains("4 items for 2 reviewers"),
        "{:?}\n{}",
        started.error,
        started.stdout
    );
    let again = run(vec!["campaign", "start", "1"]).await;
    assert!(!again.success && again.error.as_deref().unwrap().contains("still running"), "{:?}", again.error);
    let items = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let run = &run;
        async move {
            let mut all = vec!["campaign", "items", "1", "--json"];
            all.extend(args.iter().map(String::as_str));
            let out = run(all).await;
            assert!(out.success, "{:?}", out.error);
            serde_json::from_str::<Vec<serde_json::Value>>(&out.stdout).unwrap()
        }
    };
    let all = items(&[]).await;
    assert_eq!(all.len(), 4);
    let item_of =
        |user: &str| all.iter().find(|i| i["principal"]["object_id"] == user).unwrap()["id"].as_i64().unwrap();
    let own = all.iter().find(|i| i["principal"]["object_id"] == users[0].0.as_str()).unwrap();
    assert_eq!(own["reviewers"][0]["object_id"].as_str().unwrap().to_lowercase(), users[5].0.to_lowercase(), "{own}");
    assert!(own["recommendation_reason"].as_str().is_some_and(|r| !r.is_empty()), "{own}");
    assert_eq!(items(&["--reviewer", owner]).await.len(), 3, "the owner's inbox");

    // Snapshot: a member added after the start is not in this instance.
    sim.sim.write(|t| t.groups.iter_mut().find(|g| g.id == group).unwrap().members.push(users[4].0.clone()));
    assert!(run(vec!["sync", "--full"]).await.success);
    assert_eq!(items(&[]).await.len(), 4);

    // Decisions: a revoke needs a justification; nobody decides an item that is not theirs.
    let (revoked, approved) = (item_of(&users[1].0).to_string(), item_of(&users[2].0).to_string());
    let bare = run(vec!["campaign", "decide", "1", "--item", &revoked, "--decision", "revoke", "--as", owner]).await;
    assert!(!bare.success && bare.error.as_deref().unwrap().contains("justification is required"), "{:?}", bare.error);
    let own_item = item_of(&users[0].0).to_string();
    let mine = run(vec!["campaign", "decide", "1", "--item", &own_item, "--decision", "approve", "--as", owner]).await;
    assert!(!mine.success && mine.error.as_deref().unwrap().contains("your own access"), "{:?}", mine.error);
    let stranger =
        run(vec!["campaign", "decide", "1", "--item", &approved, "--decision", "approve", "--as", outsider]).await;
    assert!(!stranger.success && stranger.error.as_deref().unwrap().contains("not yours"), "{:?}", stranger.error);
    let decided = run(vec![
        "campaign",
        "decide",
        "1",
        "--item",
        &revoked,
        "--decision",
        "revoke",
        "--as",
        owner,
        "--justification",
        "moved to another team",
    ])
    .await;
    assert!(decided.success, "{:?}", decided.error);
    assert!(
        run(vec!["campaign", "decide", "1", "--item", &approved, "--decision", "approve", "--as", owner]).await.success
    );
    assert_eq!(items(&["--state", "pending"]).await.len(), 2);

    // Close: the undecided stay undecided (no default decision); the revocation is queued and
    // the provisioner applies it in Entra.
    let closed = run(vec!["campaign", "close", "1"]).await;
    assert!(closed.success && closed.stdout.contains("1 queued as changes"), "{:?}\n{}", closed.error, closed.stdout);
    let late = run(vec![
        "campaign",
        "decide",
        "1",
        "--item",
        &approved,
        "--decision",
        "revoke",
        "--as",
        owner,
        "--justification",
        "too late",
    ])
    .await;
    assert!(!late.success && late.error.as_deref().unwrap().contains("closed"), "{:?}", late.error);
    let key = Arc::new(attest_config::secrets::SecretKey::load(&dir.join("secret.key")).unwrap());
    // The provisioner audits as `attest serve` would: with the chain key of the same secret.
    let store = db.store.clone().with_audit_key(attest_domain::audit::ChainKey::new(&key.audit_chain_key()));
    let connectors = Arc::new(attest_server::StoredConnectors::new(store.clone(), key));
    let provisioner = attest_provisioner::Provisioner::new(store.clone(), connectors, Default::default(), "test");
    provisioner.run_until_idle().await.unwrap();
    let members = sim.sim.read(|t| t.group(&group).unwrap().members.clone());
    assert!(!members.contains(&users[1].0) && members.contains(&users[2].0), "{members:?}");
    let after = items(&["--state", "revoked"]).await;
    assert_eq!((after.len(), after[0]["applied"].as_str()), (1, Some("applied")), "{after:?}");

    // The evidence: one row per item, the decision's audit position, exporting audited.
    let csv = run(vec!["campaign", "export", "1", "--format", "csv"]).await;
    assert!(csv.success, "{:?}", csv.error);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", csv.stdout);
    assert!(lines[0].starts_with("campaign,instance,item,principal,principal_upn"), "{}", lines[0]);
    let row = lines.iter().find(|l| l.contains(&users[1].1)).unwrap();
    assert!(row.contains(",revoke,moved to another team,") && row.contains(",applied,"), "{row}");
    let json = run(vec!["campaign", "export", "1", "--format", "json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    let evidence = rows.iter().find(|r| r["principal_object_id"] == users[1].0.as_str()).unwrap();
    assert!(evidence["audit_seq"].as_i64().unwrap() > 0 && evidence["change_id"].as_i64().is_some(), "{evidence}");
    assert!(evidence["reviewers"].as_str().unwrap().contains(owner), "{evidence}");
    let audit = store.audit().list_audit_events(0, 100_000).await.unwrap();
    for action in ["campaign.created", "campaign.started", "review.decided", "campaign.closed", "campaign.exported"] {
        assert!(audit.iter().any(|e| e.action == action), "{action} is audited");
    }
    assert!(run(vec!["audit", "verify"]).await.success);
    let _ = std::fs::remove_dir_all(&dir);
});

db_test!(reviewers_are_mailed_reminded_once_and_the_deadline_closes_and_recurs, true, |db| {
    let sim = sim(ClientApp::attest(21).with_provisioning()).await;
    let (dir, config) = scratch();
    let url = db.url.expose().to_owned();
    let run = |args: Vec<&str>| {
        let mut full = vec!["--config".to_owned(), config.clone(), "--database-url".to_owned(), url.clone()];
        full.extend(args.into_iter().map(str::to_owned));
        async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, &sim.sim.client().client_secret).unwrap();
    assert!(run(add_entra(&sim, "contoso", &secret_file).iter().map(String::as_str).collect()).await.success);
    // Two members of a group, reviewed by two named people: each reviews both.
    let (group, users) = sim.sim.write(|t| {
        let users: Vec<(String, String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member" && u.mail.is_some())
            .take(5)
            .map(|u| (u.id.clone(), u.user_principal_name.clone(), u.mail.clone().unwrap()))
            .collect();
        let group = t.groups.iter_mut().find(|g| g.deleted.is_none() && g.accepts_membership_writes()).unwrap();
        group.members = vec![users[0].0.clone(), users[1].0.clone()];
        (group.id.clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let (ada, bob, owner) = (&users[2], &users[3], &users[4]);
    let definition = format!(
        "name = \"Weekly check\"\nowners = [\"{}\"]\n[scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\n\
         resources = [\"{group}\"]\nentitlements = [\"member\"]\n[reviewers]\nmode = \"named\"\nnamed = [\"{}\", \"{}\"]\n\
         [schedule]\nduration = \"4d\"\nrecurrence = \"weekly\"\nends_after = 2\n[settings]\ndefault_decision = \"approve\"\n",
        owner.2, ada.1, bob.1
    );
    let file = dir.join("weekly.toml");
    std::fs::write(&file, definition).unwrap();
    assert!(run(vec!["campaign", "create", "--file", &file.display().to_string()]).await.success);
    let started = run(vec!["campaign", "start", "1"]).await;
    assert!(
        started.success && started.stdout.contains("2 items for 2 reviewers"),
        "{:?}\n{}",
        started.error,
        started.stdout
    );

    let store = db.store.clone();
    let outbox = attest_notify::Outbox::new(store.clone(), &attest_config::MailConfig::default()).unwrap();
    let scheduler = attest_server::review_job::ReviewScheduler::new(
        store.clone(),
        outbox,
        "https://attest.example.com",
        attest_domain::clock::system(),
        "test",
    );
    let instance = store.reviews().get_campaign(1).await.unwrap().instance.unwrap();
    let at = |hours: i64| instance.started_at + chrono::Duration::hours(hours);
    let mails = || async {
        let all =
            store.outbox().list_mail(&attest_store::MailFilter { limit: 100, ..Default::default() }).await.unwrap();
        all.into_iter().map(|m| (m.template, m.recipient.to_lowercase())).collect::<Vec<_>>()
    };

    // At the start: one mail per reviewer, with their count; scanning again sends nothing.
    let first = scheduler.scan(at(0)).await.unwrap();
    assert_eq!(first.mails, 2);
    assert_eq!(scheduler.scan(at(1)).await.unwrap(), Default::default());
    let sent = mails().await;
    for who in [ada, bob] {
        assert!(sent.contains(&("review_started".into(), who.2.to_lowercase())), "{sent:?}");
    }
    // Ada decides everything; at the midpoint only Bob is reminded, once.
    let items = run(vec!["campaign", "items", "1", "--json"]).await;
    let items: Vec<serde_json::Value> = serde_json::from_str(&items.stdout).unwrap();
    let ids: Vec<String> = items.iter().map(|i| i["id"].to_string()).collect();
    let decided = run(vec![
        "campaign",
        "decide",
        "1",
        "--item",
        &ids[0],
        "--item",
        &ids[1],
        "--decision",
        "approve",
        "--as",
        &ada.1,
    ])
    .await;
    assert!(decided.success, "{:?}", decided.error);
    // Items reviewed by several: one decision settles them, so nobody has pending items left.
    assert_eq!(scheduler.scan(at(48)).await.unwrap().mails, 0, "nothing pending, nobody reminded");
    let sent = mails().await;
    assert_eq!(sent.iter().filter(|(t, _)| t == "review_reminder").count(), 0, "{sent:?}");

    // A restart long after the deadline: the first scan closes it and the owner gets the summary.
    let late = scheduler.scan(at(24 * 5)).await.unwrap();
    assert_eq!((late.closed, late.mails), (1, 1));
    assert_eq!(scheduler.scan(at(24 * 5)).await.unwrap(), Default::default(), "summarized once");
    assert!(mails().await.contains(&("campaign_closed".into(), owner.2.to_lowercase())));
    // Weekly: the second instance starts a week after the first, with its reviewers mailed; it
    // is the last (ends_after = 2).
    assert_eq!(scheduler.scan(at(24 * 6)).await.unwrap().started, 0, "not yet");
    let next = scheduler.scan(at(24 * 7)).await.unwrap();
    assert_eq!(next.started, 1);
    let campaign = store.reviews().get_campaign(1).await.unwrap();
    let second = campaign.instance.clone().unwrap();
    assert_eq!((second.number, campaign.next_start_at), (2, None));
    // One item is decided, one left pending: the day-before reminder reaches its reviewers
    // once (the midpoint one, missed while down, is not sent on top of it).
    assert_eq!(scheduler.scan(at(24 * 7)).await.unwrap().mails, 2, "instance 2 announced");
    let items = run(vec!["campaign", "items", "1", "--json"]).await;
    let items: Vec<serde_json::Value> = serde_json::from_str(&items.stdout).unwrap();
    let first_item = items[0]["id"].to_string();
    assert!(
        run(vec!["campaign", "decide", "1", "--item", &first_item, "--decision", "approve", "--as", &ada.1])
            .await
            .success
    );
    let day_before = second.due_at - chrono::Duration::hours(12);
    assert_eq!(scheduler.scan(day_before).await.unwrap().mails, 2, "both reviewers of the pending item");
    assert_eq!(scheduler.scan(day_before).await.unwrap().mails, 0, "once");
    let reminders: Vec<_> = mails().await.into_iter().filter(|(t, _)| t == "review_reminder").collect();
    assert_eq!(reminders.len(), 2, "{reminders:?}");
    // The deadline: the undecided item is approved by default; no third instance.
    assert_eq!(scheduler.scan(second.due_at).await.unwrap().closed, 1);
    let pending = run(vec!["campaign", "items", "1", "--state", "pending", "--json"]).await;
    assert_eq!(pending.stdout.trim(), "[]");
    let defaulted = run(vec!["campaign", "items", "1", "--state", "approved", "--json"]).await;
    assert!(defaulted.stdout.contains("\"decided_by\": \"default decision\""), "{}", defaulted.stdout);
    assert_eq!(scheduler.scan(second.due_at + chrono::Duration::days(30)).await.unwrap().started, 0);
    let _ = std::fs::remove_dir_all(&dir);
});
