//! The public copies and the argument rules every entry point shares; `cut` and
//! `granule`, the arithmetic of a lost granule (the handler's too). The forward
//! step after a fault is in `forward.rs`.
//!
//! Change it, then run `cargo test -p mcsafe --lib copy`, `cargo test -p
//! mcsafe-tests --test api --test forward_step --test sweep --test lost_pages` and
//! `cargo xtask vm-test`. `cut` and `granule` run in the SIGBUS handler: keep them
//! integer arithmetic that cannot panic.

use crate::arch::{Arch, Target};
use crate::{Fault, Strategy};

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
/// - SIGBUS must not be blocked in the calling thread, nor be in the `sa_mask`
///   of a signal handler that calls this: the kernel forces a blocked
///   synchronous SIGBUS to its default action, and the process dies.
///   [`install`](crate::install) reports a blocked SIGBUS in its thread.
///
/// # Panics
///
/// On first use (of any mcsafe entry point), if the SIGBUS handler cannot be
/// installed or `MCSAFE_STRATEGY` names a strategy this CPU cannot run, or none
/// (see [`Strategy::current`]). Before touching memory, if `len > 0` and a pointer
/// is null, a range could wrap the address space or leave user space (a pointer
/// past 2^61 or a length of 2^61 or more, so that every accepted range ends
/// below 2^62; user space ends below 2^57), or the two ranges overlap
/// (overlap is a caller bug, as for `memcpy`; this crate does not move
/// overlapping ranges). `len == 0` returns `Ok(())` and reads no pointer. The
/// check runs inside the copy routine, so the panic's location is in mcsafe; the
/// message names the ranges, and the backtrace shows the call.
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
#[inline]
pub unsafe fn copy_mc(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    // One indirect call and a test of its status: the routine checks the
    // arguments itself (asm/dispatch.s, CHECK_COPY_ARGUMENTS), and everything else
    // (first use, bad input, the forward step after a fault) is out of line.
    // SAFETY: the routine refuses bad ranges before any access; the caller vouches
    // for the rest.
    unsafe { Arch::copy(dst, src, len) }
}

/// [`copy_mc`] with a chosen [`Strategy`] instead of [`Strategy::current`].
///
/// # Safety
///
/// As for [`copy_mc`].
///
/// # Panics
///
/// As for [`copy_mc`], and, before touching memory and whatever `len` (0 too), if this
/// CPU cannot run `strategy` ([`Strategy::available`] lacks it: an x86-64
/// strategy on aarch64, `AdvSimd` on x86-64, `Avx512` on a CPU without
/// AVX-512): `mcsafe: this CPU cannot run the avx512 strategy (see
/// Strategy::available())`. Its routine never runs (it would raise SIGILL).
#[inline]
pub unsafe fn copy_mc_with(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Fault> {
    // SAFETY: as in copy_mc.
    unsafe { Arch::copy_with(strategy, dst, src, len) }
}

/// Whether a copy of `len > 0` bytes between these pointers must be refused: a
/// null pointer, a range outside the user address space (which covers every
/// range that wraps and every `len > isize::MAX`), or overlapping ranges. The same
/// rule as the routines' `CHECK_COPY_ARGUMENTS` (asm/dispatch.s), for targets
/// without them, for the lossy copy, and for the test that compares the two.
///
/// - user-space addresses are below 2^57 on x86-64 (2^47 with 4-level paging),
///   so if `src - 1`, `dst - 1` and `len` are all below 2^61, neither pointer is
///   null (0 - 1 wraps to all ones) and both ranges end at or below 2^62: none
///   wraps, none reaches past user space into what the check lets through;
/// - with that, the ranges overlap exactly when `|dst - src| < len`, that is
///   when `dst - src + len - 1 < 2 * len - 1` in wrapping unsigned arithmetic.
#[inline(always)]
pub(crate) fn ranges_are_bad(dst: *mut u8, src: *const u8, len: usize) -> bool {
    let (d, s) = (dst as usize, src as usize);
    let null_or_outside = (d.wrapping_sub(1) | s.wrapping_sub(1) | len) >> USER_SPACE_BITS;
    // Wrapping throughout: for len >= 2^61 the sums may wrap, but then
    // `null_or_outside` is set and the answer is already "bad".
    let overlap = d.wrapping_sub(s).wrapping_add(len - 1) < len.wrapping_mul(2).wrapping_sub(1);
    (null_or_outside != 0) | overlap
}

/// Panics as [`copy_mc`] does on bad ranges (`len > 0`): for entry points
/// that take a copy's two buffers but not its hot path.
#[inline]
#[track_caller]
pub(crate) fn check_copy(dst: *mut u8, src: *const u8, len: usize) {
    if ranges_are_bad(dst, src, len) {
        reject(dst, src, len);
    }
}

/// Every user-space address, and every sensible length, is below `1 << 61`; a
/// pointer at most that and a length below it make a range that ends below 2^62.
const USER_SPACE_BITS: u32 = 61;

/// Panics, naming the problem with the ranges (`len > 0`).
#[cold]
#[inline(never)]
pub(crate) fn reject(dst: *mut u8, src: *const u8, len: usize) -> ! {
    let (d, s) = (dst as usize, src as usize);
    check_range("source", s, len);
    check_range("destination", d, len);
    panic!("mcsafe: source {s:#x} and destination {d:#x} overlap (len {len})")
}

/// Panics, naming the problem, unless `start..start + len` is a usable range
/// (`len > 0`): not null, inside user space, so it cannot wrap (the rule of
/// [`ranges_are_bad`] for one range: `start - 1` and `len` below 2^61). Every entry
/// point checks its ranges with it (or with [`ranges_are_bad`]), so they all
/// refuse the same input with the same words.
#[inline(always)]
#[track_caller]
pub(crate) fn check_range(name: &str, start: usize, len: usize) {
    // One test and a branch on the hot path (null wraps to all ones); the
    // message is built out of line.
    if (start.wrapping_sub(1) | len) >> USER_SPACE_BITS != 0 {
        bad_range(name, start, len);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_range(name: &str, start: usize, len: usize) -> ! {
    assert!(start != 0, "mcsafe: null {name} pointer with len {len}");
    panic!("mcsafe: {name} range {start:#x} + {len} wraps the address space or leaves user space")
}

// `cut` and `granule` run in the SIGBUS handler and live under its lints; a build
// without the handler (unprotected) compiles the same file here.
#[cfg(not(mcsafe_protected))]
#[path = "handler/signal/cut.rs"]
mod cut;
#[cfg(mcsafe_protected)]
pub(crate) use crate::handler::signal::cut::{cut, granule};
#[cfg(not(mcsafe_protected))]
pub(crate) use cut::{cut, granule};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    /// The routines' argument check (CHECK_COPY_ARGUMENTS) and `ranges_are_bad`
    /// are one rule: every placement of two ranges around the overlap and
    /// adjacency boundaries, inside a real buffer, is refused (a panic, nothing
    /// written) by every strategy exactly when `ranges_are_bad` says so; and
    /// pointers or lengths that cannot be a range are refused by both.
    #[test]
    #[cfg(mcsafe_protected)]
    fn the_routines_refuse_exactly_what_ranges_are_bad_refuses() {
        let mut buf = vec![0u8; 4 * 4096];
        let base = buf.as_mut_ptr().wrapping_add(4096);
        for len in [1usize, 2, 3, 31, 32, 33, 64, 100, 257, 600] {
            for offset in [0, 1, len - 1, len, len + 1, 2 * len] {
                for (d, s) in [(offset, 0), (0, offset)] {
                    let (dst, src) = (base.wrapping_add(d), base.wrapping_add(s).cast_const());
                    let bad = ranges_are_bad(dst, src, len);
                    assert_eq!(bad, d.abs_diff(s) < len, "len {len} dst+{d} src+{s}");
                    for strategy in crate::Strategy::available() {
                        // SAFETY: both ranges lie in `buf`; a refusal touches nothing.
                        let refused = std::panic::catch_unwind(|| unsafe {
                            crate::copy_mc_with(strategy, dst, src, len)
                        })
                        .is_err();
                        assert_eq!(refused, bad, "{strategy} len {len} dst+{d} src+{s}");
                    }
                }
            }
        }
        let real = base as usize;
        for (d, s, len) in [
            (0, real, 1),
            (real, 0, 1),
            (real, real + 64, 1 << 61),
            (real, real + 64, usize::MAX),
            (1 << 62, real, 1),
            (real, (1 << 62) - 1, 2),
            ((1 << 61) + 1, real, 1),
            (usize::MAX, real, 1),
            // Two of `dst - 1`, `src - 1` and `len` outside with the same high
            // bits, the ranges apart: an `^` for an `|` would let them through.
            ((1 << 62) + 0x10000, (1 << 62) + 0x20000, 1),
            ((1 << 62) + real + 8192, real, 1 << 62),
        ] {
            let (dst, src) = (d as *mut u8, s as *const u8);
            assert!(ranges_are_bad(dst, src, len), "{d:#x} {s:#x} {len}");
            // SAFETY: refused before any access.
            let refused = std::panic::catch_unwind(|| unsafe { crate::copy_mc(dst, src, len) });
            assert!(refused.is_err(), "{d:#x} {s:#x} {len}");
        }
    }

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

    /// `cut` restated byte by byte: the first offset at which either buffer
    /// touches the granule; the side holding `addr`, else the one the granule
    /// overlaps (the source first).
    fn cut_by_bytes(
        addr: usize,
        granule: usize,
        dst: usize,
        src: usize,
        len: usize,
    ) -> Option<(Side, usize)> {
        let start = addr - addr % granule;
        let lost = |a: usize| (start..start + granule).contains(&a);
        let copied = (0..len).find(|&i| lost(src + i) || lost(dst + i))?;
        let touches = |buf: usize| (0..len).any(|i| lost(buf + i));
        let side = if (src..src + len).contains(&addr) {
            Side::Source
        } else if (dst..dst + len).contains(&addr) {
            Side::Destination
        } else if touches(src) {
            Side::Source
        } else {
            Side::Destination
        };
        Some((side, copied))
    }

    #[test]
    fn cut_agrees_with_a_byte_by_byte_reading_on_every_small_layout() {
        // Granules of 16 bytes, buffers anywhere in the first 160 bytes, every
        // length and reported address: adjacent buffers (dst == src + len and
        // the other way), granules covering both, page-aligned addresses at
        // either end. Overlapping buffers are refused before any copy.
        const G: usize = 16;
        let mut cases = 0;
        for len in 1..=40 {
            for src in (0..160).step_by(4) {
                for dst in (0..160).step_by(4) {
                    if src < dst + len && dst < src + len {
                        continue;
                    }
                    for addr in 0..208 {
                        let want = cut_by_bytes(addr, G, dst, src, len);
                        assert_eq!(
                            cut(addr, G, dst, src, len),
                            want,
                            "addr {addr} dst {dst} src {src} len {len}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 1_000_000);
    }

    #[test]
    fn cut_on_a_destination_fault_whose_granule_also_holds_the_source() {
        // dst at 0x201000 in a lost huge page that also holds the source's end:
        // the destination's side, cut where the granule begins (before both).
        assert_eq!(
            cut(0x201000, 0x200000, 0x201000, 0x1ff000, 0x2000),
            Some((Side::Destination, 0))
        );
        // A destination fault in a huge page whose first part the destination
        // holds, the source following it inside the same page: the source's
        // first byte is lost too, so nothing is copied.
        assert_eq!(
            cut(0x200000, 0x200000, 0x1ff800, 0x200800, 0x1000),
            Some((Side::Destination, 0))
        );
        // A page-aligned machine-check address right after the destination.
        assert_eq!(cut(0x91000, PAGE, 0x90000, 0x10000, 0x1000), None);
        // ... which is the source's first byte when the source follows it.
        assert_eq!(
            cut(0x91000, PAGE, 0x90000, 0x91000, 0x1000),
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
