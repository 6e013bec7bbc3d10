//! The Graph client against the simulator: paging, every fault it must survive, and the ones
//! it must report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use attest_entra_sim::{
    ClientApp, Fault, FaultRule, SimHandle, SimOptions, TenantSpec, ThrottleConfig, generate, spawn_with,
};

use crate::{ApiErrorKind, AuthError, Credentials, GraphClient, GraphError, RetryPolicy};

fn spec() -> TenantSpec {
    TenantSpec { users: 700, groups: 30, apps: 4, assignments_per_app: 10, seed: 3 }
}

async fn sim(options: SimOptions) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(listener, generate(spec()), ClientApp::attest(3), options).await.unwrap()
}

/// A quick policy for tests: short backoffs, short timeout.
fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 6,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    }
}

/// The simulator's client app, as credentials.
pub(crate) fn sim_credentials(sim: &SimHandle) -> Credentials {
    let app = sim.sim.client().clone();
    Credentials {
        login_url: sim.login_url.clone(),
        graph_url: sim.graph_url.clone(),
        tenant_id: sim.tenant_id(),
        client_id: app.client_id,
        client_secret: app.client_secret,
        certificate: None,
    }
}

fn client(sim: &SimHandle) -> GraphClient {
    GraphClient::connect(attest_http::client().unwrap(), sim_credentials(sim), policy())
}

async fn count_users(client: &GraphClient) -> Result<usize, GraphError> {
    let mut n = 0;
    client.pages("/users?$top=100&$select=id", &[], |items| n += items.len()).await?;
    Ok(n)
}

#[tokio::test]
async fn pages_to_the_end_and_reads_roles() {
    let sim = sim(SimOptions::default()).await;
    let client = client(&sim);
    assert_eq!(count_users(&client).await.unwrap(), sim.sim.read(|t| t.live_users().count()));
    let token = client.tokens().token().await.unwrap();
    assert!(token.roles.iter().any(|r| r == "GroupMember.Read.All"), "{:?}", token.roles);
    // A Graph refusal is an answer, not a retry.
    let err = client.get("/groups/00000000-0000-0000-0000-000000000000", &[]).await.unwrap_err();
    assert_eq!(err.kind(), Some(ApiErrorKind::NotFound), "{err}");
    assert!(err.to_string().starts_with("Graph answered 404 Request_ResourceNotFound: "), "{err}");
    let pages = sim.sim.read(|t| t.live_users().count()).div_ceil(100) as u64;
    assert_eq!(sim.sim.stats().requests, 1 + pages + 1, "a token, the pages, one refused GET");
}

#[tokio::test]
async fn retry_after_is_waited_out_and_never_jumped() {
    let sim = sim(SimOptions::default()).await;
    sim.inject(FaultRule::on("/v1.0/users", Fault::Unavailable { retry_after: Some(0.7) }).skip(2));
    let client = client(&sim);
    let started = Instant::now();
    assert_eq!(count_users(&client).await.unwrap(), sim.sim.read(|t| t.live_users().count()));
    assert!(started.elapsed() >= Duration::from_millis(700), "{:?}", started.elapsed());
    let stats = sim.sim.stats();
    assert_eq!((stats.faults, stats.early_requests), (1, 0));
}

#[tokio::test]
async fn throttling_with_real_buckets_costs_time_not_correctness() {
    // 30 resource units per second: paging 700 users 100 at a time (1 RU each with $select)
    // fits; three listings in parallel do not, and must queue behind Retry-After.
    let throttle = ThrottleConfig { quota: Some(6.0), window_secs: 2.0, ..ThrottleConfig::default() };
    let sim = sim(SimOptions { throttle: Some(throttle), ..SimOptions::default() }).await;
    let client = client(&sim);
    let live = sim.sim.read(|t| t.live_users().count());
    let (a, b, c) = tokio::join!(count_users(&client), count_users(&client), count_users(&client));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (live, live, live));
    let stats = sim.sim.stats();
    assert!(stats.throttled > 0, "the quota was hit");
    assert_eq!(stats.early_requests, 0, "no request inside a Retry-After window");
}

#[tokio::test]
async fn transient_faults_are_survived() {
    let sim = sim(SimOptions::default()).await;
    for fault in [
        Fault::Unavailable { retry_after: None },
        Fault::GatewayTimeout,
        Fault::ThrottledWithoutRetryAfter,
        Fault::Drop,
        Fault::Slow { millis: 2_500 },
        Fault::TokenExpired,
    ] {
        sim.inject(FaultRule::on("/v1.0/users", fault).skip(1));
    }
    let client = client(&sim);
    assert_eq!(count_users(&client).await.unwrap(), sim.sim.read(|t| t.live_users().count()));
    assert_eq!(sim.sim.faults().len(), 6);
    assert_eq!(sim.sim.stats().early_requests, 0);
}

#[tokio::test]
async fn revoked_consent_is_reported_as_such() {
    let sim = sim(SimOptions::default()).await;
    let client = client(&sim);
    assert!(count_users(&client).await.is_ok());
    sim.inject(FaultRule::on("/v1.0/users", Fault::ConsentRevoked));
    let err = count_users(&client).await.unwrap_err();
    assert!(matches!(err, GraphError::Auth(AuthError::NotConsented { .. })), "{err}");
    assert!(err.to_string().contains("admin consent"), "{err}");
    sim.sim.grant_consent();
    sim.sim.set_secret_expired(true);
    assert_eq!(client.tokens().token().await.unwrap_err(), AuthError::SecretExpired);
}

#[tokio::test]
async fn an_unreachable_service_gives_up_with_the_last_reason() {
    let sim = sim(SimOptions::default()).await;
    sim.inject(FaultRule::on("/v1.0/users", Fault::GatewayTimeout).times(100));
    let client = client(&sim);
    let err = client.get("/users", &[]).await.unwrap_err();
    assert!(matches!(err, GraphError::Exhausted { attempts: 6, .. }), "{err}");
    assert!(err.to_string().contains("504 timeout"), "{err}");
}

#[test]
fn credentials_never_print_the_secret() {
    let credentials = Credentials {
        login_url: "https://login.microsoftonline.com".into(),
        graph_url: "https://graph.microsoft.com".into(),
        tenant_id: "t".into(),
        client_id: "c".into(),
        client_secret: "hunter2".into(),
        certificate: None,
    };
    assert!(!format!("{credentials:?}").contains("hunter2"));
}

#[tokio::test]
async fn readiness_names_each_missing_permission_and_the_feature_it_blocks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut app = ClientApp::attest(3);
    app.roles.retain(|r| r != "GroupMember.Read.All" && r != "AuditLog.Read.All");
    let sim = spawn_with(listener, generate(spec()), app, SimOptions::default()).await.unwrap();
    let report = crate::readiness::check(&client(&sim)).await;
    assert!(report.signed_in && !report.can_sync(), "{report:?}");
    let feature = |name: &str| report.features.iter().find(|f| f.feature == name).unwrap().clone();
    assert_eq!(feature("sync").missing_permissions, ["GroupMember.Read.All"]);
    assert_eq!(feature("sign-in activity").missing_permissions, ["AuditLog.Read.All"]);
    assert!(feature("PIM").ready, "{report:?}");
    let provisioning = feature("provisioning");
    assert!(!provisioning.ready && provisioning.missing_permissions.contains(&"AppRoleAssignment.ReadWrite.All"));

    // With everything granted, only the licence can stand in the way.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut tenant = generate(spec());
    tenant.non_premium = true;
    let sim =
        spawn_with(listener, tenant, ClientApp::attest(3).with_provisioning(), SimOptions::default()).await.unwrap();
    let report = crate::readiness::check(&client(&sim)).await;
    assert!(report.can_sync(), "{report:?}");
    for name in ["sign-in activity", "PIM"] {
        let f = report.features.iter().find(|f| f.feature == name).unwrap();
        assert!(!f.ready && f.missing_permissions.is_empty(), "{f:?}");
        assert!(f.problems[0].contains("licence"), "{f:?}");
    }
    assert!(report.features.iter().find(|f| f.feature == "provisioning").unwrap().ready);

    // Without consent, the report says so and what to do.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = SimOptions { consented: false, ..SimOptions::default() };
    let sim = spawn_with(listener, generate(spec()), ClientApp::attest(3), options).await.unwrap();
    let report = crate::readiness::check(&client(&sim)).await;
    assert!(!report.signed_in && report.needs_consent, "{report:?}");
    assert!(report.problem.unwrap().contains("admin consent"));
}

#[tokio::test]
async fn a_certificate_gets_tokens_with_a_signed_assertion_and_an_unknown_one_is_refused() {
    const CERT: &str = include_str!("../../entra-sim/keys/client-cert.pem");
    const KEY: &str = include_str!("../../entra-sim/keys/client-key.pem");
    let certificate = std::sync::Arc::new(crate::certificate::ClientCertificate::from_pem(CERT, KEY).unwrap());
    // Uploaded to the registration: tokens come, and Graph answers; no secret is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = ClientApp::attest(3).with_certificate(CERT).unwrap();
    let sim = spawn_with(listener, generate(spec()), app, SimOptions::default()).await.unwrap();
    let credentials =
        Credentials { client_secret: String::new(), certificate: Some(certificate.clone()), ..sim_credentials(&sim) };
    let client = GraphClient::connect(attest_http::client().unwrap(), credentials.clone(), policy());
    assert_eq!(count_users(&client).await.unwrap(), sim.sim.read(|t| t.live_users().count()));
    // Not uploaded: refused, in words that say what to do.
    let bare = sim_credentials(&sim).client_id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = spawn_with(listener, generate(spec()), ClientApp::attest(3), SimOptions::default()).await.unwrap();
    let credentials =
        Credentials { client_secret: String::new(), certificate: Some(certificate), ..sim_credentials(&other) };
    assert_eq!(credentials.client_id, bare);
    let refused = crate::TokenSource::new(attest_http::client().unwrap(), credentials).token().await.unwrap_err();
    assert_eq!(refused, AuthError::CertificateRefused(700027));
    assert!(refused.owner_must_act() && refused.to_string().contains("upload the certificate"), "{refused}");
}
