//! A poison test kit (cargo feature `inject`, Linux): make pages go bad on
//! purpose, the ways the kernel allows, so that code built on mcsafe can be
//! tested against real SIGBUS.
//!
//! | [`Method`] | what goes bad | signal on touch | needs |
//! |---|---|---|---|
//! | [`Truncate`](Method::Truncate) | the tail of a shared memfd mapping, after `ftruncate` | `BUS_ADRERR` | nothing |
//! | [`UffdPoison`](Method::UffdPoison) | any page of a private anonymous mapping | `BUS_MCEERR_AR` with memory-failure support, else `BUS_ADRERR` | Linux 6.6+, userfaultfd |
//! | [`MadvHwpoison`](Method::MadvHwpoison) | any page of a shared memfd (a real, kernel-side poisoned page) | `BUS_MCEERR_AR` | `CONFIG_MEMORY_FAILURE`, `CAP_SYS_ADMIN` |
//! | [`FullTmpfs`](Method::FullTmpfs) | any page of a real file, in the middle: a hole of a file on a full tmpfs cannot be paged in | `BUS_ADRERR` | mounting a tmpfs (root) |
//!
//! [`capabilities`] probes which of them this kernel and process allow, and
//! says why not where not. Each method has an owned guard type that unmaps,
//! closes and unmounts what it made when dropped: [`TruncatedMapping`],
//! [`UffdPoisonMapping`], [`HwPoisonMapping`], [`FullTmpfsFile`]. Failures are
//! [`InjectError`]s that name the missing piece and how to get it.
//!
//! ```
//! use mcsafe::inject::TruncatedMapping;
//!
//! // 4 pages, then the file is cut after 3: the 4th page is lost.
//! let map = TruncatedMapping::new(4).unwrap();
//! let page = map.page_size();
//! // SAFETY: the mapping is ours and nothing is lost yet.
//! unsafe { map.as_ptr().write_bytes(7, 4 * page) };
//! map.truncate_to(3 * page).unwrap();
//!
//! let mut buf = vec![0u8; 4 * page];
//! // SAFETY: both buffers are mapped; the lost page raises SIGBUS, which mcsafe catches.
//! let fault = unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), map.as_ptr(), 4 * page) }.unwrap_err();
//! assert_eq!(fault.copied(), 3 * page);
//! assert_eq!(fault.kind(), mcsafe::FaultKind::AddressError);
//! ```
//!
//! Memory handed out by these guards may fault: reach it through raw pointers
//! and mcsafe only, never through a `&[u8]` (see the crate's safety rules).

// The kit's parts, one file each: the methods' shared pieces (this file:
// `Method`, `InjectError`, owned mappings and memfds), the probe
// (`capabilities.rs`), and one file per method (`truncate.rs`, `uffd.rs`,
// `hwpoison.rs`, `tmpfs.rs`). A new method gets a file, a `Method` variant, a
// probe in `capabilities.rs` and a case in `tests/inject.rs`; run
// `cargo test -p mcsafe-tests --test inject`, the doc tests (`cargo test -p mcsafe
// --features inject --doc`) and `cargo test -p mcsafe-cli` (`mcsafe probe`) after a
// change.

use core::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

mod capabilities;
mod hwpoison;
mod tmpfs;
mod truncate;
mod uffd;

pub use capabilities::{Capabilities, capabilities};
pub use hwpoison::HwPoisonMapping;
pub use tmpfs::FullTmpfsFile;
pub use truncate::TruncatedMapping;
pub use uffd::UffdPoisonMapping;

/// A way to make a page go bad.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `ftruncate` a shared memfd below its mapped length: the pages past the
    /// new end of file raise `BUS_ADRERR`. Works everywhere, no privileges.
    Truncate,
    /// `UFFDIO_POISON` (Linux 6.6+): a poison marker in a page table entry of a
    /// private anonymous mapping; no privileges. The kernel reports it as
    /// `BUS_MCEERR_AR` where it has memory-failure support, else `BUS_ADRERR`.
    UffdPoison,
    /// `madvise(MADV_HWPOISON)`: the kernel's own memory-failure handling runs on
    /// the page, as for a machine check (`BUS_MCEERR_AR`, granule = page). Needs
    /// `CONFIG_MEMORY_FAILURE` and `CAP_SYS_ADMIN`.
    MadvHwpoison,
    /// A sparse file on a private tmpfs that is then filled up: the holes cannot
    /// be paged in through a mapping (`BUS_ADRERR`), anywhere in the file, and
    /// other processes can open the file by path. (`read(2)` of a hole still
    /// returns zeros.) Needs the right to mount a tmpfs.
    FullTmpfs,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 4] = [
        Method::Truncate,
        Method::UffdPoison,
        Method::MadvHwpoison,
        Method::FullTmpfs,
    ];

    /// A short name: `truncate`, `uffd-poison`, `madv-hwpoison`, `full-tmpfs`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Truncate => "truncate",
            Method::UffdPoison => "uffd-poison",
            Method::MadvHwpoison => "madv-hwpoison",
            Method::FullTmpfs => "full-tmpfs",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a page could not be made bad (or good again): the method, the call that
/// failed, its `errno`, and what is missing and how to get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectError {
    method: Method,
    call: &'static str,
    errno: Option<i32>,
    hint: String,
}

impl InjectError {
    fn new(
        method: Method,
        call: &'static str,
        errno: Option<i32>,
        hint: impl Into<String>,
    ) -> Self {
        InjectError {
            method,
            call,
            errno,
            hint: hint.into(),
        }
    }

    /// The error of `call` from `errno`, explained by `explain(errno)`.
    fn os(method: Method, call: &'static str, errno: i32, explain: fn(i32) -> String) -> Self {
        InjectError::new(method, call, Some(errno), explain(errno))
    }

    /// The method that failed.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The system call or step that failed, e.g. `madvise(MADV_HWPOISON)`.
    pub fn call(&self) -> &'static str {
        self.call
    }

    /// Its `errno`, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// What is missing, in words, and how to get it.
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.method, self.call)?;
        if let Some(errno) = self.errno {
            write!(
                f,
                " failed with {} ({})",
                errno_name(errno),
                io::Error::from_raw_os_error(errno)
            )?;
        }
        write!(f, ": {}", self.hint)
    }
}

impl std::error::Error for InjectError {}

/// An [`io::Error`] whose kind follows the errno and which carries the
/// `InjectError` (and so its explanation) inside.
impl From<InjectError> for io::Error {
    fn from(e: InjectError) -> io::Error {
        let kind = e.errno.map_or(io::ErrorKind::Unsupported, |n| {
            io::Error::from_raw_os_error(n).kind()
        });
        io::Error::new(kind, e)
    }
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOMEM => "ENOMEM",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EHWPOISON => "EHWPOISON",
        _ => "errno",
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

// ---------------------------------------------------------------------------
// Mappings

/// An owned mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; the guard types hand
// out raw pointers only, and using them is the caller's (unsafe) business.
unsafe impl Send for Mapping {}
// SAFETY: as above; no method mutates through &self except by system calls the
// kernel serializes.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(
        method: Method,
        len: usize,
        flags: libc::c_int,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Mapping, InjectError> {
        let raw_fd = fd.map_or(-1, |fd| fd.as_raw_fd());
        // SAFETY: a fresh mapping at an address of the kernel's choosing.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(InjectError::os(method, "mmap", last_errno(), |e| {
                match e {
                    libc::ENOMEM => "not enough address space or memory for the mapping",
                    libc::EINVAL => "the length is zero or too large",
                    _ => "the kernel refused the mapping",
                }
                .into()
            }));
        }
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }

    fn page(&self, method: Method, index: usize) -> Result<*mut u8, InjectError> {
        let page = page_size();
        if index >= self.len / page {
            return Err(InjectError::new(
                method,
                "page index",
                None,
                format!(
                    "page {index} is outside the mapping of {} pages",
                    self.len / page
                ),
            ));
        }
        Ok(self.base.wrapping_add(index * page))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn memfd(method: Method, name: &std::ffi::CStr) -> Result<OwnedFd, InjectError> {
    // SAFETY: memfd_create with a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(InjectError::os(method, "memfd_create", last_errno(), |e| {
            match e {
                libc::ENOSYS => "this kernel has no memfd_create (Linux 3.17+)",
                libc::EPERM => "a seccomp or security policy forbids memfd_create",
                libc::EMFILE | libc::ENFILE => "too many open files",
                _ => "the kernel refused to create an in-memory file",
            }
            .into()
        }));
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_len(method: Method, fd: BorrowedFd<'_>, len: usize) -> Result<(), InjectError> {
    // SAFETY: ftruncate on a descriptor we hold.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(InjectError::os(method, "ftruncate", last_errno(), |e| {
            match e {
                libc::EPERM => "the file is sealed against resizing (F_SEAL_SHRINK/GROW)",
                libc::EFBIG | libc::EINVAL => "the length is too large for the file",
                _ => "the kernel refused to resize the file",
            }
            .into()
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hwpoison::{explain_madv_hwpoison, explain_unpoison};
    use super::uffd::{explain_uffdio_api, explain_userfaultfd};
    use super::*;

    #[test]
    fn errors_name_the_call_the_errno_and_the_remedy() {
        let e = InjectError::os(
            Method::MadvHwpoison,
            "madvise(MADV_HWPOISON)",
            libc::EINVAL,
            explain_madv_hwpoison,
        );
        let text = e.to_string();
        assert!(text.starts_with("madv-hwpoison: madvise(MADV_HWPOISON) failed with EINVAL"));
        assert!(text.contains("CONFIG_MEMORY_FAILURE"), "{text}");
        let e = InjectError::os(
            Method::MadvHwpoison,
            "x",
            libc::EPERM,
            explain_madv_hwpoison,
        );
        assert!(e.hint().contains("CAP_SYS_ADMIN"));
        let e = InjectError::os(Method::UffdPoison, "x", libc::EINVAL, explain_uffdio_api);
        assert!(e.hint().contains("6.6"));
        let e = InjectError::os(Method::UffdPoison, "x", libc::ENOSYS, explain_userfaultfd);
        assert!(e.hint().contains("CONFIG_USERFAULTFD"));
        let e = InjectError::os(
            Method::MadvHwpoison,
            "x",
            libc::EOPNOTSUPP,
            explain_unpoison,
        );
        assert!(e.hint().contains("real hardware memory error"));
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::Unsupported);
    }
}
