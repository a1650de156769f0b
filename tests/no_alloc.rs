//! "After `install` returned `Ok`, a copy takes no lock, reads no environment and
//! allocates nothing" (src/lib.rs, `install`): what makes the entry points safe in
//! a signal handler. A counting global allocator counts the allocations made on
//! the measuring thread (the SIGBUS handler runs there too) while each entry point
//! runs, the first call of each right after `install` (no warm-up): successful
//! calls, and calls that meet a lost page (a truncated mapping). Each checksum and
//! copy-and-checksum path this CPU can take is forced in turn (`tests/common`), so
//! that the paths other CPUs take by default are held to it too. The lossy copy is
//! held to it while it loses nothing (its report of lost ranges is a `Vec`).
//!
//! One test, in a binary of its own, so that nothing else in the process calls an
//! entry point first.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use mcsafe::Strategy;

struct Counting;

thread_local! {
    // Const-initialised, without destructors: no allocation or registration of
    // their own, so the allocator may use them.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    let _ = MEASURING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocations this thread makes while `f` runs. `f` must not print or
/// build strings itself: what it returns is judged after the window closes.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    COUNT.with(|c| c.set(0));
    MEASURING.with(|m| m.set(true));
    let r = std::hint::black_box(f());
    MEASURING.with(|m| m.set(false));
    (COUNT.with(Cell::get), r)
}

#[test]
fn after_install_no_entry_point_allocates() {
    // Everything the measured calls need, made before install.
    const LEN: usize = 3 * PAGE;
    let lost = LostTail::new(2, 1, 6); // page 3 lost
    let src: Vec<u8> = (0..LEN).map(|i| byte_at(1, i)).collect();
    let mut dst = vec![0u8; LEN];
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let strategies = Strategy::available();
    let checksums = checksums();
    let copy_checksums = copy_checksums();
    // SAFETY: `src` outlives the region and is only read through it.
    let region = unsafe { mcsafe::MappedRegion::from_raw_parts(s, LEN) };
    let mut buf = vec![0u8; LEN];
    let mut failures: Vec<String> = Vec::new();
    let mut cases = 0;
    let mut check = |what: &str, count: usize, ok: bool| {
        cases += 1;
        if count != 0 {
            failures.push(format!("{what}: {count} allocations"));
        }
        if !ok {
            failures.push(format!("{what}: wrong result"));
        }
    };

    assert_eq!(mcsafe::install(), Ok(()));
    let boundary = lost.boundary();
    let base = lost.base();
    let cut = lost.valid_len();

    // Below, `s` and `d` point to the distinct LEN-byte Vecs `src` and `dst`
    // (nothing else touches `dst` or the mapping during a call), and
    // `base..base + LEN` is the `MAP_SHARED` read-write mapping whose third page,
    // past the end of its file, raises SIGBUS (which the calls allow), from
    // `boundary` on. Nothing forms a reference to the mapping.
    // SAFETY: `d` and `s`: two distinct live Vecs of LEN bytes.
    let (n, r) = allocations(|| unsafe { mcsafe::copy_mc(d, s, LEN) });
    check("copy_mc", n, r.is_ok());
    // SAFETY: `d` is `dst`'s LEN bytes; `base`'s LEN bytes are mapped, the
    // lost page raising SIGBUS.
    let (n, r) = allocations(|| unsafe { mcsafe::copy_mc(d, base, LEN) });
    check(
        "copy_mc, lost source",
        n,
        r.is_err_and(|f| f.copied() == cut),
    );
    // SAFETY: `base`'s LEN bytes are mapped and writable, the lost page raising
    // SIGBUS; `s` is `src`'s LEN bytes.
    let (n, r) = allocations(|| unsafe { mcsafe::copy_mc(base, s, LEN) });
    check(
        "copy_mc, lost destination",
        n,
        r.is_err_and(|f| f.copied() == cut),
    );
    for &strategy in &strategies {
        // SAFETY: as for `copy_mc(d, s, LEN)`; `strategy` is one this CPU runs
        // (from `Strategy::available`).
        let (n, r) = allocations(|| unsafe { mcsafe::copy_mc_with(strategy, d, s, LEN) });
        check(&format!("copy_mc_with {strategy}"), n, r.is_ok());
        // SAFETY: as for `copy_mc(d, base, LEN)`, with an available strategy.
        let (n, r) = allocations(|| unsafe { mcsafe::copy_mc_with(strategy, d, base, LEN) });
        let name = format!("copy_mc_with {strategy}, lost source");
        check(&name, n, r.is_err_and(|f| f.copied() == cut));
        // SAFETY: as for `copy_mc(d, s, LEN)`, with an available strategy.
        let (n, r) = allocations(|| unsafe {
            mcsafe::copy_mc_lossy_with(strategy, d, s, LEN, |_| std::ops::ControlFlow::Continue(()))
        });
        let name = format!("copy_mc_lossy_with {strategy}, nothing lost");
        check(&name, n, r.is_complete());
    }
    // SAFETY: `d` and `s`: two distinct live Vecs of LEN bytes.
    let (n, r) = allocations(|| unsafe { mcsafe::copy_mc_lossy(d, s, LEN) });
    check("copy_mc_lossy, nothing lost", n, r.is_complete());

    // SAFETY: `d` is `dst`'s LEN writable bytes.
    let (n, r) = allocations(|| unsafe { mcsafe::fill_mc(d, 0x11, LEN) });
    check("fill_mc", n, r.is_ok());
    // SAFETY: `base`'s LEN bytes are mapped and writable, the lost page raising
    // SIGBUS.
    let (n, r) = allocations(|| unsafe { mcsafe::fill_mc(base, 0x11, LEN) });
    check("fill_mc, lost", n, r.is_err_and(|f| f.copied() == cut));
    // SAFETY: `src` has LEN >= 8 bytes at `s` (read unaligned); any bytes are a u64.
    let (n, r) = allocations(|| unsafe { mcsafe::read_mc(s.cast::<u64>()) });
    check("read_mc", n, r.is_ok());
    // SAFETY: `boundary` starts the mapping's lost page: mapped, reading it
    // raises SIGBUS; any bytes are a u64.
    let (n, r) = allocations(|| unsafe { mcsafe::read_mc(boundary.cast::<u64>()) });
    check("read_mc, lost", n, r.is_err());
    // SAFETY: `dst` has LEN >= 4 bytes at `d` (written unaligned), touched by
    // nothing else.
    let (n, r) = allocations(|| unsafe { mcsafe::write_mc(d.cast::<u32>(), 7) });
    check("write_mc", n, r.is_ok());
    // SAFETY: `boundary` starts the mapping's lost page: mapped and writable,
    // writing it raises SIGBUS.
    let (n, r) = allocations(|| unsafe { mcsafe::write_mc(boundary.cast::<u32>(), 7) });
    check("write_mc, lost", n, r.is_err());

    let want = crc32c_reference(&src);
    let want_cut = crc32c_reference(&lost_prefix(&lost));
    let (n, r) = allocations(|| mcsafe::crc32c(0, &src));
    check("crc32c", n, r == want);
    for &(name, checksum) in &checksums {
        // SAFETY: `checksum` has `crc32c_mc`'s contract; `s` is `src`'s LEN bytes.
        let (n, r) = allocations(|| unsafe { checksum(0, s, LEN) });
        check(name, n, r.is_ok_and(|c| c == want));
        // SAFETY: as above; `base`'s LEN bytes are mapped, the lost page raising
        // SIGBUS.
        let (n, r) = allocations(|| unsafe { checksum(0, base, LEN) });
        let ok = r.is_err_and(|e| e.checked() == cut && e.crc() == want_cut);
        check(&format!("{name}, lost"), n, ok);
    }
    for &(name, copy_checksum) in &copy_checksums {
        // SAFETY: `copy_checksum` has `copy_crc32c_mc`'s contract; `d` and `s`
        // are two distinct live Vecs of LEN bytes.
        let (n, r) = allocations(|| unsafe { copy_checksum(0, d, s, LEN) });
        check(name, n, r.is_ok_and(|c| c == want));
        // SAFETY: as above, `d` being `dst`'s LEN bytes; `base`'s LEN bytes are
        // mapped, the lost page raising SIGBUS.
        let (n, r) = allocations(|| unsafe { copy_checksum(0, d, base, LEN) });
        let ok = r.is_err_and(|e| e.checked() == cut && e.crc() == want_cut);
        check(&format!("{name}, lost"), n, ok);
    }

    let (n, r) = allocations(|| region.read_at(0, &mut buf));
    check("MappedRegion::read_at", n, r.is_ok_and(|k| k == LEN));
    let (n, r) = allocations(|| region.crc32c_at(0, 0, LEN));
    check("MappedRegion::crc32c_at", n, r.is_ok_and(|c| c == want));
    let (n, r) = allocations(|| (Strategy::current(), mcsafe::stats()));
    check("Strategy::current, stats", n, r.0.is_available());

    // The measuring works: an allocation in the window is counted.
    let (n, _) = allocations(|| vec![0u8; 10]);
    assert_eq!(n, 1, "the counting allocator counts");
    // The lossy copy that loses a page returns its report in a Vec.
    // SAFETY: `d` is `dst`'s LEN bytes; `base`'s LEN bytes are mapped, the lost
    // page raising SIGBUS.
    let (n, r) = allocations(|| unsafe { mcsafe::copy_mc_lossy(d, base, LEN) });
    eprintln!(
        "copy_mc_lossy losing a page: {n} allocation(s), report {}",
        r.lost().len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{cases} calls, none allocated");
}

/// The bytes of `lost`'s mapping before its lost page.
fn lost_prefix(lost: &LostTail) -> Vec<u8> {
    // SAFETY: the first `valid_len` bytes are mapped and backed.
    unsafe { std::slice::from_raw_parts(lost.base(), lost.valid_len()) }.to_vec()
}
