//! Mail from `attest serve` as people get it: a change waiting for approval is mailed to who can
//! approve it, a failed change to who asked for it, through a real SMTP server (aiosmtpd), once
//! each however often the job looks; without an SMTP server mail is kept, and administrators
//! read it at `/admin/mail`.

use std::time::Duration;

use attest_config::MailConfig;
use attest_domain::{ChangeId, ChangeState, Mail, MailState, PrincipalKind};
use attest_domain::{Clock as _, SystemClock};
use attest_notify::test_smtp::{Handler, ServerTls, SmtpServer, decode_quoted_printable, free_port, header};
use attest_notify::{Outbox, message_id};
use attest_server::notify_job::{Notifier, approval_key, denial_key, failure_key};
use attest_store::{MailFilter, db_test};

use crate::harness::browser;
use crate::web::{Person, Web, change_id, eventually};

const DEADLINE: Duration = Duration::from_secs(30);

fn to(messages: &[String], who: &Person) -> Vec<String> {
    messages
        .iter()
        .filter(|m| header(m, "X-RcptTo").is_some_and(|r| r.eq_ignore_ascii_case(&who.email)))
        .cloned()
        .collect()
}

/// A change's description as the pages show it.
async fn description(web: &Web, id: i64) -> String {
    let (_, body) = web.get(Some(&web.admin), &format!("/api/v1/changes/{id}")).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["change"]["description"].as_str().unwrap().to_owned()
}

/// The mail queued about changes, by key.
async fn mail(store: &attest_store::Store, key: &str) -> Option<Mail> {
    store.outbox().find_mail_by_key(key).await.unwrap()
}

/// Blocks the requester's sign-in as the administrator: sensitive, so it awaits approval.
async fn block_requester(web: &Web, store: &attest_store::Store) -> i64 {
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let actions = format!("/principals/{}/actions", target.id.0);
    let blocked = web
        .post(&web.admin, &actions, &[("action", "block"), ("nonce", "nonce-mail-block-0123"), ("confirm", "yes")])
        .await;
    let id = change_id(&blocked);
    assert_eq!(store.changes().get_change(ChangeId(id)).await.unwrap().state, ChangeState::AwaitingApproval);
    id
}

db_test!(approvers_and_requesters_get_mail_about_changes_through_smtp_once, true, |db| {
    let smtp = SmtpServer::start(free_port(), Handler::Maildir, ServerTls::None).await;
    let web = Web::boot_with(&db, &crate::web::smtp_config(smtp.port)).await;
    let store = db.store.clone();

    // A sensitive change: everyone who can approve it is asked to, by mail; its requester is not.
    let block = block_requester(&web, &store).await;
    let subject = format!("Approval needed: {} (change {block})", description(&web, block).await);
    let approve_url = format!("{}/changes/{block}", web.base);
    let approvers = [&web.approver, &web.owner];
    let messages = smtp
        .wait_until("an approval mail to the second administrator and the owner", |m| {
            approvers.iter().all(|who| !to(m, who).is_empty())
        })
        .await;
    for who in approvers {
        let mine = to(&messages, who);
        assert_eq!(mine.len(), 1, "{}: {mine:#?}", who.email);
        let message = &mine[0];
        let key = approval_key(ChangeId(block), &who.email);
        let queued = mail(&store, &key).await.unwrap_or_else(|| panic!("no mail under {key}"));
        assert_eq!(queued.subject, subject);
        if subject.is_ascii() {
            assert_eq!(header(message, "Subject"), Some(subject.as_str()), "{message}");
        }
        assert_eq!(header(message, "Message-ID"), Some(message_id(&key, "example.com").as_str()), "{message}");
        assert_eq!(header(message, "From"), Some("Attest <attest@example.com>"), "{message}");
        let body = decode_quoted_printable(message);
        assert!(body.contains(&format!("{approve_url}\n")) || body.contains(&format!("{approve_url}\r\n")), "{body}");
        assert!(
            crate::harness::unescape(&body).contains(&format!("href=\"{approve_url}\"")),
            "the HTML part links the change: {body}"
        );
        assert!(body.contains(&web.admin.email), "the mail says who asked: {body}");
        let sent = eventually(DEADLINE, || {
            let store = store.clone();
            let key = key.clone();
            async move { mail(&store, &key).await.unwrap().state == MailState::Sent }
        });
        assert!(sent.await, "recorded as sent");
    }
    assert!(to(&messages, &web.admin).is_empty(), "the requester is not asked to approve their own change");
    assert!(mail(&store, &approval_key(ChangeId(block), &web.admin.email)).await.is_none());

    // Scanning again (as the job does every few seconds, and as another replica would) queues
    // nothing more.
    let outbox = Outbox::new(store.clone(), &MailConfig::default()).unwrap();
    let notifier = Notifier::new(store.clone(), outbox, &web.base, attest_domain::clock::system());
    for _ in 0..3 {
        assert_eq!(notifier.scan(SystemClock.now()).await.unwrap(), 0, "every mail is queued already");
    }

    // A change that fails: adding someone to a group made dynamic in Entra since the last sync
    // (Attest refuses groups it knows are dynamic), which Graph refuses. Its requester is told,
    // with the reason and a link.
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    let target = store.principals().find_user(connector.id, &web.requester.object_id).await.unwrap().unwrap();
    let group = web.sim.sim.write(|t| {
        let group = t
            .groups
            .iter_mut()
            .find(|g| {
                g.deleted.is_none()
                    && !g.mail_enabled
                    && g.group_types.is_empty()
                    && g.is_assignable_to_role != Some(true)
            })
            .expect("the tenant has a security group");
        group.group_types = vec!["DynamicMembership".into()];
        group.membership_rule = Some("user.department -eq \"Sales\"".into());
        group.id.clone()
    });
    let added = web
        .post(
            &web.admin,
            &format!("/principals/{}/actions", target.id.0),
            &[("action", "add_to_group"), ("nonce", "nonce-mail-dynamic-0123"), ("group", &group)],
        )
        .await;
    let failed = change_id(&added);
    let change = store.changes().get_change(ChangeId(failed)).await.unwrap();
    assert_eq!(change.state, ChangeState::Failed, "{change:?}");
    let messages = smtp.wait_until("a failure mail to the requester", |m| !to(m, &web.admin).is_empty()).await;
    let mine = to(&messages, &web.admin);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let body = decode_quoted_printable(&mine[0]);
    let queued = mail(&store, &failure_key(ChangeId(failed))).await.unwrap();
    assert_eq!(queued.subject, format!("Change {failed} failed: {}", description(&web, failed).await));
    assert!(body.contains("dynamic group"), "the reason: {body}");
    assert!(body.contains(&format!("{}/changes/{failed}", web.base)), "{body}");

    // The second administrator denies the block, saying why: its requester is told, once.
    let denied =
        web.post(&web.approver, &format!("/changes/{block}/deny"), &[("reason", "wait for HR to confirm")]).await;
    assert_eq!(denied.status().as_u16(), 303);
    let messages = smtp.wait_until("a denial mail to the requester", |m| to(m, &web.admin).len() == 2).await;
    let queued = mail(&store, &denial_key(ChangeId(block))).await.expect("the denial mail");
    assert_eq!(queued.subject, format!("Change {block} denied: {}", description(&web, block).await));
    let body = decode_quoted_printable(to(&messages, &web.admin).iter().find(|m| m.contains("denied")).unwrap());
    assert!(body.contains("wait for HR to confirm") && body.contains(&web.approver.email), "{body}");

    // Still one approval mail each, long after the job first queued them; four mails in all.
    let messages = smtp.messages();
    for who in approvers {
        assert_eq!(to(&messages, who).len(), 1, "{}", who.email);
    }
    assert_eq!(messages.len(), 4, "{messages:#?}");
    let all = store.outbox().list_mail(&MailFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 4, "{all:#?}");
    web.stop().await;
});

db_test!(without_smtp_mail_is_kept_and_administrators_read_it_at_admin_mail, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let block = block_requester(&web, &store).await;
    let keys = [approval_key(ChangeId(block), &web.approver.email), approval_key(ChangeId(block), &web.owner.email)];
    let queued = eventually(DEADLINE, || {
        let (store, keys) = (store.clone(), keys.clone());
        async move {
            let mut all = true;
            for key in &keys {
                all &= mail(&store, key).await.is_some();
            }
            all
        }
    });
    assert!(queued.await, "the approval mails are queued");
    let approver_mail = mail(&store, &keys[0]).await.unwrap();
    let owner_mail = mail(&store, &keys[1]).await.unwrap();
    for m in [&approver_mail, &owner_mail] {
        assert_eq!((m.state, m.attempts, m.sent_at), (MailState::Kept, 0, None), "kept, never sent: {m:?}");
    }

    // The outbox, newest first, filtered by state and recipient.
    let (status, outbox) = web.get(Some(&web.admin), "/admin/mail").await;
    assert_eq!(status, 200, "{outbox}");
    assert!(outbox.contains("id=\"mail-kept\""), "says why mail is not sent: {outbox}");
    for m in [&approver_mail, &owner_mail] {
        assert!(outbox.contains(&format!("href=\"/admin/mail/{}\"", m.id.0)) && outbox.contains(&m.recipient));
    }
    assert!(crate::harness::unescape(&outbox).contains(&approver_mail.subject), "{outbox}");
    let (_, kept) = web.get(Some(&web.admin), "/admin/mail?state=kept").await;
    assert!(kept.contains(&format!("/admin/mail/{}\"", owner_mail.id.0)), "{kept}");
    let (_, sent) = web.get(Some(&web.admin), "/admin/mail?state=sent").await;
    assert!(!sent.contains(&format!("/admin/mail/{}\"", owner_mail.id.0)) && sent.contains("No mail matches."));
    let upper = web.approver.email.to_uppercase();
    let (_, one) = web.get(Some(&web.admin), &format!("/admin/mail?to={upper}")).await;
    assert!(
        one.contains(&format!("/admin/mail/{}\"", approver_mail.id.0))
            && !one.contains(&format!("/admin/mail/{}\"", owner_mail.id.0)),
        "{one}"
    );
    assert_eq!(web.get(Some(&web.admin), "/admin/mail?state=bogus").await.0, 400);
    assert_eq!(web.get(Some(&web.admin), "/admin/mail?page=99999999999999").await.0, 200);

    // One mail: headers, the text as written, the HTML escaped into a sandboxed frame.
    let path = format!("/admin/mail/{}", approver_mail.id.0);
    let response =
        browser().get(format!("{}{path}", web.base)).header("cookie", &web.admin.cookie).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("default-src 'none'") && !policy.contains("script-src"), "{policy}");
    let page = response.text().await.unwrap();
    let plain = crate::harness::unescape(&page);
    assert!(plain.contains(&approver_mail.text_body), "the text part, whole: {page}");
    assert!(plain.contains(&approver_mail.subject) && plain.contains(&web.approver.email));
    assert!(plain.contains(&message_id(&keys[0], "localhost")), "the Message-ID it is sent with: {page}");
    let frame = page.split("<iframe id=\"mail-html\" ").nth(1).unwrap().split("></iframe>").next().unwrap();
    assert!(frame.starts_with("sandbox "), "no sandbox permissions at all: {frame}");
    let srcdoc = frame.split("srcdoc=\"").nth(1).unwrap().strip_suffix('"').unwrap();
    assert!(!srcdoc.contains(['<', '>', '"']), "the HTML part is escaped into the attribute: {srcdoc}");
    assert_eq!(crate::harness::unescape(srcdoc), approver_mail.html_body, "and is the mail's HTML exactly");
    assert_eq!(page.matches("<!doctype html>").count(), 1, "the mail's document is not part of the page's");
    assert_eq!(web.get(Some(&web.admin), "/admin/mail/99999999").await.0, 404);

    // Administrators and auditors (who read everything); the menu links it for them alone.
    assert_eq!(web.get(Some(&web.auditor), &path).await.0, 200);
    for who in [&web.owner, &web.requester] {
        assert_eq!(web.get(Some(who), "/admin/mail").await.0, 403);
        assert_eq!(web.get(Some(who), &path).await.0, 403);
    }
    assert_eq!(web.get(None, &path).await.0, 401);
    let (_, auditor_changes) = web.get(Some(&web.auditor), "/changes").await;
    assert!(auditor_changes.contains("href=\"/admin/mail\""));
    let (_, owner_changes) = web.get(Some(&web.owner), "/changes").await;
    assert!(!owner_changes.contains("href=\"/admin/mail\""));
    web.stop().await;
});

db_test!(an_administrator_who_never_signed_in_is_asked_to_approve_at_their_directory_address, true, |db| {
    let web = Web::boot(&db).await;
    let store = db.store.clone();
    let connector = store.connectors().list_connectors().await.unwrap().remove(0);
    // Someone synced with a work address, made an administrator from the command line, who has
    // never signed in to Attest.
    let people = store.principals().list_principals(connector.id, Some(PrincipalKind::User), 0, 500).await.unwrap();
    let known = [&web.admin, &web.approver, &web.owner, &web.requester, &web.auditor].map(|p| p.object_id.clone());
    let newcomer = people
        .iter()
        .find(|p| p.data.email.is_some() && p.data.deleted_at.is_none() && !known.contains(&p.data.external_id))
        .expect("someone synced who has not signed in");
    let tenant = connector.tenant_id.clone().unwrap();
    let (id, name) = (&newcomer.data.external_id, &newcomer.data.display_name);
    store.web().set_web_user_roles(&tenant, id, name, &["admin".to_owned()], SystemClock.now()).await.unwrap();
    assert_eq!(store.web().find_web_user(&tenant, id).await.unwrap().unwrap().email, None, "not signed in");

    let block = block_requester(&web, &store).await;
    let key = approval_key(ChangeId(block), newcomer.data.email.as_deref().unwrap());
    let queued = eventually(DEADLINE, || {
        let (store, key) = (store.clone(), key.clone());
        async move { mail(&store, &key).await.is_some() }
    });
    assert!(queued.await, "mailed at the directory's address from the start");
    web.stop().await;
});
