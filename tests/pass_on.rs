//! What a signal mcsafe passes on looks like to the handler installed before
//! it: for each SIGBUS action installed *before* mcsafe, and each kind of
//! SIGBUS that is not a copy fault, what happens, and what the handler gets.
//! Every cell runs in its own child process (several must die), and the parent
//! checks how it ended:
//!
//! | before \ SIGBUS | copy fault | fault outside copy_mc | forged AO in a copy | forged AR/ADRERR outside the buffers, in a copy | kill/tgkill/sigqueue during a copy | AO queued to self | AR/ADRERR queued to self |
//! |---|---|---|---|---|---|---|---|
//! | SIG_DFL | recovered | dies by SIGBUS | dies | dies | dies | dies | dies |
//! | SIG_IGN | recovered | dies by SIGBUS | ignored | dies | ignored | ignored | dies |
//! | SA_SIGINFO handler | recovered, not called | called | called | called | called | called | called |
//! | plain handler | recovered, not called | called | called | called | called | called | called |
//! | signal-hook | recovered, not called | called | called | called | called | called | called |
//!
//! "called": with the siginfo as sent (code, address, lsb) and, for an
//! SA_SIGINFO handler, the ucontext of the interrupted instruction (its RIP
//! inside a copy routine for the forged and thread-directed signals). The
//! forged signals are delivered by ptrace at an instruction inside a copy
//! routine (the only way to get a positive si_code there, see
//! `common/trace.rs`); the copy then completes, untouched. Handlers installed
//! *after* mcsafe: `tests/replacements.rs` (what `install()` says) and
//! `tests/chaining_matrix.rs` (every order, compared with runs without mcsafe).

mod common;
#[path = "common/trace.rs"]
mod trace;

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use mcsafe::Strategy;
use nix::sys::wait::WaitStatus;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Before {
    Default,
    Ignore,
    SigInfo,
    Plain,
    SignalHook,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    CopyFault,
    Outside,
    ForgedAo,
    ForgedForeign,
    Kills,
    QueuedAo,
    QueuedPositive,
}

const KINDS: [Kind; 7] = [
    Kind::CopyFault,
    Kind::Outside,
    Kind::ForgedAo,
    Kind::ForgedForeign,
    Kind::Kills,
    Kind::QueuedAo,
    Kind::QueuedPositive,
];

/// How a cell's child process ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Exits 0: it lived, and everything it checked held.
    Lives,
    /// The previous handler got a fault it cannot return from and exited 42
    /// after checking the siginfo.
    Handled,
    /// Killed by SIGBUS.
    Dies,
}

fn expect(before: Before, kind: Kind) -> Expect {
    use Before::*;
    use Kind::*;
    match (before, kind) {
        (_, CopyFault) => Expect::Lives,
        (Default, _) => Expect::Dies,
        // The kernel forces a synchronous fault through SIG_IGN. A positive code
        // at a RIP inside a copy, or queued to itself, cannot be told from one.
        (Ignore, Outside | ForgedForeign | QueuedPositive) => Expect::Dies,
        (Ignore, _) => Expect::Lives,
        (_, Outside) => Expect::Handled,
        _ => Expect::Lives,
    }
}

// ---- the previous handler: records what it gets (async-signal-safe: atomics) ----

static CALLS: AtomicUsize = AtomicUsize::new(0);
static WRONG: AtomicUsize = AtomicUsize::new(0);
static IN_RANGE: AtomicUsize = AtomicUsize::new(0);
static EXPECT_CODE: AtomicI32 = AtomicI32::new(0);
/// usize::MAX: any address.
static EXPECT_ADDR: AtomicUsize = AtomicUsize::new(usize::MAX);
static EXPECT_LSB: AtomicI32 = AtomicI32::new(-1);
/// Expected REG_TRAPNO of the ucontext (14: page fault), or -1 for any.
static EXPECT_TRAPNO: AtomicI32 = AtomicI32::new(-1);
/// Exit with 42 (siginfo as expected) or 43 from the handler; else return.
static EXIT_IN_HANDLER: AtomicBool = AtomicBool::new(false);

fn expect_signal(code: i32, addr: usize, lsb: i32) {
    EXPECT_CODE.store(code, SeqCst);
    EXPECT_ADDR.store(addr, SeqCst);
    EXPECT_LSB.store(lsb, SeqCst);
}

/// # Safety
/// `info` is valid; `context` is a valid ucontext or null.
unsafe fn record(signo: i32, info: *const libc::siginfo_t, context: *const libc::ucontext_t) {
    // SAFETY: per the contract.
    let (code, addr, lsb) = unsafe {
        (
            (*info).si_code,
            (*info).si_addr() as usize,
            trace::addr_lsb(info),
        )
    };
    let mut ok = signo == libc::SIGBUS && code == EXPECT_CODE.load(SeqCst);
    if code > 0 {
        let want = EXPECT_ADDR.load(SeqCst);
        ok &= want == usize::MAX || addr == want;
        let want = EXPECT_LSB.load(SeqCst);
        ok &= want < 0 || i32::from(lsb) == want;
    }
    if !context.is_null() {
        // SAFETY: a valid ucontext, per the contract.
        if trace::in_a_range(unsafe { trace::context_pc(context) }) {
            IN_RANGE.fetch_add(1, SeqCst);
        }
        // x86-64 only: the trap number of the fault (arm64 has no such field).
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as above.
            let gregs = unsafe { &(*context).uc_mcontext.gregs };
            let trapno = EXPECT_TRAPNO.load(SeqCst);
            ok &= trapno < 0 || gregs[libc::REG_TRAPNO as usize] == i64::from(trapno);
        }
    }
    finish(ok);
}

fn finish(ok: bool) {
    CALLS.fetch_add(1, SeqCst);
    if !ok {
        WRONG.fetch_add(1, SeqCst);
    }
    if EXIT_IN_HANDLER.load(SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(if ok { 42 } else { 43 }) };
    }
}

extern "C" fn siginfo_handler(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: valid siginfo and ucontext.
    unsafe { record(signo, info, context.cast()) };
}

extern "C" fn plain_handler(signo: i32) {
    finish(signo == libc::SIGBUS);
}

fn set_action(handler: usize, flags: i32) {
    // SAFETY: a valid action for SIGBUS, in this child process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()),
            0
        );
    }
}

fn install_before(before: Before) {
    match before {
        Before::Default => set_action(libc::SIG_DFL, 0),
        Before::Ignore => set_action(libc::SIG_IGN, 0),
        Before::SigInfo => set_action(siginfo_handler as *const () as usize, libc::SA_SIGINFO),
        Before::Plain => set_action(plain_handler as *const () as usize, 0),
        Before::SignalHook => {
            // Over SIG_DFL, not over Rust std's handler (that row is below).
            set_action(libc::SIG_DFL, 0);
            // SAFETY: the action only touches atomics and may _exit.
            unsafe {
                signal_hook_registry::register_sigaction(libc::SIGBUS, |info| {
                    record(libc::SIGBUS, info, std::ptr::null())
                })
            }
            .unwrap();
        }
    }
}

/// What the previous handler must have seen: `n` calls, all as expected.
fn assert_calls(before: Before, n: usize, what: &str) {
    if matches!(before, Before::Default | Before::Ignore) {
        return;
    }
    assert_eq!(
        CALLS.load(SeqCst),
        n,
        "{what}: calls of the previous handler"
    );
    assert_eq!(
        WRONG.load(SeqCst),
        0,
        "{what}: calls with an unexpected siginfo"
    );
}

// ---- the cells ----

fn cell(before: Before, kind: Kind) {
    install_before(before);
    mcsafe::install().unwrap();
    match kind {
        Kind::CopyFault => copy_fault(before),
        Kind::Outside => outside(),
        Kind::ForgedAo => forged_ao(before),
        Kind::ForgedForeign => forged_foreign(before),
        Kind::Kills => kills(before),
        Kind::QueuedAo => queued(before, &[libc::BUS_MCEERR_AO]),
        Kind::QueuedPositive => queued(before, &[libc::BUS_MCEERR_AR, libc::BUS_ADRERR]),
    }
}

fn copy_fault(before: Before) {
    let lost = LostTail::new(2, 1, 7);
    let mut dst = vec![0u8; 3 * PAGE];
    for strategy in Strategy::available() {
        // SAFETY: the mapping's third page is lost.
        let f = unsafe { mcsafe::copy_mc_with(strategy, dst.as_mut_ptr(), lost.base(), 3 * PAGE) }
            .unwrap_err();
        assert_eq!(f.copied(), 2 * PAGE, "{strategy}");
    }
    assert_calls(before, 0, "copy faults");
    assert_eq!(mcsafe::stats().passed_on, 0);
}

fn outside() {
    let lost = LostTail::new(1, 1, 0);
    let addr = lost.boundary() as usize + 5;
    expect_signal(libc::BUS_ADRERR, addr, 0);
    // A page fault: the ucontext is the kernel's, trap 14.
    EXPECT_TRAPNO.store(14, SeqCst);
    EXIT_IN_HANDLER.store(true, SeqCst);
    // SAFETY: the byte lies in the lost page: SIGBUS, exact address.
    unsafe { (addr as *const u8).read_volatile() };
    eprintln!("survived a fault outside copy_mc");
    std::process::exit(1);
}

const TRACED_LEN: usize = 16 * 1024;

/// Delivers `code` at `addr` by ptrace at an instruction inside the copy
/// routine; the copy must complete and the previous handler see it once, with
/// the interrupted RIP inside the routine. Returns if the traced child lived
/// (and checked all that); dies by SIGBUS if it died by SIGBUS.
fn forge_in_copy(before: Before, strategy: Strategy, code: i32, addr: Option<usize>) {
    let src: Vec<u8> = (0..TRACED_LEN).map(|i| byte_at(3, i)).collect();
    let mut dst = vec![0u8; TRACED_LEN];
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    // AO for a page of the source, else an address outside both buffers.
    let addr = addr.unwrap_or((s as usize + PAGE) & !(PAGE - 1));
    expect_signal(code, addr, 12);
    let status = trace::inject_at(strategy, 5, trace::sigbus_info(code, addr, 12), || {
        let recovered = mcsafe::stats().recovered;
        // SAFETY: two distinct heap buffers.
        let result = unsafe { mcsafe::copy_mc_with(strategy, d, s, TRACED_LEN) };
        // SAFETY: both readable.
        let same = unsafe { first_difference(d, s, TRACED_LEN) }.is_none();
        let seen = (
            CALLS.load(SeqCst),
            WRONG.load(SeqCst),
            IN_RANGE.load(SeqCst),
        );
        let handled = match before {
            Before::SigInfo => seen == (1, 0, 1),
            Before::Plain | Before::SignalHook => (seen.0, seen.1) == (1, 0),
            Before::Default | Before::Ignore => true,
        };
        let ok = result.is_ok() && same && handled && mcsafe::stats().recovered == recovered;
        i32::from(!ok)
    });
    match status {
        WaitStatus::Exited(_, 0) => {}
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGBUS, _) => die_by_sigbus(),
        other => panic!("{strategy} code {code} at {addr:#x}: traced copy ended {other:?}"),
    }
}

fn die_by_sigbus() -> ! {
    set_action(libc::SIG_DFL, 0);
    // SAFETY: raising a signal in this child.
    unsafe { libc::raise(libc::SIGBUS) };
    unreachable!("SIGBUS with SIG_DFL");
}

fn forged_ao(before: Before) {
    for strategy in Strategy::available() {
        forge_in_copy(before, strategy, libc::BUS_MCEERR_AO, None);
    }
}

fn forged_foreign(before: Before) {
    for strategy in Strategy::available() {
        // Far from both buffers: the first page of the address space, and a
        // page-aligned machine-check address.
        forge_in_copy(before, strategy, libc::BUS_ADRERR, Some(0x1008));
        forge_in_copy(
            before,
            strategy,
            libc::BUS_MCEERR_AR,
            Some(0x7000_0000_0000),
        );
    }
}

/// A thread that copies 4 MiB again and again with `copy_mc`, checking each
/// copy, until told to stop; returns its copies.
struct Copier {
    tid: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

const COPIER_LEN: usize = 4 << 20;

impl Copier {
    fn start() -> (Copier, usize) {
        let src: Vec<u8> = (0..COPIER_LEN).map(|i| byte_at(11, i)).collect();
        let src_addr = src.as_ptr() as usize;
        let tid = Arc::new(AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(2));
        let thread = {
            let (tid, stop, ready) = (tid.clone(), stop.clone(), ready.clone());
            std::thread::spawn(move || {
                let mut dst = vec![0u8; COPIER_LEN];
                // SAFETY: gettid has no preconditions.
                tid.store(unsafe { libc::gettid() }, SeqCst);
                ready.wait();
                let mut copies = 0;
                while !stop.load(SeqCst) {
                    dst[0] = !src[0];
                    // SAFETY: two distinct heap buffers.
                    unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), COPIER_LEN) }.unwrap();
                    assert!(dst == src, "copy {copies} differs");
                    copies += 1;
                }
                copies
            })
        };
        ready.wait();
        (Copier { tid, stop, thread }, src_addr)
    }

    fn stop(self) -> usize {
        self.stop.store(true, SeqCst);
        self.thread.join().unwrap()
    }
}

fn sigqueue_info(code: i32) -> libc::siginfo_t {
    // SAFETY: an all-zero siginfo is valid; signo at 0, code at 8.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let raw = (&raw mut info).cast::<i32>();
        raw.write(libc::SIGBUS);
        raw.add(2).write(code);
        // si_pid, si_uid at 16 and 20: ours, as sigqueue(3) fills them in.
        raw.add(4).write(libc::getpid());
        raw.add(5).write(libc::getuid() as i32);
        info
    }
}

fn tgsigqueueinfo(tid: i32, info: &libc::siginfo_t) -> i64 {
    // SAFETY: a valid siginfo; the target is a thread of this process.
    unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            tid,
            libc::SIGBUS,
            info as *const libc::siginfo_t,
        )
    }
}

/// Sends `send` again and again, each time waiting until mcsafe's handler has
/// passed it on (so that no two are pending at once and coalesce), until 20 were
/// sent and, if `in_copy`, a few landed inside a copy routine (as the previous
/// handler saw it); at most 5 s. Checks that the previous handler got each one,
/// with `code`. Returns how many were sent.
fn send_during_copies(before: Before, code: i32, in_copy: bool, send: &dyn Fn()) -> usize {
    CALLS.store(0, SeqCst);
    IN_RANGE.store(0, SeqCst);
    expect_signal(code, usize::MAX, -1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    while sent < 20 || (in_copy && before == Before::SigInfo && IN_RANGE.load(SeqCst) < 3) {
        let what = format!(
            "code {code}: {} of {sent} landed in a copy",
            IN_RANGE.load(SeqCst)
        );
        assert!(Instant::now() < deadline, "{what}");
        let passed_on = mcsafe::stats().passed_on;
        send();
        sent += 1;
        while mcsafe::stats().passed_on == passed_on {
            assert!(
                Instant::now() < deadline,
                "{what}: signal {sent} never arrived"
            );
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_calls(before, sent, &format!("code {code}"));
    sent
}

fn kills(before: Before) {
    let (copier, _) = Copier::start();
    let tid = copier.tid.load(SeqCst);
    let mut total = 0;
    // Thread-directed, at the copier: it is inside copy_mc most of the time.
    total += send_during_copies(before, libc::SI_TKILL, true, &|| {
        // SAFETY: a thread of this process.
        let sent = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGBUS) };
        assert_eq!(sent, 0);
    });
    total += send_during_copies(before, libc::SI_QUEUE, true, &|| {
        assert_eq!(tgsigqueueinfo(tid, &sigqueue_info(libc::SI_QUEUE)), 0);
    });
    // Process-directed: lands on any thread.
    total += send_during_copies(before, libc::SI_USER, false, &|| {
        // SAFETY: signalling this process.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGBUS) }, 0);
    });
    total += send_during_copies(before, libc::SI_QUEUE, false, &|| {
        let value = libc::sigval {
            sival_ptr: std::ptr::null_mut(),
        };
        assert_eq!(
            // SAFETY: a valid signal and this process's own pid; `value` is
            // passed by value, its null pointer never dereferenced.
            unsafe { libc::sigqueue(libc::getpid(), libc::SIGBUS, value) },
            0
        );
    });
    // A positive code cannot be sent to another thread: the kernel refuses.
    let forged = trace::sigbus_info(libc::BUS_MCEERR_AR, 0x1000, 12);
    assert_eq!(tgsigqueueinfo(tid, &forged), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPERM)
    );
    let copies = copier.stop();
    eprintln!("{before:?}: {total} signals during {copies} copies of 4 MiB, all exact");
}

fn queued(before: Before, codes: &[i32]) {
    let (copier, src) = Copier::start();
    for &code in codes {
        CALLS.store(0, SeqCst);
        // An address inside the copier's source buffer, to tempt the handler.
        let addr = (src + PAGE) & !(PAGE - 1);
        expect_signal(code, addr, 12);
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        assert_eq!(tgsigqueueinfo(me, &trace::sigbus_info(code, addr, 12)), 0);
        assert_calls(before, 1, &format!("code {code} queued to itself"));
        assert_eq!(IN_RANGE.load(SeqCst), 0, "arrives at the syscall's return");
    }
    std::thread::sleep(Duration::from_millis(50));
    let copies = copier.stop();
    assert!(copies > 0);
}

/// Runs every cell of a row, each in a child, and checks how each ended.
fn row(test: &str, before: Before) {
    if std::env::var("MCSAFE_CELL").is_ok() {
        let kind = KINDS[std::env::var("MCSAFE_CELL")
            .unwrap()
            .parse::<usize>()
            .unwrap()];
        in_child(test, || cell(before, kind));
        return;
    }
    for (i, kind) in KINDS.into_iter().enumerate() {
        let status = in_child_with_env(test, &[("MCSAFE_CELL", &i.to_string())], || {});
        let got = match (status.code(), killed_by(status)) {
            (Some(0), _) => Some(Expect::Lives),
            (Some(42), _) => Some(Expect::Handled),
            (_, Some(libc::SIGBUS)) => Some(Expect::Dies),
            _ => None,
        };
        assert_eq!(
            got,
            Some(expect(before, kind)),
            "{before:?} x {kind:?}: {status:?}"
        );
    }
}

#[test]
fn before_sig_dfl() {
    if qemu_user_cannot("before_sig_dfl", qemu_user::RE_SENT_FAULT) {
        return;
    }
    row("before_sig_dfl", Before::Default);
}

#[test]
fn before_sig_ign() {
    if qemu_user_cannot("before_sig_ign", qemu_user::RE_SENT_FAULT) {
        return;
    }
    row("before_sig_ign", Before::Ignore);
}

#[test]
fn before_siginfo_handler() {
    if qemu_user_cannot("before_siginfo_handler", qemu_user::RE_SENT_FAULT) {
        return;
    }
    row("before_siginfo_handler", Before::SigInfo);
}

#[test]
fn before_plain_handler() {
    if qemu_user_cannot("before_plain_handler", qemu_user::RE_SENT_FAULT) {
        return;
    }
    row("before_plain_handler", Before::Plain);
}

#[test]
fn before_signal_hook() {
    if qemu_user_cannot("before_signal_hook", qemu_user::RE_SENT_FAULT) {
        return;
    }
    row("before_signal_hook", Before::SignalHook);
}

// ---- Rust std's handler: what mcsafe finds in a Rust program by default ----

/// Rust's std installs a SIGBUS handler (for stack overflow reports) that, on
/// any SIGBUS outside a guard page, resets SIGBUS to SIG_DFL and returns. Without
/// mcsafe, a first foreign SIGBUS that does not repeat is survived and the next
/// kills. With mcsafe the same, and copy faults are still recovered in between.
/// What a cell of [`rust_std_cell`] prints after surviving the first foreign
/// SIGBUS, and (a failure) the second.
const SURVIVED_FIRST: &str = "survived the first foreign SIGBUS";
const SURVIVED_SECOND: &str = "survived the second foreign SIGBUS";

fn rust_std_cell(kind: Kind) {
    // SAFETY: an all-zero sigaction is valid; sigaction only queries it.
    let action = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut action);
        action
    };
    assert_ne!(
        action.sa_sigaction,
        libc::SIG_DFL,
        "std's handler is in place"
    );
    mcsafe::install().unwrap();
    // What every cell checks after the first foreign SIGBUS, then the second.
    let then_the_next_kills = || -> i32 {
        eprintln!("{SURVIVED_FIRST}");
        assert_eq!(
            mcsafe::install(),
            Ok(()),
            "mcsafe's handler is still in place"
        );
        assert_copy_faults_recovered();
        // SAFETY: signalling this thread.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::gettid(),
                libc::SIGBUS,
            )
        };
        eprintln!("{SURVIVED_SECOND}");
        1
    };
    let strategy = Strategy::current();
    let src: Vec<u8> = (0..TRACED_LEN).map(|i| byte_at(3, i)).collect();
    let mut dst = vec![0u8; TRACED_LEN];
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let traced = |code, addr| {
        let status = trace::inject_at(strategy, 5, trace::sigbus_info(code, addr, 12), || {
            // SAFETY: two distinct heap buffers.
            let result = unsafe { mcsafe::copy_mc_with(strategy, d, s, TRACED_LEN) };
            // SAFETY: both readable.
            if result.is_err() || unsafe { first_difference(d, s, TRACED_LEN) }.is_some() {
                return 2;
            }
            then_the_next_kills()
        });
        match status {
            WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGBUS, _) => die_by_sigbus(),
            other => panic!("traced copy ended {other:?}"),
        }
    };
    match kind {
        Kind::Outside => {
            let lost = LostTail::new(1, 1, 0);
            // SAFETY: the page is lost: SIGBUS, and again when it runs again.
            unsafe { lost.boundary().read_volatile() };
        }
        Kind::ForgedAo => traced(libc::BUS_MCEERR_AO, s as usize & !(PAGE - 1)),
        Kind::ForgedForeign => traced(libc::BUS_ADRERR, 0x1008),
        Kind::Kills => {
            let (copier, _) = Copier::start();
            let passed_on = mcsafe::stats().passed_on;
            let tid = copier.tid.load(SeqCst);
            // SAFETY: a thread of this process.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGBUS) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while mcsafe::stats().passed_on == passed_on {
                assert!(Instant::now() < deadline, "the signal was never passed on");
                std::thread::yield_now();
            }
            assert!(copier.stop() > 0);
            then_the_next_kills();
        }
        Kind::QueuedAo | Kind::QueuedPositive => {
            let code = if kind == Kind::QueuedAo {
                libc::BUS_MCEERR_AO
            } else {
                libc::BUS_MCEERR_AR
            };
            // SAFETY: gettid has no preconditions.
            let me = unsafe { libc::gettid() };
            assert_eq!(tgsigqueueinfo(me, &trace::sigbus_info(code, 0x1000, 12)), 0);
            then_the_next_kills();
        }
        Kind::CopyFault => assert_copy_faults_recovered(),
    }
}

#[test]
fn before_rust_std_handler() {
    if qemu_user_cannot("before_rust_std_handler", qemu_user::RE_SENT_FAULT) {
        return;
    }
    const TEST: &str = "before_rust_std_handler";
    if let Ok(cell) = std::env::var("MCSAFE_CELL") {
        in_child(TEST, || {
            rust_std_cell(KINDS[cell.parse::<usize>().unwrap()])
        });
        return;
    }
    for (i, kind) in KINDS.into_iter().enumerate() {
        let output = in_child_output(TEST, &[("MCSAFE_CELL", &i.to_string())], || {});
        let (status, stderr) = (output.status, String::from_utf8_lossy(&output.stderr));
        eprintln!("cell {kind:?}: {status:?}\n{stderr}");
        let first = stderr.contains(SURVIVED_FIRST);
        if kind == Kind::CopyFault {
            assert!(status.success(), "{kind:?}: {status:?}\n{stderr}");
            continue;
        }
        assert_eq!(
            killed_by(status),
            Some(libc::SIGBUS),
            "{kind:?}: {status:?}\n{stderr}"
        );
        assert!(
            !stderr.contains(SURVIVED_SECOND),
            "{kind:?}: survived the second\n{stderr}"
        );
        // Which SIGBUS killed: a fault outside a copy repeats when std's handler
        // returns, so the first one's repeat kills (nothing runs in between to
        // say so); every other kind does not repeat, is survived, and the
        // second kills.
        assert_eq!(
            first,
            kind != Kind::Outside,
            "{kind:?}: died at the {} foreign SIGBUS\n{stderr}",
            if first { "second" } else { "first" }
        );
    }
}
