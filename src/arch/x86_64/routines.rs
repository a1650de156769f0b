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
    fn mcsafe_asm_copy_not_ready();
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
/// strategy's ([`copy_mc_with`](crate::copy_mc_with)).
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

    /// The routine behind this slot, or `None` until [`Slot::publish`] (and for a
    /// strategy the CPU cannot run, for good).
    pub(crate) fn routine(self) -> Option<Routine> {
        let addr = self.word().load(Ordering::Acquire);
        (addr != not_ready_addr()).then_some(Routine(addr))
    }

    /// Makes copies through this slot call `routine`. Only after the handler and
    /// the thresholds are in place.
    pub(crate) fn publish(self, routine: Routine) {
        self.word().store(routine.0, Ordering::Release);
    }
}

fn not_ready_addr() -> usize {
    mcsafe_asm_copy_not_ready as *const () as usize
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

/// The status words of asm/landing_pads.s besides faults.
const STATUS_BAD_ARGUMENTS: usize = 0x8000_0000_0000_0001;
const STATUS_NOT_READY: usize = 0x8000_0000_0000_0002;

/// How a copy routine ended without copying every byte, from its output
/// registers: it hands back the call's arguments too, so that the caller keeps
/// nothing alive across the call (asm/landing_pads.s, "Calling convention").
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    word: usize,
    not_copied: usize,
    addr: usize,
    /// The routine that stopped (its entry address).
    pub(crate) routine: Routine,
    pub(crate) dst: *mut u8,
    pub(crate) src: *const u8,
    pub(crate) len: usize,
}

/// Why a copy routine ended early.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Why {
    /// A lost granule stopped it.
    Fault(Stopped),
    /// The argument check refused the ranges; nothing was touched.
    BadArguments,
    /// The dispatch word is not set yet; nothing was touched.
    NotReady,
}

impl Exit {
    /// The same exit, as if `routine` had stopped (for `write_mc`, whose forward
    /// steps use another routine than its first call).
    pub(crate) fn with_routine(self, routine: Routine) -> Exit {
        Exit { routine, ..self }
    }

    pub(crate) fn why(&self) -> Why {
        match self.word {
            STATUS_BAD_ARGUMENTS => Why::BadArguments,
            STATUS_NOT_READY => Why::NotReady,
            word => Why::Fault(Stopped::from_word(
                self.len,
                self.not_copied,
                word,
                self.addr,
            )),
        }
    }
}

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

/// Calls a copy routine: one `call` that names every register of the convention.
/// `$target` is the call's operand: through a dispatch word, or through rax, which
/// then holds `rax = ...` on entry.
macro_rules! call_copy_routine {
    ($target:literal, $dst:expr, $src:expr, $len:expr) => {
        call_copy_routine!(@call $target, $dst, $src, $len, not_copied, [lateout("rax") not_copied])
    };
    ($target:literal, $dst:expr, $src:expr, $len:expr, rax = $rax:expr) => {
        call_copy_routine!(
            @call $target, $dst, $src, $len, not_copied, [inlateout("rax") $rax => not_copied]
        )
    };
    (@call $target:literal, $dst:expr, $src:expr, $len:expr, $not_copied:ident, [$($rax:tt)*]) => {{
        let (word, $not_copied, addr, routine, dst, src, len): (
            usize, usize, usize, usize, usize, usize, usize,
        );
        // SAFETY: the routine follows the convention in asm/landing_pads.s: it reads
        // only src..src+len and writes only dst..dst+len (valid per the caller's
        // contract; a routine that checks its arguments refuses what is not), uses
        // no stack beyond its return address, keeps DF clear, and clobbers nothing
        // outside the operands and the C ABI's caller-saved set.
        unsafe {
            asm!(
                $target,
                $($rax)*,
                inlateout("rdi") $dst => _,
                inlateout("rsi") $src => _,
                inlateout("rdx") $len => routine,
                lateout("rcx") word,
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
                not_copied: $not_copied,
                addr,
                routine: Routine(routine),
                dst: dst as *mut u8,
                src: src as *const u8,
                len,
            }),
        }
    }};
}

/// Runs the routine of [`Strategy::current`] once over the whole copy: the hot path
/// of `copy_mc`, one indirect call through the dispatch word.
///
/// # Safety
/// `src..src+len` readable and `dst..dst+len` writable, except where they may
/// fault with SIGBUS, or refused by the routine's argument check.
#[inline(always)]
pub(crate) unsafe fn call_current(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Exit> {
    call_copy_routine!(
        "call qword ptr [rip + mcsafe_asm_copy_current]",
        dst,
        src,
        len
    )
}

/// Runs the routine of `strategy` once (`copy_mc_with`).
///
/// # Safety
/// As for [`call_current`].
#[inline(always)]
pub(crate) unsafe fn call_strategy(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Exit> {
    call_copy_routine!(
        "lea rcx, [rip + mcsafe_asm_copy_strategies]\n call qword ptr [rcx + 8*rax]",
        dst,
        src,
        len,
        rax = strategy as usize
    )
}

/// Runs one routine once: no retry, no forward step (see `copy.rs`).
///
/// # Safety
/// `routine` is one of this module's routines and the CPU can run it; as for
/// [`call_current`] for the ranges, which do not overlap (the exact routines do
/// not check).
#[inline(always)]
pub(crate) unsafe fn call(
    routine: Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Exit> {
    call_copy_routine!("call rax", dst, src, len, rax = routine.0)
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

/// Runs `mcsafe_asm_crc32c` once over `src..src+len`, continuing the CRC state
/// `state` (not inverted). Returns the state of the bytes it checksummed: all of
/// them, or, when stopped, exactly `progress` of them (see asm/crc32c.s).
///
/// # Safety
/// `len > 0`; the CPU has SSE4.2; `src..src+len` does not wrap and is mapped
/// readable, except where it may fault with SIGBUS while the handler is installed.
#[inline]
pub(crate) unsafe fn call_crc32c(
    src: *const u8,
    len: usize,
    state: u32,
) -> (u32, Result<(), Stopped>) {
    let not_done: usize;
    let word: usize;
    let addr: usize;
    let state_out: usize;
    // SAFETY: the routine follows the crc32c variant of the convention
    // (asm/crc32c.s): it reads only src..src+len (valid per this function's
    // contract), writes no memory, uses no stack beyond its return address, and
    // clobbers nothing outside the operands and the C ABI's caller-saved set.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") crc32c_addr() => not_done,
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
