//! Connecting a tenant: the invitations that ask an integration owner to finish admin consent,
//! and when they end, remind and refuse.
//!
//! An invitation is a link mailed to one owner. The link's token is random (256 bits) and only
//! its hash is stored, so it cannot be forged or read back; it works once, for seven days, and
//! only for the person it was sent to: whoever follows it must sign in to Attest, and is refused
//! unless they are that owner (the invited address is their sign-in name or work email, or the
//! invited object id is theirs).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ConnectorId;

/// How long an invitation link works.
pub const INVITATION_LIFETIME: Duration = Duration::days(7);

/// When an owner who has not connected the tenant yet is reminded.
pub const REMINDER_AFTER: Duration = Duration::days(3);

/// How long the trip to Microsoft's admin-consent page may take.
pub const CONSENT_WINDOW: Duration = Duration::minutes(30);

/// One owner asked to finish a connector's setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: i64,
    pub connector_id: ConnectorId,
    /// Who is invited: an email address, or an object id.
    pub email: String,
    /// Who asked (how Attest names them).
    pub invited_by: String,
    /// Where to tell them it is done.
    pub invited_by_email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub mailed_at: Option<DateTime<Utc>>,
    pub reminded_at: Option<DateTime<Utc>>,
    pub used_at: Option<DateTime<Utc>>,
    /// Who used it: `tenant/objectId`.
    pub used_by: Option<String>,
}

/// Why an invitation link does not work for whoever followed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationRefusal {
    #[error(
        "this setup link was already used; ask the administrator who sent it for a new one if setup is not finished"
    )]
    Used,
    #[error("this setup link expired on {0}; ask the administrator who sent it for a new one")]
    Expired(String),
    #[error(
        "this setup link was sent to {0}, and only they can use it: sign in as {0}, or ask the administrator for a link of your own"
    )]
    NotYours(String),
}

/// Who followed a link: their Attest account.
#[derive(Debug, Clone, Copy)]
pub struct Follower<'a> {
    pub object_id: &'a str,
    /// Their sign-in name or work email, as the sign-in gave it.
    pub email: Option<&'a str>,
}

impl Invitation {
    /// Whether the invitation is still open: not used, not expired.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }

    /// Whether `who` may use the link now.
    pub fn check(&self, who: Follower<'_>, now: DateTime<Utc>) -> Result<(), InvitationRefusal> {
        if self.used_at.is_some() {
            return Err(InvitationRefusal::Used);
        }
        if now >= self.expires_at {
            return Err(InvitationRefusal::Expired(self.expires_at.format("%-d %B %Y at %H:%M UTC").to_string()));
        }
        let invited = self.email.trim();
        let theirs = if crate::is_object_id(invited) {
            who.object_id.eq_ignore_ascii_case(invited)
        } else {
            who.email.is_some_and(|e| e.trim().eq_ignore_ascii_case(invited))
        };
        if theirs { Ok(()) } else { Err(InvitationRefusal::NotYours(invited.to_owned())) }
    }

    /// Whether the owner is due the reminder: mailed, still open, unanswered after
    /// [`REMINDER_AFTER`], not reminded yet.
    pub fn reminder_due(&self, now: DateTime<Utc>) -> bool {
        self.mailed_at.is_some()
            && self.reminded_at.is_none()
            && self.is_open(now)
            && now >= self.created_at + REMINDER_AFTER
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap() + Duration::hours(hours)
    }

    fn invitation(email: &str) -> Invitation {
        Invitation {
            id: 1,
            connector_id: ConnectorId(1),
            email: email.into(),
            invited_by: "admin@contoso.com".into(),
            invited_by_email: Some("admin@contoso.com".into()),
            created_at: at(0),
            expires_at: at(0) + INVITATION_LIFETIME,
            mailed_at: Some(at(0)),
            reminded_at: None,
            used_at: None,
            used_by: None,
        }
    }

    #[test]
    fn only_the_invited_owner_may_use_a_link_once_within_seven_days() {
        let inv = invitation("Ops@Contoso.com");
        let owner = Follower { object_id: "x", email: Some("ops@contoso.com") };
        let other = Follower { object_id: "y", email: Some("mallory@contoso.com") };
        assert_eq!(inv.check(owner, at(1)), Ok(()));
        assert!(matches!(inv.check(other, at(1)), Err(InvitationRefusal::NotYours(_))));
        assert!(matches!(
            inv.check(Follower { object_id: "z", email: None }, at(1)),
            Err(InvitationRefusal::NotYours(_))
        ));
        assert!(matches!(inv.check(owner, at(24 * 7)), Err(InvitationRefusal::Expired(_))));
        let used = Invitation { used_at: Some(at(2)), ..inv };
        assert_eq!(used.check(owner, at(3)), Err(InvitationRefusal::Used));

        let by_id = invitation("6f1c2d3e-0000-4000-8000-00000000000a");
        assert_eq!(
            by_id.check(Follower { object_id: "6F1C2D3E-0000-4000-8000-00000000000A", email: None }, at(1)),
            Ok(())
        );
        assert!(
            by_id
                .check(Follower { object_id: "other", email: Some("6f1c2d3e-0000-4000-8000-00000000000a") }, at(1))
                .is_err()
        );
    }

    #[test]
    fn the_reminder_comes_after_three_days_once_while_the_link_works() {
        let inv = invitation("ops@contoso.com");
        assert!(!inv.reminder_due(at(71)));
        assert!(inv.reminder_due(at(72)));
        assert!(!Invitation { reminded_at: Some(at(72)), ..inv.clone() }.reminder_due(at(80)));
        assert!(!Invitation { used_at: Some(at(10)), ..inv.clone() }.reminder_due(at(80)));
        assert!(!Invitation { mailed_at: None, ..inv.clone() }.reminder_due(at(80)));
        assert!(!inv.reminder_due(at(24 * 7)));
    }
}
