//! What a person or a client asks a push to carry, checked the same way for the API and the
//! dashboard: a scope with the list it needs (tables for `tables`, folders for `folders`),
//! no list without its scope, and names that cannot leave the docroot or break a query.
//! The engine checks again; this room answers 422 before anything is logged.

use sitetrail_staging::PushScope;

/// Names one list may hold at most.
pub const MAX_NAMES: usize = 200;

/// A table named without its prefix: what MariaDB allows unquoted, 1 to 64 characters.
pub fn table_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// A folder relative to the docroot (`wp-content/themes/shop`): no leading or trailing
/// slash, no `.` or `..`, no backslash or control character, and never `wp-config.php`,
/// which stays each environment's own.
pub fn folder_ok(folder: &str) -> bool {
    folder.len() <= 1024
        && !folder.is_empty()
        && !folder.contains('\\')
        && !folder.chars().any(char::is_control)
        && folder
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && part != "wp-config.php")
}

/// Lines of a text field, trimmed, without empty ones (the dashboard's "one per line").
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The lists a scope carries, checked; the message says what to do in words.
pub fn checked_lists(
    scope: PushScope,
    tables: Vec<String>,
    folders: Vec<String>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let tables = dedup(tables);
    let folders = dedup(folders);
    match scope {
        PushScope::Tables if tables.is_empty() => {
            return Err("Name at least one table to push.".into());
        }
        PushScope::Folders if folders.is_empty() => {
            return Err("Name at least one folder to push.".into());
        }
        _ => {}
    }
    if scope != PushScope::Tables && !tables.is_empty() {
        return Err("Tables are named only when pushing chosen tables.".into());
    }
    if scope != PushScope::Folders && !folders.is_empty() {
        return Err("Folders are named only when pushing chosen folders.".into());
    }
    let tables = checked_tables(tables)?;
    if folders.len() > MAX_NAMES {
        return Err(format!("Name at most {MAX_NAMES} folders at once."));
    }
    if let Some(bad) = folders.iter().find(|f| !folder_ok(f)) {
        return Err(format!(
            "\u{201c}{}\u{201d} is not a folder of the site: name folders from the site's top \
             folder (wp-content/themes/shop), without .. or a leading slash.",
            shorten(bad)
        ));
    }
    Ok((tables, folders))
}

/// Tables named without their prefix, each once (none is allowed).
pub fn checked_tables(tables: Vec<String>) -> Result<Vec<String>, String> {
    let tables = dedup(tables);
    if tables.len() > MAX_NAMES {
        return Err(format!("Name at most {MAX_NAMES} tables at once."));
    }
    if let Some(bad) = tables.iter().find(|t| !table_ok(t)) {
        return Err(format!(
            "\u{201c}{}\u{201d} is not a table name: name tables without their prefix, with \
             letters, digits and underscores (posts, wc_orders).",
            shorten(bad)
        ));
    }
    Ok(tables)
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// A name as a message may quote it: short, whatever was sent.
fn shorten(name: &str) -> String {
    let mut s: String = name.chars().filter(|c| !c.is_control()).take(80).collect();
    if name.chars().count() > 80 {
        s.push('\u{2026}');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_needs_its_list_and_a_list_its_scope() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(checked_lists(PushScope::Tables, vec![], vec![]).is_err());
        assert!(checked_lists(PushScope::Folders, vec![], vec![]).is_err());
        assert!(checked_lists(PushScope::Site, v(&["posts"]), vec![]).is_err());
        assert!(checked_lists(PushScope::Database, vec![], v(&["wp-content"])).is_err());
        assert_eq!(
            checked_lists(
                PushScope::Tables,
                v(&["posts", "posts", "wc_orders"]),
                vec![]
            ),
            Ok((v(&["posts", "wc_orders"]), vec![]))
        );
        assert!(checked_lists(PushScope::Site, vec![], vec![]).is_ok());
    }

    #[test]
    fn names_that_leave_the_docroot_or_break_a_query_are_refused() {
        for bad in ["", "posts`; drop", "a b", "wp-posts", &"x".repeat(65)] {
            assert!(!table_ok(bad), "{bad}");
        }
        for bad in [
            "/etc",
            "../live",
            "wp-content/../../x",
            "wp-content/",
            "a//b",
            "./wp-content",
            "wp-content\\x",
            "wp-config.php",
            "a\nb",
        ] {
            assert!(!folder_ok(bad), "{bad:?}");
        }
        assert!(folder_ok("wp-content/themes/shop"));
        assert!(table_ok("wc_order_itemmeta"));
    }
}
