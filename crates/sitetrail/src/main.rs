//! The command line: parses flags and calls the library.

#[cfg(feature = "demo")]
mod demo;
mod exit;
mod integrity;
mod live;
mod report;
mod staging;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sitetrail_core::{AccountId, Actor, ActorKind, Audience, Email, SiteId, Viewer};
use sitetrail_server::{App, Config, TokenKeys};

#[derive(Parser)]
#[command(
    name = "sitetrail",
    version,
    about = "The staging engine and Activity Logs of managed WordPress hosting",
    after_help = exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Storage {
    /// Holds the SQLite database, the token signing key and the snapshots.
    #[arg(
        long,
        global = true,
        env = "SITETRAIL_DATA_DIR",
        default_value = "./sitetrail-data"
    )]
    data_dir: PathBuf,
    /// A database URL instead of SQLite in the data dir.
    #[arg(long, global = true, env = "SITETRAIL_DATABASE")]
    database: Option<String>,
}

/// The database servers sites may use.
#[derive(Args, Clone)]
struct DatabaseServers {
    /// The MariaDB/MySQL servers a site's wp-config.php may name (DB_HOST), comma-separated:
    /// `host`, `host:port`, `[ipv6]:port`, `/path/to.sock` (no port: 3306). Any other is
    /// refused before a connection is made.
    #[arg(
        long,
        global = true,
        env = "SITETRAIL_DATABASE_HOSTS",
        default_value = sitetrail_staging::policy::DEFAULT_DATABASE_HOSTS
    )]
    database_hosts: sitetrail_staging::DatabaseHosts,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server: the API and the dashboard.
    Serve {
        /// The address to serve the API and the dashboard on (port 0: any free port).
        #[arg(long, env = "SITETRAIL_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        storage: Storage,
        /// `mysql://user:password@host:port`: creates staging databases when live's own
        /// credentials cannot.
        #[arg(long, env = "SITETRAIL_MYSQL_ADMIN_URL", hide_env_values = true)]
        mysql_admin_url: Option<String>,
        /// Sends the session cookie without `Secure`, for a dashboard served over plain
        /// HTTP on a loopback address; refused when `--listen` is not loopback.
        #[arg(long, env = "SITETRAIL_INSECURE_COOKIES_ON_LOOPBACK")]
        insecure_cookies_on_loopback: bool,
        #[command(flatten)]
        databases: DatabaseServers,
        #[command(flatten)]
        limits: Limits,
    },
    /// Runs the server with a demo partner, accounts, sites and months of history, and
    /// prints a login link per persona (built with the `demo` feature: scripts/demo.sh).
    Demo {
        /// The address to serve the demo on (port 0: any free port).
        #[arg(long, env = "SITETRAIL_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Holds the demo's database, snapshots and WordPress; made and seeded on first run.
        #[arg(long, env = "SITETRAIL_DATA_DIR", default_value = "./sitetrail-demo")]
        data_dir: PathBuf,
    },
    /// Staging operations on a site: create, reset, push (with a progress bar).
    Staging {
        #[command(subcommand)]
        command: staging::StagingCommand,
        #[command(flatten)]
        storage: Storage,
        #[command(flatten)]
        actor: staging::ActorArgs,
        /// `mysql://user:password@host:port`: creates staging databases when live's own
        /// credentials cannot.
        #[arg(
            long,
            global = true,
            env = "SITETRAIL_MYSQL_ADMIN_URL",
            hide_env_values = true
        )]
        mysql_admin_url: Option<String>,
        #[command(flatten)]
        databases: DatabaseServers,
    },
    /// Live after a push: undo the last push, restore live from a backup.
    Live {
        #[command(subcommand)]
        command: live::LiveCommand,
        #[command(flatten)]
        storage: Storage,
        #[command(flatten)]
        actor: staging::ActorArgs,
        #[command(flatten)]
        databases: DatabaseServers,
    },
    /// The tables live owns on a site (orders, customers, comments, users, form entries):
    /// a push carries over the rows live added or changed in them since staging was made.
    #[command(name = "live-owned")]
    LiveOwned {
        #[command(subcommand)]
        command: live::LiveOwnedCommand,
        #[command(flatten)]
        storage: Storage,
        #[command(flatten)]
        databases: DatabaseServers,
    },
    /// A site's backups.
    Backups {
        #[command(subcommand)]
        command: staging::BackupsCommand,
        #[command(flatten)]
        storage: Storage,
        #[command(flatten)]
        actor: staging::ActorArgs,
        #[command(flatten)]
        databases: DatabaseServers,
    },
    /// Site templates staging can be reset from.
    Templates {
        #[command(subcommand)]
        command: staging::TemplatesCommand,
        #[command(flatten)]
        storage: Storage,
        #[command(flatten)]
        databases: DatabaseServers,
    },
    /// Checks the log's integrity: each account's hash chain, its signed checkpoints and
    /// its activities. Names the first entry that was changed, removed or inserted and exits
    /// with 1 when any account fails.
    Verify {
        /// One account (default: all of them).
        #[arg(long, env = "SITETRAIL_ACCOUNT")]
        account: Option<String>,
        /// Also trust checkpoints signed by this public key (hex; repeatable). The data dir's
        /// own key is always trusted.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        /// The report as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: Storage,
    },
    /// Applies every account's retention period now (the server does it every hour), in
    /// bounded batches, and seals what it removed with a checkpoint.
    Prune {
        #[command(flatten)]
        storage: Storage,
    },
    /// Publisher API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Prints a signed viewer token.
    Token {
        /// The account the viewer may read.
        #[arg(long, env = "SITETRAIL_ACCOUNT")]
        account: String,
        /// Only this site of the account (default: all of its sites).
        #[arg(long, env = "SITETRAIL_SITE")]
        site: Option<String>,
        /// `internal` (the partner's team: sees support emails) or `client` (sees "Support
        /// user").
        #[arg(long, env = "SITETRAIL_AUDIENCE", value_parser = ["internal", "client"])]
        audience: String,
        /// Who the viewer is: a `user` or `support` staff.
        #[arg(long, env = "SITETRAIL_ACTOR_KIND", value_parser = ["user", "support"])]
        actor_kind: String,
        /// The viewer's email, recorded when they start an operation.
        #[arg(long, env = "SITETRAIL_ACTOR_EMAIL")]
        actor_email: String,
        /// The viewer's name (optional).
        #[arg(long, env = "SITETRAIL_ACTOR_NAME")]
        actor_name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, env = "SITETRAIL_TTL", default_value_t = 3600)]
        ttl: u64,
        /// The server's data dir: its token signing key signs the token.
        #[arg(long, env = "SITETRAIL_DATA_DIR", default_value = "./sitetrail-data")]
        data_dir: PathBuf,
    },
}

/// Rate limits and the integrity tasks of a server.
#[derive(Args, Clone)]
struct Limits {
    /// Requests per second per publisher key, bursts of twice as many (0: no limit).
    #[arg(long, env = "SITETRAIL_RATE_PUBLISHER", default_value_t = 1000)]
    rate_publisher: u32,
    /// Requests per second per viewer, bursts of five times as many (0: no limit).
    #[arg(long, env = "SITETRAIL_RATE_VIEWER", default_value_t = 20)]
    rate_viewer: u32,
    /// Activities one site may receive per minute, whatever the publisher (0: no cap).
    #[arg(
        long,
        env = "SITETRAIL_SITE_ACTIVITIES_PER_MINUTE",
        default_value_t = 6000
    )]
    site_activities_per_minute: u32,
    /// Exports one viewer (a person in an account) may have open at once (0: no limit).
    #[arg(long, env = "SITETRAIL_EXPORTS_PER_VIEWER", default_value_t = 2)]
    exports_per_viewer: u32,
    /// Exports open at once on this server; one account holds at most half (0: no limit).
    #[arg(long, env = "SITETRAIL_EXPORTS_TOTAL", default_value_t = 8)]
    exports_total: u32,
    /// Live streams one viewer may have open at once (0: no limit).
    #[arg(long, env = "SITETRAIL_STREAMS_PER_VIEWER", default_value_t = 5)]
    streams_per_viewer: u32,
    /// Live streams open at once on this server; one account holds at most half (0: no limit).
    #[arg(long, env = "SITETRAIL_STREAMS_TOTAL", default_value_t = 500)]
    streams_total: u32,
    /// Connections open at once; past it, new ones wait until one closes.
    #[arg(long, env = "SITETRAIL_MAX_CONNECTIONS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a request's head may take to arrive, also between requests on a kept-alive
    /// connection.
    #[arg(long, env = "SITETRAIL_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a request's whole body may take to arrive once its head has.
    #[arg(long, env = "SITETRAIL_BODY_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
    /// Seconds a write to a client may make no progress before its connection is closed.
    #[arg(long, env = "SITETRAIL_WRITE_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout: u64,
    /// Seconds between signed checkpoints of the chains.
    #[arg(long, env = "SITETRAIL_CHECKPOINT_EVERY", default_value_t = 300)]
    checkpoint_every: u64,
    /// Seconds between runs of the retention policy.
    #[arg(long, env = "SITETRAIL_RETENTION_EVERY", default_value_t = 3600)]
    retention_every: u64,
}

impl Limits {
    fn apply(&self, config: &mut Config) {
        config.limits = sitetrail_server::RateLimits {
            publisher_per_second: self.rate_publisher,
            viewer_per_second: self.rate_viewer,
            site_activities_per_minute: self.site_activities_per_minute,
            exports_per_viewer: self.exports_per_viewer,
            exports_total: self.exports_total,
            streams_per_viewer: self.streams_per_viewer,
            streams_total: self.streams_total,
        };
        config.serving = sitetrail_server::Serving {
            max_connections: self.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(self.header_timeout),
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            write_timeout: std::time::Duration::from_secs(self.write_timeout),
        };
        config.checkpoint_every = std::time::Duration::from_secs(self.checkpoint_every.max(1));
        config.retention_every = std::time::Duration::from_secs(self.retention_every.max(1));
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Makes a publisher API key and prints it (last line of stdout). It is shown once.
    Create {
        /// A name for the key, to tell keys apart (e.g. the service that uses it).
        #[arg(long, env = "SITETRAIL_NAME")]
        name: String,
        #[command(flatten)]
        storage: Storage,
    },
}

/// mimalloc instead of glibc's allocator (see BENCHMARKS.md, ingest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command;
    // A server logs what it does; a command run by hand shows its progress and only the
    // warnings, so that log lines never land inside its progress display.
    let default_level = match command {
        Command::Serve { .. } | Command::Demo { .. } => "info,sqlx=warn,tower_http=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_of(&e) as u8)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    // What serves or touches docroots should not run as root; the demo is a local trial.
    let touches_sites = matches!(
        command,
        Command::Serve { .. }
            | Command::Staging { .. }
            | Command::Backups { .. }
            | Command::Live { .. }
            | Command::LiveOwned { .. }
            | Command::Templates { .. }
    );
    if touches_sites && rustix::process::geteuid().is_root() {
        tracing::warn!(
            "sitetrail is running as root; run it as a user of its own that owns the docroots \
             it manages (docs/security.md)"
        );
    }
    match command {
        Command::Serve {
            listen,
            storage,
            mysql_admin_url,
            databases,
            insecure_cookies_on_loopback,
            limits,
        } => {
            let mut config = Config::new(listen, storage.data_dir, storage.database);
            config.mysql_admin = mysql_admin_url;
            config.database_hosts = databases.database_hosts;
            config.insecure_cookies_on_loopback = insecure_cookies_on_loopback;
            limits.apply(&mut config);
            let app = App::build(config).await?;
            eprintln!("sitetrail listening on http://{}", app.address());
            app.run_until_stopped().await
        }
        #[cfg(feature = "demo")]
        Command::Demo { listen, data_dir } => demo::run(listen, data_dir).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => anyhow::bail!(
            "this sitetrail was built without the demo; run bash scripts/demo.sh \
             (cargo run -p sitetrail --features demo -- demo)"
        ),
        Command::Verify {
            account,
            public_keys,
            json,
            storage,
        } => {
            let config = exit::existing(&storage.data_dir, storage.database)?;
            integrity::verify(&config, account.as_deref(), &public_keys, json).await
        }
        Command::Prune { storage } => {
            let config = exit::existing(&storage.data_dir, storage.database)?;
            integrity::prune(&config).await
        }
        Command::Staging {
            command,
            storage,
            actor,
            mysql_admin_url,
            databases,
        } => {
            let mut config = exit::existing(&storage.data_dir, storage.database)?;
            config.mysql_admin = mysql_admin_url;
            config.database_hosts = databases.database_hosts;
            staging::staging(config, command, actor).await
        }
        Command::Live {
            command,
            storage,
            actor,
            databases,
        } => {
            let mut config = exit::existing(&storage.data_dir, storage.database)?;
            config.database_hosts = databases.database_hosts;
            live::live(config, command, actor).await
        }
        Command::LiveOwned {
            command,
            storage,
            databases,
        } => {
            let mut config = exit::existing(&storage.data_dir, storage.database)?;
            config.database_hosts = databases.database_hosts;
            live::live_owned(config, command).await
        }
        Command::Backups {
            command,
            storage,
            actor,
            databases,
        } => {
            let mut config = exit::existing(&storage.data_dir, storage.database)?;
            config.database_hosts = databases.database_hosts;
            staging::backups(config, command, actor).await
        }
        Command::Templates {
            command,
            storage,
            databases,
        } => {
            let mut config = exit::existing(&storage.data_dir, storage.database)?;
            config.database_hosts = databases.database_hosts;
            staging::templates(config, command).await
        }
        Command::Keys {
            command: KeysCommand::Create { name, storage },
        } => {
            let store = sitetrail_server::open_store(&Config::new(
                "127.0.0.1:0".parse()?,
                storage.data_dir,
                storage.database,
            ))
            .await?;
            let key = store.create_api_key(&name).await?;
            eprintln!("publisher key {:?} made; it is shown once:", key.name);
            println!("{}", key.token());
            Ok(())
        }
        Command::Token {
            account,
            site,
            audience,
            actor_kind,
            actor_email,
            actor_name,
            ttl,
            data_dir,
        } => {
            if !data_dir.is_dir() {
                return Err(exit::not_found(format!(
                    "there is no sitetrail data dir at {}; pass --data-dir (or set \
                     SITETRAIL_DATA_DIR) to the one `sitetrail serve` uses: its token signing \
                     key signs the token",
                    data_dir.display()
                )));
            }
            let keys = TokenKeys::load_or_create(&data_dir)?;
            let kind = ActorKind::parse(&actor_kind).context("--actor-kind is user or support")?;
            let email = exit::parse("--actor-email", &actor_email, Email::parse)?;
            let actor = Actor::person(kind, email, actor_name);
            actor.validate().map_err(|e| exit::usage(e.to_string()))?;
            let viewer = Viewer {
                account: exit::parse("--account", &account, AccountId::parse)?,
                site: site
                    .as_deref()
                    .map(|s| exit::parse("--site", s, SiteId::parse))
                    .transpose()?,
                audience: Audience::parse(&audience).context("--audience is internal or client")?,
                actor,
            };
            println!("{}", keys.mint(&viewer, ttl)?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of every command says what it is for in `--help`.
    #[test]
    fn every_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_positional() && arg.get_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "sitetrail", &mut missing);
        assert!(missing.is_empty(), "flags without help text: {missing:#?}");
    }
}
