//! What a push leaves behind and what puts live back: the undo window of the last push, its
//! undo, a restore of live from a backup, and the profile of tables live owns. Each
//! operation starts like the other staging operations (202 with its activity, logged, run
//! in the background); a request refused here logs nothing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sitetrail_core::{ActivityView, BackupId, SiteId, Viewer};
use sitetrail_staging::{LiveOwned, Operation, OwnedTable, PushScope, UndoWindow};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::site_scope;
use crate::api::staging::accepted;
use crate::auth::{BearerViewer, ViewerAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/sites/{site}/live/undo-push",
            get(undo_window).post(undo_push),
        )
        .route("/api/v1/sites/{site}/live/restore", post(restore_live))
        .route(
            "/api/v1/sites/{site}/live-owned",
            get(live_owned).put(set_live_owned),
        )
}

/// What a push refuses with when there is nothing to undo, in words.
pub const NOTHING_TO_UNDO: &str =
    "There is no push to undo: a push can be undone for 24 hours, until the next push.";

async fn site_of(state: &AppState, viewer: &Viewer, site: &str) -> ApiResult<SiteId> {
    let scope = site_scope(state, viewer, site).await?;
    Ok(scope.site.expect("a site scope names its site"))
}

/// The push live can go back on, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct UndoWindowOut {
    /// The push's activity (with `puts_push_back`, the undo's).
    pub push: String,
    #[schema(value_type = String, format = DateTime)]
    pub pushed_at: sitetrail_core::Timestamp,
    /// Until when it can be undone (or the next push, whichever comes first).
    #[schema(value_type = String, format = DateTime)]
    pub until: sitetrail_core::Timestamp,
    /// The last push was undone: undoing again puts it back (with the rows live gained
    /// meanwhile in the tables it owns).
    pub puts_push_back: bool,
}

impl From<UndoWindow> for UndoWindowOut {
    fn from(w: UndoWindow) -> Self {
        UndoWindowOut {
            push: w.push.as_str().to_owned(),
            pushed_at: w.pushed_at,
            until: w.until,
            puts_push_back: w.puts_push_back,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/live/undo-push", tag = "staging",
    params(("site" = String, Path)),
    responses((status = 200, body = UndoWindowOut, description = "The last push can be undone until `until`"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody, description = "No push to undo, or not your site")),
    security(("viewer_token" = [])))]
pub async fn undo_window(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(site): Path<String>,
) -> ApiResult<Json<UndoWindowOut>> {
    let site = site_of(&state, &viewer, &site).await?;
    match state.engine.undo_window(&site).await? {
        Some(w) => Ok(Json(w.into())),
        None => Err(ApiError::NotFound("there is no push to undo")),
    }
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/live/undo-push", tag = "staging",
    params(("site" = String, Path)),
    responses((status = 202, body = ActivityView, description = "Started (`undo_push`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "No push to undo, or another operation runs on the site")),
    security(("viewer_token" = [])))]
pub async fn undo_push(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let id = site_of(&state, &viewer, &site).await?;
    if state.engine.undo_window(&id).await?.is_none() {
        return Err(ApiError::Conflict(NOTHING_TO_UNDO.into()));
    }
    accepted(&state, &viewer, &site, Operation::UndoPush).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreIn {
    #[schema(value_type = String)]
    pub backup: BackupId,
    /// `site` (database and files), `database` or `files`.
    #[schema(value_type = String)]
    pub scope: PushScope,
}

#[utoipa::path(post, path = "/api/v1/sites/{site}/live/restore", tag = "staging",
    params(("site" = String, Path)), request_body = RestoreIn,
    responses((status = 202, body = ActivityView, description = "Started (`restore_live_from_backup`); live is backed up first"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody, description = "Not your site, or no such backup of it"),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn restore_live(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<RestoreIn>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let op = restore_operation(&state, &viewer, &site, body.backup, body.scope).await?;
    accepted(&state, &viewer, &site, op).await
}

/// A restore of live, checked before anything is logged: a whole, database or files scope,
/// and a backup of this site.
pub async fn restore_operation(
    state: &AppState,
    viewer: &Viewer,
    site: &str,
    backup: BackupId,
    scope: PushScope,
) -> ApiResult<Operation> {
    let id = site_of(state, viewer, site).await?;
    if !matches!(
        scope,
        PushScope::Site | PushScope::Database | PushScope::Files
    ) {
        return Err(ApiError::Invalid(
            "a backup restores live whole (site), its database or its files".into(),
        ));
    }
    let known = state
        .engine
        .snapshots()
        .backups(&id)?
        .iter()
        .any(|m| m.id == backup.as_str());
    if !known {
        return Err(ApiError::NotFound("no such backup of this site"));
    }
    Ok(Operation::RestoreLive { backup, scope })
}

/// A table in the profile, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct OwnedTableOut {
    pub table: String,
    pub holds: String,
    /// When only some rows are live's: which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
}

/// The tables live owns on this site: what sitetrail ships and the site's additions.
#[derive(Serialize, ToSchema)]
pub struct LiveOwnedOut {
    pub shipped: Vec<OwnedTableOut>,
    pub extra: Vec<String>,
}

impl From<LiveOwned> for LiveOwnedOut {
    fn from(p: LiveOwned) -> Self {
        let table = |t: OwnedTable| OwnedTableOut {
            table: t.table,
            holds: t.holds,
            rows: t.rows,
        };
        LiveOwnedOut {
            shipped: p.shipped.into_iter().map(table).collect(),
            extra: p.extra,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/live-owned", tag = "staging",
    params(("site" = String, Path)),
    responses((status = 200, body = LiveOwnedOut), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn live_owned(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(site): Path<String>,
) -> ApiResult<Json<LiveOwnedOut>> {
    let site = site_of(&state, &viewer, &site).await?;
    Ok(Json(state.engine.live_owned(&site).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveOwnedIn {
    /// Tables this site adds to the profile, named without their prefix; replaces the
    /// site's earlier additions.
    pub extra: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/sites/{site}/live-owned", tag = "staging",
    params(("site" = String, Path)), request_body = LiveOwnedIn,
    responses((status = 200, body = LiveOwnedOut), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn set_live_owned(
    State(state): State<AppState>,
    BearerViewer(viewer): BearerViewer,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<LiveOwnedIn>,
) -> ApiResult<Json<LiveOwnedOut>> {
    let site = site_of(&state, &viewer, &site).await?;
    Ok(Json(replace_live_owned(&state, &site, body.extra).await?))
}

/// Replaces a site's additions to the profile after checking each name.
pub async fn replace_live_owned(
    state: &AppState,
    site: &SiteId,
    extra: Vec<String>,
) -> ApiResult<LiveOwnedOut> {
    let extra = crate::push_input::checked_tables(extra).map_err(ApiError::Invalid)?;
    let profile = state
        .engine
        .set_live_owned(site, extra)
        .await
        .map_err(|e| match e {
            sitetrail_staging::EngineError::Invalid(m) => ApiError::Invalid(m),
            sitetrail_staging::EngineError::NotFound(m) => ApiError::NotFoundOwned(m),
            sitetrail_staging::EngineError::Conflict(m) => ApiError::Conflict(m),
            sitetrail_staging::EngineError::Internal(e) => ApiError::Internal(e),
        })?;
    Ok(profile.into())
}
