//! transitiveMembers, directoryRoles, organization and `$count` (graph-facts §1, §3, §5).

use std::collections::{BTreeSet, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fixture, error_code, small};
use crate::ClientApp;

/// Every item of a listing, following nextLinks.
async fn all(f: &Fixture, first: &str) -> Vec<Value> {
    let (mut items, mut url) = (Vec::new(), first.to_owned());
    loop {
        let (status, _, body) = f.get(&url, &[]).await;
        assert_eq!(status, 200, "{body}");
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return items,
        }
    }
}

#[tokio::test]
async fn transitive_members_flatten_nesting_and_survive_the_cycle() {
    let f = Fixture::new(small()).await;
    // Every group with a nested group, the deliberate cycle included.
    let nesting: Vec<(String, BTreeSet<String>)> = f.sim.sim.read(|t| {
        let is_group = |id: &String| t.groups.iter().any(|g| &g.id == id);
        t.live_groups()
            .filter(|g| g.members.iter().any(is_group))
            .map(|g| {
                // The closure, computed independently: depth first.
                let (mut seen, mut stack) = (BTreeSet::new(), vec![g.id.clone()]);
                while let Some(id) = stack.pop() {
                    for m in &t.group(&id).unwrap().members {
                        if m != &g.id && seen.insert(m.clone()) && is_group(m) {
                            stack.push(m.clone());
                        }
                    }
                }
                let live: BTreeSet<String> = seen.into_iter().filter(|id| t.directory_object(id).is_some()).collect();
                (g.id.clone(), live)
            })
            .collect()
    });
    assert!(nesting.len() >= 2, "the generator nests groups");
    for (group, expected) in &nesting {
        let items = all(&f, &format!("/v1.0/groups/{group}/transitiveMembers?$top=7")).await;
        let ids: Vec<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len(), "each member once");
        assert_eq!(&ids.into_iter().collect::<BTreeSet<_>>(), expected, "group {group}");
        assert!(items.iter().any(|i| i["@odata.type"] == "#microsoft.graph.group"), "nested groups are listed too");
    }
    let (status, headers, _) = f.get(&format!("/v1.0/groups/{}/transitiveMembers", nesting[0].0), &[]).await;
    assert_eq!((status, headers["x-ms-resource-unit"].to_str().unwrap()), (200, "5"));
}

#[tokio::test]
async fn directory_roles_list_activated_roles_and_their_members() {
    let f = Fixture::with_client(small(), ClientApp::attest(7).with_provisioning(), |_| {}).await;
    let (status, _, body) = f.get("/v1.0/directoryRoles", &[]).await;
    assert_eq!(status, 200);
    assert!(body.get("@odata.nextLink").is_none());
    let roles = body["value"].as_array().unwrap().clone();
    let assigned: BTreeSet<String> =
        f.sim.sim.read(|t| t.role_assignments.iter().map(|a| a.role_definition_id.clone()).collect());
    let listed: BTreeSet<String> = roles.iter().map(|r| r["roleTemplateId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, assigned, "exactly the activated roles");
    for role in &roles {
        assert_ne!(role["id"], role["roleTemplateId"], "a directory role has its own id");
        assert!(role["deletedDateTime"].is_null() && role["displayName"].is_string());
        let template = role["roleTemplateId"].as_str().unwrap();
        let (_, _, by_id) = f.get(&format!("/v1.0/directoryRoles/{}/members", role["id"].as_str().unwrap()), &[]).await;
        let (_, _, by_template) = f.get(&format!("/v1.0/directoryRoles/roleTemplateId={template}/members"), &[]).await;
        assert_eq!(by_id["value"], by_template["value"]);
        let members: BTreeSet<String> =
            by_id["value"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
        let expected: BTreeSet<String> = f.sim.sim.read(|t| {
            t.role_assignments
                .iter()
                .filter(|a| a.role_definition_id == template && a.directory_scope_id == "/")
                .filter(|a| t.directory_object(&a.principal_id).is_some())
                .map(|a| a.principal_id.clone())
                .collect()
        });
        assert_eq!(members, expected, "{template}");
    }

    // Assigning a role for the first time activates it; removing the assignment leaves it listed.
    let (unassigned, user) = f.sim.sim.read(|t| {
        let role = t.role_definitions.iter().find(|d| !assigned.contains(&d.id)).unwrap().id.clone();
        (role, t.live_users().next().unwrap().id.clone())
    });
    let body = json!({"roleDefinitionId": unassigned, "principalId": user, "directoryScopeId": "/"});
    let (status, _, created) =
        f.send(Method::POST, "/v1.0/roleManagement/directory/roleAssignments", Some(body), &[]).await;
    assert_eq!(status, 201);
    let path = format!("/v1.0/roleManagement/directory/roleAssignments/{}", created["id"].as_str().unwrap());
    assert_eq!(f.send(Method::DELETE, &path, None, &[]).await.0, 204);
    let (_, _, body) = f.get("/v1.0/directoryRoles", &[]).await;
    assert!(body["value"].as_array().unwrap().iter().any(|r| r["roleTemplateId"] == unassigned.as_str()));
    let (_, _, members) = f.get(&format!("/v1.0/directoryRoles/roleTemplateId={unassigned}/members"), &[]).await;
    assert_eq!(members["value"], json!([]));
    let (status, _, body) =
        f.get("/v1.0/directoryRoles/roleTemplateId=00000000-0000-0000-0000-000000000000/members", &[]).await;
    assert_eq!((status, error_code(&body)), (404, "Request_ResourceNotFound"));
}

#[tokio::test]
async fn organization_needs_directory_read_all() {
    let f = Fixture::new(small()).await;
    let (status, _, body) = f.get("/v1.0/organization", &[]).await;
    assert_eq!((status, error_code(&body)), (403, "Authorization_RequestDenied"));
    let mut client = ClientApp::attest(8);
    client.roles.push("Directory.Read.All".into());
    let f = Fixture::with_client(small(), client, |_| {}).await;
    let (status, _, body) = f.get("/v1.0/organization", &[]).await;
    assert_eq!(status, 200);
    let org = &body["value"][0];
    assert_eq!(org["id"], f.sim.tenant_id());
    assert_eq!(org["tenantType"], "AAD");
    let domain = f.sim.sim.read(|t| t.domain.clone());
    assert_eq!(org["verifiedDomains"][0]["name"], domain.as_str());
    assert_eq!(org["verifiedDomains"][0]["isInitial"], true);
    assert!(org["assignedPlans"].as_array().unwrap().iter().any(|p| p["service"] == "AADPremiumService"));
}

#[tokio::test]
async fn count_segment_needs_eventual_consistency() {
    let f = Fixture::new(small()).await;
    let (status, _, body) = f.get("/v1.0/users/$count", &[]).await;
    assert_eq!((status, error_code(&body)), (400, "Request_BadRequest"));
    let response = f
        .http
        .get(format!("{}/v1.0/users/$count", f.sim.graph_url))
        .bearer_auth(&f.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    let n: usize = response.text().await.unwrap().parse().unwrap();
    assert_eq!(n, f.live_users().await);
}
