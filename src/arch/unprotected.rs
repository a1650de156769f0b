//! Targets without fault-safe copies (anything but x86-64 Linux, or a build with
//! `MCSAFE_UNPROTECTED=1`): the API is the same, copies are plain
//! `ptr::copy_nonoverlapping`, no strategy is available, and
//! [`install`](crate::install) says so with [`InstallError::Unsupported`].
//! A fault kills the process, exactly as it would with `memcpy`.

use core::ffi::{c_int, c_void};

use super::{FaultSink, Stopped, Target, Thresholds};
use crate::{Fault, InstallError, Strategy};

/// A target without fault-safe copies.
pub(crate) struct Unprotected;

/// The only "routine": a plain copy. Never constructed for a checksum (there is
/// none here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plain;

#[track_caller]
fn no_strategy(strategy: Strategy) -> ! {
    panic!("mcsafe: the {strategy} strategy is not available: this target has no fault-safe copies")
}

/// libmcsafe's copy here: the same refusals, then a plain copy.
///
/// # Safety
/// As for `ptr::copy_nonoverlapping`, unless refused.
unsafe extern "C" fn plain_c_copy(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    _: *mut c_void,
) -> c_int {
    if len > 0 && crate::copy::ranges_are_bad(dst, src, len) {
        return -libc::EINVAL;
    }
    // SAFETY: checked; the caller's contract is copy_nonoverlapping's.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    0
}

impl Target for Unprotected {
    type Copy = Plain;
    type Crc = Plain;
    type CopyCrc = Plain;

    /// As on x86-64 (never reached here).
    const CRC_SHORT: usize = 257;
    const CHECKS_COPIES: bool = false;

    fn install() -> Result<(), InstallError> {
        Err(InstallError::Unsupported)
    }

    /// Nothing to install here.
    fn ensure_installed() {}

    fn counts() -> (u64, u64) {
        (0, 0)
    }

    fn page_size() -> usize {
        4096
    }

    fn can_run(_: Strategy) -> bool {
        false
    }

    /// Never used for a copy: [`Strategy::current`] reports it, and the docs of
    /// [`Strategy::available`] say that nothing is available here.
    fn default_strategy() -> Strategy {
        Strategy::Fragile
    }

    fn dispatch_rule() -> String {
        "no fault-safe copies on this target: plain copies".into()
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            avx2_rep_movsb: usize::MAX,
            avx512_rep_movsb: usize::MAX,
            rep_movsb_stop: usize::MAX,
            non_temporal: usize::MAX,
        }
    }

    fn checksum() -> crate::Checksum {
        crate::Checksum::Software
    }

    /// A plain copy, after the same argument check as the routines' (and the
    /// same panic for what it refuses).
    #[track_caller]
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
        crate::copy::check_copy(dst, src, len);
        // SAFETY: checked; the caller's contract is copy_nonoverlapping's.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        Ok(())
    }

    #[track_caller]
    unsafe fn copy_with(
        strategy: Strategy,
        _: *mut u8,
        _: *const u8,
        _: usize,
    ) -> Result<(), Fault> {
        no_strategy(strategy)
    }

    #[track_caller]
    fn copy_routine(strategy: Option<Strategy>) -> Plain {
        match strategy {
            Some(strategy) => no_strategy(strategy),
            None => Plain,
        }
    }

    /// No one-load routine here: `read_mc`/`write_mc` take the plain copy path.
    fn exact_routine(_: usize, _: Option<usize>) -> Option<Plain> {
        None
    }

    /// A plain copy: nothing here stops on a fault (the lossy copy's loop).
    unsafe fn run_copy(_: Plain, dst: *mut u8, src: *const u8, len: usize) -> Result<(), Stopped> {
        // SAFETY: the caller checked the ranges; copy_nonoverlapping's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        Ok(())
    }

    unsafe fn run_fill(dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped> {
        // SAFETY: the caller's contract is write_bytes'.
        unsafe { core::ptr::write_bytes(dst, byte, len) };
        Ok(())
    }

    /// No checksum routine here: the checksum is computed in software.
    fn crc() -> Option<Plain> {
        None
    }

    fn protected_crc() -> Option<Plain> {
        None
    }

    fn stream_crc() -> Option<Plain> {
        None
    }

    unsafe fn run_crc(_: Plain, _: *const u8, _: usize, _: u32) -> (u32, Result<(), Stopped>) {
        unreachable!("mcsafe: no crc32 routine on this target")
    }

    unsafe fn run_crc_short(
        _: Plain,
        _: *const u8,
        _: usize,
        _: u32,
    ) -> (u32, Result<(), Stopped>) {
        unreachable!("mcsafe: no crc32 routine on this target")
    }

    fn copy_crc_of(_: Plain) -> Option<Plain> {
        None
    }

    unsafe fn run_copy_crc(
        _: Plain,
        _: *mut u8,
        _: *const u8,
        _: usize,
        _: u32,
    ) -> (u32, Result<(), Stopped>) {
        unreachable!("mcsafe: no copy-and-checksum routine on this target")
    }

    fn c_copy_entry(_: FaultSink) -> usize {
        plain_c_copy as *const () as usize
    }
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
