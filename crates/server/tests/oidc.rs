//! Sign-in against the simulator's identity platform: the whole authorization code flow with
//! PKCE, then every way an id_token must be refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use attest_domain::{Clock as _, SystemClock};
use attest_entra_sim::{ClientApp, SimHandle, SimOptions, TenantSpec, generate, spawn_with};
use attest_server::oidc::{OidcClient, OidcError, Pending};
use serde_json::{Value, json};

const CALLBACK: &str = "http://localhost:8080/auth/callback";

async fn sim() -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 50, groups: 5, apps: 2, assignments_per_app: 3, seed: 61 };
    spawn_with(listener, generate(spec), ClientApp::attest(61).with_redirect_uri(CALLBACK), SimOptions::default())
        .await
        .unwrap()
}

async fn client(sim: &SimHandle) -> OidcClient {
    let app = sim.sim.client().clone();
    let http = attest_http::client().unwrap();
    OidcClient::discover(http, &sim.login_url, &sim.tenant_id(), &app.client_id, &app.client_secret, CALLBACK)
        .await
        .unwrap()
}

/// What a browser does on the simulator's sign-in page: picks `upn`; returns the callback's
/// `code` and `state`.
async fn sign_in(authorize_url: &str, upn: &str) -> (String, String) {
    let (endpoint, query) = authorize_url.split_once('?').unwrap();
    let mut form: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    form.push(("login".into(), upn.into()));
    let browser = attest_http::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = browser.post(endpoint).form(&form).send().await.unwrap();
    assert!(response.status().is_redirection(), "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(CALLBACK), "{location}");
    let (_, query) = location.split_once('?').unwrap();
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    (get("code"), get("state"))
}

#[tokio::test]
async fn a_user_signs_in_with_pkce_and_is_identified_by_tenant_and_object_id() {
    let sim = sim().await;
    let oidc = client(&sim).await;
    let (user, upn) = sim.sim.read(|t| {
        let u = t.live_users().find(|u| u.user_type == "Member").unwrap();
        (u.id.clone(), u.user_principal_name.clone())
    });
    let (url, pending) = oidc.begin().unwrap();
    assert!(url.contains("code_challenge_method=S256") && url.contains("nonce=") && url.contains("state="));
    assert_eq!(pending.verifier.len(), 43);
    let (code, state) = sign_in(&url, &upn).await;
    let identity = oidc.finish(&pending, &code, &state, SystemClock.now()).await.unwrap();
    assert_eq!((identity.tenant_id.as_str(), identity.object_id.as_str()), (sim.tenant_id().as_str(), user.as_str()));
    assert_eq!(identity.username.as_deref(), Some(upn.as_str()));

    // The same code again: the identity platform refuses it.
    let replay = oidc.finish(&pending, &code, &state, SystemClock.now()).await.unwrap_err();
    assert!(matches!(replay, OidcError::Refused(_)), "{replay:?}");
    // A callback whose state is not this sign-in's is refused before anything is redeemed.
    let (url, pending) = oidc.begin().unwrap();
    let (code, _) = sign_in(&url, &upn).await;
    assert_eq!(oidc.finish(&pending, &code, "someone-elses-state", SystemClock.now()).await, Err(OidcError::State));
    // A verifier that does not match the challenge: refused by the identity platform.
    let (url, pending) = oidc.begin().unwrap();
    let (code, state) = sign_in(&url, &upn).await;
    let wrong = Pending { verifier: "x".repeat(43), ..pending };
    assert!(matches!(oidc.finish(&wrong, &code, &state, SystemClock.now()).await, Err(OidcError::Refused(_))));
}

#[tokio::test]
async fn forged_expired_and_misdirected_id_tokens_are_refused() {
    let sim = sim().await;
    let oidc = client(&sim).await;
    let app = sim.sim.client().clone();
    let tenant = sim.tenant_id();
    let now = SystemClock.now().timestamp();
    let good = json!({
        "aud": app.client_id,
        "iss": format!("{}/{tenant}/v2.0", sim.login_url),
        "iat": now, "nbf": now, "exp": now + 3600,
        "oid": "11111111-2222-3333-4444-555555555555",
        "tid": tenant,
        "nonce": "n0nce",
        "ver": "2.0",
    });
    let sign = |claims: &Value| sim.sim.sign_token(claims).unwrap();
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        sign(&claims)
    };
    assert_eq!(oidc.validate(&sign(&good), "n0nce", SystemClock.now()).await.unwrap().object_id, good["oid"]);
    let refused = |token: String, nonce: &'static str| {
        let oidc = &oidc;
        async move { oidc.validate(&token, nonce, SystemClock.now()).await.unwrap_err() }
    };
    use OidcError::InvalidToken;
    assert_eq!(
        refused(with("aud", json!("another-app")), "n0nce").await,
        InvalidToken("issued for another application")
    );
    assert_eq!(refused(with("exp", json!(now - 3600)), "n0nce").await, InvalidToken("expired"));
    assert_eq!(refused(with("nbf", json!(now + 3600)), "n0nce").await, InvalidToken("not valid yet"));
    assert_eq!(refused(sign(&good), "another-nonce").await, InvalidToken("the nonce is not this sign-in's"));
    assert_eq!(
        refused(with("iss", json!("https://login.microsoftonline.com/other-tenant/v2.0")), "n0nce").await,
        InvalidToken("issued by another issuer or tenant")
    );
    assert_eq!(refused(with("tid", json!("other-tenant")), "n0nce").await, InvalidToken("issued for another tenant"));

    // Tampered claims: the signature no longer verifies.
    let token = sign(&good);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = good.clone();
    claims["oid"] = json!("99999999-9999-9999-9999-999999999999");
    parts[1] = base64_url(&claims.to_string());
    assert_eq!(refused(parts.join("."), "n0nce").await, InvalidToken("the signature does not verify"));
    // `alg: none` and an unknown key are refused.
    parts[0] = base64_url(&json!({"alg": "none", "typ": "JWT"}).to_string());
    assert_eq!(refused(format!("{}.{}.", parts[0], parts[1]), "n0nce").await, InvalidToken("not signed with RS256"));
    parts[0] = base64_url(&json!({"alg": "RS256", "kid": "rotated-away"}).to_string());
    assert_eq!(refused(parts.join("."), "n0nce").await, InvalidToken("signed with a key the tenant does not publish"));
    assert_eq!(refused("not-a-jwt".into(), "n0nce").await, InvalidToken("not a signed JWT"));
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
