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

/// A shop on real WordPress (MariaDB) registered in a data dir, its staging not made yet,
/// and the command line run against them.
struct Shop {
    dir: tempfile::TempDir,
    live: WpSite,
}

use sitetrail_staging::wordpress::{self, WpSite, mysql};

impl Shop {
    fn services() -> bool {
        wordpress::services(&[wordpress::Service::MariaDb, wordpress::Service::WordPress])
    }

    async fn new() -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut live =
            WpSite::install(root, "live", wordpress::free_port(4), "wp_", "CLI Shop").unwrap();
        live.serve().unwrap();
        let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
        register_shop(
            &root.join("data"),
            (&live.url, &live.docroot),
            (&staging_url, &root.join("staging")),
        )
        .await;
        Shop { dir, live }
    }

    fn cli(&self, args: &[&str]) -> Output {
        run_in(self.dir.path(), &[args, &["--data-dir", "data"]].concat())
    }

    /// Runs a command that must exit 0; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn live_sql(&self, q: &str) -> String {
        mysql(&format!("USE `{}`; {q}", self.live.db))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs `q` on staging's database, `{p}` standing for staging's table prefix.
    fn staging_sql(&self, q: &str) -> String {
        let c = sitetrail_staging::wpconfig::read(&self.dir.path().join("staging")).unwrap();
        mysql(&format!(
            "USE `{}`; {}",
            c.name,
            q.replace("{p}", &c.prefix)
        ))
        .unwrap()
    }

    fn title(&self) -> String {
        self.live_sql("SELECT post_title FROM wp_posts WHERE ID = 1")
    }

    fn comment(&self, author: &str, content: &str) {
        self.live_sql(&format!(
            "INSERT INTO wp_comments (comment_post_ID, comment_author, comment_content, \
             comment_date, comment_date_gmt, comment_approved) VALUES (1, '{author}', \
             '{content}', NOW(), UTC_TIMESTAMP(), '1')"
        ));
    }

    async fn logged(&self) -> usize {
        logged(&self.dir.path().join("data")).await
    }

    /// The oldest backup of live the engine took.
    async fn first_backup_of_live(&self) -> String {
        let data = self.dir.path().join("data");
        let store: sitetrail_store::DynStore = std::sync::Arc::new(
            sitetrail_store_sqlite::SqliteStore::open(&data.join("sitetrail.db"))
                .await
                .unwrap(),
        );
        let engine = sitetrail_staging::Engine::new(store, &data, Default::default());
        engine
            .snapshots()
            .backups(&sitetrail_core::SiteId::parse("shop").unwrap())
            .unwrap()
            .into_iter()
            .filter(|m| m.environment == Some(sitetrail_core::Environment::Live))
            .min_by_key(|m| m.created_at)
            .expect("the push backed live up")
            .id
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if let Ok(c) = sitetrail_staging::wpconfig::read(&self.dir.path().join("staging")) {
            let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", c.name));
        }
        let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", self.live.db));
    }
}

/// The activity id in the line of a preview that says how to push it.
fn preview_id(preview: &str) -> String {
    let line = preview
        .lines()
        .find(|l| l.contains("--preview "))
        .unwrap_or_else(|| panic!("says how to push it: {preview}"));
    line.split("--preview ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_push_undo_and_restore_run_from_the_command_line_on_real_wordpress() {
    if !Shop::services() {
        return;
    }
    let shop = Shop::new().await;
    shop.ok(&["staging", "create", "--site", "shop"]);
    shop.staging_sql("UPDATE {p}posts SET post_title = 'Staging title' WHERE ID = 1");

    // The preview for people, then as JSON; live is unchanged and nothing was asked.
    let preview = shop.ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--dry-run",
        "--keep-staging",
    ]);
    assert!(preview.contains("Conflicts: none."), "{preview}");
    let posts = table_line(&preview, "wp_posts").expect("wp_posts changes");
    assert_eq!(posts, [0, 0, 1, 0], "one post changed: {preview}");
    assert!(preview.contains("URL rewrites: "), "{preview}");
    let id = preview_id(&preview);
    assert!(
        preview.contains(&format!("--preview {id} --keep-staging")),
        "the push repeats the preview's flags: {preview}"
    );
    let json: serde_json::Value = serde_json::from_str(&shop.ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--dry-run",
        "--json",
    ]))
    .expect("--json prints the report alone");
    let posts = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "wp_posts")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(posts["changed"], 1, "{json}");
    assert_eq!(shop.title(), "Hello world!", "a preview changes nothing");

    // Not confirmed without a terminal; confirmed by --yes with the preview it confirms.
    let before = shop.logged().await;
    let unconfirmed = shop.cli(&["staging", "push", "--site", "shop", "--preview", &id]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    assert_eq!(shop.logged().await, before, "nothing was started");
    let pushed = shop.cli(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--preview",
        &id,
        "--keep-staging",
        "--yes",
    ]);
    assert_eq!(pushed.status.code(), Some(0), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).contains("Successfully pushed staging to live"),
        "{}",
        stdout(&pushed)
    );
    assert!(
        stderr(&pushed).contains("sitetrail live undo --site shop puts back live"),
        "says how long it can be undone: {}",
        stderr(&pushed)
    );
    assert_eq!(shop.title(), "Staging title");
    assert_eq!(
        shop.live.php("echo get_post(1)->post_title;").unwrap(),
        "Staging title"
    );
    let home = reqwest::get(&shop.live.url).await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("Staging title"));

    // Undo: asks, then puts back live as it was before the push; undoing again puts the push
    // back, and once more takes it out.
    let unconfirmed = shop.cli(&["live", "undo", "--site", "shop"]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    assert!(stderr(&unconfirmed).contains("pass --yes to undo"));
    assert_eq!(shop.title(), "Staging title");
    shop.ok(&["live", "undo", "--site", "shop", "--yes"]);
    assert_eq!(shop.title(), "Hello world!", "the push is undone");
    shop.ok(&["live", "undo", "--site", "shop", "--yes"]);
    assert_eq!(shop.title(), "Staging title", "the push is back");
    shop.ok(&["live", "undo", "--site", "shop", "--yes"]);
    assert_eq!(shop.title(), "Hello world!", "and undone again");

    // The tables and folders scopes reach the engine with their lists.
    let theme = shop.dir.path().join("staging/wp-content/themes/shop");
    std::fs::create_dir_all(&theme).unwrap();
    std::fs::write(theme.join("style.css"), "body { color: brown }").unwrap();
    std::fs::write(
        shop.dir
            .path()
            .join("staging/wp-content/outside-the-folder.txt"),
        "left",
    )
    .unwrap();
    let dry_json = |flags: &[&str]| -> serde_json::Value {
        let out = shop.ok(&[
            &["staging", "push", "--site", "shop", "--dry-run", "--json"],
            flags,
        ]
        .concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let tables = dry_json(&["--scope", "tables", "--table", "posts"]);
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wp_posts"], "{tables}");
    assert_eq!(tables["files"]["added"], 0, "{tables}");
    let folders = dry_json(&["--scope", "folders", "--folder", "wp-content/themes/shop"]);
    assert!(
        folders["tables"].as_array().unwrap().is_empty(),
        "{folders}"
    );
    assert_eq!(folders["files"]["added"], 1, "{folders}");
    assert_eq!(folders["files"]["bytes_added"], 21, "{folders}");
    assert_eq!(
        folders["files"]["list"][0]["path"], "wp-content/themes/shop/style.css",
        "{folders}"
    );

    // Restore: the push again, then live's database from the backup taken before the first.
    shop.ok(&["staging", "push", "--site", "shop", "--yes"]);
    assert_eq!(shop.title(), "Staging title");
    let backup = shop.first_backup_of_live().await;
    let unconfirmed = shop.cli(&["live", "restore", "--site", "shop", "--backup", &backup]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    std::fs::write(shop.live.docroot.join("after-the-push.txt"), "kept").unwrap();
    let restored = shop.ok(&[
        "live", "restore", "--site", "shop", "--backup", &backup, "--scope", "database", "--yes",
    ]);
    assert!(!restored.trim().is_empty(), "says what it did");
    assert_eq!(
        shop.title(),
        "Hello world!",
        "live's database is the backup's"
    );
    assert!(
        shop.live.docroot.join("after-the-push.txt").exists(),
        "a database restore leaves live's files alone"
    );
    assert_eq!(reqwest::get(&shop.live.url).await.unwrap().status(), 200);
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_keeps_its_comments_and_a_conflict_stops_the_push_from_the_command_line() {
    if !Shop::services() {
        return;
    }
    let shop = Shop::new().await;
    shop.ok(&["staging", "create", "--site", "shop"]);
    shop.staging_sql("UPDATE {p}posts SET post_title = 'Staging title' WHERE ID = 1");
    shop.comment("Ann", "Live comment");
    let preview = shop.ok(&["staging", "push", "--site", "shop", "--dry-run"]);
    let comments = table_line(&preview, "wp_comments").expect("wp_comments keeps a row");
    assert_eq!(comments[3], 1, "live's comment is kept: {preview}");
    assert!(preview.contains("Kept from live: 1 row"), "{preview}");
    shop.ok(&["staging", "push", "--site", "shop", "--yes"]);
    assert_eq!(shop.title(), "Staging title");
    assert_eq!(
        shop.live
            .php("echo count(get_comments(['search' => 'Live comment']));")
            .unwrap(),
        "1",
        "live's comment survived the push"
    );

    // A row both sides changed stops the push, changing nothing, and says how to choose.
    shop.ok(&["staging", "create", "--site", "shop"]);
    shop.staging_sql(
        "UPDATE {p}comments SET comment_content = 'Staging edit' WHERE comment_ID = 1; \
         UPDATE {p}posts SET post_title = 'Second title' WHERE ID = 1",
    );
    shop.live_sql("UPDATE wp_comments SET comment_content = 'Live edit' WHERE comment_ID = 1");
    let before = shop.logged().await;
    let stopped = shop.cli(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--keep-staging",
        "--yes",
    ]);
    assert_eq!(stopped.status.code(), Some(1), "{}", stderr(&stopped));
    assert!(
        stdout(&stopped)
            .lines()
            .any(|l| l.contains("wp_comments") && l.contains("comment_ID=1")),
        "names the table and the key: {}",
        stdout(&stopped)
    );
    assert!(
        stderr(&stopped).contains("--keep-staging --on-conflict staging-wins")
            && stderr(&stopped).contains("--on-conflict live-wins"),
        "{}",
        stderr(&stopped)
    );
    // The push (and the backup of live it took first) are in the log.
    assert!(shop.logged().await > before, "the stopped push is logged");
    assert_eq!(
        shop.title(),
        "Staging title",
        "the stopped push changed nothing"
    );
    shop.ok(&[
        "staging",
        "push",
        "--site",
        "shop",
        "--on-conflict",
        "live-wins",
        "--yes",
    ]);
    assert_eq!(
        shop.live_sql("SELECT comment_content FROM wp_comments WHERE comment_ID = 1"),
        "Live edit",
        "live won"
    );
    assert_eq!(shop.title(), "Second title");

    // Undo after live took another comment: the old live plus that comment.
    shop.comment("Bo", "After the push");
    shop.ok(&["live", "undo", "--site", "shop", "--yes"]);
    assert_eq!(shop.title(), "Staging title", "the push is undone");
    assert_eq!(
        shop.live_sql("SELECT COUNT(*) FROM wp_comments WHERE comment_content = 'After the push'"),
        "1",
        "the comment live took after the push is carried back"
    );
}
