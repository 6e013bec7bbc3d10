//! Waiting by the clock.

use std::time::Duration;

use attest_domain::Clock;
use chrono::{DateTime, Utc};

/// How often a wait on a test clock looks whether the clock was moved.
const MANUAL_POLL: Duration = Duration::from_millis(5);

/// Waits until `clock` says `at`. On the system clock that is a sleep; on a test clock it is
/// as long as the test takes to move the clock there.
pub async fn wait_until(clock: &dyn Clock, at: DateTime<Utc>) {
    loop {
        let left = at - clock.now();
        if left <= chrono::Duration::zero() {
            return;
        }
        if clock.is_manual() {
            tokio::time::sleep(MANUAL_POLL).await;
        } else {
            tokio::time::sleep(left.to_std().unwrap_or(Duration::ZERO)).await;
        }
    }
}

/// Waits `span` by `clock`.
pub async fn sleep(clock: &dyn Clock, span: Duration) {
    let at = clock.now() + chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    wait_until(clock, at).await;
}
