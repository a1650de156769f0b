//! The process-wide SIGBUS handler: redirects faults of the copy routines to their
//! fixups, and hands every other SIGBUS to the handler that was there before.
//!
//! # Async-signal safety
//!
//! [`on_sigbus`] runs in signal context, perhaps on an alternate stack, perhaps
//! while the interrupted thread holds the allocator's lock or any other. It
//! therefore allocates nothing, takes no lock, touches no Rust thread-local and
//! formats nothing. It reads the siginfo, the saved registers, the landing-pad
//! table and statics written before it was installed (through atomics), and it
//! calls only async-signal-safe functions: `sigaction`, `pthread_sigmask`,
//! `getpid`, `gettid` and `rt_tgsigqueueinfo`, plus the previous handler. It
//! saves and restores `errno` around them, as POSIX asks of every handler.
//! Keep it that way: anything added here must meet the same bar.

use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*, fence};
use std::sync::{Mutex, OnceLock};

use libc::{siginfo_t, ucontext_t};

use super::probe;
use super::routines::WORD_LSB_SHIFT;
use super::table;
use crate::copy::{cut, granule};
use crate::{InstallError, Replacement};

/// The start of `siginfo_t` for SIGBUS/SIGSEGV as the kernel lays it out on
/// x86-64 (include/uapi/asm-generic/siginfo.h: `_sigfault`): the union starts
/// at offset 16 and `_addr_lsb` directly follows `_addr` (no trapno field on
/// x86). The `libc` crate exposes `si_addr` but not `si_addr_lsb`.
#[repr(C)]
struct SigFault {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _pad: c_int,
    addr: usize,
    addr_lsb: i16,
}

/// The SIGBUS action mcsafe forwards to: the one in place before [`install`],
/// or what that handler later set in its place (see [`adopt_changed_action`]).
/// Kept in atomics so that the handler can read it while another thread (or an
/// interrupted forward on this one) writes it, without a lock: two slots, and a
/// version whose low bit names the slot readers use. A writer fills the other
/// slot, then bumps the version; a reader retries if the version moved while it
/// read (a writer got to its slot), a bounded number of times.
struct SavedAction {
    slots: [Slot; 2],
    version: AtomicUsize,
    writing: AtomicBool,
}

struct Slot {
    handler: AtomicUsize,
    flags: AtomicUsize,
    mask: [AtomicU64; SIGSET_WORDS],
}

const SIGSET_WORDS: usize = size_of::<libc::sigset_t>() / 8;

impl Slot {
    /// SIG_DFL with no flags and an empty mask: slot 0 at version 0.
    const fn empty() -> Slot {
        Slot {
            handler: AtomicUsize::new(libc::SIG_DFL),
            flags: AtomicUsize::new(0),
            mask: [const { AtomicU64::new(0) }; SIGSET_WORDS],
        }
    }
}

static PREVIOUS: SavedAction = SavedAction {
    slots: [Slot::empty(), Slot::empty()],
    version: AtomicUsize::new(0),
    writing: AtomicBool::new(false),
};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static RECOVERED: AtomicU64 = AtomicU64::new(0);
static FORWARDED: AtomicU64 = AtomicU64::new(0);

/// Flags mcsafe's handler is installed with: siginfo and ucontext, the alternate
/// stack when the thread has one (a fault can come from a thread whose stack is
/// nearly full), and no blocking of SIGBUS while it runs.
const OUR_FLAGS: c_int = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;

impl SavedAction {
    /// Saves `action`; false (nothing saved) if another writer is at work.
    /// Async-signal-safe.
    fn store(&self, action: &libc::sigaction) -> bool {
        if self.writing.swap(true, Acquire) {
            return false;
        }
        let next = self.version.load(Relaxed).wrapping_add(1);
        // A reader that sees any store below into a slot also sees the version
        // that retired it (the seqlock's write-side fence).
        fence(Release);
        let slot = &self.slots[next & 1];
        slot.handler.store(action.sa_sigaction, Relaxed);
        slot.flags.store(action.sa_flags as usize, Relaxed);
        // SAFETY: sigset_t is SIGSET_WORDS * 8 plain bytes.
        let words: [u64; SIGSET_WORDS] = unsafe { core::mem::transmute(action.sa_mask) };
        for (slot, word) in slot.mask.iter().zip(words) {
            slot.store(word, Relaxed);
        }
        self.version.store(next, Release);
        self.writing.store(false, Release);
        true
    }

    /// The saved action, rebuilt on the stack (async-signal-safe). A writer
    /// interrupted by this very reader (same thread) never makes it retry: the
    /// reader reads the slot the writer is not writing. Should 64 reads in a row
    /// still race writers, it gives `SIG_DFL` rather than a mix of two actions.
    fn load(&self) -> libc::sigaction {
        // SAFETY: an all-zero sigaction is SIG_DFL with no flags and an empty mask.
        let zeroed = || unsafe { MaybeUninit::<libc::sigaction>::zeroed().assume_init() };
        let mut action = zeroed();
        for _ in 0..64 {
            let version = self.version.load(Acquire);
            let slot = &self.slots[version & 1];
            action.sa_sigaction = slot.handler.load(Relaxed);
            action.sa_flags = slot.flags.load(Relaxed) as c_int;
            let mut words = [0u64; SIGSET_WORDS];
            for (word, slot) in words.iter_mut().zip(&slot.mask) {
                *word = slot.load(Relaxed);
            }
            // SAFETY: sigset_t is SIGSET_WORDS * 8 plain bytes.
            action.sa_mask =
                unsafe { core::mem::transmute::<[u64; SIGSET_WORDS], libc::sigset_t>(words) };
            fence(Acquire);
            if self.version.load(Relaxed) == version {
                return action;
            }
        }
        zeroed()
    }
}

/// The page size, as the handler and the copy loop use it for faults that carry
/// no granularity (`si_addr_lsb == 0`).
pub(crate) fn page_size() -> usize {
    PAGE_SIZE.load(Relaxed)
}

/// Faults redirected to a fixup, and SIGBUS handed on to the previous handler,
/// since the process started.
pub(crate) fn counts() -> (u64, u64) {
    (RECOVERED.load(Relaxed), FORWARDED.load(Relaxed))
}

pub(crate) fn is_installed() -> bool {
    INSTALLED.load(Acquire)
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
    let first_time = !is_installed();
    (*FIRST.get_or_init(install_once))?;
    if first_time {
        return Ok(());
    }
    let current = current_action()?;
    match current.sa_sigaction {
        h if h == our_handler() => Ok(()),
        libc::SIG_DFL => Err(InstallError::Replaced(Replacement::Default)),
        libc::SIG_IGN => Err(InstallError::Replaced(Replacement::Ignore)),
        handler => check_replacement(handler, current.sa_flags),
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

fn current_action() -> Result<libc::sigaction, InstallError> {
    let mut action = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only queries; `action` is writable.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), action.as_mut_ptr()) } != 0 {
        return Err(InstallError::Sigaction(errno()));
    }
    // SAFETY: sigaction filled it in.
    Ok(unsafe { action.assume_init() })
}

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
    PREVIOUS.store(&before);

    let ours = our_action();
    let mut replaced = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: both pointers are valid; on_sigbus has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(libc::SIGBUS, &ours, replaced.as_mut_ptr()) } != 0 {
        return Err(InstallError::Sigaction(errno()));
    }
    // SAFETY: sigaction filled it in.
    let replaced = unsafe { replaced.assume_init() };
    if replaced.sa_sigaction != before.sa_sigaction || replaced.sa_flags != before.sa_flags {
        // Another thread changed the action between our two calls: what we
        // replaced is the previous action.
        PREVIOUS.store(&replaced);
    }
    INSTALLED.store(true, Release);
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

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn our_handler() -> usize {
    on_sigbus as *const () as usize
}

/// mcsafe's SIGBUS action (async-signal-safe).
fn our_action() -> libc::sigaction {
    // SAFETY: zeroed is a valid sigaction; the fields that matter are set below.
    let mut ours: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    ours.sa_sigaction = our_handler();
    ours.sa_flags = OUR_FLAGS;
    // SAFETY: sa_mask is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut ours.sa_mask) };
    ours
}

/// The SIGBUS handler. See the module docs for what it may and may not do.
extern "C" fn on_sigbus(signo: c_int, info: *mut siginfo_t, context: *mut c_void) {
    // SAFETY: installed with SA_SIGINFO, so the kernel (or a chaining handler,
    // which must pass them on unchanged) supplies a valid siginfo and ucontext.
    unsafe {
        if !redirect_to_fixup(info.cast(), context.cast()) {
            forward(signo, info, context);
        }
    }
}

/// Sends the fault to a fixup if it is a copy routine's own; returns whether it did.
///
/// Ours means all of: a kernel-generated synchronous SIGBUS (`BUS_MCEERR_AR`,
/// `BUS_ADRERR`, `BUS_OBJERR`; never `BUS_MCEERR_AO`, `SI_KERNEL` or a code
/// from kill/sigqueue, which are <= 0), RIP inside a landing-pad range, and a
/// lost granule that overlaps the buffers the routine was called with.
///
/// # Safety
/// `info` and `context` point to the siginfo and ucontext of this delivery.
unsafe fn redirect_to_fixup(info: *const SigFault, context: *mut ucontext_t) -> bool {
    // SAFETY: per this function's contract.
    let (info, gregs) = unsafe { (&*info, &mut (*context).uc_mcontext.gregs) };
    if !matches!(
        info.code,
        libc::BUS_MCEERR_AR | libc::BUS_ADRERR | libc::BUS_OBJERR
    ) {
        return false;
    }
    // User space ends below 2^57 (5-level paging), so the kernel reports no fault
    // of a user access above; `Fault` keeps addresses in 57 bits.
    if info.addr >> 57 != 0 {
        return false;
    }
    let Some(pad) = table::find(gregs[libc::REG_RIP as usize] as usize) else {
        return false;
    };
    let reg = |r: c_int| gregs[r as usize] as usize;
    let (dst, src, len) = match pad.regs {
        table::Regs::Saved => (reg(libc::REG_R8), reg(libc::REG_R9), reg(libc::REG_R10)),
        table::Regs::Entry => (reg(libc::REG_RDI), reg(libc::REG_RSI), reg(libc::REG_RDX)),
    };
    let lsb = info.addr_lsb.clamp(0, 63) as u32;
    if cut(info.addr, granule(lsb, page_size()), dst, src, len).is_none() {
        return false;
    }
    // The fault word and address the fixup returns (asm/landing_pads.s).
    let word = (info.code as u16 as usize) | (lsb as usize) << WORD_LSB_SHIFT;
    gregs[libc::REG_RAX as usize] = word as i64;
    gregs[libc::REG_R11 as usize] = info.addr as i64;
    gregs[libc::REG_RIP as usize] = pad.fixup as i64;
    RECOVERED.fetch_add(1, Relaxed);
    true
}

/// Hands a SIGBUS that is not ours to the previous action, as the kernel would
/// have delivered it had mcsafe never been installed.
///
/// # Safety
/// The arguments are those of this delivery.
unsafe fn forward(signo: c_int, info: *mut siginfo_t, context: *mut c_void) {
    FORWARDED.fetch_add(1, Relaxed);
    let saved_errno = errno();
    let previous = PREVIOUS.load();
    // SAFETY: info is valid for this delivery.
    let code = unsafe { (*info).si_code };
    // The kernel forces synchronous faults through even when SIGBUS is ignored
    // (resetting it to SIG_DFL); BUS_MCEERR_AO and user-sent signals it does not.
    let forced = code > 0 && code != libc::BUS_MCEERR_AO;

    // SAFETY: each call below is async-signal-safe and gets valid pointers.
    unsafe {
        match previous.sa_sigaction {
            libc::SIG_IGN if !forced => {}
            libc::SIG_DFL | libc::SIG_IGN => {
                // Put the default action back and re-send this very siginfo to this
                // thread: SIGBUS is not blocked here (SA_NODEFER), so it is delivered
                // as soon as the system call returns and the process dies by SIGBUS,
                // with a core where cores are enabled, as it would have without us.
                // Re-sending (rather than returning into the faulting instruction)
                // also covers signals that would not repeat: SI_KERNEL, kill(2).
                let mut default = previous;
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &default, ptr::null_mut());
                libc::syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    libc::getpid(),
                    libc::gettid(),
                    signo,
                    info,
                );
            }
            handler => call_previous(handler, &previous, signo, info, context),
        }
        *libc::__errno_location() = saved_errno;
    }
}

/// Calls a previous handler function the way the kernel would have: with its
/// sa_mask (and SIGBUS itself unless SA_NODEFER) blocked, its disposition reset
/// first if it asked for SA_RESETHAND, and with (signo, info, context) for an
/// SA_SIGINFO handler or (signo) for a plain one. If it never returns (longjmp),
/// the mask stays as the kernel would have left it.
///
/// # Safety
/// `handler` is the previous action's handler; the rest are this delivery's.
unsafe fn call_previous(
    handler: usize,
    previous: &libc::sigaction,
    signo: c_int,
    info: *mut siginfo_t,
    context: *mut c_void,
) {
    let mut block = previous.sa_mask;
    let mut before = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: async-signal-safe calls with valid pointers; `handler` was installed
    // by sigaction with the signature its SA_SIGINFO flag promises.
    unsafe {
        if previous.sa_flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut block, signo);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, before.as_mut_ptr());
        if previous.sa_flags & libc::SA_RESETHAND != 0 {
            // The kernel would reset the action to SIG_DFL before the call. The
            // action it resets is the previous one: mcsafe's stays in place.
            let mut default = *previous;
            default.sa_sigaction = libc::SIG_DFL;
            PREVIOUS.store(&default);
        }
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
                core::mem::transmute(handler);
            f(signo, info, context);
        } else {
            let f: extern "C" fn(c_int) = core::mem::transmute(handler);
            f(signo);
        }
        adopt_changed_action();
        libc::pthread_sigmask(libc::SIG_SETMASK, before.as_ptr(), ptr::null_mut());
    }
}

/// Called after a previous handler returned: if it changed the SIGBUS action,
/// that change was meant for the SIGBUS that are its business, so it becomes
/// the action mcsafe forwards to, and mcsafe's handler goes back in place.
///
/// Rust's std installs such a handler in every Rust program (for stack overflow
/// reports; it is what mcsafe finds and saves when nothing else was installed):
/// on a SIGBUS outside a thread's guard page, it resets SIGBUS to SIG_DFL and
/// returns, so that the faulting instruction runs again and the process dies.
/// Left alone, a forwarded `kill -BUS` or `BUS_MCEERR_AO` (which do not repeat)
/// would leave SIG_DFL in place of mcsafe's handler and the next copy fault
/// would kill the process. Adopted, a fault that repeats still dies by SIGBUS
/// (now through mcsafe's forwarding to SIG_DFL), and copy faults stay recovered.
///
/// Async-signal-safe: two `sigaction` calls and atomics.
fn adopt_changed_action() {
    let mut now = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only queries; `now` is writable.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), now.as_mut_ptr()) } != 0 {
        return;
    }
    // SAFETY: sigaction filled it in.
    let now = unsafe { now.assume_init() };
    if now.sa_sigaction != our_handler() {
        // Forward to the new action from now on, unless another thread is saving
        // one at this moment (then a slightly stale action is forwarded to); but
        // put mcsafe's handler back either way: without it the next copy fault
        // would kill the process.
        PREVIOUS.store(&now);
        // SAFETY: a valid action; on_sigbus has the SA_SIGINFO signature.
        unsafe { libc::sigaction(libc::SIGBUS, &our_action(), ptr::null_mut()) };
    }
}
