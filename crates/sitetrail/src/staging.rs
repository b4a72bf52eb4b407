//! The staging operations from the command line: a progress line per phase with its count
//! of the total and the time it took, and a confirmation before live is overwritten.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sitetrail_core::{
    ActivityId, Actor, ActorKind, BackupId, Email, Environment, Site, SiteId, SiteUrl, Status,
    StoredActivity, TemplateId,
};
use sitetrail_server::Config;
use sitetrail_staging::{
    BackupReason, Engine, EngineError, OnConflict, Operation, Progress, Push, PushReport,
    PushScope, what,
};
use sitetrail_store::DynStore;

use crate::exit::{self, Exit};
use crate::report;

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
    /// Replaces live with staging, whole or in part; or, with --dry-run, previews it. Live
    /// is backed up first, and rows live added since staging was made to the tables live
    /// owns are carried over. Asks for confirmation on a terminal; elsewhere it needs --yes.
    Push(PushArgs),
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The site's id.
    #[arg(long, env = "SITETRAIL_SITE")]
    site: String,
    /// What goes live: `site` (database and files), `database`, `files`, `tables` (the
    /// --table ones) or `folders` (the --folder ones). wp-config.php always stays live's.
    #[arg(long, value_parser = ["site", "database", "files", "tables", "folders"], default_value = "site")]
    scope: String,
    /// With --scope tables: a table to push, named without its prefix (`posts`,
    /// `wc_orders`); repeat it for more.
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// With --scope folders: a folder to push, relative to the docroot
    /// (`wp-content/themes/shop`); repeat it for more.
    #[arg(long = "folder", value_name = "FOLDER")]
    folders: Vec<String>,
    /// Keep the staging site (its files and database) after the push; it is removed
    /// otherwise.
    #[arg(long)]
    keep_staging: bool,
    /// A row that both staging and live changed since staging was made: `stop` the push
    /// before anything changes and list them, or let `staging-wins` or `live-wins` for this
    /// push.
    #[arg(long, value_parser = ["stop", "staging-wins", "live-wins"], default_value = "stop")]
    on_conflict: String,
    /// Preview the push instead: build the new live aside, report what would change (per
    /// table, rows kept from live, conflicts, files, URL rewrites) and leave live as it is.
    #[arg(long, conflicts_with = "preview")]
    dry_run: bool,
    /// Push what this preview (its activity id, from --dry-run) showed; when live has
    /// changed since, the push stops before switching and reports the new preview.
    #[arg(long, value_name = "ACTIVITY_ID")]
    preview: Option<String>,
    /// Print the report of the preview (or of a push stopped before switching) as JSON on
    /// stdout, as the activity's `details.preview` holds it.
    #[arg(long)]
    json: bool,
    /// Push without asking: for scripts, where there is no terminal to confirm on.
    #[arg(long, short = 'y')]
    yes: bool,
}

impl PushArgs {
    /// The push these flags ask for; a scope without its list (or a list without its scope)
    /// is a usage error, found before anything is opened or logged.
    fn push(&self) -> anyhow::Result<Push> {
        let scope = PushScope::parse(&self.scope)
            .ok_or_else(|| exit::usage(format!("--scope {:?} is not a scope", self.scope)))?;
        match (scope, self.tables.is_empty(), self.folders.is_empty()) {
            (PushScope::Tables, true, _) => {
                return Err(exit::usage(
                    "--scope tables needs the tables to push: --table posts --table postmeta",
                ));
            }
            (PushScope::Folders, _, true) => {
                return Err(exit::usage(
                    "--scope folders needs the folders to push: --folder wp-content/themes/shop",
                ));
            }
            (PushScope::Tables, _, false) | (PushScope::Folders, false, _) => {
                return Err(exit::usage(
                    "--table goes with --scope tables and --folder with --scope folders, not both",
                ));
            }
            (PushScope::Site | PushScope::Database | PushScope::Files, tables, folders)
                if !tables || !folders =>
            {
                return Err(exit::usage(format!(
                    "--table needs --scope tables and --folder needs --scope folders (not --scope {})",
                    scope.as_str()
                )));
            }
            _ => {}
        }
        for t in &self.tables {
            table_name(t)?;
        }
        for f in &self.folders {
            folder(f)?;
        }
        let on_conflict = OnConflict::parse(&self.on_conflict.replace('-', "_"))
            .ok_or_else(|| exit::usage(format!("--on-conflict {:?}", self.on_conflict)))?;
        let preview = self
            .preview
            .as_deref()
            .map(|p| exit::parse("--preview", p, ActivityId::parse))
            .transpose()?;
        Ok(Push {
            scope,
            tables: self.tables.clone(),
            folders: self.folders.clone(),
            keep_staging: self.keep_staging,
            on_conflict,
            preview,
        })
    }
}

/// A table named without its prefix: the engine quotes any name, but a dot, a slash or a
/// control character is a typo or a path, never a table of the site.
pub(crate) fn table_name(t: &str) -> anyhow::Result<()> {
    let bad = t.is_empty()
        || t.len() > 64
        || t.chars().any(|c| c.is_control() || c == '.' || c == '/')
        || t.trim() != t;
    if bad {
        return Err(exit::usage(format!(
            "--table {t:?}: name a table without its prefix, as `posts` or `wc_orders`"
        )));
    }
    Ok(())
}

/// A folder relative to the docroot, inside it: no absolute path, no `..`, not the docroot
/// itself.
fn folder(f: &str) -> anyhow::Result<()> {
    let path = Path::new(f);
    let inside = !f.is_empty()
        && !f.chars().any(char::is_control)
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        && path.components().next().is_some();
    if !inside {
        return Err(exit::usage(format!(
            "--folder {f:?}: name a folder inside the docroot, relative to it, as \
             `wp-content/themes/shop`"
        )));
    }
    Ok(())
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
    pub(crate) fn actor(&self) -> anyhow::Result<Actor> {
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
pub(crate) async fn engine(config: &Config) -> anyhow::Result<(Engine, DynStore)> {
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
pub(crate) async fn site(store: &DynStore, id: &str) -> anyhow::Result<Site> {
    let id = exit::parse("--site", id, SiteId::parse)?;
    store.site(&id).await?.ok_or_else(|| {
        exit::not_found(format!(
            "there is no site {id} here; the hosting platform registers sites with \
             PUT /api/v1/sites/{{site}}"
        ))
    })
}

pub(crate) fn refused(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::NotFound(why) | EngineError::Conflict(why) => exit::not_found(why),
        EngineError::Invalid(why) => exit::usage(why),
        EngineError::Internal(e) => e,
    }
}

/// Runs an operation in the foreground, showing its progress; fails when it fails.
pub(crate) async fn run(
    engine: &Engine,
    site: &Site,
    op: Operation,
    actor: Actor,
) -> anyhow::Result<StoredActivity> {
    let ended = run_to_end(engine, site, op, actor).await?;
    match ended.status {
        Status::Completed => {
            println!("{}", ended.description);
            Ok(ended)
        }
        _ => Err(failed(&ended)),
    }
}

/// Runs an operation in the foreground, showing its progress; returns it as it ended.
pub(crate) async fn run_to_end(
    engine: &Engine,
    site: &Site,
    op: Operation,
    actor: Actor,
) -> anyhow::Result<StoredActivity> {
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
    Ok(ended)
}

/// A failed activity as the command's error (exit 1): its description, then its reason.
fn failed(ended: &StoredActivity) -> anyhow::Error {
    exit::fail(Exit::Failed, exit_message(ended))
}

fn exit_message(ended: &StoredActivity) -> String {
    match &ended.error {
        Some(why) if ended.description.ends_with('.') => format!("{} {why}", ended.description),
        Some(why) => format!("{}: {why}", ended.description),
        None => ended.description.clone(),
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
fn confirm_push(site: &Site, push: &Push) -> anyhow::Result<()> {
    let what = match push.scope {
        PushScope::Site => "its database and files".to_owned(),
        PushScope::Files => "its files (its database is kept)".to_owned(),
        PushScope::Database => "its database (its files are kept)".to_owned(),
        PushScope::Tables | PushScope::Folders => what(push),
    };
    let after = if push.keep_staging {
        "Staging is kept."
    } else {
        "Staging (its files and database) is removed afterwards; --keep-staging keeps it."
    };
    let kept = if push.scope.touches_database() {
        "\nRows live added or changed since staging was made in the tables live owns (orders, \
         customers, comments, users, form entries: `sitetrail live-owned list`) are carried \
         over; --dry-run shows what changes first."
    } else {
        ""
    };
    let question = format!(
        "This replaces live at {} with staging: {what}. Live is backed up first. {after}{kept}",
        site.live.url
    );
    confirm(
        &question,
        "push",
        &format!(
            "staging push replaces live at {} and there is no terminal to confirm on; pass \
             --yes to push without asking",
            site.live.url
        ),
        "not pushed: live was left as it is",
    )
}

/// Asks `question` on the terminal and wants `yes` typed; without a terminal refuses with
/// `no_terminal`, and with any other answer with `declined` (both exit 4).
pub(crate) fn confirm(
    question: &str,
    verb: &str,
    no_terminal: &str,
    declined: &str,
) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(exit::fail(Exit::NotConfirmed, no_terminal));
    }
    eprint!("{question}\nType yes to {verb}: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(exit::fail(Exit::NotConfirmed, declined))
    }
}

pub async fn staging(
    config: Config,
    command: StagingCommand,
    actor: ActorArgs,
) -> anyhow::Result<()> {
    let actor = actor.actor()?;
    if let StagingCommand::Push(args) = &command {
        // Usage errors end the command before the engine opens, with nothing logged.
        args.push()?;
    }
    let (engine, store) = engine(&config).await?;
    match command {
        StagingCommand::Create { site: id } => {
            let site = site(&store, &id).await?;
            run(&engine, &site, Operation::CreateStaging, actor).await?;
            Ok(())
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
            run(&engine, &site, op, actor).await?;
            Ok(())
        }
        StagingCommand::Push(args) => push(&engine, &store, args, actor).await,
    }
}

/// `staging push`: a preview (--dry-run) or a push, its report for people (or as JSON), and
/// on a push stopped by conflicts, the conflicts and how to choose.
async fn push(
    engine: &Engine,
    store: &DynStore,
    args: PushArgs,
    actor: Actor,
) -> anyhow::Result<()> {
    let push = args.push()?;
    let site = site(store, &args.site).await?;
    if args.dry_run {
        let ended = run_to_end(engine, &site, Operation::PreviewPush(push), actor).await?;
        if ended.status != Status::Completed {
            return Err(failed(&ended));
        }
        let report =
            report_of(&ended).context("the preview ended without its report; run it again")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        println!("{}", ended.description);
        print!("{}", report::for_people(&report));
        if report.conflicts.is_empty() {
            println!(
                "Nothing was changed. To push what this preview shows: sitetrail staging push \
                 --site {} --preview {}{}",
                site.id,
                ended.id,
                same_flags(&args, true)
            );
        } else {
            println!(
                "Nothing was changed. {}",
                report::how_to_choose(site.id.as_str(), &same_flags(&args, false))
            );
        }
        return Ok(());
    }
    if !args.yes {
        confirm_push(&site, &push)?;
    }
    let ended = run_to_end(engine, &site, Operation::PushToLive(push), actor).await?;
    let report = report_of(&ended);
    if args.json
        && let Some(report) = &report
    {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    if ended.status == Status::Completed {
        if !args.json {
            println!("{}", ended.description);
        }
        if let Ok(Some(window)) = engine.undo_window(&site.id).await
            && window.push == ended.id
        {
            eprintln!(
                "Until {} (or the next push): sitetrail live undo --site {} puts back live as \
                 it was.",
                window.until, site.id
            );
        }
        return Ok(());
    }
    match report {
        Some(report) if !report.conflicts.is_empty() => {
            if !args.json {
                print!("{}", report::for_people(&report));
            }
            Err(exit::fail(
                Exit::Failed,
                format!(
                    "the push stopped before switching: {} {} changed on both staging and \
                     live, and live was not changed. {}",
                    report.conflicts.len(),
                    if report.conflicts.len() == 1 {
                        "row was"
                    } else {
                        "rows were"
                    },
                    report::how_to_choose(site.id.as_str(), &same_flags(&args, false))
                ),
            ))
        }
        Some(report) => {
            if !args.json {
                print!("{}", report::for_people(&report));
            }
            let again = if args.preview.is_some() {
                format!(
                    " Preview again: sitetrail staging push --site {} --dry-run{}",
                    site.id,
                    same_flags(&args, true)
                )
            } else {
                String::new()
            };
            Err(exit::fail(
                Exit::Failed,
                format!("{}{again}", exit_message(&ended)),
            ))
        }
        None => Err(failed(&ended)),
    }
}

/// The report a preview or a push wrote into its activity's `details.preview`.
fn report_of(activity: &StoredActivity) -> Option<PushReport> {
    serde_json::from_value(activity.details.get("preview")?.clone()).ok()
}

/// The flags a push repeats from `args`: its scope and lists, its keeping of staging, and
/// with `conflict` its choice on conflicts.
fn same_flags(args: &PushArgs, conflict: bool) -> String {
    let mut flags = String::new();
    if args.scope != "site" {
        flags += &format!(" --scope {}", args.scope);
    }
    for t in &args.tables {
        flags += &format!(" --table {t}");
    }
    for f in &args.folders {
        flags += &format!(" --folder {f}");
    }
    if conflict && args.on_conflict != "stop" {
        flags += &format!(" --on-conflict {}", args.on_conflict);
    }
    if args.keep_staging {
        flags += " --keep-staging";
    }
    flags
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
            run(&engine, &site, op, actor.actor()?).await?;
            Ok(())
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
