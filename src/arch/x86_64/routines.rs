//! The routines of `asm/`, and the one place that calls each convention.
//!
//! A routine is declared once, in the assembly (`ROUTINE name, convention ...
//! END_ROUTINE name`, asm/routine.s): that writes its symbol, its landing-pad rows
//! and its descriptor row. Here [`routine!`] names it (`routine!("copy_avx2")`: a
//! `lea` of its symbol, checked by the linker), and one `asm!` block per
//! convention runs it in register mode, naming every register the convention uses
//! ([`Routine::run`] for each). Nothing here counts routines or numbers slots: the
//! lists the tests walk are the descriptor table (`table.rs`).
//!
//! Change it (or the list of `asm/` files below), then run `cargo test -p mcsafe
//! --lib`, `cargo test -p mcsafe-tests --test every_instruction --test sweep --test
//! storage_sweep`, `cargo test -p mcsafe-capi` (the C API routines) and `cargo bench
//! --bench summary -- --quick`.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::Fault;
use crate::arch::{Stopped, Thresholds, outcome as decode};
use crate::fault::RawResult;

// One `global_asm!`, so that every file lands in one object: table.s (the tables,
// shared with aarch64) and routine.s first (their macros serve the others),
// dispatch.s next. The rows of every routine go to the table sections in .text
// order (see table.s). `raw`: the AT&T sources contain AVX-512 `{%k1}` operands,
// which must not be read as format arguments.
global_asm!(
    include_str!("../../../asm/table.s"),
    include_str!("../../../asm/routine.s"),
    include_str!("../../../asm/dispatch.s"),
    include_str!("../../../asm/copy_fragile.s"),
    include_str!("../../../asm/copy_rep_movsb.s"),
    include_str!("../../../asm/copy_vector.s"),
    include_str!("../../../asm/copy_exact.s"),
    include_str!("../../../asm/fill.s"),
    include_str!("../../../asm/crc32c.s"),
    include_str!("../../../asm/crc32c_fold.s"),
    include_str!("../../../asm/copy_crc32c.s"),
    include_str!("../../../asm/crc32c_fold512.s"),
    options(att_syntax, raw)
);

/// The routine `mcsafe_asm_<name>` of `asm/`, of the convention the caller's type
/// asks for: the address of its symbol (a misspelt name does not link).
macro_rules! routine {
    ($name:literal) => {{
        let entry: usize;
        // SAFETY: an address computation, no memory access.
        unsafe {
            ::core::arch::asm!(
                concat!("lea {}, [rip + mcsafe_asm_", $name, "]"),
                out(reg) entry,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        $crate::arch::x86_64::routines::Routine::at(entry)
    }};
}
pub(crate) use routine;

/// The calling conventions (asm/routine.s, CONV_*), as types: a [`Routine`] of one
/// can only be run the way its convention says.
pub(crate) mod conv {
    /// rdi = dst, rsi = src, rdx = len (the strategies, the exact-size routines).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Copy {}
    /// rdi = dst, rdx = len, ecx = the byte.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Fill {}
    /// rdi = src, esi = state, rdx = len, r9 = block size.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Crc {}
    /// rdi = dst, rcx = src, rdx = len, esi = state, r11 = block, rax = vector-only length.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum CopyCrc {}
    /// The C function `int f(void *dst, const void *src, size_t len, void *context)`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum CCopy {}
    /// The C function `RawResult f(void *dst, const void *src, size_t len)`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum RustCopy {}
}

// The typed entry (`Routine`), the refusal status and the decoding of the fault
// word are the same on every protected target: src/arch/mod.rs.
pub(crate) use crate::arch::{Routine, STATUS_BAD_ARGUMENTS};

/// How a routine ended without doing every byte, from its register-mode outputs,
/// which also hand back the call's arguments and the routine's entry
/// (asm/routine.s): the one exit of every routine Rust calls.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Exit {
    /// rax: a fault word or [`STATUS_BAD_ARGUMENTS`].
    pub(crate) word: usize,
    /// rcx: bytes not done.
    pub(crate) not_done: usize,
    /// r11: si_addr.
    pub(crate) addr: usize,
    /// rdx: the routine that stopped.
    pub(crate) routine: usize,
    /// r8, r9, r10: the call's arguments.
    pub(crate) dst: *mut u8,
    pub(crate) src: *const u8,
    pub(crate) len: usize,
}

impl Exit {
    /// The fault, over the bytes of this run. Only for a word that is one.
    #[inline]
    pub(crate) fn stopped(&self) -> Stopped {
        Stopped::from_exit(self.len, self.not_done, self.word, self.addr)
    }
}

/// Calls a routine of the copy convention: `$target` is the call (through the
/// dispatch word, or `call {entry}` with the entry among `$operands`).
macro_rules! call_copy_convention {
    ($target:literal, $dst:expr, $src:expr, $len:expr; $($operands:tt)*) => {{
        let (word, not_done, addr, routine, dst, src, len): (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
        );
        // SAFETY: the routine follows the copy convention (asm/routine.s): it reads
        // only src..src+len and writes only dst..dst+len (valid per the caller's
        // contract; a routine that checks its arguments refuses what is not), uses
        // no stack beyond its return address, keeps DF clear, and clobbers nothing
        // outside the operands and the C ABI's caller-saved set. After an exit it
        // hands back its arguments and its entry, so the caller keeps nothing alive
        // across the call.
        unsafe {
            asm!(
                $target,
                $($operands)*
                lateout("rax") word,
                inlateout("rdi") $dst => _,
                inlateout("rsi") $src => _,
                inlateout("rdx") $len => routine,
                lateout("rcx") not_done,
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
                not_done,
                addr,
                routine,
                dst: dst as *mut u8,
                src: src as *const u8,
                len,
            }),
        }
    }};
}

/// A Rust copy routine (asm/routine.s, CONV_RUST_COPY) as the C function it is.
/// `C-unwind`: its refusal and first-use exits jump to Rust code that may panic
/// (bad ranges, a bad `MCSAFE_STRATEGY`), and that panic unwinds into the caller.
type RustCopyFn = unsafe extern "C-unwind" fn(*mut u8, *const u8, usize) -> RawResult;

/// Copies with the routine behind the dispatch word (asm/dispatch.s): the whole of
/// `copy_mc`'s hot path, one indirect call whose result is the `Result` (a caller
/// that only passes it on tail-calls the routine).
///
/// # Safety
/// `src..src+len` readable and `dst..dst+len` writable, except where they may
/// fault with SIGBUS, or refused by the routine's argument check.
#[inline(always)]
pub(crate) unsafe fn copy_current(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    let addr: usize;
    // SAFETY: an aligned load of the dispatch word by its own symbol, not through
    // the GOT as a Rust reference to a static of another crate would be.
    unsafe {
        asm!(
            "mov {}, qword ptr [rip + mcsafe_asm_copy_current]",
            out(reg) addr,
            options(nostack, preserves_flags, readonly)
        );
    }
    // SAFETY: every value of the word is the not-ready stub or a Rust copy routine
    // (publish_current), both this C function; the routine refuses bad ranges
    // before any access; the caller vouches for the rest.
    unsafe { Routine::<conv::RustCopy>::at(addr).run(dst, src, len) }
}

impl Routine<conv::RustCopy> {
    /// Runs the routine: the `Result` itself, after the forward step on a fault.
    ///
    /// # Safety
    /// As for [`copy_current`]; the CPU runs the routine.
    #[inline(always)]
    pub(crate) unsafe fn run(self, dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
        // SAFETY: a Rust copy routine is that C function (asm/routine.s).
        let f = unsafe { core::mem::transmute::<usize, RustCopyFn>(self.0) };
        // SAFETY: the caller's contract.
        unsafe { f(dst, src, len) }.into_result()
    }
}

impl Routine<conv::Copy> {
    /// Runs the routine once.
    ///
    /// # Safety
    /// As for [`copy_current`]; an exact-size routine gets exactly its size, and
    /// ranges its callers checked (it checks nothing).
    #[inline(always)]
    pub(crate) unsafe fn run(self, dst: *mut u8, src: *const u8, len: usize) -> Result<(), Exit> {
        call_copy_convention!("call {entry}", dst, src, len; entry = in(reg) self.0,)
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
        let (not_done, word, addr): (usize, usize, usize);
        // SAFETY: the routine follows the fill convention (asm/fill.s): it writes
        // only dst..dst+len (valid per this function's contract), uses no stack
        // beyond its return address, keeps DF clear, and clobbers nothing outside
        // the operands and the C ABI's caller-saved set.
        unsafe {
            asm!(
                "call rax",
                inlateout("rax") self.0 => word,
                inlateout("rdi") dst => _,
                inlateout("rdx") len => _,
                inlateout("rcx") usize::from(byte) => not_done,
                lateout("r11") addr,
                clobber_abi("C"),
            );
        }
        decode(len, not_done, word, addr)
    }
}

/// Below this many bytes, the checksum routines touch no register beyond the C
/// ABI's caller-saved set (asm/crc32c.s never does; the folding routines' short
/// path, FOLD_CHAIN_MAX in asm/crc32c_fold.s, does not), so the call needs no save
/// of r12-r15 around it: short checksums cost a few instructions less.
pub(crate) const CRC_SHORT: usize = 257;

/// The smallest block a folding checksum may be given and the largest any takes
/// (asm/crc32c_fold.s FOLD_VECTOR_MIN, asm/crc32c_fold512.s FOLD512_BLOCK): the
/// bound a run passes in r9 (r11 for the copies); each routine takes at most its
/// own largest block.
pub(crate) const CRC_BLOCKS: core::ops::RangeInclusive<usize> = 320..=32768;

impl Routine<conv::Crc> {
    /// Runs a checksum routine once over `src..src+len`, continuing the CRC state
    /// `state` (not inverted), with blocks of at most `block` bytes (a folding
    /// routine's; within [`CRC_BLOCKS`]). Returns the state of the bytes it checksummed: all
    /// of them, or, when stopped, exactly `progress` of them (see asm/crc32c.s).
    ///
    /// # Safety
    /// `len > 0`; the CPU can run the routine; `src..src+len` does not wrap and is
    /// mapped readable, except where it may fault with SIGBUS (which kills the
    /// process if the handler is not installed, as any read would).
    #[inline(always)]
    pub(crate) unsafe fn run(
        self,
        src: *const u8,
        len: usize,
        state: u32,
        block: usize,
    ) -> (u32, Result<(), Stopped>) {
        let (not_done, word, addr, state_out): (usize, usize, usize, usize);
        // SAFETY: the routines follow the checksum convention (asm/crc32c.s,
        // asm/crc32c_fold.s): they read only src..src+len (valid per this
        // function's contract), write no memory, use no stack beyond their
        // return address, and clobber nothing outside the operands, r12-r15 and
        // the C ABI's caller-saved set.
        unsafe {
            asm!(
                "call rax",
                inlateout("rax") self.0 => word,
                inlateout("rdi") src => _,
                inlateout("rsi") state as usize => state_out,
                inlateout("rdx") len => _,
                inlateout("r9") block => _,
                lateout("rcx") not_done,
                lateout("r11") addr,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
                clobber_abi("C"),
            );
        }
        (state_out as u32, decode(len, not_done, word, addr))
    }

    /// [`Routine::run`] for fewer than [`CRC_SHORT`] bytes: no register saved.
    ///
    /// # Safety
    /// As for [`Routine::run`], with `len < CRC_SHORT`.
    #[inline(always)]
    pub(crate) unsafe fn run_short(
        self,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        let (not_done, word, addr, state_out): (usize, usize, usize, usize);
        // SAFETY: as in `run`; below CRC_SHORT bytes the routines leave r12-r15
        // alone and use no block (a single chain).
        unsafe {
            asm!(
                "call rax",
                inlateout("rax") self.0 => word,
                inlateout("rdi") src => _,
                inlateout("rsi") state as usize => state_out,
                inlateout("rdx") len => _,
                lateout("rcx") not_done,
                lateout("r11") addr,
                clobber_abi("C"),
            );
        }
        (state_out as u32, decode(len, not_done, word, addr))
    }
}

impl Routine<conv::CopyCrc> {
    /// Runs a copy-and-checksum routine (`asm/copy_crc32c.s`,
    /// `asm/crc32c_fold512.s`) once: copies `len` bytes from `src` to `dst` and
    /// continues the CRC state `state` (not inverted) over them, with blocks of at
    /// most `block` bytes, and (the routines with streams) blocks without streams
    /// in calls of `vector_only` bytes or more. Returns the state of the bytes copied: all
    /// of them, or, when stopped, exactly `progress` of them (every one stored, and
    /// checksummed from the source).
    ///
    /// # Safety
    /// As for [`Routine::<conv::Copy>::run`] for `dst`, `src` and `len` (ranges
    /// checked, `len > 0`); the CPU can run the routine.
    #[inline(always)]
    pub(crate) unsafe fn run(
        self,
        dst: *mut u8,
        src: *const u8,
        len: usize,
        state: u32,
        (block, vector_only): (usize, usize),
    ) -> (u32, Result<(), Stopped>) {
        let (not_done, word, addr, state_out): (usize, usize, usize, usize);
        // SAFETY: the routine follows the copy-and-checksum convention
        // (asm/copy_crc32c.s): it reads only src..src+len and writes only
        // dst..dst+len (valid per this function's contract) and 32 bytes of the
        // red zone below its return address (this block is not `nostack`), and
        // clobbers nothing outside the operands, r12-r15 and the C ABI's
        // caller-saved set.
        unsafe {
            asm!(
                "call {entry}",
                entry = in(reg) self.0,
                inlateout("rax") vector_only => word,
                inlateout("rdi") dst => _,
                inlateout("rsi") state as usize => state_out,
                inlateout("rdx") len => _,
                inlateout("rcx") src => not_done,
                inlateout("r11") block => addr,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
                clobber_abi("C"),
            );
        }
        (state_out as u32, decode(len, not_done, word, addr))
    }
}

// ---- The dispatch word and the thresholds (asm/dispatch.s) ----

unsafe extern "C" {
    static mcsafe_asm_copy_current: AtomicUsize;
    static mcsafe_asm_avx2_rep_movsb_threshold: AtomicUsize;
    static mcsafe_asm_avx512_rep_movsb_threshold: AtomicUsize;
    static mcsafe_asm_rep_movsb_stop_threshold: AtomicUsize;
    static mcsafe_asm_non_temporal_threshold: AtomicUsize;
    static mcsafe_asm_avx512_page_streams: AtomicUsize;
    static mcsafe_asm_crc_prefetch_from: AtomicUsize;
    static mcsafe_asm_copy_crc_prefetch_from: AtomicUsize;
}

/// The fold512 walks' prefetch switches when on (asm/crc32c_fold512.s): prefetch
/// while this many 64-byte units are left in the block (the distance, 1024 or 512
/// bytes, plus the iteration's four units).
const CRC_PREFETCH_FROM: usize = 1024 / 64 + 4;
const COPY_CRC_PREFETCH_FROM: usize = 512 / 64 + 4;

/// Turns the fold512 walks' software prefetch on or off (asm/crc32c_fold512.s,
/// Z_ITERATION). Called once before any routine is published (and by tests and
/// benchmarks).
pub(crate) fn set_fold512_prefetch(on: bool) {
    let (crc, copy) = if on {
        (CRC_PREFETCH_FROM, COPY_CRC_PREFETCH_FROM)
    } else {
        (usize::MAX, usize::MAX)
    };
    // SAFETY: as in `set_thresholds`.
    unsafe {
        mcsafe_asm_crc_prefetch_from.store(crc, Ordering::Relaxed);
        mcsafe_asm_copy_crc_prefetch_from.store(copy, Ordering::Relaxed);
    }
}

/// Whether the fold512 walks prefetch (see [`set_fold512_prefetch`]).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn fold512_prefetch() -> bool {
    // SAFETY: as in `set_thresholds`.
    unsafe { mcsafe_asm_crc_prefetch_from.load(Ordering::Relaxed) != usize::MAX }
}

/// Sets the shape of the avx512 routine's non-temporal loop (asm/copy_vector.s,
/// NON_TEMPORAL_AVX512): page streams and prefetches, or the plain loop. Called
/// once before any routine is published (and by tests).
pub(crate) fn set_avx512_page_streams(on: bool) {
    // SAFETY: as in `set_thresholds`.
    unsafe { mcsafe_asm_avx512_page_streams.store(usize::from(on), Ordering::Relaxed) };
}

/// The shape in force (see [`set_avx512_page_streams`]).
pub(crate) fn avx512_page_streams() -> bool {
    // SAFETY: as in `set_thresholds`.
    unsafe { mcsafe_asm_avx512_page_streams.load(Ordering::Relaxed) != 0 }
}

/// Makes `copy_mc` call `routine`. Only after the handler and the thresholds are
/// in place.
pub(crate) fn publish_current(routine: Routine<conv::RustCopy>) {
    // SAFETY: as in `current`.
    unsafe { mcsafe_asm_copy_current.store(routine.addr(), Ordering::Release) };
}

/// Sets the size thresholds of the vector routines; called once, before any
/// routine is published (and by tests, which accept a race with nothing).
pub(crate) fn set_thresholds(t: Thresholds) {
    // SAFETY: four 8-byte aligned words in .data, declared by the assembly and
    // only ever accessed as atomics (the routines only read them).
    unsafe {
        mcsafe_asm_avx2_rep_movsb_threshold.store(t.avx2_rep_movsb, Ordering::Relaxed);
        mcsafe_asm_avx512_rep_movsb_threshold.store(t.avx512_rep_movsb, Ordering::Relaxed);
        mcsafe_asm_rep_movsb_stop_threshold.store(t.rep_movsb_stop, Ordering::Relaxed);
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
            rep_movsb_stop: mcsafe_asm_rep_movsb_stop_threshold.load(Ordering::Relaxed),
            non_temporal: mcsafe_asm_non_temporal_threshold.load(Ordering::Relaxed),
        }
    }
}

// ---- The glue: what the exits of the Rust and C API copies jump to ----

// Trampolines with fixed, hidden names for the assembly, to the Rust functions
// below (whose names are mangled).
global_asm!(
    ".pushsection .text.mcsafe_glue, \"ax\", @progbits",
    ".p2align 4",
    ".globl mcsafe_asm_glue_rust_copy_stopped",
    ".hidden mcsafe_asm_glue_rust_copy_stopped",
    "mcsafe_asm_glue_rust_copy_stopped: jmp {rust_stopped}",
    ".globl mcsafe_asm_glue_refused",
    ".hidden mcsafe_asm_glue_refused",
    "mcsafe_asm_glue_refused: jmp {refused}",
    ".globl mcsafe_asm_glue_first_use",
    ".hidden mcsafe_asm_glue_first_use",
    "mcsafe_asm_glue_first_use: jmp {first_use}",
    ".globl mcsafe_asm_glue_c_copy_stopped",
    ".hidden mcsafe_asm_glue_c_copy_stopped",
    "mcsafe_asm_glue_c_copy_stopped: jmp {c_stopped}",
    ".popsection",
    rust_stopped = sym glue_rust_copy_stopped,
    refused = sym glue_refused,
    first_use = sym glue_first_use,
    c_stopped = sym glue_c_copy_stopped,
);

/// A Rust copy stopped by a fault: the careful forward step with its register-mode
/// twin, then the `Result`.
///
/// # Safety
/// Called only by `mcsafe_asm_rust_copy_stopped`, with the register-mode outputs
/// of a Rust copy routine called over ranges its caller vouched for, stopped.
unsafe extern "C-unwind" fn glue_rust_copy_stopped(exit: &Exit) -> RawResult {
    let twin = super::register_twin(exit.routine);
    // SAFETY: per this function's contract; the twin is the same body.
    let fault =
        unsafe { crate::forward::copy_after(twin, exit.dst, exit.src, exit.len, exit.stopped()) };
    RawResult::from_result(Err(fault))
}

/// A Rust copy whose argument check refused its ranges (`len > 0`): the panic
/// that names the problem.
///
/// # Safety
/// Called only by `mcsafe_asm_rust_copy_refused`, with the copy's arguments; it
/// touches no memory.
unsafe extern "C-unwind" fn glue_refused(dst: *mut u8, src: *const u8, len: usize) -> RawResult {
    crate::copy::reject(dst, src, len)
}

/// A copy through the dispatch word before `init`: installs everything (or
/// panics as first use does), then copies.
///
/// # Safety
/// Called only by the not-ready stub, with the copy's arguments (which the caller
/// vouched for).
unsafe extern "C-unwind" fn glue_first_use(dst: *mut u8, src: *const u8, len: usize) -> RawResult {
    super::ensure_ready();
    // SAFETY: the routine is published now; the arguments are the caller's, and
    // the routine checks them.
    RawResult::from_result(unsafe { copy_current(dst, src, len) })
}

/// What a C API routine's fault comes to: the careful forward step, then the
/// function libmcsafe registered ([`super::c_api`]). Never unwinds into C.
///
/// # Safety
/// Called only by `mcsafe_asm_c_copy_stopped`, with the register-mode outputs of
/// a C API routine that the C caller called over these ranges (vouching for them)
/// and stopped, and the context it passed.
unsafe extern "C" fn glue_c_copy_stopped(
    exit: &Exit,
    context: *mut core::ffi::c_void,
) -> core::ffi::c_int {
    // SAFETY: per this function's contract.
    unsafe { super::c_api::stopped(*exit, context) }
}
