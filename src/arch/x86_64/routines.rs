//! The copy routines of `asm/`, and the one place that calls them.
//!
//! The routines use their own calling convention (described at the top of
//! `asm/landing_pads.s`): a fault ends a routine at a fixup that returns the
//! bytes not copied together with the fault the SIGBUS handler recorded in
//! registers. They are called only through [`call`], whose `asm!` block names
//! every register the convention uses.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::Thresholds;
use crate::Strategy;

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
    include_str!("../../../asm/landing_pads_end.s"),
    options(att_syntax, raw)
);

unsafe extern "C" {
    // Not C functions: declared only to take their addresses.
    fn mcsafe_copy_fragile();
    fn mcsafe_copy_rep_movsb();
    fn mcsafe_copy_avx2();
    fn mcsafe_copy_avx512();
}

unsafe extern "C" {
    // Size thresholds read by the vector routines (asm/landing_pads.s).
    static mcsafe_rep_movsb_threshold: AtomicUsize;
    static mcsafe_non_temporal_threshold: AtomicUsize;
}

/// Sets the size thresholds of the vector routines; called once, before any
/// routine is published.
pub(crate) fn set_thresholds(t: Thresholds) {
    // SAFETY: two 8-byte aligned words in .data, declared by the assembly and
    // only ever accessed as atomics (the routines only read them).
    unsafe {
        mcsafe_rep_movsb_threshold.store(t.rep_movsb, Ordering::Relaxed);
        mcsafe_non_temporal_threshold.store(t.non_temporal, Ordering::Relaxed);
    }
}

/// The size thresholds in force.
pub(crate) fn thresholds() -> Thresholds {
    // SAFETY: as in `set_thresholds`.
    unsafe {
        Thresholds {
            rep_movsb: mcsafe_rep_movsb_threshold.load(Ordering::Relaxed),
            non_temporal: mcsafe_non_temporal_threshold.load(Ordering::Relaxed),
        }
    }
}

/// The entry address of one copy routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Routine(usize);

impl Routine {
    /// The routine that implements `strategy` (whether or not the CPU can run it).
    pub(crate) fn of(strategy: Strategy) -> Routine {
        let entry: unsafe extern "C" fn() = match strategy {
            Strategy::Fragile => mcsafe_copy_fragile,
            Strategy::RepMovsb => mcsafe_copy_rep_movsb,
            Strategy::Avx2 => mcsafe_copy_avx2,
            Strategy::Avx512 => mcsafe_copy_avx512,
        };
        Routine(entry as usize)
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
