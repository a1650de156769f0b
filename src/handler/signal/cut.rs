//! Where a lost granule cuts a copy: pure integer arithmetic that cannot panic,
//! run by the SIGBUS handler (under the lints of `signal/mod.rs`) and by the
//! forward step.

use crate::Side;

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

// The tests are in src/copy.rs: test code may panic, this module may not.
