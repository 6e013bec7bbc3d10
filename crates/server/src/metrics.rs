//! `/metrics` in the Prometheus text format: request latency histograms by route (the route
//! template, never the raw path, so ids do not explode the series), and gauges read from the
//! database when scraped: changes by state, mail by state, and per connector the age of its
//! last sync.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use attest_domain::{ChangeState, MailState};
use attest_store::Store;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    /// Requests at or under each bucket's bound (not yet cumulative).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request latencies, by (method, route, status class).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    histograms: Mutex<BTreeMap<(String, String, String), Histogram>>,
}

impl HttpMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut histograms) = self.histograms.lock() else { return };
        let key = (method.to_owned(), route.to_owned(), format!("{}xx", status / 100));
        let h = histograms.entry(key).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            h.counts[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP attest_http_request_duration_seconds HTTP request latency by route.");
        let _ = writeln!(out, "# TYPE attest_http_request_duration_seconds histogram");
        let Ok(histograms) = self.histograms.lock() else { return };
        for ((method, route, status), h) in histograms.iter() {
            let labels = format!("method=\"{method}\",route=\"{}\",status=\"{status}\"", escape(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "attest_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "attest_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "attest_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "attest_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
    }
}

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
pub async fn metrics(State(state): State<AppState>) -> Response {
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
    let counts = store.count_changes_by_state().await?;
    let _ = writeln!(out, "# HELP attest_changes Changes in the queue by state.");
    let _ = writeln!(out, "# TYPE attest_changes gauge");
    for state in ChangeState::ALL {
        let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "attest_changes{{state=\"{state}\"}} {n}");
    }
    let mail = store.count_mail_by_state().await?;
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
    for connector in store.list_connectors().await? {
        if let Some(at) = connector.last_synced_at() {
            let age = (now - at).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "attest_connector_last_sync_age_seconds{{connector=\"{}\"}} {age}",
                escape(&connector.name)
            );
        }
    }
    Ok(())
}

/// Label values escape backslashes, quotes and newlines.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
