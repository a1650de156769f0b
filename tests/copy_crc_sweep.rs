//! `copy_crc32c_mc` over truncated memfd mappings (`BUS_ADRERR`), on each side,
//! along every path (the one-pass routines of asm/copy_crc32c.s and the careful
//! copy-then-checksum): lengths 0..=300 at several misalignments with the lost
//! page at every 64-byte position, then the routine's block shapes, commits
//! (with the smallest blocks too) and MiB lengths. Each faulting call must
//! report exactly the bytes before the lost page, the side, the kind, the
//! granule and the address, return the CRC of exactly those bytes, leave an
//! exact prefix (the destination is overwritten with the complement of the
//! source before each call), write nothing outside `dst..dst+len`, and take one signal per
//! lost page it reached (two at most for the routines with streams, which read
//! several parts of a block at once, see asm/crc32c_fold.s; exactly one for
//! fold512, which walks in address order). Then the same with the copy's
//! non-temporal threshold low, for fold512's streaming stores.

mod common;

use common::*;
use mcsafe::{FaultKind, Side};

/// What the heap source holds (`fill`'s seed).
const SEED: u64 = 0xc0de;

/// One call along `path`: the faulting side's buffer starts `b` bytes before
/// the first lost byte, the other side's is `other_misalign` bytes past a
/// 64-byte boundary. Returns whether it faulted.
fn check(
    fx: &mut Fixture,
    path: (&str, CopyChecksum),
    side: Side,
    b: isize,
    other_misalign: usize,
    len: usize,
) -> bool {
    let faulting = fx.lost.boundary().wrapping_offset(-b);
    let expected = expected_cut(b, len);
    let (dst, src) = match side {
        Side::Source => (fx.heap_dst.at(other_misalign), faulting.cast_const()),
        _ => (faulting, fx.heap_src.at(other_misalign).cast_const()),
    };
    // Sentinels around the destination where it is readable: before it, and past
    // its end unless that is the lost page.
    // SAFETY: the destination is a Guarded buffer or lies in the fixture's mapping.
    let sentinels = unsafe { Sentinels::place(&fx.lost, side, b, dst, len) };
    // The bytes the copy must store, unlike the source's (the buffers come back
    // for the next length and path with the previous call's bytes in them).
    // SAFETY: the first `expected.unwrap_or(len)` bytes of both lie before the
    // lost page, in distinct buffers.
    unsafe { overwrite_unlike_copy(dst, src, expected.unwrap_or(len)) };

    let signals = recovered();
    // SAFETY: both buffers are mapped; only the lost pages may fault (SIGBUS).
    let result = unsafe { (path.1)(0x1357_9bdf, dst, src, len) };
    let taken = recovered() - signals;
    let what = format!(
        "{} {side} fault, b={b}, other misalign {other_misalign}, len {len}",
        path.0
    );
    let (copied, crc) = match (expected, result) {
        (None, Ok(crc)) => (len, crc),
        (Some(want), Err(e)) => {
            let f = e.fault();
            assert_eq!(e.checked(), want, "{what}: checked");
            assert_eq!(f.side(), side, "{what}: side");
            assert_eq!(f.kind(), FaultKind::AddressError, "{what}: kind");
            assert_eq!(f.granule(), PAGE, "{what}: granule");
            assert_eq!(
                f.addr() & !(PAGE - 1),
                fx.lost.boundary() as usize,
                "{what}: addr {:#x}",
                f.addr()
            );
            (want, e.crc())
        }
        (want, got) => panic!("{what}: expected {want:?} bytes before a fault, got {got:?}"),
    };
    let lost_in_range = (faulting as usize + len)
        .saturating_sub(fx.lost.boundary() as usize)
        .div_ceil(PAGE);
    let most = if reads_in_parallel(path.0) {
        lost_in_range.min(2)
    } else {
        usize::from(expected.is_some())
    };
    assert!(
        (u64::from(expected.is_some())..=most as u64).contains(&taken),
        "{what}: {taken} signals"
    );
    // SAFETY: the compared and inspected bytes are readable (before the lost page).
    unsafe {
        if let Some(i) = first_difference(dst, src, copied) {
            panic!("{what}: byte {i} of the copied prefix differs");
        }
        let prefix = std::slice::from_raw_parts(src, copied);
        assert_eq!(
            crc,
            crc32c_reference_from(0x1357_9bdf, prefix),
            "{what}: CRC of the prefix"
        );
        sentinels.check(&what);
    }
    expected.is_some()
}

fn sweep_small(side: Side) {
    let _serial = signal_lock();
    let mut fx = Fixture::new(PAGE, SEED);
    for path in copy_checksums() {
        let (mut calls, mut faults) = (0u64, 0u64);
        for misalign in [0, 1, 7, 13, 63] {
            for len in 0..=300 {
                for b in positions(misalign, len) {
                    calls += 1;
                    faults += u64::from(check(&mut fx, path, side, b, 63 - misalign, len));
                }
            }
        }
        eprintln!(
            "{} ({side}): {calls} calls, {faults} faults recovered",
            path.0
        );
        assert!(faults > 4000, "{faults}");
    }
}

#[test]
fn every_length_to_300_and_position_source_side() {
    sweep_small(Side::Source);
}

#[test]
fn every_length_to_300_and_position_destination_side() {
    sweep_small(Side::Destination);
}

/// The one-pass routine's block shapes and commits (4 KiB blocks, and 320-byte
/// ones: up to 28 commits per call; with streams and without) at every 64-byte
/// position of the lost page,
/// then page-crossing and MiB lengths with the lost page at every page (a
/// spread for the MiB ones).
fn sweep_large(side: Side) {
    let _serial = signal_lock();
    let mut fx = Fixture::new(2 << 20, SEED);
    for path in copy_checksums() {
        let mut faults = 0u64;
        // Blocks of 4 KiB and of 320 bytes, with streams and without.
        for (block, vector_only) in [(8192, usize::MAX), (320, usize::MAX), (8192, 0), (320, 0)] {
            set_blocks(block, block.min(4096), vector_only);
            for len in [256, 271, 335, 1000, 1400, 4096, 4111, 8192 + 343, 9000] {
                for misalign in [0, 1, 63] {
                    for b in positions(misalign, len) {
                        faults += u64::from(check(&mut fx, path, side, b, 7, len));
                    }
                }
            }
        }
        default_blocks();
        for len in [(1usize << 20) + 17, 2 << 20] {
            let pages = len.div_ceil(PAGE);
            for k in (0..=pages + 1).step_by(61).chain([1, pages / 2, pages]) {
                for misalign in [0, 13] {
                    let b = (k * PAGE) as isize - misalign;
                    faults += u64::from(check(&mut fx, path, side, b, 0, len));
                }
            }
        }
        eprintln!(
            "{} ({side}): {faults} faulting calls over blocks and MiB",
            path.0
        );
        assert!(faults > 1000, "{faults}");
    }
}

#[test]
fn blocks_commits_and_mib_lengths_source_side() {
    sweep_large(Side::Source);
}

#[test]
fn blocks_commits_and_mib_lengths_destination_side() {
    sweep_large(Side::Destination);
}

/// With the copy's non-temporal threshold low (512 bytes), so that fold512's
/// one-pass copy stores around the cache (asm/crc32c_fold512.s): its block
/// shapes and commits and a MiB length, the lost page at every 64-byte position
/// (a spread for the MiB one). Holds the signal lock throughout, so the other
/// tests of this binary never see the low threshold; puts the default back.
fn sweep_non_temporal(side: Side) {
    use mcsafe::internals::{Thresholds, set_thresholds, thresholds};
    let _serial = signal_lock();
    let defaults = thresholds();
    set_thresholds(Thresholds {
        non_temporal: 512,
        ..defaults
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut fx = Fixture::new(2 << 20, SEED);
        for path in copy_checksums() {
            let mut faults = 0u64;
            for block in [8192, 320] {
                set_blocks(block, block, usize::MAX);
                for len in [600, 1000, 4096, 4111, 8192 + 343] {
                    for misalign in [0, 1, 63] {
                        for b in positions(misalign, len) {
                            faults += u64::from(check(&mut fx, path, side, b, 7, len));
                        }
                    }
                }
            }
            default_blocks();
            let len = (1usize << 20) + 17;
            for k in (0..=len.div_ceil(PAGE) + 1).step_by(37) {
                let b = (k * PAGE) as isize - 13;
                faults += u64::from(check(&mut fx, path, side, b, 0, len));
            }
            eprintln!("{} ({side}), non-temporal: {faults} faulting calls", path.0);
            assert!(faults > 500, "{faults}");
        }
    }));
    set_thresholds(defaults);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn non_temporal_stores_source_side() {
    sweep_non_temporal(Side::Source);
}

#[test]
fn non_temporal_stores_destination_side() {
    sweep_non_temporal(Side::Destination);
}

#[test]
fn zero_length_touches_nothing_and_bad_input_is_refused() {
    for (name, path) in copy_checksums() {
        // SAFETY: nothing is read or written for a zero length.
        let none = unsafe { path(7, std::ptr::null_mut(), std::ptr::null(), 0) };
        assert_eq!(none, Ok(7), "{name}");
        let mut buf = vec![0u8; 64];
        let p = buf.as_mut_ptr();
        // Overlap is a caller bug, refused before any access.
        // SAFETY: refused before any access.
        let overlap = std::panic::catch_unwind(|| unsafe { path(0, p.wrapping_add(1), p, 8) });
        assert!(overlap.is_err(), "{name}: overlap accepted");
    }
}
