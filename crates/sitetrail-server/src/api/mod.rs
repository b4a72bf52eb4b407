//! The JSON API, one module per resource, merged here.

mod access;
mod accounts;
mod activities;
mod export;
mod meta;
pub mod safe_push;
mod sites;
pub mod staging;
pub(crate) mod stream;

use axum::Router;
use sitetrail_core::{SiteId, Viewer};
use sitetrail_store::Scope;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub use activities::{ListResponse, page_for};
pub use meta::openapi;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(access::router())
        .merge(accounts::router())
        .merge(sites::router())
        .merge(staging::router())
        .merge(safe_push::router())
        .merge(activities::router())
        .merge(export::router())
        .merge(stream::router())
        .merge(meta::router())
}

/// The scope a viewer reads a site's log in: 404 unless the site exists and is theirs, the
/// same answer either way.
pub async fn site_scope(state: &AppState, viewer: &Viewer, site: &str) -> ApiResult<Scope> {
    let not_found = ApiError::NotFound("no such site");
    let site = SiteId::parse(site).map_err(|_| not_found)?;
    let found = state.store.site(&site).await?;
    match found {
        Some(s) if viewer.may_see(&s.account_id, &s.id) => Ok(Scope {
            account: s.account_id,
            site: Some(s.id),
        }),
        _ => Err(ApiError::NotFound("no such site")),
    }
}

/// The whole scope of a viewer's token.
pub fn viewer_scope(viewer: &Viewer) -> Scope {
    Scope {
        account: viewer.account.clone(),
        site: viewer.site.clone(),
    }
}
