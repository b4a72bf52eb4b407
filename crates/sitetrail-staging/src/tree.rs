//! File trees: copying a docroot, packing and unpacking snapshots, and the atomic swap.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Files that belong to one environment and never travel to another: its own configuration
/// and, under WordPress's SQLite integration, its database directory.
pub fn is_environment_specific(rel: &Path) -> bool {
    rel == Path::new("wp-config.php") || rel.starts_with("wp-content/database")
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeStats {
    pub files: u64,
    pub bytes: u64,
}

/// Copies `src` into a new directory `dst` (which must not exist), keeping symlinks as
/// symlinks and permissions as they are, leaving out environment-specific files.
pub fn copy_tree(src: &Path, dst: &Path, on_file: &dyn Fn(u64)) -> anyhow::Result<TreeStats> {
    anyhow::ensure!(!dst.exists(), "{} exists already", dst.display());
    let mut stats = TreeStats::default();
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry.with_context(|| format!("reading {}", src.display()))?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .expect("walkdir stays inside");
        if rel.as_os_str().is_empty() {
            std::fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
            copy_permissions(entry.path(), dst)?;
            continue;
        }
        if is_environment_specific(rel) {
            continue;
        }
        let to = dst.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
            copy_permissions(entry.path(), &to)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(&target, &to)
                .with_context(|| format!("linking {}", to.display()))?;
        } else {
            let n = std::fs::copy(entry.path(), &to)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            stats.files += 1;
            stats.bytes += n;
            on_file(n);
        }
    }
    Ok(stats)
}

fn copy_permissions(from: &Path, to: &Path) -> anyhow::Result<()> {
    let perms = std::fs::metadata(from)?.permissions();
    std::fs::set_permissions(to, perms)?;
    Ok(())
}

/// Swaps two paths in one step (`renameat2(RENAME_EXCHANGE)`): each name then refers to what
/// the other held. Both must exist on the same filesystem.
pub fn exchange(a: &Path, b: &Path) -> anyhow::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .with_context(|| format!("swapping {} and {}", a.display(), b.display()))
}

/// A sibling path of `path`, on the same filesystem, for building its replacement aside.
pub fn sibling(path: &Path, tag: &str) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no name", path.display()))?;
    let parent = path
        .parent()
        .with_context(|| format!("{} has no parent", path.display()))?;
    Ok(parent.join(format!(".{}.aside-{tag}", name.to_string_lossy())))
}

/// Removes a tree without making the caller wait: deleting is slow on this kind of disk.
pub fn remove_in_background(path: PathBuf) {
    std::thread::spawn(move || {
        if let Err(e) = std::fs::remove_dir_all(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "removing an old tree failed");
        }
    });
}

/// A writer that hashes what passes through it.
pub struct Hashing<W> {
    inner: W,
    hash: Sha256,
    pub bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(mut self) -> anyhow::Result<(W, String)> {
        self.inner.flush()?;
        Ok((self.inner, hex::encode(self.hash.finalize())))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hash.finalize()), total))
}

/// Packs a docroot into a tar file, leaving out environment-specific files. Returns the
/// tar's SHA-256 and the tree's size.
pub fn pack(src: &Path, out: &Path) -> anyhow::Result<(String, TreeStats)> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut builder = tar::Builder::new(Hashing::new(std::io::BufWriter::new(file)));
    builder.follow_symlinks(false);
    let mut stats = TreeStats::default();
    for entry in walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry?;
        let rel = entry.path().strip_prefix(src).expect("inside");
        if rel.as_os_str().is_empty() || is_environment_specific(rel) {
            continue;
        }
        builder
            .append_path_with_name(entry.path(), rel)
            .with_context(|| format!("packing {}", entry.path().display()))?;
        if entry.file_type().is_file() {
            stats.files += 1;
            stats.bytes += entry.metadata()?.len();
        }
    }
    let hashing = builder.into_inner()?;
    let (writer, sha) = hashing.finish()?;
    writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?
        .sync_all()?;
    Ok((sha, stats))
}

/// Unpacks a snapshot's tar into a new directory. Entries that would land outside it are
/// refused by the tar crate.
pub fn unpack(tar_path: &Path, dst: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!dst.exists(), "{} exists already", dst.display());
    std::fs::create_dir(dst)?;
    let file = std::fs::File::open(tar_path)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    archive
        .unpack(dst)
        .with_context(|| format!("unpacking {}", tar_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("wp-content/uploads")).unwrap();
        std::fs::create_dir_all(root.join("wp-content/database")).unwrap();
        std::fs::write(root.join("index.php"), "<?php // home").unwrap();
        std::fs::write(root.join("wp-config.php"), "secret").unwrap();
        std::fs::write(root.join("wp-content/database/.ht.sqlite"), "db").unwrap();
        std::fs::write(root.join("wp-content/uploads/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("index.php", root.join("link.php")).unwrap();
    }

    #[test]
    fn copying_keeps_links_and_leaves_out_environment_files() {
        let dir = tempfile::tempdir().unwrap();
        tree(&dir.path().join("a"));
        let stats = copy_tree(&dir.path().join("a"), &dir.path().join("b"), &|_| {}).unwrap();
        let b = dir.path().join("b");
        assert_eq!(stats.files, 2);
        assert!(b.join("wp-content/uploads/a.txt").is_file());
        assert!(!b.join("wp-config.php").exists());
        assert!(!b.join("wp-content/database").exists());
        assert_eq!(
            std::fs::read_link(b.join("link.php")).unwrap(),
            Path::new("index.php")
        );
    }

    #[test]
    fn exchange_swaps_two_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x"), "old").unwrap();
        std::fs::write(b.join("x"), "new").unwrap();
        exchange(&a, &b).unwrap();
        assert_eq!(std::fs::read_to_string(a.join("x")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(b.join("x")).unwrap(), "old");
    }

    #[test]
    fn pack_and_unpack_round_trip_with_a_stable_checksum() {
        let dir = tempfile::tempdir().unwrap();
        tree(&dir.path().join("a"));
        let (sha, stats) = pack(&dir.path().join("a"), &dir.path().join("a.tar")).unwrap();
        assert_eq!(sha256_file(&dir.path().join("a.tar")).unwrap().0, sha);
        assert_eq!(stats.files, 2);
        unpack(&dir.path().join("a.tar"), &dir.path().join("c")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c/index.php")).unwrap(),
            "<?php // home"
        );
        assert!(!dir.path().join("c/wp-config.php").exists());
    }
}
