//! Handlers installed *after* mcsafe's, and what `mcsafe::install()` says of
//! them: a replacement that chains (signal-hook, a hand-written one) is `Ok`
//! and copy faults are recovered through it; one that does not is reported
//! (hung, exits, aborts, `SIG_IGN`), its verdict remembered; the probe that
//! tells them apart works in a busy multithreaded process. What each kind of
//! SIGBUS does in every install order: `tests/chaining_matrix.rs`.

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use common::*;
use mcsafe::{InstallError, Replacement, Strategy};
use recorder::set_action;

/// Calls of the handlers below.
static CALLS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn signal_hook_after_mcsafe_chains_and_copy_faults_are_recovered() {
    if qemu_user_cannot(
        "signal_hook_after_mcsafe_chains_and_copy_faults_are_recovered",
        qemu_user::RE_SENT_FAULT,
    ) {
        return;
    }
    let status = in_child(
        "signal_hook_after_mcsafe_chains_and_copy_faults_are_recovered",
        || {
            mcsafe::install().unwrap();
            static HOOKED: AtomicUsize = AtomicUsize::new(0);
            // SAFETY: the action only touches an atomic.
            unsafe {
                signal_hook_registry::register_sigaction(libc::SIGBUS, |_| {
                    HOOKED.fetch_add(1, SeqCst);
                })
            }
            .unwrap();
            assert_eq!(mcsafe::install(), Ok(()), "signal-hook chains");
            let recovered = mcsafe::stats().recovered;
            assert_copy_faults_recovered();
            let n = Strategy::available().len();
            assert_eq!(mcsafe::stats().recovered - recovered, n as u64);
            // signal-hook runs its own actions after the handler it replaced.
            assert_eq!(HOOKED.load(SeqCst), n);
            // A fault outside copy_mc: signal-hook, then mcsafe, then SIG_DFL.
            let lost = LostTail::new(1, 1, 0);
            // SAFETY: the page is lost: SIGBUS.
            unsafe { lost.boundary().read_volatile() };
        },
    );
    assert_eq!(killed_by(status), Some(libc::SIGBUS), "{status:?}");
}

static SAVED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// A handler that chains by hand, as a careful library would: its own
/// business, then the action it replaced.
extern "C" fn chaining_handler(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    CALLS.fetch_add(1, SeqCst);
    let previous = *SAVED.get().unwrap();
    // SAFETY: the replaced action is mcsafe's SA_SIGINFO handler.
    let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
        unsafe { std::mem::transmute(previous) };
    f(signo, info, context);
}

extern "C" fn returning_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    CALLS.fetch_add(1, SeqCst);
}

extern "C" fn exiting_handler(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(7) };
}

extern "C" fn aborting_handler(_: i32) {
    // SAFETY: abort is async-signal-safe.
    unsafe { libc::abort() };
}

#[test]
fn a_hand_written_chaining_handler_after_mcsafe_is_accepted() {
    let status = in_child(
        "a_hand_written_chaining_handler_after_mcsafe_is_accepted",
        || {
            mcsafe::install().unwrap();
            let old = set_action(chaining_handler as *const () as usize, libc::SA_SIGINFO);
            SAVED.set(old.sa_sigaction).unwrap();
            assert_eq!(mcsafe::install(), Ok(()));
            assert_eq!(CALLS.load(SeqCst), 0, "the probe ran in a child");
            assert_copy_faults_recovered();
            assert_eq!(CALLS.load(SeqCst), Strategy::available().len());
        },
    );
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_handler_after_mcsafe_that_returns_is_reported_as_hung() {
    let status = in_child(
        "a_handler_after_mcsafe_that_returns_is_reported_as_hung",
        || {
            mcsafe::install().unwrap();
            let ours = set_action(returning_handler as *const () as usize, libc::SA_SIGINFO);
            let started = Instant::now();
            let err = mcsafe::install().unwrap_err();
            assert_eq!(err, InstallError::Replaced(Replacement::Hung));
            let text = err.to_string();
            assert!(text.contains("does not pass copy faults on"), "{text}");
            assert!(
                text.contains("install that handler before mcsafe's"),
                "{text}"
            );
            eprintln!("{text} ({:?})", started.elapsed());
            // The verdict is remembered: no second probe.
            let started = Instant::now();
            assert_eq!(mcsafe::install(), Err(err));
            assert!(started.elapsed() < Duration::from_secs(1));
            // Putting mcsafe's handler back makes it whole again.
            // SAFETY: restoring the action that was replaced.
            unsafe { libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) };
            assert_eq!(mcsafe::install(), Ok(()));
            assert_copy_faults_recovered();
        },
    );
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_handler_after_mcsafe_that_exits_or_aborts_is_reported() {
    let status = in_child(
        "a_handler_after_mcsafe_that_exits_or_aborts_is_reported",
        || {
            mcsafe::install().unwrap();
            set_action(exiting_handler as *const () as usize, 0);
            let err = mcsafe::install().unwrap_err();
            assert_eq!(err, InstallError::Replaced(Replacement::Exited(7)));
            assert!(err.to_string().contains("exit with status 7"), "{err}");
            set_action(aborting_handler as *const () as usize, 0);
            let err = mcsafe::install().unwrap_err();
            assert_eq!(
                err,
                InstallError::Replaced(Replacement::Killed(libc::SIGABRT))
            );
            assert!(err.to_string().contains("signal 6"), "{err}");
            set_action(libc::SIG_IGN, 0);
            assert_eq!(
                mcsafe::install(),
                Err(InstallError::Replaced(Replacement::Ignore))
            );
        },
    );
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_probe_works_in_a_busy_multithreaded_process_with_sigchld_ignored() {
    let status = in_child(
        "the_probe_works_in_a_busy_multithreaded_process_with_sigchld_ignored",
        || {
            mcsafe::install().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            // Threads that hold the allocator's locks much of the time: the probe
            // child must not need them.
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let mut kept = Vec::new();
                        while !stop.load(SeqCst) {
                            kept.push(vec![i as u8; 1000 + kept.len()]);
                            if kept.len() > 500 {
                                kept.clear();
                            }
                        }
                    })
                })
                .collect();
            // SAFETY: signal-hook's registration; the action does nothing.
            unsafe { signal_hook_registry::register_sigaction(libc::SIGBUS, |_| {}) }.unwrap();
            // Children are reaped by the kernel: the probe reads its shared page.
            // SAFETY: setting a disposition in this child.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            for i in 0..10 {
                assert_eq!(mcsafe::install(), Ok(()), "probe {i}");
                // Toggle SA_RESTART on signal-hook's action: a new (handler,
                // flags), so that the next call probes again.
                // SAFETY: querying and re-setting the current action.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut action);
                    action.sa_flags ^= libc::SA_RESTART;
                    libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
                }
            }
            stop.store(true, SeqCst);
            for t in threads {
                t.join().unwrap();
            }
            assert_copy_faults_recovered();
        },
    );
    assert!(status.success(), "{status:?}");
}

static CHILDREN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_children(_: i32) {
    CHILDREN.fetch_add(1, SeqCst);
}

/// While mcsafe's handler is the current action, `install()` only looks at
/// it: no probe, so no child process (counted by SIGCHLD); once a handler
/// function replaced it, the probe's child shows.
#[test]
fn install_probes_only_a_handler_that_replaced_mcsafes() {
    let status = in_child(
        "install_probes_only_a_handler_that_replaced_mcsafes",
        || {
            // SAFETY: a SIGCHLD handler that only counts, in this child.
            unsafe { libc::signal(libc::SIGCHLD, count_children as *const () as usize) };
            mcsafe::install().unwrap();
            for _ in 0..3 {
                assert_eq!(mcsafe::install(), Ok(()));
            }
            // (SIGCHLD reaches the process at once, a thread a moment later.)
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(CHILDREN.load(SeqCst), 0, "no probe while ours is in place");
            // SAFETY: signal-hook's registration; the action does nothing.
            unsafe { signal_hook_registry::register_sigaction(libc::SIGBUS, |_| {}) }.unwrap();
            assert_eq!(mcsafe::install(), Ok(()));
            let deadline = Instant::now() + Duration::from_secs(5);
            while CHILDREN.load(SeqCst) == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(CHILDREN.load(SeqCst), 1, "one probe for the replacement");
        },
    );
    assert!(status.success(), "{status:?}");
}

/// With SIGCHLD ignored the kernel reaps the probe's child itself, so how it
/// ended is unknown: a replacement that does not pass the fault on is then
/// reported as unverified (with `waitpid`'s errno), at once, not as hung.
#[test]
fn with_sigchld_ignored_a_replacement_that_exits_is_unverified() {
    let status = in_child(
        "with_sigchld_ignored_a_replacement_that_exits_is_unverified",
        || {
            mcsafe::install().unwrap();
            // SAFETY: setting dispositions in this child.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            set_action(exiting_handler as *const () as usize, 0);
            let started = Instant::now();
            let err = mcsafe::install().unwrap_err();
            assert_eq!(
                err,
                InstallError::Replaced(Replacement::Unverified(libc::ECHILD))
            );
            assert!(started.elapsed() < Duration::from_secs(1), "not timed out");
        },
    );
    assert!(status.success(), "{status:?}");
}

/// The lines of /proc/self/maps: one per mapping.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Each probe maps two pages (the lost page, the verdict) and unmaps them.
#[test]
fn the_probe_leaves_no_mapping_behind() {
    let status = in_child("the_probe_leaves_no_mapping_behind", || {
        mcsafe::install().unwrap();
        // SAFETY: signal-hook's registration; the action does nothing.
        unsafe { signal_hook_registry::register_sigaction(libc::SIGBUS, |_| {}) }.unwrap();
        assert_eq!(mcsafe::install(), Ok(()));
        let before = mappings();
        for _ in 0..20 {
            // A new (handler, flags) each time, so that each call probes.
            // SAFETY: querying and re-setting the current action.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut action);
                action.sa_flags ^= libc::SA_RESTART;
                libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
            }
            assert_eq!(mcsafe::install(), Ok(()));
        }
        let after = mappings();
        assert!(
            after < before + 5,
            "{before} mappings before 20 probes, {after} after"
        );
    });
    assert!(status.success(), "{status:?}");
}
