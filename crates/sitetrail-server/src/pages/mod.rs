//! The dashboard: server-rendered pages (askama), one module per page, merged here. Every
//! page answers with a strict Content-Security-Policy: no inline script or style, nothing
//! from another origin.

mod access_log;
mod activity_logs;
mod advanced_tools;
mod assets;
mod backups;
pub mod csrf;
mod error;
mod login;
mod operations;
mod session;
mod shell;
mod site;
mod snapshots;
mod staging;
mod time;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;

pub use error::PageError;
pub use session::Session;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .merge(login::router())
        .merge(site::router())
        .merge(staging::router())
        .merge(backups::router())
        .merge(advanced_tools::router())
        .merge(activity_logs::router())
        .merge(access_log::router())
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
