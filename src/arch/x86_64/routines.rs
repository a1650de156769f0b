//! The copy routines of `asm/`, and the one place that calls them.
//!
//! The routines use their own calling convention (described at the top of
//! `asm/landing_pads.s`): a fault ends a routine at a fixup that returns the
//! bytes not copied together with the fault the SIGBUS handler recorded in
//! registers. They are called only through [`call`], whose `asm!` block names
//! every register the convention uses.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::Strategy;
use crate::arch::Thresholds;

// One `global_asm!` so that every file lands in one object, in this order: the
// table opened by landing_pads.s collects the rows of each routine in address
// order and landing_pads_end.s closes it. `raw`: the AT&T sources contain
// AVX-512 `{%k1}` operands, which must not be read as format arguments.
global_asm!(
    include_str!("../../../asm/landing_pads.s"),
    include_str!("../../../asm/copy_fragile.s"),
    include_str!("../../../asm/copy_rep_movsb.s"),
    include_str!("../../../asm/copy_avx2.s"),
    include_str!("../../../asm/copy_avx512.s"),
    include_str!("../../../asm/copy_exact.s"),
    include_str!("../../../asm/fill.s"),
    include_str!("../../../asm/crc32c.s"),
    include_str!("../../../asm/crc32c_fold.s"),
    include_str!("../../../asm/copy_crc32c.s"),
    include_str!("../../../asm/landing_pads_end.s"),
    options(att_syntax, raw)
);

unsafe extern "C" {
    // Not C functions: declared only to take their addresses.
    fn mcsafe_asm_copy_fragile();
    fn mcsafe_asm_copy_rep_movsb();
    fn mcsafe_asm_copy_avx2();
    fn mcsafe_asm_copy_avx512();
    fn mcsafe_asm_copy_exact_1();
    fn mcsafe_asm_copy_exact_2();
    fn mcsafe_asm_copy_exact_4();
    fn mcsafe_asm_copy_exact_8();
    fn mcsafe_asm_fill();
    fn mcsafe_asm_crc32c();
    fn mcsafe_asm_crc32c_fold256();
    fn mcsafe_asm_crc32c_fold128();
    fn mcsafe_asm_copy_crc32c_fold256();
    fn mcsafe_asm_copy_crc32c_fold128();
}

unsafe extern "C" {
    // Size thresholds read by the vector routines (asm/landing_pads.s).
    static mcsafe_asm_avx2_rep_movsb_threshold: AtomicUsize;
    static mcsafe_asm_avx512_rep_movsb_threshold: AtomicUsize;
    static mcsafe_asm_non_temporal_threshold: AtomicUsize;
}

unsafe extern "C" {
    // Bytes per block of the folding checksum (asm/crc32c_fold.s).
    static mcsafe_asm_crc32c_fold_block: AtomicUsize;
}

/// The folding checksum's largest block (and its default block) and its
/// smallest (asm/crc32c_fold.s: FOLD_BLOCK, FOLD_VECTOR_MIN).
pub(crate) const CRC32C_FOLD_BLOCK: core::ops::RangeInclusive<usize> = 320..=8192;

/// Sets the folding checksum's block size (clamped to [`CRC32C_FOLD_BLOCK`]):
/// smaller blocks commit more often, so that tests reach several commits with
/// short buffers. The CRC is the same for every block size.
pub(crate) fn set_crc32c_block(bytes: usize) {
    let bytes = bytes.clamp(*CRC32C_FOLD_BLOCK.start(), *CRC32C_FOLD_BLOCK.end());
    // SAFETY: an 8-byte aligned word in .data, declared by the assembly and only
    // ever accessed as an atomic (the routine only reads it).
    unsafe { mcsafe_asm_crc32c_fold_block.store(bytes, Ordering::Relaxed) };
}

unsafe extern "C" {
    // From this many bytes the one-pass copy takes blocks without streams
    // (asm/copy_crc32c.s).
    static mcsafe_asm_copy_crc32c_vector_only: AtomicUsize;
}

/// Sets the length from which the one-pass copy-and-checksum takes blocks
/// without streams (256 KiB by default; asm/copy_crc32c.s), so that tests reach
/// those blocks with short calls. The result is the same either way.
pub(crate) fn set_copy_crc32c_vector_only(bytes: usize) {
    // SAFETY: an 8-byte aligned word in .data, declared by the assembly and only
    // ever accessed as an atomic (the routine only reads it).
    unsafe { mcsafe_asm_copy_crc32c_vector_only.store(bytes, Ordering::Relaxed) };
}

/// Sets the size thresholds of the vector routines; called once, before any
/// routine is published.
pub(crate) fn set_thresholds(t: Thresholds) {
    // SAFETY: three 8-byte aligned words in .data, declared by the assembly and
    // only ever accessed as atomics (the routines only read them).
    unsafe {
        mcsafe_asm_avx2_rep_movsb_threshold.store(t.avx2_rep_movsb, Ordering::Relaxed);
        mcsafe_asm_avx512_rep_movsb_threshold.store(t.avx512_rep_movsb, Ordering::Relaxed);
        mcsafe_asm_non_temporal_threshold.store(t.non_temporal, Ordering::Relaxed);
    }
}

/// The size thresholds in force.
pub(crate) fn thresholds() -> Thresholds {
    // SAFETY: as in `set_thresholds`.
    unsafe {
        Thresholds {
            avx2_rep_movsb: mcsafe_asm_avx2_rep_movsb_threshold.load(Ordering::Relaxed),
            avx512_rep_movsb: mcsafe_asm_avx512_rep_movsb_threshold.load(Ordering::Relaxed),
            non_temporal: mcsafe_asm_non_temporal_threshold.load(Ordering::Relaxed),
        }
    }
}

/// The entry address of one copy routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Routine(usize);

impl Routine {
    /// The routine that implements `strategy` (whether or not the CPU can run it).
    #[inline]
    pub(crate) fn of(strategy: Strategy) -> Routine {
        let entry: unsafe extern "C" fn() = match strategy {
            Strategy::Fragile => mcsafe_asm_copy_fragile,
            Strategy::RepMovsb => mcsafe_asm_copy_rep_movsb,
            Strategy::Avx2 => mcsafe_asm_copy_avx2,
            Strategy::Avx512 => mcsafe_asm_copy_avx512,
        };
        Routine(entry as usize)
    }

    /// The routine that copies exactly `size` bytes with one load and one store
    /// (`asm/copy_exact.s`), for sizes 1, 2, 4 and 8.
    #[inline]
    pub(crate) fn exact(size: usize) -> Option<Routine> {
        let entry: unsafe extern "C" fn() = match size {
            1 => mcsafe_asm_copy_exact_1,
            2 => mcsafe_asm_copy_exact_2,
            4 => mcsafe_asm_copy_exact_4,
            8 => mcsafe_asm_copy_exact_8,
            _ => return None,
        };
        Some(Routine(entry as usize))
    }

    pub(crate) fn from_addr(addr: usize) -> Routine {
        Routine(addr)
    }

    pub(crate) fn addr(self) -> usize {
        self.0
    }
}

/// A routine stopped by a fault: what it had copied and what the handler saw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopped {
    /// Bytes from the start known to be copied (the progress invariant).
    pub(crate) progress: usize,
    /// `si_code` of the SIGBUS.
    pub(crate) code: i32,
    /// `si_addr_lsb` of the SIGBUS (0 when the kernel gave none).
    pub(crate) addr_lsb: u32,
    /// `si_addr` of the SIGBUS.
    pub(crate) addr: usize,
}

/// The fault word a fixup returns in rcx: si_code in bits 0..16, si_addr_lsb in
/// bits 16..24. Written by the handler, read here; never 0 for a real fault
/// because the handler only redirects positive si_codes.
pub(crate) const WORD_LSB_SHIFT: u32 = 16;

/// Runs one routine once: no retry, no forward step (see `copy.rs`).
///
/// # Safety
/// `routine` is one of this module's routines and the CPU can run it;
/// `src..src+len` and `dst..dst+len` do not overlap, do not wrap, and are mapped
/// readable and writable respectively, except where they may fault with SIGBUS
/// while the handler is installed.
#[inline(always)]
pub(crate) unsafe fn call(
    routine: Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Stopped> {
    let not_copied: usize;
    let word: usize;
    let addr: usize;
    // SAFETY: the routine follows the convention in asm/landing_pads.s: it reads
    // only src..src+len, writes only dst..dst+len (valid per this function's
    // contract), uses no stack beyond its return address, keeps DF clear, and
    // clobbers nothing outside the operands and the C ABI's caller-saved set.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") routine.0 => not_copied,
            inlateout("rdi") dst => _,
            inlateout("rsi") src => _,
            inlateout("rdx") len => _,
            lateout("rcx") word,
            lateout("r11") addr,
            clobber_abi("C"),
        );
    }
    Stopped::decode(len, not_copied, word, addr)
}

impl Stopped {
    /// The outcome of a routine over `len` bytes from its output registers.
    #[inline]
    fn decode(len: usize, not_copied: usize, word: usize, addr: usize) -> Result<(), Stopped> {
        if word == 0 {
            return Ok(());
        }
        Err(Stopped {
            progress: len - not_copied.min(len),
            code: (word & 0xffff) as u16 as i16 as i32,
            addr_lsb: ((word >> WORD_LSB_SHIFT) & 0xff) as u32,
            addr,
        })
    }
}

/// Entry address of `mcsafe_asm_fill`, for tests that trace it.
pub(crate) fn fill_addr() -> usize {
    mcsafe_asm_fill as *const () as usize
}

/// Entry address of `mcsafe_asm_crc32c`, for tests that trace it.
pub(crate) fn crc32c_addr() -> usize {
    mcsafe_asm_crc32c as *const () as usize
}

/// Runs `mcsafe_asm_fill` once over `dst..dst+len` with `byte` (no forward step).
///
/// # Safety
/// `len > 0`; `dst..dst+len` does not wrap and is mapped writable, except where
/// it may fault with SIGBUS while the handler is installed.
#[inline]
pub(crate) unsafe fn call_fill(dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped> {
    let not_filled: usize;
    let word: usize;
    let addr: usize;
    // SAFETY: the routine follows the fill variant of the convention (asm/fill.s):
    // it writes only dst..dst+len (valid per this function's contract), uses no
    // stack beyond its return address, keeps DF clear, and clobbers nothing
    // outside the operands and the C ABI's caller-saved set.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") fill_addr() => not_filled,
            inlateout("rdi") dst => _,
            inlateout("rsi") dst => _,
            inlateout("rdx") len => _,
            inlateout("rcx") usize::from(byte) => word,
            lateout("r11") addr,
            clobber_abi("C"),
        );
    }
    Stopped::decode(len, not_filled, word, addr)
}

/// Entry address of a folding checksum routine, for tests that trace it.
pub(crate) fn crc32c_fold_addr(routine: CrcRoutine) -> usize {
    routine.addr()
}

/// A checksum routine: the one-stream `crc32` loop (`asm/crc32c.s`, SSE4.2) or
/// a folding routine (`asm/crc32c_fold.s`: PCLMULQDQ and AVX, or VPCLMULQDQ
/// and AVX2, too). All follow the crc32c variant of the convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrcRoutine {
    /// `mcsafe_asm_crc32c`: one `crc32` chain, aligned loads (the careful one).
    Stream,
    /// `mcsafe_asm_crc32c_fold128`: blocks folded in xmm registers beside three
    /// `crc32` streams, committed block by block.
    Fold128,
    /// `mcsafe_asm_crc32c_fold256`: the same in ymm registers (VPCLMULQDQ).
    Fold256,
}

impl CrcRoutine {
    /// The entry of the copy-and-checksum routine of the same width
    /// (`asm/copy_crc32c.s`), for a folding routine.
    pub(crate) fn copy_addr(self) -> Option<usize> {
        let entry: unsafe extern "C" fn() = match self {
            CrcRoutine::Stream => return None,
            CrcRoutine::Fold128 => mcsafe_asm_copy_crc32c_fold128,
            CrcRoutine::Fold256 => mcsafe_asm_copy_crc32c_fold256,
        };
        Some(entry as usize)
    }

    pub(crate) fn addr(self) -> usize {
        let entry: unsafe extern "C" fn() = match self {
            CrcRoutine::Stream => mcsafe_asm_crc32c,
            CrcRoutine::Fold128 => mcsafe_asm_crc32c_fold128,
            CrcRoutine::Fold256 => mcsafe_asm_crc32c_fold256,
        };
        entry as usize
    }
}

/// Runs a checksum routine once over `src..src+len`, continuing the CRC state
/// `state` (not inverted). Returns the state of the bytes it checksummed: all of
/// them, or, when stopped, exactly `progress` of them (see asm/crc32c.s).
///
/// # Safety
/// `len > 0`; the CPU can run `routine` (see `cpu::crc_routine`); `src..src+len`
/// does not wrap and is mapped readable, except where it may fault with SIGBUS
/// (which kills the process if the handler is not installed, as any read would).
#[inline(always)]
pub(crate) unsafe fn call_crc32c(
    routine: CrcRoutine,
    src: *const u8,
    len: usize,
    state: u32,
) -> (u32, Result<(), Stopped>) {
    // SAFETY: per this function's contract.
    unsafe { call_crc32c_at(routine.addr(), src, len, state) }
}

/// Below this many bytes, the checksum routines touch no register beyond the
/// C ABI's caller-saved set (asm/crc32c.s never does; the folding routines' short
/// path, FOLD_CHAIN_MAX in asm/crc32c_fold.s, does not), so the call needs no
/// save of r12-r15 around it: short checksums cost a few instructions less.
pub(crate) const CRC_SHORT: usize = 257;

/// [`call_crc32c`] with the routine's entry address (from `CrcRoutine::addr`).
///
/// # Safety
/// As for [`call_crc32c`], `entry` the entry of a routine this CPU can run.
#[inline(always)]
pub(crate) unsafe fn call_crc32c_at(
    entry: usize,
    src: *const u8,
    len: usize,
    state: u32,
) -> (u32, Result<(), Stopped>) {
    // SAFETY: per this function's contract.
    unsafe {
        if len < CRC_SHORT {
            call_crc32c_short(entry, src, len, state)
        } else {
            call_crc32c_long(entry, src, len, state)
        }
    }
}

/// [`call_crc32c_at`] for fewer than [`CRC_SHORT`] bytes: no register saved.
///
/// # Safety
/// As for [`call_crc32c_at`], with `len < CRC_SHORT`.
#[inline(always)]
pub(crate) unsafe fn call_crc32c_short(
    entry: usize,
    src: *const u8,
    len: usize,
    state: u32,
) -> (u32, Result<(), Stopped>) {
    let not_done: usize;
    let word: usize;
    let addr: usize;
    let state_out: usize;
    // SAFETY: as in `call_crc32c_long`; below CRC_SHORT bytes the routines
    // leave r12-r15 alone.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") entry => not_done,
            inlateout("rdi") src => _,
            inlateout("rsi") state as usize => state_out,
            inlateout("rdx") len => _,
            lateout("rcx") word,
            lateout("r11") addr,
            clobber_abi("C"),
        );
    }
    (state_out as u32, Stopped::decode(len, not_done, word, addr))
}

/// [`call_crc32c_at`] for any length, r12-r15 saved around it.
///
/// # Safety
/// As for [`call_crc32c_at`].
#[inline(always)]
pub(crate) unsafe fn call_crc32c_long(
    entry: usize,
    src: *const u8,
    len: usize,
    state: u32,
) -> (u32, Result<(), Stopped>) {
    let not_done: usize;
    let word: usize;
    let addr: usize;
    let state_out: usize;
    // SAFETY: the routines follow the crc32c variant of the convention
    // (asm/crc32c.s, asm/crc32c_fold.s): they read only src..src+len (valid per
    // this function's contract), write no memory, use no stack beyond their
    // return address, and clobber nothing outside the operands, r12-r15 and the
    // C ABI's caller-saved set.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") entry => not_done,
            inlateout("rdi") src => _,
            inlateout("rsi") state as usize => state_out,
            inlateout("rdx") len => _,
            lateout("rcx") word,
            lateout("r11") addr,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    (state_out as u32, Stopped::decode(len, not_done, word, addr))
}

/// Runs a copy-and-checksum routine (`asm/copy_crc32c.s`) once: copies `len`
/// bytes from `src` to `dst` and continues the CRC state `state` (not inverted)
/// over them. Returns the state of the bytes copied: all of them, or, when
/// stopped, exactly `progress` of them (every one stored, and checksummed from
/// the source).
///
/// # Safety
/// As for [`call`] for `dst`, `src` and `len`; `entry` is one of
/// [`CrcRoutine::copy_addr`] and the CPU can run that routine.
#[inline]
pub(crate) unsafe fn call_copy_crc32c(
    entry: usize,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    state: u32,
) -> (u32, Result<(), Stopped>) {
    let not_done: usize;
    let word: usize;
    let addr: usize;
    let state_out: usize;
    // SAFETY: the routine follows the copy-and-checksum variant of the convention
    // (asm/copy_crc32c.s): it reads only src..src+len and writes only
    // dst..dst+len (valid per this function's contract) and 16 bytes of the red
    // zone below its return address (this block is not `nostack`), and clobbers
    // nothing outside the operands, r12-r15 and the C ABI's caller-saved set.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") entry => not_done,
            inlateout("rdi") dst => _,
            inlateout("rsi") state as usize => state_out,
            inlateout("rdx") len => _,
            inlateout("rcx") src => word,
            lateout("r11") addr,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    (state_out as u32, Stopped::decode(len, not_done, word, addr))
}
