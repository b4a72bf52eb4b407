//! The staging operations and the engine that runs them: each one is logged `in_progress`,
//! holds its site's lock, runs in the background and is ended `completed` or `failed`
//! through the store.
//!
//! Every operation replaces one environment (the target) with another copy (the source: the
//! other environment, a backup or a template); `switch.rs` builds and switches, `backups.rs`
//! takes the snapshots, `recover.rs` undoes what a crash interrupted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde_json::{Map, Value, json};
use sitetrail_core::{
    ActivityId, ActivityKind, Actor, BackupId, Ending, Environment, NewActivity, Site, SiteId,
    SiteUrl, Status, StoredActivity, TemplateId, Timestamp,
};
use sitetrail_store::DynStore;
use tokio::sync::watch;

use crate::blocking;
use crate::db::SiteDb;
use crate::lock;
use crate::policy::DatabasePolicy;
use crate::progress::{self, Progress, Step, TRY_AGAIN};
use crate::push::{Push, PushScope};
use crate::refusals::Refusal;
use crate::snapshot::{self, BackupReason, Snapshots};
use crate::state::StagingSource;
use crate::switch::{Part, Source};
use crate::wpconfig::{self, WpConfig};

/// Why an operation that needs staging does not start before staging is made.
pub const NO_STAGING: &str = "There is no staging site yet. Create it first.";

/// How long a new operation waits for the lock of one whose end is already in the log.
const ENDED_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What to do to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    CreateStaging,
    ResetFromTemplate(TemplateId),
    ResetFromBackup(BackupId),
    PushToLive(Push),
    /// A dry run of a push: the new live is built aside and reported on, never switched in.
    PreviewPush(Push),
    /// Puts back the live the last push replaced, within its window.
    UndoPush,
    /// Replaces live (whole, its database or its files) with a backup.
    RestoreLive {
        backup: BackupId,
        scope: PushScope,
    },
    Backup {
        environment: Environment,
        reason: BackupReason,
    },
}

impl Operation {
    pub fn kind(&self) -> ActivityKind {
        match self {
            Operation::CreateStaging => ActivityKind::CreateStaging,
            Operation::ResetFromTemplate(_) => ActivityKind::ResetStagingFromTemplate,
            Operation::ResetFromBackup(_) => ActivityKind::ResetStagingFromBackup,
            Operation::PushToLive(_) => ActivityKind::PushStagingToLive,
            Operation::PreviewPush(_) => ActivityKind::PreviewPush,
            Operation::UndoPush => ActivityKind::UndoPush,
            Operation::RestoreLive { .. } => ActivityKind::RestoreLiveFromBackup,
            Operation::Backup { .. } => ActivityKind::CreateBackup,
        }
    }

    /// The environment the operation changes (or, for a backup, reads).
    pub fn target(&self) -> Environment {
        match self {
            Operation::PushToLive(_)
            | Operation::PreviewPush(_)
            | Operation::UndoPush
            | Operation::RestoreLive { .. } => Environment::Live,
            Operation::Backup { environment, .. } => *environment,
            _ => Environment::Staging,
        }
    }

    fn running(&self) -> String {
        match self {
            Operation::CreateStaging => "Creating the staging environment from live".into(),
            Operation::ResetFromTemplate(t) => format!("Resetting staging from the template {t}"),
            Operation::ResetFromBackup(b) => format!("Resetting staging from the backup {b}"),
            Operation::PushToLive(push) => format!("Pushing staging to live ({})", what(push)),
            Operation::PreviewPush(push) => {
                format!("Previewing a push of staging to live ({})", what(push))
            }
            Operation::UndoPush => "Undoing the last push to live".into(),
            Operation::RestoreLive { backup, scope } => format!(
                "Restoring live from the backup {backup} ({})",
                what(&Push::scoped(*scope))
            ),
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
            Operation::PushToLive(push) | Operation::PreviewPush(push) => json!(push),
            Operation::UndoPush => json!({}),
            Operation::RestoreLive { backup, scope } => json!({"backup": backup, "scope": scope}),
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

/// What a push replaces, in words: "database and files", "the tables posts, postmeta".
pub fn what(push: &Push) -> String {
    match push.scope {
        PushScope::Site => "database and files".into(),
        PushScope::Database => "database only".into(),
        PushScope::Files => "files only".into(),
        PushScope::Tables => format!("the tables {}", push.tables.join(", ")),
        PushScope::Folders => format!("the folders {}", push.folders.join(", ")),
    }
}

/// Refusals before anything starts: the request itself is wrong.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The site is not in a state the operation can start from (no staging to push).
    #[error("{0}")]
    Conflict(String),
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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: DynStore,
    pub data_dir: PathBuf,
    pub snapshots: Snapshots,
    /// The database servers sites may use, and the admin connection.
    pub databases: DatabasePolicy,
    /// The operations running in this process, by site.
    pub running: crate::state::RunningOps,
    /// Where crash tests stop every operation (see `pause.rs`).
    #[cfg(feature = "testkit")]
    pub pause_at: Option<crate::PausePoint>,
}

/// One environment, resolved: its URL, docroot and database settings.
pub(crate) struct Env {
    pub which: Environment,
    pub url: SiteUrl,
    pub docroot: PathBuf,
    pub config: WpConfig,
}

/// The running operation's context: progress and the time each phase took.
pub(crate) struct Ctx {
    pub activity: ActivityId,
    /// What the operation is (an automatic backup names it).
    pub kind: ActivityKind,
    /// When its activity was created.
    pub started: Timestamp,
    pub progress: watch::Sender<Progress>,
    phases: Mutex<Vec<(String, u128)>>,
    /// Set once the target has been switched: from then on it has the new copy.
    pub switched: AtomicBool,
}

impl Ctx {
    pub fn phase(&self, step: Step, total: u64) -> PhaseTimer<'_> {
        self.progress.send_replace(Progress {
            phase: step.label(),
            done: 0,
            total,
        });
        PhaseTimer {
            ctx: self,
            name: step.key(),
            start: Instant::now(),
        }
    }

    /// The step's total, once it is known.
    pub fn total(&self, total: u64) {
        self.progress.send_modify(|p| p.total = total);
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

    pub fn advance(&self, n: u64) {
        self.progress.send_modify(|p| p.done += n);
    }
}

pub(crate) struct PhaseTimer<'a> {
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

impl Engine {
    pub fn new(store: DynStore, data_dir: &Path, databases: DatabasePolicy) -> Self {
        Engine {
            inner: Arc::new(Inner {
                store,
                data_dir: data_dir.to_owned(),
                snapshots: Snapshots::new(data_dir),
                databases,
                running: Default::default(),
                #[cfg(feature = "testkit")]
                pause_at: None,
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
        self.check(&site, &op).await?;
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
        let (tx, rx) = watch::channel(Progress {
            phase: Step::GettingReady.label(),
            ..Progress::default()
        });
        let refused = match self.lock(&site.id, &activity.id).await {
            Ok(Ok(lock)) => Ok(lock),
            Ok(Err(holder)) => Err(self.refusal(&op, &actor, holder).await),
            Err(e) => {
                tracing::error!(activity = %activity.id, error = format!("{e:#}"), "taking the site's lock failed");
                Err(Refusal {
                    description: format!("{} did not start", op.kind().label()),
                    reason: format!("Nothing was changed. {TRY_AGAIN}"),
                    details: None,
                })
            }
        };
        let lock = match refused {
            Ok(lock) => lock,
            Err(refusal) => {
                let ended = self
                    .end(
                        &activity.id,
                        Status::Failed,
                        refusal.description,
                        Some(refusal.reason),
                        refusal.details,
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
        inner.running.insert(
            &site.id,
            crate::state::Running {
                activity: id.clone(),
                progress: rx.clone(),
            },
        );
        let finished = tokio::spawn(async move {
            let ctx = Ctx {
                activity: id.clone(),
                kind: activity.activity,
                started: activity.created_at,
                progress: tx,
                phases: Mutex::new(Vec::new()),
                switched: AtomicBool::new(false),
            };
            let result = engine.run(&ctx, &site, &op).await;
            let ended = match result {
                Ok(outcome) => {
                    tracing::info!(
                        activity = %id,
                        details = %serde_json::Value::Object(outcome.details.clone()),
                        "operation completed"
                    );
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
                    let mut details = ctx.phase_details();
                    if let Some(s) = e.downcast_ref::<progress::Stopped>() {
                        details.extend(s.details.clone());
                    }
                    let step = ctx.progress.borrow().phase.clone();
                    tracing::warn!(activity = %id, step, error = format!("{e:#}"), "operation failed");
                    let reason = progress::failure_reason(
                        &e,
                        op.kind(),
                        op.target(),
                        &step,
                        ctx.switched.load(Ordering::SeqCst),
                    );
                    engine
                        .end(
                            &id,
                            Status::Failed,
                            format!("{} failed", op.kind().label()),
                            Some(reason),
                            Some(details),
                        )
                        .await
                }
            };
            engine.inner.running.remove(&site.id, &id);
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
    async fn check(&self, site: &Site, op: &Operation) -> Result<(), EngineError> {
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
        if op.target() == Environment::Staging
            || matches!(op, Operation::PushToLive(_) | Operation::PreviewPush(_))
        {
            needs_docroot(Environment::Staging)?;
        }
        // Create and the resets make staging; the rest need it made.
        let needs_staging = matches!(
            op,
            Operation::PushToLive(_)
                | Operation::PreviewPush(_)
                | Operation::Backup {
                    environment: Environment::Staging,
                    ..
                }
        );
        if needs_staging && !self.staging_state(&site.id).await?.exists {
            return Err(EngineError::Conflict(NO_STAGING.into()));
        }
        match op {
            Operation::PushToLive(push) | Operation::PreviewPush(push) => {
                return self.check_push(site, push).await;
            }
            Operation::UndoPush => return self.check_undo(&site.id).await,
            Operation::RestoreLive { scope, .. }
                if !matches!(
                    scope,
                    PushScope::Site | PushScope::Database | PushScope::Files
                ) =>
            {
                return Err(EngineError::Invalid(
                    "Live is restored whole, its database only or its files only.".into(),
                ));
            }
            _ => {}
        }
        let (dir, missing) = match op {
            Operation::ResetFromTemplate(t) => (
                self.inner.snapshots.template_dir(t),
                format!("no template named {t}"),
            ),
            Operation::ResetFromBackup(b) | Operation::RestoreLive { backup: b, .. } => (
                self.inner.snapshots.backup_dir(&site.id, b),
                format!("no backup {b} of this site"),
            ),
            _ => return Ok(()),
        };
        match blocking(move || Ok(dir.is_dir())).await? {
            true => Ok(()),
            false => Err(EngineError::NotFound(missing)),
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
        let (d, s, a) = (data_dir.clone(), site.clone(), activity.clone());
        let holder = match blocking(move || lock::try_lock(&d, &s, &a)).await? {
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

    pub(crate) async fn end(
        &self,
        id: &ActivityId,
        status: Status,
        description: String,
        error: Option<String>,
        details: Option<Map<String, Value>>,
    ) -> StoredActivity {
        // Long lists (files, conflicts, cells) are cut to what the log keeps, saying how many
        // there were, so that an ending is never refused for its size.
        let details = details.map(|mut d| {
            sitetrail_core::fit_details(&mut d, sitetrail_core::MAX_DETAILS_BYTES);
            d
        });
        let mut ending = Ending {
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
                Err(sitetrail_store::StoreError::Invalid(e)) => {
                    // Trying again cannot help: end with what is surely valid.
                    tracing::error!(activity = %id, error = %e, "an ending was refused; ending without its details");
                    if ending.details.take().is_none() {
                        ending.description = None;
                    }
                    ending.error = ending.error.map(|e| {
                        let mut cut = e.len().min(sitetrail_core::activity::MAX_ERROR_BYTES);
                        while !e.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        e[..cut].to_owned()
                    });
                }
                Err(e) => {
                    tracing::error!(activity = %id, error = ?e, "ending an activity failed; retrying")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
    }

    pub(crate) fn env(site: &Site, which: Environment) -> anyhow::Result<(SiteUrl, PathBuf)> {
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

    pub(crate) async fn open(
        &self,
        site: &Site,
        which: Environment,
    ) -> anyhow::Result<(Env, SiteDb)> {
        let (url, docroot) = Self::env(site, which)?;
        let config = read_config(&docroot)
            .await
            .with_context(|| format!("reading {which}'s configuration"))?;
        let policy = &self.inner.databases;
        policy
            .check(&config)
            .map_err(|refusal| progress::for_people(format!("{which}'s {refusal}")))?;
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
                let m = self
                    .backup(ctx, site, &env, &db, *reason, (&ctx.activity, ctx.started))
                    .await;
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
                let made = async {
                    let staging = self.staging_env(site, &live).await?;
                    let source = Source::Env(&live, &live_db);
                    self.make_staging(ctx, site, &staging, source, StagingSource::Live)
                        .await
                }
                .await;
                live_db.disconnect().await;
                made?.into_details(&mut details);
                Outcome {
                    description: "Created environment for staging from live".into(),
                    details,
                }
            }
            Operation::ResetFromTemplate(_) | Operation::ResetFromBackup(_) => {
                let dir = match op {
                    Operation::ResetFromTemplate(t) => self.inner.snapshots.template_dir(t),
                    Operation::ResetFromBackup(b) => self.inner.snapshots.backup_dir(&site.id, b),
                    _ => unreachable!("matched above"),
                };
                // Checked before anything is touched.
                let m = {
                    let _t = ctx.phase(Step::CheckingSnapshot, 0);
                    let dir = dir.clone();
                    blocking(move || snapshot::verify(&dir)).await?
                };
                let (description, from) = match op {
                    Operation::ResetFromTemplate(t) => (
                        format!(
                            "Created environment for staging from the template {}",
                            m.display_name()
                        ),
                        StagingSource::Template {
                            id: t.to_string(),
                            name: m.display_name().to_owned(),
                        },
                    ),
                    _ => (
                        format!("Created environment for staging from backup {}", m.id),
                        StagingSource::Backup { id: m.id.clone() },
                    ),
                };
                let (live_env, live_db) = self.open(site, Environment::Live).await?;
                live_db.disconnect().await;
                let staging = self.staging_env(site, &live_env).await?;
                let source = Source::Snapshot(&dir, &m);
                self.make_staging(ctx, site, &staging, source, from)
                    .await?
                    .into_details(&mut details);
                Outcome {
                    description,
                    details,
                }
            }
            Operation::PushToLive(_) | Operation::PreviewPush(_) | Operation::UndoPush => {
                let done = match op {
                    Operation::PushToLive(push) => self.push(ctx, site, push, false).await,
                    Operation::PreviewPush(push) => self.push(ctx, site, push, true).await,
                    _ => self.undo_push(ctx, site).await,
                }?;
                details.extend(done.details);
                Outcome {
                    description: done.description,
                    details,
                }
            }
            Operation::RestoreLive { backup, scope } => {
                let done = self.restore_live(ctx, site, backup, *scope).await?;
                details.extend(done.details);
                Outcome {
                    description: done.description,
                    details,
                }
            }
        };
        outcome.details.extend(ctx.phase_details());
        Ok(outcome)
    }

    /// Replaces staging with a copy of `source` and records that staging was made from `from`.
    async fn make_staging(
        &self,
        ctx: &Ctx,
        site: &Site,
        staging: &Env,
        source: Source<'_>,
        from: StagingSource,
    ) -> anyhow::Result<crate::switch::ReplaceStats> {
        let stats = self
            .replace(ctx, site, staging, source, Part::whole(PushScope::Site))
            .await?;
        let files = stats.files.map_or(0, |f| f.bytes);
        self.staging_made(&site.id, staging, files, from).await;
        self.record_base_after_making(site, staging).await;
        Ok(stats)
    }
}

/// An environment's database settings, read from its docroot.
pub(crate) async fn read_config(docroot: &Path) -> anyhow::Result<WpConfig> {
    let docroot = docroot.to_owned();
    blocking(move || wpconfig::read(&docroot)).await
}
