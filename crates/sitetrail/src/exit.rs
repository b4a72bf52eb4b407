//! How a command ends: one exit code per kind of outcome, the table `--help` prints, and
//! the checks that keep a command from reporting success about something it never found.

use std::path::Path;

use sitetrail_server::Config;

/// The exit codes, as `sitetrail --help` lists them.
pub const TABLE: &str = "\
Exit codes:
  0  done
  1  failed: verify found the log changed, or an operation ran and ended failed (a push
     stopped by conflicts lists them and how to choose)
  2  usage: a flag or a value is wrong (an id, a URL, an email, a scope without its list)
  3  not found: no data dir or database there, or no such account, site, backup, template
     or staging site (create staging before pushing or backing it up), or no push to undo
  4  not confirmed: `staging push`, `live undo` or `live restore` was not confirmed (answer
     yes on a terminal, or pass --yes)
  5  error: sitetrail could not do it (the database, the disk); the message says why";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    NotConfirmed = 4,
    Error = 5,
}

/// An error that knows its exit code; any other error exits with [`Exit::Error`].
#[derive(Debug)]
pub struct Ending {
    pub exit: Exit,
    pub message: String,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Ending {}

pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    Ending {
        exit,
        message: message.into(),
    }
    .into()
}

pub fn not_found(message: impl Into<String>) -> anyhow::Error {
    fail(Exit::NotFound, message)
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    fail(Exit::Usage, message)
}

/// The exit code of an error: its own, or that of the first cause that has one.
pub fn code_of(e: &anyhow::Error) -> Exit {
    e.chain()
        .find_map(|cause| cause.downcast_ref::<Ending>().map(|end| end.exit))
        .unwrap_or(Exit::Error)
}

/// Parses an id-like value, a wrong one being a usage error that names its flag.
pub fn parse<T, E: std::fmt::Display>(
    flag: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> anyhow::Result<T> {
    parse(value).map_err(|e| usage(format!("{flag} {value:?}: {e}")))
}

/// The configuration of a command that reads what `sitetrail serve` made: the data dir
/// (and SQLite's file, unless `--database` names another) must exist; nothing is created.
pub fn existing(data_dir: &Path, database: Option<String>) -> anyhow::Result<Config> {
    let config = Config::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir.to_owned(),
        database,
    );
    let shown = data_dir.display();
    if !data_dir.is_dir() {
        return Err(not_found(format!(
            "there is no sitetrail data dir at {shown}; pass --data-dir (or set \
             SITETRAIL_DATA_DIR) to the one `sitetrail serve` uses"
        )));
    }
    let sqlite = match config.database.as_deref() {
        None => Some(config.sqlite_path()),
        Some(url) if url.starts_with("sqlite:") => Some(
            url.trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .into(),
        ),
        Some(_) => None,
    };
    if let Some(db) = sqlite
        && !db.is_file()
    {
        return Err(not_found(format!(
            "there is no sitetrail database at {}; pass the --data-dir (or --database) that \
             `sitetrail serve` uses",
            db.display()
        )));
    }
    Ok(config)
}
