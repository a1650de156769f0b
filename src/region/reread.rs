//! A second look, through `pread(2)`, at what the mapping could not page in:
//! where the region knows its file ([`MappedRegion::with_file`]), a range of a
//! read that faulted with `BUS_ADRERR` is read again from the file before it is
//! called lost. What comes back decides:
//! - all of it: not lost. A hole of a file on a full file system is the usual
//!   case: a mapping asks for a page to hold it and gets SIGBUS, `read(2)`
//!   needs none and returns zeros. (A page-in that failed and now succeeds
//!   comes back the same way.)
//! - fewer bytes, or none: the file ends there. It shrank under the mapping
//!   (or was mapped past its end): a short read, as `pread(2)`'s, not damage.
//! - an error (`EIO`): lost.
//!
//! The granule is never touched through the mapping again, and poison
//! (`BUS_MCEERR_*`) is never read again: `pread(2)` of a poisoned page-cache
//! page would say `EIO` anyway, and a second read of poisoned memory is what
//! the crate never does.
//!
//! This file: those system calls, and the answer of a lossy read
//! ([`RegionRead`], with the ranges read again, [`RegionReread`]). `mod.rs`
//! uses them in `read_at`, `read_exact_at`, `read_exact_crc32c_at`,
//! `crc32c_at` and `read_lossy_at`. Change it, then run `cargo test -p mcsafe
//! --lib region` and `cargo test -p mcsafe-tests --test region`.

use core::fmt;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};

use super::RegionLost;

#[cfg(doc)]
use super::MappedRegion;

/// What a `pread(2)` of a range the mapping could not page in found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reread {
    /// Every byte.
    Whole,
    /// The file ends after this many bytes of the range.
    Ended(usize),
    /// The read failed with this errno.
    Failed(i32),
}

/// Reads all of `buf` from `file` at file offset `at` (`pread(2)`, again after
/// `EINTR` and after a short count, until the end of the file).
pub(super) fn pread_all(file: &OwnedFd, buf: &mut [u8], at: u64) -> Reread {
    let mut done = 0;
    while done < buf.len() {
        let Some(offset) = at
            .checked_add(done as u64)
            .and_then(|o| libc::off_t::try_from(o).ok())
        else {
            return Reread::Ended(done);
        };
        let rest = &mut buf[done..];
        // SAFETY: `rest` is writable memory of `rest.len()` bytes; the
        // descriptor is the region's own.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                offset,
            )
        };
        match n {
            0 => return Reread::Ended(done),
            n if n > 0 => done += n as usize,
            _ => match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                errno => return Reread::Failed(errno.unwrap_or(libc::EIO)),
            },
        }
    }
    Reread::Whole
}

/// Reads `len` bytes from `file` at file offset `at` and folds them into
/// `crc` (CRC32C), through a buffer of at most 64 KiB: what `crc32c_at` does
/// with a range the mapping could not page in. Returns what the read found,
/// and the CRC of the bytes it read.
pub(super) fn pread_crc32c(file: &OwnedFd, len: usize, at: u64, mut crc: u32) -> (Reread, u32) {
    let mut buf = vec![0u8; len.min(64 << 10)];
    let mut done = 0;
    while done < len {
        let part = &mut buf[..(len - done).min(64 << 10)];
        let read = pread_all(file, part, at.saturating_add(done as u64));
        let n = match read {
            Reread::Whole => part.len(),
            Reread::Ended(n) => n,
            Reread::Failed(_) => return (read, crc),
        };
        crc = crate::crc32c(crc, &part[..n]);
        done += n;
        if let Reread::Ended(_) = read {
            return (Reread::Ended(done), crc);
        }
    }
    (Reread::Whole, crc)
}

/// The file's length now, or `None` if `fstat(2)` cannot tell.
pub(super) fn file_len(file: &OwnedFd) -> Option<u64> {
    // SAFETY: fstat fills the zeroed struct.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::fstat(file.as_raw_fd(), &mut st) == 0).then(|| st.st_size.max(0) as u64)
    }
}

/// The holes (no block allocated) among file offsets `range`, in order, as
/// `SEEK_DATA`/`SEEK_HOLE` report them; empty where the file system cannot
/// tell (then everything reads as data). Moves the offset of the region's own
/// open file description, which nothing else uses.
pub(super) fn holes_in(file: &OwnedFd, range: Range<u64>) -> Vec<Range<u64>> {
    let fd = file.as_raw_fd();
    let seek = |from: u64, whence| {
        let from = libc::off_t::try_from(from).ok()?;
        // SAFETY: lseek only moves our own description's offset.
        let to = unsafe { libc::lseek(fd, from, whence) };
        if to >= 0 {
            Some(Ok(to as u64))
        } else {
            Some(Err(std::io::Error::last_os_error().raw_os_error()))
        }
    };
    let mut holes = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let data = match seek(at, libc::SEEK_DATA) {
            Some(Ok(data)) => data,
            // No data from `at` to the end of the file: a hole to the end.
            Some(Err(Some(libc::ENXIO))) => u64::MAX,
            _ => break,
        };
        if data > at {
            holes.push(at..data.min(range.end));
        }
        if data >= range.end {
            break;
        }
        at = match seek(data, libc::SEEK_HOLE) {
            Some(Ok(hole)) if hole > data => hole,
            _ => break,
        };
    }
    holes
}

/// What a lossy read of a region read: [`MappedRegion::read_lossy_at`]'s
/// answer.
///
/// [`bytes_read`](RegionRead::bytes_read) bytes of the buffer hold the
/// region's bytes, zeros where they are lost ([`lost`](RegionLost)); that is
/// all of the buffer unless the region's file ended inside the range (it shrank
/// under the mapping: [`file_end`](RegionRead::file_end)), which is a short
/// read, as `pread(2)`'s, and not a loss. The read ends where `pread(2)` found
/// the end: at the first granule past the file's end (the kernel shows the
/// rest of the file's last page as zeros, which the read keeps), so
/// `file_end` may be a little before it. From `bytes_read` on the buffer holds
/// zeros. Ranges the mapping could not page in that `pread(2)` read from the
/// file are listed apart ([`reread`](RegionRead::reread)): they are not lost.
///
/// `Display` prints a one-line summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "the report says which bytes of the buffer are not the region's"]
pub struct RegionRead {
    pub(super) bytes_read: usize,
    pub(super) lost: Vec<RegionLost>,
    pub(super) reread: Vec<RegionReread>,
    pub(super) file_end: Option<u64>,
}

impl RegionRead {
    /// Bytes of the buffer read: its length, or fewer where the file ended
    /// (up to the end of the file's last page).
    pub fn bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// The lost ranges, sorted, inside `0..bytes_read()`; empty when nothing
    /// was lost.
    pub fn lost(&self) -> &[RegionLost] {
        &self.lost
    }

    /// The lost ranges, owned.
    pub fn into_lost(self) -> Vec<RegionLost> {
        self.lost
    }

    /// Total bytes in the lost ranges.
    pub fn lost_bytes(&self) -> usize {
        self.lost.iter().map(RegionLost::len).sum()
    }

    /// The ranges the mapping could not page in (`BUS_ADRERR`) that
    /// `pread(2)` read from the file, sorted: holes read as zeros, and data.
    /// Only a region that knows its file ([`MappedRegion::with_file`]) reads
    /// again.
    pub fn reread(&self) -> &[RegionReread] {
        &self.reread
    }

    /// The file's length (`fstat(2)` right after the read found its end), when
    /// the file ended inside the range: it shrank under the mapping, or the
    /// mapping reaches past its end. Known only to a region that knows its
    /// file, and only where a read met the end.
    pub fn file_end(&self) -> Option<u64> {
        self.file_end
    }

    /// Whether the whole buffer holds the region's bytes: nothing lost and
    /// the file did not end.
    pub fn is_complete(&self) -> bool {
        self.lost.is_empty() && self.file_end.is_none()
    }
}

impl fmt::Display for RegionRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes read", self.bytes_read)?;
        if let Some(end) = self.file_end {
            write!(f, " (the file ends at {end})")?;
        }
        match self.lost.first() {
            None => write!(f, ", nothing lost")?,
            Some(first) => write!(
                f,
                ", {} lost in {} range{}; first: {first}",
                self.lost_bytes(),
                self.lost.len(),
                if self.lost.len() == 1 { "" } else { "s" }
            )?,
        }
        let holes: usize = self
            .reread
            .iter()
            .filter(|r| r.is_hole())
            .map(RegionReread::len)
            .sum();
        if !self.reread.is_empty() {
            write!(
                f,
                ", {} read again with pread(2) ({holes} of them holes)",
                self.reread.iter().map(RegionReread::len).sum::<usize>()
            )?;
        }
        Ok(())
    }
}

/// A range of a read that the mapping could not page in (`BUS_ADRERR`) and
/// that `pread(2)` read from the file: a hole (zeros; a file on a full file
/// system cannot give it a page) or data. Not lost. Offsets in the caller's
/// buffer, the region and the file, as [`RegionLost`] gives them.
///
/// `Display`: `region bytes 8192..12288 (file bytes 8192..12288) read with
/// pread(2): a hole, zeros`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionReread {
    /// Offsets in the caller's buffer.
    pub(super) range: Range<usize>,
    /// Region offset of the access's first byte.
    pub(super) access: u64,
    pub(super) file_offset: u64,
    pub(super) hole: bool,
}

impl RegionReread {
    /// Offsets in the caller's buffer.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Bytes in the range (never 0).
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Always false: the range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The range as region offsets.
    pub fn in_region(&self) -> Range<u64> {
        self.access + self.range.start as u64..self.access + self.range.end as u64
    }

    /// The range as file offsets (saturating, as [`RegionLost::in_file`]).
    pub fn in_file(&self) -> Range<u64> {
        let r = self.in_region();
        super::fault::file_at(self.file_offset, r.start)
            ..super::fault::file_at(self.file_offset, r.end)
    }

    /// Whether the file has no block there: it read as zeros.
    pub fn is_hole(&self) -> bool {
        self.hole
    }
}

impl fmt::Display for RegionReread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, file) = (self.in_region(), self.in_file());
        write!(
            f,
            "region bytes {}..{} (file bytes {}..{}) read with pread(2): {}",
            r.start,
            r.end,
            file.start,
            file.end,
            if self.hole { "a hole, zeros" } else { "data" }
        )
    }
}

/// The ranges read again of buffer offsets `range`, read from file offset
/// `at`, cut into holes and data.
pub(super) fn reread_pieces(
    file: &OwnedFd,
    range: Range<usize>,
    at: u64,
    access: u64,
    file_offset: u64,
) -> Vec<RegionReread> {
    let piece = |range: Range<usize>, hole| RegionReread {
        range,
        access,
        file_offset,
        hole,
    };
    let mut pieces = Vec::new();
    let mut next = range.start;
    for hole in holes_in(file, at..at.saturating_add(range.len() as u64)) {
        let start = range.start + (hole.start - at) as usize;
        let end = range.start + (hole.end - at) as usize;
        if start > next {
            pieces.push(piece(next..start, false));
        }
        pieces.push(piece(start..end, true));
        next = end;
    }
    if next < range.end {
        pieces.push(piece(next..range.end, false));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    const PAGE: usize = 4096;

    /// A memfd of 6 pages: data in pages 1 and 4, holes elsewhere.
    fn sparse() -> OwnedFd {
        // SAFETY: system calls on a descriptor this test owns; the writes
        // read our own buffer.
        unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"sparse".as_ptr(), 0));
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), 6 * PAGE as i64), 0);
            let data = [7u8; PAGE];
            for page in [1, 4] {
                let at = (page * PAGE) as i64;
                assert_eq!(
                    libc::pwrite(fd.as_raw_fd(), data.as_ptr().cast(), PAGE, at),
                    PAGE as isize
                );
            }
            fd
        }
    }

    #[test]
    fn pread_all_reads_a_hole_as_zeros_and_stops_at_the_end_of_the_file() {
        let file = sparse();
        let mut buf = vec![0xffu8; 2 * PAGE];
        assert_eq!(pread_all(&file, &mut buf, 0), Reread::Whole);
        assert!(buf[..PAGE].iter().all(|&b| b == 0), "a hole reads as zeros");
        assert!(buf[PAGE..].iter().all(|&b| b == 7));
        let mut buf = vec![0xffu8; 2 * PAGE];
        assert_eq!(
            pread_all(&file, &mut buf, 5 * PAGE as u64),
            Reread::Ended(PAGE)
        );
        assert_eq!(
            pread_all(&file, &mut buf, 9 * PAGE as u64),
            Reread::Ended(0)
        );
        assert_eq!(pread_all(&file, &mut buf, u64::MAX), Reread::Ended(0));
        assert_eq!(file_len(&file), Some(6 * PAGE as u64));
        // SAFETY: a descriptor of our own, not a file: pread fails.
        let pipe = unsafe {
            let mut fds = [0; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[1]);
            OwnedFd::from_raw_fd(fds[0])
        };
        assert_eq!(pread_all(&pipe, &mut buf, 0), Reread::Failed(libc::ESPIPE));
    }

    #[test]
    fn holes_are_told_from_data_across_a_range() {
        let file = sparse();
        let p = PAGE as u64;
        assert_eq!(
            holes_in(&file, 0..6 * p),
            [0..p, 2 * p..4 * p, 5 * p..6 * p]
        );
        let one_hole = holes_in(&file, p + 10..2 * p + 10);
        assert_eq!((one_hole.len(), &one_hole[0]), (1, &(2 * p..2 * p + 10)));
        assert_eq!(holes_in(&file, p..2 * p), []);
        let pieces = reread_pieces(&file, 100..100 + 3 * PAGE, 3 * p, 1000, 50);
        let got: Vec<_> = pieces.iter().map(|r| (r.range(), r.is_hole())).collect();
        assert_eq!(
            got,
            [
                (100..100 + PAGE, true),
                (100 + PAGE..100 + 2 * PAGE, false),
                (100 + 2 * PAGE..100 + 3 * PAGE, true),
            ]
        );
        assert_eq!(pieces[1].in_region(), 1100 + p..1100 + 2 * p);
        assert_eq!(pieces[1].in_file(), 1150 + p..1150 + 2 * p);
        assert_eq!((pieces[0].len(), pieces[0].is_empty()), (PAGE, false));
        assert!(
            pieces[0]
                .to_string()
                .ends_with("read with pread(2): a hole, zeros")
        );
    }
}
