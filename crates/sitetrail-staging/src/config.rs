//! Writing a staging environment's `wp-config.php` from live's: the same settings, its own
//! database name, table prefix and fresh salts.

const SALTS: [&str; 8] = [
    "AUTH_KEY",
    "SECURE_AUTH_KEY",
    "LOGGED_IN_KEY",
    "NONCE_KEY",
    "AUTH_SALT",
    "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT",
    "NONCE_SALT",
];

fn php_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn salt() -> String {
    const ALPHABET: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#%^&*()-_[]{}<>~+=,.;:/?|";
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn defines(line: &str, key: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("define")
        && (l.contains(&format!("'{key}'")) || l.contains(&format!("\"{key}\"")))
}

/// Live's `wp-config.php` with `DB_NAME`, the salts and `$table_prefix` replaced. For
/// WordPress on SQLite, live's `DB_DIR` and `DB_FILE` are left out, so that staging's
/// database is the default file in its own docroot.
pub fn derive(live: &str, db_name: &str, prefix: &str, sqlite: bool) -> String {
    let mut out = Vec::new();
    let mut seen_name = false;
    let mut seen_salts = [false; 8];
    let mut seen_prefix = false;
    for line in live.lines() {
        if sqlite && (defines(line, "DB_DIR") || defines(line, "DB_FILE")) {
            continue;
        }
        if defines(line, "DB_NAME") {
            out.push(format!("define( 'DB_NAME', {} );", php_string(db_name)));
            seen_name = true;
        } else if let Some(i) = SALTS.iter().position(|k| defines(line, k)) {
            out.push(format!(
                "define( '{}', {} );",
                SALTS[i],
                php_string(&salt())
            ));
            seen_salts[i] = true;
        } else if line.trim_start().starts_with("$table_prefix") {
            out.push(format!("$table_prefix = {};", php_string(prefix)));
            seen_prefix = true;
        } else {
            out.push(line.to_owned());
        }
    }
    let mut missing = Vec::new();
    if !seen_name {
        missing.push(format!("define( 'DB_NAME', {} );", php_string(db_name)));
    }
    for (i, seen) in seen_salts.iter().enumerate() {
        if !seen {
            missing.push(format!(
                "define( '{}', {} );",
                SALTS[i],
                php_string(&salt())
            ));
        }
    }
    if !seen_prefix {
        missing.push(format!("$table_prefix = {};", php_string(prefix)));
    }
    if !missing.is_empty() {
        let at = out
            .iter()
            .position(|l| l.contains("wp-settings.php") || l.contains("ABSPATH"))
            .unwrap_or(out.len());
        out.splice(at..at, missing);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wpconfig;

    const LIVE: &str = "<?php\ndefine( 'DB_NAME', 'shop' );\ndefine( 'DB_USER', 'u' );\ndefine( 'DB_PASSWORD', 'p' );\ndefine( 'DB_HOST', '127.0.0.1:3306' );\ndefine( 'AUTH_KEY', 'same' );\ndefine( 'DISABLE_WP_CRON', true );\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n";

    #[test]
    fn staging_keeps_lives_settings_with_its_own_database_prefix_and_salts() {
        let text = derive(LIVE, "shop_staging", "stg_", false);
        let c = wpconfig::parse(&text).unwrap();
        assert_eq!(
            (c.name.as_str(), c.user.as_str(), c.prefix.as_str()),
            ("shop_staging", "u", "stg_")
        );
        assert!(text.contains("DISABLE_WP_CRON"));
        assert!(!text.contains("'same'"), "fresh salts");
        assert!(text.contains("NONCE_SALT"), "missing salts are added");
        assert!(text.find("NONCE_SALT").unwrap() < text.find("wp-settings.php").unwrap());
    }
}
