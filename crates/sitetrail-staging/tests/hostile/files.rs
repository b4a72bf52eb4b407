//! Hostile tenants, files: a site's owner controls every byte of its docroot and aims it at
//! another tenant's files (links, `DB_DIR`/`DB_FILE`, races while sitetrail reads). Two sites
//! on WordPress's SQLite integration share one store and one engine: the attacker's and the
//! victim's. Each attack must end `failed` with a reason a person can read and that names no
//! server path, with the victim's files and database byte-identical, and nothing of the
//! victim's in the attacker's docroots, backups or log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sitetrail_core::{SiteId, Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service, WpSite};
use sitetrail_staging::{Engine, Operation, PushScope};
use sitetrail_store::DynStore;
use sitetrail_store_sqlite::SqliteStore;

const VICTIM_SECRET: &str = "Victim's secret recipe 7f3a";

struct TwoSites {
    dir: tempfile::TempDir,
    store: DynStore,
    engine: Engine,
    attacker: WpSite,
    attacker_site: SiteId,
    victim: WpSite,
}

async fn two_sites() -> TwoSites {
    let dir = tempfile::tempdir().unwrap();
    let attacker = WpSite::install_sqlite(
        dir.path(),
        "evil-live",
        wordpress::free_port(4),
        "wp_",
        "Mallory's Shop",
    )
    .unwrap();
    let victim = WpSite::install_sqlite(
        dir.path(),
        "acme-live",
        wordpress::free_port(4),
        "wp_",
        "Acme Bakery",
    )
    .unwrap();
    victim
        .php(&format!(
            "wp_insert_post(['post_title' => \"{VICTIM_SECRET}\", 'post_status' => 'publish']);"
        ))
        .unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("log.db")).await.unwrap());
    for (account, site, live, staging) in [
        ("mallory", "evil", &attacker, "evil-staging"),
        ("acme", "shop", &victim, "acme-staging"),
    ] {
        let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
        crate::register(
            &store,
            account,
            site,
            (&live.url, &live.docroot),
            (&staging_url, &dir.path().join(staging)),
        )
        .await;
    }
    let engine = Engine::new(store.clone(), &dir.path().join("data"), Default::default());
    TwoSites {
        dir,
        store,
        engine,
        attacker,
        attacker_site: SiteId::parse("evil").unwrap(),
        victim,
    }
}

/// What a tree holds, read without following links: each file's bytes, each link's target.
fn fingerprint(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_owned();
        let kind = entry.file_type();
        let value = if kind.is_symlink() {
            std::fs::read_link(entry.path())
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if kind.is_file() {
            std::fs::read(entry.path()).unwrap()
        } else {
            b"dir".to_vec()
        };
        out.insert(rel, value);
    }
    out
}

/// Every regular file under `root` (links not followed) that holds `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    if !root.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            std::fs::read(e.path())
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|e| e.path().to_owned())
        .collect()
}

impl TwoSites {
    async fn run(&self, op: Operation) -> StoredActivity {
        let started = self
            .engine
            .start(&self.attacker_site, op, super::owner())
            .await
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(240), started.finished)
            .await
            .expect("the operation ends")
            .unwrap()
    }

    fn staging_docroot(&self) -> PathBuf {
        self.dir.path().join("evil-staging")
    }

    fn victim_db_dir(&self) -> PathBuf {
        self.victim.docroot.join("wp-content/database")
    }

    /// Adds lines to the attacker's live `wp-config.php`, before `$table_prefix`.
    fn attacker_config_adds(&self, lines: &str) {
        let path = self.attacker.docroot.join("wp-config.php");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen("$table_prefix", &format!("{lines}\n$table_prefix"), 1);
        std::fs::write(&path, text).unwrap();
    }

    /// The attack was contained: refused with a reason that names no server path, the victim
    /// untouched, and nothing of the victim's anywhere the attacker can reach.
    async fn assert_contained(
        &self,
        ended: &StoredActivity,
        victim_before: &BTreeMap<PathBuf, Vec<u8>>,
        reason_says: &str,
    ) {
        assert_eq!(ended.status, Status::Failed, "{:?}", ended.error);
        let reason = ended.error.clone().unwrap_or_default();
        assert!(reason.contains(reason_says), "{reason}");
        assert!(
            !reason.contains('/') && !reason.contains("acme-live"),
            "the reason names no server path: {reason}"
        );
        assert!(
            fingerprint(&self.victim.docroot) == *victim_before,
            "the victim's files and database are byte-identical"
        );
        let needle = VICTIM_SECRET.as_bytes();
        for root in [
            self.attacker.docroot.clone(),
            self.staging_docroot(),
            self.dir.path().join("data"),
        ] {
            assert_eq!(
                files_holding(&root, needle),
                Vec::<PathBuf>::new(),
                "nothing of the victim's reaches the attacker's docroots, backups or data"
            );
        }
        let victim_path = self.victim.docroot.to_string_lossy().into_owned();
        for a in self.attacker_log().await {
            let text = format!("{} {:?} {:?}", a.description, a.error, a.details);
            assert!(
                !text.contains(&victim_path) && !text.contains("acme-live"),
                "the attacker's log names nothing of the victim's: {text}"
            );
        }
    }

    async fn attacker_log(&self) -> Vec<StoredActivity> {
        crate::log_of(&self.store, "mallory", None).await
    }
}

fn backup_of_live() -> Operation {
    Operation::Backup {
        environment: sitetrail_core::Environment::Live,
        reason: sitetrail_staging::BackupReason::Manual,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn db_dir_naming_another_sites_database_is_refused_for_create_backup_and_push() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let t = two_sites().await;
    // Staging made while the attacker's site is honest, to push from later.
    let created = t.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    t.attacker_config_adds(&format!(
        "define( 'DB_DIR', '{}/' );",
        t.victim_db_dir().display()
    ));
    let before = fingerprint(&t.victim.docroot);
    let backup = t.run(backup_of_live()).await;
    t.assert_contained(&backup, &before, "DB_DIR").await;
    let pushed = t
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
    t.assert_contained(&pushed, &before, "DB_DIR").await;
    std::fs::remove_dir_all(t.staging_docroot()).unwrap();
    let created = t.run(Operation::CreateStaging).await;
    t.assert_contained(&created, &before, "DB_DIR").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn db_file_climbing_out_of_the_docroot_is_refused() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let t = two_sites().await;
    t.attacker_config_adds(
        "define( 'DB_FILE', '../../../acme-live/wp-content/database/.ht.sqlite' );",
    );
    let before = fingerprint(&t.victim.docroot);
    let created = t.run(Operation::CreateStaging).await;
    t.assert_contained(&created, &before, "DB_FILE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_directory_linked_to_another_sites_is_refused() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let t = two_sites().await;
    let own = t.attacker.docroot.join("wp-content/database");
    std::fs::remove_dir_all(&own).unwrap();
    std::os::unix::fs::symlink(t.victim_db_dir(), &own).unwrap();
    let before = fingerprint(&t.victim.docroot);
    let created = t.run(Operation::CreateStaging).await;
    t.assert_contained(&created, &before, "a link").await;
    let backup = t.run(backup_of_live()).await;
    t.assert_contained(&backup, &before, "a link").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stagings_wp_config_linked_to_another_sites_file_is_not_written_through() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let t = two_sites().await;
    t.attacker_config_adds("// <?php system($_GET['c']); ?>");
    let link_to_victim = || {
        std::os::unix::fs::symlink(
            t.victim.docroot.join("index.php"),
            t.staging_docroot().join("wp-config.php"),
        )
        .unwrap()
    };
    // Before staging exists, its docroot is not staging: Create Staging moves what is there
    // aside (the link as a link) and writes its own configuration, never through the link.
    std::fs::create_dir(t.staging_docroot()).unwrap();
    link_to_victim();
    let before = fingerprint(&t.victim.docroot);
    let created = t.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    assert!(
        fingerprint(&t.victim.docroot) == before,
        "the victim is untouched"
    );
    let config = t.staging_docroot().join("wp-config.php");
    assert!(std::fs::symlink_metadata(&config).unwrap().is_file());
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains(VICTIM_SECRET)
    );

    // Once staging exists, a link put in its place is refused, and left as it is.
    std::fs::remove_file(&config).unwrap();
    link_to_victim();
    let created = t.run(Operation::CreateStaging).await;
    t.assert_contained(&created, &before, "wp-config.php is a link")
        .await;
    assert!(
        std::fs::symlink_metadata(t.staging_docroot().join("wp-config.php"))
            .unwrap()
            .is_symlink(),
        "the link is left as it was, not replaced behind the owner's back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_config_linked_to_another_sites_config_is_not_copied_by_a_push() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let t = two_sites().await;
    let created = t.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let own = t.attacker.docroot.join("wp-config.php");
    std::fs::remove_file(&own).unwrap();
    std::os::unix::fs::symlink(t.victim.docroot.join("wp-config.php"), &own).unwrap();
    let victim_config = std::fs::read(t.victim.docroot.join("wp-config.php")).unwrap();
    let salt = victim_config
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"define( 'AUTH_KEY'"))
        .unwrap()
        .to_vec();
    let before = fingerprint(&t.victim.docroot);
    let pushed = t
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: false,
            ..Default::default()
        }))
        .await;
    t.assert_contained(&pushed, &before, "wp-config.php is a link")
        .await;
    for root in [t.attacker.docroot.clone(), t.dir.path().join("data")] {
        assert_eq!(
            files_holding(&root, &salt),
            Vec::<PathBuf>::new(),
            "the victim's configuration was not copied"
        );
    }
}

/// A racer swaps every file of a tree for a link to a secret outside it and back, as fast as
/// it can, while `read` runs 20 times; `leaked` says whether a result holds the secret.
fn race(read: impl Fn(&Path, usize), leaked: impl Fn(&Path, usize) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token-signing.key");
    std::fs::write(&secret, b"SECRET-SIGNING-KEY-0123456789").unwrap();
    let uploads = dir.path().join("site/wp-content/uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    const FILES: usize = 16;
    for i in 0..FILES {
        std::fs::write(uploads.join(format!("photo-{i}.jpg")), format!("photo {i}")).unwrap();
    }
    for i in 0..FILES {
        std::os::unix::fs::symlink(&secret, uploads.join(format!(".link-{i}"))).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let racer = {
        let (stop, swaps, uploads) = (stop.clone(), swaps.clone(), uploads.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for i in 0..FILES {
                    // One step each way: the photo and the link trade names.
                    let name = uploads.join(format!("photo-{i}.jpg"));
                    let link = uploads.join(format!(".link-{i}"));
                    if sitetrail_staging::tree::exchange(&name, &link).is_ok() {
                        swaps.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let mut leaks = Vec::new();
    for round in 0..20 {
        // The racer is running (on a busy machine it may not have been scheduled yet).
        let seen = swaps.load(Ordering::Relaxed);
        while swaps.load(Ordering::Relaxed) < seen + 2 * FILES as u64 {
            std::thread::yield_now();
        }
        read(dir.path(), round);
        if leaked(dir.path(), round) {
            leaks.push(round);
        }
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    assert_eq!(leaks, Vec::<usize>::new(), "rounds that leaked the secret");
}

#[test]
fn copying_a_tree_while_files_are_swapped_for_links_never_copies_what_they_point_at() {
    race(
        |root, round| {
            let dst = root.join(format!("copy-{round}"));
            // A copy may fail when a name vanishes mid-swap; it must never leak.
            let _ = sitetrail_staging::tree::copy_tree(&root.join("site"), &dst, &|_| {});
        },
        |root, round| {
            !files_holding(&root.join(format!("copy-{round}")), b"SECRET-SIGNING-KEY").is_empty()
        },
    );
}

#[test]
fn packing_a_tree_while_files_are_swapped_for_links_never_packs_what_they_point_at() {
    race(
        |root, round| {
            let out = root.join(format!("pack-{round}.tar"));
            let _ = sitetrail_staging::tree::pack(&root.join("site"), &out);
        },
        |root, round| {
            let out = root.join(format!("pack-{round}.tar"));
            out.exists()
                && std::fs::read(&out)
                    .unwrap()
                    .windows(b"SECRET-SIGNING-KEY".len())
                    .any(|w| w == b"SECRET-SIGNING-KEY")
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sitetrails_own_files_are_private_and_a_docroots_config_is_not_world_readable() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let t = two_sites().await;
    for op in [
        Operation::CreateStaging,
        backup_of_live(),
        Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }),
    ] {
        let ended = t.run(op).await;
        assert_eq!(ended.status, Status::Completed, "{:?}", ended.error);
    }
    let data = t.dir.path().join("data");
    let mut seen = (0, 0);
    for entry in walkdir::WalkDir::new(&data).follow_links(false) {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if entry.file_type().is_dir() {
            assert_eq!(mode, 0o700, "{}", entry.path().display());
            seen.0 += 1;
        } else {
            assert_eq!(mode, 0o600, "{}", entry.path().display());
            seen.1 += 1;
        }
    }
    assert!(
        seen.0 >= 5 && seen.1 >= 6,
        "snapshots, locks and their directories were checked: {seen:?}"
    );
    for file in ["wp-config.php", "wp-content/database/.ht.sqlite"] {
        let mode = std::fs::metadata(t.staging_docroot().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "staging's {file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_directory_swapped_for_a_link_after_the_config_was_read_is_not_followed() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let t = two_sites().await;
    let own = t.attacker.docroot.join("wp-content/database");
    let link = t.attacker.docroot.join("wp-content/.database-link");
    std::os::unix::fs::symlink(t.victim_db_dir(), &link).unwrap();
    let before = fingerprint(&t.victim.docroot);
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    // The directory and the link trade names, again and again, while operations run.
    let racer = {
        let (stop, swaps, own, link) = (stop.clone(), swaps.clone(), own.clone(), link.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if sitetrail_staging::tree::exchange(&own, &link).is_ok() {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(t.staging_docroot());
        outcomes.push(t.run(Operation::CreateStaging).await.status);
        outcomes.push(t.run(backup_of_live()).await.status);
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 0, "the racer ran");
    assert!(
        fingerprint(&t.victim.docroot) == before,
        "the victim's files and database are byte-identical"
    );
    for root in [
        t.attacker.docroot.clone(),
        t.staging_docroot(),
        t.dir.path().join("data"),
    ] {
        assert_eq!(
            files_holding(&root, VICTIM_SECRET.as_bytes()),
            Vec::<PathBuf>::new(),
            "nothing of the victim's reaches the attacker ({outcomes:?})"
        );
    }
    for a in t.attacker_log().await {
        let reason = a.error.unwrap_or_default();
        assert!(!reason.contains('/'), "no server path: {reason}");
    }
}
