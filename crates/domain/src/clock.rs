//! The one source of "now".
//!
//! Deadlines, reminders, leases and expiry all compare against the time, so nothing outside
//! this module (and the command line's entry points) reads the system clock: libraries and jobs
//! are given a [`Clock`]. Tests give them a [`TestClock`] and move it forward, so "due at T"
//! is tested by advancing to T instead of sleeping, and a restart after downtime by a jump.
//! (`clippy.toml` forbids `Utc::now()` everywhere else.)

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Tells the time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Whether time moves only when someone moves it (a test clock). Whatever waits for a time
    /// on such a clock looks again often instead of sleeping until then.
    fn is_manual(&self) -> bool {
        false
    }
}

/// A clock shared by the parts of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place the system clock is read.
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system's clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until moved: `advance` and `set`. Cheap to clone; clones share
/// one time.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> TestClock {
        TestClock(Arc::new(Mutex::new(at)))
    }

    /// A clock standing at the system's time now (truncated to whole microseconds, the
    /// databases' precision), for tests that mix it with times written elsewhere.
    pub fn starting_now() -> TestClock {
        TestClock::at(crate::time::micros(SystemClock.now()))
    }

    /// Moves the clock forward (or back, with a negative span).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_manual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_test_clock_moves_only_when_moved_and_clones_share_it() {
        let start = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
        let clock = TestClock::at(start);
        let shared = clock.shared();
        assert_eq!(shared.now(), start);
        assert!(shared.is_manual());
        clock.advance(chrono::Duration::minutes(10));
        assert_eq!(shared.now(), start + chrono::Duration::minutes(10));
        clock.set(start);
        assert_eq!(shared.now(), start);
        assert!(!SystemClock.is_manual());
    }
}
