//! [`capabilities`]: which injection methods this kernel and process allow,
//! probed for real, and why not where not.

use core::fmt;
use std::fs;
use std::path::Path;

use super::hwpoison::probe_madv_hwpoison;
use super::tmpfs::probe_full_tmpfs;
use super::truncate::probe_truncate;
use super::uffd::probe_uffd_poison;
use super::{InjectError, Method};
use crate::FaultKind;

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

pub(super) const MEMORY_FAILURE_SYSCTL: &str = "/proc/sys/vm/memory_failure_recovery";
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
