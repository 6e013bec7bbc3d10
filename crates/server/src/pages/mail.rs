//! The mail outbox, for administrators: every mail Attest queued, newest first, and how its
//! sending went; one mail as its recipient gets it. Without an SMTP server (the demo) mail is
//! kept here and never sent, so this is where it is read.
//!
//! A mail's HTML part is shown inside `<iframe sandbox srcdoc="…">`: the template escapes it
//! into the attribute, the sandbox gives it no scripts, forms or same-origin rights, and the
//! page's Content-Security-Policy (inherited by the frame) loads nothing from elsewhere.

use attest_domain::{Mail, MailId, MailState};
use attest_store::MailFilter;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{PAGE_SIZE, page, search_text, url_encode, when};
use crate::AppState;
use crate::error::WebError;
use crate::extract::{Id, Query};
use crate::roles::{Allowed, rule};

/// What a mail page may load: its own styles and images inline, nothing else, no scripts.
const MAIL_PAGE_POLICY: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src data:; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Debug, Default, Deserialize)]
pub struct OutboxQuery {
    /// One of the mail states, or every state.
    #[serde(default)]
    pub state: String,
    /// Only mail to this address (without regard to case).
    #[serde(default)]
    pub to: String,
    pub page: Option<u64>,
}

fn mail_row(mail: &Mail) -> serde_json::Value {
    json!({
        "id": mail.id.0,
        "state": mail.state,
        "recipient": mail.recipient,
        "subject": mail.subject,
        "template": mail.template,
        "attempts": mail.attempts,
        "last_error": mail.last_error,
        "created_at": when(Some(mail.created_at)),
        "sent_at": when(mail.sent_at),
        "next_attempt_at": (mail.state == MailState::Pending).then(|| when(Some(mail.next_attempt_at))).flatten(),
    })
}

/// `GET /admin/mail`
pub async fn outbox(
    viewer: Allowed<rule::AuditReader>,
    State(state): State<AppState>,
    Query(query): Query<OutboxQuery>,
) -> Result<Response, WebError> {
    let store = &state.store;
    let wanted = match query.state.as_str() {
        "" => None,
        s => Some(s.parse::<MailState>().map_err(|e| WebError::BadRequest(e.to_string()))?),
    };
    let to = search_text(&query.to);
    let page_no = query.page.unwrap_or(1).clamp(1, 1_000_000);
    let filter = MailFilter {
        state: wanted,
        recipient: (!to.is_empty()).then(|| to.clone()),
        // One more than a page: whether there is a next one.
        limit: PAGE_SIZE + 1,
        offset: (page_no - 1) * PAGE_SIZE,
    };
    let mut mails = store.outbox().list_mail(&filter).await?;
    let more = mails.len() as u64 > PAGE_SIZE;
    mails.truncate(PAGE_SIZE as usize);
    let counts = store.outbox().count_mail_by_state().await?;
    let states: Vec<_> = MailState::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            json!({"name": s.as_str(), "count": n})
        })
        .collect();
    let base = format!("/admin/mail?state={}&to={}&", url_encode(&query.state), url_encode(&to));
    let data = json!({
        "mails": mails.iter().map(mail_row).collect::<Vec<_>>(),
        "states": states,
        "state": query.state,
        "to": to,
        "kept": state.mail_kept,
        "page": page_no,
        "previous_url": (page_no > 1).then(|| format!("{base}page={}", page_no - 1)),
        "next_url": more.then(|| format!("{base}page={}", page_no + 1)),
    });
    Ok(page(&viewer, "outbox.html", data)?.into_response())
}

/// `GET /admin/mail/{id}`: one mail, its headers as sent, the text part and the HTML part.
pub async fn mail(
    viewer: Allowed<rule::AuditReader>,
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Response, WebError> {
    let mail = state.store.outbox().get_mail(MailId(id)).await?;
    let domain = state.mail_from.rsplit('@').next().unwrap_or_default().trim_end_matches('>').trim();
    let headers = [
        ("From", state.mail_from.to_string()),
        ("To", mail.recipient.clone()),
        ("Subject", mail.subject.clone()),
        ("Date", mail.created_at.to_rfc2822()),
        ("Message-ID", attest_notify::message_id(&mail.idempotency_key, domain)),
        ("Auto-Submitted", "auto-generated".to_owned()),
    ];
    let data = json!({
        "mail": mail_row(&mail),
        "key": mail.idempotency_key,
        "headers": headers.iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>(),
        "text_body": mail.text_body,
        "html_body": mail.html_body,
        "kept": state.mail_kept,
    });
    let mut response = page(&viewer, "mail.html", data)?.into_response();
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(MAIL_PAGE_POLICY));
    Ok(response)
}
