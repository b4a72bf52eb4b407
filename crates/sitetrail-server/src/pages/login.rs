//! Signing in and out. `GET /login?token=[&site=]` turns a viewer token into the session
//! cookie and redirects at once to the Activity Logs (of `site`, the token's site or the
//! account's first), so the token does not stay in the address bar; sign-out is a form with
//! a CSRF token.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sitetrail_core::{SiteId, Viewer};

use crate::AppState;
use crate::api::site_scope;
use crate::error::ApiError;
use crate::pages::error::Notice;
use crate::pages::session::{self, CLEAR_COOKIE};
use crate::pages::shell::{Section, site_path};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/logout", post(logout))
        .route("/signed-out", get(signed_out))
}

#[derive(Deserialize)]
struct LoginQuery {
    token: Option<String>,
    /// The site to land on, when the viewer may see it (a hosting panel's deep link).
    site: Option<String>,
}

/// The site a viewer lands on: the token's own, or the account's first.
async fn first_site(state: &AppState, viewer: &Viewer) -> Result<Option<SiteId>, PageError> {
    if let Some(site) = &viewer.site {
        return Ok(Some(site.clone()));
    }
    let sites = state
        .store
        .sites_of(&viewer.account)
        .await
        .map_err(ApiError::from)?;
    Ok(sites.into_iter().next().map(|s| s.id))
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Ok(Query(query)) = query else {
        return Err(PageError::bad_sign_in_link(false));
    };
    let token = query
        .token
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| PageError::bad_sign_in_link(false))?;
    let session = Session::sign_in(&state, token.trim()).map_err(|e| match e {
        ApiError::Unauthorized(m) => PageError::bad_sign_in_link(m.contains("expired")),
        other => other.into(),
    })?;
    let asked = match &query.site {
        Some(site) => site_scope(&state, &session.viewer, site)
            .await
            .ok()
            .and_then(|scope| scope.site),
        None => None,
    };
    let landing = match asked {
        Some(site) => Some(site),
        None => first_site(&state, &session.viewer).await?,
    };
    let to = match landing {
        Some(site) => format!(
            "{}/activity-logs",
            site_path(site.as_str(), Section::AdvancedTools)
        ),
        None => "/".to_owned(),
    };
    let mut res = Redirect::to(&to).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session.cookie(session::is_https(&headers)),
    );
    Ok(res)
}

async fn home(
    State(state): State<AppState>,
    session: Option<Session>,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(Notice::new(
            "Sign in to your hosting dashboard",
            "Open the sign-in link your hosting provider gave you: it is in your hosting \
             control panel or in their email.",
        )
        .hint("Sign-in links work for a limited time. If yours no longer works, ask your hosting provider for a new one.")
        .into_response());
    };
    match first_site(&state, &session.viewer).await? {
        Some(site) => Ok(Redirect::to(&site_path(site.as_str(), Section::Overview)).into_response()),
        None => Ok(Notice::new(
            "No sites yet",
            "Your account has no sites yet. They appear here as soon as your hosting provider sets them up.",
        )
        .into_response()),
    }
}

#[derive(Deserialize)]
struct SignOut {
    csrf: String,
}

async fn logout(
    session: Option<Session>,
    form: Result<Form<SignOut>, FormRejection>,
) -> Result<Response, PageError> {
    if let Some(session) = session {
        let presented = form.map(|Form(f)| f.csrf).unwrap_or_default();
        session.check_csrf(&presented)?;
    }
    let mut res = Redirect::to("/signed-out").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_static(CLEAR_COOKIE));
    Ok(res)
}

async fn signed_out() -> impl IntoResponse {
    (
        StatusCode::OK,
        Notice::new(
            "You have signed out",
            "You are no longer signed in on this browser.",
        )
        .hint("To sign in again, open the sign-in link your hosting provider gave you."),
    )
}
