//! File trees: copying a docroot, packing and unpacking snapshots, and the atomic swap.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::confined::{self, Access, Entry, Root};

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
///
/// The source is hostile and may change while it is read: each name is opened with
/// `O_NOFOLLOW` relative to its directory's fd and copied from that fd as what `fstat` says it
/// is. A link is copied as a link and never followed; FIFOs, sockets and devices are left out.
/// Everything in `dst` is created exclusively, so nothing is written through a link.
pub fn copy_tree(src: &Path, dst: &Path, on_file: &dyn Fn(u64)) -> anyhow::Result<TreeStats> {
    copy_tree_except(src, dst, &[], on_file)
}

/// [`copy_tree`], leaving out the paths in `skip` (relative to `src`) as well.
pub fn copy_tree_except(
    src: &Path,
    dst: &Path,
    skip: &[PathBuf],
    on_file: &dyn Fn(u64),
) -> anyhow::Result<TreeStats> {
    let from = Root::open(src).map_err(|e| tree_refusal(e, src))?;
    let mode = std::fs::Permissions::from_mode(from_fd_mode(&from)?);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dst)
        .with_context(|| format!("creating {}", dst.display()))?;
    let to = Root::open(dst).map_err(|e| anyhow::anyhow!("opening {}: {e}", dst.display()))?;
    let mut stats = TreeStats::default();
    copy_dir(&from, &to, Path::new(""), 0, &mut stats, on_file, skip)
        .with_context(|| format!("copying {}", src.display()))?;
    File::from(to.as_fd().try_clone_to_owned()?).set_permissions(mode)?;
    Ok(stats)
}

/// Copies the folder `rel` of the tree `src` to the same place in the tree `dst` (its missing
/// parents made), as [`copy_tree`] copies: links kept as links and never followed, a link on
/// the way to `rel` refused. A folder `src` lacks copies nothing.
pub fn copy_folder(
    src: &Path,
    rel: &Path,
    dst: &Path,
    on_file: &dyn Fn(u64),
) -> anyhow::Result<TreeStats> {
    let mut stats = TreeStats::default();
    let from = match Root::open(src).and_then(|r| r.dir(rel)) {
        Ok(d) => d,
        Err(Access::Missing) => return Ok(stats),
        Err(e) => return Err(tree_refusal(e, &src.join(rel))),
    };
    let (parent, name) = match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => anyhow::bail!("{} is not a folder inside the docroot", rel.display()),
    };
    let to_parent = Root::open(dst)
        .and_then(|r| r.create_dirs(parent, 0o755))
        .map_err(|e| tree_refusal(e, &dst.join(parent)))?;
    rustix::fs::mkdirat(&to_parent, name, rustix::fs::Mode::from_raw_mode(0o700))
        .with_context(|| format!("creating {}", rel.display()))?;
    let to = to_parent
        .dir(name.as_ref())
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", rel.display()))?;
    copy_dir(&from, &to, rel, 1, &mut stats, on_file, &[])
        .with_context(|| format!("copying {}", rel.display()))?;
    let mode = std::fs::Permissions::from_mode(from_fd_mode(&from)?);
    File::from(to.as_fd().try_clone_to_owned()?).set_permissions(mode)?;
    Ok(stats)
}

/// How deep a tree may go; deeper is refused rather than recursed into without end.
const MAX_DEPTH: usize = 128;

fn from_fd_mode(dir: &Root) -> anyhow::Result<u32> {
    let f = File::from(dir.as_fd().try_clone_to_owned()?);
    Ok(f.metadata()?.permissions().mode() & 0o777)
}

fn tree_refusal(e: Access, path: &Path) -> anyhow::Error {
    match e {
        Access::Link => confined::refusal(
            "the environment's directory is a link; sitetrail never follows links out of a \
             docroot",
            format!("{} is a link", path.display()),
        ),
        e => anyhow::anyhow!("opening {}: {e}", path.display()),
    }
}

fn copy_dir(
    from: &Root,
    to: &Root,
    rel: &Path,
    depth: usize,
    stats: &mut TreeStats,
    on_file: &dyn Fn(u64),
    skip: &[PathBuf],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        depth < MAX_DEPTH,
        "the tree is deeper than {MAX_DEPTH} directories"
    );
    for name in confined::names(from)? {
        let rel = rel.join(confined::os(&name));
        if is_environment_specific(&rel) || skip.contains(&rel) {
            continue;
        }
        match confined::open_entry(from, &name)? {
            Entry::Dir(dir, meta) => {
                rustix::fs::mkdirat(to, name.as_c_str(), rustix::fs::Mode::from_raw_mode(0o700))
                    .with_context(|| format!("creating {}", rel.display()))?;
                let sub = to
                    .dir(confined::os(&name).as_ref())
                    .map_err(|e| anyhow::anyhow!("opening {}: {e}", rel.display()))?;
                copy_dir(&dir, &sub, &rel, depth + 1, stats, on_file, skip)?;
                let mode = meta.permissions().mode() & 0o777;
                File::from(sub.as_fd().try_clone_to_owned()?)
                    .set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            Entry::File(mut file, meta) => {
                let mode = meta.permissions().mode() & 0o777;
                let mut out = to
                    .create_file(&name, mode)
                    .map_err(|e| anyhow::anyhow!("creating {}: {e}", rel.display()))?;
                let n = std::io::copy(&mut file, &mut out)
                    .with_context(|| format!("copying {}", rel.display()))?;
                stats.files += 1;
                stats.bytes += n;
                on_file(n);
            }
            Entry::Link(target) => {
                rustix::fs::symlinkat(target.as_c_str(), to, name.as_c_str())
                    .with_context(|| format!("linking {}", rel.display()))?;
            }
            Entry::Other | Entry::Gone => {}
        }
    }
    Ok(())
}

/// How many regular files `copy_tree` would copy from `src`: the total its progress counts
/// towards. Links are not followed; a tree that changes meanwhile only makes it approximate.
pub fn count_files(src: &Path) -> u64 {
    fn walk(dir: &Path, rel: &Path, depth: usize) -> u64 {
        if depth >= MAX_DEPTH {
            return 0;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut n = 0;
        for entry in entries.flatten() {
            let rel = rel.join(entry.file_name());
            match entry.file_type() {
                _ if is_environment_specific(&rel) => {}
                Ok(t) if t.is_dir() => n += walk(&entry.path(), &rel, depth + 1),
                Ok(t) if t.is_file() => n += 1,
                _ => {}
            }
        }
        n
    }
    walk(src, Path::new(""), 0)
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
/// tar's SHA-256 and the tree's size. The tree is read as `copy_tree` reads it: each name
/// opened without following it, packed from its fd; links as links. The tar is private.
pub fn pack(src: &Path, out: &Path) -> anyhow::Result<(String, TreeStats)> {
    let root = Root::open(src).map_err(|e| tree_refusal(e, src))?;
    let file = sitetrail_store::private::create_new(out)?;
    let mut builder = tar::Builder::new(Hashing::new(std::io::BufWriter::new(file)));
    let mut stats = TreeStats::default();
    pack_dir(&mut builder, &root, Path::new(""), 0, &mut stats)
        .with_context(|| format!("packing {}", src.display()))?;
    let hashing = builder.into_inner()?;
    let (writer, sha) = hashing.finish()?;
    writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?
        .sync_all()?;
    Ok((sha, stats))
}

fn pack_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Root,
    rel: &Path,
    depth: usize,
    stats: &mut TreeStats,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        depth < MAX_DEPTH,
        "the tree is deeper than {MAX_DEPTH} directories"
    );
    for name in confined::names(dir)? {
        let rel = rel.join(confined::os(&name));
        if is_environment_specific(&rel) {
            continue;
        }
        match confined::open_entry(dir, &name)? {
            Entry::Dir(sub, meta) => {
                let mut header = header_for(&meta);
                builder.append_data(&mut header, &rel, std::io::empty())?;
                pack_dir(builder, &sub, &rel, depth + 1, stats)?;
            }
            Entry::File(file, meta) => {
                let mut header = header_for(&meta);
                // The header's size is what was there when opened; a file that shrinks or
                // grows meanwhile still fills exactly that many bytes.
                let len = meta.len();
                let data = file.take(len).chain(std::io::repeat(0)).take(len);
                builder
                    .append_data(&mut header, &rel, data)
                    .with_context(|| format!("packing {}", rel.display()))?;
                stats.files += 1;
                stats.bytes += len;
            }
            Entry::Link(target) => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                if let Ok(st) =
                    rustix::fs::statat(dir, name.as_c_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                {
                    header.set_mtime(st.st_mtime.max(0) as u64);
                }
                builder.append_link(&mut header, &rel, confined::os(&target))?;
            }
            Entry::Other | Entry::Gone => {}
        }
    }
    Ok(())
}

fn header_for(meta: &std::fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_mode(meta.permissions().mode() & 0o777);
    header
}

/// Unpacks a snapshot's tar into a new directory. Its names and links were chosen by a site's
/// owner: every entry must name a path inside the tree (else the snapshot is refused), its
/// directories are made without following a link on the way, files are created exclusively,
/// links are made as links, and anything else (hard links, devices, FIFOs) is left out.
pub fn unpack(tar_path: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dst)
        .with_context(|| format!("creating {}", dst.display()))?;
    let root = Root::open(dst).map_err(|e| anyhow::anyhow!("opening {}: {e}", dst.display()))?;
    let file = File::open(tar_path).with_context(|| format!("opening {}", tar_path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive
        .entries()
        .with_context(|| format!("reading {}", tar_path.display()))?
    {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(rel) = confined::relative(&path).filter(|r| !r.as_os_str().is_empty()) else {
            return Err(confined::refusal(
                "the snapshot names a file outside its tree; it was not used",
                format!("{}: entry {}", tar_path.display(), path.display()),
            ));
        };
        if is_environment_specific(&rel) {
            continue;
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let kind = entry.header().entry_type();
        let parent = || {
            root.create_dirs(rel.parent().unwrap_or(Path::new("")), 0o755)
                .map_err(|e| unpack_refusal(e, tar_path, &rel))
        };
        let name = std::ffi::CString::new(rel.file_name().expect("a normal name").as_bytes())?;
        match kind {
            tar::EntryType::Directory => {
                root.create_dirs(&rel, 0o755)
                    .map_err(|e| unpack_refusal(e, tar_path, &rel))?;
                dirs.push((rel, mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut out = parent()?
                    .create_file(&name, mode)
                    .map_err(|e| unpack_refusal(e, tar_path, &rel))?;
                std::io::copy(&mut entry, &mut out)?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = out.set_modified(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime),
                    );
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .context("a link without a target")?
                    .into_owned();
                let target = std::ffi::CString::new(target.as_os_str().as_bytes())?;
                rustix::fs::symlinkat(target.as_c_str(), &parent()?, name.as_c_str())
                    .with_context(|| format!("linking {}", rel.display()))?;
            }
            _ => {}
        }
    }
    // Modes last, deepest first: a read-only directory is filled before it becomes one.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (rel, mode) in dirs {
        let dir = root
            .dir(&rel)
            .map_err(|e| unpack_refusal(e, tar_path, &rel))?;
        File::from(dir.as_fd().try_clone_to_owned()?)
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn unpack_refusal(e: Access, tar_path: &Path, rel: &Path) -> anyhow::Error {
    match e {
        Access::Link | Access::WrongKind => confined::refusal(
            "the snapshot writes through a link or over a file it made itself; it was not used",
            format!("{}: entry {}: {e}", tar_path.display(), rel.display()),
        ),
        e => anyhow::anyhow!("unpacking {}: {e}", rel.display()),
    }
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

    /// A tar as a site's owner could shape it: raw names, links first.
    fn hostile_tar(path: &Path, entries: &[(&str, tar::EntryType, &str)]) {
        let mut b = tar::Builder::new(File::create(path).unwrap());
        for (name, kind, body) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if kind.is_symlink() || kind.is_hard_link() {
                h.set_link_name(body).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            } else {
                h.set_size(body.len() as u64);
                h.set_cksum();
                b.append(&h, body.as_bytes()).unwrap();
            }
        }
        b.finish().unwrap();
    }

    #[test]
    fn unpacking_never_writes_through_a_link_nor_outside_the_tree() {
        use tar::EntryType::{Regular, Symlink};
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let o = outside.to_str().unwrap();
        for (i, entries) in [
            vec![
                ("wp-content", Symlink, o),
                ("wp-content/x.php", Regular, "evil"),
            ],
            vec![("../outside/x.php", Regular, "evil")],
            vec![("a/../../outside/x.php", Regular, "evil")],
            vec![
                ("index.php", Symlink, &format!("{o}/x.php")),
                ("index.php", Regular, "evil"),
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let tar = dir.path().join(format!("{i}.tar"));
            hostile_tar(&tar, &entries);
            let dst = dir.path().join(format!("out-{i}"));
            assert!(unpack(&tar, &dst).is_err(), "case {i} is refused");
            assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "case {i}");
        }
        let tar = dir.path().join("odd.tar");
        hostile_tar(
            &tar,
            &[
                ("wp-config.php", Regular, "<?php // someone else's"),
                ("hard", tar::EntryType::Link, "/etc/passwd"),
                ("fifo", tar::EntryType::Fifo, ""),
                ("index.php", Regular, "<?php // home"),
            ],
        );
        unpack(&tar, &dir.path().join("odd")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("odd"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("index.php")]);
    }
}
