//! The mail subsystem against a real SMTP server (aiosmtpd, `apt-get install python3-aiosmtpd`)
//! and a real database, on SQLite and on PostgreSQL. Time is passed in: retries and leases are
//! exercised by moving `now`, not by waiting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use attest_config::{MailConfig, SmtpSecurity};
use attest_domain::{ChangeId, Mail, MailState};
use attest_domain::{Clock as _, SystemClock};
use attest_notify::test_smtp::{Handler, ServerTls, SmtpServer, decode_quoted_printable, fixture, free_port, header};
use attest_notify::{Email, Outbox, SendCounts, Sender, SenderOptions, Template, message_id};
use attest_store::{Store, StoreError, store_test};
use chrono::{DateTime, TimeZone, Utc};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
}

const DEADLINE: Duration = Duration::from_secs(15);

fn config(port: u16) -> MailConfig {
    MailConfig {
        from: "Attest <attest@example.com>".into(),
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: port,
        smtp_security: SmtpSecurity::Plain,
        ..MailConfig::default()
    }
}

fn approval(key: &str, to: &str) -> Email {
    Email {
        key: key.into(),
        to: to.into(),
        template: Template::ChangeAwaitingApproval {
            change_id: ChangeId(42),
            description: "Add Ada Lovelace to group Finance".into(),
            requested_by: "Grace Hopper".into(),
            reason: None,
            approve_url: "https://attest.example.com/changes/42".into(),
        },
    }
}

async fn queue(store: &Store, config: &MailConfig, email: Email, now: DateTime<Utc>) -> Mail {
    Outbox::new(store.clone(), config).unwrap().enqueue(email, now).await.unwrap()
}

fn counts(sent: u32, retried: u32, failed: u32) -> SendCounts {
    SendCounts { sent, retried, failed, lost: 0 }
}

store_test!(a_queued_mail_is_delivered_with_from_to_subject_and_both_parts, |store| {
    let server = SmtpServer::start(free_port(), Handler::Maildir, ServerTls::None).await;
    let config = config(server.port);
    let queued = queue(&store, &config, approval("approval:42:ada", "ada@contoso.com"), t(0)).await;
    assert_eq!(queued.state, MailState::Pending);
    assert_eq!(queued.subject, "Approval needed: Add Ada Lovelace to group Finance (change 42)");

    let sender = Sender::new(store.clone(), config.clone(), "test-sender").unwrap();
    assert_eq!(sender.send_due(t(1)).await.unwrap(), counts(1, 0, 0));
    let messages = server.wait_for(1).await;
    let message = &messages[0];
    assert_eq!(header(message, "From"), Some("Attest <attest@example.com>"), "{message}");
    assert_eq!(header(message, "To"), Some("ada@contoso.com"), "{message}");
    assert_eq!(header(message, "X-RcptTo"), Some("ada@contoso.com"), "the envelope: {message}");
    assert_eq!(header(message, "X-MailFrom"), Some("attest@example.com"), "the envelope: {message}");
    assert_eq!(header(message, "Subject"), Some(queued.subject.as_str()), "{message}");
    assert_eq!(header(message, "Message-ID"), Some(message_id("approval:42:ada", "example.com").as_str()));
    assert_eq!(header(message, "Auto-Submitted"), Some("auto-generated"), "{message}");
    assert!(header(message, "Content-Type").is_some_and(|v| v.starts_with("multipart/alternative")), "{message}");
    assert!(message.contains("Content-Type: text/plain; charset=utf-8"), "{message}");
    assert!(message.contains("Content-Type: text/html; charset=utf-8"), "{message}");
    assert!(message.contains("Grace Hopper asked for a change that needs a second person's approval"), "{message}");
    let decoded = decode_quoted_printable(message);
    assert!(decoded.contains("<strong>Grace Hopper</strong> asked for a change"), "{decoded}");
    assert!(decoded.contains(">Review change 42</a>"), "{decoded}");

    let sent = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((sent.state, sent.attempts, sent.sent_at.is_some()), (MailState::Sent, 1, true));
    // The same key again queues nothing; nothing more is sent.
    let again = queue(&store, &config, approval("approval:42:ada", "ada@contoso.com"), t(2)).await;
    assert_eq!(again.id, queued.id);
    assert_eq!(sender.send_due(t(3)).await.unwrap(), SendCounts::default());
    assert_eq!(server.messages().len(), 1);
});

store_test!(an_unreachable_server_is_retried_and_the_mail_delivered_once_it_is_up, |store| {
    let port = free_port();
    let config = config(port);
    let queued = queue(&store, &config, approval("approval:42:ada", "ada@contoso.com"), t(0)).await;
    let sender = Sender::new(store.clone(), config, "test-sender").unwrap();

    // Nobody listens: the attempt fails transiently and is scheduled with backoff and jitter.
    assert_eq!(sender.send_due(t(0)).await.unwrap(), counts(0, 1, 0));
    let waiting = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((waiting.state, waiting.attempts, waiting.lease_owner.as_deref()), (MailState::Pending, 1, None));
    let delay = (waiting.next_attempt_at - t(0)).num_milliseconds();
    assert!((30_000..=37_600).contains(&delay), "30 s plus up to 25 %: {delay} ms");
    let error = waiting.last_error.unwrap();
    assert!(error.contains("Connection error") || error.contains("refused"), "{error}");
    assert_eq!(sender.send_due(t(20)).await.unwrap(), SendCounts::default(), "not due yet");

    // The server comes up; at its time the mail goes out.
    let server = SmtpServer::start(port, Handler::Maildir, ServerTls::None).await;
    assert_eq!(sender.send_due(waiting.next_attempt_at).await.unwrap(), counts(1, 0, 0));
    assert_eq!(server.wait_for(1).await.len(), 1);
    let sent = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((sent.state, sent.attempts), (MailState::Sent, 2));
    assert_eq!(sent.last_error, Some(error), "the last failure stays on record");
});

store_test!(a_mail_claimed_by_a_crashed_sender_is_sent_exactly_once_after_its_lease_expires, |store| {
    let server = SmtpServer::start(free_port(), Handler::Maildir, ServerTls::None).await;
    let config = config(server.port);
    let queued = queue(&store, &config, approval("approval:42:ada", "ada@contoso.com"), t(0)).await;

    // A sender claims the mail and dies before sending or recording anything.
    let lease = Duration::from_secs(300);
    assert_eq!(store.outbox().claim_mail("crashed-sender", t(1), lease, 10).await.unwrap().len(), 1);

    let options = SenderOptions { lease, ..SenderOptions::default() };
    let sender = Sender::with_options(store.clone(), config, "test-sender", options).unwrap();
    assert_eq!(sender.send_due(t(60)).await.unwrap(), SendCounts::default(), "still leased to the crashed sender");
    assert!(server.messages().is_empty());
    assert_eq!(sender.send_due(t(302)).await.unwrap(), counts(1, 0, 0), "its lease expired");
    assert_eq!(server.wait_for(1).await.len(), 1);

    // The crashed sender comes back: it can record nothing, and nothing is sent again.
    let late = store.outbox().record_mail_sent(queued.id, "crashed-sender", t(303)).await.unwrap_err();
    assert!(matches!(late, StoreError::LeaseLost { what: "mail", .. }), "{late}");
    assert_eq!(sender.send_due(t(10_000)).await.unwrap(), SendCounts::default());
    let sent = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((sent.state, sent.attempts), (MailState::Sent, 2));
    assert_eq!(server.messages().len(), 1, "exactly once");
});

store_test!(a_mail_whose_senders_keep_dying_is_given_up_not_claimed_forever, |store| {
    let server = SmtpServer::start(free_port(), Handler::Maildir, ServerTls::None).await;
    let config = MailConfig { max_attempts: 2, ..config(server.port) };
    let queued = queue(&store, &config, approval("approval:42:ada", "ada@contoso.com"), t(0)).await;
    let lease = Duration::from_secs(60);
    assert_eq!(store.outbox().claim_mail("died-1", t(0), lease, 10).await.unwrap().len(), 1);
    assert_eq!(store.outbox().claim_mail("died-2", t(61), lease, 10).await.unwrap().len(), 1);
    let options = SenderOptions { lease, ..SenderOptions::default() };
    let sender = Sender::with_options(store.clone(), config, "test-sender", options).unwrap();
    assert_eq!(sender.send_due(t(122)).await.unwrap(), counts(0, 0, 1));
    let failed = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((failed.state, failed.attempts), (MailState::Failed, 3));
    assert!(failed.last_error.unwrap().contains("2 attempts started and none finished"));
    assert!(server.messages().is_empty());
});

store_test!(without_an_smtp_server_mail_is_kept_and_nothing_is_sent, |store| {
    let config = MailConfig::default();
    assert!(config.keeps_mail());
    let outbox = Outbox::new(store.clone(), &config).unwrap();
    assert!(outbox.keeps_mail());
    let kept = outbox.enqueue(approval("approval:42:ada", "ada@contoso.com"), t(0)).await.unwrap();
    assert_eq!((kept.state, kept.attempts), (MailState::Kept, 0));
    assert!(kept.html_body.contains("Grace Hopper"), "rendered all the same, to be read in the outbox");

    let sender = Sender::new(store.clone(), config, "test-sender").unwrap();
    assert!(sender.keeps_mail());
    assert_eq!(sender.send_due(t(1)).await.unwrap(), SendCounts::default());
    assert!(store.outbox().claim_mail("anyone", t(10_000), Duration::from_secs(60), 10).await.unwrap().is_empty());
    let after = store.outbox().get_mail(kept.id).await.unwrap();
    assert_eq!((after.state, after.attempts, after.last_error), (MailState::Kept, 0, None));

    // Running, it waits for the stop and returns.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let sender = sender.clone();
        async move { sender.run(shutdown).await }
    });
    stop.send(true).unwrap();
    tokio::time::timeout(DEADLINE, running).await.unwrap().unwrap();
    assert_eq!(store.outbox().get_mail(kept.id).await.unwrap().state, MailState::Kept);
});

store_test!(a_server_that_stays_down_fails_the_mail_after_max_attempts, |store| {
    let config = MailConfig { max_attempts: 3, ..config(free_port()) };
    let queued = queue(&store, &config, approval("approval:42:ada", "ada@contoso.com"), t(0)).await;
    let sender = Sender::new(store.clone(), config, "test-sender").unwrap();
    let mut at = t(0);
    for attempt in 1..=2 {
        assert_eq!(sender.send_due(at).await.unwrap(), counts(0, 1, 0), "attempt {attempt}");
        let mail = store.outbox().get_mail(queued.id).await.unwrap();
        assert_eq!((mail.state, mail.attempts), (MailState::Pending, attempt));
        assert!(mail.next_attempt_at > at);
        at = mail.next_attempt_at;
    }
    assert_eq!(sender.send_due(at).await.unwrap(), counts(0, 0, 1));
    let failed = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((failed.state, failed.attempts), (MailState::Failed, 3));
    let error = failed.last_error.unwrap();
    assert!(error.starts_with("gave up after 3 attempts; the last said: "), "{error}");
    assert_eq!(sender.send_due(at + chrono::Duration::days(1)).await.unwrap(), SendCounts::default());
});

store_test!(a_permanent_rejection_fails_the_mail_at_once, |store| {
    let server = SmtpServer::start(free_port(), Handler::Reject, ServerTls::None).await;
    let config = config(server.port);
    let queued = queue(&store, &config, approval("approval:42:nobody", "nobody@contoso.com"), t(0)).await;
    let sender = Sender::new(store.clone(), config, "test-sender").unwrap();
    assert_eq!(sender.send_due(t(0)).await.unwrap(), counts(0, 0, 1));
    let failed = store.outbox().get_mail(queued.id).await.unwrap();
    assert_eq!((failed.state, failed.attempts), (MailState::Failed, 1));
    let error = failed.last_error.unwrap();
    assert!(error.contains("550") && error.contains("no such user here"), "{error}");
});

store_test!(tls_is_used_and_checked_for_starttls_and_implicit_tls, |store| {
    let ca = std::fs::read(fixture("ca.pem")).unwrap();
    for (tls, security, key) in
        [(ServerTls::StartTls, SmtpSecurity::StartTls, "k-starttls"), (ServerTls::Implicit, SmtpSecurity::Tls, "k-tls")]
    {
        let server = SmtpServer::start(free_port(), Handler::Maildir, tls).await;
        let config = MailConfig { smtp_security: security, ..config(server.port) };
        let queued = queue(&store, &config, approval(key, "ada@contoso.com"), t(0)).await;

        // Not trusting the test CA, the certificate is refused and nothing is sent.
        let untrusting = Sender::new(store.clone(), config.clone(), "untrusting").unwrap();
        assert_eq!(untrusting.send_due(t(0)).await.unwrap(), counts(0, 1, 0));
        let refused = store.outbox().get_mail(queued.id).await.unwrap();
        let error = refused.last_error.clone().unwrap();
        assert!(error.contains("tls") || error.contains("certificate"), "{error}");
        assert!(server.messages().is_empty());

        let options = SenderOptions { extra_roots: vec![ca.clone()], ..SenderOptions::default() };
        let trusting = Sender::with_options(store.clone(), config, "trusting", options).unwrap();
        assert_eq!(trusting.send_due(refused.next_attempt_at).await.unwrap(), counts(1, 0, 0));
        assert_eq!(server.wait_for(1).await.len(), 1);
    }
});

store_test!(a_running_sender_sends_when_woken_and_stops_when_told, |store| {
    let server = SmtpServer::start(free_port(), Handler::Maildir, ServerTls::None).await;
    let config = config(server.port);
    // It would look again only after an hour: the mail goes out because the outbox wakes it.
    let options = SenderOptions { poll: Duration::from_secs(3600), ..SenderOptions::default() };
    let sender = Sender::with_options(store.clone(), config.clone(), "test-sender", options).unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let sender = sender.clone();
        async move { sender.run(shutdown).await }
    });
    let outbox = Outbox::new(store.clone(), &config).unwrap().with_waker(sender.waker());
    let queued = outbox.enqueue(approval("approval:42:ada", "ada@contoso.com"), SystemClock.now()).await.unwrap();
    assert_eq!(server.wait_for(1).await.len(), 1);
    let started = tokio::time::Instant::now();
    while store.outbox().get_mail(queued.id).await.unwrap().state != MailState::Sent {
        assert!(started.elapsed() < DEADLINE, "the sent mail is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(DEADLINE, running).await.unwrap().unwrap();
});
