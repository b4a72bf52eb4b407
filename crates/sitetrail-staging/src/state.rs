//! What the engine records about each site's staging: whether it exists, when and from what
//! it was made, when it was last pushed and its size. The record is the engine's own (a
//! private JSON file per site in the data dir, replaced atomically at the end of every
//! create, reset and push), never read from staging's docroot, whose files are the site's.
//!
//! Also the operations running in this process, for pages that show their progress.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sitetrail_core::{
    ActivityFilter, ActivityId, ActivityKind, Audience, Page, RawQuery, SiteId, StoredActivity,
    Timestamp,
};
use sitetrail_store::Scope;
use tokio::sync::watch;

use crate::blocking;
use crate::db::SiteDb;
use crate::operations::{Engine, EngineError, Env};
use crate::progress::Progress;

/// The data dir's entry that holds the records (one `{site}.json` each).
pub const STATE_DIR: &str = "staging-state";

/// What the engine recorded about a site's staging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingState {
    pub exists: bool,
    /// When staging was made, and from what (when it exists).
    pub created: Option<StagingOrigin>,
    /// When staging was last pushed to live (kept after staging is removed by a push).
    pub last_pushed: Option<Timestamp>,
    /// Files plus database, when staging exists.
    pub size_bytes: Option<u64>,
}

/// When staging was made and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingOrigin {
    pub at: Timestamp,
    pub from: StagingSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StagingSource {
    Live,
    Template { id: String, name: String },
    Backup { id: String },
}

/// An operation running on a site in this process.
#[derive(Debug, Clone)]
pub struct Running {
    pub activity: ActivityId,
    pub progress: watch::Receiver<Progress>,
}

/// The operations running in this process, by site.
#[derive(Default)]
pub(crate) struct RunningOps(Mutex<HashMap<SiteId, Running>>);

impl RunningOps {
    pub fn insert(&self, site: &SiteId, running: Running) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(site.clone(), running);
        }
    }

    /// Forgets the site's operation, if it is still this activity.
    pub fn remove(&self, site: &SiteId, activity: &ActivityId) {
        if let Ok(mut m) = self.0.lock()
            && m.get(site).is_some_and(|r| &r.activity == activity)
        {
            m.remove(site);
        }
    }

    fn get(&self, site: &SiteId) -> Option<Running> {
        self.0.lock().ok().and_then(|m| m.get(site).cloned())
    }
}

fn path(data_dir: &Path, site: &SiteId) -> PathBuf {
    data_dir
        .join(STATE_DIR)
        .join(format!("{}.json", site.as_str()))
}

/// The site's record; `None` when the engine never wrote one.
pub(crate) fn read(data_dir: &Path, site: &SiteId) -> anyhow::Result<Option<StagingState>> {
    let path = path(data_dir, site);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading the staging record {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// How many of the log's newest completed staging activities a site without a record is
/// read from, at most.
const LOG_READ: usize = 2_000;

/// What the log says of staging: the newest completed create, reset or push decides
/// whether it exists and what it was made from. `None` when the log holds none of them.
fn from_log(activities: &[StoredActivity]) -> Option<StagingState> {
    let mut state = StagingState::default();
    for a in activities {
        let at = a.completed_at.unwrap_or(a.created_at);
        let from = match a.activity {
            ActivityKind::PushStagingToLive => {
                state.last_pushed.get_or_insert(at);
                let kept = a.details.get("keep_staging").and_then(|k| k.as_bool());
                if kept == Some(true) {
                    state.exists = true;
                    continue;
                }
                return Some(state);
            }
            ActivityKind::CreateStaging => StagingSource::Live,
            ActivityKind::ResetStagingFromTemplate => {
                let id = text(a, "template");
                StagingSource::Template {
                    name: id.clone(),
                    id,
                }
            }
            ActivityKind::ResetStagingFromBackup => StagingSource::Backup {
                id: text(a, "backup"),
            },
            _ => continue,
        };
        state.exists = true;
        state.created = Some(StagingOrigin {
            at: a.created_at,
            from,
        });
        return Some(state);
    }
    state.exists.then_some(state)
}

fn text(a: &StoredActivity, key: &str) -> String {
    a.details
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Replaces the site's record in one step: written beside it (0600), synced, renamed over it.
pub(crate) fn write(data_dir: &Path, site: &SiteId, state: &StagingState) -> anyhow::Result<()> {
    let path = path(data_dir, site);
    let dir = path.parent().expect("the record has a directory");
    sitetrail_store::private::create_dir(dir)?;
    let tmp = dir.join(format!(".{}.json.new", site.as_str()));
    sitetrail_store::private::write(&tmp, &serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Records staging as made from live now, for tests that have no WordPress to make it with
/// (the `testkit` feature).
#[cfg(feature = "testkit")]
pub fn record_made_for_tests(data_dir: &Path, site: &SiteId) -> anyhow::Result<()> {
    let mut state = read(data_dir, site)?.unwrap_or_default();
    state.exists = true;
    state.created = Some(StagingOrigin {
        at: Timestamp::now(),
        from: StagingSource::Live,
    });
    write(data_dir, site, &state)
}

impl Engine {
    /// What the engine recorded about the site's staging. A site it has no record of (its
    /// staging made before the engine kept records) is read from the log, never guessed from
    /// its docroot: the newest completed create, reset or push says whether staging exists.
    pub async fn staging_state(&self, site: &SiteId) -> Result<StagingState, EngineError> {
        let (dir, id) = (self.inner.data_dir.clone(), site.clone());
        if let Some(recorded) = blocking(move || read(&dir, &id)).await? {
            return Ok(recorded);
        }
        let Some(site) = self.inner.store.site(site).await? else {
            return Ok(StagingState::default());
        };
        let scope = Scope {
            account: site.account_id.clone(),
            site: Some(site.id.clone()),
        };
        let raw = RawQuery {
            service: Some("staging".into()),
            status: Some("completed".into()),
            ..RawQuery::default()
        };
        let filter = ActivityFilter::parse(&raw, Audience::Internal)
            .map_err(|e| anyhow::anyhow!("the staging filter: {e}"))?;
        let mut page = Page {
            limit: 200,
            cursor: None,
        };
        let mut read_so_far = Vec::new();
        loop {
            let listing = self
                .inner
                .store
                .list(&scope, Audience::Internal, &filter, page)
                .await?;
            read_so_far.extend(listing.items);
            if let Some(state) = from_log(&read_so_far) {
                return Ok(state);
            }
            match listing.next {
                Some(next) if read_so_far.len() < LOG_READ => page.cursor = Some(next),
                _ => break,
            }
        }
        // Nothing in the log either: staging was never made here.
        Ok(StagingState::default())
    }

    /// The operation running on this site in this process, if any.
    pub fn running(&self, site: &SiteId) -> Option<Running> {
        self.inner.running.get(site)
    }

    /// Records that staging was just made from `from`: it exists, with its size.
    pub(crate) async fn staging_made(
        &self,
        site: &SiteId,
        staging: &Env,
        files_bytes: u64,
        from: StagingSource,
    ) {
        let db_bytes = match SiteDb::connect(&staging.config, &self.inner.databases).await {
            Ok(db) => {
                let n = db.size_bytes(&staging.config.prefix).await;
                db.disconnect().await;
                n
            }
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| {
            tracing::warn!(site = %site, error = ?e, "measuring staging's database failed");
            0
        });
        let at = Timestamp::now();
        self.keep_record(site, move |s| {
            s.exists = true;
            s.created = Some(StagingOrigin { at, from });
            s.size_bytes = Some(files_bytes + db_bytes);
        })
        .await;
    }

    /// Records a push to live; without `keep_staging` staging no longer exists.
    pub(crate) async fn staging_pushed(&self, site: &SiteId, keep_staging: bool) {
        let at = Timestamp::now();
        self.keep_record(site, move |s| {
            s.last_pushed = Some(at);
            if !keep_staging {
                s.exists = false;
                s.created = None;
                s.size_bytes = None;
            }
        })
        .await;
    }

    /// Changes the record after an operation that has done its work: a record that cannot
    /// be written does not turn a completed operation into a failed one (the server's log
    /// says so).
    async fn keep_record(
        &self,
        site: &SiteId,
        change: impl FnOnce(&mut StagingState) + Send + 'static,
    ) {
        if let Err(e) = self.record_staging(site, change).await {
            tracing::error!(site = %site, error = ?e, "recording staging's state failed");
        }
    }

    /// Changes the site's record with `change` and writes it back.
    pub(crate) async fn record_staging(
        &self,
        site: &SiteId,
        change: impl FnOnce(&mut StagingState) + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut state = self.staging_state(site).await?;
        change(&mut state);
        let (dir, site) = (self.inner.data_dir.clone(), site.clone());
        blocking(move || write(&dir, &site, &state)).await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_record_round_trips_privately_and_a_missing_one_means_no_staging() {
        let dir = tempfile::tempdir().unwrap();
        let site = SiteId::parse("shop").unwrap();
        assert_eq!(read(dir.path(), &site).unwrap(), None);
        let state = StagingState {
            exists: true,
            created: Some(StagingOrigin {
                at: Timestamp::from_millis(1_700_000_000_000).unwrap(),
                from: StagingSource::Template {
                    id: "bakery-classic".into(),
                    name: "Bakery Classic".into(),
                },
            }),
            last_pushed: None,
            size_bytes: Some(42),
        };
        write(dir.path(), &site, &state).unwrap();
        write(dir.path(), &site, &state).unwrap();
        assert_eq!(read(dir.path(), &site).unwrap(), Some(state.clone()));
        let file = path(dir.path(), &site);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("shop.json")]);
        let json: serde_json::Value = serde_json::to_value(&state).unwrap();
        assert_eq!(json["created"]["from"]["kind"], "template");
        assert_eq!(json["created"]["from"]["name"], "Bakery Classic");
    }

    fn logged(kind: ActivityKind, millis: i64, details: serde_json::Value) -> StoredActivity {
        let at = Timestamp::from_millis(millis).unwrap();
        StoredActivity {
            seq: 1,
            id: ActivityId::parse(&format!("a{millis}")).unwrap(),
            account_id: sitetrail_core::AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: sitetrail_core::Environment::Staging,
            service: kind.service(),
            activity: kind,
            status: sitetrail_core::Status::Completed,
            actor: sitetrail_core::Actor::system(),
            description: String::new(),
            error: None,
            details: details.as_object().cloned().unwrap_or_default(),
            created_at: at,
            completed_at: Some(at),
        }
    }

    #[test]
    fn without_a_record_the_newest_completed_create_reset_or_push_decides() {
        use ActivityKind::*;
        let none = serde_json::json!({});
        // Newest first, as the log is read.
        let made = [logged(CreateStaging, 2_000, none.clone())];
        let state = from_log(&made).unwrap();
        assert!(state.exists);
        assert_eq!(state.created.unwrap().from, StagingSource::Live);

        let removed = [
            logged(
                PushStagingToLive,
                3_000,
                serde_json::json!({"keep_staging": false}),
            ),
            logged(CreateStaging, 2_000, none.clone()),
        ];
        let state = from_log(&removed).unwrap();
        assert!(!state.exists && state.created.is_none());
        assert_eq!(state.last_pushed.unwrap().millis(), 3_000);

        let kept = [
            logged(
                PushStagingToLive,
                3_000,
                serde_json::json!({"keep_staging": true}),
            ),
            logged(
                ResetStagingFromBackup,
                2_000,
                serde_json::json!({"backup": "b-1"}),
            ),
        ];
        let state = from_log(&kept).unwrap();
        assert!(state.exists);
        assert_eq!(state.last_pushed.unwrap().millis(), 3_000);
        assert_eq!(
            state.created.unwrap().from,
            StagingSource::Backup { id: "b-1".into() }
        );

        assert_eq!(from_log(&[logged(CreateBackup, 1_000, none)]), None);
    }
}
