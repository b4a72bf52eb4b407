//! `sitetrail live undo|restore` and `sitetrail live-owned` refusing what is wrong or absent:
//! each exits with its code, says what to do instead and logs nothing. The runs that change
//! live on real WordPress are in `safe_push`.

use crate::exit_codes::{data_dir, logged, run_in, stderr};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn live_undo_without_a_push_to_undo_exits_3_and_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    for yes in [true, false] {
        let mut args = vec!["live", "undo", "--site", "shop", "--data-dir", "data"];
        if yes {
            args.push("--yes");
        }
        let out = run_in(dir.path(), &args);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("there is no push of shop to undo"),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("sitetrail live restore"),
            "says what can be done instead: {}",
            stderr(&out)
        );
    }
    let out = run_in(
        dir.path(),
        &[
            "live",
            "undo",
            "--site",
            "nope",
            "--yes",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("there is no site nope"));
    assert_eq!(logged(&data).await, 0);
}

#[tokio::test]
async fn live_restore_of_a_backup_that_is_not_there_exits_3_and_a_bad_one_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    let restore = |backup: &str, scope: &str| {
        run_in(
            dir.path(),
            &[
                "live",
                "restore",
                "--site",
                "shop",
                "--backup",
                backup,
                "--scope",
                scope,
                "--yes",
                "--data-dir",
                "data",
            ],
        )
    };
    let missing = restore("no-such-backup", "database");
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("there is no backup no-such-backup of shop")
            && stderr(&missing).contains("backups list --site shop"),
        "{}",
        stderr(&missing)
    );
    let bad_id = restore("not a backup!", "site");
    assert_eq!(bad_id.status.code(), Some(2), "{}", stderr(&bad_id));
    assert!(stderr(&bad_id).contains("--backup"), "{}", stderr(&bad_id));
    for scope in ["tables", "folders", "everything"] {
        let out = restore("no-such-backup", scope);
        assert_eq!(out.status.code(), Some(2), "{scope}: {}", stderr(&out));
    }
    assert_eq!(logged(&data).await, 0);
}

#[tokio::test]
async fn live_owned_refuses_bad_names_and_tables_it_cannot_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    let owned = |args: &[&str]| {
        run_in(
            dir.path(),
            &[
                &["live-owned"],
                args,
                &["--site", "shop", "--data-dir", "data"],
            ]
            .concat(),
        )
    };
    for bad in ["wp_posts.ID", "../x", "", "a\nb"] {
        let out = owned(&["add", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("without its prefix"),
            "{}",
            stderr(&out)
        );
        if bad.contains('\n') {
            assert!(
                stderr(&out).contains(r"a\nb"),
                "shown escaped: {}",
                stderr(&out)
            );
        }
    }
    let out = owned(&["remove", "never_added"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("never_added is not among the tables added for shop"),
        "{}",
        stderr(&out)
    );
    let out = run_in(
        dir.path(),
        &["live-owned", "list", "--site", "nope", "--data-dir", "data"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(logged(&data).await, 0);
}

#[tokio::test]
async fn live_owned_lists_the_shipped_profile_and_keeps_a_sites_additions() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path()).await;
    let owned = |args: &[&str]| {
        run_in(
            dir.path(),
            &[
                &["live-owned"],
                args,
                &["--site", "shop", "--data-dir", "data"],
            ]
            .concat(),
        )
    };
    let list = owned(&["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let shipped = stdout(&list);
    for table in [
        "comments",
        "commentmeta",
        "users",
        "usermeta",
        "wc_orders",
        "woocommerce_order_items",
    ] {
        assert!(
            shipped.lines().any(|l| l.split('\t').next() == Some(table)),
            "the shipped profile names {table}: {shipped}"
        );
    }
    let added = owned(&["add", "my_bookings"]);
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    assert!(
        stdout(&added).contains("my_bookings\tadded for this site"),
        "{}",
        stdout(&added)
    );
    let shipped_one = owned(&["add", "comments"]);
    assert_eq!(
        shipped_one.status.code(),
        Some(0),
        "{}",
        stderr(&shipped_one)
    );
    assert!(stderr(&shipped_one).contains("comments is already live's on shop"));
    let again = owned(&["add", "my_bookings"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stderr(&again).contains("my_bookings is already live's on shop"));
    assert_eq!(
        stdout(&owned(&["list"]))
            .lines()
            .filter(|l| l.starts_with("my_bookings\t"))
            .count(),
        1,
        "added once, kept across runs"
    );
    let shipped_one = owned(&["remove", "comments"]);
    assert_eq!(
        shipped_one.status.code(),
        Some(2),
        "{}",
        stderr(&shipped_one)
    );
    assert!(stderr(&shipped_one).contains("in the profile sitetrail ships"));
    let removed = owned(&["remove", "my_bookings"]);
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    assert!(!stdout(&owned(&["list"])).contains("my_bookings"));
}
