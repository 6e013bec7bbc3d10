//! Store tests: every one runs on SQLite and on PostgreSQL, each on a fresh migrated database.

use attest_domain::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{ChangeFilter, IdSet, MigrationState, NewConnector, Store, StoreError, SyncRunFinish, WebUser, store_test};
use attest_domain::GrantId;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
}

async fn connector(store: &Store, name: &str) -> Connector {
    let new = NewConnector {
        tenant_id: Some("tenant-1".into()),
        settings: serde_json::json!({"include_guests": true}),
        owners: vec!["Owner@Contoso.com".into(), "owner@contoso.com".into()],
        ..NewConnector::entra(name)
    };
    store.connectors().create_connector(new, t(0)).await.unwrap()
}

fn user(ext: &str) -> PrincipalData {
    let mut p = PrincipalData::new(ext, PrincipalKind::User, format!("User {ext}"));
    p.email = Some(format!("{ext}@contoso.com"));
    p.account_enabled = Some(true);
    p.user_type = Some(UserType::Member);
    p
}

fn group_principal(ext: &str) -> PrincipalData {
    PrincipalData::new(ext, PrincipalKind::Group, format!("Group {ext}"))
}

async fn exec(store: &Store, sql: &str) {
    store.db.execute_raw(Statement::from_string(store.backend(), sql.to_owned())).await.unwrap();
}

store_test!(migrations_roll_back_and_forward, |store| {
    let status = store.schema_status().await.unwrap();
    assert!(status.migrations.iter().all(|(_, s)| *s == MigrationState::Applied), "{status:?}");
    store.ensure_schema_current().await.unwrap();

    let select = |table: &str| Statement::from_string(store.backend(), format!("SELECT 1 FROM {table}"));
    // One step back removes the newest migration only.
    let newest = store.migrate_down(1).await.unwrap();
    assert_eq!(newest, vec!["m20261209_000001_review_not_sure_counts".to_owned()]);
    assert!(matches!(store.ensure_schema_current().await, Err(StoreError::SchemaBehind { pending: 1, .. })));
    assert!(store.db.execute_raw(select("review_inbox_counts WHERE not_sure = 0")).await.is_err());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("review_inbox_counts WHERE not_sure = 0")).await.is_ok());
    assert_eq!(store.migrate_down(2).await.unwrap().len(), 2);
    assert!(store.db.execute_raw(select("access_requests WHERE activation_due_at IS NULL")).await.is_err());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("access_requests WHERE activation_due_at IS NULL")).await.is_ok());
    assert_eq!(store.migrate_down(3).await.unwrap().len(), 3);
    // PostgreSQL only: the review tables' foreign keys come back, and go again.
    let keys = "pg_constraint WHERE conname IN ('review_items_instance_id_fkey', 'review_assignments_item_id_fkey')";
    if store.backend() == DbBackend::Postgres {
        assert_eq!(store.db.query_all_raw(select(keys)).await.unwrap().len(), 2);
    }
    assert!(store.migrate_up(None).await.is_ok());
    if store.backend() == DbBackend::Postgres {
        assert_eq!(store.db.query_all_raw(select(keys)).await.unwrap().len(), 0);
    }
    assert_eq!(store.migrate_down(4).await.unwrap().len(), 4);
    assert!(store.db.execute_raw(select("grants WHERE extended_in_directory_at IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("web_users WHERE phone IS NULL")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert_eq!(store.migrate_down(5).await.unwrap().len(), 5);
    assert!(store.db.execute_raw(select("web_users WHERE phone IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("scim_users")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("web_users WHERE phone IS NULL")).await.is_ok());
    assert_eq!(store.migrate_down(6).await.unwrap().len(), 6);
    assert!(store.db.execute_raw(select("scim_users")).await.is_err());
    assert!(store.db.execute_raw(select("web_users WHERE disabled_at IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("connectors WHERE pending_credentials IS NULL")).await.is_ok());
    store.migrate_up(None).await.unwrap();
    assert!(store.db.execute_raw(select("role_mappings")).await.is_ok());
    assert_eq!(store.migrate_down(7).await.unwrap().len(), 7);
    assert!(store.db.execute_raw(select("connectors WHERE pending_credentials IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("connector_invitations")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert_eq!(store.migrate_down(8).await.unwrap().len(), 8);
    assert!(store.db.execute_raw(select("connector_invitations")).await.is_err());
    assert!(store.db.execute_raw(select("connectors WHERE status_reason IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("access_requests")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("consent_attempts")).await.is_ok());
    assert_eq!(store.migrate_down(9).await.unwrap().len(), 9);
    assert!(store.db.execute_raw(select("access_requests")).await.is_err());
    assert!(store.db.execute_raw(select("review_inbox_counts")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("access_request_votes")).await.is_ok());
    assert_eq!(store.migrate_down(10).await.unwrap().len(), 10);
    assert!(store.db.execute_raw(select("review_inbox_counts")).await.is_err());
    assert!(store.db.execute_raw(select("review_items WHERE stage = 1")).await.is_err());
    assert!(store.db.execute_raw(select("review_items")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("review_stage_decisions")).await.is_ok());
    assert_eq!(store.migrate_down(11).await.unwrap().len(), 11);
    assert!(store.db.execute_raw(select("review_items")).await.is_err());
    assert!(store.db.execute_raw(select("changes WHERE denial_reason IS NULL")).await.is_ok());
    assert!(store.migrate_up(None).await.is_ok());
    assert!(store.db.execute_raw(select("review_assignments")).await.is_ok());
    assert_eq!(store.migrate_down(12).await.unwrap().len(), 12);
    assert!(store.db.execute_raw(select("changes WHERE denial_reason IS NULL")).await.is_err());
    assert!(store.migrate_up(None).await.is_ok());
    assert_eq!(store.migrate_down(14).await.unwrap().len(), 14);
    assert!(store.db.execute_raw(select("changes WHERE requested_by_id IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("connector_owners WHERE object_id IS NULL")).await.is_err());
    assert!(store.db.execute_raw(select("grants WHERE ineffective_reason IS NULL")).await.is_ok());
    assert!(store.db.execute_raw(select("grants")).await.is_ok());
    // All the way down: the tables are really gone, and come back.
    let all = u32::try_from(status.migrations.len()).unwrap();
    let rest = store.migrate_down(all).await.unwrap();
    assert_eq!(rest.len(), status.migrations.len() - 14);
    assert!(store.db.execute_raw(select("grants")).await.is_err());
    let applied = store.migrate_up(None).await.unwrap();
    assert_eq!(applied, status.migrations.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>());
    store.ensure_schema_current().await.unwrap();
    connector(&store, "after-roundtrip").await;
});

store_test!(a_newer_schema_is_refused_with_versions_named, |store| {
    exec(&store, "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000001_from_the_future', 0)")
        .await;
    for result in [
        store.migrate_up(None).await.map(|_| ()),
        store.ensure_schema_current().await,
        store.migrate_down(1).await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{text}");
        assert!(
            text.contains("m20991231_000001_from_the_future")
                && text.contains("m20261209_000001_review_not_sure_counts"),
            "{text}"
        );
    }
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.unknown().collect::<Vec<_>>(), vec!["m20991231_000001_from_the_future"]);
});

store_test!(connectors_are_unique_by_name, |store| {
    let created = connector(&store, "contoso").await;
    assert_eq!(created.owners, vec!["owner@contoso.com".to_owned()]);
    assert_eq!(store.connectors().get_connector(created.id).await.unwrap(), created);
    assert_eq!(store.connectors().find_connector_by_name("contoso").await.unwrap().map(|c| c.id), Some(created.id));
    assert!(store.connectors().find_connector_by_name("fabrikam").await.unwrap().is_none());
    let dup = store.connectors().create_connector(NewConnector::entra("contoso"), t(1)).await.unwrap_err();
    assert_eq!(dup.to_string(), "a connector named 'contoso' already exists");
    assert!(matches!(
        store.connectors().get_connector(ConnectorId(999)).await,
        Err(StoreError::NotFound { what: "connector", .. })
    ));
});

store_test!(principal_upserts_write_only_what_changed, |store| {
    let c = connector(&store, "contoso").await;
    let mut rows: Vec<PrincipalData> = (0..2500).map(|i| user(&format!("u{i}"))).collect();
    rows[7].last_sign_in_at = Some(Utc.timestamp_opt(1_800_000_000, 123_456_789).single().unwrap());
    let first = store.principals().upsert_principals(c.id, &rows, t(10)).await.unwrap();
    assert_eq!((first.counts.added, first.counts.changed, first.counts.unchanged), (2500, 0, 0));
    assert_eq!(first.ids.len(), 2500);

    // Unchanged: nothing written, same ids, even with sub-microsecond timestamps.
    let again = store.principals().upsert_principals(c.id, &rows, t(20)).await.unwrap();
    assert_eq!((again.counts.added, again.counts.changed, again.counts.unchanged), (0, 0, 2500));
    assert_eq!(again.ids, first.ids);

    // One changed, one new, one repeated in the batch (last wins).
    rows[3].job_title = Some("Engineer".into());
    let mut repeated = rows[3].clone();
    repeated.department = Some("R&D".into());
    rows.push(user("new"));
    rows.push(repeated);
    let third = store.principals().upsert_principals(c.id, &rows, t(30)).await.unwrap();
    assert_eq!((third.counts.added, third.counts.changed, third.counts.unchanged), (1, 1, 2499));
    assert_eq!(third.ids[3], third.ids[2501]);
    let p = store.principals().get_principal(third.ids[3]).await.unwrap();
    assert_eq!(p.data.department.as_deref(), Some("R&D"));
    assert_eq!(p.first_seen_at, t(10));
    assert_eq!(p.updated_at, t(30));
    assert_eq!(store.principals().count_principals(c.id).await.unwrap(), 2501);
    assert_eq!(store.principals().list_principals_by_email("U5@Contoso.com").await.unwrap().len(), 1);
    assert_eq!(store.principals().list_principals(c.id, Some(PrincipalKind::User), 1, 1000).await.unwrap().len(), 1000);
    assert_eq!(store.principals().principal_ids_by_external_id(c.id).await.unwrap().len(), 2501);
    store.principals().mark_principals_deleted(c.id, &["u9".into()], t(40)).await.unwrap();
    assert!(
        !store.principals().principal_ids_by_external_id(c.id).await.unwrap().contains_key("u9"),
        "deleted ones are left out"
    );

    assert_eq!(store.principals().mark_principals_deleted(c.id, &["u1".into(), "u2".into()], t(40)).await.unwrap(), 2);
    let found = store.principals().find_principal_by_external_id(c.id, "u1").await.unwrap().unwrap();
    assert_eq!(found.data.deleted_at, Some(t(40)));
});

/// A group `g` with resource, `member` and `owner` entitlements; returns (resource, member, owner).
async fn group(store: &Store, c: ConnectorId, ext: &str) -> (ResourceId, EntitlementId, EntitlementId) {
    let r = store
        .resources()
        .upsert_resources(c, &[ResourceData::new(ext, ResourceKind::Group, format!("Group {ext}"))], t(0))
        .await
        .unwrap()
        .ids[0];
    let e = store
        .resources()
        .upsert_entitlements(
            c,
            &[
                EntitlementData {
                    resource_id: r,
                    key: EntitlementKey::Member,
                    display_name: "Member".into(),
                    description: None,
                },
                EntitlementData {
                    resource_id: r,
                    key: EntitlementKey::Owner,
                    display_name: "Owner".into(),
                    description: None,
                },
            ],
            t(0),
        )
        .await
        .unwrap()
        .ids;
    (r, e[0], e[1])
}

fn grant(e: EntitlementId, p: PrincipalId) -> GrantData {
    GrantData {
        entitlement_id: e,
        principal_id: p,
        scope: String::new(),
        external_ref: None,
        expires_at: None,
        end_known: false,
    }
}

store_test!(resources_and_entitlements_upsert_and_restore, |store| {
    let c = connector(&store, "contoso").await.id;
    let mut app = ResourceData::new("app1", ResourceKind::Application, "Payroll");
    let role = EntitlementKey::AppRole("r1".into());
    let r = store.resources().upsert_resources(c, std::slice::from_ref(&app), t(0)).await.unwrap().ids[0];
    let data = EntitlementData { resource_id: r, key: role.clone(), display_name: "Reader".into(), description: None };
    let e = store.resources().upsert_entitlements(c, std::slice::from_ref(&data), t(0)).await.unwrap();
    assert_eq!(e.counts.added, 1);
    let again = store.resources().upsert_entitlements(c, std::slice::from_ref(&data), t(1)).await.unwrap();
    assert_eq!((again.counts.unchanged, again.ids.clone()), (1, e.ids.clone()));
    app.display_name = "Payroll (prod)".into();
    let changed = store.resources().upsert_resources(c, &[app], t(2)).await.unwrap();
    assert_eq!((changed.counts.changed, changed.ids[0]), (1, r));
    assert_eq!(store.resources().get_resource(r).await.unwrap().data.display_name, "Payroll (prod)");
    let map = store.resources().entitlement_ids_by_key(c).await.unwrap();
    assert_eq!(map.get(&(r, role)), Some(&e.ids[0]));
    assert_eq!(
        store
            .resources()
            .resource_ids_by_external_id(c)
            .await
            .unwrap()
            .get(&(ResourceKind::Application, "app1".into())),
        Some(&r)
    );
    // A deleted entitlement seen again is restored; its policy flags survive sync.
    exec(
        &store,
        &format!("UPDATE entitlements SET deleted_at = updated_at, requestable = true WHERE id = {}", e.ids[0]),
    )
    .await;
    let restored = store.resources().upsert_entitlements(c, &[data], t(3)).await.unwrap();
    assert_eq!(restored.counts.changed, 1);
    let ent = store.resources().get_entitlement(e.ids[0]).await.unwrap();
    assert!(ent.deleted_at.is_none() && ent.requestable);
    assert_eq!(store.resources().list_entitlements(r).await.unwrap().len(), 1);
});

store_test!(grants_upsert_sweep_and_keep_history, |store| {
    let c = connector(&store, "contoso").await.id;
    let (_, member, _) = group(&store, c, "g1").await;
    let users: Vec<PrincipalData> = (0..3000).map(|i| user(&format!("u{i}"))).collect();
    let ids = store.principals().upsert_principals(c, &users, t(0)).await.unwrap().ids;
    let mut rows: Vec<GrantData> = ids.iter().map(|p| grant(member, *p)).collect();
    let run = store.syncs().start_sync_run(c, SyncMode::Full, SyncTrigger::Cli, t(100)).await.unwrap();
    let first = store.grants().upsert_grants(c, &rows, t(100)).await.unwrap();
    assert_eq!((first.counts.added, first.counts.unchanged, first.existing.len()), (3000, 0, 0));
    let first_ids: Vec<GrantId> =
        store.grants().list_grants_for_entitlement(member, false).await.unwrap().iter().map(|g| g.id).collect();
    store.syncs().finish_sync_run(run.id, SyncRunFinish::default(), t(110)).await.unwrap();

    // Second snapshot: unchanged except one external ref, and u0 is gone.
    rows[1].external_ref = Some("assignment-1".into());
    let snapshot = &rows[1..];
    let second = store.grants().upsert_grants(c, snapshot, t(200)).await.unwrap();
    assert_eq!((second.counts.added, second.counts.changed, second.counts.unchanged), (0, 1, 2998));
    let mut existing = second.existing.clone();
    existing.sort();
    assert_eq!(existing, first_ids[1..].to_vec());
    let mut seen = IdSet::new();
    second.existing.iter().for_each(|id| {
        seen.insert(id.0);
    });
    // Someone adds a grant while the snapshot runs: it must not be swept by it.
    let late = store.principals().upsert_principals(c, &[user("late")], t(150)).await.unwrap().ids[0];
    store.grants().upsert_grants(c, &[grant(member, late)], t(250)).await.unwrap();
    let connector_synced = store.connectors().get_connector(c).await.unwrap().last_synced_at();
    assert_eq!(connector_synced, Some(t(100)));
    assert_eq!(
        store
            .grants()
            .end_grants_not_seen(c, &seen, t(200), t(300), connector_synced, crate::KeyFilter::All)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .grants()
            .end_grants_not_seen(c, &seen, t(200), t(301), connector_synced, crate::KeyFilter::All)
            .await
            .unwrap(),
        0
    );
    assert!(store.grants().find_current_grant(member, late, "").await.unwrap().is_some());

    let history = store.grants().list_grants_for_principal(ids[0], true).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].ended_at, history[0].last_seen_at, history[0].first_seen_at),
        (Some(t(300)), t(100), t(100))
    );
    assert!(store.grants().list_grants_for_principal(ids[0], false).await.unwrap().is_empty());

    // Re-granted later: a new row, the old one stays as history.
    let back = store.grants().upsert_grants(c, &rows[..1], t(300)).await.unwrap();
    assert_eq!(back.counts.added, 1);
    let history = store.grants().list_grants_for_principal(ids[0], true).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_ne!(history[0].id, history[1].id);
    assert_eq!(store.grants().list_grants_for_entitlement(member, false).await.unwrap().len(), 3001);
    assert_eq!(store.grants().count_current_grants(c).await.unwrap().get(&GrantSource::Direct), Some(&3001));
    let found = store.grants().find_current_grant(member, ids[1], "").await.unwrap().unwrap();
    assert_eq!(found.external_ref.as_deref(), Some("assignment-1"));
    assert_eq!(found.last_seen_at, t(100), "a current grant was seen by the connector's last sync");
});

store_test!(jit_grants_keep_their_source_and_expiry, |store| {
    let c = connector(&store, "contoso").await.id;
    let (_, member, _) = group(&store, c, "g1").await;
    let p = store.principals().upsert_principals(c, &[user("ada")], t(0)).await.unwrap().ids[0];
    store.grants().upsert_grants(c, &[grant(member, p)], t(0)).await.unwrap();
    let id = store.grants().find_current_grant(member, p, "").await.unwrap().unwrap().id;
    exec(
        &store,
        &format!("UPDATE grants SET source = 'jit', expires_at = '2030-01-01T00:00:00+00:00' WHERE id = {id}"),
    )
    .await;
    // The directory shows the membership with no expiry: Attest's expiry and source stay.
    let again = store.grants().upsert_grants(c, &[grant(member, p)], t(10)).await.unwrap();
    assert_eq!(again.counts.unchanged, 1);
    let g = store.grants().find_current_grant(member, p, "").await.unwrap().unwrap();
    assert_eq!(g.source, GrantSource::Jit);
    assert_eq!(g.expires_at, Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()));
    assert!(g.is_current(t(0)));
    assert!(!g.is_current(Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap()));
    let expiring = store
        .grants()
        .list_grants_expiring_before(Utc.with_ymd_and_hms(2030, 6, 1, 0, 0, 0).unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(expiring.iter().map(|g| g.id).collect::<Vec<_>>(), vec![id]);
});

store_test!(app_and_directory_roles_reach_direct_members_only, |store| {
    let c = connector(&store, "contoso").await.id;
    assert!(!store.grants().inherited_rules_are_current(c).await.unwrap(), "nothing derived yet");
    let (_, m_sales, _) = group(&store, c, "sales").await;
    let (_, m_emea, _) = group(&store, c, "emea").await;
    let (_, m_admins, _) = group(&store, c, "admins").await;
    let (_, m_staff, _) = group(&store, c, "staff").await;
    let app = store
        .resources()
        .upsert_resources(c, &[ResourceData::new("app", ResourceKind::Application, "App")], t(0))
        .await
        .unwrap()
        .ids[0];
    let directory_role = store
        .resources()
        .upsert_resources(c, &[ResourceData::new("role", ResourceKind::DirectoryRole, "Helpdesk")], t(0))
        .await
        .unwrap()
        .ids[0];
    let entitlement = |resource, key: EntitlementKey| EntitlementData {
        resource_id: resource,
        display_name: key.default_display_name(),
        key,
        description: None,
    };
    let e = store
        .resources()
        .upsert_entitlements(
            c,
            &[
                entitlement(app, EntitlementKey::AppRole("r".into())),
                entitlement(app, EntitlementKey::Owner),
                entitlement(directory_role, EntitlementKey::Active),
            ],
            t(0),
        )
        .await
        .unwrap()
        .ids;
    let (role, app_owner, active) = (e[0], e[1], e[2]);
    let mut robot = PrincipalData::new("robot", PrincipalKind::ManagedIdentity, "Robot");
    robot.account_enabled = Some(true);
    let p = store
        .principals()
        .upsert_principals(
            c,
            &[
                user("ada"),
                user("bob"),
                user("cy"),
                robot,
                group_principal("sales"),
                group_principal("emea"),
                group_principal("admins"),
                group_principal("staff"),
            ],
            t(0),
        )
        .await
        .unwrap()
        .ids;
    let (ada, bob, cy, robot, sales, emea, admins, _staff) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    // Sales ⊃ {ada, robot, EMEA}; EMEA ⊃ {bob, ada}; Sales is in Staff. Sales holds the app role
    // and (nonsensically, but Entra data can say anything) owns the app; Admins ⊃ {cy, EMEA}
    // holds a directory role.
    let direct = vec![
        grant(m_sales, ada),
        grant(m_sales, robot),
        grant(m_sales, emea),
        grant(m_emea, bob),
        grant(m_emea, ada),
        grant(m_staff, sales),
        grant(role, sales),
        grant(app_owner, sales),
        grant(m_admins, cy),
        grant(m_admins, emea),
        grant(active, admins),
    ];
    store.grants().upsert_grants(c, &direct, t(0)).await.unwrap();
    store.grants().recompute_inherited_grants(c, t(1)).await.unwrap();
    assert!(store.grants().inherited_rules_are_current(c).await.unwrap());
    let inherited =
        |grants: Vec<Grant>, entitlement: EntitlementId| -> Vec<(Option<IneffectiveReason>, Option<PrincipalId>)> {
            grants
                .into_iter()
                .filter(|g| g.source == GrantSource::Inherited && g.entitlement_id == entitlement)
                .map(|g| (g.ineffective, g.through_principal_id))
                .collect()
        };
    let held = async |p: PrincipalId| store.grants().list_grants_for_principal(p, false).await.unwrap();
    // A direct user member holds the app role; through EMEA too, but the direct way wins.
    assert_eq!(inherited(held(ada).await, role), vec![(None, None)]);
    // Only through the nested group: listed, not effective, through EMEA.
    assert_eq!(inherited(held(bob).await, role), vec![(Some(IneffectiveReason::NestedGroup), Some(emea))]);
    // The nested group itself, and a managed identity: not effective either.
    assert_eq!(inherited(held(emea).await, role), vec![(Some(IneffectiveReason::NestedGroup), None)]);
    assert_eq!(inherited(held(robot).await, role), vec![(Some(IneffectiveReason::ServicePrincipal), None)]);
    // Ownership is never inherited.
    for p in [ada, bob, robot, emea] {
        assert!(inherited(held(p).await, app_owner).is_empty());
    }
    // Membership stays transitive: bob is in Staff through Sales (via Sales, effective).
    assert_eq!(inherited(held(bob).await, m_staff), vec![(None, None)]);
    // Directory roles: cy (direct) effective, bob (in EMEA, nested) not.
    assert_eq!(inherited(held(cy).await, active), vec![(None, None)]);
    assert_eq!(inherited(held(bob).await, active), vec![(Some(IneffectiveReason::NestedRoleGroup), Some(emea))]);
    // Ineffective rows are not access: not in the totals.
    let total: u64 = store.grants().count_current_grants(c).await.unwrap().values().sum();
    let effective = store.directory().list_holders_of_resource(app, 50, 0).await.unwrap();
    let listed = store.directory().list_ineffective_holders_of_resource(app, 50, 0).await.unwrap();
    assert_eq!(effective.1, 3, "ada (inherited) plus Sales's own two grants: {:?}", effective.0);
    assert_eq!(listed.1, 3, "bob, EMEA and the robot");
    let all_rows = {
        let mut n = 0u64;
        store.grants().scan_current_grants(c, |_| n += 1).await.unwrap();
        n
    };
    // Three for the app role (bob, EMEA, the robot), three for the directory role (EMEA, and
    // bob and ada through it).
    assert_eq!(all_rows - total, 6, "the six ineffective rows are left out of the totals");

    // What a revoke changes, for ada (in Sales directly and through EMEA): her Sales membership
    // ends the app role and nothing else (she stays in Sales and Staff through EMEA); her EMEA
    // membership ends EMEA and Admins (only through EMEA); Staff takes both memberships.
    let access = store.directory().list_access_of_principal(ada).await.unwrap();
    let impacts = store.directory().revoke_impacts(ada, &access).await.unwrap();
    let of = |entitlement: EntitlementId, source: GrantSource| {
        access.iter().find(|a| a.grant.entitlement_id == entitlement && a.grant.source == source).unwrap()
    };
    let sales_membership = of(m_sales, GrantSource::Direct).grant.id;
    let emea_membership = of(m_emea, GrantSource::Direct).grant.id;
    let app_role = &impacts[&of(role, GrantSource::Inherited).grant.id];
    assert_eq!(app_role.remove, [sales_membership].into(), "the app role flows from Sales's direct members only");
    assert!(app_role.ends_entitlement);
    assert_eq!(app_role.also_ends, Default::default());
    let staff = &impacts[&of(m_staff, GrantSource::Inherited).grant.id];
    assert_eq!(staff.remove, [sales_membership, emea_membership].into(), "Staff comes through both");
    assert_eq!(staff.also_ends, [m_sales, m_emea, role, m_admins].into());
    assert_eq!(impacts[&emea_membership].also_ends, [m_admins].into());
    assert!(!impacts[&of(m_sales, GrantSource::Direct).grant.id].ends_entitlement, "still in Sales through EMEA");

    // Bob joins Sales directly: his app role becomes effective (the row is updated, not added).
    store.grants().upsert_grants(c, &[grant(m_sales, bob)], t(2)).await.unwrap();
    let moved = store.grants().recompute_inherited_grants(c, t(2)).await.unwrap();
    assert!(moved.changed >= 1, "{moved:?}");
    assert_eq!(inherited(held(bob).await, role), vec![(None, None)]);
    // And nothing to do again.
    let again = store.grants().recompute_inherited_grants(c, t(3)).await.unwrap();
    assert_eq!((again.added, again.changed, again.removed), (0, 0, 0));
});

store_test!(inherited_grants_follow_nesting_and_cycles, |store| {
    let c = connector(&store, "contoso").await.id;
    let (_, m1, _) = group(&store, c, "g1").await;
    let (_, m2, _) = group(&store, c, "g2").await;
    let (_, m3, _) = group(&store, c, "g3").await;
    let app = store
        .resources()
        .upsert_resources(c, &[ResourceData::new("app", ResourceKind::Application, "App")], t(0))
        .await
        .unwrap()
        .ids[0];
    let role = store
        .resources()
        .upsert_entitlements(
            c,
            &[EntitlementData {
                resource_id: app,
                key: EntitlementKey::AppRole("r".into()),
                display_name: "R".into(),
                description: None,
            }],
            t(0),
        )
        .await
        .unwrap()
        .ids[0];
    let p = store
        .principals()
        .upsert_principals(
            c,
            &[user("ada"), user("bob"), group_principal("g1"), group_principal("g2"), group_principal("g3")],
            t(0),
        )
        .await
        .unwrap()
        .ids;
    let (ada, bob, g1, g2, g3) = (p[0], p[1], p[2], p[3], p[4]);
    // ada ∈ g1 ∈ g2 ∈ g3 ∈ g1 (cycle); bob ∈ g3; g2 holds the app role.
    let direct = vec![grant(m1, ada), grant(m2, g1), grant(m3, g2), grant(m1, g3), grant(m3, bob), grant(role, g2)];
    store.grants().upsert_grants(c, &direct, t(0)).await.unwrap();
    let counts = store.grants().recompute_inherited_grants(c, t(1)).await.unwrap();
    assert!(counts.added > 0);
    let inherited = |grants: Vec<Grant>| {
        let mut v: Vec<(EntitlementId, PrincipalId)> = grants
            .into_iter()
            .filter(|g| g.source == GrantSource::Inherited)
            .map(|g| (g.entitlement_id, g.via_principal_id.unwrap()))
            .collect();
        v.sort();
        v
    };
    // ada: g2.member via g1, g3.member via g2, app role via g2, g1.member via g3 (the cycle).
    let mut expected = vec![(m2, g1), (m3, g2), (role, g2), (m1, g3)];
    expected.sort();
    assert_eq!(inherited(store.grants().list_grants_for_principal(ada, false).await.unwrap()), expected);
    // bob ∈ g3 ∈ g1 ∈ g2: reaches the app role through the cycle too.
    assert!(inherited(store.grants().list_grants_for_principal(bob, false).await.unwrap()).contains(&(role, g2)));

    // Nothing changed: nothing written.
    let again = store.grants().recompute_inherited_grants(c, t(2)).await.unwrap();
    assert_eq!((again.added, again.changed, again.removed), (0, 0, 0));

    // g1 leaves g2: ada loses what came through g2; rows are ended, not deleted.
    let g1_in_g2 = store.grants().find_current_grant(m2, g1, "").await.unwrap().unwrap();
    store.grants().end_grants(&[g1_in_g2.id], t(3), None).await.unwrap();
    let after = store.grants().recompute_inherited_grants(c, t(3)).await.unwrap();
    assert!(after.removed > 0);
    assert!(!inherited(store.grants().list_grants_for_principal(ada, false).await.unwrap()).contains(&(role, g2)));
    assert!(
        store
            .grants()
            .list_grants_for_principal(ada, true)
            .await
            .unwrap()
            .iter()
            .any(|g| g.entitlement_id == role && g.ended_at == Some(t(3)))
    );
});

store_test!(sync_runs_are_recorded, |store| {
    let c = connector(&store, "contoso").await.id;
    let run = store.syncs().start_sync_run(c, SyncMode::Delta, SyncTrigger::Schedule, t(5)).await.unwrap();
    assert_eq!(run.status, SyncStatus::Running);
    let mut counts = SyncCounts::default();
    counts.grants.added = 7;
    let failed = store
        .syncs()
        .finish_sync_run(
            run.id,
            SyncRunFinish {
                counts,
                requests: 3,
                resource_units: 9,
                error: Some("throttled".into()),
                notes: vec!["n".into()],
            },
            t(6),
        )
        .await
        .unwrap();
    assert_eq!((failed.status, failed.counts.grants.added, failed.requests), (SyncStatus::Failed, 7, 3));
    assert_eq!(
        store.connectors().get_connector(c).await.unwrap().last_delta_sync_at,
        None,
        "a failed run does not count as observed"
    );
    let ok = store.syncs().start_sync_run(c, SyncMode::Delta, SyncTrigger::Schedule, t(7)).await.unwrap();
    store.syncs().finish_sync_run(ok.id, SyncRunFinish::default(), t(8)).await.unwrap();
    assert_eq!(store.connectors().get_connector(c).await.unwrap().last_delta_sync_at, Some(t(7)));
    let runs = store.syncs().list_sync_runs(c, 10).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ok.id, run.id]);

    // A run left running (its process died) is recorded as interrupted when the next starts.
    let cut = store.syncs().start_sync_run(c, SyncMode::Full, SyncTrigger::Cli, t(9)).await.unwrap();
    let next = store.syncs().start_sync_run(c, SyncMode::Full, SyncTrigger::Cli, t(10)).await.unwrap();
    let cut = store.syncs().get_sync_run(cut.id).await.unwrap();
    assert_eq!((cut.status, cut.finished_at), (SyncStatus::Failed, Some(t(10))));
    assert!(cut.error.as_deref().unwrap().starts_with("interrupted"), "{cut:?}");
    assert_eq!(store.syncs().get_sync_run(next.id).await.unwrap().status, SyncStatus::Running);
});

fn draft(n: i64) -> AuditEventDraft {
    AuditEventDraft {
        occurred_at: t(n) + Duration::nanoseconds(123_456_789),
        actor: "ada@contoso.com".into(),
        action: "grant.revoked".into(),
        target_kind: Some("grant".into()),
        target_id: Some(n.to_string()),
        details: serde_json::json!({"reason": "review", "n": n}),
    }
}

store_test!(the_audit_log_finds_an_actor_by_the_start_of_any_word_in_any_case, |store| {
    use crate::{AuditFilter, AuditPage};
    for (n, actor) in [
        "ada@contoso.com",
        "Ada@Contoso.com (in person)",
        "ada@contoso.com (command line)",
        "bob@contoso.com",
        "worker-1",
    ]
    .into_iter()
    .enumerate()
    {
        store.audit().append_audit_event(AuditEventDraft { actor: actor.into(), ..draft(n as i64 + 1) }).await.unwrap();
    }
    let found = |actor: &str| {
        let filter = AuditFilter { actor: Some(actor.into()), ..Default::default() };
        let store = store.clone();
        async move {
            let events = store.audit().list_audit_events_matching(&filter, AuditPage::NewestBefore(None), 50).await;
            let mut seqs: Vec<i64> = events.unwrap().iter().map(|e| e.seq).collect();
            seqs.sort();
            seqs
        }
    };
    assert_eq!(found("ada").await, vec![1, 2, 3], "every form the actor takes");
    assert_eq!(found("ADA@CONTOSO.COM").await, vec![1, 2, 3]);
    assert_eq!(found("in person").await, vec![2]);
    assert_eq!(found("command").await, vec![3]);
    assert_eq!(found("contoso").await, Vec::<i64>::new(), "the start of a word, not any part");
    assert_eq!(found("worker").await, vec![5]);
    assert_eq!(found("%").await, Vec::<i64>::new(), "LIKE wildcards are literal");
});

store_test!(the_audit_chain_verifies_and_pinpoints_tampering, |store| {
    let empty = store.audit().verify_audit_chain().await.unwrap();
    assert_eq!((empty.checked, empty.broken.clone()), (0, None));
    for n in 1..=20 {
        assert_eq!(store.audit().append_audit_event(draft(n)).await.unwrap().seq, n);
    }
    let ok = store.audit().verify_audit_chain().await.unwrap();
    assert_eq!((ok.checked, ok.head_seq, ok.broken.clone()), (20, 20, None));

    // Edit a row in place.
    exec(&store, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7").await;
    let edited = store.audit().verify_audit_chain().await.unwrap();
    let broken = edited.broken.unwrap();
    assert_eq!((broken.seq, edited.checked), (7, 6));
    assert!(matches!(broken.reason, BreakReason::ContentAltered { .. }));
    exec(&store, "UPDATE audit_events SET actor = 'ada@contoso.com' WHERE seq = 7").await;
    assert_eq!(store.audit().verify_audit_chain().await.unwrap().broken, None);

    // Delete the last rows: caught against the head.
    exec(&store, "DELETE FROM audit_events WHERE seq >= 19").await;
    let cut = store.audit().verify_audit_chain().await.unwrap().broken.unwrap();
    assert_eq!(cut.seq, 19);
    assert!(matches!(cut.reason, BreakReason::Truncated { head_seq: 20, .. }));

    // Delete a middle row: a gap.
    exec(&store, "DELETE FROM audit_events WHERE seq = 4").await;
    let gap = store.audit().verify_audit_chain().await.unwrap().broken.unwrap();
    assert_eq!(gap, ChainBreak { seq: 5, reason: BreakReason::Gap { expected_seq: 4 } });
});

store_test!(concurrent_audit_appends_form_one_chain, |store| {
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..15 {
                store.audit().append_audit_event(draft(worker * 100 + n)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let result = store.audit().verify_audit_chain().await.unwrap();
    assert_eq!((result.checked, result.head_seq, result.broken), (120, 120, None));
});

store_test!(lifecycle_events_are_appended_with_the_changes_of_a_recording_handle, |store| {
    use crate::LifecycleFilter;
    use LifecycleEventKind::*;
    let c = connector(&store, "contoso").await.id;
    let (_, member, owner) = group(&store, c, "g1").await;
    let all = LifecycleFilter { connector: Some(c), limit: 1000, ..Default::default() };
    let kinds = |events: &[crate::LifecycleEventView]| -> Vec<(LifecycleEventKind, String)> {
        events.iter().map(|e| (e.event.kind, e.principal_external_id.clone())).collect()
    };

    // The plain handle (a first sync) writes the graph and no events.
    let ids = store
        .principals()
        .upsert_principals(c, &[user("u1"), user("u2"), group_principal("g1")], t(0))
        .await
        .unwrap()
        .ids;
    store.grants().upsert_grants(c, &[grant(member, ids[0])], t(0)).await.unwrap();
    assert!(store.lifecycle().list_lifecycle_events(&all).await.unwrap().is_empty());

    let run = store.syncs().start_sync_run(c, SyncMode::Delta, SyncTrigger::Cli, t(10)).await.unwrap();
    let rec = store.recording(run.id);
    let mut u1 = user("u1");
    u1.account_enabled = Some(false);
    rec.principals().upsert_principals(c, &[u1.clone(), user("u2"), user("u3")], t(10)).await.unwrap();
    rec.grants().upsert_grants(c, &[grant(member, ids[1]), grant(owner, ids[1])], t(10)).await.unwrap();
    rec.grants().end_grants_matching(&[grant(member, ids[0])], t(10), None).await.unwrap();
    // Replays change nothing and append nothing.
    rec.grants().end_grants_matching(&[grant(member, ids[0])], t(10), None).await.unwrap();
    rec.principals().upsert_principals(c, std::slice::from_ref(&u1), t(10)).await.unwrap();
    let events = store.lifecycle().list_lifecycle_events(&all).await.unwrap();
    assert_eq!(
        kinds(&events),
        vec![
            (PrincipalCreated, "u3".into()),
            (PrincipalDisabled, "u1".into()),
            (MembershipAdded, "u2".into()),
            (AssignmentAdded, "u2".into()),
            (MembershipRemoved, "u1".into()),
        ]
    );
    assert!(events.iter().all(|e| e.event.sync_run_id == Some(run.id) && e.event.detected_at == t(10)));
    let added = &events[2];
    assert_eq!(
        (added.resource_external_id.as_deref(), added.entitlement_key.as_deref(), added.event.entitlement_id),
        (Some("g1"), Some("member"), Some(member))
    );
    assert!(added.event.grant_id.is_some() && events[0].event.grant_id.is_none());

    // Deletion by external id, by a full sync's sweep, and restoration; re-enabling.
    let after = events.last().map(|e| e.event.id);
    let rec =
        store.recording(store.syncs().start_sync_run(c, SyncMode::Full, SyncTrigger::Cli, t(20)).await.unwrap().id);
    rec.principals().mark_principals_deleted(c, &["u2".into()], t(20)).await.unwrap();
    rec.principals().mark_principals_deleted(c, &["u2".into()], t(20)).await.unwrap();
    let mut seen = IdSet::new();
    for id in [ids[0], ids[2]] {
        seen.insert(id.0);
    }
    rec.syncs().mark_unseen_deleted(c, crate::SyncedTable::Principals, &seen, t(20)).await.unwrap();
    rec.principals().upsert_principals(c, &[user("u2")], t(21)).await.unwrap();
    rec.principals().upsert_principals(c, &[user("u1")], t(21)).await.unwrap();
    let later = store.lifecycle().list_lifecycle_events(&LifecycleFilter { after, ..all.clone() }).await.unwrap();
    assert_eq!(
        kinds(&later),
        vec![
            (PrincipalDeleted, "u2".into()),
            (PrincipalDeleted, "u3".into()),
            (PrincipalRestored, "u2".into()),
            (PrincipalEnabled, "u1".into())
        ]
    );

    // Filters: by kind and by principal.
    let only = LifecycleFilter { kinds: vec![MembershipAdded, MembershipRemoved], ..all.clone() };
    assert_eq!(store.lifecycle().list_lifecycle_events(&only).await.unwrap().len(), 2);
    let of_u1 = LifecycleFilter { principal: Some(ids[0]), ..all.clone() };
    assert_eq!(
        kinds(&store.lifecycle().list_lifecycle_events(&of_u1).await.unwrap())
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec![PrincipalDisabled, MembershipRemoved, PrincipalEnabled]
    );
});

fn member_change(c: ConnectorId, key: &str, by: &str) -> NewChange {
    NewChange {
        connector_id: c,
        action: ChangeAction::AddGroupMember { group: "g1".into(), member: format!("u-{key}") },
        idempotency_key: key.into(),
        origin: ChangeOrigin::Manual,
        origin_ref: None,
        requested_by: by.into(),
        requested_by_id: None,
        reason: None,
    }
}

store_test!(changes_are_listed_within_a_readers_connectors_by_the_database, |store| {
    let a = store.connectors().create_connector(NewConnector::entra("a"), t(0)).await.unwrap().id;
    let b = store.connectors().create_connector(NewConnector::entra("b"), t(0)).await.unwrap().id;
    for i in 0..3 {
        store
            .changes()
            .enqueue_change(member_change(a, &format!("a{i}"), "ada@contoso.com"), false, t(i))
            .await
            .unwrap();
        store
            .changes()
            .enqueue_change(member_change(b, &format!("b{i}"), "ada@contoso.com"), false, t(i))
            .await
            .unwrap();
    }
    let listed = |within: Option<Vec<ConnectorId>>, limit| {
        let filter = ChangeFilter { within, limit, ..Default::default() };
        let store = store.clone();
        async move {
            store.changes().list_changes(&filter).await.unwrap().iter().map(|c| c.connector_id).collect::<Vec<_>>()
        }
    };
    // A full page of the reader's own, though the other connector's changes are as new.
    assert_eq!(listed(Some(vec![a]), 3).await, vec![a, a, a]);
    assert_eq!(listed(Some(vec![]), 10).await, Vec::<ConnectorId>::new(), "no connectors, no changes");
    assert_eq!(listed(None, 10).await.len(), 6);
});

store_test!(the_same_operation_asked_twice_while_open_is_queued_once, |store| {
    let c = connector(&store, "contoso").await.id;
    let block = |key: &str| NewChange {
        action: ChangeAction::BlockSignIn { user: "u-1".into() },
        ..member_change(c, key, "ada@contoso.com")
    };
    let first = store.changes().enqueue_change(block("click-1"), true, t(0)).await.unwrap();
    assert!(first.created && first.change.state == ChangeState::AwaitingApproval);
    let second = store.changes().enqueue_change(block("click-2"), true, t(1)).await.unwrap();
    assert!(!second.created && second.change.id == first.change.id, "a second click returns the first");
    // Another connector's, or another operation, is its own change.
    let other = connector(&store, "fabrikam").await.id;
    let elsewhere = NewChange { connector_id: other, ..block("click-3") };
    assert!(store.changes().enqueue_change(elsewhere, true, t(2)).await.unwrap().created);
    assert!(
        store.changes().enqueue_change(member_change(c, "k", "ada@contoso.com"), true, t(2)).await.unwrap().created
    );
    // Once it is closed, asking again queues a new one.
    store.changes().cancel_change(first.change.id, "ada@contoso.com", t(3)).await.unwrap();
    let again = store.changes().enqueue_change(block("click-4"), true, t(4)).await.unwrap();
    assert!(again.created && again.change.id != first.change.id);
});

store_test!(changes_queue_once_per_key_and_move_through_their_states_with_audit, |store| {
    use crate::{AttemptOutcome, ChangeFilter};
    let c = connector(&store, "contoso").await.id;
    let first = store.changes().enqueue_change(member_change(c, "k1", "ada@contoso.com"), false, t(0)).await.unwrap();
    assert!(first.created && first.change.state == ChangeState::Pending);
    let again = store.changes().enqueue_change(member_change(c, "k1", "ada@contoso.com"), false, t(1)).await.unwrap();
    assert!(!again.created && again.change.id == first.change.id, "the same key queues one change");

    // Claimed with a lease; finishing checks the lease.
    let claimed = store.changes().claim_changes("w1", 10, t(60), &[], t(2)).await.unwrap();
    assert_eq!(claimed.iter().map(|c| (c.id, c.attempts)).collect::<Vec<_>>(), vec![(first.change.id, 1)]);
    assert!(store.changes().claim_changes("w2", 10, t(60), &[], t(3)).await.unwrap().is_empty(), "held by w1");
    let retry = AttemptOutcome::Retry { error: "503 serviceNotAvailable".into(), next_attempt_at: t(30) };
    let err = store.changes().record_attempt(first.change.id, "w2", retry.clone(), t(4)).await.unwrap_err();
    assert!(err.to_string().contains("no longer held by w2"), "{err}");
    let rescheduled = store.changes().record_attempt(first.change.id, "w1", retry, t(4)).await.unwrap();
    assert_eq!((rescheduled.state, rescheduled.next_attempt_at), (ChangeState::Pending, t(30)));
    assert!(
        store.changes().claim_changes("w2", 10, t(90), &[], t(20)).await.unwrap().is_empty(),
        "not due before t(30)"
    );

    // w2 claims it, dies; its lease expires and w3 takes over; w2's late report is refused.
    assert_eq!(store.changes().claim_changes("w2", 10, t(40), &[], t(30)).await.unwrap().len(), 1);
    let taken = store.changes().claim_changes("w3", 10, t(100), &[], t(41)).await.unwrap();
    assert_eq!((taken.len(), taken[0].attempts), (1, 3));
    let settled = |result| AttemptOutcome::Settled {
        result,
        verified: Some(true),
        graph_request_id: Some("req-1".into()),
        error: None,
        details: serde_json::json!({}),
    };
    assert!(store.changes().record_attempt(first.change.id, "w2", settled(ApplyResult::Applied), t(42)).await.is_err());
    let done = store
        .changes()
        .record_attempt(first.change.id, "w3", settled(ApplyResult::AlreadyInState), t(42))
        .await
        .unwrap();
    assert_eq!(
        (done.state, done.result, done.verified),
        (ChangeState::Applied, Some(ApplyResult::AlreadyInState), Some(true))
    );
    assert_eq!((done.finished_at, done.lease_owner.as_deref()), (Some(t(42)), None));
    assert!(
        store
            .changes()
            .cancel_change(done.id, "ada@contoso.com", t(43))
            .await
            .unwrap_err()
            .to_string()
            .contains("already applied")
    );

    // Approval: not by the requester; then pending.
    let sensitive =
        store.changes().enqueue_change(member_change(c, "k2", "Ada@Contoso.com"), true, t(50)).await.unwrap().change;
    assert_eq!(sensitive.state, ChangeState::AwaitingApproval);
    assert!(
        store.changes().claim_changes("w1", 10, t(200), &[], t(51)).await.unwrap().is_empty(),
        "not before approval"
    );
    let own = store.changes().approve_change(sensitive.id, "ada@contoso.com", None, t(52)).await.unwrap_err();
    assert!(own.to_string().contains("a second person must approve it"), "{own}");
    let approved = store.changes().approve_change(sensitive.id, "bob@contoso.com", None, t(53)).await.unwrap();
    assert_eq!((approved.state, approved.approved_by.as_deref()), (ChangeState::Pending, Some("bob@contoso.com")));
    assert!(
        store.changes().approve_change(sensitive.id, "carol@contoso.com", None, t(54)).await.is_err(),
        "approved once"
    );

    // Failure, then a retry from a fresh count; cancelling a pending change.
    let claimed = store.changes().claim_changes("w1", 10, t(300), &[], t(60)).await.unwrap();
    assert_eq!(claimed[0].id, sensitive.id);
    let failed = AttemptOutcome::Settled {
        result: ApplyResult::Failed,
        verified: None,
        graph_request_id: None,
        error: Some("missing permission GroupMember.ReadWrite.All".into()),
        details: serde_json::json!({}),
    };
    let failed = store.changes().record_attempt(sensitive.id, "w1", failed, t(61)).await.unwrap();
    assert_eq!(failed.state, ChangeState::Failed);
    let retried = store.changes().retry_change(sensitive.id, "bob@contoso.com", t(62)).await.unwrap();
    assert_eq!((retried.state, retried.attempts, retried.result), (ChangeState::Pending, 0, None));
    let cancelled = store.changes().cancel_change(sensitive.id, "bob@contoso.com", t(63)).await.unwrap();
    assert_eq!(cancelled.state, ChangeState::Cancelled);

    // Skipped kinds are not claimed by background workers.
    let reset = NewChange {
        action: ChangeAction::ResetPassword { user: "u1".into() },
        ..member_change(c, "k3", "ada@contoso.com")
    };
    let reset = store.changes().enqueue_change(reset, false, t(70)).await.unwrap().change;
    assert!(
        store.changes().claim_changes("w1", 10, t(400), &[ChangeKind::ResetPassword], t(71)).await.unwrap().is_empty()
    );
    assert_eq!(
        store.changes().claim_change(reset.id, "cli:ada", t(400), t(72)).await.unwrap().map(|c| c.id),
        Some(reset.id)
    );

    // Listing, counting, and the audit trail of every transition.
    let listed = store.changes().list_changes(&ChangeFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![reset.id, sensitive.id, first.change.id]);
    let cancelled_only = ChangeFilter { state: Some(ChangeState::Cancelled), limit: 10, ..Default::default() };
    assert_eq!(store.changes().list_changes(&cancelled_only).await.unwrap().len(), 1);
    let counts = store.changes().count_changes_by_state().await.unwrap();
    assert!(
        counts.contains(&(ChangeState::Applied, 1)) && counts.contains(&(ChangeState::InProgress, 1)),
        "{counts:?}"
    );
    let events = store.audit().list_audit_events(0, 100).await.unwrap();
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e.target_id.as_deref() == Some(&first.change.id.0.to_string()))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "change.requested",
            "change.claimed",
            "change.retry_scheduled",
            "change.claimed",
            "change.claimed",
            "change.applied"
        ]
    );
    assert!(store.audit().verify_audit_chain().await.unwrap().broken.is_none());
});

store_test!(concurrent_workers_claim_disjoint_changes, |store| {
    let c = connector(&store, "contoso").await.id;
    for i in 0..200 {
        store
            .changes()
            .enqueue_change(member_change(c, &format!("k{i}"), "ada@contoso.com"), false, t(0))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.changes().claim_changes(&format!("w{w}"), 7, t(600), &[], t(1)).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.id.0));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (200, 200), "every change claimed exactly once");
});

store_test!(job_leases_are_held_by_one_owner_until_they_expire, |store| {
    assert!(store.leases().acquire_job_lease("sync:1", "a", t(60), t(0)).await.unwrap());
    assert!(!store.leases().acquire_job_lease("sync:1", "b", t(90), t(10)).await.unwrap(), "held by a");
    assert!(store.leases().acquire_job_lease("sync:1", "a", t(120), t(20)).await.unwrap(), "a renews");
    assert!(!store.leases().acquire_job_lease("sync:1", "b", t(150), t(100)).await.unwrap(), "renewed until t(120)");
    assert!(store.leases().acquire_job_lease("sync:1", "b", t(200), t(121)).await.unwrap(), "expired: b takes over");
    store.leases().release_job_lease("sync:1", "a").await.unwrap();
    assert!(
        !store.leases().acquire_job_lease("sync:1", "a", t(300), t(130)).await.unwrap(),
        "a cannot release b's lease"
    );
    store.leases().release_job_lease("sync:1", "b").await.unwrap();
    assert!(store.leases().acquire_job_lease("sync:1", "a", t(300), t(131)).await.unwrap());
    assert!(store.leases().acquire_job_lease("sync:2", "b", t(300), t(131)).await.unwrap(), "jobs are independent");
});

store_test!(web_sign_in_state_is_single_use_and_expires, |store| {
    let ada = store.web().sign_in_web_user("t1", "oid-ada", "Ada", Some("ada@contoso.com"), t(0)).await.unwrap();
    assert!(ada.roles.is_empty());
    let admin = store.web().set_web_user_roles("t1", "oid-ada", "Ada", &["admin".to_owned()], t(1)).await.unwrap();
    assert_eq!((admin.id, admin.roles.clone()), (ada.id, vec!["admin".to_owned()]));
    let again = store.web().sign_in_web_user("t1", "oid-ada", "Ada Lovelace", None, t(2)).await.unwrap();
    assert_eq!((again.display_name.as_str(), again.roles.len()), ("Ada Lovelace", 1), "signing in keeps roles");

    store.web().create_web_session("hash-1", ada.id, "csrf-1", t(100), t(3)).await.unwrap();
    let session = store.web().find_web_session("hash-1", t(50)).await.unwrap().unwrap();
    assert_eq!((session.user.id, session.csrf_token.as_str()), (ada.id, "csrf-1"));
    assert!(store.web().find_web_session("hash-1", t(100)).await.unwrap().is_none(), "expired");
    assert!(store.web().find_web_session("hash-2", t(50)).await.unwrap().is_none());
    store.web().delete_web_session("hash-1").await.unwrap();
    assert!(store.web().find_web_session("hash-1", t(50)).await.unwrap().is_none(), "signed out");

    store.web().save_sign_in_attempt("state-1", "nonce-1", "verifier-1", t(600), t(0), 100).await.unwrap();
    store.web().save_sign_in_attempt("state-old", "n", "v", t(10), t(0), 100).await.unwrap();
    assert_eq!(store.web().take_sign_in_attempt("state-old", t(20)).await.unwrap(), None, "expired");
    let taken = store.web().take_sign_in_attempt("state-1", t(20)).await.unwrap();
    assert_eq!(taken, Some(("nonce-1".to_owned(), "verifier-1".to_owned())));
    assert_eq!(store.web().take_sign_in_attempt("state-1", t(21)).await.unwrap(), None, "taken once");

    // Anonymous sign-ins leave a bounded trace: expired ones are swept as new ones start, and
    // past the cap the oldest give way.
    for i in 0..5 {
        store.web().save_sign_in_attempt(&format!("stale-{i}"), "n", "v", t(100 + i), t(0), 100).await.unwrap();
    }
    store.web().save_sign_in_attempt("fresh", "n", "v", t(900), t(200), 100).await.unwrap();
    assert_eq!(store.web().count_sign_in_attempts().await.unwrap(), 1, "the expired ones were swept");
    for i in 0..10 {
        store.web().save_sign_in_attempt(&format!("flood-{i}"), "n", "v", t(1000 + i), t(200), 4).await.unwrap();
    }
    assert_eq!(store.web().count_sign_in_attempts().await.unwrap(), 4);
    assert!(store.web().take_sign_in_attempt("flood-9", t(201)).await.unwrap().is_some(), "the newest are kept");
    assert!(store.web().take_sign_in_attempt("fresh", t(201)).await.unwrap().is_none(), "the oldest gave way");

    store.web().create_login_link("link-1", "cli", t(900)).await.unwrap();
    assert!(!store.web().use_login_link("link-1", t(900)).await.unwrap(), "expired at t(900)");
    assert!(store.web().use_login_link("link-1", t(899)).await.unwrap());
    assert!(!store.web().use_login_link("link-1", t(899)).await.unwrap(), "once only");
    assert!(!store.web().use_login_link("nope", t(1)).await.unwrap());
});

store_test!(web_users_by_role_for_notifications, |store| {
    let emails = |users: Vec<WebUser>| users.into_iter().filter_map(|u| u.email).collect::<Vec<_>>();
    assert!(store.web().list_web_users_with_role("admin").await.unwrap().is_empty());
    let roles = |names: &[&str]| names.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    store.web().sign_in_web_user("t1", "oid-ada", "Ada", Some("ada@contoso.com"), t(0)).await.unwrap();
    store.web().set_web_user_roles("t1", "oid-ada", "Ada", &roles(&["auditor", "admin"]), t(1)).await.unwrap();
    // An administrator who never signed in: listed, with no address yet (the notifications job
    // finds it in the directory).
    store.web().set_web_user_roles("t1", "oid-bob", "Bob", &roles(&["admin"]), t(2)).await.unwrap();
    // Signed in, no role; an auditor; a role whose name merely contains "admin".
    store.web().sign_in_web_user("t1", "oid-cy", "Cy", Some("cy@contoso.com"), t(3)).await.unwrap();
    store.web().sign_in_web_user("t1", "oid-di", "Di", Some("di@contoso.com"), t(4)).await.unwrap();
    store.web().set_web_user_roles("t1", "oid-di", "Di", &roles(&["auditor"]), t(5)).await.unwrap();
    store.web().sign_in_web_user("t1", "oid-ed", "Ed", Some("ed@contoso.com"), t(6)).await.unwrap();
    store.web().set_web_user_roles("t1", "oid-ed", "Ed", &roles(&["sub_admin"]), t(7)).await.unwrap();
    // The same person in a second tenant, with the email in another case: a second user (the
    // notifications job mails each address once).
    store.web().sign_in_web_user("t2", "oid-ada2", "Ada", Some("ADA@contoso.com"), t(8)).await.unwrap();
    store.web().set_web_user_roles("t2", "oid-ada2", "Ada", &roles(&["admin"]), t(9)).await.unwrap();
    store.web().sign_in_web_user("t1", "oid-fay", "Fay", Some("fay@contoso.com"), t(10)).await.unwrap();
    store.web().set_web_user_roles("t1", "oid-fay", "Fay", &roles(&["admin"]), t(11)).await.unwrap();
    assert_eq!(
        emails(store.web().list_web_users_with_role("admin").await.unwrap()),
        vec!["ada@contoso.com", "ADA@contoso.com", "fay@contoso.com"]
    );
    let admins = store.web().list_web_users_with_role("admin").await.unwrap();
    assert_eq!(
        admins.iter().map(|u| (u.object_id.as_str(), u.email.is_some())).collect::<Vec<_>>(),
        vec![("oid-ada", true), ("oid-bob", false), ("oid-ada2", true), ("oid-fay", true)]
    );
    assert_eq!(
        emails(store.web().list_web_users_with_role("auditor").await.unwrap()),
        vec!["ada@contoso.com", "di@contoso.com"]
    );
    assert!(store.web().list_web_users_with_role("_dmin").await.unwrap().is_empty(), "LIKE wildcards are literal");
});

store_test!(sync_requests_wait_until_a_sync_that_started_after_them_serves_them, |store| {
    let c = connector(&store, "sync-now").await;
    assert_eq!(store.syncs().find_sync_request(c.id).await.unwrap(), None);
    let first = store.syncs().request_sync(c.id, SyncMode::Delta, "ada@contoso.com", t(10)).await.unwrap();
    assert_eq!(
        (first.mode, first.requested_by.as_str(), first.requested_at),
        (SyncMode::Delta, "ada@contoso.com", t(10))
    );
    // Asking again keeps the first asker, a full request upgrades the mode, and the request
    // dates from the last asking: a sync already running when it came does not serve it.
    let again = store.syncs().request_sync(c.id, SyncMode::Full, "bob@contoso.com", t(20)).await.unwrap();
    assert_eq!(
        (again.mode, again.requested_by.as_str(), again.requested_at),
        (SyncMode::Full, "ada@contoso.com", t(20))
    );
    let last = store.syncs().request_sync(c.id, SyncMode::Delta, "bob@contoso.com", t(30)).await.unwrap();
    assert_eq!((last.mode, last.requested_at), (SyncMode::Full, t(30)));
    assert_eq!(store.syncs().list_sync_requests().await.unwrap(), vec![last.clone()]);
    // A sync that started before the request does not serve it; one that started after does.
    store.syncs().complete_sync_request(c.id, t(25)).await.unwrap();
    assert!(store.syncs().find_sync_request(c.id).await.unwrap().is_some());
    store.syncs().complete_sync_request(c.id, t(30)).await.unwrap();
    assert!(store.syncs().list_sync_requests().await.unwrap().is_empty());
});

store_test!(changes_are_found_by_the_objects_they_involve_also_after_the_migration_backfills_them, |store| {
    let c = connector(&store, "subjects").await;
    let member = store
        .changes()
        .enqueue_change(member_change(c.id, "k-1", "ada@contoso.com"), false, t(1))
        .await
        .unwrap()
        .change;
    let block = NewChange {
        connector_id: c.id,
        action: ChangeAction::BlockSignIn { user: "user-7".into() },
        idempotency_key: "k-2".into(),
        origin: ChangeOrigin::Manual,
        origin_ref: None,
        requested_by: "ada@contoso.com".into(),
        requested_by_id: None,
        reason: None,
    };
    let block = store.changes().enqueue_change(block, true, t(2)).await.unwrap().change;
    let involving =
        |object: &str| crate::ChangeFilter { involving: Some(object.to_owned()), limit: 10, ..Default::default() };
    let ids = |changes: Vec<Change>| changes.iter().map(|c| c.id).collect::<Vec<_>>();
    let (group, user) = match &member.action {
        ChangeAction::AddGroupMember { group, member } => (group.clone(), member.clone()),
        other => panic!("{other:?}"),
    };
    for _ in 0..2 {
        assert_eq!(ids(store.changes().list_changes(&involving(&group)).await.unwrap()), vec![member.id]);
        assert_eq!(ids(store.changes().list_changes(&involving(&user)).await.unwrap()), vec![member.id]);
        assert_eq!(ids(store.changes().list_changes(&involving("user-7")).await.unwrap()), vec![block.id]);
        assert!(store.changes().list_changes(&involving("nobody")).await.unwrap().is_empty());
        // The columns dropped and added back: the migration fills them from the actions.
        store.migrate_down(1).await.unwrap();
        store.migrate_up(None).await.unwrap();
    }
});

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("attest-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("attest.db");
    let url = attest_config::DatabaseUrl::parse(&format!("sqlite://{}?mode=rwc", path.display())).unwrap();
    let store = Store::connect_url(&url, 2, std::time::Duration::from_secs(5)).await.unwrap();
    store.migrate_up(None).await.unwrap();
    connector(&store, "contoso").await;
    for file in ["attest.db", "attest.db-wal", "attest.db-shm"] {
        let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

store_test!(a_reset_cut_off_mid_way_becomes_outcome_unknown_for_a_person_to_retry_or_cancel, |store| {
    let c = connector(&store, "contoso").await.id;
    // Two users' resets (one user's second reset while the first is open would be the first).
    let reset = |user: &str, token: &str| {
        NewChange::manual(c, ChangeAction::ResetPassword { user: user.into() }, "ada@contoso.com", token)
    };
    let first = store.changes().enqueue_change(reset("u1", "reset-token-1"), false, t(0)).await.unwrap().change;
    let second = store.changes().enqueue_change(reset("u2", "reset-token-2"), false, t(0)).await.unwrap().change;
    // Both claimed in person; then the process dies, and their leases run out at t(60).
    for id in [first.id, second.id] {
        store.changes().claim_change(id, "ada (in person)", t(60), t(1)).await.unwrap().unwrap();
    }
    let resets = [ChangeKind::ResetPassword];
    assert!(store.changes().mark_outcome_unknown(&resets, t(59)).await.unwrap().is_empty(), "still being applied");
    assert!(store.changes().cancel_change(first.id, "ada", t(59)).await.is_err());
    assert_eq!(store.changes().mark_outcome_unknown(&resets, t(61)).await.unwrap(), vec![first.id, second.id]);
    let unknown = store.changes().get_change(first.id).await.unwrap();
    assert_eq!(unknown.state, ChangeState::OutcomeUnknown);
    assert!(unknown.last_error.unwrap().contains("cannot be read back"), "says what happened");
    // No worker takes it up by itself; a person retries one (a new reset) and cancels the other.
    assert!(store.changes().claim_changes("worker", 10, t(300), &resets, t(100)).await.unwrap().is_empty());
    let retried = store.changes().retry_change(first.id, "bob@contoso.com", t(101)).await.unwrap();
    assert_eq!((retried.state, retried.attempts), (ChangeState::Pending, 0));
    let cancelled = store.changes().cancel_change(second.id, "bob@contoso.com", t(102)).await.unwrap();
    assert_eq!(cancelled.state, ChangeState::Cancelled);
    let events = store
        .audit()
        .list_audit_events_matching(
            &crate::AuditFilter { action: Some("change.outcome_unknown".into()), ..Default::default() },
            crate::AuditPage::OldestAfter(0),
            10,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "each is in the audit log");
});

store_test!(many_changes_are_queued_at_once_as_one_by_one_and_each_is_audited, |store| {
    let a = store.connectors().create_connector(NewConnector::entra("a"), t(0)).await.unwrap().id;
    // One already queued by key, one already open as the same operation under another key.
    let first = store.changes().enqueue_change(member_change(a, "k0", "ada@contoso.com"), false, t(0)).await.unwrap();
    let mut same = member_change(a, "other-key", "ada@contoso.com");
    same.action = ChangeAction::AddGroupMember { group: "g1".into(), member: "u-k1".into() };
    let open = store.changes().enqueue_change(same, false, t(0)).await.unwrap();
    let before = store.audit().list_audit_events(0, 10_000).await.unwrap().len();
    let news: Vec<NewChange> = (0..2_500).map(|i| member_change(a, &format!("k{i}"), "review")).collect();
    let ids = store.changes().enqueue_changes(&news, t(1)).await.unwrap();
    assert_eq!(ids.len(), 2_500);
    assert_eq!((ids[0], ids[1]), (first.change.id, open.change.id), "the same key, the same open operation");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 2_500);
    let queued = store.changes().get_change(ids[2_499]).await.unwrap();
    assert_eq!((queued.state, queued.idempotency_key.as_str()), (ChangeState::Pending, "k2499"));
    // Each new change is in the chain as requested, and the chain holds.
    let events = store.audit().list_audit_events(0, 10_000).await.unwrap();
    assert_eq!(events.len() - before, 2_498);
    assert!(events.iter().rev().take(2_498).all(|e| e.action == "change.requested"));
    assert!(store.audit().verify_audit_chain().await.unwrap().broken.is_none());
    // Again: nothing new.
    assert_eq!(store.changes().enqueue_changes(&news, t(2)).await.unwrap(), ids);
    assert_eq!(store.audit().list_audit_events(0, 10_000).await.unwrap().len(), events.len());
});

store_test!(array_rows_carry_nulls_empty_text_and_numbers_through_unnest, |store| {
    // PostgreSQL only: the bulk writes of a campaign's start bind their batches this way.
    if store.backend() != DbBackend::Postgres {
        return;
    }
    let texts = [None, Some(""), Some("a=b"), Some("=")];
    let mut a = crate::sql::ArrayRows::new();
    a.bigint([1i64, 2, 3, i64::MAX].into_iter())
        .int([7i32, 8, 9, -1].into_iter())
        .text(["x", "", "ä\tb", "'"].into_iter())
        .optional_text(texts.into_iter());
    let mut sql = crate::sql::Sql::new(store.backend(), "SELECT ");
    let list: Vec<String> = (0..4).map(|i| format!("{} AS c{i}", a.get(i))).collect();
    sql.push(&format!("{} FROM ", list.join(", ")));
    a.from(&mut sql);
    let rows: Vec<(i64, i32, String, Option<String>)> =
        crate::sql::select_json(&store.db, sql, &["c0", "c1", "c2", "c3"]).await.unwrap();
    assert_eq!(
        rows,
        vec![
            (1, 7, "x".to_owned(), None),
            (2, 8, String::new(), Some(String::new())),
            (3, 9, "ä\tb".to_owned(), Some("a=b".to_owned())),
            (i64::MAX, -1, "'".to_owned(), Some("=".to_owned())),
        ]
    );
});
