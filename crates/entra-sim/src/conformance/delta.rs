//! Delta queries (graph-facts §2): rounds, paging, members@delta merged across pages,
//! `@removed`, `Prefer: return=minimal`, replays, expiry and reset.

use std::collections::{BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fixture, error_code, manageable_group, small};
use crate::ClientApp;

/// Follows a delta round to its deltaLink: every item, the number of pages, the deltaLink.
async fn round(f: &Fixture, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, usize, String) {
    let (mut items, mut pages, mut url) = (Vec::new(), 0, first.to_owned());
    loop {
        let (status, _, body) = f.get(&url, headers).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        let next = body["@odata.nextLink"].as_str();
        let delta = body["@odata.deltaLink"].as_str();
        assert!(next.is_some() != delta.is_some(), "exactly one of nextLink and deltaLink: {body}");
        if let Some(next) = next {
            assert!(next.contains("$skiptoken="), "{next}");
            url = next.to_owned();
        } else {
            let delta = delta.unwrap().to_owned();
            assert!(delta.contains("$deltatoken="), "{delta}");
            return (items, pages, delta);
        }
    }
}

/// Applies `members@delta` from a round onto a membership map (group → members).
fn apply_members(state: &mut HashMap<String, BTreeSet<String>>, items: &[Value]) {
    for item in items {
        let id = item["id"].as_str().unwrap().to_owned();
        if item.get("@removed").is_some() {
            state.remove(&id);
            continue;
        }
        let members = state.entry(id).or_default();
        for member in item["members@delta"].as_array().into_iter().flatten() {
            let member_id = member["id"].as_str().unwrap().to_owned();
            assert!(member["@odata.type"].as_str().unwrap().starts_with("#microsoft.graph."));
            if member.get("@removed").is_some() {
                assert_eq!(member["@removed"]["reason"], "deleted");
                members.remove(&member_id);
            } else {
                members.insert(member_id);
            }
        }
    }
}

fn truth_memberships(f: &Fixture) -> HashMap<String, BTreeSet<String>> {
    f.sim.sim.read(|t| {
        t.live_groups().map(|g| (g.id.clone(), g.members.iter().filter(|m| t.is_live(m)).cloned().collect())).collect()
    })
}

#[tokio::test]
async fn users_delta_rounds_report_changes_minimally_and_replay() {
    let mut client = ClientApp::attest(7).with_provisioning();
    client.roles.push("User.ReadWrite.All".into());
    let mut f = Fixture::with_client(small(), client, |_| {}).await;
    f.token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let (items, pages, delta_link) =
        round(&f, "/v1.0/users/delta?$select=displayName,accountEnabled,department", &[]).await;
    let (live, deleted) =
        f.sim.sim.read(|t| (t.live_users().count(), t.users.iter().filter(|u| u.deleted.is_some()).count()));
    assert!(pages > 1, "a tenant of {live} users spans several pages");
    // The initial round holds every live user and, as @removed, the soft-deleted ones.
    let removed: Vec<&Value> = items.iter().filter(|i| i.get("@removed").is_some()).collect();
    assert_eq!(items.len() - removed.len(), live);
    assert_eq!(removed.len(), deleted);
    assert!(removed.iter().all(|i| i["@removed"]["reason"] == "changed"));
    let user = items.iter().find(|i| i.get("@removed").is_none()).unwrap();
    let keys: BTreeSet<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["id", "displayName", "accountEnabled", "department"]));

    // Nothing changed: an empty page and a fresh deltaLink.
    let (status, _, body) = f.get(&delta_link, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));
    assert!(body["@odata.deltaLink"].as_str().unwrap().contains("$deltatoken="));
    assert!(
        body["@odata.context"].as_str().unwrap().ends_with("$metadata#users(displayName,accountEnabled,department)")
    );

    // Disable one user, delete another, change a property nobody selected on a third.
    let ids: Vec<String> = f.sim.sim.read(|t| t.live_users().take(3).map(|u| u.id.clone()).collect());
    let (s, _, _) =
        f.send(Method::PATCH, &format!("/v1.0/users/{}", ids[0]), Some(json!({"accountEnabled": false})), &[]).await;
    assert_eq!(s, 204);
    let (s, _, _) = f.send(Method::DELETE, &format!("/v1.0/users/{}", ids[1]), None, &[]).await;
    assert_eq!(s, 204);
    let (s, _, _) =
        f.send(Method::PATCH, &format!("/v1.0/users/{}", ids[2]), Some(json!({"mail": "x@example.com"})), &[]).await;
    assert_eq!(s, 204);

    let (status, headers, body) = f.get(&delta_link, &[("Prefer", "return=minimal")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["preference-applied"], "return=minimal");
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 2, "only tracked properties count: {body}");
    assert_eq!(value[0], json!({"id": ids[0], "accountEnabled": false}));
    assert_eq!(value[1], json!({"id": ids[1], "@removed": {"reason": "changed"}}));

    // Without the preference every selected property comes back; replaying is harmless.
    let (_, headers, full) = f.get(&delta_link, &[]).await;
    assert!(headers.get("preference-applied").is_none());
    let first = full["value"][0].as_object().unwrap();
    assert_eq!(first.len(), 4, "{first:?}");
    assert_eq!(first["accountEnabled"], false);

    // Restore: the user comes back without an annotation.
    let (s, _, restored) =
        f.send(Method::POST, &format!("/v1.0/directory/deletedItems/{}/restore", ids[1]), None, &[]).await;
    assert_eq!(s, 200, "{restored}");
    let next = full["@odata.deltaLink"].as_str().unwrap();
    let (_, _, body) = f.get(next, &[]).await;
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["id"], ids[1].as_str());
    assert!(value[0].get("@removed").is_none());
}

#[tokio::test]
async fn groups_delta_tracks_members_across_pages_and_rounds() {
    let spec = crate::TenantSpec { users: 6_000, groups: 40, apps: 4, assignments_per_app: 5, seed: 5 };
    let mut f = Fixture::with_client(spec, ClientApp::attest(7).with_provisioning(), |_| {}).await;
    f.token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let (items, pages, delta_link) = round(&f, "/v1.0/groups/delta?$select=displayName,members", &[]).await;
    // The largest group has thousands of members: it spans pages, repeated under its id.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for item in &items {
        *seen.entry(item["id"].as_str().unwrap()).or_default() += 1;
        assert!(item.get("owners@delta").is_none(), "owners were not selected");
    }
    assert!(pages > 1);
    assert!(seen.values().any(|n| *n > 1), "a large group continues on the next page");
    let mut state = HashMap::new();
    apply_members(&mut state, &items);
    assert_eq!(state, truth_memberships(&f));

    // Add and remove through $ref, then read the next round.
    let (group, members, _, outsider) = manageable_group(&f);
    let member = members[0].clone();
    let body = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{outsider}")});
    let (s, _, _) = f.send(Method::POST, &format!("/v1.0/groups/{group}/members/$ref"), Some(body), &[]).await;
    assert_eq!(s, 204);
    let (s, _, _) = f.send(Method::DELETE, &format!("/v1.0/groups/{group}/members/{member}/$ref"), None, &[]).await;
    assert_eq!(s, 204);
    let (items, _, _) = round(&f, &delta_link, &[("Prefer", "return=minimal")]).await;
    assert_eq!(items.len(), 1);
    let changes = items[0]["members@delta"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0], json!({"@odata.type": "#microsoft.graph.user", "id": outsider}));
    assert_eq!(
        changes[1],
        json!({"@odata.type": "#microsoft.graph.user", "id": member, "@removed": {"reason": "deleted"}})
    );
    assert_eq!(items[0].as_object().unwrap().len(), 2, "minimal: id and members@delta only");
}

#[tokio::test]
async fn mutations_replayed_through_delta_reach_the_truth() {
    let f = Fixture::new(small()).await;
    let (users, _, users_link) = round(&f, "/v1.0/users/delta?$select=displayName,manager", &[]).await;
    let (groups, _, groups_link) = round(&f, "/v1.0/groups/delta?$select=displayName,members,owners", &[]).await;
    let mut live_users: BTreeSet<String> =
        users.iter().filter(|u| u.get("@removed").is_none()).map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    let mut memberships = HashMap::new();
    apply_members(&mut memberships, &groups);

    let report = f.sim.mutate(11, 5);
    for kind in crate::mutate::KINDS {
        assert_eq!(report.applied[*kind], 5, "{kind}: {report:?}");
    }
    // A change made while a round is under way is delivered again next round: harmless.
    let (users, _, _) = round(&f, &users_link, &[]).await;
    for user in &users {
        let id = user["id"].as_str().unwrap().to_owned();
        if user.get("@removed").is_some() {
            live_users.remove(&id);
        } else {
            live_users.insert(id);
        }
    }
    let truth: BTreeSet<String> = f.sim.sim.read(|t| t.live_users().map(|u| u.id.clone()).collect());
    assert_eq!(live_users, truth);
    let removed_reasons: BTreeSet<&str> = users.iter().filter_map(|u| u["@removed"]["reason"].as_str()).collect();
    assert_eq!(removed_reasons, BTreeSet::from(["changed", "deleted"]), "soft-deleted and purged users");
    assert!(users.iter().any(|u| u.get("manager@delta").is_some()), "manager changes are tracked");

    let (groups, _, _) = round(&f, &groups_link, &[]).await;
    apply_members(&mut memberships, &groups);
    assert_eq!(memberships, truth_memberships(&f));
}

#[tokio::test]
async fn delta_tokens_expire_reset_and_refuse_misuse() {
    let f = Fixture::new(small()).await;
    // "Sync from now": no data, only a deltaLink.
    let (status, _, body) = f.get("/v1.0/users/delta?$deltatoken=latest", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));
    let latest = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    // The long form works too, and `$filter` by ids narrows a round.
    let id = f.sim.sim.read(|t| t.live_users().next().unwrap().id.clone());
    let (status, _, body) =
        f.get(&format!("/v1.0/users/microsoft.graph.delta?$filter=id eq '{id}'&$select=displayName"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().unwrap().len(), 1);

    for bad in [
        "/v1.0/users/delta?$top=10",
        "/v1.0/users/delta?$expand=manager",
        "/v1.0/users/delta?$filter=displayName eq 'x'",
        "/v1.0/users/delta?$select=nonsense",
    ] {
        let (status, _, body) = f.get(bad, &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, _, first) = f.get("/v1.0/users/delta?$select=displayName", &[]).await;
    let next = first["@odata.nextLink"].as_str().unwrap();
    let (status, _, _) = f.get(&format!("{next}&$select=mail"), &[]).await;
    assert_eq!(status, 400, "options cannot ride along a state token");
    let (status, _, body) = f.get(&format!("{}X", latest), &[]).await;
    assert_eq!(status, 400, "a tampered token: {body}");
    let (status, _, _) = f.get(&latest.replace("/users/", "/groups/"), &[]).await;
    assert_eq!(status, 400, "a token belongs to its collection");

    // Reset: every token answers 410 syncStateNotFound with where to start over.
    f.sim.reset_delta();
    let (status, headers, body) = f.get(&latest, &[]).await;
    assert_eq!(status, 410);
    assert_eq!(error_code(&body), "syncStateNotFound");
    assert!(headers["location"].to_str().unwrap().ends_with("/v1.0/users/delta"));
    assert!(body["error"]["innerError"]["request-id"].is_string());

    // Tokens expire after 7 days.
    let (_, _, body) = f.get("/v1.0/groups/delta?$deltatoken=latest&$select=displayName", &[]).await;
    let link = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    f.sim.advance(chrono::Duration::days(6));
    let mut f = f;
    f.token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = f.get(&link, &[]).await;
    assert_eq!(status, 200);
    f.sim.advance(chrono::Duration::days(2));
    f.token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let (status, headers, body) = f.get(&link, &[]).await;
    assert_eq!(status, 410, "{body}");
    assert!(headers["location"].to_str().unwrap().contains("%24select=displayName"));
}
