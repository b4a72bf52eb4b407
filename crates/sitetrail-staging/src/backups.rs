//! Backups and templates: snapshots of an environment (its database and its files), written
//! in a private staging area and published in one rename.

use std::path::{Path, PathBuf};

use serde_json::json;
use sitetrail_core::{
    ActivityId, ActivityKind, Actor, NewActivity, Site, SiteUrl, Status, TemplateId, Timestamp,
};

use crate::blocking;
use crate::confined;
use crate::copy::DbStats;
use crate::db::SiteDb;
use crate::operations::{Ctx, Engine, Env};
use crate::progress::{self, Step};
use crate::snapshot::{self, BackupReason, Manifest, SnapshotKind};
use crate::tree::{self, TreeStats};
use crate::wpconfig;

impl Engine {
    /// The backup a destructive operation takes of its target first, logged as an activity
    /// of its own (by the system) that names the operation it came before.
    pub(crate) async fn automatic_backup(
        &self,
        ctx: &Ctx,
        site: &Site,
        env: &Env,
        db: &SiteDb,
    ) -> anyhow::Result<Manifest> {
        let description = format!(
            "Automatic backup of {} before {}",
            env.which,
            ctx.kind.label()
        );
        let new = NewActivity {
            id: None,
            account_id: site.account_id.clone(),
            site_id: site.id.clone(),
            environment: env.which,
            activity: ActivityKind::CreateBackup,
            actor: Actor::system(),
            description: description.clone(),
            status: Status::InProgress,
            created_at: None,
            completed_at: None,
            error: None,
            details: json!({"reason": "automatic", "before": ctx.activity})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let activity = self.inner.store.record(vec![new]).await?.remove(0).activity;
        let r = self
            .backup(
                ctx,
                site,
                env,
                db,
                BackupReason::Automatic,
                (&activity.id, activity.created_at),
            )
            .await;
        match &r {
            Ok(m) => {
                self.end(
                    &activity.id,
                    Status::Completed,
                    format!("{description}: {}", m.id),
                    None,
                    Some(
                        json!({"backup": m.id, "files": m.files, "database": m.database})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    ),
                )
                .await;
            }
            Err(e) => {
                let step = ctx.progress.borrow().phase.clone();
                let reason = progress::failure_reason(
                    e,
                    ActivityKind::CreateBackup,
                    env.which,
                    &step,
                    false,
                );
                self.end(
                    &activity.id,
                    Status::Failed,
                    description,
                    Some(reason),
                    None,
                )
                .await;
            }
        }
        r
    }

    pub(crate) async fn backup(
        &self,
        ctx: &Ctx,
        site: &Site,
        env: &Env,
        db: &SiteDb,
        reason: BackupReason,
        (activity, at): (&ActivityId, Timestamp),
    ) -> anyhow::Result<Manifest> {
        // A backup is of the moment its activity started (its database is read first), and
        // that is the one time shown for it, in the backups list as in the log.
        let id = snapshot::new_backup_id(env.which, at);
        let dir = self.staging_area(id.to_string()).await?;
        let result = async {
            let (db_sha, db_bytes, db_stats) = {
                let total = match db {
                    SiteDb::Mysql(my) => my.count_rows(&env.config.prefix).await?,
                    // Copied as one file: nothing to count.
                    SiteDb::Sqlite(_) => 0,
                };
                let _t = ctx.phase(Step::BackingUpDatabase(env.which), total);
                dump(&env.docroot, db, &env.config.prefix, &dir, &|n| {
                    ctx.advance(n)
                })
                .await?
            };
            let (files_sha, files, files_tar_bytes) = {
                let _t = ctx.phase(Step::BackingUpFiles(env.which), 0);
                pack(&env.docroot, &dir).await?
            };
            let m = Manifest {
                version: 1,
                kind: SnapshotKind::Backup,
                id: id.to_string(),
                site_id: Some(site.id.clone()),
                environment: Some(env.which),
                reason,
                source_url: env.url.to_string(),
                table_prefix: env.config.prefix.clone(),
                created_at: at,
                files_sha256: files_sha,
                files_tar_bytes,
                files,
                database_sha256: db_sha,
                database_bytes: db_bytes,
                database: db_stats,
                database_kind: db.kind(),
                name: None,
                activity: Some(activity.clone()),
            };
            self.publish(&dir, self.inner.snapshots.backup_dir(&site.id, &id), &m)
                .await?;
            anyhow::Ok(m)
        }
        .await;
        if result.is_err() {
            discard(dir).await;
        }
        result
    }

    /// Imports a template from an existing WordPress docroot, its id its name.
    pub async fn import_template(
        &self,
        id: &TemplateId,
        docroot: &Path,
        url: &SiteUrl,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<Manifest> {
        self.import_named_template(id.as_str(), Some(id), docroot, url, progress)
            .await
    }

    /// Imports a template from an existing WordPress docroot under a name for people (free
    /// text, see [`snapshot::template_name`]) and an id (made from the name when none is
    /// given).
    pub async fn import_named_template(
        &self,
        name: &str,
        id: Option<&TemplateId>,
        docroot: &Path,
        url: &SiteUrl,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<Manifest> {
        let display = snapshot::template_name(name).map_err(crate::progress::for_people)?;
        let id = id
            .cloned()
            .unwrap_or_else(|| snapshot::template_id_for(&display));
        let name = &id;
        let target = self.inner.snapshots.template_dir(name);
        let (t, d, n) = (target.clone(), docroot.to_owned(), name.clone());
        let config = blocking(move || {
            if t.exists() {
                return Err(crate::progress::for_people(format!(
                    "A template with the id {n} exists already; choose another name or id."
                )));
            }
            wpconfig::read(&d)
        })
        .await?;
        let db = SiteDb::connect(&config, &self.inner.databases).await?;
        let dir = self.staging_area(format!("template-{name}")).await?;
        let result = async {
            progress("database");
            let (db_sha, db_bytes, db_stats) =
                dump(docroot, &db, &config.prefix, &dir, &|_| {}).await?;
            progress("files");
            let (files_sha, files, files_tar_bytes) = pack(docroot, &dir).await?;
            let m = Manifest {
                version: 1,
                kind: SnapshotKind::Template,
                id: name.to_string(),
                site_id: None,
                environment: None,
                reason: BackupReason::Template,
                source_url: url.to_string(),
                table_prefix: config.prefix.clone(),
                created_at: Timestamp::now(),
                files_sha256: files_sha,
                files_tar_bytes,
                files,
                database_sha256: db_sha,
                database_bytes: db_bytes,
                database: db_stats,
                database_kind: db.kind(),
                name: Some(display.clone()),
                activity: None,
            };
            self.publish(&dir, target, &m).await?;
            anyhow::Ok(m)
        }
        .await;
        db.disconnect().await;
        if result.is_err() {
            discard(dir).await;
        }
        result
    }

    /// A new, empty directory in the snapshots' staging area.
    async fn staging_area(&self, tag: String) -> anyhow::Result<PathBuf> {
        let snapshots = self.inner.snapshots.clone();
        blocking(move || snapshots.staging_area(&tag)).await
    }

    /// Writes the manifest into a finished snapshot and moves it into place.
    async fn publish(&self, dir: &Path, to: PathBuf, m: &Manifest) -> anyhow::Result<()> {
        let (snapshots, dir, m) = (self.inner.snapshots.clone(), dir.to_owned(), m.clone());
        blocking(move || {
            snapshot::write_manifest(&dir, &m)?;
            snapshots.publish(&dir, &to)
        })
        .await
    }
}

/// Dumps an environment's database into a snapshot directory. A SQLite database is read
/// pinned (see `confined::PinnedFile`), so that a link put in the docroot since the
/// configuration was read is not followed.
async fn dump(
    docroot: &Path,
    db: &SiteDb,
    prefix: &str,
    dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<(String, u64, DbStats)> {
    match db {
        SiteDb::Mysql(_) => db.dump(prefix, dir, progress).await,
        SiteDb::Sqlite(file) => {
            let (docroot, file) = (docroot.to_owned(), file.clone());
            let pin = blocking(move || confined::PinnedFile::new(&docroot, &file)).await?;
            let dumped = SiteDb::Sqlite(pin.path().to_owned())
                .dump(prefix, dir, progress)
                .await;
            blocking(move || {
                drop(pin);
                Ok(())
            })
            .await?;
            dumped
        }
    }
}

/// Packs an environment's files into a snapshot directory: their SHA-256, what they hold and
/// the size of the archive.
async fn pack(docroot: &Path, dir: &Path) -> anyhow::Result<(String, TreeStats, u64)> {
    let (src, out) = (docroot.to_owned(), dir.join(snapshot::FILES));
    blocking(move || {
        let (sha, stats) = tree::pack(&src, &out)?;
        Ok((sha, stats, std::fs::metadata(&out)?.len()))
    })
    .await
}

/// Removes what a failed snapshot left in the staging area.
async fn discard(dir: PathBuf) {
    let _ = blocking(move || Ok(std::fs::remove_dir_all(dir)?)).await;
}
