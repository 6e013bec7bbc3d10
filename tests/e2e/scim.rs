//! The SCIM 2.0 endpoint as Entra's provisioning service uses it: every request shape of
//! graph-facts §10 in both of its forms (the default job and `aadOptscim062020`), hostile
//! input, and what a pushed user means for Attest (deactivated: refused at once; deleted: gone).

use std::time::Duration;

use attest_domain::{Clock as _, SystemClock};
use attest_store::db_test;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::browser;
use crate::web::{Web, eventually};

/// A client of `/scim/v2` with a bearer token.
struct Scim {
    base: String,
    token: String,
}

impl Scim {
    async fn new(web: &Web, store: &attest_store::Store) -> Scim {
        let tenant = web.sim.tenant_id();
        let (_, token) = attest_server::scim::create_token(store, "Entra ID", Some(&tenant), "test", SystemClock.now())
            .await
            .unwrap();
        Scim { base: format!("{}/scim/v2", web.base), token }
    }

    /// `method path` with `body`: status, content type, and the body as JSON (`Null` if none).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, String, Value) {
        let mut request = browser().request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let media = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = response.text().await.unwrap();
        (status, media, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.call(Method::GET, path, None).await;
        (status, body)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = self.call(method, path, Some(body)).await;
        (status, body)
    }
}

/// Entra's create-user body (graph-facts §10), for `upn`.
fn new_user(upn: &str, external_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": external_id,
        "userName": upn,
        "active": true,
        "addresses": null,
        "title": null,
        "emails": [{"primary": true, "type": "work", "value": upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Finance", "employeeNumber": "E-1"}
    })
}

fn patch(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

db_test!(entra_provisions_users_and_groups_in_both_request_forms, true, |db| {
    let web = Web::boot(&db).await;
    let scim = Scim::new(&web, &db.store).await;
    // Test Connection: a filter on a random GUID → 200, an empty list.
    let (status, media, empty) =
        scim.call(Method::GET, "/Users?filter=userName+eq+%2200aa00aa-1111-2222-3333-444455556666%22", None).await;
    assert_eq!((status, media.as_str()), (200, "application/scim+json"));
    assert_eq!((empty["totalResults"].as_u64(), empty["Resources"].as_array().map(Vec::len)), (Some(0), Some(0)));
    assert_eq!(empty["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");

    // Create, then find by userName, by externalId unquoted and by work email.
    let (status, created) = scim.send(Method::POST, "/Users", new_user("Test_User_1@contoso.com", "testuser1")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["userName"], "Test_User_1@contoso.com", "stored exactly as sent");
    assert_eq!(created["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Finance");
    assert!(created["meta"]["location"].as_str().unwrap().ends_with(&format!("/scim/v2/Users/{id}")));
    for query in [
        "filter=userName+eq+%22test_user_1%40contoso.com%22",
        "filter=externalId+eq+testuser1",
        "filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22Test_User_1%40contoso.com%22",
    ] {
        let (status, found) = scim.get(&format!("/Users?{query}")).await;
        assert_eq!((status, found["totalResults"].as_u64()), (200, Some(1)), "{query}: {found}");
        assert_eq!(found["Resources"][0]["id"], id.as_str());
    }
    // Resource names in any case, as clients vary.
    assert_eq!(scim.get(&format!("/users/{id}")).await.0, 200);
    let (status, missing) = scim.get("/Users/no-such-user").await;
    assert_eq!((status, missing["status"].as_str()), (404, Some("404")));
    assert_eq!(missing["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    // A duplicate userName (in another case) is 409 uniqueness.
    let (status, duplicate) = scim.send(Method::POST, "/Users", new_user("TEST_USER_1@contoso.com", "other")).await;
    assert_eq!((status, duplicate["scimType"].as_str()), (409, Some("uniqueness")), "{duplicate}");

    // The default job's PATCH: capitalised ops, one per attribute, a filtered path.
    let ops = patch(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updated@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Updated"},
    ]));
    let (status, patched) = scim.send(Method::PATCH, &format!("/Users/{id}"), ops).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["emails"][0]["value"].as_str(), patched["name"]["familyName"].as_str()),
        (Some("updated@contoso.com"), Some("Updated"))
    );
    // Disabled the default way (the string "False"): still readable, inactive.
    let disable = patch(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Users/{id}"), disable).await.0, 200);
    let (_, read) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(read["active"], false);
    // aadOptscim062020: lower-case ops, a path-less replace of several attributes, a boolean.
    let compliant = patch(json!([
        {"op": "replace", "value": {"displayName": "Test User One", "name.givenName": "Tess", "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "E-2"}},
    ]));
    let (status, patched) = scim.send(Method::PATCH, &format!("/Users/{id}"), compliant).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["displayName"].as_str(), patched["active"].as_bool()), (Some("Test User One"), Some(true)));
    assert_eq!(patched["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"], "E-2");
    // PUT replaces the whole user.
    let (status, replaced) =
        scim.send(Method::PUT, &format!("/Users/{id}"), new_user("Test_User_1@contoso.com", "testuser1")).await;
    assert_eq!((status, replaced["name"]["familyName"].as_str()), (200, Some("User")));

    // Groups: created empty, found by displayName without members, members added in a batch.
    let mut members = Vec::new();
    for n in 2..6 {
        let (_, user) =
            scim.send(Method::POST, "/Users", new_user(&format!("member{n}@contoso.com"), &format!("m{n}"))).await;
        members.push(user["id"].as_str().unwrap().to_owned());
    }
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Finance", "meta": {"resourceType": "Group"}
    });
    let (status, created) = scim.send(Method::POST, "/Groups", group).await;
    assert_eq!(status, 201, "{created}");
    let gid = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["members"].as_array().map(Vec::len), Some(0));
    let (status, found) = scim.get("/Groups?excludedAttributes=members&filter=displayName+eq+%22Finance%22").await;
    assert_eq!((status, found["totalResults"].as_u64()), (200, Some(1)));
    assert!(found["Resources"][0].get("members").is_none(), "{found}");
    let add = patch(
        json!([{"op": "Add", "path": "members", "value": members.iter().map(|m| json!({"$ref": null, "value": m})).collect::<Vec<_>>()}]),
    );
    assert_eq!(scim.send(Method::PATCH, &format!("/Groups/{gid}"), add).await.0, 204);
    let (_, read) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(read["members"].as_array().unwrap().len(), 4);
    // Removing: the default job's value list, then the compliant filter path.
    let remove = patch(json!([{"op": "Remove", "path": "members", "value": [{"value": members[0]}]}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Groups/{gid}"), remove).await.0, 204);
    let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", members[1])}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Groups/{gid}"), remove).await.0, 204);
    let (_, read) = scim.get(&format!("/Groups/{gid}?excludedAttributes=members")).await;
    assert!(read.get("members").is_none());
    let (_, holding) = scim.get(&format!("/Groups?filter=members+eq+%22{}%22", members[2])).await;
    assert_eq!(holding["totalResults"], 1, "{holding}");
    let (_, read) = scim.get(&format!("/Groups/{gid}")).await;
    let left: Vec<&str> = read["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&members[2].as_str()) && left.contains(&members[3].as_str()));
    let rename = patch(json!([{"op": "Replace", "path": "displayName", "value": "Finance EMEA"}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Groups/{gid}"), rename).await.0, 204);
    // Paging.
    let (_, page) = scim.get("/Users?startIndex=2&count=2").await;
    assert_eq!(
        (page["totalResults"].as_u64(), page["itemsPerPage"].as_u64(), page["startIndex"].as_u64()),
        (Some(5), Some(2), Some(2))
    );
    // Discovery.
    let (_, config) = scim.get("/ServiceProviderConfig").await;
    assert_eq!(config["patch"]["supported"], true);
    let (_, types) = scim.get("/ResourceTypes").await;
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    let (status, schemas) = scim.get("/Schemas").await;
    assert_eq!(
        (status, schemas["schemas"][0].as_str()),
        (200, Some("urn:ietf:params:scim:api:messages:2.0:ListResponse"))
    );
    // Deletes: 204, then 404; a deleted user leaves its groups.
    assert_eq!(scim.call(Method::DELETE, &format!("/Users/{}", members[2]), None).await.0, 204);
    assert_eq!(scim.get(&format!("/Users/{}", members[2])).await.0, 404);
    let (_, read) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(read["members"].as_array().unwrap().len(), 1);
    assert_eq!(scim.call(Method::DELETE, &format!("/Groups/{gid}"), None).await.0, 204);
    assert_eq!(scim.get(&format!("/Groups/{gid}")).await.0, 404);
    // Every change is attributed to the token.
    let events = db.store.audit().list_audit_events(0, 10_000).await.unwrap();
    let scim_events: Vec<&attest_domain::AuditEvent> =
        events.iter().filter(|e| e.action.starts_with("scim.")).collect();
    assert!(scim_events.iter().any(|e| e.action == "scim.user_deactivated"));
    assert!(
        scim_events.iter().filter(|e| e.action != "scim.token_created").all(|e| e.actor.starts_with("scim:Entra ID"))
    );
    web.stop().await;
});

db_test!(hostile_scim_requests_are_refused_cleanly_and_change_nothing, true, |db| {
    let web = Web::boot(&db).await;
    let scim = Scim::new(&web, &db.store).await;
    // No token, a wrong one, a revoked one: the same 401, nothing learned.
    let (_, user) = scim.send(Method::POST, "/Users", new_user("a@contoso.com", "a")).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let (revoked, secret) =
        attest_server::scim::create_token(&db.store, "old", None, "test", SystemClock.now()).await.unwrap();
    attest_server::scim::revoke_token(&db.store, revoked.id, "test", SystemClock.now()).await.unwrap();
    let mut answers = Vec::new();
    for token in [None, Some("attest-scim-wrong"), Some(secret.as_str())] {
        let mut request = browser().get(format!("{}/Users/{id}", scim.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    assert!(answers.iter().all(|a| a.0 == 401 && a == &answers[0]), "{answers:?}");
    // A session is not a token.
    let (status, _) = web.get(Some(&web.admin), "/scim/v2/Users").await;
    assert_eq!(status, 401);
    // Malformed JSON, a wrong media type, unknown filters, a junk user: 4xx, never 500.
    let junk = browser()
        .post(format!("{}/Users", scim.base))
        .bearer_auth(&scim.token)
        .header("content-type", "application/json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status().as_u16(), 400);
    let text = browser()
        .post(format!("{}/Users", scim.base))
        .bearer_auth(&scim.token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 415);
    for filter in ["userName+sw+%22a%22", "userName+eq+%22a%22+or+userName+eq+%22b%22", "title+eq+%22x%22", "%28%28%28"]
    {
        let (status, body) = scim.get(&format!("/Users?filter={filter}")).await;
        assert_eq!((status, body["scimType"].as_str()), (400, Some("invalidFilter")), "{filter}: {body}");
    }
    let (status, _) = scim.send(Method::POST, "/Users", json!({"displayName": "no userName"})).await;
    assert_eq!(status, 400);
    let (status, _) = scim.send(Method::POST, "/Users", json!(["not", "an", "object"])).await;
    assert_eq!(status, 400);
    // Application/json is accepted as well as application/scim+json.
    let plain = browser()
        .post(format!("{}/Users", scim.base))
        .bearer_auth(&scim.token)
        .header("content-type", "application/json")
        .body(new_user("b@contoso.com", "b").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 201);
    // A PATCH whose second operation fails changes nothing.
    let failing = patch(json!([
        {"op": "Replace", "path": "displayName", "value": "Changed"},
        {"op": "Replace", "path": "noSuchAttribute", "value": "x"},
    ]));
    let (status, body) = scim.send(Method::PATCH, &format!("/Users/{id}"), failing).await;
    assert_eq!((status, body["scimType"].as_str()), (400, Some("invalidPath")), "{body}");
    let (_, read) = scim.get(&format!("/Users/{id}")).await;
    assert!(read.get("displayName").is_none_or(|d| d != "Changed"), "{read}");
    // A group of 10,000 members in one PATCH; an unknown member in a batch adds nobody.
    let (_, group) = scim.send(Method::POST, "/Groups", json!({"displayName": "Everyone"})).await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for n in 0..10_000 {
        ids.push(format!("user-{n}"));
    }
    seed_users(&db, ids.len()).await;
    let bad = patch(json!([{"op": "Add", "path": "members", "value": [{"value": ids[0]}, {"value": "nobody"}]}]));
    let (status, body) = scim.send(Method::PATCH, &format!("/Groups/{gid}"), bad).await;
    assert_eq!((status, body["scimType"].as_str()), (400, Some("invalidValue")), "{body}");
    let (_, read) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(read["members"].as_array().unwrap().len(), 0);
    let everyone = patch(
        json!([{"op": "Add", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()}]),
    );
    assert_eq!(scim.send(Method::PATCH, &format!("/Groups/{gid}"), everyone).await.0, 204);
    let (_, read) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(read["members"].as_array().unwrap().len(), 10_000);
    // An oversized body: 413, in SCIM's error body.
    let huge = "x".repeat(5 * 1024 * 1024);
    let response = browser()
        .post(format!("{}/Users", scim.base))
        .bearer_auth(&scim.token)
        .header("content-type", "application/scim+json")
        .body(format!("{{\"userName\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "413");
    web.stop().await;
});

/// Users `user-0` … `user-{count - 1}` straight into the database, for a group to hold.
async fn seed_users(db: &attest_store::testing::TestDb, count: usize) {
    let sql = format!(
        "INSERT INTO scim_users (id, user_name, user_name_key, external_id, display_name, work_email, active, resource, \
         web_user_id, version, created_at, updated_at) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
         SELECT 'user-' || i, 'user-' || i || '@contoso.com', 'user-' || i || '@contoso.com', NULL, NULL, NULL, TRUE, \
         '{{}}', NULL, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM n",
        count - 1
    );
    crate::harness::raw_sql(db, &sql).await;
}

db_test!(a_deprovisioned_person_loses_access_at_once, true, |db| {
    let web = Web::boot(&db).await;
    let scim = Scim::new(&web, &db.store).await;
    // Entra pushes the requester (externalId mapped to the object id): the same account.
    let person = &web.requester;
    let (status, _) = web.get(Some(person), "/api/v1/me").await;
    assert_eq!(status, 200);
    let (status, user) = scim.send(Method::POST, "/Users", new_user(&person.email, &person.object_id)).await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    let account = db.store.web().find_web_user(&web.sim.tenant_id(), &person.object_id).await.unwrap().unwrap();
    assert!(!db.store.web().is_disabled(account.id).await.unwrap());
    assert_eq!(web.get(Some(person), "/api/v1/me").await.0, 200, "still signed in");
    // Deactivated: the open session is refused on its very next request.
    let disable = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Users/{id}"), disable).await.0, 200);
    assert_eq!(web.get(Some(person), "/api/v1/me").await.0, 401);
    assert!(db.store.web().is_disabled(account.id).await.unwrap());
    // Readable still, as Entra expects; reactivated, it may sign in again.
    assert_eq!(scim.get(&format!("/Users/{id}")).await.1["active"], false);
    let enable = patch(json!([{"op": "Replace", "path": "active", "value": "True"}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Users/{id}"), enable).await.0, 200);
    assert!(!db.store.web().is_disabled(account.id).await.unwrap());
    // A hard delete removes the account.
    assert_eq!(scim.call(Method::DELETE, &format!("/Users/{id}"), None).await.0, 204);
    assert!(db.store.web().find_web_user(&web.sim.tenant_id(), &person.object_id).await.unwrap().is_none());
    web.stop().await;
});

db_test!(entras_provisioning_client_fills_attest_and_a_mapped_group_gives_a_role, true, |db| {
    use attest_entra_sim::provision::{ProvisioningClient, RequestForm, Scope};
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    // The administrator makes a token on the accounts page: shown once, kept as a hash.
    let (status, page) = web.get(Some(&web.admin), "/admin/accounts").await;
    assert_eq!(status, 200);
    // (The templates write `/` as `&#x2f;`.)
    let endpoint = format!("{}/scim/v2", web.base).replace('/', "&#x2f;");
    assert!(page.contains(&endpoint), "the Tenant URL to give Entra");
    assert_eq!(web.get(Some(&web.requester), "/admin/accounts").await.0, 403);
    let made = web.post(&web.admin, "/admin/accounts/tokens", &[("name", "Entra ID")]).await.text().await.unwrap();
    let token = made.split("id=\"new-token-value\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(token.starts_with("attest-scim-"), "{token}");
    let (_, again) = web.get(Some(&web.admin), "/admin/accounts").await;
    assert!(!again.contains(&token), "shown only once");

    // Entra's provisioning service: Test Connection, then the initial cycle of the whole tenant.
    let mut client = ProvisioningClient::new(
        crate::harness::browser(),
        &format!("{}/scim/v2", web.base),
        &token,
        RequestForm::Default,
        Scope::AllUsersAndGroups,
    );
    client.test_connection().await.unwrap();
    let report = client.initial_cycle(&web.sim.sim).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.created_users > 10 && report.created_groups > 0, "{report}");
    let scim = Scim { base: format!("{}/scim/v2", web.base), token: token.clone() };
    let (_, users) = scim.get("/Users?count=0").await;
    let (_, groups) = scim.get("/Groups?count=0").await;
    assert_eq!(users["totalResults"].as_u64(), Some(report.created_users));
    assert_eq!(groups["totalResults"].as_u64(), Some(report.created_groups));
    // The requester was pushed, linked to their synced self: the same account, not a second.
    let requester_id = client.target_id(&web.requester.object_id).unwrap().to_owned();
    let tenant = web.sim.tenant_id();
    let account = store.web().find_web_user(&tenant, &web.requester.object_id).await.unwrap().unwrap();
    let pushed = store.scim().get_user(&requester_id).await.unwrap().unwrap();
    assert_eq!(pushed.web_user_id, Some(account.id));
    let phone = |id: i64| {
        let store = store.clone();
        async move { store.scim().list_accounts().await.unwrap().into_iter().find(|a| a.id == id).unwrap().phone }
    };
    let business_phone =
        web.sim.sim.read(|t| t.live_user(&web.requester.object_id).unwrap().business_phones.first().cloned());
    assert!(business_phone.is_some());
    assert_eq!(phone(account.id).await, business_phone, "Entra's telephoneNumber, pushed as the work phone");

    // A pushed group holding the requester is mapped to auditor: from their next request, the
    // audit log opens; out of the group, it closes again.
    assert_eq!(web.get(Some(&web.requester), "/audit").await.0, 403);
    let (_, holding) = scim.get(&format!("/Groups?filter=members+eq+%22{requester_id}%22")).await;
    let group = holding["Resources"][0]["id"].as_str().expect("the requester is in some group").to_owned();
    let mapped = web
        .post(&web.admin, "/admin/accounts/mappings", &[("group", &format!("scim:{group}")), ("role", "auditor")])
        .await;
    assert!(mapped.status().is_redirection(), "{}", mapped.status());
    assert_eq!(web.get(Some(&web.requester), "/audit").await.0, 200);
    let (_, listed) = web.get(Some(&web.admin), "/admin/accounts").await;
    assert!(listed.contains("auditor <span class=\"muted\">(member of pushed group"), "where the role comes from");
    let (_, own) = web.get(Some(&web.requester), "/access").await;
    assert!(own.contains("auditor <span class=\"muted\">(member of pushed group"), "and on their own page");
    let leave = patch(json!([{"op": "Remove", "path": "members", "value": [{"value": requester_id}]}]));
    assert_eq!(scim.send(Method::PATCH, &format!("/Groups/{group}"), leave).await.0, 204);
    assert_eq!(web.get(Some(&web.requester), "/audit").await.0, 403);
    // A role nobody may map, or a group that is not one: refused.
    let refused = web
        .post(&web.admin, "/admin/accounts/mappings", &[("group", &format!("scim:{group}")), ("role", "owner")])
        .await;
    assert_eq!(refused.status().as_u16(), 400);

    // Entra disables the requester in the tenant: the next cycle deactivates them, and their
    // session is refused at once.
    web.sim.sim.write(|t| {
        let i = t.users.iter().position(|u| u.id == web.requester.object_id).unwrap();
        t.users[i].account_enabled = false;
        t.users[i].business_phones = vec!["+1 425 555 0199".into()];
    });
    let report = client.incremental_cycle(&web.sim.sim).await;
    assert!(report.errors.is_empty() && report.disabled_users >= 1, "{report}");
    assert_eq!(phone(account.id).await.as_deref(), Some("+1 425 555 0199"), "a changed number follows");
    assert_eq!(web.get(Some(&web.requester), "/api/v1/me").await.0, 401);
    web.stop().await;
});

db_test!(scim_tokens_from_the_command_line_are_shown_once_listed_and_revoked, true, |db| {
    let web = Web::boot(&db).await;
    let config = web.dir.join("attest.toml").display().to_string();
    let cli = |args: &'static [&'static str]| {
        let config = config.clone();
        let url = db.url.expose().to_owned();
        async move {
            let mut full = vec!["--config", config.as_str(), "--database-url", url.as_str()];
            full.extend_from_slice(args);
            crate::harness::attest(&full).await
        }
    };
    let made = cli(&["scim", "token", "create", "--name", "Entra ID", "--json"]).await;
    assert!(made.success, "{:?}", made.error);
    let made: Value = serde_json::from_str(made.stdout.trim()).unwrap();
    let (id, token) = (made["id"].as_i64().unwrap(), made["token"].as_str().unwrap().to_owned());
    assert_eq!(made["name"], "Entra ID");
    let scim = Scim { base: format!("{}/scim/v2", web.base), token: token.clone() };
    assert_eq!(scim.get("/Users").await.0, 200);
    // Listed without the token itself; used, so "last used" is set.
    let listed = cli(&["scim", "token", "list", "--json"]).await;
    assert!(!listed.stdout.contains(&token), "the token is shown only when made");
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let entry = listed.as_array().unwrap().iter().find(|t| t["id"] == id).unwrap();
    assert!(entry["last_used_at"].is_string() && entry["revoked_at"].is_null(), "{entry}");
    let table = cli(&["scim", "token", "list"]).await;
    assert!(table.stdout.contains("Entra ID") && table.stdout.contains("live"), "{}", table.stdout);
    // Revoked: refused at once.
    let revoked = crate::harness::attest(&[
        "--config",
        &config,
        "--database-url",
        db.url.expose(),
        "scim",
        "token",
        "revoke",
        &id.to_string(),
    ])
    .await;
    assert!(revoked.success && revoked.stdout.contains("revoked"), "{}", revoked.stdout);
    assert_eq!(scim.get("/Users").await.0, 401);
    let unknown = cli(&["scim", "token", "revoke", "999999"]).await;
    assert!(!unknown.success && unknown.error.unwrap_or_default().contains("no SCIM token 999999"));
    let nameless = cli(&["scim", "token", "create", "--name", " "]).await;
    assert!(!nameless.success);
    web.stop().await;
});

db_test!(an_administrator_imports_people_with_a_role_and_each_is_mailed, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let tenant = web.sim.tenant_id();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    // Two people of the directory who never signed in.
    let chosen = web.people_without_accounts(&store, 2).await;
    assert_eq!(chosen.len(), 2);
    // Found by the page's search.
    let word = chosen[0].data.display_name.split_whitespace().last().unwrap().to_owned();
    let (status, page) = web.get(Some(&web.admin), &format!("/admin/accounts?q={word}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("name=\"people\" value=\"{}\"", chosen[0].id.0)), "{word}");
    // Or by the directory's filters: a department, members or guests.
    if let Some(department) = chosen[0].data.department.clone() {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("department", &department).finish();
        let (_, page) = web.get(Some(&web.admin), &format!("/admin/accounts?{query}&type=member")).await;
        assert!(page.contains(&format!("name=\"people\" value=\"{}\"", chosen[0].id.0)), "{department}");
    }
    let (a, b) = (chosen[0].id.0.to_string(), chosen[1].id.0.to_string());
    // A pick that is no person of the directory refuses the whole import: nobody is imported.
    let bad = web.post(&web.admin, "/admin/accounts/import", &[("people", &a), ("people", "999999999")]).await;
    assert_eq!(bad.status().as_u16(), 400);
    assert!(store.web().find_web_user(&tenant, &chosen[0].data.external_id).await.unwrap().is_none());
    // Imported as auditors in one step.
    let imported =
        web.post(&web.admin, "/admin/accounts/import", &[("people", &a), ("people", &b), ("role", "auditor")]).await;
    assert!(imported.status().is_redirection(), "{}", imported.status());
    for p in &chosen {
        let account = store.web().find_web_user(&tenant, &p.data.external_id).await.unwrap().unwrap();
        assert_eq!(account.roles, vec!["auditor".to_owned()]);
        let to = p.data.email.clone().unwrap();
        let filter = attest_store::MailFilter { recipient: Some(to.clone()), limit: 10, ..Default::default() };
        let mails = store.outbox().list_mail(&filter).await.unwrap();
        assert!(mails.iter().any(|m| m.template == "account_invitation" && m.subject.contains("auditor")), "{to}");
    }
    let accounts = store.scim().list_accounts().await.unwrap();
    assert!(accounts.iter().filter(|a| a.source == "import").count() >= 2);
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "account.imported").count(), 2);
    // Again, as administrator: roles add up; the account stays one.
    web.post(&web.admin, "/admin/accounts/import", &[("people", &a), ("role", "admin")]).await;
    let account = store.web().find_web_user(&tenant, &chosen[0].data.external_id).await.unwrap().unwrap();
    assert_eq!(account.roles, vec!["auditor".to_owned(), "admin".to_owned()]);
    // The profile came with the import, phone included; a number changed in Entra follows on
    // the next sync (each sync refreshes profiles, as "sync profile" does).
    let phone_of = |object_id: String| {
        let store = store.clone();
        async move {
            let accounts = store.scim().list_accounts().await.unwrap();
            accounts.into_iter().find(|a| a.object_id == object_id).and_then(|a| a.phone)
        }
    };
    let first = chosen[0].data.external_id.clone();
    let directory_phone = attest_store::Profile::of(&chosen[0].data).phone;
    assert!(directory_phone.is_some(), "members of the generated tenant have a business phone");
    assert_eq!(phone_of(first.clone()).await, directory_phone);
    web.sim.sim.write(|t| {
        t.update_user(&first, |u| {
            u.business_phones = Vec::new();
            u.mobile_phone = Some("+1 206 555 0142".into());
            vec!["businessPhones", "mobilePhone"]
        })
        .unwrap()
    });
    let asked = web.post(&web.admin, "/connectors/contoso/sync", &[("mode", "delta")]).await;
    assert!(asked.status().is_redirection(), "{}", asked.status());
    let followed = eventually(Duration::from_secs(60), || {
        let phone = phone_of(first.clone());
        async move { phone.await.as_deref() == Some("+1 206 555 0142") }
    });
    assert!(followed.await, "the mobile number, once the business number is gone");
    let (_, listed) = web.get(Some(&web.admin), "/admin/accounts").await;
    assert!(listed.contains("+1 206 555 0142"), "shown on the accounts page");
    let (_, person) = web.get(Some(&web.admin), &format!("/principals/{}", chosen[0].id.0)).await;
    assert!(person.contains("Mobile phone") && !person.contains("Business phone"), "and on the person's page");
    // Disabled in the directory: "sync profile" (and each sync) marks the account inactive;
    // enabled again, it comes back.
    let second = store.web().find_web_user(&tenant, &chosen[1].data.external_id).await.unwrap().unwrap();
    let now = SystemClock.now();
    store
        .principals()
        .set_principal_account_enabled(connector.id, &chosen[1].data.external_id, false, now)
        .await
        .unwrap();
    let synced = web.post(&web.admin, "/admin/accounts/sync-profiles", &[]).await;
    assert!(synced.status().is_redirection(), "{}", synced.status());
    assert!(store.web().is_disabled(second.id).await.unwrap());
    let (_, listed) = web.get(Some(&web.admin), "/admin/accounts").await;
    assert!(listed.contains("<strong>deactivated</strong>"));
    store
        .principals()
        .set_principal_account_enabled(connector.id, &chosen[1].data.external_id, true, now)
        .await
        .unwrap();
    web.post(&web.admin, "/admin/accounts/sync-profiles", &[]).await;
    assert!(!store.web().is_disabled(second.id).await.unwrap());
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    assert!(events.iter().any(|e| e.action == "account.profiles_synced" && e.details.contains("\"deactivated\":1")));
    // The break-glass administrator's account linked to a directory person: signing in as them
    // is that account, with its roles. A person who has an account already is refused.
    let local = store
        .web()
        .set_web_user_roles(
            attest_store::LOCAL_TENANT,
            "break-glass",
            "Break-glass administrator",
            &["admin".to_owned()],
            now,
        )
        .await
        .unwrap();
    let (_, page) = web.get(Some(&web.admin), &format!("/admin/accounts?q={word}")).await;
    assert!(page.contains("Or link the account"), "offered once people are found");
    let requester = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let taken = web
        .post(
            &web.admin,
            "/admin/accounts/link",
            &[("account", &local.id.to_string()), ("person", &requester.id.0.to_string())],
        )
        .await;
    assert_eq!(taken.status().as_u16(), 409);
    let free = web.people_without_accounts(&store, 1).await.remove(0);
    let linked = web
        .post(
            &web.admin,
            "/admin/accounts/link",
            &[("account", &local.id.to_string()), ("person", &free.id.0.to_string())],
        )
        .await;
    assert!(linked.status().is_redirection(), "{}", linked.status());
    let account = store.web().find_web_user(&tenant, &free.data.external_id).await.unwrap().unwrap();
    assert_eq!((account.id, account.roles.clone()), (local.id, vec!["admin".to_owned()]));
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    assert!(events.iter().any(|e| e.action == "account.linked"));
    // Refused: a role nobody may give, someone not in the directory, nobody at all.
    for form in [
        vec![("people", a.as_str()), ("role", "owner")],
        vec![("people", "not-a-person"), ("role", "")],
        vec![("people", "99999999"), ("role", "")],
        vec![("role", "auditor")],
    ] {
        let refused = web.post(&web.admin, "/admin/accounts/import", &form).await;
        assert_eq!(refused.status().as_u16(), 400, "{form:?}");
    }
    web.stop().await;
});
