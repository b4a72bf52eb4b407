//! The merge of a push: after the new live is built aside and before the switch, the rows of
//! the tables live owns are made right, row by row against the base recorded when staging was
//! made (`base.rs`):
//! - a row staging did not change since the base takes live's current version (or its
//!   absence): every row live added, changed or removed is carried over;
//! - a row only staging changed keeps staging's version (it is already in the built copy);
//! - a row both changed, differently, is a conflict: reported with its table and key, and with
//!   [`OnConflict::Stop`] nothing is applied (the push stops before its switch); otherwise one
//!   side wins for every conflicting row.
//!
//! `merge_apply.rs` writes the decisions into the built tables on MariaDB and SQLite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sitetrail_core::Site;

use crate::base::{self, BaseRow};
use crate::db::SiteDb;
use crate::live_owned;
use crate::mysql::Cell;
use crate::operations::{Ctx, Engine, Env};
use crate::owned_rows::{Reader, Seen, TableRows};
use crate::push::{Conflict, OnConflict};

/// Both environments of a push, opened.
pub(crate) struct Sides<'a> {
    pub live: &'a Env,
    pub live_db: &'a SiteDb,
    pub staging: &'a Env,
    pub staging_db: &'a SiteDb,
}

/// The new live, built aside (or, for an undo, the kept pre-push copy).
pub(crate) enum Built<'a> {
    /// MariaDB: the tables built in live's database, `(temp_name, final_name)`. With
    /// `whole_database` (the copy replaces all of live's tables), a live-owned table that
    /// live has and the copy lacks is copied in and its pair appended.
    Mysql {
        tables: &'a mut Vec<(String, String)>,
        whole_database: bool,
    },
    /// SQLite: the new database file (tables under live's prefix).
    Sqlite {
        file: &'a Path,
        whole_database: bool,
    },
}

/// What the merge did (or, when it stopped, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Carried {
    /// Per table (live's name): rows live added or changed since the base, carried over.
    pub kept_from_live: BTreeMap<String, u64>,
    /// Rows both sides changed, in every mode. With [`OnConflict::Stop`] and conflicts
    /// nothing was applied: the caller must not switch.
    pub conflicts: Vec<Conflict>,
    /// No base was recorded (staging was made before bases were, or recording it failed):
    /// all of live's rows in the tables live owns were kept.
    pub without_base: bool,
    /// Live-owned tables without a primary key: live's whole table was kept.
    pub whole_tables: Vec<String>,
}

impl Carried {
    pub fn kept_total(&self) -> u64 {
        self.kept_from_live.values().sum()
    }

    /// Whether the caller must stop before switching.
    pub fn stops(&self, on_conflict: OnConflict) -> bool {
        on_conflict == OnConflict::Stop && !self.conflicts.is_empty()
    }
}

/// Live's live-owned rows as the merge read them, per table (named without a prefix): what
/// the catch-up after the switch (`catch_up.rs`) measures the replaced live against. Kept in
/// memory only: a crash before the switch leaves live as it was, and recovery switches back
/// a crash after it.
pub(crate) type SeenLive = BTreeMap<String, TableRows>;

/// How a row changed on one side since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Unchanged,
    Added,
    Changed,
    Removed,
}

impl Change {
    pub fn of(base: Option<&str>, now: Option<&str>) -> Change {
        match (base, now) {
            (None, None) => Change::Unchanged,
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(a), Some(b)) if a == b => Change::Unchanged,
            _ => Change::Changed,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Change::Unchanged => "unchanged",
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Removed => "removed",
        }
    }
}

/// What happens to one row of the built copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The built copy's (staging's) version stays.
    Keep,
    /// Live's current version replaces it (or, when live has none, it goes). `kept`: live
    /// added or changed it since the base.
    TakeLive {
        kept: bool,
    },
    Conflict {
        staging: Change,
        live: Change,
    },
}

/// One row's decision in a push, against its base (none: the row was on neither side).
pub(crate) fn decide(
    base: Option<&BaseRow>,
    live: Option<&Seen>,
    staging: Option<&Seen>,
) -> Decision {
    let b_live = base.and_then(|b| b.live.as_deref());
    let b_staging = base.and_then(|b| b.staging.as_deref());
    let l = Change::of(b_live, live.map(|s| s.hash.as_str()));
    let s = Change::of(b_staging, staging.map(|s| s.hash.as_str()));
    let live_gained = live.is_some() && l != Change::Unchanged;
    if live.is_some_and(|r| r.always_live) || staging.is_some_and(|r| r.always_live) {
        return Decision::TakeLive { kept: live_gained };
    }
    match (s, l) {
        // Staging left it alone: live's version, unless both still hold the base's (then the
        // built copy already is live's row, its URLs rewritten).
        (Change::Unchanged, Change::Unchanged) if b_live.is_some() == b_staging.is_some() => {
            Decision::Keep
        }
        (Change::Unchanged, _) => Decision::TakeLive { kept: live_gained },
        (_, Change::Unchanged) => Decision::Keep,
        (Change::Removed, Change::Removed) => Decision::Keep,
        _ if live.map(|r| &r.hash) == staging.map(|r| &r.hash) => Decision::Keep,
        (staging, live) => Decision::Conflict { staging, live },
    }
}

/// What the merge writes into one table of the built copy.
#[derive(Debug, Default)]
pub(crate) struct TablePlan {
    /// Live's name of the table.
    pub table: String,
    pub key_columns: Vec<String>,
    /// Keys whose built row goes, and whether live's row then takes its place.
    pub take: Vec<(Vec<Cell>, bool)>,
    pub kept: u64,
    pub conflicts: Vec<Conflict>,
    /// No primary key: live's whole table replaces the built one.
    pub whole_table: bool,
    /// Live has the table.
    pub on_live: bool,
}

/// How the rows of one table are decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// A push against staging's base (none: keep all of live's rows).
    Push {
        base: Option<&'a BTreeMap<String, BaseRow>>,
        on_conflict: OnConflict,
    },
    /// An undo: what live changed since the push (none: keep all of live's rows) goes into
    /// the kept copy.
    SincePush {
        base: Option<&'a BTreeMap<String, BaseRow>>,
    },
}

fn owned_keys(rows: Option<&TableRows>) -> impl Iterator<Item = &String> {
    rows.into_iter()
        .flat_map(|t| t.rows.iter())
        .filter(|(_, s)| s.selected || s.always_live)
        .map(|(k, _)| k)
}

/// Decides every row of one live-owned table. `other` is staging (a push) or the kept copy
/// (an undo): where live has no row, its key is taken from there.
pub(crate) fn plan_table(
    table: String,
    live: Option<&TableRows>,
    other: Option<&TableRows>,
    mode: Mode<'_>,
    without_base: bool,
) -> TablePlan {
    let mut plan = TablePlan {
        table,
        on_live: live.is_some(),
        ..TablePlan::default()
    };
    let Some(live_rows) = live else {
        return plan;
    };
    plan.key_columns = live_rows.key_columns.clone();
    if plan.key_columns.is_empty() {
        plan.whole_table = true;
        return plan;
    }
    let base = match mode {
        Mode::Push { base, .. } | Mode::SincePush { base } => base,
    };
    let mut keys: BTreeSet<&String> = owned_keys(live).collect();
    if !without_base {
        keys.extend(owned_keys(other));
        keys.extend(base.into_iter().flat_map(|b| b.keys()));
    }
    for key in keys {
        let l = live_rows.rows.get(key);
        let o = other.and_then(|t| t.rows.get(key));
        let b = base.and_then(|b| b.get(key));
        let decision = if without_base {
            Decision::TakeLive { kept: l.is_some() }
        } else {
            match mode {
                Mode::Push { on_conflict, .. } => match decide(b, l, o) {
                    Decision::Conflict { staging, live } => {
                        plan.conflicts.push(Conflict {
                            table: plan.table.clone(),
                            key: key.clone(),
                            staging: staging.word().into(),
                            live: live.word().into(),
                        });
                        match on_conflict {
                            OnConflict::LiveWins => Decision::TakeLive { kept: l.is_some() },
                            _ => Decision::Keep,
                        }
                    }
                    d => d,
                },
                Mode::SincePush { .. } => {
                    let changed = Change::of(
                        b.and_then(|b| b.live.as_deref()),
                        l.map(|s| s.hash.as_str()),
                    );
                    if changed == Change::Unchanged {
                        Decision::Keep
                    } else {
                        Decision::TakeLive { kept: l.is_some() }
                    }
                }
            }
        };
        if let Decision::TakeLive { kept } = decision {
            let Some(cells) = l.or(o).map(|s| s.key.clone()) else {
                continue;
            };
            plan.kept += u64::from(kept);
            plan.take.push((cells, l.is_some()));
        }
    }
    plan
}

impl Engine {
    /// Makes the built live's live-owned rows right before the switch. The conflicts are
    /// always reported; with [`OnConflict::Stop`] and conflicts nothing is changed and the
    /// caller must not switch ([`Carried::stops`]). Also returns live's rows as it read them.
    pub(crate) async fn carry_live(
        &self,
        _ctx: &Ctx,
        site: &Site,
        sides: &Sides<'_>,
        built: Built<'_>,
        on_conflict: OnConflict,
    ) -> anyhow::Result<(Carried, SeenLive)> {
        let owned = live_owned::resolve(&self.live_owned(&site.id).await?);
        let base = base::read_base(base::staging_base_path(&self.inner.data_dir, &site.id)).await?;
        let mut seen = SeenLive::new();
        let without_base = base.is_none();
        let mut live = Reader::open(sides.live, sides.live_db).await?;
        let staging = Reader::open(sides.staging, sides.staging_db).await;
        let planned = match staging {
            Ok(mut staging) => {
                let planned = async {
                    let mut plans = Vec::new();
                    for o in &owned {
                        let (l, s) =
                            base::read_pair(&mut live, sides.live, &mut staging, sides.staging, o)
                                .await?;
                        let mode = Mode::Push {
                            base: base.as_ref().and_then(|b| b.tables.get(&o.suffix)),
                            on_conflict,
                        };
                        let table = format!("{}{}", sides.live.config.prefix, o.suffix);
                        plans.push(plan_table(
                            table,
                            l.as_ref(),
                            s.as_ref(),
                            mode,
                            without_base,
                        ));
                        if let Some(l) = l {
                            seen.insert(o.suffix.clone(), l);
                        }
                    }
                    anyhow::Ok(plans)
                }
                .await;
                staging.close().await;
                planned
            }
            Err(e) => Err(e),
        };
        live.close().await;
        let plans = planned?;
        let mut carried = summary(&plans, without_base);
        if carried.stops(on_conflict) {
            carried.kept_from_live.clear();
            return Ok((carried, seen));
        }
        crate::merge_apply::apply_all(sides.live, sides.live_db, built, &plans).await?;
        Ok((carried, seen))
    }
}

pub(crate) fn summary(plans: &[TablePlan], without_base: bool) -> Carried {
    let mut carried = Carried {
        without_base,
        ..Carried::default()
    };
    for p in plans {
        if p.kept > 0 {
            carried.kept_from_live.insert(p.table.clone(), p.kept);
        }
        if p.whole_table && p.on_live {
            carried.whole_tables.push(p.table.clone());
        }
        carried.conflicts.extend(p.conflicts.iter().cloned());
    }
    carried
}

/// How many conflicts a stopped push names in its reason; all are in its details.
#[allow(dead_code)] // the push flow (`push_flow.rs`) stops on conflicts with its own report
const CONFLICTS_NAMED: usize = 5;

impl Engine {
    /// The push's hook between its build and its switch (`switch.rs`): the built live gets
    /// live's rows. When conflicts stop it, the push fails before switching, with a reason
    /// for people that names the first conflicts.
    #[allow(clippy::too_many_arguments)]
    #[allow(dead_code)] // the push flow (`push_flow.rs`) calls carry_live itself
    pub(crate) async fn carry_into_built(
        &self,
        ctx: &Ctx,
        site: &Site,
        sides: &Sides<'_>,
        new_dir: &Path,
        journal_db: &mut crate::journal::JournalDb,
        whole_database: bool,
        on_conflict: OnConflict,
    ) -> anyhow::Result<Carried> {
        let _t = ctx.phase(crate::progress::Step::CopyingDatabase, 0);
        let carried = match (journal_db, sides.live_db) {
            (crate::journal::JournalDb::Mysql { built, .. }, SiteDb::Mysql(_)) => {
                let built = Built::Mysql {
                    tables: built,
                    whole_database,
                };
                self.carry_live(ctx, site, sides, built, on_conflict)
                    .await?
                    .0
            }
            (crate::journal::JournalDb::Sqlite, SiteDb::Sqlite(file)) => {
                let rel = file.strip_prefix(&sides.live.docroot).map_err(|_| {
                    anyhow::anyhow!("live's SQLite database is outside its docroot")
                })?;
                let file = new_dir.join(rel);
                let built = Built::Sqlite {
                    file: &file,
                    whole_database,
                };
                self.carry_live(ctx, site, sides, built, on_conflict)
                    .await?
                    .0
            }
            _ => return Ok(Carried::default()),
        };
        if carried.stops(on_conflict) {
            let named: Vec<String> = carried
                .conflicts
                .iter()
                .take(CONFLICTS_NAMED)
                .map(|c| format!("{} {}", c.table, c.key))
                .collect();
            let more = carried.conflicts.len().saturating_sub(CONFLICTS_NAMED);
            return Err(crate::progress::for_people(format!(
                "Nothing was pushed: staging and live both changed {} row{} that live owns ({}{}). \
                 Push again and choose, for these rows, staging's version or live's.",
                carried.conflicts.len(),
                if carried.conflicts.len() == 1 {
                    ""
                } else {
                    "s"
                },
                named.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                },
            )));
        }
        Ok(carried)
    }
}

impl Carried {
    /// What the activity's details say of the merge: `kept_from_live` (per table),
    /// `conflicts`, and `without_base` when there was no base.
    pub fn into_details(self, details: &mut serde_json::Map<String, serde_json::Value>) {
        use serde_json::json;
        details.insert("kept_from_live".into(), json!(self.kept_total()));
        details.insert("kept_from_live_by_table".into(), json!(self.kept_from_live));
        if !self.conflicts.is_empty() {
            details.insert("conflicts".into(), json!(self.conflicts));
        }
        if self.without_base {
            details.insert("without_base".into(), json!(true));
        }
        if !self.whole_tables.is_empty() {
            details.insert("kept_whole_tables".into(), json!(self.whole_tables));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, hash: &str) -> Seen {
        Seen {
            key: vec![Some(id.as_bytes().to_vec())],
            hash: hash.into(),
            selected: true,
            always_live: false,
        }
    }

    fn base(live: Option<&str>, staging: Option<&str>) -> BaseRow {
        BaseRow {
            live: live.map(Into::into),
            staging: staging.map(Into::into),
            selected: true,
        }
    }

    fn rows(list: &[(&str, &str)]) -> TableRows {
        TableRows {
            key_columns: vec!["ID".into()],
            columns: vec!["ID".into(), "x".into()],
            rows: list
                .iter()
                .map(|(id, h)| (format!("ID={id}"), seen(id, h)))
                .collect(),
        }
    }

    #[test]
    fn changes_are_read_against_the_base() {
        assert_eq!(Change::of(None, None), Change::Unchanged);
        assert_eq!(Change::of(None, Some("a")), Change::Added);
        assert_eq!(Change::of(Some("a"), None), Change::Removed);
        assert_eq!(Change::of(Some("a"), Some("a")), Change::Unchanged);
        assert_eq!(Change::of(Some("a"), Some("b")), Change::Changed);
    }

    #[test]
    fn what_live_gained_is_taken_and_what_only_staging_changed_stays() {
        // Live added a row staging never had.
        assert_eq!(
            decide(None, Some(&seen("9", "l")), None),
            Decision::TakeLive { kept: true }
        );
        // Live changed a row staging left alone (hashes differ by the rewritten URL).
        let b = base(Some("l0"), Some("s0"));
        assert_eq!(
            decide(Some(&b), Some(&seen("1", "l1")), Some(&seen("1", "s0"))),
            Decision::TakeLive { kept: true }
        );
        // Live deleted it (spam): it goes.
        assert_eq!(
            decide(Some(&b), None, Some(&seen("1", "s0"))),
            Decision::TakeLive { kept: false }
        );
        // Nobody changed it: the built copy already is live's row.
        assert_eq!(
            decide(Some(&b), Some(&seen("1", "l0")), Some(&seen("1", "s0"))),
            Decision::Keep
        );
        // Only staging changed or added it.
        assert_eq!(
            decide(Some(&b), Some(&seen("1", "l0")), Some(&seen("1", "s1"))),
            Decision::Keep
        );
        assert_eq!(decide(None, None, Some(&seen("7", "s"))), Decision::Keep);
        // Live had it when staging was made, staging did not (written during the copy):
        // live's version.
        let only_live = base(Some("l0"), None);
        assert_eq!(
            decide(Some(&only_live), Some(&seen("3", "l0")), None),
            Decision::TakeLive { kept: false }
        );
    }

    #[test]
    fn a_row_both_changed_differently_is_a_conflict() {
        let b = base(Some("l0"), Some("s0"));
        assert_eq!(
            decide(Some(&b), Some(&seen("1", "l1")), Some(&seen("1", "s1"))),
            Decision::Conflict {
                staging: Change::Changed,
                live: Change::Changed
            }
        );
        assert_eq!(
            decide(Some(&b), Some(&seen("1", "l1")), None),
            Decision::Conflict {
                staging: Change::Removed,
                live: Change::Changed
            }
        );
        // Both added the same id (a collision the id gap did not prevent).
        assert_eq!(
            decide(None, Some(&seen("5", "order")), Some(&seen("5", "page"))),
            Decision::Conflict {
                staging: Change::Added,
                live: Change::Added
            }
        );
        // The same change on both sides is no conflict.
        assert_eq!(
            decide(Some(&b), Some(&seen("1", "x")), Some(&seen("1", "x"))),
            Decision::Keep
        );
        assert_eq!(decide(Some(&b), None, None), Decision::Keep);
    }

    #[test]
    fn login_sessions_are_lives_and_never_conflict() {
        let b = base(Some("l0"), Some("s0"));
        let mut l = seen("4", "l1");
        l.always_live = true;
        let mut s = seen("4", "s1");
        s.always_live = true;
        assert_eq!(
            decide(Some(&b), Some(&l), Some(&s)),
            Decision::TakeLive { kept: true }
        );
        assert_eq!(
            decide(Some(&b), None, Some(&s)),
            Decision::TakeLive { kept: false }
        );
    }

    #[test]
    fn a_table_plan_names_conflicts_and_each_choice_picks_a_side() {
        let mut b = BTreeMap::new();
        b.insert("ID=1".to_owned(), base(Some("l0"), Some("s0")));
        let live = rows(&[("1", "l1"), ("2", "new")]);
        let staging = rows(&[("1", "s1")]);
        let plan = |on_conflict| {
            plan_table(
                "wp_comments".into(),
                Some(&live),
                Some(&staging),
                Mode::Push {
                    base: Some(&b),
                    on_conflict,
                },
                false,
            )
        };
        let stop = plan(OnConflict::Stop);
        assert_eq!(
            stop.conflicts,
            vec![Conflict {
                table: "wp_comments".into(),
                key: "ID=1".into(),
                staging: "changed".into(),
                live: "changed".into()
            }]
        );
        let keys = |p: &TablePlan| -> Vec<String> {
            p.take
                .iter()
                .map(|(k, _)| String::from_utf8(k[0].clone().unwrap()).unwrap())
                .collect()
        };
        assert_eq!(keys(&stop), vec!["2"]);
        assert_eq!(keys(&plan(OnConflict::StagingWins)), vec!["2"]);
        let live_wins = plan(OnConflict::LiveWins);
        assert_eq!(keys(&live_wins), vec!["1", "2"]);
        assert_eq!(live_wins.kept, 2);
        // Without a base every row of live's is kept, and nothing conflicts.
        let no_base = plan_table(
            "wp_comments".into(),
            Some(&live),
            Some(&staging),
            Mode::Push {
                base: None,
                on_conflict: OnConflict::Stop,
            },
            true,
        );
        assert!(no_base.conflicts.is_empty());
        assert_eq!(keys(&no_base), vec!["1", "2"]);
    }

    #[test]
    fn an_undo_carries_what_live_changed_since_the_push() {
        let mut b = BTreeMap::new();
        b.insert("ID=1".to_owned(), base(Some("a"), None));
        b.insert("ID=2".to_owned(), base(Some("b"), None));
        let live = rows(&[("1", "a"), ("2", "b2"), ("3", "c")]);
        let kept = rows(&[("1", "old")]);
        let plan = plan_table(
            "wp_posts".into(),
            Some(&live),
            Some(&kept),
            Mode::SincePush { base: Some(&b) },
            false,
        );
        let keys: Vec<String> = plan
            .take
            .iter()
            .map(|(k, _)| String::from_utf8(k[0].clone().unwrap()).unwrap())
            .collect();
        assert_eq!(keys, vec!["2", "3"]);
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn the_catch_up_plans_what_the_replaced_live_did_after_the_merge_read_it() {
        let seen = rows(&[("1", "a"), ("2", "b"), ("3", "c")]);
        // After the merge: 2 changed, 3 removed, 4 added; 1 as the merge saw it.
        let now = rows(&[("1", "a"), ("2", "b2"), ("4", "d")]);
        let since = base::table_base(Some(&seen), None);
        let plan = plan_table(
            "wp_posts".into(),
            Some(&now),
            Some(&seen),
            Mode::SincePush { base: Some(&since) },
            false,
        );
        let taken: Vec<(String, bool)> = plan
            .take
            .iter()
            .map(|(k, there)| (String::from_utf8(k[0].clone().unwrap()).unwrap(), *there))
            .collect();
        assert_eq!(
            taken,
            vec![("2".into(), true), ("3".into(), false), ("4".into(), true)]
        );
    }
}
