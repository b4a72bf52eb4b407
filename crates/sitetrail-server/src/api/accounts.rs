//! `PUT /api/v1/accounts/{account}`: the platform registers a client business.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sitetrail_core::site::check_name;
use sitetrail_core::{Account, AccountId, Colour};
use sitetrail_store::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Publisher;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/accounts/{account}", put(upsert))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountIn {
    pub name: String,
    /// The agency that resells hosting to this account.
    pub partner: String,
    /// The partner's colour for the dashboard, `#rrggbb`.
    #[schema(value_type = Option<String>)]
    pub partner_colour: Option<Colour>,
    /// Days activities are kept (1 to 3650); absent or null: the default, 400.
    #[schema(minimum = 1, maximum = 3650)]
    pub retention_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub name: String,
    pub partner: String,
    #[schema(value_type = Option<String>)]
    pub partner_colour: Option<Colour>,
    /// Days activities are kept.
    pub retention_days: u32,
}

#[utoipa::path(put, path = "/api/v1/accounts/{account}", tag = "publishers",
    params(("account" = String, Path, description = "The platform's account id")),
    request_body = AccountIn,
    responses((status = 200, body = AccountOut), (status = 401, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("publisher_key" = [])))]
pub async fn upsert(
    State(state): State<AppState>,
    _publisher: Publisher,
    Path(account): Path<String>,
    ApiJson(body): ApiJson<AccountIn>,
) -> ApiResult<Json<AccountOut>> {
    let id = AccountId::parse(&account)?;
    check_name("name", &body.name)?;
    check_name("partner", &body.partner)?;
    if let Some(days) = body.retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&days)
    {
        return Err(ApiError::Invalid(format!(
            "retention_days: between 1 and {MAX_RETENTION_DAYS}"
        )));
    }
    let account = Account {
        id,
        name: body.name.trim().to_owned(),
        partner: body.partner.trim().to_owned(),
        partner_colour: body.partner_colour,
    };
    state.store.upsert_account(&account).await?;
    state
        .store
        .set_retention_days(&account.id, body.retention_days)
        .await?;
    Ok(Json(AccountOut {
        retention_days: body.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
        id: account.id,
        name: account.name,
        partner: account.partner,
        partner_colour: account.partner_colour,
    }))
}
