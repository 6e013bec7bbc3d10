//! The pages and the JSON API as people use them: the directory with *why* each grant is held,
//! the side panel's actions applied in Entra (sensitive ones after a second person approves),
//! the changes queue, sync runs and "Sync now", the audit log and its exports.

use std::time::Duration;

use attest_domain::{ChangeId, ChangeState, GrantSource, PrincipalKind, ResourceKind};
use attest_store::db_test;

use crate::web::{Web, change_id, eventually};

db_test!(the_directory_shows_who_holds_what_and_why, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    // Someone who holds access through a nested group.
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let people = store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 500).await.unwrap();
    let mut inherited = None;
    for p in &people {
        let access = store.directory().list_access_of_principal(p.id).await.unwrap();
        if let Some(a) = access.iter().find(|a| a.grant.source == GrantSource::Inherited && a.via.is_some()) {
            inherited = Some((p.clone(), a.clone()));
            break;
        }
    }
    let (person, held) = inherited.expect("someone inherits access through a group");
    let via = held.via.clone().unwrap();
    let (status, page) = web.get(Some(&web.admin), &format!("/principals/{}", person.id.0)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&person.data.display_name), "{page}");
    assert!(
        page.contains(&format!("inherited via <a href=\"/principals/{}\">{}</a>", via.id.0, via.display_name)),
        "the page says which group the access comes through: {page}"
    );
    assert!(page.contains("direct"), "{page}");
    assert!(page.contains("id=\"actions\""), "an administrator gets the side panel");
    // Someone with a manager links to them.
    let managed = people
        .iter()
        .find(|p| p.data.manager_external_id.as_ref().is_some_and(|m| people.iter().any(|q| &q.data.external_id == m)))
        .expect("someone's manager is synced");
    let boss = people.iter().find(|q| Some(&q.data.external_id) == managed.data.manager_external_id.as_ref()).unwrap();
    let (_, page) = web.get(Some(&web.admin), &format!("/principals/{}", managed.id.0)).await;
    assert!(page.contains(&format!("<a href=\"/principals/{}\">{}</a>", boss.id.0, boss.data.display_name)), "{page}");
    // An auditor reads it all but gets no actions.
    let (status, audited) = web.get(Some(&web.auditor), &format!("/principals/{}", person.id.0)).await;
    assert!(status == 200 && !audited.contains("id=\"actions\"") && !audited.contains(">Remove<"), "{audited}");

    // The resource's page lists its holders, a page at a time, with the same reasons.
    let (status, resource) = web.get(Some(&web.admin), &format!("/resources/{}", held.resource.id.0)).await;
    assert_eq!(status, 200);
    assert!(resource.contains(&held.resource.display_name) && resource.contains(&person.data.display_name));
    let (_, api) = web.get(Some(&web.admin), &format!("/api/v1/resources/{}", held.resource.id.0)).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let total = api["total"].as_u64().unwrap();
    assert!(total >= 1 && api["holders"].as_array().unwrap().len() as u64 == total.min(50), "{api}");

    // Lists: groups with their counts, searchable; applications; roles.
    let group_name = via.display_name.clone();
    let (status, groups) = web.get(Some(&web.admin), &format!("/groups?q={}", group_name.replace(' ', "+"))).await;
    assert!(status == 200 && groups.contains(&group_name) && groups.contains(" member"), "{groups}");
    for path in ["/applications", "/roles", "/people?page=999999999999", "/groups?q=%25%5F"] {
        let (status, body) = web.get(Some(&web.auditor), path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, listed) = web.get(Some(&web.admin), "/api/v1/groups").await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let real = store.directory().search_resources(ResourceKind::Group, "", None, 1, 0).await.unwrap().1;
    assert_eq!(listed["total"].as_u64(), Some(real));

    // The people search finds exactly those of whom every query word begins a word of their
    // name, user principal name or email, in name order.
    let everyone = store.directory().list_people_search_keys().await.unwrap();
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    for q in ["", "a", "ADA", "knuth", "contoso21", "donald knu", "zzz-nobody", "%"] {
        let (_, found) = web.get(Some(&web.admin), &format!("/api/v1/people?q={}", url_encode(q))).await;
        let found: serde_json::Value = serde_json::from_str(&found).unwrap();
        let mut expected: Vec<&attest_store::PersonKeys> = everyone
            .iter()
            .filter(|(_, _, name, upn, email)| {
                let theirs: Vec<String> = [Some(name.as_str()), upn.as_deref(), email.as_deref()]
                    .into_iter()
                    .flatten()
                    .flat_map(&words)
                    .collect();
                let wanted = words(q);
                (q.trim().is_empty() || !wanted.is_empty())
                    && wanted.iter().all(|w| theirs.iter().any(|t| t.starts_with(w.as_str())))
            })
            .collect();
        expected.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)));
        assert_eq!(found["total"].as_u64(), Some(expected.len() as u64), "{q}");
        let got: Vec<i64> = found["people"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
        let want: Vec<i64> = expected.iter().take(50).map(|p| p.0).collect();
        assert_eq!(got, want, "{q}");
    }
    assert!(web.get(Some(&web.admin), "/people?q=knuth").await.1.contains("Knuth"));

    // Unknown and malformed ids.
    assert_eq!(web.get(Some(&web.admin), "/principals/99999999").await.0, 404);
    assert_eq!(web.get(Some(&web.admin), "/principals/abc").await.0, 400);
    let (status, body) = web.get(Some(&web.admin), "/api/v1/principals/99999999").await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"], "not_found");
    let (status, body) = web.get(None, "/api/v1/people").await;
    assert_eq!(
        (status, serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"].as_str()),
        (401, Some("signed_out"))
    );
    web.stop().await;
});

db_test!(side_panel_actions_change_entra_and_sensitive_ones_wait_for_a_second_person, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let page_path = format!("/principals/{}", target.id.0);
    let actions = format!("{page_path}/actions");
    let (group_id, group_name) = web.group_to_join(&web.requester);

    // Add to a group (not sensitive): applied at once, in Entra and on the page.
    let added = web
        .post(
            &web.admin,
            &actions,
            &[
                ("action", "add_to_group"),
                ("nonce", "nonce-add-0123456789"),
                ("group", &group_name),
                ("relation", "member"),
            ],
        )
        .await;
    assert_eq!(added.status().as_u16(), 303);
    let id = change_id(&added);
    let change = store.changes().get_change(ChangeId(id)).await.unwrap();
    assert_eq!(change.state, ChangeState::Applied, "{change:?}");
    assert!(web.sim.sim.read(|t| t.group(&group_id).unwrap().members.contains(&web.requester.object_id)));
    let (_, shown) = web.get(Some(&web.admin), &format!("/changes/{id}")).await;
    assert!(
        shown.contains("applied") && shown.contains(&group_name) && shown.contains(&target.data.display_name),
        "{shown}"
    );
    // The same form again (a double click) queues nothing new.
    let again = web
        .post(
            &web.admin,
            &actions,
            &[
                ("action", "add_to_group"),
                ("nonce", "nonce-add-0123456789"),
                ("group", &group_name),
                ("relation", "member"),
            ],
        )
        .await;
    assert_eq!(change_id(&again), id);
    // The principal's page shows the membership as direct, with a Remove button that works.
    let (_, page) = web.get(Some(&web.admin), &page_path).await;
    assert!(page.contains(&group_name), "{page}");
    let access = store.directory().list_access_of_principal(target.id).await.unwrap();
    let grant =
        access.iter().find(|a| a.resource.external_id == group_id && a.grant.source == GrantSource::Direct).unwrap();
    let grant_id = grant.grant.id.0.to_string();
    // Removing asks first, on a page that says what will happen; nothing is queued until then.
    let form = [("action", "remove_grant"), ("nonce", "nonce-remove-0123456789"), ("grant", grant_id.as_str())];
    let queued_before =
        store.changes().list_changes(&attest_store::ChangeFilter { limit: 1000, ..Default::default() }).await.unwrap();
    let asked = web.post(&web.owner, &actions, &form).await;
    assert_eq!(asked.status().as_u16(), 200);
    let asked = asked.text().await.unwrap();
    let what = asked.split("id=\"confirm-what\">").nth(1).expect("the confirmation page").split("</p>").next().unwrap();
    assert!(what.contains(&format!("remove member {} from group {group_name}", target.data.display_name)), "{what}");
    assert!(
        asked.contains("id=\"confirm-consequence\">They stop being a member")
            && asked.contains("applied in Entra as soon as you confirm"),
        "{asked}"
    );
    assert!(asked.contains("name=\"confirm\" value=\"yes\"") && asked.contains("name=\"reason\""), "{asked}");
    let queued_after =
        store.changes().list_changes(&attest_store::ChangeFilter { limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(queued_before.len(), queued_after.len(), "asking to confirm queues nothing");
    let confirmed = [&form[..], &[("confirm", "yes"), ("reason", "moved to Sales")]].concat();
    let removed = web.post(&web.owner, &actions, &confirmed).await;
    assert_eq!(removed.status().as_u16(), 303, "the connector's owner removes it");
    let removal = store.changes().get_change(ChangeId(change_id(&removed))).await.unwrap();
    assert_eq!(removal.reason.as_deref(), Some("moved to Sales"), "the reason is kept with the change");
    assert_eq!(store.changes().get_change(ChangeId(change_id(&removed))).await.unwrap().state, ChangeState::Applied);
    assert!(!web.sim.sim.read(|t| t.group(&group_id).unwrap().members.contains(&web.requester.object_id)));
    // Bad input is refused with a reason, and nothing is queued.
    let unknown = web
        .post(
            &web.admin,
            &actions,
            &[("action", "add_to_group"), ("nonce", "nonce-bad-0123456789"), ("group", "No Such Group")],
        )
        .await;
    assert_eq!(unknown.status().as_u16(), 400);
    // The person's page again: the form as typed, what is wrong beside the field.
    let again = unknown.text().await.unwrap();
    assert!(again.contains("no group is named") && again.contains("id=\"group-error\""), "{again}");
    assert!(again.contains("id=\"actions\"") && again.contains("aria-invalid=\"true\""), "{again}");
    // A name typed short: the groups it may have meant, each one click away.
    let typed: String = group_name.chars().take(group_name.len() - 1).collect();
    let short = web
        .post(
            &web.admin,
            &actions,
            &[("action", "add_to_group"), ("nonce", "nonce-short-0123456789"), ("group", &typed)],
        )
        .await;
    assert_eq!(short.status().as_u16(), 400);
    let short = short.text().await.unwrap();
    let offered = short.split("id=\"group-candidates\"").nth(1).expect("candidates");
    assert!(offered.contains(&format!(">{group_name}</button>")), "{offered}");
    assert!(short.contains(&format!("value=\"{}\"", typed.trim())), "the form keeps what was typed");
    let unconfirmed = web.post(&web.admin, &actions, &[("action", "delete"), ("nonce", "nonce-del-0123456789")]).await;
    assert_eq!(unconfirmed.status().as_u16(), 200);
    let unconfirmed = unconfirmed.text().await.unwrap();
    assert!(
        unconfirmed.contains("<h1>Delete user?</h1>")
            && unconfirmed.contains("restored for 30 days")
            && unconfirmed.contains("waits for a second person"),
        "{unconfirmed}"
    );
    // The auditor and the requester cannot act.
    for who in [&web.auditor, &web.requester] {
        let refused = web.post(who, &actions, &[("action", "block"), ("nonce", "nonce-nope-0123456789")]).await;
        assert_eq!(refused.status().as_u16(), 403);
    }

    // Block sign-in is sensitive: it waits; its requester cannot approve it; another admin does.
    let blocked = web
        .post(
            &web.admin,
            &actions,
            &[
                ("action", "block"),
                ("nonce", "nonce-block-0123456789"),
                ("confirm", "yes"),
                ("reason", "laptop reported stolen"),
            ],
        )
        .await;
    let block = change_id(&blocked);
    // The change's page then says, once, what was done, with a way back to the person.
    let flash = blocked.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let cookie = format!("{}; {flash}", web.admin.cookie);
    let shown = crate::harness::browser()
        .get(format!("{}/changes/{block}", web.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(shown.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "said once");
    let shown = shown.text().await.unwrap();
    let said = shown.split("id=\"flash\"").nth(1).expect("a flash");
    assert!(
        said.contains(&format!("Change #{block} asked for"))
            && said.contains(&format!("href=\"{}\"", page_path.replace('/', "&#x2f;"))),
        "{said}"
    );
    assert!(!web.get(Some(&web.admin), &format!("/changes/{block}")).await.1.contains("id=\"flash\""));
    assert_eq!(store.changes().get_change(ChangeId(block)).await.unwrap().state, ChangeState::AwaitingApproval);
    let (_, waiting) = web.get(Some(&web.admin), &format!("/changes/{block}")).await;
    assert!(waiting.contains("a second person") && !waiting.contains("Approve and apply"), "{waiting}");
    // The approver sees who asked and why, with approve and deny.
    let (_, deciding) = web.get(Some(&web.approver), &format!("/changes/{block}")).await;
    let decide = deciding.split("id=\"decide\"").nth(1).expect("the approver's decision");
    assert!(
        decide.contains(&web.admin.email)
            && decide.contains("laptop reported stolen")
            && decide.contains("Approve and apply")
            && decide.contains(&format!("action=\"/changes/{block}/deny\"")),
        "{decide}"
    );
    // A second click (a new form, a new nonce) returns the same change; the panel says it is
    // already asked for, with a link.
    let again = web
        .post(
            &web.admin,
            &actions,
            &[("action", "block"), ("nonce", "nonce-block-again-0123456789"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(change_id(&again), block, "asked twice, queued once");
    let (_, panel) = web.get(Some(&web.owner), &page_path).await;
    let open = panel.split("id=\"open-changes\"").nth(1).expect("the panel lists what is already asked for");
    assert!(open.contains(&format!("href=\"/changes/{block}\"")) && open.contains("awaiting approval"), "{open}");
    let (_, dashboard) = web.get(Some(&web.approver), "/").await;
    assert!(
        dashboard.contains("Awaiting your approval") && dashboard.contains(&format!("/changes/{block}")),
        "{dashboard}"
    );
    let own = web.post(&web.admin, &format!("/changes/{block}/approve"), &[]).await;
    assert_eq!(own.status().as_u16(), 409);
    let approved = web.post(&web.approver, &format!("/changes/{block}/approve"), &[]).await;
    assert_eq!(approved.status().as_u16(), 303);
    let change = store.changes().get_change(ChangeId(block)).await.unwrap();
    assert_eq!(
        (change.state, change.approved_by.as_deref()),
        (ChangeState::Applied, Some(web.approver.email.as_str()))
    );
    assert!(!web.sim.sim.read(|t| t.live_user(&web.requester.object_id).unwrap().account_enabled));
    let (_, page) = web.get(Some(&web.admin), &page_path).await;
    assert!(page.contains("id=\"sign-in-state\">blocked"), "written through to the graph: {page}");

    // Reset password: approved and applied in person; the approver sees it once, uncached.
    let reset =
        web.post(&web.admin, &actions, &[("action", "reset_password"), ("nonce", "nonce-reset-0123456789")]).await;
    let reset = change_id(&reset);
    let shown = web.post(&web.approver, &format!("/changes/{reset}/approve"), &[]).await;
    assert_eq!(shown.status().as_u16(), 200);
    assert_eq!(shown.headers()["cache-control"], "no-store");
    let body = shown.text().await.unwrap();
    let secret = body.split("id=\"secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    // Whose password it is, named.
    let whose = body.split("id=\"whose\">").nth(1).unwrap();
    assert!(whose.starts_with(&format!("{}'s (", target.data.display_name)), "{whose}");
    assert!(secret.len() >= 16, "{body}");
    let (_, later) = web.get(Some(&web.approver), &format!("/changes/{reset}")).await;
    assert!(!later.contains(&secret), "shown once only");
    assert!(web.sim.sim.read(|t| t.live_user(&web.requester.object_id).unwrap().force_change_password_next_sign_in));

    // Revoking sessions is an incident response: applied at once, no second person.
    let sessions =
        web.post(&web.admin, &actions, &[("action", "revoke_sessions"), ("nonce", "nonce-sessions-0123456789")]).await;
    let sessions = change_id(&sessions);
    assert_eq!(store.changes().get_change(ChangeId(sessions)).await.unwrap().state, ChangeState::Applied);
    // The panel marks what waits for a second person, by the policy.
    let (_, panel) = web.get(Some(&web.admin), &page_path).await;
    let marked = |label: &str| {
        let after = panel.split(&format!(">{label}</button>")).nth(1).unwrap();
        after.trim_start().starts_with("<span class=\"muted second\">needs a second person")
    };
    assert!(marked("Reset password") && !marked("Revoke sessions") && !marked("Add"), "{panel}");

    // A pending sensitive change can be cancelled, once.
    let revoke = web.post(&web.admin, &actions, &[("action", "unblock"), ("nonce", "nonce-revoke-0123456789")]).await;
    let revoke = change_id(&revoke);
    assert_eq!(web.post(&web.owner, &format!("/changes/{revoke}/cancel"), &[]).await.status().as_u16(), 303);
    assert_eq!(store.changes().get_change(ChangeId(revoke)).await.unwrap().state, ChangeState::Cancelled);
    assert_eq!(web.post(&web.admin, &format!("/changes/{revoke}/cancel"), &[]).await.status().as_u16(), 409);

    // A second person may deny a sensitive change instead, saying why; it is never applied.
    let unblock = web
        .post(
            &web.admin,
            &actions,
            &[("action", "unblock"), ("nonce", "nonce-unblock-0123456789"), ("reason", "they are back")],
        )
        .await;
    let unblock = change_id(&unblock);
    let deny = format!("/changes/{unblock}/deny");
    assert_eq!(web.post(&web.admin, &deny, &[("reason", "never mind")]).await.status().as_u16(), 409, "not their own");
    assert_eq!(web.post(&web.approver, &deny, &[("reason", "  ")]).await.status().as_u16(), 400, "a reason is needed");
    assert_eq!(web.post(&web.auditor, &deny, &[("reason", "no")]).await.status().as_u16(), 403);
    let denied = web.post(&web.approver, &deny, &[("reason", "the investigation is still open")]).await;
    assert_eq!(denied.status().as_u16(), 303);
    let change = store.changes().get_change(ChangeId(unblock)).await.unwrap();
    assert_eq!(
        (change.state, change.denied_by.as_deref(), change.denial_reason.as_deref(), change.attempts),
        (ChangeState::Denied, Some(web.approver.email.as_str()), Some("the investigation is still open"), 0)
    );
    assert!(!web.sim.sim.read(|t| t.live_user(&web.requester.object_id).unwrap().account_enabled), "still blocked");
    let (_, shown) = web.get(Some(&web.admin), &format!("/changes/{unblock}")).await;
    assert!(
        shown.contains("id=\"change-denied\"")
            && shown.contains("the investigation is still open")
            && shown.contains("they are back"),
        "{shown}"
    );
    assert_eq!(web.post(&web.approver, &format!("/changes/{unblock}/approve"), &[]).await.status().as_u16(), 409);
    let audit = store.audit().list_audit_events(0, 100_000).await.unwrap();
    let event = audit.iter().find(|e| e.action == "change.denied").expect("the denial is audited");
    assert!(event.details.contains("\"reason\":\"the investigation is still open\""), "{}", event.details);

    // The queue, filtered.
    let (_, applied) = web.get(Some(&web.auditor), "/changes?state=applied").await;
    assert!(
        applied.contains(&format!("/changes/{block}")) && !applied.contains(&format!("/changes/{revoke}\"")),
        "{applied}"
    );
    assert_eq!(web.get(Some(&web.auditor), "/changes?state=bogus").await.0, 400);
    let (_, api) = web.get(Some(&web.auditor), "/api/v1/changes?state=cancelled").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["changes"][0]["id"].as_i64(), Some(revoke));
    web.stop().await;
});

db_test!(sync_runs_sync_now_and_the_audit_log_with_its_exports, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let (status, syncs) = web.get(Some(&web.auditor), "/syncs").await;
    assert!(status == 200 && syncs.contains("full") && syncs.contains("schedule"), "{syncs}");
    assert!(!syncs.contains("Sync now"), "an auditor cannot sync");

    // "Sync now" from the integration owner: recorded, picked up, run.
    let runs_before = store.syncs().list_sync_runs(connector.id, 100).await.unwrap().len();
    let asked = web.post(&web.owner, "/connectors/contoso/sync", &[("mode", "full")]).await;
    assert_eq!(asked.status().as_u16(), 303);
    let ran = eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            let runs = store.syncs().list_sync_runs(connector.id, 100).await.unwrap();
            runs.len() > runs_before
                && runs[0].trigger == attest_domain::SyncTrigger::Manual
                && runs[0].finished_at.is_some()
                && store.syncs().find_sync_request(connector.id).await.unwrap().is_none()
        }
    });
    assert!(ran.await, "the requested sync ran");
    let (_, syncs) = web.get(Some(&web.admin), "/syncs").await;
    assert!(syncs.contains("manual") && syncs.contains("Sync now"), "{syncs}");
    assert_eq!(web.post(&web.owner, "/connectors/nope/sync", &[]).await.status().as_u16(), 404);
    assert_eq!(web.post(&web.owner, "/connectors/contoso/sync", &[("mode", "sideways")]).await.status().as_u16(), 400);

    // Something in the log worth finding: a change, applied.
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let path = format!("/principals/{}/actions", target.id.0);
    let group = web.sim.sim.read(|t| {
        t.live_groups()
            .find(|g| g.accepts_membership_writes() && !g.members.contains(&web.requester.object_id))
            .unwrap()
            .id
            .clone()
    });
    let added = web
        .post(&web.admin, &path, &[("action", "add_to_group"), ("nonce", "nonce-audit-0123456789"), ("group", &group)])
        .await;
    let id = change_id(&added);

    let (status, audit) = web.get(Some(&web.auditor), "/audit").await;
    assert!(status == 200 && audit.contains("Hash chain verified"), "{audit}");
    let (_, filtered) = web.get(Some(&web.auditor), "/audit?action=change.applied").await;
    assert!(filtered.contains("change.applied") && !filtered.contains("change.requested"), "{filtered}");
    assert_eq!(web.get(Some(&web.auditor), "/audit?since=yesterday").await.0, 400);
    assert_eq!(web.get(Some(&web.owner), "/audit").await.0, 403, "integration owners do not read the audit log");

    let csv = browser_get(&web, "/audit/export.csv?action=change.").await;
    assert_eq!(csv.0.as_deref(), Some("text/csv; charset=utf-8"));
    let mut lines = csv.1.lines();
    assert_eq!(lines.next(), Some("seq,occurred_at,actor,action,target_kind,target_id,details,prev_hash,hash"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|r| r.contains("change.applied") && r.contains(&format!(",change,{id},"))), "{rows:?}");
    assert!(rows.iter().all(|r| r.contains(",change.")), "only what the filter selects");

    let json = browser_get(&web, "/audit/export.json?action=change.applied").await;
    let json: serde_json::Value = serde_json::from_str(&json.1).unwrap();
    assert_eq!(json["chain"]["intact"], true);
    assert!(json["events"].as_array().unwrap().iter().all(|e| e["action"] == "change.applied"));
    // Each event's hash is signed with the audit key: `hmac-sha256:` and 64 hex digits.
    let signed =
        |e: &serde_json::Value| e["hash"].as_str().unwrap().strip_prefix("hmac-sha256:").is_some_and(|h| h.len() == 64);
    assert!(json["events"].as_array().unwrap().iter().all(signed));
    // Exporting is itself audited.
    let (_, exported) = web.get(Some(&web.admin), "/audit?action=audit.exported").await;
    assert!(exported.contains(&web.auditor.email), "{exported}");

    // A tampered row shows on the page as a broken chain.
    crate::harness::raw_sql(&db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1").await;
    let (_, broken) = web.get(Some(&web.auditor), "/audit").await;
    assert!(broken.contains("Hash chain BROKEN"), "{broken}");
    web.stop().await;
});

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A download as the auditor: content type and body.
async fn browser_get(web: &Web, path: &str) -> (Option<String>, String) {
    let response = crate::harness::browser()
        .get(format!("{}{path}", web.base))
        .header("cookie", &web.auditor.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (kind, response.text().await.unwrap())
}

db_test!(the_api_makes_the_same_changes_with_json_and_the_csrf_header, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let group = web.sim.sim.read(|t| {
        t.live_groups()
            .find(|g| g.accepts_membership_writes() && !g.members.contains(&web.requester.object_id))
            .unwrap()
            .id
            .clone()
    });
    let post = |who: &crate::web::Person, path: &str, body: serde_json::Value, csrf: Option<String>| {
        let mut request =
            crate::harness::browser().post(format!("{}{path}", web.base)).header("cookie", &who.cookie).json(&body);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let cache = response.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
            (status, cache, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let actions = format!("/api/v1/principals/{}/actions", target.id.0);
    let add = serde_json::json!({"action": "add_to_group", "nonce": "api-add-0123456789", "group": group});
    let (status, _, body) = post(&web.admin, &actions, add.clone(), Some(web.admin.csrf.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["change"]["state"].as_str(), body["change"]["result"].as_str()),
        (Some("applied"), Some("applied"))
    );
    assert!(web.sim.sim.read(|t| t.group(&group).unwrap().members.contains(&web.requester.object_id)));
    let (_, _, again) = post(&web.admin, &actions, add.clone(), Some(web.admin.csrf.clone())).await;
    assert_eq!(again["change"]["id"], body["change"]["id"], "the same nonce is the same change");

    // Refusals answer in JSON: no token, the wrong role, a change that is not theirs to approve.
    let (status, _, refused) = post(&web.admin, &actions, add.clone(), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("csrf")));
    let (status, _, refused) = post(&web.auditor, &actions, add, Some(web.auditor.csrf.clone())).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("forbidden")));
    let reset = serde_json::json!({"action": "reset_password", "nonce": "api-reset-0123456789"});
    let (_, _, waiting) = post(&web.admin, &actions, reset, Some(web.admin.csrf.clone())).await;
    assert_eq!(waiting["change"]["state"], "awaiting_approval");
    let id = waiting["change"]["id"].as_i64().unwrap();
    let approve = format!("/api/v1/changes/{id}/approve");
    let (status, _, own) = post(&web.admin, &approve, serde_json::json!({}), Some(web.admin.csrf.clone())).await;
    assert_eq!((status, own["error"]["code"].as_str()), (409, Some("conflict")));
    let (status, cache, approved) =
        post(&web.approver, &approve, serde_json::json!({}), Some(web.approver.csrf.clone())).await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-store")));
    assert!(approved["temporary_password"].as_str().unwrap().len() >= 16, "{approved}");
    assert_eq!(approved["change"]["state"], "applied");
    // Denying through the API: a reason is required; the answer is the change, denied.
    let block = serde_json::json!({"action": "block", "nonce": "api-block-0123456789", "reason": "offboarding"});
    let (_, _, waiting) = post(&web.admin, &actions, block, Some(web.admin.csrf.clone())).await;
    assert_eq!(
        (waiting["change"]["state"].as_str(), waiting["change"]["reason"].as_str()),
        (Some("awaiting_approval"), Some("offboarding"))
    );
    let deny = format!("/api/v1/changes/{}/deny", waiting["change"]["id"]);
    let (status, _, blank) = post(&web.approver, &deny, serde_json::json!({}), Some(web.approver.csrf.clone())).await;
    assert_eq!((status, blank["error"]["code"].as_str()), (400, Some("bad_request")), "{blank}");
    let (status, _, denied) =
        post(&web.approver, &deny, serde_json::json!({"reason": "not yet"}), Some(web.approver.csrf.clone())).await;
    assert_eq!(status, 200, "{denied}");
    assert_eq!(
        (
            denied["change"]["state"].as_str(),
            denied["change"]["denied_by"].as_str(),
            denied["change"]["denial_reason"].as_str()
        ),
        (Some("denied"), Some(web.approver.email.as_str()), Some("not yet"))
    );

    // Sync now, and a cancel that is too late.
    let (status, _, sync) = post(
        &web.owner,
        "/api/v1/connectors/contoso/sync",
        serde_json::json!({"mode": "full"}),
        Some(web.owner.csrf.clone()),
    )
    .await;
    assert_eq!((status, sync["requested"]["mode"].as_str()), (200, Some("full")), "{sync}");
    let asked = sync.clone();
    let (status, _, late) =
        post(&web.admin, &format!("/api/v1/changes/{id}/cancel"), serde_json::json!({}), Some(web.admin.csrf.clone()))
            .await;
    assert_eq!((status, late["error"]["code"].as_str()), (409, Some("conflict")));

    // What the API sent is what its OpenAPI document says, schema by schema.
    let (_, doc) = web.get(None, "/api/v1/openapi.json").await;
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let (_, list) = web.get(Some(&web.admin), "/api/v1/changes").await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    conforms(&doc, "ChangeList", &list);
    let created_at = list["changes"][0]["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok(), "RFC 3339: {created_at}");
    let (_, one) = web.get(Some(&web.admin), &format!("/api/v1/changes/{id}")).await;
    conforms(&doc, "ChangeDetail", &serde_json::from_str(&one).unwrap());
    conforms(&doc, "Applied", &approved);
    conforms(&doc, "Applied", &body);
    conforms(&doc, "Applied", &denied);
    conforms(&doc, "Error", &late);
    conforms(&doc, "Error", &own);
    let (_, me) = web.get(Some(&web.owner), "/api/v1/me").await;
    conforms(&doc, "Me", &serde_json::from_str(&me).unwrap());
    conforms(&doc, "SyncAsked", &asked);
    let (_, syncs) = web.get(Some(&web.owner), "/api/v1/syncs").await;
    let syncs: serde_json::Value = serde_json::from_str(&syncs).unwrap();
    conforms(&doc, "SyncOverview", &syncs);
    // The Sync now asked for above: still waiting, or already taken by the scheduler it woke.
    let connector = &syncs["connectors"][0];
    assert!(
        connector["requested"]["mode"] == "full"
            || (connector["runs"][0]["mode"] == "full" && connector["runs"][0]["trigger"] == "manual"),
        "the Sync now asked for above: {syncs}"
    );
    assert!(syncs["connectors"][0]["runs"][0]["started_at"].as_str().unwrap().contains('T'), "RFC 3339: {syncs}");
    // Every other area answers with its own type too, as the document says.
    let get = async |who, path: String| {
        serde_json::from_str::<serde_json::Value>(&web.get(Some(who), &path).await.1).unwrap()
    };
    let dashboard = get(&web.admin, "/api/v1/dashboard".into()).await;
    conforms(&doc, "Dashboard", &dashboard);
    assert!(dashboard["changes"][0]["created_at"].as_str().unwrap().contains('T'), "RFC 3339: {dashboard}");
    conforms(&doc, "Dashboard", &get(&web.requester, "/api/v1/dashboard".into()).await);
    let people = get(&web.admin, "/api/v1/people?q=a".into()).await;
    conforms(&doc, "PeopleList", &people);
    for list in ["groups", "applications", "roles"] {
        conforms(&doc, "ResourceList", &get(&web.admin, format!("/api/v1/{list}")).await);
    }
    let groups = get(&web.admin, "/api/v1/groups".into()).await;
    for p in people["people"].as_array().unwrap().iter().take(5) {
        let principal = get(&web.admin, format!("/api/v1/principals/{}", p["id"])).await;
        conforms(&doc, "PrincipalDetail", &principal);
        assert!(principal["principal"]["first_seen_at"].as_str().unwrap().contains('T'), "RFC 3339: {principal}");
    }
    for g in groups["resources"].as_array().unwrap().iter().take(5) {
        conforms(&doc, "ResourceDetail", &get(&web.admin, format!("/api/v1/resources/{}", g["resource"]["id"])).await);
    }
    let audit = get(&web.auditor, "/api/v1/audit".into()).await;
    conforms(&doc, "AuditList", &audit);
    assert!(!audit["events"].as_array().unwrap().is_empty() && audit["chain"]["intact"] == true, "{audit}");
    web.stop().await;
});

/// Fails unless `value` is valid against the document's schema `name`.
fn conforms(doc: &serde_json::Value, name: &str, value: &serde_json::Value) {
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name} does not match its schema: {errors:?}\n{value}");
}

db_test!(signing_in_from_a_link_lands_on_the_page_it_pointed_to_and_nowhere_else, true, |db| {
    let web = Web::boot(&db).await;
    // An approval mail's link, opened signed out: the page says sign in, and remembers where.
    let (status, page) = web.get(None, "/people?q=ada").await;
    assert_eq!(status, 401);
    assert!(page.contains("sign-in?next=%2Fpeople%3Fq%3Dada\">Sign in with Microsoft"), "{page}");
    let (_, callback, remembered, binding) =
        crate::harness::sign_in_starting_at(&web.base, "/auth/sign-in?next=%2Fpeople%3Fq%3Dada", &web.admin.email)
            .await;
    let remembered = remembered.expect("the return path is remembered");
    let cookies = format!("{remembered}; {binding}");
    let landed = crate::harness::browser().get(&callback).header("cookie", &cookies).send().await.unwrap();
    assert_eq!((landed.status().as_u16(), crate::harness::location(&landed).as_str()), (303, "/people?q=ada"));
    let set: Vec<&str> = landed.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(set.iter().any(|c| c.starts_with("attest_session=")), "{set:?}");
    assert!(set.iter().any(|c| c.starts_with("attest_return=;") && c.contains("Max-Age=0")), "{set:?}");
    // Another site, or Attest's own sign-in routes, are never where a sign-in lands.
    for next in ["%2F%2Fevil.example", "https%3A%2F%2Fevil.example", "%2F%5Cevil.example", "%2Fauth%2Flink%2Fx"] {
        let start = format!("/auth/sign-in?next={next}");
        let (_, callback, remembered, binding) =
            crate::harness::sign_in_starting_at(&web.base, &start, &web.admin.email).await;
        assert_eq!(remembered, None, "{next}");
        let forged = format!("attest_return={next}; {binding}");
        let landed = crate::harness::browser().get(&callback).header("cookie", forged).send().await.unwrap();
        assert_eq!(crate::harness::location(&landed), "/", "{next}");
    }
    web.stop().await;
});

db_test!(a_person_s_page_shows_effective_and_ineffective_access_apart_with_what_a_revoke_changes, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let people = store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 500).await.unwrap();
    // Someone listed through a nested group for an app role, and someone holding one as a
    // direct member of the group it is assigned to.
    let (mut listed, mut through_group) = (None, None);
    for p in &people {
        for a in store.directory().list_access_of_principal(p.id).await.unwrap() {
            let app_role = matches!(a.entitlement.id, attest_domain::EntitlementKey::AppRole(_));
            if app_role && a.grant.ineffective.is_some() && a.through.is_some() && listed.is_none() {
                listed = Some((p.clone(), a.clone()));
            }
            if app_role && a.grant.source == GrantSource::Inherited && a.grant.ineffective.is_none() {
                through_group.get_or_insert((p.clone(), a.clone()));
            }
        }
    }
    let (person, row) = listed.expect("someone is listed through a nested group");
    let (via, through) = (row.via.clone().unwrap(), row.through.clone().unwrap());
    let (status, page) = web.get(Some(&web.admin), &format!("/principals/{}", person.id.0)).await;
    assert_eq!(status, 200, "{page}");
    let (access, ineffective) = page.split_once("Listed but not effective").expect("a section apart");
    assert!(
        ineffective.contains(&format!(
            "listed through <a href=\"/principals/{}\">{}</a> → <a href=\"/principals/{}\">{}</a>, but not effective",
            via.id.0, via.display_name, through.id.0, through.display_name
        )),
        "{ineffective}"
    );
    assert!(ineffective.contains("nested groups are not honoured for application role assignments"), "{ineffective}");
    // Not in the access table, and no Remove button for it.
    assert!(!access.contains(&format!("value=\"{}\"", row.grant.id.0)), "{access}");
    let (_, api) = web.get(Some(&web.admin), &format!("/api/v1/principals/{}", person.id.0)).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let listed_row = api["ineffective"].as_array().unwrap().iter().find(|a| a["grant_id"] == row.grant.id.0).unwrap();
    assert_eq!(listed_row["effective"], false);
    assert_eq!(listed_row["ineffective"]["reason"], "nested_group");
    assert_eq!(listed_row["ineffective"]["through"]["id"], through.id.0);
    assert!(api["access"].as_array().unwrap().iter().all(|a| a["effective"] == true), "{api}");

    // The app role through a group names the membership that ends it.
    let (holder, held) = through_group.expect("someone holds an app role through a group");
    let group = held.via.clone().unwrap();
    let (_, api) = web.get(Some(&web.admin), &format!("/api/v1/principals/{}", holder.id.0)).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let access = api["access"].as_array().unwrap();
    let revoke = &access.iter().find(|a| a["grant_id"] == held.grant.id.0).unwrap()["revoke"];
    let remove = revoke["remove"].as_array().unwrap();
    assert_eq!(remove.len(), 1, "{revoke}");
    // What else ends is named up to ten at a time, with a count of the rest.
    assert!(revoke["also_ends"].as_array().unwrap().len() <= 10 && revoke["also_ends_more"].is_u64(), "{revoke}");
    let membership = access.iter().find(|a| a["grant_id"] == remove[0]["grant_id"]).unwrap();
    assert_eq!(
        (membership["entitlement"]["key"].as_str(), membership["why"]["kind"].as_str()),
        (Some("member"), Some("direct"))
    );
    assert_eq!(membership["resource"]["display_name"].as_str(), Some(group.display_name.as_str()));
    let (_, page) = web.get(Some(&web.admin), &format!("/principals/{}", holder.id.0)).await;
    assert!(
        page.contains(&format!(
            "remove membership of <a href=\"/resources/{}\">{}</a>",
            membership["resource"]["id"], group.display_name
        )),
        "{page}"
    );

    // The resource's page lists those Entra does not give it to apart, and its counts leave
    // them out.
    let (_, resource) = web.get(Some(&web.admin), &format!("/resources/{}", row.resource.id.0)).await;
    let (holders, apart) = resource.split_once("Listed but not effective").expect("a section apart");
    assert!(apart.contains(&person.data.display_name), "{apart}");
    let (_, api) = web.get(Some(&web.admin), &format!("/api/v1/resources/{}", row.resource.id.0)).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert!(api["ineffective_total"].as_u64().unwrap() >= 1, "{api}");
    assert!(api["holders"].as_array().unwrap().iter().all(|h| h["effective"] == true));
    let _ = holders;
});

db_test!(every_error_is_a_page_in_the_layout_or_a_json_error_and_forms_opened_again_go_back, true, |db| {
    let web = Web::boot(&db).await;
    // An address that names nothing: a page in the layout, with the person's navigation, what
    // happened, where to go next and the request's reference.
    let (status, page) = web.get(Some(&web.admin), "/nowhere/at/all").await;
    assert_eq!(status, 404);
    for part in [
        "<header>",
        "href=\"/people\"",
        "Sign out",
        "There is nothing at this address",
        "Where next",
        "id=\"reference\"",
    ] {
        assert!(page.contains(part), "{part}: {page}");
    }
    let (status, page) = web.get(None, "/nowhere").await;
    assert!(status == 404 && page.contains("<header>") && !page.contains("Sign out"), "{page}");
    // Under the API: the JSON error body.
    for path in ["/api/v1/nowhere", "/api/v1/principals/1/nothing"] {
        let (status, body) = web.get(Some(&web.admin), path).await;
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    // A malformed id or query value is said in plain words, never a deserializer's.
    for path in ["/principals/abc", "/changes?before=abc", "/api/v1/principals/abc", "/audit?before=x"] {
        let who = if path.starts_with("/audit") { &web.auditor } else { &web.admin };
        let (status, body) = web.get(Some(who), path).await;
        assert_eq!(status, 400, "{path}: {body}");
        for machine in ["Cannot parse", "i64", "Failed to deserialize", "invalid digit"] {
            assert!(!body.contains(machine), "{path} says {machine}: {body}");
        }
        if path.starts_with("/api/") {
            assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"], "bad_request");
        } else {
            assert!(body.contains("<header>") && body.contains("Sign out"), "{path}: {body}");
        }
    }
    assert!(web.get(Some(&web.admin), "/changes?before=abc").await.1.contains("&#x27;before&#x27;"));
    // A hand-edited page number shows the list.
    for path in ["/people?page=-1", "/people?page=abc", "/groups?page=0", "/api/v1/people?page=-5"] {
        assert_eq!(web.get(Some(&web.admin), path).await.0, 200, "{path}");
    }
    // A form's address opened again (back, refresh) goes to the page it belongs to.
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let person =
        store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 1).await.unwrap().remove(0);
    let id = person.id.0;
    for (form, page) in [
        (format!("/changes/{id}/approve"), format!("/changes/{id}")),
        (format!("/principals/{id}/actions"), format!("/principals/{id}")),
        ("/connectors/contoso/sync".to_owned(), "/connectors/contoso".to_owned()),
        ("/auth/sign-out".to_owned(), "/".to_owned()),
    ] {
        let response = crate::harness::browser()
            .get(format!("{}{form}", web.base))
            .header("cookie", &web.admin.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!((response.status().as_u16(), crate::harness::location(&response)), (303, page), "{form}");
    }
    // A method a route does not take: 405, in the route's surface.
    let response = crate::harness::browser()
        .get(format!("{}/api/v1/changes/1/approve", web.base))
        .header("cookie", &web.admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let response = crate::harness::browser()
        .delete(format!("{}/people", web.base))
        .header("cookie", &web.admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(response.text().await.unwrap().contains("<header>"));
    // A refusal names what the page is for, not another page.
    let (status, page) = web.get(Some(&web.owner), "/admin/mail").await;
    assert!(status == 403 && !page.contains("audit log is for"), "{page}");
    let (status, page) = web.get(None, "/people").await;
    assert_eq!(status, 401);
    let main = page.split("<main id=\"main\">").nth(1).unwrap();
    assert_eq!(main.to_lowercase().matches("sign in first").count(), 1, "said once: {page}");
    web.stop().await;
});

db_test!(pages_count_in_words_and_say_each_thing_once, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    // Counts agree with their nouns: "1 member", "2 members".
    let (_, groups) = web.get(Some(&web.admin), "/groups").await;
    let words: Vec<&str> = groups.split(|c: char| c.is_whitespace() || c == '<' || c == '>').collect();
    let mut counted = 0;
    for pair in words.windows(2) {
        if let (Ok(n), noun) = (pair[0].parse::<u64>(), pair[1])
            && (noun.starts_with("member") || noun.starts_with("owner"))
        {
            assert_eq!(noun.ends_with('s'), n != 1, "{n} {noun}");
            counted += 1;
        }
    }
    assert!(counted > 0, "{groups}");
    // A group has no sign-in to speak of.
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let group =
        store.principals().list_principals(connector.id, Some(PrincipalKind::Group), 0, 1).await.unwrap().remove(0);
    let (_, page) = web.get(Some(&web.admin), &format!("/principals/{}", group.id.0)).await;
    assert!(!page.contains("Sign-in"), "{page}");
    // A change applied says so once.
    let person = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let added = web
        .post(
            &web.admin,
            &format!("/principals/{}/actions", person.id.0),
            &[("action", "block"), ("nonce", "nonce-wording-0123456789"), ("confirm", "yes")],
        )
        .await;
    let id = change_id(&added);
    let (_, dashboard) = web.get(Some(&web.approver), "/").await;
    assert!(dashboard.contains("1</div><div class=\"muted\">change awaiting your approval"), "{dashboard}");
    // The navigation marks where you are, and a skip link leads past it.
    assert!(dashboard.contains("<a href=\"/\" aria-current=\"page\">Dashboard</a>"), "{dashboard}");
    assert!(dashboard.contains("href=\"#main\"") && dashboard.contains("<main id=\"main\">"));
    let (_, people) = web.get(Some(&web.admin), "/people").await;
    assert!(people.contains("aria-current=\"page\">People<") && people.matches("aria-current").count() == 1);
    assert!(people.contains("<thead><tr><th scope=\"col\">Name</th>"), "{people}");
    assert_eq!(web.post(&web.approver, &format!("/changes/{id}/approve"), &[]).await.status().as_u16(), 303);
    let (_, change) = web.get(Some(&web.approver), &format!("/changes/{id}")).await;
    assert!(change.contains("class=\"state-applied\">applied</dd>"), "said once: {change}");
    web.stop().await;
});

db_test!(groups_graph_cannot_change_are_refused_before_queueing_and_say_why, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    // A distribution list in Entra, synced.
    web.sim.sim.write(|t| {
        let mut list = t.groups.iter().find(|g| g.deleted.is_none()).unwrap().clone();
        (list.id, list.display_name) = ("00000000-0000-4000-8000-00000000d157".into(), "All Staff (list)".into());
        (list.group_types, list.mail_enabled, list.security_enabled) = (vec![], true, false);
        (list.membership_rule, list.is_assignable_to_role) = (None, None);
        list.mail = Some("allstaff@contoso.com".into());
        t.add_group(list);
    });
    let config = web.dir.join("attest.toml").display().to_string();
    let synced =
        crate::harness::attest(&["--config", &config, "--database-url", db.url.expose(), "sync", "contoso"]).await;
    assert!(synced.success, "{:?}\n{}", synced.error, synced.stdout);
    let (groups, _) = store.directory().search_resources(ResourceKind::Group, "", None, 1000, 0).await.unwrap();
    let flag = |g: &&attest_store::ResourceSummary, name: &str| g.resource.data.attributes[name] == true;
    let dynamic = groups.iter().find(|g| flag(g, "dynamic")).expect("the tenant has a dynamic group");
    let exchange = groups
        .iter()
        .find(|g| flag(g, "distribution") || flag(g, "mailEnabledSecurity"))
        .expect("and a distribution list");
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let person = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let actions = format!("/principals/{}/actions", person.id.0);
    let before = store
        .changes()
        .list_changes(&attest_store::ChangeFilter { limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .len();
    for (group, relation, why) in [
        (dynamic, "member", "dynamic membership rule"),
        (exchange, "member", "Exchange Online"),
        (exchange, "owner", "Exchange Online"),
    ] {
        let id = group.resource.data.external_id.as_str();
        let nonce = format!("nonce-locked-{relation}-{id}");
        let refused = web
            .post(
                &web.admin,
                &actions,
                &[("action", "add_to_group"), ("group", id), ("relation", relation), ("nonce", &nonce)],
            )
            .await;
        assert_eq!(refused.status().as_u16(), 409, "{relation} of {id}");
        let page = refused.text().await.unwrap();
        assert!(page.contains(why) && page.contains("<header>"), "{page}");
    }
    // A dynamic group's owners are not ruled: that is queued.
    let owner = web
        .post(
            &web.admin,
            &actions,
            &[
                ("action", "add_to_group"),
                ("group", &dynamic.resource.data.external_id),
                ("relation", "owner"),
                ("nonce", "nonce-dynamic-owner-0123"),
            ],
        )
        .await;
    assert_eq!(owner.status().as_u16(), 303);
    let after = store
        .changes()
        .list_changes(&attest_store::ChangeFilter { limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .len();
    assert_eq!(after, before + 1, "nothing queued for the refused ones");
    // The group's page says what it is and why its members are not changed here.
    let (_, page) = web.get(Some(&web.admin), &format!("/resources/{}", dynamic.resource.id.0)).await;
    let kind = page.split("id=\"group-type\">").nth(1).unwrap();
    assert!(kind.starts_with("security · dynamic") || kind.starts_with("Microsoft 365 · dynamic"), "{kind}");
    assert!(page.contains("id=\"managed-elsewhere\"") && page.contains("Membership rule"), "{page}");
    // Someone in the dynamic group is offered no Remove for that membership, and the API says so.
    let holders = store.directory().list_holders_of_resource(dynamic.resource.id, 50, 0).await.unwrap().0;
    let member = holders
        .iter()
        .find(|h| {
            h.entitlement.data.key == attest_domain::EntitlementKey::Member && h.grant.source == GrantSource::Direct
        })
        .expect("a direct member");
    let (_, api) = web.get(Some(&web.admin), &format!("/api/v1/principals/{}", member.principal.id.0)).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let row = api["access"].as_array().unwrap().iter().find(|a| a["grant_id"] == member.grant.id.0).unwrap();
    assert_eq!(row["removable"], false, "{row}");
    web.stop().await;
});

db_test!(everyone_reads_their_own_access_and_why, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let me = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let held = store.directory().list_access_of_principal(me.id).await.unwrap();
    let effective: Vec<_> = held.iter().filter(|a| a.grant.ineffective.is_none()).collect();
    assert!(!effective.is_empty(), "the requester holds something");
    // An ordinary user, with no role, finds it from their dashboard.
    let (_, home) = web.get(Some(&web.requester), "/").await;
    assert!(home.contains("href=\"/access\""), "{home}");
    let (status, page) = web.get(Some(&web.requester), "/access").await;
    assert_eq!(status, 200);
    for a in &effective {
        assert!(page.contains(&a.resource.display_name), "{} on their page: {page}", a.resource.display_name);
    }
    // Their own only, and no links into pages that are not theirs to read.
    assert!(!page.contains("href=\"/resources/") && !page.contains("href=\"/principals/"), "{page}");
    let (_, api) = web.get(Some(&web.requester), "/api/v1/me/access").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let (_, doc) = web.get(None, "/api/v1/openapi.json").await;
    conforms(&serde_json::from_str(&doc).unwrap(), "MyAccess", &api);
    let rows = api["directories"][0]["access"].as_array().unwrap();
    assert_eq!(rows.len(), effective.len());
    assert!(rows.iter().all(|r| r["removable"] == false), "nothing to act on");
    assert_eq!(api["directories"][0]["principal"]["external_id"], web.requester.object_id.as_str());
    web.stop().await;
});

db_test!(service_principals_have_their_own_listing_and_empty_searches_say_so, true, |db| {
    let web = Web::boot(&db).await;
    let (status, page) = web.get(Some(&web.auditor), "/service-principals").await;
    assert_eq!(status, 200);
    assert!(page.contains("aria-current=\"page\">Service principals<"), "{page}");
    let (_, api) = web.get(Some(&web.auditor), "/api/v1/service-principals").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let (_, doc) = web.get(None, "/api/v1/openapi.json").await;
    conforms(&serde_json::from_str(&doc).unwrap(), "ServicePrincipalList", &api);
    let listed = api["principals"].as_array().unwrap();
    assert!(!listed.is_empty(), "{api}");
    assert!(listed.iter().all(|p| ["service_principal", "managed_identity"].contains(&p["kind"].as_str().unwrap())));
    assert!(page.contains(listed[0]["display_name"].as_str().unwrap()), "{page}");
    // Searching narrows; a search that finds nothing says so.
    let name = listed[0]["display_name"].as_str().unwrap();
    let (_, found) =
        web.get(Some(&web.auditor), &format!("/api/v1/service-principals?q={}", name.replace(' ', "+"))).await;
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert!(found["total"].as_u64().unwrap() >= 1 && found["total"].as_u64() <= api["total"].as_u64(), "{found}");
    for path in ["/service-principals?q=zzz-nothing", "/people?q=zzz-nothing", "/groups?q=zzz-nothing"] {
        let (_, page) = web.get(Some(&web.auditor), path).await;
        assert!(page.contains("Nothing matches “zzz-nothing”"), "{path}: {page}");
    }
    web.stop().await;
});

db_test!(an_app_role_is_named_by_its_name_not_its_id, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let (apps, _) = store.directory().search_resources(ResourceKind::Application, "", None, 100, 0).await.unwrap();
    let mut found = None;
    for app in &apps {
        for e in store.resources().list_entitlements(app.resource.id).await.unwrap() {
            if let attest_domain::EntitlementKey::AppRole(id) = &e.data.key
                && !id.starts_with("00000000")
            {
                found = Some((app.resource.clone(), id.clone(), e.data.display_name.clone()));
            }
        }
    }
    let (app, role_id, role_name) = found.expect("an application with a named role");
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let person = store.principals().find_user(connector.id, &web.auditor.object_id).await.unwrap().unwrap();
    let assigned = web
        .post(
            &web.admin,
            &format!("/principals/{}/actions", person.id.0),
            &[
                ("action", "assign_app"),
                ("app", &app.data.external_id),
                ("app_role", &role_name),
                ("nonce", "nonce-role-0123456789"),
            ],
        )
        .await;
    let id = change_id(&assigned);
    let (_, page) = web.get(Some(&web.admin), &format!("/changes/{id}")).await;
    assert!(page.contains(&format!("app role {role_name} of {}", app.data.display_name)), "{page}");
    assert!(!page.contains(&format!("app role {role_id}")), "{page}");
    // The change links to the person and the application.
    assert!(page.contains(&format!("<dt>Who</dt><dd><a href=\"/principals/{}\">", person.id.0)), "{page}");
    assert!(page.contains(&format!("<dt>What</dt><dd><a href=\"/resources/{}\">", app.id.0)), "{page}");
    web.stop().await;
});

db_test!(people_are_filtered_by_department_type_and_blocked_and_sorted_by_name, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let users = store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 10_000).await.unwrap();
    let by_id: std::collections::HashMap<i64, &attest_domain::Principal> = users.iter().map(|p| (p.id.0, p)).collect();
    let get =
        async |path: &str| serde_json::from_str::<serde_json::Value>(&web.get(Some(&web.admin), path).await.1).unwrap();
    let ids = |list: &serde_json::Value| -> Vec<i64> {
        list["people"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect()
    };
    let all = get("/api/v1/people").await;
    let department = all["departments"][0].as_str().expect("departments to choose from").to_owned();
    let in_department = get(&format!("/api/v1/people?department={}", department.replace(' ', "+"))).await;
    let expected =
        users.iter().filter(|u| u.data.department.as_deref().map(str::trim) == Some(department.as_str())).count();
    assert_eq!(in_department["total"].as_u64(), Some(expected as u64), "{department}");
    let guests = get("/api/v1/people?type=guest").await;
    assert!(ids(&guests).iter().all(|id| by_id[id].data.user_type == Some(attest_domain::UserType::Guest)), "{guests}");
    let members = get("/api/v1/people?type=member").await;
    assert_eq!(
        guests["total"].as_u64().unwrap() + members["total"].as_u64().unwrap(),
        all["total"].as_u64().unwrap(),
        "everyone is a member or a guest"
    );
    let blocked = get("/api/v1/people?blocked=yes").await;
    assert!(ids(&blocked).iter().all(|id| by_id[id].data.account_enabled == Some(false)), "{blocked}");
    // Z to A is A to Z backwards.
    let total = all["total"].as_u64().unwrap() as usize;
    let last_page = total.div_ceil(50);
    let mut forwards = Vec::new();
    for page in 1..=last_page {
        forwards.extend(ids(&get(&format!("/api/v1/people?page={page}")).await));
    }
    let backwards = ids(&get("/api/v1/people?sort=-name").await);
    assert_eq!(backwards, forwards.iter().rev().take(50).copied().collect::<Vec<_>>());
    assert_eq!(web.get(Some(&web.admin), "/api/v1/people?type=alien").await.0, 400);
    let (_, doc) = web.get(None, "/api/v1/openapi.json").await;
    conforms(&serde_json::from_str(&doc).unwrap(), "PeopleList", &guests);
    // The page keeps the filter in its controls and its pager.
    let (_, page) = web.get(Some(&web.admin), "/people?type=guest&sort=-name").await;
    assert!(
        page.contains("<option value=\"guest\" selected>") && page.contains("<option value=\"-name\" selected>"),
        "{page}"
    );
    web.stop().await;
});
