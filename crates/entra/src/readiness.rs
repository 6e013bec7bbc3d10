//! The readiness check: whether the app can sign in to the tenant, and, per feature, which
//! Microsoft Graph application permissions are missing from its token and whether the
//! tenant's licence allows the feature. What `attest connector check` prints.

use serde::Serialize;

use crate::auth::AuthError;
use crate::graph::{ApiErrorKind, GraphClient, GraphError};

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
    /// Permissions the token carries.
    pub granted: Vec<String>,
    pub features: Vec<FeatureReadiness>,
}

impl Readiness {
    /// Whether the features the connector cannot work without (sign-in and sync) are ready.
    pub fn can_sync(&self) -> bool {
        self.signed_in && self.features.iter().any(|f| f.feature == "sync" && f.ready)
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
    Readiness { signed_in: true, problem: None, needs_consent: false, granted, features }
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
