//! The storage API over a `UFFDIO_POISON` page (the per-page poison marker,
//! `BUS_MCEERR_AR` where the kernel has memory-failure support): single reads
//! and writes that straddle it, fills and checksums that cross it, a region
//! read over it. Each stops exactly before the poisoned page with one signal,
//! storing the exact prefix (over bytes overwritten with their complement
//! first), and the pages after it stay usable.

mod common;

use common::*;
use mcsafe::{FaultKind, MappedRegion, RegionFault, Side};

const PAGES: usize = 5;
const POISONED: usize = 2;
const SEED: u64 = 0x90150;

fn mapping() -> Option<UffdPoisoned> {
    match UffdPoisoned::new(PAGES, &[POISONED], SEED) {
        Ok(m) => Some(m),
        Err(e) => {
            let why = format!("UFFDIO_POISON set-up failed: {e} (needs Linux 6.6+)");
            require(false, "the storage API over UFFDIO_POISON", &why);
            None
        }
    }
}

fn kind() -> FaultKind {
    if kernel_has_memory_failure() {
        FaultKind::Poison
    } else {
        FaultKind::AddressError
    }
}

/// Runs `call` and checks it took exactly `signals` signals.
fn counted<R>(signals: u64, what: &str, call: impl FnOnce() -> R) -> R {
    let before = recovered();
    let r = call();
    assert_eq!(recovered() - before, signals, "{what}: signals");
    r
}

#[test]
fn every_storage_call_stops_exactly_before_the_poisoned_page() {
    let Some(map) = mapping() else {
        return;
    };
    let _serial = signal_lock();
    let bad = map.base().wrapping_add(POISONED * PAGE);
    let check = |f: mcsafe::Fault, copied: usize, side: Side, what: &str| {
        assert_eq!(
            (f.copied(), f.side(), f.kind(), f.granule()),
            (copied, side, kind(), PAGE),
            "{what}"
        );
        assert_eq!(f.addr() & !(PAGE - 1), bad as usize, "{what}");
    };
    let mut cases = 0;
    for b in 0..8usize {
        let at = bad.wrapping_sub(b);
        // SAFETY: mapped; only the poisoned page faults.
        let read = counted(1, "read", || unsafe { mcsafe::read_mc(at.cast::<u64>()) });
        check(read.unwrap_err(), b, Side::Source, "read_mc");
        // Bytes unlike the value where it must be stored (the previous write
        // left 0xff there).
        // SAFETY: the first `b` bytes lie before the poisoned page.
        unsafe { overwrite_unlike(at, b, |_| 0xff) };
        // SAFETY: as above.
        let write = counted(1, "write", || unsafe {
            mcsafe::write_mc(at.cast::<u64>(), !0)
        });
        check(write.unwrap_err(), b, Side::Destination, "write_mc");
        // SAFETY: the stored bytes lie before the poisoned page.
        assert_eq!(unsafe { first_difference(at, [0xff; 8].as_ptr(), b) }, None);
        cases += 2;
    }
    for start in [0, 1, 63, PAGE + 5, 2 * PAGE - 1, 2 * PAGE] {
        let len = PAGES * PAGE - start;
        let p = map.base().wrapping_add(start);
        let cut = (POISONED * PAGE).saturating_sub(start);
        for (name, checksum) in checksums() {
            // SAFETY: as above.
            let e = counted(1, name, || unsafe { checksum(0, p, len) }).unwrap_err();
            check(e.fault(), cut, Side::Source, name);
            // SAFETY: the checked bytes lie before the poisoned page.
            let prefix = unsafe { std::slice::from_raw_parts(p, cut) };
            assert_eq!(e.crc(), crc32c_reference(prefix), "{name} from {start}");
        }
        // Bytes unlike the fill where it must store (the previous start's
        // fill left 0xee there).
        // SAFETY: the first `cut` bytes lie before the poisoned page.
        unsafe { overwrite_unlike(p, cut, |_| 0xee) };
        // SAFETY: as above.
        let fill = counted(1, "fill", || unsafe { mcsafe::fill_mc(p, 0xee, len) });
        check(fill.unwrap_err(), cut, Side::Destination, "fill_mc");
        assert_eq!(
            // SAFETY: the `cut` filled bytes at `p` lie before the poisoned page;
            // the temporary Vec of `cut` bytes lives for the whole call.
            unsafe { first_difference(p, vec![0xee; cut].as_ptr(), cut) },
            None
        );
        cases += 3;
    }
    // The pages after the poisoned one were never touched, and still work.
    let after = map.base().wrapping_add((POISONED + 1) * PAGE);
    // SAFETY: a page after the poisoned one.
    let value = unsafe { mcsafe::read_mc(after.cast::<u8>()) }.unwrap();
    assert_eq!(value, byte_at(SEED, (POISONED + 1) * PAGE));
    eprintln!("{cases} storage calls over a UFFDIO_POISON page, each exact");
}

#[test]
fn a_region_reports_the_poisoned_page_as_eio_with_its_offsets() {
    let Some(map) = mapping() else {
        return;
    };
    let _serial = signal_lock();
    // SAFETY: the mapping outlives the region and is only used through it.
    let region =
        unsafe { MappedRegion::from_raw_parts(map.base(), PAGES * PAGE) }.with_file_offset(1 << 30);
    let mut buf = vec![0u8; 3 * PAGE];
    let n = counted(1, "short read", || region.read_at(PAGE as u64, &mut buf)).unwrap();
    assert_eq!(n, PAGE);
    let err = counted(1, "read", || {
        region.read_at((2 * PAGE + 9) as u64, &mut buf)
    });
    let err = err.unwrap_err();
    let lost = RegionFault::of(&err).expect("a RegionFault");
    let page = (1 << 30) + (POISONED * PAGE) as u64;
    assert_eq!(lost.lost(), page..page + PAGE as u64);
    assert_eq!(lost.offset(), page + 9);
    assert_eq!(
        (lost.raw_os_error(), lost.fault().kind()),
        (libc::EIO, kind())
    );
    let err = counted(1, "crc", || region.crc32c_at(0, 0, PAGES * PAGE)).unwrap_err();
    assert_eq!(RegionFault::of(&err).unwrap().offset(), page);
}
