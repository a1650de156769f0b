//! [`MappedRegion`]: safe positional I/O over memory that may fault (a mapped
//! file, persistent memory, guest memory), with errors that say which range of
//! the file was lost.
//!
//! This file: the region, its constructors and accessors. `fault.rs`: what it
//! reports about lost memory ([`RegionFault`], [`RegionLost`], the errno).
//! `reread.rs`: what a read does where the mapping faulted and the region
//! knows its file (`pread(2)` again: holes, the file's end), and a lossy
//! read's answer ([`RegionRead`], [`RegionReread`]). `cursor.rs`:
//! [`RegionCursor`].
//!
//! Change them, then run `cargo test -p mcsafe-tests --test region --test
//! storage_api --test storage_uffd`, `cargo test -p mcsafe-tests --features memmap2
//! --test region`, `cargo test -p mcsafe --features memmap2 --doc` and `cargo test
//! -p mcsafe-cli` (`mcsafe rescue` reads through a region).

mod cursor;
mod fault;
mod reread;

use core::fmt;
use std::any::Any;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

pub use cursor::RegionCursor;
pub use fault::{RegionFault, RegionLost};
pub use reread::{RegionRead, RegionReread};

use crate::arch::{Arch, Target};
use crate::copy::check_range;
use crate::{
    CrcFault, Fault, FaultKind, LostRange, Side, copy_crc32c_mc, copy_mc, copy_mc_lossy, crc32c_mc,
};
use reread::Reread;

/// A range of memory that may fault, read and written only through mcsafe.
///
/// Built unsafely from a pointer and a length (the caller vouches that the
/// mapping lives as long as the region and is not accessed through Rust
/// references meanwhile), or, with the `memmap2` feature, safely from a
/// `memmap2::Mmap` or `MmapMut`, which the region then owns. From then on every
/// access is safe: [`read_at`], [`write_at`], [`read_exact_at`],
/// [`write_all_at`], [`crc32c_at`], [`read_exact_crc32c_at`], a [`cursor`] that implements
/// [`Read`](std::io::Read), [`Write`](std::io::Write) and
/// [`Seek`](std::io::Seek), and the lossy [`read_lossy_at`] /
/// [`write_lossy_at`], which go on past lost pages and list them. A lost page
/// ends an access with an error (or, for the lossy ones, a list entry) instead
/// of killing the process. [`flush`] makes writes durable.
///
/// Every offset the region takes and reports is a *region offset*, from its
/// first byte; errors and lost ranges give *file offsets* too
/// ([`with_file_offset`] says where the region starts in its file).
///
/// # Errors and the lost range
///
/// Reads and writes behave as `pread(2)`/`pwrite(2)` on a file whose page went
/// bad: an access that reaches a lost granule after moving some bytes returns
/// those bytes (`Ok(n)`, a short count); an access that starts in it fails. The
/// error of a fault in the region is an [`io::Error`] that carries a
/// [`RegionFault`]: the [`Fault`], where the access stopped and the range that
/// was lost (region and file offsets), and [`RegionFault::raw_os_error`], the
/// errno `pread(2)`/`pwrite(2)` would give: `EIO` for a poisoned page, and
/// `ENOSPC` for a write into a hole of a file on a full file system where the
/// region knows its file ([`with_file`]). A region that knows its file also
/// reads what its mapping could not page in again with `pread(2)` (a hole
/// reads as zeros, a file that shrank gives a short read) before it calls it
/// lost: see [`read_at`]. A fault in the caller's own buffer
/// (which a `&[u8]` should never allow) is an `io::Error` carrying the bare
/// `Fault`, whose `raw_os_error()` is `EFAULT` as for a bad buffer.
///
/// Both keep the payload, as `From<Fault> for io::Error` does: an `io::Error`
/// holds a raw OS code *or* a payload, never both, so `io::Error::raw_os_error()`
/// is `None`, and [`io::Error::kind`] is [`io::ErrorKind::StorageFull`] for
/// `ENOSPC`, [`io::ErrorKind::Other`] otherwise. Use [`RegionFault::of`] to get
/// the details, and its `raw_os_error()` for the errno.
///
/// Bad input is an error, never a panic: a write to a read-only region is
/// `PermissionDenied`; [`read_exact_at`], [`write_all_at`], [`crc32c_at`] and
/// [`read_exact_crc32c_at`] past the end are `UnexpectedEof` / `WriteZero` and touch nothing. `read_at`
/// and `write_at` at or past the end return `Ok(0)`.
///
/// [`read_at`]: MappedRegion::read_at
/// [`write_at`]: MappedRegion::write_at
/// [`read_exact_at`]: MappedRegion::read_exact_at
/// [`write_all_at`]: MappedRegion::write_all_at
/// [`crc32c_at`]: MappedRegion::crc32c_at
/// [`read_exact_crc32c_at`]: MappedRegion::read_exact_crc32c_at
/// [`cursor`]: MappedRegion::cursor
/// [`read_lossy_at`]: MappedRegion::read_lossy_at
/// [`write_lossy_at`]: MappedRegion::write_lossy_at
/// [`flush`]: MappedRegion::flush
/// [`with_file`]: MappedRegion::with_file
/// [`with_file_offset`]: MappedRegion::with_file_offset
///
/// # Example
///
/// ```
/// use std::io::{Read, Seek, SeekFrom};
///
/// let mut memory = vec![0u8; 8192];
/// // SAFETY: `memory` outlives the region and is only used through it.
/// let region = unsafe { mcsafe::MappedRegion::from_raw_parts_mut(memory.as_mut_ptr(), 8192) }
///     .with_file_offset(1 << 20); // it maps the file from offset 1 MiB
/// region.write_at(100, b"hello")?;
/// let mut word = [0u8; 5];
/// region.read_exact_at(100, &mut word)?;
/// assert_eq!(&word, b"hello");
///
/// let mut cursor = region.cursor();
/// cursor.seek(SeekFrom::Start(100))?;
/// let mut text = String::new();
/// cursor.by_ref().take(5).read_to_string(&mut text)?;
/// assert_eq!(text, "hello");
///
/// // Any error from a lost page carries the region and file offsets:
/// # fn report(region: &mcsafe::MappedRegion, err: std::io::Error) -> std::io::Result<()> {
/// if let Some(lost) = mcsafe::RegionFault::of(&err) {
///     eprintln!("lost file bytes {:?} (errno {})", lost.lost(), lost.raw_os_error());
///     // Go on right after the lost page:
///     let mut rest = [0u8; 100];
///     region.read_at(lost.lost_in_region().end, &mut rest)?;
/// }
/// # Ok(()) }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MappedRegion {
    ptr: *mut u8,
    len: usize,
    writable: bool,
    file_offset: u64,
    /// A private open file description of the mapped file (`with_file`), to
    /// tell why a page is lost.
    file: Option<OwnedFd>,
    /// The mapping the region owns (memmap2), kept alive and unmapped by its
    /// drop; read back only by `into_mmap*`.
    #[cfg_attr(not(feature = "memmap2"), allow(dead_code))]
    owner: Option<Box<dyn Any + Send + Sync>>,
}

// SAFETY: the region is a pointer and a length into memory that the constructor's
// caller (or the owned `memmap2` mapping) keeps alive, touched only by the asm
// routines. Concurrent reads are fine; concurrent writes to the same bytes leave
// them unspecified, as concurrent `pwrite(2)`s to one file range do, and never
// go through a Rust reference.
unsafe impl Send for MappedRegion {}
// SAFETY: as above.
unsafe impl Sync for MappedRegion {}

impl fmt::Debug for MappedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedRegion")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .field("file_offset", &self.file_offset)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl MappedRegion {
    /// A read-only region of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// For as long as the region lives: `ptr..ptr + len` stays mapped and
    /// readable, except where it may raise SIGBUS (see
    /// [`copy_mc`](crate::copy_mc)); no Rust reference to it exists; nothing
    /// writes it except through mcsafe or outside this process's Rust code
    /// (another process, the kernel).
    ///
    /// # Panics
    ///
    /// If `len > 0` and `ptr` is null or the range wraps the address space.
    #[track_caller]
    pub unsafe fn from_raw_parts(ptr: *const u8, len: usize) -> MappedRegion {
        // SAFETY: per this function's contract; `writable` false keeps it read-only.
        unsafe { MappedRegion::new(ptr.cast_mut(), len, false, None) }
    }

    /// A readable and writable region of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// As for [`from_raw_parts`](MappedRegion::from_raw_parts), and the range is
    /// writable.
    ///
    /// # Panics
    ///
    /// As for [`from_raw_parts`](MappedRegion::from_raw_parts).
    #[track_caller]
    pub unsafe fn from_raw_parts_mut(ptr: *mut u8, len: usize) -> MappedRegion {
        // SAFETY: per this function's contract.
        unsafe { MappedRegion::new(ptr, len, true, None) }
    }

    /// A read-only region over a `memmap2` mapping, which the region owns.
    ///
    /// Made for files that change under the mapping. Anything may happen to
    /// the file while the region reads it: another process (or this one,
    /// through the file) may truncate it, punch holes in it or write to it;
    /// the disk may fail to read a page in; a page may be poisoned; its file
    /// system may be full. A page that cannot be read any more ends the access
    /// with an error ([`RegionFault`]) or, for [`read_lossy_at`], a lost range,
    /// instead of SIGBUS killing the process. Bytes written to the file
    /// meanwhile may be seen or not, as with concurrent `pread(2)`s.
    ///
    /// What must not happen instead:
    /// - memory of the same file reached by Rust code *outside* the region:
    ///   another `Mmap` of it dereferenced as a `&[u8]` (or a slice taken from
    ///   this map before it was handed over) is exactly the unprotected access
    ///   that dies by SIGBUS on truncation, and is undefined behaviour under
    ///   memmap2's contract when the file changes;
    /// - unmapping the memory behind the region's back (`munmap` of its
    ///   address, `MAP_FIXED` over it): the region owns the map so that this
    ///   cannot happen by accident.
    ///
    /// Creating the `Mmap` was the unsafe step; this one is safe because the
    /// region owns it and never forms a reference to its memory.
    ///
    /// [`read_lossy_at`]: MappedRegion::read_lossy_at
    ///
    /// # Example
    ///
    /// ```
    /// # #[cfg(feature = "memmap2")] {
    /// let file = tempfile_of(3 * 4096);
    /// // SAFETY: the map goes straight into the region, which reads it only
    /// // through mcsafe; no slice of it is ever made.
    /// let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    /// let region = mcsafe::MappedRegion::from_mmap(map);
    /// file.set_len(4096).unwrap(); // truncated under the region: allowed
    /// let mut buf = [0u8; 100];
    /// let err = region.read_at(8192, &mut buf).unwrap_err();
    /// assert_eq!(mcsafe::RegionFault::of(&err).unwrap().lost_in_region(), 8192..12288);
    /// # fn tempfile_of(len: u64) -> std::fs::File {
    /// #     let path = std::env::temp_dir().join(format!("mcsafe-doc-mmap-{}", std::process::id()));
    /// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true)
    /// #         .truncate(true).open(&path).unwrap();
    /// #     std::fs::remove_file(&path).unwrap();
    /// #     f.set_len(len).unwrap();
    /// #     f
    /// # }
    /// # }
    /// ```
    #[cfg(feature = "memmap2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "memmap2")))]
    pub fn from_mmap(map: memmap2::Mmap) -> MappedRegion {
        let (ptr, len) = (map.as_ptr().cast_mut(), map.len());
        // SAFETY: the region owns the mapping, so it stays mapped as long as the
        // region lives; the region never forms a reference to it.
        unsafe { MappedRegion::new(ptr, len, false, Some(Box::new(map))) }
    }

    /// A writable region over a `memmap2` mapping, which the region owns.
    ///
    /// Safe, and made for files that change under it, for the reasons and with
    /// the limits given at [`from_mmap`](MappedRegion::from_mmap). Writes reach
    /// the file as writes to the mapping do; [`flush`](MappedRegion::flush)
    /// makes them durable, and [`into_mmap_mut`](MappedRegion::into_mmap_mut)
    /// gives the map back. A write to a page that cannot be allocated (a hole
    /// of a file on a full file system) fails like a lost page; give the region
    /// its file ([`with_file`](MappedRegion::with_file)) and the error says
    /// `ENOSPC`, as `pwrite(2)` would.
    #[cfg(feature = "memmap2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "memmap2")))]
    pub fn from_mmap_mut(mut map: memmap2::MmapMut) -> MappedRegion {
        let (ptr, len) = (map.as_mut_ptr(), map.len());
        // SAFETY: as in from_mmap; MmapMut is writable.
        unsafe { MappedRegion::new(ptr, len, true, Some(Box::new(map))) }
    }

    /// # Safety
    /// As for the public constructors.
    #[track_caller]
    unsafe fn new(
        ptr: *mut u8,
        len: usize,
        writable: bool,
        owner: Option<Box<dyn Any + Send + Sync>>,
    ) -> MappedRegion {
        if len > 0 {
            check_range("region", ptr as usize, len);
        }
        MappedRegion {
            ptr,
            len,
            writable,
            file_offset: 0,
            file: None,
            owner,
        }
    }

    /// The same region, noting that its first byte is at `offset` in the mapped
    /// file (0 by default): errors then report file offsets (which saturate at
    /// `u64::MAX` if `offset` plus the region's length would pass it).
    pub fn with_file_offset(self, offset: u64) -> MappedRegion {
        MappedRegion {
            file_offset: offset,
            ..self
        }
    }

    /// The file offset of the region's first byte.
    pub fn file_offset(&self) -> u64 {
        self.file_offset
    }

    /// The same region, told which file it maps (from the file offset
    /// [`with_file_offset`](MappedRegion::with_file_offset) gives), so that it
    /// reads and reports what `pread(2)`/`pwrite(2)` would:
    /// - a read that the mapping could not page in (`BUS_ADRERR`) is done with
    ///   `pread(2)` instead: a hole of a file on a full file system reads as
    ///   zeros, past the end of a file that shrank the read is short (see
    ///   [`read_at`](MappedRegion::read_at) and
    ///   [`read_lossy_at`](MappedRegion::read_lossy_at)); only what `pread(2)`
    ///   cannot read either is lost (`EIO`). Poison (`BUS_MCEERR_*`) is never
    ///   read again.
    /// - a write into a hole (no block allocated) could only fail for want of
    ///   space: `ENOSPC` (see [`RegionFault::raw_os_error`]); anything else
    ///   stays `EIO`.
    ///
    /// The region opens the file again, read-only, through
    /// `/proc/self/fd/N`, for an open file description of its own (it moves
    /// that description's offset to look for holes; yours stays where it is).
    /// Only consulted after a fault.
    ///
    /// # Errors
    ///
    /// If the file cannot be opened again (no `/proc`, or no read permission on
    /// a file opened write-only).
    pub fn with_file(self, file: &impl AsFd) -> io::Result<MappedRegion> {
        let path = format!("/proc/self/fd/{}\0", file.as_fd().as_raw_fd());
        // SAFETY: a NUL-terminated path; the descriptor returned is ours.
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "mcsafe: cannot open the region's file again through {}: {e}",
                    &path[..path.len() - 1]
                ),
            ));
        }
        Ok(MappedRegion {
            // SAFETY: a fresh descriptor that nothing else owns.
            file: Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            ..self
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether [`write_at`](MappedRegion::write_at) may write.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The first byte. Never turn it into a reference: use mcsafe's functions.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Reads up to `buf.len()` bytes at `offset` (from the region's start), as
    /// `pread(2)` does: returns how many were read, fewer when the region ends,
    /// the region's file ends or a lost granule stops the read after some
    /// bytes, `Ok(0)` at or past the end.
    ///
    /// Where the region knows its file ([`with_file`](MappedRegion::with_file)),
    /// a granule the mapping could not page in (`BUS_ADRERR`) is read with
    /// `pread(2)` instead (never through the mapping again), and the read goes
    /// on through the mapping after it: a hole of a file on a full file system
    /// reads as zeros, as `pread(2)` reads it; a file that shrank under the
    /// mapping ends the read where `pread(2)` finds the end (a short count,
    /// `Ok(0)` from there on; the kernel shows the rest of the file's last
    /// page, past its end, as zeros, and a read that does not fault cannot
    /// tell them from the file's bytes); only what `pread(2)` cannot read
    /// either is lost. Poison (`BUS_MCEERR_*`) is never read again.
    ///
    /// # Errors
    ///
    /// When the read starts in a lost granule: an error carrying a
    /// [`RegionFault`] (see [the type's docs](MappedRegion#errors-and-the-lost-range)).
    ///
    /// # Example
    ///
    /// ```
    /// let memory = *b"0123456789";
    /// // SAFETY: `memory` outlives the region and is only read through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts(memory.as_ptr(), 10) };
    /// let mut buf = [0u8; 8];
    /// assert_eq!(region.read_at(6, &mut buf)?, 4); // short: the region ends
    /// assert_eq!(&buf[..4], b"6789");
    /// assert_eq!(region.read_at(10, &mut buf)?, 0); // at the end
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some((start, n)) = self.span(offset, buf.len()) else {
            return Ok(0);
        };
        // SAFETY: `start + n <= len`: inside the region, which its constructor
        // vouches for; `buf` is the caller's own memory.
        match unsafe { copy_mc(buf.as_mut_ptr(), self.ptr.add(start), n) } {
            Ok(()) => Ok(n),
            Err(fault) => match self.read_past(fault, &mut buf[..n], start) {
                ReadEnd::Done => Ok(n),
                ReadEnd::Ended(read) => Ok(read),
                ReadEnd::Lost(fault, _) if fault.copied() > 0 => Ok(fault.copied()),
                ReadEnd::Lost(fault, errno) => Err(self.error(fault, start, Side::Source, errno)),
            },
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof`, before reading anything, if the range does not lie in
    /// the region; `UnexpectedEof` too, after reading, if the region's file
    /// ends inside the range (it shrank under the mapping: see
    /// [`read_at`](MappedRegion::read_at) for what the region reads again with
    /// `pread(2)` where it knows its file). An error carrying a [`RegionFault`]
    /// if a granule of the range is lost; `buf` then holds the bytes before it
    /// (`RegionFault::fault().copied()` of them), and the lost granule was
    /// touched once.
    ///
    /// # Example
    ///
    /// ```
    /// let memory = *b"0123456789";
    /// // SAFETY: `memory` outlives the region and is only read through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts(memory.as_ptr(), 10) };
    /// let mut buf = [0u8; 4];
    /// region.read_exact_at(2, &mut buf)?;
    /// assert_eq!(&buf, b"2345");
    /// let past = region.read_exact_at(8, &mut buf).unwrap_err();
    /// assert_eq!(past.kind(), std::io::ErrorKind::UnexpectedEof);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = self.whole(offset, buf.len(), io::ErrorKind::UnexpectedEof)?;
        // SAFETY: as in read_at; the whole range lies in the region.
        match unsafe { copy_mc(buf.as_mut_ptr(), self.ptr.add(start), buf.len()) } {
            Ok(()) => Ok(()),
            Err(fault) => {
                let end = self.read_past(fault, buf, start);
                self.exact(end, start, buf.len())
            }
        }
    }

    /// Writes up to `buf.len()` bytes at `offset`, as `pwrite(2)` does: returns
    /// how many were written, fewer when the region ends or a lost granule stops
    /// the write after some bytes, `Ok(0)` at or past the end (the region does
    /// not grow).
    ///
    /// # Errors
    ///
    /// `PermissionDenied` on a read-only region. When the write starts in a lost
    /// granule: an error carrying a [`RegionFault`].
    ///
    /// # Example
    ///
    /// ```
    /// let mut memory = [0u8; 10];
    /// // SAFETY: `memory` outlives the region and is only used through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts_mut(memory.as_mut_ptr(), 10) };
    /// assert_eq!(region.write_at(7, b"abcdef")?, 3); // short: the region ends
    /// drop(region);
    /// assert_eq!(&memory[7..], b"abc");
    ///
    /// // SAFETY: as above.
    /// let read_only = unsafe { mcsafe::MappedRegion::from_raw_parts(memory.as_ptr(), 10) };
    /// let denied = read_only.write_at(0, b"x").unwrap_err();
    /// assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        self.check_writable()?;
        let Some((start, n)) = self.span(offset, buf.len()) else {
            return Ok(0);
        };
        // SAFETY: as in read_at, writable per the constructor.
        let result = unsafe { copy_mc(self.ptr.add(start), buf.as_ptr(), n) };
        self.short(result, n, start, Side::Destination)
    }

    /// Writes all of `buf` at `offset`, or fails.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` on a read-only region; `WriteZero`, before writing
    /// anything, if the range does not lie in the region. An error carrying a
    /// [`RegionFault`] if a granule of the range is lost; the bytes before it
    /// were written.
    ///
    /// # Example
    ///
    /// ```
    /// let mut memory = [0u8; 10];
    /// // SAFETY: `memory` outlives the region and is only used through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts_mut(memory.as_mut_ptr(), 10) };
    /// region.write_all_at(2, b"xyz")?;
    /// let full = region.write_all_at(8, b"xyz").unwrap_err();
    /// assert_eq!(full.kind(), std::io::ErrorKind::WriteZero);
    /// drop(region);
    /// assert_eq!(&memory[..6], b"\0\0xyz\0");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_all_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check_writable()?;
        let start = self.whole(offset, buf.len(), io::ErrorKind::WriteZero)?;
        // SAFETY: as in write_at; the whole range lies in the region.
        let result = unsafe { copy_mc(self.ptr.add(start), buf.as_ptr(), buf.len()) };
        result.map_err(|fault| self.error(fault, start, Side::Destination, None))
    }

    /// The CRC32C of `len` bytes at `offset`, read in place, continuing `crc`
    /// (0 to start; a header's CRC to continue over its payload), as
    /// [`crc32c_mc`](crate::crc32c_mc) computes it: to verify a block straight
    /// from the mapping.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof`, before reading anything, if the range does not lie in
    /// the region. An error carrying a [`RegionFault`] if a granule of the range
    /// is lost. (For the CRC of the bytes before it, call `crc32c_mc`.)
    ///
    /// # Example
    ///
    /// ```
    /// let block = *b"--123456789--";
    /// // SAFETY: `block` outlives the region and is only read through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts(block.as_ptr(), 13) };
    /// assert_eq!(region.crc32c_at(0, 2, 9)?, 0xe306_9283);
    /// // In two pieces, the second continuing the first:
    /// let head = region.crc32c_at(0, 2, 4)?;
    /// assert_eq!(region.crc32c_at(head, 6, 5)?, 0xe306_9283);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn crc32c_at(&self, crc: u32, offset: u64, len: usize) -> io::Result<u32> {
        let start = self.whole(offset, len, io::ErrorKind::UnexpectedEof)?;
        // SAFETY: the range lies in the region.
        let result = unsafe {
            crate::crc32c::crc32c_mc_or(crc, self.ptr.add(start), len, |e| {
                self.crc32c_past(e, start, len)
            })
        };
        result.map_or_else(|past| past, Ok)
    }

    /// Reads exactly `buf.len()` bytes at `offset` into `buf` and returns their
    /// CRC32C, continuing `crc`, in one pass over the mapping
    /// ([`copy_crc32c_mc`](crate::copy_crc32c_mc)): [`read_exact_at`] and
    /// [`crc32c`](crate::crc32c) over `buf` in about the time of the slower of
    /// the two alone. For a block read out of a mapping and verified.
    ///
    /// [`read_exact_at`]: MappedRegion::read_exact_at
    ///
    /// # Errors
    ///
    /// As for [`read_exact_at`]: `UnexpectedEof` before reading anything if the
    /// range does not lie in the region; an error carrying a [`RegionFault`] if
    /// a granule of the range is lost, with `buf` holding the bytes before it.
    ///
    /// # Example
    ///
    /// ```
    /// let block = *b"--123456789--";
    /// // SAFETY: `block` outlives the region and is only read through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts(block.as_ptr(), 13) };
    /// let mut buf = [0u8; 9];
    /// assert_eq!(region.read_exact_crc32c_at(0, 2, &mut buf)?, 0xe306_9283);
    /// assert_eq!(&buf, b"123456789");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_exact_crc32c_at(&self, crc: u32, offset: u64, buf: &mut [u8]) -> io::Result<u32> {
        let start = self.whole(offset, buf.len(), io::ErrorKind::UnexpectedEof)?;
        // SAFETY: the range lies in the region; `buf` is the caller's own
        // memory, distinct from the region (a `&mut` to the region's memory
        // would break the constructor's contract).
        let result =
            unsafe { copy_crc32c_mc(crc, buf.as_mut_ptr(), self.ptr.add(start), buf.len()) };
        result.or_else(|e| {
            // The bytes before the lost granule are in `buf`: read on, then
            // checksum the buffer, which is ordinary memory.
            let end = self.read_past(e.fault(), buf, start);
            self.exact(end, start, buf.len())
                .map(|()| crate::crc32c(crc, buf))
        })
    }

    /// A cursor at offset 0 that implements [`Read`](std::io::Read),
    /// [`Write`](std::io::Write) and [`Seek`](std::io::Seek).
    ///
    /// # Example
    ///
    /// ```
    /// use std::io::{Read, Seek, SeekFrom, Write};
    ///
    /// let mut memory = [0u8; 16];
    /// // SAFETY: `memory` outlives the region and is only used through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts_mut(memory.as_mut_ptr(), 16) };
    /// let mut cursor = region.cursor();
    /// cursor.write_all(b"header")?;
    /// cursor.seek(SeekFrom::End(-4))?;
    /// cursor.write_all(b"tail")?;
    /// cursor.rewind()?;
    /// let mut all = Vec::new();
    /// cursor.read_to_end(&mut all)?;
    /// assert_eq!(&all, b"header\0\0\0\0\0\0tail");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cursor(&self) -> RegionCursor<'_> {
        RegionCursor::new(self)
    }

    /// Reads `buf.len()` bytes at `offset`, going on past lost granules: `buf`
    /// gets the region's bytes, and zeros where they are lost. Returns what it
    /// read ([`RegionRead`]): the lost ranges, empty when nothing was lost, in
    /// the buffer, the region and the file, with the errno ([`RegionLost`]).
    /// See [`copy_mc_lossy`] for the contract (one signal per lost granule,
    /// never a retry) and for how the ranges are sorted and merged.
    ///
    /// A loss is called a loss only when it is one. Where the region knows its
    /// file ([`with_file`](MappedRegion::with_file)), a range the mapping could
    /// not page in (`BUS_ADRERR`) is read again with `pread(2)` before it is
    /// reported, as [`read_at`](MappedRegion::read_at) does: a hole of a file
    /// on a full file system comes back as zeros and is not lost (it is listed
    /// in [`RegionRead::reread`]); past the end of the file the read is short
    /// ([`RegionRead::bytes_read`], [`RegionRead::file_end`]: the file shrank
    /// under the mapping), not lost; a range `pread(2)` cannot read either
    /// (`EIO`) stays lost. A lost granule is never touched through the mapping
    /// again, and poison (`BUS_MCEERR_*`) is never read again. Without the file,
    /// all of these are lost ranges with `EIO`.
    ///
    /// To go on reading piece by piece past a lost huge page, resume at the
    /// last range's [`skip_to`](RegionLost::skip_to).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof`, before reading anything, if the range does not lie in
    /// the region. A lost page is never an error, nor is the end of the file.
    ///
    /// # Example
    ///
    /// A file of four pages mapped from its page 1, then cut after its page 2:
    /// the region's last two pages have no file behind them.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    ///
    /// # let file = tempfile_of(4 * 4096);
    /// # use std::os::unix::fs::FileExt;
    /// file.write_all_at(&[7u8; 4 * 4096], 0)?;
    /// // SAFETY: a fresh shared mapping of our own file, from file offset 4096.
    /// let map = unsafe {
    ///     libc::mmap(std::ptr::null_mut(), 3 * 4096, libc::PROT_READ, libc::MAP_SHARED,
    ///                file.as_raw_fd(), 4096)
    /// };
    /// assert_ne!(map, libc::MAP_FAILED);
    /// // SAFETY: the mapping stays for the rest of the program, read only through it.
    /// let region = unsafe { mcsafe::MappedRegion::from_raw_parts(map.cast(), 3 * 4096) }
    ///     .with_file_offset(4096)
    ///     .with_file(&file)?;
    /// file.set_len(2 * 4096)?;
    ///
    /// let mut buf = vec![0xffu8; 2 * 4096];
    /// let read = region.read_lossy_at(2048, &mut buf)?;
    /// assert_eq!(read.file_end(), Some(2 * 4096)); // the file shrank under the region:
    /// assert_eq!(read.bytes_read(), 2048); // a short read, as pread(2)'s,
    /// assert!(read.lost().is_empty()); // not damage
    /// assert!(buf[..2048].iter().all(|&b| b == 7) && buf[2048..].iter().all(|&b| b == 0));
    ///
    /// // Without its file, the region cannot tell: the pages are lost.
    /// // SAFETY: as above.
    /// let blind = unsafe { mcsafe::MappedRegion::from_raw_parts(map.cast(), 3 * 4096) }
    ///     .with_file_offset(4096);
    /// let read = blind.read_lossy_at(2048, &mut buf)?;
    /// let [lost] = read.lost() else { panic!("one lost range: {read}") };
    /// assert_eq!(lost.range(), 2048..8192); // in `buf`
    /// assert_eq!(lost.in_region(), 4096..10240);
    /// assert_eq!(lost.in_file(), 8192..14336);
    /// assert_eq!(lost.raw_os_error(), libc::EIO);
    /// # fn tempfile_of(len: u64) -> std::fs::File {
    /// #     let path = std::env::temp_dir().join(format!("mcsafe-doc-lossy-{}", std::process::id()));
    /// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true)
    /// #         .truncate(true).open(&path).unwrap();
    /// #     std::fs::remove_file(&path).unwrap();
    /// #     f.set_len(len).unwrap();
    /// #     f
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_lossy_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<RegionRead> {
        let start = self.whole(offset, buf.len(), io::ErrorKind::UnexpectedEof)?;
        // SAFETY: the range lies in the region (its constructor vouches for
        // it); `buf` is the caller's own memory. Empty ranges touch nothing.
        let copy =
            unsafe { copy_mc_lossy(buf.as_mut_ptr(), self.ptr.wrapping_add(start), buf.len()) };
        if copy.is_complete() {
            return Ok(RegionRead {
                bytes_read: buf.len(),
                ..RegionRead::default()
            });
        }
        Ok(self.lossy_read_past(copy.into_lost(), start, buf))
    }

    /// Writes all of `buf` at `offset`, going on past lost granules of the
    /// region (they cannot be written: skipped). Returns the lost ranges,
    /// empty when everything was written; see
    /// [`read_lossy_at`](MappedRegion::read_lossy_at). A page that cannot be
    /// allocated (a hole of a file on a full file system) is such a range, with
    /// `ENOSPC` where the region knows its file ([`with_file`](MappedRegion::with_file)).
    ///
    /// # Errors
    ///
    /// `PermissionDenied` on a read-only region; `WriteZero`, before writing
    /// anything, if the range does not lie in the region. A lost page is never
    /// an error.
    pub fn write_lossy_at(&self, offset: u64, buf: &[u8]) -> io::Result<Vec<RegionLost>> {
        self.check_writable()?;
        let start = self.whole(offset, buf.len(), io::ErrorKind::WriteZero)?;
        // SAFETY: as in read_lossy_at, writable per the constructor.
        let copy = unsafe { copy_mc_lossy(self.ptr.wrapping_add(start), buf.as_ptr(), buf.len()) };
        Ok(self.lost_ranges(copy.into_lost(), start, Side::Destination))
    }

    /// Writes the region's dirty pages back to its file and waits
    /// (`msync(2)` with `MS_SYNC`, as `memmap2::MmapMut::flush` does): after
    /// `Ok`, what was written through the region is on the device. A read-only
    /// region has nothing to write back: `Ok`.
    ///
    /// # Errors
    ///
    /// The error of `msync(2)`: `EIO` when writing back failed (a bad block, a
    /// page poisoned in the page cache), `ENOMEM` if the memory is not mapped
    /// any more.
    pub fn flush(&self) -> io::Result<()> {
        self.flush_range(0, self.len)
    }

    /// [`flush`](MappedRegion::flush) for the pages holding `len` bytes at
    /// `offset`.
    ///
    /// # Errors
    ///
    /// `InvalidInput`, before anything, if the range does not lie in the
    /// region; then as for `flush`.
    pub fn flush_range(&self, offset: u64, len: usize) -> io::Result<()> {
        let start = self.whole(offset, len, io::ErrorKind::InvalidInput)?;
        if !self.writable || len == 0 {
            return Ok(());
        }
        let first = self.ptr as usize + start;
        let page_start = first & !(Arch::page_size() - 1);
        // SAFETY: msync reads no user memory; the pages hold the range, which
        // lies in the region's mapping.
        let synced = unsafe {
            libc::msync(
                page_start as *mut _,
                first + len - page_start,
                libc::MS_SYNC,
            )
        };
        if synced != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The `memmap2::Mmap` a region made by [`from_mmap`](MappedRegion::from_mmap)
    /// owns, or the region back if it owns none (made from raw parts, or from
    /// an `MmapMut`).
    #[cfg(feature = "memmap2")]
    #[doc(alias = "into_inner")]
    pub fn into_mmap(self) -> Result<memmap2::Mmap, MappedRegion> {
        self.into_owner()
    }

    /// The `memmap2::MmapMut` a region made by
    /// [`from_mmap_mut`](MappedRegion::from_mmap_mut) owns, or the region back
    /// if it owns none. For what the region does not offer (`flush_async`,
    /// `make_read_only`), then a new region if needed.
    ///
    /// ```
    /// # #[cfg(feature = "memmap2")] {
    /// let map = memmap2::MmapMut::map_anon(4096).unwrap();
    /// let region = mcsafe::MappedRegion::from_mmap_mut(map);
    /// region.write_all_at(0, b"kept").unwrap();
    /// region.flush().unwrap();
    /// let map = region.into_mmap_mut().unwrap();
    /// assert_eq!(&map[..4], b"kept");
    /// # }
    /// ```
    #[cfg(feature = "memmap2")]
    #[doc(alias = "into_inner")]
    pub fn into_mmap_mut(self) -> Result<memmap2::MmapMut, MappedRegion> {
        self.into_owner()
    }

    #[cfg(feature = "memmap2")]
    fn into_owner<T: Any>(mut self) -> Result<T, MappedRegion> {
        match self.owner.take().map(|owner| owner.downcast::<T>()) {
            Some(Ok(map)) => Ok(*map),
            Some(Err(other)) => Err(MappedRegion {
                owner: Some(other),
                ..self
            }),
            None => Err(self),
        }
    }

    /// The part of `offset..offset + want` inside the region, as (start, len),
    /// or `None` if it is empty.
    fn span(&self, offset: u64, want: usize) -> Option<(usize, usize)> {
        let start = usize::try_from(offset).ok().filter(|&s| s < self.len)?;
        let n = want.min(self.len - start);
        (n > 0).then_some((start, n))
    }

    /// The start of `offset..offset + len` if all of it lies in the region.
    #[inline]
    fn whole(&self, offset: u64, len: usize, kind: io::ErrorKind) -> io::Result<usize> {
        match usize::try_from(offset) {
            Ok(s) if s.checked_add(len).is_some_and(|end| end <= self.len) => Ok(s),
            _ => Err(self.does_not_fit(offset, len, kind)),
        }
    }

    #[cold]
    #[inline(never)]
    fn does_not_fit(&self, offset: u64, len: usize, kind: io::ErrorKind) -> io::Error {
        io::Error::new(
            kind,
            format!(
                "mcsafe: {len} bytes at offset {offset} do not fit in a region of {} bytes",
                self.len
            ),
        )
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "mcsafe: write to a read-only MappedRegion",
            ))
        }
    }

    /// `pread`/`pwrite` semantics: a fault after some bytes is a short count.
    fn short(
        &self,
        result: Result<(), Fault>,
        n: usize,
        start: usize,
        region_side: Side,
    ) -> io::Result<usize> {
        match result {
            Ok(()) => Ok(n),
            Err(fault) if fault.copied() > 0 => Ok(fault.copied()),
            Err(fault) => Err(self.error(fault, start, region_side, None)),
        }
    }

    /// Goes on with a read of `buf` at region offset `start` through the
    /// mapping after `fault` stopped it: each granule lost with `BUS_ADRERR`
    /// is read again with `pread(2)` where the region knows its file
    /// (`reread.rs`), and the mapping takes over again after it.
    #[cold]
    #[inline(never)]
    fn read_past(&self, fault: Fault, buf: &mut [u8], start: usize) -> ReadEnd {
        let (dst, len) = (buf.as_mut_ptr(), buf.len());
        let src = self.ptr.wrapping_add(start);
        self.read_on(
            start,
            len,
            fault,
            // SAFETY: from < len: inside the caller's buffer and the region's
            // range, as for the first pass.
            &mut |from| unsafe { copy_mc(dst.add(from), src.add(from), len - from) },
            &mut |range, file, at| {
                // SAFETY: `range` lies in `buf`, which nothing else uses
                // meanwhile (both closures hold only its pointer).
                let part =
                    unsafe { std::slice::from_raw_parts_mut(dst.add(range.start), range.len()) };
                reread::pread_all(file, part, at)
            },
        )
    }

    /// The rest of `crc32c_at` after the checksum stopped with `e`: as
    /// [`read_past`](MappedRegion::read_past), folding the bytes read again
    /// into the CRC.
    #[cold]
    #[inline(never)]
    fn crc32c_past(&self, e: CrcFault, start: usize, len: usize) -> io::Result<u32> {
        let crc = std::cell::Cell::new(e.crc());
        let src = self.ptr.wrapping_add(start);
        let end = self.read_on(
            start,
            len,
            e.fault(),
            // SAFETY: from < len: inside the region's range.
            &mut |from| match unsafe { crc32c_mc(crc.get(), src.add(from), len - from) } {
                Ok(c) => {
                    crc.set(c);
                    Ok(())
                }
                Err(e) => {
                    crc.set(e.crc());
                    Err(e.fault())
                }
            },
            &mut |range, file, at| {
                let (read, c) = reread::pread_crc32c(file, range.len(), at, crc.get());
                crc.set(c);
                read
            },
        );
        self.exact(end, start, len).map(|()| crc.get())
    }

    /// The loop behind [`read_past`](MappedRegion::read_past): the access is
    /// `len` bytes at region offset `start`; its pass through the mapping
    /// stopped with `fault` (counted from the access's start). `pass(from)`
    /// runs the mapping over access offsets `from..len` and returns the fault
    /// that stops it (counted from `from`); `reread(range, file, at)` reads
    /// access offsets `range` from file offset `at` instead.
    fn read_on(
        &self,
        start: usize,
        len: usize,
        mut fault: Fault,
        pass: &mut dyn FnMut(usize) -> Result<(), Fault>,
        reread: &mut dyn FnMut(Range<usize>, &OwnedFd, u64) -> Reread,
    ) -> ReadEnd {
        let mut from = 0;
        loop {
            let at = from + fault.copied();
            let here = fault.with_copied(at);
            let file = match &self.file {
                Some(file)
                    if fault.side() == Side::Source && fault.kind() == FaultKind::AddressError =>
                {
                    file
                }
                _ => return ReadEnd::Lost(here, None),
            };
            // The rest of the lost granule inside the access.
            let access = self.ptr as usize + start;
            let granule_end =
                (fault.addr() & !(fault.granule() - 1)).saturating_add(fault.granule());
            let end = granule_end.saturating_sub(access).min(len);
            if end <= at {
                return ReadEnd::Lost(here, None);
            }
            match reread(at..end, file, self.file_at(start + at)) {
                Reread::Whole => {}
                Reread::Ended(n) => return ReadEnd::Ended(at + n),
                Reread::Failed(_) => return ReadEnd::Lost(here, Some(libc::EIO)),
            }
            if end == len {
                return ReadEnd::Done;
            }
            from = end;
            match pass(from) {
                Ok(()) => return ReadEnd::Done,
                Err(next) => fault = next,
            }
        }
    }

    /// An exact read's result: all of it, or an error.
    fn exact(&self, end: ReadEnd, start: usize, len: usize) -> io::Result<()> {
        match end {
            ReadEnd::Done => Ok(()),
            ReadEnd::Ended(read) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "mcsafe: the region's file ends before file offset {} (it shrank under \
                     the mapping, or the region maps past its end): {read} of the {len} bytes at \
                     file offset {} could be read",
                    self.file_at(start + read),
                    self.file_at(start)
                ),
            )),
            ReadEnd::Lost(fault, errno) => Err(self.error(fault, start, Side::Source, errno)),
        }
    }

    /// The file offset of region offset `at` (saturating, as the reports).
    fn file_at(&self, at: usize) -> u64 {
        self.file_offset.saturating_add(at as u64)
    }

    /// The rest of `read_lossy_at` after the lossy copy lost `lost`: each
    /// range lost with `BUS_ADRERR` read again where the region knows its
    /// file; what lies past the file's end cut off.
    #[cold]
    #[inline(never)]
    fn lossy_read_past(&self, lost: Vec<LostRange>, start: usize, buf: &mut [u8]) -> RegionRead {
        let mut read = RegionRead {
            bytes_read: buf.len(),
            ..RegionRead::default()
        };
        let mut kept = Vec::new();
        for l in lost {
            let file = match &self.file {
                Some(file) if l.side() == Side::Source && l.kind() == FaultKind::AddressError => {
                    file
                }
                _ => {
                    kept.push((l, None));
                    continue;
                }
            };
            let range = l.range();
            let at = self.file_at(start + range.start);
            let pieces = |end| {
                reread::reread_pieces(file, range.start..end, at, start as u64, self.file_offset)
            };
            match reread::pread_all(file, &mut buf[range.clone()], at) {
                Reread::Whole => read.reread.extend(pieces(range.end)),
                Reread::Ended(n) => {
                    read.reread.extend(pieces(range.start + n));
                    read.bytes_read = range.start + n;
                    read.file_end = Some(reread::file_len(file).unwrap_or(at + n as u64));
                    break;
                }
                Reread::Failed(_) => kept.push((l, Some(libc::EIO))),
            }
        }
        // Nothing past the end of the file is lost, or read.
        let end = read.bytes_read;
        read.lost = kept
            .into_iter()
            .filter_map(|(l, errno)| {
                Some(self.region_lost(l.clipped_to(end)?, start, Side::Source, errno))
            })
            .collect();
        read.reread.retain_mut(|r| {
            r.range.end = r.range.end.min(end);
            !r.range.is_empty()
        });
        buf[end..].fill(0);
        read
    }

    /// The error of a fault in an access that started at region offset
    /// `start`, with `errno` if it is known already.
    #[cold]
    #[inline(never)]
    fn error(
        &self,
        fault: Fault,
        start: usize,
        region_side: Side,
        errno: Option<i32>,
    ) -> io::Error {
        if fault.side() != region_side {
            return fault.into();
        }
        let base = self.ptr as usize;
        let lost_begin = (fault.addr() & !(fault.granule() - 1)).max(base) - base;
        let lost_end = (fault.addr() | (fault.granule() - 1))
            .saturating_add(1)
            .min(base + self.len)
            - base;
        let lost = lost_begin as u64..lost_end.max(lost_begin) as u64;
        RegionFault {
            fault,
            at: (start + fault.copied()) as u64,
            errno: errno.unwrap_or_else(|| self.errno_at(fault.kind(), lost.start)),
            lost,
            file_offset: self.file_offset,
        }
        .into()
    }

    /// The lost ranges of a lossy access that started at region offset
    /// `start`, the region being the copy's `region_side`.
    fn lost_ranges(
        &self,
        lost: Vec<LostRange>,
        start: usize,
        region_side: Side,
    ) -> Vec<RegionLost> {
        lost.into_iter()
            .map(|l| self.region_lost(l, start, region_side, None))
            .collect()
    }

    /// One lost range of a lossy access that started at region offset
    /// `start`, with `errno` if it is known already.
    fn region_lost(
        &self,
        l: LostRange,
        start: usize,
        region_side: Side,
        errno: Option<i32>,
    ) -> RegionLost {
        let page = Arch::page_size();
        let end = (start + l.range().end) as u64;
        // The granule holding the range's last byte may go on past the
        // access (a huge page); a buffer-side loss ends where it ends.
        let granule_end = if l.side() == region_side {
            let last = self.ptr as usize + start + l.range().end - 1;
            ((last | (l.granule().max(page) - 1)) + 1 - self.ptr as usize).min(self.len) as u64
        } else {
            end
        };
        let at = (start + l.range().start) as u64;
        RegionLost {
            errno: if l.side() == region_side {
                errno.unwrap_or_else(|| self.errno_at(l.kind(), at))
            } else {
                libc::EFAULT
            },
            lost: l,
            access: start as u64,
            file_offset: self.file_offset,
            skip_to: granule_end.max(end),
        }
    }

    /// The errno for a granule of `kind` lost at region offset `at`.
    fn errno_at(&self, kind: FaultKind, at: u64) -> i32 {
        fault::errno_for(
            kind,
            self.file.as_ref(),
            self.file_offset.saturating_add(at),
        )
    }
}

/// How a read that met a lost granule ended, after the granules the file
/// could give were read again.
enum ReadEnd {
    /// Every byte was read.
    Done,
    /// The file ends after this many bytes of the access.
    Ended(usize),
    /// A lost granule stopped it: the fault (its `copied` counted from the
    /// access's start), and the errno if it is known already.
    Lost(Fault, Option<i32>),
}
