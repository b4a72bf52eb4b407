//! Signing in and out. A sign-in link, `GET /login?token=[&site=]`, only asks: "Sign in to
//! <partner> as <who>?", with a form. Its `POST /login` sets the session cookie and redirects
//! to the Activity Logs (of `site`, the token's site or the account's first), so the token
//! does not stay in the address bar. The POST is refused when the browser says it came from
//! another site (`Origin`, `Sec-Fetch-Site`): a link or a form elsewhere cannot sign a
//! person in to someone else's session (login CSRF). Sign-out is a form with a CSRF token.

use askama::Template;
use askama_web::WebTemplate;
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
use crate::pages::session::CLEAR_COOKIE;
use crate::pages::shell::{Section, site_path};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(confirm).post(login))
        .route("/logout", post(logout))
        .route("/signed-out", get(signed_out))
}

#[derive(Deserialize)]
struct SignIn {
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

/// What a sign-in link shows: who it signs in, as whom, and a form to do it.
#[derive(Template, WebTemplate)]
#[template(path = "sign_in.html")]
struct Confirm {
    partner: String,
    who: String,
    token: String,
    site: Option<String>,
}

/// The token of a sign-in request, checked; or the page that says why not.
fn signed_in(state: &AppState, token: Option<&str>) -> Result<Session, PageError> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| PageError::bad_sign_in_link(false))?;
    Session::sign_in(state, token).map_err(|e| match e {
        ApiError::Unauthorized(m) => PageError::bad_sign_in_link(m.contains("expired")),
        other => other.into(),
    })
}

async fn confirm(
    State(state): State<AppState>,
    query: Result<Query<SignIn>, QueryRejection>,
) -> Result<Response, PageError> {
    let Ok(Query(query)) = query else {
        return Err(PageError::bad_sign_in_link(false));
    };
    let session = signed_in(&state, query.token.as_deref())?;
    let partner = state
        .store
        .account(&session.viewer.account)
        .await
        .map_err(ApiError::from)?
        .map(|a| a.partner)
        .unwrap_or_else(|| "your hosting dashboard".to_owned());
    let who = session
        .viewer
        .actor
        .email
        .as_ref()
        .map(|e| e.expose().to_owned())
        .unwrap_or_default();
    Ok(Confirm {
        partner,
        who,
        token: session.token().to_owned(),
        site: query.site.filter(|s| !s.trim().is_empty()),
    }
    .into_response())
}

/// Whether a browser said this request came from a page of another site. `Sec-Fetch-Site`
/// decides where it is sent (every current browser does). Its `Origin` must then name this
/// host, or be `null`: the dashboard's pages send no referrer, and a browser sends the origin
/// of such a page's form as `null`. Where a browser sends no `Sec-Fetch-Site`, only an
/// `Origin` of this host passes. Clients that send neither header (not a browser) are not
/// asked.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("cross-site"));
    if fetch_site.is_some_and(|v| !matches!(v, "same-origin" | "none")) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("null");
    if origin == "null" {
        return fetch_site.is_none();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, authority)| authority);
    !matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn refused_from_another_site() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        Notice::new(
            "Sign in from your own link",
            "This sign-in was sent from another website, so nobody was signed in.",
        )
        .hint(
            "Open the sign-in link your hosting provider gave you, check who it signs you in \
             as, and press Sign in there.",
        ),
    )
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Result<Response, PageError> {
    if cross_site(&headers) {
        return Err(refused_from_another_site());
    }
    let Ok(Form(form)) = form else {
        return Err(PageError::bad_sign_in_link(false));
    };
    let session = signed_in(&state, form.token.as_deref())?;
    let asked = match &form.site {
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
    res.headers_mut()
        .insert(header::SET_COOKIE, session.cookie(state.secure_cookies));
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
