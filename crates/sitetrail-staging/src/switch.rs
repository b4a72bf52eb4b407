//! Build, switch, undo: how an operation replaces one environment with a copy of another.
//!
//! The new copy is built aside (tables under a temporary prefix, files in a sibling
//! directory), then switched in: one `RENAME TABLE` for all tables, one
//! `renameat2(RENAME_EXCHANGE)` for the files (a SQLite database is a file inside them). The
//! journal records each phase, so that recovery can undo a half-done switch.

use std::path::{Path, PathBuf};

use anyhow::Context;
use php_serial::UrlRewrite;
use serde_json::{Map, Value, json};
use sitetrail_core::{Environment, Site};

use crate::blocking;
use crate::confined;
use crate::copy::{self, DbStats, Rewrite};
use crate::db::SiteDb;
use crate::journal::{self, Journal, JournalDb, Phase, TempPrefix};
use crate::operations::{Ctx, Engine, Env};
use crate::pause::PausePoint;
use crate::progress::Step;
use crate::push::PushScope;
use crate::snapshot::{self, DbKind, Manifest};
use crate::tree::{self, TreeStats};

/// WordPress's option that lets search engines index a site ("1") or asks them not to ("0").
const BLOG_PUBLIC: &str = "blog_public";

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

/// One replacement: its target, the target's database (none for a files-only push) and the
/// names it builds aside under.
struct Replacement<'a> {
    ctx: &'a Ctx,
    target: &'a Env,
    target_db: Option<&'a SiteDb>,
    new_tables: TempPrefix,
    old_tables: TempPrefix,
    new_dir: PathBuf,
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
        scope: PushScope,
        on_conflict: crate::push::OnConflict,
    ) -> anyhow::Result<ReplaceStats> {
        let target_db = match scope {
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
            target_db: target_db.as_ref(),
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
            database: match r.target_db {
                Some(SiteDb::Mysql(_)) => JournalDb::Mysql {
                    built: Vec::new(),
                    switch: Vec::new(),
                },
                Some(SiteDb::Sqlite(_)) => JournalDb::Sqlite,
                None => JournalDb::Untouched,
            },
        };
        self.write_journal(&journal).await?;
        let done = async {
            self.build(&r, &source, &mut journal, &mut stats).await?;
            // A push: live's rows in the tables it owns are carried into the new live.
            if let (Environment::Live, Source::Env(staging, staging_db), Some(live_db)) =
                (target.which, &source, r.target_db)
            {
                let sides = crate::merge::Sides {
                    live: target,
                    live_db,
                    staging,
                    staging_db,
                };
                let whole = matches!(scope, PushScope::Site | PushScope::Database);
                let carried = self
                    .carry_into_built(
                        ctx,
                        site,
                        &sides,
                        &r.new_dir,
                        &mut journal.database,
                        whole,
                        on_conflict,
                    )
                    .await?;
                self.write_journal(&journal).await?;
                stats.carried = Some(carried);
            }
            self.pause_point(&ctx.activity, PausePoint::Built).await;
            self.switch(&r, &mut journal).await
        }
        .await;
        if let Err(e) = done {
            self.undo_build(&journal, r.target_db).await;
            let _ = self.remove_journal(&ctx.activity).await;
            return Err(e);
        }
        crate::schema::after_switch(r.target_db, r.new_tables.as_str(), r.old_tables.as_str())
            .await;
        // The old copy goes; deleting is slow here, so it happens after the switch.
        let _t = ctx.phase(Step::CleaningUp, 0);
        if let (Some(SiteDb::Mysql(db)), JournalDb::Mysql { switch, .. }) =
            (r.target_db, &journal.database)
        {
            let old_tables: Vec<String> = switch
                .iter()
                .filter(|(_, to)| r.old_tables.holds(to))
                .map(|(_, to)| to.clone())
                .collect();
            if let Err(e) = db.drop_tables(&old_tables).await {
                tracing::warn!(error = ?e, "dropping the replaced tables failed");
            }
        }
        tree::remove_in_background(r.new_dir.clone());
        let _ = self.remove_journal(&ctx.activity).await;
        if let Some(db) = target_db {
            db.disconnect().await;
        }
        Ok(stats)
    }

    /// Builds the new copy aside: tables under the temporary prefix, files (and a SQLite
    /// database) in the new tree, the target's own `wp-config.php` kept.
    async fn build(
        &self,
        r: &Replacement<'_>,
        source: &Source<'_>,
        journal: &mut Journal,
        stats: &mut ReplaceStats,
    ) -> anyhow::Result<()> {
        let (ctx, target) = (r.ctx, r.target);
        if let Some(SiteDb::Mysql(db)) = r.target_db {
            let _t = ctx.phase(Step::CopyingDatabase, 0);
            let temp = r.new_tables.as_str();
            let (tables, db_stats) = match source {
                Source::Env(env, SiteDb::Mysql(src_db)) => {
                    ctx.total(src_db.count_rows(&env.config.prefix).await?);
                    let rewrite = Rewrite {
                        url: Some(UrlRewrite::new(env.url.as_str(), target.url.as_str())?),
                        from_prefix: env.config.prefix.clone(),
                        to_prefix: target.config.prefix.clone(),
                    };
                    copy::copy_tables(src_db, db, &rewrite, temp, &|n| ctx.advance(n)).await
                }
                Source::Env(_, other) => Err(cross(other.kind(), DbKind::Mysql)),
                Source::Snapshot(_, m) if m.database_kind != DbKind::Mysql => {
                    Err(cross(m.database_kind, DbKind::Mysql))
                }
                Source::Snapshot(dir, m) => {
                    ctx.total(m.database.rows);
                    let rewrite = Rewrite {
                        url: Some(UrlRewrite::new(&m.source_url, target.url.as_str())?),
                        from_prefix: m.table_prefix.clone(),
                        to_prefix: target.config.prefix.clone(),
                    };
                    copy::load(&dir.join(snapshot::DATABASE), db, &rewrite, temp, &|n| {
                        ctx.advance(n)
                    })
                    .await
                }
            }?;
            anyhow::ensure!(
                tables.iter().any(|(_, t)| t.ends_with("options")),
                "the source has no WordPress tables with its prefix"
            );
            if let Some(value) = self.blog_public(r).await? {
                let options = format!("{}options", target.config.prefix);
                if let Some((temp, _)) = tables.iter().find(|(_, t)| *t == options) {
                    db.set_option(temp, BLOG_PUBLIC, &value).await?;
                }
            }
            journal.database = JournalDb::Mysql {
                built: tables,
                switch: Vec::new(),
            };
            self.write_journal(journal).await?;
            stats.database = Some(db_stats);
        }
        let _t = ctx.phase(Step::CopyingFiles, 0);
        let progress = ctx.progress.clone();
        let files = match source {
            Source::Env(env, _) => {
                let (src, dst) = (env.docroot.clone(), r.new_dir.clone());
                blocking(move || {
                    let total = tree::count_files(&src);
                    progress.send_modify(|p| p.total = total);
                    tree::copy_tree(&src, &dst, &|_| progress.send_modify(|p| p.done += 1))
                })
                .await?
            }
            Source::Snapshot(dir, m) => {
                ctx.total(m.files.files);
                let (tar, dst) = (dir.join(snapshot::FILES), r.new_dir.clone());
                blocking(move || tree::unpack(&tar, &dst)).await?;
                ctx.advance(m.files.files);
                m.files
            }
        };
        stats.files = Some(files);
        match r.target_db {
            Some(SiteDb::Sqlite(target_file)) => {
                let _t = ctx.phase(Step::CopyingDatabase, 0);
                stats.database = Some(self.build_sqlite(r, source, target_file).await?);
            }
            None => {
                // Files only: a database inside the docroot stays the one live uses (a hard link
                // to the same file, so that writes made meanwhile are kept).
                if let Some(file) = &target.config.sqlite_file {
                    let (file, docroot, new_dir) =
                        (file.clone(), target.docroot.clone(), r.new_dir.clone());
                    blocking(move || keep_sqlite_database(&file, &docroot, &new_dir)).await?;
                }
            }
            Some(SiteDb::Mysql(_)) => {}
        }
        // The target keeps its own configuration.
        let (docroot, new_dir) = (target.docroot.clone(), r.new_dir.clone());
        let which = target.which.to_string();
        journal.new_dir_ino = Some(
            blocking(move || {
                keep_config(&docroot, &new_dir, &which)?;
                Ok(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(
                    &new_dir,
                )?))
            })
            .await?,
        );
        self.write_journal(journal).await?;
        Ok(())
    }

    /// The new SQLite database, inside the new tree where the target's is inside its docroot:
    /// copied from the source, its URLs and prefix rewritten.
    async fn build_sqlite(
        &self,
        r: &Replacement<'_>,
        source: &Source<'_>,
        target_file: &Path,
    ) -> anyhow::Result<DbStats> {
        let target = r.target;
        let rel = target_file
            .strip_prefix(&target.docroot)
            .ok()
            .and_then(confined::relative)
            .ok_or_else(|| {
                confined::refusal(
                    "the SQLite database is outside the site's directory; sitetrail only uses a \
                     database inside the site's own docroot",
                    format!(
                        "{} is outside {}",
                        target_file.display(),
                        target.docroot.display()
                    ),
                )
            })?;
        let new_db = r.new_dir.join(rel);
        let (new_dir, db) = (r.new_dir.clone(), new_db.clone());
        let db_dir = blocking(move || new_db_dir(&new_dir, &db)).await?;
        let (from_url, from_prefix, db_dir) = match source {
            Source::Env(env, SiteDb::Sqlite(src)) => {
                let (docroot, src) = (env.docroot.clone(), src.clone());
                let pin = blocking(move || confined::PinnedFile::new(&docroot, &src)).await?;
                let copied =
                    crate::sqlite_db::copy(pin.path(), &new_db, confined::DOCROOT_FILE_MODE).await;
                blocking(move || {
                    drop(pin);
                    Ok(())
                })
                .await?;
                copied?;
                (env.url.to_string(), env.config.prefix.clone(), db_dir)
            }
            Source::Env(_, other) => return Err(cross(other.kind(), DbKind::Sqlite)),
            Source::Snapshot(dir, m) if m.database_kind == DbKind::Sqlite => {
                let (from, to) = (dir.join(m.database_kind.file()), new_db.clone());
                let db_dir = blocking(move || {
                    let mut from = std::fs::File::open(from)?;
                    let name = to.file_name().expect("a file has a name");
                    db_dir
                        .create_file(
                            &std::ffi::CString::new(name.as_encoded_bytes())?,
                            confined::DOCROOT_FILE_MODE,
                        )
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", to.display()))
                        .and_then(|mut to| Ok(std::io::copy(&mut from, &mut to)?))?;
                    Ok(db_dir)
                })
                .await?;
                (m.source_url.clone(), m.table_prefix.clone(), db_dir)
            }
            Source::Snapshot(_, m) => return Err(cross(m.database_kind, DbKind::Sqlite)),
        };
        blocking(move || {
            database_dir_guards(&db_dir);
            Ok(())
        })
        .await?;
        let rewrite = Rewrite {
            url: Some(UrlRewrite::new(&from_url, target.url.as_str())?),
            from_prefix,
            to_prefix: target.config.prefix.clone(),
        };
        r.ctx.total(
            crate::sqlite_db::stats(&new_db, &rewrite.from_prefix)
                .await?
                .rows,
        );
        let db_stats = crate::sqlite_db::rewrite(&new_db, &rewrite, &|n| r.ctx.advance(n)).await?;
        anyhow::ensure!(
            crate::sqlite_db::has_wordpress(&new_db, &target.config.prefix).await?,
            "the source has no WordPress tables with its prefix"
        );
        if let Some(value) = self.blog_public(r).await? {
            let options = format!("{}options", target.config.prefix);
            crate::sqlite_db::set_option(&new_db, &options, BLOG_PUBLIC, &value).await?;
        }
        Ok(db_stats)
    }

    /// Whether search engines may index the new copy (`blog_public`): never staging; live
    /// keeps its own setting, whatever staging's was. None: leave the copy's as it is.
    async fn blog_public(&self, r: &Replacement<'_>) -> anyhow::Result<Option<String>> {
        let target = r.target;
        if target.which == Environment::Staging {
            return Ok(Some("0".to_owned()));
        }
        let options = format!("{}options", target.config.prefix);
        match r.target_db {
            Some(SiteDb::Mysql(db)) => db.option(&options, BLOG_PUBLIC).await,
            Some(SiteDb::Sqlite(file)) => {
                // Live's own database, read pinned: a link put in its place is not followed.
                let (docroot, file) = (target.docroot.clone(), file.clone());
                let pin = blocking(move || confined::PinnedFile::new(&docroot, &file)).await?;
                let value = crate::sqlite_db::option(pin.path(), &options, BLOG_PUBLIC).await;
                blocking(move || {
                    drop(pin);
                    Ok(())
                })
                .await?;
                value
            }
            None => Ok(None),
        }
    }

    /// Switches the new copy in: the tables in one `RENAME TABLE` (the replaced ones keep
    /// the old prefix until the cleanup), then the files in one exchange. When the file
    /// switch fails, the tables are switched back.
    async fn switch(&self, r: &Replacement<'_>, journal: &mut Journal) -> anyhow::Result<()> {
        let _t = r.ctx.phase(Step::Switching(r.target.which), 0);
        journal.phase = Phase::Switching;
        match (r.target_db, &journal.database) {
            (Some(SiteDb::Mysql(db)), JournalDb::Mysql { built, .. }) => {
                let current = db.tables(&r.target.config.prefix).await?;
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
        let files = blocking(move || {
            if docroot.exists() {
                tree::exchange(&docroot, &new_dir)
            } else {
                std::fs::rename(&new_dir, &docroot).context("putting the new files in place")
            }
        })
        .await;
        if let Err(e) = files {
            if let Some(SiteDb::Mysql(db)) = r.target_db {
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
            crate::schema::undo_build(db, TempPrefix::new_tables(&journal.activity).as_str()).await;
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

fn cross(from: DbKind, to: DbKind) -> anyhow::Error {
    anyhow::anyhow!(
        "the source's database is {} and the target's is {}; sites move between databases of the same kind",
        from.label(),
        to.label()
    )
}

/// A files-only push onto a SQLite site: the new tree gets a hard link to the database live
/// uses (when it is a regular file inside the docroot), so that writes made meanwhile are kept.
fn keep_sqlite_database(file: &Path, docroot: &Path, new_dir: &Path) -> anyhow::Result<()> {
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
fn new_db_dir(new_dir: &Path, new_db: &Path) -> anyhow::Result<confined::Root> {
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
fn database_dir_guards(dir: &confined::Root) {
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
fn keep_config(from: &Path, to: &Path, which: &str) -> anyhow::Result<()> {
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
