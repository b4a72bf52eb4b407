//! sitetrail runs as a user of its own that owns the docroots it manages, not as root.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const USER: &str = "sitetrail-t";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")) == "0"
}

/// The test's own user, made once (it needs root, as CI and the test script have).
fn own_user() -> (u32, u32) {
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .output()
            .unwrap();
        // 9: made meanwhile by a test running beside this one.
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let uid = run(Command::new("id").args(["-u", USER])).parse().unwrap();
    let gid = run(Command::new("id").args(["-g", USER])).parse().unwrap();
    (uid, gid)
}

fn owned_by(path: &Path, uid: u32) {
    for entry in walkdir::WalkDir::new(path).follow_links(false) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        assert_eq!(
            meta.uid(),
            uid,
            "{} belongs to {}",
            entry.path().display(),
            meta.uid()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_runs_as_a_user_of_its_own_and_what_it_makes_is_that_users() {
    use sitetrail_staging::wordpress::{self, WpSite};
    if !is_root() {
        eprintln!("skipped: making a user for sitetrail needs root (scripts/test.sh runs as root)");
        return;
    }
    if !wordpress::services(&[wordpress::Service::WordPressSqlite]) {
        return;
    }
    let (uid, gid) = own_user();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let live =
        WpSite::install_sqlite(dir.path(), "live", wordpress::free_port(4), "wp_", "Own").unwrap();
    let staging = dir.path().join("staging");
    let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
    crate::support::register_shop(&data, (&live.url, &live.docroot), (&staging_url, &staging))
        .await;
    // The platform hands the site's files and sitetrail's data dir to sitetrail's user. The
    // store just registered may still be closing (its WAL files going) while chown walks:
    // a file gone meanwhile is no one's to own, so chown runs again over what is left.
    for attempt in 1.. {
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            break;
        }
        let vanished = stderr
            .lines()
            .all(|l| l.ends_with("No such file or directory"));
        assert!(vanished && attempt < 5, "chown: {stderr}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_sitetrail"))
        .args(["staging", "create", "--site", "shop", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Created environment for staging from live")
    );
    assert!(!stderr.contains("running as root"), "{stderr}");
    // Staging, the snapshot of it and the log are the user's, none of them root's.
    owned_by(&staging, uid);
    owned_by(&data, uid);
    assert!(staging.join("wp-config.php").is_file());

    // Run as root, it says what to do instead.
    let out = Command::new(env!("CARGO_BIN_EXE_sitetrail"))
        .args(["backups", "list", "--site", "shop", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running as root"), "{stderr}");
    assert!(stderr.contains("docs/security.md"), "{stderr}");
}
