//! After a push: "Undo push" while its window is open (on the Staging page and the
//! Overview, with the deadline in the viewer's zone, after a confirmation), and the tables
//! live owns, shown on the push form with a way to add the site's own.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use sitetrail_core::{ActivityKind, Site};
use sitetrail_staging::Operation;

use crate::AppState;
use crate::api::safe_push::{NOTHING_TO_UNDO, replace_live_owned};
use crate::error::ApiError;
use crate::pages::operations::{self, HasCsrf, checked};
use crate::pages::shell::{Section, site_path};
use crate::pages::time::TimeCell;
use crate::pages::{PageError, Session, staging};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{site}/staging/undo-push", post(undo_push))
        .route("/sites/{site}/staging/live-owned", post(live_owned))
}

/// The push live can go back on, as a page offers it.
pub struct UndoOffer {
    /// The last push was undone: the offer is to put it back.
    pub puts_push_back: bool,
    pub pushed: TimeCell,
    pub until: TimeCell,
    pub action: String,
}

impl UndoOffer {
    /// The site's open undo window, if any (none when the engine cannot say).
    pub async fn of(state: &AppState, site: &Site) -> Option<UndoOffer> {
        let window = state.engine.undo_window(&site.id).await.ok()??;
        Some(UndoOffer {
            puts_push_back: window.puts_push_back,
            pushed: TimeCell::of(window.pushed_at),
            until: TimeCell::of(window.until),
            action: format!(
                "{}/undo-push",
                site_path(site.id.as_str(), Section::Staging)
            ),
        })
    }
}

/// The tables live owns on a site, in words.
#[derive(Default)]
pub struct OwnedView {
    /// What live owns, by what it holds (`WooCommerce orders`), in the profile's order.
    pub groups: Vec<OwnedGroup>,
    pub extra: Vec<String>,
    /// The site's additions, one per line, for the form.
    pub extra_text: String,
    pub action: String,
}

/// Tables of the profile that hold one kind of data.
pub struct OwnedGroup {
    pub holds: String,
    /// `wc_orders, wc_orders_meta`; a table with a row selector says which rows.
    pub tables: String,
}

impl OwnedView {
    pub async fn load(state: &AppState, site: &Site) -> OwnedView {
        let profile = state.engine.live_owned(&site.id).await.unwrap_or_default();
        let mut groups: Vec<OwnedGroup> = Vec::new();
        for t in &profile.shipped {
            let table = match &t.rows {
                Some(rows) => format!("{} ({rows})", t.table),
                None => t.table.clone(),
            };
            match groups.iter_mut().find(|g| g.holds == t.holds) {
                Some(g) => {
                    g.tables.push_str(", ");
                    g.tables.push_str(&table);
                }
                None => groups.push(OwnedGroup {
                    holds: t.holds.clone(),
                    tables: table,
                }),
            }
        }
        OwnedView {
            groups,
            extra_text: profile.extra.join("\n"),
            extra: profile.extra,
            action: format!(
                "{}/live-owned",
                site_path(site.id.as_str(), Section::Staging)
            ),
        }
    }

    /// What it holds, for the summary line: `Comments, Users and customers, ...`.
    pub fn summary(&self) -> String {
        let mut kinds: Vec<&str> = self.groups.iter().map(|g| g.holds.as_str()).collect();
        kinds.dedup();
        kinds.join(", ")
    }
}

#[derive(Debug, Deserialize)]
struct UndoForm {
    csrf: Option<String>,
    once: Option<String>,
    confirm: Option<String>,
}

impl HasCsrf for UndoForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        self.once.as_deref()
    }
}

async fn undo_push(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<UndoForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let label = ActivityKind::UndoPush.label();
    let scope = crate::api::site_scope(&state, &session.viewer, &site).await?;
    let id = scope.site.expect("a site scope names its site");
    let ticked = form
        .confirm
        .as_deref()
        .is_some_and(|v| !v.trim().is_empty());
    let refusal = if !ticked {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the confirmation above the button to go on.".to_owned(),
        )
    } else if state
        .engine
        .undo_window(&id)
        .await
        .map_err(ApiError::from)?
        .is_none()
    {
        (StatusCode::CONFLICT, NOTHING_TO_UNDO.to_owned())
    } else {
        match operations::start(&state, &session, &site, Operation::UndoPush, form.once()).await? {
            Ok(activity) => {
                let page = site_path(&site, Section::Staging);
                return Ok(operations::started(&page, &activity));
            }
            Err(refusal) => (refusal.status, refusal.message),
        }
    };
    staging::refused_here(&state, &session, &site, label, refusal).await
}

#[derive(Debug, Deserialize)]
struct OwnedForm {
    csrf: Option<String>,
    /// The site's additions, one table per line.
    extra: Option<String>,
}

impl HasCsrf for OwnedForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    fn once(&self) -> Option<&str> {
        None
    }
}

async fn live_owned(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    form: Result<Form<OwnedForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&session, form)?;
    let scope = crate::api::site_scope(&state, &session.viewer, &site).await?;
    let id = scope.site.expect("a site scope names its site");
    let extra = crate::push_input::lines(form.extra.as_deref().unwrap_or(""));
    match replace_live_owned(&state, &id, extra).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "{}/push-to-live#live-owned",
            site_path(&site, Section::Staging)
        ))
        .into_response()),
        Err(ApiError::Invalid(m)) => staging::push_page_refused(&state, &session, &site, m).await,
        Err(e) => Err(e.into()),
    }
}
