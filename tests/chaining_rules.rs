//! The rules of the chain (`src/handler/signal/mod.rs`), one test
//! each. Most run the same body twice, each in a child process: without mcsafe
//! and with it, and compare the handler calls logged (`common/recorder.rs`) and
//! how the child ended. The whole matrix of install orders is
//! `tests/chaining_matrix.rs`; many threads at once, `tests/chaining_stress.rs`.

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

use common::*;
use recorder::{End, Run, address, current_action, mark, set_action, tgkill_self};

/// Runs the calling test (`test`) in two children, without mcsafe and with it.
fn without_and_with(test: &str) -> (Run, Run) {
    let run = |with: &str| Run::of(&child_output(test, &[("MCSAFE_WITH", with)]));
    let (without, with) = (run("0"), run("1"));
    eprintln!("{test}:\n  without {without:?}\n  with    {with:?}");
    (without, with)
}

/// In a child of [`without_and_with`]: runs `body(with_mcsafe)` and exits 0
/// if it returns; returns false in the parent.
fn in_cell(test: &str, body: impl FnOnce(bool)) -> bool {
    let Ok(with) = std::env::var("MCSAFE_WITH") else {
        return false;
    };
    in_child(test, || {
        recorder::start();
        body(with == "1")
    });
    true
}

fn top_is(handler: usize) {
    let kept = current_action().sa_sigaction == handler;
    mark(if kept { "top kept" } else { "top gone" });
}

fn log(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

/// Waits, in a handler or not, until `flag` is set; at most 5 s.
fn wait_for(flag: &AtomicUsize) {
    for _ in 0..5_000_000 {
        if flag.load(SeqCst) != 0 {
            return;
        }
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1000,
        };
        // SAFETY: nanosleep is async-signal-safe; a valid timespec.
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    }
    mark("timed out");
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(3) };
}

// ---- issue 11's defect ----

/// A handler before mcsafe, a handler after it that chains to the one it
/// replaced: each foreign SIGBUS reaches the second, then the first, once; the
/// second stays installed. (Before the fix, mcsafe took the chaining handler
/// for a change the first one made, and the second signal recursed through the
/// two until the stack overflowed: SIGSEGV.)
#[test]
fn a_chaining_handler_above_mcsafe_stays_installed_and_nothing_recurses() {
    const TEST: &str = "a_chaining_handler_above_mcsafe_stays_installed_and_nothing_recurses";
    if in_cell(TEST, |with| {
        set_action(
            address(recorder::previous_returns as *const ()),
            libc::SA_SIGINFO,
        );
        if with {
            mcsafe::install().unwrap();
        }
        recorder::install_chainer();
        let top = current_action().sa_sigaction;
        for _ in 0..2 {
            mark("kill");
            tgkill_self();
        }
        top_is(top);
        if with {
            assert_eq!(mcsafe::install(), Ok(()));
            copies_through_the_chainer();
        }
    }) {
        return;
    }
    let (without, with) = without_and_with(TEST);
    let want = log(&[
        "kill", "C 7 -6", "P 7 -6", "kill", "C 7 -6", "P 7 -6", "top kept",
    ]);
    assert_eq!(without.log, want);
    assert_eq!(with, and_copies_through_the_chainer(&without));
}

/// Copy faults, recovered, with the chainer installed above mcsafe's handler:
/// it sees each one first (it cannot tell), once.
fn copies_through_the_chainer() {
    mark("copies");
    assert_copy_faults_recovered();
}

/// `run`, then [`copies_through_the_chainer`] as it logs.
fn and_copies_through_the_chainer(run: &Run) -> Run {
    let mut log = run.log.clone();
    log.push("copies".to_owned());
    log.extend(
        mcsafe::Strategy::available()
            .iter()
            .map(|_| "C 7 2".to_owned()),
    );
    Run {
        log,
        end: run.end.clone(),
    }
}

// ---- rule 1: only SIGBUS is ever recovered ----

static MCSAFE_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PASSED_SIGNO: AtomicI32 = AtomicI32::new(0);
static RELABELLED: AtomicI32 = AtomicI32::new(0);

/// A SIGSEGV handler that hands the signal to mcsafe's SIGBUS handler, with
/// the signal number `PASSED_SIGNO` and, if `RELABELLED` is set, a siginfo
/// whose `si_signo` it rewrote to SIGBUS (a chaining handler that mixes up the
/// actions it saved).
extern "C" fn confused_chainer(_: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let signo = PASSED_SIGNO.load(SeqCst);
    if RELABELLED.load(SeqCst) != 0 {
        // SAFETY: this delivery's siginfo, writable.
        unsafe { (*info).si_signo = libc::SIGBUS };
    }
    // SAFETY: mcsafe's handler takes SA_SIGINFO arguments.
    unsafe {
        recorder::call_action(
            MCSAFE_HANDLER.load(SeqCst),
            libc::SA_SIGINFO,
            signo,
            info,
            context,
        )
    };
}

/// A write to a read-only destination inside a copy routine is a SIGSEGV whose
/// `si_code` (`SEGV_ACCERR`, 2) equals `BUS_ADRERR`, with the address in the
/// destination: everything about it looks like a copy fault but the signal.
/// Passed to mcsafe's handler by a confused chaining handler, it must never be
/// "recovered" (the copy never returns), whichever signal number comes along.
#[test]
fn a_sigsegv_passed_to_mcsafe_is_never_recovered() {
    if qemu_user_cannot(
        "a_sigsegv_passed_to_mcsafe_is_never_recovered",
        qemu_user::RE_SENT_FAULT,
    ) {
        return;
    }
    const TEST: &str = "a_sigsegv_passed_to_mcsafe_is_never_recovered";
    if let Ok(signo) = std::env::var("MCSAFE_SIGNO") {
        in_child(TEST, || {
            set_action(libc::SIG_DFL, 0);
            mcsafe::install().unwrap();
            MCSAFE_HANDLER.store(current_action().sa_sigaction, SeqCst);
            let (signo, relabelled) = signo.split_once(',').unwrap();
            PASSED_SIGNO.store(signo.parse().unwrap(), SeqCst);
            RELABELLED.store(relabelled.parse().unwrap(), SeqCst);
            // SAFETY: a valid SA_SIGINFO action for SIGSEGV, in this child.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = address(confused_chainer as *const ());
                action.sa_flags = libc::SA_SIGINFO;
                libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
            }
            // SAFETY: a fresh read-only anonymous page.
            let read_only = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    PAGE,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            let src = [7u8; 64];
            // SAFETY: the destination is read-only: SIGSEGV (the point).
            let result = unsafe { mcsafe::copy_mc(read_only.cast(), src.as_ptr(), 64) };
            mark(&format!("the copy returned {result:?}"));
        });
        return;
    }
    // (signal number passed, siginfo relabelled SIGBUS): the process dies by
    // the default action of the number passed (the chainer's SIG_DFL).
    for (signo, relabelled) in [(libc::SIGSEGV, 0), (libc::SIGBUS, 0), (libc::SIGSEGV, 1)] {
        let spec = format!("{signo},{relabelled}");
        let run = Run::of(&child_output(TEST, &[("MCSAFE_SIGNO", &spec)]));
        assert_eq!(run.end, End::Killed(signo), "passed as {spec}: {run:?}");
        assert!(run.log.is_empty(), "passed as {spec}: {run:?}");
    }
}

// ---- rule 2: the previous handler's mask and stack ----

/// What the handler below saw: bit 0 on the alternate stack, bit 1 SIGBUS
/// blocked, bit 2 SIGUSR1 blocked, bit 3 SIGUSR2 blocked; 16 once called.
static SEEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn observing_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: queries into zeroed, writable structures.
    let seen = unsafe {
        let mut stack: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut stack);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
        let blocked = |sig| usize::from(libc::sigismember(&mask, sig) == 1);
        16 | usize::from(stack.ss_flags & libc::SS_ONSTACK != 0)
            | blocked(libc::SIGBUS) << 1
            | blocked(libc::SIGUSR1) << 2
            | blocked(libc::SIGUSR2) << 3
    };
    SEEN.store(seen, SeqCst);
}

/// The previous handler runs with its own `sa_mask`, with SIGBUS blocked unless
/// it asked for `SA_NODEFER`, and on the alternate stack only if it asked for
/// `SA_ONSTACK`, as without mcsafe (mcsafe's own action copies these flags);
/// when a chaining handler calls mcsafe's, the previous one runs as that
/// chaining handler would have run it: with the chaining handler's mask and
/// stack.
#[test]
fn the_previous_handler_runs_with_its_mask_and_on_its_stack_as_without_mcsafe() {
    const TEST: &str = "the_previous_handler_runs_with_its_mask_and_on_its_stack_as_without_mcsafe";
    let variant = std::env::var("MCSAFE_VARIANT").unwrap_or_default();
    if in_cell(TEST, |with| {
        let (flags, blocked, chained) = match variant.as_str() {
            "plain" => (libc::SA_SIGINFO, libc::SIGUSR1, false),
            "onstack" => (
                libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER,
                libc::SIGUSR2,
                false,
            ),
            _ => (libc::SA_SIGINFO, libc::SIGUSR1, true),
        };
        // SAFETY: a valid action for SIGBUS, in this child.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = address(observing_handler as *const ());
            action.sa_flags = flags;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaddset(&mut action.sa_mask, blocked);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
        if with {
            mcsafe::install().unwrap();
        }
        if chained {
            recorder::install_chainer();
        }
        std::thread::spawn(|| {
            let mut stack = vec![0u8; 256 * 1024];
            let alt = libc::stack_t {
                ss_sp: stack.as_mut_ptr().cast(),
                ss_flags: 0,
                ss_size: stack.len(),
            };
            // SAFETY: the stack outlives its use: disabled below before it is freed.
            unsafe { libc::sigaltstack(&alt, std::ptr::null_mut()) };
            tgkill_self();
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling this thread's alternate stack.
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
        })
        .join()
        .unwrap();
        mark(&format!("seen {:#b}", SEEN.load(SeqCst)));
    }) {
        return;
    }
    let mut seen = Vec::new();
    for variant in ["plain", "onstack", "chained"] {
        let run = |with: &str| {
            let env = [("MCSAFE_WITH", with), ("MCSAFE_VARIANT", variant)];
            Run::of(&child_output(TEST, &env))
        };
        let (without, with) = (run("0"), run("1"));
        assert_eq!(with, without, "{variant}");
        seen.push(without.log.last().cloned().unwrap_or_default());
    }
    // The variants do differ: not on the stack, SIGBUS and SIGUSR1 blocked; on
    // it, only SIGUSR2; called by the chainer, SIGBUS blocked (its own delivery).
    assert_eq!(seen, ["seen 0b10110", "seen 0b11001", "seen 0b10010"]);
}

/// The `sa_flags` bits that `our_action_over` reports.
const FLAGS_OF_INTEREST: [i32; 5] = [
    libc::SA_SIGINFO,
    libc::SA_ONSTACK,
    libc::SA_RESTART,
    libc::SA_NODEFER,
    libc::SA_RESETHAND,
];

/// mcsafe's own action as `install()` leaves it over `before` (handler and
/// flags; `SIGUSR1` in the mask when `masked`): (flags, whether SIGUSR1 is in
/// its mask, whether its handler is a function that is not `before`'s).
fn our_action_over(test: &str, before: usize, flags: i32, masked: bool) -> (i32, bool, bool) {
    let status = in_child(test, || {
        // SAFETY: a valid action for SIGBUS, in this child.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = before;
            action.sa_flags = flags;
            libc::sigemptyset(&mut action.sa_mask);
            if masked {
                libc::sigaddset(&mut action.sa_mask, libc::SIGUSR1);
            }
            assert_eq!(
                libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()),
                0
            );
        }
        mcsafe::install().unwrap();
        let ours = current_action();
        // SAFETY: a filled-in sigset.
        let usr1 = unsafe { libc::sigismember(&ours.sa_mask, libc::SIGUSR1) } == 1;
        let replaced = ours.sa_sigaction != before
            && ours.sa_sigaction != libc::SIG_DFL
            && ours.sa_sigaction != libc::SIG_IGN;
        // The figures travel in the exit status: a bit per flag of
        // `FLAGS_OF_INTEREST`, then SIGUSR1 in the mask, then `replaced`.
        let mut code = 0;
        for (i, bit) in FLAGS_OF_INTEREST.iter().enumerate() {
            if ours.sa_flags & bit != 0 {
                code |= 1 << i;
            }
        }
        code |= i32::from(usr1) << 5 | i32::from(replaced) << 6;
        std::process::exit(code);
    });
    let code = status.code().expect("the child exits");
    let flags = FLAGS_OF_INTEREST
        .iter()
        .enumerate()
        .filter(|(i, _)| code & (1 << i) != 0)
        .fold(0, |f, (_, bit)| f | bit);
    (flags, code & (1 << 5) != 0, code & (1 << 6) != 0)
}

#[test]
fn over_sig_dfl_mcsafes_action_takes_the_alternate_stack_and_restarts() {
    const TEST: &str = "over_sig_dfl_mcsafes_action_takes_the_alternate_stack_and_restarts";
    let (flags, usr1, replaced) = our_action_over(TEST, libc::SIG_DFL, 0, false);
    assert!(replaced, "mcsafe's handler is installed");
    assert_eq!(
        flags,
        libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART
    );
    assert!(!usr1);
}

#[test]
fn over_sig_ign_mcsafes_action_takes_the_alternate_stack_and_restarts() {
    const TEST: &str = "over_sig_ign_mcsafes_action_takes_the_alternate_stack_and_restarts";
    // SA_NODEFER on SIG_IGN means nothing to copy: there is no handler to imitate.
    let (flags, usr1, replaced) = our_action_over(TEST, libc::SIG_IGN, libc::SA_NODEFER, true);
    assert!(replaced);
    assert_eq!(
        flags,
        libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART
    );
    assert!(!usr1, "no mask copied from SIG_IGN");
}

#[test]
fn over_a_handler_mcsafes_action_copies_its_mask_and_three_flags_only() {
    const TEST: &str = "over_a_handler_mcsafes_action_copies_its_mask_and_three_flags_only";
    let before = address(observing_handler as *const ());
    let flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK | libc::SA_RESETHAND;
    let (ours, usr1, replaced) = our_action_over(TEST, before, flags, true);
    assert!(replaced);
    // SA_RESETHAND stays with the previous action (rule 3); no SA_RESTART asked.
    assert_eq!(ours, libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK);
    assert!(usr1, "the previous action's mask");
}

// ---- rule 3: SA_RESETHAND applies when the kernel calls mcsafe's handler ----

/// A previous `SA_RESETHAND` handler gets one SIGBUS, then the default applies:
/// to the action mcsafe passes signals on to, not to mcsafe's, so copy faults
/// stay recovered. (Called through a chaining handler instead, it is not reset:
/// `tests/chaining_matrix.rs`, as without mcsafe.)
#[test]
fn sa_resethand_before_gets_one_signal_then_the_default_applies() {
    const TEST: &str = "sa_resethand_before_gets_one_signal_then_the_default_applies";
    if in_cell(TEST, |with| {
        let handler = address(recorder::previous_returns as *const ());
        set_action(handler, libc::SA_SIGINFO | libc::SA_RESETHAND);
        if with {
            mcsafe::install().unwrap();
            assert_copy_faults_recovered();
        }
        mark("kill");
        tgkill_self();
        if with {
            assert_eq!(mcsafe::install(), Ok(()));
            assert_copy_faults_recovered();
        }
        mark("kill");
        tgkill_self();
    }) {
        return;
    }
    let (without, with) = without_and_with(TEST);
    assert_eq!(without.log, log(&["kill", "P 7 -6", "kill"]));
    assert_eq!(without.end, End::Killed(libc::SIGBUS));
    assert_eq!(with, without);
}

// ---- rule 4: the previous handler's own changes ----

/// An `SA_RESETHAND` handler that installs itself again each time: the re-armed
/// action is the previous handler's own, and mcsafe's handler goes back over it.
extern "C" fn rearming_handler(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    recorder::previous_returns(signo, info, context);
    set_action(
        address(rearming_handler as *const ()),
        libc::SA_SIGINFO | libc::SA_RESETHAND,
    );
}

#[test]
fn a_previous_handler_that_reinstalls_itself_keeps_getting_signals() {
    const TEST: &str = "a_previous_handler_that_reinstalls_itself_keeps_getting_signals";
    if in_cell(TEST, |with| {
        let handler = address(rearming_handler as *const ());
        set_action(handler, libc::SA_SIGINFO | libc::SA_RESETHAND);
        if with {
            mcsafe::install().unwrap();
        }
        for _ in 0..3 {
            mark("kill");
            tgkill_self();
        }
        if with {
            assert_eq!(mcsafe::install(), Ok(()), "mcsafe's handler is back");
            assert_copy_faults_recovered();
        }
    }) {
        return;
    }
    let (without, with) = without_and_with(TEST);
    let want = log(&["kill", "P 7 -6", "kill", "P 7 -6", "kill", "P 7 -6"]);
    assert_eq!((&without.log, &without.end), (&want, &End::Lives));
    assert_eq!(with, without);
}

extern "C" fn ignoring_handler(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    recorder::previous_returns(signo, info, context);
    set_action(libc::SIG_IGN, 0);
}

/// A previous handler that sets `SIG_IGN`: the next foreign signal is ignored,
/// a fault outside a copy is forced through (death by SIGBUS), copy faults in
/// between are recovered.
#[test]
fn a_previous_handler_that_ignores_sigbus_from_then_on() {
    if qemu_user_cannot(
        "a_previous_handler_that_ignores_sigbus_from_then_on",
        qemu_user::FORCED_FAULT,
    ) {
        return;
    }
    const TEST: &str = "a_previous_handler_that_ignores_sigbus_from_then_on";
    if in_cell(TEST, |with| {
        set_action(address(ignoring_handler as *const ()), libc::SA_SIGINFO);
        if with {
            mcsafe::install().unwrap();
        }
        for _ in 0..2 {
            mark("kill");
            tgkill_self();
        }
        if with {
            assert_eq!(mcsafe::install(), Ok(()));
            assert_copy_faults_recovered();
        }
        let lost = LostTail::new(1, 1, 0);
        mark("touch");
        // SAFETY: the page is lost: SIGBUS.
        unsafe { lost.boundary().read_volatile() };
    }) {
        return;
    }
    let (without, with) = without_and_with(TEST);
    assert_eq!(without.log, log(&["kill", "P 7 -6", "kill", "touch"]));
    assert_eq!(without.end, End::Killed(libc::SIGBUS));
    assert_eq!(with, without);
}

static REQUEST: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);

/// A previous handler that, the first time, lets another thread install a
/// SIGBUS action while it runs, and waits for it.
extern "C" fn waiting_handler(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    recorder::previous_returns(signo, info, context);
    if REQUEST.swap(1, SeqCst) == 0 {
        wait_for(&DONE);
    }
}

/// Another thread's `sigaction` while the previous handler runs is not taken
/// for that handler's own change: a chaining handler installed then stays
/// installed, and the next signal goes through it to mcsafe's and on, once
/// each. A `SIG_DFL` installed then cannot be told from the previous handler's
/// own reset, and is taken as that (so copy faults stay recovered, and the
/// next foreign SIGBUS kills as it would have).
#[test]
fn another_threads_sigaction_during_the_previous_handler_is_not_its_change() {
    const TEST: &str = "another_threads_sigaction_during_the_previous_handler_is_not_its_change";
    let variant = std::env::var("MCSAFE_VARIANT").unwrap_or_default();
    if in_cell(TEST, |with| {
        set_action(address(waiting_handler as *const ()), libc::SA_SIGINFO);
        if with {
            mcsafe::install().unwrap();
        }
        let chainer = variant == "chainer";
        let other = std::thread::spawn(move || {
            wait_for(&REQUEST);
            if chainer {
                recorder::install_chainer();
            } else {
                set_action(libc::SIG_DFL, 0);
            }
            DONE.store(1, SeqCst);
        });
        mark("kill");
        tgkill_self();
        other.join().unwrap();
        top_is(if chainer {
            address(recorder::chainer as *const ())
        } else {
            libc::SIG_DFL
        });
        mark("kill");
        tgkill_self();
        if with && chainer {
            assert_eq!(mcsafe::install(), Ok(()));
            copies_through_the_chainer();
        }
    }) {
        return;
    }
    for (variant, want, end) in [
        (
            "chainer",
            log(&["kill", "P 7 -6", "top kept", "kill", "C 7 -6", "P 7 -6"]),
            End::Lives,
        ),
        (
            "default",
            log(&["kill", "P 7 -6", "top kept", "kill"]),
            End::Killed(libc::SIGBUS),
        ),
    ] {
        let run = |with: &str| {
            let env = [("MCSAFE_WITH", with), ("MCSAFE_VARIANT", variant)];
            Run::of(&child_output(TEST, &env))
        };
        let (without, with) = (run("0"), run("1"));
        assert_eq!((&without.log, &without.end), (&want, &end), "{variant}");
        if variant == "chainer" {
            assert_eq!(with, and_copies_through_the_chainer(&without), "{variant}");
        } else {
            // Taken as the previous handler's reset: mcsafe's handler is back
            // on top (it passes the next signal on to SIG_DFL).
            let mut taken = want.clone();
            taken[2] = "top gone".to_owned();
            assert_eq!((&with.log, &with.end), (&taken, &end), "{variant}");
        }
    }
}

// ---- rule 5: nothing is left half done ----

/// A previous `SA_RESETHAND` handler that never returns: its thread ends
/// inside it (as a handler that longjmps out leaves mcsafe's frames behind).
extern "C" fn thread_ending_handler(
    signo: i32,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    recorder::previous_returns(signo, info, context);
    // SAFETY: ends this thread only, at once (no unwinding, no TLS destructors).
    unsafe { libc::syscall(libc::SYS_exit, 0) };
}

extern "C" fn signalled_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    mark("kill");
    tgkill_self();
    mark("returned from the handler");
    std::ptr::null_mut()
}

/// The reset that `SA_RESETHAND` asks for is in place before the previous
/// handler runs, so a handler that never returns to mcsafe still leaves it
/// applied (the next signal dies by the default action), and copy faults
/// stay recovered.
#[test]
fn a_previous_handler_that_never_returns_leaves_nothing_half_done() {
    const TEST: &str = "a_previous_handler_that_never_returns_leaves_nothing_half_done";
    if in_cell(TEST, |with| {
        let handler = address(thread_ending_handler as *const ());
        set_action(handler, libc::SA_SIGINFO | libc::SA_RESETHAND);
        if with {
            mcsafe::install().unwrap();
        }
        // SAFETY: a raw thread (std's would wait for a result that never comes).
        unsafe {
            let mut thread: libc::pthread_t = std::mem::zeroed();
            let created = libc::pthread_create(
                &mut thread,
                std::ptr::null(),
                signalled_thread,
                std::ptr::null_mut(),
            );
            assert_eq!(created, 0);
            assert_eq!(libc::pthread_join(thread, std::ptr::null_mut()), 0);
        }
        if with {
            assert_eq!(mcsafe::install(), Ok(()));
            assert_copy_faults_recovered();
        }
        mark("kill");
        tgkill_self();
    }) {
        return;
    }
    let (without, with) = without_and_with(TEST);
    assert_eq!(without.log, log(&["kill", "P 7 -6", "kill"]));
    assert_eq!(without.end, End::Killed(libc::SIGBUS));
    assert_eq!(with, without);
}

// ---- errno ----

/// A previous handler that sets errno (and does not put it back, as POSIX
/// asks of handlers).
extern "C" fn errno_clobbering_handler(
    signo: i32,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    recorder::previous_returns(signo, info, context);
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = libc::EAGAIN };
}

/// errno as the interrupted code left it, after a signal mcsafe passed on,
/// even when the previous handler changed it (without mcsafe, that change
/// would show: mcsafe's handler keeps errno, as POSIX asks of every handler).
#[test]
fn errno_survives_a_passed_on_signal() {
    const TEST: &str = "errno_survives_a_passed_on_signal";
    if in_cell(TEST, |with| {
        set_action(
            address(errno_clobbering_handler as *const ()),
            libc::SA_SIGINFO,
        );
        if with {
            mcsafe::install().unwrap();
        }
        // SAFETY: this thread's errno; tgkill succeeds and leaves it alone.
        let errno = unsafe {
            *libc::__errno_location() = 4242;
            tgkill_self();
            *libc::__errno_location()
        };
        mark(&format!("errno {errno}"));
    }) {
        return;
    }
    let (without, with) = without_and_with(TEST);
    let eagain = format!("errno {}", libc::EAGAIN);
    assert_eq!(without.log, log(&["P 7 -6", &eagain]));
    assert_eq!(with.log, log(&["P 7 -6", "errno 4242"]));
}

// ---- races with another thread's sigaction, made to happen (ptrace) ----

/// Runs `tracee` in a forked, traced child. When its thread enters its `nth`
/// `rt_sigaction` call that sets the SIGBUS action, the tracer lets a helper
/// thread of the child run `meanwhile` (another thread's `sigaction`, say) to
/// the end, then lets the call go on: a race won by the other thread, every
/// time. Returns the child's exit code (-1 if a signal ended it).
fn race_at_sigaction(nth: usize, meanwhile: fn(), tracee: fn() -> i32) -> i32 {
    assert!(
        !emulated(),
        "ptrace does not work under qemu-user: the callers skip"
    );
    use nix::sys::ptrace;
    use nix::sys::signal::{Signal, raise};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    let pipe = || {
        let mut fds = [0; 2];
        // SAFETY: a valid two-int array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        fds
    };
    let (go, done) = (pipe(), pipe());
    let byte = |fd: i32, write: bool| {
        let mut b = 0u8;
        let p = (&raw mut b).cast();
        // SAFETY: one byte from or to a pipe of ours.
        let n = unsafe {
            if write {
                libc::write(fd, p, 1)
            } else {
                libc::read(fd, p, 1)
            }
        };
        assert_eq!(n, 1);
    };
    // SAFETY: the child runs the helper thread and `tracee`, then _exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            ptrace::traceme().unwrap();
            raise(Signal::SIGSTOP).unwrap();
            std::thread::spawn(move || {
                byte(go[0], false);
                meanwhile();
                byte(done[1], true);
            });
            let code = tracee();
            // SAFETY: leaving the forked child without atexit work.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            assert!(matches!(
                waitpid(child, None).unwrap(),
                WaitStatus::Stopped(_, Signal::SIGSTOP)
            ));
            ptrace::setoptions(child, ptrace::Options::PTRACE_O_TRACESYSGOOD).unwrap();
            ptrace::syscall(child, None).unwrap();
            let mut seen = 0;
            loop {
                match waitpid(child, None).unwrap() {
                    WaitStatus::PtraceSyscall(_) => {
                        let regs = ptrace::getregs(child).unwrap();
                        if enters_sigaction_of_sigbus(&regs) {
                            seen += 1;
                            if seen == nth {
                                byte(go[1], true);
                                byte(done[0], false);
                            }
                        }
                        ptrace::syscall(child, None).unwrap();
                    }
                    WaitStatus::Stopped(_, sig) => ptrace::syscall(child, Some(sig)).unwrap(),
                    WaitStatus::Exited(_, code) => return code,
                    WaitStatus::Signaled(..) => return -1,
                    _ => ptrace::syscall(child, None).unwrap(),
                }
            }
        }
    }
}

/// At a syscall stop: the entry of `rt_sigaction(SIGBUS, new, ...)` with a new
/// action. x86-64: at a syscall's entry rax holds -ENOSYS, the number is in
/// orig_rax, the arguments in rdi, rsi. arm64: the kernel sets x7 to 0 at an
/// entry stop (1 at an exit), the number is in x8, the arguments in x0, x1.
fn enters_sigaction_of_sigbus(regs: &libc::user_regs_struct) -> bool {
    #[cfg(target_arch = "x86_64")]
    let (entry, number, args) = (
        regs.rax as i64 == -i64::from(libc::ENOSYS),
        regs.orig_rax,
        (regs.rdi, regs.rsi),
    );
    #[cfg(target_arch = "aarch64")]
    let (entry, number, args) = (
        regs.regs[7] == 0,
        regs.regs[8],
        (regs.regs[0], regs.regs[1]),
    );
    entry && number == libc::SYS_rt_sigaction as u64 && args.0 == libc::SIGBUS as u64 && args.1 != 0
}

/// Whether the tests that trace a child's system calls can run here (not under
/// qemu-user); if not, says so and where they run instead.
fn can_trace(what: &str) -> bool {
    if emulated() {
        eprintln!(
            "NOT RUN here: {what}: ptrace does not work under qemu-user; \
             the arm64 VM runs this test (cargo xtask vm-test-aarch64)"
        );
        return false;
    }
    true
}

static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn counting(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    RECEIVED.fetch_add(1, SeqCst);
}

extern "C" fn resetting(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    set_action(libc::SIG_DFL, 0);
}

/// `install` saves the action that its `sigaction` actually replaced: another
/// thread's, installed between install's query of the action and its swap.
#[test]
fn install_saves_the_action_it_replaced_even_if_another_thread_set_it_just_before() {
    if !can_trace("install_saves_the_action_it_replaced_even_if_another_thread_set_it_just_before")
    {
        return;
    }
    let status = in_child(
        "install_saves_the_action_it_replaced_even_if_another_thread_set_it_just_before",
        || {
            let code = race_at_sigaction(
                2, // the first sets the action below, the second is install's
                || {
                    set_action(address(counting as *const ()), libc::SA_SIGINFO);
                },
                || {
                    set_action(
                        address(recorder::previous_exits as *const ()),
                        libc::SA_SIGINFO,
                    );
                    mcsafe::install().unwrap();
                    tgkill_self();
                    if RECEIVED.load(SeqCst) == 1 { 0 } else { 1 }
                },
            );
            assert_eq!(
                code, 0,
                "the signal went to the action install found, not to the one it replaced"
            );
        },
    );
    assert!(status.success(), "{status:?}");
}

/// When the previous handler resets SIGBUS (as std's does) and another thread
/// installs a handler between mcsafe's query of the action and its putting its
/// own back, that other handler is put back in its turn, not lost.
#[test]
fn a_handler_installed_while_mcsafe_takes_in_a_reset_is_put_back() {
    if !can_trace("a_handler_installed_while_mcsafe_takes_in_a_reset_is_put_back") {
        return;
    }
    let status = in_child(
        "a_handler_installed_while_mcsafe_takes_in_a_reset_is_put_back",
        || {
            let code = race_at_sigaction(
                // The previous handler's, install's, the reset, mcsafe's putting back.
                4,
                || {
                    set_action(address(counting as *const ()), libc::SA_SIGINFO);
                },
                || {
                    set_action(address(resetting as *const ()), libc::SA_SIGINFO);
                    mcsafe::install().unwrap();
                    tgkill_self();
                    let top = current_action().sa_sigaction;
                    if top == address(counting as *const ()) {
                        0
                    } else {
                        1
                    }
                },
            );
            assert_eq!(code, 0, "the other thread's handler is in place");
        },
    );
    assert!(status.success(), "{status:?}");
}
