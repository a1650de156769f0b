//! Single loads and stores that survive SIGBUS ([`read_mc`], [`write_mc`]), and
//! a fill ([`fill_mc`]): what a storage engine does to a header word or a page it
//! zeroes, without a copy through a buffer.
//!
//! Change it, then run `cargo test -p mcsafe-tests --test storage_api --test
//! storage_sweep --test storage_uffd --test every_instruction`.

use core::mem::{MaybeUninit, size_of};

use crate::Fault;
#[cfg(doc)]
use crate::Side;
use crate::arch::{Arch, Target};
use crate::copy::check_range;
use crate::forward::{self, describe};

/// Reads a `T` from memory that may fault, with one load instruction for 1, 2,
/// 4 and 8-byte types.
///
/// Returns the value, or `Err(fault)` when the bytes of `*src` lie (partly) in a
/// lost granule: then no value is returned, and [`Fault::copied`] is the number
/// of bytes of `*src` before the lost granule (0 unless `*src` straddles it),
/// [`Fault::side`] is [`Side::Source`]. The lost granule is read once, by the one
/// load, and never again.
///
/// Types of other sizes are read through the copy path into a
/// `MaybeUninit<T>`, as [`copy_mc`](crate::copy_mc) would. So is a 1, 2, 4 or
/// 8-byte load that crosses a 64-byte cache line when [`Strategy::current`] is
/// `Fragile` (those CPUs cannot recover from poison consumed by such a load).
/// A zero-sized `T` reads nothing.
///
/// Installs the SIGBUS handler on first use, as `copy_mc` does.
///
/// [`Strategy::current`]: crate::Strategy::current
///
/// # Safety
///
/// - `src..src + size_of::<T>()` must be mapped and readable, except where it may
///   raise SIGBUS (see [`copy_mc`](crate::copy_mc)); `src` need not be aligned.
/// - The bytes there must be a valid `T` (as for
///   [`ptr::read_unaligned`](core::ptr::read_unaligned)): for integers any bytes
///   are, for `bool`, `char` or enums they may not be.
///
/// # Panics
///
/// On first use (of any mcsafe entry point), as for [`copy_mc`](crate::copy_mc): if the
/// SIGBUS handler cannot be installed or `MCSAFE_STRATEGY` is invalid. Before touching memory, if `T` is not zero-sized and `src` is null or its
/// range wraps the address space, with the same messages as `copy_mc`.
///
/// # Example
///
/// ```
/// let header: [u64; 2] = [0x4d43_5341_4645_0001, 42];
/// // SAFETY: `header` is ordinary memory; the pointers are into it.
/// let magic = unsafe { mcsafe::read_mc(header.as_ptr()) }.unwrap();
/// let count = unsafe { mcsafe::read_mc(header.as_ptr().wrapping_add(1)) }.unwrap();
/// assert_eq!((magic, count), (0x4d43_5341_4645_0001, 42));
/// ```
#[track_caller]
pub unsafe fn read_mc<T: Copy>(src: *const T) -> Result<T, Fault> {
    let size = size_of::<T>();
    if size == 0 {
        // SAFETY: a zero-sized T has no bytes: its one value needs no memory.
        return Ok(unsafe { core::mem::zeroed() });
    }
    check_range("source", src as usize, size);
    let mut value = MaybeUninit::<T>::uninit();
    let (dst, src) = (value.as_mut_ptr().cast::<u8>(), src.cast::<u8>());
    let result = match Arch::exact_routine(size, Some(src as usize)) {
        // One call, no forward step: the value is dropped on a fault anyway.
        // SAFETY: `dst` is our own MaybeUninit; the caller vouches for `src`; the
        // routine is installed with the handler (exact_routine installs).
        Some(exact) => unsafe { Arch::run_copy(exact, dst, src, size) }
            .map_err(|stopped| describe(stopped, dst, src, size, None)),
        // SAFETY: as above; a stack temporary cannot overlap memory the caller
        // vouches for.
        None => unsafe { crate::copy_mc(dst, src, size) },
    };
    // SAFETY: on success all `size` bytes were copied from a valid T.
    result.map(|()| unsafe { value.assume_init() })
}

/// Writes a `T` to memory that may fault, with one store instruction for 1, 2,
/// 4 and 8-byte types.
///
/// Returns `Ok(())` when all of the value is stored. On `Err(fault)`, as for a
/// copy: the first [`Fault::copied`] bytes of `*dst` hold the first bytes of
/// `value`, exactly up to the lost granule, and [`Fault::side`] is
/// [`Side::Destination`]. The lost granule is not touched again: a store that
/// straddles it stores nothing, then the bytes before it are stored alone.
///
/// Types of other sizes are written through the copy path from a copy of
/// `value` on the stack. A zero-sized `T` writes nothing.
///
/// # Safety
///
/// - `dst..dst + size_of::<T>()` must be mapped and writable, except where it
///   may raise SIGBUS (see [`copy_mc`](crate::copy_mc)); `dst` need not be
///   aligned.
/// - Nothing else may access those bytes during the call.
///
/// # Panics
///
/// On first use (of any mcsafe entry point), as for [`copy_mc`](crate::copy_mc): if the
/// SIGBUS handler cannot be installed or `MCSAFE_STRATEGY` is invalid. Before touching memory, if `T` is not zero-sized and `dst` is null or its
/// range wraps the address space, with the same messages as `copy_mc`.
///
/// # Example
///
/// ```
/// let mut slot = [0u8; 12];
/// // SAFETY: `slot` is ordinary memory; the write is unaligned and in bounds.
/// unsafe { mcsafe::write_mc(slot.as_mut_ptr().wrapping_add(3).cast::<u32>(), 0xdead_beef) }
///     .unwrap();
/// assert_eq!(slot[3..7], 0xdead_beef_u32.to_ne_bytes());
/// ```
#[track_caller]
pub unsafe fn write_mc<T: Copy>(dst: *mut T, value: T) -> Result<(), Fault> {
    let size = size_of::<T>();
    if size == 0 {
        return Ok(());
    }
    check_range("destination", dst as usize, size);
    let src = (&raw const value).cast::<u8>();
    let dst = dst.cast::<u8>();
    match Arch::exact_routine(size, None) {
        // SAFETY: `src` is our own copy of the value, which no `dst` the caller
        // vouches for can overlap; the routines read it as plain bytes.
        Some(exact) => match unsafe { Arch::run_copy(exact, dst, src, size) } {
            Ok(()) => Ok(()),
            // The bytes before the lost granule, stored alone (out of line).
            // SAFETY: as above.
            Err(stopped) => Err(unsafe {
                forward::copy_after(Arch::copy_routine(None), dst, src, size, stopped)
            }),
        },
        // SAFETY: as above.
        None => unsafe { crate::copy_mc(dst, src, size) },
    }
}

/// Fills `len` bytes at `dst` with `byte`, surviving a SIGBUS: `memset` with the
/// exact-prefix contract of [`copy_mc`](crate::copy_mc).
///
/// Returns `Ok(())` when every byte was written. When a page (or another unit,
/// see [`Fault::granule`]) of the range is lost, returns `Err(fault)` where the
/// first [`Fault::copied`] bytes hold `byte`, exactly up to the lost unit, and
/// [`Fault::side`] is [`Side::Destination`]. The lost unit is never touched
/// again: one lost page, one signal. Bytes past `copied` may have been written;
/// bytes past `len` never are.
///
/// # Safety
///
/// - `dst..dst + len` must be mapped and writable, except where it may raise
///   SIGBUS; nothing else may access it during the call.
/// - Do not form Rust references to memory that may fault.
///
/// # Panics
///
/// On first use (of any mcsafe entry point), as for [`copy_mc`](crate::copy_mc): if the
/// SIGBUS handler cannot be installed or `MCSAFE_STRATEGY` is invalid. Before touching memory, if `len > 0` and `dst` is null or the range wraps
/// the address space, with the same messages as `copy_mc`. `len == 0` returns
/// `Ok(())` and touches nothing.
///
/// # Example
///
/// ```
/// let mut page = vec![0xffu8; 4096];
/// // SAFETY: `page` is ordinary memory of that length.
/// unsafe { mcsafe::fill_mc(page.as_mut_ptr(), 0, page.len()) }.unwrap();
/// assert!(page.iter().all(|&b| b == 0));
/// ```
#[track_caller]
pub unsafe fn fill_mc(dst: *mut u8, byte: u8, len: usize) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    check_range("destination", dst as usize, len);
    Arch::ensure_installed();
    let mut fill = forward::Fill { dst, byte, len };
    // SAFETY: range checked, handler installed; the caller vouches for the memory.
    unsafe { forward::run(&mut fill, len) }.map_err(|((), fault)| fault)
}
