//! The push to live and its preview: one code path. Both build the new live aside for the
//! push's scope, carry live's new rows into it (`merge.rs`), and measure it against live
//! (`diff.rs`); a preview then removes what it built, a push switches it in, keeps the live
//! it replaced for undo (`undo.rs`), carries what live took since the merge
//! (`catch_up.rs`) and checks that live answers (`health.rs`).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Map, Value, json};
use sitetrail_core::{ActivityKind, Environment, Site, Status};

use crate::confined;
use crate::db::SiteDb;
use crate::diff;
use crate::health;
use crate::journal::JournalDb;
use crate::merge::{Built, Carried, SeenLive, Sides};
use crate::operations::{Ctx, Engine, EngineError, Env};
use crate::pause::PausePoint;
use crate::progress::{self, Step, stopped};
use crate::push::{OnConflict, Push, PushReport, PushScope};
use crate::switch::{Aside, Part, Source};

/// Why a confirmed push stopped: live is not what its preview measured.
pub const LIVE_CHANGED: &str = "Live changed since the preview, so nothing was pushed. Review \
     the new preview and confirm it.";

/// What an operation of this module reports: its description and details.
pub(crate) struct Done {
    pub description: String,
    pub details: Map<String, Value>,
}

/// A table name as the tables scope takes it: without a prefix.
fn valid_table(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// The part of live a push replaces, its folders checked: relative, inside the docroot, never
/// `wp-config.php` or the SQLite database's directory.
pub(crate) fn part_of(push: &Push) -> Result<Part, EngineError> {
    let mut part = Part::whole(push.scope);
    match push.scope {
        PushScope::Tables => {
            if push.tables.is_empty() {
                return Err(EngineError::Invalid(
                    "Choose at least one table to push.".into(),
                ));
            }
            if let Some(bad) = push.tables.iter().find(|t| !valid_table(t)) {
                return Err(EngineError::Invalid(format!(
                    "{bad:?} is not a table name: name tables without their prefix, with \
                     letters, digits and underscores only (posts, wc_orders)."
                )));
            }
            part.tables = push.tables.clone();
            part.tables.sort();
            part.tables.dedup();
        }
        PushScope::Folders => {
            if push.folders.is_empty() {
                return Err(EngineError::Invalid(
                    "Choose at least one folder to push.".into(),
                ));
            }
            for f in &push.folders {
                let rel = confined::relative(std::path::Path::new(f))
                    .filter(|r| !r.as_os_str().is_empty() && !f.starts_with('/'))
                    .filter(|r| !crate::tree::is_environment_specific(r))
                    .filter(|r| r != std::path::Path::new("wp-content"))
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "{f:?} is not a folder that can be pushed: name a folder inside the \
                             site (wp-content/themes/shop), without \"..\", not wp-config.php \
                             or the database's folder."
                        ))
                    })?;
                part.folders.push(rel);
            }
            part.folders.sort();
            part.folders.dedup();
            let nested = part.folders.windows(2).any(|w| w[1].starts_with(&w[0]));
            if nested {
                return Err(EngineError::Invalid(
                    "The chosen folders overlap: choose each folder once.".into(),
                ));
            }
        }
        _ => {}
    }
    Ok(part)
}

/// What the activity's details say was pushed.
fn pushed(push: &Push) -> Value {
    json!({"scope": push.scope, "tables": push.tables, "folders": push.folders})
}

impl Engine {
    /// Refusals of a push or a preview before anything is logged: a malformed scope, a table
    /// staging lacks, a folder staging lacks.
    pub(crate) async fn check_push(&self, site: &Site, push: &Push) -> Result<(), EngineError> {
        let part = part_of(push)?;
        match push.scope {
            PushScope::Tables => {
                let (staging, db) = self.open(site, Environment::Staging).await?;
                let prefix = staging.config.prefix.clone();
                let have = match &db {
                    SiteDb::Mysql(m) => m.tables(&prefix).await,
                    SiteDb::Sqlite(f) => diff::sqlite_rows(f, &prefix)
                        .await
                        .map(|t| t.into_keys().collect()),
                };
                db.disconnect().await;
                let have = have?;
                if let Some(missing) = part
                    .tables
                    .iter()
                    .find(|t| !have.contains(&format!("{prefix}{t}")))
                {
                    return Err(EngineError::Invalid(format!(
                        "Staging has no table named {missing}. Name tables without their \
                         prefix (posts, wc_orders); nothing was pushed."
                    )));
                }
            }
            PushScope::Folders => {
                let docroot = site
                    .staging
                    .as_ref()
                    .and_then(|s| s.docroot.clone())
                    .map(PathBuf::from)
                    .ok_or_else(|| EngineError::Invalid("the site has no staging".into()))?;
                let folders = part.folders.clone();
                let missing = crate::blocking(move || {
                    let root = confined::Root::open(&docroot).ok();
                    Ok(folders
                        .into_iter()
                        .find(|f| root.as_ref().is_none_or(|r| r.dir(f).is_err())))
                })
                .await?;
                if let Some(f) = missing {
                    return Err(EngineError::Invalid(format!(
                        "Staging has no folder {} (or it is a link, which is never pushed); \
                         nothing was pushed.",
                        f.display()
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A push (`dry_run`: its preview).
    pub(crate) async fn push(
        &self,
        ctx: &Ctx,
        site: &Site,
        push: &Push,
        dry_run: bool,
    ) -> anyhow::Result<Done> {
        let part = part_of(push).map_err(|e| progress::for_people(e.to_string()))?;
        let (live, live_db) = self.open(site, Environment::Live).await?;
        let (staging, staging_db) = self.open(site, Environment::Staging).await?;
        let done = self
            .push_opened(
                ctx,
                site,
                push,
                part,
                dry_run,
                (&live, &live_db),
                (&staging, &staging_db),
            )
            .await;
        live_db.disconnect().await;
        staging_db.disconnect().await;
        done
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_opened(
        &self,
        ctx: &Ctx,
        site: &Site,
        push: &Push,
        part: Part,
        dry_run: bool,
        (live, live_db): (&Env, &SiteDb),
        (staging, staging_db): (&Env, &SiteDb),
    ) -> anyhow::Result<Done> {
        let mut details = Map::new();
        details.insert("pushed".into(), pushed(push));
        if !dry_run {
            let backup = self
                .automatic_backup(ctx, site, live, live_db)
                .await
                .context("the backup of live failed, so live was not touched")?;
            details.insert("backup".into(), json!(backup.id));
        }
        // Before the merge reads live: the catch-up reads again only what was written since.
        let since = crate::catch_up::server_clock(live_db).await;
        let source = Source::Env(staging, staging_db);
        let mut aside = self.build_aside(ctx, site, live, &source, part).await?;
        let measured = async {
            let fingerprint = {
                let _t = ctx.phase(Step::Comparing, 0);
                diff::fingerprint(&live.docroot, &live.config.prefix, live_db).await?
            };
            let (carried, seen) = self
                .carry(
                    ctx, site, push, &mut aside, live, live_db, staging, staging_db,
                )
                .await?;
            if !dry_run {
                self.pause_point(&ctx.activity, PausePoint::Merged).await;
            }
            let _t = ctx.phase(Step::Comparing, 0);
            let report = self.report(live, &aside, &carried, fingerprint).await?;
            anyhow::Ok((carried, seen, report))
        }
        .await;
        let (carried, seen, report) = match measured {
            Ok(m) => m,
            Err(e) => {
                self.discard(aside).await;
                return Err(e);
            }
        };
        details.insert("preview".into(), json!(report));
        carried.into_details(&mut details);
        if !report.conflicts.is_empty() && push.on_conflict == OnConflict::Stop && !dry_run {
            self.discard(aside).await;
            return Err(stopped(conflict_reason(&report), details));
        }
        if dry_run {
            self.discard(aside).await;
            return Ok(Done {
                description: preview_description(&report),
                details,
            });
        }
        if let Some(reason) = self.unconfirmed(site, push, &report).await {
            self.discard(aside).await;
            return Err(stopped(reason, details));
        }
        let (stats, kept) = self.switch_in(aside, true).await?;
        stats.into_details(&mut details);
        // Before the push base: the undo's carry measures live from here.
        self.catch_up(site, live, live_db, kept.as_ref(), &seen, since.as_deref())
            .await
            .into_details(&mut details);
        drop(seen);
        if let Err(e) = self.record_push_base(site, live, live_db).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "recording live's rows after the push failed"
            );
        }
        if let Some(reason) = self.check_health(ctx, &mut details, live).await {
            let undone = self.switch_back(ctx, &site.id, live, false).await;
            let reason = match undone {
                Ok(_) => format!(
                    "{reason}, so the push was undone automatically: live serves the site as it \
                     was before the push. Fix staging and push again."
                ),
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "switching back a broken push failed"
                    );
                    format!(
                        "{reason}, and switching live back did not finish. Undo the push or \
                         restore live from its backup; contact support if that fails."
                    )
                }
            };
            return Err(stopped(reason, details));
        }
        if !push.keep_staging {
            let _t = ctx.phase(Step::RemovingStaging, 0);
            self.remove_staging(staging, staging_db).await?;
        } else if let Err(e) = self
            .record_base(site, live, live_db, staging, staging_db)
            .await
        {
            // Kept staging and the new live start from here: a new base, and staging's ids
            // moved past live's again (live's tables came from staging's, counters and all).
            tracing::warn!(
                error = format!("{e:#}"),
                "recording the base after the push failed; the next push keeps all of live's rows"
            );
        }
        self.staging_pushed(&site.id, push.keep_staging).await;
        // Rows live took during the switch that could not be carried are never dropped in
        // silence: the description says where they are.
        let description = match details
            .get("caught_up_after_switch_failed")
            .and_then(Value::as_str)
        {
            Some(note) => format!("Pushed staging to live. {note}"),
            None => "Successfully pushed staging to live".into(),
        };
        Ok(Done {
            description,
            details,
        })
    }

    /// Fetches live's pages after a switch and records what they said; the reason when live
    /// is broken.
    pub(crate) async fn check_health(
        &self,
        ctx: &Ctx,
        details: &mut Map<String, Value>,
        live: &Env,
    ) -> Option<String> {
        let _t = ctx.phase(Step::CheckingLive, 0);
        let health = health::check(live.url.as_str()).await;
        details.insert("health".into(), json!(health));
        health.broken()
    }

    /// The merge of live's new rows into the built tables (scopes with a database).
    #[allow(clippy::too_many_arguments)]
    async fn carry(
        &self,
        ctx: &Ctx,
        site: &Site,
        push: &Push,
        aside: &mut Aside<'_>,
        live: &Env,
        live_db: &SiteDb,
        staging: &Env,
        staging_db: &SiteDb,
    ) -> anyhow::Result<(Carried, SeenLive)> {
        let whole_database = matches!(push.scope, PushScope::Site | PushScope::Database);
        let new_db;
        let built = match (&aside.r.target_db, &mut aside.journal.database) {
            (Some(SiteDb::Mysql(_)), JournalDb::Mysql { built, .. }) => Built::Mysql {
                tables: built,
                whole_database,
            },
            (Some(SiteDb::Sqlite(file)), _) if aside.journal.new_dir_ino.is_some() => {
                new_db = new_sqlite_path(live, file, &aside.r.new_dir)?;
                Built::Sqlite {
                    file: &new_db,
                    whole_database,
                }
            }
            _ => return Ok((Carried::default(), SeenLive::new())),
        };
        let _t = ctx.phase(Step::KeepingLiveRows, 0);
        let sides = Sides {
            live,
            live_db,
            staging,
            staging_db,
        };
        let (carried, seen) = self
            .carry_live(ctx, site, &sides, built, push.on_conflict)
            .await?;
        // The merge may have built more tables (one live has and staging lacks).
        self.write_journal(&aside.journal).await?;
        aside.stats.carried = Some(carried.clone());
        Ok((carried, seen))
    }

    /// The report of a push: the new live built aside against live now.
    async fn report(
        &self,
        live: &Env,
        aside: &Aside<'_>,
        carried: &Carried,
        live_fingerprint: String,
    ) -> anyhow::Result<PushReport> {
        let prefix = &live.config.prefix;
        let mut tables = Vec::new();
        match (&aside.r.target_db, aside.new_tree()) {
            (Some(SiteDb::Mysql(db)), _) => {
                let current = db.tables(prefix).await?;
                for (temp, fin) in aside.built_tables() {
                    let new = diff::mysql_rows(db, temp).await?;
                    let old = match current.contains(fin) {
                        true => Some(diff::mysql_rows(db, fin).await?),
                        false => None,
                    };
                    tables.push(diff::table_change(fin, Some(&new), old.as_ref()));
                }
                if aside.r.part.scope != PushScope::Tables {
                    for t in current
                        .iter()
                        .filter(|t| !aside.built_tables().iter().any(|(_, f)| f == *t))
                    {
                        let old = diff::mysql_rows(db, t).await?;
                        tables.push(diff::table_change(t, None, Some(&old)));
                    }
                }
            }
            (Some(SiteDb::Sqlite(file)), Some(tree)) => {
                let new = diff::sqlite_rows(&new_sqlite_path(live, file, tree)?, prefix).await?;
                let (d, f) = (live.docroot.clone(), file.clone());
                let pin = crate::blocking(move || confined::PinnedFile::new(&d, &f)).await?;
                let old = diff::sqlite_rows(pin.path(), prefix).await;
                crate::blocking(move || {
                    drop(pin);
                    Ok(())
                })
                .await?;
                let old = old?;
                let chosen = aside.r.part.table_names(prefix);
                let reported =
                    |t: &String| aside.r.part.scope != PushScope::Tables || chosen.contains(t);
                for (t, rows) in new.iter().filter(|(t, _)| reported(t)) {
                    tables.push(diff::table_change(t, Some(rows), old.get(t)));
                }
                for (t, rows) in old.iter().filter(|(t, _)| reported(t)) {
                    if !new.contains_key(t) {
                        tables.push(diff::table_change(t, None, Some(rows)));
                    }
                }
            }
            _ => {}
        }
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        for t in tables.iter_mut() {
            t.kept_from_live = carried.kept_from_live.get(&t.table).copied().unwrap_or(0);
        }
        let files = match (aside.r.part.scope.touches_files(), aside.new_tree()) {
            (true, Some(tree)) => {
                let (live, tree) = (live.docroot.clone(), tree.to_owned());
                crate::blocking(move || diff::files_change(&live, &tree)).await?
            }
            _ => Default::default(),
        };
        Ok(PushReport {
            tables,
            kept_from_live: carried.kept_total(),
            conflicts: carried.conflicts.clone(),
            files,
            url_rewrites: aside
                .stats
                .database
                .as_ref()
                .map_or(0, |d| d.rewritten_cells),
            skipped_cells: aside
                .stats
                .database
                .as_ref()
                .map_or_else(Vec::new, |d| d.skipped_cells.clone()),
            live_fingerprint,
        })
    }

    /// With a preview to confirm: why this push must not switch (none: it may).
    async fn unconfirmed(&self, site: &Site, push: &Push, report: &PushReport) -> Option<String> {
        let id = push.preview.as_ref()?;
        let preview = self.inner.store.activity(id).await.ok().flatten();
        let matches = preview.as_ref().is_some_and(|p| {
            p.site_id == site.id
                && p.activity == ActivityKind::PreviewPush
                && p.status == Status::Completed
                && p.details.get("pushed") == Some(&pushed(push))
        });
        if !matches {
            return Some(
                "That preview is not a completed preview of this push, so nothing was pushed. \
                 Review the new preview and confirm it."
                    .into(),
            );
        }
        let measured = preview
            .as_ref()
            .and_then(|p| p.details.get("preview"))
            .and_then(|p| p.get("live_fingerprint"))
            .and_then(Value::as_str);
        (measured != Some(report.live_fingerprint.as_str())).then(|| LIVE_CHANGED.to_owned())
    }
}

/// Where the new SQLite database is in the tree built aside: where live's is in its docroot.
pub(crate) fn new_sqlite_path(
    live: &Env,
    file: &std::path::Path,
    tree: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    let rel = file
        .strip_prefix(&live.docroot)
        .ok()
        .and_then(confined::relative)
        .context("live's SQLite database is outside its docroot")?;
    Ok(tree.join(rel))
}

/// How many conflicting rows a reason names one by one (the details list them all).
const CONFLICTS_NAMED: usize = 5;

fn conflict_reason(report: &PushReport) -> String {
    let n = report.conflicts.len();
    let mut named: Vec<String> = report
        .conflicts
        .iter()
        .take(CONFLICTS_NAMED)
        .map(|c| format!("{} {}", c.table, c.key))
        .collect();
    if n > CONFLICTS_NAMED {
        named.push(format!("and {} more", n - CONFLICTS_NAMED));
    }
    format!(
        "Nothing was pushed: staging and live both changed {n} {} that live owns ({}). Choose \
         which side wins, staging or live, and push again. Live was not changed.",
        if n == 1 { "row" } else { "rows" },
        named.join("; ")
    )
}

fn preview_description(report: &PushReport) -> String {
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for t in &report.tables {
        added += t.added;
        removed += t.removed;
        changed += t.changed;
    }
    let f = &report.files;
    let mut s = format!(
        "Previewed a push to live: {added} rows added, {changed} changed, {removed} removed; \
         {} files added, {} changed, {} removed; {} of live's new rows kept",
        f.added, f.changed, f.removed, report.kept_from_live
    );
    if !report.conflicts.is_empty() {
        s.push_str(&format!(
            "; {} rows changed on both sides",
            report.conflicts.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_must_stay_inside_the_site_and_tables_be_plain_names() {
        let folders = |f: &[&str]| Push {
            scope: PushScope::Folders,
            folders: f.iter().map(|s| s.to_string()).collect(),
            ..Push::default()
        };
        for bad in [
            "../live",
            "/etc",
            "wp-config.php",
            "wp-content/database",
            "",
            "wp-content/../../x",
        ] {
            assert!(
                matches!(part_of(&folders(&[bad])), Err(EngineError::Invalid(_))),
                "{bad}"
            );
        }
        let ok = part_of(&folders(&[
            "wp-content/themes/shop",
            "./wp-content/plugins/x",
        ]))
        .unwrap();
        assert_eq!(
            ok.folders,
            vec![
                PathBuf::from("wp-content/plugins/x"),
                PathBuf::from("wp-content/themes/shop")
            ]
        );
        assert!(part_of(&folders(&["wp-content/themes", "wp-content/themes/shop"])).is_err());
        let tables = |t: &[&str]| Push {
            scope: PushScope::Tables,
            tables: t.iter().map(|s| s.to_string()).collect(),
            ..Push::default()
        };
        assert!(part_of(&tables(&["posts`; DROP TABLE x"])).is_err());
        assert!(part_of(&tables(&[])).is_err());
        assert_eq!(
            part_of(&tables(&["posts", "postmeta", "posts"]))
                .unwrap()
                .tables
                .len(),
            2
        );
    }
}
