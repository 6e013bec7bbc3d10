//! Sync runs per connector, newest first, with what each did and any trouble it overcame; and
//! "Sync now", which asks for a sync in the database (any replica's scheduler runs it, once).

use attest_domain::{Connector, SyncMode, SyncRun};
use attest_store::SyncRequest;
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
        "written": c.written(),
        "counts": c,
        "requests": run.requests,
        "resource_units": run.resource_units,
        "error": run.error,
        "notes": run.notes,
    })
}

/// A connector's recent runs and its waiting "Sync now", as this viewer sees them.
pub struct ConnectorRuns {
    pub connector: Connector,
    pub runs: Vec<SyncRun>,
    pub requested: Option<SyncRequest>,
}

/// Recent sync runs of the connectors this viewer reads (the page and `GET /api/v1/syncs`).
pub async fn find_runs(state: &AppState, viewer: &Viewer) -> Result<Vec<ConnectorRuns>, WebError> {
    let store = &state.store;
    let mut found = Vec::new();
    for connector in store.connectors().list_connectors().await?.into_iter().filter(|c| viewer.can_read(c.id)) {
        let runs = store.syncs().list_sync_runs(connector.id, RUNS_SHOWN).await?;
        let requested = store.syncs().find_sync_request(connector.id).await?;
        found.push(ConnectorRuns { connector, runs, requested });
    }
    Ok(found)
}

/// The sync runs page's data.
pub async fn syncs_data(state: &AppState, viewer: &Viewer) -> Result<serde_json::Value, WebError> {
    let connectors: Vec<serde_json::Value> = find_runs(state, viewer)
        .await?
        .iter()
        .map(|c| {
            json!({
                "name": c.connector.name,
                "status": c.connector.status,
                "can_sync": viewer.can_operate(c.connector.id),
                "sync_url": format!("/connectors/{}/sync", super::url_encode(&c.connector.name)),
                "requested": c.requested.as_ref().map(|r| json!({"mode": r.mode, "by": r.requested_by, "at": when(Some(r.requested_at))})),
                "runs": c.runs.iter().map(run_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({"connectors": connectors}))
}

/// `GET /syncs`
pub async fn syncs(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
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
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(form): Submitted<SyncForm>,
) -> Result<Response, WebError> {
    request(&state, &viewer, &name, &form).await?;
    Ok(Redirect::to("/syncs").into_response())
}

/// Asks for a sync of connector `name` and wakes this replica's scheduler.
pub async fn request(state: &AppState, viewer: &Viewer, name: &str, form: &SyncForm) -> Result<SyncRequest, WebError> {
    let not_found = || WebError::NotFound(format!("no connector named '{name}'"));
    let connector = state.store.connectors().find_connector_by_name(name).await?.ok_or_else(not_found)?;
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
    let requested = state.store.syncs().request_sync(connector.id, mode, &viewer.actor(), state.now()).await?;
    state.sync_wake.notify_one();
    Ok(requested)
}
