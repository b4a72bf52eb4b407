//! Undo a push and restore live from a backup: both put an earlier live back with the same
//! atomic switch a push uses, and neither silently drops the rows live gained meanwhile in
//! the tables it owns (invariant 10). A restore backs live up first (invariant 7); an undo
//! destroys nothing (what it replaces is kept for the rest of the window, `undo.rs`).
//!
//! A restore carries them as rows whose key the backup does not have: live's version of
//! each such row goes into the restored tables (`INSERT IGNORE`); rows the backup has keep
//! the backup's version, which is what restoring means. In tables the profile names with a
//! row selector (orders as `posts` and their `postmeta`), only the selected rows of live are
//! carried.

use anyhow::Context;
use mysql_async::prelude::Queryable;
use serde_json::{Map, Value, json};
use sitetrail_core::{BackupId, Environment, Site};

use crate::db::SiteDb;
use crate::merge::Built;
use crate::mysql::{MysqlDb, quote};
use crate::operations::{Ctx, Engine, Env};
use crate::progress::{Step, stopped};
use crate::push::PushScope;
use crate::push_flow::{Done, new_sqlite_path};
use crate::snapshot;
use crate::switch::{Aside, Part, Source};

impl Engine {
    /// Puts back the live the last push replaced, carrying the rows live gained since.
    pub(crate) async fn undo_push(&self, ctx: &Ctx, site: &Site) -> anyhow::Result<Done> {
        let (live, live_db) = self.open(site, Environment::Live).await?;
        let done = self.undo_opened(ctx, site, &live, &live_db).await;
        live_db.disconnect().await;
        done
    }

    async fn undo_opened(
        &self,
        ctx: &Ctx,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
    ) -> anyhow::Result<Done> {
        let mut details = Map::new();
        let record = self
            .undo_record(&site.id)
            .await?
            .ok_or_else(|| crate::progress::for_people(crate::undo::NO_UNDO))?;
        let puts_push_back = record.puts_push_back;
        let mut next_base = None;
        let mut seen = crate::merge::SeenLive::new();
        // Before the carry reads live: the catch-up reads again only what was written since.
        let since = crate::catch_up::server_clock(live_db).await;
        {
            let _t = ctx.phase(Step::KeepingLiveRows, 0);
            let kept_db;
            let mut record = record;
            let whole_database = record.kept.whole_database;
            let kept = match (live_db, &record.kept.tree) {
                (SiteDb::Mysql(_), _) => Some(Built::Mysql {
                    tables: &mut record.kept.tables,
                    whole_database,
                }),
                (SiteDb::Sqlite(file), Some(tree)) => {
                    kept_db = new_sqlite_path(live, file, tree.as_path())?;
                    Some(Built::Sqlite {
                        file: &kept_db,
                        whole_database,
                    })
                }
                (SiteDb::Sqlite(_), None) => None,
            };
            if let Some(kept) = kept {
                let (carried, after, read) = self
                    .carry_since_push(ctx, site, live, live_db, kept)
                    .await?;
                next_base = Some(after);
                seen = read;
                // The merge may have kept more tables (one live made since the push).
                self.rewrite_undo_record(&record).await?;
                carried.into_details(&mut details);
            }
        }
        self.pause_point(&ctx.activity, crate::pause::PausePoint::Merged)
            .await;
        details.extend(self.switch_back(ctx, &site.id, live, true).await?);
        // What live took between the carry and the switch is in the replaced live, now kept
        // for putting the push back: carry it into live too.
        let kept = self
            .undo_record(&site.id)
            .await
            .ok()
            .flatten()
            .map(|r| r.kept);
        let caught = self
            .catch_up(site, live, live_db, kept.as_ref(), &seen, since.as_deref())
            .await;
        if caught.carried_any() {
            next_base = None;
        }
        caught.into_details(&mut details);
        // Undoing again carries what live gains from now on: the base is the kept copy's
        // rows as the carry left them (read again only when there was no carry).
        let recorded = match next_base {
            Some(base) => {
                let path = crate::base::push_base_path(&self.inner.data_dir, &site.id);
                crate::base::write_base(path, &base).await
            }
            None => self.record_push_base(site, live, live_db).await,
        };
        if let Err(e) = recorded {
            tracing::warn!(
                error = format!("{e:#}"),
                "recording live's rows after the undo failed"
            );
        }
        if let Some(reason) = self.check_health(ctx, &mut details, live).await {
            details.insert("health_warning".into(), json!(reason));
        }
        let mut description = match puts_push_back {
            false => "Undid the last push: live is as it was before it".to_owned(),
            true => "Put the undone push back: live is as the push left it".to_owned(),
        };
        if let Some(note) = details
            .get("caught_up_after_switch_failed")
            .and_then(Value::as_str)
        {
            description = format!("{description}. {note}");
        }
        Ok(Done {
            description,
            details,
        })
    }

    /// Replaces live (whole, its database or its files) with a backup, checked first.
    pub(crate) async fn restore_live(
        &self,
        ctx: &Ctx,
        site: &Site,
        backup: &BackupId,
        scope: PushScope,
    ) -> anyhow::Result<Done> {
        let dir = self.inner.snapshots.backup_dir(&site.id, backup);
        let m = {
            let _t = ctx.phase(Step::CheckingSnapshot, 0);
            let dir = dir.clone();
            crate::blocking(move || snapshot::verify(&dir)).await?
        };
        let (live, live_db) = self.open(site, Environment::Live).await?;
        let done = async {
            let mut details = Map::new();
            details.insert("backup".into(), json!(backup));
            details.insert("scope".into(), json!(scope));
            let before = self
                .automatic_backup(ctx, site, &live, &live_db)
                .await
                .context("the backup of live failed, so live was not touched")?;
            details.insert("automatic_backup".into(), json!(before.id));
            let source = Source::Snapshot(&dir, &m);
            let aside = self
                .build_aside(ctx, site, &live, &source, Part::whole(scope))
                .await?;
            let carried = async {
                let _t = ctx.phase(Step::KeepingLiveRows, 0);
                self.carry_into_restored(site, &live, &aside).await
            }
            .await;
            match carried {
                Ok(c) => {
                    details.insert("kept_from_live".into(), c);
                }
                Err(e) => {
                    self.discard(aside).await;
                    return Err(e);
                }
            }
            let (stats, _) = self.switch_in(aside, false).await?;
            stats.into_details(&mut details);
            // The copy a push kept is older than what live is now: it no longer goes back.
            self.close_undo(&site.id).await;
            if let Some(reason) = self.check_health(ctx, &mut details, &live).await {
                return Err(stopped(
                    format!(
                        "Live was restored from the backup {backup}, but {}. Restore another \
                         backup or contact support.",
                        lower_first(&reason),
                    ),
                    details,
                ));
            }
            anyhow::Ok(Done {
                description: format!("Restored live from the backup {backup}"),
                details,
            })
        }
        .await;
        live_db.disconnect().await;
        done
    }

    /// Carries the rows live gained since the backup (keys the backup lacks) in the tables
    /// live owns into the restored tables. Returns, per table, how many.
    async fn carry_into_restored(
        &self,
        site: &Site,
        live: &Env,
        aside: &Aside<'_>,
    ) -> anyhow::Result<Value> {
        let profile = self.live_owned(&site.id).await?;
        let owned = crate::live_owned::resolve(&profile);
        let prefix = &live.config.prefix;
        let posts = format!("{prefix}posts");
        let mut out = Map::new();
        match (&aside.r.target_db, aside.new_tree()) {
            (Some(SiteDb::Mysql(db)), _) => {
                let current = db.tables(prefix).await?;
                for (temp, fin) in aside.built_tables() {
                    let Some(o) = owned
                        .iter()
                        .find(|o| format!("{prefix}{}", o.suffix) == *fin)
                    else {
                        continue;
                    };
                    if current.contains(fin) {
                        // Live's selector reads live's own tables (not yet switched).
                        let selected = o.selected(prefix, &|n| quote(n))?;
                        let n = insert_missing(db, temp, fin, &selected).await?;
                        out.insert(fin.clone(), json!(n));
                    }
                }
            }
            (Some(SiteDb::Sqlite(file)), Some(tree)) => {
                let new_db = new_sqlite_path(live, file, tree)?;
                let (d, f) = (live.docroot.clone(), file.clone());
                let pin = crate::blocking(move || crate::confined::PinnedFile::new(&d, &f)).await?;
                // Each table with the rows live owns in it; a selector reads live's tables.
                let in_live = |n: &str| match n == posts {
                    true => Ok(format!("live.{}", crate::owned_rows::sqlite_quote(n)?)),
                    false => crate::owned_rows::sqlite_quote(n),
                };
                let tables = owned
                    .iter()
                    .map(|o| {
                        Ok((
                            format!("{prefix}{}", o.suffix),
                            o.selected(prefix, &in_live)?,
                        ))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let n = crate::diff::sqlite_insert_missing(&new_db, pin.path(), &tables).await;
                crate::blocking(move || {
                    drop(pin);
                    Ok(())
                })
                .await?;
                for (t, n) in n? {
                    out.insert(t, json!(n));
                }
            }
            _ => {}
        }
        Ok(Value::Object(out))
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Copies into `into` the rows of `from` that `selected` (SQL) picks and whose key `into`
/// lacks, over the columns both have (generated ones left out). Returns how many.
async fn insert_missing(
    db: &MysqlDb,
    into: &str,
    from: &str,
    selected: &str,
) -> anyhow::Result<u64> {
    let mut conn = db.conn().await?;
    let columns = |t: &str| {
        format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{}' AND \
             table_name = '{}' AND extra NOT LIKE '%GENERATED%' ORDER BY ordinal_position",
            db.name.replace('\'', "''"),
            t.replace('\'', "''")
        )
    };
    let a: Vec<String> = conn.query(columns(into)).await?;
    let b: Vec<String> = conn.query(columns(from)).await?;
    let both = a
        .iter()
        .filter(|c| b.contains(c))
        .map(|c| quote(c))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    if both.is_empty() {
        return Ok(0);
    }
    conn.query_drop(format!(
        "INSERT IGNORE INTO {} ({both}) SELECT {both} FROM {} WHERE {selected}",
        quote(into)?,
        quote(from)?
    ))
    .await
    .context("carrying live's new rows into the restored tables")?;
    Ok(conn.affected_rows())
}
