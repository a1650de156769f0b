//! Where the handler runs: threads with and without an alternate signal stack,
//! how small that stack may be, a fault taken while already on it, and
//! `copy_mc` called from inside another signal handler.
//!
//! The alternate stacks here sit right above a PROT_NONE guard page, so a stack
//! that is too small ends in SIGSEGV, never in silent corruption.

mod common;

use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

use common::*;
use mcsafe::Strategy;

const FILL: u8 = 0xaa;

/// An alternate signal stack of `size` bytes above a guard page.
struct AltStack {
    map: *mut u8,
    map_len: usize,
    size: usize,
}

impl AltStack {
    fn new(size: usize) -> AltStack {
        let map_len = PAGE + size.next_multiple_of(PAGE);
        // SAFETY: a fresh anonymous mapping; its first page becomes the guard.
        unsafe {
            let map = libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::mprotect(map, PAGE, libc::PROT_NONE), 0);
            let map = map.cast::<u8>();
            ptr::write_bytes(map.add(PAGE), FILL, size);
            AltStack { map, map_len, size }
        }
    }

    fn bottom(&self) -> *mut u8 {
        self.map.wrapping_add(PAGE)
    }

    /// Makes this the calling thread's alternate signal stack.
    fn enable(&self) {
        if let Err(e) = self.try_enable() {
            panic!("sigaltstack of {} bytes: {e}", self.size);
        }
    }

    fn try_enable(&self) -> std::io::Result<()> {
        let stack = libc::stack_t {
            ss_sp: self.bottom().cast(),
            ss_flags: 0,
            ss_size: self.size,
        };
        // SAFETY: the stack is mapped and outlives its use by this thread.
        match unsafe { libc::sigaltstack(&stack, ptr::null_mut()) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// Bytes of the stack that something wrote (from the top down).
    fn used(&self) -> usize {
        // SAFETY: the stack's bytes are mapped and readable.
        let bytes = unsafe { std::slice::from_raw_parts(self.bottom(), self.size) };
        self.size - bytes.iter().position(|&b| b != FILL).unwrap_or(self.size)
    }
}

// SAFETY: the mapping is plain memory; the thread it is given to is the only
// one that runs on it, and the owner reads it only after that thread ended.
unsafe impl Sync for AltStack {}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: our mapping; no thread uses it any more.
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// Runs `f` on a new thread whose alternate stack is `stack`, or none at all
/// (std's one removed).
fn on_thread<T: Send>(stack: Option<&AltStack>, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            match stack {
                Some(stack) => stack.enable(),
                None => disable_altstack(),
            }
            f()
        })
        .join()
        .unwrap()
    })
}

/// One copy over a lost page with each strategy: recovered exactly.
fn faulting_copies() {
    let lost = LostTail::new(1, 1, 5);
    let mut dst = vec![0u8; 2 * PAGE];
    for strategy in Strategy::available() {
        // SAFETY: the mapping's second page is lost.
        let f = unsafe { mcsafe::copy_mc_with(strategy, dst.as_mut_ptr(), lost.base(), 2 * PAGE) }
            .unwrap_err();
        assert_eq!(f.copied(), PAGE, "{strategy}");
        assert_eq!(
            // SAFETY: the mapping's first page is backed; `dst` is a Vec of 2 pages.
            unsafe { first_difference(dst.as_ptr(), lost.base(), PAGE) },
            None
        );
    }
}

/// Bytes of an alternate stack that one recovered copy fault uses: the
/// kernel's signal frame plus mcsafe's handler.
fn depth_of_a_copy_fault() -> usize {
    mcsafe::install().unwrap();
    let stack = AltStack::new(256 * 1024);
    on_thread(Some(&stack), faulting_copies);
    stack.used()
}

extern "C" fn empty_handler(_: i32) {}

/// Bytes of an alternate stack that the kernel's frame for an empty handler uses.
fn depth_of_an_empty_handler() -> usize {
    let stack = AltStack::new(256 * 1024);
    // SAFETY: a valid SA_ONSTACK action for SIGUSR2 in this child process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = empty_handler as *const () as usize;
        action.sa_flags = libc::SA_ONSTACK;
        libc::sigaction(libc::SIGUSR2, &action, ptr::null_mut());
    }
    on_thread(Some(&stack), || {
        // SAFETY: signalling this thread.
        unsafe { libc::raise(libc::SIGUSR2) };
    });
    stack.used()
}

#[test]
fn copy_faults_are_recovered_on_threads_without_an_alternate_stack() {
    mcsafe::install().unwrap();
    let std_has_one = std::thread::spawn(|| current_altstack().ss_flags & libc::SS_DISABLE == 0)
        .join()
        .unwrap();
    eprintln!("a thread std starts has an alternate stack: {std_has_one}");
    on_thread(None, || {
        // Still none after the faults: the handler ran on the thread's stack.
        faulting_copies();
        assert_ne!(current_altstack().ss_flags & libc::SS_DISABLE, 0);
    });
}

#[test]
fn copy_faults_are_recovered_on_a_large_alternate_stack_and_use_it() {
    let used = in_child_depth("copy_faults_are_recovered_on_a_large_alternate_stack_and_use_it");
    assert!(used > 0, "the handler ran on the alternate stack");
}

/// Runs `depth_of_a_copy_fault` in a child (a fresh process, so that the
/// actions of other tests do not interfere) and returns the depth it printed.
/// A child that fails (a panic, a signal) fails the test: it is no depth.
fn in_child_depth(test: &str) -> usize {
    let output = in_child_output(test, &[], || {
        eprintln!("USED {}", depth_of_a_copy_fault());
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child failed: {:?}\n{stderr}",
        output.status
    );
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("USED "))
        .unwrap_or_else(|| panic!("no depth printed:\n{stderr}"))
        .parse()
        .unwrap()
}

/// How small the alternate stack may be: find the depth a copy fault uses,
/// then check that a stack that much larger works and that a smaller one ends
/// in SIGSEGV (the kernel cannot deliver the signal), as for any handler.
#[test]
fn how_small_an_alternate_stack_may_be() {
    const TEST: &str = "how_small_an_alternate_stack_may_be";
    if let Ok(size) = std::env::var("MCSAFE_ALTSTACK") {
        in_child(TEST, || {
            mcsafe::install().unwrap();
            let stack = AltStack::new(size.parse().unwrap());
            on_thread(None, || {
                if let Err(e) = stack.try_enable() {
                    eprintln!("sigaltstack of {size} bytes refused: {e}");
                    std::process::exit(3);
                }
                faulting_copies();
            });
        });
        return;
    }
    if std::env::var("MCSAFE_DEPTH").is_ok() {
        in_child(TEST, || {
            let empty = depth_of_an_empty_handler();
            let copy = depth_of_a_copy_fault();
            eprintln!("DEPTH {empty} {copy}");
            std::process::exit(0)
        });
        return;
    }
    let output = this_binary()
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("MCSAFE_TEST_CHILD", TEST)
        .env("MCSAFE_DEPTH", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("DEPTH "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let (empty, copy) = line.split_once(' ').unwrap();
    let (empty, copy): (usize, usize) = (empty.parse().unwrap(), copy.parse().unwrap());
    // SAFETY: getauxval has no preconditions.
    let kernel_min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    eprintln!(
        "alternate stack: the kernel's frame for an empty handler uses {empty} bytes, a \
         recovered copy fault {copy} (mcsafe's handler: {} more); AT_MINSIGSTKSZ {kernel_min}, \
         MINSIGSTKSZ {}, SIGSTKSZ {}",
        copy - empty,
        libc::MINSIGSTKSZ,
        libc::SIGSTKSZ
    );
    assert!(copy - empty <= 2048, "mcsafe's handler needs little stack");
    let run =
        |size: usize| in_child_with_env(TEST, &[("MCSAFE_ALTSTACK", &size.to_string())], || {});
    // Enough for the kernel's frame and mcsafe's handler: recovered. (At least
    // MINSIGSTKSZ, the smallest stack sigaltstack takes.)
    let enough = (copy + 256).max(libc::MINSIGSTKSZ);
    assert!(run(enough).success(), "{enough} bytes are enough");
    // Enough for the kernel's frame and half of what mcsafe's handler used: it
    // runs into the guard page and the process dies by SIGSEGV. (Only where the
    // handler's share is large enough to halve with room to spare, as in the
    // test profile; an optimised handler may fit in the frame's alignment.)
    let share = copy - empty;
    // sigaltstack refuses stacks below MINSIGSTKSZ, which on CPUs with a small
    // signal frame (AMD Zen 3 here: 1,352 bytes) is more than the frame plus
    // half the handler's share: then the shortest stack it allows is the one.
    let short = (empty + share / 2).max(libc::MINSIGSTKSZ);
    if share >= 256 && short + share / 4 <= copy {
        assert_eq!(killed_by(run(short)), Some(libc::SIGSEGV), "{short} bytes");
    } else {
        eprintln!(
            "NOT RUN: a stack too short for mcsafe's handler: the shortest one \
             sigaltstack allows ({short} bytes) leaves it nearly all it needs ({copy})"
        );
    }
    // MINSIGSTKSZ: where it is smaller than what a copy fault needs (the
    // kernel's frame alone, with AVX-512 state), sigaltstack refuses it (Linux
    // checks the size against the frame of this CPU), or the kernel cannot
    // deliver the signal and the process dies by SIGSEGV. Where the frame is
    // small (AMD Zen 3: 1,352 bytes), it is enough.
    let status = run(libc::MINSIGSTKSZ);
    if libc::MINSIGSTKSZ >= enough {
        assert!(status.success(), "MINSIGSTKSZ is enough here: {status:?}");
    } else if libc::MINSIGSTKSZ < copy {
        assert!(
            status.code() == Some(3) || killed_by(status) == Some(libc::SIGSEGV),
            "MINSIGSTKSZ: {status:?}"
        );
    }
}

// ---- copy_mc inside another signal handler ----

static RESULT: AtomicI32 = AtomicI32::new(0);
static COPIED: AtomicUsize = AtomicUsize::new(0);
static SRC: AtomicUsize = AtomicUsize::new(0);
static DST: AtomicUsize = AtomicUsize::new(0);
/// The address of a local of the SIGUSR1 handler: where its frame lies.
static MARK: AtomicUsize = AtomicUsize::new(0);

/// A SIGUSR1 handler that copies two pages, the second lost, with `copy_mc`
/// (async-signal-safe once mcsafe is installed: no allocation, no lock).
extern "C" fn copying_handler(_: i32) {
    let here = 0u8;
    MARK.store(std::hint::black_box(&here) as *const u8 as usize, SeqCst);
    let (src, dst) = (SRC.load(SeqCst) as *const u8, DST.load(SeqCst) as *mut u8);
    // SAFETY: the test set both up; the source's second page is lost.
    match unsafe { mcsafe::copy_mc(dst, src, 2 * PAGE) } {
        Ok(()) => RESULT.store(1, SeqCst),
        Err(f) => {
            COPIED.store(f.copied(), SeqCst);
            RESULT.store(2, SeqCst);
        }
    }
}

fn copy_in_a_handler(flags: i32, stack: Option<&AltStack>) {
    // What makes copy_mc async-signal-safe: install() installs the handler and
    // picks the routines (the only steps that lock or allocate).
    mcsafe::install().unwrap();
    let lost = LostTail::new(1, 1, 8);
    let mut dst = vec![0u8; 2 * PAGE];
    SRC.store(lost.base() as usize, SeqCst);
    DST.store(dst.as_mut_ptr() as usize, SeqCst);
    // SAFETY: a valid action for SIGUSR1 in this child process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = copying_handler as *const () as usize;
        action.sa_flags = flags;
        libc::sigaction(libc::SIGUSR1, &action, ptr::null_mut());
    }
    let recovered = mcsafe::stats().recovered;
    on_thread(stack, || {
        // SAFETY: signalling this thread.
        unsafe { libc::raise(libc::SIGUSR1) };
    });
    assert_eq!(RESULT.load(SeqCst), 2, "the copy in the handler faulted");
    assert_eq!(COPIED.load(SeqCst), PAGE);
    assert_eq!(mcsafe::stats().recovered - recovered, 1);
    assert_eq!(
        // SAFETY: the mapping's first page is backed; `dst` is a Vec of 2 pages.
        unsafe { first_difference(dst.as_ptr(), lost.base(), PAGE) },
        None
    );
}

#[test]
fn copy_mc_inside_another_signal_handler() {
    let status = in_child("copy_mc_inside_another_signal_handler", || {
        copy_in_a_handler(0, None)
    });
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_fault_while_already_on_the_alternate_stack() {
    let status = in_child("a_fault_while_already_on_the_alternate_stack", || {
        // What the kernel's frame for a signal takes on an alternate stack.
        let frame = depth_of_an_empty_handler();
        let stack = AltStack::new(256 * 1024);
        copy_in_a_handler(libc::SA_ONSTACK, Some(&stack));
        // The SIGUSR1 handler ran on the alternate stack: its local lies there.
        let (bottom, top) = (
            stack.bottom() as usize,
            stack.bottom() as usize + stack.size,
        );
        let mark = MARK.load(SeqCst);
        assert!(
            (bottom..top).contains(&mark),
            "the SIGUSR1 handler's local {mark:#x} lies on the alternate stack {bottom:#x}..{top:#x}"
        );
        // The SIGBUS frame nested in it lies on the alternate stack too, below
        // the handler: what was written below the handler's local holds at
        // least a signal frame (copy_mc's own frames alone take far less).
        let below = stack.used() - (top - mark);
        eprintln!(
            "nested frames used {} bytes of the alternate stack, {below} below the SIGUSR1 \
             handler's local; a signal frame takes {frame}",
            stack.used()
        );
        assert!(
            below >= frame,
            "{below} bytes below the SIGUSR1 handler: the SIGBUS frame ({frame}) was not nested there"
        );
    });
    assert!(status.success(), "{status:?}");
}
