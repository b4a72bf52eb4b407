//! `spawn_app()` and a `TestApp` with one method per endpoint.
//!
//! The backend is `SITETRAIL_TEST_BACKEND`: `sqlite` (the default; a fresh file in a fresh
//! data dir) or `postgres` (a fresh database per app on the server `SITETRAIL_TEST_POSTGRES`
//! names, default the local one, dropped at the end; unreachable, a test fails, since
//! PostgreSQL was asked for). `scripts/test.sh` runs this binary once with each.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sitetrail_core::{AccountId, Actor, ActorKind, Audience, Email, SiteId, Viewer};
use sitetrail_server::{App, Config, RateLimits, TokenKeys};
use sitetrail_store_postgres::testkit::ScratchDatabase;

pub const SUPPORT_EMAIL: &str = "sam.rivera@partner.example";
pub const SUPPORT_NAME: &str = "Sam Rivera";
pub const OWNER_EMAIL: &str = "olivia@acme.example";

pub struct TestApp {
    pub base: String,
    pub key: String,
    pub tokens: TokenKeys,
    pub http: Client,
    pub data_dir: PathBuf,
    /// The PostgreSQL database this app runs on (`None`: SQLite in the data dir).
    pub database: Option<Arc<ScratchDatabase>>,
    _dir: Option<Arc<tempfile::TempDir>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A fresh database for one app when the tests run on PostgreSQL.
async fn fresh_database() -> Option<Arc<ScratchDatabase>> {
    match std::env::var("SITETRAIL_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => None,
        Ok("postgres") => {
            let db = ScratchDatabase::for_tests("sitetrail_api_test")
                .await
                .expect("SITETRAIL_TEST_BACKEND=postgres runs the API tests on PostgreSQL only");
            Some(Arc::new(db))
        }
        Ok(other) => panic!("SITETRAIL_TEST_BACKEND is sqlite or postgres, not {other:?}"),
    }
}

/// A server with accounts `acme` (sites `shop`, `blog`) and `globex` (site `portal`).
pub async fn spawn_app() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut app = start_on(dir.path().to_owned(), fresh_database().await, None).await;
    app._dir = Some(dir);
    app.seed().await;
    app
}

/// Two servers on one database, as behind a load balancer: one data dir (so one token
/// signing key) and, on PostgreSQL, one database; on SQLite, one file.
pub async fn spawn_two_apps() -> (TestApp, TestApp) {
    let first = spawn_app().await;
    let mut second = start_on(
        first.data_dir.clone(),
        first.database.clone(),
        Some(first.key.clone()),
    )
    .await;
    second._dir = first._dir.clone();
    (first, second)
}

/// A server on SQLite in an existing data dir.
pub async fn start(data_dir: PathBuf, key: Option<String>) -> TestApp {
    start_on(data_dir, None, key).await
}

/// A server on an existing data dir and database (for restarts and second servers), without
/// rate limits: the tests of the limits set their own.
pub async fn start_on(
    data_dir: PathBuf,
    database: Option<Arc<ScratchDatabase>>,
    key: Option<String>,
) -> TestApp {
    start_with(data_dir, database, key, RateLimits::OFF).await
}

/// A seeded server with these rate limits.
pub async fn spawn_app_with(limits: RateLimits) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut app = start_with(dir.path().to_owned(), fresh_database().await, None, limits).await;
    app._dir = Some(dir);
    app.seed().await;
    app
}

pub async fn start_with(
    data_dir: PathBuf,
    database: Option<Arc<ScratchDatabase>>,
    key: Option<String>,
    limits: RateLimits,
) -> TestApp {
    start_configured(data_dir, database, key, |c| c.limits = limits).await
}

/// A seeded server whose configuration `configure` changes (rate limits off unless it sets
/// them).
pub async fn spawn_app_configured(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut app = start_configured(dir.path().to_owned(), fresh_database().await, None, |c| {
        c.limits = RateLimits::OFF;
        configure(c)
    })
    .await;
    app._dir = Some(dir);
    app.seed().await;
    app
}

pub async fn start_configured(
    data_dir: PathBuf,
    database: Option<Arc<ScratchDatabase>>,
    key: Option<String>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        data_dir.clone(),
        database.as_ref().map(|d| d.url().to_owned()),
    );
    configure(&mut config);
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.address());
    let tokens = app.state.tokens.clone();
    let key = match key {
        Some(k) => k,
        None => app
            .state
            .store
            .create_api_key("tests")
            .await
            .unwrap()
            .token(),
    };
    let server = tokio::spawn(async move {
        app.run_until_stopped().await.unwrap();
    });
    TestApp {
        base,
        key,
        tokens,
        http: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data_dir,
        database,
        _dir: None,
        server,
    }
}

pub fn activity(account: &str, site: &str) -> Value {
    json!({
        "account_id": account,
        "site_id": site,
        "environment": "live",
        "service": "staging",
        "activity": "push_staging_to_live",
        "actor": {"kind": "user", "email": OWNER_EMAIL},
        "description": "Pushing staging to live",
    })
}

pub fn support_activity(account: &str, site: &str) -> Value {
    let mut a = activity(account, site);
    a["actor"] = json!({"kind": "support", "email": SUPPORT_EMAIL, "name": SUPPORT_NAME});
    a["description"] = json!(format!(
        "Pushed for the client by {SUPPORT_NAME} <{SUPPORT_EMAIL}>"
    ));
    a["details"] = json!({"ticket": 4821, "agent": SUPPORT_EMAIL, "note": format!("{SUPPORT_NAME} checked the cache")});
    a
}

impl TestApp {
    /// Stops the server abruptly and starts a new one on the same data dir and database.
    pub async fn restart(mut self) -> TestApp {
        self.server.abort();
        let dir = self._dir.take();
        let mut again = start_on(
            self.data_dir.clone(),
            self.database.take(),
            Some(self.key.clone()),
        )
        .await;
        again._dir = dir;
        again
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn seed(&self) {
        for (account, sites) in [("acme", &["shop", "blog"][..]), ("globex", &["portal"][..])] {
            let r = self
                .put_json(
                    &format!("/api/v1/accounts/{account}"),
                    &json!({"name": account, "partner": "Agency"}),
                )
                .await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            for site in sites {
                let r = self
                    .put_json(
                        &format!("/api/v1/sites/{site}"),
                        &json!({"account_id": account, "name": site,
                                "live": {"url": format!("https://{site}.example")},
                                "staging": {"url": format!("https://staging.{site}.example/wp")}}),
                    )
                    .await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            }
        }
    }

    /// A viewer token of an account, optionally one site.
    pub fn token(&self, account: &str, site: Option<&str>, audience: Audience) -> String {
        self.token_for(account, site, audience, ActorKind::User, OWNER_EMAIL)
    }

    pub fn token_for(
        &self,
        account: &str,
        site: Option<&str>,
        audience: Audience,
        kind: ActorKind,
        email: &str,
    ) -> String {
        let viewer = Viewer {
            account: AccountId::parse(account).unwrap(),
            site: site.map(|s| SiteId::parse(s).unwrap()),
            audience,
            actor: Actor::person(kind, Email::parse(email).unwrap(), None),
        };
        self.tokens.mint(&viewer, 600).unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Records an activity and returns it as the publisher sees it.
    pub async fn record(&self, body: &Value) -> Value {
        let r = self.post_json("/api/v1/activities", body).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    pub async fn end(&self, id: &str, how: &str, body: &Value) -> Response {
        self.post_json(&format!("/api/v1/activities/{id}/{how}"), body)
            .await
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let r = self.get(token, path).await;
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Reads the first `n` events of a site's live stream, optionally resuming.
    pub async fn stream_events(
        &self,
        token: &str,
        site: &str,
        last_event_id: Option<&str>,
        n: usize,
    ) -> String {
        let path = format!("/api/v1/sites/{site}/activities/stream");
        self.stream_events_at(token, &path, last_event_id, n).await
    }

    /// Reads the first `n` events of the stream at `path` (which may carry `?after=`).
    pub async fn stream_events_at(
        &self,
        token: &str,
        path: &str,
        last_event_id: Option<&str>,
        n: usize,
    ) -> String {
        use futures::StreamExt;
        let mut req = self.http.get(self.url(path)).bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while text.matches("\ndata:").count() + usize::from(text.starts_with("data:")) < n {
            let chunk = tokio::time::timeout_at(deadline, body.next())
                .await
                .expect("events arrive within 10 s")
                .expect("the stream stays open")
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    }
}
