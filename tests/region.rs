//! `MappedRegion` over a file mapped from an offset and truncated under the
//! mapping: `pread(2)`-like short counts, errors that carry the fault and the
//! file offsets of the lost range, the cursor's `Read`/`Write`/`Seek`, and bad
//! input answered with errors. A region that knows its file (`with_file`)
//! reads what the mapping cannot page in again with `pread(2)`: the end of a
//! truncated file is a short read, a hole of a file on a full tmpfs reads as
//! zeros, neither is lost.

mod common;

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::ptr;

use common::*;
use mcsafe::inject::{self, FullTmpfsFile, Method};
use mcsafe::{FaultKind, MappedRegion, RegionFault, RegionLost, Side, crc32c};

const FILE_PAGES: usize = 8;
/// The mapping covers file pages 2..8: region offset 0 is file offset 2 pages.
const MAP_FROM: usize = 2 * PAGE;
const MAP_LEN: usize = 6 * PAGE;
/// After the truncation the file ends 100 bytes into its page 5; from file page
/// 6 (region offset 4 pages) on, the mapping has nothing behind it.
const FILE_END: usize = 5 * PAGE + 100;
const LOST_FROM: usize = 6 * PAGE;
const SEED: u64 = 0xf11e;

/// A memfd of `FILE_PAGES` pages holding the pattern, mapped from `MAP_FROM`
/// (shared, read-write), then truncated to `FILE_END`.
struct TruncatedFile {
    map: *mut u8,
    _fd: OwnedFd,
}

impl TruncatedFile {
    fn new() -> TruncatedFile {
        // SAFETY: system calls on a descriptor and a mapping this test owns.
        unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"region".as_ptr(), 0));
            let len = (FILE_PAGES * PAGE) as i64;
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), len), 0);
            let whole = libc::mmap(
                ptr::null_mut(),
                FILE_PAGES * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            assert_ne!(whole, libc::MAP_FAILED);
            fill(whole.cast(), FILE_PAGES * PAGE, SEED);
            libc::munmap(whole, FILE_PAGES * PAGE);
            let map = libc::mmap(
                ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                MAP_FROM as i64,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), FILE_END as i64), 0);
            TruncatedFile {
                map: map.cast(),
                _fd: fd,
            }
        }
    }

    fn region(&self, writable: bool) -> MappedRegion {
        // SAFETY: the mapping outlives the region (both live in the test), and
        // is only accessed through the region.
        let region = unsafe {
            if writable {
                MappedRegion::from_raw_parts_mut(self.map, MAP_LEN)
            } else {
                MappedRegion::from_raw_parts(self.map, MAP_LEN)
            }
        };
        region.with_file_offset(MAP_FROM as u64)
    }

    /// The region, told its file.
    fn region_with_file(&self) -> MappedRegion {
        self.region(false).with_file(&self._fd).unwrap()
    }
}

impl Drop for TruncatedFile {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.map.cast(), MAP_LEN) };
    }
}

/// What the file holds at `file_offset..+len`: the pattern up to its end, then
/// the zeros the kernel shows for the rest of the last page.
fn file_bytes(file_offset: usize, len: usize) -> Vec<u8> {
    (file_offset..file_offset + len)
        .map(|i| if i < FILE_END { byte_at(SEED, i) } else { 0 })
        .collect()
}

/// The region's fault inside `err`, checked against the lost file page.
fn lost_page(err: &std::io::Error, side: Side) -> &RegionFault {
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
    assert_eq!(err.raw_os_error(), None, "the payload, not a raw code");
    let lost = RegionFault::of(err).unwrap_or_else(|| panic!("no RegionFault in {err:?}"));
    assert_eq!(lost.raw_os_error(), libc::EIO);
    assert_eq!(lost.lost(), LOST_FROM as u64..(LOST_FROM + PAGE) as u64);
    // The same in region offsets, which the accessors take.
    assert_eq!(lost.lost_in_region(), at(LOST_FROM)..at(LOST_FROM + PAGE));
    assert_eq!(lost.offset_in_region(), lost.offset() - MAP_FROM as u64);
    assert_eq!(lost.fault().kind(), FaultKind::AddressError);
    assert_eq!(lost.fault().side(), side);
    lost
}

/// Region offset of file offset `f`.
fn at(f: usize) -> u64 {
    (f - MAP_FROM) as u64
}

#[test]
fn read_at_is_short_before_a_lost_page_then_eio_with_the_file_offsets() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    let _serial = signal_lock();
    let before = recovered();

    // Up to the lost page: a short count and the file's bytes (then zeros).
    let mut buf = vec![0u8; 300];
    let n = region.read_at(at(LOST_FROM - 10), &mut buf).unwrap();
    assert_eq!(n, 10);
    assert_eq!(buf[..10], file_bytes(LOST_FROM - 10, 10));

    // From the lost page: EIO with the offsets.
    let err = region.read_at(at(LOST_FROM), &mut buf).unwrap_err();
    let lost = lost_page(&err, Side::Source);
    assert_eq!(lost.offset(), LOST_FROM as u64);
    assert_eq!(lost.fault().copied(), 0);
    // Starting inside it: the access's own start.
    let err = region.read_at(at(LOST_FROM + 5), &mut buf).unwrap_err();
    assert_eq!(
        lost_page(&err, Side::Source).offset(),
        (LOST_FROM + 5) as u64
    );
    assert!(err.to_string().contains("file offset 24581"), "{err}");
    assert_eq!(
        recovered() - before,
        3,
        "one signal per call that reached the page"
    );

    // Before the page, whole reads work, including the zeros past the file end.
    let mut buf = vec![0u8; 2 * PAGE];
    let n = region.read_at(at(4 * PAGE), &mut buf).unwrap();
    assert_eq!(
        (n, &buf[..]),
        (2 * PAGE, &file_bytes(4 * PAGE, 2 * PAGE)[..])
    );
}

#[test]
fn read_exact_at_stops_at_the_lost_page_with_one_signal_and_the_prefix() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    let _serial = signal_lock();
    let before = recovered();
    let mut buf = vec![0u8; 3 * PAGE];
    let from = LOST_FROM - PAGE - 7;
    let err = region.read_exact_at(at(from), &mut buf).unwrap_err();
    let lost = lost_page(&err, Side::Source);
    assert_eq!(lost.fault().copied(), PAGE + 7);
    assert_eq!(lost.offset(), LOST_FROM as u64);
    assert_eq!(buf[..PAGE + 7], file_bytes(from, PAGE + 7));
    assert_eq!(recovered() - before, 1);
    region.read_exact_at(at(MAP_FROM), &mut buf).unwrap();
    assert_eq!(buf, file_bytes(MAP_FROM, 3 * PAGE));
}

#[test]
fn crc32c_at_verifies_in_place_and_fails_on_the_lost_page() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    let _serial = signal_lock();
    let whole = region.crc32c_at(0, 1, 4 * PAGE - 1).unwrap();
    assert_eq!(
        whole,
        crc32c_reference(&file_bytes(MAP_FROM + 1, 4 * PAGE - 1))
    );
    let err = region.crc32c_at(0, 100, MAP_LEN - 100).unwrap_err();
    assert_eq!(lost_page(&err, Side::Source).offset(), LOST_FROM as u64);
    let err = region.crc32c_at(0, 0, MAP_LEN + 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[test]
fn crc32c_at_continues_a_seed_as_crc32c_does() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    let bytes = file_bytes(MAP_FROM, 3 * PAGE);
    // A header's CRC continued over its payload equals the CRC of both.
    let header = region.crc32c_at(0, 0, 20).unwrap();
    let both = region.crc32c_at(header, 20, 3 * PAGE - 20).unwrap();
    assert_eq!(both, crc32c_reference(&bytes));
    assert_eq!(
        both,
        mcsafe::crc32c(mcsafe::crc32c(0, &bytes[..20]), &bytes[20..])
    );
}

#[test]
fn read_exact_crc32c_at_reads_and_checksums_in_one_pass_and_stops_at_the_lost_page() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    let _serial = signal_lock();
    // A whole block: the buffer holds it, the CRC continues the seed.
    let mut buf = vec![0u8; 2 * PAGE + 3];
    let crc = region
        .read_exact_crc32c_at(0x1234, at(MAP_FROM + 5), &mut buf)
        .unwrap();
    let want = file_bytes(MAP_FROM + 5, 2 * PAGE + 3);
    assert_eq!(buf, want);
    assert_eq!(crc, crc32c_reference_from(0x1234, &want));
    // Across the lost page: the bytes before it are in `buf`, one signal.
    let from = LOST_FROM - PAGE - 7;
    let mut buf = vec![0u8; 2 * PAGE];
    let before = recovered();
    let err = region
        .read_exact_crc32c_at(0, at(from), &mut buf)
        .unwrap_err();
    assert_eq!(recovered() - before, 1);
    let lost = lost_page(&err, Side::Source);
    assert_eq!(lost.offset(), LOST_FROM as u64);
    assert_eq!(lost.fault().copied(), LOST_FROM - from);
    assert_eq!(buf[..LOST_FROM - from], file_bytes(from, LOST_FROM - from));
    // Past the end: nothing read.
    let mut buf = vec![0xeeu8; 16];
    let err = region
        .read_exact_crc32c_at(0, MAP_LEN as u64 - 8, &mut buf)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert_eq!(buf, [0xee; 16]);
}

#[test]
fn write_at_is_short_before_a_lost_page_and_writes_reach_the_file() {
    let file = TruncatedFile::new();
    let region = file.region(true);
    let _serial = signal_lock();
    let data = [0x77u8; 64];
    assert_eq!(region.write_at(at(LOST_FROM - 3), &data).unwrap(), 3);
    let err = region.write_at(at(LOST_FROM), &data).unwrap_err();
    assert_eq!(
        lost_page(&err, Side::Destination).offset(),
        LOST_FROM as u64
    );
    let err = region.write_all_at(at(LOST_FROM - 3), &data).unwrap_err();
    let lost = lost_page(&err, Side::Destination);
    assert_eq!(
        (lost.offset(), lost.fault().copied()),
        (LOST_FROM as u64, 3)
    );

    region.write_all_at(at(MAP_FROM + 10), b"record").unwrap();
    let mut back = [0u8; 6];
    region.read_exact_at(at(MAP_FROM + 10), &mut back).unwrap();
    assert_eq!(&back, b"record");
    // Through the mapping, so through the file: the region wrote in place.
    // SAFETY: a readable byte of the mapping.
    assert_eq!(unsafe { file.map.add(10).read() }, b'r');
}

#[test]
fn the_cursor_reads_up_to_the_lost_page_then_fails_and_seeks_like_a_file() {
    let file = TruncatedFile::new();
    let region = file.region(true);
    let _serial = signal_lock();
    let mut cursor = region.cursor();
    let mut all = Vec::new();
    let err = cursor.read_to_end(&mut all).unwrap_err();
    assert_eq!(lost_page(&err, Side::Source).offset(), LOST_FROM as u64);
    assert_eq!(all, file_bytes(MAP_FROM, LOST_FROM - MAP_FROM));
    assert_eq!(cursor.position(), at(LOST_FROM));

    assert_eq!(
        cursor.seek(SeekFrom::End(-10)).unwrap(),
        (MAP_LEN - 10) as u64
    );
    assert!(RegionFault::of(&cursor.read(&mut [0u8; 4]).unwrap_err()).is_some());
    assert_eq!(cursor.seek(SeekFrom::Start(8)).unwrap(), 8);
    cursor.write_all(b"abc").unwrap();
    assert_eq!(cursor.seek(SeekFrom::Current(-3)).unwrap(), 8);
    let mut back = [0u8; 3];
    cursor.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"abc");
    let err = cursor.seek(SeekFrom::Current(-12)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(cursor.position(), 11, "a failed seek does not move");
    cursor.flush().unwrap();
}

/// (region offsets, file offsets, side, errno) of each lost range.
fn described(lost: &[RegionLost]) -> Vec<(std::ops::Range<u64>, std::ops::Range<u64>, Side, i32)> {
    lost.iter()
        .map(|l| (l.in_region(), l.in_file(), l.side(), l.raw_os_error()))
        .collect()
}

#[test]
fn read_lossy_at_zero_fills_lost_pages_and_lists_them_in_region_and_file_offsets() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    let _serial = signal_lock();
    let before = recovered();
    // From 100 bytes before the file's end to the region's end: the rest of
    // the last file page, then two lost pages.
    let from = FILE_END - 100;
    let mut buf = vec![0xeeu8; MAP_FROM + MAP_LEN - from];
    let read = region.read_lossy_at(at(from), &mut buf).unwrap();
    assert_eq!(recovered() - before, 2, "one signal per lost page");
    assert_eq!((read.bytes_read(), read.file_end()), (buf.len(), None));
    let [only] = read.lost() else {
        panic!("one merged range: {read}")
    };
    let in_buf = LOST_FROM - from..buf.len();
    assert_eq!(only.range(), in_buf);
    assert_eq!((only.len(), only.is_empty()), (in_buf.len(), false));
    assert_eq!(only.in_region(), at(LOST_FROM)..MAP_LEN as u64);
    assert_eq!(
        only.in_file(),
        LOST_FROM as u64..(MAP_FROM + MAP_LEN) as u64
    );
    assert_eq!(only.skip_to(), MAP_LEN as u64);
    assert_eq!(
        (only.side(), only.kind()),
        (Side::Source, FaultKind::AddressError)
    );
    assert_eq!((only.granule(), only.raw_os_error()), (PAGE, libc::EIO));
    assert!(
        only.to_string()
            .starts_with("region bytes 16384..24576 (file bytes 24576..32768) lost")
    );
    assert_eq!(buf[..LOST_FROM - from], file_bytes(from, LOST_FROM - from));
    assert!(buf[LOST_FROM - from..].iter().all(|&b| b == 0));
    // Nothing lost: an empty list and the file's bytes.
    let mut buf = vec![0u8; 3 * PAGE];
    assert!(region.read_lossy_at(7, &mut buf).unwrap().is_complete());
    assert_eq!(buf, file_bytes(MAP_FROM + 7, 3 * PAGE));
    // Past the end: an error before touching anything; an empty read is fine.
    let past = region
        .read_lossy_at(MAP_LEN as u64 - 1, &mut buf)
        .unwrap_err();
    assert_eq!(past.kind(), ErrorKind::UnexpectedEof);
    assert!(
        region
            .read_lossy_at(MAP_LEN as u64, &mut [])
            .unwrap()
            .is_complete()
    );
}

#[test]
fn write_lossy_at_skips_lost_pages_and_writes_the_rest() {
    let file = TruncatedFile::new();
    let region = file.region(true);
    let _serial = signal_lock();
    let data = vec![0x5au8; 3 * PAGE];
    let lost = region.write_lossy_at(at(LOST_FROM - PAGE), &data).unwrap();
    assert_eq!(
        described(&lost),
        [(
            at(LOST_FROM)..MAP_LEN as u64,
            LOST_FROM as u64..(MAP_FROM + MAP_LEN) as u64,
            Side::Destination,
            libc::EIO
        )]
    );
    let mut back = vec![0u8; PAGE];
    region
        .read_exact_at(at(LOST_FROM - PAGE), &mut back)
        .unwrap();
    assert!(back.iter().all(|&b| b == 0x5a));
    let read_only = file.region(false);
    let denied = read_only.write_lossy_at(0, b"x").unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
    let full = region
        .write_lossy_at(MAP_LEN as u64 - 1, b"xy")
        .unwrap_err();
    assert_eq!(full.kind(), ErrorKind::WriteZero);
}

fn full_tmpfs() -> bool {
    let why = inject::capabilities()
        .check(Method::FullTmpfs)
        .err()
        .map(|e| e.to_string());
    require(why.is_none(), "full tmpfs", why.as_deref().unwrap_or(""))
}

/// A writable shared mapping of the whole of `path`.
fn map_file(file: &std::fs::File, len: usize) -> *mut u8 {
    // SAFETY: a fresh shared mapping of the test's own file.
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    map.cast()
}

#[test]
fn on_a_full_file_system_a_hole_is_enospc_where_the_region_knows_its_file() {
    if !full_tmpfs() {
        return;
    }
    // 6 pages; pages 2 and 4 are holes the full tmpfs cannot allocate.
    let tmpfs = FullTmpfsFile::new(6, &[2, 4], |i, page| page.fill(i as u8 + 1)).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tmpfs.path())
        .unwrap();
    let map = map_file(&file, 6 * PAGE);
    // SAFETY: the mapping outlives both regions and is only used through them.
    let blind = unsafe { MappedRegion::from_raw_parts_mut(map, 6 * PAGE) }.with_file_offset(0);
    // SAFETY: as above.
    let region = unsafe { MappedRegion::from_raw_parts_mut(map, 6 * PAGE) }
        .with_file(&file)
        .unwrap();
    let _serial = signal_lock();
    let page = PAGE as u64;

    // A write into a hole: what pwrite(2) would say, ENOSPC, StorageFull.
    let err = region.write_all_at(2 * page + 10, b"record").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    let fault = RegionFault::of(&err).unwrap();
    assert_eq!(
        (fault.raw_os_error(), fault.lost_in_region()),
        (libc::ENOSPC, 2 * page..3 * page)
    );
    assert!(
        err.to_string()
            .starts_with("no space left on device at file offset 8202"),
        "{err}"
    );
    // A read of a hole does not: read(2) needs no page for it, and the region
    // reads it that way (the next test).
    let mut word = [0xffu8; 8];
    region.read_exact_at(4 * page, &mut word).unwrap();
    assert_eq!(word, [0; 8]);
    // The lossy write goes on past both holes and lists them.
    let data = vec![0xabu8; 6 * PAGE];
    let lost = region.write_lossy_at(0, &data).unwrap();
    assert_eq!(
        described(&lost),
        [
            (
                2 * page..3 * page,
                2 * page..3 * page,
                Side::Destination,
                libc::ENOSPC
            ),
            (
                4 * page..5 * page,
                4 * page..5 * page,
                Side::Destination,
                libc::ENOSPC
            ),
        ]
    );
    assert!(lost[0].to_string().ends_with("errno ENOSPC"), "{}", lost[0]);
    let mut back = vec![0u8; 2 * PAGE];
    region.read_exact_at(0, &mut back).unwrap();
    assert!(
        back.iter().all(|&b| b == 0xab),
        "the pages with room were written"
    );

    // Without its file the region cannot tell a hole from an I/O error: EIO.
    let err = blind.write_all_at(2 * page, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(RegionFault::of(&err).unwrap().raw_os_error(), libc::EIO);
    // A data page that a truncation took is past the end: an end of file for
    // a region that knows its file, EIO for one that does not.
    file.set_len(5 * page).unwrap();
    let err = region.read_exact_at(5 * page, &mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    let err = blind.read_exact_at(5 * page, &mut [0u8; 8]).unwrap_err();
    assert_eq!(RegionFault::of(&err).unwrap().raw_os_error(), libc::EIO);
    // SAFETY: our mapping; the regions are not used after this.
    unsafe { libc::munmap(map.cast(), 6 * PAGE) };
}

/// Issue 20: `mcsafe rescue` of a sparse file on a full tmpfs called every
/// hole lost, where `cp` copies the file. A region that knows its file reads
/// the holes with `pread(2)`: zeros, nothing lost, one signal per hole page
/// (each met once through the mapping, never again), every read accessor
/// agreeing with `read(2)` and with `cp`.
#[test]
fn a_sparse_file_on_a_full_tmpfs_reads_whole_where_the_region_knows_its_file() {
    if !full_tmpfs() {
        return;
    }
    let holes = [0, 2, 3, 4, 9, 15];
    let pages = 16;
    let tmpfs = FullTmpfsFile::new(pages, &holes, |i, page| page.fill(i as u8 + 1)).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tmpfs.path())
        .unwrap();
    let len = pages * PAGE;
    let map = map_file(&file, len);
    // SAFETY: the mapping outlives the region and is only read through it.
    let region = unsafe { MappedRegion::from_raw_parts(map, len) }
        .with_file(&file)
        .unwrap();
    // What read(2) gives, and what cp writes.
    let want = std::fs::read(tmpfs.path()).unwrap();
    let dir = std::env::temp_dir().join(format!("mcsafe-region-cp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copied = dir.join("copy");
    let cp = Command::new("cp")
        .arg(tmpfs.path())
        .arg(&copied)
        .status()
        .unwrap();
    assert!(cp.success());
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        want,
        "cp and read(2) agree"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let _serial = signal_lock();

    let before = recovered();
    let mut buf = vec![0xeeu8; len];
    let read = region.read_lossy_at(0, &mut buf).unwrap();
    assert_eq!(
        recovered() - before,
        holes.len() as u64,
        "one signal per hole page"
    );
    assert!(read.is_complete(), "{read}");
    assert_eq!((read.bytes_read(), read.lost_bytes()), (len, 0));
    assert_eq!(buf, want);
    let reread: Vec<_> = read
        .reread()
        .iter()
        .map(|r| (r.in_file(), r.is_hole()))
        .collect();
    let p = PAGE as u64;
    assert_eq!(
        reread,
        [
            (0..p, true),
            (2 * p..5 * p, true),
            (9 * p..10 * p, true),
            (15 * p..16 * p, true)
        ]
    );
    assert!(read.to_string().contains("nothing lost"), "{read}");

    // The other read accessors agree, from any offset.
    let mut part = vec![0xeeu8; 5 * PAGE];
    assert_eq!(
        region.read_at(PAGE as u64 + 100, &mut part).unwrap(),
        part.len()
    );
    assert_eq!(part, want[PAGE + 100..6 * PAGE + 100]);
    region.read_exact_at(8 * PAGE as u64, &mut part).unwrap();
    assert_eq!(part, want[8 * PAGE..13 * PAGE]);
    assert_eq!(
        region
            .read_exact_crc32c_at(7, 3 * PAGE as u64, &mut part)
            .unwrap(),
        crc32c(7, &want[3 * PAGE..8 * PAGE])
    );
    assert_eq!(part, want[3 * PAGE..8 * PAGE]);
    assert_eq!(region.crc32c_at(0, 0, len).unwrap(), crc32c(0, &want));
    let mut all = Vec::new();
    region.cursor().read_to_end(&mut all).unwrap();
    assert_eq!(all, want);

    // Without its file the region cannot tell a hole from damage: lost, EIO.
    // SAFETY: as above.
    let blind = unsafe { MappedRegion::from_raw_parts(map, len) };
    let read = blind.read_lossy_at(0, &mut buf).unwrap();
    assert_eq!(read.lost_bytes(), holes.len() * PAGE);
    assert!(read.lost().iter().all(|l| l.raw_os_error() == libc::EIO));
    assert!(read.reread().is_empty());
    // SAFETY: our mapping; the regions are not used after this.
    unsafe { libc::munmap(map.cast(), len) };
}

/// Issue 20: a file truncated under a region that knows it is a short read,
/// as `pread(2)` gives, ending where the file ends now: not an I/O error,
/// not a lost range.
#[test]
fn a_file_truncated_under_a_region_that_knows_it_is_a_short_read() {
    let file = TruncatedFile::new();
    let region = file.region_with_file();
    let _serial = signal_lock();
    let mut buf = vec![0xeeu8; 2 * PAGE];
    // Across the end: the bytes up to the end of the file's last page (the
    // kernel shows zeros past the file's end there), then the end of file.
    let from = FILE_END - 100;
    let n = region.read_at(at(from), &mut buf).unwrap();
    assert_eq!(n, LOST_FROM - from);
    assert_eq!(buf[..n], file_bytes(from, n));
    // At or past the end: end of file, Ok(0).
    assert_eq!(region.read_at(at(LOST_FROM), &mut buf).unwrap(), 0);
    assert_eq!(region.read_at(at(LOST_FROM + 5), &mut buf).unwrap(), 0);
    assert_eq!(region.read_at(at(LOST_FROM + PAGE), &mut buf).unwrap(), 0);
    // An exact read across the end: UnexpectedEof that says so.
    let err = region.read_exact_at(at(from), &mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert!(RegionFault::of(&err).is_none(), "not damage: {err}");
    assert!(
        err.to_string()
            .contains(&format!("ends before file offset {LOST_FROM}")),
        "{err}"
    );
    let err = region.crc32c_at(0, at(from), 2 * PAGE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    let err = region
        .read_exact_crc32c_at(0, at(from), &mut buf)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    // Before the end, exact reads work.
    let mut head = vec![0u8; 3 * PAGE];
    region.read_exact_at(0, &mut head).unwrap();
    assert_eq!(head, file_bytes(MAP_FROM, 3 * PAGE));
    // The lossy read: short, nothing lost, zeros after the end.
    let before = recovered();
    let mut rest = vec![0xeeu8; MAP_FROM + MAP_LEN - from];
    let read = region.read_lossy_at(at(from), &mut rest).unwrap();
    assert_eq!(
        recovered() - before,
        2,
        "the two pages past the end, once each"
    );
    assert_eq!(
        (read.bytes_read(), read.file_end(), read.lost_bytes()),
        (LOST_FROM - from, Some(FILE_END as u64), 0)
    );
    assert!(!read.is_complete() && read.reread().is_empty(), "{read}");
    assert_eq!(rest[..n], file_bytes(from, n));
    assert!(rest[n..].iter().all(|&b| b == 0));
    assert!(
        read.to_string().contains("the file ends at 20580"),
        "{read}"
    );
    // A cursor reads the file to its end, as a File would, without an error.
    let mut all = Vec::new();
    region.cursor().read_to_end(&mut all).unwrap();
    assert_eq!(all, file_bytes(MAP_FROM, LOST_FROM - MAP_FROM));
}

#[test]
fn a_poisoned_page_is_eio() {
    let mapping = UffdPoisoned::new(3, &[1], 4);
    let why = mapping.as_ref().err().map(|e| e.to_string());
    if !require(
        mapping.is_ok(),
        "UFFDIO_POISON",
        why.as_deref().unwrap_or(""),
    ) {
        return;
    }
    let mapping = mapping.unwrap();
    // SAFETY: the mapping outlives the region and is only used through it.
    let region = unsafe { MappedRegion::from_raw_parts_mut(mapping.base(), 3 * PAGE) };
    let _serial = signal_lock();
    let err = region.write_all_at(PAGE as u64, b"x").unwrap_err();
    let fault = RegionFault::of(&err).unwrap();
    assert_eq!(
        (fault.raw_os_error(), err.kind()),
        (libc::EIO, ErrorKind::Other)
    );
    let kind = if kernel_has_memory_failure() {
        FaultKind::Poison
    } else {
        FaultKind::AddressError
    };
    assert_eq!(fault.fault().kind(), kind);
    let read = region.read_lossy_at(0, &mut vec![0u8; 3 * PAGE]).unwrap();
    assert_eq!(
        described(read.lost()),
        [(
            PAGE as u64..2 * PAGE as u64,
            PAGE as u64..2 * PAGE as u64,
            Side::Source,
            libc::EIO
        )]
    );
}

#[test]
fn flush_writes_back_through_msync_and_reports_its_errors() {
    let file = TruncatedFile::new();
    let region = file.region(true);
    region.write_all_at(3, b"durable").unwrap();
    region.flush().unwrap();
    region.flush_range(PAGE as u64 + 5, 10).unwrap();
    let bad = region.flush_range(MAP_LEN as u64 - 1, 2).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    // A read-only region has nothing to write back.
    file.region(false).flush().unwrap();
    // msync's own error reaches the caller: here, memory no longer mapped.
    // SAFETY: a fresh anonymous mapping, unmapped at once; the region over
    // it is only flushed, which reads no memory.
    let gone = unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        libc::munmap(p, PAGE);
        MappedRegion::from_raw_parts_mut(p.cast(), PAGE)
    };
    assert_eq!(gone.flush().unwrap_err().raw_os_error(), Some(libc::ENOMEM));
}

#[test]
fn bad_input_is_an_error_and_touches_nothing() {
    let mut memory = vec![1u8; 100];
    // SAFETY: `memory` outlives the regions and is only used through them.
    let (read_only, writable) = unsafe {
        (
            MappedRegion::from_raw_parts(memory.as_ptr(), 100),
            MappedRegion::from_raw_parts_mut(memory.as_mut_ptr(), 100),
        )
    };
    let err = read_only.write_at(0, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(
        read_only.write_all_at(0, b"x").unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let mut buf = [0u8; 10];
    assert_eq!(writable.read_at(100, &mut buf).unwrap(), 0, "at the end");
    assert_eq!(writable.read_at(u64::MAX, &mut buf).unwrap(), 0);
    assert_eq!(writable.read_at(95, &mut buf).unwrap(), 5, "up to the end");
    assert_eq!(
        writable.write_at(100, b"x").unwrap(),
        0,
        "the region does not grow"
    );
    let eof = writable.read_exact_at(95, &mut buf).unwrap_err();
    assert_eq!(eof.kind(), ErrorKind::UnexpectedEof);
    assert!(eof.to_string().contains("do not fit"), "{eof}");
    let full = writable.write_all_at(u64::MAX, b"xy").unwrap_err();
    assert_eq!(full.kind(), ErrorKind::WriteZero);
    let mut cursor = writable.cursor();
    cursor.seek(SeekFrom::Start(98)).unwrap();
    assert_eq!(
        cursor.write_all(b"xyz").unwrap_err().kind(),
        ErrorKind::WriteZero
    );
    assert_eq!(cursor.position(), 100);
    drop((read_only, writable));
    assert_eq!(memory[..98], [1u8; 98], "nothing written before offset 98");
    assert_eq!(&memory[98..], b"xy");

    // SAFETY: an empty region touches nothing.
    let empty = unsafe { MappedRegion::from_raw_parts(ptr::null(), 0) };
    assert!(empty.is_empty());
    assert_eq!(empty.read_at(0, &mut buf).unwrap(), 0);
}

#[test]
#[should_panic(expected = "mcsafe: null region pointer with len 4")]
fn a_null_region_with_a_length_panics() {
    // SAFETY: rejected before any access.
    let _ = unsafe { MappedRegion::from_raw_parts(ptr::null(), 4) };
}

#[test]
fn a_fault_in_the_callers_buffer_is_efault_not_the_regions() {
    let lost = LostTail::new(1, 1, 3);
    let memory = [9u8; 64];
    // SAFETY: `memory` outlives the region.
    let region = unsafe { MappedRegion::from_raw_parts(memory.as_ptr(), 64) };
    let _serial = signal_lock();
    // A slice over a lost page: what a `&mut [u8]` must never be, made here to
    // show how the region reports it.
    // SAFETY: only copy_mc writes through it, and it survives the fault.
    let buf = unsafe { std::slice::from_raw_parts_mut(lost.boundary(), 64) };
    let err = region.read_at(0, buf).unwrap_err();
    assert!(RegionFault::of(&err).is_none());
    let fault = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<mcsafe::Fault>())
        .unwrap();
    assert_eq!(
        (fault.side(), fault.raw_os_error()),
        (Side::Destination, libc::EFAULT)
    );
}

#[cfg(feature = "memmap2")]
#[test]
fn a_region_owns_a_memmap2_mapping_and_survives_its_file_shrinking() {
    let path = std::env::temp_dir().join(format!("mcsafe-region-{}", std::process::id()));
    let data: Vec<u8> = (0..4 * PAGE).map(|i| byte_at(5, i)).collect();
    std::fs::write(&path, &data).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: the file is this test's own; shrinking it is the point.
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let region = MappedRegion::from_mmap_mut(map);
    assert!(region.is_writable());
    file.set_len(2 * PAGE as u64).unwrap();
    let _serial = signal_lock();
    let mut buf = vec![0u8; 4 * PAGE];
    assert_eq!(region.read_at(0, &mut buf).unwrap(), 2 * PAGE);
    assert_eq!(buf[..2 * PAGE], data[..2 * PAGE]);
    let err = region.read_at(2 * PAGE as u64, &mut buf).unwrap_err();
    assert_eq!(
        RegionFault::of(&err).unwrap().lost(),
        2 * PAGE as u64..3 * PAGE as u64
    );
    // Written through the region, flushed, then the map handed back.
    region.write_all_at(5, b"flushed").unwrap();
    region.flush().unwrap();
    let region = region.into_mmap().expect_err("an MmapMut is not an Mmap");
    let map = region.into_mmap_mut().expect("the MmapMut it owns");
    assert_eq!(&map[5..12], b"flushed");
    drop(map);
    let mut on_disk = [0u8; 7];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut on_disk, 5).unwrap();
    assert_eq!(&on_disk, b"flushed");
    // SAFETY: as above, read-only this time.
    let read_only = MappedRegion::from_mmap(unsafe { memmap2::Mmap::map(&file) }.unwrap());
    assert_eq!(read_only.len(), 2 * PAGE);
    assert!(!read_only.is_writable());
    let read_only = read_only
        .into_mmap_mut()
        .expect_err("an Mmap is not an MmapMut");
    assert_eq!(read_only.into_mmap().unwrap().len(), 2 * PAGE);
    // SAFETY: raw parts own no map.
    let raw = unsafe { MappedRegion::from_raw_parts(on_disk.as_ptr(), 7) };
    assert!(raw.into_mmap().is_err());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_file_offset_near_u64_max_saturates_in_errors_instead_of_panicking() {
    let file = TruncatedFile::new();
    let region = file.region(false).with_file_offset(u64::MAX - 10);
    let mut buf = vec![0u8; PAGE];
    let err = region
        .read_exact_at(at(LOST_FROM - 16), &mut buf)
        .unwrap_err();
    let lost = RegionFault::of(&err).expect("a RegionFault");
    assert_eq!(lost.offset(), u64::MAX);
    assert_eq!(lost.lost(), u64::MAX..u64::MAX);
}

#[test]
fn the_accessors_say_what_the_region_was_built_from() {
    let file = TruncatedFile::new();
    let region = file.region(false);
    assert_eq!(region.file_offset(), MAP_FROM as u64);
    assert_eq!(region.len(), MAP_LEN);
    assert!(!region.is_empty());
    assert!(!region.is_writable());
    assert_eq!(region.as_ptr(), file.map.cast_const());
    assert!(file.region(true).is_writable());
    let debug = format!("{region:?}");
    for field in [
        "MappedRegion".to_owned(),
        format!("ptr: {:?}", file.map),
        format!("len: {MAP_LEN}"),
        "writable: false".to_owned(),
        format!("file_offset: {MAP_FROM}"),
    ] {
        assert!(debug.contains(&field), "{field} in {debug}");
    }
    // SAFETY: len 0: nothing is ever read.
    let empty = unsafe { MappedRegion::from_raw_parts(std::ptr::null(), 0) };
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert_eq!(empty.file_offset(), 0, "0 unless told");
}

#[test]
fn set_position_moves_the_cursor_for_reads_and_writes() {
    let file = TruncatedFile::new();
    let region = file.region(true);
    let mut cursor = region.cursor();
    cursor.set_position(at(MAP_FROM + 100));
    assert_eq!(cursor.position(), at(MAP_FROM + 100));
    let mut buf = [0u8; 16];
    cursor.read_exact(&mut buf).unwrap();
    assert_eq!(buf.to_vec(), file_bytes(MAP_FROM + 100, 16));
    assert_eq!(cursor.position(), at(MAP_FROM + 116));
    cursor.set_position(at(MAP_FROM + 8));
    cursor.write_all(b"set_position").unwrap();
    let mut back = [0u8; 12];
    region.read_exact_at(at(MAP_FROM + 8), &mut back).unwrap();
    assert_eq!(&back, b"set_position");
    // Past the end, as for a file: reads return 0.
    cursor.set_position(MAP_LEN as u64 + 5);
    assert_eq!(cursor.read(&mut buf).unwrap(), 0);
    assert!(std::ptr::eq(cursor.region(), &region));
}
