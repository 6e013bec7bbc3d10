//! Attest's email.
//!
//! A mail is rendered from its template when it is queued ([`Outbox::enqueue`]) and stored,
//! rendered, in the database's outbox under an idempotency key, so asking twice queues it once
//! and a later template change never alters a mail already waiting. The [`Sender`] claims due
//! mail with a lease, sends each as `multipart/alternative` (text and HTML) over SMTP, and
//! records the outcome: sent, tried again later with exponential backoff and jitter, or failed
//! for good (refused permanently by the server, or out of attempts). A sender that dies
//! mid-send leaves its lease to expire and the mail is sent by whoever claims it next; its
//! `Message-ID` is derived from the idempotency key, so a resend is recognisable as the same mail.
//!
//! Without an SMTP server (`mail.smtp_host` unset) mail is *kept*: queued in state `kept`,
//! never sent, nothing connected to. That is the demo's mode, and any install's until it sets
//! one up.
//!
//! Logs name the mail's id, template and (at debug level) recipient, never bodies or passwords.

mod outbox;
mod sender;
mod templates;
#[cfg(feature = "test-smtp")]
pub mod test_smtp;

pub use outbox::{Email, Outbox, is_email_address};
pub use sender::{SendCounts, Sender, SenderOptions, Waker, message_id};
pub use templates::{DigestLine, PermissionLine, Rendered, TEMPLATE_NAMES, Template, Templates, describe, engine};

/// What went wrong in the mail subsystem. How one mail's sending went is recorded on the mail,
/// not returned as an error.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The outbox could not be read or written.
    #[error(transparent)]
    Store(#[from] attest_store::StoreError),
    /// A template did not compile or render.
    #[error("mail template {template}: {message}")]
    Template { template: &'static str, message: String },
    /// A recipient is not an email address.
    #[error("cannot send mail to '{address}': {reason}")]
    InvalidRecipient { address: String, reason: String },
    /// The mail configuration cannot be used (e.g. `mail.from` is not a mailbox, TLS cannot be set up).
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
}
