//! `UFFDIO_POISON` markers: a poisoned page in the middle of a buffer, with good
//! pages after it, on either side of the copy, for every strategy. The copy must
//! stop exactly before the poisoned page, with one signal, store the exact
//! prefix (over bytes overwritten with the source's complement first), and
//! write nothing past its end.

mod common;

use common::*;
use mcsafe::{FaultKind, Side, Strategy};

const PAGES: usize = 5;
const POISONED: usize = 2;

fn expected_kind() -> FaultKind {
    if kernel_has_memory_failure() {
        FaultKind::Poison
    } else {
        FaultKind::AddressError
    }
}

fn poisoned_mapping() -> Option<UffdPoisoned> {
    let mapping = UffdPoisoned::new(PAGES, &[POISONED], 0xbad);
    let why = mapping
        .as_ref()
        .err()
        .map(|e| format!("UFFDIO_POISON set-up failed: {e} (needs Linux 6.6+ with userfaultfd)"));
    require(
        mapping.is_ok(),
        "UFFDIO_POISON",
        why.as_deref().unwrap_or(""),
    )
    .then(|| mapping.unwrap())
}

/// Copies with the poisoned mapping on `side`, starting `start` bytes into it.
fn sweep(side: Side) {
    let Some(mapping) = poisoned_mapping() else {
        return;
    };
    let _serial = signal_lock();
    let mut heap = Guarded::new(PAGES * PAGE);
    let heap_ptr = heap.at(0);
    // SAFETY: the heap buffer has room for PAGES pages.
    unsafe { fill(heap_ptr, PAGES * PAGE, 0xcafe) };
    let bad = mapping.base().wrapping_add(POISONED * PAGE) as usize;
    let mut cases = 0;
    for strategy in Strategy::available() {
        for start in [
            0,
            1,
            63,
            64,
            100,
            PAGE - 1,
            PAGE,
            PAGE + 7,
            2 * PAGE - 1,
            2 * PAGE,
            2 * PAGE + 100,
        ] {
            for len in [
                1,
                2,
                31,
                64,
                200,
                PAGE,
                PAGE + 1,
                3 * PAGE - 5,
                5 * PAGE - start,
            ] {
                if start + len > PAGES * PAGE {
                    continue;
                }
                let on_map = mapping.base().wrapping_add(start);
                let (dst, src) = match side {
                    Side::Source => (heap.at(start % 64), on_map.cast_const()),
                    _ => (on_map, heap_ptr.cast_const()),
                };
                let begins = on_map as usize;
                let hits = begins < bad + PAGE && bad < begins + len;
                let want = if hits {
                    bad.saturating_sub(begins)
                } else {
                    len
                };
                // What the copy must store, unlike the source (the buffers come
                // back for the next length and strategy), and sentinels just past
                // the destination's end where that is readable: the heap buffer,
                // or the mapping's pages other than the poisoned one.
                // SAFETY: the first `want` bytes of both miss the poisoned page:
                // the bytes before it, or all `len` when the call misses it.
                unsafe { overwrite_unlike_copy(dst, src, want) };
                let end = dst as usize + len;
                let past = match side {
                    Side::Source => GUARD,
                    _ if end < bad => (bad - end).min(GUARD),
                    _ if end < bad + PAGE => 0,
                    _ => (mapping.base() as usize + PAGES * PAGE - end).min(GUARD),
                };
                // SAFETY: readable, writable bytes (the heap buffer has GUARD bytes
                // of room past any `len` here).
                unsafe { std::ptr::write_bytes(end as *mut u8, SENTINEL, past) };
                let before = recovered();
                // SAFETY: both buffers are mapped; only the poisoned page faults.
                let result = unsafe { mcsafe::copy_mc_with(strategy, dst, src, len) };
                let what = format!("{strategy} {side} start {start} len {len}");
                assert_eq!(recovered() - before, u64::from(hits), "{what}: signals");
                let copied = if hits {
                    let f = result.unwrap_err();
                    assert_eq!(f.copied(), want, "{what}: copied");
                    assert_eq!(f.side(), side, "{what}");
                    assert_eq!(f.kind(), expected_kind(), "{what}");
                    assert_eq!(f.granule(), PAGE, "{what}");
                    assert_eq!(f.addr() & !(PAGE - 1), bad, "{what}");
                    want
                } else {
                    assert_eq!(result, Ok(()), "{what}");
                    len
                };
                assert_eq!(
                    // SAFETY: `copied` is `want`: bytes of both that miss the
                    // poisoned page (see above).
                    unsafe { first_difference(dst, src, copied) },
                    None,
                    "{what}: prefix"
                );
                // SAFETY: the sentinels written above.
                unsafe { assert_untouched(end as *const u8, past, &format!("{what}: past len")) };
                cases += 1;
            }
        }
    }
    eprintln!("{side}: {cases} copies over a UFFDIO_POISON page");
}

#[test]
fn poisoned_source_page_stops_the_copy_exactly() {
    sweep(Side::Source);
}

#[test]
fn poisoned_destination_page_stops_the_copy_exactly() {
    sweep(Side::Destination);
}

#[test]
fn pages_after_the_poisoned_one_stay_readable() {
    let Some(mapping) = poisoned_mapping() else {
        return;
    };
    let mut dst = vec![0u8; PAGE];
    let after = mapping.base().wrapping_add((POISONED + 1) * PAGE);
    // SAFETY: the page after the poisoned one holds data.
    unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), after, PAGE) }.unwrap();
    assert!(
        dst.iter()
            .enumerate()
            .all(|(i, &b)| b == byte_at(0xbad, (POISONED + 1) * PAGE + i))
    );
}
