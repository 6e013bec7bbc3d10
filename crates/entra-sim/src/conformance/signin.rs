//! The identity platform's user-facing side (graph-facts §9): OIDC discovery, JWKS, the
//! authorization code flow with PKCE, refresh tokens, and admin consent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Fixture, claims, small};
use crate::{ClientApp, SimOptions};

const CALLBACK: &str = "http://localhost:9999/auth/callback";

async fn fixture(options: SimOptions) -> Fixture {
    let client = ClientApp::attest(7).with_provisioning().with_redirect_uri(CALLBACK);
    Fixture::with_options(small(), client, |_| {}, options).await
}

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    attest_http::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn login(f: &Fixture, path: &str) -> String {
    format!("{}/{}/{path}", f.sim.login_url, f.sim.tenant_id())
}

/// The query parameters of a redirect's `Location`.
fn location(response: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (base, query) = location.split_once(['?', '#']).unwrap_or((&location, ""));
    let pairs = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (base.to_owned(), pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// An authorize request's parameters with PKCE (S256) for `verifier`.
fn authorize_params(verifier: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let client = ClientApp::attest(7);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut params: Vec<(String, String)> = [
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid profile email offline_access"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        params.retain(|(key, _)| key != k);
        params.push(((*k).to_owned(), (*v).to_owned()));
    }
    params
}

/// Signs `upn` in through the sign-in page; returns the redirect response.
async fn sign_in(f: &Fixture, verifier: &str, upn: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = authorize_params(verifier, extra);
    form.push(("login".into(), upn.into()));
    browser().post(login(f, "oauth2/v2.0/authorize")).form(&form).send().await.unwrap()
}

async fn redeem(f: &Fixture, code: &str, verifier: &str) -> (u16, Value) {
    let client = f.sim.sim.client().clone();
    let response = f
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client.client_id),
            ("client_secret", &client.client_secret),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
            ("scope", "openid profile email offline_access"),
        ])
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn refresh(f: &Fixture, token: &str) -> (u16, Value) {
    let client = f.sim.sim.client().clone();
    let response = f
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client.client_id),
            ("client_secret", &client.client_secret),
            ("refresh_token", token),
        ])
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Verifies an RS256 JWT against the tenant's published JWKS, as a relying party would:
/// the key named by `kid`, the signature, and the issuer. Returns the claims.
async fn verify(f: &Fixture, jwt: &str) -> Value {
    let config: Value =
        f.http.get(login(f, "v2.0/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let jwks: Value = f.http.get(config["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("kid in JWKS");
    let decode = |v: &Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
    assert_ne!(decode(&key["n"])[0], 0, "no leading zero in n");
    let public = RsaPublicKeyComponents { n: decode(&key["n"]), e: decode(&key["e"]) };
    let (input, signature) = jwt.rsplit_once('.').unwrap();
    public.verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    claims(jwt)
}

#[tokio::test]
async fn discovery_and_keys() {
    let f = fixture(SimOptions::default()).await;
    let tenant = f.sim.tenant_id();
    let config: Value =
        f.http.get(login(&f, "v2.0/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["issuer"], format!("{}/{tenant}/v2.0", f.sim.login_url));
    assert_eq!(config["authorization_endpoint"], login(&f, "oauth2/v2.0/authorize"));
    assert_eq!(config["token_endpoint"], login(&f, "oauth2/v2.0/token"));
    assert_eq!(config["jwks_uri"], login(&f, "discovery/v2.0/keys"));
    assert!(config["id_token_signing_alg_values_supported"].as_array().unwrap().contains(&"RS256".into()));
    assert!(config["subject_types_supported"].as_array().unwrap().contains(&"pairwise".into()));
    let organizations: Value = f
        .http
        .get(format!("{}/organizations/v2.0/.well-known/openid-configuration", f.sim.login_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(organizations["issuer"], format!("{}/{{tenantid}}/v2.0", f.sim.login_url));
    // Access tokens for Graph are signed with the same key (their issuer is the v1 one).
    let access = verify(&f, &f.token).await;
    assert_eq!(access["iss"], format!("https://sts.windows.net/{tenant}/"));
}

#[tokio::test]
async fn code_flow_with_pkce_then_refresh_until_sessions_are_revoked() {
    let f = fixture(SimOptions::default()).await;
    // The sign-in page lists users, directory role holders first labelled with their role's
    // name (never a vague "administrator"), and carries the request through.
    let params = authorize_params("v".repeat(43).as_str(), &[]);
    let page = browser().get(login(&f, "oauth2/v2.0/authorize")).query(&params).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let roles: Vec<String> = f.sim.sim.read(|t| t.role_definitions.iter().map(|d| d.display_name.clone()).collect());
    let first_label = html.split("id=\"users\"").nth(1).unwrap().split("<small>(").nth(1).unwrap();
    assert!(roles.iter().any(|r| first_label.starts_with(r.as_str())), "{first_label}");
    assert!(html.contains("name=\"code_challenge\""), "{html}");
    assert!(!html.contains("(administrator)"), "{html}");
    // An embedding application's own people (the demo's Attest administrators) come first, so
    // labelled.
    let (id, upn) = f.sim.sim.read(|t| {
        let u = t.live_users().filter(|u| u.account_enabled && u.user_type == "Member").last().unwrap();
        (u.id.clone(), u.user_principal_name.clone())
    });
    f.sim.sim.feature_on_sign_in(vec![(id, "Attest administrator".into())]);
    let page = browser().get(login(&f, "oauth2/v2.0/authorize")).query(&params).send().await.unwrap();
    let html = page.text().await.unwrap();
    let first = html.split("data-upn=\"").nth(1).unwrap();
    assert!(first.starts_with(&format!("{upn}\"")) && first.contains("(Attest administrator)"), "{html}");

    let user = f.sim.sim.read(|t| {
        t.live_users().find(|u| u.account_enabled && u.user_type == "Member" && u.mail.is_some()).unwrap().clone()
    });
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let response = sign_in(&f, verifier, &user.user_principal_name, &[]).await;
    assert_eq!(response.status(), 303);
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("HttpOnly"));
    let (base, pairs) = location(&response);
    assert_eq!(base, CALLBACK);
    assert_eq!(param(&pairs, "state"), Some("st4te"));
    let code = param(&pairs, "code").unwrap().to_owned();

    let (status, tokens) = redeem(&f, &code, verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string() && tokens["access_token"].is_string());
    let id = verify(&f, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(id["iss"], format!("{}/{}/v2.0", f.sim.login_url, f.sim.tenant_id()));
    assert_eq!(id["aud"], f.sim.sim.client().client_id);
    assert_eq!(id["tid"], f.sim.tenant_id());
    assert_eq!(id["oid"], user.id);
    assert_eq!(id["nonce"], "n0nce");
    assert_eq!(id["preferred_username"], user.user_principal_name);
    assert_eq!(id["name"], user.display_name);
    assert_eq!(id["email"], user.mail.clone().unwrap());
    assert_eq!(id["ver"], "2.0");
    assert!(id["exp"].as_i64().unwrap() > id["iat"].as_i64().unwrap());
    assert_ne!(id["sub"], user.id, "sub is pairwise, not the object id");

    // A code works once.
    let (status, body) = redeem(&f, &code, verifier).await;
    assert_eq!(
        (status, body["error"].as_str(), body["error_codes"][0].as_u64()),
        (400, Some("invalid_grant"), Some(54005))
    );
    // A code needs its own verifier.
    let response = sign_in(&f, verifier, &user.user_principal_name, &[]).await;
    let code = param(&location(&response).1, "code").unwrap().to_owned();
    let (status, body) = redeem(&f, &code, "not-the-verifier-not-the-verifier-not-the-v").await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(501481)));
    // Codes expire after about 10 minutes.
    let response = sign_in(&f, verifier, &user.user_principal_name, &[]).await;
    let code = param(&location(&response).1, "code").unwrap().to_owned();
    f.sim.advance(chrono::Duration::minutes(11));
    let (status, body) = redeem(&f, &code, verifier).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(70008)));

    // The multi-tenant endpoints serve user sign-in too; app-only tokens need the tenant.
    let response = sign_in(&f, verifier, &user.user_principal_name, &[]).await;
    let code = param(&location(&response).1, "code").unwrap().to_owned();
    let client = f.sim.sim.client().clone();
    let organizations = format!("{}/organizations/oauth2/v2.0/token", f.sim.login_url);
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ];
    assert_eq!(f.http.post(&organizations).form(&form).send().await.unwrap().status(), 200);
    for alias in ["common", "organizations"] {
        let url = format!("{}/{alias}/oauth2/v2.0/token", f.sim.login_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let body: Value = f.http.post(url).form(&form).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["error_codes"][0], 9001023, "{alias}");
    }

    // Refresh gives new tokens and a new refresh token.
    let (status, renewed) = refresh(&f, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{renewed}");
    assert!(renewed["access_token"].is_string() && renewed["refresh_token"].is_string());
    // revokeSignInSessions ends the user's refresh tokens (AADSTS50173).
    let (status, _, _) =
        f.send(Method::POST, &format!("/v1.0/users/{}/revokeSignInSessions", user.id), None, &[]).await;
    assert_eq!(status, 200);
    let (status, body) = refresh(&f, renewed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str(), body["error_codes"][0].as_u64()),
        (400, Some("invalid_grant"), Some(50173))
    );
    let (status, body) = refresh(&f, "1.sim.made-up").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn authorize_errors_go_where_the_protocol_says() {
    let f = fixture(SimOptions::default()).await;
    let verifier = "v".repeat(43);
    // An unregistered redirect URI gets a page, never a redirect.
    let params = authorize_params(&verifier, &[("redirect_uri", "https://evil.example/cb")]);
    let response = browser().get(login(&f, "oauth2/v2.0/authorize")).query(&params).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("AADSTS50011"));
    // After that, errors are redirected with `error`, `error_description` and `state`.
    let params = authorize_params(&verifier, &[("response_type", "token")]);
    let response = browser().get(login(&f, "oauth2/v2.0/authorize")).query(&params).send().await.unwrap();
    let (_, pairs) = location(&response);
    assert_eq!((param(&pairs, "error"), param(&pairs, "state")), (Some("unsupported_response_type"), Some("st4te")));
    // prompt=none without a session: login_required.
    let params = authorize_params(&verifier, &[("prompt", "none")]);
    let response = browser().get(login(&f, "oauth2/v2.0/authorize")).query(&params).send().await.unwrap();
    assert_eq!(param(&location(&response).1, "error"), Some("login_required"));
    // With the session cookie from a sign-in: a code at once.
    let upn = f.sim.sim.read(|t| t.live_users().find(|u| u.account_enabled).unwrap().user_principal_name.clone());
    let signed_in = sign_in(&f, &verifier, &upn, &[]).await;
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let response = browser()
        .get(login(&f, "oauth2/v2.0/authorize"))
        .query(&params)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(param(&location(&response).1, "code").is_some());
    // Cancel: access_denied.
    let mut form = authorize_params(&verifier, &[]);
    form.push(("cancel".into(), "1".into()));
    let response = browser().post(login(&f, "oauth2/v2.0/authorize")).form(&form).send().await.unwrap();
    assert_eq!(param(&location(&response).1, "error"), Some("access_denied"));
    // A disabled user is told so on the page.
    let disabled = f.sim.sim.read(|t| t.live_users().find(|u| !u.account_enabled).unwrap().user_principal_name.clone());
    let response = sign_in(&f, &verifier, &disabled, &[]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("AADSTS50057"));
    // form_post: an auto-submitting form carrying the code and state.
    let response = sign_in(&f, &verifier, &upn, &[("response_mode", "form_post")]).await;
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!("action=\"{CALLBACK}\""))
            && html.contains("name=\"code\"")
            && html.contains("name=\"state\" value=\"st4te\"")
    );
}

#[tokio::test]
async fn admin_consent_puts_the_app_in_the_tenant() {
    let f_options = SimOptions { consented: false, ..SimOptions::default() };
    let client = ClientApp::attest(7).with_redirect_uri(CALLBACK);
    let mut tenant = crate::generate(small());
    tenant.reindex();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = crate::spawn_with(listener, tenant, client.clone(), f_options).await.unwrap();
    let http = browser();
    let token_form = [
        ("grant_type", "client_credentials"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let token_url = format!("{}/{}/oauth2/v2.0/token", sim.login_url, sim.tenant_id());
    let body: Value = http.post(&token_url).form(&token_form).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["error_codes"][0], 700016, "no consent yet: the app is not in the tenant");

    let consent_url = format!("{}/{}/v2.0/adminconsent", sim.login_url, sim.tenant_id());
    let request = [
        ("client_id", client.client_id.as_str()),
        ("scope", "https://graph.microsoft.com/.default"),
        ("redirect_uri", CALLBACK),
        ("state", "12345"),
    ];
    let page = http.get(&consent_url).query(&request).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("GroupMember.Read.All") && html.contains("id=\"accept\""));

    // A user who is not an administrator cannot consent.
    let (admin, member) = sim.sim.read(|t| {
        let is_admin = |id: &str| {
            t.role_assignments
                .iter()
                .any(|a| a.principal_id == id && a.role_definition_id == "62e90394-69f5-4237-9190-012177145e10")
        };
        let admin = t.live_users().find(|u| u.account_enabled && is_admin(&u.id)).unwrap().user_principal_name.clone();
        let member = t
            .live_users()
            .find(|u| u.account_enabled && !t.role_assignments.iter().any(|a| a.principal_id == u.id))
            .unwrap()
            .user_principal_name
            .clone();
        (admin, member)
    });
    let mut form: Vec<(&str, &str)> = request.to_vec();
    form.extend([("login", member.as_str()), ("accept", "1")]);
    let refused = http.post(&consent_url).form(&form).send().await.unwrap();
    assert_eq!(refused.status(), 200);
    assert!(refused.text().await.unwrap().contains("AADSTS90094"));

    // Cancel: the documented error redirect, admin_consent=True included.
    let mut form: Vec<(&str, &str)> = request.to_vec();
    form.extend([("login", admin.as_str()), ("cancel", "1")]);
    let cancelled = http.post(&consent_url).form(&form).send().await.unwrap();
    let (_, pairs) = location(&cancelled);
    assert_eq!(param(&pairs, "admin_consent"), Some("True"));
    assert_eq!(param(&pairs, "error"), Some("consent_required"));
    assert!(param(&pairs, "error_description").unwrap().starts_with("AADSTS65004"));
    assert_eq!(param(&pairs, "state"), Some("12345"));

    // Accept as an administrator.
    let mut form: Vec<(&str, &str)> = request.to_vec();
    form.extend([("login", admin.as_str()), ("accept", "1")]);
    let accepted = http.post(&consent_url).form(&form).send().await.unwrap();
    assert_eq!(accepted.status(), 303);
    let (base, pairs) = location(&accepted);
    assert_eq!(base, CALLBACK);
    assert_eq!(param(&pairs, "admin_consent"), Some("True"));
    assert_eq!(param(&pairs, "tenant"), Some(sim.tenant_id().as_str()));
    assert!(param(&pairs, "scope").unwrap().contains("https://graph.microsoft.com/User.Read.All"));
    assert_eq!(param(&pairs, "state"), Some("12345"));
    let body: Value = http.post(&token_url).form(&token_form).send().await.unwrap().json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");

    // v2 without scope: an error redirect. Legacy form: its own success shape.
    let no_scope = [("client_id", client.client_id.as_str()), ("redirect_uri", CALLBACK), ("state", "s")];
    let response = http.get(&consent_url).query(&no_scope).send().await.unwrap();
    let (_, pairs) = location(&response);
    assert_eq!((param(&pairs, "error"), param(&pairs, "admin_consent")), (Some("invalid_request"), Some("True")));
    let legacy_url = format!("{}/{}/adminconsent", sim.login_url, sim.tenant_id());
    assert_eq!(http.get(&legacy_url).query(&no_scope).send().await.unwrap().status(), 200);
    let mut form: Vec<(&str, &str)> = no_scope.to_vec();
    form.extend([("login", admin.as_str()), ("accept", "1")]);
    let (_, pairs) = location(&http.post(&legacy_url).form(&form).send().await.unwrap());
    assert_eq!(param(&pairs, "admin_consent"), Some("True"));
    assert!(param(&pairs, "scope").is_none() && param(&pairs, "tenant").is_some());
    sim.shutdown().await;
}

/// PIM self-activation (graph-facts §5): a user's own delegated token, a sign-in that passed
/// MFA, a justification, an end within 8 hours, and an eligibility to activate; Entra then
/// ends the activation by itself.
#[tokio::test]
async fn a_user_self_activates_an_eligible_role_with_their_own_token() {
    use reqwest::Method;
    let mut f = fixture(SimOptions::default()).await;
    let helpdesk = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
    let (user, other) = f.sim.sim.read(|t| {
        let mut free = t.live_users().filter(|u| {
            u.account_enabled && u.user_type == "Member" && !t.role_assignments.iter().any(|a| a.principal_id == u.id)
        });
        (free.next().unwrap().clone(), free.next().unwrap().id.clone())
    });
    let now = f.sim.sim.now();
    f.sim
        .sim
        .write(|t| {
            t.add_role_eligibility(crate::tenant::RoleEligibility {
                id: "eligible-1".into(),
                role_definition_id: helpdesk.into(),
                principal_id: user.id.clone(),
                directory_scope_id: "/".into(),
                start: now - chrono::Duration::days(1),
                end: None,
            })
        })
        .unwrap();
    let scope = "openid https://graph.microsoft.com/RoleAssignmentSchedule.ReadWrite.Directory";
    let token_of = async |extra: &[(&str, &str)]| {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let mut extra = extra.to_vec();
        extra.push(("scope", scope));
        let response = sign_in(&f, verifier, &user.user_principal_name, &extra).await;
        let code = param(&location(&response).1, "code").unwrap().to_owned();
        let (status, tokens) = redeem(&f, &code, verifier).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    };
    let without_mfa = token_of(&[]).await;
    let with_mfa = token_of(&[("amr_values", "mfa")]).await;
    assert_eq!(claims(&with_mfa)["amr"], serde_json::json!(["pwd", "mfa"]));
    assert_eq!(claims(&without_mfa)["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims(&with_mfa)["scp"], "openid RoleAssignmentSchedule.ReadWrite.Directory");

    let path = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests";
    let activate = |principal: &str, role: &str, justification: &str, duration: &str| {
        serde_json::json!({
            "action": "selfActivate", "principalId": principal, "roleDefinitionId": role, "directoryScopeId": "/",
            "justification": justification,
            "scheduleInfo": {"startDateTime": now.to_rfc3339(), "expiration": {"type": "AfterDuration", "duration": duration}},
        })
    };
    let app_token = f.token.clone();
    let mut refused = Vec::new();
    for (token, body) in [
        (&app_token, activate(&user.id, helpdesk, "incident 7", "PT2H")),
        (&without_mfa, activate(&user.id, helpdesk, "incident 7", "PT2H")),
        (&with_mfa, activate(&user.id, helpdesk, " ", "PT2H")),
        (&with_mfa, activate(&user.id, helpdesk, "incident 7", "PT9H")),
        (&with_mfa, activate(&other, helpdesk, "incident 7", "PT2H")),
        (&with_mfa, activate(&user.id, "62e90394-69f5-4237-9190-012177145e10", "incident 7", "PT2H")),
    ] {
        f.token = token.clone();
        let (status, _, body) = f.send(Method::POST, path, Some(body), &[]).await;
        let rule =
            body["error"]["message"].as_str().unwrap_or_default().split('"').nth(1).unwrap_or_default().to_owned();
        refused.push((status, format!("{} {rule}", super::error_code(&body))));
    }
    let codes: Vec<(u16, &str)> = refused.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(
        codes,
        vec![
            (400, "UnsupportedForAppOnly "),
            (400, "RoleAssignmentRequestPolicyValidationFailed MfaRule"),
            (400, "RoleAssignmentRequestPolicyValidationFailed JustificationRule"),
            (400, "RoleAssignmentRequestPolicyValidationFailed ExpirationRule"),
            (403, "Authorization_RequestDenied "),
            (400, "RoleAssignmentRequestPolicyValidationFailed EligibilityRule"),
        ]
    );
    assert!(f.sim.sim.read(|t| !t.role_assignments.iter().any(|a| a.principal_id == user.id)), "nothing was granted");

    let (status, _, created) =
        f.send(Method::POST, path, Some(activate(&user.id, helpdesk, "incident 7", "PT2H")), &[]).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "Granted");
    assert_eq!(created["action"], "selfActivate");
    assert_eq!(created["createdBy"]["user"]["id"], user.id);
    assert_eq!(created["scheduleInfo"]["expiration"]["type"], "afterDuration");
    assert!(f.sim.sim.read(|t| t.role_assignments.iter().any(|a| a.principal_id == user.id)));
    // Entra ends it at its end, whoever asked.
    f.sim.advance(chrono::Duration::hours(2) + chrono::Duration::minutes(1));
    f.token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let filter = format!("/v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'", user.id);
    let (_, _, listed) = f.get(&filter, &[]).await;
    assert_eq!(listed["value"], serde_json::json!([]), "ended at its end");
}
