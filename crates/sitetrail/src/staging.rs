//! The staging operations from the command line: a progress line per phase with its count
//! of the total and the time it took, and a confirmation before live is overwritten.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sitetrail_core::{
    Actor, ActorKind, BackupId, Email, Environment, Site, SiteId, SiteUrl, Status, TemplateId,
};
use sitetrail_server::Config;
use sitetrail_staging::{BackupReason, Engine, EngineError, Operation, Progress, PushScope};
use sitetrail_store::DynStore;

use crate::exit::{self, Exit};

#[derive(Subcommand)]
pub enum StagingCommand {
    /// Creates (or recreates) staging from live.
    Create {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
    },
    /// Replaces staging with a template or a backup.
    Reset {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// The template to reset staging from (its id, as `templates list` shows it).
        #[arg(long, conflicts_with = "backup", required_unless_present = "backup")]
        template: Option<String>,
        /// The backup to reset staging from (its id, as `backups list` shows it).
        #[arg(long)]
        backup: Option<String>,
    },
    /// Replaces live with staging. Live is backed up first. Asks for confirmation on a
    /// terminal; elsewhere it needs --yes.
    Push {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// `site` (database and files) or `files`.
        #[arg(long, value_parser = ["site", "files"], default_value = "site")]
        scope: String,
        /// Keep the staging site (its files and database) after the push; it is removed
        /// otherwise.
        #[arg(long)]
        keep_staging: bool,
        /// Push without asking: for scripts, where there is no terminal to confirm on.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum BackupsCommand {
    /// Backs up one environment of a site.
    Create {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// The environment to back up.
        #[arg(long, value_parser = ["live", "staging"], default_value = "live")]
        environment: String,
    },
    /// Lists a site's backups, newest first.
    List {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
    },
}

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// Imports a template from an existing WordPress docroot (its files and database).
    Import {
        /// The template's name, as people see it in the template picker ("Bakery Classic";
        /// spaces allowed, at most 80 characters).
        #[arg(long, env = "SITETRAIL_NAME")]
        name: String,
        /// The template's id (`[A-Za-z0-9._-]`, at most 64); made from the name when not
        /// given ("Bakery Classic": bakery-classic).
        #[arg(long)]
        id: Option<String>,
        /// The WordPress docroot to copy (its wp-config.php names its database).
        #[arg(long, env = "SITETRAIL_DOCROOT")]
        docroot: PathBuf,
        /// The URL the WordPress at that docroot is installed for.
        #[arg(long, env = "SITETRAIL_URL")]
        url: String,
    },
    /// Lists the templates.
    List,
}

/// Who runs an operation from the command line: the system, unless a person is named.
#[derive(clap::Args, Clone)]
pub struct ActorArgs {
    /// Who the log names as having run the operation: a user, support (clients see
    /// "Support user") or the system.
    #[arg(long, global = true, env = "SITETRAIL_ACTOR_KIND", value_parser = ["user", "support", "system"], default_value = "system")]
    pub actor_kind: String,
    /// The person's email (with --actor-kind user or support).
    #[arg(long, global = true, env = "SITETRAIL_ACTOR_EMAIL")]
    pub actor_email: Option<String>,
    /// The person's name (optional).
    #[arg(long, global = true, env = "SITETRAIL_ACTOR_NAME")]
    pub actor_name: Option<String>,
}

impl ActorArgs {
    fn actor(&self) -> anyhow::Result<Actor> {
        let kind = ActorKind::parse(&self.actor_kind)
            .context("--actor-kind is user, support or system")?;
        let actor = Actor {
            kind,
            email: self
                .actor_email
                .as_deref()
                .map(|e| exit::parse("--actor-email", e, Email::parse))
                .transpose()?,
            name: self.actor_name.clone(),
        };
        actor.validate().map_err(|e| exit::usage(e.to_string()))?;
        Ok(actor)
    }
}

/// The engine on the store and data dir `sitetrail serve` uses, with that store.
async fn engine(config: &Config) -> anyhow::Result<(Engine, DynStore)> {
    let store = sitetrail_server::open_store(config).await?;
    let databases = sitetrail_staging::DatabasePolicy::new(
        config.database_hosts.clone(),
        config.mysql_admin.as_deref(),
    )
    .map_err(|e| exit::usage(format!("{e:#}")))?;
    let engine = Engine::new(store.clone(), &config.data_dir, databases);
    engine.recover().await?;
    Ok((engine, store))
}

/// The registered site, or exit 3.
async fn site(store: &DynStore, id: &str) -> anyhow::Result<Site> {
    let id = exit::parse("--site", id, SiteId::parse)?;
    store.site(&id).await?.ok_or_else(|| {
        exit::not_found(format!(
            "there is no site {id} here; the hosting platform registers sites with \
             PUT /api/v1/sites/{{site}}"
        ))
    })
}

fn refused(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::NotFound(why) | EngineError::Conflict(why) => exit::not_found(why),
        EngineError::Invalid(why) => exit::usage(why),
        EngineError::Internal(e) => e,
    }
}

/// Runs an operation in the foreground, showing its progress; fails when it fails.
async fn run(engine: &Engine, site: &Site, op: Operation, actor: Actor) -> anyhow::Result<()> {
    let label = op.kind().label();
    let started = engine.start(&site.id, op, actor).await.map_err(refused)?;
    eprintln!("{label} on {}: activity {}", site.id, started.activity.id);
    let mut shown = Phases::new();
    let mut progress = started.progress.clone();
    let finished = started.finished;
    tokio::pin!(finished);
    let ended = loop {
        tokio::select! {
            done = &mut finished => break done?,
            changed = progress.changed() => {
                if changed.is_ok() {
                    let now = progress.borrow_and_update().clone();
                    shown.update(now);
                }
            }
        }
    };
    shown.finish();
    match ended.status {
        Status::Completed => {
            println!("{}", ended.description);
            Ok(())
        }
        _ => Err(exit::fail(
            Exit::Failed,
            match ended.error {
                Some(why) if ended.description.ends_with('.') => {
                    format!("{} {why}", ended.description)
                }
                Some(why) => format!("{}: {why}", ended.description),
                None => ended.description,
            },
        )),
    }
}

/// The progress display: one line for the running phase (its count of the total and the
/// time the operation has taken), and a line that stays when a phase ends.
struct Phases {
    bar: ProgressBar,
    started: Instant,
    current: Option<(Progress, Instant)>,
}

impl Phases {
    fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Phases {
            bar,
            started: Instant::now(),
            current: None,
        }
    }

    fn update(&mut self, now: Progress) {
        if now.phase.is_empty() {
            return;
        }
        if self.current.as_ref().map(|(p, _)| &p.phase) != Some(&now.phase) {
            self.end_phase();
            self.current = Some((now.clone(), Instant::now()));
        } else if let Some((p, _)) = &mut self.current {
            *p = now.clone();
        }
        self.bar.set_message(counted(&now));
    }

    fn end_phase(&mut self) {
        if let Some((p, since)) = self.current.take() {
            let line = format!("{} ({:.1} s)", counted(&p), since.elapsed().as_secs_f64());
            self.bar.suspend(|| eprintln!("  {line}"));
        }
    }

    fn finish(mut self) {
        self.end_phase();
        self.bar.finish_and_clear();
        eprintln!("  took {:.1} s", self.started.elapsed().as_secs_f64());
    }
}

/// "Copying the files 1200/2465", or the phase alone when it counts nothing.
pub fn counted(p: &Progress) -> String {
    match (p.done, p.total) {
        (_, 0) if p.done == 0 => p.phase.clone(),
        (done, 0) => format!("{} {done}", p.phase),
        (done, total) => format!("{} {done}/{total}", p.phase),
    }
}

/// Asks on the terminal before live is overwritten; without a terminal, refuses unless
/// `--yes` was given.
fn confirm_push(site: &Site, scope: PushScope, keep_staging: bool) -> anyhow::Result<()> {
    let what = match scope {
        PushScope::Site => "its database and files",
        PushScope::Files => "its files (its database is kept)",
        PushScope::Database => "its database (its files are kept)",
        PushScope::Tables => "the chosen tables",
        PushScope::Folders => "the chosen folders",
    };
    let after = if keep_staging {
        "Staging is kept."
    } else {
        "Staging (its files and database) is removed afterwards; --keep-staging keeps it."
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(exit::fail(
            Exit::NotConfirmed,
            format!(
                "staging push replaces live at {} and there is no terminal to confirm on; \
                 pass --yes to push without asking",
                site.live.url
            ),
        ));
    }
    eprint!(
        "This replaces live at {} with staging: {what}. Live is backed up first. {after}\n\
         Orders, comments and sign-ups made on live since staging was made are lost with a \
         whole-site push.\nType yes to push: ",
        site.live.url
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(exit::fail(
            Exit::NotConfirmed,
            "not pushed: live was left as it is",
        ))
    }
}

pub async fn staging(
    config: Config,
    command: StagingCommand,
    actor: ActorArgs,
) -> anyhow::Result<()> {
    let actor = actor.actor()?;
    let (engine, store) = engine(&config).await?;
    match command {
        StagingCommand::Create { site: id } => {
            let site = site(&store, &id).await?;
            run(&engine, &site, Operation::CreateStaging, actor).await
        }
        StagingCommand::Reset {
            site: id,
            template,
            backup,
        } => {
            let site = site(&store, &id).await?;
            let op = match (template, backup) {
                (Some(t), _) => {
                    Operation::ResetFromTemplate(exit::parse("--template", &t, TemplateId::parse)?)
                }
                (None, Some(b)) => {
                    Operation::ResetFromBackup(exit::parse("--backup", &b, BackupId::parse)?)
                }
                (None, None) => return Err(exit::usage("name --template or --backup")),
            };
            run(&engine, &site, op, actor).await
        }
        StagingCommand::Push {
            site: id,
            scope,
            keep_staging,
            yes,
        } => {
            let site = site(&store, &id).await?;
            let scope = if scope == "files" {
                PushScope::Files
            } else {
                PushScope::Site
            };
            if !yes {
                confirm_push(&site, scope, keep_staging)?;
            }
            let op = Operation::PushToLive(sitetrail_staging::Push {
                scope,
                keep_staging,
                ..Default::default()
            });
            run(&engine, &site, op, actor).await
        }
    }
}

pub async fn backups(
    config: Config,
    command: BackupsCommand,
    actor: ActorArgs,
) -> anyhow::Result<()> {
    let (engine, store) = engine(&config).await?;
    match command {
        BackupsCommand::Create {
            site: id,
            environment,
        } => {
            let site = site(&store, &id).await?;
            let environment = exit::parse("--environment", &environment, Environment::parse)?;
            let op = Operation::Backup {
                environment,
                reason: BackupReason::Manual,
            };
            run(&engine, &site, op, actor.actor()?).await
        }
        BackupsCommand::List { site: id } => {
            let site = site(&store, &id).await?;
            let backups = engine.snapshots().backups(&site.id)?;
            if backups.is_empty() {
                eprintln!(
                    "{} has no backups yet; `sitetrail backups create --site {}` makes one",
                    site.id, site.id
                );
            }
            for m in backups {
                println!(
                    "{}\t{}\t{}\t{} files, {} bytes\t{} tables, {} rows",
                    m.id,
                    m.created_at,
                    serde_json::to_value(m.reason)?.as_str().unwrap_or_default(),
                    m.files.files,
                    m.files.bytes,
                    m.database.tables,
                    m.database.rows
                );
            }
            Ok(())
        }
    }
}

pub async fn templates(config: Config, command: TemplatesCommand) -> anyhow::Result<()> {
    let (engine, _) = engine(&config).await?;
    match command {
        TemplatesCommand::Import {
            name,
            id,
            docroot,
            url,
        } => {
            let name = sitetrail_staging::snapshot::template_name(&name)
                .map_err(|why| exit::usage(format!("--name {name:?}: {why}")))?;
            let id = id
                .map(|id| exit::parse("--id", &id, TemplateId::parse))
                .transpose()?;
            let url = exit::parse("--url", &url, SiteUrl::parse)?;
            let docroot = absolute(&docroot)?;
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            let m = engine
                .import_named_template(&name, id.as_ref(), &docroot, &url, &|phase| {
                    bar.set_message(format!("copying the {phase}"))
                })
                .await;
            bar.finish_and_clear();
            let m = m?;
            println!(
                "imported template {} ({}): {} files, {} tables, {} rows",
                m.display_name(),
                m.id,
                m.files.files,
                m.database.tables,
                m.database.rows
            );
            Ok(())
        }
        TemplatesCommand::List => {
            let templates = engine.snapshots().templates()?;
            if templates.is_empty() {
                eprintln!("there are no templates yet; `sitetrail templates import` makes one");
            }
            for m in templates {
                println!(
                    "{}\t{}\t{}\t{}",
                    m.id,
                    m.display_name(),
                    m.source_url,
                    m.created_at
                );
            }
            Ok(())
        }
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|_| exit::not_found(format!("{} does not exist", p.display())))
}
