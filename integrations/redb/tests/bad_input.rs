//! What McsafeBackend does with a database that is not a file, a file that
//! shrinks to zero under it, and a file that is gone: the clear error redb (or
//! std) would give, never a crash.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use mcsafe::RegionFault;
use mcsafe_redb::McsafeBackend;
use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase, ReadableTable, StorageError, TableDefinition, TableError};

const TABLE: TableDefinition<u64, u64> = TableDefinition::new("numbers");

fn scratch(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mcsafe-redb-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn read_write(path: &PathBuf) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

#[test]
fn a_pipe_or_a_directory_is_refused_at_open_with_what_it_is() {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of the two ints pipe(2) fills.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: a fresh pipe's two descriptors, open and owned by nothing else;
    // each goes into one File that owns it.
    let (read_end, _write_end) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let err = McsafeBackend::open(read_end).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "mcsafe-redb: the database must be a regular file, not a pipe"
    );
    let dir = File::open(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let err = McsafeBackend::open(dir).unwrap_err();
    assert!(err.to_string().ends_with("not a directory"), "{err}");
}

#[test]
fn a_write_only_file_cannot_be_mapped_and_says_so() {
    let path = scratch("write-only");
    std::fs::write(&path, [0u8; 8192]).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    let err = McsafeBackend::open(file).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_file_that_shrinks_to_zero_under_the_database_is_an_io_error_then_a_new_empty_database() {
    let path = scratch("zero");
    let db = Database::builder()
        .set_cache_size(0)
        .create_with_backend(McsafeBackend::open(read_write(&path)).unwrap())
        .unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(TABLE).unwrap();
        for key in 0..10_000 {
            table.insert(key, key * 3).unwrap();
        }
    }
    txn.commit().unwrap();
    read_write(&path).set_len(0).unwrap();
    // Whichever read first needs a lost page fails with mcsafe's error.
    let err = match db.begin_read() {
        Err(redb::TransactionError::Storage(StorageError::Io(err))) => err,
        Ok(txn) => match txn.open_table(TABLE) {
            Err(TableError::Storage(StorageError::Io(err))) => err,
            Ok(table) => match table.get(5).map(|v| v.map(|v| v.value())) {
                Err(StorageError::Io(err)) => err,
                other => panic!("get from a database whose file is empty: {other:?}"),
            },
            Err(other) => panic!("open_table: {other:?}"),
        },
        Err(other) => panic!("begin_read: {other:?}"),
    };
    assert!(RegionFault::of(&err).is_some(), "{err}");
    drop(db);
    // Opened again, an empty file is a new empty database, as with redb's own backend.
    for mcsafe in [true, false] {
        std::fs::write(&path, []).unwrap();
        let file = read_write(&path);
        let db = if mcsafe {
            Database::builder().create_with_backend(McsafeBackend::open(file).unwrap())
        } else {
            Database::builder().create_with_backend(FileBackend::new(file))
        }
        .unwrap();
        let txn = db.begin_read().unwrap();
        assert!(
            matches!(txn.open_table(TABLE), Err(TableError::TableDoesNotExist(_))),
            "mcsafe {mcsafe}"
        );
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_missing_file_fails_before_the_backend_and_an_unlinked_one_keeps_working() {
    let path = scratch("missing");
    let err = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    // Removed from its directory while open: the data is still there, as with
    // any open file.
    let db = Database::builder()
        .create_with_backend(McsafeBackend::open(read_write(&path)).unwrap())
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(TABLE).unwrap().insert(1, 2).unwrap();
    txn.commit().unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(TABLE)
            .unwrap()
            .get(1)
            .unwrap()
            .unwrap()
            .value(),
        2
    );
}
