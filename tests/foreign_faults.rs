//! SIGBUS that is not a copy fault must behave as if mcsafe were not there:
//! the default action kills by SIGBUS, a handler installed before mcsafe gets
//! the signal with the kernel's siginfo, and mcsafe's own faults never reach it.
//! Each case runs in a child process, since several of them must die.

mod common;

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use common::*;

/// Reads the first lost byte outside any copy routine.
fn touch(lost: &LostTail) -> u8 {
    // SAFETY: the page is mapped; reading it raises SIGBUS (the point).
    unsafe { lost.boundary().read_volatile() }
}

#[test]
fn a_fault_outside_copy_mc_still_kills_by_sigbus() {
    if qemu_user_cannot(
        "a_fault_outside_copy_mc_still_kills_by_sigbus",
        qemu_user::RE_SENT_FAULT,
    ) {
        return;
    }
    let status = in_child("a_fault_outside_copy_mc_still_kills_by_sigbus", || {
        mcsafe::install().unwrap();
        let lost = LostTail::new(1, 1, 0);
        // A recovered copy fault first: the handler is live.
        let mut dst = [0u8; 64];
        // SAFETY: the mapping's second page is lost.
        assert!(unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.boundary(), 64) }.is_err());
        touch(&lost);
        eprintln!("survived a foreign SIGBUS");
    });
    assert_eq!(killed_by(status), Some(libc::SIGBUS), "{status:?}");
}

#[test]
fn a_fault_before_install_kills_by_sigbus_too() {
    // The control: what the test above compares against.
    let status = in_child("a_fault_before_install_kills_by_sigbus_too", || {
        touch(&LostTail::new(1, 1, 0));
    });
    assert_eq!(killed_by(status), Some(libc::SIGBUS), "{status:?}");
}

#[test]
fn ignored_sigbus_before_install_still_kills_on_a_fault() {
    if qemu_user_cannot(
        "ignored_sigbus_before_install_still_kills_on_a_fault",
        qemu_user::RE_SENT_FAULT,
    ) {
        return;
    }
    // The kernel forces a synchronous fault through SIG_IGN; so must mcsafe.
    let status = in_child(
        "ignored_sigbus_before_install_still_kills_on_a_fault",
        || {
            // SAFETY: setting a disposition in this child.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_IGN) };
            mcsafe::install().unwrap();
            touch(&LostTail::new(1, 1, 0));
        },
    );
    assert_eq!(killed_by(status), Some(libc::SIGBUS), "{status:?}");
}

static EXPECTED_ADDR: AtomicUsize = AtomicUsize::new(0);
static SEEN_CODE: AtomicI32 = AtomicI32::new(0);

/// A previous handler that checks the kernel's siginfo and exits with 42 if it
/// is the expected fault, 43 otherwise. Async-signal-safe: atomics and _exit.
extern "C" fn previous_handler(signo: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel (through mcsafe's forwarding) passes a valid siginfo.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    SEEN_CODE.store(code, Ordering::Relaxed);
    let ok = signo == libc::SIGBUS
        && code == libc::BUS_ADRERR
        && addr == EXPECTED_ADDR.load(Ordering::Relaxed);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(if ok { 42 } else { 43 }) };
}

fn install_previous_handler() {
    // SAFETY: a valid SA_SIGINFO action for SIGBUS in this child.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = previous_handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn a_handler_installed_before_gets_foreign_faults_with_their_siginfo() {
    let status = in_child(
        "a_handler_installed_before_gets_foreign_faults_with_their_siginfo",
        || {
            install_previous_handler();
            mcsafe::install().unwrap();
            let lost = LostTail::new(1, 1, 0);
            EXPECTED_ADDR.store(lost.boundary() as usize + 5, Ordering::Relaxed);
            // SAFETY: the byte lies in the lost page: SIGBUS, exact address.
            unsafe { lost.boundary().add(5).read_volatile() };
            eprintln!("the previous handler was not called");
        },
    );
    assert_eq!(status.code(), Some(42), "{status:?}");
}

#[test]
fn copy_faults_never_reach_the_previous_handler() {
    let status = in_child("copy_faults_never_reach_the_previous_handler", || {
        install_previous_handler();
        mcsafe::install().unwrap();
        let lost = LostTail::new(2, 1, 0);
        let mut dst = vec![0u8; 3 * PAGE];
        for strategy in mcsafe::Strategy::available() {
            // SAFETY: the mapping's third page is lost.
            let f =
                unsafe { mcsafe::copy_mc_with(strategy, dst.as_mut_ptr(), lost.base(), 3 * PAGE) }
                    .unwrap_err();
            assert_eq!(f.copied(), 2 * PAGE);
        }
        assert_eq!(mcsafe::stats().passed_on, 0);
    });
    assert!(status.success(), "{status:?}");
}

// ---- the default action, in detail ----

/// Dies by a foreign SIGBUS in a fresh directory with core files allowed,
/// with or without mcsafe.
fn die_with_core_allowed(with_mcsafe: bool) {
    let dir = std::env::var("MCSAFE_CORE_DIR").unwrap();
    std::env::set_current_dir(dir).unwrap();
    let limit = libc::rlimit {
        rlim_cur: 1 << 30,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: raising this child's core limit (root may raise the maximum too).
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) };
    // SAFETY: setting a disposition in this child.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
    if with_mcsafe {
        mcsafe::install().unwrap();
    }
    let lost = LostTail::new(1, 1, 0);
    // SAFETY: the page is lost: SIGBUS.
    unsafe { lost.boundary().read_volatile() };
}

#[test]
fn sig_dfl_dumps_core_on_a_foreign_fault_as_without_mcsafe() {
    if qemu_user_cannot(
        "sig_dfl_dumps_core_on_a_foreign_fault_as_without_mcsafe",
        qemu_user::RE_SENT_FAULT,
    ) {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    const TEST: &str = "sig_dfl_dumps_core_on_a_foreign_fault_as_without_mcsafe";
    if let Ok(with) = std::env::var("MCSAFE_WITH") {
        in_child(TEST, || die_with_core_allowed(with == "1"));
        return;
    }
    let mut dumped = Vec::new();
    for with in ["0", "1"] {
        let dir = std::env::temp_dir().join(format!("mcsafe-core-{}-{with}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = in_child_with_env(
            TEST,
            &[
                ("MCSAFE_WITH", with),
                ("MCSAFE_CORE_DIR", dir.to_str().unwrap()),
            ],
            || {},
        );
        assert_eq!(killed_by(status), Some(libc::SIGBUS), "{status:?}");
        let files = std::fs::read_dir(&dir).unwrap().count();
        dumped.push((status.core_dumped(), files > 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!(
        "core dumped (flag, file) without mcsafe {:?}, with {:?}",
        dumped[0], dumped[1]
    );
    assert_eq!(dumped[0], dumped[1], "same as without mcsafe");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim() == "core" {
        assert_eq!(dumped[1], (true, true), "core_pattern is a plain file here");
    }
}
