//! Sync runs per connector, newest first, with what each did and any trouble it overcame; and
//! "Sync now", which asks for a sync in the database (any replica's scheduler runs it, once).

use attest_domain::{SyncMode, SyncRun};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::{page, when};
use crate::AppState;
use crate::error::WebError;
use crate::forms::Submitted;
use crate::roles::{Allowed, Viewer, rule};

/// Runs shown per connector.
const RUNS_SHOWN: u64 = 25;

fn run_json(run: &SyncRun) -> serde_json::Value {
    let c = &run.counts;
    let duration = run.finished_at.map(|end| (end - run.started_at).num_milliseconds() as f64 / 1000.0);
    json!({
        "id": run.id.0,
        "mode": run.mode,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": when(Some(run.started_at)),
        "finished_at": when(run.finished_at),
        "seconds": duration,
        "written": c.principals.written() + c.resources.written() + c.entitlements.written() + c.grants.written()
            + c.inherited_grants.written(),
        "counts": c,
        "requests": run.requests,
        "resource_units": run.resource_units,
        "error": run.error,
        "notes": run.notes,
    })
}

/// Sync runs of the connectors this viewer reads (also `GET /api/v1/syncs`).
pub async fn syncs_data(state: &AppState, viewer: &Viewer) -> Result<serde_json::Value, WebError> {
    let store = &state.store;
    let mut connectors = Vec::new();
    for c in store.list_connectors().await?.into_iter().filter(|c| viewer.can_read(c.id)) {
        let runs = store.list_sync_runs(c.id, RUNS_SHOWN).await?;
        let request = store.find_sync_request(c.id).await?;
        connectors.push(json!({
            "name": c.name,
            "status": c.status,
            "can_sync": viewer.can_operate(c.id),
            "sync_url": format!("/connectors/{}/sync", super::url_encode(&c.name)),
            "requested": request.map(|r| json!({"mode": r.mode, "by": r.requested_by, "at": when(Some(r.requested_at))})),
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({"connectors": connectors}))
}

/// `GET /syncs`
pub async fn syncs(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
) -> Result<Html<String>, WebError> {
    let data = syncs_data(&state, &viewer).await?;
    page(&viewer, "syncs.html", data)
}

#[derive(Debug, Deserialize)]
pub struct SyncForm {
    /// `delta` (default) or `full`.
    #[serde(default)]
    pub mode: String,
}

/// `POST /connectors/{name}/sync`: "Sync now".
pub async fn sync_now(
    State(state): State<AppState>,
    viewer: Allowed<rule::Operator>,
    Path(name): Path<String>,
    Submitted(form): Submitted<SyncForm>,
) -> Result<Response, WebError> {
    request(&state, &viewer, &name, &form).await?;
    Ok(Redirect::to("/syncs").into_response())
}

/// Asks for a sync of connector `name` and wakes this replica's scheduler.
pub async fn request(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    form: &SyncForm,
) -> Result<attest_store::SyncRequest, WebError> {
    let not_found = || WebError::NotFound(format!("no connector named '{name}'"));
    let connector = state.store.find_connector_by_name(name).await?.ok_or_else(not_found)?;
    if !viewer.can_read(connector.id) {
        return Err(not_found());
    }
    if !viewer.can_operate(connector.id) {
        return Err(WebError::Forbidden("only administrators and this connector's owners sync it".into()));
    }
    let mode = match form.mode.as_str() {
        "" | "delta" => SyncMode::Delta,
        "full" => SyncMode::Full,
        other => return Err(WebError::BadRequest(format!("sync mode '{other}' is not delta or full"))),
    };
    let requested = state.store.request_sync(connector.id, mode, &viewer.actor(), state.now()).await?;
    state.sync_wake.notify_one();
    Ok(requested)
}
