//! The internal-only audit of who looked: every successful read of the log (a page, one
//! activity, an export, a live stream, the dashboard's Activity Logs) is recorded with the
//! viewer and the filters. Clients never see these entries; internal viewers read them at
//! `GET /api/v1/access-log`.
//!
//! Looks are queued and written in batches by one task, so a page never waits for a write.
//! A look still queued when the process dies is lost; an activity never is.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sitetrail_core::{SiteId, Timestamp, Viewer};
use sitetrail_store::{Access, AccessAction, DynStore};
use tokio::sync::mpsc;

use crate::AppState;

/// Looks waiting to be written; beyond this they are dropped (and counted), never waited for.
const QUEUE: usize = 10_000;
const BATCH: usize = 500;

#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Access>,
}

impl AccessLog {
    /// Starts the task that writes looks in batches.
    pub fn start(store: DynStore) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_looks(store, rx));
        AccessLog { tx }
    }

    pub fn looked(&self, viewer: &Viewer, site: Option<SiteId>, action: AccessAction, query: &str) {
        let look = Access {
            seq: 0,
            account_id: viewer.account.clone(),
            site_id: site.or_else(|| viewer.site.clone()),
            audience: viewer.audience,
            actor: viewer.actor.clone(),
            action,
            query: query.chars().take(1000).collect(),
            at: Timestamp::now(),
        };
        if self.tx.try_send(look).is_err() {
            metrics::counter!("sitetrail_access_log_dropped_total").increment(1);
        }
    }
}

async fn write_looks(store: DynStore, mut rx: mpsc::Receiver<Access>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let looks = std::mem::take(&mut batch);
        let n = looks.len();
        if let Err(e) = store.record_access(looks).await {
            tracing::warn!(error = ?e, looks = n, "could not write looks at the log");
        }
        // Gather what arrives meanwhile into the next write.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a path reads, if it reads the log: the action and the site it names.
fn read_of(path: &str) -> Option<(AccessAction, Option<&str>)> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "api", "v1", "activities"] => Some((AccessAction::List, None)),
        ["", "api", "v1", "activities", _] => Some((AccessAction::Get, None)),
        ["", "api", "v1", "sites", site, "activities"] => Some((AccessAction::List, Some(site))),
        ["", "api", "v1", "sites", site, "activities", "export"] => {
            Some((AccessAction::Export, Some(site)))
        }
        ["", "api", "v1", "sites", site, "activities", "stream"] => {
            Some((AccessAction::Stream, Some(site)))
        }
        ["", "sites", site, "advanced-tools", "activity-logs"] => {
            Some((AccessAction::List, Some(site)))
        }
        _ => None,
    }
}

/// Middleware: records a look for every successful GET that reads the log.
pub async fn record_looks(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let look = (request.method() == axum::http::Method::GET)
        .then(|| read_of(request.uri().path()))
        .flatten()
        .and_then(|(action, site)| {
            let site = site.and_then(|s| SiteId::parse(s).ok());
            let viewer = crate::auth::viewer_of(request.headers(), &state.tokens)?;
            Some((
                viewer,
                site,
                action,
                request.uri().query().unwrap_or("").to_owned(),
            ))
        });
    let response = next.run(request).await;
    if let Some((viewer, site, action, query)) = look
        && response.status().is_success()
    {
        state.access.looked(&viewer, site, action, &query);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_the_log_are_recognised_by_path() {
        assert_eq!(
            read_of("/api/v1/activities"),
            Some((AccessAction::List, None))
        );
        assert_eq!(
            read_of("/api/v1/sites/shop/activities/export"),
            Some((AccessAction::Export, Some("shop")))
        );
        assert_eq!(
            read_of("/sites/shop/advanced-tools/activity-logs"),
            Some((AccessAction::List, Some("shop")))
        );
        assert_eq!(
            read_of("/api/v1/activities/batch"),
            Some((AccessAction::Get, None))
        );
        assert_eq!(read_of("/api/v1/access-log"), None);
        assert_eq!(read_of("/sites/shop/staging"), None);
    }
}
