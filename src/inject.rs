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

use core::fmt;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr;

use crate::FaultKind;

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

/// What this kernel and process allow, probed for real by [`capabilities`].
#[derive(Clone, Debug)]
pub struct Capabilities {
    kernel: String,
    memory_failure: bool,
    early_kill: Option<bool>,
    results: [Result<(), InjectError>; 4],
}

impl Capabilities {
    /// `Ok` if `method` works here, else why not.
    pub fn check(&self, method: Method) -> Result<(), &InjectError> {
        self.results[Self::index(method)].as_ref().map(|_| ())
    }

    /// Whether `method` works here.
    pub fn allows(&self, method: Method) -> bool {
        self.check(method).is_ok()
    }

    /// The kernel release (`uname -r`).
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// Whether the kernel has memory-failure support (`CONFIG_MEMORY_FAILURE`,
    /// seen as `/proc/sys/vm/memory_failure_recovery`): without it a machine
    /// check in user mode kills the process whatever it does, `MADV_HWPOISON`
    /// is unknown, and `UFFDIO_POISON` reports `BUS_ADRERR`.
    pub fn memory_failure(&self) -> bool {
        self.memory_failure
    }

    /// `vm.memory_failure_early_kill`, where the kernel has it. When set, every
    /// process that maps a page the kernel finds poisoned gets a
    /// `BUS_MCEERR_AO` at once (not only the one that touches it), which kills a
    /// process that does not handle it: mcsafe passes `BUS_MCEERR_AO` on to the
    /// previous handler, as it must.
    pub fn early_kill(&self) -> Option<bool> {
        self.early_kill
    }

    /// The [`FaultKind`] a touch of a page made bad by `method` raises here.
    pub fn expected_kind(&self, method: Method) -> FaultKind {
        match method {
            Method::MadvHwpoison => FaultKind::Poison,
            Method::UffdPoison if self.memory_failure => FaultKind::Poison,
            _ => FaultKind::AddressError,
        }
    }

    fn index(method: Method) -> usize {
        match method {
            Method::Truncate => 0,
            Method::UffdPoison => 1,
            Method::MadvHwpoison => 2,
            Method::FullTmpfs => 3,
        }
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for method in Method::ALL {
            match self.check(method) {
                Ok(()) => writeln!(
                    f,
                    "{:<14} yes ({} on touch)",
                    method.name(),
                    match self.expected_kind(method) {
                        FaultKind::Poison => "BUS_MCEERR_AR",
                        _ => "BUS_ADRERR",
                    }
                )?,
                Err(why) => writeln!(f, "{:<14} no: {why}", method.name())?,
            }
        }
        Ok(())
    }
}

const MEMORY_FAILURE_SYSCTL: &str = "/proc/sys/vm/memory_failure_recovery";
const EARLY_KILL_SYSCTL: &str = "/proc/sys/vm/memory_failure_early_kill";

/// Probes which [`Method`]s this kernel and process allow, and why not where
/// not. Each probe really performs the method's first steps on scratch memory
/// of its own (a one-page memfd, a one-page `UFFDIO_POISON` marker, a
/// zero-length `MADV_HWPOISON`, a tmpfs mounted and unmounted at once) and
/// releases it: no page of the caller's is touched, no signal is raised, no
/// page is poisoned. It costs well under a millisecond but mounting.
///
/// ```
/// use mcsafe::inject::{self, Method};
///
/// let caps = inject::capabilities();
/// assert!(caps.allows(Method::Truncate)); // needs nothing
/// if let Err(why) = caps.check(Method::MadvHwpoison) {
///     // e.g. "madv-hwpoison: madvise(MADV_HWPOISON) failed with EINVAL (...):
///     // this kernel was built without CONFIG_MEMORY_FAILURE ..."
///     println!("{why}");
/// }
/// print!("{caps}"); // one line per method
/// ```
pub fn capabilities() -> Capabilities {
    let memory_failure = Path::new(MEMORY_FAILURE_SYSCTL).exists();
    let early_kill = fs::read_to_string(EARLY_KILL_SYSCTL)
        .ok()
        .map(|s| s.trim() != "0");
    Capabilities {
        kernel: kernel_release(),
        memory_failure,
        early_kill,
        results: [
            probe_truncate(),
            probe_uffd_poison(),
            probe_madv_hwpoison(),
            probe_full_tmpfs(),
        ],
    }
}

fn kernel_release() -> String {
    // SAFETY: uname fills the zeroed struct it is given.
    unsafe {
        let mut u: libc::utsname = core::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
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

// ---------------------------------------------------------------------------
// Truncate

/// [`Method::Truncate`]: a `MAP_SHARED` mapping of an in-memory file (memfd)
/// whose pages past the end of file, after [`truncate_to`](Self::truncate_to),
/// raise SIGBUS `BUS_ADRERR`. Unmapped and closed on drop.
#[derive(Debug)]
pub struct TruncatedMapping {
    map: Mapping,
    fd: OwnedFd,
}

impl TruncatedMapping {
    /// Maps `pages` pages of a new memfd of the same length, all readable and
    /// writable (zero-filled) until [`truncate_to`](Self::truncate_to).
    pub fn new(pages: usize) -> Result<TruncatedMapping, InjectError> {
        let m = Method::Truncate;
        let len = pages * page_size();
        let fd = memfd(m, c"mcsafe-inject-truncate")?;
        set_len(m, fd.as_fd(), len)?;
        let map = Mapping::new(m, len, libc::MAP_SHARED, Some(fd.as_fd()))?;
        Ok(TruncatedMapping { map, fd })
    }

    /// First byte of the mapping. Raw: pages past the end of file fault.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.base
    }

    /// Length of the mapping in bytes (it does not change on truncation).
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether the mapping is empty (zero pages).
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// The page size the mapping is made of.
    pub fn page_size(&self) -> usize {
        page_size()
    }

    /// Sets the file's length to `len` bytes. Every mapped page that starts at
    /// or after `len` rounded up to a page is lost (`BUS_ADRERR` on any access);
    /// the page holding byte `len - 1` stays, zero past `len`. Growing the file
    /// again brings pages back, zero-filled.
    pub fn truncate_to(&self, len: usize) -> Result<(), InjectError> {
        set_len(Method::Truncate, self.fd.as_fd(), len)
    }
}

impl AsFd for TruncatedMapping {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn probe_truncate() -> Result<(), InjectError> {
    let map = TruncatedMapping::new(2)?;
    map.truncate_to(page_size())
}

// ---------------------------------------------------------------------------
// UFFDIO_POISON

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

fn explain_userfaultfd(errno: i32) -> String {
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

fn explain_uffdio_api(errno: i32) -> String {
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
fn kernel_cannot_read(page: *const u8) -> bool {
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

fn probe_uffd_poison() -> Result<(), InjectError> {
    let map = UffdPoisonMapping::new(1)?;
    map.poison(0)
    // Dropping the map unmaps the poisoned scratch page.
}

// ---------------------------------------------------------------------------
// MADV_HWPOISON

const HWPOISON_UNPOISON: &str = "/sys/kernel/debug/hwpoison/unpoison-pfn";

fn explain_madv_hwpoison(errno: i32) -> String {
    match errno {
        libc::EINVAL => format!(
            "this kernel was built without CONFIG_MEMORY_FAILURE ({MEMORY_FAILURE_SYSCTL} is \
             missing), so MADV_HWPOISON is an unknown advice: boot a kernel with memory-failure \
             support (most distribution kernels, Debian's among them, have it; mcsafe's VM \
             harness boots one under QEMU)"
        ),
        libc::EPERM => "MADV_HWPOISON needs CAP_SYS_ADMIN in the initial user namespace: run as \
                        root, outside a container or user namespace that drops it"
            .into(),
        libc::EHWPOISON => "the page is poisoned already".into(),
        libc::EFAULT | libc::ENOMEM => "the page is not mapped, or could not be faulted in".into(),
        libc::EBUSY => "the kernel could not isolate the page (in use by the kernel, or being \
                        migrated); try another page"
            .into(),
        _ => "the kernel's memory-failure handling refused the page".into(),
    }
}

fn explain_unpoison(errno: i32) -> String {
    match errno {
        libc::ENOENT => format!(
            "{HWPOISON_UNPOISON} is missing: mount debugfs (mount -t debugfs none \
             /sys/kernel/debug) and load the hwpoison_inject module (CONFIG_HWPOISON_INJECT)"
        ),
        libc::EPERM | libc::EACCES => "unpoisoning needs root (CAP_SYS_ADMIN)".into(),
        libc::EOPNOTSUPP => "the kernel disables unpoisoning for good once a real hardware memory \
                             error has happened on this boot"
            .into(),
        libc::EBUSY => "the kernel still holds the page (mapped, in a file's page cache, or \
                        referenced), or it is not poisoned"
            .into(),
        libc::ENXIO => "no such physical page".into(),
        _ => "the kernel refused to unpoison the page".into(),
    }
}

/// [`Method::MadvHwpoison`]: a `MAP_SHARED` mapping of an in-memory file
/// (memfd) whose pages can be handed to the kernel's memory-failure handling
/// with `madvise(MADV_HWPOISON)`, exactly as after a machine check: any access
/// then raises `BUS_MCEERR_AR` (exact address, granule one page), through
/// this mapping or any other mapping of the file (`/proc/self/fd/N`), and
/// `read(2)` of the page fails with `EIO`.
///
/// Needs `CONFIG_MEMORY_FAILURE` and `CAP_SYS_ADMIN`. In current kernels (a
/// 2024 change passes `MF_ACTION_REQUIRED` from `madvise`) the kernel also
/// sends `BUS_MCEERR_AR` at once to the thread that calls `madvise` (the call
/// is treated as a consumed error); a process without a handler for it would
/// die there. So the call is made by a short-lived child process that
/// shares the file: the kernel unmaps the page from every mapping, poisons it,
/// and signals only the child. Unmapped and closed on drop; a page still
/// poisoned then stays out of use until reboot (or
/// [`unpoison`](Self::unpoison)).
///
/// ```
/// use mcsafe::inject::{self, HwPoisonMapping, Method};
///
/// let map = HwPoisonMapping::new(2).unwrap();
/// match map.poison(1) {
///     // Memory-failure kernel, as root: page 1 is gone for every mapping of the file.
///     Ok(()) => assert!(std::fs::read(map.path()).is_err()),
///     // Elsewhere the error says what is missing, as the probe does.
///     Err(e) => assert_eq!(
///         Some(e.errno()),
///         inject::capabilities().check(Method::MadvHwpoison).err().map(|w| w.errno())
///     ),
/// }
/// ```
#[derive(Debug)]
pub struct HwPoisonMapping {
    map: Mapping,
    fd: OwnedFd,
    /// (page index, physical page number) of the pages poisoned here.
    pfns: std::sync::Mutex<Vec<(usize, u64)>>,
}

impl HwPoisonMapping {
    /// Maps `pages` pages of a new memfd, readable and writable, zero-filled.
    pub fn new(pages: usize) -> Result<HwPoisonMapping, InjectError> {
        let m = Method::MadvHwpoison;
        let len = pages * page_size();
        let fd = memfd(m, c"mcsafe-inject-hwpoison")?;
        set_len(m, fd.as_fd(), len)?;
        let map = Mapping::new(m, len, libc::MAP_SHARED, Some(fd.as_fd()))?;
        Ok(HwPoisonMapping {
            map,
            fd,
            pfns: Default::default(),
        })
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

    /// A path other processes can open to map the same file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }

    /// Poisons page `index` with `madvise(MADV_HWPOISON)` from a child process.
    ///
    /// Errors, in words: `EINVAL` without `CONFIG_MEMORY_FAILURE`, `EPERM`
    /// without `CAP_SYS_ADMIN`, `EEXIST` for a page poisoned already, `EBUSY`
    /// if the kernel could not isolate it.
    pub fn poison(&self, index: usize) -> Result<(), InjectError> {
        let m = Method::MadvHwpoison;
        let page = self.map.page(m, index)?;
        if kernel_cannot_read(page) {
            return Err(InjectError::new(
                m,
                "madvise(MADV_HWPOISON)",
                Some(libc::EEXIST),
                "the page is poisoned already",
            ));
        }
        // Fault the page in (it is readable: checked above) and note which
        // physical page it is, for `unpoison`. Without CAP_SYS_ADMIN the number
        // is hidden, and madvise below fails with EPERM anyway.
        // SAFETY: a readable page of our own mapping.
        unsafe { ptr::read_volatile(page) };
        let pfn = pagemap_pfn(page as usize).ok();
        madv_hwpoison_in_child(page, page_size())?;
        let mut pfns = self.pfns.lock().unwrap_or_else(|e| e.into_inner());
        pfns.retain(|&(i, _)| i != index);
        pfns.extend(pfn.map(|pfn| (index, pfn)));
        Ok(())
    }

    /// Gives page `index` back after [`poison`](Self::poison): punches it out
    /// of the file (so the poisoned page leaves the page cache and every
    /// mapping), then asks the kernel to unpoison the physical page through
    /// debugfs (`hwpoison/unpoison-pfn`). The page then reads as zeros.
    /// Needs root, debugfs mounted and the `hwpoison_inject` module; the kernel
    /// refuses for good once a real hardware memory error has happened.
    pub fn unpoison(&self, index: usize) -> Result<(), InjectError> {
        let m = Method::MadvHwpoison;
        let page = page_size();
        self.map.page(m, index)?;
        let pfn = {
            let pfns = self.pfns.lock().unwrap_or_else(|e| e.into_inner());
            pfns.iter().find(|&&(i, _)| i == index).map(|&(_, pfn)| pfn)
        };
        let Some(pfn) = pfn else {
            return Err(InjectError::new(
                m,
                "unpoison",
                None,
                format!("page {index} was not poisoned by this mapping"),
            ));
        };
        // SAFETY: fallocate on our own memfd; the range is inside the file.
        let punched = unsafe {
            libc::fallocate(
                self.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (index * page) as libc::off_t,
                page as libc::off_t,
            )
        };
        if punched != 0 {
            return Err(InjectError::os(
                m,
                "fallocate(PUNCH_HOLE)",
                last_errno(),
                |_| "the kernel refused to drop the poisoned page from the file".into(),
            ));
        }
        fs::write(HWPOISON_UNPOISON, format!("{pfn:#x}\n")).map_err(|e| {
            InjectError::os(
                m,
                "write hwpoison/unpoison-pfn",
                e.raw_os_error().unwrap_or(libc::EIO),
                explain_unpoison,
            )
        })?;
        let mut pfns = self.pfns.lock().unwrap_or_else(|e| e.into_inner());
        pfns.retain(|&(i, _)| i != index);
        Ok(())
    }
}

impl AsFd for HwPoisonMapping {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn pagemap_pfn(addr: usize) -> Result<u64, i32> {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open("/proc/self/pagemap").map_err(|e| e.raw_os_error().unwrap_or(0))?;
    let mut entry = [0u8; 8];
    file.read_exact_at(&mut entry, (addr / page_size() * 8) as u64)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let entry = u64::from_le_bytes(entry);
    let present = entry >> 63 == 1;
    let pfn = entry & ((1 << 55) - 1);
    match (present, pfn) {
        (false, _) => Err(libc::EFAULT),
        (true, 0) => Err(libc::EPERM),
        (true, pfn) => Ok(pfn),
    }
}

/// Exit status of the poisoning child when the kernel signalled it.
const CHILD_SIGNALLED: i32 = 250;

extern "C" fn child_on_sigbus(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(CHILD_SIGNALLED) };
}

/// Runs `madvise(page, len, MADV_HWPOISON)` in a forked child, which shares
/// the page, and turns its outcome into ours.
fn madv_hwpoison_in_child(page: *mut u8, len: usize) -> Result<(), InjectError> {
    let m = Method::MadvHwpoison;
    // SAFETY: after fork the child calls only async-signal-safe functions
    // (sigaction, madvise, _exit) and touches no Rust state; it cannot
    // disturb the parent, which only waits for it.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(InjectError::os(m, "fork", last_errno(), |_| {
                "could not start the helper process that poisons the page".into()
            }));
        }
        if pid == 0 {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = child_on_sigbus as *const () as usize;
            libc::sigaction(libc::SIGBUS, &action, ptr::null_mut());
            let code = if libc::madvise(page.cast(), len, libc::MADV_HWPOISON) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code.clamp(0, CHILD_SIGNALLED - 1));
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if last_errno() != libc::EINTR {
                return Err(InjectError::os(m, "waitpid", last_errno(), |_| {
                    "lost track of the helper process".into()
                }));
            }
        }
        if libc::WIFSIGNALED(status) {
            return Err(InjectError::new(
                m,
                "madvise(MADV_HWPOISON)",
                None,
                format!(
                    "the helper process was killed by signal {}: the kernel could not unmap \
                     the page cleanly",
                    libc::WTERMSIG(status)
                ),
            ));
        }
        match libc::WEXITSTATUS(status) {
            0 | CHILD_SIGNALLED => Ok(()),
            errno => Err(InjectError::os(
                m,
                "madvise(MADV_HWPOISON)",
                errno,
                explain_madv_hwpoison,
            )),
        }
    }
}

/// Asks the kernel about `MADV_HWPOISON` without poisoning anything: a
/// zero-length advice is checked for validity (unknown without
/// `CONFIG_MEMORY_FAILURE`: `EINVAL`) and then does nothing. The privilege
/// (`CAP_SYS_ADMIN` in the initial user namespace) is checked from the
/// process's capability set and user namespace.
fn probe_madv_hwpoison() -> Result<(), InjectError> {
    let m = Method::MadvHwpoison;
    let map = Mapping::new(
        m,
        page_size(),
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        None,
    )?;
    // SAFETY: a zero-length advice on our own page changes nothing.
    if unsafe { libc::madvise(map.base.cast(), 0, libc::MADV_HWPOISON) } != 0 {
        return Err(InjectError::os(
            m,
            "madvise(MADV_HWPOISON)",
            last_errno(),
            explain_madv_hwpoison,
        ));
    }
    if !has_cap_sys_admin() {
        return Err(InjectError::os(
            m,
            "capability check",
            libc::EPERM,
            explain_madv_hwpoison,
        ));
    }
    Ok(())
}

/// Whether this process holds CAP_SYS_ADMIN where `capable()` looks: in its
/// effective set, and in the initial user namespace (an identity uid map).
fn has_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let initial_ns = uid_map
        .split_whitespace()
        .collect::<Vec<_>>()
        .eq(&["0", "0", "4294967295"]);
    effective & (1 << CAP_SYS_ADMIN) != 0 && initial_ns
}

// ---------------------------------------------------------------------------
// Full tmpfs

fn explain_mount(errno: i32) -> String {
    match errno {
        libc::EPERM => {
            "mounting a tmpfs needs CAP_SYS_ADMIN (root), or a user and mount namespace \
                        of one's own"
                .into()
        }
        libc::ENODEV => "this kernel has no tmpfs".into(),
        libc::ENOENT => "the mount point vanished".into(),
        _ => "the kernel refused to mount a tmpfs".into(),
    }
}

/// [`Method::FullTmpfs`]: a real file of `pages` pages on a private tmpfs
/// mounted just for it, with the chosen pages left as holes and the file
/// system then filled to the last block. Any access to a hole through a
/// mapping needs a new page the file system cannot give, and raises SIGBUS
/// `BUS_ADRERR`, as a page that failed to read in would; `read(2)` of a hole
/// still returns zeros. Other processes can open [`path`](Self::path). The file
/// system is unmounted (lazily) and its directory removed on drop.
///
/// Punching a hole in an ordinary file does not lose data this way: the hole
/// reads as zeros and is allocated on demand. Only the full file system makes
/// the page-in fail.
///
/// ```
/// use mcsafe::inject::{self, FullTmpfsFile, Method};
///
/// # if inject::capabilities().allows(Method::FullTmpfs) {
/// // 4 pages; page 1 is a hole that cannot be paged in.
/// let file = FullTmpfsFile::new(4, &[1], |_, page| page.fill(b'x')).unwrap();
/// assert_eq!(std::fs::read(file.path()).unwrap()[4096], 0); // read(2) sees zeros
/// // A mapping of file.path() raises BUS_ADRERR at offset 4096..8192.
/// # }
/// ```
#[derive(Debug)]
pub struct FullTmpfsFile {
    dir: PathBuf,
    path: PathBuf,
    len: usize,
}

impl FullTmpfsFile {
    /// Creates the file: `pages` pages, page `i` filled by `fill(i, page)`
    /// unless `i` is in `lost`, in which case it stays a hole that cannot be
    /// paged in.
    pub fn new(
        pages: usize,
        lost: &[usize],
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<FullTmpfsFile, InjectError> {
        use std::os::unix::fs::FileExt;
        let m = Method::FullTmpfs;
        let page = page_size();
        let data_pages = (0..pages).filter(|i| !lost.contains(i)).count();
        let dir = mount_private_tmpfs((data_pages + 1) * page)?;
        let this = FullTmpfsFile {
            path: dir.join("data"),
            dir,
            len: pages * page,
        };
        let io_error = |call, e: io::Error| {
            InjectError::os(m, call, e.raw_os_error().unwrap_or(libc::EIO), |_| {
                "could not write the file on the private tmpfs".into()
            })
        };
        let file = fs::File::create(&this.path).map_err(|e| io_error("create the file", e))?;
        file.set_len(this.len as u64)
            .map_err(|e| io_error("set the file length", e))?;
        let mut buf = vec![0u8; page];
        for i in (0..pages).filter(|i| !lost.contains(i)) {
            buf.fill(0);
            fill(i, &mut buf);
            file.write_all_at(&buf, (i * page) as u64)
                .map_err(|e| io_error("write a page", e))?;
        }
        // Take every block that is left.
        let filler = fs::File::create(this.dir.join("filler"))
            .map_err(|e| io_error("create the filler", e))?;
        buf.fill(0xff);
        let mut at = 0u64;
        loop {
            match filler.write_at(&buf, at) {
                Ok(n) if n > 0 => at += n as u64,
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(io_error("fill the file system", e)),
            }
        }
        Ok(this)
    }

    /// The file's path, while this value lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for FullTmpfsFile {
    fn drop(&mut self) {
        unmount(&self.dir);
    }
}

fn mount_private_tmpfs(size: usize) -> Result<PathBuf, InjectError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let m = Method::FullTmpfs;
    let dir = std::env::temp_dir().join(format!(
        "mcsafe-inject-tmpfs-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).map_err(|e| {
        InjectError::os(m, "mkdir", e.raw_os_error().unwrap_or(libc::EIO), |_| {
            "could not create the mount point in the temporary directory".into()
        })
    })?;
    let target = CString::new(dir.as_os_str().as_encoded_bytes()).expect("no NUL in temp dir");
    let options = CString::new(format!("size={size},mode=0700,huge=never")).expect("no NUL");
    // SAFETY: valid C strings; a tmpfs takes no source device.
    let mounted = unsafe {
        libc::mount(
            c"mcsafe-inject".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if mounted != 0 {
        let errno = last_errno();
        let _ = fs::remove_dir(&dir);
        return Err(InjectError::os(m, "mount(tmpfs)", errno, explain_mount));
    }
    Ok(dir)
}

fn unmount(dir: &Path) {
    if let Ok(target) = CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid C string naming our own mount point.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = fs::remove_dir(dir);
}

fn probe_full_tmpfs() -> Result<(), InjectError> {
    unmount(&mount_private_tmpfs(page_size())?);
    Ok(())
}

#[cfg(test)]
mod tests {
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
