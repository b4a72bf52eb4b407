//! Safe push from the command line (#21): usage errors found before anything is logged, and
//! on real WordPress a preview, a push confirming it, a push stopped by a conflict and each
//! choice, an undo and a restore, each with its exit code.

use std::path::Path;
use std::process::Output;

use crate::exit_codes::{data_dir, logged, run_in, stderr};
use crate::support::register_shop;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn push(root: &Path, flags: &[&str]) -> Output {
    run_in(
        root,
        &[
            &["staging", "push", "--site", "shop", "--data-dir", "data"],
            flags,
        ]
        .concat(),
    )
}

#[tokio::test]
async fn a_push_with_a_scope_without_its_list_exits_2_before_anything_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    let cases: [(&[&str], &str); 12] = [
        (&["--scope", "tables"], "--scope tables needs the tables"),
        (&["--scope", "folders"], "--scope folders needs the folders"),
        (&["--table", "posts"], "--table needs --scope tables"),
        (
            &["--scope", "files", "--folder", "wp-content"],
            "--folder needs --scope folders",
        ),
        (
            &[
                "--scope",
                "tables",
                "--table",
                "posts",
                "--folder",
                "wp-content",
            ],
            "not both",
        ),
        (
            &["--scope", "tables", "--table", "wp_posts.ID"],
            "without its prefix",
        ),
        (
            &["--scope", "folders", "--folder", "../live"],
            "inside the docroot",
        ),
        (
            &["--scope", "folders", "--folder", "/etc"],
            "inside the docroot",
        ),
        (
            &["--scope", "folders", "--folder", "."],
            "inside the docroot",
        ),
        (&["--on-conflict", "whoever"], "--on-conflict"),
        (&["--dry-run", "--preview", "01JABCDEF"], "--preview"),
        (&["--preview", "not an id!"], "--preview"),
    ];
    for (flags, says) in cases {
        let out = push(dir.path(), &[flags, &["--yes"]].concat());
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(says),
            "{flags:?} says {says:?}: {}",
            stderr(&out)
        );
    }
    // Without --yes and without a terminal the usage error still comes first.
    let out = push(dir.path(), &["--scope", "tables"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(logged(&data).await, 0, "nothing was logged");
}

#[tokio::test]
async fn a_preview_needs_no_confirmation_and_a_site_without_staging_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    // No --yes, no terminal: a dry run changes nothing, so it asks nothing and goes on to the
    // engine, which finds no staging to preview.
    let out = push(dir.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("There is no staging site yet. Create it first."),
        "{}",
        stderr(&out)
    );
    let out = push(dir.path(), &["--scope", "database"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a push still asks: {}",
        stderr(&out)
    );
    assert_eq!(logged(&data).await, 0);
}

/// The first number of a preview's table line for `table`: rows (added, removed, changed,
/// kept from live).
fn table_line(report: &str, table: &str) -> Option<Vec<u64>> {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_push_runs_from_the_command_line_on_real_wordpress() {
    use sitetrail_staging::wordpress::{self, WpSite, mysql};
    if !wordpress::services(&[wordpress::Service::MariaDb, wordpress::Service::WordPress]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("data");
    let mut live =
        WpSite::install(root, "live", wordpress::free_port(4), "wp_", "CLI Shop").unwrap();
    live.serve().unwrap();
    let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
    register_shop(
        &data,
        (&live.url, &live.docroot),
        (&staging_url, &root.join("staging")),
    )
    .await;
    let cli = |args: &[&str]| run_in(root, &[args, &["--data-dir", "data"]].concat());
    let ok = |args: &[&str]| {
        let out = cli(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    let sql = |db: &str, q: &str| mysql(&format!("USE `{db}`; {q}")).unwrap();
    ok(&["staging", "create", "--site", "shop"]);
    let staging = sitetrail_staging::wpconfig::read(&root.join("staging")).unwrap();
    let (staging_db, sp) = (staging.name, staging.prefix);
    // Staging changes a page; live takes a comment.
    sql(
        &staging_db,
        &format!("UPDATE {sp}posts SET post_title = 'Staging title' WHERE ID = 1"),
    );
    sql(
        &live.db,
        "INSERT INTO wp_comments (comment_post_ID, comment_author, comment_content, \
         comment_date, comment_date_gmt, comment_approved) VALUES (1, 'Ann', 'Live comment', \
         NOW(), UTC_TIMESTAMP(), '1')",
    );

    // The preview: for people, then as JSON; live is unchanged.
    let preview = ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--dry-run",
        "--keep-staging",
    ]);
    assert!(preview.contains("Conflicts: none."), "{preview}");
    let posts = table_line(&preview, "wp_posts").expect("wp_posts changes");
    assert_eq!(posts[2], 1, "one post changed: {preview}");
    let comments = table_line(&preview, "wp_comments").expect("wp_comments keeps a row");
    assert_eq!(comments[3], 1, "live's comment is kept: {preview}");
    let confirm_line = preview
        .lines()
        .find(|l| l.contains("--preview "))
        .unwrap_or_else(|| panic!("says how to push it: {preview}"));
    let preview_id = confirm_line
        .split("--preview ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(confirm_line.contains("--keep-staging"), "{confirm_line}");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--dry-run",
        "--json",
    ]))
    .expect("--json prints the report alone");
    assert_eq!(json["kept_from_live"], 1, "{json}");
    assert!(
        json["tables"].as_array().is_some_and(|t| !t.is_empty()),
        "{json}"
    );
    assert_eq!(
        sql(&live.db, "SELECT post_title FROM wp_posts WHERE ID = 1").trim(),
        "Hello world!",
        "a preview changes nothing"
    );

    // Not confirmed without a terminal; confirmed by --yes with the preview it confirms.
    let before = logged(&data).await;
    let unconfirmed = cli(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--preview",
        &preview_id,
    ]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    assert_eq!(logged(&data).await, before);
    let pushed = ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--preview",
        &preview_id,
        "--keep-staging",
        "--yes",
    ]);
    assert!(
        pushed.contains("Successfully pushed staging to live"),
        "{pushed}"
    );
    assert_eq!(
        live.php("echo get_post(1)->post_title;").unwrap(),
        "Staging title"
    );
    assert_eq!(
        live.php("echo count(get_comments(['search' => 'Live comment']));")
            .unwrap(),
        "1",
        "live's comment survived the push"
    );
    let home = reqwest::get(&live.url).await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("Staging title"));

    // A row both sides changed stops the push, changing nothing, and says how to choose.
    ok(&["staging", "create", "--site", "shop"]);
    let staging = sitetrail_staging::wpconfig::read(&root.join("staging")).unwrap();
    let (staging_db, sp) = (staging.name, staging.prefix);
    sql(
        &staging_db,
        &format!("UPDATE {sp}comments SET comment_content = 'Staging edit' WHERE comment_ID = 1"),
    );
    sql(
        &live.db,
        "UPDATE wp_comments SET comment_content = 'Live edit' WHERE comment_ID = 1",
    );
    sql(
        &staging_db,
        &format!("UPDATE {sp}posts SET post_title = 'Second title' WHERE ID = 1"),
    );
    let stopped = cli(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--keep-staging",
        "--yes",
    ]);
    assert_eq!(stopped.status.code(), Some(1), "{}", stderr(&stopped));
    let conflict = stdout(&stopped)
        .lines()
        .find(|l| l.contains("wp_comments") && l.contains("comment_ID=1"))
        .map(str::to_owned);
    assert!(
        conflict.is_some(),
        "names table and key: {}",
        stdout(&stopped)
    );
    assert!(
        stderr(&stopped).contains("--on-conflict staging-wins")
            && stderr(&stopped).contains("--on-conflict live-wins"),
        "{}",
        stderr(&stopped)
    );
    assert_eq!(
        sql(&live.db, "SELECT post_title FROM wp_posts WHERE ID = 1").trim(),
        "Staging title",
        "the stopped push changed nothing"
    );
    ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--on-conflict",
        "live-wins",
        "--yes",
    ]);
    assert_eq!(
        sql(
            &live.db,
            "SELECT comment_content FROM wp_comments WHERE comment_ID = 1"
        )
        .trim(),
        "Live edit",
        "live won"
    );
    assert_eq!(
        sql(&live.db, "SELECT post_title FROM wp_posts WHERE ID = 1").trim(),
        "Second title"
    );

    // Undo: not without confirmation; then live is as before the push, plus what it gained.
    sql(
        &live.db,
        "INSERT INTO wp_comments (comment_post_ID, comment_author, comment_content, \
         comment_date, comment_date_gmt, comment_approved) VALUES (1, 'Bo', 'After the push', \
         NOW(), UTC_TIMESTAMP(), '1')",
    );
    let unconfirmed = cli(&["live", "undo", "--site", "shop"]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    assert!(stderr(&unconfirmed).contains("pass --yes to undo"));
    let undone = ok(&["live", "undo", "--site", "shop", "--yes"]);
    assert!(!undone.is_empty());
    assert_eq!(
        sql(&live.db, "SELECT post_title FROM wp_posts WHERE ID = 1").trim(),
        "Staging title",
        "the push is undone"
    );
    assert_eq!(
        sql(
            &live.db,
            "SELECT COUNT(*) FROM wp_comments WHERE comment_content = 'After the push'"
        )
        .trim(),
        "1",
        "the comment live took after the push is carried back"
    );

    // Restore live's database from the backup the first push took of it.
    let store: sitetrail_store::DynStore = std::sync::Arc::new(
        sitetrail_store_sqlite::SqliteStore::open(&data.join("sitetrail.db"))
            .await
            .unwrap(),
    );
    let engine = sitetrail_staging::Engine::new(store, &data, Default::default());
    let site = sitetrail_core::SiteId::parse("shop").unwrap();
    let oldest = engine
        .snapshots()
        .backups(&site)
        .unwrap()
        .into_iter()
        .filter(|m| m.environment == Some(sitetrail_core::Environment::Live))
        .min_by_key(|m| m.created_at)
        .expect("the pushes backed live up")
        .id;
    let unconfirmed = cli(&["live", "restore", "--site", "shop", "--backup", &oldest]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    let files_before = std::fs::read_dir(&live.docroot).unwrap().count();
    ok(&[
        "live", "restore", "--site", "shop", "--backup", &oldest, "--scope", "database", "--yes",
    ]);
    assert_eq!(
        sql(&live.db, "SELECT post_title FROM wp_posts WHERE ID = 1").trim(),
        "Hello world!",
        "live's database is the backup's, taken before the first push"
    );
    assert_eq!(
        std::fs::read_dir(&live.docroot).unwrap().count(),
        files_before
    );
    let page = reqwest::get(&live.url).await.unwrap();
    assert_eq!(page.status(), 200);
    let config = sitetrail_staging::wpconfig::read(&root.join("staging")).ok();
    if let Some(config) = config {
        let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", config.name));
    }
    let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", live.db));
}
