//! Undoing a push: the live a push replaced is kept aside (its tables under the push's
//! old-tables prefix, its tree where the push built the new one) for a window, 24 hours or
//! until the next push, and switched back in with the same atomic switch: one `RENAME TABLE`
//! for all tables, one exchange for the tree. The window is recorded in
//! `data_dir/undo/{site}.json` (private, written atomically).
//!
//! An undo destroys nothing, so it takes no backup (invariant 7 is about what an operation
//! destroys): the live it replaces, the pushed one, is kept aside in turn for the rest of the
//! window, and undoing again puts the push back. Each undo carries the rows live gained
//! meanwhile in the tables it owns (invariant 10). An undo costs a switch, not a restore.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sitetrail_core::{ActivityId, SiteId, Timestamp};

use crate::blocking;
use crate::journal::{Journal, JournalDb, Phase, TempPrefix};
use crate::mysql::MysqlDb;
use crate::operations::{Ctx, Engine, Env};
use crate::pause::PausePoint;
use crate::progress::{self, Step};
use crate::push::UndoWindow;
use crate::tree;

/// How long a push can be undone, unless another push comes first.
pub const UNDO_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

const UNDO_DIR: &str = "undo";

/// What a push kept of the live it replaced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Kept {
    /// Each replaced table as it is kept, with its name in live (MariaDB).
    pub tables: Vec<(String, String)>,
    /// The names in live of the tables the push put in.
    pub pushed: Vec<String>,
    /// The replaced tree (a SQLite database is inside it), when the push switched files.
    pub tree: Option<PathBuf>,
    /// The push replaced live's whole database (its tables are all kept).
    #[serde(default)]
    pub whole_database: bool,
}

impl Kept {
    /// The prefix the kept tables have before live's names: the push's old-tables prefix, or
    /// the prefix an undo moved the pushed tables under.
    fn prefix(&self, record_of: &ActivityId, puts_push_back: bool) -> TempPrefix {
        match puts_push_back {
            true => TempPrefix::undone_tables(record_of),
            false => TempPrefix::old_tables(record_of),
        }
    }
}

/// The undo window of a site: the push, when it closes, and what it kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub push: ActivityId,
    pub site: SiteId,
    pub pushed_at: Timestamp,
    pub until: Timestamp,
    /// Live's docroot (its `wp-config.php` names the database the kept tables are in).
    pub docroot: PathBuf,
    pub kept: Kept,
    /// An undo left this window: what is kept is the pushed live, and undoing again puts the
    /// push back (`push` is then the undo's activity).
    #[serde(default)]
    pub puts_push_back: bool,
}

impl Record {
    fn is_open(&self, now: Timestamp) -> bool {
        now.millis() < self.until.millis()
    }
}

fn record_path(data_dir: &Path, site: &SiteId) -> PathBuf {
    data_dir.join(UNDO_DIR).join(format!("{site}.json"))
}

fn read_record(data_dir: &Path, site: &SiteId) -> anyhow::Result<Option<Record>> {
    match std::fs::read(record_path(data_dir, site)) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).context("a damaged undo record")?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_record(data_dir: &Path, record: &Record) -> anyhow::Result<()> {
    let path = record_path(data_dir, &record.site);
    sitetrail_store::private::create_dir(path.parent().expect("has a parent"))?;
    let tmp = path.with_extension("tmp");
    sitetrail_store::private::write(&tmp, &serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn remove_record(data_dir: &Path, site: &SiteId) -> anyhow::Result<()> {
    match std::fs::remove_file(record_path(data_dir, site)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Why there is nothing to undo, for people.
pub(crate) const NO_UNDO: &str = "There is no push to undo: the last push's window has closed, \
     or live was restored or changed by another operation since. Restore live from a backup \
     instead.";

impl Engine {
    pub(crate) async fn undo_record(&self, site: &SiteId) -> anyhow::Result<Option<Record>> {
        let (d, s) = (self.inner.data_dir.clone(), site.clone());
        blocking(move || read_record(&d, &s)).await
    }

    /// The push the site's live can go back on, if its window is open.
    pub async fn undo_window(&self, site: &SiteId) -> anyhow::Result<Option<UndoWindow>> {
        Ok(self
            .undo_record(site)
            .await?
            .filter(|r| r.is_open(Timestamp::now()))
            .map(|r| UndoWindow {
                push: r.push,
                pushed_at: r.pushed_at,
                until: r.until,
                puts_push_back: r.puts_push_back,
            }))
    }

    /// Drops the replaced lives whose window has closed; returns how many went. The
    /// scheduler calls it. A site busy with an operation is left for the next round.
    pub async fn expire_undo(&self) -> anyhow::Result<usize> {
        let dir = self.inner.data_dir.join(UNDO_DIR);
        let sites = blocking(move || {
            let mut sites = Vec::new();
            match std::fs::read_dir(&dir) {
                Ok(entries) => {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if let Some(s) = name.strip_suffix(".json")
                            && let Ok(site) = SiteId::parse(s)
                        {
                            sites.push(site);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            Ok(sites)
        })
        .await?;
        let now = Timestamp::now();
        let mut expired = 0;
        for site in sites {
            let Some(record) = self.undo_record(&site).await? else {
                continue;
            };
            if record.is_open(now) {
                continue;
            }
            let (d, s, a) = (
                self.inner.data_dir.clone(),
                site.clone(),
                ActivityId::generate(),
            );
            let Ok(lock) = blocking(move || crate::lock::try_lock(&d, &s, &a)).await? else {
                continue;
            };
            self.drop_kept(&record).await;
            expired += 1;
            drop(lock);
        }
        Ok(expired)
    }

    /// After a push's switch: the replaced live becomes the site's undo window, and the
    /// copy an earlier push kept goes.
    pub(crate) async fn keep_for_undo(&self, journal: &Journal, kept: &Kept) -> anyhow::Result<()> {
        if let Some(previous) = self.undo_record(&journal.site).await? {
            self.drop_kept(&previous).await;
        }
        let now = Timestamp::now();
        let record = Record {
            push: journal.activity.clone(),
            site: journal.site.clone(),
            pushed_at: now,
            until: Timestamp::from_millis(now.millis() + UNDO_WINDOW_MS).unwrap_or(now),
            docroot: journal.docroot.clone(),
            kept: kept.clone(),
            puts_push_back: false,
        };
        let d = self.inner.data_dir.clone();
        blocking(move || write_record(&d, &record)).await
    }

    /// Writes a site's undo record again (the merge kept more tables in it).
    pub(crate) async fn rewrite_undo_record(&self, record: &Record) -> anyhow::Result<()> {
        let (d, r) = (self.inner.data_dir.clone(), record.clone());
        blocking(move || write_record(&d, &r)).await
    }

    /// Drops a kept copy (its tables and its tree) and its record.
    pub(crate) async fn drop_kept(&self, record: &Record) {
        if !record.kept.tables.is_empty() {
            let dropped = async {
                let db = self.kept_db(&record.docroot).await?;
                let tables: Vec<String> =
                    record.kept.tables.iter().map(|(t, _)| t.clone()).collect();
                let r = db.drop_tables(&tables).await;
                db.disconnect().await;
                r
            }
            .await;
            if let Err(e) = dropped {
                tracing::warn!(site = %record.site, error = ?e, "dropping a kept live's tables failed");
            }
        }
        if let Some(tree) = &record.kept.tree {
            tree::remove_in_background(tree.clone());
        }
        let (d, s) = (self.inner.data_dir.clone(), record.site.clone());
        if let Err(e) = blocking(move || remove_record(&d, &s)).await {
            tracing::warn!(error = ?e, "removing an undo record failed");
        }
    }

    /// Forgets the undo window without dropping anything: what it named is no longer kept
    /// (recovery switched the push back, or the kept copy was switched in).
    pub(crate) async fn forget_undo_of(&self, site: &SiteId, push: &ActivityId) {
        if let Ok(Some(r)) = self.undo_record(site).await
            && &r.push == push
        {
            let (d, s) = (self.inner.data_dir.clone(), site.clone());
            let _ = blocking(move || remove_record(&d, &s)).await;
        }
    }

    /// A restore replaces live: the copy a push kept no longer goes back over it.
    pub(crate) async fn close_undo(&self, site: &SiteId) {
        if let Ok(Some(r)) = self.undo_record(site).await {
            self.drop_kept(&r).await;
        }
    }

    async fn kept_db(&self, docroot: &Path) -> anyhow::Result<MysqlDb> {
        let docroot = docroot.to_owned();
        let config = blocking(move || crate::wpconfig::read(&docroot)).await?;
        MysqlDb::connect(&config, &self.inner.databases).await
    }

    /// Whether the site has a push to undo; refuses with the words for people when not.
    pub(crate) async fn check_undo(&self, site: &SiteId) -> Result<(), crate::EngineError> {
        match self.undo_window(site).await? {
            Some(_) => Ok(()),
            None => Err(crate::EngineError::Conflict(NO_UNDO.into())),
        }
    }

    /// Switches the live the last push replaced back in (within the running operation `ctx`:
    /// an undo, or a push whose health check failed), journaled so that a crash at any point
    /// leaves live whole. With `keep_replaced` (an undo) what it replaces is kept for the rest
    /// of the window, to be put back by undoing again; otherwise (a broken push) it is
    /// dropped. Returns the details.
    pub(crate) async fn switch_back(
        &self,
        ctx: &Ctx,
        site: &SiteId,
        live: &Env,
        keep_replaced: bool,
    ) -> anyhow::Result<Map<String, Value>> {
        let record = self
            .undo_record(site)
            .await?
            .filter(|r| r.is_open(Timestamp::now()))
            .ok_or_else(|| progress::for_people(NO_UNDO))?;
        let db = match record.kept.tables.is_empty() {
            true => None,
            false => Some(self.kept_db(&live.docroot).await?),
        };
        let done = self
            .switch_kept(ctx, &record, live, db.as_ref(), keep_replaced)
            .await;
        if let Some(db) = db {
            db.disconnect().await;
        }
        done?;
        let mut details = Map::new();
        details.insert(
            match record.puts_push_back {
                true => "undone_undo",
                false => "undone_push",
            }
            .into(),
            json!(record.push),
        );
        details.insert("tables".into(), json!(record.kept.tables.len()));
        details.insert("files".into(), json!(record.kept.tree.is_some()));
        Ok(details)
    }

    async fn switch_kept(
        &self,
        ctx: &Ctx,
        record: &Record,
        live: &Env,
        db: Option<&MysqlDb>,
        keep_replaced: bool,
    ) -> anyhow::Result<()> {
        let _t = ctx.phase(Step::SwitchingBack, 0);
        let away = TempPrefix::undone_tables(&ctx.activity);
        let mut pairs = Vec::new();
        if let Some(db) = db {
            let current = db.tables(&live.config.prefix).await?;
            for t in current.iter().filter(|t| {
                record.kept.pushed.contains(t) || record.kept.tables.iter().any(|(_, n)| n == *t)
            }) {
                pairs.push((t.clone(), away.apply(t)));
            }
            pairs.extend(record.kept.tables.iter().cloned());
        }
        let tree = record.kept.tree.clone();
        let tree_ino = match &tree {
            Some(t) => {
                let t = t.clone();
                Some(
                    blocking(move || {
                        let m = std::fs::symlink_metadata(&t)
                            .context("the kept files of live are gone")?;
                        anyhow::ensure!(m.is_dir(), "the kept files of live are not a directory");
                        Ok(std::os::unix::fs::MetadataExt::ino(&m))
                    })
                    .await?,
                )
            }
            None => None,
        };
        let mut journal = Journal {
            activity: ctx.activity.clone(),
            site: record.site.clone(),
            phase: Phase::Switching,
            docroot: live.docroot.clone(),
            new_dir: tree
                .clone()
                .unwrap_or_else(|| live.docroot.with_extension("no-kept-tree")),
            new_dir_ino: tree_ino,
            database: match db {
                Some(_) => JournalDb::Mysql {
                    built: record.kept.tables.clone(),
                    switch: pairs.clone(),
                },
                None => JournalDb::Untouched,
            },
            keeps: true,
        };
        self.write_journal(&journal).await?;
        if let Some(db) = db {
            db.rename_all(&pairs).await?;
            self.pause_point(&ctx.activity, PausePoint::BetweenSwitches)
                .await;
        }
        if let Some(tree) = &tree {
            let (docroot, tree) = (live.docroot.clone(), tree.clone());
            let quiet = match &live.config.sqlite_file {
                Some(file) => crate::diff::Quiet::hold(&docroot, file).await,
                None => None,
            };
            let exchanged = blocking(move || tree::exchange(&docroot, &tree)).await;
            if let Some(q) = quiet {
                q.release().await;
            }
            if let Err(e) = exchanged {
                if let Some(db) = db {
                    db.rename_all(&journal.database.switch_back())
                        .await
                        .context("undoing the table switch")?;
                }
                let _ = self.remove_journal(&ctx.activity).await;
                return Err(e);
            }
        }
        ctx.switched
            .store(true, std::sync::atomic::Ordering::SeqCst);
        journal.phase = Phase::Switched;
        self.write_journal(&journal).await?;
        self.pause_point(&ctx.activity, PausePoint::Switched).await;
        if let Some(db) = db {
            // The kept tables' foreign keys and triggers take their names back from the
            // tables they replace.
            crate::schema::after_switch_mysql(
                db,
                record
                    .kept
                    .prefix(&record.push, record.puts_push_back)
                    .as_str(),
                away.as_str(),
                false,
            )
            .await;
        }
        let _c = ctx.phase(Step::CleaningUp, 0);
        let replaced: Vec<(String, String)> = pairs
            .iter()
            .filter(|(_, to)| away.holds(to))
            .map(|(from, to)| (to.clone(), from.clone()))
            .collect();
        if keep_replaced {
            // What the undo replaced is kept in its place for the rest of the window.
            self.remove_journal(&ctx.activity).await?;
            let now = Timestamp::now();
            let next = Record {
                push: ctx.activity.clone(),
                site: record.site.clone(),
                pushed_at: now,
                until: record.until,
                docroot: record.docroot.clone(),
                kept: Kept {
                    tables: replaced,
                    pushed: record.kept.tables.iter().map(|(_, n)| n.clone()).collect(),
                    tree,
                    whole_database: record.kept.whole_database,
                },
                puts_push_back: !record.puts_push_back,
            };
            let d = self.inner.data_dir.clone();
            return blocking(move || write_record(&d, &next)).await;
        }
        // A broken push: what it had put in goes, and the window closes.
        if let Some(db) = db {
            let out: Vec<String> = replaced.into_iter().map(|(t, _)| t).collect();
            if let Err(e) = db.drop_tables(&out).await {
                tracing::warn!(error = ?e, "dropping the undone push's tables failed");
            }
        }
        if let Some(tree) = tree {
            tree::remove_in_background(tree);
        }
        self.forget_undo_of(&record.site, &record.push).await;
        self.remove_journal(&ctx.activity).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undo_record_is_private_is_read_back_and_its_window_closes() {
        let dir = tempfile::tempdir().unwrap();
        let site = SiteId::parse("shop").unwrap();
        assert!(read_record(dir.path(), &site).unwrap().is_none());
        let now = Timestamp::now();
        let record = Record {
            push: ActivityId::generate(),
            site: site.clone(),
            pushed_at: now,
            until: Timestamp::from_millis(now.millis() + UNDO_WINDOW_MS).unwrap(),
            docroot: "/srv/live".into(),
            kept: Kept {
                tables: vec![("stoabc_wp_posts".into(), "wp_posts".into())],
                pushed: vec!["wp_posts".into()],
                tree: Some("/srv/.live.aside-new-abc".into()),
                whole_database: true,
            },
            puts_push_back: false,
        };
        write_record(dir.path(), &record).unwrap();
        let path = record_path(dir.path(), &site);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = read_record(dir.path(), &site).unwrap().unwrap();
        assert_eq!(back.push, record.push);
        assert_eq!(back.kept.tables, record.kept.tables);
        assert!(back.is_open(now));
        let later = Timestamp::from_millis(now.millis() + UNDO_WINDOW_MS + 1).unwrap();
        assert!(!back.is_open(later));
        remove_record(dir.path(), &site).unwrap();
        assert!(read_record(dir.path(), &site).unwrap().is_none());
    }

    /// The scheduler's tick: a closed window's kept live goes (its record and its tree), an
    /// open one stays.
    #[tokio::test]
    async fn expiring_drops_a_closed_windows_kept_live_and_leaves_an_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let store: sitetrail_store::DynStore = std::sync::Arc::new(
            sitetrail_store_sqlite::SqliteStore::open(&dir.path().join("log.db"))
                .await
                .unwrap(),
        );
        let data = dir.path().join("data");
        let engine = Engine::new(store, &data, crate::DatabasePolicy::default());
        let now = Timestamp::now();
        let kept_tree = |name: &str| {
            let t = dir.path().join(name);
            std::fs::create_dir_all(t.join("wp-content")).unwrap();
            std::fs::write(t.join("wp-content/kept.txt"), "kept").unwrap();
            t
        };
        let record = |site: &str, until: i64, tree: PathBuf| Record {
            push: ActivityId::generate(),
            site: SiteId::parse(site).unwrap(),
            pushed_at: now,
            until: Timestamp::from_millis(until).unwrap(),
            docroot: dir.path().join(site),
            kept: Kept {
                tree: Some(tree),
                ..Kept::default()
            },
            puts_push_back: false,
        };
        let (closed, open) = (kept_tree("closed-kept"), kept_tree("open-kept"));
        write_record(&data, &record("closed", now.millis() - 1, closed.clone())).unwrap();
        write_record(
            &data,
            &record("open", now.millis() + UNDO_WINDOW_MS, open.clone()),
        )
        .unwrap();
        let (closed_site, open_site) = (
            SiteId::parse("closed").unwrap(),
            SiteId::parse("open").unwrap(),
        );
        assert!(engine.undo_window(&closed_site).await.unwrap().is_none());
        assert!(engine.undo_window(&open_site).await.unwrap().is_some());

        assert_eq!(engine.expire_undo().await.unwrap(), 1);
        assert!(read_record(&data, &closed_site).unwrap().is_none());
        assert!(engine.undo_window(&open_site).await.unwrap().is_some());
        for _ in 0..100 {
            if !closed.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!closed.exists(), "the closed window's kept files are gone");
        assert!(
            open.join("wp-content/kept.txt").exists(),
            "the open one's stay"
        );
        assert_eq!(
            engine.expire_undo().await.unwrap(),
            0,
            "nothing more to drop"
        );
    }
}
