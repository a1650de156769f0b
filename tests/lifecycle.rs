//! Across process boundaries: a forked child is still protected (the handler
//! and its table are inherited), and a program started with exec inherits
//! nothing of mcsafe (the kernel resets caught signals to SIG_DFL; mcsafe keeps
//! no descriptor open).

mod common;

use std::process::Command;

use common::*;

/// One faulting copy; true if it was recovered exactly. Async-signal-safe
/// (no allocation): usable in a child forked from a multithreaded process.
fn recovers(lost: &LostTail, dst: &mut [u8]) -> bool {
    // SAFETY: the mapping's page after `valid_len` is lost; dst is long enough.
    let result = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base(), 2 * PAGE) };
    // SAFETY: the first page is readable.
    result.is_err_and(|f| f.copied() == PAGE)
        && unsafe { first_difference(dst.as_ptr(), lost.base(), PAGE) }.is_none()
}

#[test]
fn a_forked_child_is_still_protected() {
    let status = in_child("a_forked_child_is_still_protected", || {
        mcsafe::install().unwrap();
        let lost = LostTail::new(1, 1, 3);
        let mut dst = vec![0u8; 2 * PAGE];
        // Another thread is running: the fork happens in a multithreaded process.
        let busy = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        // SAFETY: the child does async-signal-safe work only, then _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = recovers(&lost, &mut dst) && recovers(&lost, &mut dst);
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(pid > 0);
        let mut status = 0;
        // SAFETY: waiting for our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
        busy.join().unwrap();
        // And the parent is still protected too.
        assert!(recovers(&lost, &mut dst));
    });
    assert!(status.success(), "{status:?}");
}

/// The SigBlk, SigIgn and SigCgt masks of a `cat` of /proc/self/status: the
/// process that `cat` runs in, after exec.
fn signal_masks_after_exec() -> (u64, u64, u64) {
    let out = Command::new("cat")
        .arg("/proc/self/status")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mask = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    (mask("SigBlk:"), mask("SigIgn:"), mask("SigCgt:"))
}

const SIGBUS_BIT: u64 = 1 << (libc::SIGBUS - 1);

fn own_caught_mask() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text.lines().find(|l| l.starts_with("SigCgt:")).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn exec_leaves_nothing_behind() {
    let status = in_child("exec_leaves_nothing_behind", || {
        // SAFETY: SIG_DFL first, so that the only SIGBUS handler is mcsafe's.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        mcsafe::install().unwrap();
        let lost = LostTail::new(1, 1, 3);
        let mut dst = vec![0u8; 2 * PAGE];
        assert!(recovers(&lost, &mut dst));
        assert_ne!(own_caught_mask() & SIGBUS_BIT, 0, "here SIGBUS is caught");
        let (blocked, ignored, caught) = signal_masks_after_exec();
        assert_eq!(blocked & SIGBUS_BIT, 0, "SIGBUS blocked after exec");
        assert_eq!(ignored & SIGBUS_BIT, 0, "SIGBUS ignored after exec");
        assert_eq!(caught & SIGBUS_BIT, 0, "SIGBUS caught after exec");
        // No descriptor of mcsafe's (the probe's memfd is closed at once and
        // close-on-exec anyway) reaches the new program.
        let out = Command::new("ls")
            .args(["-l", "/proc/self/fd"])
            .output()
            .unwrap();
        let fds = String::from_utf8_lossy(&out.stdout);
        assert!(!fds.contains("mcsafe"), "{fds}");
        // A program that faults after exec dies by SIGBUS, the default.
        let died = Command::new("sh")
            .args(["-c", "kill -BUS $$"])
            .status()
            .unwrap();
        assert_eq!(killed_by(died), Some(libc::SIGBUS));
    });
    assert!(status.success(), "{status:?}");
}

/// A known difference: SIG_IGN is inherited across exec, a handler is not. A
/// process that ignored SIGBUS before installing mcsafe starts programs with
/// SIGBUS at SIG_DFL, where without mcsafe they would have inherited SIG_IGN.
#[test]
fn exec_after_sig_ign_then_mcsafe_gives_sig_dfl() {
    if qemu_user_cannot(
        "exec_after_sig_ign_then_mcsafe_gives_sig_dfl",
        qemu_user::EXEC,
    ) {
        return;
    }
    let status = in_child("exec_after_sig_ign_then_mcsafe_gives_sig_dfl", || {
        // SAFETY: setting a disposition in this child.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_IGN) };
        let (_, ignored, _) = signal_masks_after_exec();
        assert_ne!(ignored & SIGBUS_BIT, 0, "without mcsafe: inherited SIG_IGN");
        mcsafe::install().unwrap();
        let (_, ignored, caught) = signal_masks_after_exec();
        assert_eq!((ignored | caught) & SIGBUS_BIT, 0, "with mcsafe: SIG_DFL");
    });
    assert!(status.success(), "{status:?}");
}
