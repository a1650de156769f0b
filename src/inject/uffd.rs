//! [`Method::UffdPoison`]: `UFFDIO_POISON` markers in a private anonymous
//! mapping (Linux 6.6+, no privileges).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[cfg(doc)]
use super::Capabilities;
use super::{InjectError, Mapping, Method, last_errno, page_size};

const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_POISON: u64 = 1 << 14;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_POISON: libc::c_ulong = 0xc020_aa08;

/// [`Method::UffdPoison`]: a private anonymous mapping whose pages can be
/// poisoned with `UFFDIO_POISON` (Linux 6.6+, no privileges) and unpoisoned.
///
/// Each [`poison`](Self::poison) opens a userfaultfd, registers only that page,
/// discards its contents, installs the poison marker and closes the
/// descriptor: the marker stays in the page table, and no range is left
/// registered (so no touch of the mapping can ever wait on a userfaultfd).
/// Unmapped on drop.
///
/// ```
/// use mcsafe::inject::{self, Method, UffdPoisonMapping};
///
/// # if inject::capabilities().allows(Method::UffdPoison) {
/// let map = UffdPoisonMapping::new(3).unwrap();
/// let page = 4096; // the page size of x86-64 Linux
/// map.poison(1).unwrap();
/// let mut buf = vec![0u8; 3 * page];
/// // SAFETY: the mapping is ours; page 1 raises SIGBUS, which mcsafe catches.
/// let fault = unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), map.as_ptr(), 3 * page) }.unwrap_err();
/// assert_eq!(fault.copied(), page);
/// assert_eq!(fault.kind(), inject::capabilities().expected_kind(Method::UffdPoison));
/// map.unpoison(1).unwrap(); // page 1 reads as zeros again
/// # }
/// ```
#[derive(Debug)]
pub struct UffdPoisonMapping {
    map: Mapping,
}

impl UffdPoisonMapping {
    /// Maps `pages` pages of private anonymous memory, readable and writable,
    /// and populates them (zero-filled).
    pub fn new(pages: usize) -> Result<UffdPoisonMapping, InjectError> {
        let len = pages * page_size();
        let map = Mapping::new(
            Method::UffdPoison,
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            None,
        )?;
        Ok(UffdPoisonMapping { map })
    }

    /// First byte of the mapping. Raw: poisoned pages fault.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.base
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether the mapping is empty (zero pages).
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// Poisons page `index`: its contents are discarded and any access raises
    /// SIGBUS (`BUS_MCEERR_AR` where the kernel has memory-failure support,
    /// `BUS_ADRERR` where not; see [`Capabilities::expected_kind`]).
    ///
    /// Errors: `EEXIST` if the page is already poisoned; `EINVAL` from
    /// `UFFDIO_API` on kernels before 6.6; `ENOSYS`/`EPERM` where userfaultfd
    /// is missing or forbidden. Each error says so in words.
    pub fn poison(&self, index: usize) -> Result<(), InjectError> {
        let page = self.map.page(Method::UffdPoison, index)?;
        uffd_poison(page, page_size())
    }

    /// Makes page `index` usable again: drops the poison marker (and nothing
    /// else) with `MADV_DONTNEED`; the page then reads as zeros.
    pub fn unpoison(&self, index: usize) -> Result<(), InjectError> {
        let page = self.map.page(Method::UffdPoison, index)?;
        // SAFETY: a page of our own mapping; no Rust reference points into it.
        if unsafe { libc::madvise(page.cast(), page_size(), libc::MADV_DONTNEED) } != 0 {
            return Err(InjectError::os(
                Method::UffdPoison,
                "madvise(MADV_DONTNEED)",
                last_errno(),
                |_| "the kernel refused to discard the page".into(),
            ));
        }
        Ok(())
    }
}

pub(super) fn explain_userfaultfd(errno: i32) -> String {
    match errno {
        libc::ENOSYS => "this kernel has no userfaultfd (CONFIG_USERFAULTFD), or a seccomp filter \
                         (a container runtime's, say) blocks the system call"
            .into(),
        libc::EPERM => "userfaultfd is forbidden to this process: a seccomp or LSM policy denies \
                        it (user-mode-only descriptors need no privilege on Linux 5.11+)"
            .into(),
        libc::EINVAL => "this kernel does not know UFFD_USER_MODE_ONLY (Linux 5.11+ needed; \
                         UFFDIO_POISON needs 6.6+)"
            .into(),
        libc::EMFILE | libc::ENFILE => "too many open files".into(),
        _ => "userfaultfd failed".into(),
    }
}

pub(super) fn explain_uffdio_api(errno: i32) -> String {
    match errno {
        libc::EINVAL => "this kernel's userfaultfd has no UFFD_FEATURE_POISON: UFFDIO_POISON \
                         needs Linux 6.6 or later"
            .into(),
        libc::EPERM => {
            "a requested userfaultfd feature needs a privilege this process lacks".into()
        }
        _ => "the userfaultfd handshake failed".into(),
    }
}

fn explain_uffdio_poison(errno: i32) -> String {
    match errno {
        libc::EEXIST => "the page is already poisoned, or populated (a marker goes only where \
                         the page table entry is empty)"
            .into(),
        libc::EINVAL => "the range is not page-aligned or not registered".into(),
        libc::ENOENT | libc::EAGAIN => "the address space changed during the call; retry".into(),
        _ => "the kernel refused to install the poison marker".into(),
    }
}

/// Poisons `len` bytes (whole pages) at `page`, which lie in a private
/// anonymous mapping of ours.
fn uffd_poison(page: *mut u8, len: usize) -> Result<(), InjectError> {
    let m = Method::UffdPoison;
    // SAFETY: system calls on a descriptor we own and on pages of our mapping,
    // reached through raw pointers only.
    unsafe {
        let fd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY);
        if fd < 0 {
            return Err(InjectError::os(
                m,
                "userfaultfd",
                last_errno(),
                explain_userfaultfd,
            ));
        }
        let uffd = OwnedFd::from_raw_fd(fd as i32);
        let mut api = [UFFD_API, UFFD_FEATURE_POISON, 0];
        if libc::ioctl(uffd.as_raw_fd(), UFFDIO_API, api.as_mut_ptr()) != 0 {
            return Err(InjectError::os(
                m,
                "ioctl(UFFDIO_API)",
                last_errno(),
                explain_uffdio_api,
            ));
        }
        let mut register = [page as u64, len as u64, UFFDIO_REGISTER_MODE_MISSING, 0];
        if libc::ioctl(uffd.as_raw_fd(), UFFDIO_REGISTER, register.as_mut_ptr()) != 0 {
            return Err(InjectError::os(
                m,
                "ioctl(UFFDIO_REGISTER)",
                last_errno(),
                |e| match e {
                    libc::EINVAL => "the range cannot be registered (not anonymous, shmem or \
                                     hugetlb memory, or not page-aligned)"
                        .into(),
                    libc::EPERM => "registering needs a privilege this process lacks".into(),
                    _ => "the kernel refused to register the range".into(),
                },
            ));
        }
        // A poison marker goes only on an empty page table entry. If the page
        // is poisoned already, DONTNEED would drop the marker: ask first.
        if kernel_cannot_read(page) {
            return Err(InjectError::os(
                m,
                "ioctl(UFFDIO_POISON)",
                libc::EEXIST,
                explain_uffdio_poison,
            ));
        }
        if libc::madvise(page.cast(), len, libc::MADV_DONTNEED) != 0 {
            return Err(InjectError::os(
                m,
                "madvise(MADV_DONTNEED)",
                last_errno(),
                |_| "the kernel refused to empty the page before poisoning it".into(),
            ));
        }
        let mut poison = [page as u64, len as u64, 0, 0];
        if libc::ioctl(uffd.as_raw_fd(), UFFDIO_POISON, poison.as_mut_ptr()) != 0 {
            return Err(InjectError::os(
                m,
                "ioctl(UFFDIO_POISON)",
                last_errno(),
                explain_uffdio_poison,
            ));
        }
        // Closing the descriptor unregisters the range; the marker stays.
        drop(uffd);
    }
    Ok(())
}

/// Whether the page at `page` is poisoned (or otherwise unreadable), asked
/// without touching it: a `write(2)` from it into a pipe fails with `EFAULT`
/// where a user access would raise SIGBUS. A readable page never fails so.
pub(super) fn kernel_cannot_read(page: *const u8) -> bool {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills `fds`; write reads one byte from `page` in the kernel,
    // which reports a fault as EFAULT instead of a signal; both ends are closed.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return false;
        }
        let n = libc::write(fds[1], page.cast(), 1);
        let errno = last_errno();
        libc::close(fds[0]);
        libc::close(fds[1]);
        n < 0 && errno == libc::EFAULT
    }
}

pub(super) fn probe_uffd_poison() -> Result<(), InjectError> {
    let map = UffdPoisonMapping::new(1)?;
    map.poison(0)
    // Dropping the map unmaps the poisoned scratch page.
}
