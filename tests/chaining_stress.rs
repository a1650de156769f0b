//! Stress for the chain: a thread installs a chaining SIGBUS handler (`C`) over
//! mcsafe's and puts back the action it replaced, again and again, while two
//! threads take copy faults and two others, copying without faults, receive
//! foreign SIGBUS (`tgkill` from the main thread, one at a time, each waited
//! for). The handler installed before mcsafe (`P`) counts what reaches it.
//! (The receivers do not fault: a thread has one slot for a pending SIGBUS, so
//! a `tgkill` that lands while the kernel is delivering a fault to that same
//! thread merges with it, with or without mcsafe.) Checked:
//!
//! - every copy fault is recovered exactly, and none reaches `P`;
//! - every foreign signal reaches `P` exactly once, and `C` at most once; when
//!   the installing thread did not move between the send and `P`'s call, `C`
//!   was called exactly when it was in place;
//! - what the installing thread puts back is always what it installed over:
//!   nobody changed the action behind its back;
//! - nothing recurses (that would end in SIGSEGV).
//!
//! Runs in a child process (the handlers are process-wide). Bounded:
//! `MCSAFE_STRESS_SECS` seconds (default 2). Prints the counts.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::*;
use mcsafe::Strategy;

/// Foreign signals that reached P, C; copy faults that reached P (must stay 0).
static P_CALLS: AtomicU64 = AtomicU64::new(0);
static C_CALLS: AtomicU64 = AtomicU64::new(0);
static P_COPY_FAULTS: AtomicU64 = AtomicU64::new(0);
/// The action C calls: mcsafe's.
static CHAINED: AtomicUsize = AtomicUsize::new(0);
/// The installing thread's progress: 4n (mcsafe's handler alone), 4n+1
/// (installing C), 4n+2 (C in place), 4n+3 (removing C).
static EPOCH: AtomicU64 = AtomicU64::new(0);

extern "C" fn previous(_: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: a valid siginfo.
    let code = unsafe { (*info).si_code };
    let counter = if code > 0 { &P_COPY_FAULTS } else { &P_CALLS };
    counter.fetch_add(1, SeqCst);
}

extern "C" fn chainer(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: a valid siginfo.
    if unsafe { (*info).si_code } <= 0 {
        C_CALLS.fetch_add(1, SeqCst);
    }
    // SAFETY: CHAINED is mcsafe's SA_SIGINFO handler.
    let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
        unsafe { std::mem::transmute(CHAINED.load(SeqCst)) };
    f(signo, info, context);
    std::hint::black_box(());
}

fn sigaction(handler: usize, flags: i32, old: &mut libc::sigaction) {
    // SAFETY: a valid action for SIGBUS; `old` is writable.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &action, old), 0);
    }
}

/// Installs C and puts back what it replaced until `stop`; returns the number
/// of rounds, or the first round where the action was not what it left.
fn flap(stop: &AtomicBool) -> Result<u64, String> {
    let c = chainer as *const () as usize;
    let mut rounds = 0;
    while !stop.load(SeqCst) {
        // SAFETY: an all-zero sigaction is valid.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        EPOCH.fetch_add(1, SeqCst);
        sigaction(c, libc::SA_SIGINFO, &mut old);
        EPOCH.fetch_add(1, SeqCst);
        if old.sa_sigaction != CHAINED.load(SeqCst) {
            return Err(format!(
                "round {rounds}: C replaced {:#x}, not mcsafe's",
                old.sa_sigaction
            ));
        }
        // Short holds race the signals; long ones let some arrive wholly inside.
        let hold = Duration::from_micros(if rounds % 2 == 0 { 20 } else { 2000 });
        std::thread::sleep(hold);
        EPOCH.fetch_add(1, SeqCst);
        // SAFETY: an all-zero sigaction is valid.
        let mut mine: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: putting back the action C replaced.
        assert_eq!(unsafe { libc::sigaction(libc::SIGBUS, &old, &mut mine) }, 0);
        EPOCH.fetch_add(1, SeqCst);
        if mine.sa_sigaction != c {
            return Err(format!(
                "round {rounds}: C was replaced by {:#x} behind its back",
                mine.sa_sigaction
            ));
        }
        rounds += 1;
        std::thread::sleep(hold);
    }
    Ok(rounds)
}

/// Copies without faults until `stop`, each checked, with short sleeps in
/// between (a sleeping thread takes a signal at once; one that waits for a core
/// behind the copiers, only when its turn comes); returns how many.
fn receive(tid: &AtomicI32, stop: &AtomicBool) -> u64 {
    // SAFETY: gettid has no preconditions.
    tid.store(unsafe { libc::gettid() }, SeqCst);
    let src: Vec<u8> = (0..64 * 1024).map(|i| byte_at(5, i)).collect();
    let mut dst = vec![0u8; src.len()];
    let mut copies = 0;
    while !stop.load(SeqCst) {
        dst[0] = !src[0];
        // SAFETY: two distinct heap buffers.
        unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), src.len()) }.unwrap();
        assert!(dst == src, "copy {copies}");
        copies += 1;
        std::thread::sleep(Duration::from_micros(20));
    }
    copies
}

/// Sets `stop` when dropped: a failed check in the main thread also ends the others.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Copies across a lost page until `stop`, each fault checked; returns how many.
fn copy_faults(stop: &AtomicBool) -> u64 {
    let lost = LostTail::new(3, 1, 9);
    let mut dst = vec![0u8; 4 * PAGE];
    let strategies = Strategy::available();
    let mut faults = 0u64;
    while !stop.load(SeqCst) {
        let strategy = strategies[faults as usize % strategies.len()];
        let at = (faults as usize * 97) % (3 * PAGE);
        let len = 4 * PAGE - at;
        // SAFETY: the mapping's fourth page is lost; dst holds 4 pages.
        let result =
            unsafe { mcsafe::copy_mc_with(strategy, dst.as_mut_ptr(), lost.base().add(at), len) };
        let f = result.unwrap_err();
        assert_eq!(f.copied(), 3 * PAGE - at, "{strategy} at {at}");
        assert_eq!(
            // SAFETY: `dst` holds `f.copied()` bytes copied from `lost.base() + at`,
            // which lie in the mapping's first three pages, readable.
            unsafe { first_difference(dst.as_ptr(), lost.base().add(at), f.copied()) },
            None
        );
        faults += 1;
    }
    faults
}

fn stress(secs: f64) {
    // SAFETY: a valid SA_SIGINFO action for SIGBUS, before mcsafe's.
    let mut unused: libc::sigaction = unsafe { std::mem::zeroed() };
    sigaction(
        previous as *const () as usize,
        libc::SA_SIGINFO,
        &mut unused,
    );
    mcsafe::install().unwrap();
    // SAFETY: an all-zero sigaction is valid; sigaction only queries.
    let ours = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut action);
        action
    };
    CHAINED.store(ours.sa_sigaction, SeqCst);
    let stop = AtomicBool::new(false);
    let tids = [AtomicI32::new(0), AtomicI32::new(0)];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut sent, mut strict_with, mut strict_without) = (0u64, 0u64, 0u64);
    std::thread::scope(|s| {
        let flapper = s.spawn(|| flap(&stop));
        let copiers: Vec<_> = (0..2).map(|_| s.spawn(|| copy_faults(&stop))).collect();
        let receivers: Vec<_> = tids
            .iter()
            .map(|tid| s.spawn(|| receive(tid, &stop)))
            .collect();
        let _stop = StopOnDrop(&stop);
        let started = Instant::now();
        while tids.iter().any(|t| t.load(SeqCst) == 0) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the receivers never started"
            );
            std::thread::yield_now();
        }
        while Instant::now() < deadline {
            let target = tids[sent as usize % tids.len()].load(SeqCst);
            let (epoch, p, c) = (
                EPOCH.load(SeqCst),
                P_CALLS.load(SeqCst),
                C_CALLS.load(SeqCst),
            );
            // SAFETY: a thread of this process, alive until `stop`.
            let done =
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), target, libc::SIGBUS) };
            assert_eq!(done, 0);
            sent += 1;
            let waited = Instant::now();
            while P_CALLS.load(SeqCst) == p {
                assert!(
                    waited.elapsed() < Duration::from_secs(5),
                    "signal {sent} never reached P"
                );
                std::thread::sleep(Duration::from_micros(5));
            }
            let (epoch_after, c_after) = (EPOCH.load(SeqCst), C_CALLS.load(SeqCst));
            assert_eq!(P_CALLS.load(SeqCst), p + 1, "signal {sent} reached P twice");
            assert!(
                c_after - c <= 1,
                "signal {sent} reached C {} times",
                c_after - c
            );
            if epoch == epoch_after {
                match epoch % 4 {
                    0 => {
                        assert_eq!(c_after, c, "signal {sent}: C was not in place, yet called");
                        strict_without += 1;
                    }
                    2 => {
                        assert_eq!(c_after, c + 1, "signal {sent}: C was in place, not called");
                        strict_with += 1;
                    }
                    _ => {}
                }
            }
        }
        stop.store(true, SeqCst);
        let faults: Vec<u64> = copiers.into_iter().map(|t| t.join().unwrap()).collect();
        let copies: Vec<u64> = receivers.into_iter().map(|t| t.join().unwrap()).collect();
        let rounds = flapper.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "chaining stress, {secs} s: {rounds} install/put-back rounds of C, {faults:?} copy \
             faults recovered, {sent} foreign SIGBUS during {copies:?} copies, each once to P \
             ({} also to C; {strict_with} sent and received while C stayed in place, \
             {strict_without} while it stayed out)",
            C_CALLS.load(SeqCst),
        );
        assert!(faults.iter().all(|&n| n > 0) && rounds > 0 && sent > 0);
        assert!(
            strict_with > 0 && strict_without > 0,
            "both states were seen"
        );
    });
    assert_eq!(P_COPY_FAULTS.load(SeqCst), 0, "copy faults passed on to P");
    assert_eq!(
        mcsafe::install(),
        Ok(()),
        "mcsafe's handler is in place at the end"
    );
}

#[test]
fn a_handler_installed_and_removed_over_mcsafe_again_and_again() {
    let secs: f64 = std::env::var("MCSAFE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let status = in_child(
        "a_handler_installed_and_removed_over_mcsafe_again_and_again",
        || stress(secs),
    );
    assert!(status.success(), "{status:?}");
}
