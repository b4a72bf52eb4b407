//! The dashboard's session: the signed viewer token, kept in an HttpOnly, SameSite cookie
//! that `POST /login` sets. Pages read it through the [`Session`] extractor, whose refusal is
//! a page that says how to sign in, not JSON.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use sitetrail_core::{Timestamp, Viewer};

use crate::AppState;
use crate::auth::{self, SESSION_COOKIE};
use crate::error::ApiError;
use crate::pages::{PageError, csrf};

/// Expires the session cookie at once.
pub const CLEAR_COOKIE: &str = "sitetrail_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0";

/// A signed-in viewer and the token that signs them in.
pub struct Session {
    pub viewer: Viewer,
    token: String,
}

impl Session {
    /// Checks a token as `GET /login` receives it.
    pub fn sign_in(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let viewer = state.tokens.verify(token)?;
        Ok(Session {
            viewer,
            token: token.to_owned(),
        })
    }

    /// The token that signs this session in.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CSRF token forms of this session carry.
    pub fn csrf_token(&self) -> String {
        csrf::token_for(&self.token)
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        if csrf::check(&self.token, presented) {
            Ok(())
        } else {
            Err(PageError::form_expired())
        }
    }

    /// The `Set-Cookie` value that keeps this session until the token expires: `Secure`
    /// unless the operator serves plain HTTP on loopback (`--insecure-cookies-on-loopback`).
    pub fn cookie(&self, secure: bool) -> HeaderValue {
        let now = (Timestamp::now().millis() / 1000) as u64;
        let max_age = auth::expiry(&self.token).map_or(0, |exp| exp.saturating_sub(now));
        let secure = if secure { "; Secure" } else { "" };
        HeaderValue::try_from(format!(
            "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
            self.token
        ))
        .expect("a verified token is a valid header value")
    }
}

fn from_cookie(parts: &Parts, state: &AppState) -> Result<Option<Session>, PageError> {
    let Some(token) = auth::session_cookie(parts) else {
        return Ok(None);
    };
    match state.tokens.verify(token) {
        Ok(viewer) => Ok(Some(Session {
            viewer,
            token: token.to_owned(),
        })),
        Err(ApiError::Unauthorized(m)) => Err(PageError::session_ended(m.contains("expired"))),
        Err(e) => Err(e.into()),
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        from_cookie(parts, state)?.ok_or_else(PageError::not_signed_in)
    }
}

impl OptionalFromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, PageError> {
        from_cookie(parts, state)
    }
}
