//! Queueing mail: render, then store under its idempotency key.

use std::sync::Arc;

use attest_config::MailConfig;
use attest_domain::{Mail, NewMail};
use attest_store::Store;
use chrono::{DateTime, Utc};

use crate::NotifyError;
use crate::sender::Waker;
use crate::templates::{Rendered, Template, Templates};

/// Whether `text` is one email address (what a mail can be sent to), e.g. to tell a requester
/// named by email from one named otherwise.
pub fn is_email_address(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && text.parse::<lettre::Address>().is_ok()
}

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// What makes this mail unique, so asking twice queues it once, e.g.
    /// `change_awaiting_approval:42:ada@contoso.com`.
    pub key: String,
    /// One email address.
    pub to: String,
    pub template: Template,
}

/// Where mail is queued. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    templates: Arc<Templates>,
    keep: bool,
    waker: Option<Waker>,
}

impl Outbox {
    /// An outbox over `store`; without an SMTP server in `config`, mail is queued as `kept`.
    pub fn new(store: Store, config: &MailConfig) -> Result<Outbox, NotifyError> {
        Ok(Outbox { store, templates: Arc::new(Templates::new()?), keep: config.keeps_mail(), waker: None })
    }

    /// Wakes this sender whenever a mail is queued, so it goes out at once instead of at the
    /// sender's next look.
    pub fn with_waker(self, waker: Waker) -> Outbox {
        Outbox { waker: Some(waker), ..self }
    }

    /// Whether mail is kept instead of sent.
    pub fn keeps_mail(&self) -> bool {
        self.keep
    }

    /// Renders `email` and queues it (or keeps it), unless a mail with the same key is already
    /// queued: then that mail is returned, unchanged.
    pub async fn enqueue(&self, email: Email, now: DateTime<Utc>) -> Result<Mail, NotifyError> {
        let to = email.to.trim();
        if let Err(e) = to.parse::<lettre::Address>() {
            return Err(NotifyError::InvalidRecipient { address: email.to.clone(), reason: e.to_string() });
        }
        let Rendered { subject, text, html } = self.templates.render(&email.template)?;
        let new = NewMail {
            idempotency_key: email.key,
            template: email.template.name().to_owned(),
            recipient: to.to_owned(),
            subject,
            text_body: text,
            html_body: html,
            keep: self.keep,
        };
        let mail = self.store.outbox().enqueue_mail(&new, now).await?;
        tracing::debug!(mail = mail.id.0, template = %mail.template, recipient = %mail.recipient, state = %mail.state, "mail queued");
        if let Some(waker) = &self.waker {
            waker.wake();
        }
        Ok(mail)
    }

    /// Renders a mail without queueing it (a preview).
    pub fn render(&self, template: &Template) -> Result<Rendered, NotifyError> {
        self.templates.render(template)
    }
}

#[cfg(test)]
mod tests {
    use super::is_email_address;

    #[test]
    fn email_addresses_are_told_from_other_names() {
        assert!(is_email_address("ada@contoso.com") && is_email_address(" Ada.Lovelace@Contoso.COM "));
        for not in ["", "system", "tenant-1/0000-1111", "Ada <ada@contoso.com>", "ada@", "@contoso.com", "a b@c.d"] {
            assert!(!is_email_address(not), "{not}");
        }
    }
}
