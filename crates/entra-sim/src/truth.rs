//! `/_sim/truth`: the tenant's ground truth, so a test can compare a synced graph with the
//! tenant exactly: counts per kind plus a SHA-256 digest per kind over canonical sorted lines.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::SubsecRound;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Tenant;
use crate::state::Sim;

/// Counts and digests, per kind of fact.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Truth {
    pub tenant_id: String,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub digests: std::collections::BTreeMap<String, String>,
}

impl Truth {
    /// Canonical lines per kind: one fact per line, fields joined by `|`, lines sorted.
    pub fn lines(tenant: &Tenant) -> std::collections::BTreeMap<&'static str, Vec<String>> {
        let mut kinds: std::collections::BTreeMap<&'static str, Vec<String>> = Default::default();
        let live = |id: &str| tenant.is_live(id);
        kinds.insert(
            "users",
            tenant
                .live_users()
                .map(|u| {
                    format!("{}|{}|{}|{}", u.id, u.user_principal_name.to_lowercase(), u.account_enabled, u.user_type)
                })
                .collect(),
        );
        kinds.insert("groups", tenant.live_groups().map(|g| g.id.clone()).collect());
        kinds.insert(
            "service_principals",
            tenant
                .live_service_principals()
                .map(|s| format!("{}|{}|{}", s.id, s.app_id, s.service_principal_type))
                .collect(),
        );
        kinds.insert(
            "memberships",
            tenant
                .live_groups()
                .flat_map(|g| g.members.iter().filter(|m| live(m)).map(move |m| format!("{}|{m}", g.id)))
                .collect(),
        );
        kinds.insert(
            "group_owners",
            tenant
                .live_groups()
                .flat_map(|g| g.owners.iter().filter(|m| live(m)).map(move |m| format!("{}|{m}", g.id)))
                .collect(),
        );
        kinds.insert(
            "app_owners",
            tenant
                .live_service_principals()
                .flat_map(|s| s.owners.iter().filter(|m| live(m)).map(move |m| format!("{}|{m}", s.id)))
                .collect(),
        );
        kinds.insert(
            "app_role_assignments",
            tenant
                .app_role_assignments
                .iter()
                .filter(|a| live(&a.principal_id) && live(&a.resource_id))
                .map(|a| format!("{}|{}|{}|{}", a.id, a.resource_id, a.app_role_id, a.principal_id))
                .collect(),
        );
        kinds.insert(
            "role_assignments",
            tenant
                .role_assignments
                .iter()
                .map(|a| format!("{}|{}|{}|{}", a.id, a.role_definition_id, a.principal_id, a.directory_scope_id))
                .collect(),
        );
        kinds.insert(
            "role_eligibilities",
            tenant
                .role_eligibilities
                .iter()
                .map(|e| {
                    format!(
                        "{}|{}|{}|{}",
                        e.id,
                        e.role_definition_id,
                        e.principal_id,
                        // Graph shows whole seconds.
                        e.end.map(|t| t.trunc_subsecs(0).to_rfc3339()).unwrap_or_default()
                    )
                })
                .collect(),
        );
        for lines in kinds.values_mut() {
            lines.sort_unstable();
        }
        kinds
    }

    pub fn of(tenant: &Tenant) -> Truth {
        let mut truth = Truth { tenant_id: tenant.id.clone(), counts: Default::default(), digests: Default::default() };
        for (kind, lines) in Truth::lines(tenant) {
            let mut hasher = Sha256::new();
            for line in &lines {
                hasher.update(line.as_bytes());
                hasher.update(b"\n");
            }
            truth.counts.insert(kind.to_owned(), lines.len());
            truth.digests.insert(kind.to_owned(), hex::encode(hasher.finalize()));
        }
        truth
    }
}

pub(crate) async fn truth(State(sim): State<Arc<Sim>>) -> Json<Truth> {
    Json(sim.read(Truth::of))
}
