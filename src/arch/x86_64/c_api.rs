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

use super::routines::{Exit, Routine};
use super::{X86_64, c_strategy_routine, strategy_routine};
use crate::Strategy;
use crate::arch::{FaultSink, Target, c_copy_stopped, set_fault_sink};

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
    c_routine_of(super::current_routine()).addr()
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
