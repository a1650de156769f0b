//! CRC32C (Castagnoli) over memory that may fault, without copying it (storage
//! engines verify blocks straight from the mapping), or while copying it.
//!
//! The routines (docs/crc.md): `asm/crc32c_fold512.s` folds blocks with
//! carry-less multiplication on zmm registers in one sequential walk, for the
//! checksum and the one-pass copy; `asm/crc32c_fold.s` folds blocks on ymm or
//! xmm registers beside three `crc32` streams; both commit their progress once
//! per block; `asm/copy_crc32c.s` is the latter while copying; `asm/crc32c.s`
//! is the one-stream `crc32` loop, which also finishes every checksum stopped
//! by a fault (the careful forward step, sequential). Without SSE4.2,
//! [`copy_mc`] copies chunks into a stack buffer and a table-driven software
//! CRC runs over what was copied. All keep the exact progress contract of
//! copies. Change the routines' shapes with docs/crc.md, and run `cargo test
//! -p mcsafe --lib crc32c`, `cargo test -p mcsafe-tests --test every_instruction
//! --test storage_sweep --test copy_crc_sweep` and `cargo bench --bench crc --
//! --quick`.

use core::fmt;

use crate::arch::{Arch, Stopped, Target};
use crate::copy::{self, check_range, cut};
use crate::forward::{self, describe};
use crate::{Fault, Side, copy_mc};

/// A checksum stopped by a lost granule: the CRC of exactly the bytes before it.
///
/// Returned by [`crc32c_mc`] and [`copy_crc32c_mc`]. `fault().copied()` is the
/// number of bytes checksummed (for `copy_crc32c_mc`: copied and checksummed),
/// exactly the bytes before the lost granule, and [`crc`] is the CRC32C of
/// those bytes (continuing the CRC the call started from).
///
/// [`crc`]: CrcFault::crc
///
/// # Example
///
/// A memfd of two pages, mapped, then cut to one: the second page is lost.
///
/// ```
/// use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
///
/// // SAFETY: system calls on a descriptor and a mapping this example owns.
/// let (map, fd) = unsafe {
///     let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"doc".as_ptr(), 0));
///     libc::ftruncate(fd.as_raw_fd(), 8192);
///     let map = libc::mmap(std::ptr::null_mut(), 8192, libc::PROT_READ | libc::PROT_WRITE,
///                          libc::MAP_SHARED, fd.as_raw_fd(), 0);
///     assert_ne!(map, libc::MAP_FAILED);
///     std::ptr::write_bytes(map.cast::<u8>(), 0xab, 8192);
///     libc::ftruncate(fd.as_raw_fd(), 4096);
///     (map.cast::<u8>(), fd)
/// };
/// let start = map.wrapping_add(4000);
/// // SAFETY: mapped; the second page faults, and mcsafe survives it.
/// let e = unsafe { mcsafe::crc32c_mc(0, start, 1000) }.unwrap_err();
/// assert_eq!(e.checked(), 96); // exactly the bytes before the lost page
/// assert_eq!(e.crc(), mcsafe::crc32c(0, &[0xab; 96]));
/// # drop(fd);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrcFault {
    crc: u32,
    fault: Fault,
}

impl CrcFault {
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
    pub(crate) fn new(crc: u32, fault: Fault) -> CrcFault {
        CrcFault { crc, fault }
    }

    /// The CRC32C of the bytes before the lost granule ([`checked`] of them).
    ///
    /// [`checked`]: CrcFault::checked
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// Bytes checksummed (by [`copy_crc32c_mc`]: copied and checksummed):
    /// exactly those before the lost granule.
    pub fn checked(&self) -> usize {
        self.fault.copied()
    }

    /// The fault; its `copied()` is [`checked`]. Its side is
    /// [`Side::Source`] for [`crc32c_mc`]; for [`copy_crc32c_mc`], the buffer
    /// that lost the granule.
    ///
    /// [`checked`]: CrcFault::checked
    pub fn fault(&self) -> Fault {
        self.fault
    }
}

impl fmt::Display for CrcFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CRC32C stopped after {} bytes (CRC {:#010x} so far): {}",
            self.checked(),
            self.crc,
            self.fault
        )
    }
}

impl std::error::Error for CrcFault {}

/// Converts to an [`std::io::Error`] that carries the `CrcFault`, as
/// `From<Fault>` does (kind `Other`, `raw_os_error()` is `None`; see there).
impl From<CrcFault> for std::io::Error {
    fn from(fault: CrcFault) -> std::io::Error {
        std::io::Error::other(fault)
    }
}

/// CRC32C (the Castagnoli polynomial, as iSCSI, ext4, Btrfs and RocksDB use it)
/// of `len` bytes at `src`, continuing `crc` (0 to start), surviving a SIGBUS.
///
/// Returns the CRC, equal to [`crc32c`] over the same bytes. When a page (or
/// another unit, see [`Fault::granule`]) of the range is lost, returns
/// `Err(CrcFault)` with the CRC of exactly the bytes before the lost unit and
/// how many they are ([`CrcFault::checked`]). One signal per lost unit, which
/// is never touched again; where the checksum folds beside streams (below), a
/// range over several lost units may take one signal for each of two of them
/// (the first read reaches four parts of a block at once).
///
/// The bytes are read in place. With AVX-512 and VPCLMULQDQ where the copies
/// run 512-bit code too (Intel Sapphire Rapids and later, AMD Zen 4 and 5),
/// carry-less multiplication on zmm registers folds blocks of up to 32 KiB in
/// one sequential walk (about 120 GB/s from the cache on an Emerald Rapids
/// core); else, with SSE4.2, PCLMULQDQ and AVX (AVX2 and VPCLMULQDQ for the
/// 256-bit form), it folds part of each block of up to 8 KiB while three
/// `crc32` streams run over the rest: about twice the speed of three `crc32`
/// streams. Up to 256 bytes, one `crc32` chain; with SSE4.2 alone (or on the
/// "fragile" CPU models), one
/// `crc32` stream; without it, [`copy_mc`] copies chunks to a stack buffer for
/// a software CRC. The method and its figures: `docs/crc.md`.
///
/// Installs the SIGBUS handler on first use, as `copy_mc` does.
///
/// # Safety
///
/// `src..src + len` must be mapped and readable, except where it may raise
/// SIGBUS (see [`copy_mc`]). Do not form Rust references to memory that may
/// fault.
///
/// # Panics
///
/// On first use (of any mcsafe entry point), as for [`copy_mc`](crate::copy_mc): if the
/// SIGBUS handler cannot be installed or `MCSAFE_STRATEGY` is invalid. Before touching memory, if `len > 0` and `src` is null or the range wraps
/// the address space, with the same messages as `copy_mc`. `len == 0` returns
/// `Ok(crc)`.
///
/// # Example
///
/// ```
/// let block = b"123456789";
/// // SAFETY: `block` is ordinary memory.
/// let crc = unsafe { mcsafe::crc32c_mc(0, block.as_ptr(), block.len()) }.unwrap();
/// assert_eq!(crc, 0xe306_9283); // the standard check value of CRC32C
/// // In two pieces: continue from the first CRC.
/// let first = unsafe { mcsafe::crc32c_mc(0, block.as_ptr(), 4) }.unwrap();
/// let both = unsafe { mcsafe::crc32c_mc(first, block.as_ptr().wrapping_add(4), 5) }.unwrap();
/// assert_eq!(both, crc);
/// ```
#[inline]
#[track_caller]
pub unsafe fn crc32c_mc(crc: u32, src: *const u8, len: usize) -> Result<u32, CrcFault> {
    // SAFETY: the caller's contract.
    unsafe { crc32c_mc_or(crc, src, len, |fault| fault) }
}

/// [`crc32c_mc`], the fault turned into the caller's error by `on_fault` on
/// the cold path, so that the hot path returns its CRC in a register
/// (`MappedRegion::crc32c_at` makes an `io::Error`).
///
/// # Safety
/// As for [`crc32c_mc`].
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn crc32c_mc_or<E>(
    crc: u32,
    src: *const u8,
    len: usize,
    on_fault: impl FnOnce(CrcFault) -> E,
) -> Result<u32, E> {
    if len == 0 {
        return Ok(crc);
    }
    check_range("source", src as usize, len);
    match Arch::protected_crc() {
        // SAFETY: range checked, the routine runs here, the handler is
        // installed; the caller vouches for the rest.
        Some(routine) => unsafe { hardware_or(routine, crc, src, len, on_fault) },
        // SAFETY: as above.
        None => unsafe { through_copies(crc, src, len) }.map_err(on_fault),
    }
}

/// CRC32C of ordinary memory, continuing `crc` (0 to start): the checksum
/// [`crc32c_mc`] computes, for data that cannot fault (records being written,
/// expected values).
///
/// A plain function of the slice: it runs the same routine as `crc32c_mc` (so
/// at the same speed) but does not install mcsafe's SIGBUS handler, takes no
/// lock, allocates nothing and never panics for lack of an environment: it may
/// be called anywhere, a signal handler included. Without SSE4.2 it computes in
/// software (slice-by-8 tables).
///
/// # Panics
///
/// Only if reading `data` raises a SIGBUS that mcsafe recovers (a slice over a
/// file mapping that lost a page, which a `&[u8]` must never be, while mcsafe's
/// handler is installed): use [`crc32c_mc`] with a raw pointer for such memory.
/// Without the handler, such a SIGBUS ends the process as any read would.
///
/// # Example
///
/// ```
/// assert_eq!(mcsafe::crc32c(0, b""), 0);
/// assert_eq!(mcsafe::crc32c(0, &[0u8; 32]), 0x8a91_36aa); // RFC 3720, B.4
/// ```
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    if data.is_empty() {
        return crc;
    }
    match Arch::crc() {
        Some(routine) if data.len() < Arch::CRC_SHORT => {
            // SAFETY: a slice is readable memory, and the routine runs here.
            match unsafe { Arch::run_crc_short(routine, data.as_ptr(), data.len(), !crc) } {
                (state, Ok(())) => !state,
                (_, Err(stopped)) => slice_faulted(stopped.addr),
            }
        }
        Some(routine) => slice_long(routine, crc, data),
        None => !software(!crc, data),
    }
}

/// [`crc32c`] of [`Target::CRC_SHORT`] bytes or more, out of line (it saves
/// registers that short ones need not).
#[inline(never)]
fn slice_long(routine: <Arch as Target>::Crc, crc: u32, data: &[u8]) -> u32 {
    // SAFETY: a slice is readable memory, and the routine runs here.
    match unsafe { Arch::run_crc(routine, data.as_ptr(), data.len(), !crc) } {
        (state, Ok(())) => !state,
        (_, Err(stopped)) => slice_faulted(stopped.addr),
    }
}

#[cold]
#[inline(never)]
fn slice_faulted(addr: usize) -> ! {
    panic!(
        "mcsafe::crc32c: reading the slice raised SIGBUS at {addr:#x}; \
         memory that may fault must go through crc32c_mc with a raw pointer"
    )
}

/// A checksum routine, then the careful forward step (`forward.rs`) with the
/// one-stream routine after a fault.
///
/// # Safety
/// As for [`crc32c_mc`], with `len > 0`, the range checked, the handler
/// installed and `routine` runnable here.
#[inline(always)]
pub(crate) unsafe fn hardware(
    routine: <Arch as Target>::Crc,
    crc: u32,
    src: *const u8,
    len: usize,
) -> Result<u32, CrcFault> {
    // SAFETY: per this function's contract.
    unsafe { hardware_or(routine, crc, src, len, |fault| fault) }
}

/// [`hardware`] with the fault mapped by `on_fault`: short checksums inline,
/// longer ones out of line (they save registers that short ones need not, and
/// their result then never passes through the stack on the short path).
///
/// # Safety
/// As for [`hardware`].
#[inline(always)]
unsafe fn hardware_or<E>(
    routine: <Arch as Target>::Crc,
    crc: u32,
    src: *const u8,
    len: usize,
    on_fault: impl FnOnce(CrcFault) -> E,
) -> Result<u32, E> {
    if len >= Arch::CRC_SHORT {
        // SAFETY: per this function's contract.
        let mut fault = core::mem::MaybeUninit::uninit();
        // SAFETY: per this function's contract.
        return match unsafe { hardware_long(routine, crc, src, len, &mut fault) } {
            Some(crc) => Ok(crc),
            // SAFETY: hardware_long wrote the fault when it returned None.
            None => Err(on_fault(unsafe { fault.assume_init() })),
        };
    }
    // SAFETY: per this function's contract, with len < CRC_SHORT.
    let (out, result) = unsafe { Arch::run_crc_short(routine, src, len, !crc) };
    match result {
        Ok(()) => Ok(!out),
        // Out of line, and the last thing done: the hot path keeps no value
        // across a call, so it saves no register.
        // SAFETY: per this function's contract.
        Err(stopped) => Err(on_fault(unsafe {
            finish_hardware(crc, src, len, out, stopped)
        })),
    }
}

/// [`hardware_or`] for [`Target::CRC_SHORT`] bytes or more: the CRC, or `None`
/// with the fault written to `fault`. The CRC comes back in a register (a
/// `Result<u32, CrcFault>` would go through memory), which measured cold calls of
/// about 1 KB find faster (docs/crc.md).
///
/// # Safety
/// As for [`hardware`].
#[inline(never)]
unsafe fn hardware_long(
    routine: <Arch as Target>::Crc,
    crc: u32,
    src: *const u8,
    len: usize,
    fault: &mut core::mem::MaybeUninit<CrcFault>,
) -> Option<u32> {
    // SAFETY: per this function's contract.
    let (out, result) = unsafe { Arch::run_crc(routine, src, len, !crc) };
    match result {
        Ok(()) => Some(!out),
        Err(stopped) => {
            // SAFETY: per this function's contract.
            fault.write(unsafe { finish_hardware(crc, src, len, out, stopped) });
            None
        }
    }
}

/// The rest of a checksum whose first run stopped on a fault, `state` the state
/// of its `stopped.progress` bytes: the forward step with the one-stream routine
/// (out of line).
///
/// # Safety
/// As for [`hardware`].
#[cold]
#[inline(never)]
unsafe fn finish_hardware(
    crc: u32,
    src: *const u8,
    len: usize,
    state: u32,
    stopped: Stopped,
) -> CrcFault {
    let fault = describe(stopped, src.cast_mut(), src, len, Some(Side::Source));
    let Some(stream) = Arch::stream_crc() else {
        unreachable!("mcsafe: a CPU with a checksum routine has the one-stream one")
    };
    let mut op = forward::Checksum {
        routine: stream,
        src,
        len,
        initial: !crc,
    };
    // SAFETY: per this function's contract.
    let (state, fault) = unsafe { forward::finish(&mut op, stopped.progress, state, fault) };
    CrcFault { crc: !state, fault }
}

/// Copies `len` bytes from `src` to `dst` and returns their CRC32C, continuing
/// `crc` (0 to start), in one pass, surviving a SIGBUS on either side: each
/// source byte is read once, stored and folded into the CRC.
///
/// For a storage engine that reads a block out of a mapping into its own
/// buffer and verifies it: the same result as [`copy_mc`] followed by
/// [`crc32c`] over the copy, in about the time of the slower of the two alone
/// (see `docs/crc.md` for the figures).
///
/// When a page (or another unit, see [`Fault::granule`]) of either buffer is
/// lost, returns `Err(CrcFault)` with `n = checked()` exactly as for
/// `copy_mc`: `dst[..n] == src[..n]`, `n` is the number of bytes before the
/// lost unit on the faulting side ([`Fault::side`] says which), and
/// [`CrcFault::crc`] is the CRC of exactly those `n` bytes. Bytes of `dst` past
/// `n` may have been written; bytes past `len` never are. One signal per lost
/// unit; the lost unit is never touched again.
///
/// Installs the SIGBUS handler on first use, as `copy_mc` does. The one-pass
/// routine of `crc32c_mc`'s width runs; the 512-bit one stores around the cache
/// from `copy_mc`'s non-temporal threshold, as `copy_mc` does
/// ([`Thresholds::non_temporal`](crate::Thresholds)). On CPUs without
/// the one-pass routine (which needs SSE4.2, PCLMULQDQ and AVX), it copies with
/// `copy_mc` and checksums the copied source in chunks of 16 KiB, which stay
/// in the cache between the two.
///
/// # Safety
///
/// As for [`copy_mc`]: `src..src + len` mapped and readable, `dst..dst + len`
/// mapped and writable, except where they may raise SIGBUS; nothing else
/// accesses `dst..dst + len` during the call; no Rust references to memory
/// that may fault.
///
/// # Panics
///
/// As for [`copy_mc`]: on first use if the handler cannot be installed, and
/// before touching memory if `len > 0` and a pointer is null, a range wraps or
/// leaves user space, or the ranges overlap. `len == 0` returns `Ok(crc)` and
/// reads no pointer.
///
/// # Example
///
/// ```
/// let block = b"123456789".to_vec();
/// let mut buf = vec![0u8; block.len()];
/// // SAFETY: two distinct heap buffers.
/// let crc = unsafe { mcsafe::copy_crc32c_mc(0, buf.as_mut_ptr(), block.as_ptr(), 9) }.unwrap();
/// assert_eq!(crc, 0xe306_9283);
/// assert_eq!(buf, block);
/// ```
#[inline]
#[track_caller]
pub unsafe fn copy_crc32c_mc(
    crc: u32,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<u32, CrcFault> {
    if len == 0 {
        return Ok(crc);
    }
    if copy::ranges_are_bad(dst, src, len) {
        copy::reject(dst, src, len);
    }
    let checksum = Arch::protected_crc();
    match checksum.and_then(Arch::copy_crc_of) {
        // SAFETY: ranges checked, the routine runs here, the handler is
        // installed; the caller vouches for the rest.
        Some(routine) => unsafe { fused(routine, crc, dst, src, len) },
        // SAFETY: as above.
        None => unsafe { copy_then_checksum(crc, dst, src, len) },
    }
}

/// The one-pass routine, then the forward step after a fault.
///
/// # Safety
/// As for [`copy_crc32c_mc`], with `len > 0`, the ranges checked, the handler
/// installed and `routine` a copy-and-checksum routine this CPU runs.
#[inline(always)]
pub(crate) unsafe fn fused(
    routine: <Arch as Target>::CopyCrc,
    crc: u32,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<u32, CrcFault> {
    // SAFETY: per this function's contract.
    let (out, result) = unsafe { Arch::run_copy_crc(routine, dst, src, len, !crc) };
    match result {
        Ok(()) => Ok(!out),
        // SAFETY: per this function's contract.
        Err(stopped) => Err(unsafe { finish_fused(crc, dst, src, len, out, stopped) }),
    }
}

/// The rest of a one-pass copy whose routine stopped on a fault, having copied
/// and checksummed `stopped.progress` bytes (`state` their CRC state): the
/// careful forward step up to the cut (out of line).
///
/// # Safety
/// As for [`fused`].
#[cold]
#[inline(never)]
unsafe fn finish_fused(
    crc: u32,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    state: u32,
    stopped: Stopped,
) -> CrcFault {
    let fault = describe(stopped, dst, src, len, None);
    let mut op = CopyThenChecksum::new(crc, dst, src, len);
    // SAFETY: per this function's contract.
    let (crc, fault) = unsafe { forward::finish(&mut op, stopped.progress, !state, fault) };
    CrcFault { crc, fault }
}

/// `copy_crc32c_mc` the careful way, on CPUs without the one-pass routine.
///
/// # Safety
/// As for [`fused`], without a routine.
pub(crate) unsafe fn copy_then_checksum(
    crc: u32,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<u32, CrcFault> {
    let mut op = CopyThenChecksum::new(crc, dst, src, len);
    // SAFETY: per this function's contract.
    unsafe { forward::run(&mut op, len) }.map_err(|(crc, fault)| CrcFault { crc, fault })
}

/// Bytes the careful copy-and-checksum takes at a time: copied, then
/// checksummed from the source while it is still in the cache.
const FORWARD_CHUNK: usize = 16 << 10;

/// A copy and checksum done the careful way: chunks of [`FORWARD_CHUNK`] bytes,
/// each copied with the current copy routine (exactly, as `copy_mc`), then
/// checksummed from its source with the one-stream routine (or, without one, the
/// copy-and-software fallback). The forward step of [`fused`], and the whole of
/// [`copy_crc32c_mc`] on CPUs without the one-pass routine. Its state is the
/// CRC value (inverted back: the public one).
pub(crate) struct CopyThenChecksum {
    checksum: Option<<Arch as Target>::Crc>,
    crc: u32,
    dst: *mut u8,
    src: *const u8,
    len: usize,
}

impl CopyThenChecksum {
    pub(crate) fn new(crc: u32, dst: *mut u8, src: *const u8, len: usize) -> CopyThenChecksum {
        CopyThenChecksum::with(Arch::stream_crc(), crc, dst, src, len)
    }

    /// With `checksum` for the chunks (`None`: the copy-and-software fallback).
    pub(crate) fn with(
        checksum: Option<<Arch as Target>::Crc>,
        crc: u32,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> CopyThenChecksum {
        CopyThenChecksum {
            checksum,
            crc,
            dst,
            src,
            len,
        }
    }

    /// The fault of a part, measured over the whole operation.
    fn whole(&self, f: Fault) -> Fault {
        let cut = cut(
            f.addr(),
            f.granule(),
            self.dst as usize,
            self.src as usize,
            self.len,
        );
        f.with_copied(cut.map_or(f.copied(), |(_, n)| n))
    }

    /// The CRC of `n > 0` bytes at `s`, continuing `state`.
    ///
    /// # Safety
    /// `s..s+n` inside the operation's source.
    unsafe fn sum(&self, state: u32, s: *const u8, n: usize) -> Result<u32, CrcFault> {
        // SAFETY: per this function's contract.
        unsafe {
            match self.checksum {
                Some(routine) => hardware(routine, state, s, n),
                None => through_copies(state, s, n),
            }
        }
    }
}

impl forward::Operation for CopyThenChecksum {
    type State = u32;
    const OVERSHOOT_KEEPS_PREFIX: bool = false;

    fn start(&self) -> u32 {
        self.crc
    }

    unsafe fn step(
        &mut self,
        from: usize,
        to: usize,
        mut state: u32,
    ) -> Result<u32, (usize, u32, Fault)> {
        let mut done = from;
        while done < to {
            let n = (to - done).min(FORWARD_CHUNK);
            let (d, s) = (self.dst.wrapping_add(done), self.src.wrapping_add(done));
            // SAFETY: done < to <= len: inside the operation's ranges.
            let (copied, lost) = match unsafe { crate::copy_mc(d, s, n) } {
                Ok(()) => (n, None),
                Err(f) => (f.copied(), Some(self.whole(f))),
            };
            if copied > 0 {
                // SAFETY: the bytes just copied: inside the operation's source.
                match unsafe { self.sum(state, s, copied) } {
                    Ok(next) => state = next,
                    // The source was lost between the copy and the checksum.
                    Err(e) => return Err((done + e.checked(), e.crc(), self.whole(e.fault()))),
                }
            }
            if let Some(fault) = lost {
                return Err((done + copied, state, fault));
            }
            done += n;
        }
        Ok(state)
    }
}

/// Bytes copied at a time by the fallback: a few pages' worth of stack.
const CHUNK: usize = 4096;

/// The fallback without SSE4.2: [`copy_mc`] a chunk into a stack buffer, then
/// the software CRC over what was copied. A fault ends it with the CRC of the
/// exact prefix `copy_mc` reports.
///
/// # Safety
/// As for [`crc32c_mc`], with `len > 0` and the range checked.
pub(crate) unsafe fn through_copies(crc: u32, src: *const u8, len: usize) -> Result<u32, CrcFault> {
    let mut buf = [0u8; CHUNK];
    let mut state = !crc;
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        // SAFETY: inside the caller's range; `buf` is ours.
        let copied = unsafe { copy_mc(buf.as_mut_ptr(), src.add(done), n) };
        match copied {
            Ok(()) => state = software(state, &buf[..n]),
            Err(fault) => {
                // The cut over the whole range: bytes before the lost granule.
                let lost_at = (fault.addr() & !(fault.granule() - 1)).saturating_sub(src as usize);
                let cut = (done + fault.copied()).min(lost_at);
                let fault = fault.with_copied(cut);
                if cut < done {
                    // The granule began in an earlier chunk and was lost since
                    // (a truncation racing the checksum): the CRC stops at its start.
                    // SAFETY: 0 < cut < len, inside the caller's range.
                    return match unsafe { through_copies(crc, src, cut) } {
                        Ok(crc) => Err(CrcFault { crc, fault }),
                        Err(earlier) => Err(earlier),
                    };
                }
                let crc = !software(state, &buf[..cut - done]);
                return Err(CrcFault { crc, fault });
            }
        }
        done += n;
    }
    Ok(!state)
}

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

/// Slice-by-8 tables: `TABLES[0]` is the byte-at-a-time table, `TABLES[k]` the
/// contribution of a byte followed by `k` more.
static TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// The software CRC32C state after `data`, from `state` (not inverted).
pub(crate) fn software(mut state: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ state;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        let byte = |x: u32, n: u32| ((x >> (8 * n)) & 0xff) as usize;
        state = t[7][byte(lo, 0)]
            ^ t[6][byte(lo, 1)]
            ^ t[5][byte(lo, 2)]
            ^ t[4][byte(lo, 3)]
            ^ t[3][byte(hi, 0)]
            ^ t[2][byte(hi, 1)]
            ^ t[1][byte(hi, 2)]
            ^ t[0][byte(hi, 3)];
    }
    for &b in words.remainder() {
        state = (state >> 8) ^ t[0][((state ^ u32::from(b)) & 0xff) as usize];
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3720 (iSCSI) appendix B.4 and the "123456789" check value.
    pub(crate) fn vectors() -> Vec<(Vec<u8>, u32)> {
        let pdu: Vec<u8> = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]
        .to_vec();
        vec![
            (b"123456789".to_vec(), 0xe306_9283),
            (vec![0; 32], 0x8a91_36aa),
            (vec![0xff; 32], 0x62a8_ab43),
            ((0..32).collect(), 0x46dd_794e),
            ((0..32).rev().collect(), 0x113f_db5c),
            (pdu, 0xd996_3a56),
            (Vec::new(), 0),
        ]
    }

    #[test]
    fn software_matches_the_standard_vectors() {
        for (data, want) in vectors() {
            assert_eq!(!software(!0, &data), want, "{data:02x?}");
        }
    }

    #[test]
    fn every_path_matches_the_standard_vectors_at_every_offset() {
        for (data, want) in vectors() {
            // Shift the data through every alignment, so the hardware routine
            // runs its byte head, words and byte tail in every combination.
            for shift in 0..16 {
                let mut buf = vec![0x5au8; shift];
                buf.extend_from_slice(&data);
                let p = buf.as_ptr().wrapping_add(shift);
                assert_eq!(crc32c(0, &buf[shift..]), want, "shift {shift}");
                if !data.is_empty() {
                    // SAFETY: `p..p+len` lies in `buf`.
                    let fallback = unsafe { through_copies(0, p, data.len()) };
                    assert_eq!(fallback, Ok(want), "fallback, shift {shift}");
                }
            }
        }
    }

    #[test]
    fn continuing_a_crc_equals_one_crc_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let whole = crc32c(0, &data);
        for split in [0, 1, 7, 8, 9, 4095, 4096, 4097, 9999, 10_000] {
            let first = crc32c(0, &data[..split]);
            assert_eq!(crc32c(first, &data[split..]), whole, "split {split}");
        }
        assert_eq!(!software(!0, &data), whole);
    }

    /// Bytes with no short period, so that a block or stream that is misplaced,
    /// dropped or counted twice changes the CRC.
    #[cfg(mcsafe_protected)]
    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[cfg(mcsafe_protected)]
    use crate::arch::native::{Checksum, CopyChecksum, CrcRoutine, can_run_crc};

    /// Every hardware routine this CPU runs, forced, with blocks of `block`
    /// bytes, against the software CRC.
    #[cfg(mcsafe_protected)]
    fn each_routine(crc: u32, data: &[u8], block: usize) -> Vec<(CrcRoutine, u32)> {
        CrcRoutine::ALL
            .into_iter()
            .filter(|&r| can_run_crc(r))
            .map(|r| {
                let checksum = Checksum {
                    routine: r.routine(),
                    block,
                };
                // SAFETY: ordinary memory; the routine runs here.
                let (state, result) =
                    unsafe { Arch::run_crc(checksum, data.as_ptr(), data.len(), !crc) };
                assert!(result.is_ok());
                (r, !state)
            })
            .collect()
    }

    /// Every length to past two of the folding routine's units of each shape
    /// (chain only, streams only, vector blocks, the 24-byte head), at 8
    /// misalignments and with a seed: the folding and one-stream routines equal
    /// the software CRC. (Break the folding routine's merge and this fails at
    /// the first length that reaches it.)
    #[test]
    #[cfg(mcsafe_protected)]
    fn the_routines_equal_software_at_every_length_and_offset() {
        let data = pattern(2100 + 8, 7);
        let mut checked = 0;
        for offset in 0..8 {
            for len in 1..=2100 {
                let bytes = &data[offset..offset + len];
                let want = !software(!0x1234_5678, bytes);
                for (routine, got) in each_routine(0x1234_5678, bytes, 8192) {
                    assert_eq!(got, want, "{routine:?}, len {len}, offset {offset}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 8 * 2100, "only {checked} checks");
    }

    /// Lengths around the folding routine's blocks (8 KiB by default: a commit
    /// between blocks; and smaller blocks) and MiB lengths, against the
    /// software CRC.
    #[test]
    #[cfg(mcsafe_protected)]
    fn the_routines_equal_software_over_many_blocks() {
        let data = pattern((3 << 20) + 64, 11);
        for block in [320, 1000, 4099, 8192] {
            for len in [block - 1, block, block + 1, 2 * block + 71, 5 * block + 319] {
                let bytes = &data[3..3 + len];
                let want = !software(!0, bytes);
                for (routine, got) in each_routine(0, bytes, block) {
                    assert_eq!(got, want, "{routine:?}, block {block}, len {len}");
                }
            }
        }
        for len in [
            8191,
            8192,
            8193,
            8192 + 71,
            8192 + 72,
            8192 + 319,
            8192 + 320,
            3 * 8192 + 4095,
            100_000,
            (1 << 20) + 3,
            3 << 20,
        ] {
            for offset in [0, 5, 63] {
                let bytes = &data[offset..offset + len];
                let want = !software(!0, bytes);
                assert_eq!(crc32c(0, bytes), want, "crc32c, len {len}, offset {offset}");
                for (routine, got) in each_routine(0, bytes, 8192) {
                    assert_eq!(got, want, "{routine:?}, len {len}, offset {offset}");
                }
            }
        }
    }

    /// The folding routine's table of shifts (asm/crc32c_fold.s): entry k
    /// multiplied (carry-less) by a CRC c, then reduced by `crc32q` from 0,
    /// must be c followed by 8k zero bytes. Checked with the software CRC and a
    /// carry-less product computed here, for every entry.
    #[test]
    #[cfg(all(mcsafe_protected, target_arch = "x86_64"))]
    fn every_shift_constant_shifts_by_its_bytes() {
        unsafe extern "C" {
            static mcsafe_asm_crc32c_shifts: [u32; 0];
            static mcsafe_asm_crc32c_shifts_end: [u32; 0];
        }
        let start = (&raw const mcsafe_asm_crc32c_shifts).cast::<u32>();
        let end = (&raw const mcsafe_asm_crc32c_shifts_end).cast::<u32>();
        let len = (end as usize - start as usize) / 4;
        // The largest entries the routines use (asm/crc32c_fold.s: FOLD_SHIFTS):
        // 17n + 3q and 14n + 2q for the largest blocks.
        let largest = (1..=8192usize)
            .filter(|&l| l >= 320)
            .map(|l| {
                let (n, r) = (l / 136, l % 136);
                let read = 17 * n + 3 * (r / 24);
                let (n, r) = (l / 112, l % 112);
                read.max(14 * n + 2 * (r / 16))
            })
            .max()
            .unwrap();
        assert!(len > largest, "{len} entries, {largest} used");
        // SAFETY: a read-only table of `len` words in the assembly's .rodata,
        // between the two symbols.
        let table = unsafe { std::slice::from_raw_parts(start, len) };
        let clmul = |a: u32, b: u32| {
            (0..32).fold(0u64, |acc, i| {
                if (a >> i) & 1 == 1 {
                    acc ^ (u64::from(b) << i)
                } else {
                    acc
                }
            })
        };
        let zeros = vec![0u8; 8 * len];
        for c in [1u32, 0x8000_0000, 0xdead_beef] {
            for (k, &entry) in table.iter().enumerate().skip(1) {
                let product = clmul(c, entry).to_le_bytes();
                let got = software(0, &product);
                assert_eq!(got, software(c, &zeros[..8 * k]), "entry {k}, c {c:#x}");
            }
        }
    }

    /// A way `copy_crc32c_mc` can run: a one-pass routine, or the careful path
    /// with a checksum (or the software fallback).
    #[cfg(mcsafe_protected)]
    type CopyPath = (&'static str, Option<CrcRoutine>, Option<Checksum>);

    /// Every way `copy_crc32c_mc` can run here.
    #[cfg(mcsafe_protected)]
    fn each_copy_path() -> Vec<CopyPath> {
        let mut all = Vec::new();
        #[cfg(target_arch = "x86_64")]
        let one_pass = [
            ("fold512", CrcRoutine::Fold512),
            ("fold256", CrcRoutine::Fold256),
            ("fold128", CrcRoutine::Fold128),
        ];
        #[cfg(target_arch = "aarch64")]
        let one_pass = [("pmull", CrcRoutine::Pmull)];
        for (name, routine) in one_pass {
            if can_run_crc(routine) {
                all.push((name, Some(routine), None));
            }
        }
        if can_run_crc(CrcRoutine::Stream) {
            all.push(("forward/stream", None, Some(CrcRoutine::Stream.checksum())));
        }
        all.push(("forward/copies", None, None));
        all
    }

    /// Copies `len` bytes of `data` at `offset` into a fresh buffer (at
    /// `dst_offset`, with 64 guard bytes on each side) along `path`; checks the
    /// copy and the guards; returns the CRC.
    #[cfg(mcsafe_protected)]
    #[allow(clippy::too_many_arguments)]
    fn copy_along(
        path: &CopyPath,
        block: usize,
        crc: u32,
        data: &[u8],
        offset: usize,
        dst_offset: usize,
        len: usize,
    ) -> u32 {
        Arch::ensure_installed();
        let mut out = vec![0xa5u8; len + dst_offset + 128];
        let src = data[offset..].as_ptr();
        let dst = out[64 + dst_offset..].as_mut_ptr();
        // SAFETY: ordinary memory; the routine runs here; the handler is installed.
        let got = unsafe {
            match path.1 {
                Some(routine) => {
                    let fused_routine = CopyChecksum {
                        routine: routine.copy_routine().unwrap(),
                        blocks: (block, 256 << 10),
                    };
                    fused(fused_routine, crc, dst, src, len)
                }
                None => {
                    let mut op = CopyThenChecksum::with(path.2, crc, dst, src, len);
                    forward::run(&mut op, len).map_err(|(crc, fault)| CrcFault { crc, fault })
                }
            }
        };
        let got = got.unwrap_or_else(|e| panic!("{}: {e}", path.0));
        let copy = &out[64 + dst_offset..64 + dst_offset + len];
        assert!(
            copy == &data[offset..offset + len],
            "{}: copy of {len}",
            path.0
        );
        let guards = out[..64 + dst_offset]
            .iter()
            .chain(&out[64 + dst_offset + len..]);
        assert!(
            guards.copied().all(|b| b == 0xa5),
            "{}: written outside, len {len}",
            path.0
        );
        got
    }

    /// `copy_crc32c_mc` along every path, every length to 2100 at several
    /// misalignments of both sides: the copy is exact, nothing outside it is
    /// written, and the CRC equals the software one.
    #[test]
    #[cfg(mcsafe_protected)]
    fn copy_and_checksum_equal_copy_then_software_at_every_length() {
        let data = pattern(2100 + 64, 5);
        for path in each_copy_path() {
            for (offset, dst_offset) in [(0, 0), (1, 0), (0, 7), (13, 40)] {
                for len in 1..=2100 {
                    let want = !software(!0x0bad_cafe, &data[offset..offset + len]);
                    let got = copy_along(&path, 8192, 0x0bad_cafe, &data, offset, dst_offset, len);
                    assert_eq!(
                        got, want,
                        "{}, len {len}, offsets {offset}/{dst_offset}",
                        path.0
                    );
                }
            }
        }
    }

    /// The same over many blocks (small and default block sizes) and MiB lengths.
    #[test]
    #[cfg(mcsafe_protected)]
    fn copy_and_checksum_over_many_blocks() {
        let data = pattern((2 << 20) + 64, 17);
        for block in [320, 1000, 8192] {
            for len in [block - 1, block, block + 1, 2 * block + 71, 5 * block + 255] {
                let want = !software(!0, &data[3..3 + len]);
                for path in each_copy_path() {
                    assert_eq!(
                        copy_along(&path, block, 0, &data, 3, 9, len),
                        want,
                        "{} block {block}",
                        path.0
                    );
                }
            }
        }
        for len in [100_000, (1 << 20) + 3, 2 << 20] {
            let want = !software(!0, &data[..len]);
            for path in each_copy_path() {
                assert_eq!(
                    copy_along(&path, 8192, 0, &data, 0, 0, len),
                    want,
                    "{}, len {len}",
                    path.0
                );
            }
        }
    }
}
