//! Starting a staging or backup operation from a dashboard form. The form carries the
//! session's CSRF token; the operation goes through the API's `start_operation` (the same
//! ownership check, actor and logging as the JSON API); a started operation answers with a
//! redirect to its page (`?started=<activity>`, Post/Redirect/Get), a refusal with the page
//! again, saying why in words.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use sitetrail_core::{ActivityId, Environment, Site, Status};
use sitetrail_staging::Operation;

use crate::AppState;
use crate::api::staging::start_operation;
use crate::error::ApiError;
use crate::lens::Lens;
use crate::memo;
use crate::pages::error::Link;
use crate::pages::{PageError, Session, activity_logs};

/// What the dashboard says when a site's files and databases live on other servers.
pub const NOT_HOSTED: &str = "This site's environments are not hosted here";

/// Which operations this site can run, judged from what is registered (the engine has the
/// last word when the form is sent).
#[derive(Debug, Clone, Copy)]
pub struct Hosting {
    live: bool,
    staging: Option<bool>,
}

impl Hosting {
    pub fn of(site: &Site) -> Self {
        Hosting {
            live: site.live.docroot.is_some(),
            staging: site.staging.as_ref().map(|s| s.docroot.is_some()),
        }
    }

    pub fn has_staging(self) -> bool {
        self.staging.is_some()
    }

    /// Why the staging operations (create, resets, push) cannot run here, if they cannot.
    pub fn staging_unavailable(self) -> Option<&'static str> {
        match (self.live, self.staging) {
            (_, None) => {
                Some("This site has no staging environment yet. Your hosting provider can add one.")
            }
            (true, Some(true)) => None,
            _ => Some(
                "This site's environments are not hosted here, so staging cannot be created, \
                 reset or pushed from this dashboard.",
            ),
        }
    }

    /// Why a backup of this environment cannot be made here, if it cannot.
    pub fn backup_unavailable(self, environment: Environment) -> Option<&'static str> {
        let hosted = match environment {
            Environment::Live => self.live,
            Environment::Staging => self.live && self.staging == Some(true),
        };
        (!hosted).then_some(
            "This site's environments are not hosted here, so backups cannot be made from this \
             dashboard.",
        )
    }
}

/// A message at the top of a page about an operation: started, or refused.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `started`, `completed`, `failed` or `refused`: the box's look.
    pub tone: &'static str,
    pub title: String,
    pub message: String,
    /// The activity the message follows, for the script to update it when it ends.
    pub activity: Option<String>,
    pub label: &'static str,
    pub link: Option<Link>,
}

impl Flash {
    /// Why an operation did not start.
    pub fn refused(label: &'static str, message: impl Into<String>) -> Flash {
        Flash {
            tone: "refused",
            title: format!("{label} did not start"),
            message: message.into(),
            activity: None,
            label,
            link: None,
        }
    }

    /// The operation a redirect named (`?started=`), as this viewer may see it; nothing when
    /// the id is not one of this site's activities.
    pub async fn started(
        state: &AppState,
        session: &Session,
        site: &Site,
        id: &str,
    ) -> Option<Flash> {
        let id = ActivityId::parse(id).ok()?;
        let stored = state.store.activity(&id).await.ok()??;
        if stored.site_id != site.id || !session.viewer.may_see(&stored.account_id, &stored.site_id)
        {
            return None;
        }
        let lens = Lens::of(state, session.viewer.audience, &session.viewer.account)
            .await
            .ok()?;
        let a = lens.view(&stored);
        // An activity shown under a masked id is not one a redirect names.
        if a.id != stored.id {
            return None;
        }
        let label = a.activity_label;
        let (tone, title, message) = match a.status {
            Status::InProgress => (
                "started",
                format!("{label} started"),
                "It runs in the background and is listed below with its status; you may leave \
                 this page."
                    .to_owned(),
            ),
            Status::Completed => ("completed", format!("{label} completed"), a.description),
            Status::Failed => (
                "failed",
                format!("{label} failed"),
                a.error
                    .as_deref()
                    .map(|e| crate::pages::words::error_for_people(e).into_owned())
                    .unwrap_or(a.description),
            ),
        };
        // A push that stopped because live changed since its preview carries the new one.
        let link = if a.status == Status::Failed && a.details.contains_key("preview") {
            Link::new(
                crate::pages::preview::path(site.id.as_str(), a.id.as_str()),
                "See what the push would do now",
            )
        } else {
            Link::new(
                activity_logs::path(site.id.as_str()),
                "See it in the Activity Logs",
            )
        };
        Some(Flash {
            tone,
            title,
            message,
            activity: Some(a.id.as_str().to_owned()),
            label,
            link: Some(link),
        })
    }
}

/// Why an operation was refused: the status of the answer and the words to show.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

/// Starts an operation as the signed-in viewer, once per sent form (`once`, the form's
/// one-time token: a repeat answers with what the first did). A site that is not theirs is
/// the usual 404 page; the engine's refusals come back as a [`Refusal`] for the page to show.
pub async fn start(
    state: &AppState,
    session: &Session,
    site: &str,
    op: Operation,
    once: Option<&str>,
) -> Result<Result<ActivityId, Refusal>, PageError> {
    let key = once
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|token| memo::key(&[&session.csrf_token(), token, site, &format!("{op:?}")]));
    state
        .sent_forms
        .once(key, start_now(state, session, site, op))
        .await
}

async fn start_now(
    state: &AppState,
    session: &Session,
    site: &str,
    op: Operation,
) -> Result<Result<ActivityId, Refusal>, PageError> {
    match start_operation(state, &session.viewer, site, op).await {
        Ok(activity) => Ok(Ok(activity.id)),
        // Another operation holds the site; the refusal is logged.
        Err(ApiError::Conflict(reason)) => Ok(Err(Refusal {
            status: StatusCode::CONFLICT,
            message: sentence(&reason),
        })),
        Err(ApiError::Invalid(m)) => Ok(Err(Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: if m.contains("docroot") || m.contains("environment registered") {
                format!("{NOT_HOSTED}, so nothing was started.")
            } else {
                sentence(&m)
            },
        })),
        // The template or backup named is gone (the site itself is checked first).
        Err(ApiError::NotFoundOwned(m)) => Ok(Err(Refusal {
            status: StatusCode::NOT_FOUND,
            message: format!("{} Choose another one.", sentence(&m)),
        })),
        Err(e) => Err(e.into()),
    }
}

/// `no template named x` → `No template named x.`
fn sentence(s: &str) -> String {
    let mut chars = s.trim().chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The answer to a started operation: back to its page, which says it started.
pub fn started(page: &str, activity: &ActivityId) -> Response {
    Redirect::to(&format!("{page}?started={activity}")).into_response()
}

/// The fields of a form that every form has: the session's CSRF token, and the page's
/// one-time token ([`crate::pages::once`]).
pub trait HasCsrf {
    fn csrf(&self) -> Option<&str>;
    fn once(&self) -> Option<&str>;
}

/// A form of this dashboard, refused with the "form expired" page (403) unless it carries
/// the session's CSRF token. A body that cannot be read carries no token.
pub fn checked<T: HasCsrf>(
    session: &Session,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, PageError> {
    let Ok(Form(form)) = form else {
        return Err(PageError::form_expired());
    };
    session.check_csrf(form.csrf().unwrap_or_default())?;
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages_read_as_sentences() {
        assert_eq!(sentence("no template named x"), "No template named x.");
        assert_eq!(
            sentence("Another operation is running on this site; try again when it has ended"),
            "Another operation is running on this site; try again when it has ended."
        );
        assert_eq!(sentence("done."), "Done.");
    }
}
