//! The staging engine on real WordPress: Debian's `wordpress` package on MariaDB, served by
//! `php -S`. Live and staging URLs differ in length (4- and 5-digit ports), so a blind text
//! replace would break serialized lengths and be caught.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sitetrail_core::{
    Account, AccountId, Actor, ActorKind, Email, EnvironmentSpec, Site, SiteId, SiteUrl, Status,
    StoredActivity,
};
use sitetrail_staging::testing::{self, ADMIN_PASSWORD, ADMIN_USER, WpSite, mysql};
use sitetrail_staging::{Engine, Operation, PushScope};
use sitetrail_store::DynStore;
use sitetrail_store::sqlite::SqliteStore;

struct Fixture {
    dir: tempfile::TempDir,
    store: DynStore,
    engine: Engine,
    live: WpSite,
    staging_url: String,
    staging_port: u16,
    site: SiteId,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = mysql(&format!(
            "DROP DATABASE IF EXISTS `{}_staging`",
            self.live.db
        ));
    }
}

fn owner() -> Actor {
    Actor::person(
        ActorKind::User,
        Email::parse("owner@acme.example").unwrap(),
        None,
    )
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut live = WpSite::install(
        dir.path(),
        "live",
        testing::free_port(4),
        "wp_",
        "Acme Bakery",
    )
    .unwrap();
    live.serve().unwrap();
    let staging_port = testing::free_port(5);
    let staging_url = format!("http://127.0.0.1:{staging_port}");
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("log.db")).await.unwrap());
    let site = SiteId::parse("shop").unwrap();
    store
        .upsert_account(&Account {
            id: AccountId::parse("acme").unwrap(),
            name: "Acme".into(),
            partner: "Agency".into(),
            partner_colour: None,
        })
        .await
        .unwrap();
    store
        .upsert_site(&Site {
            id: site.clone(),
            account_id: AccountId::parse("acme").unwrap(),
            name: "Shop".into(),
            live: EnvironmentSpec {
                url: SiteUrl::parse(&live.url).unwrap(),
                docroot: Some(live.docroot.to_string_lossy().into_owned()),
            },
            staging: Some(EnvironmentSpec {
                url: SiteUrl::parse(&staging_url).unwrap(),
                docroot: Some(dir.path().join("staging").to_string_lossy().into_owned()),
            }),
        })
        .await
        .unwrap();
    let engine = Engine::new(store.clone(), &dir.path().join("data"), None);
    Fixture {
        dir,
        store,
        engine,
        live,
        staging_url,
        staging_port,
        site,
    }
}

impl Fixture {
    async fn run(&self, op: Operation) -> StoredActivity {
        let started = self.engine.start(&self.site, op, owner()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(240), started.finished)
            .await
            .expect("the operation ends")
            .unwrap()
    }

    /// Staging as a WordPress site of its own (after the engine made it).
    fn staging(&self) -> WpSite {
        let config = sitetrail_staging::wpconfig::read(&self.dir.path().join("staging")).unwrap();
        WpSite::attach(
            self.dir.path().join("staging"),
            &self.staging_url,
            self.staging_port,
            &config.name,
            &config.prefix,
        )
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Every text column of every table of a database, searched for a needle.
fn occurrences(db: &str, needle: &str) -> usize {
    let cols = mysql(&format!(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = '{db}' \
         AND data_type IN ('char','varchar','tinytext','text','mediumtext','longtext')"
    ))
    .unwrap();
    let mut n = 0;
    for line in cols.lines() {
        let (t, c) = line.split_once('\t').unwrap();
        let count = mysql(&format!(
            "SELECT COUNT(*) FROM `{db}`.`{t}` WHERE `{c}` LIKE '%{}%'",
            needle.replace('\\', "\\\\\\\\")
        ))
        .unwrap();
        n += count.trim().parse::<usize>().unwrap();
    }
    n
}

async fn admin_can_log_in(url: &str) -> bool {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap();
    http.get(format!("{url}/wp-login.php"))
        .send()
        .await
        .unwrap();
    let r = http
        .post(format!("{url}/wp-login.php"))
        .form(&[
            ("log", ADMIN_USER),
            ("pwd", ADMIN_PASSWORD),
            ("wp-submit", "Log In"),
            ("testcookie", "1"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let final_url = r.url().to_string();
    let body = r.text().await.unwrap();
    if !(status == 200 && body.contains("Dashboard")) {
        eprintln!(
            "login ended at {final_url} with {status}: {}",
            &body[..body.len().min(3000)]
        );
    }
    status == 200
        && final_url.ends_with("/wp-admin/")
        && body.contains("Dashboard")
        && !body.contains("not allowed to access this page")
}

/// Polls live's home page until stopped; counts requests that failed.
fn poll(
    url: String,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let failed = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let (f, t) = (failed.clone(), total.clone());
    let task = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            let ok = match http.get(&url).timeout(Duration::from_secs(20)).send().await {
                Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|b| b.contains("</html>")),
                Err(_) => false,
            };
            t.fetch_add(1, Ordering::Relaxed);
            if !ok {
                f.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (task, failed, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_staging_change_it_and_push_to_live() {
    let f = fixture().await;
    assert!(
        admin_can_log_in(&f.live.url).await,
        "the admin can log in to a fresh live"
    );
    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let mut staging = f.staging();
    staging.serve().unwrap();
    assert_eq!(staging.option("siteurl").unwrap(), f.staging_url);
    assert_ne!(
        staging.prefix, f.live.prefix,
        "staging has a prefix of its own"
    );
    assert!(
        admin_can_log_in(&f.staging_url).await,
        "the admin can log in to staging"
    );

    // Change staging: a post, and values where URLs hide in serialized and JSON forms.
    staging
        .php(&format!(
            r#"wp_insert_post(['post_title' => 'Fresh from staging', 'post_status' => 'publish',
                'post_content' => '<a href="{u}/about">About</a>']);
            update_option('sitetrail_probe', ['home' => '{u}', 'nested' => serialize(['{u}/x', 'é']),
                'json' => json_encode(['u' => '{u}/y'])]);
            update_option('sitetrail_json', json_encode(['{u}/z']));"#,
            u = f.staging_url
        ))
        .unwrap();
    let (status, home) = get(&f.staging_url).await;
    assert_eq!(status, 200);
    assert!(home.contains("Fresh from staging"));

    let stop = Arc::new(AtomicBool::new(false));
    let (poller, failed, total) = poll(f.live.url.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pushed = f
        .run(Operation::PushToLive {
            scope: PushScope::Site,
            keep_staging: false,
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {} requests to live during the push",
        total.load(Ordering::Relaxed)
    );

    let (status, home) = get(&f.live.url).await;
    assert_eq!(status, 200);
    assert!(
        home.contains("Fresh from staging"),
        "live shows staging's post"
    );
    assert_eq!(f.live.option("siteurl").unwrap(), f.live.url);
    let probe = f
        .live
        .php("$p = get_option('sitetrail_probe'); echo $p['home'], '|', unserialize($p['nested'])[0], '|', json_decode($p['json'])->u, '|', json_decode(get_option('sitetrail_json'))[0];")
        .unwrap();
    let u = &f.live.url;
    assert_eq!(probe, format!("{u}|{u}/x|{u}/y|{u}/z"));
    let broken = f
        .live
        .php("global $wpdb; $bad = 0; foreach ($wpdb->get_col(\"SELECT option_value FROM {$wpdb->options}\") as $v) { if (is_serialized($v) && @unserialize($v) === false && $v !== 'b:0;') { $bad++; } } echo $bad;")
        .unwrap();
    assert_eq!(broken, "0", "every serialized option unserializes");
    let host = f.staging_url.trim_start_matches("http://");
    assert_eq!(
        occurrences(&f.live.db, host),
        0,
        "no staging URL remains in live's tables"
    );
    assert!(
        admin_can_log_in(&f.live.url).await,
        "the admin can log in to live"
    );

    // Without keep_staging, staging is removed but keeps its configuration.
    let left: Vec<_> = std::fs::read_dir(f.dir.path().join("staging"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("wp-config.php")]);
    let log = f
        .store
        .list(
            &sitetrail_store::Scope {
                account: AccountId::parse("acme").unwrap(),
                site: Some(f.site.clone()),
            },
            sitetrail_core::Audience::Internal,
            &Default::default(),
            sitetrail_core::Page::default(),
        )
        .await
        .unwrap();
    let kinds: Vec<_> = log
        .items
        .iter()
        .map(|a| (a.activity.as_str(), a.status.as_str()))
        .collect();
    assert!(
        kinds.contains(&("push_staging_to_live", "completed")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("create_backup", "completed")),
        "live was backed up first: {kinds:?}"
    );
    drop(staging);
}
