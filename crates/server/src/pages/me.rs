//! `/access`: "My access", everyone's own page. What the signed-in person holds in each
//! directory Attest syncs of their tenant, and why (directly, or through which group), with
//! when it ends; and what has been asked for them. Nobody needs a role to read their own.

use axum::extract::State;
use axum::response::Html;
use serde_json::json;

use super::directory::principal_detail;
use super::{page, with};
use crate::AppState;
use crate::api_model::MyAccess;
use crate::error::WebError;
use crate::roles::{Allowed, Viewer, rule};

/// The viewer's own access, in every connector of their tenant that has synced them.
pub async fn my_access_data(state: &AppState, viewer: &Viewer) -> Result<MyAccess, WebError> {
    let store = &state.store;
    let user = viewer.user();
    let mut found = Vec::new();
    for connector in state.caches.connectors(store).await?.iter() {
        if connector.tenant_id.as_deref() != Some(user.tenant_id.as_str()) {
            continue;
        }
        let Some(me) = store.principals().find_principal_by_external_id(connector.id, &user.object_id).await? else {
            continue;
        };
        let Some((principal, manager)) = store.directory().find_principal_with_manager(me.id).await? else {
            continue;
        };
        found.push(principal_detail(state, viewer, principal, manager).await?);
    }
    Ok(MyAccess { directories: found })
}

/// `GET /access`
pub async fn my_access(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
) -> Result<Html<String>, WebError> {
    let data = my_access_data(&state, &viewer).await?;
    let user = viewer.user();
    let mut roles = super::accounts::role_sources(&user.roles, &viewer.mapped);
    for connector in state.caches.connectors(&state.store).await?.iter() {
        if connector.is_owned_by(&user.tenant_id, &user.object_id) {
            let from = format!("named an owner of the connector {}", connector.name);
            roles.push(json!({"role": "integration owner", "from": from}));
        }
    }
    page(&viewer, "my_access.html", with(&data, json!({"attest_roles": roles}))?)
}
