//! The process-wide SIGBUS handler: installation and queries here, the handler
//! itself (which runs in signal context, and carries the rules of the chain) in
//! `signal/` (`signal/mod.rs`, and `signal/saved.rs` for the saved action).
//!
//! - [`install`]: puts mcsafe's handler in place once (`install_once`, the one
//!   place where that happens), then checks on later calls that copy faults
//!   still reach it (`probe.rs` for a handler that replaced it);
//! - [`install_checked`]: what `mcsafe::install` checks on every call;
//! - queries: [`counts`], [`page_size`], [`blocked_in_this_thread`];
//! - `vdso.rs`: where the kernel's signal frames return when the action has no
//!   restorer (arm64), for rule 3.
//!
//! Changing what the handler does: `signal/`, then the chaining tests (`cargo
//! test -p mcsafe-tests --test chaining_matrix --test chaining_rules --test
//! chaining_stress --test pass_on`) and `docs/reliability.md`.

pub(crate) mod instance;
mod probe;
pub(crate) mod signal;
mod vdso;

use core::ffi::c_int;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::Ordering::*;
use std::sync::{Mutex, OnceLock};

use self::signal::{Action, PAGE_SIZE, PASSED_ON, RECOVERED, RESTORER, SAVED};
use crate::table;
use crate::{InstallError, Replacement};

/// The page size, as the handler and the copy loop use it for faults that carry
/// no granularity (`si_addr_lsb == 0`).
pub(crate) fn page_size() -> usize {
    signal::page_size()
}

/// Faults redirected to a fixup, and signals passed on to the previous action,
/// since the process started.
pub(crate) fn counts() -> (u64, u64) {
    (RECOVERED.load(Relaxed), PASSED_ON.load(Relaxed))
}

/// Installs the handler once; later calls check that copy faults still reach it.
///
/// Cheap while mcsafe's handler is the current SIGBUS action (one `sigaction`
/// query). When another action replaced it: `SIG_DFL` and `SIG_IGN` are errors
/// at once; a handler function is checked by a probe (a forked child takes one
/// real copy fault, see `probe.rs`), once per (handler, flags): the verdict is
/// remembered.
pub(crate) fn install() -> Result<(), InstallError> {
    static FIRST: OnceLock<Result<(), InstallError>> = OnceLock::new();
    (*FIRST.get_or_init(install_once))?;
    let current = current_action()?;
    match current.handler {
        h if h == our_handler() => Ok(()),
        libc::SIG_DFL => Err(InstallError::Replaced(Replacement::Default)),
        libc::SIG_IGN => Err(InstallError::Replaced(Replacement::Ignore)),
        handler => check_replacement(handler, current.flags),
    }
}

/// Whether the handler function that replaced mcsafe's passes copy faults on,
/// probed once per (handler, flags).
fn check_replacement(handler: usize, flags: c_int) -> Result<(), InstallError> {
    type Verdict = (usize, c_int, Result<(), Replacement>);
    static CHECKED: Mutex<Option<Verdict>> = Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    let verdict = match *checked {
        Some((h, f, verdict)) if (h, f) == (handler, flags) => verdict,
        _ => {
            let verdict = probe::copy_fault_reaches_us();
            *checked = Some((handler, flags, verdict));
            verdict
        }
    };
    verdict.map_err(InstallError::Replaced)
}

fn current_action() -> Result<Action, InstallError> {
    signal::current_action().ok_or_else(|| InstallError::Sigaction(signal::errno()))
}

/// The one place where mcsafe's handler is installed (once, under `install`'s
/// `OnceLock`): saves the action in place, then replaces it with mcsafe's.
fn install_once() -> Result<(), InstallError> {
    if !table::is_well_formed() {
        return Err(InstallError::CorruptTable);
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE_SIZE.store(page as usize, Relaxed);
    }
    // Save the current action before ours goes live, so that a SIGBUS arriving the
    // moment it does finds the previous action already in place.
    let before = current_action()?;
    let ours = signal::our_action(before);
    SAVED.publish(before, ours);
    let mut replaced = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: both pointers are valid; `entry` has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(libc::SIGBUS, &ours.to_sigaction(), replaced.as_mut_ptr()) } != 0 {
        return Err(InstallError::Sigaction(signal::errno()));
    }
    // SAFETY: sigaction filled it in.
    let replaced = Action::of(&unsafe { replaced.assume_init() });
    if replaced != before {
        // Another thread changed the action between our two calls: what we
        // replaced is the previous action. (Our own flags stay those copied
        // from `before`: rule 2 is then approximate, in this race only.)
        SAVED.publish(replaced, ours);
    }
    // Where the kernel returns from every handler call it makes through our
    // action (rule 3): the restorer the C library gave it, or the vDSO's.
    let mut installed = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only queries; `installed` is writable.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), installed.as_mut_ptr()) } == 0 {
        // SAFETY: sigaction filled it in.
        let installed = unsafe { installed.assume_init() };
        if installed.sa_sigaction == our_handler() {
            RESTORER.store(return_address_of(&installed), Relaxed);
        }
    }
    Ok(())
}

/// `SA_RESTORER` (the same bit on x86-64 and arm64; the `libc` crate names it on
/// neither).
const SA_RESTORER: c_int = 0x0400_0000;

/// Where a handler the kernel calls through `action` returns to: its restorer
/// when the action has `SA_RESTORER` (x86-64's glibc always sets it, the kernel
/// requires it there); otherwise the vDSO's sigreturn trampoline (arm64: glibc
/// sets none), and the restorer field read back means nothing (qemu-user leaves
/// it as it finds it). 0 where there is neither: every caller then counts as the
/// kernel.
fn return_address_of(action: &libc::sigaction) -> usize {
    match action.sa_restorer {
        Some(restorer) if action.sa_flags & SA_RESTORER != 0 => restorer as usize,
        _ => vdso::sigreturn_trampoline(),
    }
}

/// The rest of `mcsafe::install` after a target's first-use `init`: still one
/// copy of mcsafe, the handler still in place (or still reached), SIGBUS not
/// blocked in the calling thread.
pub(crate) fn install_checked() -> Result<(), InstallError> {
    instance::ensure_only_one()?;
    install()?;
    if blocked_in_this_thread() {
        return Err(InstallError::SigbusBlocked);
    }
    Ok(())
}

/// Whether SIGBUS is blocked in the calling thread (where a copy fault would
/// then kill the process).
pub(crate) fn blocked_in_this_thread() -> bool {
    let mut mask = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: a null new set only queries; `mask` is writable and then filled.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), mask.as_mut_ptr()) == 0
            && libc::sigismember(mask.as_ptr(), libc::SIGBUS) == 1
    }
}

fn our_handler() -> usize {
    signal::entry as *const () as usize
}
