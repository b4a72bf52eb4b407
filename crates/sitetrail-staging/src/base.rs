//! The base of a merge: when staging is made (created from live, or reset), each row of the
//! tables live owns is recorded on both sides by its key, as a hash, with whether the
//! profile's row selector holds for it. At the same moment staging's AUTO_INCREMENT counters
//! are moved far past live's, so that ids made on either side afterwards never meet.
//!
//! The base is kept in `data_dir/staging-base/{site}.json` (private, replaced in one rename);
//! the base a push leaves for its undo in `data_dir/push-base/{site}.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sitetrail_core::{Environment, Site, SiteId, Timestamp};

use crate::blocking;
use crate::db::SiteDb;
use crate::live_owned::{self, Owned};
use crate::operations::{Engine, Env};
use crate::owned_rows::{Hash, Reader, TableRows};

/// A base: per live-owned table (named without a prefix), per row key, the row's hash on each
/// side and whether it is live's by the profile's selector (on either side).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Base {
    pub recorded_at: Option<Timestamp>,
    pub tables: BTreeMap<String, BTreeMap<String, BaseRow>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BaseRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<Hash>,
    pub selected: bool,
}

/// The base rows of one table: every key selected on either side, with both sides' hashes.
pub(crate) fn table_base(
    live: Option<&TableRows>,
    staging: Option<&TableRows>,
) -> BTreeMap<String, BaseRow> {
    let mut out: BTreeMap<String, BaseRow> = BTreeMap::new();
    for rows in [live, staging].into_iter().flatten() {
        for (key, seen) in &rows.rows {
            if seen.selected || seen.always_live {
                out.entry(key.clone()).or_default().selected = true;
            }
        }
    }
    for (key, row) in out.iter_mut() {
        row.live = live.and_then(|t| t.rows.get(key)).map(|s| s.hash.clone());
        row.staging = staging
            .and_then(|t| t.rows.get(key))
            .map(|s| s.hash.clone());
    }
    out
}

pub(crate) fn staging_base_path(data_dir: &Path, site: &SiteId) -> PathBuf {
    data_dir
        .join("staging-base")
        .join(format!("{}.json", site.as_str()))
}

pub(crate) fn push_base_path(data_dir: &Path, site: &SiteId) -> PathBuf {
    data_dir
        .join("push-base")
        .join(format!("{}.json", site.as_str()))
}

pub(crate) async fn read_base(path: PathBuf) -> anyhow::Result<Option<Base>> {
    blocking(move || match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    })
    .await
}

pub(crate) async fn write_base(path: PathBuf, base: &Base) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(base)?;
    blocking(move || live_owned::write_private(&path, &bytes)).await
}

async fn remove(path: PathBuf) -> anyhow::Result<()> {
    blocking(move || match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    })
    .await
}

impl Engine {
    /// The hook of staging's making (`make_staging`): opens both sides and records the base.
    /// Staging is made by then, so a base that cannot be recorded does not fail the
    /// operation: a push without a base keeps all of live's rows (see `merge.rs`).
    pub(crate) async fn record_base_after_making(&self, site: &Site, staging: &Env) {
        let recorded = async {
            let (live, live_db) = self.open(site, Environment::Live).await?;
            let staging_db = SiteDb::connect(&staging.config, &self.inner.databases).await;
            let done = match &staging_db {
                Ok(db) => self.record_base(site, &live, &live_db, staging, db).await,
                Err(e) => Err(anyhow::anyhow!("connecting to staging's database: {e:#}")),
            };
            live_db.disconnect().await;
            if let Ok(db) = staging_db {
                db.disconnect().await;
            }
            done
        }
        .await;
        if let Err(e) = recorded {
            tracing::warn!(site = %site.id, error = format!("{e:#}"), "recording staging's base failed; a push keeps all of live's rows");
        }
    }

    /// Records the base right after staging was made from live, a template or a backup, and
    /// separates staging's ids from live's. The previous base goes first, so that a base that
    /// fails to be recorded is missing, never stale.
    pub(crate) async fn record_base(
        &self,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
        staging: &Env,
        staging_db: &SiteDb,
    ) -> anyhow::Result<()> {
        let path = staging_base_path(&self.inner.data_dir, &site.id);
        remove(path.clone()).await?;
        crate::ids::separate(live, live_db, staging, staging_db)
            .await
            .context("separating staging's ids from live's")?;
        let owned = live_owned::resolve(&self.live_owned(&site.id).await?);
        let mut live_side = Reader::open(live, live_db).await?;
        let mut staging_side = Reader::open(staging, staging_db).await;
        let base = match &mut staging_side {
            Ok(staging_side) => {
                let mut base = Base {
                    recorded_at: Some(Timestamp::now()),
                    tables: BTreeMap::new(),
                };
                let read = async {
                    for o in &owned {
                        let (l, s) =
                            read_pair(&mut live_side, live, staging_side, staging, o).await?;
                        if l.is_some() || s.is_some() {
                            base.tables
                                .insert(o.suffix.clone(), table_base(l.as_ref(), s.as_ref()));
                        }
                    }
                    anyhow::Ok(())
                }
                .await;
                read.map(|()| base)
            }
            Err(e) => Err(anyhow::anyhow!("{e:#}")),
        };
        live_side.close().await;
        if let Ok(s) = staging_side {
            s.close().await;
        }
        write_base(path, &base?).await
    }

    /// Right after a push's switch: records live's live-owned rows, so that an undo can carry
    /// what live gains afterwards (see [`Engine::carry_since_push`]).
    pub(crate) async fn record_push_base(
        &self,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
    ) -> anyhow::Result<()> {
        let path = push_base_path(&self.inner.data_dir, &site.id);
        remove(path.clone()).await?;
        let owned = live_owned::resolve(&self.live_owned(&site.id).await?);
        let mut side = Reader::open(live, live_db).await?;
        let mut base = Base {
            recorded_at: Some(Timestamp::now()),
            tables: BTreeMap::new(),
        };
        let read = async {
            for o in &owned {
                let table = format!("{}{}", live.config.prefix, o.suffix);
                if let Some(rows) = side.rows(&table, o, &live.config.prefix).await? {
                    base.tables
                        .insert(o.suffix.clone(), table_base(Some(&rows), None));
                }
            }
            anyhow::Ok(())
        }
        .await;
        side.close().await;
        read?;
        write_base(path, &base).await
    }
}

/// One live-owned table on both sides (each under its own prefix).
pub(crate) async fn read_pair(
    live_side: &mut Reader<'_>,
    live: &Env,
    staging_side: &mut Reader<'_>,
    staging: &Env,
    o: &Owned,
) -> anyhow::Result<(Option<TableRows>, Option<TableRows>)> {
    let (lp, sp) = (&live.config.prefix, &staging.config.prefix);
    let l = live_side.rows(&format!("{lp}{}", o.suffix), o, lp).await?;
    let s = staging_side
        .rows(&format!("{sp}{}", o.suffix), o, sp)
        .await?;
    Ok((l, s))
}
