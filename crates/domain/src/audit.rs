//! The audit log as a hash chain.
//!
//! Every event stores the SHA-256 of its own content together with the previous event's hash,
//! and events are numbered without gaps. Editing a row breaks its own hash; deleting or
//! reordering rows breaks the numbering or the `prev_hash` link; cutting rows off the end is
//! caught against the chain head the store keeps separately. [`ChainVerifier`] names the first
//! row where any of that happened.
//!
//! A plain hash only proves the rows agree with each other: whoever can write the database can
//! rewrite an event and recompute every hash after it. So events are *keyed*: with a
//! [`ChainKey`] (kept beside the secrets key, never in the database) an event's hash is an
//! HMAC-SHA256, written `hmac-sha256:<hex>`, which nobody without the key can recompute. Events
//! from before the chain was keyed keep their plain hash, and the first keyed event covers them
//! (it signs the last plain hash as its `prev_hash`); a plain hash *after* a keyed one is a
//! rewrite. The head (`seq` and hash of the last event) can be kept elsewhere, and the log
//! checked against it later ([`ChainVerifier::finish`] with the anchored head).

use std::fmt;

use chrono::{DateTime, Utc};

use crate::time::micros;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a keyed event's hash begins.
pub const KEYED_PREFIX: &str = "hmac-sha256:";

/// The audit chain's signing key. Never printed.
#[derive(Clone)]
pub struct ChainKey(ring::hmac::Key);

impl ChainKey {
    pub fn new(bytes: &[u8; 32]) -> ChainKey {
        ChainKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes))
    }

    fn sign(&self, content: &[u8]) -> String {
        format!("{KEYED_PREFIX}{}", hex::encode(ring::hmac::sign(&self.0, content).as_ref()))
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// Who did something, as the audit log records them: a name for reading (an email, `cli`,
/// `system`) and, for a signed-in person, their identity (`tenant/objectId`), which a changed
/// name or address does not change. Events by a person carry it in their details as `actor_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub id: Option<&'a str>,
}

impl<'a> From<&'a str> for Actor<'a> {
    fn from(name: &'a str) -> Self {
        Actor { name, id: None }
    }
}

impl<'a> From<&'a String> for Actor<'a> {
    fn from(name: &'a String) -> Self {
        Actor { name, id: None }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEventDraft {
    pub occurred_at: DateTime<Utc>,
    /// Who did it: a user's email, `system`, `cli`, a connector name...
    pub actor: String,
    /// What happened, dotted: `grant.revoked`, `sync.finished`, `change.applied`.
    pub action: String,
    /// What it happened to, e.g. `principal` + its id.
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// Anything else, as a JSON object (before/after, request ids...).
    pub details: serde_json::Value,
}

impl AuditEventDraft {
    /// That `actor` did `action` to the `kind` thing `id`, at `now`.
    pub fn about(
        actor: &str,
        action: &str,
        kind: &str,
        id: impl ToString,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> AuditEventDraft {
        AuditEventDraft {
            occurred_at: now,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target_kind: Some(kind.to_owned()),
            target_id: Some(id.to_string()),
            details,
        }
    }
}

/// An event as stored in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Position in the chain: 1, 2, 3... without gaps.
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// The details exactly as hashed (compact JSON text).
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// Seals a draft as event `seq` after an event whose hash is `prev_hash`.
    /// The timestamp is truncated to microseconds, the precision both databases keep, so the
    /// hash computed now is the hash recomputed from the stored row later.
    /// With a `key` the event is keyed (see the module's documentation).
    pub fn seal(draft: AuditEventDraft, seq: i64, prev_hash: &str, key: Option<&ChainKey>) -> AuditEvent {
        let mut event = AuditEvent {
            seq,
            occurred_at: micros(draft.occurred_at),
            actor: draft.actor,
            action: draft.action,
            target_kind: draft.target_kind,
            target_id: draft.target_id,
            details: draft.details.to_string(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        event.hash = match key {
            Some(key) => key.sign(&event.content()),
            None => event.content_hash(),
        };
        event
    }

    /// Whether the event's hash is keyed.
    pub fn is_keyed(&self) -> bool {
        self.hash.starts_with(KEYED_PREFIX)
    }

    /// The SHA-256 (lowercase hex) of everything in the event but its own hash.
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.content()))
    }

    /// Everything in the event but its own hash, as hashed. Every field is length-prefixed, so
    /// no two different events can produce the same byte stream.
    fn content(&self) -> Vec<u8> {
        let mut hasher: Vec<u8> = Vec::with_capacity(256 + self.details.len());
        let timestamp = self.occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let seq = self.seq.to_string();
        let fields: [Option<&str>; 8] = [
            Some(&seq),
            Some(&timestamp),
            Some(&self.actor),
            Some(&self.action),
            self.target_kind.as_deref(),
            self.target_id.as_deref(),
            Some(&self.details),
            Some(&self.prev_hash),
        ];
        for field in fields {
            match field {
                // `-1` marks an absent optional field, distinct from an empty one.
                None => hasher.extend_from_slice(b"-1:"),
                Some(text) => {
                    hasher.extend_from_slice(text.len().to_string().as_bytes());
                    hasher.extend_from_slice(b":");
                    hasher.extend_from_slice(text.as_bytes());
                }
            }
            hasher.extend_from_slice(b";");
        }
        hasher
    }
}

/// Why the chain is broken at a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum BreakReason {
    /// The row's content does not match its stored hash: it was edited.
    ContentAltered { stored: String, computed: String },
    /// The row does not point at the previous row's hash: rows were removed or replaced before it.
    LinkBroken { expected_prev: String, stored_prev: String },
    /// A number is missing before this row: rows were deleted.
    Gap { expected_seq: i64 },
    /// The chain ends before the recorded head: rows were cut off the end.
    Truncated { head_seq: i64, head_hash: String },
    /// A plain hash after keyed ones: the row was rewritten by someone without the key.
    NotKeyed,
    /// A keyed row, checked without the key: it cannot be verified here.
    KeyNeeded,
    /// The row is not the one a head anchored elsewhere names: the log was rewritten up to it.
    NotAnchored { anchored_hash: String },
}

/// The first place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first row that cannot be trusted.
    pub seq: i64,
    #[serde(flatten)]
    pub reason: BreakReason,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            BreakReason::ContentAltered { .. } => {
                write!(f, "event {} was altered: its content no longer matches its hash", self.seq)
            }
            BreakReason::LinkBroken { .. } => {
                write!(f, "event {} does not follow the event before it: events were removed or replaced", self.seq)
            }
            BreakReason::Gap { expected_seq } => {
                write!(f, "events {expected_seq}..{} are missing: they were deleted", self.seq - 1)
            }
            BreakReason::NotKeyed => write!(
                f,
                "event {} carries a plain hash after keyed events: it was rewritten by someone without the audit key",
                self.seq
            ),
            BreakReason::NotAnchored { .. } => {
                write!(f, "event {} is not the event the anchored head names: the log was rewritten up to it", self.seq)
            }
            BreakReason::KeyNeeded => {
                write!(f, "event {} is signed; it can only be checked with the audit key", self.seq)
            }
            BreakReason::Truncated { head_seq, .. } => write!(
                f,
                "the chain stops at event {} but the head records event {head_seq}: events were cut off the end",
                self.seq - 1
            ),
        }
    }
}

/// Checks events one by one, in `seq` order, and remembers the first break.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
    checked: u64,
    key: Option<ChainKey>,
    keyed: bool,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { next_seq: 1, prev_hash: GENESIS_HASH.to_owned(), checked: 0, key: None, keyed: false }
    }
}

impl ChainVerifier {
    /// A verifier of keyed events, with their key.
    pub fn keyed(key: ChainKey) -> ChainVerifier {
        ChainVerifier { key: Some(key), ..ChainVerifier::default() }
    }

    /// Checks the next event; the error names the first untrustworthy row.
    pub fn check(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        if event.seq != self.next_seq {
            return Err(ChainBreak { seq: event.seq, reason: BreakReason::Gap { expected_seq: self.next_seq } });
        }
        let computed = if event.is_keyed() {
            self.keyed = true;
            match &self.key {
                Some(key) => key.sign(&event.content()),
                None => return Err(ChainBreak { seq: event.seq, reason: BreakReason::KeyNeeded }),
            }
        } else if self.keyed {
            return Err(ChainBreak { seq: event.seq, reason: BreakReason::NotKeyed });
        } else {
            event.content_hash()
        };
        if computed != event.hash {
            return Err(ChainBreak {
                seq: event.seq,
                reason: BreakReason::ContentAltered { stored: event.hash.clone(), computed },
            });
        }
        if event.prev_hash != self.prev_hash {
            return Err(ChainBreak {
                seq: event.seq,
                reason: BreakReason::LinkBroken {
                    expected_prev: self.prev_hash.clone(),
                    stored_prev: event.prev_hash.clone(),
                },
            });
        }
        self.next_seq += 1;
        self.prev_hash.clone_from(&event.hash);
        self.checked += 1;
        Ok(())
    }

    /// Checks that the chain reaches the head the store recorded (seq and hash of the last
    /// appended event); `None` means nothing was ever appended.
    pub fn finish(&self, head: Option<(i64, &str)>) -> Result<u64, ChainBreak> {
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH));
        if head_seq == self.next_seq - 1 && head_hash == self.prev_hash {
            return Ok(self.checked);
        }
        Err(ChainBreak {
            seq: self.next_seq,
            reason: BreakReason::Truncated { head_seq, head_hash: head_hash.to_owned() },
        })
    }

    /// Events checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let draft = AuditEventDraft {
                    occurred_at: Utc.timestamp_opt(1_700_000_000 + seq, 123_456_789).single().unwrap_or_default(),
                    actor: "ada@contoso.com".into(),
                    action: "grant.revoked".into(),
                    target_kind: Some("grant".into()),
                    target_id: Some(seq.to_string()),
                    details: serde_json::json!({"n": seq}),
                };
                let event = AuditEvent::seal(draft, seq, &prev, None);
                prev.clone_from(&event.hash);
                event
            })
            .collect()
    }

    fn verify(events: &[AuditEvent], head: Option<(i64, &str)>) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::default();
        for event in events {
            verifier.check(event)?;
        }
        verifier.finish(head)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        let last = &events[4];
        assert_eq!(verify(&events, Some((5, &last.hash))), Ok(5));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn sealing_truncates_to_microseconds() {
        let events = chain(1);
        assert_eq!(events[0].occurred_at.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn an_edited_row_is_named() {
        let mut events = chain(5);
        events[2].actor = "mallory@contoso.com".into();
        let head = events[4].hash.clone();
        let err = verify(&events, Some((5, &head))).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(matches!(err.reason, BreakReason::ContentAltered { .. }));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let mut events = chain(5);
        events[2].actor = "mallory@contoso.com".into();
        events[2].hash = events[2].content_hash();
        let head = events[4].hash.clone();
        let err = verify(&events, Some((5, &head))).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(matches!(err.reason, BreakReason::LinkBroken { .. }));
    }

    #[test]
    fn deleted_rows_are_a_gap() {
        let mut events = chain(5);
        events.remove(1);
        let head = events[3].hash.clone();
        let err = verify(&events, Some((5, &head))).unwrap_err();
        assert_eq!(err, ChainBreak { seq: 3, reason: BreakReason::Gap { expected_seq: 2 } });
        assert_eq!(err.to_string(), "events 2..2 are missing: they were deleted");
    }

    #[test]
    fn a_cut_tail_is_caught_against_the_head() {
        let events = chain(5);
        let head = events[4].hash.clone();
        let err = verify(&events[..3], Some((5, &head))).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(matches!(err.reason, BreakReason::Truncated { head_seq: 5, .. }));
    }

    #[test]
    fn optional_fields_are_not_confused_with_empty_ones() {
        let mut a = chain(1).remove(0);
        let before = a.content_hash();
        a.target_kind = Some(String::new());
        assert_ne!(before, a.content_hash());
    }

    #[test]
    fn a_keyed_chain_cannot_be_rewritten_without_the_key() {
        let key = ChainKey::new(&[7u8; 32]);
        let draft = |n: i64| AuditEventDraft {
            occurred_at: chrono::TimeZone::timestamp_opt(&Utc, 1_800_000_000 + n, 0).single().unwrap(),
            actor: "ada@contoso.com".into(),
            action: "change.approved".into(),
            target_kind: Some("change".into()),
            target_id: Some(n.to_string()),
            details: serde_json::json!({"n": n}),
        };
        // Two plain events from before keying, then three keyed ones.
        let mut events = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for seq in 1..=5 {
            let event = AuditEvent::seal(draft(seq), seq, &prev, (seq > 2).then_some(&key));
            prev.clone_from(&event.hash);
            events.push(event);
        }
        assert!(!events[1].is_keyed() && events[2].is_keyed());
        let verify = |events: &[AuditEvent], key: Option<&ChainKey>| {
            let mut v = key.map_or_else(ChainVerifier::default, |k| ChainVerifier::keyed(k.clone()));
            for e in events {
                v.check(e)?;
            }
            v.finish(events.last().map(|e| (e.seq, e.hash.as_str())))
        };
        assert_eq!(verify(&events, Some(&key)), Ok(5));
        assert_eq!(verify(&events, None).unwrap_err().reason, BreakReason::KeyNeeded);
        // Someone with the database but not the key rewrites event 4 and rehashes from there.
        let mut forged = events.clone();
        forged[3].actor = "eve@contoso.com".into();
        let mut prev = forged[2].hash.clone();
        for e in forged.iter_mut().skip(3) {
            e.prev_hash.clone_from(&prev);
            e.hash = e.content_hash();
            prev.clone_from(&e.hash);
        }
        let broken = verify(&forged, Some(&key)).unwrap_err();
        assert_eq!((broken.seq, broken.reason), (4, BreakReason::NotKeyed));
        // Or signs with a key of their own.
        let theirs = ChainKey::new(&[9u8; 32]);
        for e in forged.iter_mut().skip(3) {
            e.hash = theirs.sign(&e.content());
        }
        assert!(matches!(verify(&forged, Some(&key)).unwrap_err().reason, BreakReason::ContentAltered { .. }));
        // Rewriting a plain event before the keyed ones breaks the first keyed event's link.
        let mut early = events.clone();
        early[0].actor = "eve@contoso.com".into();
        early[0].hash = early[0].content_hash();
        early[1].prev_hash = early[0].hash.clone();
        early[1].hash = early[1].content_hash();
        assert_eq!(verify(&early, Some(&key)).unwrap_err().seq, 3);
    }
}
