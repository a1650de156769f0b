//! Recording SIGBUS handlers for the chaining tests: each call of a handler is
//! logged, in order, so that a parent process can compare what a child's
//! handlers saw with mcsafe and without it.
//!
//! Every function a handler calls here is async-signal-safe (atomics, `write(2)`
//! of a line built on the stack, `_exit`). The log goes to stderr, one `write`
//! per line tagged with [`TAG`]; only the process that called [`start`] logs (a
//! child that `install()`'s probe forks does not). A chain that loops (a handler
//! returns from a fault that repeats) is cut after [`LOOP_LIMIT`] calls: the
//! process logs `LOOP` and exits with [`EXIT_LOOP`].
//!
//! The handlers: `P` installed before mcsafe ([`previous_returns`],
//! [`previous_exits`], [`previous_plain`]), `C` a hand-written handler that
//! chains to the action it replaced ([`install_chainer`]), `S` a `signal-hook`
//! registration ([`register_signal_hook`]), `N` a handler that does not chain
//! ([`non_chainer`]).
//!
//! Include it with `#[path = "common/recorder.rs"] mod recorder;` (it needs
//! signal-hook, which the fuzz crate that shares `common/mod.rs` lacks).
#![allow(dead_code)]

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

/// The start of every log line.
pub const TAG: &str = "@@ ";
/// Handler calls after which a chain counts as looping.
pub const LOOP_LIMIT: usize = 24;
/// Exit status of [`previous_exits`].
pub const EXIT_PREVIOUS: i32 = 42;
/// Exit status of [`non_chainer`] on a fault (it cannot return from one).
pub const EXIT_NON_CHAINER: i32 = 44;
/// Exit status of a process whose chain looped.
pub const EXIT_LOOP: i32 = 45;

static PID: AtomicI32 = AtomicI32::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Starts logging in this process.
pub fn start() {
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() }, SeqCst);
}

/// Handler calls logged so far in this process.
pub fn calls() -> usize {
    CALLS.load(SeqCst)
}

/// A line on the stack: no allocation.
struct Line {
    bytes: [u8; 96],
    len: usize,
}

impl Line {
    fn new() -> Line {
        let mut line = Line {
            bytes: [0; 96],
            len: 0,
        };
        line.push(TAG.as_bytes());
        line
    }

    fn push(&mut self, text: &[u8]) {
        for &b in text {
            if self.len < self.bytes.len() - 1 {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, n: i64) {
        if n < 0 {
            self.push(b"-");
        }
        let mut digits = [0u8; 20];
        let (mut n, mut i) = (n.unsigned_abs(), digits.len());
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn write(mut self) {
        // push keeps the last byte free for this.
        self.bytes[self.len] = b'\n';
        self.len += 1;
        // SAFETY: writing our own bytes to stderr.
        unsafe { libc::write(2, self.bytes.as_ptr().cast(), self.len) };
    }
}

fn logging() -> bool {
    // SAFETY: getpid has no preconditions.
    PID.load(SeqCst) == unsafe { libc::getpid() }
}

/// Logs a call of handler `name` with `signo` and, for an `SA_SIGINFO`
/// handler, `si_code`. Async-signal-safe.
pub fn log_call(name: &str, signo: i32, code: Option<i32>) {
    if !logging() {
        return;
    }
    let mut line = Line::new();
    line.push(name.as_bytes());
    line.push(b" ");
    line.number(signo.into());
    line.push(b" ");
    match code {
        Some(code) => line.number(code.into()),
        None => line.push(b"-"),
    }
    line.write();
    if CALLS.fetch_add(1, SeqCst) + 1 >= LOOP_LIMIT {
        let mut line = Line::new();
        line.push(b"LOOP");
        line.write();
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_LOOP) };
    }
}

/// Logs a step of the test itself (not a handler call), in order with the calls.
pub fn mark(text: &str) {
    let mut line = Line::new();
    line.push(text.as_bytes());
    line.write();
}

/// The logged lines of a child's stderr, in order, without the tag.
pub fn parse(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(TAG))
        .map(str::to_owned)
        .collect()
}

/// Whether a log line is a handler call (`P 7 -6`) rather than a step.
pub fn is_call(line: &str) -> bool {
    line.split(' ').next().is_some_and(|name| name.len() == 1)
}

/// How a child process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    Lives,
    Exit(i32),
    Killed(i32),
}

/// What a child logged, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Handler calls ("P 7 -6": handler, signal, code) and the test's steps.
    pub log: Vec<String>,
    pub end: End,
}

impl Run {
    pub fn of(output: &std::process::Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let end = match (output.status.code(), output.status.signal()) {
            (Some(0), _) => End::Lives,
            (Some(code), _) => End::Exit(code),
            (_, Some(sig)) => End::Killed(sig),
            _ => panic!("{:?}", output.status),
        };
        let log = parse(&String::from_utf8_lossy(&output.stderr));
        Run { log, end }
    }

    /// The log without the install verdict (which only runs with mcsafe have).
    pub fn comparable(&self) -> Run {
        Run {
            log: self
                .log
                .iter()
                .filter(|l| !l.starts_with("install "))
                .cloned()
                .collect(),
            end: self.end.clone(),
        }
    }
}

/// # Safety
/// `info` is a valid siginfo.
unsafe fn code_of(info: *const libc::siginfo_t) -> i32 {
    // SAFETY: per the contract.
    unsafe { (*info).si_code }
}

/// `P`: an `SA_SIGINFO` handler that logs and returns.
pub extern "C" fn previous_returns(signo: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: a valid siginfo.
    log_call("P", signo, Some(unsafe { code_of(info) }));
}

/// `P`: an `SA_SIGINFO` handler that logs and exits with [`EXIT_PREVIOUS`].
pub extern "C" fn previous_exits(signo: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: a valid siginfo.
    log_call("P", signo, Some(unsafe { code_of(info) }));
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(EXIT_PREVIOUS) };
}

/// `P`: a plain `sa_handler` that logs and returns.
pub extern "C" fn previous_plain(signo: i32) {
    log_call("P", signo, None);
}

/// `N`: logs; returns from a signal that does not repeat, exits with
/// [`EXIT_NON_CHAINER`] on a fault. Passes nothing on.
pub extern "C" fn non_chainer(signo: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: a valid siginfo.
    let code = unsafe { code_of(info) };
    log_call("N", signo, Some(code));
    if code > 0 && code != libc::BUS_MCEERR_AO {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_NON_CHAINER) };
    }
}

static CHAINED_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static CHAINED_FLAGS: AtomicI32 = AtomicI32::new(0);

/// `C`: logs, then calls the action it replaced if that is a handler function
/// (as `signal-hook` does: `SIG_DFL` and `SIG_IGN` are not called), with the
/// arguments it got, and logs `C-after` once it returns: not a tail call, so
/// the callee sees a return address inside this function.
pub extern "C" fn chainer(signo: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO: a valid siginfo.
    log_call("C", signo, Some(unsafe { code_of(info) }));
    // SAFETY: the saved action's handler, called with the signature its flags say.
    unsafe {
        call_action(
            CHAINED_HANDLER.load(SeqCst),
            CHAINED_FLAGS.load(SeqCst),
            signo,
            info,
            context,
        )
    };
    std::hint::black_box(());
}

/// Calls a saved action's handler the way a chaining handler does. Nothing for
/// `SIG_DFL` / `SIG_IGN`.
///
/// # Safety
/// `handler` and `flags` are those of an action installed by sigaction.
pub unsafe fn call_action(
    handler: usize,
    flags: i32,
    signo: i32,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return;
    }
    // SAFETY: per the contract, the handler has the signature its flags say.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(handler);
            f(signo, info, context);
        } else {
            let f: extern "C" fn(i32) = std::mem::transmute(handler);
            f(signo);
        }
    }
}

/// Sets the SIGBUS action; returns the one it replaced.
pub fn set_action(handler: usize, flags: i32) -> libc::sigaction {
    // SAFETY: an all-zero sigaction is valid; handler and flags agree.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        let mut old: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &action, &mut old), 0);
        old
    }
}

/// The current SIGBUS action.
pub fn current_action() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is valid; sigaction only queries.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut action),
            0
        );
        action
    }
}

/// The address of a handler function, as `sa_sigaction` holds it.
pub fn address(f: *const ()) -> usize {
    f as usize
}

/// Installs [`chainer`] over the current action, which it will call.
pub fn install_chainer() {
    let old = set_action(address(chainer as *const ()), libc::SA_SIGINFO);
    CHAINED_HANDLER.store(old.sa_sigaction, SeqCst);
    CHAINED_FLAGS.store(old.sa_flags, SeqCst);
}

/// Registers `S` with `signal-hook` (which chains to the action it replaced,
/// then runs its own actions; a replaced `SIG_DFL` or `SIG_IGN` is not applied).
pub fn register_signal_hook() {
    // SAFETY: the action logs only, async-signal-safely.
    unsafe {
        signal_hook_registry::register_sigaction(libc::SIGBUS, |info| {
            log_call("S", libc::SIGBUS, Some(info.si_code))
        })
    }
    .unwrap();
}

/// Sends SIGBUS to the calling thread (`SI_TKILL`): delivered before `tgkill` returns.
pub fn tgkill_self() {
    // SAFETY: signalling this thread.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::gettid(),
            libc::SIGBUS,
        )
    };
}

/// Queues a SIGBUS with a positive `code` (as the kernel would send it) to the
/// calling thread, the only thread a process may send one to: delivered at the
/// system call's return, outside any copy.
pub fn queue_to_self(code: i32, addr: usize, lsb: i16) {
    // SAFETY: an all-zero siginfo is valid; the fields are written at the
    // kernel's x86-64 offsets (signo 0, code 8, addr 16, addr_lsb 24).
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let raw = (&raw mut info).cast::<u8>();
        raw.cast::<i32>().write(libc::SIGBUS);
        raw.add(8).cast::<i32>().write(code);
        raw.add(16).cast::<usize>().write(addr);
        raw.add(24).cast::<i16>().write(lsb);
        let sent = libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            libc::gettid(),
            libc::SIGBUS,
            &info as *const libc::siginfo_t,
        );
        assert_eq!(sent, 0, "rt_tgsigqueueinfo");
    }
}
