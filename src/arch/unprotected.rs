//! Targets without fault-safe copies (anything but x86-64 Linux, or a build with
//! `MCSAFE_UNPROTECTED=1`): the API is the same, copies are plain
//! `ptr::copy_nonoverlapping`, no strategy is available, and
//! [`install`](crate::install) says so with [`InstallError::Unsupported`].
//! A fault kills the process, exactly as it would with `memcpy`.

use super::Thresholds;
use crate::{InstallError, Strategy};

pub(crate) fn is_available(_: Strategy) -> bool {
    false
}

/// Never used for a copy: [`Strategy::current`] reports it, and the docs of
/// [`Strategy::available`] say that nothing is available here.
pub(crate) fn default_strategy() -> Strategy {
    Strategy::Fragile
}

pub(crate) fn dispatch_rule() -> String {
    "no fault-safe copies on this target: plain copies".into()
}

pub(crate) fn install() -> Result<(), InstallError> {
    Err(InstallError::Unsupported)
}

pub(crate) fn counts() -> (u64, u64) {
    (0, 0)
}

pub(crate) fn page_size() -> usize {
    4096
}

pub(crate) fn thresholds() -> Thresholds {
    Thresholds {
        avx2_rep_movsb: usize::MAX,
        avx512_rep_movsb: usize::MAX,
        non_temporal: usize::MAX,
    }
}

pub(crate) fn set_thresholds(_: Thresholds) {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Routine;

/// Never constructed: no routine stops on a fault here.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopped {
    pub(crate) progress: usize,
    pub(crate) code: i32,
    pub(crate) addr_lsb: u32,
    pub(crate) addr: usize,
}

/// A "routine" call that did not copy: here only refused ranges. The fields are
/// those of the protected target's `Exit`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    why: Why,
    pub(crate) routine: Routine,
    pub(crate) dst: *mut u8,
    pub(crate) src: *const u8,
    pub(crate) len: usize,
}

/// Why a register-mode call ended early: here only refused ranges (the shape of
/// the protected target's).
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)]
pub(crate) enum Why {
    Fault(Stopped),
    BadArguments,
}

impl Exit {
    pub(crate) fn why(&self) -> Why {
        self.why
    }
}

pub(crate) fn current_routine() -> Routine {
    Routine
}

/// Always ready: plain copies need nothing installed.
pub(crate) fn ready_routine() -> Option<Routine> {
    Some(Routine)
}

/// No strategy runs here.
#[track_caller]
pub(crate) fn routine_for(strategy: Strategy) -> Routine {
    panic!("mcsafe: the {strategy} strategy is not available: this target has no fault-safe copies")
}

/// A plain copy, after the same argument check as the routines' (and the same
/// panic for what it refuses).
///
/// # Safety
/// As for `ptr::copy_nonoverlapping`, unless refused.
pub(crate) unsafe fn copy_current(
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), crate::Fault> {
    if len > 0 && crate::copy::ranges_are_bad(dst, src, len) {
        crate::copy::reject(dst, src, len);
    }
    // SAFETY: checked; the caller's contract is copy_nonoverlapping's.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    Ok(())
}

/// No strategy runs here.
///
/// # Safety
/// None needed: it touches no memory.
pub(crate) unsafe fn copy_strategy(
    strategy: Strategy,
    _: *mut u8,
    _: *const u8,
    _: usize,
) -> Result<(), crate::Fault> {
    panic!("mcsafe: the {strategy} strategy is not available: this target has no fault-safe copies")
}

/// A plain copy after the routines' argument check: nothing here stops on a
/// fault (the lossy copy's loop, `internals::try_copy`).
///
/// # Safety
/// As for `ptr::copy_nonoverlapping`, unless refused.
pub(crate) unsafe fn call(
    _: Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Exit> {
    if len > 0 && crate::copy::ranges_are_bad(dst, src, len) {
        return Err(Exit {
            why: Why::BadArguments,
            routine: Routine,
            dst,
            src,
            len,
        });
    }
    // SAFETY: checked; the caller's contract is copy_nonoverlapping's.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    Ok(())
}

/// Never called: [`exact_routine`] is `None` here.
///
/// # Safety
/// None needed.
pub(crate) unsafe fn call_exact(
    _: Routine,
    _: *mut u8,
    _: *const u8,
    _: usize,
) -> Result<(), Exit> {
    unreachable!("mcsafe: no routine runs on this target")
}

/// Nothing to install here.
pub(crate) fn ensure_installed() {}

/// No one-load routine here: `read_mc`/`write_mc` take the plain copy path.
pub(crate) fn exact_routine(_: usize, _: Option<usize>) -> Option<Routine> {
    None
}

/// The checksum routines of x86-64 Linux; none runs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrcRoutine {
    Stream,
    Fold128,
    Fold256,
}

impl CrcRoutine {
    /// No copy-and-checksum routine either.
    pub(crate) fn copy_addr(self) -> Option<usize> {
        None
    }
}

/// Never called: no routine has a [`CrcRoutine::copy_addr`] here.
///
/// # Safety
/// None needed: it touches no memory.
pub(crate) unsafe fn call_copy_crc32c(
    _: usize,
    _: *mut u8,
    _: *const u8,
    _: usize,
    _: u32,
) -> (u32, Result<(), Stopped>) {
    unreachable!("mcsafe: no copy-and-checksum routine on this target")
}

/// No checksum routine here: the checksum is computed in software.
pub(crate) fn crc_routine() -> Option<CrcRoutine> {
    None
}

/// As [`crc_routine`]: nothing to install either.
pub(crate) fn protected_crc_routine() -> Option<CrcRoutine> {
    None
}

/// No entry: software.
pub(crate) fn crc_entry() -> Option<usize> {
    None
}

/// No entry: software.
pub(crate) fn protected_crc_entry() -> Option<usize> {
    None
}

impl CrcRoutine {
    /// Never called: no routine is chosen here.
    pub(crate) fn addr(self) -> usize {
        unreachable!("mcsafe: no crc32 routine on this target")
    }
}

/// As on x86-64 (never reached here).
pub(crate) const CRC_SHORT: usize = 257;

/// Never called: [`crc_entry`] is `None`.
///
/// # Safety
/// None needed: it touches no memory.
pub(crate) unsafe fn call_crc32c_short(
    _: usize,
    _: *const u8,
    _: usize,
    _: u32,
) -> (u32, Result<(), Stopped>) {
    unreachable!("mcsafe: no crc32 routine on this target")
}

/// Never called: [`crc_entry`] is `None`.
///
/// # Safety
/// None needed: it touches no memory.
pub(crate) unsafe fn call_crc32c_long(
    _: usize,
    _: *const u8,
    _: usize,
    _: u32,
) -> (u32, Result<(), Stopped>) {
    unreachable!("mcsafe: no crc32 routine on this target")
}

pub(crate) fn can_run_crc(_: CrcRoutine) -> bool {
    false
}

/// # Safety
/// As for `ptr::write_bytes`.
pub(crate) unsafe fn call_fill(dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped> {
    // SAFETY: the caller's contract is write_bytes'.
    unsafe { core::ptr::write_bytes(dst, byte, len) };
    Ok(())
}

/// Never called: [`crc_routine`] is `None`.
///
/// # Safety
/// None needed: it touches no memory.
pub(crate) unsafe fn call_crc32c(
    _: CrcRoutine,
    _: *const u8,
    _: usize,
    _: u32,
) -> (u32, Result<(), Stopped>) {
    unreachable!("mcsafe: no crc32 routine on this target")
}

#[cfg(test)]
mod tests {
    use crate::{InstallError, Strategy};

    #[test]
    fn says_it_is_unprotected_and_still_copies() {
        assert_eq!(crate::install(), Err(InstallError::Unsupported));
        assert!(Strategy::available().is_empty());
        assert!(
            InstallError::Unsupported
                .to_string()
                .contains("x86-64 Linux only")
        );
        let src: Vec<u8> = (0..=255).collect();
        let mut dst = vec![0u8; 256];
        // SAFETY: two distinct heap buffers.
        unsafe { crate::copy_mc(dst.as_mut_ptr(), src.as_ptr(), 256) }.unwrap();
        assert_eq!(src, dst);
    }

    #[test]
    #[should_panic(expected = "not available")]
    fn a_named_strategy_is_refused() {
        let (src, mut dst) = ([1u8; 4], [0u8; 4]);
        // SAFETY: refused before any access.
        let _ =
            unsafe { crate::copy_mc_with(Strategy::Fragile, dst.as_mut_ptr(), src.as_ptr(), 4) };
    }
}
