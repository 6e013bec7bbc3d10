//! Graph requests with Microsoft's retry rules, and paging.
//!
//! - 429 and 503: wait `Retry-After` (fractional seconds allowed) when given, else back off
//!   exponentially with jitter. Usage keeps counting while throttled, so retrying early only
//!   makes it worse: every request this client sends waits until the latest `Retry-After` it
//!   was given has elapsed (one gate, shared by all concurrent callers).
//! - 504, other 5xx, timeouts and broken connections: back off and retry.
//! - 401: the token was refused (expired early, revoked): fetch a new one, retry once.
//! - Anything else is an answer: a [`GraphError::Api`] with Graph's code and request id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::auth::{AuthError, TokenSource};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff; doubled each retry, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(100),
        }
    }
}

/// Why a Graph request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Graph answered with an error.
    #[error("Graph answered {status} {code}: {message} (request-id {request_id})")]
    Api { status: u16, code: String, message: String, request_id: String },
    /// Still failing after every attempt (throttled, unavailable or unreachable).
    #[error("Graph request failed after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("Graph sent a body that is not the JSON expected: {0}")]
    Malformed(String),
}

impl GraphError {
    /// Graph's error code (`Request_ResourceNotFound`, `syncStateNotFound`...), for answers.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What one attempt came to.
enum Attempt {
    /// The answer and Graph's `request-id` for it.
    Done(Value, String),
    /// Try again after this long (or after the backoff, when `None`).
    Retry {
        wait: Option<Duration>,
        why: String,
    },
    TokenRefused(String),
    Failed(GraphError),
}

/// A Graph client for one tenant and app.
pub struct GraphClient {
    http: reqwest::Client,
    /// `https://graph.microsoft.com/v1.0` or its equivalent.
    base: String,
    tokens: TokenSource,
    policy: RetryPolicy,
    /// No request leaves before this instant (the latest `Retry-After` seen).
    gate: Mutex<Option<Instant>>,
    /// Jitter and client-request-ids; not security-relevant.
    rng: std::sync::Mutex<SmallRng>,
    usage: Usage,
}

/// Requests sent and the resource units Graph said they cost (`x-ms-resource-unit`), counted
/// over the client's life; a sync reads them before and after to record its own cost.
#[derive(Debug, Default)]
struct Usage {
    requests: AtomicU64,
    resource_units: AtomicU64,
    throttled: AtomicU64,
    unavailable: AtomicU64,
    broken: AtomicU64,
    token_renewals: AtomicU64,
    longest_wait_ms: AtomicU64,
}

/// A snapshot of a client's usage counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCount {
    /// HTTP requests sent (a `$batch` counts once, however many items it carries).
    pub requests: u64,
    /// Resource units charged, batch items included.
    pub resource_units: u64,
    /// Answers of 429 (requests or batch items), each retried after its `Retry-After`.
    pub throttled: u64,
    /// Answers of 500-599 (503 included), each retried.
    pub unavailable: u64,
    /// Requests that got no complete answer (connection refused or dropped, timeout), retried.
    pub broken: u64,
    /// Tokens Graph refused (expired or revoked early) and that were renewed.
    pub token_renewals: u64,
    /// The longest single wait (a `Retry-After` or a backoff), in milliseconds, over the client's
    /// life: not a difference, so `since` keeps the later value.
    pub longest_wait_ms: u64,
}

impl UsageCount {
    /// The usage between an earlier snapshot and this one.
    pub fn since(self, earlier: UsageCount) -> UsageCount {
        UsageCount {
            requests: self.requests.saturating_sub(earlier.requests),
            resource_units: self.resource_units.saturating_sub(earlier.resource_units),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            unavailable: self.unavailable.saturating_sub(earlier.unavailable),
            broken: self.broken.saturating_sub(earlier.broken),
            token_renewals: self.token_renewals.saturating_sub(earlier.token_renewals),
            longest_wait_ms: self.longest_wait_ms,
        }
    }

    /// What went wrong and was overcome, for a sync's notes; `None` when nothing did.
    pub fn trouble(&self) -> Option<String> {
        let mut parts = Vec::new();
        for (count, what) in [
            (self.throttled, "throttled (429)"),
            (self.unavailable, "answered 5xx (503 unavailable, 504 gateway timeout...)"),
            (self.broken, "got no complete answer (connection dropped or refused, timeout)"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {what}"));
            }
        }
        if self.token_renewals > 0 {
            parts.push(format!("{} access token(s) refused before their expiry and renewed", self.token_renewals));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "Graph trouble overcome by retrying: {}; longest wait {:.1} s; no request was sent before a Retry-After elapsed",
                parts.join(", "),
                self.longest_wait_ms as f64 / 1000.0
            )
        })
    }
}

/// Most items Graph takes in one `$batch`.
pub const BATCH_LIMIT: usize = 20;

impl GraphClient {
    pub fn new(http: reqwest::Client, tokens: TokenSource, policy: RetryPolicy) -> GraphClient {
        let base = format!("{}/v1.0", tokens.credentials().graph_url.trim_end_matches('/'));
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let rng = std::sync::Mutex::new(SmallRng::seed_from_u64(seed as u64));
        GraphClient { http, base, tokens, policy, gate: Mutex::new(None), rng, usage: Usage::default() }
    }

    /// A client whose tokens come from `credentials`, over one HTTP client shared with the
    /// token requests.
    pub fn connect(http: reqwest::Client, credentials: crate::Credentials, policy: RetryPolicy) -> GraphClient {
        GraphClient::new(http.clone(), TokenSource::new(http, credentials), policy)
    }

    /// Requests and resource units so far.
    pub fn usage(&self) -> UsageCount {
        let u = &self.usage;
        UsageCount {
            requests: u.requests.load(Ordering::Relaxed),
            resource_units: u.resource_units.load(Ordering::Relaxed),
            throttled: u.throttled.load(Ordering::Relaxed),
            unavailable: u.unavailable.load(Ordering::Relaxed),
            broken: u.broken.load(Ordering::Relaxed),
            token_renewals: u.token_renewals.load(Ordering::Relaxed),
            longest_wait_ms: u.longest_wait_ms.load(Ordering::Relaxed),
        }
    }

    /// `https://graph.microsoft.com/v1.0` or its equivalent in this client's cloud.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// GETs `path_or_url` (a path under `/v1.0`, or a full nextLink) and returns its JSON.
    pub async fn get(&self, path_or_url: &str, headers: &[(&str, &str)]) -> Result<Value, GraphError> {
        self.send(reqwest::Method::GET, path_or_url, None, headers).await
    }

    /// Sends one request with Microsoft's retry rules and returns the JSON answer (`Null` for
    /// an empty body). Only idempotent requests may be retried blindly: callers send writes
    /// whose repetition is harmless or detected.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path_or_url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, GraphError> {
        self.send_traced(method, path_or_url, body, headers).await.map(|(value, _)| value)
    }

    /// Like [`GraphClient::send`], with Graph's `request-id` for the answer (for audit trails).
    pub async fn send_traced(
        &self,
        method: reqwest::Method,
        path_or_url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(Value, String), GraphError> {
        let url = self.url(path_or_url);
        let mut refreshed = false;
        let mut last = String::new();
        let mut attempt = 0;
        while attempt < self.policy.attempts {
            attempt += 1;
            self.wait_for_gate().await;
            let token = self.tokens.token().await?;
            match self.once(&method, &url, body, headers, &token.access_token).await {
                Attempt::Done(value, request_id) => return Ok((value, request_id)),
                Attempt::Failed(e) => return Err(e),
                Attempt::TokenRefused(why) if !refreshed => {
                    // Not a retry of the same thing: the token was bad, not the service.
                    refreshed = true;
                    attempt -= 1;
                    self.usage.token_renewals.fetch_add(1, Ordering::Relaxed);
                    self.tokens.invalidate(&token.access_token).await;
                    last = why;
                }
                Attempt::TokenRefused(why) => return Err(token_refused(why)),
                Attempt::Retry { wait, why } => {
                    tracing::debug!(%url, attempt, %why, "Graph request will be retried");
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    self.close_gate_for(wait).await;
                    last = why;
                }
            }
        }
        Err(GraphError::Exhausted { attempts: self.policy.attempts, last })
    }

    /// GETs up to [`BATCH_LIMIT`] paths in one `$batch` request and returns each answer in
    /// the order asked. Items are authorised, charged and throttled one by one, so each
    /// failed item is retried on its own merits: throttled and unavailable ones after the
    /// longest `Retry-After` given (behind the same gate as every other request), the rest
    /// answered as errors. Graph promises no order of the responses; they are matched by id.
    pub async fn get_batch(&self, paths: &[String]) -> Vec<Result<Value, GraphError>> {
        let mut answers: Vec<Option<Result<Value, GraphError>>> = paths.iter().map(|_| None).collect();
        let mut refreshed = false;
        let mut attempt = 0;
        let mut last = String::new();
        while attempt < self.policy.attempts {
            let pending: Vec<usize> = (0..paths.len()).filter(|i| answers[*i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            attempt += 1;
            let requests: Vec<Value> = pending
                .iter()
                .map(|i| serde_json::json!({"id": i.to_string(), "method": "GET", "url": paths[*i]}))
                .collect();
            let body = serde_json::json!({ "requests": requests });
            let reply = match self.send(reqwest::Method::POST, "/$batch", Some(&body), &[]).await {
                Ok(reply) => reply,
                Err(e) => {
                    let message = e.to_string();
                    for i in pending {
                        answers[i] = Some(Err(GraphError::Exhausted { attempts: attempt, last: message.clone() }));
                    }
                    break;
                }
            };
            let responses = reply.get("responses").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut wait: Option<Duration> = None;
            let mut retry_backoff = false;
            let mut token_refused = false;
            for response in responses {
                let Some(i) = response["id"].as_str().and_then(|id| id.parse::<usize>().ok()) else { continue };
                if i >= paths.len() || answers[i].is_some() {
                    continue;
                }
                let status = u16::try_from(response["status"].as_u64().unwrap_or(0)).unwrap_or(0);
                let headers = &response["headers"];
                let header = |name: &str| {
                    headers.as_object().and_then(|h| {
                        h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
                    })
                };
                if let Some(units) = header("x-ms-resource-unit").and_then(|v| v.trim().parse::<u64>().ok()) {
                    self.usage.resource_units.fetch_add(units, Ordering::Relaxed);
                }
                let body = response.get("body").cloned().unwrap_or(Value::Null);
                match status {
                    200..=299 => answers[i] = Some(Ok(body)),
                    429 | 503 | 500..=599 | 0 => {
                        self.count_refusal(status);
                        last = format!("{status} {}", body["error"]["code"].as_str().unwrap_or("unknown"));
                        match header("retry-after").and_then(parse_retry_after) {
                            Some(after) => wait = Some(wait.map_or(after, |w| w.max(after))),
                            None => retry_backoff = true,
                        }
                    }
                    401 if !refreshed => token_refused = true,
                    _ => {
                        let (code, message, request_id) = error_fields_json(&body);
                        answers[i] = Some(Err(GraphError::Api {
                            status,
                            code,
                            message,
                            request_id: request_id
                                .or_else(|| header("request-id").map(str::to_owned))
                                .unwrap_or_default(),
                        }));
                    }
                }
            }
            if token_refused {
                refreshed = true;
                self.usage.token_renewals.fetch_add(1, Ordering::Relaxed);
                if let Ok(token) = self.tokens.token().await {
                    self.tokens.invalidate(&token.access_token).await;
                }
            }
            if let Some(wait) = wait.or_else(|| retry_backoff.then(|| self.backoff(attempt))) {
                self.close_gate_for(wait).await;
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(GraphError::Exhausted { attempts: attempt, last: last.clone() })))
            .collect()
    }

    /// Every item of a collection, page by page: `each` gets each page's `value`.
    /// Returns the last page (its `@odata.deltaLink`, for delta queries).
    pub async fn pages(
        &self,
        first: &str,
        headers: &[(&str, &str)],
        mut each: impl FnMut(Vec<Value>),
    ) -> Result<Value, GraphError> {
        let mut url = first.to_owned();
        loop {
            let mut page = self.get(&url, headers).await?;
            let items = match page.get_mut("value").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => return Err(GraphError::Malformed(format!("no `value` array in a page of {first}"))),
            };
            each(items);
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = next.to_owned(),
                None => return Ok(page),
            }
        }
    }

    async fn once(
        &self,
        method: &reqwest::Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        token: &str,
    ) -> Attempt {
        let bytes: [u8; 16] = self.rng.lock().map(|mut r| r.random()).unwrap_or_default();
        let request_id = uuid::Builder::from_random_bytes(bytes).into_uuid().to_string();
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token)
            .header("client-request-id", &request_id)
            .timeout(self.policy.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.usage.requests.fetch_add(1, Ordering::Relaxed);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.usage.broken.fetch_add(1, Ordering::Relaxed);
                return Attempt::Retry { wait: None, why: format!("request failed: {e}") };
            }
        };
        if let Some(units) = response
            .headers()
            .get("x-ms-resource-unit")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            self.usage.resource_units.fetch_add(units, Ordering::Relaxed);
        }
        let status = response.status().as_u16();
        // Graph's own id for the request (what support asks for); ours when it sends none.
        let answered_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| request_id.clone(), str::to_owned);
        let retry_after =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                self.usage.broken.fetch_add(1, Ordering::Relaxed);
                return Attempt::Retry { wait: None, why: format!("response broken off: {e}") };
            }
        };
        if (200..300).contains(&status) {
            if body.is_empty() {
                return Attempt::Done(Value::Null, answered_id);
            }
            return match serde_json::from_slice(&body) {
                Ok(value) => Attempt::Done(value, answered_id),
                Err(e) => Attempt::Failed(GraphError::Malformed(format!("{url}: {e}"))),
            };
        }
        let (code, message, graph_request_id) = error_fields(&body);
        let why = format!("{status} {code}: {message}");
        self.count_refusal(status);
        match status {
            429 | 503 => Attempt::Retry { wait: retry_after, why },
            401 => Attempt::TokenRefused(why),
            500..=599 => Attempt::Retry { wait: None, why },
            _ => Attempt::Failed(GraphError::Api {
                status,
                code,
                message,
                request_id: graph_request_id.unwrap_or(request_id),
            }),
        }
    }

    /// Exponential backoff with full jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.policy.max_delay);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
        let jittered = self.rng.lock().map(|mut r| r.random_range(millis / 2..=millis)).unwrap_or(millis);
        Duration::from_millis(jittered)
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") { path_or_url.to_owned() } else { format!("{}{path_or_url}", self.base) }
    }

    /// Counts a throttled or unavailable answer (other statuses are not trouble to overcome).
    fn count_refusal(&self, status: u16) {
        match status {
            429 => self.usage.throttled.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.usage.unavailable.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    async fn close_gate_for(&self, wait: Duration) {
        let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.usage.longest_wait_ms.fetch_max(millis, Ordering::Relaxed);
        let until = Instant::now() + wait;
        let mut gate = self.gate.lock().await;
        *gate = Some(gate.map_or(until, |g| g.max(until)));
    }

    async fn wait_for_gate(&self) {
        loop {
            let until = *self.gate.lock().await;
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until.into()).await,
                _ => return,
            }
        }
    }
}

/// `Retry-After` in (possibly fractional) seconds.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

fn token_refused(why: String) -> GraphError {
    GraphError::Api { status: 401, code: "InvalidAuthenticationToken".into(), message: why, request_id: String::new() }
}

/// Graph's error envelope: code, message and request id, as far as the body has them.
fn error_fields(body: &[u8]) -> (String, String, Option<String>) {
    error_fields_json(&serde_json::from_slice(body).unwrap_or(Value::Null))
}

fn error_fields_json(value: &Value) -> (String, String, Option<String>) {
    let error = &value["error"];
    let code = error["code"].as_str().unwrap_or("unknown").to_owned();
    let message = error["message"].as_str().unwrap_or("(no message)").to_owned();
    let request_id = error["innerError"]["request-id"].as_str().map(str::to_owned);
    (code, message, request_id)
}
