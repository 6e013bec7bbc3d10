//! The audit log: filter by actor, action, target and time; export what the filter selects as
//! CSV or JSON evidence, each row with its hash and its predecessor's so anyone can re-check
//! the chain; and the chain's verification status, recomputed from every row.

use attest_domain::{AuditEvent, AuditEventDraft};

use crate::api_model::{ApiAuditEvent, AuditList, ChainStatus};
use attest_store::{AuditFilter, AuditPage};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{PAGE_SIZE, page, with};
use crate::AppState;
use crate::error::WebError;
use crate::extract::Query;
use crate::roles::{Allowed, Viewer, rule};

/// Events per database read while exporting.
const EXPORT_PAGE: u64 = 5_000;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub target_kind: String,
    #[serde(default)]
    pub target_id: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    #[serde(default)]
    pub since: String,
    /// `YYYY-MM-DD`, up to the end of that day (UTC).
    #[serde(default)]
    pub until: String,
    /// Older than this sequence number (the next page).
    pub before: Option<i64>,
}

fn day(text: &str, field: &str, next: bool) -> Result<Option<DateTime<Utc>>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| WebError::BadRequest(format!("{field}: expected a date like 2026-11-22, got '{text}'")))?;
    let date = if next { date.succ_opt().unwrap_or(date) } else { date };
    Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, WebError> {
        let text = |s: &str| Some(s.trim().chars().take(200).collect::<String>()).filter(|s| !s.is_empty());
        Ok(AuditFilter {
            actor: text(&self.actor),
            action: text(&self.action),
            target_kind: text(&self.target_kind),
            target_id: text(&self.target_id),
            since: day(&self.since, "since", false)?,
            until: day(&self.until, "until", true)?,
        })
    }

    /// The filter as a query string, for links to the next page and the exports.
    fn query_string(&self) -> String {
        super::query_string(&[
            ("actor", &self.actor),
            ("action", &self.action),
            ("target_kind", &self.target_kind),
            ("target_id", &self.target_id),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }
}

/// The chain's status, recomputed from every row.
async fn chain_status(state: &AppState) -> Result<ChainStatus, WebError> {
    let v = state.store.audit().verify_audit_chain().await?;
    Ok(ChainStatus {
        intact: v.broken.is_none(),
        checked: v.checked,
        head_seq: v.head_seq,
        broken: v.broken.map(|b| b.to_string()),
    })
}

/// One page of the log, newest first, and the chain's status (also `GET /api/v1/audit`).
pub async fn audit_data(state: &AppState, query: &AuditQuery) -> Result<AuditList, WebError> {
    let filter = query.filter()?;
    let events = state
        .store
        .audit()
        .list_audit_events_matching(&filter, AuditPage::NewestBefore(query.before), PAGE_SIZE)
        .await?;
    let next_before = (events.len() as u64 == PAGE_SIZE).then(|| events.last().map(|e| e.seq)).flatten();
    Ok(AuditList {
        events: events.iter().map(ApiAuditEvent::new).collect(),
        chain: chain_status(state).await?,
        next_before,
    })
}

/// `GET /audit`
pub async fn audit(
    viewer: Allowed<rule::AuditReader>,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Html<String>, WebError> {
    let data = audit_data(&state, &query).await?;
    let filter = json!({
        "actor": query.actor, "action": query.action, "target_kind": query.target_kind,
        "target_id": query.target_id, "since": query.since, "until": query.until,
    });
    page(&viewer, "audit.html", with(&data, json!({"filter": filter, "query_string": query.query_string()}))?)
}

/// Every event the filter selects, oldest first; the export itself is audited.
/// An export is a GET (a link people can keep) that records an audit event, so another site
/// must not be able to make a signed-in browser run one: a browser says where a request comes
/// from in `Sec-Fetch-Site`, and only Attest's own pages (`same-origin`) or the person typing
/// the address (`none`) may export. Clients that are not browsers send no such header.
fn from_attest_itself(headers: &HeaderMap) -> Result<(), WebError> {
    match headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or_default()) {
        None | Some("same-origin" | "none") => Ok(()),
        Some(_) => Err(WebError::Forbidden(
            "an export can only be started from Attest's own pages: open the audit log and export from there".into(),
        )),
    }
}

async fn export_events(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    query: &AuditQuery,
    format: &str,
) -> Result<Vec<AuditEvent>, WebError> {
    from_attest_itself(headers)?;
    let filter = query.filter()?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let batch =
            state.store.audit().list_audit_events_matching(&filter, AuditPage::OldestAfter(after), EXPORT_PAGE).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let full = batch.len() as u64 == EXPORT_PAGE;
        events.extend(batch);
        if !full {
            break;
        }
    }
    state
        .store
        .audit()
        .append_audit_event(AuditEventDraft {
            occurred_at: state.now(),
            actor: viewer.actor(),
            action: "audit.exported".into(),
            target_kind: None,
            target_id: None,
            details: json!({
                "format": format,
                "filter": query.query_string(),
                "events": events.len(),
                "actor_id": viewer.actor_id(),
            }),
        })
        .await?;
    Ok(events)
}

pub(crate) fn download(body: String, content_type: &'static str, name: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /audit/export.csv`
pub async fn export_csv(
    viewer: Allowed<rule::AuditReader>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let events = export_events(&state, &viewer, &headers, &query, "csv").await?;
    let mut out = String::from("seq,occurred_at,actor,action,target_kind,target_id,details,prev_hash,hash\r\n");
    for e in &events {
        let fields = [
            e.seq.to_string(),
            e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            e.actor.clone(),
            e.action.clone(),
            e.target_kind.clone().unwrap_or_default(),
            e.target_id.clone().unwrap_or_default(),
            e.details.clone(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        out.push_str(&fields.iter().map(|f| attest_domain::csv::field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    Ok(download(out, "text/csv; charset=utf-8", "attest-audit.csv"))
}

/// `GET /audit/export.json`: the events and the chain's status when exported.
pub async fn export_json(
    viewer: Allowed<rule::AuditReader>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let events = export_events(&state, &viewer, &headers, &query, "json").await?;
    let body = json!({
        "exported_at": state.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "exported_by": viewer.actor(),
        "filter": query.query_string(),
        "chain": chain_status(&state).await?,
        "events": events.iter().map(ApiAuditEvent::new).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&body).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(download(text, "application/json", "attest-audit.json"))
}
