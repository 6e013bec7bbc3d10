//! Fault injection: the failures a Graph client meets in production, on demand and seeded.
//!
//! A [`FaultPlan`] has two parts. `rate` + `kinds` inject random faults into that share of Graph
//! requests, drawn from a generator seeded by `seed` (the same plan and the same request
//! sequence give the same faults). `rules` inject a given fault into requests matching a
//! method and path, after letting `skip` of them through, `times` times: deterministic tests
//! use rules. Both can be changed while the simulator runs ([`crate::SimHandle::inject`],
//! `POST /_sim/faults`). Every injected fault is recorded ([`FaultRecord`], `GET /_sim/faults`).
//!
//! A fault only counts where it makes sense: an expired delta token needs a delta request that
//! carries a token, the "removed references" variant needs a `$ref` removal that failed with
//! 404. A rule does not count requests its fault cannot apply to.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// 503 `serviceNotAvailable`, with `Retry-After` (seconds, maybe fractional) when given.
    Unavailable { retry_after: Option<f64> },
    /// 504 `timeout` ("may occur together with 503", errors.md).
    GatewayTimeout,
    /// 429 with no `Retry-After`: some resources send none (graph-facts §8), so clients must
    /// fall back to exponential backoff.
    ThrottledWithoutRetryAfter,
    /// The connection closes before a complete response arrives.
    Drop,
    /// The response is delayed this long (client timeouts).
    Slow { millis: u64 },
    /// A delta request carrying a token answers 410 `syncStateNotFound`, as if the token had
    /// outlived its 7 days.
    DeltaTokenExpired,
    /// The bearer token is refused as expired (401), now and from then on: the client's idea
    /// of the token's lifetime was wrong (clock skew), so it must fetch a new one.
    TokenExpired,
    /// A delta page is served, then served again: its `nextLink` (or, on the last page, a
    /// `nextLink` instead of the `deltaLink`) points back at the same page. Clients must treat
    /// objects seen twice as harmless.
    ReplayDeltaPage,
    /// Removing a link that does not exist answers Graph's other documented shape, 400
    /// "One or more removed object references do not exist…", instead of 404.
    RemovedReferencesVariant,
    /// An administrator removes the app from the tenant (revoking its consent): outstanding
    /// tokens are refused and token requests fail with AADSTS700016 until consent is granted
    /// again. The request that triggers it is refused too.
    ConsentRevoked,
}

impl Fault {
    /// The transient faults `attest sim --fault-rate` draws from: a correct client survives each
    /// by retrying, refreshing its token or syncing again.
    pub const TRANSIENT: &[Fault] = &[
        Fault::Unavailable { retry_after: Some(1.0) },
        Fault::Unavailable { retry_after: None },
        Fault::GatewayTimeout,
        Fault::ThrottledWithoutRetryAfter,
        Fault::Drop,
        Fault::Slow { millis: 1_500 },
        Fault::ReplayDeltaPage,
        Fault::RemovedReferencesVariant,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Fault::Unavailable { retry_after: Some(_) } => "unavailable_retry_after",
            Fault::Unavailable { retry_after: None } => "unavailable",
            Fault::GatewayTimeout => "gateway_timeout",
            Fault::ThrottledWithoutRetryAfter => "throttled_without_retry_after",
            Fault::Drop => "drop",
            Fault::Slow { .. } => "slow",
            Fault::DeltaTokenExpired => "delta_token_expired",
            Fault::TokenExpired => "token_expired",
            Fault::ReplayDeltaPage => "replay_delta_page",
            Fault::RemovedReferencesVariant => "removed_references_variant",
            Fault::ConsentRevoked => "consent_revoked",
        }
    }

    /// Faults applied to the handler's response, which only then shows whether they applied.
    pub(crate) fn rewrites_response(&self) -> bool {
        matches!(self, Fault::ReplayDeltaPage | Fault::RemovedReferencesVariant)
    }

    /// Whether the fault can happen to this request.
    pub(crate) fn applies(&self, request: &RequestFacts) -> bool {
        match self {
            Fault::DeltaTokenExpired | Fault::ReplayDeltaPage => request.delta_with_token,
            Fault::RemovedReferencesVariant => request.removes_reference,
            // A `$batch` item cannot drop or delay its batch's connection on its own.
            Fault::Drop | Fault::Slow { .. } => !request.batch_item,
            _ => true,
        }
    }
}

/// Injects `fault` into requests whose method matches (any, when `None`) and whose path
/// contains `path`: lets `skip` matching requests through, then hits the next `times`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    pub fault: Fault,
    #[serde(default)]
    pub skip: u32,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// The next request to any method on a path containing `path` gets `fault`.
    pub fn on(path: &str, fault: Fault) -> FaultRule {
        FaultRule { method: None, path: path.to_owned(), fault, skip: 0, times: 1 }
    }

    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_uppercase());
        self
    }

    pub fn skip(mut self, skip: u32) -> FaultRule {
        self.skip = skip;
        self
    }

    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = times;
        self
    }
}

/// What faults to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub seed: u64,
    /// Share (0–1) of Graph requests that get a random fault from `kinds`.
    #[serde(default)]
    pub rate: f64,
    #[serde(default = "transient")]
    pub kinds: Vec<Fault>,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

fn transient() -> Vec<Fault> {
    Fault::TRANSIENT.to_vec()
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan { seed: 0, rate: 0.0, kinds: transient(), rules: Vec::new() }
    }
}

impl FaultPlan {
    /// Random transient faults in `rate` of Graph requests.
    pub fn random(seed: u64, rate: f64) -> FaultPlan {
        FaultPlan { seed, rate, ..FaultPlan::default() }
    }

    pub fn with_rule(mut self, rule: FaultRule) -> FaultPlan {
        self.rules.push(rule);
        self
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub fault: Fault,
}

/// A fault chosen for a request, and the rule that chose it (none for a random fault).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub fault: Fault,
    rule: Option<usize>,
}

/// Put on a delta request whose token is to be treated as expired.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpireDelta;

/// What the injector needs to know about a request.
#[derive(Debug, Clone)]
pub(crate) struct RequestFacts {
    pub method: String,
    pub path: String,
    pub delta_with_token: bool,
    pub removes_reference: bool,
    pub batch_item: bool,
}

impl RequestFacts {
    pub(crate) fn new(method: &str, path: &str, query: Option<&str>, batch_item: bool) -> RequestFacts {
        let query = query.unwrap_or_default().to_lowercase();
        let delta = path.ends_with("/delta") || path.ends_with("/microsoft.graph.delta");
        RequestFacts {
            method: method.to_uppercase(),
            path: path.to_owned(),
            delta_with_token: delta
                && (query.contains("%24skiptoken=")
                    || query.contains("$skiptoken=")
                    || query.contains("%24deltatoken=")
                    || query.contains("$deltatoken=")),
            removes_reference: method.eq_ignore_ascii_case("DELETE") && path.ends_with("/$ref"),
            batch_item,
        }
    }
}

/// Where the injector keeps its plan, its random generator and what it did.
pub(crate) struct Injector {
    plan: FaultPlan,
    rng: SmallRng,
    /// How many matching requests each rule has seen.
    seen: Vec<u32>,
    record: VecDeque<FaultRecord>,
}

/// Faults kept for `/_sim/faults`; older ones are dropped (the count stays in the stats).
const RECORD_LIMIT: usize = 100_000;

impl Injector {
    pub(crate) fn new(plan: FaultPlan) -> Injector {
        let rng = SmallRng::seed_from_u64(plan.seed);
        let seen = vec![0; plan.rules.len()];
        Injector { plan, rng, seen, record: VecDeque::new() }
    }

    pub(crate) fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Replaces the plan (rule counters restart; the record is kept).
    pub(crate) fn set_plan(&mut self, plan: FaultPlan) {
        self.rng = SmallRng::seed_from_u64(plan.seed);
        self.seen = vec![0; plan.rules.len()];
        self.plan = plan;
    }

    pub(crate) fn add_rule(&mut self, rule: FaultRule) {
        self.plan.rules.push(rule);
        self.seen.push(0);
    }

    /// The fault for this request: rules apply to every request (Graph and identity platform),
    /// random faults to Graph requests only.
    pub(crate) fn decide_for(&mut self, request: &RequestFacts, graph: bool) -> Option<Decision> {
        if graph { self.decide(request) } else { self.rule_fault(request) }
    }

    /// The fault for this request, if any: rules first, in order, then the random rate.
    fn decide(&mut self, request: &RequestFacts) -> Option<Decision> {
        if let Some(decision) = self.rule_fault(request) {
            return Some(decision);
        }
        if self.plan.rate <= 0.0 || self.plan.kinds.is_empty() || !self.rng.random_bool(self.plan.rate.min(1.0)) {
            return None;
        }
        let fault = self.plan.kinds[self.rng.random_range(0..self.plan.kinds.len())];
        fault.applies(request).then_some(Decision { fault, rule: None })
    }

    /// Gives a rule back the request it spent on a fault that turned out not to apply.
    pub(crate) fn refund(&mut self, decision: &Decision) {
        if let Some(seen) = decision.rule.and_then(|i| self.seen.get_mut(i)) {
            *seen = seen.saturating_sub(1);
        }
    }

    fn rule_fault(&mut self, request: &RequestFacts) -> Option<Decision> {
        for (i, (rule, seen)) in self.plan.rules.iter().zip(self.seen.iter_mut()).enumerate() {
            let method_matches = rule.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&request.method));
            if !method_matches || !request.path.contains(&rule.path) || !rule.fault.applies(request) {
                continue;
            }
            if *seen >= rule.skip.saturating_add(rule.times) {
                continue;
            }
            *seen += 1;
            if *seen > rule.skip {
                return Some(Decision { fault: rule.fault, rule: Some(i) });
            }
        }
        None
    }

    pub(crate) fn note(&mut self, record: FaultRecord) {
        if self.record.len() == RECORD_LIMIT {
            self.record.pop_front();
        }
        self.record.push_back(record);
    }

    pub(crate) fn record(&self) -> Vec<FaultRecord> {
        self.record.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn get(path: &str) -> RequestFacts {
        RequestFacts::new("GET", path, None, false)
    }

    #[test]
    fn rules_skip_then_hit_then_stop() {
        let plan = FaultPlan::default().with_rule(FaultRule::on("/v1.0/users", Fault::GatewayTimeout).skip(1).times(2));
        let mut injector = Injector::new(plan);
        let hits: Vec<bool> = (0..5).map(|_| injector.decide(&get("/v1.0/users")).is_some()).collect();
        assert_eq!(hits, [false, true, true, false, false]);
        assert!(injector.decide(&get("/v1.0/groups")).is_none());
    }

    #[test]
    fn rules_count_only_requests_their_fault_applies_to() {
        let plan = FaultPlan::default().with_rule(FaultRule::on("/delta", Fault::DeltaTokenExpired));
        let mut injector = Injector::new(plan);
        assert!(injector.decide(&get("/v1.0/users/delta")).is_none(), "no token: an initial round cannot expire");
        let paged = RequestFacts::new("GET", "/v1.0/users/delta", Some("%24skiptoken=abc"), false);
        assert_eq!(injector.decide(&paged).map(|d| d.fault), Some(Fault::DeltaTokenExpired));
        assert!(injector.decide(&paged).is_none());
    }

    #[test]
    fn random_faults_follow_the_rate_and_the_seed() {
        let draw = |seed| {
            let mut injector = Injector::new(FaultPlan::random(seed, 0.1));
            (0..10_000).map(|_| injector.decide(&get("/v1.0/users")).map(|d| d.fault.name())).collect::<Vec<_>>()
        };
        let first = draw(3);
        assert_eq!(first, draw(3), "same seed, same faults");
        assert_ne!(first, draw(4));
        let faulted = first.iter().filter(|f| f.is_some()).count();
        // Drawn at 10 %, minus the kinds that cannot apply to a plain GET (replay, variant).
        assert!((600..=1000).contains(&faulted), "{faulted}");
    }
}
