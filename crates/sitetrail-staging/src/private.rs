//! sitetrail's own files in the data dir (snapshots, journals, locks) are private whatever
//! the umask: directories 0700 and files 0600, set when they are made.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Makes a directory and its missing parents, each 0700.
pub fn dir_all(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Opens a file for writing, made 0600 (and set to 0600 if it was there already).
pub fn open(path: &Path, options: &mut OpenOptions) -> anyhow::Result<File> {
    let file = options
        .mode(FILE_MODE)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// A new file, 0600; an existing one (or a link) at `path` is an error.
pub fn create_new(path: &Path) -> anyhow::Result<File> {
    open(path, OpenOptions::new().write(true).create_new(true))
}

/// Writes a whole file, 0600, and syncs it.
pub fn write(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = open(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        let nested = dir.path().join("a/b");
        dir_all(&nested).unwrap();
        write(&nested.join("f"), b"x").unwrap();
        create_new(&nested.join("g")).unwrap();
        rustix::process::umask(old);
        for (p, mode) in [
            ("a", DIR_MODE),
            ("a/b", DIR_MODE),
            ("a/b/f", FILE_MODE),
            ("a/b/g", FILE_MODE),
        ] {
            let m = std::fs::metadata(dir.path().join(p)).unwrap().mode() & 0o777;
            assert_eq!(m, mode, "{p}");
        }
        assert!(create_new(&nested.join("f")).is_err(), "never over a file");
    }
}
