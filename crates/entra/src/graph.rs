//! Graph requests with Microsoft's retry rules, and paging.
//!
//! - 429 and 503: wait `Retry-After` (fractional seconds allowed) when given, else back off
//!   exponentially with jitter. Usage keeps counting while throttled, so retrying early only
//!   makes it worse: every request this client sends waits until the latest `Retry-After` it
//!   was given has elapsed (one gate, shared by all concurrent callers).
//! - 504, other 5xx, timeouts and broken connections: back off and retry.
//! - 401: the token was refused (expired early, revoked): fetch a new one, retry once.
//! - Anything else is an answer: a [`GraphError::Api`], sorted into an [`ApiErrorKind`] once,
//!   here, with Graph's status, code, message and request id kept for messages and audit.

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
    /// Graph answered with an error; [`ApiError::kind`] says what it means.
    #[error(transparent)]
    Api(ApiError),
    /// Still failing after every attempt (throttled, unavailable or unreachable).
    #[error("Graph request failed after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("Graph sent a body that is not the JSON expected: {0}")]
    Malformed(String),
}

impl GraphError {
    /// What Graph's error answer means; `None` when there was no answer to read.
    pub fn kind(&self) -> Option<ApiErrorKind> {
        match self {
            GraphError::Api(answer) => Some(answer.kind),
            _ => None,
        }
    }

    /// Graph's id for the request it refused (what support asks for), when it answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Api(answer) => Some(&answer.request_id),
            _ => None,
        }
    }
}

/// An error answer from Graph, sorted into its [`ApiErrorKind`] when it arrives. The status,
/// code and message are kept only to be quoted (messages, audit): callers decide on the kind,
/// so Graph's codes and wordings are read in one place, here.
#[derive(Debug, thiserror::Error)]
#[error("Graph answered {status} {code}: {message} (request-id {request_id})")]
pub struct ApiError {
    kind: ApiErrorKind,
    status: u16,
    code: String,
    message: String,
    request_id: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: String, message: String, request_id: String) -> ApiError {
        ApiError { kind: ApiErrorKind::of(status, &code, &message), status, code, message, request_id }
    }

    pub fn kind(&self) -> ApiErrorKind {
        self.kind
    }
}

/// What a Graph error answer means, in the terms the connector acts on. Throttling and 5xx
/// answers are not here: the client retries them, and what still fails is
/// [`GraphError::Exhausted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 404: the object named, or one it references, does not exist (Graph does not say which).
    NotFound,
    /// 403 other than a licence refusal: the app lacks a permission or the target is protected
    /// (a dynamic, mail-enabled or role-assignable group). Graph's `Authorization_RequestDenied`
    /// does not name the permission.
    Denied,
    /// The tenant's licence does not cover the feature: `AadPremiumLicenseRequired` (PIM),
    /// `Authentication_RequestFromNonPremiumTenantOrB2CTenant` (sign-in activity), or a 403
    /// that names a licence.
    LicenceRequired,
    /// 401: Graph refused the access token even after it was renewed.
    Unauthenticated,
    /// The delta link expired or was reset: any 410, or `syncStateNotFound` / `resyncRequired`.
    DeltaExpired,
    /// Adding what is there already: the 400 "added object references already exist" (group
    /// members and owners), "already exists on the object" (app roles), `RoleAssignmentExists`.
    AlreadyExists,
    /// Removing what is not there, in the answers other than 404: the 400 "removed object
    /// references do not exist", `RoleAssignmentDoesNotExist`.
    AlreadyAbsent,
    /// The 400 for removing a group's last owner.
    LastOwner,
    /// The 400 for changing an object mastered outside Entra (on-premises AD, Exchange).
    ExternallyMastered,
    /// Any other refusal (bad request, conflict, unsupported query...).
    Other,
}

impl ApiErrorKind {
    /// Sorts one answer. Codes decide where Graph has distinct ones; the shared 400
    /// `Request_BadRequest` is told apart by its message, the only way (graph-facts §3).
    fn of(status: u16, code: &str, message: &str) -> ApiErrorKind {
        let code_is = |known: &str| code.eq_ignore_ascii_case(known);
        let says = |text: &str| status == 400 && message.contains(text);
        let names_licence = |text: &str| text.to_ascii_lowercase().contains("licen");
        if status == 410 || code_is("syncStateNotFound") || code_is("resyncRequired") {
            ApiErrorKind::DeltaExpired
        } else if status == 401 {
            ApiErrorKind::Unauthenticated
        } else if code_is("AadPremiumLicenseRequired")
            || code_is("Authentication_RequestFromNonPremiumTenantOrB2CTenant")
            || (status == 403 && (names_licence(code) || names_licence(message)))
        {
            ApiErrorKind::LicenceRequired
        } else if status == 403 {
            ApiErrorKind::Denied
        } else if status == 404 {
            ApiErrorKind::NotFound
        } else if code_is("RoleAssignmentExists")
            || says("added object references already exist")
            || says("already exists on the object")
        {
            ApiErrorKind::AlreadyExists
        } else if code_is("RoleAssignmentDoesNotExist") || says("removed object references do not exist") {
            ApiErrorKind::AlreadyAbsent
        } else if says("at least one owner") {
            ApiErrorKind::LastOwner
        } else if says("originated within an external service") {
            ApiErrorKind::ExternallyMastered
        } else {
            ApiErrorKind::Other
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
                        let request_id =
                            request_id.or_else(|| header("request-id").map(str::to_owned)).unwrap_or_default();
                        answers[i] = Some(Err(GraphError::Api(ApiError::new(status, code, message, request_id))));
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
            _ => Attempt::Failed(GraphError::Api(ApiError::new(
                status,
                code,
                message,
                graph_request_id.unwrap_or(request_id),
            ))),
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
    GraphError::Api(ApiError::new(401, "InvalidAuthenticationToken".into(), why, String::new()))
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

#[cfg(test)]
mod tests {
    use super::{ApiError, ApiErrorKind, error_fields};

    /// The error as the client builds it from Graph's status and body.
    fn answer(status: u16, body: &str) -> ApiError {
        let (code, message, request_id) = error_fields(body.as_bytes());
        ApiError::new(status, code, message, request_id.unwrap_or_default())
    }

    fn kind(status: u16, code: &str, message: &str) -> ApiErrorKind {
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        answer(status, &body.to_string()).kind()
    }

    #[test]
    fn keeps_what_graph_said_for_messages_and_audit() {
        let error = answer(
            404,
            r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'manager' does not exist or one of its queried reference-property objects are not present.","innerError":{"date":"2024-05-01T10:00:00","request-id":"94fb3b52-0000-4000-8000-000000000001","client-request-id":"c1"}}}"#,
        );
        assert_eq!(error.kind(), ApiErrorKind::NotFound);
        assert_eq!(
            error.to_string(),
            "Graph answered 404 Request_ResourceNotFound: Resource 'manager' does not exist or one of its queried reference-property objects are not present. (request-id 94fb3b52-0000-4000-8000-000000000001)"
        );
        // A body that is not Graph's envelope still yields an error, of no particular kind.
        let garbled = answer(400, "<html>Bad Request</html>");
        assert_eq!(garbled.kind(), ApiErrorKind::Other);
        assert_eq!(garbled.to_string(), "Graph answered 400 unknown: (no message) (request-id )");
    }

    #[test]
    fn not_found_is_any_404() {
        let missing = "Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present.";
        assert_eq!(kind(404, "Request_ResourceNotFound", missing), ApiErrorKind::NotFound);
        assert_eq!(kind(404, "itemNotFound", "The resource could not be found."), ApiErrorKind::NotFound);
        // An unknown path segment is a 400 whose words say "not found": not this kind.
        let segment = "Resource not found for the segment 'widgets'.";
        assert_eq!(kind(400, "BadRequest", segment), ApiErrorKind::Other);
    }

    #[test]
    fn a_403_is_denied_unless_it_names_a_licence() {
        let denied = "Insufficient privileges to complete the operation.";
        assert_eq!(kind(403, "Authorization_RequestDenied", denied), ApiErrorKind::Denied);
        assert_eq!(kind(403, "accessDenied", "Access denied."), ApiErrorKind::Denied);
        for message in [
            "Neither tenant is B2C or tenant doesn't have premium license",
            "Tenant is not a B2C tenant and doesn't have premium license",
        ] {
            let code = "Authentication_RequestFromNonPremiumTenantOrB2CTenant";
            assert_eq!(kind(403, code, message), ApiErrorKind::LicenceRequired, "{message}");
        }
        let pim = "The tenant needs a Microsoft Entra ID P2 or Microsoft Entra ID Governance license to use Privileged Identity Management.";
        assert_eq!(kind(403, "AadPremiumLicenseRequired", pim), ApiErrorKind::LicenceRequired);
        // A licence named in the words of another 403 is still a licence refusal.
        let worded = "Details for this property require a Microsoft Entra ID P1 or P2 license and the AuditLog.Read.All permission";
        assert_eq!(kind(403, "Forbidden", worded), ApiErrorKind::LicenceRequired);
    }

    #[test]
    fn a_401_is_a_refused_token() {
        let expired = "Lifetime validation failed, the token is expired.";
        assert_eq!(kind(401, "InvalidAuthenticationToken", expired), ApiErrorKind::Unauthenticated);
        // What the client reports after Graph refused a renewed token as well.
        let refused = super::token_refused("401 InvalidAuthenticationToken: Access token is empty.".into());
        assert_eq!(refused.kind(), Some(ApiErrorKind::Unauthenticated));
    }

    #[test]
    fn an_expired_delta_link_is_any_410_or_its_codes_in_any_case() {
        let expired =
            "The sync state generation is not found. The delta token is expired and data must be synchronized again.";
        assert_eq!(kind(410, "syncStateNotFound", expired), ApiErrorKind::DeltaExpired);
        // Outlook spells it in PascalCase (graph-facts §2).
        assert_eq!(kind(410, "SyncStateNotFound", "generation=1"), ApiErrorKind::DeltaExpired);
        assert_eq!(kind(400, "resyncRequired", "The delta token is no longer valid."), ApiErrorKind::DeltaExpired);
        assert_eq!(kind(410, "Gone", ""), ApiErrorKind::DeltaExpired);
    }

    #[test]
    fn adding_what_is_there_already() {
        for relation in ["members", "owners"] {
            let message = format!(
                "One or more added object references already exist for the following modified properties: '{relation}'."
            );
            assert_eq!(kind(400, "Request_BadRequest", &message), ApiErrorKind::AlreadyExists);
        }
        let app_role = "Permission being assigned already exists on the object";
        assert_eq!(kind(400, "Request_BadRequest", app_role), ApiErrorKind::AlreadyExists);
        let role = "The Role assignment already exists.";
        assert_eq!(kind(400, "RoleAssignmentExists", role), ApiErrorKind::AlreadyExists);
    }

    #[test]
    fn removing_what_is_not_there() {
        let message =
            "One or more removed object references do not exist for the following modified properties: 'members'.";
        assert_eq!(kind(400, "Request_BadRequest", message), ApiErrorKind::AlreadyAbsent);
        let role = "The Role assignment does not exist.";
        assert_eq!(kind(400, "RoleAssignmentDoesNotExist", role), ApiErrorKind::AlreadyAbsent);
    }

    #[test]
    fn the_shared_bad_request_is_told_apart_by_its_words() {
        let last_owner = "The group must have at least one owner, hence this owner cannot be removed.";
        assert_eq!(kind(400, "Request_BadRequest", last_owner), ApiErrorKind::LastOwner);
        let mastered =
            "Unable to update the specified properties for objects that have originated within an external service.";
        assert_eq!(kind(400, "Request_BadRequest", mastered), ApiErrorKind::ExternallyMastered);
        let page_size = "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.";
        assert_eq!(kind(400, "Request_BadRequest", page_size), ApiErrorKind::Other);
        let advanced = "Operator 'endsWith' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information";
        assert_eq!(kind(400, "Request_UnsupportedQuery", advanced), ApiErrorKind::Other);
        let not_allowed = "Specified HTTP method is not allowed for the request target.";
        assert_eq!(kind(405, "Request_BadRequest", not_allowed), ApiErrorKind::Other);
        // The words decide only on a 400: Graph sends them with no other status.
        assert_eq!(kind(409, "Conflict", "already exists on the object"), ApiErrorKind::Other);
    }
}
