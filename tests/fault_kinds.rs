//! Each `si_code` a copy fault can carry, and its `si_addr_lsb`, as the
//! [`Fault`](mcsafe::Fault) says them: `BUS_MCEERR_AR` is `Poison`,
//! `BUS_ADRERR` `AddressError`, `BUS_OBJERR` `ObjectError` (a failed page-in,
//! which no test can make the kernel raise on demand); the granule is
//! `1 << lsb`, or the page when the kernel reports 0. Each is delivered by
//! ptrace at an instruction inside the copy routine (the only way to get a
//! positive `si_code` there short of the kernel, see `common/trace.rs`), for
//! an address in the source, with every strategy.

mod common;
#[path = "common/trace.rs"]
mod trace;

use common::*;
use mcsafe::{FaultKind, Side, Strategy};
use nix::sys::wait::WaitStatus;

/// Long enough that the granules used lie well inside the source.
const LEN: usize = 64 * 1024;

#[test]
fn each_kernel_code_is_its_fault_kind_with_its_granule() {
    if !trace::can_trace("each_kernel_code_is_its_fault_kind_with_its_granule") {
        return;
    }
    let status = in_child(
        "each_kernel_code_is_its_fault_kind_with_its_granule",
        || {
            mcsafe::install().unwrap();
            let cases = [
                (libc::BUS_MCEERR_AR, 12, FaultKind::Poison, PAGE),
                (libc::BUS_ADRERR, 0, FaultKind::AddressError, PAGE),
                (libc::BUS_OBJERR, 0, FaultKind::ObjectError, PAGE),
                (libc::BUS_OBJERR, 13, FaultKind::ObjectError, 2 * PAGE),
            ];
            for strategy in Strategy::available() {
                for (code, lsb, kind, granule) in cases {
                    let src: Vec<u8> = (0..LEN).map(|i| byte_at(8, i)).collect();
                    let mut dst = vec![0u8; LEN];
                    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
                    // An address inside the source's third granule.
                    let lost = (s as usize + 2 * granule) & !(granule - 1);
                    let info = trace::sigbus_info(code, lost + 8, lsb);
                    let status = trace::inject_at(strategy, 5, info, || {
                        // SAFETY: two distinct heap buffers.
                        let f = unsafe { mcsafe::copy_mc_with(strategy, d, s, LEN) };
                        let want = (lost - s as usize, Side::Source, kind, lost + 8, granule);
                        let got =
                            f.map_err(|f| (f.copied(), f.side(), f.kind(), f.addr(), f.granule()));
                        if got != Err(want) {
                            eprintln!("{strategy} code {code} lsb {lsb}: {got:?}, want {want:?}");
                            return 1;
                        }
                        0
                    });
                    assert!(
                        matches!(status, WaitStatus::Exited(_, 0)),
                        "{strategy} code {code} lsb {lsb}: {status:?}"
                    );
                }
            }
        },
    );
    assert!(status.success(), "{status:?}");
}

/// `BUS_ADRALN` (an alignment fault: arm64 device memory, say) is no memory
/// error, even at an instruction inside a copy routine: passed on to the
/// default action, the traced copy dies by SIGBUS instead of returning a
/// Fault. (A real one cannot be had under QEMU's TCG, which sends an
/// unaligned device load to the bus; see xtask/guest/src/aarch64.rs.)
#[test]
fn an_alignment_fault_in_a_copy_is_passed_on() {
    if !trace::can_trace("an_alignment_fault_in_a_copy_is_passed_on") {
        return;
    }
    let status = in_child("an_alignment_fault_in_a_copy_is_passed_on", || {
        mcsafe::install().unwrap();
        for strategy in Strategy::available() {
            let src: Vec<u8> = (0..LEN).map(|i| byte_at(9, i)).collect();
            let mut dst = vec![0u8; LEN];
            let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
            let info = trace::sigbus_info(libc::BUS_ADRALN, s as usize + 64, 0);
            let status = trace::inject_at(strategy, 5, info, || {
                // No earlier handler: the default action is what a passed-on
                // signal takes.
                // SAFETY: setting a disposition in this traced child.
                unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
                // SAFETY: two distinct heap buffers.
                let f = unsafe { mcsafe::copy_mc_with(strategy, d, s, LEN) };
                eprintln!("{strategy}: BUS_ADRALN came back as {f:?}");
                1
            });
            assert!(
                matches!(
                    status,
                    WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGBUS, _)
                ),
                "{strategy}: {status:?}"
            );
        }
    });
    assert!(status.success(), "{status:?}");
}
