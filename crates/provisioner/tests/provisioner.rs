//! The provisioner against the simulator, on both databases: changes applied, read back,
//! written through and audited; approvals; password resets in person; workers killed at
//! random points; two workers sharing one queue; fault plans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use attest_connector::{SyncOutcome, run_sync};
use attest_domain::command::{AccessCommand, CommandError};
use attest_domain::{
    ApplyResult, ChangeAction, ChangeId, ChangeOrigin, ChangeState, ConnectorId, EntitlementKey, NewChange,
    ResourceKind, SyncMode, SyncTrigger,
};
use attest_domain::{Clock as _, SystemClock};
use attest_entra::{EntraConnector, EntraSettings, GraphClient, RetryPolicy};
use attest_entra_sim::{ClientApp, FaultPlan, SimHandle, SimOptions, TenantSpec, generate, spawn_with};
use attest_provisioner::{Policy, ProvisionError, Provisioner, Single};
use attest_store::{ChangeFilter, NewConnector, Store, StoreError, store_test};

async fn sim(seed: u64, options: SimOptions) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 400, groups: 40, apps: 6, assignments_per_app: 10, seed };
    spawn_with(listener, generate(spec), ClientApp::attest(seed).with_provisioning(), options).await.unwrap()
}

fn connector(sim: &SimHandle) -> Arc<EntraConnector> {
    let app = sim.sim.client().clone();
    let credentials = attest_entra::Credentials {
        login_url: sim.login_url.clone(),
        graph_url: sim.graph_url.clone(),
        tenant_id: sim.tenant_id(),
        client_id: app.client_id,
        client_secret: app.client_secret,
        certificate: None,
    };
    let policy = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    };
    let client = GraphClient::connect(attest_http::client().unwrap(), credentials, policy);
    Arc::new(EntraConnector::new(client, EntraSettings::default()))
}

/// A connector synced from the simulator, and a provisioner for it.
async fn setup(
    store: &Store,
    sim: &SimHandle,
    policy: Policy,
    worker: &str,
) -> (ConnectorId, Provisioner<Single<EntraConnector>>) {
    let id = store.connectors().create_connector(NewConnector::entra("contoso"), SystemClock.now()).await.unwrap().id;
    let c = connector(sim);
    let outcome: SyncOutcome =
        run_sync(c.as_ref(), store, id, SyncMode::Full, SyncTrigger::Cli, &attest_domain::SystemClock, None)
            .await
            .unwrap();
    assert!(outcome.summary.run.error.is_none());
    (id, Provisioner::new(store.clone(), Arc::new(Single(c)), policy, worker))
}

/// Quick retries for tests.
fn quick(sensitive: bool) -> Policy {
    Policy {
        sensitive: if sensitive { Policy::default().sensitive } else { Vec::new() },
        max_attempts: 30,
        lease: Duration::from_millis(400),
        batch: 16,
        concurrency: 4,
        poll: Duration::from_millis(20),
    }
}

fn change(connector: ConnectorId, key: &str, action: ChangeAction) -> NewChange {
    NewChange {
        connector_id: connector,
        action,
        idempotency_key: key.to_owned(),
        origin: ChangeOrigin::Manual,
        origin_ref: None,
        requested_by: "ada@contoso.com".into(),
        requested_by_id: None,
        reason: None,
    }
}

/// Writable security groups and member users none of them contains, for changes that all apply.
fn additions(sim: &SimHandle, connector: ConnectorId, n: usize) -> Vec<(NewChange, String, String)> {
    sim.sim.read(|t| {
        let groups: Vec<&attest_entra_sim::tenant::Group> =
            t.live_groups().filter(|g| g.accepts_membership_writes()).collect();
        let users: Vec<&attest_entra_sim::tenant::User> = t.live_users().collect();
        let mut out = Vec::new();
        'outer: for g in &groups {
            for u in &users {
                if out.len() == n {
                    break 'outer;
                }
                if !g.members.contains(&u.id)
                    && out.iter().filter(|(_, gid, _): &&(NewChange, String, String)| gid == &g.id).count()
                        < n / groups.len() + 1
                {
                    let action = ChangeAction::AddGroupMember { group: g.id.clone(), member: u.id.clone() };
                    out.push((
                        change(connector, &format!("add:{}:{}", g.id, u.id), action),
                        g.id.clone(),
                        u.id.clone(),
                    ));
                }
            }
        }
        assert_eq!(out.len(), n);
        out
    })
}

/// Runs workers until no change is pending or in progress (at most two minutes).
async fn drain(p: &Provisioner<Single<EntraConnector>>) {
    let drained = tokio::time::timeout(Duration::from_secs(120), p.run_until_idle()).await;
    assert!(matches!(drained, Ok(Ok(()))), "the queue did not drain: {drained:?}");
}

store_test!(changes_are_applied_read_back_written_through_and_audited, |store| {
    let sim = sim(41, SimOptions::default()).await;
    let (id, p) = setup(&store, &sim, Policy::default(), "w1").await;
    let (add, group, user) = additions(&sim, id, 1).pop().unwrap();
    let queued = p.enqueue(add.clone(), SystemClock.now()).await.unwrap();
    assert!(queued.created && queued.change.state == ChangeState::Pending, "memberships are not sensitive by default");
    assert!(!p.enqueue(add, SystemClock.now()).await.unwrap().created, "the same key queues nothing new");
    assert_eq!(p.run_once().await.unwrap(), 1);
    let done = store.changes().get_change(queued.change.id).await.unwrap();
    assert_eq!(
        (done.state, done.result, done.verified),
        (ChangeState::Applied, Some(ApplyResult::Applied), Some(true))
    );
    assert!(sim.sim.read(|t| t.group(&group).unwrap().members.contains(&user)), "the tenant has it");
    // Written through: the graph has the grant before any sync.
    let entitlement = store
        .resources()
        .find_entitlement_id(id, ResourceKind::Group, &group, &EntitlementKey::Member)
        .await
        .unwrap()
        .unwrap();
    let principal = store.principals().find_principal_by_external_id(id, &user).await.unwrap().unwrap();
    assert!(store.grants().find_current_grant(entitlement, principal.id, "").await.unwrap().is_some());

    // Reversed: removal applied and the grant ended.
    let remove = ChangeAction::RemoveGroupMember { group: group.clone(), member: user.clone() };
    let removal = p.enqueue(change(id, "remove-1", remove), SystemClock.now()).await.unwrap().change;
    p.run_once().await.unwrap();
    assert_eq!(store.changes().get_change(removal.id).await.unwrap().result, Some(ApplyResult::Applied));
    assert!(store.grants().find_current_grant(entitlement, principal.id, "").await.unwrap().is_none());

    // Sensitive (a user action): waits for a second person, then applies and writes through.
    let block =
        p.enqueue(change(id, "block-1", ChangeAction::BlockSignIn { user: user.clone() }), SystemClock.now()).await;
    let block = block.unwrap().change;
    assert_eq!(block.state, ChangeState::AwaitingApproval);
    assert_eq!(p.run_once().await.unwrap(), 0, "nothing applies before approval");
    assert!(
        store.changes().approve_change(block.id, "ada@contoso.com", None, SystemClock.now()).await.is_err(),
        "not by the requester"
    );
    store.changes().approve_change(block.id, "bob@contoso.com", None, SystemClock.now()).await.unwrap();
    p.run_once().await.unwrap();
    assert_eq!(store.changes().get_change(block.id).await.unwrap().state, ChangeState::Applied);
    assert!(!sim.sim.read(|t| t.live_user(&user).unwrap().account_enabled), "blocked in the tenant");
    let principal = store.principals().find_principal_by_external_id(id, &user).await.unwrap().unwrap();
    assert_eq!(principal.data.account_enabled, Some(false), "written through");

    // A permanent refusal fails at once with what to do.
    let dynamic = sim.sim.write(|t| {
        let g = t.groups.iter_mut().find(|g| g.deleted.is_none() && g.id != group).unwrap();
        g.group_types = vec!["DynamicMembership".into()];
        g.membership_rule = Some("user.department -eq \"Sales\"".into());
        g.id.clone()
    });
    let refused = ChangeAction::AddGroupMember { group: dynamic, member: user.clone() };
    let refused = p.enqueue(change(id, "dynamic-1", refused), SystemClock.now()).await.unwrap().change;
    p.run_once().await.unwrap();
    let refused = store.changes().get_change(refused.id).await.unwrap();
    assert_eq!((refused.state, refused.attempts), (ChangeState::Failed, 1));
    assert!(refused.last_error.as_deref().unwrap().contains("dynamic group"), "{refused:?}");

    // The audit trail: requested, claimed, applied, with Graph's request id; the chain holds.
    let events = store.audit().list_audit_events(0, 1_000).await.unwrap();
    let of_first: Vec<&str> = events
        .iter()
        .filter(|e| e.target_id.as_deref() == Some(&queued.change.id.0.to_string()))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(of_first, vec!["change.requested", "change.claimed", "change.applied"]);
    let applied = events.iter().find(|e| e.action == "change.applied").unwrap();
    assert!(applied.details.contains("graph_request_id"), "{}", applied.details);
    assert!(store.audit().verify_audit_chain().await.unwrap().broken.is_none());
});

store_test!(a_password_reset_is_applied_only_in_person_and_shown_once, |store| {
    let sim = sim(42, SimOptions::default()).await;
    let (id, p) = setup(&store, &sim, quick(false), "w1").await;
    let user = sim.sim.read(|t| t.live_users().find(|u| u.user_type == "Member").unwrap().id.clone());
    let reset =
        p.enqueue(change(id, "reset-1", ChangeAction::ResetPassword { user: user.clone() }), SystemClock.now()).await;
    let reset = reset.unwrap().change;
    assert_eq!(p.run_once().await.unwrap(), 0, "background workers leave password resets alone");
    let done = p.apply_in_person(reset.id, "ada@contoso.com").await.unwrap();
    assert_eq!(done.change.state, ChangeState::Applied);
    let password = done.secret.unwrap().expose().to_owned();
    assert!(sim.sim.read(|t| t.live_user(&user).unwrap().force_change_password_next_sign_in));
    // Never stored: not in the change, not in the audit log.
    let stored = format!("{:?}", store.changes().get_change(reset.id).await.unwrap());
    assert!(!stored.contains(&password));
    let events = store.audit().list_audit_events(0, 1_000).await.unwrap();
    assert!(events.iter().all(|e| !e.details.contains(&password)));
    assert!(p.apply_in_person(reset.id, "ada@contoso.com").await.is_err(), "applied once");
});

store_test!(workers_killed_at_random_points_lose_nothing_and_apply_each_change_once, |store| {
    // Several seeded runs, each on its own tenant and connector: a changing mix of kill points.
    for run in 0..4u64 {
        killed_workers_run(&store, run).await;
    }
});

async fn killed_workers_run(store: &Store, run: u64) {
    let options = SimOptions { latency: Duration::from_millis(3), ..SimOptions::default() };
    let sim = sim(43 + run, options).await;
    let id = store
        .connectors()
        .create_connector(NewConnector::entra(format!("killed-{run}")), SystemClock.now())
        .await
        .unwrap()
        .id;
    let c = connector(&sim);
    run_sync(c.as_ref(), store, id, SyncMode::Full, SyncTrigger::Cli, &attest_domain::SystemClock, None).await.unwrap();
    let connectors = Arc::new(Single(c));
    let first = Provisioner::new(store.clone(), connectors.clone(), quick(false), format!("w0-{run}"));
    let planned = additions(&sim, id, 40);
    let mut seed = 0x2545_f491_u64 ^ (run + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut ids: Vec<ChangeId> = Vec::new();
    for (new, _, _) in &planned {
        ids.push(first.enqueue(new.clone(), SystemClock.now()).await.unwrap().change.id);
    }
    // Six workers in turn, each killed after a random while; then one that finishes.
    for round in 0..6 {
        let worker = Provisioner::new(store.clone(), connectors.clone(), quick(false), format!("w{run}-{round}"));
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move { worker.run(rx).await });
        tokio::time::sleep(Duration::from_millis(5 + next(60))).await;
        task.abort();
        let _ = task.await;
    }
    let last = Provisioner::new(store.clone(), connectors, quick(false), format!("finisher-{run}"));
    tokio::time::sleep(Duration::from_millis(450)).await; // the killed workers' leases expire
    drain(&last).await;
    for id in &ids {
        let c = store.changes().get_change(*id).await.unwrap();
        assert_eq!(c.state, ChangeState::Applied, "run {run}: {c:?}");
        assert!(matches!(c.result, Some(ApplyResult::Applied | ApplyResult::AlreadyInState)), "run {run}: {c:?}");
    }
    // Every membership is in the tenant, once.
    sim.sim.read(|t| {
        for (_, group, user) in &planned {
            let members = &t.group(group).unwrap().members;
            assert_eq!(members.iter().filter(|m| *m == user).count(), 1, "run {run}");
        }
    });
    // Each change was settled exactly once in the audit log.
    let events = store.audit().list_audit_events(0, 1_000_000).await.unwrap();
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    let mine: BTreeSet<String> = ids.iter().map(|id| id.0.to_string()).collect();
    for e in events.iter().filter(|e| e.action == "change.applied") {
        let target = e.target_id.clone().unwrap();
        if mine.contains(&target) {
            *applied.entry(target).or_default() += 1;
        }
    }
    assert_eq!(applied.len(), ids.len(), "run {run}");
    assert!(applied.values().all(|n| *n == 1), "run {run}");
}

store_test!(two_workers_share_one_queue_and_apply_each_change_once, |store| {
    let sim = sim(44, SimOptions::default()).await;
    let (id, p) = setup(&store, &sim, quick(false), "setup").await;
    let planned = additions(&sim, id, 1_000);
    for (new, _, _) in &planned {
        p.enqueue(new.clone(), SystemClock.now()).await.unwrap();
    }
    let connectors = Arc::new(Single(connector(&sim)));
    let mut tasks = Vec::new();
    // A lease long enough for SQLite's single writer under 8 concurrent changes; expiry is the
    // subject of the test above.
    let policy = Policy { lease: Duration::from_secs(10), ..quick(false) };
    for w in ["a", "b"] {
        let worker = Provisioner::new(store.clone(), connectors.clone(), policy.clone(), w);
        tasks.push(tokio::spawn(async move { drain(&worker).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let done = store.changes().list_changes(&ChangeFilter { limit: 2_000, ..Default::default() }).await.unwrap();
    assert_eq!(done.len(), 1_000);
    let odd: Vec<_> = done
        .iter()
        .filter(|c| c.state != ChangeState::Applied || c.result != Some(ApplyResult::Applied))
        .take(3)
        .collect();
    assert!(odd.is_empty(), "{odd:#?}");
    let by_worker: BTreeSet<String> = store
        .audit()
        .list_audit_events(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "change.applied")
        .map(|e| e.actor)
        .collect();
    assert_eq!(by_worker, BTreeSet::from(["a".to_owned(), "b".to_owned()]), "both workers took part");
    // Graph saw exactly one write per change: none was applied twice.
    let writes = sim.sim.requests().iter().filter(|r| r.method == "POST" && r.uri.ends_with("/members/$ref")).count();
    assert_eq!(writes, 1_000);
});

store_test!(fault_plans_end_every_change_in_its_correct_final_state, |store| {
    use attest_entra_sim::{Fault, ThrottleConfig};
    let plans = [
        (
            "429 storm",
            FaultPlan { seed: 1, rate: 0.3, kinds: vec![Fault::ThrottledWithoutRetryAfter], rules: Vec::new() },
        ),
        (
            "503s",
            FaultPlan {
                seed: 2,
                rate: 0.3,
                kinds: vec![Fault::Unavailable { retry_after: Some(0.02) }, Fault::GatewayTimeout],
                rules: Vec::new(),
            },
        ),
        ("dropped connections", FaultPlan { seed: 3, rate: 0.3, kinds: vec![Fault::Drop], rules: Vec::new() }),
    ];
    for (i, (name, plan)) in plans.into_iter().enumerate() {
        let throttle = (i == 0).then(|| ThrottleConfig { quota: Some(200.0), window_secs: 1.0, ..Default::default() });
        let sim = sim(50 + i as u64, SimOptions { throttle, ..SimOptions::default() }).await;
        let id = store.connectors().create_connector(NewConnector::entra(name), SystemClock.now()).await.unwrap().id;
        let c = connector(&sim);
        run_sync(c.as_ref(), &store, id, SyncMode::Full, SyncTrigger::Cli, &attest_domain::SystemClock, None)
            .await
            .unwrap();
        sim.sim.set_fault_plan(plan);
        let p = Provisioner::new(store.clone(), Arc::new(Single(c)), quick(false), format!("w-{name}"));
        let planned = additions(&sim, id, 40);
        let mut ids = Vec::new();
        for (new, _, _) in &planned {
            ids.push(p.enqueue(new.clone(), SystemClock.now()).await.unwrap().change.id);
        }
        drain(&p).await;
        for id in &ids {
            let c = store.changes().get_change(*id).await.unwrap();
            // A dropped answer to a write that did land comes back as "already a member".
            assert_eq!(c.state, ChangeState::Applied, "{name}: {c:?}");
            assert!(matches!(c.result, Some(ApplyResult::Applied | ApplyResult::AlreadyInState)), "{name}: {c:?}");
        }
        sim.sim.read(|t| {
            for (_, group, user) in &planned {
                assert!(t.group(group).unwrap().members.contains(user), "{name}");
            }
        });
        assert!(!sim.sim.faults().is_empty(), "{name}: faults were injected");
        assert_eq!(sim.sim.stats().early_requests, 0, "{name}: no request inside a Retry-After window");
    }
});

store_test!(grant_and_revoke_commands_become_the_directorys_operations, |store| {
    let sim = sim(43, SimOptions::default()).await;
    let (id, p) = setup(&store, &sim, Policy::default(), "w1").await;
    let (_, group, user) = additions(&sim, id, 1).pop().unwrap();
    let entitlement = store
        .resources()
        .find_entitlement_id(id, ResourceKind::Group, &group, &EntitlementKey::Member)
        .await
        .unwrap()
        .unwrap();
    let principal = store.principals().find_principal_by_external_id(id, &user).await.unwrap().unwrap();

    // "Grant the membership to this person", in the graph's terms, as a request would ask.
    let grant = AccessCommand::Grant { principal: principal.id, entitlement, until: None };
    let queued = p.submit(&grant, ChangeOrigin::AccessRequest, "request-1", "system", SystemClock.now()).await.unwrap();
    assert_eq!(queued.change.action, ChangeAction::AddGroupMember { group: group.clone(), member: user.clone() });
    assert_eq!(
        (queued.change.origin, queued.change.origin_ref.as_deref()),
        (ChangeOrigin::AccessRequest, Some("request-1"))
    );
    let again = p.submit(&grant, ChangeOrigin::AccessRequest, "request-1", "system", SystemClock.now()).await.unwrap();
    assert!(!again.created, "the same command from the same origin is queued once");
    drain(&p).await;
    assert!(sim.sim.read(|t| t.group(&group).unwrap().members.contains(&user)), "the tenant has it");
    let held = store.grants().find_current_grant(entitlement, principal.id, "").await.unwrap().unwrap();

    // "Revoke this grant", as a review's decision would ask.
    let revoke = AccessCommand::Revoke { grant: held.id };
    let queued = p.submit(&revoke, ChangeOrigin::ReviewItem, "item-9", "system", SystemClock.now()).await.unwrap();
    assert_eq!(queued.change.action, ChangeAction::RemoveGroupMember { group: group.clone(), member: user.clone() });
    drain(&p).await;
    assert!(!sim.sim.read(|t| t.group(&group).unwrap().members.contains(&user)), "removed in the tenant");

    // An ended grant is refused with the reason (the other refusals are the domain's tests).
    let ended = p.submit(&revoke, ChangeOrigin::ReviewItem, "item-10", "system", SystemClock.now()).await.unwrap_err();
    assert!(matches!(ended, ProvisionError::Store(StoreError::CommandRefused(CommandError::Ended))), "{ended}");
});
