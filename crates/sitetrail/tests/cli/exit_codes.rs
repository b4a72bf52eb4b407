//! The exit codes `sitetrail --help` lists, one test each: a command that found nothing never
//! says success, says what to do instead, and creates no data dir on its way.

use std::path::Path;
use std::process::{Output, Stdio};

use sitetrail_store::Store;

use crate::support::{register_shop, sitetrail};

/// Runs sitetrail in `cwd` with no data dir or database from the environment, stdin empty.
pub fn run_in(cwd: &Path, args: &[&str]) -> Output {
    sitetrail()
        .args(args)
        .current_dir(cwd)
        .env_remove("SITETRAIL_DATA_DIR")
        .env_remove("SITETRAIL_DATABASE")
        .env_remove("SITETRAIL_SITE")
        .env_remove("SITETRAIL_ACCOUNT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A data dir as `sitetrail serve` leaves it: the database, account `acme` and its site
/// `shop`, whose docroots hold no WordPress.
pub async fn data_dir(root: &Path) -> std::path::PathBuf {
    let data = root.join("data");
    let made = run_in(
        root,
        &["keys", "create", "--name", "ops", "--data-dir", "data"],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    register_shop(
        &data,
        ("https://shop.example", &root.join("live")),
        ("https://staging.shop.example", &root.join("staging")),
    )
    .await;
    std::fs::create_dir_all(root.join("live")).unwrap();
    data
}

/// How many activities the data dir's log holds.
pub async fn logged(data: &Path) -> usize {
    let store = sitetrail_store_sqlite::SqliteStore::open(&data.join("sitetrail.db"))
        .await
        .unwrap();
    let scope = sitetrail_store::Scope {
        account: sitetrail_core::AccountId::parse("acme").unwrap(),
        site: None,
    };
    let page = sitetrail_core::Page {
        limit: 200,
        cursor: None,
    };
    store
        .list(
            &scope,
            sitetrail_core::Audience::Internal,
            &Default::default(),
            page,
        )
        .await
        .unwrap()
        .items
        .len()
}

#[test]
fn help_lists_the_exit_codes_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  done",
        "1  failed",
        "2  usage",
        "3  not found",
        "4  not confirmed",
        "5  error",
    ] {
        assert!(help.contains(line), "--help lists {line:?}: {help}");
    }
}

#[tokio::test]
async fn an_operation_that_ends_failed_exits_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    // Live's docroot holds no WordPress: the backup is logged, runs and fails.
    let out = run_in(
        dir.path(),
        &["backups", "create", "--site", "shop", "--data-dir", "data"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error: Create Backup failed: Stopped while"),
        "the activity's description, then its reason: {}",
        stderr(&out)
    );
    assert_eq!(logged(&data).await, 1, "the failure is in the log");
}

#[test]
fn a_wrong_flag_or_value_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let bad_id = run_in(
        dir.path(),
        &[
            "token",
            "--account",
            "not an id!",
            "--audience",
            "client",
            "--actor-kind",
            "user",
            "--actor-email",
            "owner@acme.example",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(bad_id.status.code(), Some(2), "{}", stderr(&bad_id));
    assert!(stderr(&bad_id).contains("--account"), "{}", stderr(&bad_id));
    let unknown_flag = run_in(dir.path(), &["verify", "--acount", "acme"]);
    assert_eq!(unknown_flag.status.code(), Some(2));
}

#[tokio::test]
async fn a_template_name_with_a_new_line_exits_2_and_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path()).await;
    let out = run_in(
        dir.path(),
        &[
            "templates",
            "import",
            "--name",
            "Bakery\nClassic",
            "--docroot",
            ".",
            "--url",
            "https://bakery.example",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--name"), "{}", stderr(&out));
}

#[tokio::test]
async fn verify_of_an_unknown_account_exits_3_instead_of_saying_intact() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path()).await;
    let out = run_in(
        dir.path(),
        &["verify", "--account", "nope", "--data-dir", "data"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("intact"));
    assert!(
        stderr(&out).contains("there is no account nope"),
        "{}",
        stderr(&out)
    );
    let known = run_in(
        dir.path(),
        &["verify", "--account", "acme", "--data-dir", "data"],
    );
    assert_eq!(known.status.code(), Some(0), "{}", stderr(&known));
}

#[test]
fn commands_without_a_data_dir_exit_3_and_create_none() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 6] = [
        &["verify"],
        &["prune"],
        &["backups", "list", "--site", "shop"],
        &["templates", "list"],
        &["staging", "create", "--site", "shop"],
        &[
            "token",
            "--account",
            "acme",
            "--audience",
            "client",
            "--actor-kind",
            "user",
            "--actor-email",
            "owner@acme.example",
        ],
    ];
    for args in commands {
        let out = run_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("there is no sitetrail data dir at ./sitetrail-data"),
            "{args:?} says where it looked and what to do: {}",
            stderr(&out)
        );
        assert!(
            !dir.path().join("sitetrail-data").exists(),
            "{args:?} created ./sitetrail-data"
        );
    }
    // A directory that is not sitetrail's (verify run in the wrong place).
    let out = run_in(dir.path(), &["verify", "--data-dir", "."]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("there is no sitetrail database"));
    assert!(!dir.path().join("sitetrail.db").exists());
}

#[tokio::test]
async fn an_unknown_site_or_backup_exits_3_with_nothing_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    for args in [
        &["backups", "list", "--site", "nope"][..],
        &["staging", "create", "--site", "nope"],
        &["staging", "push", "--site", "nope", "--yes"],
        &[
            "staging",
            "reset",
            "--site",
            "shop",
            "--backup",
            "no-such-backup",
        ],
    ] {
        let out = run_in(dir.path(), &[args, &["--data-dir", "data"]].concat());
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(logged(&data).await, 0);
    let listed = run_in(
        dir.path(),
        &["backups", "list", "--site", "shop", "--data-dir", "data"],
    );
    assert_eq!(listed.status.code(), Some(0), "a site with no backups yet");
    assert!(stderr(&listed).contains("shop has no backups yet"));
}

#[tokio::test]
async fn a_push_without_a_terminal_or_yes_exits_4_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    let out = run_in(
        dir.path(),
        &["staging", "push", "--site", "shop", "--data-dir", "data"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pass --yes to push without asking"),
        "{}",
        stderr(&out)
    );
    assert_eq!(logged(&data).await, 0, "nothing was started");
    // With --yes it goes on, to the engine: there is no staging to push yet.
    let out = run_in(
        dir.path(),
        &[
            "staging",
            "push",
            "--site",
            "shop",
            "--yes",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("There is no staging site yet. Create it first."),
        "{}",
        stderr(&out)
    );
    assert_eq!(logged(&data).await, 0);
}

#[test]
fn a_data_dir_that_cannot_be_made_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "not a directory").unwrap();
    let out = run_in(
        dir.path(),
        &["keys", "create", "--name", "ops", "--data-dir", "file/data"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

/// `staging push` on a terminal (util-linux's `script` gives it one), answered `answer`.
fn push_on_a_terminal(root: &Path, answer: &str) -> (Option<i32>, String) {
    let command = format!(
        "{} staging push --site shop --data-dir data",
        env!("CARGO_BIN_EXE_sitetrail")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(root)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script");
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{answer}").unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    (out.status.code(), said)
}

#[tokio::test]
async fn a_push_on_a_terminal_asks_and_anything_but_yes_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path()).await;
    let (code, said) = push_on_a_terminal(dir.path(), "no");
    assert_eq!(code, Some(4), "{said}");
    assert!(
        said.contains("This replaces live at https://shop.example/ with staging")
            || said.contains("This replaces live at https://shop.example with staging"),
        "{said}"
    );
    assert!(said.contains("Type yes to push"), "{said}");
    assert!(
        said.contains("not pushed: live was left as it is"),
        "{said}"
    );
    assert_eq!(logged(&data).await, 0, "nothing was started");
    // Confirmed, it goes on to the engine, which finds no staging to push yet.
    let (code, said) = push_on_a_terminal(dir.path(), "yes");
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("There is no staging site yet"), "{said}");
}
