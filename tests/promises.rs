//! Promises of the API that no other test held to (issue 23): a bad
//! `MCSAFE_STRATEGY` is an error of `install` that installs nothing; the
//! `*_with` functions refuse a strategy this CPU lacks before touching memory;
//! `Fault::raw_os_error` is the errno of each fault kind; `copy_mc_lossy`,
//! `crc32c_mc` and `copy_crc32c_mc` refuse wrapping ranges, writing nothing.
//! (No allocation after `install`: `no_alloc.rs`, a binary of its own.)

mod common;
#[path = "common/trace.rs"]
mod trace;

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;
use mcsafe::{FaultKind, InstallError, Side, Strategy};

/// Every variant, of every architecture (`Strategy::ALL` lists this target's).
const EVERY_VARIANT: [Strategy; 5] = [
    Strategy::Fragile,
    Strategy::RepMovsb,
    Strategy::Avx2,
    Strategy::Avx512,
    Strategy::AdvSimd,
];

/// The strategies, of every architecture, that this CPU cannot run: another
/// architecture's at least (AdvSimd on x86-64, the four x86-64 ones on aarch64).
fn lacking() -> Vec<Strategy> {
    let lacking: Vec<Strategy> = EVERY_VARIANT
        .into_iter()
        .filter(|s| !s.is_available())
        .collect();
    assert!(!lacking.is_empty(), "every target lacks another's strategy");
    lacking
}

/// The message of a panic payload.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".into())
}

thread_local! {
    static EXPECTING_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The panic message of `f`, which must panic (the panic, expected, is not
/// printed; any other still is).
fn panic_of<R>(what: &str, f: impl FnOnce() -> R) -> String {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTING_PANIC.with(|e| e.get()) {
                default(info);
            }
        }));
    });
    EXPECTING_PANIC.with(|e| e.set(true));
    let caught = catch_unwind(AssertUnwindSafe(f));
    EXPECTING_PANIC.with(|e| e.set(false));
    match caught {
        Ok(_) => panic!("{what}: returned instead of panicking"),
        Err(payload) => message(payload),
    }
}

fn names(list: &[Strategy]) -> String {
    let names: Vec<&str> = list.iter().map(|s| s.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The current SIGBUS action's handler (Rust std's stack-overflow handler in a
/// test binary before mcsafe installs its own).
fn sigbus_handler() -> libc::sighandler_t {
    // SAFETY: a query: no action is set.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

// ---- MCSAFE_STRATEGY ----

const BAD_STRATEGY_TEST: &str = "a_bad_strategy_env_is_an_error_of_install_that_installs_nothing";

/// In a child whose `MCSAFE_STRATEGY` cannot be honoured (`MCSAFE_EXPECT_NAMED`:
/// the strategy it names, or empty): `Strategy::try_current` and `install` give
/// the same one-line error naming the value and the valid names, `install`
/// installs nothing, and a copy then panics with those words, writing nothing.
fn bad_strategy_child() {
    let value = std::env::var_os("MCSAFE_STRATEGY").unwrap();
    let value = value.to_string_lossy();
    let named = std::env::var("MCSAFE_EXPECT_NAMED").unwrap();
    let named = Strategy::from_name(&named);
    let before = sigbus_handler();

    let e = Strategy::try_current().unwrap_err();
    assert_eq!((e.value(), e.strategy()), (&*value, named));
    let line = e.to_string();
    let available = names(&Strategy::available());
    // Quoted unless a plain word.
    let shown = if !value.is_empty() && value.chars().all(|c| c.is_ascii_graphic()) {
        value.to_string()
    } else {
        format!("{value:?}")
    };
    let want = match named {
        Some(s) => format!(
            "MCSAFE_STRATEGY={shown}: this CPU cannot run the {s} strategy; available here: {available}"
        ),
        None => format!(
            "MCSAFE_STRATEGY={shown}: no such strategy; known: {}; available here: {available}",
            names(&Strategy::ALL)
        ),
    };
    assert_eq!(line, want);
    assert!(!line.contains('\n'), "one line: {line:?}");

    // install: the error, every time, and nothing installed.
    for _ in 0..2 {
        assert_eq!(mcsafe::install(), Err(InstallError::BadStrategy(e)));
    }
    assert_eq!(mcsafe::install().unwrap_err().to_string(), line);
    assert_eq!(sigbus_handler(), before, "install installed a handler");

    // Every entry point that installs on first use refuses with the same words,
    // touching no memory.
    let src = [0x5au8; 64];
    let mut dst = [0u8; 64];
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    let refusals = [
        // `d` and `s`: the distinct 64-byte stack arrays `dst` and `src`.
        (
            "copy_mc",
            // SAFETY: `d` and `s` are two distinct live 64-byte buffers.
            panic_of("copy_mc", || unsafe { mcsafe::copy_mc(d, s, 64) }),
        ),
        (
            "copy_mc_lossy",
            // SAFETY: `d` and `s` are two distinct live 64-byte buffers.
            panic_of("copy_mc_lossy", || unsafe {
                mcsafe::copy_mc_lossy(d, s, 64)
            }),
        ),
        (
            "crc32c_mc",
            // SAFETY: `s` is a live 64-byte buffer.
            panic_of("crc32c_mc", || unsafe { mcsafe::crc32c_mc(0, s, 64) }),
        ),
        (
            "copy_crc32c_mc",
            // SAFETY: `d` and `s` are two distinct live 64-byte buffers.
            panic_of("copy_crc32c_mc", || unsafe {
                mcsafe::copy_crc32c_mc(0, d, s, 64)
            }),
        ),
        (
            "fill_mc",
            // SAFETY: `d` is a live 64-byte buffer that nothing else touches.
            panic_of("fill_mc", || unsafe { mcsafe::fill_mc(d, 1, 64) }),
        ),
        (
            "Strategy::current",
            panic_of("Strategy::current", Strategy::current),
        ),
    ];
    for (entry, text) in refusals {
        assert!(
            text.contains(&line),
            "{entry}: {text:?} should say {line:?}"
        );
    }
    assert_eq!(dst, [0u8; 64], "a refused call wrote the destination");
    assert_eq!(
        sigbus_handler(),
        before,
        "a refused call installed a handler"
    );
    eprintln!("{value:?}: {line}");
}

#[test]
fn a_bad_strategy_env_is_an_error_of_install_that_installs_nothing() {
    // The strategies this CPU lacks: of this target's architecture where there is
    // one (not on this Emerald Rapids), and of another.
    let mut cases: Vec<(String, String)> = ["turbo", "", "avx2x", " memcpy "]
        .into_iter()
        .map(|v| (v.to_string(), String::new()))
        .collect();
    for s in lacking() {
        cases.push((s.name().to_string(), s.name().to_string()));
        cases.push((
            format!(" {} ", s.name().to_uppercase()),
            s.name().to_string(),
        ));
    }
    for (value, named) in &cases {
        let status = in_child_with_env(
            BAD_STRATEGY_TEST,
            &[("MCSAFE_STRATEGY", value), ("MCSAFE_EXPECT_NAMED", named)],
            bad_strategy_child,
        );
        assert!(status.success(), "MCSAFE_STRATEGY={value:?}: {status:?}");
    }
}

/// A value that is not UTF-8 names no strategy: an error, not the default.
#[test]
fn a_strategy_env_that_is_not_utf8_is_an_error_too() {
    const TEST: &str = "a_strategy_env_that_is_not_utf8_is_an_error_too";
    let status = in_child_with_env(TEST, &[("MCSAFE_EXPECT_NAMED", "")], || {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: this child's only other thread (libtest's) reads no
        // environment while it waits for this test.
        unsafe { std::env::set_var("MCSAFE_STRATEGY", std::ffi::OsStr::from_bytes(b"avx2\xff")) };
        bad_strategy_child();
    });
    assert!(status.success(), "{status:?}");
}

/// Unset (this process: the tests set it only in children), `try_current` is the
/// strategy `current` and the copies use.
#[test]
fn without_strategy_env_try_current_is_the_current_strategy() {
    assert!(std::env::var_os("MCSAFE_STRATEGY").is_none());
    let current = Strategy::try_current().expect("no MCSAFE_STRATEGY here");
    assert_eq!(current, Strategy::current());
    assert!(current.is_available());
    assert_eq!(mcsafe::install(), Ok(()));
    assert_eq!(mcsafe::dispatch().strategy, current);
}

// ---- a strategy this CPU lacks ----

/// Asserts that every `*_with` call with `strategy` (which this CPU lacks)
/// panics with the words `copy_mc_with` documents, for every length (0
/// included), touching no memory.
fn assert_refused_everywhere(strategy: Strategy) {
    let want =
        format!("mcsafe: this CPU cannot run the {strategy} strategy (see Strategy::available())");
    assert!(!strategy.is_available());
    assert!(!Strategy::available().contains(&strategy));
    let src: Vec<u8> = (0..4096).map(|i| byte_at(3, i)).collect();
    let mut dst = vec![0u8; 4096];
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    for len in [0usize, 1, 64, 4096] {
        let mut pieces = 0;
        let texts = [
            // SAFETY: `d` and `s` are two distinct live Vecs of 4096 >= `len`
            // bytes (the strategy is refused before they are touched).
            panic_of("copy_mc_with", || unsafe {
                mcsafe::copy_mc_with(strategy, d, s, len)
            }),
            // SAFETY: as for `copy_mc_with` above.
            panic_of("copy_mc_lossy_with", || unsafe {
                mcsafe::copy_mc_lossy_with(strategy, d, s, len, |_| {
                    pieces += 1;
                    ControlFlow::Continue(())
                })
            }),
        ];
        for text in texts {
            assert!(text.contains(&want), "{strategy}, len {len}: {text:?}");
        }
        assert_eq!(pieces, 0);
    }
    assert!(
        dst.iter().all(|&b| b == 0),
        "{strategy}: a refused copy wrote"
    );
    // Null pointers with len 0 too: the strategy is refused before the length.
    let text = panic_of("copy_mc_with null", || unsafe {
        // SAFETY: len 0 reads no pointer.
        mcsafe::copy_mc_with(strategy, std::ptr::null_mut(), std::ptr::null(), 0)
    });
    assert!(text.contains(&want), "{strategy}, null, len 0: {text:?}");
}

#[test]
fn a_with_function_refuses_a_strategy_this_cpu_lacks_before_touching_memory() {
    for s in lacking() {
        assert_refused_everywhere(s);
    }
    // The copies still work afterwards with every strategy this CPU has.
    assert_copy_faults_recovered();
}

/// x86-64: the same refusal for this architecture's own vector strategies on a
/// CPU without them: this test binary re-run under qemu-x86_64 emulating a
/// Nehalem (SSE4.2, no AVX, AVX2, AVX-512 or ERMS).
#[cfg(target_arch = "x86_64")]
#[test]
fn on_a_cpu_without_avx_the_vector_strategies_are_refused() {
    const TEST: &str = "on_a_cpu_without_avx_the_vector_strategies_are_refused";
    const ROLE: &str = "MCSAFE_PROMISES_EMULATED";
    match std::env::var(ROLE).as_deref() {
        Ok("refuse") => {
            assert_eq!(Strategy::available(), [Strategy::Fragile]);
            for s in [Strategy::RepMovsb, Strategy::Avx2, Strategy::Avx512] {
                assert_refused_everywhere(s);
            }
            let src = [7u8; 300];
            let mut dst = [0u8; 300];
            // SAFETY: two distinct stack buffers.
            unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), 300) }.unwrap();
            assert_eq!(dst, src);
            assert_eq!(Strategy::current(), Strategy::Fragile);
            println!("{TEST}: refused");
            return;
        }
        Ok("env") => {
            let e = Strategy::try_current().unwrap_err();
            assert_eq!(e.strategy(), Some(Strategy::Avx2));
            assert_eq!(mcsafe::install(), Err(InstallError::BadStrategy(e)));
            assert!(
                e.to_string()
                    .contains("this CPU cannot run the avx2 strategy; available here: fragile"),
                "{e}"
            );
            println!("{TEST}: env refused");
            return;
        }
        _ => {}
    }
    let qemu = "qemu-x86_64-static";
    let found = std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(
        found,
        "a CPU without AVX (under qemu-x86_64)",
        "qemu-x86_64-static not installed (Debian: qemu-user-static)",
    ) {
        return;
    }
    for (role, strategy) in [("refuse", None), ("env", Some("avx2"))] {
        let mut command = std::process::Command::new(qemu);
        command
            .args(["-cpu", "Nehalem"])
            .arg(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role);
        if let Some(name) = strategy {
            command.env("MCSAFE_STRATEGY", name);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{role}: {}\n{stdout}\n{stderr}",
            output.status
        );
        let done = if role == "refuse" {
            "refused"
        } else {
            "env refused"
        };
        assert!(stdout.contains(&format!("{TEST}: {done}")), "{stdout}");
    }
}

// ---- Fault::raw_os_error ----

/// Each fault kind, as the kernel codes it (delivered by ptrace at an
/// instruction of the copy routine, as `fault_kinds.rs` does), gives its errno:
/// `EIO` for poison and object errors, `EFAULT` for an address error.
#[test]
fn raw_os_error_is_the_errno_of_each_fault_kind() {
    const TEST: &str = "raw_os_error_is_the_errno_of_each_fault_kind";
    // A real one first (runs under qemu-user too): a truncated mapping.
    {
        let lost = LostTail::new(1, 1, 5);
        let mut dst = vec![0u8; 2 * PAGE];
        let _serial = signal_lock();
        // SAFETY: the mapping's second page is lost.
        let f = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base(), 2 * PAGE) }.unwrap_err();
        assert_eq!(
            (f.kind(), f.raw_os_error()),
            (FaultKind::AddressError, libc::EFAULT)
        );
    }
    if !trace::can_trace(TEST) {
        return;
    }
    let status = in_child(TEST, || {
        mcsafe::install().unwrap();
        let strategy = Strategy::current();
        let cases = [
            (libc::BUS_MCEERR_AR, FaultKind::Poison, libc::EIO),
            (libc::BUS_ADRERR, FaultKind::AddressError, libc::EFAULT),
            (libc::BUS_OBJERR, FaultKind::ObjectError, libc::EIO),
        ];
        const LEN: usize = 16 * PAGE;
        for (code, kind, errno) in cases {
            let src: Vec<u8> = (0..LEN).map(|i| byte_at(2, i)).collect();
            let mut dst = vec![0u8; LEN];
            let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
            let lost = (s as usize + 2 * PAGE) & !(PAGE - 1);
            let info = trace::sigbus_info(code, lost, 12);
            let status = trace::inject_at(strategy, 5, info, || {
                // SAFETY: two distinct heap buffers.
                let f = unsafe { mcsafe::copy_mc(d, s, LEN) };
                match f {
                    Err(f) if f.kind() == kind && f.side() == Side::Source => {
                        if f.raw_os_error() == errno {
                            0
                        } else {
                            eprintln!("{kind:?}: raw_os_error {}, want {errno}", f.raw_os_error());
                            1
                        }
                    }
                    other => {
                        eprintln!("{kind:?}: {other:?}");
                        2
                    }
                }
            });
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "{kind:?}: {status:?}"
            );
            eprintln!("{kind:?} (si_code {code}): raw_os_error {errno}");
        }
    });
    assert!(status.success(), "{status:?}");
}

// ---- wrapping ranges ----

/// Ranges that wrap the address space (pointer + len past `usize::MAX`), with the
/// side named in the refusal, around real buffers of 64 bytes at `d` and `s`.
fn wrapping_cases(d: usize, s: usize) -> Vec<(usize, usize, usize, &'static str)> {
    let top = usize::MAX - 15;
    vec![
        (d, top, 32, "source range"),
        (top, s, 32, "destination range"),
        (d, s, usize::MAX, "range"),
        // Each pointer plus a length that wraps just past 0.
        (d, s, 0usize.wrapping_sub(s) + 16, "range"),
        (d, s, 0usize.wrapping_sub(d) + 16, "range"),
    ]
}

#[test]
fn the_lossy_copy_and_the_checksums_refuse_wrapping_ranges_writing_nothing() {
    let src = [0x3cu8; 64];
    let mut dst = [SENTINEL; 64];
    let (d, s) = (dst.as_mut_ptr() as usize, src.as_ptr() as usize);
    let _serial = signal_lock();
    let before = mcsafe::stats();
    let mut checked = 0;
    for (dst_at, src_at, len, side) in wrapping_cases(d, s) {
        let (dp, sp) = (dst_at as *mut u8, src_at as *const u8);
        let mut pieces = 0;
        let mut texts = vec![
            // These ranges wrap the address space, so they cannot be "mapped" as
            // the # Safety sections ask: each call relies instead on its
            // documented # Panics (a range that wraps is refused before any
            // memory is touched), which is what this test checks.
            (
                "copy_mc_lossy",
                // SAFETY: refused before any access (copy_mc_lossy's # Panics).
                panic_of("copy_mc_lossy", || unsafe {
                    mcsafe::copy_mc_lossy(dp, sp, len)
                }),
            ),
            (
                "copy_crc32c_mc",
                // SAFETY: refused before any access (copy_crc32c_mc's # Panics).
                panic_of("copy_crc32c_mc", || unsafe {
                    mcsafe::copy_crc32c_mc(0, dp, sp, len)
                }),
            ),
        ];
        for strategy in Strategy::available() {
            texts.push((
                "copy_mc_lossy_with",
                // SAFETY: an available strategy; the wrapping range is refused
                // before any access (the # Panics of copy_mc_lossy_with).
                panic_of("copy_mc_lossy_with", || unsafe {
                    mcsafe::copy_mc_lossy_with(strategy, dp, sp, len, |_| {
                        pieces += 1;
                        ControlFlow::Continue(())
                    })
                }),
            ));
        }
        if side != "destination range" {
            texts.push((
                "crc32c_mc",
                // SAFETY: refused before any access (crc32c_mc's # Panics).
                panic_of("crc32c_mc", || unsafe { mcsafe::crc32c_mc(0, sp, len) }),
            ));
        }
        for (entry, text) in texts {
            assert!(
                text.contains(side) && text.contains("wraps the address space"),
                "{entry} {dst_at:#x} {src_at:#x} {len:#x}: {text:?}"
            );
            checked += 1;
        }
        assert_eq!(pieces, 0, "on_lost called for a refused copy");
        assert_eq!(
            dst, [SENTINEL; 64],
            "{dst_at:#x} {src_at:#x} {len:#x}: written"
        );
    }
    assert_eq!(mcsafe::stats(), before, "a refused call took a signal");
    eprintln!("{checked} refusals");
}
