//! The merge of a push: after the new live is built aside and before the switch, the rows of
//! the tables live owns are made right, row by row against the base recorded when staging was
//! made (`base.rs`): what live added or changed is carried over, what staging alone changed
//! goes live, and a row both changed is a conflict.

// The push and undo flows (`operations.rs`, the flow engineer's) call these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use sitetrail_core::Site;

use crate::db::SiteDb;
use crate::operations::{Ctx, Engine, Env};
use crate::push::{Conflict, OnConflict};

/// Both environments of a push, opened.
pub(crate) struct Sides<'a> {
    pub live: &'a Env,
    pub live_db: &'a SiteDb,
    pub staging: &'a Env,
    pub staging_db: &'a SiteDb,
}

/// The new live, built aside.
pub(crate) enum Built<'a> {
    /// MariaDB: the tables built in live's database, `(temp_name, final_name)`.
    Mysql(&'a [(String, String)]),
    /// SQLite: the new database file, inside the new tree.
    Sqlite(&'a Path),
}

/// What the merge did (or, when it stopped, would not do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Carried {
    /// Per table (live's name): rows live added or changed since the base, carried over.
    pub kept_from_live: BTreeMap<String, u64>,
    /// Rows both sides changed. With [`OnConflict::Stop`] nothing was applied.
    pub conflicts: Vec<Conflict>,
    /// No base was recorded (staging was made before bases were): all of live's rows in the
    /// tables live owns were kept.
    pub without_base: bool,
}

impl Carried {
    pub fn kept_total(&self) -> u64 {
        self.kept_from_live.values().sum()
    }
}

impl Engine {
    /// Makes the built live's live-owned rows right before the switch. With
    /// [`OnConflict::Stop`] and conflicts, nothing is changed and the conflicts are returned:
    /// the caller must not switch.
    pub(crate) async fn carry_live(
        &self,
        _ctx: &Ctx,
        _site: &Site,
        _sides: &Sides<'_>,
        _built: Built<'_>,
        _on_conflict: OnConflict,
    ) -> anyhow::Result<Carried> {
        Ok(Carried::default())
    }

    /// For an undo: carries the rows live added or changed since the push (against the base
    /// [`Engine::record_push_base`] recorded) into the kept pre-push tables. No conflict is
    /// possible: the kept copy has not changed since.
    pub(crate) async fn carry_since_push(
        &self,
        _ctx: &Ctx,
        _site: &Site,
        _live: &Env,
        _live_db: &SiteDb,
        _kept: Built<'_>,
    ) -> anyhow::Result<Carried> {
        Ok(Carried::default())
    }
}
