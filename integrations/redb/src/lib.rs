//! A [redb](https://docs.rs/redb) 5 storage backend whose reads survive SIGBUS.
//!
//! [`McsafeBackend`] reads the database file through a read-only shared mapping,
//! copied out with mcsafe ([`mcsafe::MappedRegion`]), and writes it with
//! `pwrite(2)`. A page that cannot be read any more (the file truncated under the
//! open database by another process, a page-in that failed, hardware poison) makes
//! that read return [`BackendError::Io`] carrying the `io::Error` mcsafe gives,
//! with the file offsets of the lost range ([`mcsafe::RegionFault`]), instead of
//! SIGBUS killing the process. redb then fails the operation with
//! `StorageError::Io` and every later one with `StorageError::PreviousIo`, as it
//! does for any I/O error.
//!
//! redb removed its own mmap backend (0.14) because a `&[u8]` over a mapping
//! whose file may change is undefined behaviour. This backend never forms a Rust
//! reference into the mapping: the [`MappedRegion`] owns the `memmap2` map and
//! reads it only with mcsafe's copies into redb's own buffers.
//!
//! ```
//! use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
//!
//! const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("data");
//!
//! let file = std::fs::OpenOptions::new()
//!     .read(true).write(true).create(true).truncate(false)
//!     .open(std::env::temp_dir().join(format!("mcsafe-redb-doc-{}", std::process::id())))?;
//! let db = Database::builder().create_with_backend(mcsafe_redb::McsafeBackend::open(file)?)?;
//! let txn = db.begin_write()?;
//! txn.open_table(TABLE)?.insert(1, b"one".as_slice())?;
//! txn.commit()?;
//! let read = db.begin_read()?;
//! match read.open_table(TABLE)?.get(1) {
//!     Ok(value) => println!("{:?}", value.map(|v| v.value().to_vec())),
//!     // A lost page: the io::Error inside says which file bytes are gone.
//!     Err(redb::StorageError::Io(e)) => eprintln!("{e}"),
//!     Err(e) => return Err(e.into()),
//! }
//! # drop(read);
//! # drop(db);
//! # std::fs::remove_file(std::env::temp_dir().join(format!("mcsafe-redb-doc-{}", std::process::id())))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Locking is redb's own: the backend hands the lock methods to a
//! [`redb::backends::FileBackend`] over a duplicate of the same file descriptor,
//! so the locks behave exactly as with redb's default backend.
//!
//! Changing it: `cargo test -p mcsafe-redb`, and for speed `cargo bench -p
//! mcsafe-redb` (see this package's README.md).
#![deny(unsafe_op_in_unsafe_fn)]

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};

use mcsafe::MappedRegion;
use memmap2::{MmapOptions, RemapOptions};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// A redb storage backend over a file: reads through a read-only shared mapping
/// with mcsafe, writes with `pwrite(2)`.
///
/// The mapping covers the file as the backend last knew it: it is renewed when
/// redb sets the length ([`StorageBackend::set_len`]) and when a read reaches past
/// it and the file has grown meanwhile (a write past the end, another process).
/// A file that shrinks under it without `set_len` (truncated by someone else)
/// keeps the mapping's length, and reads of the pages it lost fail with an
/// I/O error: that is the fault mcsafe is for.
#[derive(Debug)]
pub struct McsafeBackend {
    /// Writes, length changes, `fstat`, sync, and the file the mappings are made of.
    file: File,
    /// redb's own locking, on a duplicate of `file`'s descriptor (one open file
    /// description: the locks belong to this backend).
    locks: FileBackend,
    mapping: RwLock<Mapping>,
}

/// The mapping of the file's first `len()` bytes, if it has any.
#[derive(Debug)]
struct Mapping {
    /// `None` while the file is empty: a mapping cannot be.
    region: Option<MappedRegion>,
}

impl Mapping {
    fn len(&self) -> u64 {
        self.region.as_ref().map_or(0, |r| r.len() as u64)
    }

    /// Reads `out.len()` bytes at `offset`, which end inside the mapping.
    fn read_exact_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        match &self.region {
            Some(region) => region.read_exact_at(offset, out),
            // Only an empty read ends inside an empty mapping.
            None => Ok(()),
        }
    }
}

impl McsafeBackend {
    /// A backend over `file`, which must be a regular file opened for reading
    /// (and for writing, unless the database is opened read-only).
    ///
    /// Installs mcsafe's SIGBUS handler if it is not yet installed.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `file` is not a regular file (a pipe, a socket, a
    ///   directory, a device): it cannot be mapped.
    /// - The error of `mmap(2)`, e.g. `PermissionDenied` for a file opened
    ///   write-only.
    /// - `Unsupported` or `Other` if mcsafe cannot recover faults in this
    ///   process ([`mcsafe::install`] says why): reads through a mapping would
    ///   then kill the process where `pread(2)` would not; use
    ///   [`FileBackend`] there.
    pub fn open(file: File) -> io::Result<McsafeBackend> {
        if let Err(e) = mcsafe::install() {
            let kind = match e {
                mcsafe::InstallError::Unsupported => io::ErrorKind::Unsupported,
                _ => io::ErrorKind::Other,
            };
            return Err(io::Error::new(
                kind,
                format!("mcsafe-redb: faults in mapped reads would not be recovered: {e}"),
            ));
        }
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "mcsafe-redb: the database must be a regular file, not {}",
                    file_type_name(&metadata.file_type())
                ),
            ));
        }
        let region = map_file(&file, metadata.len())?;
        let locks = FileBackend::new(file.try_clone()?);
        Ok(McsafeBackend {
            file,
            locks,
            mapping: RwLock::new(Mapping { region }),
        })
    }

    fn mapping_for_update(&self) -> RwLockWriteGuard<'_, Mapping> {
        // A panic elsewhere while holding the lock leaves a valid Mapping.
        self.mapping.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `mapping` cover the file's first `len` bytes.
    fn resize(&self, mapping: &mut Mapping, len: u64) -> io::Result<()> {
        if mapping.len() == len {
            return Ok(());
        }
        let region = match (mapping.region.take(), len) {
            (_, 0) => None,
            (None, _) => map_file(&self.file, len)?,
            (Some(region), _) => match region.into_mmap() {
                Ok(mut map) => {
                    // SAFETY: our own read-only shared mapping, which goes back
                    // into a MappedRegion; pages past the end of the file are
                    // only ever read through mcsafe, where they are an error.
                    let resized =
                        unsafe { map.remap(map_len(len)?, RemapOptions::new().may_move(true)) };
                    // On failure the map is unchanged: keep it.
                    mapping.region = Some(MappedRegion::from_mmap(map));
                    resized?;
                    return Ok(());
                }
                // Every region here is made by map_file, from a memmap2 map.
                Err(_) => map_file(&self.file, len)?,
            },
        };
        mapping.region = region;
        Ok(())
    }
}

/// Maps the first `len` bytes of `file`, read-only and shared.
fn map_file(file: &File, len: u64) -> io::Result<Option<MappedRegion>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the map goes straight into a MappedRegion, which owns it and reads
    // it only through mcsafe's copies: no slice of it is ever formed, so a file
    // that changes or shrinks under it is allowed (`MappedRegion::from_mmap`).
    let map = unsafe { MmapOptions::new().len(map_len(len)?).map(file) }?;
    Ok(Some(MappedRegion::from_mmap(map)))
}

fn map_len(len: u64) -> io::Result<usize> {
    usize::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mcsafe-redb: a file of {len} bytes cannot be mapped"),
        )
    })
}

fn file_type_name(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a pipe"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "a file of another kind"
    }
}

impl StorageBackend for McsafeBackend {
    fn len(&self) -> Result<u64, BackendError> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        let end = offset.checked_add(out.len() as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "mcsafe-redb: read range overflows",
            )
        })?;
        {
            let mapping = self.mapping.read().unwrap_or_else(PoisonError::into_inner);
            if end <= mapping.len() {
                return Ok(mapping.read_exact_at(offset, out)?);
            }
        }
        // Past the mapping: the file may have grown since it was made.
        let mut mapping = self.mapping_for_update();
        let file_len = self.file.metadata()?.len();
        if file_len > mapping.len() {
            self.resize(&mut mapping, file_len)?;
        }
        if end > mapping.len() {
            // What FileBackend's read_exact says past the end of the file.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "mcsafe-redb: {} bytes at offset {offset} end past the end of the file ({file_len} bytes)",
                    out.len()
                ),
            )
            .into());
        }
        Ok(mapping.read_exact_at(offset, out)?)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        // Held across the truncation: no read copies from pages being cut off.
        let mut mapping = self.mapping_for_update();
        self.file.set_len(len)?;
        self.resize(&mut mapping, len)?;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        // Writes go through pwrite; the mapping is read-only, nothing to msync.
        self.file.sync_data()?;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        // The shared mapping sees these bytes (one page cache); a write past
        // its end is mapped when a read first reaches it.
        self.file.write_all_at(data, offset)?;
        Ok(())
    }

    fn close(&self) -> Result<(), BackendError> {
        self.locks.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.locks.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks.query_lock_range(start, end)
    }
}
