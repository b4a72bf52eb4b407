//! sitetrail as a client sees it: the real server binary in its own process, driven over
//! HTTP on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::log::Shape;
use crate::stats::Latencies;

pub struct Server {
    child: Child,
    pub base: String,
    pub key: String,
    bin: PathBuf,
    data_dir: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Makes a publisher key, then starts `sitetrail serve` and waits until it answers.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        database: Option<&str>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let mut keys = Command::new(bin);
        keys.args(["keys", "create", "--name", "bench", "--data-dir"])
            .arg(data_dir);
        if let Some(db) = database {
            keys.args(["--database", db]);
        }
        let out = keys.stderr(Stdio::null()).output().await?;
        anyhow::ensure!(out.status.success(), "sitetrail keys create failed");
        let key = String::from_utf8(out.stdout)?
            .lines()
            .last()
            .context("no key printed")?
            .to_owned();
        let mut serve = Command::new(bin);
        serve
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            // The bench measures throughput: the rate limits that protect a server in
            // production would only measure themselves.
            .env("SITETRAIL_RATE_PUBLISHER", "0")
            .env("SITETRAIL_RATE_VIEWER", "0")
            .env("SITETRAIL_SITE_ACTIVITIES_PER_MINUTE", "0")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if let Some(db) = database {
            serve.args(["--database", db]);
        }
        let child = serve.spawn().context("starting sitetrail serve")?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Server {
            child,
            base,
            key,
            bin: bin.to_owned(),
            data_dir: data_dir.to_owned(),
            http,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// A viewer token from the command line, signed with the data dir's key.
    pub async fn token(&self, account: &str, site: Option<&str>) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "token",
            "--account",
            account,
            "--audience",
            "client",
            "--actor-kind",
            "user",
            "--actor-email",
            "bench@client.example",
            "--ttl",
            "86400",
            "--data-dir",
        ])
        .arg(&self.data_dir);
        if let Some(s) = site {
            cmd.args(["--site", s]);
        }
        let out = cmd.stderr(Stdio::null()).output().await?;
        anyhow::ensure!(out.status.success(), "sitetrail token failed");
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    async fn put(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "PUT {path}: {}", r.status());
        Ok(())
    }

    /// Registers every account and site of the shape, 16 requests at a time.
    pub async fn register(&self, shape: &Shape) -> anyhow::Result<()> {
        for a in 0..shape.accounts {
            let name = shape.account_name(a);
            self.put(
                &format!("/api/v1/accounts/{name}"),
                // The log spans two years: kept whole, or the server's hourly retention
                // (400 days by default) prunes a third of it while it is measured.
                json!({"name": name, "partner": "Bench Partner", "retention_days": 1000}),
            )
            .await?;
        }
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..shape.sites)
            .map(|s| async move {
                let name = shape.site_name(s);
                self.put(
                    &format!("/api/v1/sites/{name}"),
                    json!({"account_id": shape.account_name(shape.account_of(s)), "name": name,
                           "live": {"url": format!("https://{name}.example")},
                           "staging": {"url": format!("https://staging.{name}.example")}}),
                )
                .await
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Loads the whole log through `POST /api/v1/activities/batch`, 1,000 per batch, with
    /// `clients` batches in flight. Returns activities per second.
    pub async fn batch_ingest(&self, shape: &Shape, clients: usize) -> anyhow::Result<f64> {
        let batches = shape.activities.div_ceil(1000);
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..batches)
            .map(|b| {
                let done = done.clone();
                async move {
                    let from = b * 1000;
                    let to = (from + 1000).min(shape.activities);
                    #[derive(serde::Serialize)]
                    struct Batch<'a> {
                        activities: Vec<crate::log::Body<'a>>,
                    }
                    let generated: Vec<_> = (from..to).map(|i| shape.activity(i)).collect();
                    let body = serde_json::to_vec(&Batch {
                        activities: generated.iter().map(|a| a.body(shape)).collect(),
                    })?;
                    let r = self
                        .http
                        .post(format!("{}/api/v1/activities/batch", self.base))
                        .bearer_auth(&self.key)
                        .header("content-type", "application/json")
                        // A receipt per activity instead of the stored activities: what a
                        // publisher loading a log asks for.
                        .header("prefer", "return=minimal")
                        .body(body)
                        .send()
                        .await?;
                    if !r.status().is_success() {
                        bail!("batch {b}: {} {}", r.status(), r.text().await?);
                    }
                    let answer: Receipts = r.json().await?;
                    let recorded = answer.items.iter().filter(|r| r.created).count() as u64;
                    if recorded != to - from {
                        bail!("batch {b}: {recorded} of {} recorded", to - from);
                    }
                    let n = done.fetch_add(to - from, Ordering::Relaxed) + (to - from);
                    if n % 100_000 < 1000 {
                        let rate = n as f64 / started.elapsed().as_secs_f64();
                        eprintln!("    {n} activities loaded ({rate:.0}/s)");
                    }
                    Ok(())
                }
            })
            .buffer_unordered(clients)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<()>>()?;
        Ok(shape.activities as f64 / started.elapsed().as_secs_f64())
    }

    /// `clients` publishers each posting one activity at a time for `seconds`.
    /// Returns activities per second and the latencies.
    pub async fn single_ingest(
        &self,
        shape: &Shape,
        clients: usize,
        seconds: f64,
    ) -> anyhow::Result<(f64, Latencies)> {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let stop = stop.clone();
            let http = self.http.clone();
            let url = format!("{}/api/v1/activities", self.base);
            let key = self.key.clone();
            let shape = *shape;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut rng = crate::log::SplitMix(c as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let site = rng.next() % shape.sites;
                    let body = json!({
                        "account_id": shape.account_name(shape.account_of(site)),
                        "site_id": shape.site_name(site),
                        "environment": "live",
                        "service": "staging",
                        "activity": "push_staging_to_live",
                        "actor": {"kind": "user", "email": format!("owner{c}@client.example")},
                        "description": "Pushing staging to live",
                        "details": {"ticket": c, "php": "8.2"},
                    });
                    let t = Instant::now();
                    let r = http.post(&url).bearer_auth(&key).json(&body).send().await?;
                    let status = r.status();
                    let _ = r.bytes().await?;
                    anyhow::ensure!(status.as_u16() == 201, "single ingest: {status}");
                    lat.push(t.elapsed());
                }
                anyhow::Ok(lat)
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        Ok((all.len() as f64 / elapsed, Latencies::new(all)))
    }

    /// The cursor the API hands out `depth` activities down a site's log, paging there:
    /// cursors are sealed by the server, so only it can make one.
    pub async fn cursor_at(&self, token: &str, site: &str, depth: u64) -> anyhow::Result<String> {
        let mut cursor: Option<String> = None;
        let mut read = 0;
        while read < depth {
            let limit = 200.min(depth - read);
            let mut url = format!("{}/api/v1/sites/{site}/activities?limit={limit}", self.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: serde_json::Value = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            read += page["items"].as_array().map_or(0, Vec::len) as u64;
            let next = page["next_cursor"].as_str();
            cursor = Some(next.context("the log ends before that depth")?.to_owned());
        }
        cursor.context("a depth of at least one activity")
    }

    /// `GET path` `n` times, one at a time (after a few to warm up).
    pub async fn timed_gets(&self, token: &str, path: &str, n: usize) -> anyhow::Result<Latencies> {
        let url = format!("{}{path}", self.base);
        let mut lat = Vec::with_capacity(n);
        for i in 0..n + 5 {
            let t = Instant::now();
            let r = self.http.get(&url).bearer_auth(token).send().await?;
            let status = r.status();
            let _ = r.bytes().await?;
            anyhow::ensure!(status.is_success(), "GET {path}: {status}");
            if i >= 5 {
                lat.push(t.elapsed());
            }
        }
        Ok(Latencies::new(lat))
    }

    /// Streams the CSV export of a site; returns rows per second and the server's peak
    /// resident memory while it ran (and before it started), in MiB.
    pub async fn export(&self, token: &str, site: &str) -> anyhow::Result<Export> {
        let pid = self.pid().context("the server has exited")?;
        let before = rss_mib(pid).unwrap_or(0.0);
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            std::thread::spawn(move || {
                let mut peak: f64 = 0.0;
                while sampling.load(Ordering::Relaxed) {
                    peak = peak.max(rss_mib(pid).unwrap_or(0.0));
                    std::thread::sleep(Duration::from_millis(5));
                }
                peak
            })
        };
        let started = Instant::now();
        let r = self
            .http
            .get(format!(
                "{}/api/v1/sites/{site}/activities/export?format=csv",
                self.base
            ))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "export: {}", r.status());
        let mut body = r.bytes_stream();
        let mut newlines = 0u64;
        while let Some(chunk) = body.next().await {
            newlines += chunk?.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        sampling.store(false, Ordering::Relaxed);
        let peak = sampler.join().unwrap_or(0.0);
        // Descriptions hold no newlines here, so lines are rows (less the header).
        let rows = newlines.saturating_sub(1);
        Ok(Export {
            rows,
            rows_per_s: rows as f64 / secs,
            rss_before_mib: before,
            rss_peak_mib: peak.max(before),
        })
    }
}

pub struct Export {
    pub rows: u64,
    pub rows_per_s: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[derive(serde::Deserialize)]
struct Receipts {
    items: Vec<Receipt>,
}

#[derive(serde::Deserialize)]
struct Receipt {
    created: bool,
}
