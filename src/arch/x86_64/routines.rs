//! The copy routines of `asm/`, and the one place that calls them.
//!
//! Two ways in (asm/landing_pads.s, "Two ways in"): the strategy routines are C
//! functions that return `Result<(), Fault>` themselves (`copy_current`,
//! `copy_strategy`: the hot path of `copy_mc`, one indirect call), and every
//! routine can be called in register mode, where a fault ends it at a fixup that
//! returns the bytes not done and the fault in registers (`call`, `call_fill`,
//! `call_crc32c`, whose `asm!` blocks name every register the convention uses).
//! The glue at the end is what the C-mode exits call: the careful forward step, the
//! panic for refused arguments, and first use.
//!
//! Change it (or the list of `asm/` files below), then run `cargo test -p mcsafe
//! --lib`, `cargo test -p mcsafe-tests --test every_instruction --test sweep --test
//! storage_sweep`, `cargo test -p mcsafe-capi` (the C API mode) and `cargo bench
//! --bench summary -- --quick`.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::Thresholds;
use crate::fault::RawResult;
use crate::{Fault, Strategy};

// One `global_asm!`, so that every file lands in one object: landing_pads.s first
// (its macros serve the others). The landing-pad rows of every routine go to one
// table section in .text order (see landing_pads.s). `raw`: the AT&T sources contain
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
    fn mcsafe_asm_copy_not_ready_0();
    fn mcsafe_asm_copy_not_ready_1();
    fn mcsafe_asm_copy_not_ready_2();
    fn mcsafe_asm_copy_not_ready_3();
    fn mcsafe_asm_copy_not_ready_4();
}

unsafe extern "C" {
    /// C API mode (asm/landing_pads.s): libmcsafe's `mcsafe_copy` once the
    /// dispatch word is set.
    fn mcsafe_asm_capi_copy(
        dst: *mut u8,
        src: *const u8,
        len: usize,
        fault: *mut crate::internals::CFault,
    ) -> core::ffi::c_int;
}

unsafe extern "C" {
    // Size thresholds read by the vector routines (asm/landing_pads.s).
    static mcsafe_asm_avx2_rep_movsb_threshold: AtomicUsize;
    static mcsafe_asm_avx512_rep_movsb_threshold: AtomicUsize;
    static mcsafe_asm_non_temporal_threshold: AtomicUsize;
    // The dispatch words (asm/landing_pads.s): the routine of Strategy::current, and
    // of each strategy in Strategy::ALL order.
    static mcsafe_asm_copy_current: AtomicUsize;
    static mcsafe_asm_copy_strategies: [AtomicUsize; Strategy::ALL.len()];
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

/// Which dispatch word a copy goes through: [`Strategy::current`]'s, or a named
/// strategy's ([`copy_mc_with`](crate::copy_mc_with)). The index is the slot
/// number the not-ready stubs pass to [`glue_first_use`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Current,
    Of(Strategy),
}

impl Slot {
    fn word(self) -> &'static AtomicUsize {
        // SAFETY: dispatch words in .data, declared by the assembly, 8-byte aligned,
        // written only through these atomics (the routines never write them).
        unsafe {
            match self {
                Slot::Current => &mcsafe_asm_copy_current,
                Slot::Of(s) => &mcsafe_asm_copy_strategies[s as usize],
            }
        }
    }

    fn from_index(index: usize) -> Slot {
        Strategy::ALL
            .get(index)
            .map_or(Slot::Current, |&s| Slot::Of(s))
    }

    fn not_ready_stub(self) -> usize {
        let stub: unsafe extern "C" fn() = match self {
            Slot::Of(Strategy::Fragile) => mcsafe_asm_copy_not_ready_0,
            Slot::Of(Strategy::RepMovsb) => mcsafe_asm_copy_not_ready_1,
            Slot::Of(Strategy::Avx2) => mcsafe_asm_copy_not_ready_2,
            Slot::Of(Strategy::Avx512) => mcsafe_asm_copy_not_ready_3,
            Slot::Current => mcsafe_asm_copy_not_ready_4,
        };
        stub as usize
    }

    /// The routine behind this slot, or `None` until [`Slot::publish`] (and for a
    /// strategy the CPU cannot run, for good).
    #[inline(always)]
    pub(crate) fn routine(self) -> Option<Routine> {
        if self == Slot::Current {
            // The hot path of `internals::try_copy`: the word and the stub's
            // address by their own symbols, not through the GOT.
            let (addr, stub): (usize, usize);
            // SAFETY: an aligned load of a dispatch word (x86 loads are acquire
            // loads) and an address computation.
            unsafe {
                asm!(
                    "mov {addr}, qword ptr [rip + mcsafe_asm_copy_current]",
                    "lea {stub}, [rip + mcsafe_asm_copy_not_ready_4]",
                    addr = out(reg) addr,
                    stub = out(reg) stub,
                    options(pure, nostack, preserves_flags, readonly)
                );
            }
            return (addr != stub).then_some(Routine(addr));
        }
        let addr = self.word().load(Ordering::Acquire);
        (addr != self.not_ready_stub()).then_some(Routine(addr))
    }

    /// Makes copies through this slot call `routine`. Only after the handler and
    /// the thresholds are in place.
    pub(crate) fn publish(self, routine: Routine) {
        self.word().store(routine.0, Ordering::Release);
    }

    /// The C function behind this slot (a not-ready stub, or the routine).
    #[inline(always)]
    fn function(self) -> CopyFn {
        let addr = match self {
            // The hot path: one load by the symbol's own address, not through the
            // GOT as a Rust reference to a static of another crate would be.
            Slot::Current => {
                let addr: usize;
                // SAFETY: an aligned load of a dispatch word (as `word().load`;
                // x86 loads are acquire loads).
                unsafe {
                    asm!(
                        "mov {}, qword ptr [rip + mcsafe_asm_copy_current]",
                        out(reg) addr,
                        options(nostack, preserves_flags, readonly)
                    );
                }
                addr
            }
            slot => slot.word().load(Ordering::Acquire),
        };
        // SAFETY: every value of a dispatch word is the address of a C-mode entry:
        // a stub of asm/landing_pads.s or a strategy routine (Slot::publish).
        unsafe { core::mem::transmute::<usize, CopyFn>(addr) }
    }
}

/// A strategy routine called in C mode. `C-unwind`: its refused and first-use
/// exits jump to Rust code that may panic (bad ranges, a bad `MCSAFE_STRATEGY`),
/// and that panic unwinds into the caller of the copy.
type CopyFn = unsafe extern "C-unwind" fn(*mut u8, *const u8, usize) -> RawResult;

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

/// The fault word the handler writes to rax: si_code in bits 0..16, si_addr_lsb
/// in bits 16..24; never 0 for a real fault because the handler only redirects
/// positive si_codes.
pub(crate) const WORD_LSB_SHIFT: u32 = 16;

/// The refusal of a routine's argument check in register mode (asm/landing_pads.s).
const STATUS_BAD_ARGUMENTS: usize = 0x8000_0000_0000_0001;

impl Stopped {
    /// The fault of a routine over `len` bytes from its output registers.
    #[inline]
    fn from_word(len: usize, not_copied: usize, word: usize, addr: usize) -> Stopped {
        Stopped {
            progress: len - not_copied.min(len),
            code: (word & 0xffff) as u16 as i16 as i32,
            addr_lsb: ((word >> WORD_LSB_SHIFT) & 0xff) as u32,
            addr,
        }
    }

    /// The outcome of a one-buffer routine (fill, checksum) over `len` bytes.
    #[inline]
    fn decode(len: usize, not_copied: usize, word: usize, addr: usize) -> Result<(), Stopped> {
        match word {
            0 => Ok(()),
            word => Err(Stopped::from_word(len, not_copied, word, addr)),
        }
    }
}

/// How a routine called in register mode ended without doing every byte, from
/// its output registers, which also hand back the call's arguments and the
/// routine's entry (asm/landing_pads.s, "Register mode").
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    word: usize,
    not_copied: usize,
    addr: usize,
    /// The routine that stopped.
    pub(crate) routine: Routine,
    pub(crate) dst: *mut u8,
    pub(crate) src: *const u8,
    pub(crate) len: usize,
}

/// Why a routine called in register mode ended early.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Why {
    /// A lost granule stopped it.
    Fault(Stopped),
    /// The argument check refused the ranges; nothing was touched.
    BadArguments,
}

impl Exit {
    pub(crate) fn why(&self) -> Why {
        match self.word {
            STATUS_BAD_ARGUMENTS => Why::BadArguments,
            word => Why::Fault(Stopped::from_word(
                self.len,
                self.not_copied,
                word,
                self.addr,
            )),
        }
    }
}

/// Copies with the routine of [`Strategy::current`]: the whole of `copy_mc` on
/// the hot path, one indirect C call whose result is the `Result`.
///
/// # Safety
/// `src..src+len` readable and `dst..dst+len` writable, except where they may
/// fault with SIGBUS, or refused by the routine's argument check.
#[inline(always)]
pub(crate) unsafe fn copy_current(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    // SAFETY: the routine refuses bad ranges before any access; the caller
    // vouches for the rest.
    unsafe { Slot::Current.function()(dst, src, len) }.into_result()
}

/// Copies with the routine of `strategy` (`copy_mc_with`).
///
/// # Safety
/// As for [`copy_current`].
#[inline(always)]
pub(crate) unsafe fn copy_strategy(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Fault> {
    // SAFETY: as in copy_current.
    unsafe { Slot::Of(strategy).function()(dst, src, len) }.into_result()
}

/// libmcsafe's `mcsafe_copy` after [`Slot::routine`] of [`Slot::Current`] is
/// set: the current routine in C API mode, one call it tail-calls.
///
/// # Safety
/// As for [`copy_current`]; `fault` is NULL or writable; the dispatch word is set.
#[inline(always)]
pub(crate) unsafe fn capi_copy(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    fault: *mut crate::internals::CFault,
) -> core::ffi::c_int {
    // SAFETY: per this function's contract; the stub and the routine follow the
    // C ABI, and no panic leaves them (the glue catches it).
    unsafe { mcsafe_asm_capi_copy(dst, src, len, fault) }
}

/// Calls a routine in register mode: one `call` that names every register of the
/// convention. `$target` is the call's operand; rax holds `$rax` on entry.
macro_rules! call_in_register_mode {
    ($target:literal, $rax:expr, $dst:expr, $src:expr, $len:expr) => {{
        let (word, not_copied, addr, routine, dst, src, len): (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
        );
        // SAFETY: the routine follows the convention in asm/landing_pads.s: it reads
        // only src..src+len and writes only dst..dst+len (valid per the caller's
        // contract; a routine that checks its arguments refuses what is not), uses
        // no stack beyond two return addresses, keeps DF clear, and clobbers nothing
        // outside the operands and the C ABI's caller-saved set. After an exit it
        // hands back its arguments and its entry, so the caller keeps nothing alive
        // across the call.
        unsafe {
            asm!(
                $target,
                inlateout("rax") $rax => word,
                inlateout("rdi") $dst => _,
                inlateout("rsi") $src => _,
                inlateout("rdx") $len => routine,
                lateout("rcx") not_copied,
                lateout("r11") addr,
                lateout("r8") dst,
                lateout("r9") src,
                lateout("r10") len,
                clobber_abi("C"),
            );
        }
        match word {
            0 => Ok(()),
            word => Err(Exit {
                word,
                not_copied,
                addr,
                routine: Routine(routine),
                dst: dst as *mut u8,
                src: src as *const u8,
                len,
            }),
        }
    }};
}

/// Runs a strategy routine once in register mode (through
/// `mcsafe_asm_call_registers`, whose return address its fixups recognise): for
/// the careful forward step, no retry.
///
/// # Safety
/// `routine` is a strategy routine and the CPU can run it; as for
/// [`copy_current`] for the ranges.
#[inline]
pub(crate) unsafe fn call(
    routine: Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Exit> {
    call_in_register_mode!("call mcsafe_asm_call_registers", routine.0, dst, src, len)
}

/// Runs an exact-size routine (`Routine::exact`) once: register mode is its only
/// mode, so it is called directly.
///
/// # Safety
/// `routine` is an exact routine of `len` bytes; `src..src+len` readable and
/// `dst..dst+len` writable, except where they may fault with SIGBUS, not
/// overlapping (the exact routines do not check).
#[inline(always)]
pub(crate) unsafe fn call_exact(
    routine: Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Exit> {
    call_in_register_mode!("call rax", routine.0, dst, src, len)
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
            inlateout("rax") fill_addr() => word,
            inlateout("rdi") dst => _,
            inlateout("rsi") dst => _,
            inlateout("rdx") len => _,
            inlateout("rcx") usize::from(byte) => not_filled,
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
            inlateout("rax") entry => word,
            inlateout("rdi") src => _,
            inlateout("rsi") state as usize => state_out,
            inlateout("rdx") len => _,
            lateout("rcx") not_done,
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
            inlateout("rax") entry => word,
            inlateout("rdi") src => _,
            inlateout("rsi") state as usize => state_out,
            inlateout("rdx") len => _,
            lateout("rcx") not_done,
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
            inlateout("rax") entry => word,
            inlateout("rdi") dst => _,
            inlateout("rsi") state as usize => state_out,
            inlateout("rdx") len => _,
            inlateout("rcx") src => not_done,
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

// ---- The glue: what the C-mode exits of asm/landing_pads.s jump to ----

// Trampolines with fixed, hidden names for the assembly, to the Rust functions
// below (whose names are mangled).
global_asm!(
    ".pushsection .text.mcsafe_glue, \"ax\", @progbits",
    ".p2align 4",
    ".globl mcsafe_asm_glue_finish_copy",
    ".hidden mcsafe_asm_glue_finish_copy",
    "mcsafe_asm_glue_finish_copy: jmp {finish}",
    ".globl mcsafe_asm_glue_refused",
    ".hidden mcsafe_asm_glue_refused",
    "mcsafe_asm_glue_refused: jmp {refused}",
    ".globl mcsafe_asm_glue_first_use",
    ".hidden mcsafe_asm_glue_first_use",
    "mcsafe_asm_glue_first_use: jmp {first_use}",
    ".popsection",
    finish = sym glue_finish_copy,
    refused = sym glue_refused,
    first_use = sym glue_first_use,
);

/// What a C-mode fixup saves before calling [`glue_finish_copy`] (FAULT_TO_RUST
/// in asm/landing_pads.s, in this order).
#[repr(C)]
struct FixupFrame {
    dst: *mut u8,
    src: *const u8,
    len: usize,
    cursor: usize,
    word: usize,
    addr: usize,
    routine: usize,
    /// 1 when the copy was called by `mcsafe_asm_capi_copy` (C API mode).
    capi: usize,
    /// In C API mode, its `fault` argument (NULL or writable).
    capi_fault: *mut crate::internals::CFault,
}

/// A C-mode copy stopped by a fault: the careful forward step, then the `Result`
/// (C mode), or libmcsafe's `-EIO` with `*capi_fault` filled in (C API mode).
///
/// # Safety
/// Called only by a C-mode fixup, with the frame of a routine that was called
/// with these ranges (which the caller of the copy vouched for) and stopped.
unsafe extern "C-unwind" fn glue_finish_copy(frame: &FixupFrame) -> RawResult {
    let done = frame.cursor.wrapping_sub(frame.dst as usize);
    let stopped = Stopped::from_word(
        frame.len,
        frame.len.saturating_sub(done),
        frame.word,
        frame.addr,
    );
    // SAFETY: per this function's contract.
    let finish = || unsafe {
        crate::copy::finish_copy(
            Routine(frame.routine),
            frame.dst,
            frame.src,
            frame.len,
            stopped,
        )
    };
    if frame.capi == 0 {
        return RawResult::from_result(Err(finish()));
    }
    // C API mode: an int in eax, and no panic may reach C.
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(finish)) {
        Ok(fault) => {
            if !frame.capi_fault.is_null() {
                // SAFETY: the C caller passes NULL or a writable mcsafe_fault.
                unsafe { frame.capi_fault.write_unaligned(fault.into()) };
            }
            -libc::EIO
        }
        Err(_) => -libc::ENOTRECOVERABLE,
    };
    RawResult::from_int(code)
}

/// A C-mode copy whose argument check refused its ranges: nothing to do for
/// `len == 0`, else the panic that names the problem.
///
/// # Safety
/// Called only by `mcsafe_asm_copy_refused`, with the copy's arguments; it
/// touches no memory.
unsafe extern "C-unwind" fn glue_refused(dst: *mut u8, src: *const u8, len: usize) -> RawResult {
    if len == 0 {
        return RawResult::from_result(Ok(()));
    }
    crate::copy::reject(dst, src, len)
}

/// A copy through a dispatch word not set yet: installs everything (or panics
/// as first use does, e.g. for a strategy this CPU cannot run), then copies.
///
/// # Safety
/// Called only by a not-ready stub, with the copy's arguments (which the
/// caller vouched for) and its slot.
unsafe extern "C-unwind" fn glue_first_use(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    slot: usize,
) -> RawResult {
    let routine = super::resolve(Slot::from_index(slot));
    // SAFETY: a strategy routine is a C-mode entry (asm/landing_pads.s); the
    // arguments are the caller's, and the routine checks them.
    unsafe { core::mem::transmute::<usize, CopyFn>(routine.0)(dst, src, len) }
}
