//! Exhaustive sweeps over truncated memfd mappings (`BUS_ADRERR`): every source
//! and destination misalignment 0..64, every length 0..=300, the lost page at
//! every position, page-crossing lengths up to 4 pages and a few MiB, on each
//! side, for every available strategy. Each faulting copy must report exactly
//! the bytes before the lost page, the side, the kind and the granule, leave an
//! exact prefix (the destination is overwritten with the complement of the
//! source before each copy), write nothing outside `dst..dst+len`, and take
//! one signal.

mod common;

use common::*;
use mcsafe::{FaultKind, Side, Strategy};

/// What the heap source holds (`fill`'s seed).
const SEED: u64 = 0xfeed;

const MAX_LEN: usize = 4 << 20;

/// Where the side of a copy that does not fault lies.
#[derive(Clone, Copy, Debug)]
enum Other {
    /// This many bytes past a 64-byte boundary.
    Misalign(usize),
    /// So that `(dst - src) mod 4096` is this (0..255: the vector routines'
    /// backward loop when each range lies inside one page).
    Distance(usize),
}

/// Copies `len` bytes with `strategy`; the faulting side's buffer starts `b`
/// bytes before the first lost byte (`b <= 0`: `-b` bytes inside the lost page),
/// and the other side's buffer lies as `other` says.
/// Checks everything the contract promises; returns whether the copy faulted.
fn check(
    fx: &mut Fixture,
    strategy: Strategy,
    side: Side,
    b: isize,
    other: impl Into<Other>,
    len: usize,
) -> bool {
    let other = other.into();
    let faulting = fx.lost.boundary().wrapping_offset(-b);
    let expected = if len == 0 {
        None
    } else if b <= 0 {
        Some(0)
    } else if (b as usize) < len {
        Some(b as usize)
    } else {
        None
    };
    let page_offset = |d: usize| match side {
        Side::Source => (faulting as usize + d) % 4096,
        _ => (faulting as usize + 4096 - d) % 4096,
    };
    let heap = |g: &mut Guarded| match other {
        Other::Misalign(m) => g.at(m),
        Other::Distance(d) => g.at_page_offset(page_offset(d)),
    };
    let (dst, src) = match side {
        Side::Source => (heap(&mut fx.heap_dst), faulting.cast_const()),
        _ => (faulting, heap(&mut fx.heap_src).cast_const()),
    };
    // Sentinels around the destination where it is readable: before it, and past
    // its end unless that is the lost page.
    // SAFETY: the destination is a Guarded buffer or lies in the fixture's mapping.
    let sentinels = unsafe { Sentinels::place(&fx.lost, side, b, dst, len) };
    // The bytes the copy must store, unlike the source's: the buffers come back
    // for the next length and strategy with the previous copy's bytes in them.
    // SAFETY: the first `expected.unwrap_or(len)` bytes of both lie before the
    // lost page, in distinct buffers.
    unsafe { overwrite_unlike_copy(dst, src, expected.unwrap_or(len)) };

    let signals = recovered();
    // SAFETY: both buffers are mapped; only the lost page may fault (SIGBUS).
    let result = unsafe { mcsafe::copy_mc_with(strategy, dst, src, len) };
    let taken = recovered() - signals;
    let what = format!("{strategy} {side} fault, b={b}, other {other:?}, len {len}");

    let copied = match (expected, result) {
        (None, Ok(())) => len,
        (Some(want), Err(f)) => {
            assert_eq!(f.copied(), want, "{what}: copied");
            assert_eq!(f.side(), side, "{what}: side");
            assert_eq!(f.kind(), FaultKind::AddressError, "{what}: kind");
            assert_eq!(f.granule(), PAGE, "{what}: granule");
            assert_eq!(
                f.addr() & !(PAGE - 1),
                fx.lost.boundary() as usize,
                "{what}: addr {:#x}",
                f.addr()
            );
            want
        }
        (want, got) => panic!("{what}: expected {want:?} bytes before a fault, got {got:?}"),
    };
    // With one thread per strategy, another thread's signals can land between the
    // two reads; the callers also check the total.
    assert!(
        taken >= u64::from(expected.is_some()),
        "{what}: {taken} signals"
    );
    // SAFETY: the compared and inspected bytes are readable (before the lost page).
    unsafe {
        if let Some(i) = first_difference(dst, src, copied) {
            panic!("{what}: byte {i} of the copied prefix differs");
        }
        sentinels.check(&what);
    }
    expected.is_some()
}

impl From<usize> for Other {
    fn from(misalign: usize) -> Other {
        Other::Misalign(misalign)
    }
}

/// Positions for a faulting side that starts `misalign` bytes past a 64-byte
/// boundary: `b` from inside the lost page, through every 64-byte step that
/// keeps the misalignment, to one past `len` (no fault).
fn positions(misalign: usize, len: usize) -> impl Iterator<Item = isize> {
    let first = (64 - misalign) % 64;
    std::iter::once(-(misalign as isize)).chain((first..=len + 64).step_by(64).map(|b| b as isize))
}

/// Every misalignment pair, every length 0..=300, every position; one thread per
/// strategy. Returns (copies, faulting copies).
fn small_sweep(side: Side) -> (u64, u64) {
    let _serial = signal_lock();
    let before = recovered();
    let totals: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = Strategy::available()
            .into_iter()
            .map(|strategy| {
                scope.spawn(move || {
                    let mut fx = Fixture::new(PAGE, SEED);
                    let (mut copies, mut faults) = (0, 0);
                    for s in 0..64 {
                        for d in 0..64 {
                            let (mine, other) = if side == Side::Source { (s, d) } else { (d, s) };
                            for len in 0..=300 {
                                for b in positions(mine, len) {
                                    copies += 1;
                                    faults +=
                                        u64::from(check(&mut fx, strategy, side, b, other, len));
                                }
                            }
                        }
                    }
                    (copies, faults)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let (copies, faults) = totals.iter().fold((0, 0), |a, t| (a.0 + t.0, a.1 + t.1));
    assert_eq!(
        recovered() - before,
        faults,
        "one signal per faulting copy, none for the others"
    );
    eprintln!("{side}: {copies} copies, {faults} faults recovered");
    (copies, faults)
}

#[test]
fn every_alignment_length_and_position_source_side() {
    let (_, faults) = small_sweep(Side::Source);
    assert!(faults > 1_000_000);
}

#[test]
fn every_alignment_length_and_position_destination_side() {
    let (_, faults) = small_sweep(Side::Destination);
    assert!(faults > 1_000_000);
}

const LARGE_LENGTHS: [usize; 15] = [
    4095,
    4096,
    4097,
    8191,
    8192,
    8193,
    12287,
    12288,
    12289,
    16383,
    16384,
    16385,
    (1 << 20) + 17,
    (3 << 20) + 4095,
    4 << 20,
];

const LARGE_ALIGNMENTS: [(usize, usize); 6] = [(0, 0), (1, 0), (0, 1), (31, 7), (63, 63), (8, 40)];

/// Page indices of the range at which to put the lost page: all of them for
/// copies up to 4 pages, a spread for the MiB ones.
fn lost_pages(len: usize) -> Vec<usize> {
    let pages = len.div_ceil(PAGE);
    if pages <= 5 {
        (0..=pages + 1).collect()
    } else {
        let mut v: Vec<usize> = (0..=pages + 1).step_by(61).collect();
        v.extend([1, 2, pages / 2, pages - 1, pages, pages + 1]);
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Counts signals per copy: the caller holds `signal_lock`.
fn large_sweep(side: Side, lengths: &[usize]) {
    let mut fx = Fixture::new(MAX_LEN, SEED);
    let mut faults = 0;
    for strategy in Strategy::available() {
        for &len in lengths {
            for (s, d) in LARGE_ALIGNMENTS {
                let (mine, other) = if side == Side::Source { (s, d) } else { (d, s) };
                for k in lost_pages(len) {
                    // The lost page is page k of the range (k past the end: no fault).
                    let b = (k * PAGE) as isize - mine as isize;
                    let before = recovered();
                    let faulted = check(&mut fx, strategy, side, b, other, len);
                    assert_eq!(
                        recovered() - before,
                        u64::from(faulted),
                        "{strategy} len {len} page {k}: signals"
                    );
                    faults += u64::from(faulted);
                }
            }
        }
    }
    eprintln!("{side}: {faults} large faulting copies");
}

#[test]
fn page_crossing_and_mib_lengths_source_side() {
    let _serial = signal_lock();
    large_sweep(Side::Source, &LARGE_LENGTHS);
}

#[test]
fn page_crossing_and_mib_lengths_destination_side() {
    let _serial = signal_lock();
    large_sweep(Side::Destination, &LARGE_LENGTHS);
}

/// Copies at 4k-aliased distances, `(dst - src) mod 4096` in 0..255: inside one
/// page per side the vector routines copy backward; across pages they must not,
/// or a copy past a truncation would touch the last lost page first and take a
/// signal for each lost page instead of one (the sweep counts them).
#[test]
fn aliased_distances_take_one_signal_per_faulting_copy() {
    let _serial = signal_lock();
    let mut fx = Fixture::new(MAX_LEN, SEED);
    let mut faults = 0;
    for strategy in Strategy::available() {
        for side in [Side::Source, Side::Destination] {
            for distance in [0, 10, 64, 200, 255] {
                for len in [257, 300, 517, 1000, 2048, 4000, 4096, 8192, 12289, 1 << 20] {
                    for k in lost_pages(len) {
                        for start in [0isize, 100] {
                            // Page k of the range is the first lost one; the range
                            // starts `start` bytes into its first page.
                            let b = (k * PAGE) as isize - start;
                            let before = recovered();
                            let faulted =
                                check(&mut fx, strategy, side, b, Other::Distance(distance), len);
                            assert_eq!(
                                recovered() - before,
                                u64::from(faulted),
                                "{strategy} {side} distance {distance} len {len} page {k}: signals"
                            );
                            faults += u64::from(faulted);
                        }
                    }
                }
            }
        }
    }
    eprintln!("aliased distances: {faults} faulting copies, one signal each");
    // 480 per strategy (3 here on x86-64 without AVX-512, 1 on aarch64).
    assert!(faults > 400 * Strategy::available().len() as u64);
}

/// Lengths around low thresholds: the aligned loop, `rep movsb`, the loop again
/// past the `rep movsb` stop, and the non-temporal loop of the vector routines,
/// with the lost page anywhere.
const METHOD_LENGTHS: [usize; 13] = [
    513, 700, 1023, 1024, 1025, 2047, 2048, 4095, 4096, 4097, 8191, 8193, 20000,
];

/// Runs `body` with thresholds low enough for METHOD_LENGTHS to reach every
/// method, then puts the defaults back. It holds the signal lock throughout, so
/// the other tests of this binary (which take it too) never see the low ones.
fn with_low_thresholds(body: impl FnOnce()) {
    use mcsafe::internals::{Thresholds, set_thresholds, thresholds};
    let _serial = signal_lock();
    let defaults = thresholds();
    set_thresholds(Thresholds {
        avx2_rep_movsb: 1024,
        avx512_rep_movsb: 1024,
        rep_movsb_stop: 2048,
        non_temporal: 4096,
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    set_thresholds(defaults);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn every_method_source_side() {
    with_low_thresholds(|| large_sweep(Side::Source, &METHOD_LENGTHS));
}

#[test]
fn every_method_destination_side() {
    with_low_thresholds(|| large_sweep(Side::Destination, &METHOD_LENGTHS));
}
