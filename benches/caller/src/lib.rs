//! The third call shape of the benchmark summary: `copy_mc` called from a
//! function of another crate that is not inlined into the caller's loop, as a
//! storage engine's `read_block` calls it; `memcpy` from the same kind of
//! function, for the side-by-side ratio. Each is a separate crate's code,
//! compiled on its own (its own codegen units, its own inlining decisions).

#![deny(unsafe_op_in_unsafe_fn)]

/// `mcsafe::copy_mc`, from a non-inlined function of this crate.
///
/// # Safety
/// As for `mcsafe::copy_mc`.
#[inline(never)]
pub unsafe fn copy_mc(dst: *mut u8, src: *const u8, len: usize) -> Result<(), mcsafe::Fault> {
    // SAFETY: the caller's contract.
    unsafe { mcsafe::copy_mc(dst, src, len) }
}

/// glibc's `memcpy`, from a non-inlined function of this crate.
///
/// # Safety
/// As for `memcpy`.
#[inline(never)]
pub unsafe fn memcpy(dst: *mut u8, src: *const u8, len: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { libc::memcpy(dst.cast(), src.cast(), len) }.cast()
}
