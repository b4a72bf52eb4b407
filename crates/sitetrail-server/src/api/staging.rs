//! The staging operations, templates and backups: a viewer starts an operation, it is logged
//! `in_progress` and answered 202 at once; it runs in the background.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sitetrail_core::{
    ActivityId, ActivityKind, ActivityView, ActorKind, BackupId, Environment, SiteId, Status,
    StoredActivity, TemplateId, Timestamp, Viewer,
};
use sitetrail_staging::{
    BackupReason, EngineError, Manifest, OnConflict, Operation, Push, PushScope,
};
use sitetrail_store::RosterEntry;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::site_scope;
use crate::auth::{BearerViewer, ViewerAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::lens::Lens;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sites/{site}/staging", post(create_staging))
        .route(
            "/api/v1/sites/{site}/staging/reset-from-template",
            post(reset_from_template),
        )
        .route(
            "/api/v1/sites/{site}/staging/reset-from-backup",
            post(reset_from_backup),
        )
        .route(
            "/api/v1/sites/{site}/staging/push-to-live",
            post(push_to_live),
        )
        .route("/api/v1/templates", get(templates))
        .route(
            "/api/v1/sites/{site}/backups",
            get(backups).post(create_backup),
        )
}

/// Starts an operation for a viewer: 404 unless the site is theirs; a refusal (another
/// operation holds the site) is logged and answered 409 with the reason.
pub async fn start_operation(
    state: &AppState,
    viewer: &Viewer,
    site: &str,
    op: Operation,
) -> ApiResult<StoredActivity> {
    let scope = site_scope(state, viewer, site).await?;
    let site: SiteId = scope.site.expect("a site scope names its site");
    // A support person who starts (or tries to start) an operation joins the partner's
    // roster, whether or not the operation gets as far as the log.
    if let (ActorKind::Support, Some(email)) = (viewer.actor.kind, &viewer.actor.email) {
        let me = RosterEntry::new(&scope.account, email, viewer.actor.name.as_deref());
        state.store.add_to_roster(vec![me]).await?;
    }
    let started = state
        .engine
        .start(&site, op, viewer.actor.clone())
        .await
        .map_err(|e| match e {
            EngineError::NotFound(m) => ApiError::NotFoundOwned(m),
            EngineError::Invalid(m) => ApiError::Invalid(m),
            EngineError::Conflict(m) => ApiError::Conflict(m),
            EngineError::Internal(e) => ApiError::Internal(e),
        })?;
    if started.activity.status.is_ended() {
        let reason = Lens::of(state, viewer.audience, &viewer.account)
            .await?
            .view(&started.activity)
            .error
            .unwrap_or_else(|| "the operation could not start".into());
        return Err(ApiError::Conflict(reason));
    }
    Ok(started.activity)
}

pub async fn accepted(
    state: &AppState,
    viewer: &Viewer,
    site: &str,
    op: Operation,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let a = start_operation(state, viewer, site, op).await?;
    let lens = Lens::of(state, viewer.audience, &viewer.account).await?;
    Ok((StatusCode::ACCEPTED, Json(lens.view(&a))))
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/staging", tag = "staging",
    params(("site" = String, Path)),
    responses((status = 202, body = ActivityView, description = "Started; follow it in the log"),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "Another operation runs on the site; the refusal is logged"),
        (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn create_staging(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    accepted(&state, &viewer, &site, Operation::CreateStaging).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    #[schema(value_type = String)]
    pub template: TemplateId,
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/staging/reset-from-template", tag = "staging",
    params(("site" = String, Path)), request_body = TemplateIn,
    responses((status = 202, body = ActivityView), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn reset_from_template(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<TemplateIn>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    accepted(
        &state,
        &viewer,
        &site,
        Operation::ResetFromTemplate(body.template),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRefIn {
    #[schema(value_type = String)]
    pub backup: BackupId,
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/staging/reset-from-backup", tag = "staging",
    params(("site" = String, Path)), request_body = BackupRefIn,
    responses((status = 202, body = ActivityView), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn reset_from_backup(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<BackupRefIn>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    accepted(
        &state,
        &viewer,
        &site,
        Operation::ResetFromBackup(body.backup),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushIn {
    /// `site` (database and files), `database`, `files`, `tables` (with `tables`) or
    /// `folders` (with `folders`).
    #[schema(value_type = String)]
    pub scope: PushScope,
    /// With scope `tables`: tables named without their prefix (`posts`, `wc_orders`).
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// With scope `folders`: folders from the docroot (`wp-content/themes/shop`).
    #[serde(default)]
    pub folders: Option<Vec<String>>,
    /// Keep staging after the push (default: it is removed).
    #[serde(default)]
    pub keep_staging: bool,
    /// Rows staging and live both changed: `stop` (default) before anything changes, or
    /// `staging_wins` / `live_wins` for this push.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub on_conflict: Option<OnConflict>,
    /// The completed preview (a `preview_push` activity of this site) this push confirms;
    /// when live changed since, the push stops and its activity carries the new preview.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub preview: Option<ActivityId>,
    /// Preview only: builds the new live aside and reports (activity `preview_push`),
    /// never switches.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/staging/push-to-live", tag = "staging",
    params(("site" = String, Path)), request_body = PushIn,
    responses((status = 202, body = ActivityView, description = "Started: a push, or with `dry_run` a preview (`preview_push`) whose completed activity holds `details.preview`"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "A scope without its list, a list without its scope, a bad name, or a preview that is not a completed preview of this site")),
    security(("viewer_token" = [])))]
pub async fn push_to_live(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<PushIn>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let op = push_operation(&state, &viewer, &site, body).await?;
    accepted(&state, &viewer, &site, op).await
}

/// The push (or preview) a request asks for, checked before anything is logged.
pub async fn push_operation(
    state: &AppState,
    viewer: &Viewer,
    site: &str,
    body: PushIn,
) -> ApiResult<Operation> {
    // Another account's site answers 404 before its request is judged.
    let scope = site_scope(state, viewer, site).await?;
    let (tables, folders) = crate::push_input::checked_lists(
        body.scope,
        body.tables.unwrap_or_default(),
        body.folders.unwrap_or_default(),
    )
    .map_err(ApiError::Invalid)?;
    if body.dry_run && body.preview.is_some() {
        return Err(ApiError::Invalid(
            "a preview confirms a push, not another preview: leave out preview or dry_run".into(),
        ));
    }
    if let Some(preview) = &body.preview {
        let site = scope.site.as_ref().expect("a site scope names its site");
        confirmable_preview(state, site, preview).await?;
    }
    let push = Push {
        scope: body.scope,
        tables,
        folders,
        keep_staging: body.keep_staging,
        on_conflict: body.on_conflict.unwrap_or_default(),
        preview: body.preview,
    };
    Ok(if body.dry_run {
        Operation::PreviewPush(push)
    } else {
        Operation::PushToLive(push)
    })
}

/// A push may confirm only a completed preview of the same site; any other id (another
/// site's, another account's, none at all) gets the same answer.
async fn confirmable_preview(state: &AppState, site: &SiteId, id: &ActivityId) -> ApiResult<()> {
    let stored = state.store.activity(id).await?;
    match stored {
        Some(a) if a.site_id == *site && a.activity == ActivityKind::PreviewPush => {
            match a.status {
                Status::Completed => Ok(()),
                Status::InProgress => Err(ApiError::Invalid(
                    "that preview is still running: confirm it once it has completed".into(),
                )),
                Status::Failed => Err(ApiError::Invalid(
                    "that preview failed: preview the push again".into(),
                )),
            }
        }
        _ => Err(ApiError::Invalid("no such preview of this site".into())),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupIn {
    #[schema(value_type = String)]
    pub environment: Environment,
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/backups", tag = "staging",
    params(("site" = String, Path)), request_body = BackupIn,
    responses((status = 202, body = ActivityView), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn create_backup(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<BackupIn>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let op = Operation::Backup {
        environment: body.environment,
        reason: BackupReason::Manual,
    };
    accepted(&state, &viewer, &site, op).await
}

/// A snapshot as a viewer sees it.
#[derive(Serialize, ToSchema)]
pub struct SnapshotOut {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub environment: Option<Environment>,
    /// `manual`, `daily`, `automatic` (before a destructive operation) or `template`.
    pub reason: String,
    pub source_url: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub files: u64,
    pub files_bytes: u64,
    pub tables: u64,
    pub rows: u64,
}

impl From<Manifest> for SnapshotOut {
    fn from(m: Manifest) -> Self {
        SnapshotOut {
            reason: serde_json::to_value(m.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            id: m.id,
            environment: m.environment,
            source_url: m.source_url,
            created_at: m.created_at,
            files: m.files.files,
            files_bytes: m.files.bytes,
            tables: m.database.tables,
            rows: m.database.rows,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotList {
    pub items: Vec<SnapshotOut>,
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "staging",
    responses((status = 200, body = SnapshotList), (status = 401, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn templates(
    State(state): State<AppState>,
    ViewerAuth(_viewer): ViewerAuth,
) -> ApiResult<Json<SnapshotList>> {
    let items = state.engine.snapshots().templates()?;
    Ok(Json(SnapshotList {
        items: items.into_iter().map(SnapshotOut::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/backups", tag = "staging",
    params(("site" = String, Path)),
    responses((status = 200, body = SnapshotList), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn backups(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(site): Path<String>,
) -> ApiResult<Json<SnapshotList>> {
    let scope = site_scope(&state, &viewer, &site).await?;
    let site = scope.site.expect("a site scope names its site");
    let items = state.engine.snapshots().backups(&site)?;
    Ok(Json(SnapshotList {
        items: items.into_iter().map(SnapshotOut::from).collect(),
    }))
}
