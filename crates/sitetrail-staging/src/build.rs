//! Building the new copy of an environment aside, for the part of it an operation replaces
//! (see `PushScope`): tables under a temporary prefix, files in a sibling tree.
//!
//! Scopes that replace only part of the files, and scopes that replace a SQLite database
//! (a file inside the docroot), build a whole new tree that is the target's own tree with
//! that part replaced, and switch it in with one exchange: several folders switch together,
//! undo is one exchange back, and the tree built aside never links into the live one. The
//! cost is a copy of the target's files; what the target's visitors write into its files
//! while the copy runs is not in the new tree (the same as a whole-site push).

use std::path::{Path, PathBuf};

use php_serial::UrlRewrite;
use sitetrail_core::Environment;

use crate::blocking;
use crate::confined;
use crate::copy::{self, DbStats, Rewrite};
use crate::db::SiteDb;
use crate::journal::{Journal, JournalDb};
use crate::operations::Engine;
use crate::progress::Step;
use crate::push::PushScope;
use crate::snapshot::{self, DbKind};
use crate::switch::{
    BLOG_PUBLIC, ReplaceStats, Replacement, Source, cross, database_dir_guards, keep_config,
    keep_sqlite_database, new_db_dir,
};
use crate::tree;

impl Engine {
    /// Builds the new copy aside: tables under the temporary prefix, files (and a SQLite
    /// database) in the new tree, the target's own `wp-config.php` kept. Only the part the
    /// replacement's scope names is taken from the source; the rest is the target's own.
    pub(crate) async fn build(
        &self,
        r: &Replacement<'_>,
        source: &Source<'_>,
        journal: &mut Journal,
        stats: &mut ReplaceStats,
    ) -> anyhow::Result<()> {
        let (ctx, target) = (r.ctx, r.target);
        let scope = r.part.scope;
        if let Some(SiteDb::Mysql(db)) = &r.target_db {
            let _t = ctx.phase(Step::CopyingDatabase, 0);
            let temp = r.new_tables.as_str();
            let (mut tables, db_stats) = match source {
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
            if scope == PushScope::Tables {
                // The copy takes every table (the copy's own rules apply to each); the ones
                // not chosen go at once.
                let wanted = r.part.table_names(&target.config.prefix);
                let (keep, drop): (Vec<_>, Vec<_>) =
                    tables.into_iter().partition(|(_, t)| wanted.contains(t));
                db.drop_tables(&drop.into_iter().map(|(t, _)| t).collect::<Vec<_>>())
                    .await?;
                tables = keep;
            } else {
                anyhow::ensure!(
                    tables.iter().any(|(_, t)| t.ends_with("options")),
                    "the source has no WordPress tables with its prefix"
                );
            }
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
        if !r.builds_tree() {
            return Ok(());
        }
        let _t = ctx.phase(Step::CopyingFiles, 0);
        let progress = ctx.progress.clone();
        let count = move |src: &Path| {
            let total = tree::count_files(src);
            progress.send_modify(|p| p.total += total);
        };
        let progress = ctx.progress.clone();
        let on_file = move |_| progress.send_modify(|p| p.done += 1);
        let files = match (scope, source) {
            (PushScope::Site | PushScope::Files, Source::Env(env, _)) => {
                let (src, dst) = (env.docroot.clone(), r.new_dir.clone());
                Some(
                    blocking(move || {
                        count(&src);
                        tree::copy_tree(&src, &dst, &on_file)
                    })
                    .await?,
                )
            }
            (PushScope::Site | PushScope::Files, Source::Snapshot(dir, m)) => {
                ctx.total(m.files.files);
                let (tar, dst) = (dir.join(snapshot::FILES), r.new_dir.clone());
                blocking(move || tree::unpack(&tar, &dst)).await?;
                ctx.advance(m.files.files);
                Some(m.files)
            }
            (PushScope::Folders, Source::Env(env, _)) => {
                let (live, src, dst) = (
                    target.docroot.clone(),
                    env.docroot.clone(),
                    r.new_dir.clone(),
                );
                let folders = r.part.folders.clone();
                Some(
                    blocking(move || {
                        count(&live);
                        tree::copy_tree_except(&live, &dst, &folders, &on_file)?;
                        let mut pushed = tree::TreeStats::default();
                        for f in &folders {
                            let s = tree::copy_folder(&src, f, &dst, &on_file)?;
                            pushed.files += s.files;
                            pushed.bytes += s.bytes;
                        }
                        Ok(pushed)
                    })
                    .await?,
                )
            }
            (PushScope::Folders, Source::Snapshot(..)) => {
                anyhow::bail!("folders are pushed from staging only")
            }
            (PushScope::Database | PushScope::Tables, _) => {
                // The target's own files around a new database file.
                let (live, dst) = (target.docroot.clone(), r.new_dir.clone());
                blocking(move || {
                    count(&live);
                    tree::copy_tree(&live, &dst, &on_file)
                })
                .await?;
                None
            }
        };
        stats.files = files;
        match &r.target_db {
            Some(SiteDb::Sqlite(target_file)) => {
                let _t = ctx.phase(Step::CopyingDatabase, 0);
                let (new_db, db_stats) = self.build_sqlite(r, source, target_file).await?;
                if scope == PushScope::Tables {
                    self.keep_other_sqlite_tables(r, target_file, &new_db)
                        .await?;
                }
                stats.database = Some(db_stats);
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

    /// A tables push onto SQLite: the new database is a copy of the target's with the chosen
    /// tables replaced by the source's (built at `new_db`, rewritten).
    async fn keep_other_sqlite_tables(
        &self,
        r: &Replacement<'_>,
        target_file: &Path,
        new_db: &Path,
    ) -> anyhow::Result<()> {
        let mut name = new_db.as_os_str().to_owned();
        name.push("-source");
        let from = PathBuf::from(name);
        std::fs::rename(new_db, &from)?;
        let (docroot, file) = (r.target.docroot.clone(), target_file.to_owned());
        let pin = blocking(move || confined::PinnedFile::new(&docroot, &file)).await?;
        let copied = crate::sqlite_db::copy(pin.path(), new_db, confined::DOCROOT_FILE_MODE).await;
        blocking(move || {
            drop(pin);
            Ok(())
        })
        .await?;
        copied?;
        let tables = r.part.table_names(&r.target.config.prefix);
        let replaced = crate::diff::sqlite_replace_tables(new_db, &from, &tables).await;
        let _ = std::fs::remove_file(&from);
        replaced
    }

    /// The new SQLite database, inside the new tree where the target's is inside its docroot:
    /// copied from the source, its URLs and prefix rewritten.
    pub(crate) async fn build_sqlite(
        &self,
        r: &Replacement<'_>,
        source: &Source<'_>,
        target_file: &Path,
    ) -> anyhow::Result<(PathBuf, DbStats)> {
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
            r.part.scope == PushScope::Tables
                || crate::sqlite_db::has_wordpress(&new_db, &target.config.prefix).await?,
            "the source has no WordPress tables with its prefix"
        );
        if let Some(value) = self.blog_public(r).await? {
            let options = format!("{}options", target.config.prefix);
            crate::sqlite_db::set_option(&new_db, &options, BLOG_PUBLIC, &value).await?;
        }
        Ok((new_db, db_stats))
    }

    /// Whether search engines may index the new copy (`blog_public`): never staging; live
    /// keeps its own setting, whatever staging's was. None: leave the copy's as it is.
    pub(crate) async fn blog_public(&self, r: &Replacement<'_>) -> anyhow::Result<Option<String>> {
        let target = r.target;
        if target.which == Environment::Staging {
            return Ok(Some("0".to_owned()));
        }
        let options = format!("{}options", target.config.prefix);
        match &r.target_db {
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
}
