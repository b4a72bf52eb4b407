//! Which database servers and names a site's `wp-config.php` may use. A site's files are
//! hostile input: its `DB_HOST` could name any host, port or socket, and its `DB_NAME` could
//! be a pattern. The operator lists the servers sites may use; anything else is refused
//! before a connection is made, with a reason for people and the detail in the server's log.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::wpconfig::{self, DbHost, WpConfig};

/// MariaDB's and MySQL's port, when an entry names none.
pub const DEFAULT_PORT: u16 = 3306;

/// The servers of `--database-hosts` by default: the loopback and the local socket.
pub const DEFAULT_DATABASE_HOSTS: &str = "localhost,127.0.0.1,[::1],/run/mysqld/mysqld.sock";

/// One server sites may use: a host and port, or a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedServer {
    Tcp { host: String, port: u16 },
    Socket(PathBuf),
}

impl AllowedServer {
    fn allows(&self, host: &DbHost) -> bool {
        match (self, host) {
            (AllowedServer::Tcp { host: a, port: p }, DbHost::Tcp { host: b, port: q }) => {
                p == q && same_host(a, b)
            }
            // Components compare equal across `//` and `.`; a `..` or a relative path never
            // matches, as the operator's entries are absolute and plain.
            (AllowedServer::Socket(a), DbHost::Socket(b)) => a.as_path() == b.as_path(),
            _ => false,
        }
    }
}

fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

impl fmt::Display for AllowedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedServer::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            AllowedServer::Tcp { host, port } => write!(f, "{host}:{port}"),
            AllowedServer::Socket(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The operator's list (`--database-hosts`): comma-separated `host`, `host:port`, `[ipv6]`,
/// `[ipv6]:port` and absolute socket paths. A host without a port means port 3306. Hosts
/// match by name (case-insensitively) or, when both are IP addresses, by address; a name is
/// never resolved to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseHosts(Vec<AllowedServer>);

impl DatabaseHosts {
    pub fn servers(&self) -> &[AllowedServer] {
        &self.0
    }

    pub fn allows(&self, host: &DbHost) -> bool {
        self.0.iter().any(|s| s.allows(host))
    }
}

impl Default for DatabaseHosts {
    fn default() -> Self {
        DEFAULT_DATABASE_HOSTS
            .parse()
            .expect("the default list parses")
    }
}

impl fmt::Display for DatabaseHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl FromStr for DatabaseHosts {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let servers = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(server)
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("name at least one database server".into());
        }
        Ok(DatabaseHosts(servers))
    }
}

fn server(entry: &str) -> Result<AllowedServer, String> {
    if entry.starts_with('/') {
        let path = Path::new(entry);
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!("{entry:?}: a socket path without `..`"));
        }
        return Ok(AllowedServer::Socket(path.to_owned()));
    }
    let bad = || format!("{entry:?} is not host, host:port, [ipv6]:port or /path/to.sock");
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if entry.matches(':').count() > 1 {
        (entry, None)
    } else {
        match entry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        None => DEFAULT_PORT,
    };
    let is_name = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if host.parse::<IpAddr>().is_err() && !is_name {
        return Err(bad());
    }
    Ok(AllowedServer::Tcp {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Why a site's database settings were refused. Each reads after "live's" or "staging's"
/// and says what to do; none repeats the refused value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "wp-config.php names a database server this host does not allow; ask your host which database server the site should use"
    )]
    Server,
    #[error(
        "wp-config.php's DB_NAME is not a database name this host accepts (letters, digits, _, - and $, at most 64); ask your host for the site's database name"
    )]
    Name,
    #[error(
        "wp-config.php's DB_USER is not a database user name this host accepts (letters, digits, _, -, . and $, at most 80); ask your host for the site's database user"
    )]
    User,
    #[error(
        "database name is too long for a staging database beside it (staging's adds _staging, and names are at most 64 characters); ask your host to shorten it"
    )]
    StagingName,
}

/// Database names sitetrail uses: what hosting panels make (`[A-Za-z0-9_$-]`), at most 64.
/// `%` and `\` are not in it, so a name is never a pattern; `_` still is, and is escaped
/// where a pattern is read (GRANT).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-'))
}

/// Database user names: `[A-Za-z0-9_.$-]`, at most 80 (MariaDB's limit; MySQL's is 32).
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 80
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'-'))
}

/// Staging's database: live's with `_staging` added, refused when too long (a cut name
/// could be another site's).
pub fn staging_name(live: &str) -> Result<String, Refusal> {
    if !valid_name(live) {
        return Err(Refusal::Name);
    }
    let name = format!("{live}_staging");
    if !valid_name(&name) {
        return Err(Refusal::StagingName);
    }
    Ok(name)
}

/// The operator's database policy: the servers sites may use, and the admin connection that
/// creates staging databases when live's own user may not.
#[derive(Clone, Default)]
pub struct DatabasePolicy {
    hosts: DatabaseHosts,
    admin: Option<WpConfig>,
}

/// The admin connection's password never reaches a log.
impl fmt::Debug for DatabasePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabasePolicy")
            .field("hosts", &self.hosts.to_string())
            .field("admin", &self.admin.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl DatabasePolicy {
    /// `admin_url`: `mysql://user:password@host:port` or `mysql://user@localhost` (the
    /// socket).
    pub fn new(hosts: DatabaseHosts, admin_url: Option<&str>) -> anyhow::Result<Self> {
        Ok(DatabasePolicy {
            hosts,
            admin: admin_url.map(wpconfig::from_mysql_url).transpose()?,
        })
    }

    pub fn hosts(&self) -> &DatabaseHosts {
        &self.hosts
    }

    pub fn admin(&self) -> Option<&WpConfig> {
        self.admin.as_ref()
    }

    /// Whether a site's database settings may be used: checked before every connection. The
    /// refused value goes to the server's log only.
    pub fn check(&self, config: &WpConfig) -> Result<(), Refusal> {
        if config.sqlite_file.is_some() {
            return Ok(());
        }
        let refusal = if !self.hosts.allows(&config.host) {
            Refusal::Server
        } else if !valid_name(&config.name) {
            Refusal::Name
        } else if !valid_user(&config.user) {
            Refusal::User
        } else {
            return Ok(());
        };
        tracing::warn!(
            db_host = ?config.host,
            db_name = %config.name.escape_debug(),
            db_user = %config.user.escape_debug(),
            allowed = %self.hosts,
            %refusal,
            "a site's database settings were refused"
        );
        Err(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wpconfig::parse_db_host;

    fn allowed(list: &str, db_host: &str) -> bool {
        list.parse::<DatabaseHosts>()
            .unwrap()
            .allows(&parse_db_host(db_host))
    }

    #[test]
    fn the_default_allows_the_loopback_on_3306_and_the_local_socket() {
        let d = DatabaseHosts::default().to_string();
        for ok in [
            "localhost",
            "localhost:3306",
            "LOCALHOST:3306",
            "127.0.0.1",
            "127.0.0.1:3306",
            "::1",
            "[::1]:3306",
            "[0:0:0:0:0:0:0:1]",
            "localhost:/run/mysqld/mysqld.sock",
            ":/run/mysqld//mysqld.sock",
            "",
        ] {
            assert!(allowed(&d, ok), "{ok:?} is allowed by default");
        }
        for refused in [
            "127.0.0.1:3307",
            "127.0.0.2",
            "127.1",
            "0x7f000001",
            "localhost:5432",
            "db.internal",
            "10.0.0.5:3306",
            "[::1]:5432",
            "localhost:/var/run/postgresql/.s.PGSQL.5432",
            "localhost:/run/mysqld/../postgresql/.s.PGSQL.5432",
            "localhost:/tmp/mysqld.sock",
            "localhost:mysqld.sock",
            "127.0.0.1:3306:3306",
            "127.0.0.1:/run/mysqld/mysqld.sock/x",
        ] {
            assert!(!allowed(&d, refused), "{refused:?} is refused by default");
        }
    }

    #[test]
    fn an_operator_lists_hosts_ports_and_sockets() {
        let list = "db1.internal, db2.internal:3307,10.0.0.5, [fd00::5]:3310,/srv/mysql/a.sock";
        let hosts: DatabaseHosts = list.parse().unwrap();
        assert_eq!(hosts.servers().len(), 5);
        assert_eq!(
            hosts.to_string(),
            "db1.internal:3306,db2.internal:3307,10.0.0.5:3306,[fd00::5]:3310,/srv/mysql/a.sock"
        );
        assert!(allowed(list, "DB1.internal"));
        assert!(allowed(list, "db2.internal:3307"));
        assert!(!allowed(list, "db2.internal"));
        assert!(allowed(list, "[fd00:0::5]:3310"));
        assert!(allowed(list, "localhost:/srv/mysql/a.sock"));
        assert!(!allowed(list, "localhost"), "the defaults are replaced");
        assert_eq!(
            hosts.to_string().parse::<DatabaseHosts>().unwrap(),
            hosts,
            "the list reads back"
        );
    }

    #[test]
    fn a_malformed_list_is_refused_with_the_entry() {
        for bad in [
            "",
            " , ",
            "db:port",
            "db:0",
            "db:70000",
            "[::1",
            "[::1]3306",
            "db internal",
            "db;drop",
            "/run/../etc/x.sock",
            "mysql://db",
        ] {
            assert!(bad.parse::<DatabaseHosts>().is_err(), "{bad:?}");
        }
        let e = "db:port".parse::<DatabaseHosts>().unwrap_err();
        assert!(e.contains("db:port"), "{e}");
    }

    #[test]
    fn names_are_what_hosting_panels_make_and_never_patterns() {
        for ok in ["shop", "wp_shop-1", "cp$user_wp", &"a".repeat(64)] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            "victim%",
            "v\\_ctim",
            "a`b",
            "a b",
            "a.b",
            "a'b",
            "é",
            "a\0",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_user("cpuser_wp.1"));
        for bad in ["", "root'@'%", "a@b", "a%", "a b", &"u".repeat(81)] {
            assert!(!valid_user(bad), "{bad:?}");
        }
    }

    #[test]
    fn stagings_name_is_lives_plus_staging_or_refused() {
        assert_eq!(staging_name("shop").unwrap(), "shop_staging");
        assert_eq!(staging_name(&"a".repeat(56)).unwrap().len(), 64);
        assert_eq!(staging_name(&"a".repeat(57)), Err(Refusal::StagingName));
        assert_eq!(staging_name("victim%"), Err(Refusal::Name));
    }

    fn site(host: &str, name: &str, user: &str) -> WpConfig {
        WpConfig {
            name: name.into(),
            user: user.into(),
            password: "p".into(),
            host: parse_db_host(host),
            prefix: "wp_".into(),
            sqlite_file: None,
        }
    }

    #[test]
    fn a_policy_checks_server_name_and_user() {
        let p = DatabasePolicy::default();
        assert_eq!(p.check(&site("localhost", "shop", "shop")), Ok(()));
        assert_eq!(
            p.check(&site("127.0.0.1:3307", "shop", "shop")),
            Err(Refusal::Server)
        );
        assert_eq!(
            p.check(&site("localhost", "v%", "shop")),
            Err(Refusal::Name)
        );
        assert_eq!(
            p.check(&site("localhost", "shop", "x'@'%")),
            Err(Refusal::User)
        );
        let mut sqlite = site("db.evil.example", "", "");
        sqlite.sqlite_file = Some("/srv/www/shop/wp-content/database/.ht.sqlite".into());
        assert_eq!(p.check(&sqlite), Ok(()), "SQLite sites name no server");
    }

    #[test]
    fn refusals_name_no_server_detail() {
        for r in [
            Refusal::Server,
            Refusal::Name,
            Refusal::User,
            Refusal::StagingName,
        ] {
            let text = r.to_string();
            assert!(text.contains("ask your host"), "{text}");
            assert!(!text.contains('/') && !text.contains('@'), "{text}");
        }
    }

    #[test]
    fn the_admin_password_never_shows() {
        let p = DatabasePolicy::new(
            DatabaseHosts::default(),
            Some("mysql://root:t0psecret@127.0.0.1:3306"),
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("t0psecret"));
        assert_eq!(p.admin().unwrap().user, "root");
    }
}
