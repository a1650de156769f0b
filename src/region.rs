//! [`MappedRegion`]: safe positional I/O over memory that may fault (a mapped
//! file, persistent memory, guest memory), with errors that say which range of
//! the file was lost.

use core::fmt;
use std::any::Any;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;

use crate::copy::check_range;
use crate::{Fault, Side, copy_crc32c_mc, copy_mc};

/// A range of memory that may fault, read and written only through mcsafe.
///
/// Built unsafely from a pointer and a length (the caller vouches that the
/// mapping lives as long as the region and is not accessed through Rust
/// references meanwhile), or, with the `memmap2` feature, safely from a
/// `memmap2::Mmap` or `MmapMut`, which the region then owns. From then on every
/// access is safe: [`read_at`], [`write_at`], [`read_exact_at`],
/// [`write_all_at`], [`crc32c_at`], [`read_exact_crc32c_at`], and a [`cursor`] that implements
/// [`Read`], [`Write`] and [`Seek`]. A lost page ends an access with an error
/// instead of killing the process.
///
/// # Errors and the lost range
///
/// Reads and writes behave as `pread(2)`/`pwrite(2)` on a file whose page went
/// bad: an access that reaches a lost granule after moving some bytes returns
/// those bytes (`Ok(n)`, a short count); an access that starts in it fails. The
/// error of a fault in the region is an [`io::Error`] that carries a
/// [`RegionFault`]: the [`Fault`], the file offset where the access stopped and
/// the file range that was lost, and [`RegionFault::raw_os_error`] is `EIO`, what
/// `pread(2)` reports for a poisoned page. A fault in the caller's own buffer
/// (which a `&[u8]` should never allow) is an `io::Error` carrying the bare
/// `Fault`, whose `raw_os_error()` is `EFAULT` as for a bad buffer.
///
/// Both keep the payload, as `From<Fault> for io::Error` does: an `io::Error`
/// holds a raw OS code *or* a payload, never both, so `io::Error::raw_os_error()`
/// is `None` and [`io::Error::kind`] is [`io::ErrorKind::Other`]. Use
/// [`RegionFault::of`] to get the details, and its `raw_os_error()` for the errno.
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
/// // Any error from a lost page carries the file offsets:
/// # fn report(err: std::io::Error) {
/// if let Some(lost) = mcsafe::RegionFault::of(&err) {
///     eprintln!("lost file bytes {:?} (errno {})", lost.lost(), lost.raw_os_error());
/// }
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MappedRegion {
    ptr: *mut u8,
    len: usize,
    writable: bool,
    file_offset: u64,
    _owner: Option<Box<dyn Any + Send + Sync>>,
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
    /// Safe: creating the `Mmap` was the unsafe step (the file must not be
    /// changed under it by this process's Rust code), and a truncated or
    /// poisoned page is exactly what the region survives.
    #[cfg(feature = "memmap2")]
    pub fn from_mmap(map: memmap2::Mmap) -> MappedRegion {
        let (ptr, len) = (map.as_ptr().cast_mut(), map.len());
        // SAFETY: the region owns the mapping, so it stays mapped as long as the
        // region lives; the region never forms a reference to it.
        unsafe { MappedRegion::new(ptr, len, false, Some(Box::new(map))) }
    }

    /// A writable region over a `memmap2` mapping, which the region owns.
    ///
    /// Safe for the reasons given at [`from_mmap`](MappedRegion::from_mmap).
    /// Writes reach the file as writes to the mapping do; to make them durable,
    /// flush the mapping (`msync(2)`) as you would without mcsafe.
    #[cfg(feature = "memmap2")]
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
            _owner: owner,
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
    /// `pread(2)` does: returns how many were read, fewer when the region ends
    /// or a lost granule stops the read after some bytes, `Ok(0)` at or past the
    /// end.
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
        let result = unsafe { copy_mc(buf.as_mut_ptr(), self.ptr.add(start), n) };
        self.short(result, n, start, Side::Source)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof`, before reading anything, if the range does not lie in
    /// the region. An error carrying a [`RegionFault`] if a granule of the range
    /// is lost; `buf` then holds the bytes before it
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
        let result = unsafe { copy_mc(buf.as_mut_ptr(), self.ptr.add(start), buf.len()) };
        result.map_err(|fault| self.error(fault, start, Side::Source))
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
        result.map_err(|fault| self.error(fault, start, Side::Destination))
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
        unsafe {
            crate::crc32c::crc32c_mc_or(crc, self.ptr.add(start), len, |e| {
                self.error(e.fault(), start, Side::Source)
            })
        }
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
        result.map_err(|e| self.error(e.fault(), start, Side::Source))
    }

    /// A cursor at offset 0 that implements [`Read`], [`Write`] and [`Seek`].
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
        RegionCursor {
            region: self,
            pos: 0,
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
            Err(fault) => Err(self.error(fault, start, region_side)),
        }
    }

    /// The error of a fault in an access that started at region offset `start`.
    #[cold]
    #[inline(never)]
    fn error(&self, fault: Fault, start: usize, region_side: Side) -> io::Error {
        if fault.side() != region_side {
            return fault.into();
        }
        let base = self.ptr as usize;
        let lost_begin = (fault.addr() & !(fault.granule() - 1)).max(base);
        let lost_end = (fault.addr() | (fault.granule() - 1))
            .saturating_add(1)
            .min(base + self.len);
        // Saturating: `with_file_offset` takes any u64, and an error must not panic.
        let file = |at: usize| self.file_offset.saturating_add((at - base) as u64);
        RegionFault {
            fault,
            offset: self
                .file_offset
                .saturating_add((start + fault.copied()) as u64),
            lost: file(lost_begin)..file(lost_end.max(lost_begin)),
        }
        .into()
    }
}

/// A fault in a [`MappedRegion`]: the [`Fault`] and where in the file it is.
///
/// Carried by the [`io::Error`]s of a region's accesses; [`RegionFault::of`] gets
/// it back. See [`MappedRegion`] for why the `io::Error` holds this payload
/// rather than a raw `EIO`.
///
/// # Example
///
/// A file of three pages, mapped whole, then cut to one page: the mapping's
/// last two pages have no file behind them.
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// let file = tempfile_of(3 * 4096);
/// // SAFETY: a fresh shared mapping of our own file.
/// let map = unsafe {
///     libc::mmap(std::ptr::null_mut(), 3 * 4096, libc::PROT_READ, libc::MAP_SHARED,
///                file.as_raw_fd(), 0)
/// };
/// assert_ne!(map, libc::MAP_FAILED);
/// file.set_len(4096)?;
/// // SAFETY: the mapping stays for the rest of the program, read only through it.
/// let region = unsafe { mcsafe::MappedRegion::from_raw_parts(map.cast(), 3 * 4096) };
///
/// let mut buf = vec![0u8; 8192];
/// assert_eq!(region.read_at(0, &mut buf)?, 4096); // short, like pread(2)
/// let err = region.read_at(4096 + 10, &mut buf).unwrap_err();
/// let lost = mcsafe::RegionFault::of(&err).unwrap();
/// assert_eq!(lost.offset(), 4096 + 10);
/// assert_eq!(lost.lost(), 4096..8192);
/// assert_eq!(lost.raw_os_error(), libc::EIO);
/// assert_eq!(lost.fault().kind(), mcsafe::FaultKind::AddressError);
/// # fn tempfile_of(len: u64) -> std::fs::File {
/// #     let path = std::env::temp_dir().join(format!("mcsafe-doc-{}", std::process::id()));
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true)
/// #         .truncate(true).open(&path).unwrap();
/// #     std::fs::remove_file(&path).unwrap();
/// #     f.set_len(len).unwrap();
/// #     f
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionFault {
    fault: Fault,
    offset: u64,
    lost: Range<u64>,
}

impl RegionFault {
    /// The fault; its [`copied`](Fault::copied) counts from the start of the
    /// access that failed, not from the region's.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// The file offset at which the access stopped: its first byte in the lost
    /// granule (or its first byte, when the granule begins before it).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The file offsets of the lost granule, clipped to the region: nothing in
    /// this range can be read or written through this mapping.
    pub fn lost(&self) -> Range<u64> {
        self.lost.clone()
    }

    /// `EIO`, what `pread(2)` and `pwrite(2)` report for a poisoned page.
    pub fn raw_os_error(&self) -> i32 {
        libc::EIO
    }

    /// The `RegionFault` inside an `io::Error` from a region, if it holds one.
    pub fn of(err: &io::Error) -> Option<&RegionFault> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for RegionFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input/output error at file offset {}: file bytes {}..{} are lost ({})",
            self.offset, self.lost.start, self.lost.end, self.fault
        )
    }
}

impl std::error::Error for RegionFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.fault)
    }
}

/// Converts to an [`io::Error`] of kind `Other` that carries the `RegionFault`.
impl From<RegionFault> for io::Error {
    fn from(fault: RegionFault) -> io::Error {
        io::Error::other(fault)
    }
}

/// A position in a [`MappedRegion`], with [`Read`], [`Write`] and [`Seek`].
///
/// Reads and writes go through [`MappedRegion::read_at`] and
/// [`MappedRegion::write_at`] at the position and advance it by what they moved:
/// a lost granule gives a short count, then an error on the next call. At or
/// past the end, reads return 0 (end of file) and writes return 0 (so
/// `write_all` fails with `WriteZero`): the region does not grow. Seeking past
/// the end is allowed, as for files; before the start is `InvalidInput`.
#[derive(Debug)]
pub struct RegionCursor<'a> {
    region: &'a MappedRegion,
    pos: u64,
}

impl RegionCursor<'_> {
    /// The position, from the region's start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to `pos`, from the region's start.
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The region.
    pub fn region(&self) -> &MappedRegion {
        self.region
    }
}

impl Read for RegionCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.region.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for RegionCursor<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.region.write_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Nothing to do: writes go straight to the mapping. Durability is the
    /// mapping's business (`msync(2)`, `memmap2::MmapMut::flush`).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for RegionCursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => (self.region.len as u64).checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mcsafe: seek to {to:?} lands before the start of the region"),
            )
        })?;
        Ok(self.pos)
    }
}
