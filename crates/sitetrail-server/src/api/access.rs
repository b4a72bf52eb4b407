//! `GET /api/v1/access-log`: who looked at the log. Internal viewers only: to a client the
//! endpoint does not exist (404), as with anything that is not theirs.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sitetrail_core::{Audience, SiteId};
use sitetrail_store::Access;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::ViewerAuth;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiQuery;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/access-log", get(access_log))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// One site of the viewer's account (a site-scoped viewer sees only its own).
    pub site: Option<String>,
    /// Looks older than this `seq` (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// At most this many (default 50, max 200).
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct LookOut {
    pub seq: i64,
    pub site_id: Option<String>,
    /// `internal` or `client`: the audience of the token that looked.
    pub audience: String,
    /// `user` or `support`.
    pub viewer_kind: String,
    pub viewer_email: Option<String>,
    pub viewer_name: Option<String>,
    /// `list`, `get`, `export` or `stream`.
    pub action: String,
    /// The filters of the read, as its query string.
    pub query: String,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccessLogOut {
    pub items: Vec<LookOut>,
    pub next_before: Option<i64>,
}

fn out(a: Access) -> LookOut {
    LookOut {
        seq: a.seq,
        site_id: a.site_id.map(|s| s.as_str().to_owned()),
        audience: a.audience.as_str().to_owned(),
        viewer_kind: a.actor.kind.as_str().to_owned(),
        viewer_email: a.actor.email.map(|e| e.expose().to_owned()),
        viewer_name: a.actor.name,
        action: a.action.as_str().to_owned(),
        query: a.query,
        at: a.at.to_rfc3339(),
    }
}

#[utoipa::path(get, path = "/api/v1/access-log", tag = "viewers",
    params(AccessQuery),
    responses((status = 200, body = AccessLogOut), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn access_log(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> ApiResult<Json<AccessLogOut>> {
    if viewer.audience != Audience::Internal {
        return Err(ApiError::NotFound("no such resource"));
    }
    let site = match (&q.site, &viewer.site) {
        (Some(s), Some(own)) if s != own.as_str() => {
            return Err(ApiError::NotFound("no such site"));
        }
        (Some(s), _) => Some(SiteId::parse(s).map_err(|_| ApiError::NotFound("no such site"))?),
        (None, own) => own.clone(),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Invalid("limit: between 1 and 200".into()));
    }
    let found = state
        .store
        .accesses(&viewer.account, site.as_ref(), q.before, limit)
        .await?;
    let next_before = (found.len() == limit as usize)
        .then(|| found.last().map(|a| a.seq))
        .flatten();
    Ok(Json(AccessLogOut {
        items: found.into_iter().map(out).collect(),
        next_before,
    }))
}
