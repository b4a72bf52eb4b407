//! A push that breaks live (staging's theme has a PHP fatal error in its `functions.php`) is
//! undone by the health check after the switch: live serves the old site, and the push's
//! activity is failed with the reason.

use sitetrail_core::Status;
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{Operation, PushScope};

use super::fixture;
use super::safe_push_support::{completed, differing, for_people, page_text, push, tree};
use super::safe_push_undo::pages;

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_whose_theme_has_a_php_fatal_is_undone_by_the_health_check() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    let theme = staging.docroot.join("wp-content/themes/broken");
    std::fs::create_dir_all(&theme).unwrap();
    std::fs::write(
        theme.join("style.css"),
        "/*\nTheme Name: Broken\nVersion: 1.0\n*/\n",
    )
    .unwrap();
    std::fs::write(
        theme.join("index.php"),
        "<?php echo '<html><body>broken theme</body></html>';\n",
    )
    .unwrap();
    staging
        .php(
            "switch_theme('broken'); \
             wp_insert_post(['post_title' => 'Never seen on live', 'post_status' => 'publish']); \
             wp_update_post(['ID' => 2, 'post_content' => 'Broken push page']); \
             echo get_option('stylesheet');",
        )
        .map(|s| assert_eq!(s, "broken"))
        .unwrap();
    // Written last: from now on staging's WordPress dies on every request.
    std::fs::write(
        theme.join("functions.php"),
        "<?php\nsitetrail_this_function_does_not_exist();\n",
    )
    .unwrap();
    let (status, _) = super::get(&format!("{}/", f.live.url)).await;
    assert_eq!(status, 200, "live serves before the push");
    let old_pages = pages(&f.live);
    let old_tree = tree(&f.live.docroot);
    let old_theme = f.live.option("stylesheet").unwrap();

    let pushed = f.run(Operation::PushToLive(push(PushScope::Site))).await;
    assert_eq!(pushed.status, Status::Failed, "{:?}", pushed.details);
    let reason = pushed.error.clone().unwrap();
    for_people(&reason);
    let lower = reason.to_lowercase();
    assert!(
        lower.contains("error") || lower.contains("fatal") || lower.contains("500"),
        "the activity says why: {reason}"
    );

    let (status, home) = super::get(&format!("{}/", f.live.url)).await;
    assert_eq!(status, 200, "live serves again: {home}");
    assert!(!home.contains("critical error") && !home.contains("broken theme"));
    assert!(!home.contains("Never seen on live"));
    let page = page_text(&f.live.url, 2).await;
    assert!(
        !page.contains("Broken push page"),
        "live serves the old site"
    );
    assert_eq!(pages(&f.live), old_pages, "live's database is the old one");
    assert_eq!(f.live.option("stylesheet").unwrap(), old_theme);
    assert_eq!(
        differing(&tree(&f.live.docroot), &old_tree),
        Vec::<String>::new(),
        "live's files are the old ones"
    );
    let (status, _) = super::get(&format!("{}/wp-login.php", f.live.url)).await;
    assert_eq!(status, 200);
    assert!(super::admin_can_log_in(&f.live.url).await);
    std::mem::forget(staging);
}

/// A live whose pages never end (its owner's PHP prints for ever) is judged on its first
/// bytes: the check neither waits for the end (it would time out, not checked) nor holds the
/// whole page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_never_ends_is_judged_on_its_first_bytes() {
    if !wordpress::services(&[Service::WordPress]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.php"),
        "<?php while (true) { echo str_repeat('<p>Fresh bread</p>', 4096); flush(); }",
    )
    .unwrap();
    let port = wordpress::free_port(5);
    let mut server = std::process::Command::new("php")
        .args(["-S", &format!("127.0.0.1:{port}"), "index.php"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let health = sitetrail_staging::health::check(&url).await;
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        health.pages[0].1,
        sitetrail_staging::health::PageHealth::Ok { status: 200 },
        "{health:?}"
    );
}
