//! Case 13 (issue 13): the lossy copy and the region's lossy accesses across
//! real hardware poison (`MADV_HWPOISON`, the kernel's memory-failure path):
//! zeros exactly where the source was lost, the destination's lost pages
//! skipped, the list exact and merged, one signal per lost granule, a huge
//! page lost whole (granule 2 MiB, `skip_to` past the access), and `EIO` from a
//! region over a poisoned memfd page that knows its file: poison is lost, never
//! read again with `pread(2)` as a hole or a truncated page would be (issue
//! 20), by every read accessor. Self-contained: one entry in `cases.rs`.

use std::ops::{ControlFlow, Range};
use std::os::fd::BorrowedFd;

use mcsafe::{FaultKind, MappedRegion, RegionFault, Side, Strategy};

use crate::Child;
use crate::mem::*;

const PAGES: usize = 16;
/// Poisoned pages: a run of two (one range after merging), and one alone.
const POISONED: [usize; 3] = [3, 4, 9];
/// (offset into the poisoned buffer, offset into the other one).
const OFFSETS: [(usize, usize); 3] = [(0, 0), (1, 7), (4000, 0)];

pub fn run(ctx: &mut Child) -> Result<String, String> {
    let copies = small_pages(ctx)?;
    let huge = huge_page(ctx)?;
    let region = region_over_a_poisoned_memfd()?;
    Ok(format!("{copies}; {huge}; {region}"))
}

/// `PAGES` small pages filled with `seed`, the `POISONED` ones poisoned.
fn poisoned(seed: u64) -> Result<Mapping, String> {
    let m = Mapping::anon_small_pages(PAGES * PAGE)?;
    // SAFETY: fresh memory.
    unsafe { fill(m.base, m.len, seed) };
    for page in POISONED {
        m.poison(page * PAGE)?;
    }
    Ok(m)
}

/// The lost ranges a copy starting `at` bytes into the poisoned buffer must
/// report, on `side`.
fn want(at: usize, len: usize, side: Side) -> Vec<(Range<usize>, Side, FaultKind, usize)> {
    [3 * PAGE..5 * PAGE, 9 * PAGE..10 * PAGE]
        .into_iter()
        .map(|r| {
            (
                r.start - at..(r.end - at).min(len),
                side,
                FaultKind::Poison,
                PAGE,
            )
        })
        .collect()
}

/// One lossy copy: its list and its signals, checked; returns the list.
///
/// # Safety
/// As for `copy_mc`.
unsafe fn lossy_copy(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    want: &[(Range<usize>, Side, FaultKind, usize)],
) -> Result<(), String> {
    let before = mcsafe::stats().recovered;
    // SAFETY: per this function's contract.
    let copy = unsafe {
        mcsafe::copy_mc_lossy_with(strategy, dst, src, len, |_| ControlFlow::Continue(()))
    };
    let signals = mcsafe::stats().recovered - before;
    let got: Vec<_> = copy
        .lost()
        .iter()
        .map(|l| (l.range(), l.side(), l.kind(), l.granule()))
        .collect();
    let what = format!("{strategy} dst {dst:?} src {src:?} len {len:#x}: {copy}");
    if got != want {
        return Err(format!("{what}: lost {got:?}, want {want:?}"));
    }
    // The poisoned pages each cost one signal; a copy that had to learn a
    // page twice would take more.
    let granules = POISONED.len() as u64;
    if signals != granules || copy.faults() as u64 != granules {
        return Err(format!(
            "{what}: {signals} signals, {} faults",
            copy.faults()
        ));
    }
    Ok(())
}

fn small_pages(ctx: &Child) -> Result<String, String> {
    let mut copies = 0;
    // Source side: zeros where lost, the pattern elsewhere.
    let src = poisoned(1)?;
    let dst = Mapping::anon_small_pages(PAGES * PAGE + PAGE)?;
    for &strategy in &ctx.strategies {
        for (at, other) in OFFSETS {
            let len = src.len - at;
            // SAFETY: fresh memory of ours; 0xff everywhere, so zeros show.
            unsafe { dst.base.write_bytes(0xff, dst.len) };
            let want = want(at, len, Side::Source);
            // SAFETY: our buffers; only the poisoned pages fault.
            unsafe { lossy_copy(strategy, dst.at(other), src.at(at), len, &want) }?;
            let mut good = 0;
            for range in want
                .iter()
                .map(|w| w.0.clone())
                .chain(std::iter::once(len..len))
            {
                // The pattern before each lost range (and after the last).
                // SAFETY: dst is ordinary memory.
                if let Some(i) = unsafe {
                    first_pattern_difference(dst.at(other + good), range.start - good, 1, at + good)
                } {
                    return Err(format!("{strategy}: byte {} differs", good + i));
                }
                // Zeros in it.
                if let Some(i) = range
                    .clone()
                    // SAFETY: `dst` is ordinary memory and `other + i` inside it
                    // (`i < len <= src.len`, `other < PAGE`).
                    .find(|&i| unsafe { dst.at(other + i).read_volatile() } != 0)
                {
                    return Err(format!("{strategy}: byte {i} of a lost page is not zero"));
                }
                good = range.end;
            }
            copies += 1;
        }
    }
    // Destination side: the poisoned pages are skipped, the rest written.
    let dst = poisoned(2)?;
    let src = Mapping::anon_small_pages(PAGES * PAGE + PAGE)?;
    // SAFETY: fresh memory.
    unsafe { fill(src.base, src.len, 3) };
    for &strategy in &ctx.strategies {
        for (at, other) in OFFSETS {
            let len = dst.len - at;
            let want = want(at, len, Side::Destination);
            // SAFETY: our buffers; only the poisoned pages fault.
            unsafe { lossy_copy(strategy, dst.at(at), src.at(other), len, &want) }?;
            // After the last lost page, the source's bytes.
            let from = 10 * PAGE - at;
            if let Some(i) =
                // SAFETY: `dst.at(at + from)..+(len - from)` is page 10 to the end
                // of `dst`, after the last poisoned page: intact.
                unsafe {
                    first_pattern_difference(dst.at(at + from), len - from, 3, other + from)
                }
            {
                return Err(format!("{strategy}: destination byte {} differs", from + i));
            }
            copies += 1;
        }
    }
    Ok(format!(
        "{copies} lossy copies ({} strategies, both sides): zeros exactly in the lost pages, \
         lists exact and merged, one signal per page",
        ctx.strategies.len()
    ))
}

fn huge_page(ctx: &Child) -> Result<String, String> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB;
    let m = Mapping::new(HUGE, flags, -1)
        .map_err(|e| format!("{e} (no huge pages reserved? boot with hugepages=)"))?;
    // SAFETY: fresh memory.
    unsafe { fill(m.base, m.len, 5) };
    m.poison(77 * PAGE)?;
    // A region read inside the huge page: the whole access is lost, and the
    // granule goes on to the end of the huge page.
    // SAFETY: the mapping outlives the region and is only used through it.
    let region = unsafe { MappedRegion::from_raw_parts(m.base, m.len) };
    let mut buf = vec![0xffu8; 64 * 1024];
    let before = mcsafe::stats().recovered;
    let read = region
        .read_lossy_at(100 * 1024, &mut buf)
        .map_err(|e| e.to_string())?;
    let signals = mcsafe::stats().recovered - before;
    let [only] = read.lost() else {
        return Err(format!("huge page: {read}"));
    };
    let expected = (
        0..buf.len(),
        HUGE,
        HUGE as u64,
        Side::Source,
        FaultKind::Poison,
        1,
    );
    let got = (
        only.range(),
        only.granule(),
        only.skip_to(),
        only.side(),
        only.kind(),
        signals,
    );
    if got != expected || buf.iter().any(|&b| b != 0) {
        return Err(format!("huge page: {got:?}, want {expected:?}"));
    }
    // Every strategy: one signal for the whole huge page.
    let dst = Mapping::anon_small_pages(HUGE)?;
    for &strategy in &ctx.strategies {
        let before = mcsafe::stats().recovered;
        // SAFETY: our buffers; the huge page faults.
        let copy = unsafe {
            mcsafe::copy_mc_lossy_with(strategy, dst.base, m.at(PAGE), HUGE - PAGE, |_| {
                ControlFlow::Continue(())
            })
        };
        let signals = mcsafe::stats().recovered - before;
        let [l] = copy.lost() else {
            return Err(format!("{strategy} huge page: {copy}"));
        };
        if (l.range(), l.granule(), signals) != (0..HUGE - PAGE, HUGE, 1) {
            return Err(format!("{strategy} huge page: {copy}, {signals} signals"));
        }
    }
    Ok("huge page lost whole: one range, granule 2 MiB, skip_to its end, one signal".into())
}

fn region_over_a_poisoned_memfd() -> Result<String, String> {
    const LOST: usize = 5;
    let fd = memfd("mcsafe-vm-lossy", 8)?;
    let m = Mapping::new(8 * PAGE, libc::MAP_SHARED, fd)?;
    // SAFETY: fresh memory.
    unsafe { fill(m.base, m.len, 8) };
    m.poison(LOST * PAGE)?;
    // SAFETY: `fd` is open for the rest of this function.
    let file = unsafe { BorrowedFd::borrow_raw(fd) };
    // SAFETY: the mapping outlives the region and is only used through it.
    let region = unsafe { MappedRegion::from_raw_parts_mut(m.base, m.len) }
        .with_file(&file)
        .map_err(|e| e.to_string())?;
    let lost_page = LOST as u64 * PAGE as u64..(LOST + 1) as u64 * PAGE as u64;
    let err = match region.write_at(lost_page.start + 8, b"x") {
        Ok(n) => return Err(format!("write_at the poisoned page wrote {n} bytes")),
        Err(e) => e,
    };
    let fault = RegionFault::of(&err).ok_or_else(|| format!("no RegionFault in {err}"))?;
    let got = (
        fault.raw_os_error(),
        fault.fault().kind(),
        fault.lost_in_region(),
    );
    if got != (libc::EIO, FaultKind::Poison, lost_page.clone()) {
        return Err(format!("write_at: {got:?} ({err})"));
    }
    let mut buf = vec![0u8; 8 * PAGE];
    let before = mcsafe::stats().recovered;
    let read = region
        .read_lossy_at(0, &mut buf)
        .map_err(|e| e.to_string())?;
    let signals = mcsafe::stats().recovered - before;
    // Poison is lost, whole, once: not read again, not a short read.
    let got = (
        read.bytes_read(),
        read.file_end(),
        read.reread().len(),
        signals,
    );
    if got != (buf.len(), None, 0, 1) {
        return Err(format!(
            "read_lossy_at: (bytes read, file end, reread, signals) {got:?}: {read}"
        ));
    }
    let written = region.write_lossy_at(0, &buf).map_err(|e| e.to_string())?;
    for (lost, side) in [
        (read.lost(), Side::Source),
        (&written[..], Side::Destination),
    ] {
        let got: Vec<_> = lost
            .iter()
            .map(|l| (l.in_region(), l.side(), l.kind(), l.raw_os_error()))
            .collect();
        if got != [(lost_page.clone(), side, FaultKind::Poison, libc::EIO)] {
            return Err(format!("lossy {side}: {got:?}"));
        }
    }
    // The other read accessors: EIO and the poisoned page, one signal each.
    let poisoned = |what: &str, err: std::io::Error, copied: usize| {
        let fault =
            RegionFault::of(&err).ok_or_else(|| format!("{what}: no RegionFault in {err}"))?;
        let got = (
            fault.raw_os_error(),
            fault.fault().kind(),
            fault.lost_in_region(),
            fault.fault().copied(),
        );
        if got != (libc::EIO, FaultKind::Poison, lost_page.clone(), copied) {
            return Err(format!("{what}: {got:?} ({err})"));
        }
        Ok(())
    };
    let before = mcsafe::stats().recovered;
    let mut block = vec![0u8; 2 * PAGE];
    match region.read_at(lost_page.start + 8, &mut block) {
        Ok(n) => return Err(format!("read_at the poisoned page read {n} bytes")),
        Err(e) => poisoned("read_at", e, 0)?,
    }
    let short = region
        .read_at(lost_page.start - 100, &mut block)
        .map_err(|e| e.to_string())?;
    if short != 100 {
        return Err(format!(
            "read_at before the poisoned page: {short} bytes, want 100"
        ));
    }
    match region.read_exact_at(lost_page.start - 100, &mut block) {
        Ok(()) => return Err("read_exact_at across the poisoned page succeeded".into()),
        Err(e) => poisoned("read_exact_at", e, 100)?,
    }
    match region.crc32c_at(0, lost_page.start - 100, 2 * PAGE) {
        Ok(crc) => return Err(format!("crc32c_at across the poisoned page: {crc:#x}")),
        Err(e) => poisoned("crc32c_at", e, 100)?,
    }
    let signals = mcsafe::stats().recovered - before;
    if signals != 4 {
        return Err(format!(
            "{signals} signals for 4 reads that met the poisoned page"
        ));
    }
    // The kernel's own answer for the page, which the region never asks.
    // SAFETY: a read into our buffer from our descriptor.
    let n = unsafe {
        libc::pread(
            fd,
            block.as_mut_ptr().cast(),
            PAGE,
            lost_page.start as libc::off_t,
        )
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if (n, errno) != (-1, Some(libc::EIO)) {
        return Err(format!("pread of the poisoned page: {n}, errno {errno:?}"));
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    Ok(
        "region over a poisoned memfd page that knows its file: EIO and lost for read_at, \
        read_exact_at, crc32c_at and the lossy read and write, one signal each, never read \
        again (pread of it: EIO)"
            .into(),
    )
}

fn memfd(name: &str, pages: usize) -> Result<i32, String> {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: plain system calls.
    unsafe {
        let fd = libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 || libc::ftruncate(fd, (pages * PAGE) as i64) != 0 {
            return Err(os_error("memfd"));
        }
        Ok(fd)
    }
}
