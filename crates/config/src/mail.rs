//! `[mail]`: who mail comes from and the SMTP server it goes through. Without a server, mail
//! is kept in the outbox and never sent (the demo, and any install that has not set one up).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ConfigError;
use crate::secrets::SecretString;

/// The sender when `mail.from` is not set.
pub const DEFAULT_MAIL_FROM: &str = "Attest <attest@localhost>";

/// `[mail]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMail {
    /// The sender of every mail: an address, with a display name if wanted
    /// (`Attest <attest@example.com>`).
    pub from: String,
    /// The SMTP server (relay) that mail is sent through. Unset: mail is kept in the outbox and
    /// not sent.
    pub smtp_host: Option<String>,
    /// Its port. Default by `smtp_security`: 587 for `starttls`, 465 for `tls`, 25 for `plain`.
    #[serde(deserialize_with = "port")]
    pub smtp_port: Option<u16>,
    /// `starttls` (plain connection upgraded to TLS, which is required), `tls` (TLS from the
    /// first byte) or `plain` (no TLS: only for a relay on the same host or a trusted network).
    pub smtp_security: String,
    /// The user name to authenticate with; unset: no authentication.
    pub smtp_username: Option<String>,
    /// The password to authenticate with.
    pub smtp_password: Option<String>,
    /// A file holding the password (instead of `smtp_password`).
    pub smtp_password_file: Option<PathBuf>,
    /// Attempts before a mail that keeps failing transiently (server unreachable or busy) is
    /// given up.
    pub max_attempts: u32,
}

impl Default for RawMail {
    fn default() -> Self {
        RawMail {
            from: DEFAULT_MAIL_FROM.into(),
            smtp_host: None,
            smtp_port: None,
            smtp_security: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_password_file: None,
            max_attempts: 8,
        }
    }
}

impl std::fmt::Debug for RawMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMail")
            .field("from", &self.from)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_security", &self.smtp_security)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &self.smtp_password.as_ref().map(|_| "***"))
            .field("smtp_password_file", &self.smtp_password_file)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// A port as a number, or as text (what an `ATTEST_MAIL_SMTP_PORT` variable gives, since the
/// key has no default to type it by).
fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(i64),
        Text(String),
    }
    let (number, shown) = match Option::<Port>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(Port::Number(n)) => (Some(n), n.to_string()),
        Some(Port::Text(text)) => (text.trim().parse().ok(), text),
    };
    number.and_then(|n| u16::try_from(n).ok()).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("mail.smtp_port: expected a port from 1 to 65535, got '{shown}'"))
    })
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// A plain connection upgraded with STARTTLS; refused if the server does not offer it.
    StartTls,
    /// TLS from the start (SMTPS, "implicit TLS").
    Tls,
    /// No TLS at all.
    Plain,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::Plain => "plain",
        }
    }

    /// The port that goes with it: 587 (submission), 465 (submissions), 25 (smtp).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        }
    }
}

/// `[mail]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// A mailbox: `address` or `Name <address>`.
    pub from: String,
    /// `None`: mail is kept in the outbox, never sent.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretString>,
    pub max_attempts: u32,
}

impl Default for MailConfig {
    /// No SMTP server: mail is kept.
    fn default() -> Self {
        MailConfig {
            from: DEFAULT_MAIL_FROM.into(),
            smtp_host: None,
            smtp_port: SmtpSecurity::StartTls.default_port(),
            smtp_security: SmtpSecurity::StartTls,
            smtp_username: None,
            smtp_password: None,
            max_attempts: 8,
        }
    }
}

impl MailConfig {
    /// Whether mail is kept in the outbox instead of sent (no SMTP server is configured).
    pub fn keeps_mail(&self) -> bool {
        self.smtp_host.is_none()
    }

    pub(crate) fn check(raw: RawMail) -> Result<MailConfig, ConfigError> {
        let from = raw.from.trim().to_owned();
        if !is_mailbox(&from) {
            return Err(ConfigError::Value {
                key: "mail.from",
                expected: "an email address, optionally with a name, e.g. Attest <attest@example.com>",
                value: raw.from,
            });
        }
        let smtp_host = raw.smtp_host.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty());
        if let Some(host) = &smtp_host
            && (host.contains(char::is_whitespace) || host.contains(['/', '@', '?', '#']))
        {
            return Err(ConfigError::Value {
                key: "mail.smtp_host",
                expected: "a host name or IP address, e.g. smtp.example.com (no scheme or port)",
                value: host.clone(),
            });
        }
        let smtp_security = match raw.smtp_security.trim() {
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            "plain" => SmtpSecurity::Plain,
            _ => {
                return Err(ConfigError::Value {
                    key: "mail.smtp_security",
                    expected: "'starttls', 'tls' or 'plain'",
                    value: raw.smtp_security,
                });
            }
        };
        if raw.smtp_port == Some(0) {
            return Err(ConfigError::Value {
                key: "mail.smtp_port",
                expected: "a port from 1 to 65535",
                value: "0".into(),
            });
        }
        let smtp_password = match (raw.smtp_password, raw.smtp_password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict { a: "mail.smtp_password", b: "mail.smtp_password_file" });
            }
            (Some(password), None) => Some(SecretString::new(password)),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                    key: "mail.smtp_password_file",
                    path,
                    source,
                })?;
                Some(SecretString::new(text.trim_end_matches(['\r', '\n'])))
            }
            (None, None) => None,
        };
        let smtp_username = raw.smtp_username.filter(|u| !u.trim().is_empty());
        match (&smtp_username, &smtp_password) {
            (None, Some(_)) => {
                return Err(ConfigError::Value {
                    key: "mail.smtp_username",
                    expected: "a user name to go with the password",
                    value: String::new(),
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::Value {
                    key: "mail.smtp_password",
                    expected: "a password (or smtp_password_file) to go with the user name",
                    value: String::new(),
                });
            }
            _ => {}
        }
        if raw.max_attempts == 0 {
            return Err(ConfigError::Value {
                key: "mail.max_attempts",
                expected: "a number of attempts of at least 1",
                value: "0".into(),
            });
        }
        Ok(MailConfig {
            from,
            smtp_host,
            smtp_port: raw.smtp_port.unwrap_or(smtp_security.default_port()),
            smtp_security,
            smtp_username,
            smtp_password,
            max_attempts: raw.max_attempts,
        })
    }

    /// As written, with the password replaced by `***` (for `attest config check`).
    pub(crate) fn to_raw_redacted(&self) -> RawMail {
        RawMail {
            from: self.from.clone(),
            smtp_host: self.smtp_host.clone(),
            smtp_port: Some(self.smtp_port),
            smtp_security: self.smtp_security.as_str().into(),
            smtp_username: self.smtp_username.clone(),
            smtp_password: self.smtp_password.as_ref().map(|_| "***".into()),
            smtp_password_file: None,
            max_attempts: self.max_attempts,
        }
    }
}

/// `local@domain` or `Name <local@domain>` (the mail crate parses it fully; this catches typos
/// at load time).
fn is_mailbox(text: &str) -> bool {
    let address = match text.rsplit_once('<') {
        Some((_, rest)) => match rest.strip_suffix('>') {
            Some(address) => address,
            None => return false,
        },
        None => text,
    };
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.contains(char::is_whitespace)
                && !address.contains(['<', '>'])
        }
        None => false,
    }
}
