//! Confined file access: a site's docroot is hostile input. Every path inside a tree is opened
//! beneath the tree's directory fd without following a link (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` one name at a time), and what was
//! opened is checked on its fd. Files are written to a new name created exclusively, then
//! renamed over the old one inside the same directory fd: nothing is written through a link.
//!
//! A refusal carries words for people (no server path) and, for the server's log only, the
//! detail.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The mode of the files sitetrail writes into a docroot (`wp-config.php`, a SQLite
/// database): the owner reads and writes, the web server's group reads, others nothing. The
/// configuration holds the database password.
pub const DOCROOT_FILE_MODE: u32 = 0o640;

/// An operation refused because a site's files point somewhere they must not. Its `Display`
/// is for people; the detail (with paths) is its source, which only the server's log shows.
#[derive(Debug)]
pub struct Refusal {
    public: String,
    detail: Detail,
}

#[derive(Debug)]
struct Detail(String);

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detail {}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.public)
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.detail)
    }
}

/// A refusal: `public` names no server path; `detail` goes to the server's log.
pub fn refusal(public: impl Into<String>, detail: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Refusal {
        public: public.into(),
        detail: Detail(detail.into()),
    })
}

/// What confined access found instead of what it was asked for.
#[derive(Debug, thiserror::Error)]
pub enum Access {
    #[error("not there")]
    Missing,
    /// The path is a link, passes through one, or leads out of the tree.
    #[error("a link or a path out of the tree")]
    Link,
    #[error("not a regular file or directory as expected")]
    WrongKind,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<Errno> for Access {
    fn from(e: Errno) -> Self {
        match e {
            Errno::NOENT => Access::Missing,
            // ELOOP: a link on the way (RESOLVE_NO_SYMLINKS, O_NOFOLLOW); EXDEV: the path
            // leaves the tree (RESOLVE_BENEATH).
            Errno::LOOP | Errno::XDEV => Access::Link,
            Errno::NOTDIR | Errno::ISDIR | Errno::NXIO => Access::WrongKind,
            e => Access::Io(e.into()),
        }
    }
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn c(name: &OsStr) -> std::io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| std::io::Error::other("a name with a NUL byte"))
}

/// A path inside a tree, as names only: no root, no `..`. `.` parts are dropped.
pub fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// An opened directory: a docroot, a tree being built, a snapshot's directory.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Root {
    /// Opens a directory sitetrail was given (a registered docroot). Its last name must not
    /// be a link.
    pub fn open(path: &Path) -> Result<Root, Access> {
        open_dir_at(CWD, path.as_os_str())
    }

    /// Opens `rel` beneath this directory, refusing links anywhere on the way and any path
    /// that would leave it.
    fn open_beneath(&self, rel: &Path, flags: OFlags, mode: u32) -> Result<OwnedFd, Access> {
        let rel = relative(rel).ok_or(Access::Link)?;
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        Ok(rustix::fs::openat2(
            &self.fd,
            &rel,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            BENEATH,
        )?)
    }

    /// A directory beneath this one.
    pub fn dir(&self, rel: &Path) -> Result<Root, Access> {
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
        Ok(Root { fd })
    }

    /// A regular file beneath this one, opened for reading.
    pub fn open_file(&self, rel: &Path) -> Result<File, Access> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer.
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY, 0)?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(Access::WrongKind);
        }
        Ok(file)
    }

    /// The contents of a regular file beneath this one.
    pub fn read(&self, rel: &Path) -> Result<Vec<u8>, Access> {
        let mut out = Vec::new();
        self.open_file(rel)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Whether `rel` is a regular file, reached without a link.
    pub fn is_file(&self, rel: &Path) -> Result<bool, Access> {
        match self.open_file(rel) {
            Ok(_) => Ok(true),
            Err(Access::Missing) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes the directories of `rel` that are missing (with `mode`) and opens the last one.
    /// An existing link on the way is refused, never followed.
    pub fn create_dirs(&self, rel: &Path, mode: u32) -> Result<Root, Access> {
        let rel = relative(rel).ok_or(Access::Link)?;
        let mut current = Root {
            fd: self.fd.try_clone()?,
        };
        for part in rel.iter() {
            let name = c(part)?;
            match rustix::fs::mkdirat(&current.fd, name.as_c_str(), Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            current = open_dir_at(&current.fd, part)?;
        }
        Ok(current)
    }

    /// Writes a file beneath this directory: to a new name created exclusively, then renamed
    /// over `rel` within its directory. A link at `rel` is refused; none is written through.
    pub fn write(&self, rel: &Path, contents: &mut dyn Read, mode: u32) -> Result<u64, Access> {
        let rel = relative(rel).ok_or(Access::Link)?;
        let name = rel.file_name().ok_or(Access::WrongKind)?;
        let parent = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.dir(p)?,
            _ => Root {
                fd: self.fd.try_clone()?,
            },
        };
        let name = c(name)?;
        match rustix::fs::statat(&parent.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                return Err(Access::Link);
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
                return Err(Access::WrongKind);
            }
            Ok(_) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let (mut file, temp) = parent.create_temp(name.as_c_str(), mode)?;
        let written = (|| -> std::io::Result<u64> {
            let n = std::io::copy(contents, &mut file)?;
            file.flush()?;
            file.sync_all()?;
            Ok(n)
        })();
        let renamed = written.and_then(|n| {
            rustix::fs::renameat(&parent.fd, temp.as_c_str(), &parent.fd, name.as_c_str())?;
            Ok(n)
        });
        if renamed.is_err() {
            let _ = rustix::fs::unlinkat(&parent.fd, temp.as_c_str(), AtFlags::empty());
        }
        Ok(renamed?)
    }

    /// A new file with a fresh name beside `name`, created exclusively with `mode`.
    fn create_temp(&self, name: &CStr, mode: u32) -> Result<(File, CString), Access> {
        for _ in 0..16 {
            let mut r = [0u8; 6];
            getrandom::fill(&mut r).map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut temp = b".".to_vec();
            temp.extend_from_slice(name.to_bytes());
            temp.extend_from_slice(format!(".sitetrail-{}", hex::encode(r)).as_bytes());
            let temp = CString::new(temp).expect("no NUL in a name and hex");
            match self.create_file(temp.as_c_str(), mode) {
                Ok(f) => return Ok((f, temp)),
                Err(Access::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Access::Io(std::io::Error::other("no free temporary name")))
    }

    /// A new regular file named `name` in this directory: `O_CREAT | O_EXCL | O_NOFOLLOW`,
    /// with exactly `mode` whatever the umask.
    pub fn create_file(&self, name: &CStr, mode: u32) -> Result<File, Access> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| match e {
            Errno::EXIST => Access::Io(std::io::ErrorKind::AlreadyExists.into()),
            e => e.into(),
        })?;
        let file = File::from(fd);
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(file)
    }
}

/// Opens a directory by one name (or a path given by sitetrail) whose last part must not be a
/// link. (`O_DIRECTORY | O_NOFOLLOW` would say ENOTDIR for a link: opened without
/// `O_DIRECTORY`, a link is ELOOP, and the kind is checked on the fd.)
fn open_dir_at(dir: impl AsFd, name: &OsStr) -> Result<Root, Access> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    if !file.metadata()?.is_dir() {
        return Err(Access::WrongKind);
    }
    Ok(Root { fd: file.into() })
}

/// What a name in a directory turned out to be, once opened without following it.
pub enum Entry {
    Dir(Root, std::fs::Metadata),
    File(File, std::fs::Metadata),
    Link(CString),
    /// A FIFO, socket or device: never copied.
    Other,
    /// Removed while sitetrail looked.
    Gone,
}

/// Opens one name of a directory with `O_NOFOLLOW` and tells what it is from the opened fd.
/// A link is read as a link; one that is swapped back and forth meanwhile is opened again.
pub fn open_entry(dir: &impl AsFd, name: &CStr) -> std::io::Result<Entry> {
    for _ in 0..16 {
        let opened = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        match opened {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = file.metadata()?;
                return Ok(if meta.is_dir() {
                    Entry::Dir(Root { fd: file.into() }, meta)
                } else if meta.is_file() {
                    Entry::File(file, meta)
                } else {
                    Entry::Other
                });
            }
            Err(Errno::LOOP) => match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(target) => return Ok(Entry::Link(target)),
                // No longer a link: it changed since; look again.
                Err(Errno::INVAL) => continue,
                Err(Errno::NOENT) => return Ok(Entry::Gone),
                Err(e) => return Err(e.into()),
            },
            Err(Errno::NOENT) => return Ok(Entry::Gone),
            Err(Errno::NXIO) | Err(Errno::OPNOTSUPP) => return Ok(Entry::Other),
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other(
        "a name kept changing while it was read",
    ))
}

/// The names in a directory, sorted, without `.` and `..`.
pub fn names(dir: &impl AsFd) -> std::io::Result<Vec<CString>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

pub fn os(name: &CStr) -> &OsStr {
    OsStr::from_bytes(name.to_bytes())
}

/// A site's SQLite database, pinned for SQLite to open. SQLite opens files by path, and a
/// path inside a docroot can be changed into a link at any moment; so the file (and its
/// `-journal`, `-wal`, `-shm`, so that a reader sees what WordPress's readers see) is
/// hard-linked by name from its directory's fd, never following a link, into a private
/// directory beside the docroot, and checked to be the regular file that was opened. SQLite
/// then opens the very file that was checked, and shares its locks with WordPress. The
/// directory (links only) is removed when this is dropped.
pub struct PinnedFile {
    dir: PathBuf,
    path: PathBuf,
}

impl PinnedFile {
    const NAME: &'static str = "database.sqlite";

    pub fn new(docroot: &Path, file: &Path) -> anyhow::Result<PinnedFile> {
        let refuse = |detail: String| {
            refusal(
                "the SQLite database's path passes through a link or is not a file; sitetrail \
                 never follows links: keep the database in a directory of the site's own",
                detail,
            )
        };
        let rel = file
            .strip_prefix(docroot)
            .ok()
            .and_then(relative)
            .filter(|r| r.file_name().is_some())
            .ok_or_else(|| {
                refuse(format!(
                    "{} is outside {}",
                    file.display(),
                    docroot.display()
                ))
            })?;
        let name = rel.file_name().expect("checked above");
        let from = Root::open(docroot)
            .and_then(|r| r.dir(rel.parent().unwrap_or(Path::new(""))))
            .map_err(|e| refuse(format!("{}: {e}", file.display())))?;
        let checked = from
            .open_file(Path::new(name))
            .map_err(|e| refuse(format!("{}: {e}", file.display())))?
            .metadata()?;
        let parent = docroot
            .parent()
            .ok_or_else(|| anyhow::anyhow!("a docroot has a parent"))?;
        let mut r = [0u8; 6];
        getrandom::fill(&mut r).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let dir = parent.join(format!(
            ".{}.aside-read-{}",
            docroot.file_name().unwrap_or_default().to_string_lossy(),
            hex::encode(r)
        ));
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let pinned = PinnedFile {
            path: dir.join(Self::NAME),
            dir,
        };
        let to = Root::open(&pinned.dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut from_name = name.to_owned();
            from_name.push(suffix);
            let to_name = format!("{}{suffix}", Self::NAME);
            match rustix::fs::linkat(&from, &from_name, &to, &to_name, AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOENT) if !suffix.is_empty() => continue,
                Err(e) => {
                    return Err(anyhow::anyhow!("pinning {}{suffix}: {e}", file.display()));
                }
            }
            // What was linked is what was checked: a regular file, not a link put there since.
            let linked = to.open_file(Path::new(&to_name));
            let same = match (&linked, suffix) {
                (Ok(f), "") => {
                    let m = f.metadata()?;
                    use std::os::unix::fs::MetadataExt;
                    m.dev() == checked.dev() && m.ino() == checked.ino()
                }
                (Ok(_), _) => true,
                (Err(_), _) => false,
            };
            if !same {
                return Err(refuse(format!(
                    "{}{suffix} changed while it was read",
                    file.display()
                )));
            }
        }
        Ok(pinned)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PinnedFile {
    fn drop(&mut self) {
        // Only links live here: removing them leaves the site's files as they are.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_beneath_and_refuses_links_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/f"), "inside").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
        std::os::unix::fs::symlink("f", root.join("a/same-dir")).unwrap();
        std::os::unix::fs::symlink("a", root.join("b")).unwrap();
        let r = Root::open(&root).unwrap();
        assert_eq!(r.read(Path::new("a/f")).unwrap(), b"inside");
        assert!(matches!(r.read(Path::new("up")), Err(Access::Link)));
        assert!(matches!(r.read(Path::new("a/same-dir")), Err(Access::Link)));
        assert!(matches!(r.read(Path::new("b/f")), Err(Access::Link)));
        assert!(matches!(r.read(Path::new("../secret")), Err(Access::Link)));
        assert!(matches!(
            r.read(Path::new("a/../../secret")),
            Err(Access::Link)
        ));
        assert!(matches!(r.read(Path::new("nope")), Err(Access::Missing)));
        assert!(matches!(r.read(Path::new("a")), Err(Access::WrongKind)));
        let link_root = dir.path().join("link-root");
        std::os::unix::fs::symlink(&root, &link_root).unwrap();
        assert!(matches!(Root::open(&link_root), Err(Access::Link)));
    }

    #[test]
    fn writes_replace_the_file_and_never_go_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("victim"), "untouched").unwrap();
        std::os::unix::fs::symlink("../victim", root.join("config.php")).unwrap();
        let r = Root::open(&root).unwrap();
        assert!(matches!(
            r.write(Path::new("config.php"), &mut &b"evil"[..], 0o640),
            Err(Access::Link)
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("victim")).unwrap(),
            "untouched"
        );
        std::fs::write(root.join("plain.php"), "old").unwrap();
        r.write(Path::new("plain.php"), &mut &b"new"[..], 0o640)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("plain.php")).unwrap(),
            "new"
        );
        let mode = std::fs::metadata(root.join("plain.php"))
            .unwrap()
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn making_directories_refuses_a_link_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(root.join("wp-content")).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("wp-content/database")).unwrap();
        let r = Root::open(&root).unwrap();
        assert!(matches!(
            r.create_dirs(Path::new("wp-content/database"), 0o755),
            Err(Access::Link)
        ));
        r.create_dirs(Path::new("wp-content/uploads/2026"), 0o755)
            .unwrap();
        assert!(root.join("wp-content/uploads/2026").is_dir());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn a_pinned_database_is_the_file_checked_and_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let docroot = dir.path().join("site");
        std::fs::create_dir_all(docroot.join("wp-content/database")).unwrap();
        let db = docroot.join("wp-content/database/.ht.sqlite");
        std::fs::write(&db, "rows").unwrap();
        std::fs::write(docroot.join("wp-content/database/.ht.sqlite-journal"), "j").unwrap();
        {
            let pinned = PinnedFile::new(&docroot, &db).unwrap();
            assert_eq!(std::fs::read(pinned.path()).unwrap(), b"rows");
            let journal = pinned.path().with_file_name("database.sqlite-journal");
            assert_eq!(std::fs::read(journal).unwrap(), b"j");
            // The site changes its directory into a link now: the pin still holds its own file.
            std::fs::rename(
                docroot.join("wp-content/database"),
                dir.path().join("moved"),
            )
            .unwrap();
            std::fs::create_dir(dir.path().join("victim")).unwrap();
            std::fs::write(dir.path().join("victim/.ht.sqlite"), "victim").unwrap();
            std::os::unix::fs::symlink(
                dir.path().join("victim"),
                docroot.join("wp-content/database"),
            )
            .unwrap();
            assert_eq!(std::fs::read(pinned.path()).unwrap(), b"rows");
        }
        assert!(
            PinnedFile::new(&docroot, &db).is_err(),
            "a linked directory is refused"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "site, moved and victim: no pin left behind"
        );
    }

    #[test]
    fn entries_are_told_apart_from_their_fds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let r = Root::open(dir.path()).unwrap();
        assert!(matches!(open_entry(&r, c"f").unwrap(), Entry::File(..)));
        assert!(matches!(open_entry(&r, c"d").unwrap(), Entry::Dir(..)));
        assert!(
            matches!(open_entry(&r, c"l").unwrap(), Entry::Link(t) if t.as_bytes() == b"/etc/passwd")
        );
        assert!(matches!(open_entry(&r, c"gone").unwrap(), Entry::Gone));
        assert_eq!(
            names(&r).unwrap(),
            vec![c"d".to_owned(), c"f".to_owned(), c"l".to_owned()]
        );
    }
}
