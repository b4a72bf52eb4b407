//! The internal-only audit of who looked: every successful read of the log (a page, one
//! activity, an export, a live stream, the dashboard's Activity Logs) is recorded with the
//! viewer and the filters. Clients never see these entries; internal viewers read them at
//! `GET /api/v1/access-log`.
//!
//! Looks are queued and written in batches by one task, so a page never waits for a write.
//! A look still queued when the process dies is lost; an activity never is.
//!
//! The log of looks must stay worth reading: the same viewer reading the same thing again
//! within [`WINDOW`] (reloading a page, paging, the dashboard's live updates after the page
//! that opened them) is one look, not one per request. Exports are always recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sitetrail_core::{SiteId, Timestamp, Viewer};
use sitetrail_store::{Access, AccessAction, DynStore};
use tokio::sync::mpsc;

use crate::AppState;
use crate::memo::{self, Memo};

/// Looks waiting to be written; beyond this they are dropped (and counted), never waited for.
const QUEUE: usize = 10_000;
const BATCH: usize = 500;
/// How long a look stands for the same viewer's repeats of it.
pub const WINDOW: Duration = Duration::from_secs(30 * 60);
/// Remembered looks; past this, the oldest are forgotten (a repeat then counts again).
const REMEMBERED: usize = 50_000;
/// Query parameters that say where in the log a reader is, or how it is shown, not what it
/// reads: they are neither recorded nor make a look new.
const NOT_FILTERS: [&str; 4] = ["after", "cursor", "limit", "tz"];

#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Access>,
    seen: Arc<Mutex<Memo<()>>>,
}

/// A look's key: the viewer (account, audience, person), the site and what they read.
fn key(viewer: &Viewer, site: Option<&SiteId>, what: &str, filters: &str) -> u64 {
    memo::key(&[
        viewer.account.as_str(),
        viewer.audience.as_str(),
        viewer.actor.kind.as_str(),
        viewer.actor.email.as_ref().map_or("", |e| e.expose()),
        site.map_or("", SiteId::as_str),
        what,
        filters,
    ])
}

/// The query without what is no filter ([`NOT_FILTERS`]), as it was written.
pub fn filters_of(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && !NOT_FILTERS.contains(&name)
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl AccessLog {
    /// Starts the task that writes looks in batches.
    pub fn start(store: DynStore) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_looks(store, rx));
        AccessLog {
            tx,
            seen: Arc::new(Mutex::new(Memo::new(WINDOW, REMEMBERED))),
        }
    }

    /// Records that `viewer` read the log at `path` with `query`, unless it is a repeat of a
    /// look of the last [`WINDOW`]: the same list with the same filters, the same activity,
    /// or live updates of a site whose log they read (or watched) already.
    pub fn looked(
        &self,
        viewer: &Viewer,
        site: Option<SiteId>,
        action: AccessAction,
        path: &str,
        query: &str,
    ) {
        let site = site.or_else(|| viewer.site.clone());
        let filters = filters_of(query);
        let now = Instant::now();
        // Reading a site's log (any filters) covers its live updates.
        let read_site = key(viewer, site.as_ref(), "read", "");
        let this = key(viewer, site.as_ref(), path, &filters);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let repeat = match action {
                AccessAction::Export => false,
                AccessAction::Stream => seen.get(read_site, now).is_some(),
                AccessAction::List | AccessAction::Get => seen.get(this, now).is_some(),
            };
            if action != AccessAction::Get {
                seen.insert(read_site, (), now);
            }
            seen.insert(this, (), now);
            if repeat {
                return;
            }
        }
        self.record(viewer, site, action, &filters);
    }

    fn record(&self, viewer: &Viewer, site: Option<SiteId>, action: AccessAction, query: &str) {
        let look = Access {
            seq: 0,
            account_id: viewer.account.clone(),
            site_id: site,
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
                request.uri().path().to_owned(),
                request.uri().query().unwrap_or("").to_owned(),
            ))
        });
    let response = next.run(request).await;
    if let Some((viewer, site, action, path, query)) = look
        && response.status().is_success()
    {
        state.access.looked(&viewer, site, action, &path, &query);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetrail_core::{AccountId, Actor, ActorKind, Audience, Email};

    fn viewer(email: &str) -> Viewer {
        Viewer {
            account: AccountId::parse("acme").unwrap(),
            site: None,
            audience: Audience::Client,
            actor: Actor {
                kind: ActorKind::User,
                email: Some(Email::parse(email).unwrap()),
                name: None,
            },
        }
    }

    /// An access log whose looks land in a channel the test reads.
    fn access_log() -> (AccessLog, mpsc::Receiver<Access>) {
        let (tx, rx) = mpsc::channel(100);
        let log = AccessLog {
            tx,
            seen: Arc::new(Mutex::new(Memo::new(WINDOW, REMEMBERED))),
        };
        (log, rx)
    }

    fn recorded(rx: &mut mpsc::Receiver<Access>) -> Vec<(AccessAction, String)> {
        let mut out = Vec::new();
        while let Ok(a) = rx.try_recv() {
            out.push((a.action, a.query));
        }
        out
    }

    #[test]
    fn only_filters_are_recorded_not_where_a_reader_is() {
        assert_eq!(filters_of("after=688"), "");
        assert_eq!(
            filters_of("status=failed&cursor=abc&tz=-60&limit=50&q=x"),
            "status=failed&q=x"
        );
        assert_eq!(filters_of(""), "");
    }

    #[test]
    fn reloading_paging_and_live_updates_are_one_look_and_exports_each_count() {
        let (log, mut rx) = access_log();
        let olivia = viewer("olivia@acme.example");
        let shop = || SiteId::parse("shop").ok();
        let page = "/sites/shop/advanced-tools/activity-logs";
        let stream = "/api/v1/sites/shop/activities/stream";
        let export = "/api/v1/sites/shop/activities/export";
        log.looked(&olivia, shop(), AccessAction::List, page, "");
        log.looked(&olivia, shop(), AccessAction::Stream, stream, "after=688");
        log.looked(&olivia, shop(), AccessAction::List, page, "");
        log.looked(&olivia, shop(), AccessAction::List, page, "cursor=abc");
        log.looked(&olivia, shop(), AccessAction::Stream, stream, "after=700");
        assert_eq!(recorded(&mut rx), [(AccessAction::List, String::new())]);

        log.looked(&olivia, shop(), AccessAction::List, page, "status=failed");
        log.looked(
            &olivia,
            shop(),
            AccessAction::List,
            page,
            "status=failed&tz=60",
        );
        log.looked(&olivia, shop(), AccessAction::Export, export, "format=csv");
        log.looked(&olivia, shop(), AccessAction::Export, export, "format=csv");
        assert_eq!(
            recorded(&mut rx),
            [
                (AccessAction::List, "status=failed".to_owned()),
                (AccessAction::Export, "format=csv".to_owned()),
                (AccessAction::Export, "format=csv".to_owned()),
            ]
        );

        // Another person's look is theirs; a stream nobody read the log before is a look.
        let sam = viewer("sam@acme.example");
        log.looked(&sam, shop(), AccessAction::Stream, stream, "");
        log.looked(&sam, shop(), AccessAction::Stream, stream, "after=3");
        log.looked(&sam, shop(), AccessAction::List, page, "");
        assert_eq!(
            recorded(&mut rx),
            [
                (AccessAction::Stream, String::new()),
                (AccessAction::List, String::new())
            ]
        );
    }

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
