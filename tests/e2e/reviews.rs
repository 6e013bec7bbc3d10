//! Access review campaigns from the command line, against the simulator: a definition checked
//! key by key, an instance snapshotted with reviewers resolved (nobody reviews their own
//! access), decisions with justifications, closing with auto-apply, the revocation applied in
//! Entra by the provisioner and its outcome on the item, and the evidence exported.

use std::sync::Arc;
use std::time::Duration;

use attest_entra_sim::ClientApp;
use attest_store::db_test;

use crate::harness::{Outcome, attest};
use crate::sync::{add_entra, scratch, sim};
use crate::web::eventually;

/// A simulated tenant connected as "contoso" (Graph writes allowed), and `attest` run with its
/// own config against the test database.
pub(crate) struct Tenant {
    pub(crate) sim: attest_entra_sim::SimHandle,
    pub(crate) dir: std::path::PathBuf,
    config: String,
    url: String,
}

/// The review job of `attest serve`, scanned by hand at whatever time a test says.
fn scheduler(store: &attest_store::Store) -> attest_server::review_job::ReviewScheduler {
    let outbox = attest_notify::Outbox::new(store.clone(), &attest_config::MailConfig::default()).unwrap();
    attest_server::review_job::ReviewScheduler::new(
        store.clone(),
        outbox,
        "https://attest.example.com",
        attest_domain::clock::system(),
        "test",
    )
}

impl Tenant {
    pub(crate) async fn connect(db: &attest_store::testing::TestDb) -> Tenant {
        let sim = sim(ClientApp::attest(21).with_provisioning()).await;
        let (dir, config) = scratch();
        let tenant = Tenant { sim, dir, config, url: db.url.expose().to_owned() };
        let secret_file = tenant.dir.join("client-secret");
        std::fs::write(&secret_file, &tenant.sim.sim.client().client_secret).unwrap();
        let add = add_entra(&tenant.sim, "contoso", &secret_file);
        assert!(tenant.run(add.iter().map(String::as_str).collect()).await.success);
        tenant
    }

    /// `attest --config … --database-url … ARGS`.
    pub(crate) fn run(&self, args: Vec<&str>) -> impl std::future::Future<Output = Outcome> + use<> {
        let mut full = vec!["--config".to_owned(), self.config.clone(), "--database-url".to_owned(), self.url.clone()];
        full.extend(args.into_iter().map(str::to_owned));
        async move { attest(&full.iter().map(String::as_str).collect::<Vec<_>>()).await }
    }

    /// `attest campaign items ID --json [--state STATE]`, read.
    async fn items(&self, id: &str, state: Option<&str>) -> Vec<serde_json::Value> {
        let mut args = vec!["campaign", "items", id, "--json"];
        if let Some(state) = state {
            args.extend(["--state", state]);
        }
        let out = self.run(args).await;
        assert!(out.success, "{:?}", out.error);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// `attest campaign decide ID --item ITEM --decision DECISION --as WHO`.
    async fn decide(&self, id: &str, item: &str, decision: &str, who: &str) -> Outcome {
        self.run(vec!["campaign", "decide", id, "--item", item, "--decision", decision, "--as", who]).await
    }
}

db_test!(a_campaign_snapshots_decides_closes_and_removes_access_in_entra, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let (sim, dir) = (&tenant.sim, &tenant.dir);
    let run = |args: Vec<&str>| tenant.run(args);

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
    let noted = run(vec![
        "campaign",
        "comment",
        "1",
        "--item",
        &approved,
        "--as",
        owner,
        "--text",
        "checked with HR",
        "--json",
    ])
    .await;
    let noted: serde_json::Value = serde_json::from_str(&noted.stdout).unwrap_or_default();
    assert_eq!(noted["commented"].as_u64(), Some(1), "{noted}");

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
    // Written to a file with -o: the same rows, nothing on standard output.
    let out = dir.join("evidence.csv");
    let written = run(vec!["campaign", "export", "1", "--format", "csv", "-o", &out.display().to_string()]).await;
    assert!(
        written.success && !written.stdout.contains("campaign,instance"),
        "{:?}\n{}",
        written.error,
        written.stdout
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5);
    let json = run(vec!["campaign", "export", "1", "--format", "json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    let evidence = rows.iter().find(|r| r["principal_object_id"] == users[1].0.as_str()).unwrap();
    // `show --json`: the campaign with its latest instance and progress.
    let shown = run(vec!["campaign", "show", "1", "--json"]).await;
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!((shown["id"].as_i64(), shown["instance"]["state"].as_str()), (Some(1), Some("closed")), "{shown}");
    assert_eq!(shown["progress"]["items"].as_u64(), Some(4), "{shown}");
    assert!(evidence["audit_seq"].as_i64().unwrap() > 0 && evidence["change_id"].as_i64().is_some(), "{evidence}");
    assert!(evidence["reviewers"].as_str().unwrap().contains(owner), "{evidence}");
    let audit = store.audit().list_audit_events(0, 100_000).await.unwrap();
    for action in ["campaign.created", "campaign.started", "review.decided", "campaign.closed", "campaign.exported"] {
        assert!(audit.iter().any(|e| e.action == action), "{action} is audited");
    }
    assert!(run(vec!["audit", "verify"]).await.success);
    let _ = std::fs::remove_dir_all(dir);
});

db_test!(reviewers_are_mailed_reminded_once_and_the_deadline_closes_and_recurs, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let (sim, dir) = (&tenant.sim, &tenant.dir);
    let run = |args: Vec<&str>| tenant.run(args);
    // Two members of a group, reviewed by two named people: each reviews both.
    let (group, users) = sim.sim.write(|t| {
        let users: Vec<(String, String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member" && u.mail.is_some())
            .take(6)
            .map(|u| (u.id.clone(), u.user_principal_name.clone(), u.mail.clone().unwrap()))
            .collect();
        let group = t.groups.iter_mut().find(|g| g.deleted.is_none() && g.accepts_membership_writes()).unwrap();
        group.members = vec![users[0].0.clone(), users[1].0.clone()];
        (group.id.clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let (ada, bob, owner, carol) = (&users[2], &users[3], &users[4], &users[5]);
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
    let scheduler = scheduler(&store);
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
    // Ada decides both items (Bob reviews them too): at the midpoint nobody is reminded.
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
    // One item is decided, the other left pending and handed from Ada to Carol: the day-before
    // reminder reaches its reviewers, Bob and Carol, once (the midpoint one, missed while down,
    // is not sent on top of it), and not Ada, who has nothing pending any more.
    assert_eq!(scheduler.scan(at(24 * 7)).await.unwrap().mails, 2, "instance 2 announced");
    let items = run(vec!["campaign", "items", "1", "--json"]).await;
    let items: Vec<serde_json::Value> = serde_json::from_str(&items.stdout).unwrap();
    let (first_item, second_item) = (items[0]["id"].to_string(), items[1]["id"].to_string());
    assert!(
        run(vec!["campaign", "decide", "1", "--item", &first_item, "--decision", "approve", "--as", &ada.1])
            .await
            .success
    );
    let handed =
        run(vec!["campaign", "reassign", "1", "--item", &second_item, "--from", &ada.1, "--to", &carol.1, "--json"])
            .await;
    assert!(handed.success, "{:?}", handed.error);
    let handed: serde_json::Value = serde_json::from_str(&handed.stdout).unwrap();
    assert_eq!(
        (handed["from_object_id"].as_str(), handed["to_object_id"].as_str()),
        (Some(ada.0.as_str()), Some(carol.0.as_str()))
    );
    let day_before = second.due_at - chrono::Duration::hours(12);
    assert_eq!(scheduler.scan(day_before).await.unwrap().mails, 2, "the pending item's reviewers");
    assert_eq!(scheduler.scan(day_before).await.unwrap().mails, 0, "once");
    let reminded: Vec<String> =
        mails().await.into_iter().filter(|(t, _)| t == "review_reminder").map(|(_, to)| to).collect();
    assert_eq!(reminded.len(), 2, "{reminded:?}");
    for who in [bob, carol] {
        assert!(reminded.contains(&who.2.to_lowercase()), "{who:?} is reminded: {reminded:?}");
    }
    assert!(!reminded.contains(&ada.2.to_lowercase()), "Ada has nothing pending: {reminded:?}");
    // The deadline: the undecided item is approved by default; no third instance.
    assert_eq!(scheduler.scan(second.due_at).await.unwrap().closed, 1);
    let pending = run(vec!["campaign", "items", "1", "--state", "pending", "--json"]).await;
    assert_eq!(pending.stdout.trim(), "[]");
    let defaulted = run(vec!["campaign", "items", "1", "--state", "approved", "--json"]).await;
    assert!(defaulted.stdout.contains("\"decided_by\": \"default decision\""), "{}", defaulted.stdout);
    assert_eq!(scheduler.scan(second.due_at + chrono::Duration::days(30)).await.unwrap().started, 0);
    let _ = std::fs::remove_dir_all(dir);
});

db_test!(multi_stage_reviews_let_through_what_their_rule_says_and_later_stages_see_earlier_decisions, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let run = |args: Vec<&str>| tenant.run(args);
    // Four members of a group; stage 1 is reviewed by one named person, stage 2 by another.
    let (group, users) = tenant.sim.sim.write(|t| {
        let users: Vec<(String, String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member" && u.mail.is_some())
            .take(7)
            .map(|u| (u.id.clone(), u.user_principal_name.clone(), u.mail.clone().unwrap()))
            .collect();
        let group = t.groups.iter_mut().find(|g| g.deleted.is_none() && g.accepts_membership_writes()).unwrap();
        group.members = users[..4].iter().map(|u| u.0.clone()).collect();
        (group.id.clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let (first, second, owner) = (&users[4], &users[5], &users[6]);
    let definition = |name: &str, rule: &str, default: &str| {
        format!(
            "name = \"{name}\"\nowners = [\"{}\"]\n[scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\n\
             resources = [\"{group}\"]\nentitlements = [\"member\"]\n[reviewers]\nmode = \"named\"\nnamed = [\"{}\"]\n\
             [schedule]\nduration = \"4d\"\n[settings]\nstages = 2\nstage_rule = \"{rule}\"\ndefault_decision = \"{default}\"\n\
             justification_required = \"none\"\n[[later_stages]]\nmode = \"named\"\nnamed = [\"{}\"]\nduration = \"2d\"\n",
            owner.1, first.1, second.1
        )
    };
    let file = tenant.dir.join("stages.toml");
    let path = file.display().to_string();
    // A second stage must name its reviewers.
    let text = definition("Two stages", "one_revoke_revokes", "none");
    std::fs::write(&file, text.split("[[later_stages]]").next().unwrap()).unwrap();
    let missing = run(vec!["campaign", "create", "--file", &path]).await;
    assert!(!missing.success && missing.error.as_deref().unwrap().contains("later_stages"), "{:?}", missing.error);
    std::fs::write(&file, &text).unwrap();
    assert!(run(vec!["campaign", "create", "--file", &path]).await.success);
    std::fs::write(&file, definition("All must approve", "all_must_approve", "revoke")).unwrap();
    assert!(run(vec!["campaign", "create", "--file", &path]).await.success);
    for id in ["1", "2"] {
        let started = run(vec!["campaign", "start", id]).await;
        assert!(started.success && started.stdout.contains("4 items for 1 reviewer"), "{}", started.stdout);
    }
    let listed = run(vec!["campaign", "list"]).await;
    assert!(listed.stdout.contains("stage 1 of 2, this stage due"), "{}", listed.stdout);
    // A campaign that would leave an item with nobody to review it refuses to start, names it,
    // and writes nothing: the member named as the only reviewer cannot review their own access.
    let nobody = definition("Nobody for one", "one_revoke_revokes", "none").replace(
        &format!("named = [\"{}\"]\n[schedule]", first.1),
        &format!("named = [\"{}\"]\n[schedule]", users[0].1),
    );
    std::fs::write(&file, nobody).unwrap();
    assert!(run(vec!["campaign", "create", "--file", &path]).await.success);
    let refused = run(vec!["campaign", "start", "3"]).await;
    let error = refused.error.clone().unwrap_or_default();
    assert!(!refused.success && error.contains("1 item(s) would have no reviewer"), "{error}");
    assert!(db.store.reviews().get_campaign(3).await.unwrap().instance.is_none(), "nothing was written");
    let items = |id: &'static str, state: Option<&'static str>| tenant.items(id, state);
    let all = items("1", None).await;
    let item = |who: usize| {
        all.iter().find(|i| i["principal"]["object_id"] == users[who].0.as_str()).unwrap()["id"].to_string()
    };
    let decide = |id: &'static str, item: String, decision: &'static str, who: String| {
        let tenant = &tenant;
        async move { tenant.decide(id, &item, decision, &who).await }
    };

    // one_revoke_revokes. Stage 1: approve members 0 and 3, revoke 1, leave 2. The second
    // stage's reviewer cannot decide yet.
    for (who, decision) in [(0, "approve"), (3, "approve"), (1, "revoke")] {
        assert!(decide("1", item(who), decision, first.1.clone()).await.success);
    }
    let early = decide("1", item(2), "approve", second.1.clone()).await;
    assert!(!early.success && early.error.as_deref().unwrap().contains("not yours"), "{:?}", early.error);
    let closed = run(vec!["campaign", "close", "1"]).await;
    assert!(
        closed.success && closed.stdout.contains("stage 1 of 2 closed; 3 of its 4 item(s) go on to stage 2"),
        "{:?} {}",
        closed.error,
        closed.stdout
    );
    // The stage is over for its reviewer; the next reviewer sees what stage 1 decided.
    let late = decide("1", item(2), "revoke", first.1.clone()).await;
    assert!(!late.success && late.error.as_deref().unwrap().contains("not yours"), "{:?}", late.error);
    let pending = items("1", Some("pending")).await;
    assert_eq!(pending.len(), 3);
    let seen = pending.iter().find(|i| i["id"] == item(0).parse::<i64>().unwrap()).unwrap();
    assert_eq!(seen["stage"], 2);
    assert_eq!(seen["earlier_stages"][0]["decision"], "approve", "{seen}");
    assert_eq!(seen["earlier_stages"][0]["stage"], 1, "{seen}");
    // Stage 2: revoke 0 (a revoke wins over the earlier approval), approve 2, leave 3.
    assert!(decide("1", item(0), "revoke", second.1.clone()).await.success);
    assert!(decide("1", item(2), "approve", second.1.clone()).await.success);
    // The inbox counts follow: stage 1's reviewer has nothing left in campaign 1, stage 2's
    // has one of each.
    let inbox = |who: String| {
        let store = db.store.clone();
        async move {
            let found = store.reviews().inbox_campaigns(&who).await.unwrap();
            found.into_iter().find(|c| c.campaign_id == 1).map(|c| (c.pending, c.approved, c.revoked))
        }
    };
    assert_eq!(inbox(first.0.clone()).await, None);
    assert_eq!(inbox(second.0.clone()).await, Some((1, 1, 1)));
    let done = run(vec!["campaign", "close", "1", "--json"]).await;
    assert!(done.success, "{:?}", done.error);
    let done: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!((done["kept_approvals"].as_u64(), done["defaulted"].as_u64()), (Some(1), Some(0)), "{done}");
    // The kept approval counts as a decision: nobody is left with anything pending.
    let first_instance = db.store.reviews().get_campaign(1).await.unwrap().instance.unwrap().id;
    let waiting = db.store.reviews().pending_by_reviewer(first_instance).await.unwrap();
    assert!(waiting.iter().all(|r| r.3 == 0), "{waiting:?}");
    let finals = items("1", None).await;
    let final_of = |who: usize| {
        let found = finals.iter().find(|i| i["principal"]["object_id"] == users[who].0.as_str()).unwrap();
        (found["decision"].as_str().unwrap().to_owned(), found["stage"].as_i64().unwrap())
    };
    assert_eq!(
        [final_of(0), final_of(1), final_of(2), final_of(3)],
        [("revoke".into(), 2), ("revoke".into(), 1), ("approve".into(), 2), ("approve".into(), 2)]
    );
    let kept = finals.iter().find(|i| i["principal"]["object_id"] == users[3].0.as_str()).unwrap();
    assert!(kept["decided_by"].as_str().unwrap().to_lowercase().starts_with(&first.1.to_lowercase()), "{kept}");
    let export = run(vec!["campaign", "export", "1", "--format", "csv"]).await;
    assert!(export.success && export.stdout.contains("stage 1: approve by"), "{}", export.stdout);

    // all_must_approve, run by the schedule: stage 1 approves 0 and 1, revokes 2, leaves 3.
    let store = db.store.clone();
    let scheduler = scheduler(&store);
    let instance = store.reviews().get_campaign(2).await.unwrap().instance.unwrap();
    assert_eq!((instance.stage, instance.stages), (1, 2));
    assert_eq!(instance.due_at - instance.started_at, chrono::Duration::days(6), "4 days, then 2");
    let at = |hours: i64| instance.started_at + chrono::Duration::hours(hours);
    let all = items("2", None).await;
    let item = |who: usize| {
        all.iter().find(|i| i["principal"]["object_id"] == users[who].0.as_str()).unwrap()["id"].to_string()
    };
    for (who, decision) in [(0, "approve"), (1, "approve"), (2, "revoke")] {
        assert!(decide("2", item(who), decision, first.1.clone()).await.success);
    }
    scheduler.scan(at(0)).await.unwrap();
    // At the first stage's deadline only the approved go on; the second stage's reviewer is
    // told (once), and the instance now ends two days later.
    let advanced = scheduler.scan(at(24 * 4)).await.unwrap();
    assert_eq!((advanced.stages, advanced.closed, advanced.mails), (1, 0, 1), "{advanced:?}");
    assert_eq!(scheduler.scan(at(24 * 4 + 1)).await.unwrap().mails, 0);
    let mails = store.outbox().list_mail(&attest_store::MailFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert!(
        mails.iter().any(|m| m.template == "review_started" && m.recipient.eq_ignore_ascii_case(&second.2)),
        "the second stage's reviewer is told"
    );
    // Undecided in stage 1, member 3 stopped there (undecided until the close).
    let pending: Vec<(i64, bool)> = items("2", Some("pending"))
        .await
        .iter()
        .map(|i| (i["stage"].as_i64().unwrap(), i["principal"]["object_id"] == users[3].0.as_str()))
        .collect();
    assert_eq!(pending.iter().filter(|(stage, _)| *stage == 2).count(), 2, "{pending:?}");
    assert!(pending.contains(&(1, true)), "{pending:?}");
    assert!(decide("2", item(0), "approve", second.1.clone()).await.success);
    // At the end, what every stage approved is approved; the rest takes the default (revoke).
    assert_eq!(scheduler.scan(at(24 * 6)).await.unwrap().closed, 1);
    let finals = items("2", None).await;
    let decisions: Vec<(String, String)> = finals
        .iter()
        .map(|i| {
            let who = users.iter().position(|u| i["principal"]["object_id"] == u.0.as_str()).unwrap();
            (who.to_string(), i["decision"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut decisions = decisions;
    decisions.sort();
    assert_eq!(
        decisions,
        [("0", "approve"), ("1", "revoke"), ("2", "revoke"), ("3", "revoke")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .to_vec()
    );
    let _ = std::fs::remove_dir_all(&tenant.dir);
});

db_test!(not_sure_keeps_the_access_past_the_default_decision_and_goes_on_to_the_next_stage, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let run = |args: Vec<&str>| tenant.run(args);
    // Three members of a group, reviewed by one named person (a second one in stage 2).
    let (group, users) = tenant.sim.sim.write(|t| {
        let users: Vec<(String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member" && u.mail.is_some())
            .take(6)
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect();
        let group = t.groups.iter_mut().find(|g| g.deleted.is_none() && g.accepts_membership_writes()).unwrap();
        group.members = users[..3].iter().map(|u| u.0.clone()).collect();
        (group.id.clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let (first, second, owner) = (&users[3], &users[4], &users[5]);
    let definition = |name: &str, stages: &str| {
        format!(
            "name = \"{name}\"\nowners = [\"{}\"]\n[scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\n\
             resources = [\"{group}\"]\nentitlements = [\"member\"]\n[reviewers]\nmode = \"named\"\nnamed = [\"{}\"]\n\
             [schedule]\nduration = \"4d\"\n[settings]\ndefault_decision = \"revoke\"\njustification_required = \"none\"\n{stages}",
            owner.1, first.1
        )
    };
    let file = tenant.dir.join("unsure.toml");
    let path = file.display().to_string();
    std::fs::write(&file, definition("One stage", "")).unwrap();
    assert!(run(vec!["campaign", "create", "--file", &path]).await.success);
    let later = format!(
        "stages = 2\nstage_rule = \"all_must_approve\"\n[[later_stages]]\nmode = \"named\"\nnamed = [\"{}\"]\n",
        second.1
    );
    std::fs::write(&file, definition("Two stages", &later)).unwrap();
    assert!(run(vec!["campaign", "create", "--file", &path]).await.success);
    for id in ["1", "2"] {
        assert!(run(vec!["campaign", "start", id]).await.success);
    }
    let items = |id: &'static str, state: Option<&'static str>| tenant.items(id, state);
    let id_of = |list: &[serde_json::Value], who: usize| {
        list.iter().find(|i| i["principal"]["object_id"] == users[who].0.as_str()).unwrap()["id"].to_string()
    };
    let decide = |id: &'static str, item: String, decision: &'static str, who: String| {
        let tenant = &tenant;
        async move { tenant.decide(id, &item, decision, &who).await }
    };

    // One stage: member 0 "not sure", member 1 approved, member 2 left; the deadline's default
    // is revoke.
    let all = items("1", None).await;
    let unsure = decide("1", id_of(&all, 0), "not_sure", first.1.clone()).await;
    assert!(unsure.success && unsure.stdout.contains("decided not_sure"), "{:?} {}", unsure.error, unsure.stdout);
    assert!(decide("1", id_of(&all, 1), "approve", first.1.clone()).await.success);
    let listed = items("1", Some("not_sure")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["decision"], "not_sure");
    // The reviewer's inbox counts it on its own: answered, not waiting.
    let counts = db.store.reviews().inbox_campaigns(&first.0).await.unwrap();
    let mine = counts.iter().find(|c| c.campaign_id == 1).unwrap();
    assert_eq!((mine.pending, mine.approved, mine.not_sure), (1, 1, 1));
    let closed = run(vec!["campaign", "close", "1", "--json"]).await;
    let closed: serde_json::Value = serde_json::from_str(&closed.stdout).unwrap();
    assert_eq!(closed["defaulted"].as_u64(), Some(1), "only the undecided item takes the default: {closed}");
    let finals = items("1", None).await;
    let final_of = |who: usize| {
        let found = finals.iter().find(|i| i["principal"]["object_id"] == users[who].0.as_str()).unwrap();
        found["decision"].as_str().unwrap().to_owned()
    };
    assert_eq!([final_of(0), final_of(1), final_of(2)], ["not_sure", "approve", "revoke"]);
    // Applying takes away only the revoked access: the "not sure" member keeps theirs.
    let applied = run(vec!["campaign", "apply", "1", "--json"]).await;
    let applied: serde_json::Value = serde_json::from_str(&applied.stdout).unwrap();
    assert_eq!(applied["queued"].as_u64(), Some(1), "{applied}");
    let instance = db.store.reviews().get_campaign(1).await.unwrap().instance.unwrap().id;
    let progress = db.store.reviews().progress(instance).await.unwrap();
    assert_eq!((progress.not_sure, progress.approved, progress.revoked, progress.pending), (1, 1, 1, 0));
    let export = run(vec!["campaign", "export", "1", "--format", "csv"]).await;
    assert!(export.success && export.stdout.contains(",not_sure,"), "{}", export.stdout);

    // all_must_approve: "not sure" in stage 1 goes on, with the answer shown to stage 2.
    let all = items("2", None).await;
    assert!(decide("2", id_of(&all, 0), "not_sure", first.1.clone()).await.success);
    assert!(decide("2", id_of(&all, 1), "approve", first.1.clone()).await.success);
    let advanced = run(vec!["campaign", "close", "2"]).await;
    assert!(
        advanced.stdout.contains("2 of its 3 item(s) go on to stage 2"),
        "{:?} {}",
        advanced.error,
        advanced.stdout
    );
    let waiting = items("2", Some("pending")).await;
    let passed = waiting.iter().find(|i| i["principal"]["object_id"] == users[0].0.as_str()).unwrap();
    assert_eq!(
        (passed["stage"].as_i64(), passed["earlier_stages"][0]["decision"].as_str()),
        (Some(2), Some("not_sure"))
    );
    assert!(decide("2", id_of(&all, 0), "revoke", second.1.clone()).await.success, "the next stage decides");
    let _ = std::fs::remove_dir_all(&tenant.dir);
});

db_test!(a_reviewer_decides_only_their_own_items_in_the_pages_and_api_and_owners_run_the_campaign, true, |db| {
    let web = crate::web::Web::boot(&db).await;
    let store = db.store.clone();
    // A group with users in it, none of them the reviewer.
    let (group, members) = web.sim.sim.read(|t| {
        let group = t
            .live_groups()
            .find(|g| {
                let users = g.members.iter().filter(|m| t.live_user(m).is_some()).count();
                g.accepts_membership_writes() && users >= 3 && !g.members.contains(&web.requester.object_id)
            })
            .expect("a group with members");
        let members: Vec<String> = group.members.iter().filter(|m| t.live_user(m).is_some()).cloned().collect();
        (group.id.clone(), members)
    });
    let definition = format!(
        "name = \"Finance review\"\nowners = [\"{}\"]\n[scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\n\
         resources = [\"{group}\"]\nentitlements = [\"member\"]\nprincipals = \"users\"\n[reviewers]\nmode = \"named\"\n\
         named = [\"{}\"]\nfallback = [\"{}\"]\n[settings]\nauto_apply = true\n",
        web.owner.email, web.requester.email, web.approver.email
    );
    // Only administrators create campaigns.
    let refused = web.post(&web.owner, "/campaigns/new", &[("definition", definition.as_str())]).await;
    assert_eq!(refused.status().as_u16(), 403);
    let bad = web.post(&web.admin, "/campaigns/new", &[("definition", "name = \"x\"\nflavour = 1\n")]).await;
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("unknown field"), "the form says which key");
    let created = web.post(&web.admin, "/campaigns/new", &[("definition", definition.as_str())]).await;
    assert_eq!(created.status().as_u16(), 303);
    let path = created.headers()["location"].to_str().unwrap().to_owned();
    let id: i64 = path.trim_start_matches("/campaigns/").parse().unwrap();
    // The campaign's owner (an integration owner, named in the definition) starts it.
    assert_eq!(web.post(&web.owner, &format!("{path}/start"), &[]).await.status().as_u16(), 303);
    let (_, shown) = web.get(Some(&web.owner), &path).await;
    assert!(shown.contains(&format!("{} items", members.len())) && shown.contains("Close now"), "{shown}");
    // Auditors read it; others do not see it at all.
    let (status, audited) = web.get(Some(&web.auditor), &path).await;
    assert!(status == 200 && !audited.contains("Close now"), "{audited}");
    assert_eq!(web.get(Some(&web.requester), &path).await.0, 404);
    assert_eq!(web.post(&web.requester, &format!("{path}/close"), &[]).await.status().as_u16(), 403);
    assert_eq!(web.post(&web.auditor, &format!("{path}/close"), &[]).await.status().as_u16(), 403);

    // The reviewer's inbox: every member's item, with recommendations and reasons.
    let (status, inbox) = web.get(Some(&web.requester), "/reviews").await;
    assert_eq!(status, 200);
    assert!(inbox.contains("Finance review") && inbox.contains("Accept recommendations"), "{inbox}");
    let (_, api) = web.get(Some(&web.requester), "/api/v1/reviews").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let items: Vec<i64> = api["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!((api["total"].as_u64(), items.len()), (Some(members.len() as u64), members.len().min(50)));
    // Somebody else has nothing to review and cannot decide these.
    let (_, empty) = web.get(Some(&web.auditor), "/reviews").await;
    assert!(empty.contains("id=\"no-reviews\""), "{empty}");
    let first = items[0].to_string();
    let theirs = web.post(&web.auditor, "/reviews/decide", &[("item", &first), ("decision", "approve")]).await;
    assert_eq!(theirs.status().as_u16(), 404);
    let json = |body: serde_json::Value, who: &crate::web::Person| {
        let request = crate::harness::browser()
            .post(format!("{}/api/v1/reviews/decide", web.base))
            .header("cookie", &who.cookie)
            .header("x-csrf-token", &who.csrf)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, refused) = json(serde_json::json!({"items": [items[0]], "decision": "approve"}), &web.auditor).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (404, Some("not_found")), "{refused}");

    // Bulk revoke needs a justification, said on the page; then both are revoked at once.
    let (a, b) = (items[0].to_string(), items[1].to_string());
    let bare = web.post(&web.requester, "/reviews/decide", &[("item", &a), ("item", &b), ("decision", "revoke")]).await;
    assert_eq!(bare.status().as_u16(), 400);
    assert!(bare.text().await.unwrap().contains("justification is required"));
    let bulk = web
        .post(
            &web.requester,
            "/reviews/decide",
            &[("item", &a), ("item", &b), ("decision", "revoke"), ("justification", "left the team")],
        )
        .await;
    assert_eq!(bulk.status().as_u16(), 303);
    // One row's own button approves one item.
    let one = format!("{}:approve", items[2]);
    assert_eq!(web.post(&web.requester, "/reviews/decide", &[("one", &one)]).await.status().as_u16(), 303);
    let (status, decided) =
        json(serde_json::json!({"items": [items[2]], "decision": "revoke", "justification": "no"}), &web.requester)
            .await;
    assert_eq!((status, decided["decided"].as_u64()), (200, Some(1)), "a decision changes until the close");
    let (status, _) = json(serde_json::json!({"items": [items[2]], "decision": "approve"}), &web.requester).await;
    assert_eq!(status, 200);
    // "Not sure" from the row's own button: listed under its own filter, said in words.
    let unsure = format!("{}:not_sure", items[2]);
    assert_eq!(web.post(&web.requester, "/reviews/decide", &[("one", &unsure)]).await.status().as_u16(), 303);
    let (_, listed) = web.get(Some(&web.requester), "/reviews?state=not_sure").await;
    assert!(listed.contains(&format!("id=\"item-{}\"", items[2])) && listed.contains("not sure"), "{listed}");
    // "pending" is no answer, and a decision the domain does not know is refused, saying which.
    for bad in ["pending", "maybe"] {
        let (status, refused) = json(serde_json::json!({"items": [items[2]], "decision": bad}), &web.requester).await;
        let message = refused["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!(status, 400, "{refused}");
        assert!(message.contains("decide approve, revoke or not_sure"), "{refused}");
    }
    let (status, _) = json(serde_json::json!({"items": [items[2]], "decision": "approve"}), &web.requester).await;
    assert_eq!(status, 200);

    // Reassigning: to someone else, who then has it; never to the person whose access it is.
    let given = items[3].to_string();
    let handed = web
        .post(
            &web.requester,
            "/reviews/decide",
            &[("item", &given), ("decision", "reassign"), ("to", &web.auditor.email)],
        )
        .await;
    assert_eq!(handed.status().as_u16(), 303);
    let (_, theirs) = web.get(Some(&web.auditor), "/api/v1/reviews").await;
    let theirs: serde_json::Value = serde_json::from_str(&theirs).unwrap();
    assert_eq!(theirs["items"][0]["id"].as_i64(), Some(items[3]));
    let own = api["items"][4]["principal"]["upn"].as_str().unwrap().to_owned();
    let selfish = web
        .post(
            &web.requester,
            "/reviews/decide",
            &[("item", &items[4].to_string()), ("decision", "reassign"), ("to", &own)],
        )
        .await;
    assert_eq!(selfish.status().as_u16(), 403);
    let audit = store.audit().list_audit_events(0, 100_000).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "review.reassigned"), "reassigning is audited");
    // Comments: on one's own items, shown with the item, kept in the evidence; not on others'.
    let noted = web
        .post(
            &web.requester,
            "/reviews/decide",
            &[("item", &a), ("decision", "comment"), ("comment", "asked HR first")],
        )
        .await;
    assert_eq!(noted.status().as_u16(), 303);
    let (_, shown) = web.get(Some(&web.requester), "/reviews?state=revoke").await;
    assert!(shown.contains(&format!("{}: asked HR first", web.requester.email)), "{shown}");
    let meddling =
        web.post(&web.auditor, "/reviews/decide", &[("item", &b), ("decision", "comment"), ("comment", "hm")]).await;
    assert_eq!(meddling.status().as_u16(), 404);

    // The owner closes: the revocations are applied in Entra by the workers, and the items say so.
    assert_eq!(web.post(&web.owner, &format!("{path}/close"), &[]).await.status().as_u16(), 303);
    // The report: decisions by who made them, and progress over time drawn as well as listed.
    let (_, report) = web.get(Some(&web.owner), &path).await;
    assert!(
        report.contains("id=\"campaign-progress-chart\"") && report.contains("Decisions by who made them"),
        "{report}"
    );
    let revoked: Vec<String> = api["items"].as_array().unwrap()[..2]
        .iter()
        .map(|i| i["principal"]["object_id"].as_str().unwrap().to_owned())
        .collect();
    let gone = eventually(Duration::from_secs(60), || {
        let (sim, revoked, group) = (web.sim.sim.clone(), revoked.clone(), group.clone());
        async move { sim.read(|t| revoked.iter().all(|r| !t.group(&group).unwrap().members.contains(r))) }
    });
    assert!(gone.await, "the revoked memberships are removed in Entra");
    let applied = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            let filter = attest_store::ItemFilter {
                decision: Some(attest_domain::review::Decision::Revoke),
                instance: store.reviews().get_campaign(id).await.unwrap().instance.map(|i| i.id),
                limit: 10,
                ..Default::default()
            };
            let items = store.reviews().list_items(&filter).await.unwrap();
            items.len() == 2 && items.iter().all(|i| i.outcome() == Some(attest_domain::review::ApplyOutcome::Applied))
        }
    });
    assert!(applied.await, "each revoked item shows its result");
    let (status, csv) = web.get(Some(&web.auditor), &format!("{path}/export.csv")).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), members.len() + 1, "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.contains(",revoke,left the team,") && l.contains(",applied,")).count(),
        2,
        "{csv}"
    );
    assert!(csv.lines().any(|l| l.contains(&format!(",{}: asked HR first,", web.requester.email))), "{csv}");
    // That campaign could not revoke by itself, so its page never warned before a start.
    assert!(!report.contains("id=\"start-at-risk\""), "{report}");

    // One that can: before its start, its page says how many items it would put under review
    // (every one undecided at the deadline is removed from Entra); the start takes exactly those.
    let risky = definition.replace(
        "auto_apply = true\n",
        "auto_apply = true\ndefault_decision = \"revoke\"\nconfirm_mass_revoke = true\n",
    );
    let created = web.post(&web.admin, "/campaigns/new", &[("definition", risky.as_str())]).await;
    assert_eq!(created.status().as_u16(), 303);
    let risky_path = created.headers()["location"].to_str().unwrap().to_owned();
    let risky_id: i64 = risky_path.trim_start_matches("/campaigns/").parse().unwrap();
    let (_, before) = web.get(Some(&web.owner), &risky_path).await;
    let warned: usize = before
        .split("id=\"start-at-risk\">Starting it puts ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the page warns before the start: {before}"));
    assert!(warned > 0 && before.contains(&format!("up to {warned} access")), "{before}");
    assert_eq!(web.post(&web.owner, &format!("{risky_path}/start"), &[]).await.status().as_u16(), 303);
    let instance = store.reviews().get_campaign(risky_id).await.unwrap().instance.unwrap();
    let all = attest_store::ItemFilter { instance: Some(instance.id), limit: 1_000, ..Default::default() };
    assert_eq!(store.reviews().list_items(&all).await.unwrap().len(), warned, "the start took what the page said");
    let (_, running) = web.get(Some(&web.owner), &risky_path).await;
    assert!(!running.contains("id=\"start-at-risk\"") && running.contains("id=\"at-risk\""), "{running}");

    // "Accept recommendations" (the inbox's button, whose form sends the campaign as text): only
    // a reviewer of the campaign, and only their own items.
    let accept = |who: &crate::web::Person| {
        let campaign = risky_id.to_string();
        let (web, who) = (&web, who.clone());
        async move { web.post(&who, "/reviews/accept", &[("campaign", campaign.as_str())]).await.status().as_u16() }
    };
    assert_eq!(accept(&web.auditor).await, 404, "not a reviewer of that campaign");
    let garbled = web.post(&web.requester, "/reviews/accept", &[("campaign", "latest")]).await;
    assert_eq!(garbled.status().as_u16(), 400);
    let said = garbled.text().await.unwrap();
    assert!(said.contains(&crate::harness::escape("'latest' is not a number")), "{said}");
    assert!(
        store
            .reviews()
            .list_items(&all)
            .await
            .unwrap()
            .iter()
            .all(|i| i.decision == attest_domain::review::Decision::Pending)
    );
    assert_eq!(accept(&web.requester).await, 303);
    let accepted = store.reviews().list_items(&all).await.unwrap();
    assert!(accepted.iter().any(|i| i.decision != attest_domain::review::Decision::Pending), "{accepted:?}");
    for item in &accepted {
        use attest_domain::review::{Decision, Recommendation};
        let expected = match item.recommendation {
            Recommendation::Approve => Decision::Approve,
            Recommendation::Revoke => Decision::Revoke,
            Recommendation::Review => Decision::Pending,
        };
        assert_eq!(item.decision, expected, "{item:?}");
        if expected != Decision::Pending {
            assert_eq!(item.decided_by.as_deref(), Some(web.requester.email.as_str()), "{item:?}");
            assert!(item.justification.as_deref().unwrap_or_default().starts_with("accepted the recommendation"));
        }
    }
    web.stop().await;
});

db_test!(reviewers_are_each_persons_manager_else_the_fallback_or_a_named_groups_members, true, |db| {
    let tenant = Tenant::connect(&db).await;
    let (sim, dir) = (&tenant.sim, &tenant.dir);
    let run = |args: Vec<&str>| tenant.run(args);
    // A group of three: the first is managed by a fourth person, the second by nobody, the
    // third by the first. A second group's two members review by name of their group.
    let (group, reviewers_group, users) = sim.sim.write(|t| {
        let users: Vec<(String, String)> = t
            .live_users()
            .filter(|u| u.account_enabled && u.user_type == "Member" && u.mail.is_some())
            .take(7)
            .map(|u| (u.id.clone(), u.user_principal_name.clone()))
            .collect();
        let managers = [(0, Some(3)), (1, None), (2, Some(0))];
        for (who, manager) in managers {
            let user = t.users.iter_mut().find(|u| u.id == users[who].0).unwrap();
            user.manager = manager.map(|m: usize| users[m].0.clone());
        }
        let ids: Vec<String> = t
            .groups
            .iter()
            .filter(|g| g.deleted.is_none() && g.accepts_membership_writes() && g.is_assignable_to_role != Some(true))
            .take(2)
            .map(|g| g.id.clone())
            .collect();
        for g in t.groups.iter_mut() {
            if g.id == ids[0] {
                g.members = users[..3].iter().map(|(id, _)| id.clone()).collect();
            } else if g.id == ids[1] {
                g.members = vec![users[4].0.clone(), users[5].0.clone()];
            }
        }
        (ids[0].clone(), ids[1].clone(), users)
    });
    assert!(run(vec!["sync", "--full"]).await.success);
    let reviewers_of = |items: &[serde_json::Value], member: &str| -> Vec<String> {
        let item = items.iter().find(|i| i["principal"]["object_id"] == member).unwrap();
        let mut ids: Vec<String> =
            item["reviewers"].as_array().unwrap().iter().map(|r| r["object_id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    let create = |mode: &str, extra: String| {
        let text = format!(
            "name = \"By {mode}\"\nowners = [\"{}\"]\n[scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\n\
             resources = [\"{group}\"]\nentitlements = [\"member\"]\n[reviewers]\nmode = \"{mode}\"\n{extra}",
            users[6].1
        );
        let file = dir.join(format!("{mode}.toml"));
        std::fs::write(&file, text).unwrap();
        let path = file.display().to_string();
        async move { run(vec!["campaign", "create", "--file", &path]).await }
    };

    // Manager: each member's manager at start, else the fallback; never the person themselves.
    assert!(create("manager", format!("fallback = [\"{}\"]\n", users[6].1)).await.success);
    let started = run(vec!["campaign", "start", "1"]).await;
    assert!(started.success, "{:?}\n{}", started.error, started.stdout);
    let items = tenant.items("1", None).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(reviewers_of(&items, &users[0].0), vec![users[3].0.clone()], "the manager");
    assert_eq!(reviewers_of(&items, &users[1].0), vec![users[6].0.clone()], "no manager: the fallback");
    assert_eq!(reviewers_of(&items, &users[2].0), vec![users[0].0.clone()], "a manager in the same group");
    // Snapshot: a manager changed after the start applies to the next instance only.
    sim.sim.write(|t| t.users.iter_mut().find(|u| u.id == users[1].0).unwrap().manager = Some(users[3].0.clone()));
    assert!(run(vec!["sync", "--full"]).await.success);
    assert_eq!(reviewers_of(&tenant.items("1", None).await, &users[1].0), vec![users[6].0.clone()]);

    // A manager accepts the recommendations on their items (--json): what was recommended
    // approve or revoke is decided so, by them; "review" stays pending.
    let accepted = run(vec!["campaign", "accept", "1", "--as", &users[3].1, "--json"]).await;
    assert!(accepted.success, "{:?}", accepted.error);
    let accepted: serde_json::Value = serde_json::from_str(&accepted.stdout).unwrap();
    assert_eq!(accepted["reviewer_object_id"].as_str(), Some(users[3].0.as_str()), "{accepted}");
    let theirs = tenant.items("1", None).await;
    let item = theirs.iter().find(|i| i["principal"]["object_id"] == users[0].0.as_str()).unwrap();
    let expected = match item["recommendation"].as_str().unwrap() {
        "approve" => "approve",
        "revoke" => "revoke",
        _ => "pending",
    };
    assert_eq!(item["decision"].as_str(), Some(expected), "{item}");
    assert_eq!(accepted["decided"].as_u64(), Some(u64::from(expected != "pending")), "{accepted}");
    let mut others = theirs.iter().filter(|i| i["principal"]["object_id"] != users[0].0.as_str());
    assert!(others.all(|i| i["decision"] == "pending"), "only their own items: {theirs:?}");

    // Named by group: every member of the group reviews every item.
    assert!(create("named", format!("named = [\"{reviewers_group}\"]\n")).await.success);
    let started = run(vec!["campaign", "start", "2"]).await;
    assert!(started.success, "{:?}\n{}", started.error, started.stdout);
    let items = tenant.items("2", None).await;
    let mut both = vec![users[4].0.clone(), users[5].0.clone()];
    both.sort();
    for (member, _) in &users[..3] {
        assert_eq!(reviewers_of(&items, member), both, "{items:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
});

db_test!(bench_review_prints_every_figure, true, |db| {
    let outcome = crate::harness::attest_on(
        &db,
        &[
            "bench",
            "review",
            "--users",
            "600",
            "--groups",
            "40",
            "--grants",
            "4000",
            "--inbox-items",
            "50",
            "--bulk",
            "50",
            "--revocations",
            "300",
            "--seconds",
            "1",
            "--connections",
            "4",
            "--apply",
            "40",
            "--apply-users",
            "300",
            "--latency-ms",
            "0",
        ],
    )
    .await;
    assert!(outcome.success, "{:?}\n{}", outcome.error, outcome.stdout);
    for figure in [
        "start (snapshot",
        "of which: reading",
        "inbox, first page",
        "bulk decision: 50 items",
        "revocations queued: 300",
        "write quota",
        "40 revocations in",
        "the items say: applied 40",
    ] {
        assert!(outcome.stdout.contains(figure), "{figure}: {}", outcome.stdout);
    }
});

db_test!(
    inherited_access_is_reviewed_through_its_group_and_access_gone_by_the_close_ends_already_removed_or_not_found,
    true,
    |db| {
        use attest_domain::review::{ApplyOutcome, Decision};
        let web = crate::web::Web::boot(&db).await;
        let store = db.store.clone();
        let connector = store.connectors().list_connectors().await.unwrap().remove(0);
        // A security group nested in another, with its own member; the outer group has two direct
        // members too. None of them is signed in.
        let signed_in: Vec<String> = [&web.admin, &web.approver, &web.auditor, &web.owner, &web.requester]
            .iter()
            .map(|p| p.object_id.clone())
            .collect();
        let requester = web.requester.object_id.clone();
        let (parent, nested, nested_name, person) = web.sim.sim.write(|t| {
            let users: Vec<String> = t
                .live_users()
                .filter(|u| u.account_enabled && u.user_type == "Member" && !signed_in.contains(&u.id))
                .take(3)
                .map(|u| u.id.clone())
                .collect();
            let plain = |g: &attest_entra_sim::tenant::Group| {
                g.deleted.is_none()
                    && g.accepts_membership_writes()
                    && g.security_enabled
                    && !g.group_types.iter().any(|t| t == "Unified")
                    && g.is_assignable_to_role != Some(true)
            };
            let ids: Vec<String> = t.groups.iter().filter(|g| plain(g)).take(2).map(|g| g.id.clone()).collect();
            let (parent, nested) = (ids[0].clone(), ids[1].clone());
            for g in t.groups.iter_mut() {
                if g.id == nested {
                    g.members = vec![users[0].clone()];
                } else if g.id == parent {
                    g.members = vec![nested.clone(), users[1].clone(), users[2].clone(), requester.clone()];
                }
            }
            let name = t.groups.iter().find(|g| g.id == nested).unwrap().display_name.clone();
            (parent, nested, name, users[0].clone())
        });
        let sync_now = || async {
            let before = store.syncs().list_sync_runs(connector.id, 100).await.unwrap().len();
            assert_eq!(
                web.post(&web.owner, "/connectors/contoso/sync", &[("mode", "full")]).await.status().as_u16(),
                303
            );
            let synced = eventually(Duration::from_secs(60), || {
                let store = store.clone();
                async move {
                    let runs = store.syncs().list_sync_runs(connector.id, 100).await.unwrap();
                    runs.len() > before && runs[0].finished_at.is_some()
                }
            });
            assert!(synced.await, "the sync ran");
        };
        sync_now().await;
        let definition = format!(
            "name = \"Nested review\"\nowners = [\"{}\"]\n[scope]\nconnector = \"contoso\"\nresource_kinds = [\"group\"]\n\
         resources = [\"{parent}\"]\nentitlements = [\"member\"]\nprincipals = \"users\"\ninclude_inherited = true\n\
         [reviewers]\nmode = \"named\"\nnamed = [\"{}\"]\nfallback = [\"{}\"]\n[settings]\nauto_apply = true\n\
         justification_required = \"none\"\n",
            web.owner.email, web.requester.email, web.approver.email
        );
        let created = web.post(&web.admin, "/campaigns/new", &[("definition", definition.as_str())]).await;
        assert_eq!(created.status().as_u16(), 303);
        let path = created.headers()["location"].to_str().unwrap().to_owned();
        let id: i64 = path.trim_start_matches("/campaigns/").parse().unwrap();
        assert_eq!(web.post(&web.owner, &format!("{path}/start"), &[]).await.status().as_u16(), 303);
        let instance = store.reviews().get_campaign(id).await.unwrap().instance.unwrap();
        let all = attest_store::ItemFilter { instance: Some(instance.id), limit: 100, ..Default::default() };
        let items = store.reviews().list_items(&all).await.unwrap();
        assert_eq!(items.len(), 4, "three direct members and one through the nested group: {items:?}");
        let inherited = items
            .iter()
            .find(|i| i.principal_object == person && i.held_as == "inherited")
            .unwrap_or_else(|| panic!("the inherited membership is an item: {items:?}"));
        assert_eq!(inherited.via_name.as_deref(), Some(nested_name.as_str()));
        let inherited = inherited.id;

        // The reviewer's own membership is someone else's to review: not in their inbox, and
        // refused if they try, through the page and the API.
        let own = items.iter().find(|i| i.principal_object == requester).unwrap().id;
        let api = |query: String| {
            let web = &web;
            async move {
                let (status, body) =
                    web.get(Some(&web.requester), &format!("/api/v1/reviews?campaign={id}&{query}")).await;
                assert_eq!(status, 200, "{body}");
                serde_json::from_str::<serde_json::Value>(&body).unwrap()
            }
        };
        let mine = api("state=all".into()).await;
        let listed: Vec<i64> = mine["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
        assert_eq!(listed.len(), 3, "{mine}");
        assert!(!listed.contains(&own), "{mine}");
        let one = format!("{own}:approve");
        assert_eq!(web.post(&web.requester, "/reviews/decide", &[("one", &one)]).await.status().as_u16(), 404);
        let refused = crate::harness::browser()
            .post(format!("{}/api/v1/reviews/decide", web.base))
            .header("cookie", &web.requester.cookie)
            .header("x-csrf-token", &web.requester.csrf)
            .json(&serde_json::json!({"items": [own], "decision": "approve"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 404);
        // The inbox's filters and orders: each recommendation lists exactly its items, a kind
        // with none lists none, and ordered by person the names come in order.
        let mut by_recommendation = 0;
        for r in ["approve", "revoke", "review"] {
            let found = api(format!("recommendation={r}")).await;
            let found = found["items"].as_array().unwrap().clone();
            assert!(found.iter().all(|i| i["recommendation"] == r), "{found:?}");
            by_recommendation += found.len();
        }
        assert_eq!(by_recommendation, 3);
        assert_eq!(api("kind=application".into()).await["total"].as_u64(), Some(0));
        assert_eq!(api("kind=group".into()).await["total"].as_u64(), Some(3));
        let ordered = api("order=person".into()).await;
        let names: Vec<String> = ordered["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["principal"]["name"].as_str().unwrap().to_lowercase())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);

        // The inbox row says which group it comes through and what a revoke removes.
        let (_, inbox) = web.get(Some(&web.requester), &format!("/reviews?campaign={id}")).await;
        let at = inbox.find(&format!("<tr id=\"item-{inherited}\">")).unwrap_or_else(|| panic!("the row: {inbox}"));
        let row = inbox[at..].split("</tr>").next().unwrap();
        let via = crate::harness::escape(&nested_name);
        assert!(row.contains(&format!("inherited via {via}")), "{row}");
        assert!(row.contains(&format!("revoking removes them from {via}")), "{row}");

        // All three revoked. Before the close one direct member's membership is removed in Entra,
        // and the other person is deleted (both synced): at the close these end "already removed"
        // and "not found", with no change, not "failed".
        let direct: Vec<&attest_store::Item> =
            items.iter().filter(|i| i.held_as == "direct" && i.principal_object != requester).collect();
        let (direct_id, direct_object) = (direct[0].id, direct[0].principal_object.clone());
        let (deleted_id, deleted_object) = (direct[1].id, direct[1].principal_object.clone());
        for item in [inherited, direct_id, deleted_id] {
            let one = format!("{item}:revoke");
            assert_eq!(web.post(&web.requester, "/reviews/decide", &[("one", &one)]).await.status().as_u16(), 303);
        }
        web.sim.sim.write(|t| {
            let group = t.groups.iter_mut().find(|g| g.id == parent).unwrap();
            group.members.retain(|m| m != &direct_object);
            t.delete_user(&deleted_object, attest_domain::Clock::now(&attest_domain::SystemClock)).unwrap();
        });
        sync_now().await;
        assert_eq!(web.post(&web.owner, &format!("{path}/close"), &[]).await.status().as_u16(), 303);

        // The inherited access ends with the person's own membership of the group it comes through.
        let gone = eventually(Duration::from_secs(60), || {
            let (sim, nested, who) = (web.sim.sim.clone(), nested.clone(), person.clone());
            async move { sim.read(|t| !t.group(&nested).unwrap().members.contains(&who)) }
        });
        assert!(gone.await, "revoking removed the membership it comes through");
        let revoked = attest_store::ItemFilter { decision: Some(Decision::Revoke), ..all };
        let settled = eventually(Duration::from_secs(30), || {
            let (store, filter) = (store.clone(), revoked.clone());
            async move {
                let items = store.reviews().list_items(&filter).await.unwrap();
                let outcome = |id: i64| items.iter().find(|i| i.id == id).and_then(|i| i.outcome());
                outcome(inherited) == Some(ApplyOutcome::Applied)
                    && outcome(direct_id) == Some(ApplyOutcome::AlreadyRemoved)
                    && outcome(deleted_id) == Some(ApplyOutcome::NotFound)
            }
        });
        assert!(settled.await, "applied through the group, already removed, not found");
        for ended in store.reviews().list_items(&revoked).await.unwrap().into_iter().filter(|i| i.id != inherited) {
            assert!(ended.change_id.is_none(), "no change for access already gone: {ended:?}");
        }
        let (_, csv) = web.get(Some(&web.owner), &format!("{path}/export.csv")).await;
        assert!(csv.lines().any(|l| l.contains(&deleted_object) && l.contains(",not_found,")), "{csv}");
        web.stop().await;
    }
);
