//! What a preview of a push (or a push stopped before switching) reports, written for people:
//! per table the rows added, removed, changed and kept from live, the conflicts with their
//! table and key, the files with their sizes, the URL rewrites and the cells left as they were.
//! Table names, keys and file names come from the site: control characters in them are shown
//! escaped, never sent to the terminal.

use std::fmt::Write;

use sitetrail_staging::PushReport;

/// The report as lines for a terminal.
pub fn for_people(report: &PushReport) -> String {
    let mut out = String::new();
    let changed: Vec<_> = report
        .tables
        .iter()
        .filter(|t| t.added + t.removed + t.changed + t.kept_from_live > 0)
        .collect();
    let unchanged = report.tables.len() - changed.len();
    if report.tables.is_empty() {
        out.push_str("Database: not part of this push.\n");
    } else {
        let _ = writeln!(
            out,
            "Database: {} of {} tables change ({unchanged} unchanged).",
            changed.len(),
            report.tables.len()
        );
        let width = changed
            .iter()
            .map(|t| shown(&t.table).chars().count())
            .max()
            .unwrap_or(0)
            .max("table".len());
        if !changed.is_empty() {
            let _ = writeln!(
                out,
                "  {:width$}  {:>8}  {:>8}  {:>8}  {:>15}",
                "table", "added", "removed", "changed", "kept from live"
            );
        }
        for t in changed {
            let _ = writeln!(
                out,
                "  {:width$}  {:>8}  {:>8}  {:>8}  {:>15}",
                shown(&t.table),
                t.added,
                t.removed,
                t.changed,
                t.kept_from_live
            );
        }
    }
    let _ = writeln!(
        out,
        "Kept from live: {} {} that live added or changed since staging was made, in the \
         tables live owns.",
        report.kept_from_live,
        rows(report.kept_from_live)
    );
    if report.conflicts.is_empty() {
        out.push_str("Conflicts: none.\n");
    } else {
        let _ = writeln!(
            out,
            "Conflicts: {} {} changed on both staging and live:",
            report.conflicts.len(),
            rows(report.conflicts.len() as u64)
        );
        for c in &report.conflicts {
            let _ = writeln!(
                out,
                "  {} {}: {} on staging, {} on live",
                shown(&c.table),
                shown(&c.key),
                shown(&c.staging),
                shown(&c.live)
            );
        }
    }
    let f = &report.files;
    if f.added + f.changed + f.removed == 0 {
        out.push_str("Files: none change.\n");
    } else {
        let _ = writeln!(
            out,
            "Files: {} added ({}), {} changed ({}), {} removed ({}).",
            f.added,
            bytes(f.bytes_added),
            f.changed,
            bytes(f.bytes_changed),
            f.removed,
            bytes(f.bytes_removed)
        );
        for file in &f.list {
            let _ = writeln!(
                out,
                "  {:8} {}  {}",
                shown(&file.change),
                shown(&file.path),
                bytes(file.bytes)
            );
        }
        let total = f.added + f.changed + f.removed;
        if total > f.list.len() as u64 {
            let _ = writeln!(out, "  and {} more", total - f.list.len() as u64);
        }
    }
    let _ = writeln!(
        out,
        "URL rewrites: {} {}.",
        report.url_rewrites,
        if report.url_rewrites == 1 {
            "cell"
        } else {
            "cells"
        }
    );
    if !report.skipped_cells.is_empty() {
        let _ = writeln!(
            out,
            "Left as they were: {} {} whose column cannot take the rewritten URL:",
            report.skipped_cells.len(),
            if report.skipped_cells.len() == 1 {
                "cell"
            } else {
                "cells"
            }
        );
        for s in &report.skipped_cells {
            let _ = writeln!(
                out,
                "  {}.{} {}: {}",
                shown(&s.table),
                shown(&s.column),
                shown(&s.key),
                shown(&s.reason)
            );
        }
    }
    out
}

/// How to go on after conflicts: the choice is made for one push, with the push's other
/// flags (`flags`, each with its leading space).
pub fn how_to_choose(site: &str, flags: &str) -> String {
    format!(
        "Choose for this push: `sitetrail staging push --site {site}{flags} --on-conflict \
         staging-wins` puts staging's version of these rows live, `--on-conflict live-wins` \
         keeps live's (add --dry-run to preview either first)."
    )
}

fn rows(n: u64) -> &'static str {
    if n == 1 { "row" } else { "rows" }
}

/// A size for people: bytes, then kB, MB, GB (powers of 1000, one decimal).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Text from a site, safe to print: control characters (a terminal's escape sequences, new
/// lines that would forge a line of the report) are shown escaped.
pub fn shown(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sitetrail_staging::push::{
        Conflict, FileChange, FilesChange, PushReport, SkippedCell, TableChange,
    };

    use super::*;

    fn report() -> PushReport {
        PushReport {
            tables: vec![
                TableChange {
                    table: "wp_posts".into(),
                    added: 3,
                    removed: 1,
                    changed: 2,
                    kept_from_live: 4,
                },
                TableChange {
                    table: "wp_options".into(),
                    ..Default::default()
                },
            ],
            kept_from_live: 4,
            conflicts: vec![Conflict {
                table: "wp_posts".into(),
                key: "ID=42".into(),
                staging: "changed".into(),
                live: "changed".into(),
            }],
            files: FilesChange {
                added: 1,
                changed: 1,
                removed: 1,
                bytes_added: 1_234,
                bytes_changed: 2_500_000,
                bytes_removed: 12,
                list: vec![
                    FileChange {
                        path: "wp-content/themes/shop/style.css".into(),
                        change: "added".into(),
                        bytes: 1_234,
                    },
                    FileChange {
                        path: "wp-content/uploads/evil\x1b[2J\nname.txt".into(),
                        change: "removed".into(),
                        bytes: 12,
                    },
                ],
            },
            url_rewrites: 17,
            skipped_cells: vec![SkippedCell {
                table: "wp_links".into(),
                column: "link_url".into(),
                key: "link_id=7".into(),
                reason: "too long for its column".into(),
            }],
            live_fingerprint: "f".into(),
        }
    }

    #[test]
    fn a_report_names_every_number_people_decide_on() {
        let text = for_people(&report());
        for expected in [
            "Database: 1 of 2 tables change (1 unchanged).",
            "Kept from live: 4 rows",
            "Conflicts: 1 row changed on both staging and live:",
            "  wp_posts ID=42: changed on staging, changed on live",
            "Files: 1 added (1.2 kB), 1 changed (2.5 MB), 1 removed (12 B).",
            "wp-content/themes/shop/style.css  1.2 kB",
            "  and 1 more",
            "URL rewrites: 17 cells.",
            "  wp_links.link_url link_id=7: too long for its column",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        let posts = text.lines().find(|l| l.contains("wp_posts  ")).unwrap();
        let numbers: Vec<&str> = posts.split_whitespace().skip(1).collect();
        assert_eq!(numbers, ["3", "1", "2", "4"], "{posts}");
        assert!(
            !text.contains("wp_options"),
            "unchanged tables are counted, not listed"
        );
    }

    #[test]
    fn names_from_the_site_cannot_write_to_the_terminal_or_forge_a_line() {
        let text = for_people(&report());
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.contains(r"evil\u{1b}[2J\nname.txt"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("name.txt")).count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn a_report_without_changes_says_so() {
        let text = for_people(&PushReport::default());
        assert!(text.contains("Database: not part of this push."), "{text}");
        assert!(text.contains("Conflicts: none."), "{text}");
        assert!(text.contains("Files: none change."), "{text}");
        assert!(text.contains("Kept from live: 0 rows"), "{text}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(999_999), "1.0 MB");
        assert_eq!(bytes(3_400_000_000), "3.4 GB");
    }
}
