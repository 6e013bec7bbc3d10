//! A flash: what the last action did, said once on the page it leads to ("Change #12 applied:
//! add Grace Hopper to Finance Team 5", with a way back). Kept in a short-lived cookie, so the
//! redirect's address stays the change's own and a reload does not say it again.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::session::{cookie, safe_return};

const FLASH_COOKIE: &str = "attest_flash";

/// What the last action did: change `change`, asked for from the page at `back`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub change: i64,
    pub back: Option<String>,
}

/// Sets the flash on a redirect.
pub fn set(response: &mut Response, flash: &Flash) {
    let back = flash.back.as_deref().and_then(safe_return).map(crate::pages::url_encode).unwrap_or_default();
    let value = format!("{FLASH_COOKIE}={}.{back}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60", flash.change);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The request's flash, if any.
pub fn of(headers: &HeaderMap) -> Option<Flash> {
    let value = cookie(headers, FLASH_COOKIE)?;
    let (change, back) = value.split_once('.')?;
    let back = url::form_urlencoded::parse(format!("b={back}").as_bytes()).next().map(|(_, v)| v.into_owned());
    let back = back.filter(|b| safe_return(b).is_some());
    Some(Flash { change: change.parse().ok()?, back })
}

/// Clears the flash once it has been shown.
pub fn clear(response: &mut Response) {
    let value = HeaderValue::from_static("attest_flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    response.headers_mut().append(header::SET_COOKIE, value);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn a_flash_goes_by_cookie_and_never_points_off_site() {
        for (back, kept) in
            [(Some("/principals/7"), Some("/principals/7")), (Some("//evil.example"), None), (None, None)]
        {
            let mut response = ().into_response();
            set(&mut response, &Flash { change: 12, back: back.map(str::to_owned) });
            let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
            assert_eq!(of(&headers), Some(Flash { change: 12, back: kept.map(str::to_owned) }), "{cookie}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("attest_flash=12.%2F%2Fevil.example"));
        assert_eq!(of(&headers).unwrap().back, None, "a forged cookie cannot point off-site");
    }
}
