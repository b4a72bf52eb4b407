//! The undo's carry: the rows live added, changed or removed since a push (against the base
//! recorded after its switch) go into the kept pre-push copy before it is switched back in,
//! planned by the merge's rules (`merge.rs`) and written by `merge_apply.rs`.

use std::collections::BTreeMap;

use sitetrail_core::Site;

use crate::base;
use crate::db::SiteDb;
use crate::live_owned;
use crate::merge::{Built, Carried, Mode, SeenLive, TablePlan, plan_table, summary};
use crate::operations::{Ctx, Engine, Env};
use crate::owned_rows::{Reader, TableRows};

impl Engine {
    /// For an undo: carries the rows live added, changed or removed since the push (against
    /// the base [`Engine::record_push_base`] recorded) into the kept pre-push copy. No
    /// conflict is possible: the kept copy has not changed since.
    pub(crate) async fn carry_since_push(
        &self,
        _ctx: &Ctx,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
        kept: Built<'_>,
    ) -> anyhow::Result<(Carried, base::Base, SeenLive)> {
        self.carry_into_kept(site, live, live_db, kept).await
    }

    /// Also returns the kept copy's live-owned rows as the carry leaves them (once the copy
    /// is switched in, the base its own undo measures from, without reading them again) and
    /// live's rows as it read them (for the catch-up after the switch).
    async fn carry_into_kept(
        &self,
        site: &Site,
        live: &Env,
        live_db: &SiteDb,
        kept: Built<'_>,
    ) -> anyhow::Result<(Carried, base::Base, SeenLive)> {
        let owned = live_owned::resolve(&self.live_owned(&site.id).await?);
        let base = base::read_base(base::push_base_path(&self.inner.data_dir, &site.id)).await?;
        let without_base = base.is_none();
        let lp = live.config.prefix.clone();
        let whole_database = match &kept {
            Built::Mysql { whole_database, .. } | Built::Sqlite { whole_database, .. } => {
                *whole_database
            }
        };
        let mut after = base::Base {
            recorded_at: Some(sitetrail_core::Timestamp::now()),
            tables: BTreeMap::new(),
        };
        let mut seen = SeenLive::new();
        let mut live_side = Reader::open(live, live_db).await?;
        let planned = async {
            let (mut other, other_prefix) =
                crate::merge_apply::open_copy(live_db, &kept, &lp).await?;
            let planned = async {
                let mut plans = Vec::new();
                for o in &owned {
                    let table = format!("{lp}{}", o.suffix);
                    let l = live_side.rows(&table, o, &lp).await?;
                    let k = other
                        .rows(&format!("{other_prefix}{}", o.suffix), o, &other_prefix)
                        .await?;
                    let mode = Mode::SincePush {
                        base: base.as_ref().and_then(|b| b.tables.get(&o.suffix)),
                    };
                    let plan = plan_table(table, l.as_ref(), k.as_ref(), mode, without_base);
                    if let Some(l) = &l {
                        seen.insert(o.suffix.clone(), l.clone());
                    }
                    if let Some(rows) = applied(l, k, &plan, whole_database) {
                        after
                            .tables
                            .insert(o.suffix.clone(), base::table_base(Some(&rows), None));
                    }
                    plans.push(plan);
                }
                anyhow::Ok(plans)
            }
            .await;
            other.close().await;
            planned
        }
        .await;
        live_side.close().await;
        let plans = planned?;
        let carried = summary(&plans, without_base);
        crate::merge_apply::apply_all(live, live_db, kept, &plans).await?;
        Ok((carried, after, seen))
    }
}

/// One table of a copy as `plan` leaves it (`merge_apply.rs` writes the same): the copy's
/// rows with those the plan takes from live put in or taken out; live's whole table where
/// it is copied whole. None: the copy has no such table afterwards.
fn applied(
    live: Option<TableRows>,
    copy: Option<TableRows>,
    plan: &TablePlan,
    whole_database: bool,
) -> Option<TableRows> {
    let Some(live) = live else {
        return copy;
    };
    let Some(mut copy) = copy else {
        return whole_database.then_some(live);
    };
    if plan.whole_table {
        return Some(live);
    }
    for (cells, on_live) in &plan.take {
        let key = crate::owned_rows::key_text(&plan.key_columns, cells);
        match live.rows.get(&key).filter(|_| *on_live) {
            Some(row) => {
                copy.rows.insert(key, row.clone());
            }
            None => {
                copy.rows.remove(&key);
            }
        }
    }
    Some(copy)
}

/// The undo's carry without the undo flow, for tests (the `testkit` feature).
#[cfg(feature = "testkit")]
impl Engine {
    /// Records live's live-owned rows as a push's switch does.
    pub async fn record_push_base_for_tests(
        &self,
        site: &sitetrail_core::SiteId,
    ) -> anyhow::Result<()> {
        let site = self
            .inner
            .store
            .site(site)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no such site"))?;
        let (live, live_db) = self.open(&site, sitetrail_core::Environment::Live).await?;
        let done = self.record_push_base(&site, &live, &live_db).await;
        live_db.disconnect().await;
        done
    }

    /// Carries what live changed since [`Engine::record_push_base_for_tests`] into a kept
    /// copy of live's tables in live's database, `(kept name, live's name)`. Returns how many
    /// rows live gained, and whether there was no base.
    pub async fn carry_since_push_for_tests(
        &self,
        site: &sitetrail_core::SiteId,
        mut kept: Vec<(String, String)>,
    ) -> anyhow::Result<(u64, bool)> {
        let site = self
            .inner
            .store
            .site(site)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no such site"))?;
        let (live, live_db) = self.open(&site, sitetrail_core::Environment::Live).await?;
        let copy = Built::Mysql {
            tables: &mut kept,
            whole_database: true,
        };
        let done = self.carry_into_kept(&site, &live, &live_db, copy).await;
        live_db.disconnect().await;
        let (carried, _, _) = done?;
        Ok((carried.kept_total(), carried.without_base))
    }
}
