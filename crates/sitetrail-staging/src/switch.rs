//! Build, switch, undo: how an operation replaces one environment with a copy of another.
//!
//! The new copy is built aside (tables under a temporary prefix, files in a sibling
//! directory), then switched in: one `RENAME TABLE` for all tables, one
//! `renameat2(RENAME_EXCHANGE)` for the files (a SQLite database is a file inside them). The
//! journal records each phase, so that recovery can undo a half-done switch.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value, json};
use sitetrail_core::{Environment, Site};

use crate::blocking;
use crate::confined;
use crate::copy::DbStats;
use crate::db::SiteDb;
use crate::journal::{self, Journal, JournalDb, Phase, TempPrefix};
use crate::operations::{Ctx, Engine, Env};
use crate::pause::PausePoint;
use crate::progress::Step;
use crate::push::PushScope;
use crate::snapshot::{DbKind, Manifest};
use crate::tree::{self, TreeStats};

/// WordPress's option that lets search engines index a site ("1") or asks them not to ("0").
pub(crate) const BLOG_PUBLIC: &str = "blog_public";

/// Where a replacement copies from.
pub(crate) enum Source<'a> {
    Env(&'a Env, &'a SiteDb),
    Snapshot(&'a Path, &'a Manifest),
}

/// What a replacement did, for the activity's details.
#[derive(Debug, Default)]
pub(crate) struct ReplaceStats {
    pub backup: Option<String>,
    pub database: Option<DbStats>,
    pub files: Option<TreeStats>,
    pub carried: Option<crate::merge::Carried>,
}

impl ReplaceStats {
    pub fn into_details(self, details: &mut Map<String, Value>) {
        if let Some(b) = self.backup {
            details.insert("automatic_backup".into(), json!(b));
        }
        if let Some(d) = self.database {
            details.insert("database".into(), json!(d));
        }
        if let Some(f) = self.files {
            details.insert("files".into(), json!(f));
        }
        if let Some(c) = self.carried {
            c.into_details(details);
        }
    }
}

/// The part of an environment a replacement replaces: a scope, with its tables (named
/// without a prefix) or folders (relative to the docroot, checked).
#[derive(Debug, Clone, Default)]
pub(crate) struct Part {
    pub scope: PushScope,
    pub tables: Vec<String>,
    pub folders: Vec<PathBuf>,
}

impl Part {
    pub fn whole(scope: PushScope) -> Part {
        Part {
            scope,
            ..Part::default()
        }
    }

    /// The chosen tables with a prefix.
    pub fn table_names(&self, prefix: &str) -> Vec<String> {
        self.tables.iter().map(|t| format!("{prefix}{t}")).collect()
    }
}

/// One replacement: its target, the target's database (none for a files-only push) and the
/// names it builds aside under.
pub(crate) struct Replacement<'a> {
    pub ctx: &'a Ctx,
    pub target: &'a Env,
    pub target_db: Option<SiteDb>,
    pub part: Part,
    pub new_tables: TempPrefix,
    pub old_tables: TempPrefix,
    pub new_dir: PathBuf,
}

impl Replacement<'_> {
    /// Whether a new tree is built: for files, and for a SQLite database (inside the tree).
    pub fn builds_tree(&self) -> bool {
        self.part.scope.touches_files() || matches!(self.target_db, Some(SiteDb::Sqlite(_)))
    }
}

/// A new copy built aside, not switched in yet: what a preview compares and the merge
/// completes before the switch.
pub(crate) struct Aside<'a> {
    pub r: Replacement<'a>,
    pub journal: Journal,
    pub stats: ReplaceStats,
}

impl Aside<'_> {
    /// The tables built aside, each with the name it takes (MariaDB).
    pub fn built_tables(&self) -> &[(String, String)] {
        match &self.journal.database {
            JournalDb::Mysql { built, .. } => built,
            _ => &[],
        }
    }

    /// The new tree, when one is built.
    pub fn new_tree(&self) -> Option<&Path> {
        self.journal.new_dir_ino.map(|_| self.r.new_dir.as_path())
    }
}

impl Engine {
    /// Replaces `target` with a copy of `source`: built aside, switched in one step each for
    /// tables and files. On any failure before the switch the target is as it was.
    pub(crate) async fn replace(
        &self,
        ctx: &Ctx,
        site: &Site,
        target: &Env,
        source: Source<'_>,
        part: Part,
    ) -> anyhow::Result<ReplaceStats> {
        let aside = self.build_aside(ctx, site, target, &source, part).await?;
        Ok(self.switch_in(aside, false).await?.0)
    }

    /// Builds the new copy of `target` aside (journaled), switching nothing.
    pub(crate) async fn build_aside<'a>(
        &self,
        ctx: &'a Ctx,
        site: &Site,
        target: &'a Env,
        source: &Source<'_>,
        part: Part,
    ) -> anyhow::Result<Aside<'a>> {
        let target_db = match part.scope {
            PushScope::Files | PushScope::Folders => None,
            PushScope::Site | PushScope::Database | PushScope::Tables => Some(
                SiteDb::connect(&target.config, &self.inner.databases)
                    .await
                    .with_context(|| format!("connecting to {}'s database", target.which))?,
            ),
        };
        // Reset of an existing staging: back it up first (pushes back up live themselves).
        let mut stats = ReplaceStats::default();
        if target.which == Environment::Staging
            && self.staging_state(&site.id).await?.exists
            && let Some(db) = &target_db
        {
            let m = self
                .automatic_backup(ctx, site, target, db)
                .await
                .context("the backup of staging failed, so staging was not touched")?;
            stats.backup = Some(m.id);
        }
        let r = Replacement {
            ctx,
            target,
            target_db,
            part,
            new_tables: TempPrefix::new_tables(&ctx.activity),
            old_tables: TempPrefix::old_tables(&ctx.activity),
            new_dir: journal::new_dir(&target.docroot, &ctx.activity)?,
        };
        let mut journal = Journal {
            activity: ctx.activity.clone(),
            site: site.id.clone(),
            phase: Phase::Building,
            docroot: target.docroot.clone(),
            new_dir: r.new_dir.clone(),
            new_dir_ino: None,
            database: match &r.target_db {
                Some(SiteDb::Mysql(_)) => JournalDb::Mysql {
                    built: Vec::new(),
                    switch: Vec::new(),
                },
                Some(SiteDb::Sqlite(_)) => JournalDb::Sqlite,
                None => JournalDb::Untouched,
            },
            keeps: false,
        };
        if let Err(e) = self.write_journal(&journal).await {
            if let Some(db) = r.target_db {
                db.disconnect().await;
            }
            return Err(e);
        }
        let built = self.build(&r, source, &mut journal, &mut stats).await;
        let aside = Aside { r, journal, stats };
        match built {
            Ok(()) => Ok(aside),
            Err(e) => {
                self.discard(aside).await;
                Err(e)
            }
        }
    }

    /// Removes a copy built aside and its journal: the target is as it was.
    pub(crate) async fn discard(&self, aside: Aside<'_>) {
        self.undo_build(&aside.journal, aside.r.target_db.as_ref())
            .await;
        let _ = self.remove_journal(&aside.journal.activity).await;
        if let Some(db) = aside.r.target_db {
            db.disconnect().await;
        }
    }

    /// Switches a copy built aside in. The replaced copy goes, or, with `keep`, stays aside
    /// as the site's undo window (`undo.rs`). On a failure the target is as it was.
    pub(crate) async fn switch_in(
        &self,
        aside: Aside<'_>,
        keep: bool,
    ) -> anyhow::Result<(ReplaceStats, Option<crate::undo::Kept>)> {
        let Aside {
            r,
            mut journal,
            stats,
        } = aside;
        let ctx = r.ctx;
        self.pause_point(&ctx.activity, PausePoint::Built).await;
        if let Err(e) = self.switch(&r, &mut journal).await {
            self.undo_build(&journal, r.target_db.as_ref()).await;
            let _ = self.remove_journal(&ctx.activity).await;
            if let Some(db) = r.target_db {
                db.disconnect().await;
            }
            return Err(e);
        }
        let _t = ctx.phase(Step::CleaningUp, 0);
        let old_tables: Vec<(String, String)> = match &journal.database {
            JournalDb::Mysql { switch, .. } => switch
                .iter()
                .filter(|(_, to)| r.old_tables.holds(to))
                .map(|(from, to)| (to.clone(), from.clone()))
                .collect(),
            _ => Vec::new(),
        };
        let kept = if keep {
            let kept = crate::undo::Kept {
                tables: old_tables,
                pushed: journal
                    .database
                    .built()
                    .iter()
                    .map(|(_, t)| t.clone())
                    .collect(),
                tree: journal.new_dir_ino.map(|_| r.new_dir.clone()),
                whole_database: matches!(r.part.scope, PushScope::Site | PushScope::Database),
            };
            if let Err(e) = self.keep_for_undo(&journal, &kept).await {
                tracing::warn!(error = ?e, "keeping the replaced live for undo failed");
            }
            Some(kept)
        } else {
            // The old copy goes; deleting is slow here, so it happens after the switch.
            if let Some(SiteDb::Mysql(db)) = &r.target_db {
                let old: Vec<String> = old_tables.into_iter().map(|(t, _)| t).collect();
                if let Err(e) = db.drop_tables(&old).await {
                    tracing::warn!(error = ?e, "dropping the replaced tables failed");
                }
            }
            if journal.new_dir_ino.is_some() {
                tree::remove_in_background(r.new_dir.clone());
            }
            None
        };
        let _ = self.remove_journal(&ctx.activity).await;
        if let Some(db) = r.target_db {
            db.disconnect().await;
        }
        Ok((stats, kept))
    }

    /// Switches the new copy in: the tables in one `RENAME TABLE` (the replaced ones keep
    /// the old prefix until the cleanup), then the files in one exchange. When the file
    /// switch fails, the tables are switched back.
    async fn switch(&self, r: &Replacement<'_>, journal: &mut Journal) -> anyhow::Result<()> {
        let _t = r.ctx.phase(Step::Switching(r.target.which), 0);
        journal.phase = Phase::Switching;
        match (&r.target_db, &journal.database) {
            (Some(SiteDb::Mysql(db)), JournalDb::Mysql { built, .. }) => {
                let mut current = db.tables(&r.target.config.prefix).await?;
                if r.part.scope == PushScope::Tables {
                    // Only the chosen tables are replaced; the others stay as they are.
                    current.retain(|t| built.iter().any(|(_, to)| to == t));
                }
                let mut pairs: Vec<(String, String)> = current
                    .iter()
                    .map(|t| (t.clone(), r.old_tables.apply(t)))
                    .collect();
                pairs.extend(built.iter().cloned());
                journal.database = JournalDb::Mysql {
                    built: built.clone(),
                    switch: pairs.clone(),
                };
                self.write_journal(journal).await?;
                db.rename_all(&pairs).await?;
                self.pause_point(&r.ctx.activity, PausePoint::BetweenSwitches)
                    .await;
            }
            _ => self.write_journal(journal).await?,
        }
        let (docroot, new_dir) = (r.target.docroot.clone(), r.new_dir.clone());
        let tree_built = journal.new_dir_ino.is_some();
        let quiet = match (&r.target.config.sqlite_file, tree_built) {
            (Some(file), true) => crate::diff::Quiet::hold(&docroot, file).await,
            _ => None,
        };
        let files = blocking(move || {
            if !tree_built {
                Ok(())
            } else if docroot.exists() {
                tree::exchange(&docroot, &new_dir)
            } else {
                std::fs::rename(&new_dir, &docroot).context("putting the new files in place")
            }
        })
        .await;
        if let Some(q) = quiet {
            q.release().await;
        }
        if let Err(e) = files {
            if let Some(SiteDb::Mysql(db)) = &r.target_db {
                db.rename_all(&journal.database.switch_back())
                    .await
                    .context("undoing the table switch")?;
            }
            return Err(e);
        }
        r.ctx
            .switched
            .store(true, std::sync::atomic::Ordering::SeqCst);
        journal.phase = Phase::Switched;
        self.write_journal(journal).await?;
        self.pause_point(&r.ctx.activity, PausePoint::Switched)
            .await;
        Ok(())
    }

    /// Removes what a failed build left: temporary tables and the half-built tree.
    pub(crate) async fn undo_build(&self, journal: &Journal, db: Option<&SiteDb>) {
        if let (Some(SiteDb::Mysql(db)), JournalDb::Mysql { built, .. }) = (db, &journal.database) {
            // The journal names the tables it finished; a kill can come between a table's
            // CREATE and the journal's next write, so every table with this operation's
            // temporary prefix goes too.
            let mut tables: Vec<String> = built.iter().map(|(t, _)| t.clone()).collect();
            if journal.phase == Phase::Building {
                let temp = TempPrefix::new_tables(&journal.activity);
                match db.tables(temp.as_str()).await {
                    Ok(found) => tables.extend(found),
                    Err(e) => tracing::warn!(error = ?e, "listing temporary tables failed"),
                }
            }
            tables.sort();
            tables.dedup();
            if let Err(e) = db.drop_tables(&tables).await {
                tracing::warn!(error = ?e, "dropping temporary tables failed");
            }
        }
        if journal.phase == Phase::Building {
            tree::remove_in_background(journal.new_dir.clone());
        }
    }

    /// After a push without `keep_staging`: staging goes entirely, its tables (a SQLite
    /// database is inside its docroot) and all its files, `wp-config.php` included; an empty
    /// docroot is left where Create Staging makes it again.
    pub(crate) async fn remove_staging(&self, staging: &Env, db: &SiteDb) -> anyhow::Result<()> {
        if let SiteDb::Mysql(db) = db {
            let tables = db.tables(&staging.config.prefix).await?;
            db.drop_tables(&tables).await?;
        }
        let docroot = staging.docroot.clone();
        blocking(move || {
            remove_docroot(&docroot)?;
            std::fs::create_dir_all(&docroot).context("making staging's docroot")
        })
        .await
    }
}

pub(crate) fn cross(from: DbKind, to: DbKind) -> anyhow::Error {
    anyhow::anyhow!(
        "the source's database is {} and the target's is {}; sites move between databases of the same kind",
        from.label(),
        to.label()
    )
}

/// A files-only push onto a SQLite site: the new tree gets a hard link to the database live
/// uses (when it is a regular file inside the docroot), so that writes made meanwhile are kept.
pub(crate) fn keep_sqlite_database(
    file: &Path,
    docroot: &Path,
    new_dir: &Path,
) -> anyhow::Result<()> {
    let Ok(rel) = file.strip_prefix(docroot) else {
        return Ok(());
    };
    if !confined::Root::open(docroot)
        .and_then(|r| r.is_file(rel))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let to = new_dir.join(rel);
    let db_dir = new_db_dir(new_dir, &to)?;
    let from_dir = confined::Root::open(docroot)
        .and_then(|r| r.dir(rel.parent().unwrap_or(Path::new(""))))
        .map_err(|e| anyhow::anyhow!("opening live's database directory: {e}"))?;
    let name = rel.file_name().expect("a file has a name");
    rustix::fs::linkat(&from_dir, name, &db_dir, name, rustix::fs::AtFlags::empty())
        .context("keeping live's SQLite database")?;
    database_dir_guards(&db_dir);
    Ok(())
}
/// The directory a new SQLite database goes in, made inside the new tree without following a
/// link on the way.
pub(crate) fn new_db_dir(new_dir: &Path, new_db: &Path) -> anyhow::Result<confined::Root> {
    let rel = new_db
        .strip_prefix(new_dir)
        .ok()
        .and_then(|r| r.parent())
        .context("the new database is inside the new tree")?;
    confined::Root::open(new_dir)
        .and_then(|r| r.create_dirs(rel, 0o755))
        .map_err(|e| match e {
            confined::Access::Link | confined::Access::WrongKind => confined::refusal(
                "the site's database directory is a link; sitetrail never writes through links",
                format!("{}: {e}", new_db.display()),
            ),
            e => anyhow::anyhow!("creating the directory of {}: {e}", new_db.display()),
        })
}

/// WordPress's SQLite integration guards its database directory with an `.htaccess` and an
/// `index.php`; a new database directory gets the same (written as the integration writes
/// them, never copied from a site's files).
pub(crate) fn database_dir_guards(dir: &confined::Root) {
    for (guard, text) in [
        (c".htaccess", "DENY FROM ALL"),
        (c"index.php", "<?php // Silence is gold. ?>"),
    ] {
        if let Ok(mut f) = dir.create_file(guard, 0o644) {
            let _ = std::io::Write::write_all(&mut f, text.as_bytes());
        }
    }
}

/// Writes an environment's `wp-config.php` into its docroot: beside it first, renamed over it,
/// never through a link (a link there is refused), readable by the owner and group only.
pub(crate) fn write_config(docroot: &Path, text: &[u8], which: &str) -> anyhow::Result<()> {
    let root = confined::Root::open(docroot).map_err(|e| {
        confined::refusal(
            format!("{which}'s directory is a link; sitetrail never writes through links"),
            format!("{}: {e}", docroot.display()),
        )
    })?;
    match root.write(
        Path::new("wp-config.php"),
        &mut &text[..],
        confined::DOCROOT_FILE_MODE,
    ) {
        Ok(_) => Ok(()),
        Err(confined::Access::Link) => Err(confined::refusal(
            format!(
                "{which}'s wp-config.php is a link; sitetrail never writes through links: \
                 replace it with a regular file"
            ),
            format!("{}/wp-config.php is a link", docroot.display()),
        )),
        Err(e) => Err(anyhow::anyhow!(
            "writing {}/wp-config.php: {e}",
            docroot.display()
        )),
    }
}

/// Copies an environment's own `wp-config.php` from `from` into the tree that replaces it,
/// read and written without following a link.
pub(crate) fn keep_config(from: &Path, to: &Path, which: &str) -> anyhow::Result<()> {
    let text = match confined::Root::open(from).and_then(|r| r.read(Path::new("wp-config.php"))) {
        Ok(text) => text,
        Err(confined::Access::Missing) => return Ok(()),
        Err(e) => {
            return Err(confined::refusal(
                format!(
                    "{which}'s wp-config.php is a link or not a regular file; sitetrail never \
                     reads through links: replace it with a regular file"
                ),
                format!("{}/wp-config.php: {e}", from.display()),
            ));
        }
    };
    write_config(to, &text, which).context("keeping the environment's wp-config.php")
}

/// Removes a docroot: it is moved aside in one rename (a link in it, or the docroot itself
/// when it is a link, is moved as a link, never followed) and deleted in the background
/// (`remove_dir_all` unlinks links).
pub(crate) fn remove_docroot(docroot: &Path) -> anyhow::Result<()> {
    if docroot.symlink_metadata().is_ok() {
        let mut tag = [0u8; 4];
        getrandom::fill(&mut tag).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let aside = tree::sibling(docroot, &format!("removed-{}", hex::encode(tag)))?;
        std::fs::rename(docroot, &aside).context("moving the old files aside")?;
        tree::remove_in_background(aside);
    }
    Ok(())
}
