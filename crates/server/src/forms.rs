//! Submitted forms, CSRF-checked before the handler sees them.
//!
//! [`Submitted<F>`] reads a body (an HTML form, or JSON from the API), takes the CSRF token
//! from its `csrf` field or the `x-csrf-token` header, and refuses with 403 unless it is the
//! session's. It needs the viewer a guard ([`crate::roles::Allowed`]) put in the request, so a
//! handler that forgets its guard refuses every submission rather than accepting them all.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::WebError;
use crate::roles::{Refusal, Viewer};

/// Largest body a form may have.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A form (or JSON body) whose CSRF token matched the session's.
pub struct Submitted<F>(pub F);

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for Submitted<F> {
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Refusal> {
        let surface = crate::roles::surface_of(request.extensions());
        read(request, state).await.map_err(|e| Refusal::new(e, surface))
    }
}

/// Reads the body and checks its token.
async fn read<F: DeserializeOwned>(request: Request, state: &AppState) -> Result<Submitted<F>, WebError> {
    let viewer = request.extensions().get::<Viewer>().cloned().ok_or(WebError::Csrf)?;
    let header_token = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|e| WebError::BadRequest(format!("the request body could not be read: {e}")))?;
    if body.len() > MAX_FORM_BYTES {
        return Err(WebError::BadRequest("the form is too large".into()));
    }
    let (field, form) = if json {
        let field: Option<CsrfField> = serde_json::from_slice(&body).ok();
        let form = serde_json::from_slice(&body).map_err(|e| WebError::BadRequest(format!("invalid JSON: {e}")));
        (field, form)
    } else {
        let field: Option<CsrfField> = serde_urlencoded_from(&body).ok();
        (field, serde_urlencoded_from(&body))
    };
    let token = header_token.or(field.and_then(|f| f.csrf));
    // The token first: a forged request learns nothing from how its body was parsed.
    viewer.check_csrf(token.as_deref())?;
    Ok(Submitted(form?))
}

/// Decodes an `application/x-www-form-urlencoded` body as axum's `Form` does.
fn serde_urlencoded_from<F: DeserializeOwned>(body: &[u8]) -> Result<F, WebError> {
    let pairs = url::form_urlencoded::parse(body).into_owned().collect::<Vec<(String, String)>>();
    // A name sent more than once (ticked checkboxes) becomes a list; see [`one_or_many`].
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for (k, v) in pairs {
        match object.get_mut(&k) {
            Some(serde_json::Value::Array(list)) => list.push(serde_json::Value::String(v)),
            Some(first) => *first = serde_json::Value::Array(vec![first.take(), serde_json::Value::String(v)]),
            None => {
                object.insert(k, serde_json::Value::String(v));
            }
        }
    }
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| WebError::BadRequest(format!("the form is not what this page sends: {e}")))
}

/// A form field that may be sent once or several times (checkboxes), or as a JSON list.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Number(i64),
        Many(Vec<serde_json::Value>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Number(n)) => vec![n.to_string()],
        Some(OneOrMany::Many(many)) => many
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
    })
}

/// A number a form sends as text (or JSON as a number), required.
pub fn number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    optional_number(deserializer)?.ok_or_else(|| serde::de::Error::custom("a number is required"))
}

/// A number a form sends as text (or JSON as a number); empty is none.
pub fn optional_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| serde::de::Error::custom("not a whole number"))
        }
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("'{s}' is not a number")))
        }
        Some(other) => Err(serde::de::Error::custom(format!("{other} is not a number"))),
    }
}

/// A yes/no a form sends as text (`true`, `on`, `1`) or JSON as a boolean.
pub fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(deserializer)? {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) => matches!(s.trim(), "true" | "on" | "1" | "yes"),
        _ => false,
    })
}

/// A time a form sends as RFC 3339 text, or as a `datetime-local` field sends it
/// (`2026-12-24T08:00`, read as UTC, which the field's label says); empty is none.
pub fn optional_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => {
            let text = s.trim();
            let local = || {
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                    .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
                    .map(|t| t.and_utc())
            };
            text.parse().or_else(|_| local()).map(Some).map_err(|_| {
                serde::de::Error::custom(format!("'{s}' is not a time (RFC 3339, e.g. 2026-12-24T08:00:00Z)"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[derive(serde::Deserialize)]
    struct Form {
        #[serde(default, deserialize_with = "super::optional_time")]
        at: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn times_come_as_rfc_3339_or_as_a_datetime_local_field_in_utc() {
        let read = |text: &str| serde_json::from_value::<Form>(serde_json::json!({"at": text})).map(|f| f.at);
        let at = |s: &str| Some(s.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(read("2026-12-24T08:00:00Z").unwrap(), at("2026-12-24T08:00:00Z"));
        assert_eq!(read("2026-12-24T09:00:00+01:00").unwrap(), at("2026-12-24T08:00:00Z"));
        assert_eq!(read("2026-12-24T08:00").unwrap(), at("2026-12-24T08:00:00Z"));
        assert_eq!(read(" ").unwrap(), None);
        assert!(read("next tuesday").is_err());
    }
}
