//! The dashboard: server-rendered pages (askama), one module per page, merged here. Every
//! page answers with a strict Content-Security-Policy: no inline script or style, nothing
//! from another origin. A signed-in viewer's pages count against the same rate as their API
//! calls.

mod access_log;
mod activity_logs;
mod advanced_tools;
mod assets;
mod backups;
pub mod csrf;
mod error;
mod login;
pub mod once;
mod operations;
pub(crate) mod preview;
mod restore;
mod session;
mod shell;
mod site;
mod snapshots;
mod staging;
mod staging_state;
mod time;
mod undo;
pub(crate) mod words;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;
use crate::error::ApiError;

pub use error::PageError;
pub use session::Session;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .merge(login::router())
        .merge(site::router())
        .merge(staging::router())
        .merge(preview::router())
        .merge(undo::router())
        .merge(restore::router())
        .merge(backups::router())
        .merge(advanced_tools::router())
        .merge(activity_logs::router())
        .merge(access_log::router())
        .layer(axum::middleware::from_fn_with_state(state, viewer_rate))
        // Pages show one person's data: never cached, never shared.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(pages)
        .merge(assets::router())
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // A sign-in link carries a token: it must not travel on in a Referer.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
}

/// A signed-in viewer's page counts against their rate, the one their API calls count
/// against; past it the page says to wait, with `Retry-After`.
async fn viewer_rate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let viewer = crate::auth::viewer_of(request.headers(), &state.tokens);
    if let Some(Err(ApiError::RateLimited { retry_after, .. })) =
        viewer.map(|v| state.limits.viewer(&v))
    {
        let secs = retry_after.as_millis().div_ceil(1000).max(1) as u64;
        let notice = error::Notice::new(
            "Too many requests",
            "You opened pages faster than this dashboard serves one person.",
        )
        .hint(format!("Wait {secs} s, then reload the page."));
        let mut page = PageError::new(StatusCode::TOO_MANY_REQUESTS, notice).into_response();
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return page;
    }
    next.run(request).await
}
