//! Time as Attest stores it.

use chrono::{DateTime, SubsecRound, Utc};

/// `at` to whole microseconds: the precision both databases keep. A time is truncated before
/// it is written or compared in SQL, so what is read back equals what was written, and a hash
/// over it (the audit chain) is the same before and after the round trip.
pub fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}
