//! Extractors whose refusals are in plain words and in the route's surface: a malformed id in
//! the address, or a query value a page cannot read, is a 400 page (or a JSON error under the
//! API) saying what is wrong, never a deserializer's message.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::WebError;
use crate::roles::{Refusal, surface_of};

/// An `{id}` in the address: Attest's ids are numbers.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        match axum::extract::Path::<i64>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Id(id)),
            Err(_) => Err(Refusal::new(
                WebError::BadRequest(
                    "This address does not name anything: where it has an id, Attest's ids are numbers \
                     (as in /principals/42). Check the link, or find what you wanted from the navigation."
                        .into(),
                ),
                surface_of(&parts.extensions),
            )),
        }
    }
}

/// A page's query string, read into `T`; a value it cannot read is named in the refusal.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Refusal> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let message = if field.is_empty() || field == "." {
                "This page's address has a value it cannot read. Check the link, or start again from the page itself."
                    .to_owned()
            } else {
                format!(
                    "This page's address has a value for '{field}' it cannot read. Check the link, or start again \
                     from the page itself."
                )
            };
            Refusal::new(WebError::BadRequest(message), surface_of(&parts.extensions))
        })
    }
}

/// A page number from a query string: anything that is not a positive number is the first
/// page (a hand-edited `?page=-1` shows the list, not an error).
pub fn lenient_page<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let text: Option<String> = Option::deserialize(deserializer)?;
    Ok(text.and_then(|t| t.trim().parse::<u64>().ok()).filter(|p| *p > 0))
}
