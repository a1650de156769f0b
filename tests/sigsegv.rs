//! SIGSEGV is not SIGBUS: mcsafe does not hook it. An unmapped source, a
//! read-only or unmapped destination, a PROT_NONE page: the process dies by
//! SIGSEGV as with `memcpy`, and mcsafe's handler never sees it. Rust's own
//! stack-overflow report still works after mcsafe is installed.

mod common;

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use common::*;

/// `len` bytes of fresh anonymous memory with protection `prot`.
fn mapping(len: usize, prot: i32) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

fn unmapped() -> *mut u8 {
    let p = mapping(4 * PAGE, libc::PROT_READ);
    // SAFETY: unmapping our own mapping: its addresses are now unmapped.
    unsafe { libc::munmap(p.cast(), 4 * PAGE) };
    p
}

fn sigsegv_action() -> usize {
    // SAFETY: querying the action.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGSEGV, ptr::null(), &mut action);
        action.sa_sigaction
    }
}

#[test]
fn mcsafe_does_not_touch_sigsegv() {
    let before = sigsegv_action();
    mcsafe::install().unwrap();
    let lost = LostTail::new(1, 1, 0);
    let mut dst = vec![0u8; 2 * PAGE];
    // SAFETY: the second page is lost: a recovered SIGBUS.
    assert!(unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base(), 2 * PAGE) }.is_err());
    assert_eq!(sigsegv_action(), before);
}

/// mcsafe's counters when the copy began, for [`report_counters`].
static RECOVERED: AtomicU64 = AtomicU64::new(0);
static PASSED_ON: AtomicU64 = AtomicU64::new(0);
const UNTOUCHED: &str = "mcsafe's counters untouched at the SIGSEGV\n";

/// A SIGSEGV handler (`SA_RESETHAND`, installed before mcsafe) that says
/// whether mcsafe's counters moved since the copy began, then returns: the
/// access runs again under `SIG_DFL` and the process dies by SIGSEGV. Had
/// mcsafe seen the SIGSEGV, recovered or passed it on (to this handler),
/// its counters would show it.
extern "C" fn report_counters(_: i32) {
    let now = mcsafe::stats();
    let untouched =
        now.recovered == RECOVERED.load(SeqCst) && now.passed_on == PASSED_ON.load(SeqCst);
    let message = if untouched {
        UNTOUCHED
    } else {
        "mcsafe's counters moved before the SIGSEGV\n"
    };
    // SAFETY: write(2) is async-signal-safe; the message is static.
    unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
}

/// Runs `copy` in a child (with `env`) after installing mcsafe; the child must
/// die by SIGSEGV with mcsafe's counters untouched up to then.
fn dies_by_sigsegv(test: &str, env: &[(&str, &str)], copy: impl FnOnce()) {
    let output = in_child_output(test, env, || {
        // SAFETY: a valid action for SIGSEGV in this child process.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = report_counters as *const () as usize;
            action.sa_flags = libc::SA_RESETHAND;
            assert_eq!(libc::sigaction(libc::SIGSEGV, &action, ptr::null_mut()), 0);
        }
        mcsafe::install().unwrap();
        let before = mcsafe::stats();
        RECOVERED.store(before.recovered, SeqCst);
        PASSED_ON.store(before.passed_on, SeqCst);
        copy();
        eprintln!("the copy returned: {:?}", mcsafe::stats());
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("child {test}: {:?}\n{stderr}", output.status);
    assert_eq!(
        killed_by(output.status),
        Some(libc::SIGSEGV),
        "{test}: {:?}",
        output.status
    );
    assert!(stderr.contains(UNTOUCHED), "{test}: {stderr}");
}

#[test]
fn an_unmapped_source_kills_by_sigsegv() {
    dies_by_sigsegv("an_unmapped_source_kills_by_sigsegv", &[], || {
        let mut dst = vec![0u8; PAGE];
        // SAFETY: deliberately unmapped: the child dies.
        let _ = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), unmapped(), PAGE) };
    });
}

#[test]
fn an_unmapped_destination_kills_by_sigsegv() {
    dies_by_sigsegv("an_unmapped_destination_kills_by_sigsegv", &[], || {
        let src = vec![0u8; PAGE];
        // SAFETY: deliberately unmapped: the child dies.
        let _ = unsafe { mcsafe::copy_mc(unmapped(), src.as_ptr(), PAGE) };
    });
}

#[test]
fn a_read_only_destination_kills_by_sigsegv() {
    dies_by_sigsegv("a_read_only_destination_kills_by_sigsegv", &[], || {
        let src = vec![0u8; PAGE];
        // SAFETY: deliberately read-only: the child dies.
        let _ = unsafe { mcsafe::copy_mc(mapping(PAGE, libc::PROT_READ), src.as_ptr(), PAGE) };
    });
}

#[test]
fn a_prot_none_page_after_good_ones_kills_by_sigsegv_with_every_strategy() {
    for strategy in mcsafe::Strategy::available() {
        dies_by_sigsegv(
            "a_prot_none_page_after_good_ones_kills_by_sigsegv_with_every_strategy",
            &[("MCSAFE_STRATEGY", strategy.name())],
            || {
                let src = mapping(3 * PAGE, libc::PROT_READ | libc::PROT_WRITE);
                // SAFETY: our mapping; its third page becomes inaccessible.
                unsafe { libc::mprotect(src.add(2 * PAGE).cast(), PAGE, libc::PROT_NONE) };
                let mut dst = vec![0u8; 3 * PAGE];
                // SAFETY: deliberately inaccessible: the child dies.
                let _ = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src, 3 * PAGE) };
            },
        );
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    std::hint::black_box(&frame);
    recurse(depth + 1) + frame[7]
}

#[test]
fn rust_still_reports_a_stack_overflow_after_mcsafe_is_installed() {
    const TEST: &str = "rust_still_reports_a_stack_overflow_after_mcsafe_is_installed";
    if std::env::var("MCSAFE_OVERFLOW").is_ok() {
        mcsafe::install().unwrap();
        // A recovered copy fault first: mcsafe's handler is live.
        let lost = LostTail::new(1, 1, 0);
        let mut dst = vec![0u8; 2 * PAGE];
        // SAFETY: the second page is lost.
        assert!(unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base(), 2 * PAGE) }.is_err());
        std::thread::Builder::new()
            .name("deep".into())
            .spawn(|| recurse(0))
            .unwrap()
            .join()
            .unwrap();
        return;
    }
    let output = this_binary()
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("MCSAFE_OVERFLOW", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("child: {:?}\n{stderr}", output.status);
    let report = stderr
        .lines()
        .find(|l| l.starts_with("thread 'deep'"))
        .unwrap_or_default();
    assert!(report.ends_with("has overflowed its stack"), "{stderr}");
    assert_eq!(killed_by(output.status), Some(libc::SIGABRT));
}
