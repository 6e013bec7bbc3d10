//! Sync against the simulator, on both databases: a full sync equals the tenant's truth
//! exactly; delta syncs after seeded mutations equal it too; faults change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use attest_connector::{SyncOutcome, run_sync};
use attest_domain::{Clock as _, SystemClock};
use attest_domain::{ConnectorId, LifecycleEventKind, SyncMode, SyncStatus, SyncTrigger};
use attest_entra_sim::{ClientApp, Fault, FaultRule, SimHandle, SimOptions, TenantSpec, Truth, generate, spawn_with};
use attest_store::{LifecycleEventView, LifecycleFilter, NewConnector, Store, store_test};

use super::*;
use crate::RetryPolicy;

fn spec(seed: u64) -> TenantSpec {
    TenantSpec { users: 400, groups: 40, apps: 6, assignments_per_app: 15, seed }
}

async fn sim(spec: TenantSpec, options: SimOptions) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(listener, generate(spec), ClientApp::attest(spec.seed), options).await.unwrap()
}

fn connector_for(sim: &SimHandle, settings: EntraSettings) -> EntraConnector {
    let policy = RetryPolicy {
        attempts: 8,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
    };
    let credentials = crate::tests::sim_credentials(sim);
    EntraConnector::new(GraphClient::connect(attest_http::client().unwrap(), credentials, policy), settings)
}

fn settings() -> EntraSettings {
    EntraSettings { app_assignments_refresh_minutes: 0, ..EntraSettings::default() }
}

async fn new_connector(store: &Store) -> ConnectorId {
    store.connectors().create_connector(NewConnector::entra("contoso"), SystemClock.now()).await.unwrap().id
}

async fn sync(c: &EntraConnector, store: &Store, id: ConnectorId, mode: SyncMode) -> SyncOutcome {
    run_sync(c, store, id, mode, SyncTrigger::Cli, &attest_domain::SystemClock, None).await.unwrap()
}

/// Asserts the graph equals the simulator's truth, kind by kind, naming the first differences.
async fn assert_matches_truth(sim: &SimHandle, store: &Store, id: ConnectorId, context: &str) {
    let truth: BTreeMap<&'static str, Vec<String>> = sim.sim.read(Truth::lines);
    let graph = canonical_lines(store, id).await.unwrap();
    for (kind, expected) in &truth {
        let actual = graph.get(kind).cloned().unwrap_or_default();
        if &actual != expected {
            let missing: Vec<&String> = expected.iter().filter(|l| actual.binary_search(l).is_err()).take(5).collect();
            let extra: Vec<&String> = actual.iter().filter(|l| expected.binary_search(l).is_err()).take(5).collect();
            panic!(
                "{context}: {kind} differ ({} in the graph, {} in the tenant); missing {missing:?}; extra {extra:?}",
                actual.len(),
                expected.len()
            );
        }
    }
}

store_test!(a_full_sync_equals_the_tenant, |store| {
    let sim = sim(spec(11), SimOptions::default()).await;
    let id = new_connector(&store).await;
    let c = connector_for(&sim, settings());
    let outcome = sync(&c, &store, id, SyncMode::Full).await;
    assert_matches_truth(&sim, &store, id, "after a full sync").await;
    let run = &outcome.summary.run;
    assert_eq!(run.status, SyncStatus::Succeeded);
    assert!(run.requests > 0 && run.resource_units >= run.requests / 2, "{run:?}");
    assert_eq!(sim.sim.stats().early_requests, 0);

    // A second full sync changes nothing and writes nothing.
    let again = sync(&c, &store, id, SyncMode::Full).await.summary.run;
    assert_eq!(again.counts.grants.written(), 0, "{:?}", again.counts);
    assert_eq!(again.counts.principals.written(), 0, "{:?}", again.counts);
    assert_matches_truth(&sim, &store, id, "after a second full sync").await;
});

store_test!(delta_syncs_after_mutations_equal_the_tenant, |store| {
    let sim = sim(spec(12), SimOptions::default()).await;
    let id = new_connector(&store).await;
    let c = connector_for(&sim, settings());
    sync(&c, &store, id, SyncMode::Full).await;
    for seed in 0..6 {
        sim.mutate(seed, 4);
        let outcome = sync(&c, &store, id, SyncMode::Delta).await;
        assert_eq!(outcome.fell_back, None, "seed {seed}");
        assert_eq!(outcome.summary.run.mode, SyncMode::Delta);
        assert_matches_truth(&sim, &store, id, &format!("after delta round {seed}")).await;
    }
    // Nothing changed: a delta reads a few pages and writes nothing.
    let quiet = sync(&c, &store, id, SyncMode::Delta).await.summary.run;
    assert_eq!(quiet.counts.grants.added + quiet.counts.grants.removed, 0, "{:?}", quiet.counts);
});

store_test!(an_expired_delta_link_falls_back_to_a_full_sync, |store| {
    let sim = sim(spec(13), SimOptions::default()).await;
    let id = new_connector(&store).await;
    let c = connector_for(&sim, settings());
    sync(&c, &store, id, SyncMode::Full).await;
    sim.mutate(1, 3);
    sim.reset_delta();
    let outcome = sync(&c, &store, id, SyncMode::Delta).await;
    assert!(outcome.fell_back.is_some(), "{outcome:?}");
    assert_eq!((outcome.summary.run.mode, outcome.summary.run.trigger), (SyncMode::Full, SyncTrigger::Fallback));
    assert!(outcome.summary.run.notes.iter().any(|n| n.contains("full sync instead of delta")), "{outcome:?}");
    let runs = store.syncs().list_sync_runs(id, 5).await.unwrap();
    let failed = runs.iter().find(|r| r.status == SyncStatus::Failed).expect("the delta run is recorded");
    assert!(failed.error.as_deref().unwrap_or_default().contains("delta state"), "{failed:?}");
    assert_matches_truth(&sim, &store, id, "after the fallback").await;
    // And delta works again from the new links.
    sim.mutate(2, 3);
    assert_eq!(sync(&c, &store, id, SyncMode::Delta).await.fell_back, None);
    assert_matches_truth(&sim, &store, id, "after the next delta").await;
});

store_test!(faults_and_throttling_leave_the_result_exact, |store| {
    let options = SimOptions {
        faults: attest_entra_sim::FaultPlan::random(7, 0.1),
        throttle: Some(attest_entra_sim::ThrottleConfig { quota: Some(60.0), window_secs: 1.0, ..Default::default() }),
        ..SimOptions::default()
    };
    let sim = sim(spec(14), options).await;
    sim.inject(FaultRule::on("/v1.0/users/delta", Fault::TokenExpired).skip(1).times(1));
    let id = new_connector(&store).await;
    let c = connector_for(&sim, settings());
    let outcome = sync(&c, &store, id, SyncMode::Full).await;
    assert_matches_truth(&sim, &store, id, "after a full sync with faults").await;
    assert!(!sim.sim.faults().is_empty(), "faults were injected");
    assert_eq!(sim.sim.stats().early_requests, 0, "no request inside a Retry-After window");
    assert!(outcome.summary.run.requests > 0);
    sim.mutate(3, 4);
    sync(&c, &store, id, SyncMode::Delta).await;
    assert_matches_truth(&sim, &store, id, "after a delta with faults").await;
});

store_test!(syncs_over_https, |store| {
    // Graph is HTTPS only: the simulator sits behind a TLS front and hands out https links.
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("https://localhost:{}", front.local_addr().unwrap().port());
    let sim = sim(spec(15), SimOptions { public_url: Some(public_url), ..SimOptions::default() }).await;
    attest_http::test_tls::spawn_front(front, sim.addr).unwrap();
    assert!(sim.graph_url.starts_with("https://") && sim.login_url.starts_with("https://"));

    let credentials = crate::tests::sim_credentials(&sim);
    let http = attest_http::test_tls::client_builder().unwrap().https_only(true).build().unwrap();
    let c = EntraConnector::new(GraphClient::connect(http, credentials, RetryPolicy::default()), settings());
    let id = new_connector(&store).await;
    sync(&c, &store, id, SyncMode::Full).await;
    assert_matches_truth(&sim, &store, id, "after a full sync over https").await;
    sim.mutate(4, 3);
    assert_eq!(sync(&c, &store, id, SyncMode::Delta).await.fell_back, None);
    assert_matches_truth(&sim, &store, id, "after a delta sync over https").await;
});

/// What changed between two truths, as the lifecycle events that should say so: users created or
/// restored, deleted, disabled, enabled; memberships added and removed (`group|member`).
fn expected_events(
    before: &BTreeMap<&'static str, Vec<String>>,
    after: &BTreeMap<&'static str, Vec<String>>,
) -> BTreeMap<&'static str, BTreeSet<String>> {
    let users = |t: &BTreeMap<&'static str, Vec<String>>| -> BTreeMap<String, String> {
        t["users"]
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split('|').collect();
                (fields[0].to_owned(), fields[2].to_owned())
            })
            .collect()
    };
    let (was, is) = (users(before), users(after));
    let memberships =
        |t: &BTreeMap<&'static str, Vec<String>>| -> BTreeSet<String> { t["memberships"].iter().cloned().collect() };
    let (was_in, is_in) = (memberships(before), memberships(after));
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    out.insert("appeared", is.keys().filter(|id| !was.contains_key(*id)).cloned().collect());
    out.insert("deleted", was.keys().filter(|id| !is.contains_key(*id)).cloned().collect());
    let flipped = |from: &str, to: &str| -> BTreeSet<String> {
        is.iter()
            .filter(|(id, enabled)| *enabled == to && was.get(*id).is_some_and(|e| e == from))
            .map(|(id, _)| id.clone())
            .collect()
    };
    out.insert("disabled", flipped("true", "false"));
    out.insert("enabled", flipped("false", "true"));
    out.insert("joined", is_in.difference(&was_in).cloned().collect());
    out.insert("left", was_in.difference(&is_in).cloned().collect());
    out
}

/// The same sets, from the events a run appended.
fn actual_events(events: &[LifecycleEventView]) -> BTreeMap<&'static str, BTreeSet<String>> {
    use attest_domain::LifecycleEventKind::*;
    let mut out: BTreeMap<&'static str, BTreeSet<String>> =
        ["appeared", "deleted", "disabled", "enabled", "joined", "left"].map(|k| (k, BTreeSet::new())).into();
    for e in events {
        let user = e.principal_kind == "user";
        let membership =
            || format!("{}|{}", e.resource_external_id.clone().unwrap_or_default(), e.principal_external_id);
        let (set, value) = match e.event.kind {
            PrincipalCreated | PrincipalRestored if user => ("appeared", e.principal_external_id.clone()),
            PrincipalDeleted if user => ("deleted", e.principal_external_id.clone()),
            PrincipalDisabled if user => ("disabled", e.principal_external_id.clone()),
            PrincipalEnabled if user => ("enabled", e.principal_external_id.clone()),
            MembershipAdded => ("joined", membership()),
            MembershipRemoved => ("left", membership()),
            _ => continue,
        };
        assert!(out.get_mut(set).unwrap().insert(value.clone()), "{set} {value} appended twice");
    }
    out
}

store_test!(lifecycle_events_say_exactly_what_changed_in_the_tenant, |store| {
    let sim = sim(spec(16), SimOptions::default()).await;
    let id = new_connector(&store).await;
    let c = connector_for(&sim, settings());
    sync(&c, &store, id, SyncMode::Full).await;
    let filter = LifecycleFilter { connector: Some(id), limit: 1_000_000, ..LifecycleFilter::default() };
    assert!(
        store.lifecycle().list_lifecycle_events(&filter).await.unwrap().is_empty(),
        "a first sync appends no events"
    );
    let mut happened: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (round, mode) in [(0, SyncMode::Delta), (1, SyncMode::Full), (2, SyncMode::Delta)] {
        let before = sim.sim.read(Truth::lines);
        sim.mutate(20 + round, 5);
        let after = sim.sim.read(Truth::lines);
        let run = sync(&c, &store, id, mode).await.summary.run;
        let events: Vec<LifecycleEventView> = store
            .lifecycle()
            .list_lifecycle_events(&filter)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event.sync_run_id == Some(run.id))
            .collect();
        let expected = expected_events(&before, &after);
        let actual = actual_events(&events);
        for (kind, want) in &expected {
            let got = &actual[kind];
            let missing: Vec<&String> = want.difference(got).take(3).collect();
            let extra: Vec<&String> = got.difference(want).take(3).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "round {round} ({mode}) {kind}: missing {missing:?}, extra {extra:?}"
            );
            *happened.entry(kind).or_default() += want.len();
        }
    }
    assert!(happened.values().all(|n| *n > 0), "every kind of change was exercised: {happened:?}");
});

store_test!(narrowing_the_scope_ends_what_left_it, |store| {
    let sim = sim(spec(17), SimOptions::default()).await;
    let id = new_connector(&store).await;
    sync(&connector_for(&sim, settings()), &store, id, SyncMode::Full).await;
    let guests: BTreeSet<String> = sim.sim.read(Truth::lines)["users"]
        .iter()
        .filter(|line| line.ends_with("|Guest"))
        .map(|line| line.split('|').next().unwrap().to_owned())
        .collect();
    assert!(!guests.is_empty());
    let narrow =
        EntraSettings { scope: super::settings::Scope { include_guests: false, ..Default::default() }, ..settings() };
    for mode in [SyncMode::Full, SyncMode::Delta] {
        sim.mutate(30, 3);
        let run = sync(&connector_for(&sim, narrow.clone()), &store, id, mode).await.summary.run;
        // No current grant is held by a guest, and no guest is live.
        let mut held_by_guests = 0;
        let principals =
            store.principals().list_principals(id, Some(attest_domain::PrincipalKind::User), 1, 100_000).await.unwrap();
        let guest_ids: BTreeSet<i64> =
            principals.iter().filter(|p| guests.contains(&p.data.external_id)).map(|p| p.id.0).collect();
        assert!(principals.iter().filter(|p| guest_ids.contains(&p.id.0)).all(|p| p.data.deleted_at.is_some()));
        store
            .grants()
            .scan_current_grants(id, |g| held_by_guests += usize::from(guest_ids.contains(&g.principal_id)))
            .await
            .unwrap();
        assert_eq!(held_by_guests, 0, "{mode}: {:?}", run.counts);
    }
    // The narrowing appended deletions and removals only: nothing was re-added to a guest.
    let events = store
        .lifecycle()
        .list_lifecycle_events(&LifecycleFilter { connector: Some(id), limit: 100_000, ..Default::default() })
        .await
        .unwrap();
    let readded = events.iter().filter(|e| {
        guests.contains(&e.principal_external_id)
            && !matches!(
                e.event.kind,
                LifecycleEventKind::PrincipalDeleted
                    | LifecycleEventKind::MembershipRemoved
                    | LifecycleEventKind::AssignmentRemoved
            )
    });
    assert_eq!(readded.count(), 0);
    let deleted = events
        .iter()
        .filter(|e| e.event.kind == LifecycleEventKind::PrincipalDeleted && guests.contains(&e.principal_external_id));
    assert_eq!(deleted.count(), guests.len());
});

/// Starts a sync and cancels it (as a crash would stop it) once the simulator has answered
/// `after` more requests, or lets it finish if it needs fewer. Returns whether it was cut short.
async fn sync_cut_short(sim: &SimHandle, store: &Store, id: ConnectorId, mode: SyncMode, after: u64) -> bool {
    let c = connector_for(sim, settings());
    let (store2, start) = (store.clone(), sim.sim.stats().requests);
    let task = tokio::spawn(async move {
        run_sync(&c, &store2, id, mode, SyncTrigger::Cli, &attest_domain::SystemClock, None).await
    });
    while !task.is_finished() && sim.sim.stats().requests < start + after {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let cut = !task.is_finished();
    task.abort();
    let _ = task.await;
    cut
}

store_test!(a_sync_cut_short_at_any_point_leaves_a_graph_the_next_run_makes_exact, |store| {
    // A little latency spreads the run over time, so cuts land between requests and writes alike.
    let options = SimOptions { latency: Duration::from_millis(2), ..SimOptions::default() };
    let sim = sim(spec(18), options).await;
    let id = new_connector(&store).await;
    let filter = LifecycleFilter { connector: Some(id), limit: 1_000_000, ..LifecycleFilter::default() };
    let mut rng_state = 0x9e37_79b9_u64;
    let mut next = move |bound: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        1 + rng_state % bound
    };
    let mut cuts = 0;
    // The first sync (full, no delta state yet), then deltas and fulls after changes, each cut
    // short at a random point and run again.
    for (round, mode) in
        [SyncMode::Delta, SyncMode::Delta, SyncMode::Full, SyncMode::Delta, SyncMode::Full, SyncMode::Delta]
            .into_iter()
            .enumerate()
    {
        let before = sim.sim.read(Truth::lines);
        let seen_events = store.lifecycle().list_lifecycle_events(&filter).await.unwrap().len();
        if round > 0 {
            sim.mutate(40 + round as u64, 4);
        }
        let after = sim.sim.read(Truth::lines);
        cuts += usize::from(sync_cut_short(&sim, &store, id, mode, next(30)).await);
        let outcome = sync(&connector_for(&sim, settings()), &store, id, mode).await;
        assert_eq!(outcome.summary.run.status, SyncStatus::Succeeded);
        assert_matches_truth(&sim, &store, id, &format!("round {round}: after a cut-short {mode} sync and a rerun"))
            .await;
        // Events across the cut run and the rerun: each change once, none lost.
        if round > 0 {
            let events = store.lifecycle().list_lifecycle_events(&filter).await.unwrap().split_off(seen_events);
            assert_eq!(actual_events(&events), expected_events(&before, &after), "round {round}");
        }
    }
    assert!(cuts >= 4, "most runs were really cut short ({cuts})");
    // The cut runs are recorded as interrupted, not left running.
    let runs = store.syncs().list_sync_runs(id, 100).await.unwrap();
    assert!(runs.iter().all(|r| r.status != SyncStatus::Running), "{runs:?}");
    let interrupted = runs.iter().filter(|r| r.error.as_deref().is_some_and(|e| e.starts_with("interrupted"))).count();
    assert_eq!(interrupted, cuts);
});

store_test!(named_fault_plans_leave_the_result_exact_and_the_run_says_what_happened, |store| {
    use attest_entra_sim::FaultPlan;
    let random = |kinds: Vec<Fault>| FaultPlan { seed: 5, rate: 0.05, kinds, rules: Vec::new() };
    let plans: Vec<(&str, FaultPlan, &str)> = vec![
        (
            "5% 503s",
            random(vec![Fault::Unavailable { retry_after: Some(0.05) }, Fault::Unavailable { retry_after: None }]),
            "answered 5xx",
        ),
        ("5% dropped connections", random(vec![Fault::Drop]), "got no complete answer"),
        ("5% 429 without Retry-After", random(vec![Fault::ThrottledWithoutRetryAfter]), "throttled (429)"),
        (
            "token expiry mid-sync",
            FaultPlan::default().with_rule(FaultRule::on("/v1.0/groups/delta", Fault::TokenExpired).skip(1)),
            "access token(s) refused before their expiry and renewed",
        ),
    ];
    for (seed, (name, plan, said)) in plans.into_iter().enumerate() {
        let sim = sim(spec(50 + seed as u64), SimOptions { faults: plan, ..SimOptions::default() }).await;
        let id = store.connectors().create_connector(NewConnector::entra(name), SystemClock.now()).await.unwrap().id;
        let c = connector_for(&sim, settings());
        // A small tenant syncs in a few dozen requests: rounds of changes and deltas continue
        // until the plan has struck a few times, each round checked.
        let mut runs = vec![sync(&c, &store, id, SyncMode::Full).await.summary.run];
        for round in 0..12u64 {
            sim.mutate(seed as u64 * 100 + round, 3);
            runs.push(sync(&c, &store, id, SyncMode::Delta).await.summary.run);
            assert_matches_truth(&sim, &store, id, &format!("{name}, round {round}")).await;
            if sim.sim.faults().len() >= 3 {
                break;
            }
        }
        assert!(sim.sim.faults().len() >= 3 || name.starts_with("token"), "{name}: {:?}", sim.sim.faults());
        assert!(!sim.sim.faults().is_empty(), "{name}: faults were injected");
        assert_eq!(sim.sim.stats().early_requests, 0, "{name}");
        assert!(runs.iter().all(|r| r.status == SyncStatus::Succeeded), "{name}: {runs:?}");
        let notes: Vec<&String> = runs.iter().flat_map(|r| &r.notes).collect();
        assert!(notes.iter().any(|n| n.contains(said)), "{name}: the run records say so: {notes:?}");
    }

    // An expired delta token in the middle of a delta (users read, groups refused): that run is
    // recorded as failed with the reason, a full sync follows, and the result is exact.
    let sim = sim(spec(60), SimOptions::default()).await;
    let id = store
        .connectors()
        .create_connector(NewConnector::entra("expired delta token"), SystemClock.now())
        .await
        .unwrap()
        .id;
    let c = connector_for(&sim, settings());
    sync(&c, &store, id, SyncMode::Full).await;
    sim.mutate(9, 4);
    sim.inject(FaultRule::on("/v1.0/groups/delta", Fault::DeltaTokenExpired));
    let outcome = sync(&c, &store, id, SyncMode::Delta).await;
    assert_eq!((outcome.summary.run.mode, outcome.summary.run.trigger), (SyncMode::Full, SyncTrigger::Fallback));
    let runs = store.syncs().list_sync_runs(id, 5).await.unwrap();
    let failed = runs.iter().find(|r| r.mode == SyncMode::Delta).unwrap();
    assert_eq!(failed.status, SyncStatus::Failed);
    assert!(failed.error.as_deref().unwrap().contains("delta state"), "{failed:?}");
    assert!(failed.counts.principals.written() > 0, "the users read before the refusal were kept: {failed:?}");
    assert_matches_truth(&sim, &store, id, "after an expired delta token mid-delta").await;
});

store_test!(over_many_seeds_deltas_after_mutations_equal_a_fresh_full_sync, |store| {
    // Literally the property: a graph kept by delta syncs through random changes is the graph
    // a fresh full sync of the same tenant makes (and both are the tenant's truth).
    for seed in 0..8u64 {
        let tenant = TenantSpec { users: 150, groups: 20, apps: 4, assignments_per_app: 8, seed: 100 + seed };
        let sim = sim(tenant, SimOptions::default()).await;
        let kept =
            store.connectors().create_connector(NewConnector::entra(format!("kept-{seed}")), SystemClock.now()).await;
        let kept = kept.unwrap().id;
        let c = connector_for(&sim, settings());
        sync(&c, &store, kept, SyncMode::Full).await;
        for round in 0..4u64 {
            sim.mutate(seed * 10 + round, 1 + (seed + round) as usize % 5);
            let outcome = sync(&c, &store, kept, SyncMode::Delta).await;
            assert_eq!(outcome.fell_back, None, "seed {seed} round {round}");
        }
        let fresh =
            store.connectors().create_connector(NewConnector::entra(format!("fresh-{seed}")), SystemClock.now()).await;
        let fresh = fresh.unwrap().id;
        sync(&c, &store, fresh, SyncMode::Full).await;
        let (kept_lines, fresh_lines) =
            (canonical_lines(&store, kept).await.unwrap(), canonical_lines(&store, fresh).await.unwrap());
        for (kind, lines) in &fresh_lines {
            assert_eq!(
                kept_lines.get(kind),
                Some(lines),
                "seed {seed}: {kind} kept by deltas differ from a fresh full sync"
            );
        }
        assert_eq!(kept_lines.len(), fresh_lines.len());
        assert_matches_truth(&sim, &store, kept, &format!("seed {seed}")).await;
    }
});

/// Every inherited grant of application roles and of group membership in the graph, as
/// `(principal, resource, entitlement key, via group, effective)` by directory object ids.
async fn stored_inherited(store: &Store, id: ConnectorId) -> BTreeSet<(String, String, String, String, bool)> {
    let mut principals: BTreeMap<i64, String> = BTreeMap::new();
    for page in 0.. {
        let batch = store.principals().list_principals(id, None, page, 10_000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        principals.extend(batch.into_iter().map(|p| (p.id.0, p.data.external_id)));
    }
    let resources: BTreeMap<i64, String> = store
        .resources()
        .list_resources(id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.0, r.data.external_id))
        .collect();
    let entitlements: BTreeMap<i64, (String, String)> = store
        .resources()
        .entitlement_ids_by_key(id)
        .await
        .unwrap()
        .into_iter()
        .map(|((resource, key), e)| (e.0, (resources[&resource.0].clone(), key.to_string())))
        .collect();
    let mut rows = Vec::new();
    store.grants().scan_current_grants(id, |g| rows.push(g)).await.unwrap();
    rows.into_iter()
        .filter(|g| g.source == "inherited")
        .filter_map(|g| {
            let (resource, key) = entitlements[&g.entitlement_id].clone();
            (key == "member" || key.starts_with("role:")).then(|| {
                let via = principals[&g.via_principal_id.unwrap()].clone();
                (principals[&g.principal_id].clone(), resource, key, via, g.ineffective_reason.is_none())
            })
        })
        .collect()
}

/// The same, computed independently from Graph as Entra defines it: an app role assigned to a
/// group (`appRoleAssignedTo`) reaches the group's direct user members (`members`); its nested
/// members, member groups and service principals are listed as not effective; membership
/// reaches every transitive member (`transitiveMembers`).
async fn graph_inherited(graph: &GraphClient) -> BTreeSet<(String, String, String, String, bool)> {
    let ids = async |url: &str| {
        let mut out: Vec<(String, String)> = Vec::new();
        graph
            .pages(url, &[], |items| {
                out.extend(items.iter().map(|i| {
                    (i["id"].as_str().unwrap().to_owned(), i["@odata.type"].as_str().unwrap_or_default().to_owned())
                }))
            })
            .await
            .unwrap();
        out
    };
    let mut direct: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut transitive: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, _) in ids("/groups?$select=id").await {
        direct.insert(group.clone(), ids(&format!("/groups/{group}/members?$select=id")).await);
        let all = ids(&format!("/groups/{group}/transitiveMembers?$select=id")).await;
        transitive.insert(group.clone(), all.into_iter().map(|(m, _)| m).filter(|m| m != &group).collect());
    }
    let mut expected = BTreeSet::new();
    // A group holding membership of another passes it to its own transitive members.
    for (outer, members) in &direct {
        for (nested, kind) in members {
            if kind == "#microsoft.graph.group" {
                for m in transitive[nested].iter().filter(|m| *m != outer) {
                    expected.insert((m.clone(), outer.clone(), "member".to_owned(), nested.clone(), true));
                }
            }
        }
    }
    for (app, _) in ids("/servicePrincipals?$select=id").await {
        let mut assignments = Vec::new();
        graph
            .pages(&format!("/servicePrincipals/{app}/appRoleAssignedTo"), &[], |items| assignments.extend(items))
            .await
            .unwrap();
        for a in assignments.iter().filter(|a| a["principalType"] == "Group") {
            let group = a["principalId"].as_str().unwrap().to_owned();
            let Some(members) = direct.get(&group) else { continue };
            let key = format!("role:{}", a["appRoleId"].as_str().unwrap());
            let row = |m: &str, effective| (m.to_owned(), app.clone(), key.clone(), group.clone(), effective);
            for (m, kind) in members {
                expected.insert(row(m, kind == "#microsoft.graph.user"));
            }
            for m in &transitive[&group] {
                if !members.iter().any(|(d, _)| d == m) {
                    expected.insert(row(m, false));
                }
            }
        }
    }
    expected
}

async fn assert_inherited_matches_graph(graph: &GraphClient, store: &Store, id: ConnectorId, context: &str) {
    let expected = graph_inherited(graph).await;
    let actual = stored_inherited(store, id).await;
    let missing: Vec<_> = expected.difference(&actual).take(5).collect();
    let extra: Vec<_> = actual.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{context}: missing {missing:?}; extra {extra:?}");
    // The rule is exercised: app roles through groups, effective and not.
    let roles = |effective: bool| actual.iter().filter(|r| r.2.starts_with("role:") && r.4 == effective).count();
    assert!(roles(true) > 0 && roles(false) > 0, "{context}: {} effective, {} not", roles(true), roles(false));
}

store_test!(inherited_access_follows_entra_s_own_rules, |store| {
    let sim = sim(spec(14), SimOptions::default()).await;
    let id = new_connector(&store).await;
    let c = connector_for(&sim, settings());
    let graph = GraphClient::connect(
        attest_http::client().unwrap(),
        crate::tests::sim_credentials(&sim),
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        },
    );
    sync(&c, &store, id, SyncMode::Full).await;
    assert_inherited_matches_graph(&graph, &store, id, "after a full sync").await;

    // An outer group assigned an app role with a nested group in it, and a user only in the
    // nested one: moving them to the outer group makes the role theirs.
    let (outer, nested, user, app, role) = sim.sim.read(|t| {
        t.app_role_assignments
            .iter()
            .filter(|a| a.principal_type == "Group")
            .find_map(|a| {
                let outer = t.group(&a.principal_id)?;
                let nested = outer
                    .members
                    .iter()
                    .filter_map(|m| t.group(m))
                    .find(|n| n.accepts_membership_writes() && outer.accepts_membership_writes())?;
                let user = nested.members.iter().find(|m| t.live_user(m).is_some() && !outer.members.contains(m))?;
                Some((outer.id.clone(), nested.id.clone(), user.clone(), a.resource_id.clone(), a.app_role_id.clone()))
            })
            .expect("the generator assigns app roles to groups with nested groups")
    });
    let holds = async |principal: &str, via: &str| {
        stored_inherited(&store, id)
            .await
            .into_iter()
            .find(|r| r.0 == principal && r.1 == app && r.2 == format!("role:{role}") && r.3 == via)
            .map(|r| r.4)
    };
    assert_eq!(holds(&user, &outer).await, Some(false), "listed through the nested group, not effective");
    sim.sim.write(|t| {
        t.remove_group_link(&nested, attest_entra_sim::journal::Relation::Members, &user).unwrap();
        t.add_group_link(&outer, attest_entra_sim::journal::Relation::Members, &user).unwrap();
    });
    assert_eq!(sync(&c, &store, id, SyncMode::Delta).await.summary.run.mode, SyncMode::Delta);
    assert_inherited_matches_graph(&graph, &store, id, "after moving a member to the outer group").await;
    assert_eq!(holds(&user, &outer).await, Some(true));
    // And back into the nested group only.
    sim.sim.write(|t| {
        t.remove_group_link(&outer, attest_entra_sim::journal::Relation::Members, &user).unwrap();
        t.add_group_link(&nested, attest_entra_sim::journal::Relation::Members, &user).unwrap();
    });
    sync(&c, &store, id, SyncMode::Delta).await;
    assert_inherited_matches_graph(&graph, &store, id, "after moving them back").await;
    assert_eq!(holds(&user, &outer).await, Some(false));

    // The nested group gets the role itself: its direct members hold it through it. The outer
    // group's assignment goes: nothing flows from it any more.
    let now = sim.sim.now();
    let outer_assignment = sim.sim.write(|t| {
        t.assign_app_role(&app, &nested, &role, "nested-assignment".into(), now).unwrap();
        t.app_role_assignments.iter().find(|a| a.principal_id == outer && a.resource_id == app).unwrap().id.clone()
    });
    sim.sim.write(|t| t.remove_app_role_assignment(&app, &outer_assignment).unwrap());
    sync(&c, &store, id, SyncMode::Delta).await;
    assert_inherited_matches_graph(&graph, &store, id, "after moving the assignment to the nested group").await;
    assert_eq!(holds(&user, &nested).await, Some(true));
    assert_eq!(holds(&user, &outer).await, None);
});
