//! The Staging page: create staging from live, reset it from a template or a backup, and
//! push it to live after an explicit confirmation that names what will be overwritten. Each
//! action is a form (with the session's CSRF token) that starts the operation as the
//! signed-in viewer and comes back here with `?started=<activity>`; the page lists the
//! site's recent staging activity, a running one as running.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sitetrail_core::{BackupId, TemplateId};
use sitetrail_staging::{Operation, PushScope};

use crate::AppState;
use crate::pages::operations::{self, Flash, HasCsrf, Hosting, checked};
use crate::pages::shell::{Section, Shell, SitePage, site_path};
use crate::pages::site::{Recent, RecentOf};
use crate::pages::snapshots::{self, Snapshot};
use crate::pages::staging_state::StagingFacts;
use crate::pages::{PageError, Session};
use crate::push_input::lines;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{site}/staging", get(staging))
        .route("/sites/{site}/staging/create", post(create))
        .route(
            "/sites/{site}/staging/reset-from-template",
            post(reset_from_template),
        )
        .route(
            "/sites/{site}/staging/reset-from-backup",
            post(reset_from_backup),
        )
        .route(
            "/sites/{site}/staging/push-to-live",
            get(push_confirmation).post(push_to_live),
        )
}

fn staging_path(site: &str) -> String {
    site_path(site, Section::Staging)
}

#[derive(Debug, Default, Deserialize)]
struct StagingQuery {
    /// The activity a form just started.
    started: Option<String>,
    /// A backup to preselect (the Backups page links here with it).
    backup: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "staging.html")]
struct StagingPage {
    shell: Shell,
    flash: Option<Flash>,
    unavailable: Option<&'static str>,
    create_action: String,
    template_action: String,
    backup_action: String,
    push_href: String,
    backups_href: String,
    templates: Vec<Snapshot>,
    backups: Vec<Snapshot>,
    chosen_template: String,
    chosen_backup: String,
    recent: Recent,
    /// What the engine recorded about staging; none when it is not hosted here.
    facts: Option<StagingFacts>,
    /// The last push, while it can be undone.
    undo: Option<crate::pages::undo::UndoOffer>,
}

impl StagingPage {
    /// Whether staging is known not to exist: then only Create is offered.
    fn missing(&self) -> bool {
        self.facts.as_ref().is_some_and(|f| !f.exists)
    }
}

/// What the Staging page says and keeps from the last form or redirect.
#[derive(Debug, Default)]
struct Said<'a> {
    flash: Option<Flash>,
    /// The activity a form just started (`?started=`).
    started: Option<&'a str>,
    template: &'a str,
    backup: &'a str,
}

async fn render(
    state: &AppState,
    session: &Session,
    site: &str,
    said: Said<'_>,
) -> Result<StagingPage, PageError> {
    let page = SitePage::load(state, session, site, Section::Staging, "", "Staging").await?;
    let id = page.site.id.as_str().to_owned();
    let base = staging_path(&id);
    let templates = snapshots::templates(&state.engine).await?;
    let backups = snapshots::backups(&state.engine, &page.site.id).await?;
    let recent = Recent::load(state, session, &page, RecentOf::Staging, 10).await?;
    let facts = page.staging.as_ref().map(|s| StagingFacts::of(s, &backups));
    let flash = match (said.flash, said.started) {
        (Some(flash), _) => Some(flash),
        (None, Some(started)) => Flash::started(state, session, &page.site, started).await,
        (None, None) => None,
    };
    Ok(StagingPage {
        flash,
        unavailable: Hosting::of(&page.site).staging_unavailable(),
        create_action: format!("{base}/create"),
        template_action: format!("{base}/reset-from-template"),
        backup_action: format!("{base}/reset-from-backup"),
        push_href: format!("{base}/push-to-live"),
        backups_href: site_path(&id, Section::Backups),
        templates,
        backups,
        chosen_template: said.template.to_owned(),
        chosen_backup: said.backup.to_owned(),
        recent,
        facts,
        undo: crate::pages::undo::UndoOffer::of(state, &page.site).await,
        shell: page.shell,
    })
}

async fn staging(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    query: Result<Query<StagingQuery>, QueryRejection>,
) -> Result<StagingPage, PageError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let said = Said {
        started: query.started.as_deref(),
        backup: query.backup.as_deref().unwrap_or(""),
        ..Said::default()
    };
    render(&state, &session, &site, said).await
}

/// Starts `op` and answers: to the Staging page when it started, or the Staging page again
/// with the reason when it was refused.
async fn start_from_staging(
    state: &AppState,
    session: &Session,
    site: &str,
    op: Operation,
    once: Option<&str>,
    kept: Said<'_>,
) -> Result<Response, PageError> {
    let label = op.kind().label();
    match operations::start(state, session, site, op, once).await? {
        Ok(activity) => Ok(operations::started(&staging_path(site), &activity)),
        Err(refusal) => {
            let said = Said {
                flash: Some(Flash::refused(label, refusal.message)),
                ..kept
            };
            let page = render(state, session, site, said).await?;
            Ok((refusal.status, page).into_response())
        }
    }
}

/// A form field that must name one of the listed choices: the page again when it does not.
async fn invalid_choice(
    state: &AppState,
    session: &Session,
    site: &str,
    label: &'static str,
    message: &str,
) -> Result<Response, PageError> {
    let said = Said {
        flash: Some(Flash::refused(label, message)),
        ..Said::default()
    };
    let page = render(state, session, site, said).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Debug, Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
    once: Option<String>,
}

impl HasCsrf for CsrfOnly {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

async fn create(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    start_from_staging(
        &state,
        &session,
        &site,
        Operation::CreateStaging,
        form.once(),
        Said::default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
struct TemplateForm {
    csrf: Option<String>,
    once: Option<String>,
    template: Option<String>,
}

impl HasCsrf for TemplateForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

async fn reset_from_template(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<TemplateForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let chosen = form.template.as_deref().unwrap_or("").trim();
    let Ok(template) = TemplateId::parse(chosen) else {
        let label = sitetrail_core::ActivityKind::ResetStagingFromTemplate.label();
        return invalid_choice(
            &state,
            &session,
            &site,
            label,
            "Choose a template from the list.",
        )
        .await;
    };
    let op = Operation::ResetFromTemplate(template);
    let kept = Said {
        template: chosen,
        ..Said::default()
    };
    start_from_staging(&state, &session, &site, op, form.once(), kept).await
}

#[derive(Debug, Deserialize)]
struct BackupForm {
    csrf: Option<String>,
    once: Option<String>,
    backup: Option<String>,
}

impl HasCsrf for BackupForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

async fn reset_from_backup(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<BackupForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let chosen = form.backup.as_deref().unwrap_or("").trim();
    let Ok(backup) = BackupId::parse(chosen) else {
        let label = sitetrail_core::ActivityKind::ResetStagingFromBackup.label();
        return invalid_choice(
            &state,
            &session,
            &site,
            label,
            "Choose a backup from the list.",
        )
        .await;
    };
    let op = Operation::ResetFromBackup(backup);
    let kept = Said {
        backup: chosen,
        ..Said::default()
    };
    start_from_staging(&state, &session, &site, op, form.once(), kept).await
}

/// What the push form says is missing.
#[derive(Debug, Default)]
struct PushErrors {
    scope: Option<&'static str>,
    /// The tables or folders named are missing or not names.
    lists: Option<String>,
    confirm: Option<&'static str>,
}

impl PushErrors {
    fn any(&self) -> bool {
        self.scope.is_some() || self.lists.is_some() || self.confirm.is_some()
    }
}

/// What the push form keeps from what was sent.
#[derive(Debug, Default)]
struct PushKept {
    /// `site`, `database`, `files`, `tables`, `folders` or nothing yet: the person chooses.
    scope: &'static str,
    keep_staging: bool,
    tables: String,
    folders: String,
}

/// What the push page says when there is no staging to push.
const NO_STAGING: &str =
    "There is no staging site yet \u{2014} create it first on the Staging page, then push it.";

pub const CONFIRMATION: &str = "I am ready to push my staging site to production";

#[derive(Template, WebTemplate)]
#[template(path = "push_to_live.html")]
struct PushPage {
    shell: Shell,
    flash: Option<Flash>,
    unavailable: Option<&'static str>,
    action: String,
    staging_href: String,
    live_url: String,
    staging_url: String,
    kept: PushKept,
    errors: PushErrors,
    confirmation: &'static str,
    /// The tables live owns, in words, and the site's additions.
    owned: crate::pages::undo::OwnedView,
}

async fn render_push(
    state: &AppState,
    session: &Session,
    site: &str,
    flash: Option<Flash>,
    kept: PushKept,
    errors: PushErrors,
) -> Result<PushPage, PageError> {
    let page = SitePage::load(
        state,
        session,
        site,
        Section::Staging,
        "/push-to-live",
        "Push staging to live",
    )
    .await?;
    let id = page.site.id.as_str();
    let base = staging_path(id);
    let unavailable = Hosting::of(&page.site)
        .staging_unavailable()
        .or(page.shell.staging_missing.then_some(NO_STAGING));
    Ok(PushPage {
        flash,
        unavailable,
        action: format!("{base}/push-to-live"),
        staging_href: base,
        live_url: page.site.live.url.as_str().to_owned(),
        staging_url: page
            .site
            .staging
            .as_ref()
            .map(|s| s.url.as_str().to_owned())
            .unwrap_or_default(),
        kept,
        errors,
        confirmation: CONFIRMATION,
        owned: crate::pages::undo::OwnedView::load(state, &page.site).await,
        shell: page.shell,
    })
}

async fn push_confirmation(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> Result<PushPage, PageError> {
    render_push(
        &state,
        &session,
        &site,
        None,
        PushKept::default(),
        PushErrors::default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
struct PushForm {
    csrf: Option<String>,
    once: Option<String>,
    scope: Option<String>,
    /// One table per line, with scope `tables`.
    tables: Option<String>,
    /// One folder per line, with scope `folders`.
    folders: Option<String>,
    keep_staging: Option<String>,
    confirm: Option<String>,
    /// `preview` (the first button) or the push itself.
    action: Option<String>,
}

impl HasCsrf for PushForm {
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

const CHOOSE_SCOPE: &str = "Choose what to push: the whole site, the database, the files, \
                            chosen tables or chosen folders.";

async fn push_to_live(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<PushForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let scope = form
        .scope
        .as_deref()
        .map(str::trim)
        .and_then(PushScope::parse);
    let preview = form.action.as_deref() == Some("preview");
    let text = |f: &Option<String>| f.clone().unwrap_or_default();
    // Only the chosen scope's list is sent on; the other field may hold leftovers.
    let tables = lines(&text(&form.tables));
    let folders = lines(&text(&form.folders));
    let kept = PushKept {
        scope: scope.map_or("", PushScope::as_str),
        keep_staging: ticked(&form.keep_staging),
        tables: text(&form.tables),
        folders: text(&form.folders),
    };
    let lists = scope.map(|s| {
        let (t, f) = match s {
            PushScope::Tables => (tables.clone(), vec![]),
            PushScope::Folders => (vec![], folders.clone()),
            _ => (vec![], vec![]),
        };
        crate::push_input::checked_lists(s, t, f)
    });
    let errors = PushErrors {
        scope: scope.is_none().then_some(CHOOSE_SCOPE),
        lists: lists.as_ref().and_then(|l| l.clone().err()),
        confirm: (!preview && !ticked(&form.confirm)).then_some(
            "Tick \u{201c}I am ready to push my staging site to production\u{201d} to push.",
        ),
    };
    let (Some(scope), Some(Ok((tables, folders))), false) = (scope, lists, errors.any()) else {
        // Nothing is started, so nothing is logged: the form comes back with what is missing.
        let page = render_push(&state, &session, &site, None, kept, errors).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let body = crate::api::staging::PushIn {
        scope,
        tables: (!tables.is_empty()).then_some(tables),
        folders: (!folders.is_empty()).then_some(folders),
        keep_staging: kept.keep_staging,
        on_conflict: None,
        preview: None,
        dry_run: preview,
    };
    let label = if preview {
        sitetrail_core::ActivityKind::PreviewPush.label()
    } else {
        sitetrail_core::ActivityKind::PushStagingToLive.label()
    };
    let refusal = if preview {
        match crate::pages::preview::start_preview(&state, &session, &site, body, form.once())
            .await?
        {
            Ok(answer) => return Ok(answer),
            Err(refusal) => refusal,
        }
    } else {
        match crate::api::staging::push_operation(&state, &session.viewer, &site, body).await {
            Ok(op) => match operations::start(&state, &session, &site, op, form.once()).await? {
                Ok(activity) => return Ok(operations::started(&staging_path(&site), &activity)),
                Err(refusal) => (refusal.status, refusal.message),
            },
            Err(crate::error::ApiError::Invalid(m)) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            Err(e) => return Err(e.into()),
        }
    };
    let flash = Flash::refused(label, refusal.1);
    let page = render_push(
        &state,
        &session,
        &site,
        Some(flash),
        kept,
        PushErrors::default(),
    )
    .await?;
    Ok((refusal.0, page).into_response())
}

/// The Staging page again with why an action from another room did not start.
pub async fn refused_here(
    state: &AppState,
    session: &Session,
    site: &str,
    label: &'static str,
    refusal: (StatusCode, String),
) -> Result<Response, PageError> {
    let said = Said {
        flash: Some(Flash::refused(label, refusal.1)),
        ..Said::default()
    };
    let page = render(state, session, site, said).await?;
    Ok((refusal.0, page).into_response())
}

/// The push form again with why the site's live-owned tables were not changed.
pub async fn push_page_refused(
    state: &AppState,
    session: &Session,
    site: &str,
    message: String,
) -> Result<Response, PageError> {
    let flash = Flash::refused("The change to live's tables", message);
    let page = render_push(
        state,
        session,
        site,
        Some(flash),
        PushKept::default(),
        PushErrors::default(),
    )
    .await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
