//! The mails Attest sends and their templates (`templates/mail/<name>/`), compiled into the
//! binary. HTML parts are autoescaped; subjects and text parts are not (they are not HTML).

use attest_domain::ChangeId;
use serde::Serialize;

use crate::NotifyError;

/// A mail Attest sends, with everything its template needs: a mail cannot be queued without
/// its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Template {
    /// A sensitive change waits for a second person's approval.
    ChangeAwaitingApproval {
        change_id: ChangeId,
        /// What the change does, in words (`Change::action.describe()`).
        description: String,
        /// Who asked for it (a display name or email).
        requested_by: String,
        /// Why, in their words, when they said.
        reason: Option<String>,
        /// Where to approve or deny it.
        approve_url: String,
    },
    /// An access review started: a reviewer's items await them.
    ReviewStarted {
        campaign: String,
        description: String,
        /// The reviewer's items.
        items: u64,
        /// The deadline, in words ("on 18 December 2026 at 09:00 UTC").
        due: String,
        /// Their inbox, filtered to this campaign.
        inbox_url: String,
    },
    /// A reviewer's items are still pending (at the midpoint, and a day before the deadline).
    ReviewReminder {
        campaign: String,
        pending: u64,
        due: String,
        /// The day-before reminder (else the midpoint).
        last: bool,
        /// What undecided items become ("approved", "revoked", "decided as recommended"), if anything.
        default_decision: Option<String>,
        inbox_url: String,
    },
    /// An instance closed: its owners get the outcome.
    CampaignClosed {
        campaign: String,
        instance: i32,
        closed: String,
        items: u64,
        approved: u64,
        revoked: u64,
        /// Answered "not sure" (the access kept).
        not_sure: u64,
        undecided: u64,
        /// What happened to the revocations, in a sentence.
        applied: String,
        campaign_url: String,
    },
    /// A second person refused a sensitive change (told to whoever asked for it).
    ChangeDenied {
        change_id: ChangeId,
        description: String,
        /// Who denied it.
        denied_by: String,
        /// Why, in their words.
        reason: String,
        change_url: String,
    },
    /// An access request waits for an approver's answer.
    AccessApprovalNeeded {
        request_id: i64,
        requester: String,
        /// What is asked for, in words ("Member of Finance (group)").
        access: String,
        /// "8 hours", "no end".
        duration: String,
        justification: String,
        ticket: Option<String>,
        stage: u32,
        stages: u32,
        /// When it is denied unanswered, in words.
        due: String,
        approve_url: String,
    },
    /// The requester learns how their request ended: `approved` (and given), `denied`, `failed`.
    AccessDecided {
        request_id: i64,
        access: String,
        outcome: String,
        decided_by: Option<String>,
        reason: Option<String>,
        until: Option<String>,
        request_url: String,
    },
    /// Time-bound access ends soon (a week, then a day, before).
    AccessExpiring {
        request_id: i64,
        access: String,
        /// The end, in words.
        ends: String,
        /// "7 days", "1 day".
        left: String,
        request_url: String,
    },
    /// An integration owner is asked to finish connecting a tenant (`reminder`: again, after
    /// three days, with a fresh link).
    ConnectorSetup {
        connector: String,
        /// The tenant id.
        tenant: String,
        invited_by: String,
        /// What Attest will do, in words.
        features: Vec<String>,
        read_permissions: Vec<PermissionLine>,
        write_permissions: Vec<PermissionLine>,
        setup_url: String,
        /// When the link stops working, in words.
        expires: String,
        reminder: bool,
    },
    /// Whoever invited the owners learns the tenant is connected.
    ConnectorConnected { connector: String, tenant: String, connected_by: Option<String>, connector_url: String },
    /// Someone an administrator imported from the directory learns they have an account.
    AccountInvitation { name: String, invited_by: String, role: Option<String>, sign_in_url: String },
    /// A connector's owners learn it needs them (once per episode).
    ConnectorAttention {
        connector: String,
        tenant: String,
        /// "needs reauthorization", "has an error".
        status: String,
        reason: String,
        connector_url: String,
    },
    /// A resource owner's weekly digest: the time-bound access to their resources that ends in
    /// the coming week.
    AccessDigest {
        owner: String,
        /// The ISO week, `2026-W49`.
        week: String,
        items: Vec<DigestLine>,
    },
    /// A change could not be applied.
    ChangeFailed {
        change_id: ChangeId,
        description: String,
        /// What went wrong and what to do.
        error: String,
        /// Where to see, retry or cancel it.
        change_url: String,
    },
}

/// One line of an owner's digest: who holds what until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestLine {
    pub who: String,
    /// "Member of Finance (group)".
    pub access: String,
    /// The end, in words.
    pub ends: String,
    pub request_url: String,
}

/// A Graph permission and what Attest does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionLine {
    pub name: String,
    pub purpose: String,
}

/// Every template's name, each a directory under `templates/mail`.
pub const TEMPLATE_NAMES: &[&str] = &[
    "change_awaiting_approval",
    "change_failed",
    "change_denied",
    "review_started",
    "review_reminder",
    "campaign_closed",
    "access_approval_needed",
    "access_decided",
    "access_expiring",
    "access_digest",
    "connector_setup",
    "connector_connected",
    "connector_attention",
    "account_invitation",
];

impl Template {
    /// The template's name: its directory, and what the outbox records.
    pub fn name(&self) -> &'static str {
        match self {
            Template::ChangeAwaitingApproval { .. } => "change_awaiting_approval",
            Template::ChangeFailed { .. } => "change_failed",
            Template::ChangeDenied { .. } => "change_denied",
            Template::ReviewStarted { .. } => "review_started",
            Template::ReviewReminder { .. } => "review_reminder",
            Template::CampaignClosed { .. } => "campaign_closed",
            Template::AccessApprovalNeeded { .. } => "access_approval_needed",
            Template::AccessDecided { .. } => "access_decided",
            Template::AccessExpiring { .. } => "access_expiring",
            Template::AccessDigest { .. } => "access_digest",
            Template::ConnectorSetup { .. } => "connector_setup",
            Template::ConnectorConnected { .. } => "connector_connected",
            Template::ConnectorAttention { .. } => "connector_attention",
            Template::AccountInvitation { .. } => "account_invitation",
        }
    }
}

/// A mail rendered from its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates. Build once and share.
pub struct Templates {
    engine: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates(..)")
    }
}

macro_rules! mail_templates {
    ($($name:literal),+ $(,)?) => {
        [
            ("layout.html", include_str!("../../../templates/mail/layout.html")),
            $(
                (concat!($name, "/subject.txt"), include_str!(concat!("../../../templates/mail/", $name, "/subject.txt"))),
                (concat!($name, "/text.txt"), include_str!(concat!("../../../templates/mail/", $name, "/text.txt"))),
                (concat!($name, "/html.html"), include_str!(concat!("../../../templates/mail/", $name, "/html.html"))),
            )+
        ]
    };
}

/// The template engine as Attest sets it up, for mail here and for pages in `attest-server`, so
/// both read the same language the same way:
/// - `.html` templates are HTML-escaped, `.txt` ones are not (minijinja's default by name);
/// - a name that is not in the context is an error when printed, iterated or looked into, and
///   false in `{% if %}`: a typo fails loudly instead of rendering as nothing;
/// - `none` prints as nothing (an absent optional field is left out, never shown as "none");
/// - a template's last line break is kept, as written.
pub fn engine() -> minijinja::Environment<'static> {
    let mut engine = minijinja::Environment::new();
    engine.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    let syntax = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build();
    // The default syntax with one flag set cannot be refused; keep the default if it ever is.
    if let Ok(syntax) = syntax {
        engine.set_syntax(syntax);
    }
    engine.set_formatter(
        |out, state, value| {
            if value.is_none() { Ok(()) } else { minijinja::escape_formatter(out, state, value) }
        },
    );
    engine
}

/// minijinja's error with its causes and where in the template, on one line.
pub fn describe(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Templates {
    /// Compiles every template.
    pub fn new() -> Result<Templates, NotifyError> {
        let mut engine = engine();
        for (name, source) in mail_templates!(
            "change_awaiting_approval",
            "change_failed",
            "change_denied",
            "review_started",
            "review_reminder",
            "campaign_closed",
            "access_approval_needed",
            "access_decided",
            "access_expiring",
            "access_digest",
            "connector_setup",
            "connector_connected",
            "connector_attention",
            "account_invitation"
        ) {
            engine
                .add_template(name, source)
                .map_err(|e| NotifyError::Template { template: "(all)", message: describe(&e) })?;
        }
        Ok(Templates { engine })
    }

    /// Renders a mail's subject, text and HTML.
    pub fn render(&self, template: &Template) -> Result<Rendered, NotifyError> {
        let name = template.name();
        let failed = |e: minijinja::Error| NotifyError::Template { template: name, message: describe(&e) };
        let context = minijinja::Value::from(minijinja::value::Serde(template));
        let part = |file: &str| {
            self.engine.get_template(&format!("{name}/{file}")).and_then(|t| t.render(&context)).map_err(failed)
        };
        Ok(Rendered {
            subject: part("subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" "),
            text: part("text.txt")?,
            html: part("html.html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(name: &str) -> Vec<Template> {
        vec![
            Template::ChangeAwaitingApproval {
                change_id: ChangeId(42),
                description: "Add Ada Lovelace to group Finance".into(),
                requested_by: name.into(),
                reason: Some(format!("{name} starts in Finance on Monday")),
                approve_url: "https://attest.example.com/changes/42".into(),
            },
            Template::ChangeFailed {
                change_id: ChangeId(7),
                description: "Remove Bob from group Finance".into(),
                error: format!("{name} is not allowed: missing permission GroupMember.ReadWrite.All"),
                change_url: "https://attest.example.com/changes/7".into(),
            },
            Template::ChangeDenied {
                change_id: ChangeId(9),
                description: "Block sign-in of Bob".into(),
                denied_by: "ciso@contoso.com".into(),
                reason: format!("{name} is on call this week"),
                change_url: "https://attest.example.com/changes/9".into(),
            },
            Template::ReviewStarted {
                campaign: format!("Q1 review: {name}"),
                description: "Does each member still need it?".into(),
                items: 12,
                due: "on 18 December 2026 at 09:00 UTC".into(),
                inbox_url: "https://attest.example.com/reviews?campaign=3".into(),
            },
            Template::ReviewReminder {
                campaign: format!("Q1 review: {name}"),
                pending: 1,
                due: "on 18 December 2026 at 09:00 UTC".into(),
                last: true,
                default_decision: Some("revoked".into()),
                inbox_url: "https://attest.example.com/reviews?campaign=3".into(),
            },
            Template::CampaignClosed {
                campaign: format!("Q1 review: {name}"),
                instance: 1,
                closed: "on 18 December 2026 at 09:00 UTC".into(),
                items: 12,
                approved: 8,
                revoked: 2,
                not_sure: 1,
                undecided: 1,
                applied: "2 revocations queued in Entra".into(),
                campaign_url: "https://attest.example.com/campaigns/3".into(),
            },
            Template::AccessApprovalNeeded {
                request_id: 5,
                requester: name.into(),
                access: "Member of Finance (group)".into(),
                duration: "8 hours".into(),
                justification: format!("{name} closes the quarter"),
                ticket: Some("FIN-12".into()),
                stage: 1,
                stages: 2,
                due: "on 11 December 2026 at 09:00 UTC".into(),
                approve_url: "https://attest.example.com/requests/5".into(),
            },
            Template::AccessDecided {
                request_id: 5,
                access: "Member of Finance (group)".into(),
                outcome: "denied".into(),
                decided_by: Some("ciso@contoso.com".into()),
                reason: Some(format!("{name} is not in Finance")),
                until: None,
                request_url: "https://attest.example.com/requests/5".into(),
            },
            Template::AccessExpiring {
                request_id: 5,
                access: format!("Member of {name} (group)"),
                ends: "on 11 December 2026 at 09:00 UTC".into(),
                left: "1 day".into(),
                request_url: "https://attest.example.com/requests/5".into(),
            },
            Template::AccessDigest {
                owner: name.into(),
                week: "2026-W49".into(),
                items: vec![DigestLine {
                    who: format!("{name} Lovelace"),
                    access: "Member of Finance (group)".into(),
                    ends: "on 11 December 2026 at 09:00 UTC".into(),
                    request_url: "https://attest.example.com/requests/5".into(),
                }],
            },
            Template::ConnectorSetup {
                connector: format!("{name}-emea"),
                tenant: "3f2a0c1e-0000-4000-8000-000000000001".into(),
                invited_by: name.into(),
                features: vec!["read-only sync".into(), "provisioning".into()],
                read_permissions: vec![PermissionLine {
                    name: "User.Read.All".into(),
                    purpose: format!("read {name}"),
                }],
                write_permissions: vec![PermissionLine {
                    name: "GroupMember.ReadWrite.All".into(),
                    purpose: "add and remove group members".into(),
                }],
                setup_url: "https://attest.example.com/setup/abc".into(),
                expires: "12 December 2026 at 09:00 UTC".into(),
                reminder: true,
            },
            Template::ConnectorConnected {
                connector: format!("{name}-emea"),
                tenant: "3f2a0c1e-0000-4000-8000-000000000001".into(),
                connected_by: Some(name.into()),
                connector_url: "https://attest.example.com/connectors/emea".into(),
            },
            Template::ConnectorAttention {
                connector: format!("{name}-emea"),
                tenant: "3f2a0c1e-0000-4000-8000-000000000001".into(),
                status: "needs reauthorization".into(),
                reason: format!("the client secret of {name} has expired (AADSTS7000222)"),
                connector_url: "https://attest.example.com/connectors/emea".into(),
            },
            Template::AccountInvitation {
                name: name.into(),
                invited_by: format!("{name}'s administrator"),
                role: Some("auditor".into()),
                sign_in_url: "https://attest.example.com/auth/sign-in".into(),
            },
        ]
    }

    #[test]
    fn every_template_renders_with_its_context() {
        let templates = Templates::new().unwrap();
        let all = samples("Grace Hopper");
        assert_eq!(all.iter().map(Template::name).collect::<Vec<_>>(), TEMPLATE_NAMES);
        for template in &all {
            let rendered = templates.render(template).unwrap();
            assert!(!rendered.subject.is_empty() && !rendered.subject.contains('\n'), "{rendered:?}");
            for part in [&rendered.text, &rendered.html] {
                assert!(!part.contains("{{") && !part.contains("{%"), "{part}");
            }
            assert!(rendered.html.starts_with("<!doctype html>") && rendered.html.contains("</html>"));
        }
        let approval = templates.render(&all[0]).unwrap();
        assert_eq!(approval.subject, "Approval needed: Add Ada Lovelace to group Finance (change 42)");
        assert!(approval.text.contains("Grace Hopper asked for a change"), "{}", approval.text);
        assert!(approval.text.contains("https://attest.example.com/changes/42\n"), "{}", approval.text);
        assert!(approval.html.contains("Review change 42"), "{}", approval.html);
        let failed = templates.render(&all[1]).unwrap();
        assert_eq!(failed.subject, "Change 7 failed: Remove Bob from group Finance");
        assert!(failed.text.contains("missing permission GroupMember.ReadWrite.All"), "{}", failed.text);
        assert!(
            approval.text.contains("Their reason:\n\n    Grace Hopper starts in Finance on Monday"),
            "{}",
            approval.text
        );
        let denied = templates.render(&all[2]).unwrap();
        assert_eq!(denied.subject, "Change 9 denied: Block sign-in of Bob");
        assert!(denied.text.contains("ciso@contoso.com denied the change you asked for"), "{}", denied.text);
        assert!(denied.html.contains("Grace Hopper is on call this week"), "{}", denied.html);
        let started = templates.render(&all[3]).unwrap();
        assert_eq!(started.subject, "Access review: 12 items for you to review in Q1 review: Grace Hopper");
        assert!(started.text.contains("https://attest.example.com/reviews?campaign=3\n"), "{}", started.text);
        let reminder = templates.render(&all[4]).unwrap();
        assert_eq!(
            reminder.subject,
            "Reminder: 1 access review item due on 18 December 2026 at 09:00 UTC (Q1 review: Grace Hopper)"
        );
        assert!(
            reminder.text.contains("closes on 18 December") && reminder.text.contains("1 item is still waiting"),
            "{}",
            reminder.text
        );
        assert!(reminder.text.contains("Undecided items will be revoked"), "{}", reminder.text);
        let asked = templates.render(&all[6]).unwrap();
        assert_eq!(
            asked.subject,
            "Approval needed: Grace Hopper asks for Member of Finance (group) for 8 hours (request 5)"
        );
        assert!(
            asked.text.contains("(approval stage 1 of 2)") && asked.text.contains("Ticket: FIN-12"),
            "{}",
            asked.text
        );
        let decided = templates.render(&all[7]).unwrap();
        assert_eq!(decided.subject, "Request 5 denied: Member of Finance (group)");
        assert!(decided.text.contains("was denied by ciso@contoso.com"), "{}", decided.text);
        let closed = templates.render(&all[5]).unwrap();
        assert!(closed.subject.ends_with("(8 approved, 2 revoked, 1 undecided)"), "{}", closed.subject);
        assert!(
            closed.text.contains("8 approved, 2 revoked, 1 not sure (access kept), 1 undecided"),
            "{}",
            closed.text
        );
    }

    #[test]
    fn html_is_escaped_and_text_is_literal() {
        let templates = Templates::new().unwrap();
        let name = "Mallory <script>alert('x')</script> & co";
        for template in samples(name) {
            let rendered = templates.render(&template).unwrap();
            assert!(!rendered.html.contains("<script>"), "{}", rendered.html);
            assert!(rendered.html.contains("Mallory &lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; co"));
            assert!(rendered.text.contains(name), "{}", rendered.text);
        }
    }

    #[test]
    fn subjects_are_one_line_whatever_the_context() {
        let templates = Templates::new().unwrap();
        let template = Template::ChangeFailed {
            change_id: ChangeId(1),
            description: "two\r\nlines\tand  spaces".into(),
            error: "e".into(),
            change_url: "u".into(),
        };
        assert_eq!(templates.render(&template).unwrap().subject, "Change 1 failed: two lines and spaces");
    }
}
