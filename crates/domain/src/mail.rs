//! Email in the outbox: rendered when queued (so a later template change never alters a mail
//! already waiting), then sent by the mail sender, retried, or kept.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::MailId;
use crate::macros::string_enum;

string_enum! {
    /// Where a mail stands.
    pub enum MailState as "mail state" {
        /// Queued; a sender takes it at `next_attempt_at`.
        Pending => "pending",
        /// Claimed by a sender whose lease has not expired.
        Sending => "sending",
        /// Accepted by the SMTP server.
        Sent => "sent",
        /// Given up: refused permanently, or every attempt failed. `last_error` says why.
        Failed => "failed",
        /// Held in the outbox by design and never sent: no SMTP server is configured (the demo).
        Kept => "kept",
    }
}

impl MailState {
    /// No further transition happens on its own.
    pub fn is_final(self) -> bool {
        matches!(self, MailState::Sent | MailState::Failed | MailState::Kept)
    }
}

/// A rendered mail, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// Queueing the same key again returns the mail already queued under it.
    pub idempotency_key: String,
    /// The template it was rendered from, e.g. `change_awaiting_approval`.
    pub template: String,
    /// One email address.
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// Hold it in the outbox (state `kept`) instead of queueing it to be sent.
    pub keep: bool,
}

/// A mail in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    pub id: MailId,
    pub idempotency_key: String,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub state: MailState,
    /// Attempts started (a claim counts as one, so a sender that died mid-send counts too).
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The last change of state.
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// How long to wait before trying a mail again after its `attempts`-th attempt failed
/// transiently (the SMTP server unreachable or busy): 30 s, doubling, capped at an hour (the
/// caller adds jitter). Eight attempts span about an hour; an outage longer than that fails the mail.
pub fn mail_retry_delay(attempts: u32) -> std::time::Duration {
    let exponential =
        std::time::Duration::from_secs(30).saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(16)));
    exponential.min(std::time::Duration::from_secs(60 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let secs = |n| mail_retry_delay(n).as_secs();
        assert_eq!((secs(0), secs(1), secs(2), secs(3)), (30, 30, 60, 120));
        assert_eq!((secs(7), secs(8), secs(40)), (1920, 3600, 3600));
    }

    #[test]
    fn states_round_trip_and_know_which_are_final() {
        for state in MailState::ALL {
            assert_eq!(state.as_str().parse::<MailState>().unwrap(), *state);
        }
        assert!(MailState::Kept.is_final() && !MailState::Sending.is_final());
    }
}
