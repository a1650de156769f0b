//! The C API routines: the copy routine libmcsafe's `mcsafe_copy` jumps to, with
//! no Rust frame between the C caller and the assembly (asm/routine.s,
//! CONV_C_COPY), and what their fault exit comes to.
//!
//! A C API routine is its strategy's body instantiated once more with a C exit:
//! it returns 0, or -EINVAL for refused ranges, itself; after a fault its fixup
//! calls [`stopped`], which runs the same careful forward step as `copy_mc` and
//! hands the exact `Fault` to the function libmcsafe gave ([`FaultSink`]), whose
//! return value the C caller gets. The core knows no C struct: the sink writes
//! libmcsafe's `struct mcsafe_fault`.
//!
//! Change it, then run `cargo test -p mcsafe-capi` (the C programs, the sweep of
//! `mcsafe_copy` from C) and `cargo test -p mcsafe-tests --test every_instruction`
//! (which traces the C API routines too).

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::routines::{Exit, Routine};
use super::{X86_64, c_strategy_routine, strategy_routine};
use crate::Strategy;
use crate::arch::{CCopyFn, FaultSink, Target, c_copy_stopped, set_fault_sink};

/// The entry of the current strategy's C API routine, for a dispatch word of the
/// C library: `int f(void *dst, const void *src, size_t len, void *context)`,
/// which returns 0 when every byte was copied, -EINVAL (touching nothing) for
/// what `copy_mc` refuses with a panic, and after a fault what `sink` returns
/// for the exact fault and `context`. Installs everything first (panics as a
/// first use does).
#[cfg_attr(not(any(feature = "c-api", feature = "internals")), allow(dead_code))]
pub(crate) fn copy_entry(sink: FaultSink) -> usize {
    X86_64::ensure_installed();
    set_fault_sink(sink);
    let routine = c_routine_of(super::current_routine()).addr();
    // SAFETY: an 8-byte aligned word in .data, declared by the assembly, only
    // ever accessed as an atomic (the direct entries only read it). Stored after
    // the installation, the thresholds and the sink: a direct entry that sees it
    // sees them (x86-64 keeps stores in order).
    unsafe { mcsafe_asm_c_copy_published.store(routine, Ordering::Release) };
    routine
}

unsafe extern "C" {
    /// The C API routine whose direct entry goes straight in (asm/dispatch.s).
    static mcsafe_asm_c_copy_published: AtomicUsize;
    /// Where a direct entry goes otherwise (asm/dispatch.s).
    static mcsafe_asm_c_copy_dispatch: AtomicUsize;
}

/// The direct entry of the C API routine of the strategy this CPU gets by
/// default (asm/routine.s, C_COPY_IF_PUBLISHED), with `dispatch` registered as
/// where it goes until [`copy_entry`] publishes that routine (and forever when
/// `MCSAFE_STRATEGY` or a test chose another). For libmcsafe's IFUNC resolver:
/// CPUID and the descriptor table only, no allocation, no lock, no environment.
pub(crate) fn direct_entry(dispatch: CCopyFn) -> usize {
    // SAFETY: as in `copy_entry`. Idempotent: every resolver stores the same.
    unsafe { mcsafe_asm_c_copy_dispatch.store(dispatch as usize, Ordering::Release) };
    direct_entry_of(super::cpu::default_strategy())
}

/// The direct entry of `strategy`'s C API routine.
fn direct_entry_of(strategy: Strategy) -> usize {
    macro_rules! direct {
        ($name:literal) => {{
            let entry: usize;
            // SAFETY: an address computation, no memory access.
            unsafe {
                core::arch::asm!(
                    concat!("lea {}, [rip + mcsafe_asm_", $name, "_if_published]"),
                    out(reg) entry,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            entry
        }};
    }
    match strategy {
        Strategy::Fragile => direct!("c_copy_fragile"),
        Strategy::RepMovsb => direct!("c_copy_rep_movsb"),
        Strategy::Avx2 => direct!("c_copy_avx2"),
        Strategy::Avx512 => direct!("c_copy_avx512"),
        Strategy::AdvSimd => super::other_architecture(strategy),
    }
}

/// The C API twin of the copy routine `routine`.
#[cfg_attr(not(any(feature = "c-api", feature = "internals")), allow(dead_code))]
fn c_routine_of(routine: Routine<super::conv::Copy>) -> Routine<super::conv::CCopy> {
    let strategy = Strategy::ALL
        .into_iter()
        .find(|&s| strategy_routine(s) == routine)
        .unwrap_or(Strategy::Fragile);
    c_strategy_routine(strategy)
}

/// A C API routine stopped by a fault, from its fault exit: the forward step with
/// its Rust twin, then the sink. No panic leaves this function.
///
/// # Safety
/// `exit` holds the register-mode outputs of a C API routine called over ranges
/// its C caller vouches for (it checked them itself), which stopped on a fault.
pub(crate) unsafe fn stopped(exit: Exit, context: *mut c_void) -> c_int {
    let twin = super::register_twin(exit.routine);
    // SAFETY: per this function's contract; the twin is the same body.
    let finish = || unsafe {
        crate::forward::copy_after(twin, exit.dst, exit.src, exit.len, exit.stopped())
    };
    c_copy_stopped(finish, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often [`counting_dispatch`] ran, and the length it last saw.
    static DISPATCHED: AtomicUsize = AtomicUsize::new(0);
    static DISPATCHED_LEN: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn counting_dispatch(
        _: *mut c_void,
        _: *const c_void,
        len: usize,
        _: *mut c_void,
    ) -> c_int {
        DISPATCHED.fetch_add(1, Ordering::SeqCst);
        DISPATCHED_LEN.store(len, Ordering::SeqCst);
        -7
    }

    fn sink(_: Option<crate::Fault>, _: *mut c_void) -> c_int {
        -5
    }

    /// Runs the direct entry `entry` over fresh buffers of `len` bytes: its
    /// return value, and whether it copied.
    fn run(entry: usize, len: usize) -> (c_int, bool) {
        // SAFETY: every direct entry has the C API shape (CCopyFn).
        let copy = unsafe { core::mem::transmute::<usize, CCopyFn>(entry) };
        let src: Vec<u8> = (0..len).map(|i| i as u8 | 1).collect();
        let mut dst = vec![0u8; len];
        // SAFETY: two live, disjoint buffers of len bytes.
        let rc = unsafe {
            copy(
                dst.as_mut_ptr().cast(),
                src.as_ptr().cast(),
                len,
                core::ptr::null_mut(),
            )
        };
        (rc, dst == src)
    }

    #[test]
    fn the_direct_entry_goes_straight_in_only_once_its_routine_is_published() {
        let entry = direct_entry(counting_dispatch);
        assert_eq!(entry, direct_entry(counting_dispatch), "one entry per CPU");
        // Nothing published (this test is the only one here that publishes): to
        // the dispatch, with the arguments as they came, nothing copied.
        // SAFETY: as in `copy_entry`.
        unsafe { mcsafe_asm_c_copy_published.store(0, Ordering::SeqCst) };
        let before = DISPATCHED.load(Ordering::SeqCst);
        assert_eq!(run(entry, 77), (-7, false));
        assert_eq!(DISPATCHED.load(Ordering::SeqCst), before + 1);
        assert_eq!(DISPATCHED_LEN.load(Ordering::SeqCst), 77);
        // Published (what the default strategy gets: MCSAFE_STRATEGY is not set
        // under cargo test): straight into the routine, which copies.
        let published = copy_entry(sink);
        if published == c_strategy_routine(super::super::cpu::default_strategy()).addr() {
            for len in [0, 1, 8, 77, 4096] {
                assert_eq!(run(entry, len), (0, true), "len {len}");
            }
            assert_eq!(
                DISPATCHED.load(Ordering::SeqCst),
                before + 1,
                "no dispatch once published"
            );
        }
        // Another routine published (a strategy chosen by MCSAFE_STRATEGY): the
        // dispatch again.
        let other = [Strategy::Fragile, Strategy::RepMovsb]
            .into_iter()
            .find(|&s| direct_entry_of(s) != entry)
            .unwrap();
        // SAFETY: as in `copy_entry`.
        unsafe {
            mcsafe_asm_c_copy_published.store(c_strategy_routine(other).addr(), Ordering::SeqCst)
        };
        assert_eq!(run(entry, 77), (-7, false));
        // SAFETY: as in `copy_entry`.
        unsafe { mcsafe_asm_c_copy_published.store(published, Ordering::SeqCst) };
    }

    #[test]
    fn each_direct_entry_lies_right_before_its_routine_outside_every_range() {
        for strategy in Strategy::ALL {
            let entry = direct_entry_of(strategy);
            let routine = c_strategy_routine(strategy).addr();
            assert!(entry < routine && routine - entry <= 32, "{strategy:?}");
            assert!(crate::table::descriptors().all(|d| !(d.entry..d.end).contains(&entry)));
            assert!(crate::table::landing_pads().all(|p| p.end <= entry || p.begin >= routine));
        }
    }
}
