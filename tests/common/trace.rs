//! ptrace helpers: run a forked child to a copy routine, stop it at an
//! instruction inside a landing-pad range, and deliver a forged SIGBUS there
//! (PTRACE_SETSIGINFO at a single-step stop). The only way to make a signal
//! with a positive `si_code` arrive at a RIP inside `copy_mc` without the
//! kernel raising it: a process can queue one only to the calling thread,
//! where it arrives at the system call's return.
#![allow(dead_code)]

use mcsafe::Strategy;
use mcsafe::internals::{landing_pads, rust_strategy_routine};
use nix::sys::ptrace;
use nix::sys::signal::{Signal, raise};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// Whether `rip` lies inside a landing-pad range of a copy routine.
/// Async-signal-safe: reads the static table only.
pub fn in_a_range(rip: usize) -> bool {
    landing_pads().any(|p| p.begin <= rip && rip < p.end)
}

/// A SIGBUS siginfo as the kernel lays it out on x86-64: signo at 0, code at
/// 8, addr at 16, addr_lsb at 24.
pub fn sigbus_info(code: i32, addr: usize, lsb: i16) -> libc::siginfo_t {
    // SAFETY: an all-zero siginfo_t is valid; the fields are written at the
    // kernel's offsets.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let raw = (&raw mut info).cast::<u8>();
        raw.cast::<i32>().write(libc::SIGBUS);
        raw.add(8).cast::<i32>().write(code);
        raw.add(16).cast::<usize>().write(addr);
        raw.add(24).cast::<i16>().write(lsb);
        info
    }
}

/// `si_addr_lsb` of a SIGBUS siginfo (the `libc` crate does not expose it).
///
/// # Safety
/// `info` points to a valid siginfo.
pub unsafe fn addr_lsb(info: *const libc::siginfo_t) -> i16 {
    // SAFETY: per the contract; offset 24 on x86-64.
    unsafe { info.cast::<u8>().add(24).cast::<i16>().read() }
}

fn wait_stop(pid: Pid) -> Signal {
    match waitpid(pid, None).unwrap() {
        WaitStatus::Stopped(_, sig) => sig,
        other => panic!("tracee did not stop: {other:?}"),
    }
}

/// Forks a traced child that runs `tracee` (which must call a copy with
/// `strategy` and end with `_exit`), stops it at its `k`-th instruction inside a
/// landing-pad range of that routine, delivers `info` as SIGBUS there, then lets
/// it run, passing on every signal it receives, until it ends. Returns how it
/// ended.
///
/// The child does only async-signal-safe work before its body: call this from a
/// process whose other threads hold no lock the body needs (a test child of
/// `common::in_child`, whose only other thread is libtest's idle main thread).
pub fn inject_at(
    strategy: Strategy,
    k: usize,
    info: libc::siginfo_t,
    tracee: impl FnOnce() -> i32,
) -> WaitStatus {
    let mut seen = 0;
    inject_when(
        strategy,
        |_| {
            seen += 1;
            seen > k
        },
        || {},
        info,
        tracee,
    )
}

/// [`inject_at`], stopping at the first in-range instruction where `stop`
/// (given the registers) says so, and calling `before` just before the
/// signal is delivered (to take a page away, say).
pub fn inject_when(
    strategy: Strategy,
    mut stop: impl FnMut(&libc::user_regs_struct) -> bool,
    before: impl FnOnce(),
    info: libc::siginfo_t,
    tracee: impl FnOnce() -> i32,
) -> WaitStatus {
    // SAFETY: the child only runs `tracee` (see the contract) and _exits.
    let pid = match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            ptrace::traceme().unwrap();
            raise(Signal::SIGSTOP).unwrap();
            let code = tracee();
            // SAFETY: leaving the forked child without atexit work.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    assert_eq!(wait_stop(pid), Signal::SIGSTOP);
    // Run to the routine's entry with a breakpoint.
    run_to(pid, rust_strategy_routine(strategy).entry);
    // Step to the instruction asked for.
    let mut in_range = false;
    loop {
        let regs = ptrace::getregs(pid).unwrap();
        if in_a_range(regs.rip as usize) {
            in_range = true;
            if stop(&regs) {
                break;
            }
        } else {
            assert!(
                !in_range,
                "left the ranges at {:#x} before stopping",
                regs.rip
            );
        }
        ptrace::step(pid, None).unwrap();
        assert_eq!(wait_stop(pid), Signal::SIGTRAP);
    }
    before();
    ptrace::setsiginfo(pid, &info).unwrap();
    ptrace::cont(pid, Signal::SIGBUS).unwrap();
    loop {
        match waitpid(pid, None).unwrap() {
            WaitStatus::Stopped(_, sig) => ptrace::cont(pid, sig).unwrap(),
            ended => return ended,
        }
    }
}

/// Runs a traced child, stopped, on to `entry` through a one-shot breakpoint
/// (int3), and leaves it stopped there with RIP back at `entry`. Returns its
/// registers at that point.
pub fn run_to(pid: Pid, entry: usize) -> libc::user_regs_struct {
    let at = entry as ptrace::AddressType;
    let word = ptrace::read(pid, at).unwrap();
    ptrace::write(pid, at, (word & !0xff) | 0xcc).unwrap();
    ptrace::cont(pid, None).unwrap();
    match waitpid(pid, None).unwrap() {
        WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
        other => panic!("the tracee did not reach the breakpoint: {other:?}"),
    }
    let mut regs = ptrace::getregs(pid).unwrap();
    assert_eq!(regs.rip as usize, entry + 1, "stopped at the breakpoint");
    ptrace::write(pid, at, word).unwrap();
    regs.rip = entry as u64;
    ptrace::setregs(pid, regs).unwrap();
    regs
}
