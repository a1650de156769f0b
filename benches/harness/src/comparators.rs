//! What is measured: mcsafe's copies, and what people use instead.

use std::ffi::{c_int, c_void};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcsafe::Strategy;

use crate::workload::Call;

/// How user code calls a copy: the three call shapes the speed targets hold in.
/// In each, mcsafe and glibc's memcpy are called the same way, and the ratio is
/// taken between the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The call inlined into the caller's loop; the result tested with `is_err`.
    Inline,
    /// Through a `&dyn Fn` the optimizer cannot see through; the whole result
    /// passed to `black_box` (as a caller that stores it would).
    Dyn,
    /// From a non-inlined function of another crate (`mcsafe-bench-caller`), as
    /// a storage engine's read path calls it; the result to `black_box`.
    Crate,
}

impl Shape {
    /// Every shape, in table order.
    pub const ALL: [Shape; 3] = [Shape::Inline, Shape::Dyn, Shape::Crate];

    /// The mcsafe comparator and the memcpy comparator of this shape.
    pub fn pair(self) -> (Comparator, Comparator) {
        match self {
            Shape::Inline => (Comparator::Mcsafe, Comparator::Memcpy),
            Shape::Dyn => (Comparator::McsafeDyn, Comparator::MemcpyDyn),
            Shape::Crate => (Comparator::McsafeCrate, Comparator::MemcpyCrate),
        }
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Inline => "inline",
            Shape::Dyn => "&dyn Fn",
            Shape::Crate => "other crate",
        }
    }
}

/// A copy routine under measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparator {
    /// `mcsafe::copy_mc`, inlined into the loop ([`Shape::Inline`]).
    Mcsafe,
    /// `mcsafe::copy_mc` through an opaque `&dyn Fn` ([`Shape::Dyn`]).
    McsafeDyn,
    /// `mcsafe::copy_mc` from another crate's non-inlined function ([`Shape::Crate`]).
    McsafeCrate,
    /// `mcsafe::copy_mc_with(strategy, ..)`.
    Strategy(Strategy),
    /// glibc's `memcpy` through a function pointer the optimizer cannot see
    /// through: no inlining, no constant sizes ([`Shape::Inline`]'s reference).
    Memcpy,
    /// glibc's `memcpy` through an opaque `&dyn Fn` ([`Shape::Dyn`]).
    MemcpyDyn,
    /// glibc's `memcpy` from another crate's non-inlined function ([`Shape::Crate`]).
    MemcpyCrate,
    /// `ptr::copy_nonoverlapping`: for sizes unknown at compile time, a call to
    /// `memcpy` through the PLT.
    CopyNonoverlapping,
    /// What PMDK and libtorrent do to survive SIGBUS: `sigsetjmp(env, 1)` before
    /// each `memcpy` (saving the signal mask is a system call), `siglongjmp`
    /// from the SIGBUS handler.
    SigsetjmpGuard,
    /// `pread(2)` of the same bytes from a page-cache-hot file: the system call
    /// a storage engine makes to be safe from SIGBUS.
    Pread,
    /// A plain loop of 32-byte non-temporal stores (AVX2), then `sfence`.
    NonTemporalLoop,
    /// `mcsafe::copy_mc` with the avx512 routine's other non-temporal loop shape
    /// (page streams where this CPU's rule takes the plain loop, and the other
    /// way round: cpu.rs, `avx512_page_streams`), for the rule's facts.
    McsafeOtherNtShape,
}

impl Comparator {
    /// A short name for tables and plots.
    pub fn name(&self) -> String {
        match self {
            Comparator::Mcsafe => "mcsafe".into(),
            Comparator::McsafeDyn => "mcsafe (&dyn)".into(),
            Comparator::McsafeCrate => "mcsafe (crate)".into(),
            Comparator::Strategy(s) => format!("mcsafe/{}", s.name()),
            Comparator::Memcpy => "glibc memcpy".into(),
            Comparator::MemcpyDyn => "memcpy (&dyn)".into(),
            Comparator::MemcpyCrate => "memcpy (crate)".into(),
            Comparator::CopyNonoverlapping => "copy_nonoverlapping".into(),
            Comparator::SigsetjmpGuard => "sigsetjmp+memcpy".into(),
            Comparator::Pread => "pread".into(),
            Comparator::NonTemporalLoop => "NT loop".into(),
            Comparator::McsafeOtherNtShape => {
                if mcsafe::internals::avx512_page_streams() {
                    "mcsafe, plain NT loop".into()
                } else {
                    "mcsafe, NT page streams".into()
                }
            }
        }
    }

    /// Whether this machine can run it.
    pub fn is_available(&self) -> bool {
        match self {
            Comparator::Strategy(s) => s.is_available(),
            Comparator::NonTemporalLoop => non_temporal_available(),
            Comparator::McsafeOtherNtShape => Strategy::current() == Strategy::Avx512,
            _ => true,
        }
    }

    /// Runs every call once; returns the elapsed time.
    ///
    /// # Safety
    /// Every call's ranges are valid, distinct and mapped; for `Pread`, every
    /// call's source lies in `env`'s file mapping. The comparator
    /// [`is_available`](Self::is_available) (`NonTemporalLoop` needs AVX2); for
    /// `SigsetjmpGuard`, as for [`guarded_memcpy`]: one thread at a time, after
    /// [`install_guard_handler`].
    pub unsafe fn time(&self, calls: &[Call], env: &Env) -> Duration {
        // In every closure below, `c`'s ranges are valid, distinct and mapped
        // (this function's contract).
        match *self {
            Comparator::Mcsafe => timed(calls, |c| {
                // SAFETY: `c`'s ranges are valid, distinct and mapped.
                if unsafe { mcsafe::copy_mc(c.dst, c.src, c.len) }.is_err() {
                    black_box(());
                }
            }),
            Comparator::McsafeDyn => {
                let copy: &CopyFn<Result<(), mcsafe::Fault>> =
                    // SAFETY: only called below, with a call's valid, distinct ranges.
                    black_box(&|d, s, l| unsafe { mcsafe::copy_mc(d, s, l) });
                timed(calls, |c| {
                    let _ = black_box(copy(c.dst, c.src, c.len));
                })
            }
            Comparator::McsafeCrate => timed(calls, |c| {
                // SAFETY: `copy_mc`'s contract, which `c`'s valid, distinct ranges meet.
                let _ = black_box(unsafe { mcsafe_bench_caller::copy_mc(c.dst, c.src, c.len) });
            }),
            Comparator::Strategy(s) => timed(calls, |c| {
                // SAFETY: `c`'s ranges are valid, distinct and mapped (and an
                // unavailable `s` would panic before touching them).
                if unsafe { mcsafe::copy_mc_with(s, c.dst, c.src, c.len) }.is_err() {
                    black_box(());
                }
            }),
            Comparator::Memcpy => {
                let memcpy = env.memcpy;
                // SAFETY: `memcpy` is glibc's; `c`'s ranges are valid and distinct.
                timed(calls, |c| unsafe {
                    memcpy(c.dst.cast(), c.src.cast(), c.len);
                })
            }
            Comparator::MemcpyDyn => {
                let memcpy = env.memcpy;
                // SAFETY: `memcpy` is glibc's, only called below with a call's
                // valid, distinct ranges.
                let closure = move |d: *mut u8, s: *const u8, l| unsafe {
                    memcpy(d.cast(), s.cast(), l).cast::<u8>()
                };
                let copy: &CopyFn<*mut u8> = black_box(&closure);
                timed(calls, |c| {
                    let _ = black_box(copy(c.dst, c.src, c.len));
                })
            }
            Comparator::MemcpyCrate => timed(calls, |c| {
                // SAFETY: `memcpy`'s contract, which `c`'s valid, distinct ranges meet.
                black_box(unsafe { mcsafe_bench_caller::memcpy(c.dst, c.src, c.len) });
            }),
            // SAFETY: `c`'s ranges are valid for `len` bytes and do not overlap.
            Comparator::CopyNonoverlapping => timed(calls, |c| unsafe {
                std::ptr::copy_nonoverlapping(c.src, c.dst, c.len);
            }),
            Comparator::SigsetjmpGuard => timed(calls, |c| {
                // SAFETY: `c`'s ranges are valid and distinct; one thread, the
                // guard's handler installed (this function's contract).
                if unsafe { guarded_memcpy(c.dst, c.src, c.len) }.is_err() {
                    black_box(());
                }
            }),
            Comparator::Pread => {
                let (fd, base) = env.file.expect("Pread needs a file-backed workload");
                // SAFETY: `c.dst` is writable for `c.len` bytes; `c.src` lies in the
                // file's mapping at `base`, so the offset is inside the file.
                timed(calls, |c| unsafe {
                    let offset = c.src as usize - base as usize;
                    libc::pread(fd, c.dst.cast(), c.len, offset as libc::off_t);
                })
            }
            // SAFETY: `c`'s ranges are valid and distinct; the CPU has AVX2 (the
            // comparator is available, this function's contract).
            Comparator::NonTemporalLoop => timed(calls, |c| unsafe {
                non_temporal_copy(c.dst, c.src, c.len);
            }),
            Comparator::McsafeOtherNtShape => {
                let in_force = mcsafe::internals::avx512_page_streams();
                mcsafe::internals::set_avx512_page_streams(!in_force);
                let took = timed(calls, |c| {
                    // SAFETY: `c`'s ranges are valid, distinct and mapped.
                    if unsafe { mcsafe::copy_mc(c.dst, c.src, c.len) }.is_err() {
                        black_box(());
                    }
                });
                mcsafe::internals::set_avx512_page_streams(in_force);
                took
            }
        }
    }
}

/// The `&dyn Fn` of [`Shape::Dyn`], returning `R`.
type CopyFn<R> = dyn Fn(*mut u8, *const u8, usize) -> R;

/// What comparators need besides the calls.
#[derive(Clone, Copy)]
pub struct Env {
    /// glibc's memcpy, laundered through `black_box` once.
    pub memcpy: MemcpyFn,
    /// For `Pread`: the file's descriptor and the base of its mapping.
    pub file: Option<(c_int, *const u8)>,
}

/// The C `memcpy` signature.
pub type MemcpyFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;

impl Env {
    /// An environment without a file.
    pub fn new() -> Env {
        Env {
            memcpy: black_box(libc::memcpy as MemcpyFn),
            file: None,
        }
    }
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

/// One timed pass over `calls`, the copy inlined into the loop, in the thread's
/// CPU time: on a machine shared with other work, the time slices other
/// processes take from this thread do not count (they showed up as 10-30% noise
/// on the 2-core guest; side-by-side rounds and medians take care of the rest).
#[inline(never)]
fn timed(calls: &[Call], mut copy: impl FnMut(&Call)) -> Duration {
    let start = thread_time();
    for call in calls {
        copy(black_box(call));
    }
    thread_time().saturating_sub(start)
}

/// The calling thread's CPU time (user and system), `CLOCK_THREAD_CPUTIME_ID`.
pub fn thread_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

// The sigsetjmp guard. `sigsetjmp` returns twice, which Rust cannot express, so
// the guarded copy is a small assembly function: save the mask and registers
// with __sigsetjmp(env, 1), memcpy, return 0; after a siglongjmp, return 1.
core::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl mcsafe_bench_guarded_memcpy",
    ".hidden mcsafe_bench_guarded_memcpy",
    ".type mcsafe_bench_guarded_memcpy, @function",
    "mcsafe_bench_guarded_memcpy:",
    // rdi = dst, rsi = src, rdx = len, rcx = sigjmp_buf; five pushes align the stack.
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rbx, rdi",
    "mov r12, rsi",
    "mov r13, rdx",
    "mov rdi, rcx",
    "mov esi, 1",
    "call __sigsetjmp@PLT",
    "test eax, eax",
    "jnz 2f",
    "mov rdi, rbx",
    "mov rsi, r12",
    "mov rdx, r13",
    "call memcpy@PLT",
    "xor eax, eax",
    "2:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "ret",
    ".size mcsafe_bench_guarded_memcpy, . - mcsafe_bench_guarded_memcpy",
);

unsafe extern "C" {
    fn mcsafe_bench_guarded_memcpy(
        dst: *mut u8,
        src: *const u8,
        len: usize,
        env: *mut c_void,
    ) -> c_int;
    fn siglongjmp(env: *mut c_void, value: c_int) -> !;
}

/// glibc's `sigjmp_buf` is 200 bytes; this is ample and aligned.
#[repr(C, align(16))]
struct JmpBuf([u8; 256]);

static mut GUARD_ENV: JmpBuf = JmpBuf([0; 256]);
static GUARD_ACTIVE: AtomicBool = AtomicBool::new(false);

/// The sigsetjmp guard caught a SIGBUS (and, like such guards, knows no more).
#[derive(Debug)]
pub struct Faulted;

/// A memcpy that a SIGBUS turns into `Err(Faulted)`, the sigsetjmp way.
///
/// # Safety
/// As for `memcpy`; one thread at a time (one jump buffer), and
/// [`install_guard_handler`] must have run.
pub unsafe fn guarded_memcpy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Faulted> {
    GUARD_ACTIVE.store(true, Ordering::Relaxed);
    // SAFETY: the caller's contract; the jump buffer is only used by this thread.
    let faulted =
        unsafe { mcsafe_bench_guarded_memcpy(dst, src, len, (&raw mut GUARD_ENV).cast()) };
    GUARD_ACTIVE.store(false, Ordering::Relaxed);
    if faulted == 0 { Ok(()) } else { Err(Faulted) }
}

extern "C" fn guard_handler(signo: c_int, _: *mut libc::siginfo_t, _: *mut c_void) {
    if GUARD_ACTIVE.swap(false, Ordering::Relaxed) {
        // SAFETY: a guarded copy is running on this thread and its sigsetjmp
        // frame is live; siglongjmp is how this guard style returns.
        unsafe { siglongjmp((&raw mut GUARD_ENV).cast(), 1) };
    }
    // Not inside a guarded copy: die by the signal, as without a handler.
    // SAFETY: async-signal-safe calls.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        libc::raise(signo);
    }
}

/// Installs the sigsetjmp guard's SIGBUS handler. Call it before mcsafe installs
/// its own, which then forwards the guard's faults to it.
pub fn install_guard_handler() {
    // SAFETY: a valid SA_SIGINFO action for SIGBUS.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = guard_handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Whether the plain non-temporal loop runs here: AVX2 (an x86-64 comparator).
fn non_temporal_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Never called off x86-64 (`non_temporal_available` is false there).
///
/// # Safety
/// None needed: it touches no memory.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn non_temporal_copy(_: *mut u8, _: *const u8, _: usize) {
    unreachable!("the non-temporal loop comparator is x86-64's")
}

/// The plain non-temporal loop: head to a 32-byte destination boundary with
/// memcpy, 128 bytes per iteration of streaming stores, memcpy for the tail.
///
/// # Safety
/// As for `memcpy`; the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn non_temporal_copy(dst: *mut u8, src: *const u8, len: usize) {
    use std::arch::x86_64::{__m256i, _mm_sfence, _mm256_loadu_si256, _mm256_stream_si256};
    let head = (dst as usize).wrapping_neg() & 31;
    if len < head + 128 {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    // SAFETY: every access below stays inside dst..dst+len and src..src+len;
    // the streaming stores go to 32-byte aligned addresses.
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, head);
        let (mut d, mut s, mut left) = (dst.add(head), src.add(head), len - head);
        while left >= 128 {
            for i in 0..4 {
                let v = _mm256_loadu_si256(s.add(32 * i).cast::<__m256i>());
                _mm256_stream_si256(d.add(32 * i).cast::<__m256i>(), v);
            }
            (d, s, left) = (d.add(128), s.add(128), left - 128);
        }
        _mm_sfence();
        std::ptr::copy_nonoverlapping(s, d, left);
    }
}
