//! The command line as a new user runs it: the binary, its flags and its environment.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::support::{get_json, has_demo, register_shop, sitetrail};

pub struct Running(Child);

impl Drop for Running {
    /// Stops the demo as Ctrl-C does, so that it stops its WordPress servers too; kills it
    /// if it has not ended within ten seconds.
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sitetrail demo` on a free port and reads its output up to the publisher key.
pub fn start_demo(data_dir: &std::path::Path) -> (Running, Vec<String>) {
    let mut child = sitetrail()
        .args(["demo", "--data-dir"])
        .arg(data_dir)
        .env("SITETRAIL_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Stop the demo");
        lines.push(line);
        if done {
            break;
        }
    }
    (running, lines)
}

pub fn link_token(lines: &[String], persona: &str) -> String {
    let i = lines.iter().position(|l| l.contains(persona)).unwrap();
    let token = lines[i + 1].trim().split_once("token=").unwrap().1;
    token.split('&').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_demo_seeds_history_and_prints_a_working_link_per_persona() {
    if !has_demo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_demo, lines) = start_demo(dir.path());
    let base = lines[0].trim_start_matches("sitetrail demo on ").to_owned();
    let http = reqwest::Client::new();
    let page = |token: String, query: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}/api/v1/sites/acme-shop/activities?{query}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let client = link_token(&lines, "client owner");
    let internal = link_token(&lines, "partner admin");
    let support = link_token(&lines, "support agent");

    let newest = page(client.clone(), "limit=5").await;
    let daily = &newest["items"][0];
    assert_eq!(daily["activity"], "create_backup", "{newest}");
    assert_eq!(daily["description"], "Daily backup of live");
    assert_eq!(daily["user"]["label"], "System");
    assert!(newest["next_cursor"].is_string(), "months of history");
    assert!(
        lines
            .iter()
            .any(|l| l == "The daily backup of acme-shop's live is running now."),
        "{lines:?}"
    );
    wait_for_end(&http, &base, &client, daily["id"].as_str().unwrap()).await;
    let by_support = page(client.clone(), "user=Support%20user&limit=200").await;
    let items = by_support["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let shown = serde_json::to_string(items).unwrap();
    assert!(
        !shown.contains("sam.rivera") && !shown.contains("Rivera"),
        "{shown}"
    );
    let internal_view = page(internal, "user=sam.rivera@brightside.example&limit=200").await;
    assert_eq!(
        internal_view["items"].as_array().unwrap().len(),
        items.len()
    );
    assert_eq!(
        page(support, "limit=1").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for status in ["failed", "completed"] {
        let q = if status == "failed" {
            "status=failed"
        } else {
            "status=completed"
        };
        assert!(
            !page(client.clone(), q).await["items"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{status}"
        );
    }

    // acme-shop is real WordPress on SQLite: a support agent creates its staging.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("acme-shop is real WordPress on SQLite")),
        "{lines:?}"
    );
    let support_token = link_token(&lines, "support agent");
    let r = http
        .post(format!("{base}/api/v1/sites/acme-shop/staging"))
        .bearer_auth(&support_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = wait_for_end(&http, &base, &client, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(
        ended["user"]["label"], "Support user",
        "the client sees who only as support"
    );

    // The publisher key printed by the demo records activities.
    let key_line = lines
        .iter()
        .position(|l| l.starts_with("Publisher API key"))
        .unwrap();
    let key = lines[key_line + 1].trim().to_owned();
    let r = http
        .post(format!("{base}/api/v1/activities"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "account_id": "acme-bakery", "site_id": "acme-blog", "environment": "staging",
            "service": "backups", "activity": "create_backup",
            "actor": {"kind": "system"}, "description": "Manual backup of staging"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// Polls an activity until it has ended (a minute at most); returns it as the viewer sees it.
pub async fn wait_for_end(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> serde_json::Value {
    let mut ended = serde_json::Value::Null;
    for _ in 0..600 {
        ended = get_json(http, &format!("{base}/api/v1/activities/{id}"), token).await;
        if ended["status"] != "in_progress" {
            return ended;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{id} did not end within a minute: {ended}");
}

#[test]
fn the_demo_seeds_once_per_data_dir() {
    if !has_demo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (first, lines) = start_demo(dir.path());
    assert!(lines.iter().any(|l| l.starts_with("Seeded")));
    drop(first);
    let (_second, lines) = start_demo(dir.path());
    assert!(!lines.iter().any(|l| l.starts_with("Seeded")), "{lines:?}");
}

#[test]
fn keys_and_tokens_are_printed_on_the_last_line_and_bad_flags_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = sitetrail()
        .args(["keys", "create", "--name", "billing"])
        .env("SITETRAIL_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().last().unwrap().starts_with("stk_"),
        "{stdout}"
    );

    let token = |audience: &str, email: &str| {
        sitetrail()
            .args([
                "token",
                "--account",
                "acme",
                "--audience",
                audience,
                "--actor-kind",
                "support",
            ])
            .args(["--actor-email", email, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let ok = token("client", "sam@partner.example");
    assert!(ok.status.success());
    let printed = String::from_utf8(ok.stdout).unwrap();
    assert_eq!(
        printed.trim().split('.').count(),
        3,
        "a signed token: {printed}"
    );
    assert!(!token("everyone", "sam@partner.example").status.success());
    assert!(!token("client", "not an email").status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_operations_run_from_the_command_line_on_real_wordpress() {
    if !wordpress::services(&[wordpress::Service::MariaDb, wordpress::Service::WordPress]) {
        return;
    }
    use sitetrail_staging::wordpress::{self, WpSite, mysql};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut live = WpSite::install(
        dir.path(),
        "live",
        wordpress::free_port(4),
        "wp_",
        "CLI Shop",
    )
    .unwrap();
    live.serve().unwrap();
    let template = WpSite::install(
        dir.path(),
        "tpl",
        wordpress::free_port(4),
        "tpl_",
        "Template Shop",
    )
    .unwrap();
    let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
    register_shop(
        &data,
        (&live.url, &live.docroot),
        (&staging_url, &dir.path().join("staging")),
    )
    .await;
    // Under the loosest umask, so that only sitetrail's own care keeps its files private.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 000; exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_sitetrail"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&[
        "templates",
        "import",
        "--name",
        "Shop Classic",
        "--docroot",
        template.docroot.to_str().unwrap(),
        "--url",
        &template.url,
    ]);
    assert!(ok, "{out}{err}");
    // A name with a space, as people call it; the id is made from it.
    assert!(
        out.contains("imported template Shop Classic (shop-classic)"),
        "{out}"
    );
    let (_, listed, _) = cli(&["templates", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("shop-classic\tShop Classic\t")),
        "{listed}"
    );
    let (ok, out, err) = cli(&[
        "staging",
        "create",
        "--site",
        "shop",
        "--actor-kind",
        "support",
        "--actor-email",
        "sam@partner.example",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Created environment for staging from live"),
        "{out}"
    );
    let (ok, out, err) = cli(&[
        "staging",
        "reset",
        "--site",
        "shop",
        "--template",
        "shop-classic",
    ]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&[
        "backups",
        "create",
        "--site",
        "shop",
        "--environment",
        "live",
    ]);
    assert!(ok, "{err}");
    let (_, list, _) = cli(&["backups", "list", "--site", "shop"]);
    assert!(list.lines().any(|l| l.contains("manual")), "{list}");
    assert!(
        list.lines().any(|l| l.contains("automatic")),
        "the reset backed staging up first: {list}"
    );
    let (ok, out, err) = cli(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--scope",
        "files",
        "--keep-staging",
        "--yes",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Successfully pushed staging to live"));
    // One line per phase, with its count of the total and the time it took; no log line.
    assert!(
        err.lines().any(|l| {
            let counts = l.split_whitespace().find(|w| w.contains('/'));
            counts.is_some_and(|c| c.split('/').all(|n| n.parse::<u64>().is_ok()))
                && l.ends_with(" s)")
        }),
        "{err}"
    );
    assert!(!err.contains(" INFO "), "{err}");
    // What the push made (its backup of live, its journal) is private as it is made.
    assert_data_dir_is_private(&data);
    // A bad reference fails clearly, with nothing started.
    let (ok, _, err) = cli(&[
        "staging",
        "reset",
        "--site",
        "shop",
        "--backup",
        "no-such-backup",
    ]);
    assert!(!ok && err.contains("no backup no-such-backup"), "{err}");
    let config = sitetrail_staging::wpconfig::read(&dir.path().join("staging")).unwrap();
    mysql(&format!("DROP DATABASE IF EXISTS `{}`", config.name)).unwrap();
}

/// After a run of every staging operation: the data dir and everything sitetrail keeps in
/// it (database, keys, locks, journals, snapshots) are private.
fn assert_data_dir_is_private(data: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = 0;
    for entry in walkdir::WalkDir::new(data).follow_links(false) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", entry.path().display());
        } else if meta.is_file() {
            assert_eq!(mode, 0o600, "{} is {mode:o}", entry.path().display());
        }
        seen += 1;
    }
    for own in ["sitetrail.db", "snapshots", "locks"] {
        assert!(data.join(own).exists(), "{own} was checked");
    }
    assert!(seen > 10, "the run left files to check ({seen})");
}
