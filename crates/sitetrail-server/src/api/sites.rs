//! `PUT /api/v1/sites/{site}`: the platform registers a site and its environments.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sitetrail_core::{AccountId, EnvironmentSpec, Site, SiteId};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Publisher;
use crate::error::ApiResult;
use crate::json::ApiJson;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/sites/{site}", put(upsert))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteIn {
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub name: String,
    pub live: EnvironmentSpec,
    pub staging: Option<EnvironmentSpec>,
}

#[derive(Serialize, ToSchema)]
pub struct SiteOut {
    #[schema(value_type = String)]
    pub id: SiteId,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub name: String,
    pub live: EnvironmentSpec,
    pub staging: Option<EnvironmentSpec>,
}

impl From<Site> for SiteOut {
    fn from(s: Site) -> Self {
        SiteOut {
            id: s.id,
            account_id: s.account_id,
            name: s.name,
            live: s.live,
            staging: s.staging,
        }
    }
}

#[utoipa::path(put, path = "/api/v1/sites/{site}", tag = "publishers",
    params(("site" = String, Path, description = "The platform's site id")),
    request_body = SiteIn,
    responses((status = 200, body = SiteOut), (status = 401, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("publisher_key" = [])))]
pub async fn upsert(
    State(state): State<AppState>,
    _publisher: Publisher,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<SiteIn>,
) -> ApiResult<Json<SiteOut>> {
    let site = Site {
        id: SiteId::parse(&site)?,
        account_id: body.account_id,
        name: body.name.trim().to_owned(),
        live: body.live,
        staging: body.staging,
    };
    site.validate()?;
    state.store.upsert_site(&site).await?;
    Ok(Json(site.into()))
}
