//! What Attest recommends for an item, and why, in words a reviewer reads beside it. Only what
//! is known counts: without synced sign-in activity the reason says so, and nothing is guessed
//! from a missing date.

use chrono::{DateTime, Duration, Utc};

use crate::macros::string_enum;
use crate::{PrincipalKind, UserType};

string_enum! {
    pub enum Recommendation as "recommendation" {
        Approve => "approve",
        Revoke => "revoke",
        /// Nothing says revoke, but something is unusual: look closely.
        Review => "review",
    }
}

/// How the principal's department holds the same access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFacts<'a> {
    pub department: &'a str,
    /// People in the department (the principal included).
    pub department_size: u64,
    /// Of them, how many hold this entitlement (the principal included).
    pub holders: u64,
}

/// Fewer people than this in a department say nothing about outliers.
pub const MIN_PEERS: u64 = 5;
/// Held by at most this share of the department: an outlier.
pub const OUTLIER_SHARE: f64 = 0.10;

/// What the recommendation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub kind: PrincipalKind,
    pub user_type: Option<UserType>,
    pub account_enabled: Option<bool>,
    /// Whether the connector's sync reads sign-in activity (for this kind of principal).
    pub sign_ins_known: bool,
    pub last_sign_in: Option<DateTime<Utc>>,
    /// When the account was created in the directory (new accounts are not "inactive").
    pub created: Option<DateTime<Utc>>,
    /// A service principal or managed identity with an owner.
    pub has_owner: bool,
    pub peers: Option<PeerFacts<'a>>,
    pub now: DateTime<Utc>,
    pub lookback_days: u32,
}

/// The recommendation and its reason.
pub fn recommend(f: &Facts) -> (Recommendation, String) {
    use Recommendation::*;
    let lookback = Duration::days(i64::from(f.lookback_days));
    let since = f.now - lookback;
    let days = f.lookback_days;
    if f.account_enabled == Some(false) {
        return (Revoke, "the account is disabled".into());
    }
    let application = matches!(f.kind, PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity);
    let new = f.created.is_some_and(|c| c > since);
    if application {
        if !f.sign_ins_known {
            let owner = if f.has_owner { "it has an owner" } else { "it has no owner" };
            return (
                Review,
                format!("sign-in activity of applications is not synced, so whether it is used is unknown; {owner}"),
            );
        }
        return match (f.last_sign_in, f.has_owner) {
            (None, false) if !new => (Revoke, "an application that never signed in and has no owner".into()),
            (Some(at), false) if at < since && !new => {
                (Revoke, format!("an application with no sign-in in the last {days} days and no owner"))
            }
            _ => (Approve, "an application that signs in, or has an owner".into()),
        };
    }
    let mut notes = Vec::new();
    if f.sign_ins_known {
        match f.last_sign_in {
            None if f.user_type == Some(UserType::Guest) && !new => {
                return (Revoke, "a guest who never signed in".into());
            }
            None if !new => return (Revoke, format!("no sign-in recorded in the last {days} days")),
            Some(at) if at < since && !new => {
                return (Revoke, format!("no sign-in in the last {days} days (last on {})", at.format("%Y-%m-%d")));
            }
            Some(at) => notes.push(format!("signed in on {}", at.format("%Y-%m-%d"))),
            None => notes.push("a new account".to_owned()),
        }
    } else {
        notes.push("sign-in activity is not synced, so recent use is unknown".to_owned());
    }
    if let Some(p) = f.peers.filter(|p| p.department_size >= MIN_PEERS) {
        let share = p.holders as f64 / p.department_size as f64;
        let held = format!("held by {} of the {} people in {}", p.holders, p.department_size, p.department);
        if share <= OUTLIER_SHARE {
            notes.insert(0, format!("{held}: unusual for the department"));
            return (Review, notes.join("; "));
        }
        notes.push(held);
    }
    (Approve, notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts() -> Facts<'static> {
        let now = Utc.with_ymd_and_hms(2027, 3, 31, 12, 0, 0).unwrap();
        Facts {
            kind: PrincipalKind::User,
            user_type: Some(UserType::Member),
            account_enabled: Some(true),
            sign_ins_known: true,
            last_sign_in: Some(now - Duration::days(3)),
            created: Some(now - Duration::days(400)),
            has_owner: false,
            peers: None,
            now,
            lookback_days: 30,
        }
    }

    #[test]
    fn each_rule_with_its_reason() {
        let active = recommend(&facts());
        assert_eq!(active, (Recommendation::Approve, "signed in on 2027-03-28".into()));
        let stale = Facts { last_sign_in: Some(facts().now - Duration::days(45)), ..facts() };
        assert_eq!(
            recommend(&stale),
            (Recommendation::Revoke, "no sign-in in the last 30 days (last on 2027-02-14)".into())
        );
        let disabled = Facts { account_enabled: Some(false), ..facts() };
        assert_eq!(recommend(&disabled).0, Recommendation::Revoke);
        let guest = Facts { user_type: Some(UserType::Guest), last_sign_in: None, ..facts() };
        assert_eq!(recommend(&guest), (Recommendation::Revoke, "a guest who never signed in".into()));
        // A new account is not inactive.
        let new = Facts { last_sign_in: None, created: Some(facts().now - Duration::days(2)), ..facts() };
        assert_eq!(recommend(&new), (Recommendation::Approve, "a new account".into()));
    }

    #[test]
    fn unknown_sign_ins_are_said_never_guessed() {
        let unknown = Facts { sign_ins_known: false, last_sign_in: None, ..facts() };
        let (recommendation, reason) = recommend(&unknown);
        assert_eq!(recommendation, Recommendation::Approve);
        assert!(reason.contains("not synced") && reason.contains("unknown"), "{reason}");
        let app = Facts { kind: PrincipalKind::ServicePrincipal, sign_ins_known: false, ..facts() };
        assert_eq!(recommend(&app).0, Recommendation::Review);
        let orphan = Facts { kind: PrincipalKind::ManagedIdentity, last_sign_in: None, ..facts() };
        assert_eq!(recommend(&orphan).0, Recommendation::Revoke);
        let owned = Facts { has_owner: true, ..orphan };
        assert_eq!(recommend(&owned).0, Recommendation::Approve);
    }

    #[test]
    fn a_peer_outlier_is_reviewed_carefully() {
        let peers = PeerFacts { department: "Finance", department_size: 40, holders: 2 };
        let outlier = Facts { peers: Some(peers), ..facts() };
        let (recommendation, reason) = recommend(&outlier);
        assert_eq!(recommendation, Recommendation::Review);
        assert!(reason.starts_with("held by 2 of the 40 people in Finance: unusual"), "{reason}");
        let common = Facts { peers: Some(PeerFacts { holders: 30, ..peers }), ..facts() };
        assert_eq!(recommend(&common).0, Recommendation::Approve);
        let small = Facts { peers: Some(PeerFacts { department_size: 3, holders: 0, ..peers }), ..facts() };
        assert_eq!(recommend(&small).0, Recommendation::Approve, "too few peers to say");
    }
}
