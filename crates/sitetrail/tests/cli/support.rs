//! The real binary from outside: `sitetrail serve` in its own process (killed with SIGKILL
//! when dropped), publisher keys and viewer tokens minted by the command line, and the
//! figures a reliability suite writes under `test-output/reliability/`.

use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

/// The rate limits, set so high that a suite's server never answers 429.
const UNLIMITED: [&str; 7] = [
    "SITETRAIL_RATE_PUBLISHER",
    "SITETRAIL_RATE_VIEWER",
    "SITETRAIL_SITE_ACTIVITIES_PER_MINUTE",
    "SITETRAIL_EXPORTS_PER_VIEWER",
    "SITETRAIL_EXPORTS_TOTAL",
    "SITETRAIL_STREAMS_PER_VIEWER",
    "SITETRAIL_STREAMS_TOTAL",
];

pub fn sitetrail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sitetrail"))
}

/// Whether this build of the binary has `sitetrail demo` (the `demo` feature:
/// `cargo test -p sitetrail --features demo`). Without it a demo test says so on one line and
/// returns; with `SITETRAIL_TEST_SERVICES=required` it fails with the same sentence.
pub fn has_demo() -> bool {
    if cfg!(feature = "demo") {
        return true;
    }
    let why = "skipped: needs the demo feature (cargo test -p sitetrail --features demo)";
    assert!(
        std::env::var("SITETRAIL_TEST_SERVICES").as_deref() != Ok("required"),
        "{why}"
    );
    eprintln!("{why}");
    false
}

/// Where a server keeps its state: the data dir (token signing key, snapshots) and SQLite in
/// it, or a PostgreSQL database.
#[derive(Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database: Option<String>,
}

impl Storage {
    pub fn sqlite(data_dir: &Path) -> Self {
        Storage {
            data_dir: data_dir.to_owned(),
            database: None,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self.database {
            None => "sqlite",
            Some(_) => "postgres",
        }
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.arg("--data-dir").arg(&self.data_dir);
        match &self.database {
            Some(url) => cmd.args(["--database", url]),
            None => cmd.env_remove("SITETRAIL_DATABASE"),
        };
    }

    /// `sitetrail keys create`: a new publisher API key.
    pub fn publisher_key(&self, name: &str) -> String {
        let mut cmd = sitetrail();
        cmd.args(["keys", "create", "--name", name]);
        self.apply(&mut cmd);
        last_line(cmd, "keys create")
    }

    /// `sitetrail token`: a viewer token of a person of the account (a day long).
    pub fn viewer_token(&self, account: &str, site: Option<&str>, audience: &str) -> String {
        let mut cmd = sitetrail();
        cmd.args(["token", "--account", account, "--audience", audience])
            .args([
                "--actor-kind",
                "user",
                "--actor-email",
                "owner@acme.example",
            ])
            .args(["--ttl", "86400", "--data-dir"])
            .arg(&self.data_dir);
        if let Some(site) = site {
            cmd.args(["--site", site]);
        }
        last_line(cmd, "token")
    }
}

fn last_line(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "sitetrail {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap_or_else(|| panic!("sitetrail {what} printed nothing"))
        .trim()
        .to_owned()
}

/// `sitetrail serve --listen 127.0.0.1:0`; its address is read from what it prints.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Server {
    /// Starts the server and waits until it listens. Its warnings and errors are echoed.
    pub fn start(storage: &Storage) -> Server {
        let mut cmd = sitetrail();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        storage.apply(&mut cmd);
        for var in UNLIMITED {
            cmd.env(var, "1000000");
        }
        let mut child = cmd
            .env("RUST_LOG", "warn,sqlx=warn,tower_http=warn")
            .env_remove("SITETRAIL_LISTEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Drains stderr for the server's whole life: a full pipe would stop it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("sitetrail listening on ") {
                    Some(base) if tx.is_some() => {
                        let _ = tx.take().unwrap().send(base.trim().to_owned());
                    }
                    _ => eprintln!("  server: {line}"),
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Server { child, base },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sitetrail serve did not print its address within 120 s");
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and reaps the process.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's resident set size, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Registers account `acme` and its sites through the publisher API.
pub async fn register_sites(http: &reqwest::Client, base: &str, key: &str, sites: &[&str]) {
    let r = http
        .put(format!("{base}/api/v1/accounts/acme"))
        .bearer_auth(key)
        .json(&json!({"name": "Acme Bakery", "partner": "Brightside Agency"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for site in sites {
        let r = http
            .put(format!("{base}/api/v1/sites/{site}"))
            .bearer_auth(key)
            .json(&json!({"account_id": "acme", "name": site,
                "live": {"url": format!("https://{site}.example")},
                "staging": {"url": format!("https://staging.{site}.example")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// A number in `range`, different on every run.
pub fn random_in(range: std::ops::RangeInclusive<u64>) -> u64 {
    let span = range.end() - range.start() + 1;
    range.start() + RandomState::new().hash_one(std::time::Instant::now()) % span
}

/// Writes a suite's figures to `test-output/reliability/NAME.json` at the workspace's root.
pub fn write_figures(name: &str, figures: &serde_json::Value) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-output/reliability");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(figures).unwrap()).unwrap();
    let path = path.canonicalize().unwrap_or(path);
    eprintln!("figures: {}", path.display());
    path
}

/// Registers account `acme` and its site `shop` straight in a data dir's SQLite database
/// (made when missing), each environment an `(url, docroot)`.
pub async fn register_shop(data_dir: &Path, live: (&str, &Path), staging: (&str, &Path)) {
    use sitetrail_core::{Account, AccountId, EnvironmentSpec, Site, SiteId, SiteUrl};
    use sitetrail_store::Store;
    std::fs::create_dir_all(data_dir).unwrap();
    let store = sitetrail_store_sqlite::SqliteStore::open(&data_dir.join("sitetrail.db"))
        .await
        .unwrap();
    let account = AccountId::parse("acme").unwrap();
    store
        .upsert_account(&Account {
            id: account.clone(),
            name: "Acme".into(),
            partner: "Agency".into(),
            partner_colour: None,
        })
        .await
        .unwrap();
    let env = |(url, docroot): (&str, &Path)| EnvironmentSpec {
        url: SiteUrl::parse(url).unwrap(),
        docroot: Some(docroot.to_string_lossy().into_owned()),
    };
    store
        .upsert_site(&Site {
            id: SiteId::parse("shop").unwrap(),
            account_id: account,
            name: "Shop".into(),
            live: env(live),
            staging: Some(env(staging)),
        })
        .await
        .unwrap();
}

/// GETs `url` as a viewer and reads the JSON answer.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
