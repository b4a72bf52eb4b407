//! Live from the command line: undoing the last push, restoring live from a backup, and the
//! tables live owns (whose new rows a push carries over).

use clap::Subcommand;
use sitetrail_core::{BackupId, Site};
use sitetrail_server::Config;
use sitetrail_staging::{Engine, Operation, PushScope};

use crate::exit;
use crate::report::shown;
use crate::staging::{ActorArgs, confirm, engine, run, site};

#[derive(Subcommand)]
pub enum LiveCommand {
    /// Puts back live as it was before the last push, while its window is open (24 hours,
    /// or until the next push). Rows live gained since the push in the tables live owns are
    /// carried over. Asks for confirmation on a terminal; elsewhere it needs --yes.
    Undo {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// Undo without asking: for scripts, where there is no terminal to confirm on.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Replaces live (whole, its database or its files) with one of the site's backups. Live
    /// is backed up first. Asks for confirmation on a terminal; elsewhere it needs --yes.
    Restore {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// The backup to restore (its id, as `backups list` shows it).
        #[arg(long)]
        backup: String,
        /// What to restore: `site` (database and files), `database` or `files`.
        #[arg(long, value_parser = ["site", "database", "files"], default_value = "site")]
        scope: String,
        /// Restore without asking: for scripts, where there is no terminal to confirm on.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum LiveOwnedCommand {
    /// Lists the tables live owns on a site: the profile sitetrail ships, then the tables
    /// added for the site.
    List {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
    },
    /// Adds a table to the site's live-owned tables: a push carries over the rows live
    /// added or changed in it since staging was made.
    Add {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// The table, named without its prefix (`my_bookings`).
        table: String,
    },
    /// Removes a table added for the site (the shipped profile stays).
    Remove {
        /// The site's id.
        #[arg(long, env = "SITETRAIL_SITE")]
        site: String,
        /// The table, named without its prefix.
        table: String,
    },
}

pub async fn live(config: Config, command: LiveCommand, actor: ActorArgs) -> anyhow::Result<()> {
    let actor = actor.actor()?;
    if let LiveCommand::Restore { backup, .. } = &command {
        exit::parse("--backup", backup, BackupId::parse)?;
    }
    let (engine, store) = engine(&config).await?;
    match command {
        LiveCommand::Undo { site: id, yes } => {
            let site = site(&store, &id).await?;
            let Some(window) = engine.undo_window(&site.id).await? else {
                return Err(exit::not_found(format!(
                    "there is no push of {} to undo: live has not been pushed to, or the last \
                     push's window (24 hours, or until the next push) has closed. A backup \
                     can still be restored: sitetrail backups list --site {}, then sitetrail \
                     live restore",
                    site.id, site.id
                )));
            };
            if !yes {
                let what = match window.puts_push_back {
                    true => format!(
                        "This puts the push that {} undid at {} back on live at {}",
                        window.push, window.pushed_at, site.live.url
                    ),
                    false => format!(
                        "This puts back live at {} as it was before the push {} of {}",
                        site.live.url, window.push, window.pushed_at
                    ),
                };
                confirm(
                    &format!(
                        "{what}. Rows live gained since then in the tables live owns are \
                         carried over."
                    ),
                    "undo the push",
                    &format!(
                        "live undo replaces live at {} and there is no terminal to confirm \
                         on; pass --yes to undo without asking",
                        site.live.url
                    ),
                    "not undone: live was left as it is",
                )?;
            }
            run(&engine, &site, Operation::UndoPush, actor).await?;
            Ok(())
        }
        LiveCommand::Restore {
            site: id,
            backup,
            scope,
            yes,
        } => {
            let site = site(&store, &id).await?;
            let backup = exit::parse("--backup", &backup, BackupId::parse)?;
            let scope = PushScope::parse(&scope)
                .ok_or_else(|| exit::usage(format!("--scope {scope:?} is not a scope")))?;
            let taken = backup_of(&engine, &site, &backup)?;
            if !yes {
                let what = match scope {
                    PushScope::Database => "its database (its files are kept)",
                    PushScope::Files => "its files (its database is kept)",
                    _ => "its database and files",
                };
                confirm(
                    &format!(
                        "This replaces live at {} with the backup {backup} ({taken}): {what}. \
                         Live is backed up first.",
                        site.live.url
                    ),
                    "restore",
                    &format!(
                        "live restore replaces live at {} and there is no terminal to \
                         confirm on; pass --yes to restore without asking",
                        site.live.url
                    ),
                    "not restored: live was left as it is",
                )?;
            }
            run(
                &engine,
                &site,
                Operation::RestoreLive { backup, scope },
                actor,
            )
            .await?;
            Ok(())
        }
    }
}

/// When the site's backup was taken and of what; exit 3 when the site has no such backup.
fn backup_of(engine: &Engine, site: &Site, backup: &BackupId) -> anyhow::Result<String> {
    let found = engine
        .snapshots()
        .backups(&site.id)?
        .into_iter()
        .find(|m| m.id == backup.as_str());
    match found {
        Some(m) => Ok(match m.environment {
            Some(env) => format!("{env}, taken {}", m.created_at),
            None => format!("taken {}", m.created_at),
        }),
        None => Err(exit::not_found(format!(
            "there is no backup {backup} of {}; sitetrail backups list --site {} lists them",
            site.id, site.id
        ))),
    }
}

pub async fn live_owned(config: Config, command: LiveOwnedCommand) -> anyhow::Result<()> {
    let (engine, store) = engine(&config).await?;
    match command {
        LiveOwnedCommand::List { site: id } => {
            let site = site(&store, &id).await?;
            print!("{}", listed(&engine.live_owned(&site.id).await?));
            Ok(())
        }
        LiveOwnedCommand::Add { site: id, table } => {
            crate::staging::table_name(&table)?;
            let site = site(&store, &id).await?;
            let owned = engine.live_owned(&site.id).await?;
            if owned.shipped.iter().any(|t| t.table == table) || owned.extra.contains(&table) {
                eprintln!("{} is already live's on {}", shown(&table), site.id);
                print!("{}", listed(&owned));
                return Ok(());
            }
            let mut extra = owned.extra;
            extra.push(table);
            let owned = engine
                .set_live_owned(&site.id, extra)
                .await
                .map_err(crate::staging::refused)?;
            print!("{}", listed(&owned));
            Ok(())
        }
        LiveOwnedCommand::Remove { site: id, table } => {
            let site = site(&store, &id).await?;
            let owned = engine.live_owned(&site.id).await?;
            if !owned.extra.contains(&table) {
                return Err(if owned.shipped.iter().any(|t| t.table == table) {
                    exit::usage(format!(
                        "{} is in the profile sitetrail ships and stays live's; only tables \
                         added for {} can be removed",
                        shown(&table),
                        site.id
                    ))
                } else {
                    exit::not_found(format!(
                        "{} is not among the tables added for {}; sitetrail live-owned list \
                         --site {} names them",
                        shown(&table),
                        site.id,
                        site.id
                    ))
                });
            }
            let extra = owned.extra.into_iter().filter(|t| *t != table).collect();
            let owned = engine
                .set_live_owned(&site.id, extra)
                .await
                .map_err(crate::staging::refused)?;
            print!("{}", listed(&owned));
            Ok(())
        }
    }
}

/// One line per table live owns: its name, what it holds, and which rows when not all.
fn listed(owned: &sitetrail_staging::LiveOwned) -> String {
    let mut out = String::new();
    for t in &owned.shipped {
        out += &format!("{}\t{}", shown(&t.table), shown(&t.holds));
        if let Some(rows) = &t.rows {
            out += &format!("\t{}", shown(rows));
        }
        out.push('\n');
    }
    for t in &owned.extra {
        out += &format!("{}\tadded for this site\n", shown(t));
    }
    out
}
