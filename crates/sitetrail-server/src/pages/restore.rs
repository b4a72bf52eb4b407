//! "Restore live from this backup": whole, database only or files only, after an explicit
//! confirmation that says live is backed up first. Logged as its own activity.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use sitetrail_core::{ActivityKind, BackupId};
use sitetrail_staging::PushScope;

use crate::AppState;
use crate::api::safe_push::restore_operation;
use crate::error::ApiError;
use crate::pages::operations::{self, Flash, HasCsrf, Hosting, checked};
use crate::pages::shell::{Section, Shell, SitePage, site_path};
use crate::pages::snapshots::{self, Snapshot};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/sites/{site}/backups/{backup}/restore-live",
        get(restore_page).post(restore),
    )
}

const CONFIRMATION: &str = "I want to replace live with this backup";

#[derive(Template, WebTemplate)]
#[template(path = "restore_live.html")]
struct RestorePage {
    shell: Shell,
    flash: Option<Flash>,
    unavailable: Option<&'static str>,
    action: String,
    backups_href: String,
    backup: Snapshot,
    live_url: String,
    /// `site`, `database`, `files` or nothing yet.
    scope: &'static str,
    scope_error: Option<&'static str>,
    confirm_error: Option<&'static str>,
    confirmation: &'static str,
}

struct Said {
    flash: Option<Flash>,
    scope: &'static str,
    scope_error: Option<&'static str>,
    confirm_error: Option<&'static str>,
}

async fn render(
    state: &AppState,
    session: &Session,
    site: &str,
    backup: &str,
    said: Said,
) -> Result<RestorePage, PageError> {
    let heading = "Restore live from a backup";
    let page = SitePage::load(state, session, site, Section::Backups, "", heading).await?;
    let id = page.site.id.as_str().to_owned();
    let backups = snapshots::backups(&state.engine, &page.site.id).await?;
    let backup = backups
        .into_iter()
        .find(|b| b.id == backup)
        .ok_or_else(PageError::site_not_found)?;
    let hosting = Hosting::of(&page.site);
    Ok(RestorePage {
        flash: said.flash,
        unavailable: hosting.backup_unavailable(sitetrail_core::Environment::Live),
        action: format!(
            "{}/{}/restore-live",
            site_path(&id, Section::Backups),
            backup.id
        ),
        backups_href: site_path(&id, Section::Backups),
        live_url: page.site.live.url.as_str().to_owned(),
        backup,
        scope: said.scope,
        scope_error: said.scope_error,
        confirm_error: said.confirm_error,
        confirmation: CONFIRMATION,
        shell: page.shell,
    })
}

async fn restore_page(
    State(state): State<AppState>,
    session: Session,
    Path((site, backup)): Path<(String, String)>,
) -> Result<RestorePage, PageError> {
    let said = Said {
        flash: None,
        scope: "",
        scope_error: None,
        confirm_error: None,
    };
    render(&state, &session, &site, &backup, said).await
}

#[derive(Debug, Deserialize)]
struct RestoreForm {
    csrf: Option<String>,
    once: Option<String>,
    scope: Option<String>,
    confirm: Option<String>,
}

impl HasCsrf for RestoreForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

async fn restore(
    State(state): State<AppState>,
    session: Session,
    Path((site, backup)): Path<(String, String)>,
    form: Result<Form<RestoreForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let scope = form
        .scope
        .as_deref()
        .and_then(PushScope::parse)
        .filter(|s| matches!(s, PushScope::Site | PushScope::Database | PushScope::Files));
    let ticked = form
        .confirm
        .as_deref()
        .is_some_and(|v| !v.trim().is_empty());
    let mut said = Said {
        flash: None,
        scope: scope.map_or("", PushScope::as_str),
        scope_error: scope
            .is_none()
            .then_some("Choose what to restore: the whole site, the database or the files."),
        confirm_error: (!ticked)
            .then_some("Tick \u{201c}I want to replace live with this backup\u{201d} to restore."),
    };
    let (Some(scope), true, Ok(backup_id)) = (scope, ticked, BackupId::parse(&backup)) else {
        // Nothing is started, so nothing is logged.
        let page = render(&state, &session, &site, &backup, said).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let refusal = match restore_operation(&state, &session.viewer, &site, backup_id, scope).await {
        Ok(op) => match operations::start(&state, &session, &site, op, form.once()).await? {
            Ok(activity) => {
                let page = site_path(&site, Section::Backups);
                return Ok(operations::started(&page, &activity));
            }
            Err(refusal) => (refusal.status, refusal.message),
        },
        Err(ApiError::Invalid(m)) => (StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => return Err(e.into()),
    };
    said.flash = Some(Flash::refused(
        ActivityKind::RestoreLiveFromBackup.label(),
        refusal.1,
    ));
    let page = render(&state, &session, &site, &backup, said).await?;
    Ok((refusal.0, page).into_response())
}
