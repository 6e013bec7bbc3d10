//! Every change kind against the simulator: applied (the tenant shows it, the read-back agrees),
//! applied again (a no-op that says so), reversed, reversed again; and the refusals that must
//! say what to do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use attest_domain::{ApplyResult, ChangeAction};
use attest_domain::{Clock as _, SystemClock};
use attest_entra_sim::{ClientApp, SimHandle, SimOptions, TenantSpec, generate, spawn_with};

use attest_connector::{Applied, ApplyError};

use crate::{GraphClient, RetryPolicy};

async fn sim(app: ClientApp) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = TenantSpec { users: 300, groups: 30, apps: 6, assignments_per_app: 10, seed: 31 };
    spawn_with(listener, generate(spec), app, SimOptions::default()).await.unwrap()
}

fn client(sim: &SimHandle) -> GraphClient {
    let policy = RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    };
    GraphClient::connect(attest_http::client().unwrap(), crate::tests::sim_credentials(sim), policy)
}

/// A live, enabled member user with no directory role, and a writable security group, an
/// application with roles and a directory role that user holds nothing of.
struct Targets {
    user: String,
    group: String,
    app: String,
    app_role: String,
    role: String,
}

fn targets(sim: &SimHandle) -> Targets {
    sim.sim.read(|t| {
        let group = t.live_groups().find(|g| g.accepts_membership_writes()).expect("a writable group");
        let app = t.service_principals.iter().find(|s| !s.app_roles.is_empty() && s.deleted.is_none()).unwrap();
        let user = t
            .live_users()
            .find(|u| {
                u.account_enabled
                    && u.user_type == "Member"
                    && !group.members.contains(&u.id)
                    && !group.owners.contains(&u.id)
                    && !app.owners.contains(&u.id)
                    && !t.app_role_assignments.iter().any(|a| a.principal_id == u.id && a.resource_id == app.id)
                    && !t.role_assignments.iter().any(|a| a.principal_id == u.id)
                    && !t.role_eligibilities.iter().any(|e| e.principal_id == u.id)
            })
            .unwrap();
        Targets {
            user: user.id.clone(),
            group: group.id.clone(),
            app: app.id.clone(),
            app_role: app.app_roles[0].id.clone(),
            role: t.role_definitions.iter().find(|d| d.display_name == "Helpdesk Administrator").unwrap().id.clone(),
        }
    })
}

async fn apply(c: &GraphClient, action: &ChangeAction) -> ApplyResult {
    c.apply(action, SystemClock.now()).await.unwrap_or_else(|e| panic!("{action:?}: {e}")).result
}

/// Applies `add`, checks, re-applies; then `remove`, checks, re-applies. `holds` reads the
/// simulator's own state.
async fn round_trip(
    sim: &SimHandle,
    c: &GraphClient,
    add: ChangeAction,
    remove: ChangeAction,
    holds: impl Fn(&attest_entra_sim::Tenant) -> bool,
) {
    assert!(!sim.sim.read(&holds), "{add:?}: not in place before");
    assert_eq!(apply(c, &add).await, ApplyResult::Applied, "{add:?}");
    assert!(sim.sim.read(&holds), "{add:?}: the tenant shows it");
    assert_eq!(c.verify(&add).await.unwrap(), Some(true), "{add:?}: read back");
    assert_eq!(apply(c, &add).await, ApplyResult::AlreadyInState, "{add:?} again");
    assert_eq!(apply(c, &remove).await, ApplyResult::Applied, "{remove:?}");
    assert!(!sim.sim.read(&holds), "{remove:?}: the tenant shows it");
    assert_eq!(c.verify(&remove).await.unwrap(), Some(true), "{remove:?}: read back");
    assert_eq!(apply(c, &remove).await, ApplyResult::TargetNotFound, "{remove:?} again");
}

#[tokio::test]
async fn every_access_change_applies_repeats_as_a_no_op_and_reverses() {
    let sim = sim(ClientApp::attest(31).with_provisioning()).await;
    let c = client(&sim);
    let Targets { user, group, app, app_role, role } = targets(&sim);
    let (u, g) = (user.clone(), group.clone());
    round_trip(
        &sim,
        &c,
        ChangeAction::AddGroupMember { group: g.clone(), member: u.clone() },
        ChangeAction::RemoveGroupMember { group: g.clone(), member: u.clone() },
        |t| t.group(&group).unwrap().members.contains(&user),
    )
    .await;
    round_trip(
        &sim,
        &c,
        ChangeAction::AddGroupOwner { group: g.clone(), owner: u.clone() },
        ChangeAction::RemoveGroupOwner { group: g.clone(), owner: u.clone() },
        |t| t.group(&group).unwrap().owners.contains(&user),
    )
    .await;
    round_trip(
        &sim,
        &c,
        ChangeAction::AddAppOwner { app: app.clone(), owner: u.clone() },
        ChangeAction::RemoveAppOwner { app: app.clone(), owner: u.clone() },
        |t| t.service_principal(&app).unwrap().owners.contains(&user),
    )
    .await;
    let assigned = |t: &attest_entra_sim::Tenant| {
        t.app_role_assignments
            .iter()
            .any(|a| a.principal_id == user && a.resource_id == app && a.app_role_id == app_role)
    };
    round_trip(
        &sim,
        &c,
        ChangeAction::AssignAppRole { app: app.clone(), principal: u.clone(), app_role: app_role.clone() },
        ChangeAction::RemoveAppRoleAssignment {
            app: app.clone(),
            principal: u.clone(),
            app_role: app_role.clone(),
            assignment_id: None,
        },
        assigned,
    )
    .await;
    // Removal by assignment id, as a review's revocation does (the id is what the sync stored).
    let created = c
        .apply(
            &ChangeAction::AssignAppRole { app: app.clone(), principal: u.clone(), app_role: app_role.clone() },
            SystemClock.now(),
        )
        .await
        .unwrap();
    let id = created.details["assignment_id"].as_str().unwrap().to_owned();
    let by_id = ChangeAction::RemoveAppRoleAssignment {
        app: app.clone(),
        principal: u.clone(),
        app_role: app_role.clone(),
        assignment_id: Some(id),
    };
    assert_eq!(apply(&c, &by_id).await, ApplyResult::Applied);
    assert!(!sim.sim.read(assigned));
    assert_eq!(apply(&c, &by_id).await, ApplyResult::TargetNotFound);

    let scope = "/".to_owned();
    let active = |t: &attest_entra_sim::Tenant| {
        t.role_assignments.iter().any(|a| a.principal_id == user && a.role_definition_id == role)
    };
    round_trip(
        &sim,
        &c,
        ChangeAction::AddRoleAssignment { role: role.clone(), principal: u.clone(), scope: scope.clone() },
        ChangeAction::RemoveRoleAssignment {
            role: role.clone(),
            principal: u.clone(),
            scope: scope.clone(),
            assignment_id: None,
        },
        active,
    )
    .await;
    let until = SystemClock.now() + chrono::Duration::days(30);
    round_trip(
        &sim,
        &c,
        ChangeAction::AddTimeBoundRoleAssignment {
            role: role.clone(),
            principal: u.clone(),
            scope: scope.clone(),
            until,
        },
        ChangeAction::RemoveTimeBoundRoleAssignment { role: role.clone(), principal: u.clone(), scope: scope.clone() },
        active,
    )
    .await;
    round_trip(
        &sim,
        &c,
        ChangeAction::AddRoleEligibility {
            role: role.clone(),
            principal: u.clone(),
            scope: scope.clone(),
            until: Some(until),
        },
        ChangeAction::RemoveRoleEligibility { role: role.clone(), principal: u.clone(), scope },
        |t| t.role_eligibilities.iter().any(|e| e.principal_id == user && e.role_definition_id == role),
    )
    .await;
}

#[tokio::test]
async fn user_actions_apply_and_repeat_safely() {
    let sim = sim(ClientApp::attest(31).with_provisioning()).await;
    let c = client(&sim);
    let user = targets(&sim).user;
    let u = || user.clone();
    let enabled = |t: &attest_entra_sim::Tenant| t.live_user(&user).map(|x| x.account_enabled);

    assert_eq!(apply(&c, &ChangeAction::BlockSignIn { user: u() }).await, ApplyResult::Applied);
    assert_eq!(sim.sim.read(enabled), Some(false));
    assert_eq!(c.verify(&ChangeAction::BlockSignIn { user: u() }).await.unwrap(), Some(true));
    assert_eq!(apply(&c, &ChangeAction::BlockSignIn { user: u() }).await, ApplyResult::AlreadyInState);
    assert_eq!(apply(&c, &ChangeAction::UnblockSignIn { user: u() }).await, ApplyResult::Applied);
    assert_eq!(sim.sim.read(enabled), Some(true));
    assert_eq!(apply(&c, &ChangeAction::UnblockSignIn { user: u() }).await, ApplyResult::AlreadyInState);

    assert_eq!(apply(&c, &ChangeAction::RevokeSessions { user: u() }).await, ApplyResult::Applied);
    assert!(sim.sim.read(|t| t.live_user(&user).unwrap().sign_in_sessions_valid_from.is_some()));

    let reset = c.apply(&ChangeAction::ResetPassword { user: u() }, SystemClock.now()).await.unwrap();
    assert_eq!(reset.result, ApplyResult::Applied);
    let password = reset.secret.as_ref().unwrap().expose().to_owned();
    assert!(password.len() >= 12);
    assert!(!format!("{reset:?}").contains(&password), "the password never appears in Debug output");
    assert!(sim.sim.read(|t| t.live_user(&user).unwrap().force_change_password_next_sign_in));

    assert_eq!(apply(&c, &ChangeAction::DeleteUser { user: u() }).await, ApplyResult::Applied);
    assert_eq!(sim.sim.read(enabled), None, "soft-deleted");
    assert_eq!(c.verify(&ChangeAction::DeleteUser { user: u() }).await.unwrap(), Some(true));
    assert_eq!(apply(&c, &ChangeAction::DeleteUser { user: u() }).await, ApplyResult::TargetNotFound);
    assert_eq!(apply(&c, &ChangeAction::RestoreUser { user: u() }).await, ApplyResult::Applied);
    assert_eq!(sim.sim.read(enabled), Some(true));
    assert_eq!(c.verify(&ChangeAction::RestoreUser { user: u() }).await.unwrap(), Some(true));
    assert_eq!(apply(&c, &ChangeAction::RestoreUser { user: u() }).await, ApplyResult::AlreadyInState);
}

fn permanent(result: Result<Applied, ApplyError>) -> String {
    match result {
        Err(ApplyError::Permanent { message, .. }) => message,
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_say_what_to_do() {
    let sim = sim(ClientApp::attest(31).with_provisioning()).await;
    let c = client(&sim);
    let user = targets(&sim).user;
    let (dynamic, mail, owned) = sim.sim.read(|t| {
        let live = t.groups.iter().filter(|g| g.deleted.is_none());
        let dynamic = live.clone().find(|g| g.is_dynamic()).unwrap().id.clone();
        let mail = live.clone().find(|g| g.mail_enabled && g.group_types.is_empty()).unwrap().id.clone();
        let owned = live
            .clone()
            .find(|g| {
                g.owners.len() == 1 && !g.is_dynamic() && !g.mail_enabled && g.on_premises_sync_enabled != Some(true)
            })
            .map(|g| (g.id.clone(), g.owners[0].clone()));
        (dynamic, mail, owned)
    });
    let add = |group: &str| ChangeAction::AddGroupMember { group: group.to_owned(), member: user.clone() };
    let message = permanent(c.apply(&add(&dynamic), SystemClock.now()).await);
    assert!(message.contains("dynamic group") && message.contains("rule"), "{message}");
    let message = permanent(c.apply(&add(&mail), SystemClock.now()).await);
    assert!(message.contains("Exchange Online"), "{message}");
    if let Some((group, owner)) = owned {
        let message = permanent(c.apply(&ChangeAction::RemoveGroupOwner { group, owner }, SystemClock.now()).await);
        assert!(message.contains("last owner"), "{message}");
    }
    let missing =
        ChangeAction::AddGroupMember { group: "00000000-0000-0000-0000-00000000dead".into(), member: user.clone() };
    assert!(permanent(c.apply(&missing, SystemClock.now()).await).contains("does not exist"));

    // Without the write permissions consented: the missing permission is named.
    let read_only = sim_with_app(ClientApp::attest(32)).await;
    let target = targets(&read_only);
    let c = client(&read_only);
    let message = permanent(
        c.apply(&ChangeAction::AddGroupMember { group: target.group, member: target.user.clone() }, SystemClock.now())
            .await,
    );
    assert!(message.contains("GroupMember.ReadWrite.All"), "{message}");

    // PIM without the licence: not supported, said plainly.
    let unlicensed = sim_with_app(ClientApp::attest(33).with_provisioning()).await;
    unlicensed.sim.write(|t| t.non_premium = true);
    let target = targets(&unlicensed);
    let c = client(&unlicensed);
    let eligibility = ChangeAction::AddRoleEligibility {
        role: target.role.clone(),
        principal: target.user.clone(),
        scope: "/".into(),
        until: None,
    };
    match c.apply(&eligibility, SystemClock.now()).await {
        Err(ApplyError::NotSupported(message)) => assert!(message.contains("P2"), "{message}"),
        other => panic!("expected not supported, got {other:?}"),
    }
    // A time-bound active role without PIM: Attest assigns it itself (Entra keeps no end, the
    // access sweep removes it), and removes it as a plain assignment.
    let now = SystemClock.now();
    let (role, user) = (target.role.clone(), target.user.clone());
    let held = |sim: &SimHandle| {
        sim.sim.read(|t| {
            t.role_assignments.iter().find(|a| a.role_definition_id == role && a.principal_id == user).map(|a| a.end)
        })
    };
    let timed = ChangeAction::AddTimeBoundRoleAssignment {
        role: target.role.clone(),
        principal: target.user.clone(),
        scope: "/".into(),
        until: now + chrono::Duration::hours(8),
    };
    let done = c.apply(&timed, now).await.unwrap();
    assert_eq!(done.details["without_pim"], true, "{:?}", done.details);
    assert_eq!(held(&unlicensed), Some(None), "assigned, with no end in Entra");
    assert_eq!(c.verify(&timed).await.unwrap(), Some(true));
    let end = ChangeAction::RemoveTimeBoundRoleAssignment {
        role: target.role.clone(),
        principal: target.user.clone(),
        scope: "/".into(),
    };
    c.apply(&end, now).await.unwrap();
    assert_eq!(held(&unlicensed), None, "removed");
}

async fn sim_with_app(app: ClientApp) -> SimHandle {
    sim(app).await
}
