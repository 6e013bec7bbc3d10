//! Fault plans, the write quota, latency and the app's standing in the tenant: each failure
//! looks to a client exactly as it would from Graph, and each is recorded.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Fixture, error_code, manageable_group, small};
use crate::{ClientApp, Fault, FaultPlan, FaultRule, RetryAfter, SimOptions, ThrottleConfig};

async fn with(options: SimOptions) -> Fixture {
    Fixture::with_options(small(), ClientApp::attest(7).with_provisioning(), |_| {}, options).await
}

#[tokio::test]
async fn unavailable_and_timeouts_look_like_graph_and_are_recorded() {
    let f = with(SimOptions::default()).await;
    f.sim.inject(FaultRule::on("/v1.0/users", Fault::Unavailable { retry_after: Some(1.5) }).method("GET"));
    f.sim.inject(FaultRule::on("/v1.0/groups", Fault::GatewayTimeout));
    f.sim.inject(FaultRule::on("/v1.0/servicePrincipals", Fault::ThrottledWithoutRetryAfter));

    let (status, headers, body) = f.get("/v1.0/users?$top=5", &[]).await;
    assert_eq!((status, error_code(&body)), (503, "serviceNotAvailable"));
    assert_eq!(headers["retry-after"], "1.5");
    assert_eq!(body["error"]["innerError"]["request-id"], headers["request-id"].to_str().unwrap());
    // A request right behind the refusal may have been in flight already: not counted.
    assert_eq!(f.get("/v1.0/users?$top=5", &[]).await.0, 200);
    assert_eq!(f.sim.sim.stats().early_requests, 0);
    // One sent well after it, before the 1.5 s are up, is early: the simulator notices.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.get("/v1.0/users?$top=5", &[]).await.0, 200);
    assert_eq!(f.sim.sim.stats().early_requests, 1);

    let (status, headers, body) = f.get("/v1.0/groups?$top=5", &[]).await;
    assert_eq!((status, error_code(&body)), (504, "timeout"));
    assert!(headers.get("retry-after").is_none());

    let (status, headers, body) = f.get("/v1.0/servicePrincipals", &[]).await;
    assert_eq!((status, error_code(&body)), (429, "TooManyRequests"));
    assert!(headers.get("retry-after").is_none(), "the no-Retry-After variant");
    assert_eq!(headers["x-ms-throttle-information"], "ResourceUnitLimitExceeded");

    // Each rule fired once.
    assert_eq!(f.get("/v1.0/groups?$top=5", &[]).await.0, 200);
    let record: Vec<&str> = f.sim.sim.faults().iter().map(|r| r.fault.name()).collect();
    assert_eq!(record, ["unavailable_retry_after", "gateway_timeout", "throttled_without_retry_after"]);
    let log = f.sim.sim.requests();
    let faulted: Vec<(u16, Option<&str>)> =
        log.iter().filter(|r| r.fault.is_some()).map(|r| (r.status, r.fault)).collect();
    assert_eq!(
        faulted,
        [
            (503, Some("unavailable_retry_after")),
            (504, Some("gateway_timeout")),
            (429, Some("throttled_without_retry_after"))
        ]
    );
    assert_eq!(f.sim.sim.stats().faults, 3);
}

#[tokio::test]
async fn dropped_connections_and_slow_responses() {
    let f = with(SimOptions::default()).await;
    f.sim.inject(FaultRule::on("/v1.0/users", Fault::Drop));
    let url = format!("{}/v1.0/users?$top=5", f.sim.graph_url);
    let outcome = match f.http.get(&url).bearer_auth(&f.token).send().await {
        Err(e) => Err(e),
        Ok(response) => response.bytes().await.map(|_| ()),
    };
    assert!(outcome.is_err(), "a dropped connection is a transport error, not a status");
    assert_eq!(f.get("/v1.0/users?$top=5", &[]).await.0, 200, "the connection after is fine");

    f.sim.inject(FaultRule::on("/v1.0/users", Fault::Slow { millis: 400 }));
    let started = Instant::now();
    assert_eq!(f.get("/v1.0/users?$top=5", &[]).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    let timeout = attest_http::client_builder().timeout(Duration::from_millis(100)).build().unwrap();
    f.sim.inject(FaultRule::on("/v1.0/users", Fault::Slow { millis: 400 }));
    assert!(timeout.get(&url).bearer_auth(&f.token).send().await.unwrap_err().is_timeout());
}

#[tokio::test]
async fn latency_is_added_to_every_graph_request() {
    let f = with(SimOptions { latency: Duration::from_millis(60), ..SimOptions::default() }).await;
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(f.get("/v1.0/users?$top=1", &[]).await.0, 200);
    }
    assert!(started.elapsed() >= Duration::from_millis(180));
}

#[tokio::test]
async fn expired_delta_tokens_and_replayed_pages() {
    let f = with(SimOptions::default()).await;
    // Expiry hits only a request that carries a token.
    f.sim.inject(FaultRule::on("/delta", Fault::DeltaTokenExpired));
    let (status, _, first) = f.get("/v1.0/users/delta?$select=displayName", &[]).await;
    assert_eq!(status, 200);
    let next = first["@odata.nextLink"].as_str().unwrap();
    let (status, headers, body) = f.get(next, &[]).await;
    assert_eq!((status, error_code(&body)), (410, "syncStateNotFound"));
    assert_eq!(headers["location"], format!("{}/v1.0/users/delta?%24select=displayName", f.sim.graph_url));

    // A replayed page comes twice; the round still ends with every user, some seen twice.
    f.sim.inject(FaultRule::on("/delta", Fault::ReplayDeltaPage).skip(1));
    let (mut url, mut seen, mut pages) = ("/v1.0/users/delta?$select=displayName".to_owned(), Vec::new(), Vec::new());
    let delta_link = loop {
        let (status, _, body) = f.get(&url, &[]).await;
        assert_eq!(status, 200, "{body}");
        pages.push(url.clone());
        seen.extend(body["value"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match (body["@odata.nextLink"].as_str(), body["@odata.deltaLink"].as_str()) {
            (Some(next), None) => url = next.to_owned(),
            (None, Some(delta)) => break delta.to_owned(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(pages[2], pages[3], "the second page with a token was served again");
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), f.sim.sim.read(|t| t.users.iter().filter(|u| !u.purged).count()));
    assert!(seen.len() > unique.len());
    assert_eq!(f.get(&delta_link, &[]).await.0, 200);
}

#[tokio::test]
async fn expired_and_revoked_access() {
    let f = with(SimOptions::default()).await;
    f.sim.inject(FaultRule::on("/v1.0/users", Fault::TokenExpired));
    for _ in 0..2 {
        let (status, _, body) = f.get("/v1.0/users?$top=1", &[]).await;
        assert_eq!((status, error_code(&body)), (401, "InvalidAuthenticationToken"));
        assert!(body["error"]["message"].as_str().unwrap().starts_with("Lifetime validation failed"), "{body}");
    }
    let mut fresh = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let ok = f.http.get(format!("{}/v1.0/users?$top=1", f.sim.graph_url)).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    // The admin removes the app: the request that saw it go is refused, then no token is issued.
    f.sim.inject(FaultRule::on("/v1.0/groups", Fault::ConsentRevoked));
    let revoked = f.http.get(format!("{}/v1.0/groups", f.sim.graph_url)).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(revoked.status(), 401);
    let client = f.sim.sim.client().clone();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let refused = f.token_request(&form).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["error_codes"][0].as_u64()), (Some("unauthorized_client"), Some(700016)));

    // Consent again: tokens again.
    f.sim.sim.grant_consent();
    fresh = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let ok = f.http.get(format!("{}/v1.0/groups", f.sim.graph_url)).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    // Disabled app, expired secret: their own AADSTS codes.
    f.sim.sim.set_app_disabled(true);
    let body: Value = f.token_request(&form).await.json().await.unwrap();
    assert_eq!(body["error_codes"][0], 7000112);
    f.sim.sim.set_app_disabled(false);
    f.sim.sim.set_secret_expired(true);
    let response = f.token_request(&form).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["error_codes"][0].as_u64()), (Some("invalid_client"), Some(7000222)));
    f.sim.sim.set_secret_expired(false);

    // Partial consent: the token carries only what was granted, and Graph enforces it.
    f.sim.sim.grant_only(&["User.Read.All"]);
    let token = f.fetch_token().await["access_token"].as_str().unwrap().to_owned();
    let claims = super::claims(&token);
    assert_eq!(claims["roles"], json!(["User.Read.All"]));
    let denied = f.http.get(format!("{}/v1.0/groups", f.sim.graph_url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(denied.status(), 403);
}

#[tokio::test]
async fn removing_a_missing_link_can_answer_the_400_variant() {
    let f = with(SimOptions::default()).await;
    let (group, _, _, outsider) = manageable_group(&f);
    let path = format!("/v1.0/groups/{group}/members/{outsider}/$ref");
    assert_eq!(f.send(Method::DELETE, &path, None, &[]).await.0, 404);
    f.sim.inject(FaultRule::on("/$ref", Fault::RemovedReferencesVariant));
    // A removal that succeeds is not the variant's case: the rule waits for one that fails.
    let (_, members, _, _) = manageable_group(&f);
    let member = format!("/v1.0/groups/{group}/members/{}/$ref", members[0]);
    assert_eq!(f.send(Method::DELETE, &member, None, &[]).await.0, 204);
    assert!(f.sim.sim.faults().is_empty());
    let (status, _, body) = f.send(Method::DELETE, &path, None, &[]).await;
    assert_eq!((status, error_code(&body)), (400, "Request_BadRequest"));
    assert_eq!(
        body["error"]["message"],
        "One or more removed object references do not exist for the following modified properties: 'members'."
    );
}

#[tokio::test]
async fn random_plans_are_seeded_and_every_fault_is_recorded() {
    let run = |seed| async move {
        let f = with(SimOptions { faults: FaultPlan::random(seed, 0.3), ..SimOptions::default() }).await;
        for _ in 0..60 {
            // Longer than a slow response: every request ends with what the server sent.
            let request = f.http.get(format!("{}/v1.0/groups?$top=2", f.sim.graph_url)).bearer_auth(&f.token);
            if let Ok(response) = request.timeout(Duration::from_secs(5)).send().await {
                let _ = response.bytes().await;
            }
        }
        (f.sim.sim.faults(), f.sim.sim.requests())
    };
    let (faults, log) = run(5).await;
    assert!((8..=30).contains(&faults.len()), "{} faults in 60 requests at 30 %", faults.len());
    // Each recorded fault is the request the log shows it on, with the answer it implies.
    for fault in &faults {
        let request = log.iter().find(|r| r.request_id == fault.request_id).expect("the faulted request is logged");
        assert_eq!(request.fault, Some(fault.fault.name()));
        let expected = match fault.fault {
            Fault::Unavailable { .. } => 503,
            Fault::GatewayTimeout => 504,
            Fault::ThrottledWithoutRetryAfter => 429,
            Fault::Drop => 0,
            Fault::Slow { .. } => 200,
            other => panic!("{other:?} cannot apply to GET /groups"),
        };
        assert_eq!(request.status, expected, "{:?}", fault.fault);
    }
    assert_eq!(log.iter().filter(|r| r.fault.is_some()).count(), faults.len());
    let names = |faults: &[crate::FaultRecord]| faults.iter().map(|r| r.fault.name()).collect::<Vec<_>>();
    assert_eq!(names(&run(5).await.0), names(&faults), "the same seed gives the same faults");
}

#[tokio::test]
async fn faults_can_be_planned_over_http() {
    let f = with(SimOptions::default()).await;
    let rule =
        json!({"rule": {"method": "GET", "path": "/v1.0/users", "fault": {"kind": "gateway_timeout"}, "times": 2}});
    let url = format!("{}/_sim/faults", f.sim.graph_url);
    assert_eq!(f.http.post(&url).json(&rule).send().await.unwrap().status(), 204);
    assert_eq!(f.get("/v1.0/users", &[]).await.0, 504);
    assert_eq!(f.get("/v1.0/users", &[]).await.0, 504);
    assert_eq!(f.get("/v1.0/users", &[]).await.0, 200);
    let faults: Value = f.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(faults["injected"].as_array().unwrap().len(), 2);
    assert_eq!(faults["injected"][0]["fault"]["kind"], "gateway_timeout");
    let bad = json!({"plan": {"seed": 1}, "rule": rule["rule"]});
    assert_eq!(f.http.post(&url).json(&bad).send().await.unwrap().status(), 400);
    let log: Value =
        f.http.get(format!("{}/_sim/requests", f.sim.graph_url)).send().await.unwrap().json().await.unwrap();
    let users: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["uri"] == "/v1.0/users")
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(users, [504, 504, 200]);
}

#[tokio::test]
async fn the_write_quota_limits_writes_and_says_so() {
    // Three writes per 150 s; reads are not writes.
    let throttle = ThrottleConfig { quota: Some(1e9), write_quota: 3.0, ..ThrottleConfig::default() };
    let f = with(SimOptions { throttle: Some(throttle), ..SimOptions::default() }).await;
    let (group, members, _, _) = manageable_group(&f);
    for member in &members[..3] {
        let path = format!("/v1.0/groups/{group}/members/{member}/$ref");
        assert_eq!(f.send(Method::DELETE, &path, None, &[]).await.0, 204);
    }
    assert_eq!(f.get("/v1.0/users?$top=1", &[]).await.0, 200);
    let path = format!("/v1.0/groups/{group}/members/{}/$ref", members[0]);
    let body = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", members[0])});
    let (status, headers, _) =
        f.send(Method::POST, &format!("/v1.0/groups/{group}/members/$ref"), Some(body), &[]).await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-ms-throttle-information"], "WriteLimitExceeded");
    let scope = headers["x-ms-throttle-scope"].to_str().unwrap();
    assert!(scope.starts_with("Tenant_Application/Write/"), "{scope}");
    // One write refills every 50 s; the refused write is counted too, so two must refill.
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(wait, 100);
    assert!(!f.sim.sim.read(|t| t.groups.iter().any(|g| g.id == group && g.members.contains(&members[0]))));
    f.sim.advance(chrono::Duration::seconds(wait as i64));
    assert_eq!(f.send(Method::DELETE, &path, None, &[]).await.0, 404, "served again, and the member was removed");
    assert_eq!(f.sim.sim.stats().early_requests, 0);

    // The other Retry-After styles.
    for (style, expect) in [(RetryAfter::Fractional, Some('.')), (RetryAfter::Omitted, None)] {
        let throttle =
            ThrottleConfig { quota: Some(1e9), write_quota: 1.0, retry_after: style, ..ThrottleConfig::default() };
        let f = with(SimOptions { throttle: Some(throttle), ..SimOptions::default() }).await;
        let (group, members, _, _) = manageable_group(&f);
        for (n, member) in members[..2].iter().enumerate() {
            let (status, headers, _) =
                f.send(Method::DELETE, &format!("/v1.0/groups/{group}/members/{member}/$ref"), None, &[]).await;
            assert_eq!(status, if n == 0 { 204 } else { 429 });
            if n == 1 {
                let value = headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(value.as_deref().map(|v| v.contains('.')), expect.map(|_| true), "{value:?}");
            }
        }
    }
}
