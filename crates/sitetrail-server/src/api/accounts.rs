//! `PUT /api/v1/accounts/{account}`: the platform registers a client business.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sitetrail_core::site::check_name;
use sitetrail_core::{Account, AccountId, Colour};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Publisher;
use crate::error::ApiResult;
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
}

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub name: String,
    pub partner: String,
    #[schema(value_type = Option<String>)]
    pub partner_colour: Option<Colour>,
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
    let account = Account {
        id,
        name: body.name.trim().to_owned(),
        partner: body.partner.trim().to_owned(),
        partner_colour: body.partner_colour,
    };
    state.store.upsert_account(&account).await?;
    Ok(Json(AccountOut {
        id: account.id,
        name: account.name,
        partner: account.partner,
        partner_colour: account.partner_colour,
    }))
}
