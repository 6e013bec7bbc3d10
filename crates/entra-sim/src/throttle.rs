//! Throttling as the identity and access services do it (graph-facts §8): a token bucket of
//! resource units per app and tenant pair, sized by the tenant (S: under 50 users 3,500 RU per
//! 10 s; M: 50-500 users 5,000; L: over 500 users 8,000). Usage keeps counting while a client
//! is throttled, so retrying before `Retry-After` only pushes the next success further out.
//! Writes (POST, PATCH, PUT, DELETE) also draw on a write quota: 3,000 requests per 2 min 30 s
//! per app and tenant.

use chrono::{DateTime, Utc};

/// How the simulator throttles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Resource units per window; `None` uses the documented quota for the tenant's size.
    pub quota: Option<f64>,
    /// The window the quota refills over, in seconds (documented: 10 s).
    pub window_secs: f64,
    /// Write requests per write window (documented: 3,000).
    pub write_quota: f64,
    /// The window the write quota refills over, in seconds (documented: 150 s).
    pub write_window_secs: f64,
    /// How 429s say when to come back.
    pub retry_after: RetryAfter,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            quota: None,
            window_secs: 10.0,
            write_quota: 3_000.0,
            write_window_secs: 150.0,
            retry_after: RetryAfter::Seconds,
        }
    }
}

/// The `Retry-After` a 429 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Whole seconds, as most responses do.
    Seconds,
    /// Fractional seconds ("Retry-After: 2.128", throttling.md): clients must parse a float.
    Fractional,
    /// None at all, as some resources do: clients must back off on their own.
    Omitted,
}

impl RetryAfter {
    /// The header value for a wait of `secs`, if one is sent.
    pub fn header(self, secs: f64) -> Option<String> {
        match self {
            RetryAfter::Seconds => Some(format!("{}", secs.ceil().max(1.0) as u64)),
            RetryAfter::Fractional => Some(format!("{:.3}", secs.max(0.001))),
            RetryAfter::Omitted => None,
        }
    }
}

/// The documented resource-unit quota per 10 s for an app in a tenant of `users` users.
pub fn documented_quota(users: usize) -> f64 {
    match users {
        0..50 => 3_500.0,
        50..=500 => 5_000.0,
        _ => 8_000.0,
    }
}

/// One app + tenant pair's bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    quota: f64,
    window_secs: f64,
    /// Units available; negative while a client keeps calling through a throttle.
    tokens: f64,
    at: DateTime<Utc>,
}

/// What the bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Served; `usage` is the share of the quota in use (for `x-ms-throttle-limit-percentage`).
    Allowed { usage: f64 },
    /// Refused; a request of the same cost is served after this many seconds.
    Throttled { retry_after_secs: f64 },
    /// Refused by the write quota.
    WriteThrottled { retry_after_secs: f64 },
}

impl Verdict {
    /// For a refusal: seconds to wait, and the limit and reason for `x-ms-throttle-scope` and
    /// `x-ms-throttle-information`.
    pub(crate) fn refusal(self) -> Option<(f64, &'static str, &'static str)> {
        match self {
            Verdict::Allowed { .. } => None,
            Verdict::Throttled { retry_after_secs } => {
                Some((retry_after_secs, "Tenant_Application/ReadWrite", "ResourceUnitLimitExceeded"))
            }
            Verdict::WriteThrottled { retry_after_secs } => {
                Some((retry_after_secs, "Tenant_Application/Write", "WriteLimitExceeded"))
            }
        }
    }
}

impl Bucket {
    pub(crate) fn new(quota: f64, window_secs: f64, now: DateTime<Utc>) -> Bucket {
        Bucket { quota, window_secs, tokens: quota, at: now }
    }

    /// Charges `cost` units at `now`. The charge stands even when the request is refused.
    pub(crate) fn charge(&mut self, cost: f64, now: DateTime<Utc>) -> Verdict {
        let elapsed = (now - self.at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        let rate = self.quota / self.window_secs;
        self.tokens = (self.tokens + elapsed * rate).min(self.quota);
        self.at = now;
        let enough = self.tokens >= cost;
        self.tokens -= cost;
        if enough {
            Verdict::Allowed { usage: (self.quota - self.tokens) / self.quota }
        } else {
            Verdict::Throttled { retry_after_secs: (cost - self.tokens) / rate }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn quotas_follow_tenant_size() {
        assert_eq!(documented_quota(10), 3_500.0);
        assert_eq!(documented_quota(50), 5_000.0);
        assert_eq!(documented_quota(500), 5_000.0);
        assert_eq!(documented_quota(100_000), 8_000.0);
    }

    #[test]
    fn retrying_early_makes_the_wait_longer() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let mut bucket = Bucket::new(10.0, 10.0, t0);
        for _ in 0..5 {
            assert!(matches!(bucket.charge(2.0, t0), Verdict::Allowed { .. }));
        }
        let Verdict::Throttled { retry_after_secs: first } = bucket.charge(2.0, t0) else { panic!("throttled") };
        let Verdict::Throttled { retry_after_secs: second } = bucket.charge(2.0, t0) else { panic!("throttled") };
        assert!(second > first, "{first} then {second}");
        // Waiting as told is enough.
        let waited = Duration::milliseconds((second * 1000.0).ceil() as i64 + 2000);
        assert!(matches!(bucket.charge(2.0, t0 + waited), Verdict::Allowed { .. }));
    }

    #[test]
    fn retry_after_styles() {
        assert_eq!(RetryAfter::Seconds.header(2.128).as_deref(), Some("3"));
        assert_eq!(RetryAfter::Seconds.header(0.2).as_deref(), Some("1"));
        assert_eq!(RetryAfter::Fractional.header(2.128).as_deref(), Some("2.128"));
        assert_eq!(RetryAfter::Omitted.header(2.0), None);
    }
}
