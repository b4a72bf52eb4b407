//! What a push to live is asked to do, and what it reports: its scope, what happens to rows
//! that both staging and live changed, the preview it confirms; the report a preview or a
//! push writes into its activity's details; the undo window a push leaves.

use serde::{Deserialize, Serialize};
use sitetrail_core::{ActivityId, Timestamp};

/// What a push (or a restore of live) replaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushScope {
    /// Files and database.
    #[default]
    Site,
    /// The database only; live's files are left alone.
    Database,
    /// Files only; live's database is left alone.
    Files,
    /// The chosen tables only ([`Push::tables`]); everything else is left alone.
    Tables,
    /// The chosen folders only ([`Push::folders`]); everything else is left alone.
    Folders,
}

impl PushScope {
    /// The word the API and the command line use.
    pub fn as_str(self) -> &'static str {
        match self {
            PushScope::Site => "site",
            PushScope::Database => "database",
            PushScope::Files => "files",
            PushScope::Tables => "tables",
            PushScope::Folders => "folders",
        }
    }

    pub fn parse(s: &str) -> Option<PushScope> {
        [
            PushScope::Site,
            PushScope::Database,
            PushScope::Files,
            PushScope::Tables,
            PushScope::Folders,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// Whether the scope replaces (some of) the database.
    pub fn touches_database(self) -> bool {
        matches!(
            self,
            PushScope::Site | PushScope::Database | PushScope::Tables
        )
    }

    /// Whether the scope replaces (some of) the files.
    pub fn touches_files(self) -> bool {
        matches!(
            self,
            PushScope::Site | PushScope::Files | PushScope::Folders
        )
    }
}

/// Rows that staging and live both changed since staging was made (the same key in a table
/// live owns): the push stops before switching, or one side wins for this push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Stop before anything changes and report the conflicts.
    #[default]
    Stop,
    /// Staging's version of each conflicting row goes live.
    StagingWins,
    /// Live keeps its version of each conflicting row.
    LiveWins,
}

impl OnConflict {
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Stop => "stop",
            OnConflict::StagingWins => "staging_wins",
            OnConflict::LiveWins => "live_wins",
        }
    }

    pub fn parse(s: &str) -> Option<OnConflict> {
        [
            OnConflict::Stop,
            OnConflict::StagingWins,
            OnConflict::LiveWins,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// A push of staging to live, or its preview (a dry run of the same push).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    pub scope: PushScope,
    /// With [`PushScope::Tables`]: the tables, named without a prefix (`posts`,
    /// `wc_orders`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// With [`PushScope::Folders`]: folders relative to the docroot
    /// (`wp-content/themes/shop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<String>,
    /// Keep staging after the push (by default it is removed).
    #[serde(default)]
    pub keep_staging: bool,
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// The preview this push confirms: when live has changed since, the push stops before
    /// switching and reports the new preview instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<ActivityId>,
}

impl Push {
    /// A push of the whole site with the defaults.
    pub fn site() -> Push {
        Push::default()
    }

    pub fn scoped(scope: PushScope) -> Push {
        Push {
            scope,
            ..Push::default()
        }
    }
}

/// What a preview (and the push after it) does, written into the activity's details as
/// `details.preview`. A push's own report equals its preview's when live has not changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// Per table of the new live, against live now.
    pub tables: Vec<TableChange>,
    /// Rows of the tables live owns that live added or changed since staging was made and
    /// that are carried into the new live.
    pub kept_from_live: u64,
    pub conflicts: Vec<Conflict>,
    pub files: FilesChange,
    /// Cells whose URL was rewritten.
    pub url_rewrites: u64,
    /// Cells left as they were because their column cannot take the rewritten value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_cells: Vec<SkippedCell>,
    /// What live was when this was measured: a push confirming a preview stops when it
    /// differs.
    pub live_fingerprint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    /// The table's name in live (with live's prefix).
    pub table: String,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// Rows live added or changed since staging was made, kept.
    pub kept_from_live: u64,
}

/// One row that staging and live both changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The table's name in live.
    pub table: String,
    /// The row's key as `column=value` pairs (`ID=123`).
    pub key: String,
    /// `added`, `changed` or `removed` on each side.
    pub staging: String,
    pub live: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesChange {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub bytes_added: u64,
    pub bytes_changed: u64,
    pub bytes_removed: u64,
    /// The first files of each kind (at most [`FILES_LISTED`]), for people to read.
    pub list: Vec<FileChange>,
}

/// How many changed files a report names one by one.
pub const FILES_LISTED: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Relative to the docroot.
    pub path: String,
    /// `added`, `changed` or `removed`.
    pub change: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCell {
    pub table: String,
    pub column: String,
    pub key: String,
    pub reason: String,
}

/// The push live can go back on: its replaced live is kept until `until` or the next push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoWindow {
    /// The push (or, with `puts_push_back`, the undo) that left the window.
    pub push: ActivityId,
    pub pushed_at: Timestamp,
    pub until: Timestamp,
    /// The last push was undone: undoing again puts it back.
    #[serde(default)]
    pub puts_push_back: bool,
}

/// The tables (and rows) live owns on a site: the profile sitetrail ships, and what the
/// partner or the site's users added to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveOwned {
    pub shipped: Vec<OwnedTable>,
    /// Tables added for this site, named without a prefix.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedTable {
    /// Named without a prefix (`comments`, `wc_orders`).
    pub table: String,
    /// What it holds, for people (`WooCommerce orders`).
    pub holds: String,
    /// When only some rows are live's: which (`shop_order posts`); none: the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
}
