//! redb on McsafeBackend when the database file is truncated under the open
//! database (as another process would): a naive memmap2 backend dies by SIGBUS;
//! McsafeBackend returns I/O errors that name the lost file bytes, never panics,
//! and every key whose pages are intact reads back correctly.
//!
//! Also the backend alone: every page below the cut reads back exactly, every
//! page above it is an error with its file offset; the mapping follows set_len
//! and a file that grew.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use mcsafe::RegionFault;
use mcsafe_redb::McsafeBackend;
use redb::{
    BackendError, Database, ReadableDatabase, ReadableTable, StorageBackend, StorageError,
    TableDefinition,
};

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("data");
const KEYS: u64 = 100_000;
const PAGE: u64 = 4096;

/// The value stored under `key`: 40 to 103 bytes that differ from key to key.
fn value(key: u64) -> Vec<u8> {
    let len = 40 + (key % 64) as usize;
    (0..len).map(|i| common::byte_at(key, i)).collect()
}

/// A fresh file under the test's target directory (removed first if left over).
fn scratch(name: &str) -> (PathBuf, File) {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mcsafe-redb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    (path, file)
}

fn reopen(path: &PathBuf) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// Writes and commits the KEYS keys in one transaction.
fn fill(db: &Database) {
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(TABLE).unwrap();
        for key in 0..KEYS {
            table.insert(key, value(key).as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

/// A backend that records the ranges read, around the one under test.
#[derive(Debug)]
struct Recording<B> {
    inner: B,
    reads: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl<B: StorageBackend> StorageBackend for Recording<B> {
    fn len(&self) -> Result<u64, BackendError> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.reads
            .lock()
            .unwrap()
            .push((offset, offset + out.len() as u64));
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), BackendError> {
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), BackendError> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
}

/// The backend people wrote before redb removed its own: a `&[u8]` over a
/// shared mapping. Truncating the file under it is SIGBUS (and, by Rust's
/// rules, undefined behaviour): run only in a child process.
#[derive(Debug)]
struct NaiveMmapBackend {
    file: File,
    map: RwLock<Option<memmap2::Mmap>>,
}

impl NaiveMmapBackend {
    fn new(file: File) -> NaiveMmapBackend {
        let backend = NaiveMmapBackend {
            file,
            map: RwLock::new(None),
        };
        backend.remap().unwrap();
        backend
    }

    fn remap(&self) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        // SAFETY: deliberately unsound when the file shrinks: that is the point.
        let map = (len > 0)
            .then(|| unsafe {
                memmap2::MmapOptions::new()
                    .len(len as usize)
                    .map(&self.file)
            })
            .transpose()?;
        *self.map.write().unwrap() = map;
        Ok(())
    }
}

impl StorageBackend for NaiveMmapBackend {
    fn len(&self) -> Result<u64, BackendError> {
        Ok(self.file.metadata()?.len())
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        let map = self.map.read().unwrap();
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let (start, end) = (offset as usize, offset as usize + out.len());
        if end > bytes.len() {
            drop(map);
            self.remap()?;
            return self.read(offset, out);
        }
        out.copy_from_slice(&bytes[start..end]);
        Ok(())
    }
    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.file.set_len(len)?;
        Ok(self.remap()?)
    }
    fn sync_data(&self) -> Result<(), BackendError> {
        Ok(self.file.sync_data()?)
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        Ok(self.file.write_all_at(data, offset)?)
    }
}

#[test]
fn a_naive_memmap2_backend_is_killed_by_sigbus_when_the_file_is_truncated_under_it() {
    const NAME: &str =
        "a_naive_memmap2_backend_is_killed_by_sigbus_when_the_file_is_truncated_under_it";
    let status = common::in_child(NAME, || {
        let (path, file) = scratch("naive");
        let db = Database::builder()
            .set_cache_size(0)
            .create_with_backend(NaiveMmapBackend::new(file))
            .unwrap();
        fill(&db);
        let len = std::fs::metadata(&path).unwrap().len();
        reopen(&path).set_len(len / 4 / PAGE * PAGE).unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(TABLE).unwrap();
        for key in 0..KEYS {
            let _ = table.get(key);
        }
        let _ = std::fs::remove_file(&path);
        eprintln!("the naive backend read every key: the truncation did not cut it");
    });
    assert_eq!(
        status.signal(),
        Some(libc::SIGBUS),
        "the naive memmap2 backend: {status:?}"
    );
}

#[test]
fn mcsafe_backend_gives_io_errors_for_lost_pages_and_every_intact_key_its_value() {
    let (path, file) = scratch("truncated");
    let reads = Arc::new(Mutex::new(Vec::new()));
    let backend = Recording {
        inner: McsafeBackend::open(file).unwrap(),
        reads: reads.clone(),
    };
    // No cache: every lookup reads its pages (root to leaf) from the backend.
    let db = Database::builder()
        .set_cache_size(0)
        .create_with_backend(backend)
        .unwrap();
    fill(&db);
    let file_len = std::fs::metadata(&path).unwrap().len();

    // Which pages each key's lookup reads, while the file is whole.
    // Opening the transaction and the table reads pages every key needs.
    let mut needs = Vec::with_capacity(KEYS as usize);
    {
        reads.lock().unwrap().clear();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let common = reads.lock().unwrap().iter().map(|r| r.1).max().unwrap_or(0);
        for key in 0..KEYS {
            reads.lock().unwrap().clear();
            let got = table.get(key).unwrap().map(|v| v.value().to_vec());
            assert_eq!(got, Some(value(key)), "key {key} before the truncation");
            let end = reads.lock().unwrap().iter().map(|r| r.1).max();
            needs.push(common.max(end.expect("a lookup without a cache reads its pages")));
        }
    }
    // Cut at the median: the pages every lookup needs (the table tree, the
    // branch pages) come last in the file, and most leaves before them, so
    // this leaves 10-20 % of the keys with a lost page.
    let mut ends: Vec<u64> = needs.clone();
    ends.sort_unstable();
    let cut = ends[ends.len() / 2] / PAGE * PAGE;
    println!(
        "pages each lookup needs end at {}..{} of {file_len} bytes; cut at {cut}",
        ends[0],
        ends[ends.len() - 1]
    );
    reopen(&path).set_len(cut).unwrap();

    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    let (intact, lost): (Vec<u64>, Vec<u64>) = (0..KEYS).partition(|&k| needs[k as usize] <= cut);
    assert!(
        intact.len() >= KEYS as usize / 10 && lost.len() >= KEYS as usize / 10,
        "cut at {cut}: {} intact, {} lost",
        intact.len(),
        lost.len()
    );
    for &key in &intact {
        let got = table.get(key).map(|v| v.map(|v| v.value().to_vec()));
        assert_eq!(got.unwrap(), Some(value(key)), "intact key {key}");
    }
    // The first lookup that needs a lost page fails with mcsafe's io::Error;
    // redb then fails everything with PreviousIo (its rule for any I/O error).
    let first = table.get(lost[0]).map(|v| v.is_some());
    let Err(StorageError::Io(err)) = first else {
        panic!("key {} needs a page past {cut}: {first:?}", lost[0]);
    };
    let fault = RegionFault::of(&err).unwrap_or_else(|| panic!("not mcsafe's error: {err}"));
    assert!(fault.offset() >= cut, "{fault}");
    assert!(
        fault.lost().start >= cut && fault.lost().end <= file_len,
        "{fault}"
    );
    assert_eq!(fault.raw_os_error(), libc::EIO);
    assert!(err.to_string().contains("at file offset"), "{err}");
    for &key in lost.iter().skip(1).take(100) {
        assert!(
            matches!(table.get(key), Err(StorageError::PreviousIo)),
            "key {key}"
        );
    }
    println!(
        "redb truncated under the open database at {cut} of {file_len} bytes: {} keys read back \
         exactly, {} need lost pages; the first of them: {err}",
        intact.len(),
        lost.len()
    );
    drop(table);
    drop(txn);
    drop(db);
    std::fs::remove_file(&path).unwrap();
}

/// Pages of recognisable bytes, as a database would hold.
fn page_bytes(page: u64) -> Vec<u8> {
    (0..PAGE as usize)
        .map(|i| common::byte_at(page, i))
        .collect()
}

#[test]
fn the_backend_reads_intact_pages_exactly_and_lost_pages_as_errors_with_their_offset() {
    let (path, file) = scratch("pages");
    let backend = McsafeBackend::open(file).unwrap();
    backend.set_len(64 * PAGE).unwrap();
    for page in 0..64 {
        backend.write(page * PAGE, &page_bytes(page)).unwrap();
    }
    reopen(&path).set_len(20 * PAGE).unwrap();
    assert_eq!(backend.len().unwrap(), 20 * PAGE);
    let before = common::recovered();
    let mut buf = vec![0u8; PAGE as usize];
    for page in 0..64 {
        let result = backend.read(page * PAGE, &mut buf);
        if page < 20 {
            result.unwrap();
            assert!(buf == page_bytes(page), "page {page}");
            continue;
        }
        let Err(BackendError::Io(err)) = result else {
            panic!("page {page} is past the end of the file: {result:?}");
        };
        let fault = RegionFault::of(&err).unwrap();
        assert_eq!(fault.offset(), page * PAGE);
        assert_eq!(fault.lost(), page * PAGE..(page + 1) * PAGE);
    }
    // A read across the cut: the error names the first lost byte.
    let mut two = vec![0u8; 2 * PAGE as usize];
    let Err(BackendError::Io(err)) = backend.read(19 * PAGE, &mut two) else {
        panic!("a read across the cut succeeded");
    };
    assert_eq!(RegionFault::of(&err).unwrap().offset(), 20 * PAGE);
    assert_eq!(two[..PAGE as usize], page_bytes(19)[..]);
    assert!(
        common::recovered() - before >= 45,
        "one SIGBUS per lost read"
    );

    // set_len renews the mapping: grown again, the new pages read as zeros.
    backend.set_len(64 * PAGE).unwrap();
    backend.read(40 * PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    // A file that grew by a write past the end is mapped when a read reaches it.
    backend.write(80 * PAGE, &page_bytes(80)).unwrap();
    backend.read(80 * PAGE, &mut buf).unwrap();
    assert!(buf == page_bytes(80));
    // And by another handle's set_len.
    reopen(&path).set_len(100 * PAGE).unwrap();
    backend.read(99 * PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    // Past the end of the file: UnexpectedEof, as FileBackend's read_exact.
    let Err(BackendError::Io(err)) = backend.read(100 * PAGE, &mut buf) else {
        panic!("a read past the end succeeded");
    };
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    // Shrunk by set_len: the mapping shrinks too.
    backend.set_len(PAGE).unwrap();
    let Err(BackendError::Io(err)) = backend.read(PAGE, &mut buf) else {
        panic!("a read past the new end succeeded");
    };
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn reads_from_many_threads_stay_exact_while_set_len_renews_the_mapping() {
    let (path, file) = scratch("threads");
    let backend = Arc::new(McsafeBackend::open(file).unwrap());
    backend.set_len(16 * PAGE).unwrap();
    for page in 0..16 {
        backend.write(page * PAGE, &page_bytes(page)).unwrap();
    }
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let backend = backend.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; PAGE as usize];
                let mut seen = BTreeSet::new();
                for i in 0..20_000u64 {
                    let page = (i * 7 + t) % 16;
                    backend.read(page * PAGE, &mut buf).unwrap();
                    assert!(buf == page_bytes(page), "page {page}");
                    seen.insert(page);
                }
                seen.len()
            })
        })
        .collect();
    for round in 0..200u64 {
        backend.set_len((17 + round % 50) * PAGE).unwrap();
    }
    for reader in readers {
        assert_eq!(reader.join().unwrap(), 16);
    }
    std::fs::remove_file(&path).unwrap();
}
