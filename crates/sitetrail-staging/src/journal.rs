//! The operation journal: one file per running operation in the data dir, rewritten at each
//! phase, so that recovery after a crash knows what was built aside and how far the switch
//! came. It names the temporary tables and the new tree by the operation's own names
//! (`TempPrefix`, `Journal::new_dir`), so that nothing has to be found by guessing.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sitetrail_core::{ActivityId, SiteId};

use crate::Engine;
use crate::blocking;

/// How far an operation came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// The new copy is being built aside; the target is untouched.
    Building,
    /// The switch has started: tables, files or both may have been swapped.
    Switching,
    /// Both switches are done; only cleaning up remains.
    Switched,
}

/// One operation's journal: the file switch, common to every site, and what the database
/// switch needs, per kind of database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub activity: ActivityId,
    pub site: SiteId,
    pub phase: Phase,
    /// The target's docroot, and the tree built aside to replace it.
    pub docroot: PathBuf,
    pub new_dir: PathBuf,
    /// The new tree's inode: after the file switch, the docroot has it.
    pub new_dir_ino: Option<u64>,
    pub database: JournalDb,
    /// What is switched in is a kept copy (an undo puts back the live a push replaced):
    /// recovery switches back but removes nothing it names.
    #[serde(default)]
    pub keeps: bool,
}

/// The database part of a journal, one case per kind of database switch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum JournalDb {
    /// MariaDB/MySQL: tables built aside, each with the name it takes at the switch, then
    /// the renames of the switch in order (one `RENAME TABLE`). Recovery connects with the
    /// docroot's `wp-config.php`.
    Mysql {
        built: Vec<(String, String)>,
        switch: Vec<(String, String)>,
    },
    /// WordPress on SQLite: the file is inside the docroot (`wpconfig::read` gives no other),
    /// so the new one is built inside the new tree and switches with the files.
    Sqlite,
    /// A files-only push: the target's database is not touched.
    Untouched,
}

impl JournalDb {
    /// The tables built aside (MariaDB), each with the name it takes at the switch.
    pub fn built(&self) -> &[(String, String)] {
        match self {
            JournalDb::Mysql { built, .. } => built,
            JournalDb::Sqlite | JournalDb::Untouched => &[],
        }
    }

    /// The renames that undo the table switch: each one back, in reverse order.
    pub fn switch_back(&self) -> Vec<(String, String)> {
        match self {
            JournalDb::Mysql { switch, .. } => switch
                .iter()
                .rev()
                .map(|(a, b)| (b.clone(), a.clone()))
                .collect(),
            JournalDb::Sqlite | JournalDb::Untouched => Vec::new(),
        }
    }
}

/// A temporary table prefix of one operation, derived from its activity id: `stn{tag}_` for
/// the tables built aside, `sto{tag}_` for the replaced tables between the switch and the
/// cleanup. Two operations never share one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TempPrefix(String);

impl TempPrefix {
    /// Where the new tables are built.
    pub fn new_tables(activity: &ActivityId) -> Self {
        TempPrefix(format!("stn{}_", tag(activity)))
    }

    /// Where the switch moves the tables it replaces.
    pub fn old_tables(activity: &ActivityId) -> Self {
        TempPrefix(format!("sto{}_", tag(activity)))
    }

    /// Where an undo moves the tables it takes out of live (the push's, put back aside).
    pub fn undone_tables(activity: &ActivityId) -> Self {
        TempPrefix(format!("stu{}_", tag(activity)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `table` under this prefix.
    pub fn apply(&self, table: &str) -> String {
        format!("{}{table}", self.0)
    }

    /// Whether `table` is under this prefix.
    pub fn holds(&self, table: &str) -> bool {
        table.starts_with(&self.0)
    }
}

/// A journal as this release writes it, or as the release before wrote it: an operation
/// that release left half done at an upgrade is undone like any other.
fn parse(bytes: &[u8]) -> anyhow::Result<Journal> {
    match serde_json::from_slice::<Journal>(bytes) {
        Ok(j) => Ok(j),
        Err(e) => serde_json::from_slice::<EarlierJournal>(bytes)
            .ok()
            .and_then(EarlierJournal::into_journal)
            .ok_or(e)
            .context("a damaged operation journal"),
    }
}

/// The journal of the release before: the database's kind was told by `db_name` (MySQL when
/// set); a SQLite database outside the docroot (`sqlite_new`) is no longer supported.
#[derive(Deserialize)]
struct EarlierJournal {
    activity: ActivityId,
    site: SiteId,
    phase: Phase,
    docroot: PathBuf,
    new_dir: PathBuf,
    new_dir_ino: Option<u64>,
    db_name: Option<String>,
    #[serde(default)]
    built: Vec<(String, String)>,
    #[serde(default)]
    switch: Vec<(String, String)>,
    #[serde(default)]
    sqlite_new: Option<PathBuf>,
}

impl EarlierJournal {
    fn into_journal(self) -> Option<Journal> {
        if self.sqlite_new.is_some() {
            return None;
        }
        let database = match self.db_name {
            Some(_) => JournalDb::Mysql {
                built: self.built,
                switch: self.switch,
            },
            // A SQLite database inside the docroot switched with the files; a files-only push
            // touched no database: recovery does the same for both.
            None => JournalDb::Untouched,
        };
        Some(Journal {
            activity: self.activity,
            site: self.site,
            phase: self.phase,
            docroot: self.docroot,
            new_dir: self.new_dir,
            new_dir_ino: self.new_dir_ino,
            database,
            keeps: false,
        })
    }
}

/// The name of the tree an operation builds beside the docroot it replaces.
pub(crate) fn new_dir(docroot: &Path, activity: &ActivityId) -> anyhow::Result<PathBuf> {
    crate::tree::sibling(docroot, &format!("new-{}", tag(activity)))
}

/// A short tag of an activity id for the names an operation makes.
fn tag(activity: &ActivityId) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(activity.as_str().as_bytes())[..3])
}

impl Engine {
    pub(crate) fn journal_path(&self, activity: &ActivityId) -> PathBuf {
        self.inner
            .data_dir
            .join("operations")
            .join(format!("{activity}.json"))
    }

    /// Writes the journal beside its file, then renames it over: a crash leaves the old one
    /// or the new one, never half of one.
    pub(crate) async fn write_journal(&self, j: &Journal) -> anyhow::Result<()> {
        let path = self.journal_path(&j.activity);
        let bytes = serde_json::to_vec_pretty(j)?;
        blocking(move || {
            sitetrail_store::private::create_dir(path.parent().expect("has a parent"))?;
            let tmp = path.with_extension("tmp");
            sitetrail_store::private::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })
        .await
    }

    /// The journal of an operation that did not end, if it wrote one.
    pub(crate) async fn read_journal(
        &self,
        activity: &ActivityId,
    ) -> anyhow::Result<Option<Journal>> {
        let path = self.journal_path(activity);
        let bytes = blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await?;
        bytes.map(|bytes| parse(&bytes)).transpose()
    }

    /// Removes an operation's journal once nothing is left to undo.
    pub(crate) async fn remove_journal(&self, activity: &ActivityId) -> anyhow::Result<()> {
        let path = self.journal_path(activity);
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operations_prefixes_are_its_own_and_tell_its_tables_apart() {
        let (a, b) = (ActivityId::generate(), ActivityId::generate());
        let (new, old) = (TempPrefix::new_tables(&a), TempPrefix::old_tables(&a));
        assert_ne!(new, TempPrefix::new_tables(&b));
        assert_ne!(new.as_str(), old.as_str());
        assert!(new.holds(&new.apply("wp_options")));
        assert!(!old.holds(&new.apply("wp_options")));
        assert!(!old.holds("wp_options"));
    }

    #[test]
    fn a_journal_says_its_database_kind_and_how_to_switch_back() {
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let j = Journal {
            activity: ActivityId::generate(),
            site: SiteId::parse("shop").unwrap(),
            phase: Phase::Switching,
            docroot: "/srv/live".into(),
            new_dir: "/srv/.live.aside-new-abc".into(),
            new_dir_ino: Some(7),
            database: JournalDb::Mysql {
                built: vec![pair("stnabc_wp_options", "wp_options")],
                switch: vec![
                    pair("wp_options", "stoabc_wp_options"),
                    pair("stnabc_wp_options", "wp_options"),
                ],
            },
            keeps: false,
        };
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains(r#""kind":"mysql""#), "{text}");
        let back: Journal = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.database.switch_back(),
            vec![
                pair("wp_options", "stnabc_wp_options"),
                pair("stoabc_wp_options", "wp_options"),
            ]
        );
        let files_only = serde_json::to_string(&JournalDb::Untouched).unwrap();
        assert_eq!(files_only, r#"{"kind":"untouched"}"#);
    }

    #[test]
    fn a_journal_the_release_before_wrote_is_read_and_one_it_cannot_undo_is_damaged() {
        let activity = ActivityId::generate();
        let earlier = |db_name: &str, sqlite_new: &str| {
            format!(
                r#"{{"activity":"{activity}","site":"shop","phase":"switching",
                "docroot":"/srv/live","new_dir":"/srv/.live.aside-new-abc","new_dir_ino":7,
                "db_name":{db_name},"config":{{"docroot_config":"/srv/live"}},
                "built":[["stnabc_wp_options","wp_options"]],
                "switch":[["wp_options","stoabc_wp_options"],["stnabc_wp_options","wp_options"]],
                "sqlite_new":{sqlite_new},"sqlite_target":null,"sqlite_new_ino":null}}"#
            )
        };
        let mysql = parse(earlier(r#""wp_live""#, "null").as_bytes()).unwrap();
        assert_eq!(mysql.phase, Phase::Switching);
        assert_eq!(mysql.new_dir_ino, Some(7));
        assert_eq!(
            mysql.database.switch_back(),
            vec![
                ("wp_options".to_owned(), "stnabc_wp_options".to_owned()),
                ("stoabc_wp_options".to_owned(), "wp_options".to_owned()),
            ]
        );
        let files = parse(earlier("null", "null").as_bytes()).unwrap();
        assert!(matches!(files.database, JournalDb::Untouched));
        let outside = parse(earlier("null", r#""/srv/db/.ht.new""#).as_bytes()).unwrap_err();
        assert!(format!("{outside:#}").contains("damaged"), "{outside:#}");
        assert!(parse(b"{}").is_err());
    }
}
