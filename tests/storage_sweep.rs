//! The storage API over truncated memfd mappings (`BUS_ADRERR`), exhaustively:
//! `read_mc`/`write_mc` of every size class at every position around a lost
//! page, under every strategy; `fill_mc` and `crc32c_mc` (the `crc32` routine and
//! the copy-and-software fallback) at every misalignment 0..64, every length
//! 0..=300 and the lost page at every position, then page-crossing and MiB
//! lengths. Each faulting call must report exactly the bytes before the lost page
//! (for a checksum, the CRC of exactly those bytes), the side, the kind, the
//! granule and the address, store exactly what it must before the lost page
//! (each write and fill lands on bytes overwritten with their complement first),
//! write nothing outside its range, and take one signal.

mod common;

use common::*;
use mcsafe::{Fault, FaultKind, Side, Strategy};

/// Asserts the fields of a fault on the lost page of `lost`.
fn assert_fault(f: &Fault, lost: &LostTail, copied: usize, side: Side, what: &str) {
    assert_eq!(f.copied(), copied, "{what}: copied");
    assert_eq!(f.side(), side, "{what}: side");
    assert_eq!(f.kind(), FaultKind::AddressError, "{what}: kind");
    assert_eq!(f.granule(), PAGE, "{what}: granule");
    assert_eq!(
        f.addr() & !(PAGE - 1),
        lost.boundary() as usize,
        "{what}: addr"
    );
}

/// Writes sentinels to the readable bytes within `GUARD` of `p..p+len` (the
/// lost page and what follows it are not readable), and returns the two ranges.
fn guard_around(lost: &LostTail, p: *mut u8, len: usize) -> [(usize, usize); 2] {
    let (start, end) = (p as usize, p as usize + len);
    let (base, boundary) = (lost.base() as usize, lost.boundary() as usize);
    let before = (start.saturating_sub(GUARD).max(base), start.min(boundary));
    let after = (end.min(boundary), (end + GUARD).min(boundary));
    for (a, b) in [before, after] {
        if a < b {
            // SAFETY: readable, writable bytes of the mapping.
            unsafe { std::ptr::write_bytes(a as *mut u8, SENTINEL, b - a) };
        }
    }
    [before, after]
}

fn assert_guards(guards: [(usize, usize); 2], what: &str) {
    for (a, b) in guards {
        if a < b {
            // SAFETY: the guard bytes are readable.
            unsafe { assert_untouched(a as *const u8, b - a, what) };
        }
    }
}

/// `read_mc` and `write_mc` of `[u8; N]` at every position from `N + 8` bytes
/// inside the lost page to `N + 8` bytes before it. Returns the faults.
fn single_sweep<const N: usize>(lost: &LostTail) -> u64 {
    let value: [u8; N] = std::array::from_fn(|i| 0xc0 | i as u8);
    let mut faults = 0;
    for b in -(N as isize) - 8..=N as isize + 8 {
        let at = lost.boundary().wrapping_offset(-b);
        let cut = expected_cut(b, N);
        let what = format!("[u8; {N}] starting {b} bytes before the lost page");

        let before = recovered();
        // SAFETY: mapped; only the lost page faults.
        let read = unsafe { mcsafe::read_mc(at.cast::<[u8; N]>()) };
        match (cut, read) {
            (None, Ok(v)) => {
                let want: [u8; N] =
                    std::array::from_fn(|i| byte_at(7, lost.valid_len() - b as usize + i));
                assert_eq!(v, want, "read {what}");
            }
            (Some(c), Err(f)) => assert_fault(&f, lost, c, Side::Source, &format!("read {what}")),
            (c, r) => panic!("read {what}: expected a cut at {c:?}, got {r:?}"),
        }
        assert_eq!(
            recovered() - before,
            u64::from(cut.is_some()),
            "read {what}: signals"
        );

        let guards = guard_around(lost, at, N);
        // Bytes unlike the value where it must be stored.
        // SAFETY: the first `cut.unwrap_or(N)` bytes lie before the lost page.
        unsafe { overwrite_unlike_copy(at, value.as_ptr(), cut.unwrap_or(N)) };
        let before = recovered();
        // SAFETY: as above, writable.
        let written = unsafe { mcsafe::write_mc(at.cast::<[u8; N]>(), value) };
        let stored = match (cut, written) {
            (None, Ok(())) => N,
            (Some(c), Err(f)) => {
                assert_fault(&f, lost, c, Side::Destination, &format!("write {what}"));
                c
            }
            (c, r) => panic!("write {what}: expected a cut at {c:?}, got {r:?}"),
        };
        assert_eq!(
            recovered() - before,
            u64::from(cut.is_some()),
            "write {what}: signals"
        );
        // SAFETY: the stored bytes lie before the lost page.
        let diff = unsafe { first_difference(at, value.as_ptr(), stored) };
        assert_eq!(diff, None, "write {what}: stored prefix");
        assert_guards(guards, &format!("write {what}"));
        // Put the pattern back for the next read.
        // SAFETY: readable, writable bytes of the mapping.
        unsafe { fill(lost.base(), lost.valid_len(), 7) };
        faults += 2 * u64::from(cut.is_some());
    }
    faults
}

fn single_sweeps() -> u64 {
    let lost = LostTail::new(1, 2, 7);
    single_sweep::<1>(&lost)
        + single_sweep::<2>(&lost)
        + single_sweep::<3>(&lost)
        + single_sweep::<4>(&lost)
        + single_sweep::<5>(&lost)
        + single_sweep::<8>(&lost)
        + single_sweep::<12>(&lost)
        + single_sweep::<16>(&lost)
        + single_sweep::<64>(&lost)
}

/// Under each strategy in turn (a child process per strategy, which
/// `MCSAFE_STRATEGY` fixes): with `fragile`, loads that cross a cache line take
/// the copy path instead of the one-load routine.
#[test]
fn read_and_write_every_size_at_every_position_under_every_strategy() {
    const NAME: &str = "read_and_write_every_size_at_every_position_under_every_strategy";
    for strategy in Strategy::available() {
        // The child runs the first iteration's closure, under its own variable.
        let status = in_child_with_env(NAME, &[(STRATEGY, strategy.name())], || {
            let current = Strategy::current();
            assert_eq!(std::env::var(STRATEGY).as_deref(), Ok(current.name()));
            let faults = single_sweeps();
            eprintln!("{current}: {faults} faulting read_mc/write_mc calls");
            assert!(faults > 300);
        });
        assert!(status.success(), "{strategy}: {status:?}");
    }
}

const STRATEGY: &str = mcsafe::STRATEGY_ENV;

/// `fill_mc` of `len` bytes starting `b` bytes before the lost page. Returns
/// whether it faulted.
fn fill_case(lost: &LostTail, b: isize, len: usize) -> bool {
    let dst = lost.boundary().wrapping_offset(-b);
    let cut = expected_cut(b, len);
    let what = format!("fill of {len} bytes starting {b} bytes before the lost page");
    let guards = guard_around(lost, dst, len);
    // Bytes unlike the fill where it must store (the mapping comes back for the
    // next length holding the previous fill).
    // SAFETY: the first `cut.unwrap_or(len)` bytes lie before the lost page.
    unsafe { overwrite_unlike(dst, cut.unwrap_or(len), |_| 0x3c) };
    let before = recovered();
    // SAFETY: mapped; only the lost page faults.
    let result = unsafe { mcsafe::fill_mc(dst, 0x3c, len) };
    assert_eq!(
        recovered() - before,
        u64::from(cut.is_some()),
        "{what}: signals"
    );
    let filled = match (cut, result) {
        (None, Ok(())) => len,
        (Some(c), Err(f)) => {
            assert_fault(&f, lost, c, Side::Destination, &what);
            c
        }
        (c, r) => panic!("{what}: expected a cut at {c:?}, got {r:?}"),
    };
    // SAFETY: the filled bytes lie before the lost page.
    let diff = unsafe { first_difference(dst, vec![0x3c; filled].as_ptr(), filled) };
    assert_eq!(diff, None, "{what}: filled prefix");
    assert_guards(guards, &what);
    cut.is_some()
}

/// A checksum of `len` bytes starting `b` bytes before the lost page (the
/// first of the lost tail). Returns whether it faulted.
///
/// One signal, except that the folding routine reads four parts of a block at
/// once: its first fault may be on a later lost page of the range, and its
/// forward step then meets the first one: two signals, one per page.
fn crc_case(lost: &LostTail, checksum: (&str, Checksum), b: isize, len: usize) -> bool {
    let src = lost.boundary().wrapping_offset(-b);
    let cut = expected_cut(b, len);
    let what = format!(
        "{} of {len} bytes starting {b} bytes before the lost page",
        checksum.0
    );
    let before = recovered();
    // SAFETY: mapped; only the lost page faults.
    let result = unsafe { (checksum.1)(0, src, len) };
    let signals = recovered() - before;
    let lost_pages_in_range = (src as usize + len)
        .saturating_sub(lost.boundary() as usize)
        .div_ceil(PAGE);
    let parallel = reads_in_parallel(checksum.0);
    let most = if parallel {
        lost_pages_in_range.min(2)
    } else {
        usize::from(cut.is_some())
    };
    assert!(
        (u64::from(cut.is_some())..=most as u64).contains(&signals),
        "{what}: {signals} signals"
    );
    let (crc, checked) = match (cut, result) {
        (None, Ok(crc)) => (crc, len),
        (Some(c), Err(e)) => {
            assert_fault(&e.fault(), lost, c, Side::Source, &what);
            assert_eq!(e.checked(), c, "{what}: checked");
            (e.crc(), c)
        }
        (c, r) => panic!("{what}: expected a cut at {c:?}, got {r:?}"),
    };
    // SAFETY: the checked bytes lie before the lost page.
    let prefix = unsafe { std::slice::from_raw_parts(src, checked) };
    assert_eq!(crc, crc32c_reference(prefix), "{what}: CRC of the prefix");
    cut.is_some()
}

/// Every misalignment 0..64, every length 0..=300, every position; returns
/// (calls, faults).
fn small_sweep(mut case: impl FnMut(&LostTail, isize, usize) -> bool) -> (u64, u64) {
    let lost = LostTail::new(2, 2, 0x5eed);
    let (mut calls, mut faults) = (0, 0);
    for misalign in 0..64 {
        for len in 0..=300 {
            for b in positions(misalign, len) {
                calls += 1;
                faults += u64::from(case(&lost, b, len));
            }
        }
    }
    (calls, faults)
}

#[test]
fn fill_every_alignment_length_and_position() {
    let _serial = signal_lock();
    let (calls, faults) = small_sweep(fill_case);
    eprintln!("fill_mc: {calls} calls, {faults} faults recovered");
    assert!(faults > 50_000);
}

#[test]
fn checksum_every_alignment_length_and_position() {
    let _serial = signal_lock();
    for checksum in checksums() {
        let (calls, faults) = small_sweep(|lost, b, len| crc_case(lost, checksum, b, len));
        eprintln!("{}: {calls} calls, {faults} faults recovered", checksum.0);
        assert!(faults > 50_000);
    }
}

const LARGE_LENGTHS: [usize; 9] = [
    4095,
    4096,
    4097,
    8193,
    12289,
    16383,
    (1 << 20) + 17,
    (3 << 20) + 4095,
    4 << 20,
];

/// Page-crossing and MiB lengths at misalignments 0, 1, 7 and 63, with the lost
/// page at every page of the range (a spread for the MiB ones).
fn large_sweep(mut case: impl FnMut(&LostTail, isize, usize) -> bool) -> u64 {
    // A lost tail as long as the longest call: one that starts in it stays mapped.
    let lost = LostTail::new((4 << 20) / PAGE + 2, (4 << 20) / PAGE + 2, 0xb16);
    let mut faults = 0;
    for len in LARGE_LENGTHS {
        let pages = len.div_ceil(PAGE);
        let mut at: Vec<usize> = if pages <= 5 {
            (0..=pages + 1).collect()
        } else {
            (0..=pages + 1)
                .step_by(97)
                .chain([1, pages / 2, pages - 1, pages])
                .collect()
        };
        at.sort_unstable();
        at.dedup();
        for misalign in [0, 1, 7, 63] {
            for &k in &at {
                // The lost page is page k of the range (k past the end: no fault).
                let b = (k * PAGE) as isize - misalign;
                faults += u64::from(case(&lost, b, len));
            }
        }
    }
    faults
}

#[test]
fn fill_page_crossing_and_mib_lengths() {
    let _serial = signal_lock();
    let faults = large_sweep(fill_case);
    eprintln!("fill_mc: {faults} large faulting calls");
    assert!(faults > 100);
}

#[test]
fn checksum_page_crossing_and_mib_lengths() {
    let _serial = signal_lock();
    for checksum in checksums() {
        let faults = large_sweep(|lost, b, len| crc_case(lost, checksum, b, len));
        eprintln!("{}: {faults} large faulting calls", checksum.0);
        assert!(faults > 100);
    }
}

/// The folding checksums' vector blocks and commits (asm/crc32c_fold.s): lengths
/// of every block shape (vector parts of 2 to 60 units, extra stream words,
/// heads), with the default 8 KiB blocks and with the smallest (320 bytes, so
/// that these lengths take up to 28 commits), at misalignments 0, 1, 13 and 63,
/// the lost page at every 64-byte step: the forward step from a commit up to
/// the lost page must give the exact prefix and its CRC.
#[test]
fn folding_checksum_blocks_and_commits_at_every_position() {
    let _serial = signal_lock();
    // The lost tail is longer than the longest call: a call that starts in it
    // stays inside the mapping.
    let lost = LostTail::new(3, 4, 0xf01d);
    let folds: Vec<_> = checksums()
        .into_iter()
        .filter(|c| c.0.starts_with("fold") || c.0 == "pmull")
        .collect();
    // aarch64's PMULL routine has fixed blocks (3 KiB, then 384 bytes): the
    // block sizes below change nothing there, its commits move with the lengths.
    use mcsafe::internals::CrcPath;
    assert!(
        !folds.is_empty() || !(CrcPath::Fold128.is_available() || CrcPath::Pmull.is_available())
    );
    for fold in folds {
        let (mut calls, mut faults) = (0u64, 0u64);
        for block in [8192, 320] {
            set_blocks(block, block.min(4096), mcsafe::internals::COPY_CRC_BLOCKS.1);
            for len in [
                320,
                335,
                343,
                500,
                663,
                1000,
                1400,
                2900,
                4111,
                8192,
                8192 + 343,
                9000,
            ] {
                for misalign in [0, 1, 13, 63] {
                    for b in positions(misalign, len) {
                        calls += 1;
                        faults += u64::from(crc_case(&lost, fold, b, len));
                    }
                }
            }
        }
        default_blocks();
        eprintln!("{}: {calls} calls, {faults} faults recovered", fold.0);
        assert!(faults > 3000, "{faults}");
    }
}
