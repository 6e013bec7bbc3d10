//! Sending: claim a due mail, send it over SMTP, record how it went.

use std::sync::Arc;
use std::time::Duration;

use attest_config::{MailConfig, SmtpSecurity};
use attest_domain::{Mail, MailState, SharedClock, mail_retry_delay};
use attest_jobs::{Ran, Runner};
use attest_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::NotifyError;

/// How a sender works.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// How long a claimed mail is this sender's before another may take it over (its sender
    /// presumably died). At least twice `timeout` (raised to that), so a slow send is never
    /// taken over mid-way.
    pub lease: Duration,
    /// Mails sent per [`Sender::send_due`] at most.
    pub batch: u32,
    /// How long an idle sender waits before looking again (a [`Waker`] cuts it short).
    pub poll: Duration,
    /// How long sending one mail may take, connecting included; also the SMTP client's limit
    /// per command.
    pub timeout: Duration,
    /// CA certificates (PEM) to trust besides the system's, e.g. a company's private CA.
    pub extra_roots: Vec<Vec<u8>>,
    /// What tells the time while sending (the system's, or a test's).
    pub clock: SharedClock,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            lease: Duration::from_secs(5 * 60),
            batch: 20,
            poll: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            extra_roots: Vec::new(),
            clock: attest_domain::clock::system(),
        }
    }
}

/// What one [`Sender::send_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCounts {
    /// Accepted by the SMTP server.
    pub sent: u32,
    /// Failed transiently; tried again later.
    pub retried: u32,
    /// Given up for good.
    pub failed: u32,
    /// Claimed, but the lease was lost before the outcome could be recorded (another sender
    /// took the mail over).
    pub lost: u32,
}

impl SendCounts {
    /// Mails claimed.
    pub fn total(&self) -> u32 {
        self.sent + self.retried + self.failed + self.lost
    }
}

/// Wakes an idle sender, e.g. when a mail was just queued.
#[derive(Debug, Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Sends the outbox's mail. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Names this sender in leases.
    owner: String,
    from: Mailbox,
    /// The domain of `Message-ID`s: the sender's.
    domain: String,
    max_attempts: u32,
    /// `None`: mail is kept, never sent.
    smtp: Option<Smtp>,
    options: SenderOptions,
    waker: Waker,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    security: SmtpSecurity,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let smtp = self.inner.smtp.as_ref().map(|s| format!("{}:{} ({})", s.host, s.port, s.security.as_str()));
        f.debug_struct("Sender").field("owner", &self.inner.owner).field("smtp", &smtp).finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender with the default options. `instance_name` names it in leases (e.g. `host:pid`).
    pub fn new(store: Store, config: MailConfig, instance_name: impl Into<String>) -> Result<Sender, NotifyError> {
        Sender::with_options(store, config, instance_name, SenderOptions::default())
    }

    pub fn with_options(
        store: Store,
        config: MailConfig,
        instance_name: impl Into<String>,
        options: SenderOptions,
    ) -> Result<Sender, NotifyError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| NotifyError::Config { key: "mail.from", message: format!("'{}': {e}", config.from) })?;
        let domain = from.email.domain().to_owned();
        let smtp = match &config.smtp_host {
            None => None,
            Some(host) => Some(Smtp {
                transport: transport(&config, host, &options)?,
                host: host.clone(),
                port: config.smtp_port,
                security: config.smtp_security,
            }),
        };
        let options = SenderOptions { lease: options.lease.max(options.timeout.saturating_mul(2)), ..options };
        let inner = Inner {
            store,
            owner: instance_name.into(),
            from,
            domain,
            max_attempts: config.max_attempts.max(1),
            smtp,
            options,
            waker: Waker::default(),
        };
        Ok(Sender { inner: Arc::new(inner) })
    }

    /// Whether mail is kept instead of sent (no SMTP server is configured).
    pub fn keeps_mail(&self) -> bool {
        self.inner.smtp.is_none()
    }

    /// Wakes this sender's [`run`](Sender::run) loop (give it to [`Outbox::with_waker`](crate::Outbox::with_waker)).
    pub fn waker(&self) -> Waker {
        self.inner.waker.clone()
    }

    /// Sends the mail due at `now`, up to a batch, one at a time: claim, send, record. Time
    /// moves on from `now` as sending takes time. Keeping mail, it does nothing.
    pub async fn send_due(&self, now: DateTime<Utc>) -> Result<SendCounts, NotifyError> {
        self.send_batch(now, None).await
    }

    /// Sends mail as it comes due until `shutdown` says stop, finishing the mail in hand.
    /// Keeping mail, it says so once and waits for the stop.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let Some(smtp) = &self.inner.smtp else {
            tracing::info!("mail.smtp_host is not set: mail is kept in the outbox and not sent");
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            return;
        };
        tracing::info!(
            sender = %self.inner.owner,
            host = %smtp.host,
            port = smtp.port,
            security = smtp.security.as_str(),
            "sending mail through SMTP"
        );
        let options = &self.inner.options;
        Runner::new("mail", options.clock.clone(), options.poll)
            .woken_by(self.inner.waker.0.clone())
            .run(shutdown.clone(), |now| {
                let shutdown = shutdown.clone();
                async move {
                    let counts = self.send_batch(now, Some(&shutdown)).await?;
                    // A full batch: there may be more due.
                    Ok::<_, NotifyError>(if counts.total() < options.batch { Ran::Idle } else { Ran::More })
                }
            })
            .await;
    }

    async fn send_batch(
        &self,
        now: DateTime<Utc>,
        shutdown: Option<&watch::Receiver<bool>>,
    ) -> Result<SendCounts, NotifyError> {
        let mut counts = SendCounts::default();
        let Some(smtp) = &self.inner.smtp else { return Ok(counts) };
        let started = tokio::time::Instant::now();
        let clock = || now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        let inner = &self.inner;
        for _ in 0..inner.options.batch.max(1) {
            if shutdown.is_some_and(|s| *s.borrow()) {
                break;
            }
            // One at a time: a claim covers one send, and nothing is left claimed when stopping.
            let Some(mail) =
                inner.store.outbox().claim_mail(&inner.owner, clock(), inner.options.lease, 1).await?.pop()
            else {
                break;
            };
            self.send_one(smtp, mail, &clock, &mut counts).await?;
        }
        Ok(counts)
    }

    async fn send_one(
        &self,
        smtp: &Smtp,
        mail: Mail,
        clock: &impl Fn() -> DateTime<Utc>,
        counts: &mut SendCounts,
    ) -> Result<(), NotifyError> {
        let inner = &self.inner;
        if mail.attempts > inner.max_attempts {
            // Every earlier claim ended without an outcome (its sender stopped mid-send, again
            // and again): do not let one mail take senders down forever.
            let error = format!(
                "gave up: {} attempts started and none finished (the senders stopped mid-send)",
                mail.attempts - 1
            );
            let recorded = inner.store.outbox().record_mail_failed(mail.id, &inner.owner, &error, None, clock()).await;
            return self.count(recorded, &mail, Some(&error), counts);
        }
        let failure = match self.message(&mail) {
            Err(reason) => {
                Some(Failure { permanent: true, logged: "the mail cannot be built".into(), recorded: reason })
            }
            Ok(message) => match tokio::time::timeout(inner.options.timeout, smtp.transport.send(message)).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(classify(&e)),
                Err(_) => {
                    let text = format!(
                        "no answer from the SMTP server {}:{} within {} s",
                        smtp.host,
                        smtp.port,
                        inner.options.timeout.as_secs()
                    );
                    Some(Failure { permanent: false, logged: text.clone(), recorded: text })
                }
            },
        };
        let now = clock();
        let recorded = match &failure {
            None => inner.store.outbox().record_mail_sent(mail.id, &inner.owner, now).await,
            Some(f) if f.permanent => {
                inner.store.outbox().record_mail_failed(mail.id, &inner.owner, &f.recorded, None, now).await
            }
            Some(f) if mail.attempts >= inner.max_attempts => {
                let error = format!("gave up after {} attempts; the last said: {}", mail.attempts, f.recorded);
                inner.store.outbox().record_mail_failed(mail.id, &inner.owner, &error, None, now).await
            }
            Some(f) => {
                let delay = jittered(mail_retry_delay(mail.attempts), &mail);
                let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                inner.store.outbox().record_mail_failed(mail.id, &inner.owner, &f.recorded, Some(next), now).await
            }
        };
        self.count(recorded, &mail, failure.as_ref().map(|f| f.logged.as_str()), counts)
    }

    /// Counts and logs a recorded outcome; a lost lease is counted, not an error.
    fn count(
        &self,
        recorded: Result<Mail, StoreError>,
        mail: &Mail,
        logged: Option<&str>,
        counts: &mut SendCounts,
    ) -> Result<(), NotifyError> {
        let recorded = match recorded {
            Ok(recorded) => recorded,
            Err(why @ StoreError::LeaseLost { .. }) => {
                tracing::warn!(mail = mail.id.0, template = %mail.template, reason = %why, "mail outcome not recorded");
                counts.lost += 1;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let (id, template, attempts) = (recorded.id.0, &recorded.template, recorded.attempts);
        let logged = logged.unwrap_or_default();
        match recorded.state {
            MailState::Sent => {
                counts.sent += 1;
                tracing::info!(mail = id, %template, attempts, "mail sent");
            }
            MailState::Pending => {
                counts.retried += 1;
                let next_attempt_at = recorded.next_attempt_at.to_rfc3339();
                tracing::warn!(mail = id, %template, attempts, error = logged, %next_attempt_at, "mail not sent; will retry");
            }
            _ => {
                counts.failed += 1;
                tracing::warn!(mail = id, %template, attempts, error = logged, "mail not sent; given up");
            }
        }
        tracing::debug!(mail = id, recipient = %recorded.recipient, state = %recorded.state, "mail outcome");
        Ok(())
    }

    /// The mail as sent: text and HTML alternatives, dated when it was queued, with a
    /// `Message-ID` derived from its idempotency key (a resend is the same message).
    fn message(&self, mail: &Mail) -> Result<Message, String> {
        let to: Mailbox =
            mail.recipient.parse().map_err(|e| format!("'{}' is not an email address: {e}", mail.recipient))?;
        Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(message_id(&mail.idempotency_key, &self.inner.domain)))
            .date(std::time::SystemTime::from(mail.created_at))
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), mail.html_body.clone()))
            .map_err(|e| format!("the mail cannot be built: {e}"))
    }
}

/// How an attempt failed: what is recorded on the mail, and what may be logged (no recipient,
/// so for SMTP replies the code only).
struct Failure {
    permanent: bool,
    recorded: String,
    logged: String,
}

/// A 5xx reply is final for the mail, except those about the session (authentication required
/// or refused, STARTTLS required): that is the configuration's fault, not the mail's, and is
/// retried (and then given up) like an outage. Everything else (4xx, connection,
/// TLS, timeouts) is transient.
fn classify(error: &lettre::transport::smtp::Error) -> Failure {
    let code = error.status().map(u16::from);
    let logged = match code {
        Some(code) => format!("the SMTP server answered {code}"),
        None => error.to_string(),
    };
    match code {
        Some(530 | 534 | 535 | 538) => Failure {
            permanent: false,
            recorded: format!(
                "the SMTP server refused the session: it wants other credentials or TLS first (check \
                 mail.smtp_username, mail.smtp_password and mail.smtp_security): {error}"
            ),
            logged,
        },
        Some(_) if error.is_permanent() => {
            Failure { permanent: true, recorded: format!("refused by the SMTP server: {error}"), logged }
        }
        _ => Failure { permanent: false, recorded: error.to_string(), logged },
    }
}

/// The `Message-ID` of the mail queued under `key`, sent from an address at `domain`: the same
/// for every attempt at one mail (so a resend after a crash is recognisable), different for
/// every mail.
pub fn message_id(key: &str, domain: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("<{}.attest@{domain}>", hex::encode(&digest[..16]))
}

/// Up to 25 % more, so mails failing together do not come back together; derived from the
/// mail and attempt, so it is reproducible.
fn jittered(delay: Duration, mail: &Mail) -> Duration {
    let digest = Sha256::digest(format!("{}:{}", mail.idempotency_key, mail.attempts).as_bytes());
    let spread = u16::from_be_bytes([digest[0], digest[1]]);
    delay.mul_f64(1.0 + 0.25 * f64::from(spread) / f64::from(u16::MAX))
}

fn transport(
    config: &MailConfig,
    host: &str,
    options: &SenderOptions,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    let tls_error = |e: lettre::transport::smtp::Error| NotifyError::Config {
        key: "mail.smtp_security",
        message: format!("TLS to {host} cannot be set up: {e}"),
    };
    let tls = match config.smtp_security {
        SmtpSecurity::Plain => Tls::None,
        security => {
            let mut parameters = TlsParameters::builder(host.to_owned());
            for pem in &options.extra_roots {
                parameters = parameters.add_root_certificate(Certificate::from_pem(pem).map_err(tls_error)?);
            }
            let parameters = parameters.build_rustls().map_err(tls_error)?;
            if security == SmtpSecurity::StartTls { Tls::Required(parameters) } else { Tls::Wrapper(parameters) }
        }
    };
    // "Dangerous" only means no TLS by default; it is set just above.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(config.smtp_port)
        .tls(tls)
        .timeout(Some(options.timeout));
    if let (Some(user), Some(password)) = (&config.smtp_username, &config.smtp_password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

/// `Auto-Submitted: auto-generated` (RFC 3834): mail from a program, so out-of-office replies
/// are not sent back.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_follow_the_key() {
        let a = message_id("change_failed:7:ada@contoso.com", "example.com");
        assert_eq!(a, message_id("change_failed:7:ada@contoso.com", "example.com"));
        assert_ne!(a, message_id("change_failed:8:ada@contoso.com", "example.com"));
        assert!(a.starts_with('<') && a.ends_with(".attest@example.com>") && a.len() == 1 + 32 + 20, "{a}");
    }
}
