//! Does the SIGBUS handler that replaced mcsafe's still pass copy faults on?
//!
//! Asked by `install()` only when the current SIGBUS action is a handler
//! function other than mcsafe's (a chaining one like `signal-hook`'s, or one that
//! keeps every SIGBUS for itself). Looking at the action cannot tell the two
//! apart, so a forked child takes one real copy fault and the parent watches:
//!
//! - the fault reaches mcsafe's handler through the chain, the routine stops at
//!   its fixup, and the child records that in a shared page: chained;
//! - the child dies or exits without recording it: the replacement does not
//!   chain, and how the child ended says what it does instead;
//! - the child is still running when the time runs out: a handler that returns
//!   without passing the fault on makes the faulting load fault again forever.
//!   The parent kills it.
//!
//! # The child
//!
//! `fork` in a process that may have other threads leaves the child with only
//! the calling thread and whatever locks the others held, so the child does only
//! async-signal-safe work: `setrlimit`, `pthread_sigmask`, one call of a copy
//! routine (no allocation, no lock; the handler chain it triggers is what is
//! being checked) and `_exit`. Everything it touches is prepared by the parent
//! before the fork: a one-page `MAP_SHARED` mapping of an empty memfd (every
//! byte of it lies past the end of the file, so a load raises `BUS_ADRERR`) and a
//! shared anonymous page for the verdict. The child also sets its core-file
//! limit to 0, so that a replacement that dies by SIGBUS leaves no core behind.
//!
//! Change it, then run `cargo test -p mcsafe-tests --test replacements` (its
//! handlers installed after mcsafe: chaining, returning, exiting, a busy process)
//! and `cargo test -p mcsafe-tests --test api`.

use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::Replacement;
use crate::arch::{Arch, Target};

/// How long the probe child may take. A chained fault takes microseconds; fork
/// of a large process takes milliseconds. Only a non-chaining handler that
/// returns (or blocks) costs the whole of it.
pub(crate) const PROBE_TIME: Duration = Duration::from_secs(2);

/// What the child writes in the shared page when the fault reached mcsafe.
const RECOVERED: u32 = 0x6d63_7366; // "mcsf"
const PROBE_LEN: usize = 64;

/// Runs the probe: `Ok` if a copy fault taken under the current SIGBUS action
/// reaches mcsafe's handler, else what the action did with it.
pub(crate) fn copy_fault_reaches_us() -> Result<(), Replacement> {
    let page = Arch::page_size();
    let Some(lost) = Mapping::lost_page(page) else {
        return Err(Replacement::Unverified(errno()));
    };
    let Some(verdict) = Mapping::shared_anonymous(page) else {
        return Err(Replacement::Unverified(errno()));
    };
    let flag = verdict.0.cast::<AtomicU32>();
    // The current copy routine (installed: this runs after init).
    let routine = Arch::copy_routine(None);
    // SAFETY: fork has no preconditions; the child only calls `child`, which does
    // async-signal-safe work on memory mapped before the fork, then _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: both mappings are live in the child (inherited).
        unsafe { child(routine, lost.0, flag) }
    }
    if pid < 0 {
        return Err(Replacement::Unverified(errno()));
    }
    let ended = wait_for(pid);
    // SAFETY: the shared page is ours and mapped; the child has ended.
    if unsafe { &*flag }.load(Ordering::Acquire) == RECOVERED {
        return Ok(());
    }
    Err(match ended {
        Ended::Status(status) if libc::WIFSIGNALED(status) => {
            Replacement::Killed(libc::WTERMSIG(status))
        }
        Ended::Status(status) => Replacement::Exited(libc::WEXITSTATUS(status)),
        Ended::TimedOut => Replacement::Hung,
        Ended::Unknown(errno) => Replacement::Unverified(errno),
    })
}

/// The probe child. Async-signal-safe only (see the module docs); never returns.
///
/// # Safety
/// `lost` is a readable-looking page that faults with SIGBUS on every byte;
/// `flag` points into a shared writable page.
unsafe fn child(routine: <Arch as Target>::Copy, lost: *mut u8, flag: *mut AtomicU32) -> ! {
    let mut buf = [0u8; PROBE_LEN];
    // SAFETY: plain system calls with valid arguments; `call` reads only
    // lost..+PROBE_LEN (which faults, the point) and writes only `buf`.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        // A thread that blocks SIGBUS dies on a fault whatever the action: what is
        // checked here is the action, so unblock it.
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGBUS);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
        let result = Arch::run_copy(routine, buf.as_mut_ptr(), lost, PROBE_LEN);
        if let Err(stopped) = result
            && stopped.code == libc::BUS_ADRERR
            && stopped.addr.wrapping_sub(lost as usize) < PROBE_LEN
        {
            (*flag).store(RECOVERED, Ordering::Release);
        }
        libc::_exit(0)
    }
}

enum Ended {
    Status(i32),
    TimedOut,
    Unknown(i32),
}

/// Waits for the probe child until [`PROBE_TIME`] runs out, then kills it.
fn wait_for(pid: libc::pid_t) -> Ended {
    let deadline = Instant::now() + PROBE_TIME;
    let mut pause = Duration::from_micros(50);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if got == pid {
            return Ended::Status(status);
        }
        if got < 0 && errno() != libc::EINTR {
            // ECHILD: SIGCHLD is ignored (children are reaped by the kernel) or
            // another waitpid took it. The shared page still tells.
            return Ended::Unknown(errno());
        }
        if Instant::now() >= deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Ended::TimedOut;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A mapping unmapped on drop.
struct Mapping(*mut u8, usize);

impl Mapping {
    /// One page of an empty memfd, mapped shared: every access raises SIGBUS.
    fn lost_page(page: usize) -> Option<Mapping> {
        // SAFETY: plain system calls on a descriptor this function owns.
        unsafe {
            let fd = libc::memfd_create(c"mcsafe-probe".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let p = libc::mmap(
                ptr::null_mut(),
                page,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            (p != libc::MAP_FAILED).then(|| Mapping(p.cast(), page))
        }
    }

    /// One zeroed page shared with children.
    fn shared_anonymous(page: usize) -> Option<Mapping> {
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then(|| Mapping(p.cast(), page))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.0.cast(), self.1) };
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
