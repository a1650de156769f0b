//! mcsafe's SIGBUS handler: everything in this module (and `saved`) runs in
//! signal context.
//!
//! # The rules of the chain
//!
//! 1. **Ours**: a SIGBUS (by number, then by siginfo) with a kernel fault code
//!    (`BUS_MCEERR_AR`, `BUS_ADRERR`, `BUS_OBJERR`; arm64's `BUS_ADRALN` is an
//!    alignment fault, not a memory error), the program counter in a
//!    landing-pad range, and a lost granule that overlaps the interrupted call's
//!    buffers: redirected to the fixup. Anything else, including any other signal a chaining handler
//!    hands us (`SEGV_ACCERR` equals `BUS_ADRERR`), is passed on.
//! 2. **Passed on to the previous action**: the one `install` replaced. mcsafe's
//!    own action copies its `sa_mask`, `SA_NODEFER`, `SA_ONSTACK` and `SA_RESTART`
//!    ([`our_action`]), so the kernel already runs mcsafe's handler with the mask,
//!    and on the stack, that it would have given the previous handler.
//! 3. **Who called us** decides how: the kernel (the handler's return address is
//!    the action's restorer) or a handler installed after mcsafe's that chains.
//!    From the kernel: what the kernel would have done with the previous action,
//!    `SA_RESETHAND` included. From a chaining handler: what that handler would
//!    have done calling the previous action's function itself: a plain call;
//!    for `SIG_DFL` / `SIG_IGN`, nothing, unless the kernel forces the signal
//!    (a synchronous fault, which would repeat forever): then the default action.
//!    (A chaining handler that tail-calls ours, leaving the kernel's return
//!    address in place, counts as the kernel.)
//! 4. **A change the previous handler makes to its own disposition** during our
//!    call (the action differs after the call from a snapshot taken just before
//!    it, and is `SIG_DFL`, `SIG_IGN` or that same handler re-installed) is
//!    taken into the [`Disposition`], and mcsafe's action goes back in its
//!    place, as that change would have replaced whatever was installed (should
//!    another thread install an action in between, that one is put back). Any
//!    other change (another handler function, mcsafe's own) is left alone: it
//!    is another installation, by another thread or by that handler, and
//!    `install()` checks it. So a chaining handler above mcsafe's is never
//!    adopted, and a chain never leads back to mcsafe's handler. What user
//!    space cannot tell: another thread setting `SIG_DFL`, `SIG_IGN` or that
//!    same handler while it runs is taken as its own change.
//! 5. **Stores never drop**: the saved action is written only by `install`, in
//!    write-once slots; the one thing the handler changes, the [`Disposition`],
//!    is a single atomic store, made before the previous handler runs or after
//!    it returned: nothing waits, nothing can be left half done.
//!
//! Tests: `tests/chaining_rules.rs` (one per rule), `tests/chaining_matrix.rs`
//! (every install order against the same program without mcsafe; its table is
//! in `docs/reliability.md`), `tests/chaining_stress.rs`, `tests/pass_on.rs`.
//!
//! # Async-signal safety
//!
//! This runs perhaps on an alternate stack, perhaps while the interrupted thread
//! holds the allocator's lock: no allocation, lock, thread-local or formatting.
//! It reads the siginfo, the saved registers, the landing-pad table and atomics,
//! and calls only `sigaction`, `getpid`, `gettid` and `rt_tgsigqueueinfo`, plus
//! the previous handler, saving and restoring `errno` around them. The lints
//! below keep out what can panic, exit or print; the macros after them, which no
//! lint covers, are compile errors here. Anything added here must meet the same
//! bar; `cargo clippy` checks the lints (see also `docs/mutants.md` on how this
//! file is tested: cargo-mutants skips `unsafe fn` bodies).

#![deny(
    clippy::arithmetic_side_effects, // overflow panics in debug builds
    clippy::indexing_slicing,        // a bounds check panics
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::exit,         // process::exit runs atexit handlers: _exit is the safe one
    clippy::print_stdout, // stdout and stderr take locks
    clippy::print_stderr,
    clippy::dbg_macro,
    clippy::std_instead_of_core, // core has no allocator, locks or thread-locals
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]
// No lint covers these: shadowed, each is a compile error here (and in `saved`).
#[rustfmt::skip]
#[macro_use]
#[allow(unused_macros)]
mod forbidden {
    macro_rules! format { ($($t:tt)*) => { compile_error!("signal context: no formatting") } }
    macro_rules! write { ($($t:tt)*) => { compile_error!("signal context: no formatting") } }
    macro_rules! writeln { ($($t:tt)*) => { compile_error!("signal context: no formatting") } }
    macro_rules! vec { ($($t:tt)*) => { compile_error!("signal context: no allocation") } }
    macro_rules! assert { ($($t:tt)*) => { compile_error!("signal context: no panics") } }
    macro_rules! assert_eq { ($($t:tt)*) => { compile_error!("signal context: no panics") } }
    macro_rules! assert_ne { ($($t:tt)*) => { compile_error!("signal context: no panics") } }
    macro_rules! debug_assert { ($($t:tt)*) => { compile_error!("signal context: no panics") } }
    macro_rules! debug_assert_eq { ($($t:tt)*) => { compile_error!("signal context: no panics") } }
    macro_rules! debug_assert_ne { ($($t:tt)*) => { compile_error!("signal context: no panics") } }
}

use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

use libc::{siginfo_t, ucontext_t};

/// The interrupted routine's registers: the part of the handler that names them
/// (the installed entry, pc, the range registers, the redirect), one file per
/// architecture, under this module's lints and forbidden macros.
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod context;
#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod context;
pub(crate) mod cut;
pub(crate) mod pads;
mod saved;

use self::cut::{cut, granule};
use self::saved::Disposition;
pub(super) use self::saved::{Action, SAVED, current_action, our_action};

/// The page size (set by `install`): the granule of faults that carry none.
pub(super) static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// Faults redirected to a fixup, and signals passed on, since the process started.
pub(super) static RECOVERED: AtomicU64 = AtomicU64::new(0);
pub(super) static PASSED_ON: AtomicU64 = AtomicU64::new(0);
/// The return address of a handler the kernel called through mcsafe's action
/// (its restorer, which returns to the kernel); 0 until `install` read it back,
/// and then every caller counts as the kernel (the behaviour before rule 3).
pub(super) static RESTORER: AtomicUsize = AtomicUsize::new(0);

/// The start of `siginfo_t` for SIGBUS/SIGSEGV as the kernel lays it out on
/// x86-64 and arm64 alike (include/uapi/asm-generic/siginfo.h: `_sigfault`): the
/// union starts at offset 16 and `_addr_lsb` directly follows `_addr` (no trapno
/// field on either). The `libc` crate exposes `si_addr` but not `si_addr_lsb`.
#[repr(C)]
struct SigFault {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _pad: c_int,
    addr: usize,
    addr_lsb: i16,
}

pub(super) use self::context::entry;

extern "C" fn on_sigbus(signo: c_int, info: *mut siginfo_t, context: *mut c_void, caller: usize) {
    // SAFETY: installed with SA_SIGINFO, so the kernel (or a chaining handler,
    // which must pass them on unchanged) supplies a valid siginfo and ucontext.
    unsafe {
        if redirect_to_fixup(signo, info.cast(), context.cast()) {
            return;
        }
        pass_on(signo, info, context, caller);
    }
}

/// Rule 1: sends the fault to a fixup if it is a copy routine's own; returns
/// whether it did. `BUS_MCEERR_AO`, `SI_KERNEL` and the codes of kill/sigqueue
/// (<= 0) are never ours.
///
/// # Safety
/// `info` and `context` point to the siginfo and ucontext of this delivery
/// (of signal `signo`).
unsafe fn redirect_to_fixup(signo: c_int, info: *const SigFault, context: *mut ucontext_t) -> bool {
    // SAFETY: per this function's contract.
    let (info, context) = unsafe { (&*info, &mut *context) };
    if !is_kernel_sigbus(signo, info.signo, info.code) {
        return false;
    }
    // User space ends below 2^57 (5-level paging), so the kernel reports no fault
    // of a user access above; `Fault` keeps addresses in 57 bits.
    if info.addr >> 57 != 0 {
        return false;
    }
    let Some((pad, regs)) = pads::find(context::pc(context)).and_then(|pad| Some((pad, pad.regs?)))
    else {
        return false;
    };
    let (dst, src, len) = context::buffers(context, regs);
    // arm64: an unclaimed synchronous external abort with ESR.FnV set comes
    // without an address; the routine's registers place it. (On x86-64 the
    // kernel gives every fault of a user access its address, and 0 is in no
    // buffer: not ours.)
    #[cfg(target_arch = "aarch64")]
    let addr = match info.addr {
        0 => match context::unreported_address(context, regs, (dst, src, len)) {
            Some(addr) => addr,
            None => return false,
        },
        addr => addr,
    };
    #[cfg(not(target_arch = "aarch64"))]
    let addr = info.addr;
    let lsb = info.addr_lsb.clamp(0, 63) as u32;
    if cut(addr, granule(lsb, page_size()), dst, src, len).is_none() {
        return false;
    }
    context::redirect(context, pad.fixup, fault_word(info.code, lsb), addr);
    RECOVERED.fetch_add(1, Relaxed);
    true
}

/// A SIGBUS the kernel raised for a faulting access (the codes a copy fault
/// can have): rule 1's signal, by the number the handler got and by the
/// siginfo's, and code.
fn is_kernel_sigbus(signo: c_int, info_signo: c_int, code: c_int) -> bool {
    signo == libc::SIGBUS
        && info_signo == libc::SIGBUS
        && matches!(
            code,
            libc::BUS_MCEERR_AR | libc::BUS_ADRERR | libc::BUS_OBJERR
        )
}

/// The fault word the handler hands the fixup (asm/routine.s, "Status words"):
/// `si_code` in the low 16 bits, `si_addr_lsb` from bit [`WORD_LSB_SHIFT`].
fn fault_word(code: c_int, lsb: u32) -> usize {
    (code as u16 as usize) | (lsb as usize).wrapping_shl(WORD_LSB_SHIFT)
}

/// Where the fault word keeps `si_addr_lsb`.
pub(crate) const WORD_LSB_SHIFT: u32 = 16;

pub(super) fn page_size() -> usize {
    PAGE_SIZE.load(Relaxed)
}

/// Rules 2 and 3: hands a signal that is not ours to the previous action.
///
/// # Safety
/// The arguments are those of this delivery; `caller` is the return address.
unsafe fn pass_on(signo: c_int, info: *mut siginfo_t, context: *mut c_void, caller: usize) {
    PASSED_ON.fetch_add(1, Relaxed);
    let saved_errno = errno();
    let Some((saved, ours)) = SAVED.load() else {
        return; // not reachable: install publishes before the handler is live
    };
    let from_kernel = called_by_kernel(caller, RESTORER.load(Relaxed));
    // SAFETY: info is valid for this delivery.
    let code = unsafe { (*info).si_code };
    let handler = Disposition::now().handler(saved);
    match how_to_pass_on(handler, signo, code, from_kernel) {
        PassOn::Drop => {}
        // SAFETY: this delivery's signal and siginfo.
        PassOn::DieByDefault => unsafe { die_by_default(signo, info) },
        // SAFETY: the previous action's handler and this delivery's arguments.
        PassOn::Call(handler) => unsafe {
            call_previous(handler, saved, ours, from_kernel, signo, info, context)
        },
    }
    set_errno(saved_errno);
}

/// Rule 3's first question: the kernel returns from a handler it called
/// through the action's restorer. Before install read the restorer back (0),
/// every caller counts as the kernel.
fn called_by_kernel(caller: usize, restorer: usize) -> bool {
    restorer == 0 || caller == restorer
}

/// What passing a signal on comes to (rules 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PassOn {
    /// Ignored, or left to the chaining handler that called us.
    Drop,
    /// The default action: death by the signal.
    DieByDefault,
    /// A call of the previous handler function.
    Call(usize),
}

fn how_to_pass_on(handler: usize, signo: c_int, code: c_int, from_kernel: bool) -> PassOn {
    // The kernel forces synchronous faults through even when the signal is
    // blocked or ignored; BUS_MCEERR_AO and signals sent by a process it does not.
    let forced = code > 0 && !(signo == libc::SIGBUS && code == libc::BUS_MCEERR_AO);
    match handler {
        libc::SIG_IGN if !forced => PassOn::Drop,
        libc::SIG_DFL | libc::SIG_IGN if forced || from_kernel => PassOn::DieByDefault,
        libc::SIG_DFL | libc::SIG_IGN => PassOn::Drop, // rule 3: the chaining handler's choice
        handler => PassOn::Call(handler),
    }
}

/// The default action, as the kernel would take it: the default disposition
/// back, and this very siginfo re-sent to this thread (signals that do not
/// repeat, such as `kill -BUS`, too). The signal is delivered as soon as this
/// thread unblocks it: at the system call's return if it is not blocked here,
/// else when the handler frame that blocks it returns (mcsafe's own, unless the
/// previous action had `SA_NODEFER`; or that of a chaining handler that called
/// us). The process then dies of it, at the interrupted instruction, with a
/// core where cores are enabled, as it would have without mcsafe.
///
/// # Safety
/// `info` is this delivery's siginfo.
unsafe fn die_by_default(signo: c_int, info: *mut siginfo_t) {
    let default = Action {
        handler: libc::SIG_DFL,
        flags: 0,
        mask: 0,
    };
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe {
        libc::sigaction(signo, &default.to_sigaction(), ptr::null_mut());
        let (pid, tid) = (libc::getpid(), libc::gettid());
        libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, signo, info);
    }
}

/// Calls the previous handler function (rule 3), then looks at what it did to
/// its disposition (rule 4). From the kernel, `SA_RESETHAND` first resets the
/// previous action, as the kernel would have; the mask and stack are already
/// the ones the kernel would have given it (rule 2). If it never returns
/// (longjmp, exit), nothing is left half done.
///
/// # Safety
/// `handler` is `saved`'s handler; the rest are this delivery's.
unsafe fn call_previous(
    handler: usize,
    saved: Action,
    ours: Action,
    from_kernel: bool,
    signo: c_int,
    info: *mut siginfo_t,
    context: *mut c_void,
) {
    if resets_first(saved.flags, from_kernel) {
        Disposition::Default.set();
    }
    let before = current_action();
    // SAFETY: `handler` was installed by sigaction with the signature its
    // SA_SIGINFO flag promises.
    unsafe {
        if saved.flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
                core::mem::transmute(handler);
            f(signo, info, context);
        } else {
            let f: extern "C" fn(c_int) = core::mem::transmute(handler);
            f(signo);
        }
    }
    if let (Some(before), Some(now)) = (before, current_action()) {
        adopt_own_change(before, now, handler, ours);
    }
}

/// Whether the kernel would have reset the previous action before calling it.
fn resets_first(flags: c_int, from_kernel: bool) -> bool {
    from_kernel && flags & libc::SA_RESETHAND != 0
}

/// Rule 4, after the previous handler `called` returned.
///
/// Rust's std installs such a handler in every Rust program (for stack overflow
/// reports; it is what mcsafe finds and saves when nothing else was installed):
/// on a SIGBUS outside a guard page, it resets SIGBUS to `SIG_DFL` and returns,
/// so that the faulting instruction runs again and the process dies. Taken in,
/// that reset makes a fault that repeats die by SIGBUS (now through the default
/// action), and copy faults stay recovered.
fn adopt_own_change(before: Action, now: Action, called: usize, ours: Action) {
    if now == before {
        return;
    }
    let disposition = match now.handler {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        h if h == called => Disposition::AsSaved,
        _ => return,
    };
    disposition.set();
    let mut replaced = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: valid actions; `ours` is the SA_SIGINFO handler `entry`.
    unsafe {
        let swapped = libc::sigaction(libc::SIGBUS, &ours.to_sigaction(), replaced.as_mut_ptr());
        let replaced = replaced.assume_init();
        if swapped == 0 && Action::of(&replaced) != now {
            // Another thread installed an action since the query: put it back.
            libc::sigaction(libc::SIGBUS, &replaced, ptr::null_mut());
        }
    }
}

pub(super) fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}
