//! Recovery after a crash: every operation whose lock was abandoned is ended as failed
//! ("interrupted"), and what its journal says it had done is undone.

use sitetrail_core::{ActivityId, ActivityKind, SiteId, Status, StoredActivity};

use crate::blocking;
use crate::db::SiteDb;
use crate::journal::{Journal, JournalDb, Phase, TempPrefix};
use crate::lock;
use crate::mysql::MysqlDb;
use crate::operations::Engine;
use crate::tree;
use crate::wpconfig;

impl Engine {
    /// After a crash: every operation whose lock was abandoned is ended as failed
    /// ("interrupted") and its half-built work is undone, or, where the switch had finished,
    /// cleaned up. Returns the activities it ended.
    pub async fn recover(&self) -> anyhow::Result<Vec<StoredActivity>> {
        let (snapshots, data_dir) = (self.inner.snapshots.clone(), self.inner.data_dir.clone());
        // The locks of the sites whose operation died with its process, each with the
        // activity it names; held until that activity is ended.
        let abandoned = blocking(move || {
            snapshots.clean_incoming();
            let dir = lock::lock_dir(&data_dir);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut abandoned = Vec::new();
            for entry in entries {
                let name = entry?.file_name().to_string_lossy().into_owned();
                let Some(site) = name
                    .strip_suffix(".lock")
                    .and_then(|s| SiteId::parse(s).ok())
                else {
                    continue;
                };
                if let Some((lock, Some(activity))) = lock::abandoned(&data_dir, &site)? {
                    abandoned.push((lock, activity));
                }
            }
            Ok(abandoned)
        })
        .await?;
        let mut ended = Vec::new();
        for (_lock, activity) in abandoned {
            let note = self.recover_journal(&activity).await;
            if let Ok(Some(a)) = self.inner.store.activity(&activity).await
                && a.status == Status::InProgress
            {
                let error = match note {
                    Ok(n) => format!("interrupted: the operation stopped when its server did; {n}"),
                    Err(e) => {
                        tracing::error!(activity = %activity, error = format!("{e:#}"), "recovering an interrupted operation failed");
                        "interrupted: the operation stopped when its server did, and putting the \
                         environment back as it was did not finish. Contact support."
                            .to_owned()
                    }
                };
                ended.push(
                    self.end(
                        &activity,
                        Status::Failed,
                        format!("{} was interrupted", a.activity.label()),
                        Some(error),
                        None,
                    )
                    .await,
                );
                // The automatic backup it was taking first is an activity of its own.
                for backup in self.running_backups_before(&a).await? {
                    ended.push(
                        self.end(
                            &backup.id,
                            Status::Failed,
                            format!("{} was interrupted", backup.description),
                            Some(
                                "interrupted: the backup stopped when its server did; the \
                                 operation it came before did not start"
                                    .into(),
                            ),
                            None,
                        )
                        .await,
                    );
                }
            }
        }
        Ok(ended)
    }

    /// The automatic backups still `in_progress` that were taken before `parent`.
    async fn running_backups_before(
        &self,
        parent: &StoredActivity,
    ) -> anyhow::Result<Vec<StoredActivity>> {
        let scope = sitetrail_store::Scope {
            account: parent.account_id.clone(),
            site: Some(parent.site_id.clone()),
        };
        let filter = sitetrail_core::ActivityFilter {
            activity: Some(ActivityKind::CreateBackup),
            status: Some(Status::InProgress),
            ..Default::default()
        };
        let page = sitetrail_core::Page {
            limit: 200,
            cursor: None,
        };
        let listing = self
            .inner
            .store
            .list(&scope, sitetrail_core::Audience::Internal, &filter, page)
            .await?;
        Ok(listing
            .items
            .into_iter()
            .filter(|b| {
                b.details.get("before").and_then(|v| v.as_str()) == Some(parent.id.as_str())
            })
            .collect())
    }

    /// Undoes what an interrupted operation's journal says it had done, and says what.
    async fn recover_journal(&self, activity: &ActivityId) -> anyhow::Result<String> {
        self.clear_pause(activity).await;
        let Some(journal) = self.read_journal(activity).await? else {
            return Ok("nothing had been changed".into());
        };
        let db = match &journal.database {
            JournalDb::Mysql { .. } => {
                let docroot = journal.docroot.clone();
                let config = blocking(move || wpconfig::read(&docroot)).await?;
                Some(SiteDb::Mysql(
                    MysqlDb::connect(&config, &self.inner.databases).await?,
                ))
            }
            JournalDb::Sqlite | JournalDb::Untouched => None,
        };
        let note = self.undo(&journal, db.as_ref()).await;
        if let Some(db) = db {
            db.disconnect().await;
        }
        let note = note?;
        self.remove_journal(activity).await?;
        Ok(note)
    }

    /// Puts the target back as it was before the operation: a half-built copy is removed;
    /// a switch that had started (or finished) is swapped back, files first, then tables.
    async fn undo(&self, journal: &Journal, db: Option<&SiteDb>) -> anyhow::Result<String> {
        if journal.phase == Phase::Building {
            self.undo_build(journal, db).await;
            return Ok("the environment was left as it was".to_owned());
        }
        let tables_switched = match (db.and_then(SiteDb::mysql), &journal.database) {
            (Some(db), JournalDb::Mysql { switch, .. }) if journal.keeps => {
                // An undo's switch first moves live's tables under its own prefix: it
                // happened when the first of those names exists.
                match switch.first() {
                    Some((_, to)) => db.tables(to).await?.iter().any(|t| t == to),
                    None => false,
                }
            }
            (Some(db), JournalDb::Mysql { switch, .. }) => {
                // The switch renames every table in one statement: it happened when the first
                // table it built aside no longer has its temporary name.
                let old = TempPrefix::old_tables(&journal.activity);
                match switch.iter().find(|(_, to)| !old.holds(to)) {
                    Some((from, _)) => !db.tables(from).await?.iter().any(|t| t == from),
                    None => false,
                }
            }
            _ => false,
        };
        let (docroot, new_dir, new_dir_ino) = (
            journal.docroot.clone(),
            journal.new_dir.clone(),
            journal.new_dir_ino,
        );
        blocking(move || {
            let docroot_ino = std::fs::metadata(&docroot)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
            if new_dir_ino.is_some() && docroot_ino == new_dir_ino {
                // Swap the files back first, then the tables.
                tree::exchange(&docroot, &new_dir)?;
            }
            Ok(())
        })
        .await?;
        if tables_switched && let Some(db) = db.and_then(SiteDb::mysql) {
            db.rename_all(&journal.database.switch_back()).await?;
        }
        if journal.keeps {
            // What it switched in is a kept copy (an undo): it stays kept.
            return Ok("the half-done switch was undone and the environment is as it was".into());
        }
        let mut built = journal.clone();
        built.phase = Phase::Building;
        self.undo_build(&built, db).await;
        self.forget_undo_of(&journal.site, &journal.activity).await;
        Ok("the half-done switch was undone and the environment is as it was".to_owned())
    }
}
