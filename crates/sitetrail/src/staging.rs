//! The staging operations from the command line, with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sitetrail_core::{
    Actor, ActorKind, BackupId, Email, Environment, SiteId, SiteUrl, Status, TemplateId,
};
use sitetrail_server::Config;
use sitetrail_staging::{BackupReason, Engine, Operation, PushScope};

#[derive(Subcommand)]
pub enum StagingCommand {
    /// Creates (or recreates) staging from live.
    Create {
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
    },
    /// Replaces staging with a template or a backup.
    Reset {
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        #[arg(long, conflicts_with = "backup", required_unless_present = "backup")]
        template: Option<String>,
        #[arg(long)]
        backup: Option<String>,
    },
    /// Replaces live with staging. Live is backed up first.
    Push {
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// `site` (database and files) or `files`.
        #[arg(long, value_parser = ["site", "files"], default_value = "site")]
        scope: String,
        /// Keep staging after the push (it is removed otherwise).
        #[arg(long)]
        keep_staging: bool,
    },
}

#[derive(Subcommand)]
pub enum BackupsCommand {
    /// Backs up one environment of a site.
    Create {
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        #[arg(long, value_parser = ["live", "staging"], default_value = "live")]
        environment: String,
    },
    /// Lists a site's backups, newest first.
    List {
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
    },
}

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// Imports a template from an existing WordPress docroot (its files and database).
    Import {
        #[arg(long, env = "SITETRAIL_NAME")]
        name: String,
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
    #[arg(long, global = true, env = "SITETRAIL_ACTOR_KIND", value_parser = ["user", "support", "system"], default_value = "system")]
    pub actor_kind: String,
    #[arg(long, global = true, env = "SITETRAIL_ACTOR_EMAIL")]
    pub actor_email: Option<String>,
    #[arg(long, global = true, env = "SITETRAIL_ACTOR_NAME")]
    pub actor_name: Option<String>,
}

impl ActorArgs {
    fn actor(&self) -> anyhow::Result<Actor> {
        let kind = ActorKind::parse(&self.actor_kind)
            .context("--actor-kind is user, support or system")?;
        let actor = Actor {
            kind,
            email: self.actor_email.as_deref().map(Email::parse).transpose()?,
            name: self.actor_name.clone(),
        };
        actor.validate()?;
        Ok(actor)
    }
}

async fn engine(config: &Config) -> anyhow::Result<Engine> {
    let store = sitetrail_server::open_store(config).await?;
    let databases = sitetrail_staging::DatabasePolicy::new(
        config.database_hosts.clone(),
        config.mysql_admin.as_deref(),
    )?;
    let engine = Engine::new(store, &config.data_dir, databases);
    engine.recover().await?;
    Ok(engine)
}

/// Runs an operation in the foreground, showing its progress; fails when it fails.
async fn run(engine: &Engine, site: &str, op: Operation, actor: Actor) -> anyhow::Result<()> {
    let site = SiteId::parse(site)?;
    let label = op.kind().label();
    let started = engine.start(&site, op, actor).await?;
    eprintln!("{label} on {site}: activity {}", started.activity.id);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut progress = started.progress.clone();
    let finished = started.finished;
    tokio::pin!(finished);
    let ended = loop {
        tokio::select! {
            done = &mut finished => break done?,
            changed = progress.changed() => {
                if changed.is_ok() {
                    let p = progress.borrow().clone();
                    let count = if p.done > 0 { format!(" ({} done)", p.done) } else { String::new() };
                    bar.set_message(format!("{}{count}", p.phase));
                }
            }
        }
    };
    bar.finish_and_clear();
    match ended.status {
        Status::Completed => {
            println!("{}", ended.description);
            Ok(())
        }
        _ => anyhow::bail!("{}: {}", ended.description, ended.error.unwrap_or_default()),
    }
}

pub async fn staging(
    config: Config,
    command: StagingCommand,
    actor: ActorArgs,
) -> anyhow::Result<()> {
    let engine = engine(&config).await?;
    let actor = actor.actor()?;
    match command {
        StagingCommand::Create { site } => {
            run(&engine, &site, Operation::CreateStaging, actor).await
        }
        StagingCommand::Reset {
            site,
            template,
            backup,
        } => {
            let op = match (template, backup) {
                (Some(t), _) => Operation::ResetFromTemplate(TemplateId::parse(&t)?),
                (None, Some(b)) => Operation::ResetFromBackup(BackupId::parse(&b)?),
                (None, None) => anyhow::bail!("name --template or --backup"),
            };
            run(&engine, &site, op, actor).await
        }
        StagingCommand::Push {
            site,
            scope,
            keep_staging,
        } => {
            let scope = if scope == "files" {
                PushScope::Files
            } else {
                PushScope::Site
            };
            run(
                &engine,
                &site,
                Operation::PushToLive {
                    scope,
                    keep_staging,
                },
                actor,
            )
            .await
        }
    }
}

pub async fn backups(
    config: Config,
    command: BackupsCommand,
    actor: ActorArgs,
) -> anyhow::Result<()> {
    let engine = engine(&config).await?;
    match command {
        BackupsCommand::Create { site, environment } => {
            let environment = Environment::parse(&environment)?;
            let op = Operation::Backup {
                environment,
                reason: BackupReason::Manual,
            };
            run(&engine, &site, op, actor.actor()?).await
        }
        BackupsCommand::List { site } => {
            for m in engine.snapshots().backups(&SiteId::parse(&site)?)? {
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
    let engine = engine(&config).await?;
    match command {
        TemplatesCommand::Import { name, docroot, url } => {
            let url = SiteUrl::parse(&url)?;
            let docroot = absolute(&docroot)?;
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            let m = engine
                .import_named_template(&name, None, &docroot, &url, &|phase| {
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
            for m in engine.snapshots().templates()? {
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
    std::fs::canonicalize(p).with_context(|| format!("{} does not exist", p.display()))
}
