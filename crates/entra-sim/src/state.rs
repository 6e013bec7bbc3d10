//! The simulator's state: the tenant, tokens, consent, throttling buckets, fault injection and
//! the request log, with the operations the handlers and the plumbing use. Locks are held only
//! for in-memory work, never across an await.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::consent::Consent;
use crate::faults::{FaultRecord, FaultRule, Injector};
use crate::identity::IssuedToken;
use crate::keys::SigningKey;
use crate::signin::Grants;
use crate::throttle::{Bucket, ThrottleConfig, Verdict, documented_quota};
use crate::{ClientApp, SimOptions, Tenant};

/// The simulator's state. Locks are held only for in-memory work, never across an await.
pub struct Sim {
    pub(crate) tenant: RwLock<Tenant>,
    pub(crate) client: ClientApp,
    pub(crate) graph_url: String,
    pub(crate) tokens: Mutex<HashMap<String, IssuedToken>>,
    pub(crate) rng: Mutex<SmallRng>,
    pub(crate) consent: Mutex<Consent>,
    /// Signs id and access tokens (RS256); its public half is the tenant's JWKS.
    pub(crate) keys: Option<SigningKey>,
    /// Authorization codes and refresh tokens of signed-in users.
    pub(crate) grants: Mutex<Grants>,
    pub(crate) clock: Mutex<DateTime<Utc>>,
    pub(crate) started: std::time::Instant,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) throttle: Option<ThrottleConfig>,
    pub(crate) latency: std::time::Duration,
    pub(crate) buckets: Mutex<HashMap<String, Bucket>>,
    pub(crate) write_buckets: Mutex<HashMap<String, Bucket>>,
    /// Until when each app was told to wait (429 or 503 with `Retry-After`).
    pub(crate) retry_windows: Mutex<HashMap<String, RetryWindow>>,
    pub(crate) faults: Mutex<Injector>,
    pub(crate) log: Mutex<VecDeque<LoggedRequest>>,
    /// Users the sign-in page lists first, each with what to call them there (the demo's
    /// Attest administrators): a label of the embedding application, not of Entra.
    pub(crate) featured: Mutex<Vec<(String, String)>>,
}

/// Requests and resource units, per route (method and path template).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub resource_units: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// Requests that arrived while their app had been told to wait (`Retry-After` of a 429 or
    /// 503 not yet elapsed), except those already in flight when the wait was announced (see
    /// `IN_FLIGHT_GRACE_MS`). A client that honours `Retry-After` keeps this at 0.
    pub early_requests: u64,
    /// Faults injected.
    pub faults: u64,
    pub by_route: BTreeMap<String, RouteStats>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStats {
    pub requests: u64,
    pub resource_units: u64,
}

/// One request as the simulator saw it (`GET /_sim/requests`, [`crate::SimHandle::requests`]).
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// Arrival, on the simulator's clock.
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub method: String,
    /// Path and query as sent.
    pub uri: String,
    pub status: u16,
    /// The calling app, for Graph requests with a known token.
    pub app: Option<String>,
    pub resource_units: u64,
    pub fault: Option<&'static str>,
    /// Sent inside a `Retry-After` window the app had been given.
    pub early: bool,
}

/// A `Retry-After` an app was given: since when, and until when it must wait (extended by
/// further refusals while open).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryWindow {
    pub(crate) opened: DateTime<Utc>,
    pub(crate) until: DateTime<Utc>,
}

/// Requests already in flight when a refusal goes out arrive within moments of it; a client
/// cannot have seen the refusal before sending them. [`Stats::early_requests`] starts
/// counting this long after a window opens (a client retrying at once keeps retrying, and is
/// caught by the next ones).
const IN_FLIGHT_GRACE_MS: i64 = 50;

/// Requests kept in the log; older ones are dropped (the counts stay in the stats).
const LOG_LIMIT: usize = 200_000;

impl Sim {
    pub(crate) fn new(tenant: Tenant, client: ClientApp, graph_url: String, options: SimOptions) -> Sim {
        let now = options.now;
        let consent = Consent::new(options.consented.then(|| client.roles.clone()));
        Sim {
            throttle: options.throttle,
            latency: options.latency,
            buckets: Mutex::new(HashMap::new()),
            write_buckets: Mutex::new(HashMap::new()),
            retry_windows: Mutex::new(HashMap::new()),
            faults: Mutex::new(Injector::new(options.faults)),
            log: Mutex::new(VecDeque::new()),
            featured: Mutex::new(Vec::new()),
            consent: Mutex::new(consent),
            keys: SigningKey::builtin(),
            grants: Mutex::new(Grants::default()),
            tenant: RwLock::new(tenant),
            client,
            graph_url,
            tokens: Mutex::new(HashMap::new()),
            rng: Mutex::new(SmallRng::seed_from_u64(now.timestamp_micros() as u64)),
            clock: Mutex::new(now),
            started: std::time::Instant::now(),
            stats: Mutex::new(Stats::default()),
        }
    }

    /// Lists these users (object ids) first on the sign-in page, each labelled (`"Attest
    /// administrator"`); the rest follow as before.
    pub fn feature_on_sign_in(&self, users: Vec<(String, String)>) {
        match self.featured.lock() {
            Ok(mut featured) => *featured = users,
            Err(poisoned) => *poisoned.into_inner() = users,
        }
    }

    /// The simulator's "now": its start time plus real time elapsed plus any advance.
    pub fn now(&self) -> DateTime<Utc> {
        let base = self.clock.lock().map(|c| *c).unwrap_or_else(|e| *e.into_inner());
        base + Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    pub(crate) fn advance(&self, by: Duration) {
        if let Ok(mut clock) = self.clock.lock() {
            *clock += by;
        }
    }

    /// The identity platform's base URL: endpoints are `{login_url}/{tenant}/...`.
    pub fn login_url(&self) -> String {
        format!("{}/login", self.graph_url)
    }

    pub fn tenant_id(&self) -> String {
        self.read(|t| t.id.clone())
    }

    /// The registered client app (credentials and granted permissions).
    pub fn client(&self) -> &ClientApp {
        &self.client
    }

    /// Runs `f` on the tenant.
    pub fn read<T>(&self, f: impl FnOnce(&Tenant) -> T) -> T {
        match self.tenant.read() {
            Ok(tenant) => f(&tenant),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Runs `f` on the tenant for a change.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tenant) -> T) -> T {
        match self.tenant.write() {
            Ok(mut tenant) => f(&mut tenant),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Ends time-bound role assignments and eligibilities whose end has passed on the
    /// simulator's clock (checked under the read lock first: this runs on every request).
    pub(crate) fn expire_schedules(&self) {
        let now = self.now();
        if self.read(|t| t.has_expired_schedules(now)) {
            self.write(|t| t.expire_schedules(now));
        }
    }

    /// Requests served and resource units charged so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn new_id(&self) -> String {
        let bytes: [u8; 16] = self.rng.lock().map(|mut r| r.random()).unwrap_or_default();
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// 32 random bytes, base64url: codes, refresh tokens, token ids.
    pub(crate) fn random_token(&self) -> String {
        use base64::Engine;
        let bytes: [u8; 32] = self.rng.lock().map(|mut r| r.random()).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An appRoleAssignment id: base64url, not a GUID (approleassignment.md).
    pub(crate) fn new_assignment_id(&self) -> String {
        self.rng.lock().map(|mut r| crate::generate::assignment_id(&mut *r)).unwrap_or_default()
    }

    /// The app a Graph request's bearer token was issued to.
    pub(crate) fn app_of(&self, headers: &HeaderMap) -> Option<String> {
        let token = bearer(headers)?;
        Some(self.tokens.lock().ok()?.get(token)?.app_id.clone())
    }

    /// Charges a request to its app's buckets, when throttling is on: resource units always,
    /// and one write for writes. Unauthenticated requests are refused by the handler, not
    /// counted against an app.
    pub(crate) fn charge(&self, app: &str, units: u64, write: bool) -> Option<Verdict> {
        let config = self.throttle?;
        let now = self.now();
        let quota = config.quota.unwrap_or_else(|| documented_quota(self.read(|t| t.users.len())));
        let mut buckets = self.buckets.lock().ok()?;
        let bucket = buckets.entry(app.to_owned()).or_insert_with(|| Bucket::new(quota, config.window_secs, now));
        let verdict = bucket.charge(units as f64, now);
        if !write || matches!(verdict, Verdict::Throttled { .. }) {
            return Some(verdict);
        }
        let mut writes = self.write_buckets.lock().ok()?;
        let bucket = writes
            .entry(app.to_owned())
            .or_insert_with(|| Bucket::new(config.write_quota, config.write_window_secs, now));
        match bucket.charge(1.0, now) {
            Verdict::Throttled { retry_after_secs } => Some(Verdict::WriteThrottled { retry_after_secs }),
            Verdict::Allowed { usage: write_usage } => match verdict {
                Verdict::Allowed { usage } => Some(Verdict::Allowed { usage: usage.max(write_usage) }),
                other => Some(other),
            },
            other => Some(other),
        }
    }

    /// Remembers that `app` was told to wait `secs`.
    pub(crate) fn tell_to_wait(&self, app: Option<&str>, secs: f64) {
        let Some(app) = app else { return };
        let now = self.now();
        let until = now + Duration::microseconds((secs * 1e6) as i64);
        if let Ok(mut windows) = self.retry_windows.lock() {
            let window = windows.entry(app.to_owned()).or_insert(RetryWindow { opened: now, until });
            if window.until <= now {
                // The last window had closed: this refusal opens a new one.
                *window = RetryWindow { opened: now, until };
            }
            window.until = window.until.max(until);
        }
    }

    /// Whether a request from `app` arriving now was sent inside a window it had been told to
    /// wait out. Requests arriving within [`IN_FLIGHT_GRACE`] of the window opening were sent
    /// before the client could have read the refusal (concurrent requests), so they do not count.
    pub(crate) fn inside_retry_window(&self, app: &str) -> bool {
        let now = self.now();
        let window = self.retry_windows.lock().ok().and_then(|w| w.get(app).copied());
        window.is_some_and(|w| now < w.until && now >= w.opened + Duration::milliseconds(IN_FLIGHT_GRACE_MS))
    }

    pub(crate) fn record(&self, route: &str, entry: LoggedRequest) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.requests += 1;
            stats.resource_units += entry.resource_units;
            stats.throttled += u64::from(entry.status == 429);
            stats.early_requests += u64::from(entry.early);
            stats.faults += u64::from(entry.fault.is_some());
            let route = stats.by_route.entry(route.to_owned()).or_default();
            route.requests += 1;
            route.resource_units += entry.resource_units;
        }
        if let Ok(mut log) = self.log.lock() {
            if log.len() == LOG_LIMIT {
                log.pop_front();
            }
            log.push_back(entry);
        }
    }

    /// Every request served so far (the most recent 200,000).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every fault injected so far.
    pub fn faults(&self) -> Vec<FaultRecord> {
        self.faults.lock().map(|f| f.record()).unwrap_or_default()
    }

    /// Adds a fault rule to the running plan.
    pub fn inject(&self, rule: FaultRule) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.add_rule(rule);
        }
    }

    /// Signs `claims` with the simulator's token key, as its identity platform signs tokens:
    /// tests use it to forge tokens that are correctly signed but wrong in one claim.
    pub fn sign_token(&self, claims: &serde_json::Value) -> Option<String> {
        self.keys.as_ref().map(|k| k.sign(claims))
    }

    /// Replaces the running fault plan (as `POST /_sim/faults` with a `plan` does).
    pub fn set_fault_plan(&self, plan: crate::faults::FaultPlan) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.set_plan(plan);
        }
    }

    /// Makes the token in `headers` expired from now on.
    pub(crate) fn expire_token(&self, headers: &HeaderMap) {
        let now = self.now();
        if let Some(token) = bearer(headers)
            && let Ok(mut tokens) = self.tokens.lock()
            && let Some(issued) = tokens.get_mut(token)
        {
            issued.expires_at = issued.expires_at.min(now);
        }
    }
}

/// The bearer token of a request.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
