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
    confirm: Option<&'static str>,
}

/// What the push page says when there is no staging to push.
const NO_STAGING: &str =
    "There is no staging site yet \u{2014} create it first on the Staging page, then push it.";

const CONFIRMATION: &str = "I am ready to push my staging site to production";

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
    /// `site`, `files` or nothing yet: the person chooses.
    scope: &'static str,
    keep_staging: bool,
    errors: PushErrors,
    confirmation: &'static str,
}

async fn render_push(
    state: &AppState,
    session: &Session,
    site: &str,
    flash: Option<Flash>,
    scope: &'static str,
    keep_staging: bool,
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
        scope,
        keep_staging,
        errors,
        confirmation: CONFIRMATION,
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
        "",
        false,
        PushErrors::default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
struct PushForm {
    csrf: Option<String>,
    once: Option<String>,
    scope: Option<String>,
    keep_staging: Option<String>,
    confirm: Option<String>,
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

async fn push_to_live(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<PushForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let scope = match form.scope.as_deref().map(str::trim) {
        Some("site") => Some(PushScope::Site),
        Some("files") => Some(PushScope::Files),
        _ => None,
    };
    let scope_word = scope.map_or("", PushScope::as_str);
    let keep_staging = ticked(&form.keep_staging);
    let errors = PushErrors {
        scope: scope
            .is_none()
            .then_some("Choose what to push: the whole site, or the files only."),
        confirm: (!ticked(&form.confirm)).then_some(
            "Tick \u{201c}I am ready to push my staging site to production\u{201d} to push.",
        ),
    };
    let Some(scope) = scope.filter(|_| errors.confirm.is_none()) else {
        // Nothing is started, so nothing is logged: the form comes back with what is missing.
        let page = render_push(
            &state,
            &session,
            &site,
            None,
            scope_word,
            keep_staging,
            errors,
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let op = Operation::PushToLive(sitetrail_staging::Push {
        scope,
        keep_staging,
        ..Default::default()
    });
    let label = op.kind().label();
    match operations::start(&state, &session, &site, op, form.once()).await? {
        Ok(activity) => Ok(operations::started(&staging_path(&site), &activity)),
        Err(refusal) => {
            let flash = Flash::refused(label, refusal.message);
            let page = render_push(
                &state,
                &session,
                &site,
                Some(flash),
                scope_word,
                keep_staging,
                PushErrors::default(),
            )
            .await?;
            Ok((refusal.status, page).into_response())
        }
    }
}
