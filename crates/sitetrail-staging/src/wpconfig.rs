//! Reading `wp-config.php` without running it: the `define()`s of the database constants
//! and `$table_prefix`, as literal strings. Anything computed at run time is refused with a
//! clear reason rather than guessed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("wp-config.php does not define {0} as a literal string")]
    Missing(&'static str),
    #[error("$table_prefix {0:?} is not a valid table prefix (letters, digits and _ only)")]
    BadPrefix(String),
}

/// Where MariaDB/MySQL listens, as `DB_HOST` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbHost {
    Tcp { host: String, port: u16 },
    Socket(PathBuf),
}

/// The database settings of one WordPress install.
#[derive(Clone, PartialEq, Eq)]
pub struct WpConfig {
    pub name: String,
    pub user: String,
    pub password: String,
    pub host: DbHost,
    pub prefix: String,
    /// Set when WordPress runs on SQLite through its database integration drop-in.
    pub sqlite_file: Option<PathBuf>,
}

impl std::fmt::Debug for WpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WpConfig")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .field("sqlite_file", &self.sqlite_file)
            .finish()
    }
}

pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// Where `DB_HOST` would lead, for the server's log.
impl std::fmt::Display for DbHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbHost::Tcp { host, port } => write!(f, "{host}:{port}"),
            DbHost::Socket(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Parses `DB_HOST` the way WordPress's `wpdb::parse_db_host` does: `host`, `host:port`,
/// `[ipv6]:port`, `host:/path/to.sock`, `:/path/to.sock`; `localhost` without a port means
/// the socket. A form it cannot read is kept whole as a host name, which no policy allows.
pub fn parse_db_host(s: &str) -> DbHost {
    let s = s.trim();
    if let Some(i) = s.find(":/") {
        return DbHost::Socket(PathBuf::from(&s[i + 1..]));
    }
    let unreadable = || DbHost::Tcp {
        host: s.to_owned(),
        port: 3306,
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, after)) => match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return unreadable(),
            },
            None => return unreadable(),
        }
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address.
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host = if host.is_empty() { "localhost" } else { host };
    match (host, port) {
        ("localhost", None) => DbHost::Socket(PathBuf::from(DEFAULT_SOCKET)),
        (h, None) => DbHost::Tcp {
            host: h.to_owned(),
            port: 3306,
        },
        (h, Some(p)) => match p.parse::<u16>() {
            Ok(port) => DbHost::Tcp {
                host: h.to_owned(),
                port,
            },
            Err(_) => unreadable(),
        },
    }
}

/// Where WordPress's SQLite integration keeps its database when `wp-config.php` does not say.
pub const SQLITE_DIR: &str = "wp-content/database";
pub const SQLITE_FILE: &str = ".ht.sqlite";

/// Reads a docroot's `wp-config.php`, opened beneath the docroot without following a link.
///
/// WordPress also looks for `wp-config.php` in the docroot's parent; sitetrail does not: that
/// directory is outside the environment (it may be shared with other sites), so a docroot
/// without its own `wp-config.php` has none. Under the SQLite integration, `DB_DIR` and
/// `DB_FILE` must name a file inside the docroot, reached without a link; anything else is
/// refused, never followed.
pub fn read(docroot: &Path) -> anyhow::Result<WpConfig> {
    use crate::confined::{Access, Root, refusal};
    let link = |what: &str, detail: String| {
        refusal(
            format!(
                "{what} is a link (or is reached through one); sitetrail never reads or writes \
                 through links: replace it with a regular file of the site's own"
            ),
            detail,
        )
    };
    let root = match Root::open(docroot) {
        Ok(r) => r,
        Err(Access::Link) => {
            return Err(link(
                "the environment's directory",
                format!("{} is a link", docroot.display()),
            ));
        }
        Err(Access::Missing) => return Err(anyhow::Error::new(NoConfig)),
        Err(e) => return Err(anyhow::anyhow!("opening {}: {e}", docroot.display())),
    };
    let text = match root.read(Path::new("wp-config.php")) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("wp-config.php is not UTF-8 text"))?,
        Err(Access::Missing) => return Err(anyhow::Error::new(NoConfig)),
        Err(Access::Link) => {
            return Err(link(
                "wp-config.php",
                format!("{}/wp-config.php is a link", docroot.display()),
            ));
        }
        Err(Access::WrongKind) => {
            return Err(refusal(
                "wp-config.php is not a regular file: replace it with one",
                format!("{}/wp-config.php is not a regular file", docroot.display()),
            ));
        }
        Err(Access::Io(e)) => {
            return Err(anyhow::anyhow!(
                "reading {}/wp-config.php: {e}",
                docroot.display()
            ));
        }
    };
    let mut config = parse(&text)?;
    let dropin = root.is_file(Path::new("wp-content/db.php")).map_err(|e| {
        link(
            "wp-content/db.php",
            format!("{}/wp-content/db.php: {e}", docroot.display()),
        )
    })?;
    if dropin {
        let rel = sqlite_location(docroot, &constants(&text))?;
        match root.open_file(&rel) {
            Ok(_) | Err(Access::Missing) => {}
            Err(e) => {
                return Err(refusal(
                    "the SQLite database's path passes through a link or is not a file; \
                     sitetrail never follows links: keep the database in a directory of the \
                     site's own",
                    format!("{}: {e}", docroot.join(&rel).display()),
                ));
            }
        }
        config.sqlite_file = Some(docroot.join(rel));
    }
    Ok(config)
}

/// A docroot has no `wp-config.php` of its own (staging not made yet).
#[derive(Debug, thiserror::Error)]
#[error("the environment has no wp-config.php")]
pub struct NoConfig;

/// The SQLite database's path inside the docroot, from `DB_DIR` and `DB_FILE` as written. A
/// `DB_DIR` must be the docroot or a directory under it, named through the docroot's path as
/// registered; `DB_FILE` one name. Anything else (another site's directory, `..`, a relative
/// `DB_DIR` WordPress would resolve from wherever PHP runs) is refused.
fn sqlite_location(docroot: &Path, consts: &HashMap<String, String>) -> anyhow::Result<PathBuf> {
    let refuse = |what: &str, value: &str| {
        crate::confined::refusal(
            format!(
                "wp-config.php's {what} names a place outside the site's directory; \
                 sitetrail only uses a SQLite database inside the site's own docroot"
            ),
            format!("{}: {what} = {value:?}", docroot.display()),
        )
    };
    let dir = match consts.get("DB_DIR") {
        None => PathBuf::from(SQLITE_DIR),
        Some(value) => {
            let inside = Path::new(value)
                .strip_prefix(docroot)
                .ok()
                .filter(|_| Path::new(value).is_absolute())
                .and_then(crate::confined::relative);
            inside.ok_or_else(|| refuse("DB_DIR", value))?
        }
    };
    let file = match consts.get("DB_FILE") {
        None => SQLITE_FILE.to_owned(),
        Some(value) => {
            let one_name = matches!(
                Path::new(value).components().collect::<Vec<_>>().as_slice(),
                [std::path::Component::Normal(_)]
            ) && !value.contains('/');
            if !one_name {
                return Err(refuse("DB_FILE", value));
            }
            value.clone()
        }
    };
    Ok(dir.join(file))
}

pub fn parse(text: &str) -> Result<WpConfig, ConfigError> {
    let consts = constants(text);
    let get = |k: &'static str| consts.get(k).cloned().ok_or(ConfigError::Missing(k));
    let prefix = table_prefix(text).ok_or(ConfigError::Missing("$table_prefix"))?;
    if prefix.is_empty()
        || prefix.len() > 32
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ConfigError::BadPrefix(prefix));
    }
    Ok(WpConfig {
        name: get("DB_NAME").unwrap_or_default(),
        user: get("DB_USER").unwrap_or_default(),
        password: get("DB_PASSWORD").unwrap_or_default(),
        host: parse_db_host(&get("DB_HOST").unwrap_or_else(|_| "localhost".into())),
        prefix,
        sqlite_file: None,
    })
}

/// PHP source without comments; string literals are kept intact.
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push_str(&text[start..i]);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                out.push(' ');
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |e| i + e);
            }
            b'#' => {
                i = text[i..].find('\n').map_or(b.len(), |e| i + e);
            }
            _ => {
                let ch = text[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Reads one PHP string literal at the start of `s`: its value and the rest.
fn literal(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => return Some((out, &s[1 + i + 1..])),
            '\\' => {
                let (_, next) = chars.next()?;
                match (q, next) {
                    (_, '\\') => out.push('\\'),
                    ('\'', '\'') => out.push('\''),
                    ('"', '"') => out.push('"'),
                    ('"', 'n') => out.push('\n'),
                    ('"', 't') => out.push('\t'),
                    ('"', '$') => out.push('$'),
                    (_, other) => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            // Interpolation is run-time work; such a value cannot be read as written.
            '$' if q == '"' => return None,
            c => out.push(c),
        }
    }
    None
}

/// `define('NAME', 'value')` calls whose value is a string literal.
fn constants(text: &str) -> HashMap<String, String> {
    let code = strip_comments(text);
    let mut out = HashMap::new();
    let lower = code.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("define") {
        let start = from + pos + "define".len();
        from = start;
        let rest = code[start..].trim_start();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let Some((name, rest)) = literal(rest) else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(',') else {
            continue;
        };
        let Some((value, rest)) = literal(rest) else {
            continue;
        };
        if rest.trim_start().starts_with([')', ',']) {
            out.entry(name).or_insert(value);
        }
    }
    out
}

fn table_prefix(text: &str) -> Option<String> {
    let code = strip_comments(text);
    let pos = code.find("$table_prefix")?;
    let rest = code[pos + "$table_prefix".len()..].trim_start();
    let rest = rest.strip_prefix('=')?;
    let (value, rest) = literal(rest)?;
    rest.trim_start().starts_with(';').then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?php
// ** Database settings ** //
define( 'DB_NAME', 'shop_live' );
/* define('DB_NAME', 'commented_out'); */
define("DB_USER", "shop");
define('DB_PASSWORD', 'p\'a"ss#word//x');
# define('DB_HOST', 'wrong');
define( 'DB_HOST', '127.0.0.1:3307' );
define( 'AUTH_KEY', 'put your unique phrase here' );
$table_prefix = 'shop_';
if ( ! defined( 'ABSPATH' ) ) { define( 'ABSPATH', __DIR__ . '/' ); }
require_once ABSPATH . 'wp-settings.php';
"#;

    #[test]
    fn reads_the_database_settings_as_written() {
        let c = parse(SAMPLE).unwrap();
        assert_eq!(c.name, "shop_live");
        assert_eq!(c.user, "shop");
        assert_eq!(c.password, "p'a\"ss#word//x");
        assert_eq!(
            c.host,
            DbHost::Tcp {
                host: "127.0.0.1".into(),
                port: 3307
            }
        );
        assert_eq!(c.prefix, "shop_");
        assert!(!format!("{c:?}").contains("ss#word"));
    }

    #[test]
    fn db_host_forms() {
        assert_eq!(
            parse_db_host("localhost"),
            DbHost::Socket(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            parse_db_host("localhost:/tmp/my.sock"),
            DbHost::Socket("/tmp/my.sock".into())
        );
        assert_eq!(
            parse_db_host(":/tmp/my.sock"),
            DbHost::Socket("/tmp/my.sock".into())
        );
        assert_eq!(
            parse_db_host("db.internal"),
            DbHost::Tcp {
                host: "db.internal".into(),
                port: 3306
            }
        );
        assert_eq!(
            parse_db_host("localhost:3306"),
            DbHost::Tcp {
                host: "localhost".into(),
                port: 3306
            }
        );
        let tcp = |host: &str, port| DbHost::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(parse_db_host("[::1]:3307"), tcp("::1", 3307));
        assert_eq!(parse_db_host("[::1]"), tcp("::1", 3306));
        assert_eq!(parse_db_host("::1"), tcp("::1", 3306));
        assert_eq!(parse_db_host(":3307"), tcp("localhost", 3307));
        assert_eq!(
            parse_db_host("localhost:mysql.sock"),
            tcp("localhost:mysql.sock", 3306),
            "unreadable forms stay whole"
        );
        assert_eq!(parse_db_host("[::1]x"), tcp("[::1]x", 3306));
        assert_eq!(
            parse_db_host("127.0.0.1:3306").to_string(),
            "127.0.0.1:3306"
        );
    }

    #[test]
    fn computed_values_and_bad_prefixes_are_refused() {
        let computed = SAMPLE.replace("$table_prefix = 'shop_';", "$table_prefix = getenv('P');");
        assert_eq!(parse(&computed), Err(ConfigError::Missing("$table_prefix")));
        let bad = SAMPLE.replace("'shop_'", "'shop-; DROP'");
        assert!(matches!(parse(&bad), Err(ConfigError::BadPrefix(_))));
        let interpolated = SAMPLE.replace("\"shop\"", "\"$user\"");
        assert_eq!(parse(&interpolated).unwrap().user, "");
    }

    /// A docroot on SQLite whose `wp-config.php` adds `extra`.
    fn sqlite_docroot(root: &Path, extra: &str) -> PathBuf {
        let docroot = root.join("site");
        std::fs::create_dir_all(docroot.join("wp-content/database")).unwrap();
        std::fs::write(docroot.join("wp-content/db.php"), "<?php").unwrap();
        std::fs::write(
            docroot.join("wp-config.php"),
            SAMPLE.replace("$table_prefix", &format!("{extra}\n$table_prefix")),
        )
        .unwrap();
        docroot
    }

    fn refused(r: anyhow::Result<WpConfig>) -> String {
        let e = r.unwrap_err();
        assert!(
            e.chain().any(|c| c.is::<crate::confined::Refusal>()),
            "{e:#}"
        );
        e.to_string()
    }

    #[test]
    fn the_sqlite_database_must_be_inside_the_docroot() {
        let dir = tempfile::tempdir().unwrap();
        let docroot = sqlite_docroot(dir.path(), "");
        assert_eq!(
            read(&docroot).unwrap().sqlite_file,
            Some(docroot.join("wp-content/database/.ht.sqlite"))
        );
        let inside = format!(
            "define('DB_DIR', '{}/wp-content/db2/'); define('DB_FILE', 'shop.sqlite');",
            docroot.display()
        );
        let docroot = sqlite_docroot(dir.path(), &inside);
        assert_eq!(
            read(&docroot).unwrap().sqlite_file,
            Some(docroot.join("wp-content/db2/shop.sqlite"))
        );
        let victim = dir.path().join("victim/wp-content/database");
        for extra in [
            format!("define('DB_DIR', '{}/');", victim.display()),
            format!("define('DB_DIR', '{}/../victim/');", docroot.display()),
            "define('DB_DIR', 'wp-content/database/');".to_owned(),
            "define('DB_FILE', '../../../victim/wp-content/database/.ht.sqlite');".to_owned(),
            "define('DB_FILE', 'sub/.ht.sqlite');".to_owned(),
        ] {
            let docroot = sqlite_docroot(dir.path(), &extra);
            let reason = refused(read(&docroot));
            assert!(!reason.contains('/'), "{reason}");
        }
        let docroot = sqlite_docroot(dir.path(), "");
        std::fs::remove_dir(docroot.join("wp-content/database")).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, docroot.join("wp-content/database")).unwrap();
        refused(read(&docroot));
    }

    #[test]
    fn wp_config_is_read_beneath_the_docroot_only() {
        let dir = tempfile::tempdir().unwrap();
        let docroot = dir.path().join("site");
        std::fs::create_dir(&docroot).unwrap();
        // WordPress's fallback one level up is outside the environment: not read.
        std::fs::write(dir.path().join("wp-config.php"), SAMPLE).unwrap();
        assert!(read(&docroot).unwrap_err().is::<NoConfig>());
        std::os::unix::fs::symlink(
            dir.path().join("wp-config.php"),
            docroot.join("wp-config.php"),
        )
        .unwrap();
        assert!(refused(read(&docroot)).starts_with("wp-config.php is a link"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }

        #[test]
        fn reads_any_single_quoted_password(p in "[ -~]{0,40}") {
            let escaped = p.replace('\\', "\\\\").replace('\'', "\\'");
            let text = SAMPLE.replace(r#"'p\'a"ss#word//x'"#, &format!("'{escaped}'"));
            proptest::prop_assert_eq!(parse(&text).unwrap().password, p);
        }
    }
}

/// An admin connection from a URL, `mysql://user:password@host:port` or
/// `mysql://user@localhost` (the socket), for creating staging databases.
pub fn from_mysql_url(url: &str) -> anyhow::Result<WpConfig> {
    let rest = url
        .strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("mariadb://"))
        .ok_or_else(|| anyhow::anyhow!("the MySQL admin URL must start with mysql://"))?;
    let (auth, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let host = host.trim_end_matches('/');
    anyhow::ensure!(
        !user.is_empty() && !host.is_empty(),
        "the MySQL admin URL needs a user and a host"
    );
    Ok(WpConfig {
        name: String::new(),
        user: user.to_owned(),
        password: password.to_owned(),
        host: parse_db_host(host),
        prefix: "wp_".into(),
        sqlite_file: None,
    })
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn admin_urls_name_a_user_and_a_host() {
        let c = from_mysql_url("mysql://root:s3cret@127.0.0.1:3307").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("root", "s3cret"));
        assert_eq!(
            c.host,
            DbHost::Tcp {
                host: "127.0.0.1".into(),
                port: 3307
            }
        );
        assert_eq!(
            from_mysql_url("mysql://admin@localhost").unwrap().host,
            DbHost::Socket(DEFAULT_SOCKET.into())
        );
        assert!(from_mysql_url("postgres://x@y").is_err());
    }
}
