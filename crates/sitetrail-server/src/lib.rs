//! sitetrail's HTTP server as a library: [`App::build`] binds and wires everything; the
//! command line only parses flags and calls it.

pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
mod feed;
mod json;
mod lens;
pub mod limits;
mod memo;
mod observe;
mod opaque;
pub mod pages;
mod push_input;
pub mod schedule;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use sitetrail_staging::Engine;
use sitetrail_store::{CheckpointKey, DynStore};
use sitetrail_store_postgres::{PgStore, redact_url};
use sitetrail_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

pub use auth::TokenKeys;
pub use feed::ChangeFeed;
pub use limits::RateLimits;
pub use serve::Serving;

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The token signing key and the snapshots; the SQLite database too when `database` is
    /// `None`. Servers sharing one PostgreSQL database must share the signing key: give them
    /// one data dir, or the same `token-signing.key` in each.
    pub data_dir: PathBuf,
    /// `None`: SQLite in the data dir. Else `sqlite:PATH`, or `postgres://...` (also
    /// `postgresql://`).
    pub database: Option<String>,
    /// `mysql://user:password@host:port`: creates staging databases when live's own
    /// credentials cannot.
    pub mysql_admin: Option<String>,
    /// The MariaDB/MySQL servers a site's `wp-config.php` may name.
    pub database_hosts: sitetrail_staging::DatabaseHosts,
    pub limits: RateLimits,
    pub serving: Serving,
    /// How often the chain's checkpoints are signed.
    pub checkpoint_every: std::time::Duration,
    /// How often the retention policy runs.
    pub retention_every: std::time::Duration,
    /// The session cookie goes without `Secure`, for a dashboard served over plain HTTP on a
    /// loopback address (the demo); refused on any other address.
    pub insecure_cookies_on_loopback: bool,
}

/// The database URL's password never reaches a log.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.as_deref().map(redact_url))
            .field("mysql_admin", &self.mysql_admin.as_ref().map(|_| "<set>"))
            .field("database_hosts", &self.database_hosts.to_string())
            .field("limits", &self.limits)
            .field("serving", &self.serving)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("retention_every", &self.retention_every)
            .field(
                "insecure_cookies_on_loopback",
                &self.insecure_cookies_on_loopback,
            )
            .finish()
    }
}

impl Config {
    pub fn new(listen: SocketAddr, data_dir: PathBuf, database: Option<String>) -> Self {
        Config {
            listen,
            data_dir,
            database,
            mysql_admin: None,
            database_hosts: Default::default(),
            limits: RateLimits::default(),
            serving: Serving::default(),
            checkpoint_every: std::time::Duration::from_secs(300),
            retention_every: std::time::Duration::from_secs(3600),
            insecure_cookies_on_loopback: false,
        }
    }

    /// The SQLite database when no `database` is given.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("sitetrail.db")
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub tokens: TokenKeys,
    pub feed: ChangeFeed,
    pub engine: Engine,
    pub limits: Arc<limits::Limiter>,
    pub access: audit::AccessLog,
    /// The action forms sent lately (one-time tokens: a form sent twice starts once).
    pub sent_forms: Arc<pages::once::SentForms>,
    /// Whether the session cookie is `Secure` (see [`Config::insecure_cookies_on_loopback`]).
    pub secure_cookies: bool,
}

pub struct App {
    listener: TcpListener,
    router: Router,
    serving: Serving,
    pub state: AppState,
}

/// Opens the store the configuration names, creating the data dir if needed.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    sitetrail_store::private::create_dir(&config.data_dir)?;
    for loose in sitetrail_store::private::tighten(&config.data_dir) {
        tracing::warn!("sitetrail's own files must be private: {loose}");
    }
    match &config.database {
        None => Ok(Arc::new(SqliteStore::open(&config.sqlite_path()).await?)),
        Some(url) if url.starts_with("sqlite:") => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            Ok(Arc::new(
                SqliteStore::open(std::path::Path::new(path)).await?,
            ))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PgStore::open(url).await?))
        }
        Some(url) => anyhow::bail!(
            "--database takes sqlite:PATH or postgres://...; got {}",
            redact_url(url)
        ),
    }
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = open_store(&config).await?;
        let tokens = TokenKeys::load_or_create(&config.data_dir)?;
        Self::with_store(config, store, tokens).await
    }

    pub async fn with_store(
        config: Config,
        store: DynStore,
        tokens: TokenKeys,
    ) -> anyhow::Result<App> {
        anyhow::ensure!(
            !config.insecure_cookies_on_loopback || config.listen.ip().is_loopback(),
            "--insecure-cookies-on-loopback sends the session cookie in clear: it is allowed \
             only when listening on a loopback address, not {}",
            config.listen
        );
        observe::prometheus();
        let databases = sitetrail_staging::DatabasePolicy::new(
            config.database_hosts.clone(),
            config.mysql_admin.as_deref(),
        )?;
        let engine = Engine::new(store.clone(), &config.data_dir, databases);
        // What a crash interrupted is ended and undone before anything else runs.
        for a in engine.recover().await? {
            tracing::warn!(activity = %a.id, site = %a.site_id, "ended an operation a restart interrupted");
        }
        let feed = ChangeFeed::start(store.clone()).await?;
        tokio::spawn(schedule::daily_backups(store.clone(), engine.clone()));
        tokio::spawn(schedule::undo_windows(engine.clone()));
        let checkpoints = CheckpointKey::load_or_create(&config.data_dir)?;
        tokio::spawn(schedule::integrity(
            store.clone(),
            checkpoints,
            config.checkpoint_every,
            config.retention_every,
        ));
        let limits = Arc::new(limits::Limiter::new(config.limits));
        tokio::spawn(forget_idle_limits(limits.clone()));
        let state = AppState {
            access: audit::AccessLog::start(store.clone()),
            sent_forms: Arc::default(),
            store,
            tokens,
            feed,
            engine,
            limits,
            secure_cookies: !config.insecure_cookies_on_loopback,
        };
        let router = router(state.clone());
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        Ok(App {
            listener,
            router,
            serving: config.serving,
            state,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until Ctrl-C or SIGTERM, within the bounds of [`Config::serving`].
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        serve::serve(self.listener, self.router, self.serving, shutdown_signal()).await;
        Ok(())
    }
}

/// Rate limiters forget idle keys now and then, so their memory stays flat.
async fn forget_idle_limits(limits: Arc<limits::Limiter>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        limits.forget_idle();
    }
}

/// An address nothing serves: the API answers in its error JSON, the dashboard with a page in
/// its own look that leads back.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        error::ApiError::NotFound("no such endpoint").into_response()
    } else {
        let mut page = pages::PageError::page_not_found().into_response();
        let headers = page.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(pages::CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        page
    }
}

async fn method_not_allowed(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        error::ApiError::MethodNotAllowed("this endpoint does not take that method").into_response()
    } else {
        axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(pages::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record_looks,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(observe::record_request))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            observe::panic_response,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_never_shows_the_database_password() {
        let mut config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            "/var/lib/sitetrail".into(),
            Some("postgres://sitetrail:s3cret@db.internal/sitetrail".into()),
        );
        config.mysql_admin = Some("mysql://root:t0psecret@localhost".into());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0psecret"),
            "{shown}"
        );
        assert!(shown.contains("postgres://sitetrail:***@db.internal/sitetrail"));
    }

    #[tokio::test]
    async fn an_unknown_database_url_is_refused_without_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_owned(),
            Some("mysql://root:s3cret@localhost/x".into()),
        );
        let Err(e) = open_store(&config).await else {
            panic!("MySQL is not a backend")
        };
        let text = format!("{e:#}");
        assert!(text.contains("postgres://"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
