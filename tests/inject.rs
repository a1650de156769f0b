//! The poison test kit (`mcsafe::inject`): every method makes exactly the page
//! it was asked to go bad, with the fault kind `capabilities()` predicts, and
//! where a method is not allowed here its error says why. These are the tools
//! users test their own code with, so they are tested like the copies.

mod common;

use common::*;
use mcsafe::FaultKind;
use mcsafe::inject::{
    self, FullTmpfsFile, HwPoisonMapping, Method, TruncatedMapping, UffdPoisonMapping,
};

/// Copies `len` bytes from `src` with mcsafe; the fault if any.
fn read(src: *const u8, len: usize) -> Result<Vec<u8>, mcsafe::Fault> {
    let mut buf = vec![0u8; len];
    // SAFETY: `src..src+len` is mapped; lost pages raise SIGBUS, which mcsafe catches.
    unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), src, len) }.map(|()| buf)
}

#[test]
fn capabilities_on_this_machine_match_the_kernel() {
    if qemu_user_cannot(
        "capabilities_on_this_machine_match_the_kernel",
        qemu_user::HWPOISON,
    ) {
        return;
    }
    let caps = inject::capabilities();
    eprintln!("kernel {}:\n{caps}", caps.kernel());
    // Truncation needs nothing: it must work everywhere the crate runs.
    assert!(caps.allows(Method::Truncate), "{caps}");
    // Memory-failure support is the sysctl's presence; MADV_HWPOISON needs it.
    let sysctl = std::path::Path::new("/proc/sys/vm/memory_failure_recovery").exists();
    assert_eq!(caps.memory_failure(), sysctl);
    if !caps.memory_failure() {
        let why = caps.check(Method::MadvHwpoison).unwrap_err();
        assert_eq!(why.errno(), Some(libc::EINVAL), "{why}");
        assert!(why.hint().contains("CONFIG_MEMORY_FAILURE"), "{why}");
        assert_eq!(
            caps.expected_kind(Method::UffdPoison),
            FaultKind::AddressError
        );
        assert_eq!(caps.early_kill(), None);
    } else {
        assert_eq!(caps.expected_kind(Method::UffdPoison), FaultKind::Poison);
    }
    assert_eq!(caps.expected_kind(Method::MadvHwpoison), FaultKind::Poison);
    assert_eq!(
        caps.expected_kind(Method::FullTmpfs),
        FaultKind::AddressError
    );
    // The report names every method, with the reason where it is not allowed.
    let text = caps.to_string();
    for method in Method::ALL {
        assert!(text.contains(method.name()), "{text}");
    }
}

#[test]
fn truncation_loses_exactly_the_pages_past_the_new_end() {
    let _serial = signal_lock();
    let map = TruncatedMapping::new(4).unwrap();
    // SAFETY: nothing is lost yet.
    unsafe { fill(map.as_ptr(), 4 * PAGE, 3) };
    map.truncate_to(2 * PAGE + 10).unwrap();
    let f = read(map.as_ptr(), 4 * PAGE).unwrap_err();
    assert_eq!(f.copied(), 3 * PAGE, "the page holding the new end stays");
    assert_eq!(f.kind(), FaultKind::AddressError);
    let head = read(map.as_ptr(), 2 * PAGE).unwrap();
    assert!(head.iter().enumerate().all(|(i, &b)| b == byte_at(3, i)));
    // Growing the file brings the pages back, zero-filled.
    map.truncate_to(4 * PAGE).unwrap();
    let all = read(map.as_ptr(), 4 * PAGE).unwrap();
    assert!(all[3 * PAGE..].iter().all(|&b| b == 0));
}

fn uffd_mapping(pages: usize) -> Option<UffdPoisonMapping> {
    let caps = inject::capabilities();
    let why = caps
        .check(Method::UffdPoison)
        .err()
        .map(ToString::to_string);
    require(why.is_none(), "UFFDIO_POISON", why.as_deref().unwrap_or(""))
        .then(|| UffdPoisonMapping::new(pages).unwrap())
}

#[test]
fn uffd_poison_takes_one_page_and_unpoison_gives_it_back() {
    let Some(map) = uffd_mapping(3) else {
        return;
    };
    let _serial = signal_lock();
    let kind = inject::capabilities().expected_kind(Method::UffdPoison);
    // SAFETY: populated, nothing poisoned yet.
    unsafe { fill(map.as_ptr(), 3 * PAGE, 5) };
    map.poison(1).unwrap();
    let f = read(map.as_ptr(), 3 * PAGE).unwrap_err();
    assert_eq!((f.copied(), f.kind(), f.granule()), (PAGE, kind, PAGE));
    // The page after it keeps its data.
    let after = read(map.as_ptr().wrapping_add(2 * PAGE), PAGE).unwrap();
    assert!(
        after
            .iter()
            .enumerate()
            .all(|(i, &b)| b == byte_at(5, 2 * PAGE + i))
    );
    // Poisoning twice is refused and says why; the page stays poisoned.
    let twice = map.poison(1).unwrap_err();
    assert_eq!(twice.errno(), Some(libc::EEXIST), "{twice}");
    assert!(twice.hint().contains("already poisoned"), "{twice}");
    assert!(read(map.as_ptr().wrapping_add(PAGE), 1).is_err());
    // Unpoisoned, it reads as zeros.
    map.unpoison(1).unwrap();
    let page = read(map.as_ptr().wrapping_add(PAGE), PAGE).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    // Out-of-range pages are refused before any system call.
    let e = map.poison(3).unwrap_err();
    assert!(
        e.to_string().contains("outside the mapping of 3 pages"),
        "{e}"
    );
}

/// MADV_HWPOISON works only on a kernel with memory-failure support, as root
/// (the VM harness boots one). Here, where the kernel lacks it, the test
/// checks what a user sees instead: the error, in words.
#[test]
fn madv_hwpoison_poisons_a_file_page_or_says_why_not() {
    if qemu_user_cannot(
        "madv_hwpoison_poisons_a_file_page_or_says_why_not",
        qemu_user::HWPOISON,
    ) {
        return;
    }
    let caps = inject::capabilities();
    let map = HwPoisonMapping::new(3).unwrap();
    // SAFETY: nothing poisoned yet.
    unsafe { fill(map.as_ptr(), 3 * PAGE, 8) };
    match caps.check(Method::MadvHwpoison) {
        Err(why) => {
            let e = map.poison(1).unwrap_err();
            assert_eq!(
                e.errno(),
                why.errno(),
                "probe and poison disagree: {e} / {why}"
            );
            assert_eq!(e.hint(), why.hint());
            // Nothing was poisoned: the page still reads.
            let _serial = signal_lock();
            let page = read(map.as_ptr().wrapping_add(PAGE), PAGE).unwrap();
            assert_eq!(page[0], byte_at(8, PAGE));
            eprintln!("MADV_HWPOISON not allowed here, as reported: {e}");
        }
        Ok(()) => {
            let _serial = signal_lock();
            map.poison(1).unwrap();
            let f = read(map.as_ptr(), 3 * PAGE).unwrap_err();
            assert_eq!(
                (f.copied(), f.kind(), f.granule()),
                (PAGE, FaultKind::Poison, PAGE)
            );
            // The file itself is poisoned: another mapping of it faults too.
            let other = std::fs::read(map.path());
            assert_eq!(other.unwrap_err().raw_os_error(), Some(libc::EIO));
            let twice = map.poison(1).unwrap_err();
            assert_eq!(twice.errno(), Some(libc::EEXIST), "{twice}");
            match map.unpoison(1) {
                Ok(()) => {
                    let page = read(map.as_ptr().wrapping_add(PAGE), PAGE).unwrap();
                    assert!(page.iter().all(|&b| b == 0));
                }
                Err(e) => eprintln!("unpoison refused, as the kernel may: {e}"),
            }
        }
    }
}

#[test]
fn a_full_tmpfs_loses_the_holes_in_the_middle_of_a_real_file() {
    let caps = inject::capabilities();
    let why = caps.check(Method::FullTmpfs).err().map(ToString::to_string);
    if !require(why.is_none(), "full tmpfs", why.as_deref().unwrap_or("")) {
        return;
    }
    let _serial = signal_lock();
    let file = FullTmpfsFile::new(6, &[2, 3], |i, page| page.fill(i as u8 + 1)).unwrap();
    let opened = std::fs::File::open(file.path()).unwrap();
    let len = file.len();
    assert_eq!(len, 6 * PAGE);
    // SAFETY: a fresh read-only shared mapping of the file.
    let base = unsafe {
        use std::os::fd::AsRawFd;
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            opened.as_raw_fd(),
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    let base = base.cast::<u8>();
    let f = read(base, len).unwrap_err();
    assert_eq!((f.copied(), f.kind()), (2 * PAGE, FaultKind::AddressError));
    assert!(read(base.wrapping_add(3 * PAGE), PAGE).is_err());
    let tail = read(base.wrapping_add(4 * PAGE), 2 * PAGE).unwrap();
    assert!(tail[..PAGE].iter().all(|&b| b == 5) && tail[PAGE..].iter().all(|&b| b == 6));
    // read(2) of a hole is not a fault: zeros.
    let bytes = std::fs::read(file.path()).unwrap();
    assert!(bytes[2 * PAGE..4 * PAGE].iter().all(|&b| b == 0));
    // SAFETY: our own mapping.
    unsafe { libc::munmap(base.cast(), len) };
    let dir = file.path().parent().unwrap().to_path_buf();
    drop(opened);
    drop(file);
    assert!(!dir.exists(), "the private tmpfs is unmounted and removed");
}
