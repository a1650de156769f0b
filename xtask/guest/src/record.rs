//! An application's own SIGBUS handler, installed before mcsafe's: it records
//! every SIGBUS that mcsafe hands on (not a copy fault) in a page shared with
//! the parent, so that the parent can tell what a dead child saw.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::Relaxed};

/// What the handler saw; lives in a `MAP_SHARED` page made by [`init`].
#[derive(Default)]
pub struct Record {
    pub count: AtomicUsize,
    pub code: AtomicUsize,
    pub addr: AtomicUsize,
    pub rip: AtomicUsize,
}

/// A plain copy of a [`Record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub count: usize,
    pub code: i32,
    pub addr: usize,
    pub rip: usize,
}

static RECORD: AtomicPtr<Record> = AtomicPtr::new(std::ptr::null_mut());
static DIE: AtomicBool = AtomicBool::new(false);

/// Makes the shared record; call once in the parent, before any fork.
pub fn init() {
    // SAFETY: a new shared anonymous page, zero-filled, which is a valid Record.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap of the shared record");
    RECORD.store(page.cast(), Relaxed);
}

fn record() -> &'static Record {
    // SAFETY: set by init() before any case runs, never unmapped.
    unsafe { &*RECORD.load(Relaxed) }
}

/// Clears the record (the parent, before each child).
pub fn clear() {
    let r = record();
    for field in [&r.count, &r.code, &r.addr, &r.rip] {
        field.store(0, Relaxed);
    }
}

pub fn seen() -> Seen {
    let r = record();
    Seen {
        count: r.count.load(Relaxed),
        code: r.code.load(Relaxed) as i32,
        addr: r.addr.load(Relaxed),
        rip: r.rip.load(Relaxed),
    }
}

/// Installs the recording handler for SIGBUS; call before mcsafe's goes in.
/// With `die`, the handler then ends the process by SIGBUS, as the default
/// action would have (the machine-check case); without, it returns.
pub fn install(die: bool) {
    DIE.store(die, Relaxed);
    // SAFETY: a valid SA_SIGINFO action.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Async-signal-safe: atomics, sigaction, sigprocmask and raise only.
extern "C" fn on_sigbus(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO; mcsafe passes on the kernel's siginfo
    // and ucontext unchanged.
    let (code, addr, rip) = unsafe {
        let ctx = &*context.cast::<libc::ucontext_t>();
        #[cfg(target_arch = "x86_64")]
        let rip = ctx.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
        #[cfg(target_arch = "aarch64")]
        let rip = ctx.uc_mcontext.pc as usize;
        ((*info).si_code, (*info).si_addr() as usize, rip)
    };
    let r = record();
    r.code.store(code as u32 as usize, Relaxed);
    r.addr.store(addr, Relaxed);
    r.rip.store(rip, Relaxed);
    r.count.fetch_add(1, Relaxed);
    if DIE.load(Relaxed) {
        // SAFETY: async-signal-safe calls that end this process by SIGBUS.
        unsafe {
            libc::signal(signo, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signo);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(signo);
        }
    }
}
