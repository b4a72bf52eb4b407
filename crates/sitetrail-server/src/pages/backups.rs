//! The Backups page: the site's backups (when, of which environment, why, how big), a
//! manual backup of live or staging as a form, and the recent backup activity.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use sitetrail_core::{ActivityKind, Environment};
use sitetrail_staging::{BackupReason, Operation};

use crate::AppState;
use crate::pages::operations::{self, Flash, HasCsrf, Hosting, checked};
use crate::pages::shell::{Section, Shell, SitePage, site_path};
use crate::pages::site::{Recent, RecentOf};
use crate::pages::snapshots::{self, Snapshot};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new().route("/sites/{site}/backups", get(backups).post(create_backup))
}

/// A "Back up …" button.
#[derive(Debug)]
struct BackupButton {
    environment: &'static str,
    label: &'static str,
    hint: &'static str,
    unavailable: Option<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "backups.html")]
struct BackupsPage {
    shell: Shell,
    flash: Option<Flash>,
    action: String,
    buttons: Vec<BackupButton>,
    unavailable: Option<&'static str>,
    backups: Vec<Snapshot>,
    /// The Staging page, where a backup is restored to staging, when staging can be reset.
    restore_href: String,
    can_restore: bool,
    /// Live is hosted here, so it can be restored from a backup.
    can_restore_live: bool,
    recent: Recent,
}

async fn render(
    state: &AppState,
    session: &Session,
    site: &str,
    flash: Option<Flash>,
    started: Option<&str>,
) -> Result<BackupsPage, PageError> {
    let page = SitePage::load(state, session, site, Section::Backups, "", "Backups").await?;
    let id = page.site.id.as_str().to_owned();
    let hosting = Hosting::of(&page.site);
    let mut buttons = vec![BackupButton {
        environment: "live",
        label: "Back up live",
        hint: "Live is also backed up every night.",
        unavailable: hosting.backup_unavailable(Environment::Live),
    }];
    // Staging that does not exist (yet, or any more) has nothing to back up.
    if hosting.has_staging() && !page.shell.staging_missing {
        let unavailable = hosting.backup_unavailable(Environment::Staging);
        buttons.push(BackupButton {
            environment: "staging",
            label: "Back up staging",
            hint: if unavailable.is_some() {
                "Staging is not hosted here."
            } else {
                "Staging is backed up only when you ask."
            },
            unavailable,
        });
    }
    let backups = snapshots::backups(&state.engine, &page.site.id).await?;
    let recent = Recent::load(state, session, &page, RecentOf::Backups, 10).await?;
    let flash = match (flash, started) {
        (Some(flash), _) => Some(flash),
        (None, Some(started)) => Flash::started(state, session, &page.site, started).await,
        (None, None) => None,
    };
    Ok(BackupsPage {
        flash,
        action: site_path(&id, Section::Backups),
        // Live decides: when only staging is elsewhere, its button says so by itself.
        unavailable: buttons[0].unavailable,
        buttons,
        backups,
        restore_href: site_path(&id, Section::Staging),
        can_restore: hosting.staging_unavailable().is_none(),
        can_restore_live: hosting.backup_unavailable(Environment::Live).is_none(),
        recent,
        shell: page.shell,
    })
}

#[derive(Debug, Default, Deserialize)]
struct BackupsQuery {
    started: Option<String>,
}

async fn backups(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    query: Result<Query<BackupsQuery>, QueryRejection>,
) -> Result<BackupsPage, PageError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    render(&state, &session, &site, None, query.started.as_deref()).await
}

#[derive(Debug, Deserialize)]
struct BackupForm {
    csrf: Option<String>,
    once: Option<String>,
    environment: Option<String>,
}

impl HasCsrf for BackupForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

async fn create_backup(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<BackupForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let label = ActivityKind::CreateBackup.label();
    let environment = form
        .environment
        .as_deref()
        .and_then(|e| Environment::parse(e.trim()).ok());
    let Some(environment) = environment else {
        let flash = Flash::refused(label, "Choose live or staging to back up.");
        let page = render(&state, &session, &site, Some(flash), None).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let op = Operation::Backup {
        environment,
        reason: BackupReason::Manual,
    };
    let here = site_path(&site, Section::Backups);
    match operations::start(&state, &session, &site, op, form.once()).await? {
        Ok(activity) => Ok(operations::started(&here, &activity)),
        Err(refusal) => {
            let flash = Flash::refused(label, refusal.message);
            let page = render(&state, &session, &site, Some(flash), None).await?;
            Ok((refusal.status, page).into_response())
        }
    }
}
