//! `/metrics` in the Prometheus text format: request latency histograms by route (the route
//! template, never the raw path, so ids do not explode the series), and gauges read from the
//! database when scraped: changes by state, mail by state, and per connector the age of its
//! last sync.

use std::fmt::Write as _;
use std::time::Instant;

use attest_domain::{ChangeState, MailState};
use attest_store::Store;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::AppState;
use crate::http_metrics::escape;

/// Middleware: times every request under its matched route.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.http.observe(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`
pub async fn metrics(_: crate::roles::Anyone, State(state): State<AppState>) -> Response {
    let mut out = String::new();
    state.http.render(&mut out);
    if let Err(e) = gauges(&state.store, state.now(), &mut out).await {
        let _ = writeln!(out, "# the database could not be read: {}", e.to_string().replace('\n', " "));
    }
    axum::response::IntoResponse::into_response((
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    ))
}

async fn gauges(store: &Store, now: DateTime<Utc>, out: &mut String) -> Result<(), attest_store::StoreError> {
    let counts = store.changes().count_changes_by_state().await?;
    let _ = writeln!(out, "# HELP attest_changes Changes in the queue by state.");
    let _ = writeln!(out, "# TYPE attest_changes gauge");
    for state in ChangeState::ALL {
        let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "attest_changes{{state=\"{state}\"}} {n}");
    }
    let mail = store.outbox().count_mail_by_state().await?;
    let _ = writeln!(out, "# HELP attest_mail Mail in the outbox by state (kept: held without an SMTP server).");
    let _ = writeln!(out, "# TYPE attest_mail gauge");
    for state in MailState::ALL {
        let n = mail.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "attest_mail{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP attest_connector_last_sync_age_seconds Seconds since the connector last synced successfully."
    );
    let _ = writeln!(out, "# TYPE attest_connector_last_sync_age_seconds gauge");
    let connectors = store.connectors().list_connectors().await?;
    for connector in &connectors {
        if let Some(at) = connector.last_synced_at() {
            let age = (now - at).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "attest_connector_last_sync_age_seconds{{connector=\"{}\"}} {age}",
                escape(&connector.name)
            );
        }
    }
    // One series per connector and status, 1 for the status it is in: an alert on
    // `attest_connector_status{status="needs_reauthorization"} == 1` needs no other query.
    let _ = writeln!(out, "# HELP attest_connector_status Where each connector stands (1 for its current status).");
    let _ = writeln!(out, "# TYPE attest_connector_status gauge");
    for connector in &connectors {
        for status in ["not_connected", "awaiting_consent", "connected", "needs_reauthorization", "error"] {
            let on = u8::from(connector.status.as_str() == status);
            let _ = writeln!(
                out,
                "attest_connector_status{{connector=\"{}\",status=\"{status}\"}} {on}",
                escape(&connector.name)
            );
        }
    }
    Ok(())
}
