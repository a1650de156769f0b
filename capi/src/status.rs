//! Return codes, first-use initialisation, and the panic net: everything that
//! turns the Rust API's outcomes (results, errors, panics) into C's negative
//! errno values.
//!
//! The one place that maps an outcome to a code is here ([`install_code`],
//! [`guard`]), and the one place that describes a code is [`describe`]: change
//! them together, with the table in `docs/c.md` and the header comments of
//! `src/lib.rs`, then run `cargo test -p mcsafe-capi` (it regenerates the
//! header and runs the C tests).

use core::ffi::{CStr, c_int};
use core::sync::atomic::{AtomicBool, Ordering};
use std::panic::{UnwindSafe, catch_unwind};
use std::sync::OnceLock;

use mcsafe::{InstallError, Strategy};

/// Set once the crate is initialised (handler installed, routines chosen), so
/// that a call can no longer hit a first-use panic. Only `true` is ever stored.
static READY: AtomicBool = AtomicBool::new(false);

/// Runs `body`, and turns a panic (a bug: every documented panic is checked
/// for beforehand) into `-ENOTRECOVERABLE` instead of letting it unwind into C
/// (which would abort the caller). Free on the path that does not panic.
///
/// With `panic = "abort"` this net is gone and a panic aborts; the checks made
/// before each call are what keeps bad input and bad configuration from
/// panicking in the first place. `cargo xtask capi` builds with unwinding.
#[inline(always)]
pub(crate) fn guard(body: impl FnOnce() -> c_int + UnwindSafe) -> c_int {
    catch_unwind(body).unwrap_or(-libc::ENOTRECOVERABLE)
}

/// `Ok` once copies can run without a first-use panic; else the code
/// `mcsafe_install` would return. One load after the first success.
#[inline(always)]
pub(crate) fn ready() -> Result<(), c_int> {
    if READY.load(Ordering::Acquire) {
        return Ok(());
    }
    match initialise() {
        0 => Ok(()),
        code if ready_despite(code) => Ok(()),
        code => Err(code),
    }
}

/// Codes of `mcsafe_install` after which copies work all the same: SIGBUS
/// blocked in the calling thread, the handler replaced by one that does not
/// chain (both concern fault recovery, not the copy), and a target without
/// protection (plain copies).
fn ready_despite(code: c_int) -> bool {
    matches!(-code, libc::EAGAIN | libc::EBUSY | libc::ENOTSUP)
}

/// `mcsafe_install`: checks `MCSAFE_STRATEGY` first (the crate panics on a
/// bad one), then calls `mcsafe::install`. Marks the crate ready when copies
/// can run.
#[cold]
#[inline(never)]
pub(crate) fn initialise() -> c_int {
    if let Some(code) = strategy_env_error() {
        return code;
    }
    let code = match catch_unwind(mcsafe::install) {
        Ok(result) => install_code(result),
        Err(_) => -libc::ENOTRECOVERABLE,
    };
    if code == 0 || ready_despite(code) {
        READY.store(true, Ordering::Release);
        strategy(); // cached now, so that later calls are async-signal-safe
    }
    code
}

/// `mcsafe_strategy`: the name of `Strategy::current`, or "none" where there
/// is no fault-safe strategy or `MCSAFE_STRATEGY` is invalid (where
/// `Strategy::current` would panic). Once a strategy is known, one atomic load.
pub(crate) fn strategy() -> &'static CStr {
    static NAME: OnceLock<&'static CStr> = OnceLock::new();
    if let Some(name) = NAME.get() {
        return name;
    }
    if Strategy::available().is_empty() || strategy_env_error().is_some() {
        return c"none";
    }
    match catch_unwind(Strategy::current) {
        Ok(current) => NAME.get_or_init(|| crate::strategy_name(current)),
        Err(_) => c"none",
    }
}

/// `-EINVAL` if `MCSAFE_STRATEGY` names no strategy, or one this CPU cannot run:
/// the crate's own check (`Strategy::try_current`), in which case
/// `Strategy::current` would panic.
pub(crate) fn strategy_env_error() -> Option<c_int> {
    if Strategy::available().is_empty() {
        return None; // no strategy is ever chosen here: plain copies
    }
    Strategy::try_current().err().map(|_| -libc::EINVAL)
}

/// The code of an `install` outcome.
pub(crate) fn install_code(result: Result<(), InstallError>) -> c_int {
    match result {
        Ok(()) => 0,
        Err(InstallError::Unsupported) => -libc::ENOTSUP,
        Err(InstallError::AnotherCopy) => -libc::EEXIST,
        Err(InstallError::Replaced(_)) => -libc::EBUSY,
        Err(InstallError::SigbusBlocked) => -libc::EAGAIN,
        Err(InstallError::CorruptTable) => -libc::ENOEXEC,
        Err(InstallError::BadStrategy(_)) => -libc::EINVAL,
        Err(InstallError::Sigaction(errno)) if errno > 0 => -errno,
        Err(_) => -libc::ENOTRECOVERABLE,
    }
}

/// What a code means, for `mcsafe_strerror` (either sign).
pub(crate) fn describe(code: c_int) -> &'static CStr {
    match code.unsigned_abs() as c_int {
        0 => c"success: every byte was done",
        libc::EIO => {
            c"a granule (page) of memory was lost (SIGBUS): struct mcsafe_fault says how many bytes were done before it, which side and why"
        }
        libc::EINVAL => {
            c"invalid argument: a NULL pointer with len > 0 or a NULL output pointer, a range that wraps or leaves user space, overlapping buffers; or MCSAFE_STRATEGY names a strategy this CPU cannot run (nothing was touched)"
        }
        libc::ENOTSUP => {
            c"no fault-safe copies on this target (x86-64 and aarch64 Linux only): copies are plain and a SIGBUS kills the process"
        }
        libc::EEXIST => {
            c"another copy of mcsafe is loaded in this process (libmcsafe and a Rust program or library that contains the mcsafe crate, or two libraries that each contain it; readelf -n shows an mcsafe note in each): the SIGBUS handler is process-wide, so use one copy"
        }
        libc::EBUSY => {
            c"mcsafe's SIGBUS handler was replaced by one that does not pass copy faults on: install that handler before mcsafe's, or make it call the handler it replaced for SIGBUS it does not own"
        }
        libc::EAGAIN => {
            c"SIGBUS is blocked in this thread: a copy fault here would kill the process; unblock it (pthread_sigmask) in every thread that copies"
        }
        libc::ENOEXEC => {
            c"mcsafe's landing-pad table is malformed (a build defect): faults cannot be recovered"
        }
        libc::ENOTRECOVERABLE => {
            c"internal error: mcsafe caught a panic (a bug; please report it); nothing more was done"
        }
        _ => c"not an mcsafe status code (for sigaction failures of mcsafe_install, see strerror)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_install_error_has_its_own_code_and_words() {
        let errors = [
            InstallError::Unsupported,
            InstallError::AnotherCopy,
            InstallError::Replaced(mcsafe::Replacement::Default),
            InstallError::SigbusBlocked,
            InstallError::CorruptTable,
        ];
        let codes: Vec<c_int> = errors.iter().map(|&e| install_code(Err(e))).collect();
        for (i, code) in codes.iter().enumerate() {
            assert!(*code < 0);
            assert!(!codes[..i].contains(code), "{code} twice");
            assert_ne!(*code, -libc::EIO);
            assert_ne!(*code, -libc::EINVAL);
            assert!(!describe(*code).to_bytes().starts_with(b"not an mcsafe"));
            assert_eq!(describe(*code), describe(-*code));
        }
        assert_eq!(
            install_code(Err(InstallError::Sigaction(libc::EFAULT))),
            -libc::EFAULT
        );
        assert_eq!(install_code(Ok(())), 0);
    }

    #[test]
    fn a_panic_becomes_a_code() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(|| panic!("a bug"));
        std::panic::set_hook(previous);
        assert_eq!(code, -libc::ENOTRECOVERABLE);
        assert_eq!(guard(|| 7), 7);
    }
}
