use attest_domain::*;
use attest_store::{NewConnector, Store, store_test};
use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
}

async fn connector(store: &Store) -> ConnectorId {
    store.connectors().create_connector(NewConnector::entra("contoso"), t(0)).await.unwrap().id
}

fn membership(group: &str, user: &str) -> ObservedGrant {
    ObservedGrant {
        resource_kind: ResourceKind::Group,
        resource_external_id: group.into(),
        key: EntitlementKey::Member,
        principal_external_id: user.into(),
        scope: String::new(),
        external_ref: None,
        expires_at: None,
        end_known: false,
    }
}

/// A snapshot: users u0..u{n}, groups g0 and g1 (g1 nested in g0), memberships as given.
async fn snapshot(store: &Store, c: ConnectorId, at: i64, users: usize, grants: &[ObservedGrant]) -> SyncSummary {
    let mut sink = SyncSink::begin(store, c, SyncMode::Full, SyncTrigger::Cli, t(at)).await.unwrap();
    let mut principals: Vec<PrincipalData> =
        (0..users).map(|i| PrincipalData::new(format!("u{i}"), PrincipalKind::User, format!("User {i}"))).collect();
    principals.push(PrincipalData::new("g1", PrincipalKind::Group, "Group 1"));
    sink.put_principals(&principals).await.unwrap();
    sink.put_resources(&[
        ResourceData::new("g0", ResourceKind::Group, "Group 0"),
        ResourceData::new("g1", ResourceKind::Group, "Group 1"),
    ])
    .await
    .unwrap();
    let entitlements: Vec<ObservedEntitlement> = ["g0", "g1"]
        .iter()
        .map(|g| ObservedEntitlement {
            resource_kind: ResourceKind::Group,
            resource_external_id: (*g).into(),
            key: EntitlementKey::Member,
            display_name: "Member".into(),
            description: None,
        })
        .collect();
    sink.put_entitlements(&entitlements).await.unwrap();
    sink.put_grants(grants).await.unwrap();
    sink.record_requests(3, 6);
    sink.finish(t(at + 1)).await.unwrap()
}

store_test!(a_full_snapshot_is_exact_and_idempotent, |store| {
    let c = connector(&store).await;
    let mut grants: Vec<ObservedGrant> =
        (0..25_000).map(|i| membership(if i % 2 == 0 { "g0" } else { "g1" }, &format!("u{i}"))).collect();
    grants.push(membership("g0", "g1"));
    grants.push(membership("g0", "nobody")); // not synced: skipped and noted
    let first = snapshot(&store, c, 10, 25_000, &grants).await;
    assert_eq!(first.run.counts.grants.added, 25_001);
    assert_eq!(first.run.counts.inherited_grants.added, 12_500, "g1's members inherit g0 membership");
    assert_eq!((first.run.requests, first.run.resource_units), (3, 6));
    assert_eq!(first.unresolved_grants, 1);
    assert!(first.run.notes.iter().any(|n| n.contains("nobody")), "{:?}", first.run.notes);

    // The same snapshot again writes nothing.
    let second = snapshot(&store, c, 20, 25_000, &grants).await;
    assert_eq!(second.run.counts.grants.written(), 0);
    assert_eq!(second.run.counts.principals.written(), 0);
    assert_eq!(second.run.counts.inherited_grants.written(), 0);
    assert_eq!(second.run.counts.grants.unchanged, 25_001);

    // u1 leaves g1, u0 leaves g0: both direct grants end, and so does u1's inherited one.
    let third = snapshot(&store, c, 30, 25_000, &grants[2..]).await;
    assert_eq!((third.run.counts.grants.removed, third.run.counts.inherited_grants.removed), (2, 1));
    let counts = store.grants().count_current_grants(c).await.unwrap();
    assert_eq!(counts.get(&GrantSource::Direct), Some(&24_999));
    assert_eq!(counts.get(&GrantSource::Inherited), Some(&12_499));
    assert_eq!(store.connectors().get_connector(c).await.unwrap().last_full_sync_at, Some(t(30)));
});

store_test!(inherited_grants_are_derived_again_when_the_rules_that_derived_them_changed, |store| {
    let c = connector(&store).await;
    let mut grants: Vec<ObservedGrant> = (0..10).map(|i| membership("g1", &format!("u{i}"))).collect();
    grants.push(membership("g0", "g1"));
    assert_eq!(snapshot(&store, c, 10, 10, &grants).await.run.counts.inherited_grants.added, 10);
    // Nothing changed: not derived again.
    assert_eq!(snapshot(&store, c, 20, 10, &grants).await.run.counts.inherited_grants, KindCounts::default());
    // Derived by other rules (an upgrade): derived again although nothing else changed.
    store.grants().forget_inherited_rules(c).await.unwrap();
    assert!(!store.grants().inherited_rules_are_current(c).await.unwrap());
    let upgraded = snapshot(&store, c, 30, 10, &grants).await.run.counts.inherited_grants;
    assert_eq!((upgraded.unchanged, upgraded.written()), (10, 0));
    assert!(store.grants().inherited_rules_are_current(c).await.unwrap());
});

store_test!(a_failed_sync_sweeps_nothing, |store| {
    let c = connector(&store).await;
    let grants: Vec<ObservedGrant> = (0..10).map(|i| membership("g0", &format!("u{i}"))).collect();
    snapshot(&store, c, 10, 10, &grants).await;
    let mut sink = SyncSink::begin(&store, c, SyncMode::Full, SyncTrigger::Cli, t(20)).await.unwrap();
    sink.put_grants(&grants[..3]).await.unwrap();
    let run = sink.fail(&SyncError::Directory("connection reset".into()), t(21)).await.unwrap();
    assert_eq!(run.status, SyncStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("the directory could not be read: connection reset"));
    assert_eq!(store.grants().count_current_grants(c).await.unwrap().get(&GrantSource::Direct), Some(&10));
    assert_eq!(store.connectors().get_connector(c).await.unwrap().last_full_sync_at, Some(t(10)));
});
