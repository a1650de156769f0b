//! What a region reports about lost memory: [`RegionFault`] (an access that
//! stopped) and [`RegionLost`] (a range a lossy access went past), in region
//! and file offsets, with the errno `pread(2)`/`pwrite(2)` would give.

use core::fmt;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::{Fault, FaultKind, LostRange, Side};

#[cfg(doc)]
use super::MappedRegion;

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
    pub(super) fault: Fault,
    /// Where the access stopped, and the lost granule: region offsets.
    pub(super) at: u64,
    pub(super) lost: Range<u64>,
    /// The region's first byte in the file.
    pub(super) file_offset: u64,
    pub(super) errno: i32,
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
        file_at(self.file_offset, self.at)
    }

    /// [`offset`](RegionFault::offset) as a region offset, what
    /// [`MappedRegion::read_at`] and the other accessors take.
    pub fn offset_in_region(&self) -> u64 {
        self.at
    }

    /// The file offsets of the lost granule, clipped to the region: nothing in
    /// this range can be read or written through this mapping.
    pub fn lost(&self) -> Range<u64> {
        file_at(self.file_offset, self.lost.start)..file_at(self.file_offset, self.lost.end)
    }

    /// [`lost`](RegionFault::lost) as region offsets: to go on past the lost
    /// granule, read again from `lost_in_region().end`.
    pub fn lost_in_region(&self) -> Range<u64> {
        self.lost.clone()
    }

    /// The `errno` that `pread(2)` or `pwrite(2)` would have failed with, as
    /// far as the region can tell (see [`MappedRegion::with_file`]):
    /// - `EIO` for poison (`BUS_MCEERR_AR`) and a failed page-in
    ///   (`BUS_OBJERR`), and for a write past the end of the file (truncated
    ///   under the mapping; `pwrite(2)` would grow the file, which a mapping
    ///   cannot do);
    /// - `ENOSPC` for a write into a hole the file system had no room to
    ///   allocate (a file on a full file system): what `pwrite(2)` says;
    /// - for a read, where the region knows its file
    ///   ([`MappedRegion::with_file`]), a `BUS_ADRERR` granule is read again
    ///   with `pread(2)` first: a hole reads as zeros and the end of the file
    ///   gives a short read, neither an error; what `pread(2)` cannot read
    ///   either is `EIO`;
    /// - `EIO` for any `BUS_ADRERR` when the region was not given its file:
    ///   without it, a hole that cannot be allocated, a truncation and a
    ///   failed read look the same.
    pub fn raw_os_error(&self) -> i32 {
        self.errno
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
            "{} at file offset {}: file bytes {}..{} are lost ({})",
            errno_words(self.errno),
            self.offset(),
            self.lost().start,
            self.lost().end,
            self.fault
        )
    }
}

impl std::error::Error for RegionFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.fault)
    }
}

/// Converts to an [`io::Error`] that carries the `RegionFault`, of kind
/// [`StorageFull`](io::ErrorKind::StorageFull) for `ENOSPC` and
/// [`Other`](io::ErrorKind::Other) otherwise (std has no kind of its own for
/// `EIO`).
impl From<RegionFault> for io::Error {
    fn from(fault: RegionFault) -> io::Error {
        io::Error::new(kind_of(fault.errno), fault)
    }
}

fn kind_of(errno: i32) -> io::ErrorKind {
    match errno {
        libc::ENOSPC => io::ErrorKind::StorageFull,
        _ => io::ErrorKind::Other,
    }
}

fn errno_words(errno: i32) -> &'static str {
    match errno {
        libc::ENOSPC => "no space left on device",
        _ => "input/output error",
    }
}

/// A file offset from the region's `file_offset` and a region offset.
/// Saturating: `with_file_offset` takes any u64, and a report must not panic.
pub(super) fn file_at(file_offset: u64, region_at: u64) -> u64 {
    file_offset.saturating_add(region_at)
}

/// A range a lossy access of a [`MappedRegion`] went past
/// ([`read_lossy_at`](MappedRegion::read_lossy_at),
/// [`write_lossy_at`](MappedRegion::write_lossy_at)): where it lies in the
/// caller's buffer, in the region and in the file, why it was lost, and the
/// `errno` `pread(2)`/`pwrite(2)` would give.
///
/// Like [`LostRange`], clipped to the access; [`skip_to`](RegionLost::skip_to)
/// says where the lost granule ends when a huge page reaches past it.
///
/// `Display`: `region bytes 8192..12288 (file bytes 1056768..1060864) lost: no
/// memory at address (BUS_ADRERR), errno ENOSPC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionLost {
    pub(super) lost: LostRange,
    /// Region offset of the access's first byte.
    pub(super) access: u64,
    pub(super) file_offset: u64,
    pub(super) skip_to: u64,
    pub(super) errno: i32,
}

impl RegionLost {
    /// Offsets in the caller's buffer: for a read, these bytes are zeros.
    pub fn range(&self) -> Range<usize> {
        self.lost.range()
    }

    /// Bytes in the range (never 0).
    pub fn len(&self) -> usize {
        self.lost.len()
    }

    /// Always false: a lost range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.lost.is_empty()
    }

    /// The range as region offsets.
    pub fn in_region(&self) -> Range<u64> {
        let r = self.lost.range();
        self.access + r.start as u64..self.access + r.end as u64
    }

    /// The range as file offsets (saturating, as [`RegionFault::lost`]).
    pub fn in_file(&self) -> Range<u64> {
        let r = self.in_region();
        file_at(self.file_offset, r.start)..file_at(self.file_offset, r.end)
    }

    /// The region offset where the lost memory ends: the end of
    /// [`in_region`](RegionLost::in_region), or past it when the range ends
    /// the access inside a lost granule (a huge page) that goes on; clipped to
    /// the region. A reader that goes on piece by piece resumes here, so as not
    /// to touch that granule again.
    pub fn skip_to(&self) -> u64 {
        self.skip_to
    }

    /// Which buffer lost it. For [`read_lossy_at`](MappedRegion::read_lossy_at)
    /// the region is the source; for
    /// [`write_lossy_at`](MappedRegion::write_lossy_at), the destination. (The
    /// other side is the caller's own buffer, which does not fault.)
    pub fn side(&self) -> Side {
        self.lost.side()
    }

    /// Why it was lost.
    pub fn kind(&self) -> FaultKind {
        self.lost.kind()
    }

    /// Size of the granules lost (the page, or a huge page).
    pub fn granule(&self) -> usize {
        self.lost.granule()
    }

    /// The `errno` `pread(2)`/`pwrite(2)` would give, as for
    /// [`RegionFault::raw_os_error`]; `EFAULT` for a loss in the caller's own
    /// buffer (as for a bad buffer passed to `pread(2)`).
    pub fn raw_os_error(&self) -> i32 {
        self.errno
    }
}

impl fmt::Display for RegionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, file) = (self.in_region(), self.in_file());
        write!(
            f,
            "region bytes {}..{} (file bytes {}..{}) lost: {}, errno {}",
            r.start,
            r.end,
            file.start,
            file.end,
            self.kind(),
            match self.errno {
                libc::ENOSPC => "ENOSPC",
                libc::EFAULT => "EFAULT",
                _ => "EIO",
            }
        )
    }
}

/// The `errno` for a granule of `kind` lost at file offset `at` (see
/// [`RegionFault::raw_os_error`]). `file` is the region's own open file
/// description (from `with_file`), whose offset it may move.
pub(super) fn errno_for(kind: FaultKind, file: Option<&OwnedFd>, at: u64) -> i32 {
    match (kind, file) {
        (FaultKind::AddressError, Some(file)) if in_a_hole(file, at) => libc::ENOSPC,
        _ => libc::EIO,
    }
}

/// Whether file offset `at` lies inside the file and in a hole (no block
/// allocated): a page there can only fail to come in because the file system
/// could not allocate it.
fn in_a_hole(file: &OwnedFd, at: u64) -> bool {
    let Ok(at) = libc::off_t::try_from(at) else {
        return false;
    };
    // SAFETY: fstat fills the zeroed struct; lseek with SEEK_DATA only moves
    // the offset of our own open file description.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        if libc::fstat(file.as_raw_fd(), &mut st) != 0 || at >= st.st_size {
            return false;
        }
        let data = libc::lseek(file.as_raw_fd(), at, libc::SEEK_DATA);
        // ENXIO: no data from `at` to the end of the file.
        (data < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO))
            || data > at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn a_hole_is_told_from_data_and_from_the_end_of_the_file() {
        let page = 4096u64;
        // SAFETY: system calls on a descriptor this test owns; the write
        // reads our own buffer.
        let file = unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"hole".as_ptr(), 0));
            let data = [1u8; 4096];
            assert_eq!(
                libc::pwrite(fd.as_raw_fd(), data.as_ptr().cast(), 4096, 2 * 4096),
                4096
            );
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), 4 * 4096), 0);
            fd
        };
        // Pages 0, 1 and 3 are holes, page 2 is data, page 4 is past the end.
        assert!(in_a_hole(&file, 0));
        assert!(in_a_hole(&file, page + 7));
        assert!(!in_a_hole(&file, 2 * page));
        assert!(in_a_hole(&file, 3 * page), "the hole at the end (ENXIO)");
        assert!(!in_a_hole(&file, 4 * page));
        assert!(!in_a_hole(&file, u64::MAX));
        let ae = FaultKind::AddressError;
        assert_eq!(errno_for(ae, Some(&file), page), libc::ENOSPC);
        assert_eq!(errno_for(ae, Some(&file), 2 * page), libc::EIO);
        assert_eq!(errno_for(ae, None, page), libc::EIO);
        assert_eq!(errno_for(FaultKind::Poison, Some(&file), page), libc::EIO);
        assert_eq!(kind_of(libc::ENOSPC), io::ErrorKind::StorageFull);
    }

    /// Data at offset 0 is data, whatever errno an earlier call left behind
    /// (`lseek` returns 0 there and does not set errno).
    #[test]
    fn data_at_the_start_is_not_a_hole_even_after_an_enxio() {
        // SAFETY: as above; errno is this thread's.
        let file = unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"data".as_ptr(), 0));
            let data = [1u8; 4096];
            assert_eq!(
                libc::pwrite(fd.as_raw_fd(), data.as_ptr().cast(), 4096, 0),
                4096
            );
            *libc::__errno_location() = libc::ENXIO;
            fd
        };
        assert!(!in_a_hole(&file, 0));
    }
}
