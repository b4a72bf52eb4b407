//! The staging operations, each logged from start to end through the store.
//!
//! Every operation replaces one environment (the target) with another copy (the source: the
//! other environment, a backup or a template). The new copy is built aside (tables under a
//! temporary name, files in a sibling directory), then switched in: one `RENAME TABLE` for
//! all tables, one `renameat2(RENAME_EXCHANGE)` for the files. A journal in the data dir
//! records each phase, so that recovery after a crash can undo a half-done switch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use php_serial::UrlRewrite;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sitetrail_core::{
    ActivityId, ActivityKind, Actor, BackupId, Ending, Environment, NewActivity, Site, SiteId,
    SiteUrl, Status, StoredActivity, TemplateId, Timestamp,
};
use sitetrail_store::DynStore;
use tokio::sync::watch;

use crate::confined;
use crate::copy::{self, DbStats, Rewrite};
use crate::db::{self, SiteDb};
use crate::lock;
use crate::mysql::MysqlDb;
use crate::policy::DatabasePolicy;
use crate::snapshot::{self, BackupReason, Manifest, SnapshotKind, Snapshots};
use crate::tree::{self, TreeStats};
use crate::wpconfig::{self, WpConfig};

/// How long a new operation waits for the lock of one whose end is already in the log.
const ENDED_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What to do to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    CreateStaging,
    ResetFromTemplate(TemplateId),
    ResetFromBackup(BackupId),
    PushToLive {
        scope: PushScope,
        keep_staging: bool,
    },
    Backup {
        environment: Environment,
        reason: BackupReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushScope {
    /// Files and database.
    Site,
    /// Files only; live's database is left alone.
    Files,
}

impl Operation {
    pub fn kind(&self) -> ActivityKind {
        match self {
            Operation::CreateStaging => ActivityKind::CreateStaging,
            Operation::ResetFromTemplate(_) => ActivityKind::ResetStagingFromTemplate,
            Operation::ResetFromBackup(_) => ActivityKind::ResetStagingFromBackup,
            Operation::PushToLive { .. } => ActivityKind::PushStagingToLive,
            Operation::Backup { .. } => ActivityKind::CreateBackup,
        }
    }

    /// The environment the operation changes (or, for a backup, reads).
    pub fn target(&self) -> Environment {
        match self {
            Operation::PushToLive { .. } => Environment::Live,
            Operation::Backup { environment, .. } => *environment,
            _ => Environment::Staging,
        }
    }

    fn running(&self) -> String {
        match self {
            Operation::CreateStaging => "Creating the staging environment from live".into(),
            Operation::ResetFromTemplate(t) => format!("Resetting staging from the template {t}"),
            Operation::ResetFromBackup(b) => format!("Resetting staging from the backup {b}"),
            Operation::PushToLive {
                scope: PushScope::Site,
                ..
            } => "Pushing staging to live (database and files)".into(),
            Operation::PushToLive {
                scope: PushScope::Files,
                ..
            } => "Pushing staging to live (files only)".into(),
            Operation::Backup {
                environment,
                reason,
            } => match reason {
                BackupReason::Daily => format!("Daily backup of {environment}"),
                BackupReason::Automatic => format!("Automatic backup of {environment}"),
                _ => format!("Manual backup of {environment}"),
            },
        }
    }

    fn details(&self) -> Map<String, Value> {
        let v = match self {
            Operation::CreateStaging => json!({"source": "live"}),
            Operation::ResetFromTemplate(t) => json!({"template": t}),
            Operation::ResetFromBackup(b) => json!({"backup": b}),
            Operation::PushToLive {
                scope,
                keep_staging,
            } => {
                json!({"scope": scope, "keep_staging": keep_staging})
            }
            Operation::Backup {
                environment,
                reason,
            } => {
                json!({"environment": environment, "reason": reason})
            }
        };
        v.as_object().cloned().unwrap_or_default()
    }
}

/// How far a running operation has come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

/// Refusals before anything starts: the request itself is wrong.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sitetrail_store::StoreError> for EngineError {
    fn from(e: sitetrail_store::StoreError) -> Self {
        EngineError::Internal(anyhow::anyhow!(e))
    }
}

/// An operation that has been logged: running, or already failed when it was refused.
pub struct Started {
    pub activity: StoredActivity,
    pub progress: watch::Receiver<Progress>,
    pub finished: tokio::task::JoinHandle<StoredActivity>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    data_dir: PathBuf,
    snapshots: Snapshots,
    /// The database servers sites may use, and the admin connection.
    databases: DatabasePolicy,
}

/// One environment, resolved: its URL, docroot and database settings.
struct Env {
    which: Environment,
    url: SiteUrl,
    docroot: PathBuf,
    config: WpConfig,
}

enum Source<'a> {
    Env(&'a Env, &'a SiteDb),
    Snapshot(&'a Path, &'a Manifest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    activity: ActivityId,
    site: SiteId,
    phase: Phase,
    docroot: PathBuf,
    new_dir: PathBuf,
    /// The new tree's inode: after the file switch, the docroot has it.
    new_dir_ino: Option<u64>,
    db_name: Option<String>,
    config: Option<JournalDb>,
    /// Tables built aside, each with the name it takes at the switch.
    built: Vec<(String, String)>,
    /// The renames of the table switch, in order.
    switch: Vec<(String, String)>,
    /// A SQLite database kept outside the docroot: built beside it, swapped in.
    #[serde(default)]
    sqlite_new: Option<PathBuf>,
    #[serde(default)]
    sqlite_target: Option<PathBuf>,
    #[serde(default)]
    sqlite_new_ino: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JournalDb {
    docroot_config: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Building,
    Switching,
    Switched,
}

/// The running operation's context: progress and the time each phase took.
struct Ctx {
    activity: ActivityId,
    /// What the operation is (an automatic backup names it).
    kind: ActivityKind,
    progress: watch::Sender<Progress>,
    phases: Mutex<Vec<(String, u128)>>,
}

impl Ctx {
    fn phase(&self, name: &str, total: u64) -> PhaseTimer<'_> {
        self.progress.send_replace(Progress {
            phase: name.to_owned(),
            done: 0,
            total,
        });
        PhaseTimer {
            ctx: self,
            name: name.to_owned(),
            start: Instant::now(),
        }
    }

    /// The time each phase took so far, for the activity's details.
    fn phase_details(&self) -> Map<String, Value> {
        let phases: Map<String, Value> = self
            .phases
            .lock()
            .map(|p| p.iter().map(|(k, ms)| (k.clone(), json!(ms))).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        out.insert("phases_ms".into(), Value::Object(phases));
        out
    }

    fn advance(&self, n: u64) {
        self.progress.send_modify(|p| p.done += n);
    }
}

struct PhaseTimer<'a> {
    ctx: &'a Ctx,
    name: String,
    start: Instant,
}

impl Drop for PhaseTimer<'_> {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_millis();
        if let Ok(mut p) = self.ctx.phases.lock() {
            p.push((std::mem::take(&mut self.name), ms));
        }
    }
}

/// What a finished operation reports.
struct Outcome {
    description: String,
    details: Map<String, Value>,
}

fn tag(activity: &ActivityId) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(activity.as_str().as_bytes())[..3])
}

impl Engine {
    pub fn new(store: DynStore, data_dir: &Path, databases: DatabasePolicy) -> Self {
        Engine {
            inner: Arc::new(Inner {
                store,
                data_dir: data_dir.to_owned(),
                snapshots: Snapshots::new(data_dir),
                databases,
            }),
        }
    }

    pub fn snapshots(&self) -> &Snapshots {
        &self.inner.snapshots
    }

    /// Logs the operation as `in_progress` and runs it in the background; or, when another
    /// operation holds the site, logs it as failed with the reason.
    pub async fn start(
        &self,
        site: &SiteId,
        op: Operation,
        actor: Actor,
    ) -> Result<Started, EngineError> {
        let inner = &self.inner;
        let site = inner
            .store
            .site(site)
            .await?
            .ok_or_else(|| EngineError::NotFound("no such site".into()))?;
        self.check(&site, &op)?;
        let new = NewActivity {
            id: None,
            account_id: site.account_id.clone(),
            site_id: site.id.clone(),
            environment: op.target(),
            activity: op.kind(),
            actor: actor.clone(),
            description: op.running(),
            status: Status::InProgress,
            created_at: None,
            completed_at: None,
            error: None,
            details: op.details(),
        };
        let activity = inner.store.record(vec![new]).await?.remove(0).activity;
        let (tx, rx) = watch::channel(Progress::default());
        let lock = match self.lock(&site.id, &activity.id).await {
            Ok(Ok(lock)) => lock,
            Ok(Err(holder)) => {
                let reason = self.refusal(holder).await;
                let ended = self
                    .end(
                        &activity.id,
                        Status::Failed,
                        op.running(),
                        Some(reason),
                        None,
                    )
                    .await;
                return Ok(Started {
                    activity: ended.clone(),
                    progress: rx,
                    finished: tokio::spawn(async move { ended }),
                });
            }
            Err(e) => {
                let ended = self
                    .end(
                        &activity.id,
                        Status::Failed,
                        op.running(),
                        Some(public_reason(&e)),
                        None,
                    )
                    .await;
                return Ok(Started {
                    activity: ended.clone(),
                    progress: rx,
                    finished: tokio::spawn(async move { ended }),
                });
            }
        };
        let engine = self.clone();
        let id = activity.id.clone();
        let finished = tokio::spawn(async move {
            let ctx = Ctx {
                activity: id.clone(),
                kind: activity.activity,
                progress: tx,
                phases: Mutex::new(Vec::new()),
            };
            let result = engine.run(&ctx, &site, &op).await;
            let ended = match result {
                Ok(outcome) => {
                    tracing::info!(activity = %id, details = ?outcome.details, "operation completed");
                    engine
                        .end(
                            &id,
                            Status::Completed,
                            outcome.description,
                            None,
                            Some(outcome.details),
                        )
                        .await
                }
                Err(e) => {
                    tracing::warn!(activity = %id, error = ?e, "operation failed");
                    engine
                        .end(
                            &id,
                            Status::Failed,
                            format!("{} failed", op.kind().label()),
                            Some(public_reason(&e)),
                            Some(ctx.phase_details()),
                        )
                        .await
                }
            };
            drop(lock);
            ended
        });
        Ok(Started {
            activity,
            progress: rx,
            finished,
        })
    }

    /// What the request names must exist before anything is logged.
    fn check(&self, site: &Site, op: &Operation) -> Result<(), EngineError> {
        let needs_docroot = |which: Environment| -> Result<(), EngineError> {
            let spec = match which {
                Environment::Live => Some(&site.live),
                Environment::Staging => site.staging.as_ref(),
            };
            match spec {
                None => Err(EngineError::Invalid(format!(
                    "the site has no {which} environment registered"
                ))),
                Some(s) if s.docroot.is_none() => Err(EngineError::Invalid(format!(
                    "the site's {which} environment has no docroot registered"
                ))),
                Some(_) => Ok(()),
            }
        };
        needs_docroot(Environment::Live)?;
        if op.target() == Environment::Staging || matches!(op, Operation::PushToLive { .. }) {
            needs_docroot(Environment::Staging)?;
        }
        match op {
            Operation::ResetFromTemplate(t) if !self.inner.snapshots.template_dir(t).is_dir() => {
                Err(EngineError::NotFound(format!("no template named {t}")))
            }
            Operation::ResetFromBackup(b)
                if !self.inner.snapshots.backup_dir(&site.id, b).is_dir() =>
            {
                Err(EngineError::NotFound(format!("no backup {b} of this site")))
            }
            _ => Ok(()),
        }
    }

    /// The site's lock for an activity. A holder whose end is already in the log is about
    /// to let go (it records its end first), so a request made the moment the log says the
    /// last operation ended is not refused for it.
    async fn lock(
        &self,
        site: &SiteId,
        activity: &ActivityId,
    ) -> anyhow::Result<Result<lock::SiteLock, Option<ActivityId>>> {
        let data_dir = &self.inner.data_dir;
        let holder = match lock::try_lock(data_dir, site, activity)? {
            Err(Some(holder)) => holder,
            other => return Ok(other),
        };
        let ended = match self.inner.store.activity(&holder).await {
            Ok(Some(a)) => a.status != Status::InProgress,
            _ => false,
        };
        if !ended {
            return Ok(Err(Some(holder)));
        }
        lock::try_lock_within(data_dir, site, activity, ENDED_HOLDER_WAIT).await
    }

    async fn refusal(&self, holder: Option<ActivityId>) -> String {
        let running = match holder {
            Some(id) => self.inner.store.activity(&id).await.ok().flatten(),
            None => None,
        };
        match running {
            Some(a) => format!(
                "Another operation is running on this site ({}, started {}); try again when it has ended",
                a.activity.label(),
                a.created_at
            ),
            None => "Another operation is running on this site; try again when it has ended".into(),
        }
    }

    async fn end(
        &self,
        id: &ActivityId,
        status: Status,
        description: String,
        error: Option<String>,
        details: Option<Map<String, Value>>,
    ) -> StoredActivity {
        let ending = Ending {
            status,
            description: Some(description),
            error,
            completed_at: None,
            details,
        };
        // The store is the log: keep trying until it has the ending, so that nothing is left
        // `in_progress` while this process lives.
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            match self.inner.store.end(id, ending.clone()).await {
                Ok(a) => return a,
                Err(sitetrail_store::StoreError::Conflict(_)) => {
                    if let Ok(Some(a)) = self.inner.store.activity(id).await {
                        return a;
                    }
                }
                Err(e) => {
                    tracing::error!(activity = %id, error = ?e, "ending an activity failed; retrying")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
    }

    fn env(site: &Site, which: Environment) -> anyhow::Result<(SiteUrl, PathBuf)> {
        let spec = match which {
            Environment::Live => Some(&site.live),
            Environment::Staging => site.staging.as_ref(),
        }
        .with_context(|| format!("the site has no {which} environment"))?;
        let docroot = spec
            .docroot
            .as_ref()
            .with_context(|| format!("the {which} environment has no docroot"))?;
        Ok((spec.url.clone(), PathBuf::from(docroot)))
    }

    async fn open(&self, site: &Site, which: Environment) -> anyhow::Result<(Env, SiteDb)> {
        let (url, docroot) = Self::env(site, which)?;
        let config =
            wpconfig::read(&docroot).with_context(|| format!("reading {which}'s configuration"))?;
        let policy = &self.inner.databases;
        policy
            .check(&config)
            .map_err(|refusal| anyhow::anyhow!("{which}'s {refusal}"))?;
        let db = SiteDb::connect(&config, policy)
            .await
            .with_context(|| format!("connecting to {which}'s database"))?;
        Ok((
            Env {
                which,
                url,
                docroot,
                config,
            },
            db,
        ))
    }

    async fn run(&self, ctx: &Ctx, site: &Site, op: &Operation) -> anyhow::Result<Outcome> {
        let mut details = op.details();
        let mut outcome = match op {
            Operation::Backup {
                environment,
                reason,
            } => {
                let (env, db) = self.open(site, *environment).await?;
                let m = self.backup(ctx, site, &env, &db, *reason).await;
                db.disconnect().await;
                let m = m?;
                details.insert("backup".into(), json!(m.id));
                details.insert("files".into(), json!(m.files));
                details.insert("database".into(), json!(m.database));
                Outcome {
                    description: match reason {
                        BackupReason::Daily => format!("Daily backup of {environment}"),
                        _ => format!("Backed up {environment} as {}", m.id),
                    },
                    details,
                }
            }
            Operation::CreateStaging => {
                let (live, live_db) = self.open(site, Environment::Live).await?;
                let staging = self.staging_env(site, &live).await?;
                let r = self
                    .replace(
                        ctx,
                        site,
                        &staging,
                        Source::Env(&live, &live_db),
                        PushScope::Site,
                    )
                    .await;
                live_db.disconnect().await;
                r?.into_details(&mut details);
                Outcome {
                    description: "Created environment for staging from live".into(),
                    details,
                }
            }
            Operation::ResetFromTemplate(_) | Operation::ResetFromBackup(_) => {
                let (dir, description) = match op {
                    Operation::ResetFromTemplate(t) => (
                        self.inner.snapshots.template_dir(t),
                        format!("Created environment for staging from the template {t}"),
                    ),
                    Operation::ResetFromBackup(b) => (
                        self.inner.snapshots.backup_dir(&site.id, b),
                        "Created environment for staging from backup".to_owned(),
                    ),
                    _ => unreachable!("matched above"),
                };
                // Checked before anything is touched.
                let m = snapshot::verify(&dir)?;
                let (live_env, live_db) = self.open(site, Environment::Live).await?;
                live_db.disconnect().await;
                let staging = self.staging_env(site, &live_env).await?;
                self.replace(
                    ctx,
                    site,
                    &staging,
                    Source::Snapshot(&dir, &m),
                    PushScope::Site,
                )
                .await?
                .into_details(&mut details);
                Outcome {
                    description,
                    details,
                }
            }
            Operation::PushToLive {
                scope,
                keep_staging,
            } => {
                let (live, live_db) = self.open(site, Environment::Live).await?;
                let (staging, staging_db) = self.open(site, Environment::Staging).await?;
                let backup = self
                    .automatic_backup(ctx, site, &live, &live_db)
                    .await
                    .context("the backup of live failed, so live was not touched")?;
                details.insert("backup".into(), json!(backup.id));
                live_db.disconnect().await;
                let live_env = Env { ..live };
                let r = self
                    .replace(
                        ctx,
                        site,
                        &live_env,
                        Source::Env(&staging, &staging_db),
                        *scope,
                    )
                    .await;
                let r = r?;
                r.into_details(&mut details);
                if !keep_staging {
                    let _t = ctx.phase("removing staging", 0);
                    self.remove_staging(&staging, &staging_db).await?;
                }
                staging_db.disconnect().await;
                Outcome {
                    description: "Successfully pushed staging to live".into(),
                    details,
                }
            }
        };
        let phases: Map<String, Value> = ctx
            .phases
            .lock()
            .map(|p| p.iter().map(|(k, ms)| (k.clone(), json!(ms))).collect())
            .unwrap_or_default();
        outcome
            .details
            .insert("phases_ms".into(), Value::Object(phases));
        Ok(outcome)
    }

    /// Staging as registered; its `wp-config.php` is written (with a new database) when the
    /// docroot has none.
    async fn staging_env(&self, site: &Site, live: &Env) -> anyhow::Result<Env> {
        let (url, docroot) = Self::env(site, Environment::Staging)?;
        let config = match wpconfig::read(&docroot) {
            Ok(c) => c,
            Err(e) if e.chain().any(|c| c.is::<confined::Refusal>()) => {
                return Err(e.context("reading staging's configuration"));
            }
            Err(_) => self.provision_staging(live, &docroot).await?,
        };
        Ok(Env {
            which: Environment::Staging,
            url,
            docroot,
            config,
        })
    }

    /// Writes staging's `wp-config.php`: live's settings, a new database on live's server,
    /// a prefix of its own and fresh salts.
    async fn provision_staging(&self, live: &Env, docroot: &Path) -> anyhow::Result<WpConfig> {
        let live_text = confined::Root::open(&live.docroot)
            .and_then(|r| r.read(Path::new("wp-config.php")))
            .map_err(|e| {
                confined::refusal(
                    "live's wp-config.php could not be read as a regular file in its docroot",
                    format!("{}/wp-config.php: {e}", live.docroot.display()),
                )
            })?;
        let live_text = String::from_utf8(live_text).context("live's wp-config.php is not text")?;
        let name = crate::policy::staging_name(&live.config.name)
            .map_err(|refusal| anyhow::anyhow!("live's {refusal}"))?;
        let prefix = if live.config.prefix == "stg_" {
            "stg2_"
        } else {
            "stg_"
        };
        let sqlite = live.config.sqlite_file.is_some();
        let text = crate::config::derive(&live_text, &name, prefix, sqlite);
        let mut config = wpconfig::parse(&text)?;
        if sqlite {
            // Its own database file, in its own docroot, where the integration looks.
            config.sqlite_file = Some(docroot.join("wp-content/database/.ht.sqlite"));
        } else {
            crate::mysql::ensure_database(&config, &self.inner.databases).await?;
        }
        std::fs::create_dir_all(docroot)
            .with_context(|| format!("creating {}", docroot.display()))?;
        write_config(docroot, text.as_bytes(), "staging")?;
        Ok(config)
    }

    async fn automatic_backup(
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
            .backup(ctx, site, env, db, BackupReason::Automatic)
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
                self.end(
                    &activity.id,
                    Status::Failed,
                    description,
                    Some(public_reason(e)),
                    None,
                )
                .await;
            }
        }
        r
    }

    async fn backup(
        &self,
        ctx: &Ctx,
        site: &Site,
        env: &Env,
        db: &SiteDb,
        reason: BackupReason,
    ) -> anyhow::Result<Manifest> {
        let id = snapshot::new_backup_id(env.which, Timestamp::now());
        let dir = self.inner.snapshots.staging_area(id.as_str())?;
        let result = async {
            let (db_sha, db_bytes, db_stats) = {
                let _t = ctx.phase(&format!("backing up {}'s database", env.which), 0);
                let (_pin, pinned) = pinned(&env.docroot, db)?;
                pinned
                    .as_ref()
                    .unwrap_or(db)
                    .dump(&env.config.prefix, &dir, &|n| ctx.advance(n))
                    .await?
            };
            let (files_sha, files) = {
                let _t = ctx.phase(&format!("backing up {}'s files", env.which), 0);
                let (src, out) = (env.docroot.clone(), dir.join(snapshot::FILES));
                tokio::task::spawn_blocking(move || tree::pack(&src, &out)).await??
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
                created_at: Timestamp::now(),
                files_sha256: files_sha,
                files_tar_bytes: std::fs::metadata(dir.join(snapshot::FILES))?.len(),
                files,
                database_sha256: db_sha,
                database_bytes: db_bytes,
                database: db_stats,
                database_kind: db.kind(),
            };
            snapshot::write_manifest(&dir, &m)?;
            self.inner
                .snapshots
                .publish(&dir, &self.inner.snapshots.backup_dir(&site.id, &id))?;
            anyhow::Ok(m)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// Crash tests stop an operation at a named point (`SITETRAIL_TEST_PAUSE_AT`) to kill it
    /// there; the engine marks the pause with a `.paused` file beside its journal.
    async fn pause_point(&self, activity: &ActivityId, point: &str) {
        if std::env::var("SITETRAIL_TEST_PAUSE_AT").is_ok_and(|p| p == point) {
            let marker = self.journal_path(activity).with_extension("paused");
            let _ = sitetrail_store::private::write(&marker, point.as_bytes());
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    }

    fn journal_path(&self, activity: &ActivityId) -> PathBuf {
        self.inner
            .data_dir
            .join("operations")
            .join(format!("{activity}.json"))
    }

    fn write_journal(&self, j: &Journal) -> anyhow::Result<()> {
        let path = self.journal_path(&j.activity);
        sitetrail_store::private::create_dir(path.parent().expect("has a parent"))?;
        let tmp = path.with_extension("tmp");
        sitetrail_store::private::write(&tmp, &serde_json::to_vec_pretty(j)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Replaces `target` with a copy of `source`: built aside, switched in one step each for
    /// tables and files. On any failure before the switch the target is as it was.
    async fn replace(
        &self,
        ctx: &Ctx,
        site: &Site,
        target: &Env,
        source: Source<'_>,
        scope: PushScope,
    ) -> anyhow::Result<ReplaceStats> {
        let k = tag(&ctx.activity);
        let temp = format!("stn{k}_");
        let old = format!("sto{k}_");
        let target_db = match (scope, target.which) {
            (PushScope::Files, _) => None,
            _ => Some(
                SiteDb::connect(&target.config, &self.inner.databases)
                    .await
                    .with_context(|| format!("connecting to {}'s database", target.which))?,
            ),
        };
        let exists = target.docroot.join("wp-config.php").is_file()
            && std::fs::read_dir(&target.docroot)?.count() > 1;
        // Reset of an existing staging: back it up first (pushes back up live themselves).
        let mut stats = ReplaceStats::default();
        if exists
            && target.which == Environment::Staging
            && let Some(db) = &target_db
        {
            let m = self
                .automatic_backup(ctx, site, target, db)
                .await
                .context("the backup of staging failed, so staging was not touched")?;
            stats.backup = Some(m.id);
        }
        let new_dir = tree::sibling(&target.docroot, &format!("new-{k}"))?;
        let mut journal = Journal {
            activity: ctx.activity.clone(),
            site: site.id.clone(),
            phase: Phase::Building,
            docroot: target.docroot.clone(),
            new_dir: new_dir.clone(),
            new_dir_ino: None,
            db_name: target_db
                .as_ref()
                .and_then(|d| d.mysql())
                .map(|d| d.name.clone()),
            config: Some(JournalDb {
                docroot_config: target.docroot.clone(),
            }),
            built: Vec::new(),
            switch: Vec::new(),
            sqlite_new: None,
            sqlite_target: None,
            sqlite_new_ino: None,
        };
        self.write_journal(&journal)?;
        let built = self
            .build(
                ctx,
                target,
                &source,
                target_db.as_ref(),
                &temp,
                &new_dir,
                &mut journal,
                &mut stats,
            )
            .await;
        if let Err(e) = built {
            self.undo_build(&journal, target_db.as_ref()).await;
            let _ = std::fs::remove_file(self.journal_path(&ctx.activity));
            return Err(e);
        }
        self.pause_point(&ctx.activity, "built").await;
        let switched = self
            .switch(
                ctx,
                target,
                target_db.as_ref(),
                &old,
                &new_dir,
                &mut journal,
            )
            .await;
        if let Err(e) = switched {
            self.undo_build(&journal, target_db.as_ref()).await;
            let _ = std::fs::remove_file(self.journal_path(&ctx.activity));
            return Err(e);
        }
        // The old copy goes; deleting is slow here, so it happens after the switch.
        let _t = ctx.phase("cleaning up", 0);
        if let Some(SiteDb::Mysql(db)) = &target_db {
            let old_tables: Vec<String> = journal
                .switch
                .iter()
                .filter(|(_, to)| to.starts_with(&old))
                .map(|(_, to)| to.clone())
                .collect();
            if let Err(e) = db.drop_tables(&old_tables).await {
                tracing::warn!(error = ?e, "dropping the replaced tables failed");
            }
        }
        if new_dir.exists() {
            tree::remove_in_background(new_dir);
        }
        if let Some(replaced) = &journal.sqlite_new {
            let _ = std::fs::remove_file(replaced);
        }
        let _ = std::fs::remove_file(self.journal_path(&ctx.activity));
        if let Some(db) = target_db {
            db.disconnect().await;
        }
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)]
    async fn build(
        &self,
        ctx: &Ctx,
        target: &Env,
        source: &Source<'_>,
        target_db: Option<&SiteDb>,
        temp: &str,
        new_dir: &Path,
        journal: &mut Journal,
        stats: &mut ReplaceStats,
    ) -> anyhow::Result<()> {
        let cross = |from: crate::snapshot::DbKind, to: crate::snapshot::DbKind| {
            anyhow::anyhow!(
                "the source's database is {} and the target's is {}; sites move between databases of the same kind",
                from.label(),
                to.label()
            )
        };
        if let Some(SiteDb::Mysql(db)) = target_db {
            let _t = ctx.phase("copying the database", 0);
            let (tables, db_stats) = match source {
                Source::Env(env, SiteDb::Mysql(src_db)) => {
                    let rewrite = Rewrite {
                        url: Some(UrlRewrite::new(env.url.as_str(), target.url.as_str())?),
                        from_prefix: env.config.prefix.clone(),
                        to_prefix: target.config.prefix.clone(),
                    };
                    copy::copy_tables(src_db, db, &rewrite, temp, &|n| ctx.advance(n)).await
                }
                Source::Env(_, other) => Err(cross(other.kind(), crate::snapshot::DbKind::Mysql)),
                Source::Snapshot(_, m) if m.database_kind != crate::snapshot::DbKind::Mysql => {
                    Err(cross(m.database_kind, crate::snapshot::DbKind::Mysql))
                }
                Source::Snapshot(dir, m) => {
                    let rewrite = Rewrite {
                        url: Some(UrlRewrite::new(&m.source_url, target.url.as_str())?),
                        from_prefix: m.table_prefix.clone(),
                        to_prefix: target.config.prefix.clone(),
                    };
                    copy::load(&dir.join(snapshot::DATABASE), db, &rewrite, temp, &|n| {
                        ctx.advance(n)
                    })
                    .await
                }
            }?;
            anyhow::ensure!(
                tables.iter().any(|(_, t)| t.ends_with("options")),
                "the source has no WordPress tables with its prefix"
            );
            journal.built = tables;
            self.write_journal(journal)?;
            stats.database = Some(db_stats);
        }
        let _t = ctx.phase("copying the files", 0);
        let progress = ctx.progress.clone();
        let files = match source {
            Source::Env(env, _) => {
                let (src, dst) = (env.docroot.clone(), new_dir.to_owned());
                tokio::task::spawn_blocking(move || {
                    tree::copy_tree(&src, &dst, &|_| progress.send_modify(|p| p.done += 1))
                })
                .await??
            }
            Source::Snapshot(dir, m) => {
                let (tar, dst) = (dir.join(snapshot::FILES), new_dir.to_owned());
                tokio::task::spawn_blocking(move || tree::unpack(&tar, &dst)).await??;
                m.files
            }
        };
        stats.files = Some(files);
        match target_db {
            Some(SiteDb::Sqlite(target_file)) => {
                let _t = ctx.phase("copying the database", 0);
                let (new_db, inside) = db::sqlite_new_path(
                    target_file,
                    &target.docroot,
                    new_dir,
                    &format!("new-{}", tag(&journal.activity)),
                )?;
                if !inside {
                    journal.sqlite_new = Some(new_db.clone());
                    journal.sqlite_target = Some(target_file.clone());
                    self.write_journal(journal)?;
                }
                let db_dir = new_db_dir(new_dir, &new_db)?;
                let from_url = match source {
                    Source::Env(env, SiteDb::Sqlite(src)) => {
                        let pin = confined::PinnedFile::new(&env.docroot, src)?;
                        crate::sqlite_db::copy(pin.path(), &new_db, confined::DOCROOT_FILE_MODE)
                            .await?;
                        (env.url.to_string(), env.config.prefix.clone())
                    }
                    Source::Env(_, other) => {
                        return Err(cross(other.kind(), crate::snapshot::DbKind::Sqlite));
                    }
                    Source::Snapshot(dir, m)
                        if m.database_kind == crate::snapshot::DbKind::Sqlite =>
                    {
                        let mut from = std::fs::File::open(dir.join(m.database_kind.file()))?;
                        let name = new_db.file_name().expect("a file has a name");
                        db_dir
                            .create_file(
                                &std::ffi::CString::new(name.as_encoded_bytes())?,
                                confined::DOCROOT_FILE_MODE,
                            )
                            .map_err(|e| anyhow::anyhow!("creating {}: {e}", new_db.display()))
                            .and_then(|mut to| Ok(std::io::copy(&mut from, &mut to)?))?;
                        (m.source_url.clone(), m.table_prefix.clone())
                    }
                    Source::Snapshot(_, m) => {
                        return Err(cross(m.database_kind, crate::snapshot::DbKind::Sqlite));
                    }
                };
                database_dir_guards(&db_dir);
                let rewrite = Rewrite {
                    url: Some(UrlRewrite::new(&from_url.0, target.url.as_str())?),
                    from_prefix: from_url.1,
                    to_prefix: target.config.prefix.clone(),
                };
                let db_stats =
                    crate::sqlite_db::rewrite(&new_db, &rewrite, &|n| ctx.advance(n)).await?;
                anyhow::ensure!(
                    crate::sqlite_db::has_wordpress(&new_db, &target.config.prefix).await?,
                    "the source has no WordPress tables with its prefix"
                );
                stats.database = Some(db_stats);
                if !inside {
                    journal.sqlite_new_ino = Some(std::os::unix::fs::MetadataExt::ino(
                        &std::fs::metadata(&new_db)?,
                    ));
                    self.write_journal(journal)?;
                }
            }
            None => {
                // Files only: a database inside the docroot stays the one live uses (a hard link
                // to the same file, so that writes made meanwhile are kept).
                if let Some(file) = &target.config.sqlite_file
                    && let Ok(rel) = file.strip_prefix(&target.docroot)
                    && confined::Root::open(&target.docroot)
                        .and_then(|r| r.is_file(rel))
                        .unwrap_or(false)
                {
                    let to = new_dir.join(rel);
                    let db_dir = new_db_dir(new_dir, &to)?;
                    let from_dir = confined::Root::open(&target.docroot)
                        .and_then(|r| r.dir(rel.parent().unwrap_or(Path::new(""))))
                        .map_err(|e| anyhow::anyhow!("opening live's database directory: {e}"))?;
                    let name = rel.file_name().expect("a file has a name");
                    rustix::fs::linkat(
                        &from_dir,
                        name,
                        &db_dir,
                        name,
                        rustix::fs::AtFlags::empty(),
                    )
                    .context("keeping live's SQLite database")?;
                    database_dir_guards(&db_dir);
                }
            }
            Some(SiteDb::Mysql(_)) => {}
        }
        // The target keeps its own configuration.
        keep_config(&target.docroot, new_dir, &target.which.to_string())?;
        journal.new_dir_ino = Some(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(
            new_dir,
        )?));
        self.write_journal(journal)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn switch(
        &self,
        ctx: &Ctx,
        target: &Env,
        target_db: Option<&SiteDb>,
        old: &str,
        new_dir: &Path,
        journal: &mut Journal,
    ) -> anyhow::Result<()> {
        let _t = ctx.phase("switching", 0);
        if let (Some(new), Some(current)) = (&journal.sqlite_new, &journal.sqlite_target) {
            journal.phase = Phase::Switching;
            self.write_journal(journal)?;
            if current.exists() {
                tree::exchange(current, new)?;
            } else {
                std::fs::rename(new, current)?;
            }
        }
        if let Some(SiteDb::Mysql(db)) = target_db {
            let current = db.tables(&target.config.prefix).await?;
            let mut pairs: Vec<(String, String)> = current
                .iter()
                .map(|t| (t.clone(), format!("{old}{t}")))
                .collect();
            pairs.extend(journal.built.iter().cloned());
            journal.switch = pairs.clone();
            journal.phase = Phase::Switching;
            self.write_journal(journal)?;
            db.rename_all(&pairs).await?;
            self.pause_point(&ctx.activity, "between_switches").await;
        } else {
            journal.phase = Phase::Switching;
            self.write_journal(journal)?;
        }
        let files = if target.docroot.exists() {
            tree::exchange(&target.docroot, new_dir)
        } else {
            std::fs::rename(new_dir, &target.docroot).context("putting the new files in place")
        };
        if let Err(e) = files {
            if let (Some(new), Some(current)) = (&journal.sqlite_new, &journal.sqlite_target)
                && new.exists()
            {
                tree::exchange(current, new).context("undoing the database switch")?;
            }
            if let Some(SiteDb::Mysql(db)) = target_db {
                let back: Vec<(String, String)> = journal
                    .switch
                    .iter()
                    .rev()
                    .map(|(a, b)| (b.clone(), a.clone()))
                    .collect();
                db.rename_all(&back)
                    .await
                    .context("undoing the table switch")?;
            }
            return Err(e);
        }
        journal.phase = Phase::Switched;
        self.write_journal(journal)?;
        self.pause_point(&ctx.activity, "switched").await;
        Ok(())
    }

    /// Removes what a failed build left: temporary tables and the half-built tree.
    async fn undo_build(&self, journal: &Journal, db: Option<&SiteDb>) {
        if journal.phase == Phase::Building
            && let Some(new) = &journal.sqlite_new
        {
            let _ = std::fs::remove_file(new);
        }
        if let Some(SiteDb::Mysql(db)) = db {
            // The journal names the tables it finished; a kill can come between a table's
            // CREATE and the journal's next write, so every table with this operation's
            // temporary prefix goes too.
            let mut tables: Vec<String> = journal.built.iter().map(|(t, _)| t.clone()).collect();
            if journal.phase == Phase::Building {
                match db.tables(&format!("stn{}_", tag(&journal.activity))).await {
                    Ok(found) => tables.extend(found),
                    Err(e) => tracing::warn!(error = ?e, "listing temporary tables failed"),
                }
            }
            tables.sort();
            tables.dedup();
            if let Err(e) = db.drop_tables(&tables).await {
                tracing::warn!(error = ?e, "dropping temporary tables failed");
            }
        }
        if journal.new_dir.exists() && journal.phase == Phase::Building {
            tree::remove_in_background(journal.new_dir.clone());
        }
    }

    /// After a push without `keep_staging`: staging's tables and files go; its
    /// `wp-config.php` stays, so that staging can be created again in the same place.
    async fn remove_staging(&self, staging: &Env, db: &SiteDb) -> anyhow::Result<()> {
        match db {
            SiteDb::Mysql(db) => {
                let tables = db.tables(&staging.config.prefix).await?;
                db.drop_tables(&tables).await?;
            }
            // Inside the docroot (`wpconfig::read` gives no other): it goes with the files.
            SiteDb::Sqlite(_) => {}
        }
        let aside = tree::sibling(&staging.docroot, "removed")?;
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&staging.docroot, &aside)?;
        std::fs::create_dir(&staging.docroot)?;
        // `remove_dir_all` does not follow links (it unlinks them); the configuration is
        // copied as `build` keeps a target's.
        keep_config(&aside, &staging.docroot, "staging")?;
        tree::remove_in_background(aside);
        Ok(())
    }

    /// Imports a template from an existing WordPress docroot.
    pub async fn import_template(
        &self,
        name: &TemplateId,
        docroot: &Path,
        url: &SiteUrl,
        progress: &dyn Fn(&str),
    ) -> anyhow::Result<Manifest> {
        let target = self.inner.snapshots.template_dir(name);
        anyhow::ensure!(!target.exists(), "a template named {name} exists already");
        let config = wpconfig::read(docroot)?;
        let db = SiteDb::connect(&config, &self.inner.databases).await?;
        let dir = self
            .inner
            .snapshots
            .staging_area(&format!("template-{name}"))?;
        let result = async {
            progress("database");
            let (_pin, pinned) = pinned(docroot, &db)?;
            let (db_sha, db_bytes, db_stats) = pinned
                .as_ref()
                .unwrap_or(&db)
                .dump(&config.prefix, &dir, &|_| {})
                .await?;
            progress("files");
            let (src, out) = (docroot.to_owned(), dir.join(snapshot::FILES));
            let (files_sha, files) =
                tokio::task::spawn_blocking(move || tree::pack(&src, &out)).await??;
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
                files_tar_bytes: std::fs::metadata(dir.join(snapshot::FILES))?.len(),
                files,
                database_sha256: db_sha,
                database_bytes: db_bytes,
                database: db_stats,
                database_kind: db.kind(),
            };
            snapshot::write_manifest(&dir, &m)?;
            self.inner.snapshots.publish(&dir, &target)?;
            anyhow::Ok(m)
        }
        .await;
        db.disconnect().await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// After a crash: every operation whose lock was abandoned is ended as failed
    /// ("interrupted") and its half-built work is undone, or, where the switch had finished,
    /// cleaned up. Returns the activities it ended.
    pub async fn recover(&self) -> anyhow::Result<Vec<StoredActivity>> {
        self.inner.snapshots.clean_incoming();
        let mut ended = Vec::new();
        let dir = lock::lock_dir(&self.inner.data_dir);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ended),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(site) = name
                .strip_suffix(".lock")
                .and_then(|s| SiteId::parse(s).ok())
            else {
                continue;
            };
            let Some((_lock, Some(activity))) = lock::abandoned(&self.inner.data_dir, &site)?
            else {
                continue;
            };
            let note = self.recover_journal(&activity).await;
            if let Ok(Some(a)) = self.inner.store.activity(&activity).await
                && a.status == Status::InProgress
            {
                let error = match note {
                    Ok(n) => format!("interrupted: the operation stopped when its server did; {n}"),
                    Err(e) => format!(
                        "interrupted: the operation stopped when its server did; recovery failed: {}",
                        public_reason(&e)
                    ),
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

    async fn recover_journal(&self, activity: &ActivityId) -> anyhow::Result<String> {
        let path = self.journal_path(activity);
        let _ = std::fs::remove_file(path.with_extension("paused"));
        let journal: Journal = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("a damaged operation journal")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok("nothing had been changed".into());
            }
            Err(e) => return Err(e.into()),
        };
        let db = match &journal.config {
            Some(c) if journal.db_name.is_some() => {
                let config = wpconfig::read(&c.docroot_config)?;
                Some(SiteDb::Mysql(
                    MysqlDb::connect(&config, &self.inner.databases).await?,
                ))
            }
            _ => None,
        };
        let docroot_ino = std::fs::metadata(&journal.docroot)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        let files_switched = journal.new_dir_ino.is_some() && docroot_ino == journal.new_dir_ino;
        let note = match journal.phase {
            Phase::Building => {
                self.undo_build(&journal, db.as_ref()).await;
                "the environment was left as it was".to_owned()
            }
            Phase::Switching | Phase::Switched => {
                let tables_switched = match db.as_ref().and_then(SiteDb::mysql) {
                    Some(db) => {
                        match journal.switch.iter().find(|(_, to)| !to.starts_with("sto")) {
                            Some((from, _)) => !db.tables(from).await?.iter().any(|t| t == from),
                            None => false,
                        }
                    }
                    None => false,
                };
                if files_switched {
                    // Swap the files back first, then the tables.
                    tree::exchange(&journal.docroot, &journal.new_dir)?;
                }
                if let (Some(new), Some(current), Some(ino)) = (
                    &journal.sqlite_new,
                    &journal.sqlite_target,
                    journal.sqlite_new_ino,
                ) && std::fs::metadata(current)
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == ino)
                {
                    tree::exchange(current, new)?;
                }
                if tables_switched && let Some(db) = db.as_ref().and_then(SiteDb::mysql) {
                    let back: Vec<(String, String)> = journal
                        .switch
                        .iter()
                        .rev()
                        .map(|(a, b)| (b.clone(), a.clone()))
                        .collect();
                    db.rename_all(&back).await?;
                }
                let mut j = journal.clone();
                j.phase = Phase::Building;
                self.undo_build(&j, db.as_ref()).await;
                "the half-done switch was undone and the environment is as it was".to_owned()
            }
        };
        if let Some(db) = db {
            db.disconnect().await;
        }
        std::fs::remove_file(&path)?;
        Ok(note)
    }
}

#[derive(Debug, Default)]
struct ReplaceStats {
    backup: Option<String>,
    database: Option<DbStats>,
    files: Option<TreeStats>,
}

impl ReplaceStats {
    fn into_details(self, details: &mut Map<String, Value>) {
        if let Some(b) = self.backup {
            details.insert("backup".into(), json!(b));
        }
        if let Some(d) = self.database {
            details.insert("database".into(), json!(d));
        }
        if let Some(f) = self.files {
            details.insert("files".into(), json!(f));
        }
    }
}

/// A SQLite site's database as SQLite may open it: pinned (see `confined::PinnedFile`), so
/// that a link put in the docroot since the configuration was read is not followed. Keep the
/// pin while the copy is used.
fn pinned(
    docroot: &Path,
    db: &SiteDb,
) -> anyhow::Result<(Option<confined::PinnedFile>, Option<SiteDb>)> {
    match db {
        SiteDb::Sqlite(file) => {
            let pin = confined::PinnedFile::new(docroot, file)?;
            let copy = SiteDb::Sqlite(pin.path().to_owned());
            Ok((Some(pin), Some(copy)))
        }
        SiteDb::Mysql(_) => Ok((None, None)),
    }
}

/// The directory a new SQLite database goes in, made inside the new tree without following a
/// link on the way.
fn new_db_dir(new_dir: &Path, new_db: &Path) -> anyhow::Result<confined::Root> {
    let rel = new_db
        .strip_prefix(new_dir)
        .ok()
        .and_then(|r| r.parent())
        .context("the new database is inside the new tree")?;
    confined::Root::open(new_dir)
        .and_then(|r| r.create_dirs(rel, 0o755))
        .map_err(|e| match e {
            confined::Access::Link | confined::Access::WrongKind => confined::refusal(
                "the site's database directory is a link; sitetrail never writes through links",
                format!("{}: {e}", new_db.display()),
            ),
            e => anyhow::anyhow!("creating the directory of {}: {e}", new_db.display()),
        })
}

/// WordPress's SQLite integration guards its database directory with an `.htaccess` and an
/// `index.php`; a new database directory gets the same (written as the integration writes
/// them, never copied from a site's files).
fn database_dir_guards(dir: &confined::Root) {
    for (guard, text) in [
        (c".htaccess", "DENY FROM ALL"),
        (c"index.php", "<?php // Silence is gold. ?>"),
    ] {
        if let Ok(mut f) = dir.create_file(guard, 0o644) {
            let _ = std::io::Write::write_all(&mut f, text.as_bytes());
        }
    }
}

/// Writes an environment's `wp-config.php` into its docroot: beside it first, renamed over it,
/// never through a link (a link there is refused), readable by the owner and group only.
fn write_config(docroot: &Path, text: &[u8], which: &str) -> anyhow::Result<()> {
    let root = confined::Root::open(docroot).map_err(|e| {
        confined::refusal(
            format!("{which}'s directory is a link; sitetrail never writes through links"),
            format!("{}: {e}", docroot.display()),
        )
    })?;
    match root.write(
        Path::new("wp-config.php"),
        &mut &text[..],
        confined::DOCROOT_FILE_MODE,
    ) {
        Ok(_) => Ok(()),
        Err(confined::Access::Link) => Err(confined::refusal(
            format!(
                "{which}'s wp-config.php is a link; sitetrail never writes through links: \
                 replace it with a regular file"
            ),
            format!("{}/wp-config.php is a link", docroot.display()),
        )),
        Err(e) => Err(anyhow::anyhow!(
            "writing {}/wp-config.php: {e}",
            docroot.display()
        )),
    }
}

/// Copies an environment's own `wp-config.php` from `from` into the tree that replaces it,
/// read and written without following a link.
fn keep_config(from: &Path, to: &Path, which: &str) -> anyhow::Result<()> {
    let text = match confined::Root::open(from).and_then(|r| r.read(Path::new("wp-config.php"))) {
        Ok(text) => text,
        Err(confined::Access::Missing) => return Ok(()),
        Err(e) => {
            return Err(confined::refusal(
                format!(
                    "{which}'s wp-config.php is a link or not a regular file; sitetrail never \
                     reads through links: replace it with a regular file"
                ),
                format!("{}/wp-config.php: {e}", from.display()),
            ));
        }
    };
    write_config(to, &text, which).context("keeping the environment's wp-config.php")
}

/// An error as the activity log keeps it: the whole chain of reasons, with the server's
/// paths shortened to their last part (readers of the log never see the server's layout;
/// the full error goes to the server's log).
pub fn public_reason(e: &anyhow::Error) -> String {
    // A refusal's own words end the reason: what lies under it names the server's paths.
    let text = match e.chain().position(|c| c.is::<confined::Refusal>()) {
        Some(i) => e
            .chain()
            .take(i + 1)
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": "),
        None => format!("{e:#}"),
    };
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_end_matches([',', ';', ':', ')', '.']);
        if trimmed.starts_with('/') && trimmed.len() > 1 && trimmed[1..].contains('/') {
            let last = trimmed
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("");
            out.push_str(last);
            out.push_str(&word[trimmed.len()..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_their_words_but_not_the_servers_paths() {
        let e = anyhow::anyhow!("no wp-config.php in /srv/www/acme/live")
            .context("reading live's configuration");
        assert_eq!(
            public_reason(&e),
            "reading live's configuration: no wp-config.php in live"
        );
        let e = anyhow::anyhow!(
            "creating /tmp/x/.live.aside-new-abc: Operation not permitted (os error 1)"
        );
        assert_eq!(
            public_reason(&e),
            "creating .live.aside-new-abc: Operation not permitted (os error 1)"
        );
        assert_eq!(public_reason(&anyhow::anyhow!("a / b")), "a / b");
        let e = confined::refusal(
            "wp-config.php is a link; replace it with a regular file",
            "/srv/www/acme/staging/wp-config.php -> /srv/www/victim/index.php",
        )
        .context("reading staging's configuration");
        assert_eq!(
            public_reason(&e),
            "reading staging's configuration: wp-config.php is a link; replace it with a regular file"
        );
        assert!(
            format!("{e:?}").contains("/srv/www/victim/index.php"),
            "the log has it"
        );
    }
}
