//! Real WordPress sites, for tests, benchmarks and the demo: Debian's `wordpress` package
//! copied into a docroot, on a MariaDB database of its own or on WordPress's SQLite
//! integration, installed with `wp_install()` from PHP, served by `php -S`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

pub const WORDPRESS: &str = "/usr/share/wordpress";
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Whether this machine can run WordPress: the test script installs what is missing.
pub fn available() -> anyhow::Result<()> {
    anyhow::ensure!(
        Path::new(WORDPRESS).join("wp-settings.php").is_file(),
        "Debian's wordpress package is not installed (apt-get install wordpress)"
    );
    let php = Command::new("php")
        .args(["-m"])
        .output()
        .context("php-cli is not installed")?;
    let modules = String::from_utf8_lossy(&php.stdout);
    anyhow::ensure!(modules.contains("mysqli"), "php-mysql is not installed");
    Ok(())
}

/// A free loopback port with the given number of digits (URLs of different lengths catch
/// serialization bugs that equal lengths hide).
pub fn free_port(digits: u32) -> u16 {
    let (lo, hi) = match digits {
        4 => (4000u16, 9999u16),
        _ => (20000u16, 60000u16),
    };
    let mut seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = lo + (seed % u64::from(hi - lo)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("randomness");
    hex::encode(b)
}

pub fn mysql(sql: &str) -> anyhow::Result<String> {
    let out = Command::new("mariadb")
        .args([
            "-uroot",
            "-h127.0.0.1",
            "-P3306",
            "--batch",
            "--skip-column-names",
            "-e",
            sql,
        ])
        .output()
        .context("running mariadb")?;
    anyhow::ensure!(
        out.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// WordPress's SQLite integration, fetched by `scripts/wordpress-sqlite-plugin.sh`.
pub fn sqlite_plugin() -> anyhow::Result<PathBuf> {
    let dir = std::env::var("SITETRAIL_WP_SQLITE_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/sitetrail/sqlite-database-integration"));
    anyhow::ensure!(
        dir.join("db.copy").is_file(),
        "WordPress's SQLite integration is not at {}: run scripts/wordpress-sqlite-plugin.sh",
        dir.display()
    );
    let php = Command::new("php")
        .args(["-m"])
        .output()
        .context("php-cli is not installed")?;
    anyhow::ensure!(
        String::from_utf8_lossy(&php.stdout).contains("pdo_sqlite"),
        "php-sqlite3 is not installed"
    );
    Ok(dir)
}

/// One WordPress install, on MariaDB or on SQLite.
pub struct WpSite {
    pub docroot: PathBuf,
    pub url: String,
    pub port: u16,
    /// The MariaDB database, or empty on SQLite.
    pub db: String,
    pub prefix: String,
    server: Option<Child>,
}

impl Drop for WpSite {
    fn drop(&mut self) {
        self.stop();
        if !self.db.is_empty() {
            let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", self.db));
        }
    }
}

/// A `wp-config.php` for WordPress on SQLite (the drop-in finds the database itself).
pub fn wp_config_sqlite(prefix: &str) -> String {
    wp_config("unused", prefix)
        .replace("define( 'DB_USER', 'root' );", "define( 'DB_USER', '' );")
        .replace(
            "define( 'DB_HOST', '127.0.0.1:3306' );",
            "define( 'DB_HOST', '' );",
        )
}

pub fn wp_config(db: &str, prefix: &str) -> String {
    format!(
        r#"<?php
define( 'DB_NAME', '{db}' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', '127.0.0.1:3306' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
define( 'AUTH_KEY', '{k}' );
define( 'SECURE_AUTH_KEY', '{k}' );
define( 'LOGGED_IN_KEY', '{k}' );
define( 'NONCE_KEY', '{k}' );
define( 'AUTH_SALT', '{k}' );
define( 'SECURE_AUTH_SALT', '{k}' );
define( 'LOGGED_IN_SALT', '{k}' );
define( 'NONCE_SALT', '{k}' );
define( 'DISABLE_WP_CRON', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_DEBUG', false );
$table_prefix = '{prefix}';
if ( ! defined( 'ABSPATH' ) ) {{
	define( 'ABSPATH', __DIR__ . '/' );
}}
require_once ABSPATH . 'wp-settings.php';
"#,
        k = random_suffix()
    )
}

impl WpSite {
    /// Copies WordPress into `root/name`, makes its database and installs it at `url`.
    pub fn install(
        root: &Path,
        name: &str,
        port: u16,
        prefix: &str,
        title: &str,
    ) -> anyhow::Result<WpSite> {
        available()?;
        let docroot = root.join(name);
        let status = Command::new("cp")
            .arg("-aL")
            .arg(WORDPRESS)
            .arg(&docroot)
            .status()?;
        anyhow::ensure!(status.success(), "copying WordPress failed");
        let db = format!("sitetrail_t_{}_{}", name.replace('-', "_"), random_suffix());
        mysql(&format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"))?;
        std::fs::write(docroot.join("wp-config.php"), wp_config(&db, prefix))?;
        let site = WpSite {
            docroot,
            url: format!("http://127.0.0.1:{port}"),
            port,
            db,
            prefix: prefix.to_owned(),
            server: None,
        };
        site.wp_install(title)?;
        Ok(site)
    }

    /// Copies WordPress into `root/name` with the SQLite integration and installs it.
    pub fn install_sqlite(
        root: &Path,
        name: &str,
        port: u16,
        prefix: &str,
        title: &str,
    ) -> anyhow::Result<WpSite> {
        available()?;
        let plugin = sqlite_plugin()?;
        let docroot = root.join(name);
        let status = Command::new("cp")
            .arg("-aL")
            .arg(WORDPRESS)
            .arg(&docroot)
            .status()?;
        anyhow::ensure!(status.success(), "copying WordPress failed");
        let plugins = docroot.join("wp-content/plugins/sqlite-database-integration");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&plugin)
            .arg(&plugins)
            .status()?;
        anyhow::ensure!(status.success(), "copying the SQLite integration failed");
        // The drop-in finds the integration relative to itself when the placeholder path does
        // not exist, so that a copy of the docroot keeps working elsewhere.
        let dropin = std::fs::read_to_string(plugins.join("db.copy"))?
            .replace("{SQLITE_PLUGIN}", "sqlite-database-integration/load.php");
        std::fs::write(docroot.join("wp-content/db.php"), dropin)?;
        std::fs::write(docroot.join("wp-config.php"), wp_config_sqlite(prefix))?;
        let site = WpSite {
            docroot,
            url: format!("http://127.0.0.1:{port}"),
            port,
            db: String::new(),
            prefix: prefix.to_owned(),
            server: None,
        };
        site.wp_install(title)?;
        Ok(site)
    }

    fn wp_install(&self, title: &str) -> anyhow::Result<()> {
        let url = &self.url;
        self.run_php(
            "define('WP_INSTALLING', true);",
            &format!(
                r#"require_once ABSPATH . 'wp-admin/includes/upgrade.php';
wp_install({title:?}, {ADMIN_USER:?}, 'admin@example.test', true, '', {ADMIN_PASSWORD:?});
update_option('siteurl', {url:?});
update_option('home', {url:?});
update_option('permalink_structure', '');
echo 'installed';"#,
                title = title
            ),
        )
        .context("installing WordPress")?;
        Ok(())
    }

    /// An install made by someone else (the engine), to read and change in tests.
    pub fn attach(docroot: PathBuf, url: &str, port: u16, db: &str, prefix: &str) -> WpSite {
        WpSite {
            docroot,
            url: url.to_owned(),
            port,
            db: db.to_owned(),
            prefix: prefix.to_owned(),
            server: None,
        }
    }

    /// Runs PHP with WordPress loaded (after `wp-load.php`), returning what it printed.
    pub fn php(&self, code: &str) -> anyhow::Result<String> {
        self.run_php("", code)
    }

    fn run_php(&self, before_load: &str, code: &str) -> anyhow::Result<String> {
        let host = self.url.trim_start_matches("http://");
        let script = format!(
            "<?php\n$_SERVER['HTTP_HOST'] = '{host}';\n$_SERVER['REQUEST_URI'] = '/';\n$_SERVER['SERVER_NAME'] = '127.0.0.1';\n$_SERVER['SERVER_PORT'] = '{port}';\n{before_load}\nrequire {load:?};\n{code}\n",
            port = self.port,
            load = self.docroot.join("wp-load.php").to_string_lossy(),
        );
        let path = std::env::temp_dir().join(format!("sitetrail-wp-{}.php", random_suffix()));
        std::fs::write(&path, script)?;
        let out = Command::new("php")
            .args([
                "-d",
                "display_errors=stderr",
                "-d",
                "sendmail_path=/bin/true",
            ])
            .arg(&path)
            .current_dir(&self.docroot)
            .output()
            .context("running php")?;
        let _ = std::fs::remove_file(&path);
        anyhow::ensure!(
            out.status.success(),
            "php failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Serves the docroot with `php -S` (several workers, in its own process group).
    pub fn serve(&mut self) -> anyhow::Result<()> {
        let child = Command::new("setsid")
            .args([
                "php",
                "-d",
                "sendmail_path=/bin/true",
                "-d",
                "display_errors=0",
                "-S",
            ])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("-t")
            .arg(&self.docroot)
            .env("PHP_CLI_SERVER_WORKERS", "4")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting php -S")?;
        self.server = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("php -S did not start on port {}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // setsid made the server its own group leader: stop the whole group (workers).
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// An option's value as WordPress reads it.
    pub fn option(&self, name: &str) -> anyhow::Result<String> {
        self.php(&format!("echo get_option({name:?});"))
    }
}

/// Registers nothing: just a second environment's docroot and URL for tests that let the
/// engine provision staging.
pub fn empty_docroot(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// A service a test on real WordPress needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// MariaDB at 127.0.0.1:3306 (root, no password) and its `mariadb` client.
    MariaDb,
    /// Debian's `wordpress` package and PHP with mysqli.
    WordPress,
    /// WordPress's SQLite integration and PHP's pdo_sqlite.
    WordPressSqlite,
}

impl Service {
    /// The sentence a test without this service says, or `None` when it is here.
    fn missing(self) -> Option<&'static str> {
        let here = match self {
            Service::MariaDb => {
                std::net::TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], 3306)),
                    Duration::from_secs(2),
                )
                .is_ok()
                    && Command::new("mariadb")
                        .arg("--version")
                        .stdout(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
            }
            Service::WordPress => available().is_ok(),
            Service::WordPressSqlite => sqlite_plugin().is_ok(),
        };
        (!here).then_some(match self {
            Service::MariaDb => {
                "skipped: needs MariaDB at 127.0.0.1:3306 (bash scripts/test.sh starts it)"
            }
            Service::WordPress => {
                "skipped: needs WordPress and PHP (Debian's wordpress, php-cli, php-mysql; \
                 bash scripts/test.sh installs them)"
            }
            Service::WordPressSqlite => {
                "skipped: needs WordPress's SQLite integration and php-sqlite3 \
                 (bash scripts/wordpress-sqlite-plugin.sh fetches it)"
            }
        })
    }
}

/// Whether the services a test needs are here. When one is not, the test says so on one
/// line of stderr (`skipped: needs ...`) and returns; with `SITETRAIL_TEST_SERVICES=required`
/// (as `scripts/test.sh` runs the tests) the same sentence fails it.
pub fn services(needed: &[Service]) -> bool {
    for service in needed {
        if let Some(why) = service.missing() {
            assert!(
                std::env::var("SITETRAIL_TEST_SERVICES").as_deref() != Ok("required"),
                "{why}"
            );
            eprintln!("{why}");
            return false;
        }
    }
    true
}
