//! Writes (graph-facts §3–§6): `$ref` links with Graph's exact refusals, app role and
//! directory role assignments, PIM schedule requests, user actions, delete and restore.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fixture, error_code, manageable_group, small};
use crate::ClientApp;

async fn provisioning() -> Fixture {
    Fixture::with_client(small(), ClientApp::attest(7).with_provisioning(), |_| {}).await
}

fn reference(id: &str) -> Option<Value> {
    Some(json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")}))
}

#[tokio::test]
async fn group_links_follow_graphs_rules_and_wording() {
    let f = provisioning().await;
    let (group, _, owners, outsider) = manageable_group(&f);
    let members_ref = format!("/v1.0/groups/{group}/members/$ref");

    let (status, _, body) = f.send(Method::POST, &members_ref, reference(&outsider), &[]).await;
    assert_eq!((status, &body), (204, &Value::Null));
    let (status, _, body) = f.send(Method::POST, &members_ref, reference(&outsider), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        body["error"]["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    let (_, _, listed) = f.get(&format!("/v1.0/groups/{group}/members?$select=id&$top=999"), &[]).await;
    assert!(listed["value"].as_array().unwrap().iter().any(|m| m["id"] == outsider.as_str()));

    let remove = format!("/v1.0/groups/{group}/members/{outsider}/$ref");
    let (status, _, _) = f.send(Method::DELETE, &remove, None, &[]).await;
    assert_eq!(status, 204);
    let (status, _, body) = f.send(Method::DELETE, &remove, None, &[]).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        format!(
            "Resource '{outsider}' does not exist or one of its queried reference-property objects are not present."
        )
    );

    // A missing object, and a body that names none.
    let ghost = "00000000-1111-2222-3333-444444444444";
    let (status, _, _) = f.send(Method::POST, &members_ref, reference(ghost), &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) = f.send(Method::POST, &members_ref, Some(json!({"id": outsider})), &[]).await;
    assert_eq!(status, 400);

    // Owners: the last one cannot be removed.
    for owner in &owners[1..] {
        let (status, _, _) =
            f.send(Method::DELETE, &format!("/v1.0/groups/{group}/owners/{owner}/$ref"), None, &[]).await;
        assert_eq!(status, 204);
    }
    let (status, _, body) =
        f.send(Method::DELETE, &format!("/v1.0/groups/{group}/owners/{}/$ref", owners[0]), None, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "The group must have at least one owner, hence this owner cannot be removed.");

    // Mail-enabled security groups, distribution lists and dynamic groups are read-only.
    let read_only: Vec<String> = f.sim.sim.read(|t| {
        let find = |p: &dyn Fn(&crate::tenant::Group) -> bool| t.live_groups().find(|g| p(g)).unwrap().id.clone();
        vec![
            find(&|g| g.mail_enabled && g.security_enabled && g.group_types.is_empty()),
            find(&|g| g.mail_enabled && !g.security_enabled && g.group_types.is_empty()),
            find(&|g| g.is_dynamic()),
        ]
    });
    for group in read_only {
        let (status, _, body) =
            f.send(Method::POST, &format!("/v1.0/groups/{group}/members/$ref"), reference(&outsider), &[]).await;
        assert_eq!(status, 403, "{group}");
        assert_eq!(body["error"]["message"], "Insufficient privileges to complete the operation.");
    }

    // Role-assignable groups need RoleManagement.ReadWrite.Directory as well.
    let assignable =
        f.sim.sim.read(|t| t.live_groups().find(|g| g.is_assignable_to_role == Some(true)).unwrap().id.clone());
    let mut narrow = ClientApp::attest(7);
    narrow.roles.push("GroupMember.ReadWrite.All".into());
    let g = Fixture::with_client(small(), narrow, |_| {}).await;
    let (status, _, _) =
        g.send(Method::POST, &format!("/v1.0/groups/{assignable}/members/$ref"), reference(&outsider), &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        f.send(Method::POST, &format!("/v1.0/groups/{assignable}/members/$ref"), reference(&outsider), &[]).await;
    assert_eq!(status, 204);

    // Sync-only permissions write nothing.
    let reader = Fixture::new(small()).await;
    let (status, _, body) = reader.send(Method::POST, &members_ref, reference(&outsider), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&body), "Authorization_RequestDenied");
}

#[tokio::test]
async fn forgetting_ref_deletes_the_member_itself_when_allowed() {
    // Membership permissions only: deleting the member object itself is refused.
    let mut members_only = ClientApp::attest(7);
    members_only.roles.push("GroupMember.ReadWrite.All".into());
    let f = Fixture::with_client(small(), members_only, |_| {}).await;
    let (group, members, _, _) = manageable_group(&f);
    let user = f.sim.sim.read(|t| members.iter().find(|m| t.live_user(m).is_some()).unwrap().clone());
    let (status, _, _) = f.send(Method::DELETE, &format!("/v1.0/groups/{group}/members/{user}"), None, &[]).await;
    assert_eq!(status, 403, "without User.ReadWrite.All Graph refuses");
    let mut client = ClientApp::attest(7).with_provisioning();
    client.roles.push("User.ReadWrite.All".into());
    let g = Fixture::with_client(small(), client, |_| {}).await;
    let (status, _, _) = g.send(Method::DELETE, &format!("/v1.0/groups/{group}/members/{user}"), None, &[]).await;
    assert_eq!(status, 204);
    let (status, _, _) = g.get(&format!("/v1.0/users/{user}"), &[]).await;
    assert_eq!(status, 404, "the user itself is gone, as Graph does");
}

#[tokio::test]
async fn app_role_assignments_and_owners() {
    let f = provisioning().await;
    let (app, role, user, sp_owner) = f.sim.sim.read(|t| {
        let app = t
            .live_service_principals()
            .find(|s| !s.app_roles.is_empty() && s.app_owner_organization_id.as_deref() == Some(t.id.as_str()))
            .unwrap();
        let user = t.live_users().find(|u| !t.app_role_assignments.iter().any(|a| a.principal_id == u.id)).unwrap();
        let owner = t.live_users().find(|u| !app.owners.contains(&u.id)).unwrap();
        (app.id.clone(), app.app_roles[0].id.clone(), user.id.clone(), owner.id.clone())
    });
    let path = format!("/v1.0/servicePrincipals/{app}/appRoleAssignedTo");
    let body = json!({"principalId": user, "resourceId": app, "appRoleId": role});
    let (status, _, created) = f.send(Method::POST, &path, Some(body.clone()), &[]).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_err() && !id.contains(['+', '/', '=']), "base64url, not a GUID: {id}");
    assert_eq!(created["principalType"], "User");
    assert_eq!(created["appRoleId"], role.as_str());
    assert!(
        created["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with(&format!("servicePrincipals('{app}')/appRoleAssignedTo/$entity"))
    );
    let (status, _, dup) = f.send(Method::POST, &path, Some(body), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(dup["error"]["message"], "Permission being assigned already exists on the object");
    let unknown = json!({"principalId": user, "resourceId": app, "appRoleId": "11111111-2222-3333-4444-555555555555"});
    let (status, _, _) = f.send(Method::POST, &path, Some(unknown), &[]).await;
    assert_eq!(status, 400);
    let default_access =
        json!({"principalId": user, "resourceId": app, "appRoleId": crate::changes::DEFAULT_ACCESS_ROLE});
    let (status, _, _) = f.send(Method::POST, &path, Some(default_access), &[]).await;
    assert_eq!(status, 201);
    let (status, _, _) = f.send(Method::DELETE, &format!("{path}/{id}"), None, &[]).await;
    assert_eq!(status, 204);
    let (status, _, _) = f.send(Method::DELETE, &format!("{path}/{id}"), None, &[]).await;
    assert_eq!(status, 404);

    // Application owners: sync-only permissions cannot manage them.
    let owners = format!("/v1.0/servicePrincipals/{app}/owners/$ref");
    let reader = Fixture::new(small()).await;
    let (status, _, _) = reader.send(Method::POST, &owners, reference(&sp_owner), &[]).await;
    assert_eq!(status, 403);
    let mut client = ClientApp::attest(7);
    client.roles.push("Application.ReadWrite.All".into());
    let g = Fixture::with_client(small(), client, |_| {}).await;
    let (status, _, _) = g.send(Method::POST, &owners, reference(&sp_owner), &[]).await;
    assert_eq!(status, 204);
    let (status, _, _) = g.send(Method::POST, &owners, reference(&sp_owner), &[]).await;
    assert_eq!(status, 400);
    let (status, _, _) =
        g.send(Method::DELETE, &format!("/v1.0/servicePrincipals/{app}/owners/{sp_owner}/$ref"), None, &[]).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn directory_roles_and_pim_requests() {
    let mut f = provisioning().await;
    let user = f.sim.sim.read(|t| {
        t.live_users().find(|u| !t.role_assignments.iter().any(|a| a.principal_id == u.id)).unwrap().id.clone()
    });
    let helpdesk = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    let body = json!({"@odata.type": "#microsoft.graph.unifiedRoleAssignment", "roleDefinitionId": helpdesk, "principalId": user, "directoryScopeId": "/"});
    let (status, _, created) =
        f.send(Method::POST, "/v1.0/roleManagement/directory/roleAssignments", Some(body.clone()), &[]).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.ends_with("-1"), "{id}");
    assert!(created["@odata.context"].as_str().unwrap().ends_with("#roleManagement/directory/roleAssignments/$entity"));
    let (status, _, _) = f.send(Method::POST, "/v1.0/roleManagement/directory/roleAssignments", Some(body), &[]).await;
    assert_eq!(status, 400);
    let (status, _, _) =
        f.send(Method::DELETE, &format!("/v1.0/roleManagement/directory/roleAssignments/{id}"), None, &[]).await;
    assert_eq!(status, 204);
    let no_scope = json!({"roleDefinitionId": helpdesk, "principalId": user});
    let (status, _, _) =
        f.send(Method::POST, "/v1.0/roleManagement/directory/roleAssignments", Some(no_scope), &[]).await;
    assert_eq!(status, 400);

    // PIM: a two-hour active assignment ends by itself on the simulator's clock.
    let request = json!({
        "action": "adminAssign", "justification": "JIT", "roleDefinitionId": helpdesk, "directoryScopeId": "/", "principalId": user,
        "scheduleInfo": {"startDateTime": f.sim.sim.now().to_rfc3339(), "expiration": {"type": "AfterDuration", "duration": "PT2H"}},
        "ticketInfo": {"ticketNumber": "CHG-1", "ticketSystem": "Attest"},
    });
    let path = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests";
    let (status, _, created) = f.send(Method::POST, path, Some(request), &[]).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "Provisioned");
    assert_eq!(created["scheduleInfo"]["expiration"]["type"], "afterDuration", "echoed in camelCase");
    assert_eq!(created["scheduleInfo"]["expiration"]["duration"], "PT2H");
    assert_eq!(created["ticketInfo"]["ticketNumber"], "CHG-1");
    let filter = format!("/v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{user}'");
    let (_, _, listed) = f.get(&filter, &[]).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    let (_, _, requests) = f.get(path, &[]).await;
    assert_eq!(requests["value"].as_array().unwrap().len(), 1);
    f.sim.advance(chrono::Duration::hours(3));
    f.token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let (_, _, listed) = f.get(&filter, &[]).await;
    assert_eq!(listed["value"], json!([]), "expired at its end");
    let remove =
        json!({"action": "adminRemove", "roleDefinitionId": helpdesk, "directoryScopeId": "/", "principalId": user});
    let (status, _, body) = f.send(Method::POST, path, Some(remove), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "RoleAssignmentDoesNotExist");

    // Eligibility through roleEligibilityScheduleRequests.
    let eligible = json!({"action": "adminAssign", "roleDefinitionId": helpdesk, "directoryScopeId": "/", "principalId": user,
        "scheduleInfo": {"expiration": {"type": "noExpiration"}}});
    let path = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests";
    let (status, _, _) = f.send(Method::POST, path, Some(eligible), &[]).await;
    assert_eq!(status, 201);
    let (_, _, listed) = f
        .get(&format!("/v1.0/roleManagement/directory/roleEligibilitySchedules?$filter=principalId eq '{user}' and roleDefinitionId eq '{helpdesk}'"), &[])
        .await;
    assert_eq!(listed["value"][0]["scheduleInfo"]["expiration"]["type"], "noExpiration");
    let remove =
        json!({"action": "adminRemove", "roleDefinitionId": helpdesk, "directoryScopeId": "/", "principalId": user});
    let (status, _, created) = f.send(Method::POST, path, Some(remove), &[]).await;
    assert_eq!((status, created["status"].as_str()), (201, Some("Revoked")));
}

#[tokio::test]
async fn user_actions_delete_and_restore() {
    let mut client = ClientApp::attest(7).with_provisioning();
    client.roles.push("User.ReadWrite.All".into());
    let f = Fixture::with_client(small(), client, |_| {}).await;
    let user = f.sim.sim.read(|t| t.live_users().find(|u| u.account_enabled).unwrap().id.clone());
    let path = format!("/v1.0/users/{user}");
    let (status, _, _) = f.send(Method::PATCH, &path, Some(json!({"accountEnabled": false})), &[]).await;
    assert_eq!(status, 204);
    let (_, _, body) = f.get(&format!("{path}?$select=accountEnabled"), &[]).await;
    assert_eq!(body["accountEnabled"], false);
    let weak = json!({"passwordProfile": {"password": "password", "forceChangePasswordNextSignIn": true}});
    let (status, _, body) = f.send(Method::PATCH, &path, Some(weak), &[]).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("password complexity"));
    let strong = json!({"passwordProfile": {"password": "Correct-Horse-9", "forceChangePasswordNextSignIn": true}});
    let (status, _, _) = f.send(Method::PATCH, &path, Some(strong), &[]).await;
    assert_eq!(status, 204);
    assert!(f.sim.sim.read(|t| t.live_user(&user).unwrap().force_change_password_next_sign_in));
    // Phones: one business number at most, a mobile number as a string.
    let phones = json!({"businessPhones": ["+1 425 555 0199"], "mobilePhone": "+1 206 555 0142"});
    let (status, _, _) = f.send(Method::PATCH, &path, Some(phones), &[]).await;
    assert_eq!(status, 204);
    let (_, _, body) = f.get(&format!("{path}?$select=businessPhones,mobilePhone"), &[]).await;
    assert_eq!(
        (&body["businessPhones"], &body["mobilePhone"]),
        (&json!(["+1 425 555 0199"]), &json!("+1 206 555 0142"))
    );
    let two = json!({"businessPhones": ["+1 425 555 0199", "+1 425 555 0100"]});
    let (status, _, body) = f.send(Method::PATCH, &path, Some(two), &[]).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("Only one number"));
    let (status, _, body) = f.send(Method::PATCH, &path, Some(json!({"favouriteColour": "blue"})), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Property 'favouriteColour' does not exist as a declared property or extension property."
    );

    let (status, _, body) = f.send(Method::POST, &format!("{path}/revokeSignInSessions"), None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], true);
    assert!(body["@odata.context"].as_str().unwrap().ends_with("$metadata#Edm.Boolean"));

    let (status, _, _) = f.send(Method::DELETE, &path, None, &[]).await;
    assert_eq!(status, 204);
    let (status, _, _) = f.get(&path, &[]).await;
    assert_eq!(status, 404);
    let (_, _, deleted) = f.get("/v1.0/directory/deletedItems/microsoft.graph.user?$top=999", &[]).await;
    assert!(deleted["value"].as_array().unwrap().iter().any(|u| u["id"] == user.as_str()));
    let (status, _, _) = f.send(Method::DELETE, &format!("/v1.0/directory/deletedItems/{user}"), None, &[]).await;
    assert_eq!(status, 403, "purging users takes a delegated permission");
    let (status, _, restored) =
        f.send(Method::POST, &format!("/v1.0/directory/deletedItems/{user}/restore"), None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(restored["@odata.type"], "#microsoft.graph.user");
    assert!(restored["@odata.context"].as_str().unwrap().ends_with("#directoryObjects/$entity"));
    let (status, _, _) = f.get(&path, &[]).await;
    assert_eq!(status, 200);

    // Without the permission for each property, the update is refused whole.
    let reader = Fixture::new(small()).await;
    let (status, _, _) = reader.send(Method::PATCH, &path, Some(json!({"accountEnabled": true})), &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) = reader.send(Method::POST, &format!("{path}/revokeSignInSessions"), None, &[]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn batches_answer_per_item_with_dependencies() {
    let f = provisioning().await;
    let (group, _, _, outsider) = manageable_group(&f);
    let ghost = "00000000-1111-2222-3333-444444444444";
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$select=id&$top=5"},
        {"id": "2", "method": "POST", "url": format!("/groups/{group}/members/$ref"), "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"},
         "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{outsider}")}},
        {"id": "3", "method": "GET", "url": format!("groups/{ghost}")},
        {"id": "4", "method": "GET", "url": "/groups?$top=1", "dependsOn": ["3"]},
    ]});
    let (status, _, body) = f.send(Method::POST, "/v1.0/$batch", Some(batch), &[]).await;
    assert_eq!(status, 200, "{body}");
    let by_id = |id: &str| body["responses"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["value"].as_array().unwrap().len(), 5);
    assert_eq!(by_id("1")["headers"]["x-ms-resource-unit"], "1");
    assert_eq!(by_id("2")["status"], 204);
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(by_id("3")["body"]["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(by_id("4")["status"], 424, "its dependency failed");
    assert!(f.sim.sim.read(|t| t.group(&group).unwrap().members.contains(&outsider)));

    let duplicate = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/groups"}]});
    let (status, _, _) = f.send(Method::POST, "/v1.0/$batch", Some(duplicate), &[]).await;
    assert_eq!(status, 400, "ids are unique, case-insensitively");
    let many: Vec<Value> = (0..21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"})).collect();
    let (status, _, _) = f.send(Method::POST, "/v1.0/$batch", Some(json!({"requests": many})), &[]).await;
    assert_eq!(status, 400, "at most 20 requests");
    let no_type = json!({"requests": [{"id": "1", "method": "POST", "url": format!("/groups/{group}/members/$ref"), "body": {}}]});
    let (status, _, _) = f.send(Method::POST, "/v1.0/$batch", Some(no_type), &[]).await;
    assert_eq!(status, 400, "a body needs a Content-Type header");
}

#[tokio::test]
async fn batch_items_are_throttled_one_by_one() {
    let throttle = crate::ThrottleConfig { quota: Some(6.0), ..Default::default() };
    let options = crate::SimOptions { throttle: Some(throttle), ..crate::SimOptions::default() };
    let f = Fixture::with_options(small(), ClientApp::attest(7), |_| {}, options).await;
    // Each `/users` page costs 2: the batch itself (1) and two items fit, the rest are 429.
    let requests: Vec<Value> = (0..5).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"})).collect();
    let (status, _, body) = f.send(Method::POST, "/v1.0/$batch", Some(json!({"requests": requests})), &[]).await;
    assert_eq!(status, 200, "{body}");
    let responses = body["responses"].as_array().unwrap();
    let throttled: Vec<&Value> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(responses.iter().filter(|r| r["status"] == 200).count(), 2, "{body}");
    assert_eq!(throttled.len(), 3);
    for item in throttled {
        assert!(item["headers"]["retry-after"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
        assert_eq!(item["body"]["error"]["code"], "TooManyRequests");
    }
}
