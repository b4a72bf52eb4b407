//! A tenant's `wp-config.php` against the operator's database policy: database servers it
//! may not name, database names with wildcards, and the admin connection that creates
//! staging databases for sites whose own user may not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sitetrail_core::{SiteId, Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service, WpSite, mysql};
use sitetrail_staging::{DatabasePolicy, Engine, Operation};
use sitetrail_store::DynStore;
use sitetrail_store_sqlite::SqliteStore;

/// A site registered with its live docroot and a staging docroot yet to be made.
struct Tenant {
    dir: tempfile::TempDir,
    engine: Engine,
    site: SiteId,
    /// SQL run as root when the test ends (databases and users it made).
    cleanup: Vec<String>,
}

impl Drop for Tenant {
    fn drop(&mut self) {
        for sql in &self.cleanup {
            let _ = mysql(sql);
        }
    }
}

fn policy(admin: Option<&str>) -> DatabasePolicy {
    DatabasePolicy::new(Default::default(), admin).unwrap()
}

async fn tenant(dir: tempfile::TempDir, live: &Path, policy: DatabasePolicy) -> Tenant {
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("log.db")).await.unwrap());
    let site = SiteId::parse("shop").unwrap();
    crate::register(
        &store,
        "acme",
        "shop",
        ("http://127.0.0.1:8081", live),
        ("http://127.0.0.1:18082", &dir.path().join("staging")),
    )
    .await;
    let engine = Engine::new(store, &dir.path().join("data"), policy);
    Tenant {
        dir,
        engine,
        site,
        cleanup: Vec::new(),
    }
}

impl Tenant {
    async fn run(&self, op: Operation) -> StoredActivity {
        let started = self
            .engine
            .start(&self.site, op, super::owner())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(240), started.finished)
            .await
            .expect("the operation ends")
            .unwrap()
    }
}

/// A live docroot holding only a `wp-config.php` whose `DB_HOST` is `db_host`: a refusal
/// must come before anything else is read.
fn config_only_live(root: &Path, db_host: &str) -> PathBuf {
    let live = root.join("live");
    std::fs::create_dir(&live).unwrap();
    let config = wordpress::wp_config("sitetrail_t_nowhere", "wp_").replace(
        "define( 'DB_HOST', '127.0.0.1:3306' );",
        &format!("define( 'DB_HOST', '{db_host}' );"),
    );
    std::fs::write(live.join("wp-config.php"), config).unwrap();
    live
}

/// The operation failed with a reason a person can act on, naming no server detail.
fn assert_failed_for_people(a: &StoredActivity, says: &str, secrets: &[&str]) {
    assert_eq!(a.status, Status::Failed, "{a:?}");
    let error = a.error.as_deref().expect("a failed operation says why");
    assert!(error.contains(says), "{error:?} should say {says:?}");
    assert!(error.contains("ask your host"), "{error:?} says what to do");
    let driver_words = [
        "os error",
        "Access denied",
        "denied for user",
        "Connection refused",
        "SQL",
        "sql",
        "Driver",
        "`",
        "@",
    ];
    for word in secrets.iter().chain(&driver_words) {
        assert!(
            !error.contains(word) && !a.description.contains(word),
            "{word:?} reached the activity: {a:?}"
        );
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// A database user of the tenant's own, with a password and rights on `databases` only.
fn create_db_user(t: &mut Tenant, databases: &[&str]) -> (String, String) {
    let user = format!("sitetrail_t_u{}", random_hex());
    let password = format!("pw-{}", random_hex());
    mysql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .unwrap();
    t.cleanup.push(format!("DROP USER IF EXISTS '{user}'@'%'"));
    t.cleanup
        .push(format!("DROP USER IF EXISTS '{user}'@'localhost'"));
    for db in databases {
        let pattern = db.replace('_', "\\_");
        mysql(&format!(
            "GRANT ALL PRIVILEGES ON `{pattern}`.* TO '{user}'@'%'"
        ))
        .unwrap();
    }
    (user, password)
}

fn mysql_as(user: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("mariadb")
        .args([
            &format!("-u{user}"),
            &format!("-p{password}"),
            "-h127.0.0.1",
            "-P3306",
            "--batch",
            "--skip-column-names",
            "-e",
            sql,
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn use_account(docroot: &Path, user: &str, password: &str) {
    let path = docroot.join("wp-config.php");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "define( 'DB_USER', 'root' );",
            &format!("define( 'DB_USER', '{user}' );"),
        )
        .replace(
            "define( 'DB_PASSWORD', '' );",
            &format!("define( 'DB_PASSWORD', '{password}' );"),
        );
    std::fs::write(path, text).unwrap();
}

fn accounts_named(user: &str) -> Vec<String> {
    mysql(&format!(
        "SELECT CONCAT(host, ' ', IF(authentication_string = '' AND password = '', 'no password', 'password')) \
         FROM mysql.user WHERE user = '{user}' ORDER BY host"
    ))
    .unwrap()
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The account's grants as the server writes them (the client's batch output doubles
/// backslashes).
fn grants_of(user: &str) -> String {
    mysql(&format!("SHOW GRANTS FOR '{user}'@'%'"))
        .unwrap()
        .replace("\\\\", "\\")
}

/// A database of another tenant, with a table and rows; its checksums, to compare after.
fn victim_database(t: &mut Tenant, name: &str) -> String {
    mysql(&format!("CREATE DATABASE `{name}`")).unwrap();
    t.cleanup.push(format!("DROP DATABASE IF EXISTS `{name}`"));
    mysql(&format!(
        "CREATE TABLE `{name}`.`wp_users` (id INT PRIMARY KEY, user_pass VARCHAR(64)); \
         INSERT INTO `{name}`.`wp_users` VALUES (1, '$P$victimhash'), (2, '$P$another')"
    ))
    .unwrap();
    super::checksums(name)
}

/// Accepts what connects to a TCP listener the test owns, and counts it.
fn tcp_trap(addr: &str) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_host_on_a_port_the_policy_does_not_allow_is_refused_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let (port, hits) = tcp_trap("127.0.0.1:0");
    let live = config_only_live(dir.path(), &format!("127.0.0.1:{port}"));
    let t = tenant(dir, &live, policy(None)).await;
    for op in [
        Operation::CreateStaging,
        Operation::Backup {
            environment: sitetrail_core::Environment::Live,
            reason: sitetrail_staging::BackupReason::Manual,
        },
    ] {
        let a = t.run(op).await;
        assert_failed_for_people(
            &a,
            "live's wp-config.php names a database server this host does not allow",
            &[&port.to_string(), "127.0.0.1"],
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection was made"
    );
    assert!(
        !t.dir.path().join("staging").exists(),
        "staging was not made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_host_naming_a_server_the_policy_does_not_allow_is_refused_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // Another address on the loopback, on a port the policy allows on 127.0.0.1: only the
    // host differs.
    let (port, hits) = tcp_trap("127.0.0.2:0");
    let live = config_only_live(dir.path(), &format!("127.0.0.2:{port}"));
    let allowed: sitetrail_staging::DatabaseHosts = format!("127.0.0.1:{port}").parse().unwrap();
    let t = tenant(dir, &live, DatabasePolicy::new(allowed, None).unwrap()).await;
    let a = t.run(Operation::CreateStaging).await;
    assert_failed_for_people(
        &a,
        "live's wp-config.php names a database server this host does not allow",
        &["127.0.0.2", &port.to_string()],
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_host_naming_a_socket_the_policy_does_not_allow_is_refused_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // A socket the test owns stands for another service's (PostgreSQL's, say).
    let socket = dir.path().join(".s.PGSQL.5432");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let live = config_only_live(dir.path(), &format!("localhost:{}", socket.display()));
    let t = tenant(dir, &live, policy(None)).await;
    let a = t.run(Operation::CreateStaging).await;
    assert_failed_for_people(
        &a,
        "live's wp-config.php names a database server this host does not allow",
        &[".s.PGSQL", "/tmp", "localhost"],
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_servers_refusal_reaches_the_activity_as_a_sentence_without_its_words() {
    if !wordpress::services(&[Service::MariaDb]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let live = config_only_live(dir.path(), "127.0.0.1:3306");
    let config = live.join("wp-config.php");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "define( 'DB_PASSWORD', '' );",
        "define( 'DB_PASSWORD', 'not-the-password' );",
    );
    std::fs::write(&config, text).unwrap();
    let t = tenant(dir, &live, policy(None)).await;
    let a = t.run(Operation::CreateStaging).await;
    assert_failed_for_people(
        &a,
        "DB_USER and DB_PASSWORD",
        &["root", "127.0.0.1", "1045", "28000", "using password"],
    );
}

/// Live on MariaDB under a database user of its own; `name` makes its database name.
async fn wordpress_tenant(name: &str, admin: Option<&str>) -> (Tenant, WpSite, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let live = WpSite::install(
        dir.path(),
        name,
        wordpress::free_port(4),
        "wp_",
        "Acme Bakery",
    )
    .unwrap();
    let docroot = live.docroot.clone();
    let mut t = tenant(dir, &docroot, policy(admin)).await;
    t.cleanup
        .push(format!("DROP DATABASE IF EXISTS `{}_staging`", live.db));
    let (user, password) = create_db_user(&mut t, &[&live.db]);
    use_account(&docroot, &user, &password);
    (t, live, user, password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_fallback_creates_staging_for_lives_own_account_and_nothing_more() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let (t, live, user, password) =
        wordpress_tenant("live", Some("mysql://root@127.0.0.1:3306")).await;
    let before = accounts_named(&user);
    let a = t.run(Operation::CreateStaging).await;
    assert_eq!(a.status, Status::Completed, "{a:?}");
    let staging_db = format!("{}_staging", live.db);
    let options = mysql_as(
        &user,
        &password,
        &format!("SELECT COUNT(*) FROM `{staging_db}`.`stg_options` WHERE option_name = 'siteurl'"),
    )
    .expect("live's account uses the staging database");
    assert_eq!(options.trim(), "1");
    mysql_as(
        &user,
        &password,
        &format!("CREATE TABLE `{staging_db}`.`stg_probe` (id INT)"),
    )
    .expect("and may change it");
    // Exactly live's database and staging's, the latter's name escaped.
    let grants = grants_of(&user);
    let on: Vec<&str> = grants.lines().filter(|l| l.contains(" ON `")).collect();
    assert_eq!(on.len(), 2, "{grants}");
    assert!(
        grants.contains(&format!("`{}`", staging_db.replace('_', "\\_"))),
        "{grants}"
    );
    assert_eq!(accounts_named(&user), before, "no account was created");
    assert!(
        mysql_as(&user, &password, "SELECT COUNT(*) FROM mysql.user").is_err(),
        "nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_fallback_never_creates_a_passwordless_account() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    // Live's account is 'user'@'%' and its DB_HOST is 127.0.0.1: a grant to the account
    // DB_HOST suggests ('user'@'localhost') would create one, without a password.
    let (t, _live, user, password) =
        wordpress_tenant("live", Some("mysql://root@127.0.0.1:3306")).await;
    let empty_before =
        mysql("SELECT COUNT(*) FROM mysql.user WHERE authentication_string = '' AND password = ''")
            .unwrap();
    let a = t.run(Operation::CreateStaging).await;
    assert_eq!(a.status, Status::Completed, "{a:?}");
    assert_eq!(accounts_named(&user), vec!["% password".to_owned()]);
    assert_eq!(
        mysql("SELECT COUNT(*) FROM mysql.user WHERE authentication_string = '' AND password = ''")
            .unwrap(),
        empty_before,
        "no account without a password appeared"
    );
    assert!(mysql_as(&user, "", "SELECT 1").is_err());
    assert!(mysql_as(&user, &password, "SELECT 1").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_name_whose_underscores_match_another_tenants_database_gets_no_grant_on_it() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    // The attacker's DB_NAME is sitetrail_t_v_ctim_H: as a GRANT pattern, its staging
    // database's name matches the victim's (sitetrail_t_victim_H_staging).
    let (mut t, live, user, password) =
        wordpress_tenant("v_ctim", Some("mysql://root@127.0.0.1:3306")).await;
    let h = live.db.rsplit('_').next().unwrap().to_owned();
    let victim = format!("sitetrail_t_victim_{h}_staging");
    let before = victim_database(&mut t, &victim);
    let a = t.run(Operation::CreateStaging).await;
    assert_eq!(a.status, Status::Completed, "{a:?}");
    assert!(
        mysql_as(
            &user,
            &password,
            &format!("SELECT COUNT(*) FROM `{victim}`.`wp_users`")
        )
        .is_err(),
        "the attacker cannot read the victim's database"
    );
    assert!(
        mysql_as(
            &user,
            &password,
            &format!("DROP TABLE `{victim}`.`wp_users`")
        )
        .is_err(),
        "nor change it"
    );
    let grants = grants_of(&user);
    let escaped = format!("`{}_staging`", live.db).replace('_', "\\_");
    assert!(
        grants.contains(&escaped),
        "staging's grant names it alone: {grants}"
    );
    assert!(
        !grants.contains(&format!("`{}_staging`", live.db)),
        "{grants}"
    );
    assert_eq!(
        super::checksums(&victim),
        before,
        "the victim's database is unchanged"
    );
    assert_eq!(
        super::occurrences(&format!("{}_staging", live.db), "victimhash"),
        0,
        "nothing of the victim's reached the attacker's staging"
    );
    assert!(!format!("{:?}", a.details).contains("victim"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_database_name_that_exists_already_is_never_granted() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    // Another tenant's database happens to bear the name live's staging database would.
    let (mut t, live, user, password) =
        wordpress_tenant("live", Some("mysql://root@127.0.0.1:3306")).await;
    let victim = format!("{}_staging", live.db);
    let before = victim_database(&mut t, &victim);
    let grants_before = grants_of(&user);
    let a = t.run(Operation::CreateStaging).await;
    assert_failed_for_people(
        &a,
        "staging's database exists already",
        &[&victim, &live.db],
    );
    assert_eq!(grants_of(&user), grants_before, "no grant was made");
    assert!(
        mysql_as(
            &user,
            &password,
            &format!("SELECT COUNT(*) FROM `{victim}`.`wp_users`")
        )
        .is_err()
    );
    assert_eq!(
        super::checksums(&victim),
        before,
        "the other tenant's database is unchanged"
    );
    assert!(
        !t.dir.path().join("staging").exists(),
        "no staging docroot was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_name_with_a_percent_wildcard_is_refused_and_gets_no_grant() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let (mut t, live, user, _password) =
        wordpress_tenant("live", Some("mysql://root@127.0.0.1:3306")).await;
    let victim = format!("sitetrail_t_vic_{}_staging", random_hex());
    let before = victim_database(&mut t, &victim);
    // The attacker renames its database to `sitetrail_t_vic%`, which its host made for it.
    let attacker = "sitetrail_t_vic%";
    mysql(&format!("CREATE DATABASE `{attacker}`")).unwrap();
    t.cleanup
        .push(format!("DROP DATABASE IF EXISTS `{attacker}`"));
    t.cleanup
        .push(format!("DROP DATABASE IF EXISTS `{attacker}_staging`"));
    mysql(&format!(
        "GRANT ALL PRIVILEGES ON `sitetrail\\_t\\_vic\\%`.* TO '{user}'@'%'"
    ))
    .unwrap();
    let path = live.docroot.join("wp-config.php");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&live.db, attacker);
    std::fs::write(&path, text).unwrap();
    let grants_before = grants_of(&user);
    let a = t.run(Operation::CreateStaging).await;
    assert_failed_for_people(&a, "DB_NAME", &["%", "sitetrail_t_vic"]);
    assert_eq!(grants_of(&user), grants_before, "no grant was made");
    assert_eq!(
        mysql("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'sitetrail\\_t\\_vic\\%\\_staging'")
            .unwrap()
            .trim(),
        "0",
        "no database was made"
    );
    assert_eq!(
        super::checksums(&victim),
        before,
        "the victim's database is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_database_sessions_keep_the_servers_safeguards() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let (t, live, user, password) = wordpress_tenant("live", None).await;
    let config = sitetrail_staging::wpconfig::read(&live.docroot).unwrap();
    assert_eq!(
        (config.user.as_str(), config.password.as_str()),
        (user.as_str(), password.as_str())
    );
    let db = sitetrail_staging::mysql::MysqlDb::connect(&config, &policy(None))
        .await
        .unwrap();
    // The first connection and one the pool has reset.
    for _ in 0..2 {
        let mut conn = db.conn().await.unwrap();
        let mode: String =
            mysql_async::prelude::Queryable::query_first(&mut conn, "SELECT @@SESSION.sql_mode")
                .await
                .unwrap()
                .unwrap();
        for wanted in [
            "NO_AUTO_CREATE_USER",
            "STRICT_TRANS_TABLES",
            "NO_AUTO_VALUE_ON_ZERO",
        ] {
            assert!(mode.contains(wanted), "{mode}");
        }
    }
    db.disconnect().await;
    drop(t);
}
