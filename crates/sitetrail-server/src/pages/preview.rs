//! A push's preview as people read it: per table what the push adds, removes and changes and
//! what it keeps from live, the rows both sides changed (with the choice of who wins), the
//! files (the first 200, with sizes), URL rewrites and cells left as they were; then "Push
//! these changes" confirms that preview. A push that stopped because live changed since its
//! preview carries the new report: the page shows it and asks to preview again.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sitetrail_core::{ActivityId, ActivityKind, ActivityView, Status};
use sitetrail_staging::push::{Conflict, SkippedCell, TableChange};
use sitetrail_staging::{OnConflict, PushReport, PushScope};

use crate::AppState;
use crate::api::staging::{PushIn, push_operation};
use crate::error::ApiError;
use crate::lens::Lens;
use crate::pages::operations::{self, Flash, HasCsrf, Hosting, checked};
use crate::pages::shell::{Section, Shell, SitePage, site_path};
use crate::pages::snapshots::{count, size};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{site}/staging/previews/{activity}", get(preview))
        .route(
            "/sites/{site}/staging/previews/{activity}/push",
            post(push_this),
        )
        .route(
            "/sites/{site}/staging/previews/{activity}/again",
            post(preview_again),
        )
}

pub fn path(site: &str, activity: &str) -> String {
    format!("{}/previews/{activity}", site_path(site, Section::Staging))
}

/// What a push carried, as its activity's details record it (`pushed`, or the push itself).
#[derive(Debug, Default, Deserialize)]
struct Pushed {
    #[serde(default)]
    scope: PushScope,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    folders: Vec<String>,
    #[serde(default)]
    keep_staging: bool,
}

impl Pushed {
    fn of(a: &ActivityView) -> Pushed {
        let from = a
            .details
            .get("pushed")
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(a.details.clone()));
        let mut p: Pushed = serde_json::from_value(from).unwrap_or_default();
        p.keep_staging = a.details.get("keep_staging").and_then(|v| v.as_bool()) == Some(true);
        p
    }

    fn what(&self) -> String {
        sitetrail_staging::what(&sitetrail_staging::Push {
            scope: self.scope,
            tables: self.tables.clone(),
            folders: self.folders.clone(),
            ..Default::default()
        })
    }

    fn request(
        &self,
        dry_run: bool,
        preview: Option<ActivityId>,
        on_conflict: OnConflict,
    ) -> PushIn {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        PushIn {
            scope: self.scope,
            tables: list(&self.tables),
            folders: list(&self.folders),
            keep_staging: self.keep_staging,
            on_conflict: Some(on_conflict),
            preview,
            dry_run,
        }
    }
}

/// One file of the report, its size in words.
pub struct FileRow {
    pub path: String,
    pub change: String,
    pub size: String,
}

/// The report, ready to show.
pub struct ReportView {
    pub tables: Vec<TableChange>,
    pub kept_from_live: String,
    pub conflicts: Vec<Conflict>,
    pub files_added: String,
    pub files_changed: String,
    pub files_removed: String,
    pub files: Vec<FileRow>,
    /// Changed files the list does not name.
    pub files_unlisted: u64,
    pub url_rewrites: String,
    pub skipped: Vec<SkippedCell>,
}

impl ReportView {
    fn of(r: PushReport) -> ReportView {
        let f = &r.files;
        let listed = f.list.len().min(sitetrail_staging::push::FILES_LISTED);
        let sized = |n: u64, bytes: u64| format!("{} ({})", count(n), size(bytes));
        ReportView {
            kept_from_live: count(r.kept_from_live),
            files_added: sized(f.added, f.bytes_added),
            files_changed: sized(f.changed, f.bytes_changed),
            files_removed: sized(f.removed, f.bytes_removed),
            files_unlisted: (f.added + f.changed + f.removed).saturating_sub(listed as u64),
            files: f
                .list
                .iter()
                .take(listed)
                .map(|c| FileRow {
                    path: c.path.clone(),
                    change: c.change.clone(),
                    size: size(c.bytes),
                })
                .collect(),
            url_rewrites: count(r.url_rewrites),
            tables: r.tables,
            conflicts: r.conflicts,
            skipped: r.skipped_cells,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "preview.html")]
struct PreviewPage {
    shell: Shell,
    flash: Option<Flash>,
    unavailable: Option<&'static str>,
    staging_href: String,
    push_action: String,
    again_action: String,
    /// `running`, `completed` or `failed`.
    status: &'static str,
    what: String,
    report: Option<ReportView>,
    /// Why it failed, in words.
    error: Option<String>,
    /// A completed preview: it can be confirmed.
    confirmable: bool,
    /// A push that stopped: its report is the new preview to look at.
    stopped_push: bool,
    keep_staging: bool,
    confirm_error: Option<&'static str>,
    confirmation: &'static str,
}

/// The activity a preview page shows: a preview of this site, or a push of it that carries
/// one; anything else is the usual 404.
async fn shown(
    state: &AppState,
    session: &Session,
    page: &SitePage,
    activity: &str,
) -> Result<ActivityView, PageError> {
    let id = ActivityId::parse(activity).map_err(|_| PageError::site_not_found())?;
    let stored = state
        .store
        .activity(&id)
        .await
        .map_err(ApiError::from)?
        .filter(|a| a.site_id == page.site.id && session.viewer.may_see(&a.account_id, &a.site_id))
        .ok_or_else(PageError::site_not_found)?;
    let lens = Lens::of(state, session.viewer.audience, &session.viewer.account).await?;
    let view = lens.view(&stored);
    let ours = view.id == stored.id
        && (view.activity == ActivityKind::PreviewPush
            || (view.activity == ActivityKind::PushStagingToLive
                && view.details.contains_key("preview")));
    if !ours {
        return Err(PageError::site_not_found());
    }
    Ok(view)
}

async fn render(
    state: &AppState,
    session: &Session,
    site: &str,
    activity: &str,
    confirm_error: Option<&'static str>,
    flash: Option<Flash>,
) -> Result<PreviewPage, PageError> {
    let page = SitePage::load(
        state,
        session,
        site,
        Section::Staging,
        "",
        "Preview of a push",
    )
    .await?;
    let view = shown(state, session, &page, activity).await?;
    let id = page.site.id.as_str().to_owned();
    let pushed = Pushed::of(&view);
    let report = view
        .details
        .get("preview")
        .and_then(|r| serde_json::from_value::<PushReport>(r.clone()).ok())
        .map(ReportView::of);
    let status = match view.status {
        Status::InProgress => "running",
        Status::Completed => "completed",
        Status::Failed => "failed",
    };
    let flash = match (flash, view.status) {
        (Some(f), _) => Some(f),
        (None, Status::InProgress) => Flash::started(state, session, &page.site, activity).await,
        _ => None,
    };
    let base = path(&id, view.id.as_str());
    Ok(PreviewPage {
        flash,
        unavailable: Hosting::of(&page.site).staging_unavailable(),
        staging_href: site_path(&id, Section::Staging),
        push_action: format!("{base}/push"),
        again_action: format!("{base}/again"),
        status,
        what: pushed.what(),
        confirmable: view.activity == ActivityKind::PreviewPush && view.status == Status::Completed,
        stopped_push: view.activity == ActivityKind::PushStagingToLive,
        error: view
            .error
            .as_deref()
            .map(|e| crate::pages::words::error_for_people(e).into_owned()),
        keep_staging: pushed.keep_staging,
        report,
        confirm_error,
        confirmation: super::staging::CONFIRMATION,
        shell: page.shell,
    })
}

async fn preview(
    State(state): State<AppState>,
    session: Session,
    Path((site, activity)): Path<(String, String)>,
) -> Result<PreviewPage, PageError> {
    render(&state, &session, &site, &activity, None, None).await
}

#[derive(Debug, Deserialize)]
struct ConfirmForm {
    csrf: Option<String>,
    once: Option<String>,
    on_conflict: Option<String>,
    keep_staging: Option<String>,
    confirm: Option<String>,
}

impl HasCsrf for ConfirmForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

fn ticked(field: &Option<String>) -> bool {
    field.as_deref().is_some_and(|v| !v.trim().is_empty())
}

/// Starts the push (or preview) a form asks for after the API's own checks, and answers as
/// the Staging page's forms do: redirect to `back` when it started, this page again with
/// the reason when it did not.
async fn start_push(
    state: &AppState,
    session: &Session,
    site: &str,
    activity: &str,
    body: PushIn,
    once: Option<&str>,
    back: impl Fn(&ActivityId) -> String,
) -> Result<Response, PageError> {
    let label = if body.dry_run {
        ActivityKind::PreviewPush.label()
    } else {
        ActivityKind::PushStagingToLive.label()
    };
    let refused = match push_operation(state, &session.viewer, site, body).await {
        Ok(op) => match operations::start(state, session, site, op, once).await? {
            Ok(started) => {
                let to = back(&started);
                return Ok(axum::response::Redirect::to(&to).into_response());
            }
            Err(refusal) => (refusal.status, refusal.message),
        },
        Err(ApiError::Invalid(m)) => (StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => return Err(e.into()),
    };
    let flash = Flash::refused(label, refused.1);
    let page = render(state, session, site, activity, None, Some(flash)).await?;
    Ok((refused.0, page).into_response())
}

async fn push_this(
    State(state): State<AppState>,
    session: Session,
    Path((site, activity)): Path<(String, String)>,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let page = SitePage::load(&state, &session, &site, Section::Staging, "", "Preview").await?;
    let view = shown(&state, &session, &page, &activity).await?;
    if !ticked(&form.confirm) {
        let says = "Tick \u{201c}I am ready to push my staging site to production\u{201d} to push.";
        let page = render(&state, &session, &site, &activity, Some(says), None).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let on_conflict = form
        .on_conflict
        .as_deref()
        .and_then(OnConflict::parse)
        .unwrap_or_default();
    let mut pushed = Pushed::of(&view);
    pushed.keep_staging = ticked(&form.keep_staging);
    let body = pushed.request(false, Some(view.id.clone()), on_conflict);
    let staging = site_path(&site, Section::Staging);
    start_push(
        &state,
        &session,
        &site,
        &activity,
        body,
        form.once(),
        |id| format!("{staging}?started={id}"),
    )
    .await
}

async fn preview_again(
    State(state): State<AppState>,
    session: Session,
    Path((site, activity)): Path<(String, String)>,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let page = SitePage::load(&state, &session, &site, Section::Staging, "", "Preview").await?;
    let view = shown(&state, &session, &page, &activity).await?;
    let body = Pushed::of(&view).request(true, None, OnConflict::Stop);
    start_push(
        &state,
        &session,
        &site,
        &activity,
        body,
        form.once(),
        |id| path(&site, id.as_str()),
    )
    .await
}

/// Starts a preview from the push form and answers with its page.
pub async fn start_preview(
    state: &AppState,
    session: &Session,
    site: &str,
    body: PushIn,
    once: Option<&str>,
) -> Result<Result<Response, (StatusCode, String)>, PageError> {
    let op = match push_operation(state, &session.viewer, site, body).await {
        Ok(op) => op,
        Err(ApiError::Invalid(m)) => return Ok(Err((StatusCode::UNPROCESSABLE_ENTITY, m))),
        Err(e) => return Err(e.into()),
    };
    Ok(
        match operations::start(state, session, site, op, once).await? {
            Ok(id) => Ok(axum::response::Redirect::to(&path(site, id.as_str())).into_response()),
            Err(refusal) => Err((refusal.status, refusal.message)),
        },
    )
}
