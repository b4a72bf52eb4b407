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
use sitetrail_core::{ActivityId, SiteId, Timestamp};
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

/// The site's record; none yet means staging was never made by this engine.
pub(crate) fn read(data_dir: &Path, site: &SiteId) -> anyhow::Result<StagingState> {
    let path = path(data_dir, site);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("reading the staging record {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StagingState::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
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
    let mut state = read(data_dir, site)?;
    state.exists = true;
    state.created = Some(StagingOrigin {
        at: Timestamp::now(),
        from: StagingSource::Live,
    });
    write(data_dir, site, &state)
}

impl Engine {
    /// What the engine recorded about the site's staging.
    pub async fn staging_state(&self, site: &SiteId) -> Result<StagingState, EngineError> {
        let (dir, site) = (self.inner.data_dir.clone(), site.clone());
        Ok(blocking(move || read(&dir, &site)).await?)
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
        let (dir, site) = (self.inner.data_dir.clone(), site.clone());
        blocking(move || {
            let mut state = read(&dir, &site)?;
            change(&mut state);
            write(&dir, &site, &state)
        })
        .await
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
        assert_eq!(read(dir.path(), &site).unwrap(), StagingState::default());
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
        assert_eq!(read(dir.path(), &site).unwrap(), state);
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
}
