//! The catch-up after a push's switch: the merge (`merge.rs`) read live's rows seconds
//! before the switch (the report and the confirmation come between), and a shop takes orders
//! meanwhile. Right after the switch the replaced live is kept aside for undo and nobody
//! writes to it any more (the `RENAME TABLE` waited for the transactions in flight), so every
//! row of a live-owned table it added, changed or removed since the merge read it is carried
//! into the new live by key, in one transaction.
//!
//! Only tables written since the merge began are read again (MariaDB knows when a table was
//! last written, to the second).
//!
//! On SQLite the old database is a file inside the kept tree, and live's file can be written
//! only through the docroot, which sitetrail never opens for writing: the rows are counted,
//! not carried, and the activity says so for people (they stay in the copy kept for undo).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use serde_json::{Map, Value, json};
use sitetrail_core::Site;

use crate::base;
use crate::db::SiteDb;
use crate::live_owned;
use crate::merge::{Mode, SeenLive, TablePlan, plan_table};
use crate::merge_apply::{copy_rows_mysql, temp_prefix};
use crate::mysql::MysqlDb;
use crate::operations::{Engine, Env};
use crate::owned_rows::{Reader, TableRows, mysql_rows};
use crate::undo::Kept;

/// What the catch-up carried: per table (live's name), rows the replaced live added, changed
/// or removed after the merge read it.
#[derive(Debug, Default)]
pub(crate) struct CaughtUp {
    pub by_table: BTreeMap<String, u64>,
}

impl CaughtUp {
    pub fn total(&self) -> u64 {
        self.by_table.values().sum()
    }
}

/// How the catch-up ended, for the activity's details.
pub(crate) enum CatchUp {
    Done(CaughtUp),
    /// Nothing to catch up: SQLite, a files-only push, or nothing kept.
    NotRun,
    /// It failed; with the rows it had planned to carry when it got that far.
    Failed(Option<u64>),
}

impl CatchUp {
    /// Whether it changed live (or may have: it failed part way).
    pub fn carried_any(&self) -> bool {
        match self {
            CatchUp::Done(c) => c.total() > 0,
            CatchUp::NotRun => false,
            CatchUp::Failed(_) => true,
        }
    }

    pub fn into_details(self, details: &mut Map<String, Value>) {
        match self {
            CatchUp::Done(c) => {
                details.insert("caught_up_after_switch".into(), json!(c.total()));
                if !c.by_table.is_empty() {
                    details.insert("caught_up_after_switch_by_table".into(), json!(c.by_table));
                }
            }
            CatchUp::NotRun => {}
            CatchUp::Failed(rows) => {
                let what = match rows {
                    Some(1) => "1 row live took during the switch was".to_owned(),
                    Some(n) => format!("{n} rows live took during the switch were"),
                    None => "The rows live took during the switch were".to_owned(),
                };
                let note = format!(
                    "{what} not carried into the new live. They are in the copy of live kept \
                     for undo until the undo window closes: undo the push, or contact support \
                     to carry them."
                );
                details.insert("caught_up_after_switch_failed".into(), json!(note));
            }
        }
    }
}

/// One table's catch-up: the plan, and where the replaced live's table is kept.
struct Planned {
    kept: String,
    plan: TablePlan,
}

/// The database server's clock, taken before a merge reads live (none on SQLite, or when it
/// cannot be read: then the catch-up reads every table).
pub(crate) async fn server_clock(db: &SiteDb) -> Option<String> {
    match db {
        SiteDb::Mysql(db) => db.now().await.ok(),
        SiteDb::Sqlite(_) => None,
    }
}

impl Engine {
    /// Carries into live what the replaced live took between the merge and the switch. Never
    /// fails the push: a failure is logged and said in the result; the kept copy stays.
    pub(crate) async fn catch_up(
        &self,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
        kept: Option<&Kept>,
        seen: &SeenLive,
        since: Option<&str>,
    ) -> CatchUp {
        let db = match (kept, live_db) {
            (Some(kept), SiteDb::Mysql(db)) => (kept, db),
            (
                Some(Kept {
                    tree: Some(tree), ..
                }),
                SiteDb::Sqlite(_),
            ) if !seen.is_empty() => {
                return self.count_sqlite(site, live, live_db, tree, seen).await;
            }
            _ => return CatchUp::NotRun,
        };
        let (kept, db) = db;
        if kept.tables.is_empty() || seen.is_empty() {
            return CatchUp::NotRun;
        }
        let planned = self.plan_catch_up(site, live, db, kept, seen, since).await;
        let plans = match planned {
            Ok(plans) => plans,
            Err(e) => {
                tracing::warn!(site = %site.id, error = format!("{e:#}"), "reading the replaced live after the switch failed; what it took during the switch stays in the undo copy");
                return CatchUp::Failed(None);
            }
        };
        let rows: u64 = plans.iter().map(|p| p.plan.take.len() as u64).sum();
        if rows == 0 {
            return CatchUp::Done(CaughtUp::default());
        }
        match apply(db, &plans).await {
            Ok(()) => CatchUp::Done(CaughtUp {
                by_table: plans
                    .iter()
                    .filter(|p| !p.plan.take.is_empty())
                    .map(|p| (p.plan.table.clone(), p.plan.take.len() as u64))
                    .collect(),
            }),
            Err(e) => {
                tracing::warn!(site = %site.id, rows, error = format!("{e:#}"), "carrying what live took during the switch failed; it stays in the undo copy");
                CatchUp::Failed(Some(rows))
            }
        }
    }

    /// SQLite: live's file can be written only through its docroot, which sitetrail never
    /// opens for writing, so what the replaced live (its file in the kept tree) took since
    /// the merge is counted, not carried, and said for people: never dropped in silence.
    async fn count_sqlite(
        &self,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
        tree: &std::path::Path,
        seen: &SeenLive,
    ) -> CatchUp {
        let counted = async {
            let owned = live_owned::resolve(&self.live_owned(&site.id).await?);
            let lp = &live.config.prefix;
            let SiteDb::Sqlite(file) = live_db else {
                anyhow::bail!("live's database is not SQLite");
            };
            let kept_db = SiteDb::Sqlite(crate::push_flow::new_sqlite_path(live, file, tree)?);
            let mut kept = Reader::open_in(tree, &kept_db).await?;
            let read = async {
                let mut rows = 0u64;
                for o in &owned {
                    let Some(seen_rows) = seen.get(&o.suffix) else {
                        continue;
                    };
                    let table = format!("{lp}{}", o.suffix);
                    let now = kept.rows(&table, o, lp).await?;
                    let plan = since_merge(table, now.as_ref(), seen_rows);
                    if !plan.whole_table {
                        rows += plan.take.len() as u64;
                    }
                }
                anyhow::Ok(rows)
            }
            .await;
            kept.close().await;
            read
        }
        .await;
        match counted {
            Ok(0) => CatchUp::Done(CaughtUp::default()),
            Ok(n) => CatchUp::Failed(Some(n)),
            Err(e) => {
                tracing::warn!(site = %site.id, error = format!("{e:#}"), "reading the replaced live after the switch failed");
                CatchUp::Failed(None)
            }
        }
    }

    /// Per live-owned table the switch replaced: the kept table against what the merge saw.
    /// Tables without a primary key were kept whole by the merge and are left as they are.
    /// With `since` (the server's clock before the merge read live), a table the server says
    /// nobody wrote since is not read again.
    async fn plan_catch_up(
        &self,
        site: &Site,
        live: &Env,
        db: &MysqlDb,
        kept: &Kept,
        seen: &SeenLive,
        since: Option<&str>,
    ) -> anyhow::Result<Vec<Planned>> {
        let kept_names: Vec<String> = kept.tables.iter().map(|(k, _)| k.clone()).collect();
        let written = match since {
            Some(since) => db.written_since(&kept_names, since).await?,
            None => kept_names,
        };
        let owned = live_owned::resolve(&self.live_owned(&site.id).await?);
        let lp = &live.config.prefix;
        let p = temp_prefix(&kept.tables)
            .ok_or_else(|| anyhow::anyhow!("the kept tables have no prefix"))?;
        let kept_prefix = format!("{p}{lp}");
        let mut plans = Vec::new();
        for o in &owned {
            let table = format!("{lp}{}", o.suffix);
            let (Some(seen_rows), Some((kept_name, _))) = (
                seen.get(&o.suffix),
                kept.tables.iter().find(|(_, l)| *l == table),
            ) else {
                continue;
            };
            if !written.contains(kept_name) {
                continue;
            }
            let now = mysql_rows(db, kept_name, o, &kept_prefix).await?;
            let plan = since_merge(table, now.as_ref(), seen_rows);
            if !plan.whole_table && !plan.take.is_empty() {
                plans.push(Planned {
                    kept: kept_name.clone(),
                    plan,
                });
            }
        }
        Ok(plans)
    }
}

/// One table's rows the replaced live (`now`) added, changed or removed since the merge read
/// it (`seen`).
fn since_merge(table: String, now: Option<&TableRows>, seen: &TableRows) -> TablePlan {
    let since = base::table_base(Some(seen), None);
    plan_table(
        table,
        now,
        Some(seen),
        Mode::SincePush { base: Some(&since) },
        false,
    )
}

/// Writes the kept rows into live in one transaction: all of them or none. Foreign key
/// checks are off for this session, as in the merge: the rows are restored as a consistent
/// live had them, and a delete must not cascade.
async fn apply(db: &MysqlDb, plans: &[Planned]) -> anyhow::Result<()> {
    let mut conn = db.conn().await?;
    conn.query_drop("SET SESSION foreign_key_checks = 0")
        .await?;
    let done = async {
        conn.query_drop("START TRANSACTION").await?;
        for p in plans {
            copy_rows_mysql(db, &mut conn, &p.plan.table, &p.kept, &p.plan).await?;
        }
        conn.query_drop("COMMIT").await?;
        anyhow::Ok(())
    }
    .await;
    if done.is_err() {
        let _ = conn.query_drop("ROLLBACK").await;
    }
    let _ = conn.query_drop("SET SESSION foreign_key_checks = 1").await;
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_catch_up_says_for_people_where_the_rows_are() {
        let mut details = Map::new();
        CatchUp::Failed(Some(3)).into_details(&mut details);
        let note = details["caught_up_after_switch_failed"].as_str().unwrap();
        assert!(note.starts_with("3 rows live took during the switch were not carried"));
        assert!(note.contains("kept for undo"));
        let mut details = Map::new();
        CatchUp::Done(CaughtUp::default()).into_details(&mut details);
        assert_eq!(details["caught_up_after_switch"], json!(0));
    }
}
