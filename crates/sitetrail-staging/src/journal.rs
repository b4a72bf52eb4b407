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
        bytes
            .map(|bytes| serde_json::from_slice(&bytes).context("a damaged operation journal"))
            .transpose()
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
}
