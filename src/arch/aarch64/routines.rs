//! The routines of `asm/aarch64/`, and the one place that calls each convention.
//!
//! A routine is declared once, in the assembly (`ROUTINE name, convention ...
//! END_ROUTINE name`, asm/aarch64/routine.s, with asm/table.s's rows): that writes
//! its symbol, its landing-pad rows and its descriptor row. Here [`routine!`] names
//! it (`routine!("copy_advsimd")`: an `adrp`/`add` of its symbol, checked by the
//! linker), and one `asm!` block per convention runs it in register mode, naming
//! every register the convention uses ([`Routine::run`] for each): x16 = status,
//! x15 = bytes not done, x17 = si_addr, w3 = the CRC state; x0-x2 handed back
//! unchanged.
//!
//! Change it (or the list of `asm/aarch64/` files below), then run the aarch64
//! suite under qemu (`cargo test --target aarch64-unknown-linux-gnu -p mcsafe
//! --lib`, `-p mcsafe-tests --test sweep --test storage_sweep --test
//! copy_crc_sweep --test api`, `-p mcsafe-capi`) and `cargo xtask vm-test-aarch64`
//! (every instruction of every range under ptrace).

use core::arch::{asm, global_asm};

use crate::arch::{Routine, STATUS_BAD_ARGUMENTS, Stopped, Thresholds, outcome};

// One `global_asm!`, so that every file lands in one object: table.s (the tables,
// shared with x86-64) and routine.s first (their macros serve the others). The
// rows of every routine go to the table sections in .text order (see table.s).
// `raw`: the sources are not format strings.
global_asm!(
    include_str!("../../../asm/table.s"),
    include_str!("../../../asm/aarch64/routine.s"),
    include_str!("../../../asm/aarch64/copy.s"),
    include_str!("../../../asm/aarch64/fill.s"),
    include_str!("../../../asm/aarch64/crc32c.s"),
    options(raw)
);

/// The routine `mcsafe_asm_<name>` of `asm/aarch64/`, of the convention the
/// caller's type asks for: the address of its symbol (a misspelt name does not
/// link).
macro_rules! routine {
    ($name:literal) => {{
        let entry: usize;
        // SAFETY: an address computation, no memory access.
        unsafe {
            ::core::arch::asm!(
                concat!(
                    "adrp {0}, mcsafe_asm_", $name, "\n",
                    "add {0}, {0}, :lo12:mcsafe_asm_", $name
                ),
                out(reg) entry,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        $crate::arch::Routine::at(entry)
    }};
}
pub(crate) use routine;

/// The calling conventions (asm/aarch64/routine.s, CONV_*), as types.
pub(crate) mod conv {
    /// x0 = dst, x1 = src, x2 = len (the strategy, the exact-size routines).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Copy {}
    /// x0 = dst, x2 = len, w3 = the byte.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Fill {}
    /// x0 = src, x2 = len, w3 = state.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Crc {}
    /// x0 = dst, x1 = src, x2 = len, w3 = state.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum CopyCrc {}
}

/// The exit registers of one call.
struct Out {
    /// x16: 0, the fault word, or [`STATUS_BAD_ARGUMENTS`].
    status: usize,
    /// x15: bytes not done (when `status` is not 0).
    not_done: usize,
    /// x17: `si_addr` (after a fault).
    addr: usize,
    /// w3: the CRC state of exactly the bytes done (checksums).
    state: u32,
}

/// The one call: `blr` to `entry` with x0-x3 as given. Every convention is a
/// choice of what x0-x3 hold.
///
/// # Safety
/// `entry` is a routine of asm/aarch64/ this CPU runs; x0-x3 are its arguments,
/// with the memory its convention reads and writes valid (the caller's contract),
/// except where it may fault with SIGBUS.
#[inline(always)]
unsafe fn call(entry: usize, x0: usize, x1: usize, x2: usize, x3: u32) -> Out {
    let (status, not_done, addr, state): (usize, usize, usize, usize);
    // SAFETY: the routine follows asm/aarch64/routine.s: it reads and writes only
    // the buffers its arguments name (valid per this function's contract), uses no
    // stack, leaves x0-x2, x18-x29, sp and v8-v15 alone (the handler's redirect
    // writes only pc, x16 and x17), and clobbers only what is named here: x3-x17,
    // x30 (`blr`), v0-v7, v16-v31 and NZCV. Naming them, rather than the whole of
    // the C ABI's caller-saved set, lets a caller keep the arguments and its
    // callee-saved registers where they are across the call (no spills of d8-d15).
    unsafe {
        asm!(
            "blr {entry}",
            entry = in(reg) entry,
            in("x0") x0,
            in("x1") x1,
            in("x2") x2,
            inout("x3") x3 as usize => state,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _,
            lateout("x15") not_done,
            lateout("x16") status,
            lateout("x17") addr,
            out("x30") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    Out {
        status,
        not_done,
        addr,
        state: state as u32,
    }
}

/// How a copy routine ended without doing every byte.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Exit {
    /// The argument check refused the ranges; nothing was touched.
    Refused,
    /// A fault stopped it.
    Stopped(Stopped),
}

impl Routine<conv::Copy> {
    /// Runs the routine once.
    ///
    /// # Safety
    /// As for `copy_mc` for the memory (a strategy routine refuses bad ranges
    /// before any access); an exact-size routine gets exactly its size, and ranges
    /// its callers checked (it checks nothing).
    #[inline(always)]
    pub(crate) unsafe fn run(self, dst: *mut u8, src: *const u8, len: usize) -> Result<(), Exit> {
        // SAFETY: per this function's contract (copy: x0 = dst, x1 = src).
        let out = unsafe { call(self.addr(), dst as usize, src as usize, len, 0) };
        match out.status {
            0 => Ok(()),
            STATUS_BAD_ARGUMENTS => Err(Exit::Refused),
            word => Err(Exit::Stopped(Stopped::from_exit(
                len,
                out.not_done,
                word,
                out.addr,
            ))),
        }
    }
}

impl Routine<conv::Fill> {
    /// Runs the fill routine once over `dst..dst+len` with `byte`.
    ///
    /// # Safety
    /// `len > 0`; `dst..dst+len` does not wrap and is mapped writable, except where
    /// it may fault with SIGBUS while the handler is installed.
    #[inline(always)]
    pub(crate) unsafe fn run(self, dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped> {
        // SAFETY: per this function's contract (fill: x0 = dst, w3 = the byte).
        let out = unsafe { call(self.addr(), dst as usize, 0, len, u32::from(byte)) };
        outcome(len, out.not_done, out.status, out.addr)
    }
}

impl Routine<conv::Crc> {
    /// Runs a checksum routine once over `src..src+len`, continuing `state` (not
    /// inverted); returns the state of exactly the bytes checksummed.
    ///
    /// # Safety
    /// `len > 0`; the CPU runs the routine; `src..src+len` does not wrap and is
    /// mapped readable, except where it may fault with SIGBUS.
    #[inline(always)]
    pub(crate) unsafe fn run(
        self,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        // SAFETY: per this function's contract (checksum: x0 = src).
        let out = unsafe { call(self.addr(), src as usize, 0, len, state) };
        (out.state, outcome(len, out.not_done, out.status, out.addr))
    }
}

impl Routine<conv::CopyCrc> {
    /// Runs the copy-and-checksum routine once: copies `len` bytes and continues
    /// `state` over them; returns the state of exactly the bytes copied.
    ///
    /// # Safety
    /// As for [`Routine::<conv::Copy>::run`] for the ranges (checked by the caller,
    /// `len > 0`); the CPU runs the routine.
    #[inline(always)]
    pub(crate) unsafe fn run(
        self,
        dst: *mut u8,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        // SAFETY: per this function's contract.
        let out = unsafe { call(self.addr(), dst as usize, src as usize, len, state) };
        (out.state, outcome(len, out.not_done, out.status, out.addr))
    }
}

/// Nothing to set: the aarch64 copy has fixed size classes (the test hooks' knob
/// changes nothing here).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn set_thresholds(_: Thresholds) {}

/// Nothing to set: there is no avx512 routine here (the test hooks' knob).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn set_avx512_page_streams(_: bool) {}

/// Nothing to set: there is no fold512 walk here (the test hooks' knob).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn set_fold512_prefetch(_: bool) {}

/// No fold512 walk here: no prefetch.
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn fold512_prefetch() -> bool {
    false
}

/// No avx512 routine here: no page streams.
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn avx512_page_streams() -> bool {
    false
}
