//! sitetrail's own files are private, whatever the umask: the data dir and the directories
//! sitetrail keeps in it are 0700, its files 0600. They hold every tenant's log (support
//! emails unredacted), the signing keys and the snapshots of customers' databases.
//!
//! Files are made private when they are created ([`create_dir`], [`write_new`]); at start
//! [`tighten`] checks what is already there, fixes what it can and reports it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What sitetrail keeps in its data dir. Anything else there (the demo's WordPress
/// docroots, an operator's own files) is not sitetrail's to change.
pub const OWN_ENTRIES: &[&str] = &[
    "sitetrail.db",
    "sitetrail.db-wal",
    "sitetrail.db-shm",
    "sitetrail.db-journal",
    "token-signing.key",
    "checkpoint.key",
    "snapshots",
    "locks",
    "operations",
    "staging-state",
];

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and its missing parents, each 0700 (the umask can only remove bits).
pub fn create_dir(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Opens a file for writing with `options`, never through a link; made 0600, and set to
/// 0600 if it was there already.
pub fn open(path: &Path, options: &mut OpenOptions) -> anyhow::Result<File> {
    let file = options
        .mode(FILE_MODE)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .with_context(|| format!("making {} private", path.display()))?;
    Ok(file)
}

/// A new file, 0600; an existing file (or a link) at `path` is an error.
pub fn create_new(path: &Path) -> anyhow::Result<File> {
    open(path, OpenOptions::new().write(true).create_new(true))
}

/// Writes a new file of mode 0600 and syncs it; an existing file or a link in its place is
/// an error.
pub fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = create_new(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Writes a whole file, 0600, replacing what was there (never through a link), and syncs it.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = open(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Creates an empty file of mode 0600 when nothing is at `path` yet (so that a database
/// made there later starts private; SQLite gives its WAL and shared-memory files the mode
/// of the database file).
pub fn touch(path: &Path) -> anyhow::Result<()> {
    match create_new(path) {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// One of sitetrail's files that others could reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loose {
    pub path: PathBuf,
    /// The permission bits found.
    pub mode: u32,
    /// Whether its mode could be set to 0600 / 0700.
    pub fixed: bool,
}

impl std::fmt::Display for Loose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was mode {:o}{}",
            self.path.display(),
            self.mode,
            if self.fixed {
                ", now private"
            } else {
                " and could not be changed"
            }
        )
    }
}

/// Checks the data dir and sitetrail's own entries in it (never following a link), makes
/// any that group or others can reach private, and returns them.
pub fn tighten(data_dir: &Path) -> Vec<Loose> {
    let mut loose = Vec::new();
    check(data_dir, &mut loose);
    for name in OWN_ENTRIES {
        let path = data_dir.join(name);
        if path.symlink_metadata().is_err() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&path).follow_links(false) {
            match entry {
                Ok(e) => check(e.path(), &mut loose),
                Err(e) => tracing::warn!(error = %e, "could not check a file in the data dir"),
            }
        }
    }
    loose
}

fn check(path: &Path, loose: &mut Vec<Loose>) {
    let Ok(meta) = path.symlink_metadata() else {
        return;
    };
    let want = if meta.is_dir() {
        DIR_MODE
    } else if meta.is_file() {
        FILE_MODE
    } else {
        // A link's own mode means nothing; it is never followed.
        return;
    };
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    let fixed = std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)).is_ok();
    loose.push(Loose {
        path: path.to_owned(),
        mode,
        fixed,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        p.symlink_metadata().unwrap().mode() & 0o7777
    }

    #[test]
    fn what_is_made_is_private_whatever_was_asked_of_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data/snapshots");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("data")), 0o700);
        let key = tmp.path().join("data/token-signing.key");
        write_new(&key, b"secret").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert!(write_new(&key, b"again").is_err(), "never overwrites");
        let db = tmp.path().join("data/sitetrail.db");
        touch(&db).unwrap();
        touch(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn private_even_under_the_loosest_umask() {
        let dir = tempfile::tempdir().unwrap();
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        let nested = dir.path().join("a/b");
        create_dir(&nested).unwrap();
        write(&nested.join("f"), b"x").unwrap();
        write(&nested.join("f"), b"again").unwrap();
        create_new(&nested.join("g")).unwrap();
        rustix::process::umask(old);
        for (p, want) in [
            ("a", 0o700),
            ("a/b", 0o700),
            ("a/b/f", 0o600),
            ("a/b/g", 0o600),
        ] {
            assert_eq!(mode(&dir.path().join(p)), want, "{p}");
        }
        assert!(create_new(&nested.join("f")).is_err(), "never over a file");
        std::os::unix::fs::symlink(nested.join("g"), nested.join("link")).unwrap();
        assert!(
            write(&nested.join("link"), b"x").is_err(),
            "never through a link"
        );
    }

    #[test]
    fn loose_own_files_are_made_private_and_reported_and_others_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        std::fs::create_dir_all(data.join("snapshots/backups/s1")).unwrap();
        std::fs::create_dir_all(data.join("wordpress/acme")).unwrap();
        std::fs::write(data.join("sitetrail.db"), "db").unwrap();
        std::fs::write(data.join("snapshots/backups/s1/files.tar"), "tar").unwrap();
        std::fs::write(data.join("wordpress/acme/index.php"), "<?php").unwrap();
        let outside = tmp.path().join("outside.txt");
        std::fs::write(&outside, "not ours").unwrap();
        set(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, data.join("snapshots/link")).unwrap();
        set(&data, 0o755);
        set(&data.join("sitetrail.db"), 0o644);
        set(&data.join("snapshots"), 0o755);
        set(&data.join("snapshots/backups/s1/files.tar"), 0o664);
        set(&data.join("wordpress/acme/index.php"), 0o644);

        let found = tighten(&data);
        let paths: Vec<_> = found.iter().map(|l| l.path.clone()).collect();
        assert!(found.iter().all(|l| l.fixed), "{found:?}");
        for p in [
            data.clone(),
            data.join("sitetrail.db"),
            data.join("snapshots"),
            data.join("snapshots/backups/s1/files.tar"),
        ] {
            assert!(
                paths.contains(&p),
                "{} not reported: {paths:?}",
                p.display()
            );
        }
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("sitetrail.db")), 0o600);
        assert_eq!(mode(&data.join("snapshots/backups/s1/files.tar")), 0o600);
        assert_eq!(mode(&data.join("snapshots/backups")), 0o700);
        // Not sitetrail's: a docroot kept in the data dir, and what a link points at.
        assert_eq!(mode(&data.join("wordpress/acme/index.php")), 0o644);
        assert_eq!(mode(&outside), 0o644);
        assert!(tighten(&data).is_empty(), "a second look finds nothing");
    }
}
