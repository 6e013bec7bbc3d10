//! Conformance: status codes, headers and bodies against graph-facts.md, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use base64::Engine;
use serde_json::Value;

use crate::{ClientApp, SimHandle, SimOptions, TenantSpec, ThrottleConfig, generate, spawn_with};

mod delta;
mod directory;
mod faults;
mod signin;
mod writes;

struct Fixture {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
}

impl Fixture {
    async fn new(spec: TenantSpec) -> Fixture {
        Fixture::with_client(spec, ClientApp::attest(7), |_| {}).await
    }

    async fn with_client(spec: TenantSpec, client: ClientApp, tweak: impl FnOnce(&mut crate::Tenant)) -> Fixture {
        Fixture::with_options(spec, client, tweak, SimOptions::default()).await
    }

    async fn with_options(
        spec: TenantSpec,
        client: ClientApp,
        tweak: impl FnOnce(&mut crate::Tenant),
        options: SimOptions,
    ) -> Fixture {
        let mut tenant = generate(spec);
        tweak(&mut tenant);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = spawn_with(listener, tenant, client, options).await.unwrap();
        let http = attest_http::client().unwrap();
        let mut fixture = Fixture { sim, http, token: String::new() };
        fixture.token = fixture.fetch_token().await["access_token"].as_str().unwrap().to_owned();
        fixture
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let url = format!("{}/{}/oauth2/v2.0/token", self.sim.login_url, self.sim.tenant_id());
        self.http.post(url).form(form).send().await.unwrap()
    }

    async fn fetch_token(&self) -> Value {
        let client = self.sim.sim.client().clone();
        let response = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// GET a Graph path (relative to the Graph base) or a full nextLink.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.sim.graph_url) };
        let mut request = self.http.get(url).bearer_auth(&self.token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a request with a JSON body (or none) and returns status, headers and body.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.sim.graph_url) };
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    async fn live_users(&self) -> usize {
        self.sim.sim.read(|t| t.live_users().count())
    }
}

fn small() -> TenantSpec {
    TenantSpec { users: 1_200, groups: 60, apps: 8, assignments_per_app: 20, seed: 42 }
}

/// A plain security group an application may manage (not role-assignable, not synced), with at
/// least two owners and three members: its id, members, owners, and a live user outside it.
fn manageable_group(f: &Fixture) -> (String, Vec<String>, Vec<String>, String) {
    f.sim.sim.read(|t| {
        let g = t
            .live_groups()
            .find(|g| {
                g.group_types.is_empty()
                    && !g.mail_enabled
                    && g.on_premises_sync_enabled.is_none()
                    && g.is_assignable_to_role.is_none()
                    && g.owners.len() >= 2
                    && g.members.len() >= 3
            })
            .unwrap();
        let outsider = t.live_users().find(|u| !g.members.contains(&u.id)).unwrap().id.clone();
        (g.id.clone(), g.members.clone(), g.owners.clone(), outsider)
    })
}

/// The claims of a JWT (not verified).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[test]
fn the_generator_is_deterministic_and_realistic() {
    let spec = TenantSpec { users: 3_000, groups: 200, apps: 20, assignments_per_app: 30, seed: 9 };
    let (a, b) = (generate(spec), generate(spec));
    assert_eq!(crate::Truth::of(&a), crate::Truth::of(&b));
    assert_ne!(crate::Truth::of(&a), crate::Truth::of(&generate(TenantSpec { seed: 10, ..spec })));
    let guests = a.users.iter().filter(|u| u.user_type == "Guest").count();
    assert!(guests > 50 && a.users.iter().any(|u| u.user_principal_name.contains("#EXT#")));
    assert!(a.users.iter().any(|u| !u.account_enabled) && a.users.iter().any(|u| u.deleted.is_some()));
    assert!(a.users.iter().filter(|u| u.manager.is_some()).count() > 2_000);
    // The generator dates sign-ins back from the system's time, as the simulated tenant does.
    #[allow(clippy::disallowed_methods)]
    let now = chrono::Utc::now();
    assert!(
        a.users.iter().any(|u| {
            u.sign_in_activity.as_ref().is_some_and(|s| s.last_sign_in < now - chrono::Duration::days(90))
        })
    );
    // Power-law sizes: the largest group holds over half the users, the median a handful.
    let mut sizes: Vec<usize> = a.groups.iter().map(|g| g.members.len()).collect();
    sizes.sort_unstable();
    assert!(sizes[sizes.len() - 1] > 1_500 && sizes[sizes.len() / 2] < 60, "{sizes:?}");
    for kind in [&["Unified"][..], &["DynamicMembership"][..]] {
        assert!(a.groups.iter().any(|g| g.group_types == kind), "{kind:?}");
    }
    assert!(a.groups.iter().any(|g| g.mail_enabled && !g.security_enabled), "distribution");
    assert!(
        a.groups.iter().any(|g| g.mail_enabled && g.security_enabled && g.group_types.is_empty()),
        "mail-enabled security"
    );
    assert!(a.groups.iter().any(|g| g.is_assignable_to_role == Some(true)));
    // Nesting, with one cycle.
    let group_ids: HashSet<&str> = a.groups.iter().map(|g| g.id.as_str()).collect();
    let cycle = a.groups.iter().any(|g| {
        g.members
            .iter()
            .filter(|m| group_ids.contains(m.as_str()))
            .any(|child| a.group(child).is_some_and(|c| c.members.contains(&g.id)))
    });
    assert!(cycle, "a deliberate membership cycle");
    assert!(a.service_principals.iter().any(|s| s.service_principal_type == "ManagedIdentity"));
    assert!(
        a.service_principals
            .iter()
            .any(|s| s.app_owner_organization_id.as_deref() == Some(crate::tenant::MICROSOFT_SERVICES_TENANT))
    );
    for principal_type in ["User", "Group", "ServicePrincipal"] {
        assert!(a.app_role_assignments.iter().any(|x| x.principal_type == principal_type), "{principal_type}");
    }
    assert!(
        a.role_assignments.len() > 10
            && a.role_eligibilities.iter().any(|e| e.end.is_none())
            && a.role_eligibilities.iter().any(|e| e.end.is_some())
    );
}

#[tokio::test]
async fn client_credentials_tokens_follow_the_identity_platform() {
    let f = Fixture::new(small()).await;
    let token = f.fetch_token().await;
    assert_eq!(token["token_type"], "Bearer");
    let lifetime = token["expires_in"].as_i64().unwrap();
    assert!((3600..=5400).contains(&lifetime), "60-90 minutes, got {lifetime}");
    assert_eq!(token["ext_expires_in"].as_i64(), Some(lifetime));
    let access = token["access_token"].as_str().unwrap();
    let claims = claims(access);
    assert_eq!(claims["tid"], f.sim.tenant_id());
    assert_eq!(claims["appid"], f.sim.sim.client().client_id);
    assert!(claims["roles"].as_array().unwrap().iter().any(|r| r == "User.Read.All"));

    let client = f.sim.sim.client().clone();
    // (form, status, OAuth error, AADSTS code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, u64);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", "wrong"),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
            401,
            "invalid_client",
            7000215,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-0000-0000-00000000dead"),
                ("client_secret", "x"),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.client_secret),
                ("scope", "User.Read.All"),
            ],
            400,
            "invalid_scope",
            1002012,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.client_secret),
                ("scope", "https://graph.microsoft.com/.default https://management.azure.com/.default"),
            ],
            400,
            "invalid_scope",
            1002012,
        ),
        (vec![("grant_type", "password"), ("client_id", &client.client_id)], 400, "unsupported_grant_type", 70003),
    ];
    for (form, status, error, code) in cases {
        let response = f.token_request(&form).await;
        assert_eq!(response.status().as_u16(), status, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!((body["error"].as_str(), body["error_codes"][0].as_u64()), (Some(error), Some(code)), "{body}");
        assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{code}: ")), "{body}");
        assert!(body["trace_id"].is_string() && body["correlation_id"].is_string() && body["timestamp"].is_string());
    }
    let unknown_tenant = f
        .http
        .post(format!("{}/{}/oauth2/v2.0/token", f.sim.login_url, "fabrikam.example"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_tenant.status(), 400);
    assert_eq!(unknown_tenant.json::<Value>().await.unwrap()["error_codes"][0], 90002);
    // The secret may come as HTTP Basic auth.
    let basic = f
        .http
        .post(format!("{}/{}/oauth2/v2.0/token", f.sim.login_url, f.sim.tenant_id()))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "https://graph.microsoft.com/.default")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
}

#[tokio::test]
async fn graph_checks_the_token_and_its_roles() {
    let f = Fixture::new(small()).await;
    let anonymous = f
        .http
        .get(format!("{}/v1.0/users", f.sim.graph_url))
        .header("client-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let request_id = anonymous.headers()["request-id"].to_str().unwrap().to_owned();
    assert_eq!(anonymous.headers()["client-request-id"], "abc-123");
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token is empty.");
    assert_eq!(body["error"]["innerError"]["request-id"], request_id.as_str());
    assert_eq!(body["error"]["innerError"]["client-request-id"], "abc-123");
    assert!(body["error"]["innerError"]["date"].is_string());

    // Expired after its lifetime.
    f.sim.advance(chrono::Duration::minutes(91));
    let (status, _, body) = f.get("/v1.0/users", &[]).await;
    assert_eq!((status, error_code(&body)), (401, "InvalidAuthenticationToken"));
    assert!(body["error"]["message"].as_str().unwrap().contains("the token is expired"));

    // A client without any group permission is refused groups but may read users.
    let mut narrow = ClientApp::attest(8);
    narrow.roles = vec!["User.Read.All".into()];
    let f = Fixture::with_client(small(), narrow, |_| {}).await;
    let (status, _, body) = f.get("/v1.0/groups", &[]).await;
    assert_eq!((status, error_code(&body)), (403, "Authorization_RequestDenied"));
    assert_eq!(body["error"]["message"], "Insufficient privileges to complete the operation.");
    assert_eq!(f.get("/v1.0/users", &[]).await.0, 200);
    // signInActivity needs AuditLog.Read.All as well.
    let (status, _, _) = f.get("/v1.0/users?$select=id,signInActivity", &[]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn users_page_to_exhaustion_with_opaque_tokens() {
    let f = Fixture::new(small()).await;
    let live = f.live_users().await;
    // Default page size 100 and the default property set.
    let (status, headers, body) = f.get("/v1.0/users", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-ms-resource-unit"], "2");
    assert_eq!(body["value"].as_array().unwrap().len(), 100);
    assert!(body["@odata.context"].as_str().unwrap().ends_with("/v1.0/$metadata#users"));
    let first = body["value"][0].as_object().unwrap();
    for property in crate::tenant::User::DEFAULT_PROPERTIES {
        assert!(first.contains_key(*property), "default property {property}");
    }
    assert!(!first.contains_key("accountEnabled") && !first.contains_key("signInActivity"));

    // $top=999 with $select: every live user exactly once, options carried in every nextLink.
    let mut next = Some("/v1.0/users?$select=id,accountEnabled,userType&$top=999".to_owned());
    let (mut seen, mut pages) = (HashSet::new(), 0);
    while let Some(link) = next {
        let (status, headers, body) = f.get(&link, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-ms-resource-unit"], "1", "users costs 2, $select takes 1 off");
        pages += 1;
        for user in body["value"].as_array().unwrap() {
            let keys: HashSet<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, HashSet::from(["id", "accountEnabled", "userType"]));
            assert!(seen.insert(user["id"].as_str().unwrap().to_owned()));
        }
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(
                link.contains("%24select=id%2CaccountEnabled%2CuserType")
                    && link.contains("%24top=999")
                    && link.contains("%24skiptoken="),
                "{link}"
            );
        }
    }
    assert_eq!((seen.len(), pages), (live, live.div_ceil(999)));

    // Tokens are bound to their query: reusing one with other options is refused.
    let (_, _, body) = f.get("/v1.0/users?$top=5", &[]).await;
    let link = body["@odata.nextLink"].as_str().unwrap().replace("%24top=5", "%24top=6");
    let (status, _, body) = f.get(&link, &[]).await;
    assert_eq!((status, error_code(&body)), (400, "Request_BadRequest"));
}

#[tokio::test]
async fn query_options_are_checked_as_graph_does() {
    let f = Fixture::new(small()).await;
    let cases = [
        (
            "/v1.0/users?$top=1000",
            400,
            "Request_BadRequest",
            "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
        ),
        (
            "/v1.0/users?$top=600&$select=id,signInActivity",
            400,
            "Request_BadRequest",
            "Invalid page size specified: '600'. Must be between 1 and 500 inclusive.",
        ),
        (
            "/v1.0/users?$select=id,shoeSize",
            400,
            "Request_BadRequest",
            "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'.",
        ),
        (
            "/v1.0/users?$filter=endswith(mail,'a@contoso.com')",
            400,
            "Request_UnsupportedQuery",
            "Operator 'endsWith' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        ),
        (
            "/v1.0/users?$filter=accountEnabled ne true",
            400,
            "Request_UnsupportedQuery",
            "Operator 'ne' is not supported",
        ),
        ("/v1.0/users?$skip=10", 400, "Request_BadRequest", "'$skip' is not supported"),
    ];
    for (path, status, code, message) in cases {
        let (got, _, body) = f.get(path, &[]).await;
        assert_eq!((got, error_code(&body)), (status, code), "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().starts_with(message), "{path}: {body}");
    }
    assert_eq!(f.get("/v1.0/users?$top=500&$select=id,signInActivity", &[]).await.0, 200);
    assert_eq!(f.get("/v1.0/users?$select=hireDate", &[]).await.0, 501);
    // The same property on a single user is fine (user-list.md: single-entity only).
    let id = f.sim.sim.read(|t| t.live_users().next().unwrap().id.clone());
    let (status, _, body) = f.get(&format!("/v1.0/users/{id}?$select=displayName,hireDate"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("hireDate").is_some_and(Value::is_null) && body["displayName"].is_string(), "{body}");

    // Filters without advanced parameters.
    let disabled = f.sim.sim.read(|t| t.live_users().filter(|u| !u.account_enabled).count());
    let (_, _, body) = f.get("/v1.0/users?$filter=accountEnabled eq false&$top=999", &[]).await;
    assert_eq!(body["value"].as_array().unwrap().len(), disabled);
    let guests = f.sim.sim.read(|t| t.live_users().filter(|u| u.user_type == "Guest").count());
    let (_, _, body) = f.get("/v1.0/users?$filter=userType eq 'Guest'&$select=id,userType&$top=999", &[]).await;
    assert_eq!(body["value"].as_array().unwrap().len(), guests);

    // $count: silently ignored without the header; first page only with it.
    let (_, _, body) = f.get("/v1.0/users?$count=true", &[]).await;
    assert!(body.get("@odata.count").is_none());
    let eventual = [("ConsistencyLevel", "eventual")];
    let (_, _, body) = f.get("/v1.0/users?$count=true&$filter=endswith(mail,'.onmicrosoft.com')", &eventual).await;
    let expected = f.sim.sim.read(|t| {
        t.live_users().filter(|u| u.mail.as_deref().is_some_and(|m| m.ends_with(".onmicrosoft.com"))).count()
    });
    assert_eq!(body["@odata.count"].as_u64(), Some(expected as u64));
    let next = body["@odata.nextLink"].as_str().unwrap().to_owned();
    let (_, _, body) = f.get(&next, &eventual).await;
    assert!(body.get("@odata.count").is_none());

    // A single user, by id or UPN; an unknown one is Graph's 404.
    let (id, upn) =
        f.sim.sim.read(|t| t.live_users().map(|u| (u.id.clone(), u.user_principal_name.clone())).nth(3).unwrap());
    assert_eq!(f.get(&format!("/v1.0/users/{id}"), &[]).await.2["userPrincipalName"], upn.as_str());
    assert_eq!(f.get(&format!("/v1.0/users/{upn}?$select=accountEnabled"), &[]).await.2["id"], id.as_str());
    let (status, _, body) = f.get("/v1.0/users/00000000-0000-0000-0000-000000000001", &[]).await;
    assert_eq!((status, error_code(&body)), (404, "Request_ResourceNotFound"));
    assert_eq!(
        body["error"]["message"],
        "Resource '00000000-0000-0000-0000-000000000001' does not exist or one of its queried reference-property objects are not present."
    );
}

#[tokio::test]
async fn groups_members_and_owners() {
    let f = Fixture::new(small()).await;
    let (_, _, body) = f.get("/v1.0/groups?$filter=groupTypes/any(c:c eq 'Unified')&$top=999", &[]).await;
    let unified = f.sim.sim.read(|t| t.groups.iter().filter(|g| g.group_types == ["Unified"]).count());
    assert_eq!(body["value"].as_array().unwrap().len(), unified);
    assert!(
        body["value"].as_array().unwrap().iter().all(|g| g["groupTypes"][0] == "Unified" && g["mailEnabled"] == true)
    );

    // The largest group, paged with the default size, members typed with @odata.type.
    let (group, members) = f.sim.sim.read(|t| {
        let g = t.groups.iter().max_by_key(|g| g.members.len()).unwrap();
        (g.id.clone(), g.members.iter().filter(|m| t.directory_object(m).is_some()).count())
    });
    let mut next = Some(format!("/v1.0/groups/{group}/members?$select=id"));
    let mut seen = 0;
    while let Some(link) = next {
        let (status, headers, body) = f.get(&link, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ms-resource-unit"], "2", "members costs 3, $select takes 1 off");
        for member in body["value"].as_array().unwrap() {
            assert!(member["@odata.type"].as_str().unwrap().starts_with("#microsoft.graph."));
            seen += 1;
        }
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, members);
    let (_, headers, _) = f.get(&format!("/v1.0/groups/{group}/members"), &[]).await;
    assert_eq!(headers["x-ms-resource-unit"], "3");

    let (_, _, owners) = f.get(&format!("/v1.0/groups/{group}/owners"), &[]).await;
    let expected = f.sim.sim.read(|t| t.group(&group).unwrap().owners.len());
    assert_eq!(owners["value"].as_array().unwrap().len(), expected);
    let (status, _, body) = f.get("/v1.0/groups/11111111-2222-3333-4444-555555555555/members", &[]).await;
    assert_eq!((status, error_code(&body)), (404, "Request_ResourceNotFound"));
}

#[tokio::test]
async fn sign_in_activity_needs_a_premium_tenant() {
    let f = Fixture::with_client(small(), ClientApp::attest(7), |t| t.non_premium = true).await;
    let (status, _, body) = f.get("/v1.0/users?$select=id,signInActivity", &[]).await;
    assert_eq!((status, error_code(&body)), (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant"));
    assert_eq!(body["error"]["message"], "Neither tenant is B2C or tenant doesn't have premium license");
    assert_eq!(f.get("/v1.0/users?$select=id", &[]).await.0, 200);
}

#[tokio::test]
async fn listing_costs_the_documented_resource_units() {
    let f = Fixture::new(TenantSpec { users: 5_000, groups: 20, apps: 2, assignments_per_app: 5, seed: 3 }).await;
    let before = f.sim.sim.stats();
    let mut next = Some("/v1.0/users?$top=999".to_owned());
    let mut pages = 0;
    while let Some(link) = next {
        let (_, _, body) = f.get(&link, &[]).await;
        pages += 1;
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    let after = f.sim.sim.stats();
    assert_eq!(after.requests - before.requests, pages);
    assert_eq!(after.resource_units - before.resource_units, 2 * pages, "GET users costs 2 per page");
    assert_eq!(after.by_route["GET /v1.0/users"].resource_units, 2 * pages);
    let truth: crate::Truth =
        f.http.get(format!("{}/_sim/truth", f.sim.graph_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(truth.counts["users"], f.live_users().await);
}

/// Pages a Graph collection to the end and returns every item.
async fn collect_all(f: &Fixture, first: &str) -> Vec<Value> {
    let mut next = Some(first.to_owned());
    let mut items = Vec::new();
    while let Some(link) = next {
        let (status, _, body) = f.get(&link, &[]).await;
        assert_eq!(status, 200, "{link}: {body}");
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    items
}

#[tokio::test]
async fn service_principals_assignments_and_owners() {
    let f = Fixture::new(small()).await;
    let tenant_id = f.sim.tenant_id();
    let all = collect_all(&f, "/v1.0/servicePrincipals?$top=7").await;
    assert_eq!(all.len(), f.sim.sim.read(|t| t.service_principals.len()));
    let own =
        collect_all(&f, &format!("/v1.0/servicePrincipals?$filter=appOwnerOrganizationId eq '{tenant_id}'")).await;
    assert_eq!(own.len(), small().apps);
    let identities = collect_all(
        &f,
        "/v1.0/servicePrincipals?$filter=servicePrincipalType eq 'ManagedIdentity'&$select=id,servicePrincipalType",
    )
    .await;
    assert!(!identities.is_empty() && identities.iter().all(|s| s["servicePrincipalType"] == "ManagedIdentity"));
    let enterprise =
        collect_all(&f, "/v1.0/servicePrincipals?$filter=tags/any(t:t eq 'WindowsAzureActiveDirectoryIntegratedApp')")
            .await;
    assert_eq!(enterprise.len(), all.len() - identities.len(), "managed identities carry no enterprise-app tag");
    assert!(all.iter().any(|s| s["appOwnerOrganizationId"] == crate::tenant::MICROSOFT_SERVICES_TENANT));

    // Who is assigned to the app with the most assignments, paged to exhaustion.
    let (app, expected) = f.sim.sim.read(|t| {
        let app = t
            .service_principals
            .iter()
            .max_by_key(|s| t.app_role_assignments.iter().filter(|a| a.resource_id == s.id).count())
            .unwrap();
        let ids: HashSet<String> = t
            .app_role_assignments
            .iter()
            .filter(|a| a.resource_id == app.id && t.directory_object(&a.principal_id).is_some())
            .map(|a| a.id.clone())
            .collect();
        (app.id.clone(), ids)
    });
    let assigned = collect_all(&f, &format!("/v1.0/servicePrincipals/{app}/appRoleAssignedTo?$top=10")).await;
    let got: HashSet<String> = assigned.iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, expected);
    for a in &assigned {
        let id = a["id"].as_str().unwrap();
        assert!(id.len() == 43 && !id.contains('='), "appRoleAssignment ids are base64url, not GUIDs: {id}");
        assert!(["User", "Group", "ServicePrincipal"].contains(&a["principalType"].as_str().unwrap()));
        assert_eq!(a["resourceId"], app.as_str());
    }
    let owners = collect_all(&f, &format!("/v1.0/servicePrincipals/{app}/owners")).await;
    assert_eq!(
        owners.len(),
        f.sim.sim.read(|t| t.service_principals.iter().find(|s| s.id == app).unwrap().owners.len())
    );
    let (status, _, body) =
        f.get("/v1.0/servicePrincipals/00000000-0000-0000-0000-0000000000aa/appRoleAssignedTo", &[]).await;
    assert_eq!((status, error_code(&body)), (404, "Request_ResourceNotFound"));

    // A user's own assignments need Directory.Read.All (or AppRoleAssignment.ReadWrite.All).
    let user =
        assigned.iter().find(|a| a["principalType"] == "User").unwrap()["principalId"].as_str().unwrap().to_owned();
    let (status, _, _) = f.get(&format!("/v1.0/users/{user}/appRoleAssignments"), &[]).await;
    assert_eq!(status, 403, "Attest's permissions do not include Directory.Read.All");
    let mut broad = ClientApp::attest(11);
    broad.roles.push("Directory.Read.All".into());
    let g = Fixture::with_client(small(), broad, |_| {}).await;
    let mine = collect_all(&g, &format!("/v1.0/users/{user}/appRoleAssignments")).await;
    assert!(mine.iter().all(|a| a["principalId"] == user.as_str()) && !mine.is_empty());

    // Without Application.Read.All (or Directory.Read.All) service principals are refused.
    let mut narrow = ClientApp::attest(12);
    narrow.roles = vec!["User.Read.All".into()];
    let h = Fixture::with_client(small(), narrow, |_| {}).await;
    assert_eq!(h.get("/v1.0/servicePrincipals", &[]).await.0, 403);
}

#[tokio::test]
async fn managers_and_users_without_one() {
    let f = Fixture::new(small()).await;
    let (user, manager, top) = f.sim.sim.read(|t| {
        let u = t.live_users().find(|u| u.manager.is_some()).unwrap();
        (u.id.clone(), u.manager.clone().unwrap(), t.users[0].id.clone())
    });
    let (status, _, body) = f.get(&format!("/v1.0/users/{user}/manager"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["id"].as_str(), body["@odata.type"].as_str()),
        (Some(manager.as_str()), Some("#microsoft.graph.user"))
    );
    assert!(body.get("userPrincipalName").is_some());
    let (status, _, body) = f.get(&format!("/v1.0/users/{top}/manager"), &[]).await;
    assert_eq!((status, error_code(&body)), (404, "Request_ResourceNotFound"));
    assert_eq!(
        body["error"]["message"],
        "Resource 'manager' does not exist or one of its queried reference-property objects are not present."
    );
}

#[tokio::test]
async fn role_definitions_assignments_and_eligibilities() {
    let f = Fixture::new(small()).await;
    let definitions = collect_all(&f, "/v1.0/roleManagement/directory/roleDefinitions").await;
    assert_eq!(definitions.len(), crate::generate::BUILT_IN_ROLES.len());
    let global =
        collect_all(&f, "/v1.0/roleManagement/directory/roleDefinitions?$filter=displayName eq 'Global Administrator'")
            .await;
    assert_eq!(global.len(), 1);
    assert_eq!(
        (global[0]["id"].as_str(), global[0]["templateId"].as_str()),
        (Some("62e90394-69f5-4237-9190-012177145e10"), Some("62e90394-69f5-4237-9190-012177145e10"))
    );

    let assignments = collect_all(&f, "/v1.0/roleManagement/directory/roleAssignments?$top=5").await;
    assert_eq!(assignments.len(), f.sim.sim.read(|t| t.role_assignments.len()));
    assert!(assignments.iter().all(|a| a["id"].as_str().unwrap().ends_with("-1") && a["directoryScopeId"] == "/"));
    let admins = collect_all(&f, "/v1.0/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq '62e90394-69f5-4237-9190-012177145e10'").await;
    assert!((2..=4).contains(&admins.len()), "{}", admins.len());

    let eligible = collect_all(&f, "/v1.0/roleManagement/directory/roleEligibilitySchedules").await;
    assert_eq!(eligible.len(), f.sim.sim.read(|t| t.role_eligibilities.len()));
    let types: HashSet<&str> =
        eligible.iter().map(|e| e["scheduleInfo"]["expiration"]["type"].as_str().unwrap()).collect();
    assert_eq!(types, HashSet::from(["noExpiration", "afterDateTime"]));
    assert!(eligible.iter().all(|e| e["status"] == "Provisioned" && e["memberType"] == "Direct"));

    let unlicensed = Fixture::with_client(small(), ClientApp::attest(7), |t| t.non_premium = true).await;
    let (status, _, body) = unlicensed.get("/v1.0/roleManagement/directory/roleEligibilitySchedules", &[]).await;
    assert_eq!((status, error_code(&body)), (403, "AadPremiumLicenseRequired"));
    let mut narrow = ClientApp::attest(13);
    narrow.roles = vec!["User.Read.All".into()];
    let h = Fixture::with_client(small(), narrow, |_| {}).await;
    assert_eq!(h.get("/v1.0/roleManagement/directory/roleAssignments", &[]).await.0, 403);
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_and_keeps_counting() {
    // A quota of 10 resource units per 10 s: five GET /users (2 each), then 429.
    let throttle = ThrottleConfig { quota: Some(10.0), ..Default::default() };
    let f = Fixture::with_options(
        small(),
        ClientApp::attest(7),
        |_| {},
        SimOptions { throttle: Some(throttle), ..SimOptions::default() },
    )
    .await;
    for n in 1..=5 {
        let (status, headers, _) = f.get("/v1.0/users?$top=50", &[]).await;
        assert_eq!(status, 200, "request {n}");
        // Only above 80% of the quota.
        assert_eq!(headers.get("x-ms-throttle-limit-percentage").is_some(), n == 5, "request {n}");
    }
    let response =
        f.http.get(format!("{}/v1.0/users?$top=50", f.sim.graph_url)).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    let first_wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(headers["x-ms-throttle-information"], "ResourceUnitLimitExceeded");
    let scope = headers["x-ms-throttle-scope"].to_str().unwrap();
    assert_eq!(scope, format!("Tenant_Application/ReadWrite/{}/{}", f.sim.sim.client().client_id, f.sim.tenant_id()));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (error_code(&body), body["error"]["message"].as_str()),
        ("TooManyRequests", Some("Please retry again later."))
    );
    assert_eq!(
        (body["error"]["innerError"]["status"].as_str(), body["error"]["innerError"]["code"].as_str()),
        (Some("429"), Some("429"))
    );
    assert_eq!(body["error"]["innerError"]["request-id"], headers["request-id"].to_str().unwrap());

    // Retrying at once is charged too, and pushes the wait out.
    let retry =
        f.http.get(format!("{}/v1.0/users?$top=50", f.sim.graph_url)).bearer_auth(&f.token).send().await.unwrap();
    assert_eq!(retry.status(), 429);
    let second_wait: u64 = retry.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(second_wait > first_wait, "{first_wait} then {second_wait}");

    // Waiting as told is enough.
    f.sim.advance(chrono::Duration::seconds(second_wait as i64));
    assert_eq!(f.get("/v1.0/users?$top=50", &[]).await.0, 200);
    assert_eq!(f.sim.sim.stats().throttled, 2);
}
