//! The readiness check: whether the app can sign in to the tenant, and, per feature, which
//! Microsoft Graph application permissions are missing from its token and whether the
//! tenant's licence allows the feature. What `attest connector check` prints.

use serde::Serialize;

use attest_domain::ConnectorStatus;

use crate::auth::AuthError;
use crate::graph::{ApiErrorKind, GraphClient, GraphError};
use crate::sync::settings::Features;

/// One permission requirement: any of these grants it; the first is the least privileged,
/// the one to ask an administrator for.
type AnyOf = &'static [&'static str];

/// A feature and the permissions it needs.
struct Feature {
    name: &'static str,
    needs: &'static [AnyOf],
}

const FEATURES: &[Feature] = &[
    Feature {
        name: "sync",
        needs: &[
            &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"],
            &[
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
                "Group.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            &["Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"],
            &[
                "RoleManagement.Read.Directory",
                "RoleManagement.Read.All",
                "Directory.Read.All",
                "RoleManagement.ReadWrite.Directory",
                "Directory.ReadWrite.All",
            ],
        ],
    },
    Feature { name: "sign-in activity", needs: &[&["AuditLog.Read.All"]] },
    Feature {
        name: "PIM",
        needs: &[&[
            "RoleEligibilitySchedule.Read.Directory",
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.All",
            "RoleEligibilitySchedule.ReadWrite.Directory",
            "RoleManagement.ReadWrite.Directory",
        ]],
    },
    Feature {
        name: "provisioning",
        needs: &[
            &["GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"],
            &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
            &["AppRoleAssignment.ReadWrite.All"],
            &["RoleManagement.ReadWrite.Directory"],
            &["RoleAssignmentSchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"],
            &["RoleEligibilitySchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"],
            &["User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
            &["User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
            &["User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
            &["Application.ReadWrite.All", "Directory.ReadWrite.All"],
            &["User.ReadWrite.All", "Directory.ReadWrite.All"],
        ],
    },
];

/// What Attest does with each permission it asks for, in the words the setup mail, the setup
/// page and the administrator guide use.
pub const PURPOSES: &[(&str, &str)] = &[
    ("User.Read.All", "read users: names, work email, manager, department, whether they are enabled or guests"),
    ("GroupMember.Read.All", "read groups, their members and owners"),
    ("Application.Read.All", "read enterprise applications, their app roles and who is assigned to them"),
    ("RoleManagement.Read.Directory", "read directory roles and who holds them"),
    (
        "RoleEligibilitySchedule.Read.Directory",
        "read who is eligible for directory roles in Privileged Identity Management",
    ),
    ("AuditLog.Read.All", "read each user's last sign-in, so reviewers see unused access"),
    ("GroupMember.ReadWrite.All", "add and remove group members: revocations from reviews, granted requests"),
    ("Group.ReadWrite.All", "add and remove group owners"),
    ("AppRoleAssignment.ReadWrite.All", "assign and remove application roles"),
    ("RoleManagement.ReadWrite.Directory", "assign and remove directory roles"),
    (
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "time-bound directory role assignments in Privileged Identity Management",
    ),
    ("RoleEligibilitySchedule.ReadWrite.Directory", "add and remove eligibility for directory roles"),
    ("User.EnableDisableAccount.All", "block and unblock a user's sign-in"),
    ("User-PasswordProfile.ReadWrite.All", "reset a user's password"),
    ("User.RevokeSessions.All", "sign a user out everywhere"),
    ("Application.ReadWrite.All", "add and remove enterprise application owners"),
    ("User.ReadWrite.All", "delete and restore users"),
];

/// What Attest does with `permission`.
pub fn purpose(permission: &str) -> &'static str {
    PURPOSES.iter().find(|(p, _)| p.eq_ignore_ascii_case(permission)).map_or("", |(_, what)| *what)
}

/// The least-privileged application permissions `features` need: the read-only set (sync,
/// sign-in activity, PIM) and the provisioning set, each without repeats.
pub fn permissions(features: &Features) -> (Vec<&'static str>, Vec<&'static str>) {
    let enabled = features.names();
    let (mut read, mut write) = (Vec::new(), Vec::new());
    for feature in FEATURES.iter().filter(|f| enabled.contains(&f.name)) {
        let set = if feature.name == "provisioning" { &mut write } else { &mut read };
        for any in feature.needs {
            if !set.contains(&any[0]) {
                set.push(any[0]);
            }
        }
    }
    (read, write)
}

/// The least-privileged permission a change of `kind` (`add_group_member`…) needs: what to
/// grant when Graph refused one for want of it.
pub fn permission_for(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "add_group_member" | "remove_group_member" => "GroupMember.ReadWrite.All",
        "add_group_owner" | "remove_group_owner" => "Group.ReadWrite.All",
        "assign_app_role" | "remove_app_role_assignment" => "AppRoleAssignment.ReadWrite.All",
        "add_app_owner" | "remove_app_owner" => "Application.ReadWrite.All",
        "add_role_assignment" | "remove_role_assignment" => "RoleManagement.ReadWrite.Directory",
        "add_role_eligibility" | "remove_role_eligibility" => "RoleEligibilitySchedule.ReadWrite.Directory",
        "add_time_bound_role_assignment" | "remove_time_bound_role_assignment" => {
            "RoleAssignmentSchedule.ReadWrite.Directory"
        }
        "revoke_sessions" => "User.RevokeSessions.All",
        "block_sign_in" | "unblock_sign_in" => "User.EnableDisableAccount.All",
        "reset_password" => "User-PasswordProfile.ReadWrite.All",
        "delete_user" | "restore_user" => "User.ReadWrite.All",
        _ => return None,
    })
}

/// The least-privileged permissions feature `name` needs (one per requirement).
pub fn needs(name: &str) -> Vec<&'static str> {
    FEATURES.iter().filter(|f| f.name == name).flat_map(|f| f.needs.iter().map(|any| any[0])).collect()
}

/// The readiness of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureReadiness {
    pub feature: &'static str,
    pub ready: bool,
    /// Least-privileged permissions to grant (application permissions, admin consent).
    pub missing_permissions: Vec<&'static str>,
    /// Other reasons the feature cannot work (licence).
    pub problems: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    /// Whether the app could get a token at all; when not, `problem` says what to do.
    pub signed_in: bool,
    pub problem: Option<String>,
    /// Whether consent must be given (again) by an administrator.
    pub needs_consent: bool,
    /// Whether an owner must act in Entra for the app to sign in (consent, a disabled app,
    /// a wrong or expired secret, Conditional Access), as opposed to a passing or unknown failure.
    #[serde(skip)]
    pub owner_must_act: bool,
    /// Permissions the token carries.
    pub granted: Vec<String>,
    pub features: Vec<FeatureReadiness>,
}

impl Readiness {
    /// Whether the features the connector cannot work without (sign-in and sync) are ready.
    pub fn can_sync(&self) -> bool {
        self.signed_in && self.features.iter().any(|f| f.feature == "sync" && f.ready)
    }

    /// Where a connector set up for `features` stands after this check, and why (in words an
    /// owner acts on). `connected_before`: an app that cannot sign in because consent is
    /// missing was connected once (consent revoked: reauthorization) or never was (awaiting
    /// consent).
    pub fn status(&self, features: &Features, connected_before: bool) -> (ConnectorStatus, Option<String>) {
        if !self.signed_in {
            let status = match (self.needs_consent, connected_before, self.owner_must_act) {
                (true, false, _) => ConnectorStatus::AwaitingConsent,
                (_, _, true) => ConnectorStatus::NeedsReauthorization,
                _ => ConnectorStatus::Error,
            };
            return (status, self.problem.clone());
        }
        let enabled = features.names();
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        for feature in self.features.iter().filter(|f| enabled.contains(&f.feature)) {
            for permission in &feature.missing_permissions {
                missing.push(format!("{permission} ({})", feature.feature));
            }
            problems.extend(feature.problems.iter().map(|p| format!("{}: {p}", feature.feature)));
        }
        if !missing.is_empty() {
            let reason = format!(
                "the app lacks {} application permission(s) an administrator must grant, then consent again: {}",
                missing.len(),
                missing.join(", ")
            );
            return (ConnectorStatus::NeedsReauthorization, Some(reason));
        }
        (ConnectorStatus::Connected, (!problems.is_empty()).then(|| problems.join("; ")))
    }
}

/// Checks the app against the tenant: gets a token, compares its `roles` with each feature's
/// needs, and probes the licence-bound features once (sign-in activity needs Entra ID P1 or
/// P2, PIM needs P2 or ID Governance).
pub async fn check(client: &GraphClient) -> Readiness {
    let token = match client.tokens().token().await {
        Ok(token) => token,
        Err(e) => {
            let needs_consent = matches!(e, AuthError::NotConsented { .. });
            return Readiness {
                signed_in: false,
                problem: Some(e.to_string()),
                needs_consent,
                owner_must_act: e.owner_must_act(),
                granted: Vec::new(),
                features: Vec::new(),
            };
        }
    };
    let granted = token.roles.clone();
    let has = |name: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(name));
    let mut features = Vec::new();
    for feature in FEATURES {
        let missing: Vec<&'static str> =
            feature.needs.iter().filter(|any| !any.iter().any(|p| has(p))).map(|any| any[0]).collect();
        features.push(FeatureReadiness {
            feature: feature.name,
            ready: missing.is_empty(),
            missing_permissions: missing,
            problems: Vec::new(),
        });
    }
    for (feature, probe) in [
        ("sign-in activity", "/users?$select=id,signInActivity&$top=1"),
        ("PIM", "/roleManagement/directory/roleEligibilitySchedules?$top=1"),
    ] {
        let Some(report) = features.iter_mut().find(|f| f.feature == feature && f.ready) else { continue };
        if let Err(e) = client.get(probe, &[]).await {
            report.ready = false;
            report.problems.push(licence_problem(&e, feature));
        }
    }
    Readiness { signed_in: true, problem: None, needs_consent: false, owner_must_act: false, granted, features }
}

fn licence_problem(e: &GraphError, feature: &str) -> String {
    let text = e.to_string();
    if e.kind() == Some(ApiErrorKind::LicenceRequired) {
        let licence = if feature == "PIM" {
            "Microsoft Entra ID P2 or Microsoft Entra ID Governance"
        } else {
            "Microsoft Entra ID P1 or P2"
        };
        format!("the tenant has no {licence} licence ({text})")
    } else {
        format!("Graph refused the check: {text}")
    }
}
