//! [`Method::MadvHwpoison`]: the kernel's own memory-failure handling on a
//! memfd page (`madvise(MADV_HWPOISON)` from a child process).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::ptr;

use super::capabilities::MEMORY_FAILURE_SYSCTL;
use super::uffd::kernel_cannot_read;
use super::{InjectError, Mapping, Method, last_errno, memfd, page_size, set_len};

const HWPOISON_UNPOISON: &str = "/sys/kernel/debug/hwpoison/unpoison-pfn";

pub(super) fn explain_madv_hwpoison(errno: i32) -> String {
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

pub(super) fn explain_unpoison(errno: i32) -> String {
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
pub(super) fn probe_madv_hwpoison() -> Result<(), InjectError> {
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
