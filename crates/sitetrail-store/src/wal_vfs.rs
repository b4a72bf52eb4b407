//! The writer's WAL writes, combined: a thin SQLite VFS over the platform's own, used by the
//! one writing connection only, that gathers the frames a transaction appends to the WAL and
//! hands them to the file system in large writes when SQLite syncs.
//!
//! SQLite writes each WAL frame with two `pwrite`s (its 24-byte header, then the page), so
//! a commit of a thousand activities made some 3,600 system calls, each one through the file
//! system's per-page bookkeeping: nearly a third of the writer's time (BENCHMARKS.md,
//! "Ingest, sixth pass"). Combined, that commit makes about sixty, of 124 KiB each.
//!
//! Why this is safe, and what it relies on:
//! - Nothing SQLite writes to the WAL is durable, or visible to another connection, before
//!   the commit's sync: readers see frames only up to the WAL index's header, which SQLite
//!   moves after the sync. The combiner writes everything it holds before any sync, so the
//!   file holds exactly what it would have held without it by the time that matters.
//! - That needs a sync at every commit: the writing connection runs `synchronous = FULL`
//!   (invariant 6 needs it anyway; [`crate::sqlite_writer`] checks it).
//! - Every other call that looks at the file (a read, its size, a truncation, a file
//!   control, closing it) writes out what is held first, so the writer reading back a frame
//!   it spilled earlier in the transaction reads what it wrote.
//! - Only the WAL file is wrapped; the database file, its shared memory and its journals go
//!   straight to the platform's VFS.
//! - If a held write cannot be written out, the call that tried reports SQLite's error and
//!   the frames are dropped: they belong to the transaction that then fails and rolls back,
//!   since every earlier transaction was synced (and so written out) when it committed.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::ffi;

/// The name the writer opens its connection with.
pub const VFS_NAME: &CStr = c"sitetrail-wal";

/// The most a WAL file holds back before writing it out (a group of a thousand
/// activities appends about 7 MiB of frames).
const HOLD_AT_MOST: usize = 4 << 20;

/// Where held writes go: the real file, or a test's model of one.
pub trait WriteAt {
    fn write_at(&mut self, data: &[u8], offset: i64) -> Result<(), c_int>;
}

/// WAL writes this process's combining VFS has taken (held or passed on).
static WRITES_TAKEN: AtomicU64 = AtomicU64::new(0);

/// How many WAL writes went through the combining VFS since the process started.
pub fn writes_taken() -> u64 {
    WRITES_TAKEN.load(Ordering::Relaxed)
}

/// The most the platform's VFS writes in one call: SQLite's unix VFS keeps only the low 17
/// bits of a write's length (less than 128 KiB).
const WRITE_AT_MOST: usize = 124 << 10;

/// Consecutive writes held in memory and written out as one.
#[derive(Debug, Default)]
pub struct Combiner {
    /// The file offset of `held[0]`.
    start: i64,
    held: Vec<u8>,
    limit: usize,
}

impl Combiner {
    pub fn new(limit: usize) -> Self {
        Combiner {
            start: 0,
            held: Vec::new(),
            limit,
        }
    }

    /// How many bytes are held, not yet written.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Holds `data` for `offset` where it extends or falls inside what is held; otherwise
    /// writes out what is held and starts again from `data`. A write as large as the limit
    /// goes straight through.
    pub fn write(
        &mut self,
        file: &mut impl WriteAt,
        data: &[u8],
        offset: i64,
    ) -> Result<(), c_int> {
        let end = self.start + self.held.len() as i64;
        if !self.held.is_empty() {
            if offset == end && self.held.len() + data.len() <= self.limit {
                self.held.extend_from_slice(data);
                return Ok(());
            }
            if offset >= self.start && offset + data.len() as i64 <= end {
                let at = (offset - self.start) as usize;
                self.held[at..at + data.len()].copy_from_slice(data);
                return Ok(());
            }
            self.flush(file)?;
        }
        if data.len() >= self.limit {
            return file.write_at(data, offset);
        }
        self.start = offset;
        self.held.extend_from_slice(data);
        Ok(())
    }

    /// Writes out what is held. On failure what was held is dropped (see the module docs).
    pub fn flush(&mut self, file: &mut impl WriteAt) -> Result<(), c_int> {
        if self.held.is_empty() {
            return Ok(());
        }
        let written = file.write_at(&self.held, self.start);
        self.held.clear();
        if self.held.capacity() > self.limit {
            self.held.shrink_to(self.limit);
        }
        written
    }
}

/// A WAL file: SQLite sees the `sqlite3_file` header first; the platform's file follows in
/// the same allocation (SQLite allocates `szOsFile` bytes for every file it opens).
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    combiner: *mut Combiner,
}

/// The platform's file behind `real`, as a place to write.
struct Real(*mut ffi::sqlite3_file);

impl WriteAt for Real {
    fn write_at(&mut self, data: &[u8], offset: i64) -> Result<(), c_int> {
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(WRITE_AT_MOST);
            // SAFETY: `self.0` is an open file of the platform's VFS, and its methods are set.
            let rc = unsafe {
                let write = (*(*self.0).pMethods)
                    .xWrite
                    .expect("every VFS file can write");
                write(
                    self.0,
                    data[done..].as_ptr().cast(),
                    n as c_int,
                    offset + done as i64,
                )
            };
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            done += n;
        }
        Ok(())
    }
}

/// The offset of the platform's file inside a [`WalFile`]'s allocation.
const REAL_AT: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// The platform's VFS, which ours (registered, never unregistered) forwards to.
struct Vfs {
    base: *mut ffi::sqlite3_vfs,
}

// SAFETY: it points to a VFS object that lives as long as the process and that SQLite lets
// every thread use.
unsafe impl Send for Vfs {}
unsafe impl Sync for Vfs {}

static VFS: OnceLock<Result<Vfs, c_int>> = OnceLock::new();

fn base() -> *mut ffi::sqlite3_vfs {
    VFS.get()
        .and_then(|v| v.as_ref().ok())
        .expect("registered")
        .base
}

/// Registers the VFS (once per process, not as the default). Connections opened with
/// [`VFS_NAME`] use it.
pub fn register() -> Result<(), c_int> {
    VFS.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives forever; the
        // copy we register is leaked, so it does too.
        unsafe {
            let rc = ffi::sqlite3_initialize();
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            let base = ffi::sqlite3_vfs_find(std::ptr::null());
            if base.is_null() {
                return Err(ffi::SQLITE_ERROR);
            }
            let mut ours: ffi::sqlite3_vfs = std::ptr::read(base);
            ours.pNext = std::ptr::null_mut();
            ours.zName = VFS_NAME.as_ptr();
            ours.szOsFile = REAL_AT as c_int + (*base).szOsFile;
            ours.xOpen = Some(open);
            let ours = Box::into_raw(Box::new(ours));
            let rc = ffi::sqlite3_vfs_register(ours, 0);
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
            Ok(Vfs { base })
        }
    })
    .as_ref()
    .map(|_| ())
    .map_err(|rc| *rc)
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = base();
    // SAFETY: SQLite hands us `szOsFile` bytes at `file`; the platform's VFS gets a part of
    // them as large as its own `szOsFile`, at the start or after our header.
    unsafe {
        let base_open = (*base).xOpen.expect("the platform's VFS opens files");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return base_open(base, name, file, flags, out_flags);
        }
        let real = file.cast::<u8>().add(REAL_AT).cast::<ffi::sqlite3_file>();
        let rc = base_open(base, name, real, flags, out_flags);
        let wal = file.cast::<WalFile>();
        if rc != ffi::SQLITE_OK {
            // SQLite calls xClose only where pMethods is set.
            (*wal).base.pMethods = std::ptr::null();
            return rc;
        }
        std::ptr::write(
            wal,
            WalFile {
                base: ffi::sqlite3_file {
                    pMethods: &WAL_METHODS,
                },
                real,
                combiner: Box::into_raw(Box::new(Combiner::new(HOLD_AT_MOST))),
            },
        );
        ffi::SQLITE_OK
    }
}

/// The platform file's methods.
unsafe fn methods(f: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an open file's methods outlive it.
    unsafe { &*(*f).pMethods }
}

/// Writes out what `file` holds; on success hands the platform's file to `then`.
unsafe fn flushed(
    file: *mut ffi::sqlite3_file,
    then: impl FnOnce(*mut ffi::sqlite3_file) -> c_int,
) -> c_int {
    // SAFETY: `file` is a WalFile opened by `open`.
    unsafe {
        let wal = file.cast::<WalFile>();
        let real = (*wal).real;
        if let Err(rc) = (*(*wal).combiner).flush(&mut Real(real)) {
            return rc;
        }
        then(real)
    }
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each file once; the combiner was boxed by `open`.
    unsafe {
        let wal = file.cast::<WalFile>();
        let real = (*wal).real;
        // The platform's file is closed even when what was held cannot be written out.
        let flushed = (*(*wal).combiner).flush(&mut Real(real));
        let closed = methods(real).xClose.map_or(ffi::SQLITE_OK, |f| f(real));
        drop(Box::from_raw((*wal).combiner));
        (*wal).combiner = std::ptr::null_mut();
        match flushed {
            Err(rc) => rc,
            Ok(()) => closed,
        }
    }
}

unsafe extern "C" fn wal_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    unsafe {
        flushed(file, |real| {
            methods(real).xRead.expect("read")(real, buf, amount, offset)
        })
    }
}

unsafe extern "C" fn wal_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    WRITES_TAKEN.fetch_add(1, Ordering::Relaxed);
    // SAFETY: SQLite passes `amount` readable bytes at `buf`.
    unsafe {
        let wal = file.cast::<WalFile>();
        let data = std::slice::from_raw_parts(buf.cast::<u8>(), amount.max(0) as usize);
        match (*(*wal).combiner).write(&mut Real((*wal).real), data, offset) {
            Ok(()) => ffi::SQLITE_OK,
            Err(rc) => rc,
        }
    }
}

unsafe extern "C" fn wal_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    unsafe {
        flushed(file, |real| {
            methods(real).xTruncate.expect("truncate")(real, size)
        })
    }
}

unsafe extern "C" fn wal_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    unsafe { flushed(file, |real| methods(real).xSync.expect("sync")(real, flags)) }
}

unsafe extern "C" fn wal_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    unsafe {
        flushed(file, |real| {
            methods(real).xFileSize.expect("size")(real, size)
        })
    }
}

unsafe extern "C" fn wal_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        let real = (*file.cast::<WalFile>()).real;
        methods(real).xLock.expect("lock")(real, level)
    }
}

unsafe extern "C" fn wal_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        let real = (*file.cast::<WalFile>()).real;
        methods(real).xUnlock.expect("unlock")(real, level)
    }
}

unsafe extern "C" fn wal_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    unsafe {
        let real = (*file.cast::<WalFile>()).real;
        methods(real).xCheckReservedLock.expect("check lock")(real, out)
    }
}

unsafe extern "C" fn wal_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    unsafe {
        flushed(file, |real| {
            methods(real)
                .xFileControl
                .map_or(ffi::SQLITE_NOTFOUND, |f| f(real, op, arg))
        })
    }
}

unsafe extern "C" fn wal_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = (*file.cast::<WalFile>()).real;
        methods(real).xSectorSize.map_or(4096, |f| f(real))
    }
}

unsafe extern "C" fn wal_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = (*file.cast::<WalFile>()).real;
        methods(real).xDeviceCharacteristics.map_or(0, |f| f(real))
    }
}

/// Version 1: a WAL file has no shared memory and is not memory-mapped.
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// A file in memory, to check the combiner against.
#[doc(hidden)]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemoryFile {
    pub bytes: Vec<u8>,
    /// How many writes reached the file.
    pub writes: usize,
    /// Fail every write from now on (a full disk).
    pub failing: bool,
}

impl WriteAt for MemoryFile {
    fn write_at(&mut self, data: &[u8], offset: i64) -> Result<(), c_int> {
        if self.failing {
            return Err(ffi::SQLITE_FULL);
        }
        self.writes += 1;
        let at = usize::try_from(offset).expect("offsets are positive");
        if self.bytes.len() < at + data.len() {
            self.bytes.resize(at + data.len(), 0);
        }
        self.bytes[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// What the combiner is checked with: writes and write-outs, applied both through a
/// combiner and straight to a file; after every write-out the two files must be equal.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Step {
    Write { offset: u16, len: u16, byte: u8 },
    Flush,
}

/// Runs `steps` with a combiner holding at most `limit` bytes; panics where the combined
/// file differs from the plain one after a write-out. Shared by the property test and the
/// fuzz target.
#[doc(hidden)]
pub fn check_against_plain_writes(limit: usize, steps: &[Step]) {
    let mut combined = MemoryFile::default();
    let mut plain = MemoryFile::default();
    let mut combiner = Combiner::new(limit);
    for step in steps {
        match *step {
            Step::Write { offset, len, byte } => {
                let data = vec![byte; usize::from(len).max(1)];
                combiner
                    .write(&mut combined, &data, i64::from(offset))
                    .expect("memory never fails");
                plain
                    .write_at(&data, i64::from(offset))
                    .expect("memory never fails");
                assert!(
                    combiner.held() <= limit.max(data.len()),
                    "held past the limit"
                );
            }
            Step::Flush => {
                combiner.flush(&mut combined).expect("memory never fails");
                assert_eq!(combined.bytes, plain.bytes, "after {steps:?}");
            }
        }
    }
    combiner.flush(&mut combined).expect("memory never fails");
    assert_eq!(combined.bytes, plain.bytes, "after {steps:?}");
    assert!(
        combined.writes <= plain.writes,
        "never more writes than without it"
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rusqlite::{Connection, OpenFlags};

    use super::*;

    /// A WAL frame as SQLite writes it: its header, then its page.
    fn frame(c: &mut Combiner, file: &mut MemoryFile, n: i64, byte: u8) {
        let at = 32 + n * 4120;
        c.write(file, &[byte; 24], at).unwrap();
        c.write(file, &[byte; 4096], at + 24).unwrap();
    }

    #[test]
    fn a_transactions_frames_reach_the_file_in_one_write_when_it_is_written_out() {
        let mut file = MemoryFile::default();
        let mut c = Combiner::new(1 << 20);
        c.write(&mut file, &[7; 32], 0).unwrap();
        for n in 0..100 {
            frame(&mut c, &mut file, n, n as u8);
        }
        assert_eq!(file.writes, 0, "nothing written before the sync");
        assert_eq!(c.held(), 32 + 100 * 4120);
        c.flush(&mut file).unwrap();
        assert_eq!(file.writes, 1);
        assert_eq!(file.bytes.len(), 32 + 100 * 4120);
        assert_eq!(file.bytes[32 + 99 * 4120], 99);
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn a_frame_rewritten_in_its_transaction_is_rewritten_in_what_is_held() {
        let mut file = MemoryFile::default();
        let mut c = Combiner::new(1 << 20);
        for n in 0..3 {
            frame(&mut c, &mut file, n, 1);
        }
        // SQLite overwrites the page of a frame this transaction already wrote.
        c.write(&mut file, &[9; 4096], 32 + 4120 + 24).unwrap();
        assert_eq!(file.writes, 0);
        c.flush(&mut file).unwrap();
        assert_eq!(file.writes, 1);
        assert_eq!(file.bytes[32 + 4120 + 24], 9);
        assert_eq!(file.bytes[32 + 2 * 4120 + 24], 1);
    }

    #[test]
    fn a_write_elsewhere_or_past_the_limit_writes_out_what_is_held_first() {
        let mut file = MemoryFile::default();
        let mut c = Combiner::new(3 * 4120);
        frame(&mut c, &mut file, 0, 1);
        frame(&mut c, &mut file, 1, 2);
        frame(&mut c, &mut file, 2, 3);
        assert_eq!(file.writes, 0);
        frame(&mut c, &mut file, 3, 4);
        assert_eq!(file.writes, 1, "the fourth frame is past the limit");
        // A gap: what is held goes out before the write elsewhere is held.
        c.write(&mut file, &[5; 10], 1_000_000).unwrap();
        assert_eq!(file.writes, 2);
        assert_eq!(file.bytes[32 + 3 * 4120], 4);
        // As large as the limit: straight through.
        c.write(&mut file, &[6; 3 * 4120], 2_000_000).unwrap();
        assert_eq!(file.writes, 4);
        assert_eq!(file.bytes[1_000_000], 5);
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn a_failed_write_out_is_reported_and_what_was_held_is_dropped() {
        let mut file = MemoryFile::default();
        let mut c = Combiner::new(1 << 20);
        frame(&mut c, &mut file, 0, 1);
        file.failing = true;
        assert_eq!(c.flush(&mut file), Err(ffi::SQLITE_FULL));
        assert_eq!(c.held(), 0);
        file.failing = false;
        c.flush(&mut file).unwrap();
        assert!(
            file.bytes.is_empty(),
            "the failed transaction's frames are gone"
        );
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0u16..20_000, 1u16..6_000, any::<u8>())
                .prop_map(|(offset, len, byte)| Step::Write { offset, len, byte }),
            1 => Just(Step::Flush),
        ]
    }

    proptest! {
        #[test]
        fn combined_writes_leave_the_file_as_plain_writes_do(
            limit in 1usize..30_000,
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            check_against_plain_writes(limit, &steps);
        }
    }

    fn open(path: &std::path::Path) -> Connection {
        register().unwrap();
        let conn = Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            VFS_NAME,
        )
        .unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn
    }

    fn totals(conn: &Connection) -> (i64, i64) {
        conn.query_row(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    /// Through SQLite itself: transactions larger than what is held, a cache small enough to
    /// spill frames before the commit (and read them back), a rollback, a WAL restart; each
    /// commit is seen whole by a connection on the platform's own VFS, and the file is sound.
    #[test]
    fn sqlite_through_the_combining_vfs_commits_what_plain_sqlite_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let mut writer = open(&path);
        writer.pragma_update(None, "cache_size", 20).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, body BLOB);
                 CREATE INDEX t_by_k ON t (k);",
            )
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        let taken = writes_taken();
        let mut expect = (0i64, 0i64);
        for round in 0..4i64 {
            let tx = writer.transaction().unwrap();
            for i in 0..3_000i64 {
                let len = 200 + (i * 37 + round) % 1_500;
                tx.execute(
                    "INSERT INTO t (k, body) VALUES (?1, zeroblob(?2))",
                    rusqlite::params![format!("{:x}", (i * 7919 + round) % 10_007), len],
                )
                .unwrap();
                expect.0 += 1;
                expect.1 += len;
            }
            // Rewrites pages the transaction already spilled.
            tx.execute("UPDATE t SET k = k || 'x' WHERE id % 97 = 0", [])
                .unwrap();
            tx.commit().unwrap();
            assert_eq!(totals(&reader), expect, "round {round}");
        }
        assert!(
            writes_taken() > taken + 1_000,
            "the frames went through the VFS"
        );
        let tx = writer.transaction().unwrap();
        tx.execute("DELETE FROM t WHERE id % 2 = 0", []).unwrap();
        tx.execute("INSERT INTO t (k, body) SELECT k, body FROM t", [])
            .unwrap();
        tx.rollback().unwrap();
        assert_eq!(totals(&writer), expect);
        assert_eq!(totals(&reader), expect);

        let busy: i64 = writer
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0);
        writer
            .execute("INSERT INTO t (k, body) VALUES ('after', zeroblob(10))", [])
            .unwrap();
        expect = (expect.0 + 1, expect.1 + 10);
        assert_eq!(totals(&reader), expect);
        drop(writer);
        drop(reader);

        let again = Connection::open(&path).unwrap();
        assert_eq!(totals(&again), expect);
        let ok: String = again
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}
