//! The public copies: argument checks, then the routine, then the careful
//! forward step that turns the routine's progress into the exact prefix.

use crate::arch;
use crate::{Fault, FaultKind, Side, Strategy};

/// Copies `len` bytes from `src` to `dst`, surviving a SIGBUS on either side.
///
/// Returns `Ok(())` when every byte was copied. When a page (or another unit,
/// see [`Fault::granule`]) of either buffer is lost, returns `Err(fault)` with
/// `dst[..fault.copied()] == src[..fault.copied()]`, where `copied` is exactly
/// the number of bytes before the lost unit. The lost unit is never touched
/// again: one lost page costs one signal.
///
/// Installs the SIGBUS handler on first use (see [`install`](crate::install))
/// and uses [`Strategy::current`].
///
/// # Safety
///
/// - `src..src + len` must be mapped and readable, and `dst..dst + len` mapped
///   and writable, except where they may raise SIGBUS (poisoned memory, a file
///   mapping past the end of its file, a failed page-in). An unmapped or
///   read-only page raises SIGSEGV, which mcsafe does not catch: the process
///   dies as it would with `memcpy`.
/// - Nothing else may access `dst..dst + len` during the call, and the bytes
///   written are plain bytes (any type stored there must accept them).
/// - Do not form Rust references (`&[u8]`) to memory that may fault: the
///   compiler may read through them on its own. Pass raw pointers.
///
/// # Panics
///
/// Before touching memory, if `len > 0` and a pointer is null, a range wraps
/// the address space or exceeds `isize::MAX` bytes, or the two ranges overlap
/// (overlap is a caller bug, as for `memcpy`; this crate does not move
/// overlapping ranges). `len == 0` returns `Ok(())` and reads no pointer.
///
/// # Example
///
/// ```
/// let src = vec![7u8; 4096];
/// let mut dst = vec![0u8; 4096];
/// // SAFETY: both buffers are valid, distinct heap allocations.
/// unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), src.len()) }.unwrap();
/// assert_eq!(src, dst);
/// ```
#[track_caller]
pub unsafe fn copy_mc(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    check_ranges(dst, src, len);
    // SAFETY: ranges checked; the caller guarantees the rest.
    unsafe { copy_with(arch::current_routine(), dst, src, len) }
}

/// [`copy_mc`] with a chosen [`Strategy`] instead of [`Strategy::current`].
///
/// # Safety
///
/// As for [`copy_mc`].
///
/// # Panics
///
/// As for [`copy_mc`], and if this CPU cannot run `strategy` (see
/// [`Strategy::available`]).
#[track_caller]
pub unsafe fn copy_mc_with(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    check_ranges(dst, src, len);
    // SAFETY: ranges checked; the caller guarantees the rest.
    unsafe { copy_with(arch::routine_for(strategy), dst, src, len) }
}

/// Panics, naming the problem, unless both ranges are usable by a copy.
#[track_caller]
fn check_ranges(dst: *mut u8, src: *const u8, len: usize) {
    let (d, s) = (dst as usize, src as usize);
    for (name, start) in [("source", s), ("destination", d)] {
        assert!(start != 0, "mcsafe: null {name} pointer with len {len}");
        assert!(
            len <= isize::MAX as usize && start.checked_add(len).is_some(),
            "mcsafe: {name} range {start:#x} + {len} wraps the address space"
        );
    }
    assert!(
        s + len <= d || d + len <= s,
        "mcsafe: source {s:#x} and destination {d:#x} overlap (len {len})"
    );
}

/// Runs `routine` over the whole range; after a fault, the careful forward step.
///
/// The routine stops with `progress` bytes known copied, and a lost granule `g`
/// that cuts the copy at `limit` bytes (the bytes before `g`). If the routine was
/// behind (progress < limit: loads run ahead of stores, a machine check is
/// reported late), the same routine copies `progress..limit`, which ends before
/// `g` on both sides and so never touches it. That step may fault on another,
/// earlier granule: then it is the new cut, and so on; if that granule begins
/// before the step's start (it was lost while the copy ran), the cut falls
/// below the progress and the copy ends there. Each round strictly shortens
/// the range, so the loop ends.
///
/// # Safety
/// As for `routines::call`, for `dst..dst+len` and `src..src+len`.
unsafe fn copy_with(
    routine: arch::Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Fault> {
    let mut done = 0;
    let mut end = len;
    let mut cut_at: Option<Fault> = None;
    loop {
        // SAFETY: done < end <= len, so both sub-ranges lie inside the caller's.
        let result = unsafe { arch::call(routine, dst.add(done), src.add(done), end - done) };
        let stopped = match result {
            Ok(()) => return cut_at.map_or(Ok(()), Err),
            Err(stopped) => stopped,
        };
        // The cut is measured over the whole copy, not the piece this call ran:
        // a granule lost while the copy ran (a file truncated under it) may begin
        // before the piece, inside bytes an earlier call already copied. The
        // copy then stops before that granule too, at a granule boundary.
        let fault = describe(stopped, dst, src, len);
        let progress = done + stopped.progress;
        if progress >= fault.copied() {
            return Err(fault);
        }
        done = progress;
        end = fault.copied();
        cut_at = Some(fault);
    }
}

/// The [`Fault`] of a stopped routine, for the whole copy `dst`, `src`, `len`.
fn describe(stopped: arch::Stopped, dst: *mut u8, src: *const u8, len: usize) -> Fault {
    let kind = match stopped.code {
        libc::BUS_MCEERR_AR => FaultKind::Poison,
        libc::BUS_OBJERR => FaultKind::ObjectError,
        _ => FaultKind::AddressError,
    };
    let granule = granule(stopped.addr_lsb, arch::page_size());
    // The handler redirected only because `cut` found an overlap; recomputing it
    // here gives the same answer from the same registers' values.
    let (side, copied) =
        cut(stopped.addr, granule, dst as usize, src as usize, len).unwrap_or((Side::Source, 0));
    Fault::new(copied, side, kind, stopped.addr, granule)
}

/// Bytes in the unit the kernel reports lost: `1 << si_addr_lsb`, or the page
/// size when it reports 0. Async-signal-safe, never panics.
pub(crate) fn granule(addr_lsb: u32, page_size: usize) -> usize {
    match addr_lsb {
        0 => page_size,
        lsb => 1usize << lsb.min(usize::BITS - 1),
    }
}

/// Where a lost granule cuts a copy of `len` bytes from `src` to `dst`: the
/// faulting side and the bytes before the granule, or `None` if the granule
/// touches neither buffer (then the fault is not this copy's).
///
/// The side is the buffer that holds `addr` itself, or, for a page-aligned
/// machine-check address that lies in neither, the one the granule overlaps
/// (the source first: only loads consume poison). When the granule overlaps
/// both buffers, the cut is the earlier of the two, so that neither side's
/// part of it is touched again.
///
/// Pure integer arithmetic that cannot panic: the SIGBUS handler calls it.
pub(crate) fn cut(
    addr: usize,
    granule: usize,
    dst: usize,
    src: usize,
    len: usize,
) -> Option<(Side, usize)> {
    let start = addr & !granule.wrapping_sub(1);
    let end = start.saturating_add(granule);
    let before = |buf: usize| {
        (start < buf.saturating_add(len) && buf < end).then(|| start.saturating_sub(buf))
    };
    let (in_src, in_dst) = (before(src), before(dst));
    let side = if addr.wrapping_sub(src) < len {
        Side::Source
    } else if addr.wrapping_sub(dst) < len {
        Side::Destination
    } else if in_src.is_some() {
        Side::Source
    } else {
        Side::Destination
    };
    let copied = match (in_src, in_dst) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    Some((side, copied))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn cut_counts_bytes_before_the_granule_on_the_faulting_side() {
        // src 0x10010..+0x3000; the page at 0x12000 is lost, exact address inside it.
        assert_eq!(
            cut(0x12345, PAGE, 0x90000, 0x10010, 0x3000),
            Some((Side::Source, 0x12000 - 0x10010))
        );
        // Page-aligned report (real machine check) of the same page.
        assert_eq!(
            cut(0x12000, PAGE, 0x90000, 0x10010, 0x3000),
            Some((Side::Source, 0x1ff0))
        );
        // Destination side.
        assert_eq!(
            cut(0x91000, PAGE, 0x90800, 0x10000, 0x2000),
            Some((Side::Destination, 0x800))
        );
        // Granule starting before the buffer: nothing copied.
        assert_eq!(
            cut(0x10000, PAGE, 0x90000, 0x10010, 0x100),
            Some((Side::Source, 0))
        );
    }

    #[test]
    fn cut_rejects_a_granule_outside_both_buffers() {
        assert_eq!(cut(0x20000, PAGE, 0x90000, 0x10000, 0x1000), None);
        // The granule right after the end does not overlap.
        assert_eq!(cut(0x11000, PAGE, 0x90000, 0x10000, 0x1000), None);
    }

    #[test]
    fn cut_stops_before_the_granule_on_both_sides_when_it_holds_both() {
        // src at page offset 0x100, dst at 0x900 of the same lost page.
        assert_eq!(
            cut(0x10100, PAGE, 0x10900, 0x10100, 0x200),
            Some((Side::Source, 0))
        );
        // A huge granule covering src from its middle and dst from its start.
        assert_eq!(
            cut(0x200000, 0x200000, 0x201000, 0x1ff000, 0x2000),
            Some((Side::Source, 0))
        );
    }

    #[test]
    fn granule_defaults_to_the_page_and_never_overflows() {
        assert_eq!(granule(0, PAGE), PAGE);
        assert_eq!(granule(12, PAGE), 4096);
        assert_eq!(granule(21, PAGE), 2 << 20);
        assert_eq!(granule(200, PAGE), 1 << 63);
    }
}
