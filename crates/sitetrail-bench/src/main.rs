//! sitetrail's benchmark: generates a realistic log, loads it through the real HTTP server on
//! each backend, measures ingest, pages and export, and measures the raw database doing the
//! same work beside it. Prints each figure with its ratio to the baseline.
//!
//! ```sh
//! cargo build --release -p sitetrail -p sitetrail-bench
//! target/release/sitetrail-bench --activities 1000000
//! ```

mod log;
mod raw;
mod server;
mod stats;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sitetrail_store_postgres::testkit::ScratchDatabase;

use crate::log::Shape;
use crate::raw::Raw;
use crate::server::Server;
use crate::stats::median;

#[derive(Parser)]
#[command(about = "Measures sitetrail through its HTTP server beside the raw database")]
struct Args {
    /// Activities in the generated log (10,000,000 for the full run).
    #[arg(long, default_value_t = 200_000)]
    activities: u64,
    /// Backends to measure, comma-separated.
    #[arg(long, default_value = "sqlite,postgres", value_delimiter = ',')]
    backends: Vec<String>,
    /// The PostgreSQL server; each run makes (and drops) a fresh database on it.
    #[arg(
        long,
        env = "SITETRAIL_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// The sitetrail binary (default: beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where the SQLite data dirs go.
    #[arg(long, default_value = "/tmp/sitetrail-bench")]
    work_dir: PathBuf,
    /// Rows for the raw insert baselines (default: as many as activities).
    #[arg(long)]
    baseline_rows: Option<u64>,
    /// Concurrent clients for the single-activity ingest.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Batches in flight during batch ingest.
    #[arg(long, default_value_t = 4)]
    batch_clients: usize,
    /// Seconds per round of single-activity ingest (three rounds; the median is quoted).
    #[arg(long, default_value_t = 10.0)]
    single_seconds: f64,
    /// Requests per latency figure.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Keep the PostgreSQL database and the data dir afterwards.
    #[arg(long)]
    keep: bool,
    /// After loading the log, measure only the CSV export and its command-line baseline.
    #[arg(long)]
    export_only: bool,
    /// Measure only ingest (batch and single) and the raw insert baselines.
    #[arg(long, conflicts_with = "export_only")]
    ingest_only: bool,
}

/// One line of the report: what, sitetrail's figure, the baseline's, and their meaning.
struct Line {
    what: String,
    ours: String,
    baseline: String,
    ratio: String,
}

fn line(what: impl Into<String>, ours: String, baseline: String, ratio: String) -> Line {
    Line {
        what: what.into(),
        ours,
        baseline,
        ratio,
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b.is_finite() && b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("sitetrail"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: cargo build --release -p sitetrail",
        bin.display()
    );
    let shape = Shape::of(args.activities);
    eprintln!(
        "log: {} activities, {} accounts, {} sites; the big site holds {}",
        shape.activities,
        shape.accounts,
        shape.sites,
        shape.big_site_activities()
    );
    let mut report = Vec::new();
    for (i, backend) in args.backends.iter().enumerate() {
        let lines = run(&args, &bin, &shape, backend, 18_500 + i as u16).await?;
        report.push((backend.clone(), lines));
    }
    println!(
        "\n## {} activities ({} accounts, {} sites, big site {} activities)\n",
        shape.activities,
        shape.accounts,
        shape.sites,
        shape.big_site_activities()
    );
    for (backend, lines) in report {
        println!("### {backend}\n");
        println!("| figure | sitetrail | baseline | ratio |");
        println!("|---|---|---|---|");
        for l in lines {
            println!("| {} | {} | {} | {} |", l.what, l.ours, l.baseline, l.ratio);
        }
        println!();
    }
    Ok(())
}

async fn run(
    args: &Args,
    bin: &std::path::Path,
    shape: &Shape,
    backend: &str,
    port: u16,
) -> anyhow::Result<Vec<Line>> {
    eprintln!("\n== {backend}");
    let data_dir = args
        .work_dir
        .join(format!("{backend}-{}", shape.activities));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let scratch = match backend {
        "sqlite" => None,
        "postgres" => Some(ScratchDatabase::create(&args.postgres, "sitetrail_bench").await?),
        other => anyhow::bail!("unknown backend {other}: sqlite or postgres"),
    };
    let database = scratch.as_ref().map(|s| s.url().to_owned());
    let server = Server::start(bin, &data_dir, database.as_deref(), port).await?;
    let mut lines = Vec::new();

    eprintln!(
        "  registering {} accounts and {} sites",
        shape.accounts, shape.sites
    );
    server.register(shape).await?;
    if let Some(url) = &database {
        Raw::postgres(url).await?.settle().await?;
    }
    eprintln!("  batch ingest");
    let batch_rate = server.batch_ingest(shape, args.batch_clients).await?;

    let big = shape.site_name(shape.big_site());
    let big_account = shape.account_name(shape.account_of(shape.big_site()));
    let site_token = server.token(&big_account, Some(&big)).await?;
    let account_token = server.token(&big_account, None).await?;

    // Both the server's export and the command-line one read a database whose WAL the load
    // has left behind; on SQLite it is emptied first, so that neither pays for it.
    let checkpoint = || async {
        match database {
            None => Raw::checkpoint_sqlite(&data_dir.join("sitetrail.db")).await,
            Some(_) => Ok(()),
        }
    };
    if args.export_only {
        checkpoint().await?;
        let raw = match &database {
            None => Raw::sqlite(data_dir.join("sitetrail.db")).await?,
            Some(url) => Raw::postgres(url).await?,
        };
        let export = Exports::measure(&server, &raw, &site_token, &big).await?;
        server.stop().await?;
        lines.extend(export.lines(database.is_some()));
        drop(raw);
        finish(args, scratch, &data_dir);
        return Ok(lines);
    }

    let (single_rate, single_lat) = single_ingest(args, &server, shape).await?;
    if args.ingest_only {
        server.stop().await?;
        let raw = match &database {
            None => Raw::sqlite(data_dir.join("sitetrail.db")).await?,
            Some(url) => Raw::postgres(url).await?,
        };
        lines.extend(ingest_lines(args, &raw, shape, batch_rate, single_rate, &single_lat).await?);
        drop(raw);
        finish(args, scratch, &data_dir);
        return Ok(lines);
    }

    // The raw side reads the same database (read-only while the server runs).
    let raw = match &database {
        None => Raw::sqlite(data_dir.join("sitetrail.db")).await?,
        Some(url) => Raw::postgres(url).await?,
    };
    let big_rows = shape.big_site_activities();
    let depth = 500_000.min(big_rows * 5 / 8);
    let deep = raw.position(&big, depth).await?;
    let cursor = server.cursor_at(&site_token, &big, depth).await?;

    eprintln!("  pages through HTTP");
    let n = args.requests;
    let first = server
        .timed_gets(&site_token, &format!("/api/v1/sites/{big}/activities"), n)
        .await?;
    let filtered = server
        .timed_gets(
            &site_token,
            &format!("/api/v1/sites/{big}/activities?activity=push_staging_to_live&status=failed"),
            n,
        )
        .await?;
    let keyset = server
        .timed_gets(
            &site_token,
            &format!("/api/v1/sites/{big}/activities?cursor={cursor}"),
            n,
        )
        .await?;
    let account_page = server
        .timed_gets(&account_token, "/api/v1/activities", n)
        .await?;

    checkpoint().await?;
    let export = Exports::measure(&server, &raw, &site_token, &big).await?;
    server.stop().await?;

    let (log_bytes, log_rows) = raw.log_size().await?;
    eprintln!("  baselines: the same SELECTs directly, OFFSET paging");
    let [raw_first, raw_filtered, raw_keyset, raw_account] =
        raw.same_selects(&big, &big_account, deep, n).await?;
    let offset_first = raw.offset_page(&big, 0, 20).await?;
    let offset_deep = raw.offset_page(&big, depth, 5).await?;

    lines.extend(ingest_lines(args, &raw, shape, batch_rate, single_rate, &single_lat).await?);
    let ms = |l: &stats::Latencies| format!("{:.2} / {:.2}", l.p50_ms(), l.p99_ms());
    let pages = [
        (
            format!("first page of the big site ({big_rows}), p50 / p99 ms"),
            &first,
            &raw_first,
        ),
        (
            "filtered page (activity + status), p50 / p99 ms".to_owned(),
            &filtered,
            &raw_filtered,
        ),
        (
            format!("keyset page {depth} deep, p50 / p99 ms"),
            &keyset,
            &raw_keyset,
        ),
        (
            "account-wide first page, p50 / p99 ms".to_owned(),
            &account_page,
            &raw_account,
        ),
    ];
    for (what, ours, base) in pages {
        lines.push(line(
            what,
            ms(ours),
            format!("{} same SELECT", ms(base)),
            ratio(ours.p50_ms(), base.p50_ms()),
        ));
    }
    lines.push(line(
        "first page, plugin way (COUNT + OFFSET 0), p50 / p99 ms",
        ms(&first),
        format!("{} COUNT + OFFSET", ms(&offset_first)),
        ratio(first.p50_ms(), offset_first.p50_ms()),
    ));
    lines.push(line(
        format!("page {depth} deep, plugin way (COUNT + OFFSET), p50 / p99 ms"),
        ms(&keyset),
        format!("{} COUNT + OFFSET", ms(&offset_deep)),
        ratio(keyset.p50_ms(), offset_deep.p50_ms()),
    ));
    lines.extend(export.lines(database.is_some()));

    lines.push(line(
        format!("size on disk of the log ({log_rows} activities), bytes per activity"),
        format!(
            "{:.0} ({:.2} GiB)",
            log_bytes as f64 / log_rows.max(1) as f64,
            log_bytes as f64 / (1u64 << 30) as f64
        ),
        "–".into(),
        "–".into(),
    ));

    drop(raw);
    finish(args, scratch, &data_dir);
    Ok(lines)
}

/// Single-activity ingest: three rounds, the median round's rate and latencies.
async fn single_ingest(
    args: &Args,
    server: &Server,
    shape: &Shape,
) -> anyhow::Result<(f64, stats::Latencies)> {
    eprintln!("  single-activity ingest, {} clients", args.clients);
    let mut single = Vec::new();
    for _ in 0..3 {
        single.push(
            server
                .single_ingest(shape, args.clients, args.single_seconds)
                .await?,
        );
    }
    single.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(single.swap_remove(1))
}

/// The raw insert baselines, and the ingest figures beside them.
async fn ingest_lines(
    args: &Args,
    raw: &Raw,
    shape: &Shape,
    batch_rate: f64,
    single_rate: f64,
    single_lat: &stats::Latencies,
) -> anyhow::Result<Vec<Line>> {
    let mut lines = Vec::new();
    let baseline_rows = args.baseline_rows.unwrap_or(shape.activities);
    eprintln!("  baselines: {baseline_rows} rows by batched INSERT into a plain table");
    let raw_batched = raw.insert_batched(shape, baseline_rows).await?;
    eprintln!("  baselines: COPY");
    let raw_copy = raw.copy(shape, baseline_rows).await?;
    eprintln!("  baselines: one row per transaction");
    let mut singles = Vec::new();
    for _ in 0..3 {
        singles.push(raw.insert_single(shape, args.single_seconds / 2.0).await?);
    }
    let raw_single = median(singles);

    let per_s = |v: f64| format!("{v:.0}/s");
    lines.push(line(
        format!(
            "batch ingest, activities/s (HTTP, 1,000 per batch, {} in flight)",
            args.batch_clients
        ),
        per_s(batch_rate),
        format!("{} batched INSERT", per_s(raw_batched)),
        ratio(batch_rate, raw_batched),
    ));
    if let Some(copy) = raw_copy {
        lines.push(line(
            "batch ingest vs COPY",
            per_s(batch_rate),
            format!("{} COPY", per_s(copy)),
            ratio(batch_rate, copy),
        ));
    }
    lines.push(line(
        format!(
            "single-activity ingest, {} clients, activities/s (p50 / p99 ms)",
            args.clients
        ),
        format!(
            "{} ({:.1} / {:.1})",
            per_s(single_rate),
            single_lat.p50_ms(),
            single_lat.p99_ms()
        ),
        format!("{} one row per transaction", per_s(raw_single)),
        ratio(single_rate, raw_single),
    ));
    Ok(lines)
}

/// Drops the run's database and data dir, unless asked to keep them.
fn finish(args: &Args, scratch: Option<ScratchDatabase>, data_dir: &std::path::Path) {
    if args.keep {
        if let Some(s) = scratch {
            eprintln!("  kept the database {}", s.name());
            std::mem::forget(s);
        }
    } else {
        drop(scratch);
        let _ = std::fs::remove_dir_all(data_dir);
    }
}

/// CSV exports of the big site through HTTP and by the database's command-line tool, taking
/// turns, so that both read through the same state of the page cache: one of each that is
/// not counted (after loading a log larger than the page cache, the first read of the
/// site's rows comes from disk, at a twentieth of the later rate), then three of each. The
/// median rates, the median server memory before an export and the highest peak.
struct Exports {
    rows: u64,
    rate: f64,
    cli_rate: f64,
    rss_before: f64,
    rss_peak: f64,
}

impl Exports {
    async fn measure(server: &Server, raw: &Raw, token: &str, site: &str) -> anyhow::Result<Self> {
        eprintln!("  CSV export of {site}, sitetrail and the command line in turn");
        let warm = server.export(token, site).await?;
        let cli_warm = raw.export_cli(site, warm.rows).await?;
        eprintln!(
            "    warm-up: {} rows, {:.0}/s; command line {cli_warm:.0}/s",
            warm.rows, warm.rows_per_s
        );
        let mut exports = Vec::new();
        let mut cli = Vec::new();
        for _ in 0..3 {
            let e = server.export(token, site).await?;
            let c = raw.export_cli(site, e.rows).await?;
            eprintln!(
                "    {} rows, {:.0}/s, {:.0} → {:.0} MiB; command line {c:.0}/s",
                e.rows, e.rows_per_s, e.rss_before_mib, e.rss_peak_mib
            );
            exports.push(e);
            cli.push(c);
        }
        Ok(Exports {
            rows: exports[0].rows,
            rate: median(exports.iter().map(|e| e.rows_per_s).collect()),
            cli_rate: median(cli),
            rss_before: median(exports.iter().map(|e| e.rss_before_mib).collect()),
            rss_peak: exports
                .iter()
                .map(|e| e.rss_peak_mib)
                .fold(0.0f64, f64::max),
        })
    }

    fn lines(&self, postgres: bool) -> [Line; 2] {
        let cli_rate = self.cli_rate;
        let cli_name = if postgres {
            "psql COPY TO STDOUT"
        } else {
            "sqlite3 -csv"
        };
        [
            line(
                format!("CSV export of the big site ({} rows), rows/s", self.rows),
                format!("{:.0}/s", self.rate),
                format!("{cli_rate:.0}/s {cli_name}"),
                ratio(self.rate, cli_rate),
            ),
            line(
                "server memory during the export, MiB (before → peak)",
                format!("{:.0} → {:.0}", self.rss_before, self.rss_peak),
                "–".into(),
                "–".into(),
            ),
        ]
    }
}
