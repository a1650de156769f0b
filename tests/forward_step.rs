//! The careful forward step (`copy.rs`): after a fault, the routine's progress
//! may lag the cut (loads run ahead of stores; a machine check is reported
//! late), and copying the bytes between may fault again, on another page. The
//! result must still be exact.

mod common;
#[path = "common/trace.rs"]
mod trace;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

use common::*;
use mcsafe::{FaultKind, Side, Strategy};
use nix::sys::wait::WaitStatus;

/// Two bad pages in one copy: the source's lost page at copy offset `k`, the
/// destination's at `j < k`, close enough that a routine whose loads run ahead
/// of its stores faults on the source first; the forward step then faults on
/// the destination page. Either way: exactly `j` bytes, destination side.
#[test]
fn two_bad_pages_in_one_copy_stop_at_the_first() {
    let _serial = signal_lock();
    // These lengths (4 to 12 KiB) would go to `rep movsb`, which stores as it
    // loads: keep the vector routines in their loop, whose loads run ahead.
    let defaults = mcsafe::internals::thresholds();
    mcsafe::internals::set_thresholds(mcsafe::internals::Thresholds {
        avx2_rep_movsb: usize::MAX,
        avx512_rep_movsb: usize::MAX,
        rep_movsb_stop: usize::MAX,
        non_temporal: usize::MAX,
    });
    let restore = Restore(defaults);
    let src = LostTail::new(3, 1, 21);
    let dst = LostTail::new(3, 1, 0);
    let mut twice = 0;
    let mut cases = 0;
    for strategy in Strategy::available() {
        for k in [PAGE + 5, 2 * PAGE, 2 * PAGE + 63, 3 * PAGE - 1] {
            for d in (1..=300).step_by(7) {
                let j = k - d;
                let (s, t) = (
                    src.boundary().wrapping_sub(k),
                    dst.boundary().wrapping_sub(j),
                );
                let len = k + 64;
                // Bytes unlike the source's where the copy must store: the
                // destination comes back for the next distance and strategy.
                // SAFETY: both prefixes of `j` bytes lie before the lost pages.
                unsafe { overwrite_unlike_copy(t, s, j) };
                let before = recovered();
                // SAFETY: both mappings are ours: src is lost from offset k, dst from j.
                let f = unsafe { mcsafe::copy_mc_with(strategy, t, s, len) }.unwrap_err();
                let signals = recovered() - before;
                let what = format!("{strategy} k {k} j {j}: {f:?} after {signals} signals");
                assert_eq!(
                    (f.copied(), f.side(), f.kind()),
                    (j, Side::Destination, FaultKind::AddressError),
                    "{what}"
                );
                assert_eq!(f.addr() & !(PAGE - 1), dst.boundary() as usize, "{what}");
                // SAFETY: both prefixes are readable.
                assert_eq!(unsafe { first_difference(t, s, j) }, None, "{what}: prefix");
                assert!((1..=2).contains(&signals), "{what}");
                twice += usize::from(signals == 2);
                cases += 1;
            }
        }
    }
    eprintln!("{cases} copies with two bad pages; the forward step faulted again in {twice}");
    assert!(
        twice > 0,
        "no copy took the forward step into the second page"
    );
    drop(restore);
}

/// Puts the default thresholds back when the test ends, passing or not.
struct Restore(mcsafe::internals::Thresholds);

impl Drop for Restore {
    fn drop(&mut self) {
        mcsafe::internals::set_thresholds(self.0);
    }
}

/// A MAP_SHARED memfd the tracer can truncate under the traced child.
struct SharedFile {
    base: *mut u8,
    fd: OwnedFd,
}

impl SharedFile {
    fn new(pages: usize, seed: u64) -> SharedFile {
        // SAFETY: plain system calls on a descriptor and mapping we own.
        unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"forward".as_ptr(), 0));
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), (pages * PAGE) as i64), 0);
            let base = libc::mmap(
                ptr::null_mut(),
                pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            fill(base.cast(), pages * PAGE, seed);
            SharedFile {
                base: base.cast(),
                fd,
            }
        }
    }
}

/// A machine check reported for page 2 of the source while the routine's
/// progress is still in page 1; page 1 is lost at that moment too (the file is
/// truncated under the copy). The forward step faults on page 1 at its own
/// start, past the beginning of that page: the copy must stop at page 1's
/// boundary, not at the forward step's start.
#[test]
fn a_page_lost_before_the_forward_step_start_cuts_at_its_boundary() {
    if !trace::can_trace("a_page_lost_before_the_forward_step_start_cuts_at_its_boundary") {
        return;
    }
    let status = in_child(
        "a_page_lost_before_the_forward_step_start_cuts_at_its_boundary",
        || {
            mcsafe::install().unwrap();
            for strategy in Strategy::available() {
                const AT: usize = 100;
                let file = SharedFile::new(4, 77);
                let mut dst = vec![0u8; 3 * PAGE];
                let (s, d) = (file.base.wrapping_add(AT), dst.as_mut_ptr());
                let dst_at = d as usize;
                // SAFETY: page 0 of the file is readable, `dst` ours.
                unsafe { overwrite_unlike_copy(d, s, PAGE - AT) };
                let page2 = file.base as usize + 2 * PAGE;
                let info = trace::sigbus_info(libc::BUS_MCEERR_AR, page2, 12);
                let status = trace::inject_when(
                    strategy,
                    // Progress 4200..8000 bytes: its source byte lies in page 1.
                    |regs| (4200..8000).contains(&trace::progress(regs, dst_at)),
                    // Our file: pages from 1 on are lost.
                    || {
                        assert_eq!(
                            // SAFETY: our own memfd's descriptor; truncating it
                            // touches no memory.
                            unsafe { libc::ftruncate(file.fd.as_raw_fd(), PAGE as i64) },
                            0
                        )
                    },
                    info,
                    || {
                        // SAFETY: the file's pages may be taken away (SIGBUS).
                        let f = unsafe { mcsafe::copy_mc_with(strategy, d, s, 3 * PAGE) };
                        let ok = f.is_err_and(|f| f.copied() == PAGE - AT && f.side() == Side::Source && f.addr() & !(PAGE - 1) == file.base as usize + PAGE)
                        // SAFETY: page 0 is readable.
                            && unsafe { first_difference(d, s, PAGE - AT) }.is_none();
                        if !ok {
                            eprintln!("{strategy}: {f:?}");
                        }
                        i32::from(!ok)
                    },
                );
                assert!(
                    matches!(status, WaitStatus::Exited(_, 0)),
                    "{strategy}: {status:?}"
                );
            }
        },
    );
    assert!(status.success(), "{status:?}");
}
