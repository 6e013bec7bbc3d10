//! Request latency histograms by route, kept in memory for `/metrics` (a leaf: the state
//! holds them, the middleware and the handler in [`crate::metrics`] fill and read them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

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
    pub(crate) fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut histograms) = self.histograms.lock() else { return };
        let key = (method.to_owned(), route.to_owned(), format!("{}xx", status / 100));
        let h = histograms.entry(key).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            h.counts[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    pub(crate) fn render(&self, out: &mut String) {
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

/// Label values escape backslashes, quotes and newlines.
pub(crate) fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
