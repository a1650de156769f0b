//! The public API on ordinary input and on bad input: edge cases rejected before
//! any memory is touched, strategies, the error types, and installation.

mod common;

use std::ptr;

use common::*;
use mcsafe::{Fault, FaultKind, InstallError, Replacement, Side, Strategy};

#[test]
fn len_zero_touches_nothing_and_accepts_null() {
    // SAFETY: len 0 reads no pointer.
    unsafe {
        assert_eq!(mcsafe::copy_mc(ptr::null_mut(), ptr::null(), 0), Ok(()));
        assert_eq!(mcsafe::copy_mc(8 as *mut u8, 16 as *const u8, 0), Ok(()));
        for s in Strategy::available() {
            assert_eq!(
                mcsafe::copy_mc_with(s, ptr::null_mut(), ptr::null(), 0),
                Ok(())
            );
        }
    }
    // A lost page at len 0: no access, no signal.
    let lost = LostTail::new(1, 1, 1);
    let mut dst = [0u8; 8];
    let _serial = signal_lock();
    let before = recovered();
    assert_eq!(
        // SAFETY: nothing is read or written for len 0.
        unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.boundary(), 0) },
        Ok(())
    );
    assert_eq!(recovered(), before);
}

#[test]
#[should_panic(expected = "mcsafe: null source pointer with len 4")]
fn null_source_with_len_panics() {
    let mut dst = [0u8; 4];
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), ptr::null(), 4) };
}

#[test]
#[should_panic(expected = "mcsafe: null destination pointer with len 4")]
fn null_destination_with_len_panics() {
    let src = [0u8; 4];
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::copy_mc(ptr::null_mut(), src.as_ptr(), 4) };
}

#[test]
#[should_panic(expected = "wraps the address space")]
fn wrapping_source_range_panics() {
    let mut dst = [0u8; 4];
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), (usize::MAX - 1) as *const u8, 4) };
}

#[test]
#[should_panic(expected = "wraps the address space")]
fn len_near_usize_max_panics() {
    let src = [0u8; 4];
    let mut dst = [0u8; 4];
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), usize::MAX - 8) };
}

#[test]
#[should_panic(expected = "overlap")]
fn overlapping_ranges_panic() {
    let mut buf = [0u8; 64];
    let p = buf.as_mut_ptr();
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::copy_mc(p.wrapping_add(1), p, 32) };
}

#[test]
fn overlap_is_rejected_before_any_byte_moves() {
    let mut buf: Vec<u8> = (0..64).collect();
    let p = buf.as_mut_ptr();
    let caught = std::panic::catch_unwind(|| {
        // SAFETY: rejected before any access.
        let _ = unsafe { mcsafe::copy_mc(p, p.wrapping_add(16), 32) };
    });
    assert!(caught.is_err());
    assert_eq!(buf, (0..64).collect::<Vec<u8>>(), "nothing was written");
}

/// Every public entry point that takes two buffers, as one copy of `len` bytes
/// from `src` to `dst` that must succeed: the free functions (each `*_with`
/// under every available strategy) and `MappedRegion`'s reads and writes (the
/// region over one buffer, the slice the other). The entry points of one
/// buffer (`read_mc`, `write_mc`, `fill_mc`, `crc32c_mc`, `crc32c`) have
/// nothing to overlap.
type TwoBuffers = Box<dyn Fn(*mut u8, *const u8, usize)>;

fn two_buffer_entry_points() -> Vec<(String, TwoBuffers)> {
    use mcsafe::MappedRegion;
    use std::ops::ControlFlow;
    let mut all: Vec<(String, TwoBuffers)> = vec![
        (
            "copy_mc".into(),
            // SAFETY: the one caller, `adjacent_ranges_are_not_overlap`, passes
            // `d` and `s` as the two disjoint `n`-byte halves of one live Vec
            // (so for every closure here).
            Box::new(|d, s, n| unsafe { mcsafe::copy_mc(d, s, n) }.unwrap()),
        ),
        (
            "copy_mc_lossy".into(),
            Box::new(|d, s, n| {
                // SAFETY: as above.
                let copy = unsafe { mcsafe::copy_mc_lossy(d, s, n) };
                assert!(copy.is_complete() && copy.done() == n, "{copy}");
            }),
        ),
        (
            "copy_crc32c_mc".into(),
            Box::new(|d, s, n| {
                // SAFETY: as above.
                let crc = unsafe { mcsafe::copy_crc32c_mc(0, d, s, n) }.unwrap();
                // SAFETY: readable ordinary memory.
                let data = unsafe { std::slice::from_raw_parts(s, n) };
                assert_eq!(crc, crc32c_reference(data));
            }),
        ),
        (
            "MappedRegion::read_at".into(),
            Box::new(|d, s, n| {
                // SAFETY: ordinary memory that outlives the region.
                let region = unsafe { MappedRegion::from_raw_parts(s, n) };
                // SAFETY: `d..d+n` is ordinary memory the region does not cover.
                let buf = unsafe { std::slice::from_raw_parts_mut(d, n) };
                assert_eq!(region.read_at(0, buf).unwrap(), n);
            }),
        ),
        (
            "MappedRegion::read_exact_crc32c_at".into(),
            Box::new(|d, s, n| {
                // SAFETY: as for read_at.
                let region = unsafe { MappedRegion::from_raw_parts(s, n) };
                // SAFETY: as for read_at.
                let buf = unsafe { std::slice::from_raw_parts_mut(d, n) };
                region.read_exact_crc32c_at(0, 0, buf).unwrap();
            }),
        ),
        (
            "MappedRegion::read_lossy_at".into(),
            Box::new(|d, s, n| {
                // SAFETY: as for read_at.
                let region = unsafe { MappedRegion::from_raw_parts(s, n) };
                // SAFETY: as for read_at.
                let buf = unsafe { std::slice::from_raw_parts_mut(d, n) };
                let read = region.read_lossy_at(0, buf).unwrap();
                assert!(read.is_complete() && read.bytes_read() == n);
            }),
        ),
        (
            "MappedRegion::write_at".into(),
            Box::new(|d, s, n| {
                // SAFETY: ordinary writable memory that outlives the region.
                let region = unsafe { MappedRegion::from_raw_parts_mut(d, n) };
                // SAFETY: `s..s+n` is ordinary memory the region does not cover.
                let buf = unsafe { std::slice::from_raw_parts(s, n) };
                assert_eq!(region.write_at(0, buf).unwrap(), n);
            }),
        ),
        (
            "MappedRegion::write_lossy_at".into(),
            Box::new(|d, s, n| {
                // SAFETY: as for write_at.
                let region = unsafe { MappedRegion::from_raw_parts_mut(d, n) };
                // SAFETY: as for write_at.
                let buf = unsafe { std::slice::from_raw_parts(s, n) };
                assert!(region.write_lossy_at(0, buf).unwrap().is_empty());
            }),
        ),
    ];
    for strategy in Strategy::available() {
        all.push((
            format!("copy_mc_with({strategy})"),
            // SAFETY: as above.
            Box::new(move |d, s, n| unsafe { mcsafe::copy_mc_with(strategy, d, s, n) }.unwrap()),
        ));
        all.push((
            format!("copy_mc_lossy_with({strategy})"),
            Box::new(move |d, s, n| {
                // SAFETY: as above.
                let copy = unsafe {
                    mcsafe::copy_mc_lossy_with(strategy, d, s, n, |_| ControlFlow::Continue(()))
                };
                assert!(copy.is_complete() && copy.done() == n, "{copy}");
            }),
        ));
    }
    all
}

/// The CRC oracle of every checksum test (tests/common's, which shares no
/// code with the crate's) gives the known values.
#[test]
fn the_crc32c_oracle_gives_the_rfc_3720_values() {
    common::assert_crc32c_reference_is_right();
}

#[test]
fn adjacent_ranges_are_not_overlap() {
    // Both ways round in one buffer: the destination right before the source
    // (dst + len == src) and right after it (dst == src + len), through every
    // entry point that takes two buffers.
    let entries = two_buffer_entry_points();
    assert!(entries.len() >= 8 + 2 * Strategy::available().len());
    for (name, copy) in &entries {
        for len in [1, 7, 32, 300] {
            for dst_first in [true, false] {
                let mut buf: Vec<u8> = (0..2 * len).map(|i| byte_at(11, i)).collect();
                let want: Vec<u8> = buf.clone();
                let p = buf.as_mut_ptr();
                let (d, s) = if dst_first {
                    (p, p.wrapping_add(len).cast_const())
                } else {
                    (p.wrapping_add(len), p.cast_const())
                };
                copy(d, s, len);
                let (src_half, dst_half) = if dst_first {
                    (&want[len..], &buf[..len])
                } else {
                    (&want[..len], &buf[len..])
                };
                assert_eq!(
                    dst_half, src_half,
                    "{name}, len {len}, dst first: {dst_first}"
                );
                // The source half is as it was.
                let untouched = if dst_first { &buf[len..] } else { &buf[..len] };
                assert_eq!(untouched, src_half, "{name}, len {len}: source written");
            }
        }
    }
}

/// A copy between adjacent buffers of one mapping (the destination right after
/// the source) that loses a page: cut at that page, on its side.
#[test]
fn adjacent_ranges_that_lose_a_page_are_cut_exactly_on_the_right_side() {
    // Pages 0-1: the source; 2-3: the destination (dst == src + len).
    for (lost, side, copied) in [
        (1, Side::Source, PAGE),
        (2, Side::Destination, 0),
        (3, Side::Destination, PAGE),
    ] {
        let map = match UffdPoisoned::new(4, &[lost], 6) {
            Ok(map) => map,
            Err(e) => {
                require(false, "adjacent buffers losing a page", &e.to_string());
                return;
            }
        };
        let src = map.base();
        let _serial = signal_lock();
        for strategy in Strategy::available() {
            // SAFETY: one mapping of 4 pages, page `lost` poisoned.
            let f = unsafe { mcsafe::copy_mc_with(strategy, src.add(2 * PAGE), src, 2 * PAGE) }
                .unwrap_err();
            let what = format!("{strategy}, page {lost} lost");
            assert_eq!((f.side(), f.copied()), (side, copied), "{what}");
            assert_eq!(f.addr() & !(PAGE - 1), src as usize + lost * PAGE, "{what}");
        }
    }
}

#[test]
fn strategies_have_names_and_fragile_is_always_available() {
    let available = Strategy::available();
    // The first of the target's strategies runs on every CPU of it: Fragile on
    // x86-64, AdvSimd (the only one) on aarch64.
    assert_eq!(available.first(), Some(&Strategy::ALL[0]));
    assert!(available.contains(&Strategy::current()));
    for s in Strategy::ALL {
        assert_eq!(Strategy::from_name(s.name()), Some(s));
        assert_eq!(Strategy::from_name(&s.name().to_uppercase()), Some(s));
        assert_eq!(s.to_string(), s.name());
    }
    assert_eq!(Strategy::from_name("memcpy"), None);
}

#[test]
fn strategy_env_forces_the_current_strategy() {
    // One child per available strategy, each forced by MCSAFE_STRATEGY (any case).
    for s in Strategy::available() {
        let upper = s.name().to_uppercase();
        let status = in_child_with_env(
            "strategy_env_forces_the_current_strategy",
            &[("MCSAFE_STRATEGY", &upper), ("MCSAFE_EXPECT", s.name())],
            || {
                let want = std::env::var("MCSAFE_EXPECT").unwrap();
                assert_eq!(Strategy::current().name(), want);
                let lost = LostTail::new(2, 1, 4);
                let mut dst = vec![0u8; 3 * PAGE];
                // SAFETY: the mapping is ours; its third page is lost.
                let f =
                    unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base().add(1), 3 * PAGE - 1) };
                assert_eq!(f.unwrap_err().copied(), 2 * PAGE - 1);
            },
        );
        assert!(status.success(), "child forced to {s}: {status:?}");
    }
}

/// A strategy this CPU cannot run, forced by `MCSAFE_STRATEGY`: a clear panic,
/// never the routine (SIGILL).
#[test]
fn strategy_env_with_a_strategy_this_cpu_cannot_run_fails_loudly() {
    const TEST: &str = "strategy_env_with_a_strategy_this_cpu_cannot_run_fails_loudly";
    let missing: Vec<Strategy> = Strategy::ALL
        .into_iter()
        .filter(|s| !Strategy::available().contains(s))
        .collect();
    if missing.is_empty() {
        eprintln!("NOT RUN: this CPU runs every strategy");
        return;
    }
    for s in missing {
        let status = in_child_with_env(TEST, &[("MCSAFE_STRATEGY", s.name())], || {
            let name = std::env::var("MCSAFE_STRATEGY").unwrap();
            let caught = std::panic::catch_unwind(Strategy::current);
            let message = caught.unwrap_err();
            let message = message.downcast_ref::<String>().unwrap();
            let want = format!("this CPU cannot run the {name} strategy");
            assert!(message.contains(&want), "{message}");
        });
        assert!(status.success(), "{s}: {status:?}");
    }
}

#[test]
fn strategy_env_with_an_unknown_name_fails_loudly() {
    let status = in_child_with_env(
        "strategy_env_with_an_unknown_name_fails_loudly",
        &[("MCSAFE_STRATEGY", "turbo")],
        || {
            let caught = std::panic::catch_unwind(Strategy::current);
            let message = caught.unwrap_err();
            let message = message.downcast_ref::<String>().unwrap();
            assert!(
                message.contains("MCSAFE_STRATEGY=turbo: no such strategy"),
                "{message}"
            );
            assert!(message.contains(Strategy::ALL[0].name()), "{message}");
        },
    );
    assert!(status.success(), "{status:?}");
}

fn a_fault() -> Fault {
    let lost = LostTail::new(1, 1, 9);
    let mut dst = vec![0u8; 2 * PAGE];
    // SAFETY: the mapping is ours; its second page is lost.
    unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base().add(100), PAGE) }.unwrap_err()
}

#[test]
fn fault_displays_side_kind_and_progress() {
    let f = a_fault();
    assert_eq!(
        (f.copied(), f.side(), f.kind()),
        (PAGE - 100, Side::Source, FaultKind::AddressError)
    );
    let text = f.to_string();
    assert!(
        text.starts_with("source fault: no memory at address (BUS_ADRERR)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} bytes copied", PAGE - 100)),
        "{text}"
    );
    assert!(text.contains("4096-byte unit lost"), "{text}");
}

#[test]
fn fault_converts_to_io_error_and_back() {
    let f = a_fault();
    let err = std::io::Error::from(f);
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
    assert_eq!(
        err.get_ref().and_then(|e| e.downcast_ref::<Fault>()),
        Some(&f)
    );
    assert_eq!(f.raw_os_error(), libc::EFAULT);
    let inner = err.into_inner().unwrap().downcast::<Fault>().unwrap();
    assert_eq!(*inner, f);
}

#[test]
fn install_is_idempotent() {
    assert_eq!(mcsafe::install(), Ok(()));
    assert_eq!(mcsafe::install(), Ok(()));
}

#[test]
fn install_reports_a_handler_that_replaced_ours() {
    let status = in_child("install_reports_a_handler_that_replaced_ours", || {
        mcsafe::install().unwrap();
        // SAFETY: replacing SIGBUS with SIG_DFL in this child only.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        let err = mcsafe::install().unwrap_err();
        assert_eq!(err, InstallError::Replaced(Replacement::Default));
        assert!(err.to_string().contains("replaced by SIG_DFL"), "{err}");
    });
    assert!(status.success(), "{status:?}");
}

// ---- more hostile input: every check, through both entry points ----

/// The panic message of a copy that must be refused before touching memory.
fn refusal(dst: usize, src: usize, len: usize) -> Vec<String> {
    let mut entry_points: Vec<Option<Strategy>> = vec![None];
    entry_points.extend(Strategy::available().into_iter().map(Some));
    entry_points
        .into_iter()
        .map(|strategy| {
            let caught = std::panic::catch_unwind(|| {
                // SAFETY: refused before any access (what this checks).
                let _ = unsafe {
                    match strategy {
                        None => mcsafe::copy_mc(dst as *mut u8, src as *const u8, len),
                        Some(s) => mcsafe::copy_mc_with(s, dst as *mut u8, src as *const u8, len),
                    }
                };
            });
            let payload = caught.expect_err("refused");
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap()
        })
        .collect()
}

fn assert_refused(dst: usize, src: usize, len: usize, expected: &str) {
    for message in refusal(dst, src, len) {
        assert!(
            message.contains(expected),
            "{message:?} should say {expected:?}"
        );
    }
}

#[test]
fn hostile_ranges_are_refused_by_every_entry_point() {
    let mut buf = vec![0u8; 256];
    let p = buf.as_mut_ptr() as usize;
    let top = usize::MAX - 15;
    assert_refused(0, 0, 1, "null source pointer with len 1");
    assert_refused(p, 0, 1, "null source pointer");
    assert_refused(0, p, 1, "null destination pointer");
    assert_refused(top, p, 32, "destination range");
    assert_refused(top, p, 32, "wraps the address space");
    assert_refused(p, top, 32, "source range");
    assert_refused(p, p + 128, usize::MAX, "wraps the address space");
    // Past isize::MAX bytes without wrapping (a small address): still refused.
    assert_refused(16, 4096, isize::MAX as usize + 1, "wraps the address space");
    // Both ranges outside user space at once, with the same high bits (a check
    // that combined them with `^` instead of `|` would let them through); a
    // source outside user space with a length above 2^62 likewise.
    let kernel = 0xc000_0000_0000_0000usize;
    assert_refused(kernel + 0x1000, kernel + 0x9000, 16, "source range");
    // (Also found overlapping, by the wrapping arithmetic: both reasons at once.)
    assert_refused(p, (1 << 62) + 0x1000, 1 << 62, "leaves user space");
    assert_refused((1 << 62) + 0x1000, p, 1 << 62, "leaves user space");
    // (A destination below the source, so that no overlap is found either.)
    assert_refused(0x1000, (1 << 62) + 0x10000, 1 << 62, "source range");
    assert_refused((1 << 62) + 0x10000, 0x1000, 1 << 62, "leaves user space");
    assert_refused(p, p, 16, "overlap");
    assert_refused(p + 15, p, 16, "overlap");
    assert_refused(p, p + 15, 16, "overlap");
    assert!(buf.iter().all(|&b| b == 0), "nothing was written");
}

#[test]
fn a_range_outside_user_space_is_refused_even_if_it_does_not_wrap() {
    // [usize::MAX - 16, usize::MAX) does not wrap, but no user address lies
    // above 2^57: the copy is refused with a clear message before any access,
    // rather than dying of SIGSEGV (which mcsafe does not catch) in kernel space.
    let mut dst = [0u8; 16];
    let d = dst.as_mut_ptr();
    let refused = std::panic::catch_unwind(|| {
        // SAFETY: refused before any access (what this checks).
        let _ = unsafe { mcsafe::copy_mc(d, (usize::MAX - 16) as *const u8, 16) };
    });
    let payload = refused.expect_err("refused");
    let message = payload.downcast_ref::<String>().expect("a message");
    assert!(message.contains("leaves user space"), "{message}");
    assert_eq!(dst, [0u8; 16]);
}

#[test]
fn install_reports_sigbus_blocked_in_its_thread_where_a_copy_fault_would_kill() {
    if qemu_user_cannot("SIGBUS blocked", qemu_user::FORCED_FAULT) {
        return;
    }
    let status = in_child(
        "install_reports_sigbus_blocked_in_its_thread_where_a_copy_fault_would_kill",
        || {
            // The "block every signal, sigwait in one thread" pattern.
            // SAFETY: changing this child thread's signal mask.
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
            }
            let err = mcsafe::install().unwrap_err();
            assert_eq!(err, InstallError::SigbusBlocked);
            assert!(err.to_string().contains("unblock SIGBUS"), "{err}");
            // What the error warns of: the kernel forces the blocked fault through
            // to the default action.
            let lost = LostTail::new(1, 1, 3);
            let mut dst = [0u8; 64];
            // SAFETY: the mapping's second page is lost: a SIGBUS, blocked here.
            let _ = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.boundary(), 64) };
            eprintln!("survived a copy fault with SIGBUS blocked");
        },
    );
    assert_eq!(killed_by(status), Some(libc::SIGBUS), "{status:?}");
}
