//! Health, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::error::ApiResult;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/openapi.json", get(openapi_json))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sitetrail", description = "The staging engine and Activity Logs of a white-label managed WordPress hosting product."),
    paths(
        super::accounts::upsert,
        super::sites::upsert,
        super::activities::record,
        super::activities::record_batch,
        super::activities::complete,
        super::activities::fail,
        super::activities::list_site,
        super::activities::list_account,
        super::activities::get_one,
        super::export::export,
        super::stream::stream,
        super::access::access_log,
        super::staging::create_staging,
        super::staging::reset_from_template,
        super::staging::reset_from_backup,
        super::staging::push_to_live,
        super::staging::create_backup,
        super::staging::templates,
        super::staging::backups,
        healthz,
    ),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "publisher_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "viewer_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub last_change_no: i64,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 500, body = crate::error::ErrorBody)))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let last_change_no = state.store.last_change_no().await?;
    Ok(Json(Health {
        status: "ok",
        last_change_no,
    }))
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::observe::prometheus().render(),
    )
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi())
}
