//! The C entry on aarch64: the function libmcsafe's `mcsafe_copy` jumps to, `int
//! f(void *dst, const void *src, size_t len, void *context)`. x86-64 instantiates
//! each strategy's body once more with a C exit; here the one strategy's
//! register-mode routine is called from a Rust `extern "C"` function ([`c_copy`]):
//! one load of the dispatch word and the call on the way that copies everything,
//! and after a fault the same careful forward step as `copy_mc`, whose exact
//! `Fault` goes to the function libmcsafe gave ([`FaultSink`]). Never a panic into
//! C.
//!
//! Change it, then run `cargo test --target aarch64-unknown-linux-gnu -p
//! mcsafe-capi` (under qemu: the C programs, the sweep of `mcsafe_copy` from C).

use core::ffi::{c_int, c_void};

use super::routines::{Exit, conv};
use super::{Aarch64, published_routine};
use crate::arch::{FaultSink, Routine, Target, c_copy_stopped, set_fault_sink};

/// The C entry: [`c_copy`]'s address. Installs everything first (panics as a
/// first use does), so that the dispatch word is set before C calls it.
#[cfg_attr(not(any(feature = "c-api", feature = "internals")), allow(dead_code))]
pub(crate) fn copy_entry(sink: FaultSink) -> usize {
    Aarch64::ensure_installed();
    set_fault_sink(sink);
    c_copy as *const () as usize
}

/// libmcsafe's copy: 0 when every byte was copied, -EINVAL (touching nothing) for
/// ranges `copy_mc` refuses, after a fault what the sink returns.
///
/// # Safety
/// As for `copy_mc`, unless refused; [`copy_entry`] ran first.
unsafe extern "C" fn c_copy(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    context: *mut c_void,
) -> c_int {
    // Set before copy_entry handed this function out: no first-use path here.
    let Some(routine) = published_routine() else {
        return -libc::ENOTRECOVERABLE;
    };
    // SAFETY: the routine refuses bad ranges before any access; the C caller
    // vouches for the rest.
    match unsafe { routine.run(dst, src, len) } {
        Ok(()) => 0,
        Err(Exit::Refused) => -libc::EINVAL,
        // SAFETY: the stopped run of that routine over the caller's ranges.
        Err(Exit::Stopped(stopped)) => unsafe {
            stopped_copy(routine, dst, src, len, stopped, context)
        },
    }
}

/// A C copy stopped by a fault: the forward step, then the sink (no panic leaves
/// it). Out of line.
///
/// # Safety
/// `routine` stopped with `stopped` over ranges its C caller vouches for (it
/// checked them itself).
#[cold]
#[inline(never)]
unsafe fn stopped_copy(
    routine: Routine<conv::Copy>,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    stopped: crate::arch::Stopped,
    context: *mut c_void,
) -> c_int {
    // SAFETY: per this function's contract.
    let finish = || unsafe { crate::forward::copy_after(routine, dst, src, len, stopped) };
    c_copy_stopped(finish, context)
}
