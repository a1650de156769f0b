//! aarch64 Linux: fault-safe copies on arm64 servers (Graviton, Ampere, ...).
//! Implements the arch interface ([`Target`] for [`Aarch64`]).
//!
//! - `routines`: the assembly of `asm/aarch64/` (its convention at the top of
//!   `routine.s`), `routine!` and the one call of each convention;
//! - `cpu`: HWCAP facts: which routines run here, the checksum routine;
//! - `c_api`: the function libmcsafe's `mcsafe_copy` jumps to;
//! - this file: dispatch (install once, then publish the routine `copy_mc` runs
//!   in one word) and the interface.
//!
//! There is one strategy (`AdvSimd`) and one instantiation of each routine, in
//! register mode: `copy_mc`, `copy_mc_with` and the C entry call it and build
//! their result in Rust, with the portable forward step after a fault (no Rust- or
//! C-mode twins as on x86-64, where they save a call's worth of cost that cannot
//! be measured here: docs/cpus.md, "aarch64"). The handler's view of the
//! registers is `src/handler/signal/aarch64.rs`.
//!
//! Change it, then run the aarch64 suite under qemu (docs/cpus.md, "aarch64":
//! `cargo test --target aarch64-unknown-linux-gnu -p mcsafe --lib`, `-p
//! mcsafe-tests --test api --test signal_stacks`, `-p mcsafe-capi`) and `cargo
//! xtask vm-test-aarch64`.

pub(crate) mod c_api;
pub(crate) mod cpu;
pub(crate) mod routines;

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use self::routines::{Exit, conv, routine};
use super::{Routine, Stopped, Target, Thresholds};
use crate::handler::{self, instance};
use crate::{Fault, InstallError, Strategy};

/// aarch64 Linux, a protected target.
pub(crate) struct Aarch64;

/// The `AdvSimd` strategy's routine (asm/aarch64/copy.s).
#[inline(always)]
pub(crate) fn advsimd() -> Routine<conv::Copy> {
    routine!("copy_advsimd")
}

/// The routine of `strategy`: `AdvSimd`'s (whether or not the CPU can run it).
///
/// # Panics
/// For a strategy of another architecture, which has no routine here.
#[track_caller]
pub(crate) fn strategy_routine(strategy: Strategy) -> Routine<conv::Copy> {
    match strategy {
        Strategy::AdvSimd => advsimd(),
        other => not_this_architecture(other),
    }
}

/// What `copy_mc_with(strategy)` runs first: the register-mode routine itself
/// (x86-64 has a Rust-mode twin; the test hooks ask for it by this name).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
#[track_caller]
pub(crate) fn rust_strategy_routine(strategy: Strategy) -> Routine<conv::Copy> {
    strategy_routine(strategy)
}

/// What libmcsafe's `mcsafe_copy` runs first for `strategy`: the register-mode
/// routine, from `c_api`'s Rust function (x86-64 has a C-mode twin).
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
#[track_caller]
pub(crate) fn c_strategy_routine(strategy: Strategy) -> Routine<conv::Copy> {
    strategy_routine(strategy)
}

#[cold]
#[inline(never)]
#[track_caller]
fn not_this_architecture(strategy: Strategy) -> ! {
    panic!(
        "mcsafe: this CPU cannot run the {strategy} strategy (an x86-64 strategy; see \
         Strategy::available())"
    )
}

/// The routine that copies exactly `size` bytes with one load and one store
/// (`asm/aarch64/copy.s`), for sizes 1, 2, 4 and 8.
#[inline]
pub(crate) fn exact(size: usize) -> Option<Routine<conv::Copy>> {
    Some(match size {
        1 => routine!("copy_exact_1"),
        2 => routine!("copy_exact_2"),
        4 => routine!("copy_exact_4"),
        8 => routine!("copy_exact_8"),
        _ => return None,
    })
}

/// The fill routine (`asm/aarch64/fill.s`).
#[inline(always)]
pub(crate) fn fill() -> Routine<conv::Fill> {
    routine!("fill")
}

/// The checksum routines (`asm/aarch64/crc32c.s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrcRoutine {
    /// `crc32c`: one `crc32cx` chain (FEAT_CRC32), the careful one.
    Stream,
    /// `crc32c_pmull`: three `crc32cx` streams per block, merged with `pmull`
    /// (FEAT_CRC32 and FEAT_PMULL), one commit per block.
    Pmull,
}

impl CrcRoutine {
    /// Every one.
    pub(crate) const ALL: [CrcRoutine; 2] = [CrcRoutine::Stream, CrcRoutine::Pmull];

    /// Its checksum routine.
    #[inline]
    pub(crate) fn routine(self) -> Routine<conv::Crc> {
        match self {
            CrcRoutine::Stream => routine!("crc32c"),
            CrcRoutine::Pmull => routine!("crc32c_pmull"),
        }
    }

    /// Its copy-and-checksum routine, for the PMULL one.
    pub(crate) fn copy_routine(self) -> Option<Routine<conv::CopyCrc>> {
        match self {
            CrcRoutine::Stream => None,
            CrcRoutine::Pmull => Some(routine!("copy_crc32c_pmull")),
        }
    }

    /// The one whose checksum routine is `routine`.
    fn of(routine: Routine<conv::Crc>) -> Option<CrcRoutine> {
        CrcRoutine::ALL.into_iter().find(|c| c.routine() == routine)
    }

    /// Its checksum.
    pub(crate) fn checksum(self) -> Checksum {
        Checksum {
            routine: self.routine(),
            block: BLOCK,
        }
    }
}

/// The PMULL routine's largest block (three parts of 1 KiB: asm/aarch64/crc32c.s).
const BLOCK: usize = 3 << 10;

/// A checksum routine with a block size. aarch64's blocks are fixed (3 KiB, then
/// 384 bytes): `block` is what the caller asked for and changes nothing; it is
/// there so that the portable callers, and the tests that vary it on x86-64, are
/// the same on both targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Checksum {
    pub(crate) routine: Routine<conv::Crc>,
    pub(crate) block: usize,
}

/// A copy-and-checksum routine with block sizes (fixed here, as for [`Checksum`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CopyChecksum {
    pub(crate) routine: Routine<conv::CopyCrc>,
    pub(crate) blocks: (usize, usize),
}

/// The register-mode routine `copy_mc` runs (0 until [`init`] published it, after
/// the handler is in place): the whole dispatch, one load.
static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler, then publishes the current routine, once. Afterwards a
/// copy takes no lock and allocates nothing: it is async-signal-safe.
///
/// A bad `MCSAFE_STRATEGY` ([`Strategy::try_current`]) is its first error, before
/// anything is installed.
fn init() -> Result<(), InstallError> {
    static INIT: OnceLock<Result<(), InstallError>> = OnceLock::new();
    *INIT.get_or_init(|| {
        // First, so that a bad MCSAFE_STRATEGY installs nothing.
        Strategy::try_current().map_err(InstallError::BadStrategy)?;
        instance::ensure_only_one()?;
        handler::install()?;
        let current = strategy_routine(Strategy::current());
        CURRENT.store(current.addr(), Ordering::Release);
        Ok(())
    })
}

/// [`init`], panicking where an `InstallError` cannot be returned (first use).
fn ready() {
    match init() {
        Ok(()) => {}
        Err(InstallError::BadStrategy(e)) => panic!("mcsafe: {e}"),
        Err(e) => panic!("mcsafe: cannot install the SIGBUS handler: {e}"),
    }
}

/// The routine `copy_mc` runs, installing on first use: one load once installed.
#[inline(always)]
pub(crate) fn current_routine() -> Routine<conv::Copy> {
    published_routine().unwrap_or_else(first_current_routine)
}

/// The routine `copy_mc` runs, or `None` before [`init`] published it.
#[inline(always)]
pub(crate) fn published_routine() -> Option<Routine<conv::Copy>> {
    match CURRENT.load(Ordering::Acquire) {
        0 => None,
        entry => Some(Routine::at(entry)),
    }
}

#[cold]
#[inline(never)]
fn first_current_routine() -> Routine<conv::Copy> {
    ready();
    Routine::at(CURRENT.load(Ordering::Acquire))
}

/// Installs everything once and checks that this CPU runs `strategy` (the one
/// strategy here): a compare and one load on the hot path of `copy_mc_with`.
///
/// # Panics
/// As [`init`] does, and for a strategy this CPU cannot run.
#[inline(always)]
#[track_caller]
fn ensure_runnable(strategy: Strategy) {
    if strategy != Strategy::AdvSimd || CURRENT.load(Ordering::Acquire) == 0 {
        not_runnable(strategy);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn not_runnable(strategy: Strategy) {
    ready();
    if !cpu::can_run(strategy) {
        panic!("mcsafe: this CPU cannot run the {strategy} strategy (see Strategy::available())");
    }
}

/// A copy that did not finish: the panic that names refused ranges (as `copy_mc`
/// documents), or the careful forward step. Out of line.
///
/// # Safety
/// `exit` ended `routine` called over the caller's ranges.
#[cold]
#[inline(never)]
#[track_caller]
unsafe fn copy_stopped(
    routine: Routine<conv::Copy>,
    exit: Exit,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Fault {
    match exit {
        Exit::Refused => crate::copy::reject(dst, src, len),
        // SAFETY: per this function's contract.
        Exit::Stopped(stopped) => unsafe {
            crate::forward::copy_after(routine, dst, src, len, stopped)
        },
    }
}

/// Runs `routine` over the caller's ranges, then the forward step after a fault:
/// a copy's whole `Result`.
///
/// # Safety
/// As for `copy_mc`; the CPU runs `routine` and the handler is installed.
#[inline(always)]
#[track_caller]
unsafe fn copy_with_routine(
    routine: Routine<conv::Copy>,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Fault> {
    // SAFETY: the routine refuses bad ranges before any access; the caller
    // vouches for the rest.
    match unsafe { routine.run(dst, src, len) } {
        Ok(()) => Ok(()),
        // SAFETY: the exit of that run.
        Err(exit) => Err(unsafe { copy_stopped(routine, exit, dst, src, len) }),
    }
}

/// The checksum routine for this CPU, detected once: a cache word (0 not yet
/// known, 1 software, else the entry) so that `crc32c` stays cheap and
/// async-signal-safe.
#[inline(always)]
fn detected_crc() -> Option<CrcRoutine> {
    static CODE: AtomicUsize = AtomicUsize::new(0);
    let code = match CODE.load(Ordering::Relaxed) {
        0 => {
            let code = cpu::crc_routine().map_or(1, |r| r as usize + 2);
            CODE.store(code, Ordering::Relaxed);
            code
        }
        code => code,
    };
    CrcRoutine::ALL.get(code.wrapping_sub(2)).copied()
}

impl Target for Aarch64 {
    type Copy = Routine<conv::Copy>;
    type Crc = Checksum;
    type CopyCrc = CopyChecksum;

    /// No short call here (one call shape at every length): as on x86-64, for
    /// the portable code's inline path.
    const CRC_SHORT: usize = 257;
    const CHECKS_COPIES: bool = true;

    fn install() -> Result<(), InstallError> {
        init()?;
        handler::install_checked()
    }

    fn ensure_installed() {
        if CURRENT.load(Ordering::Acquire) == 0 {
            ready();
        }
    }

    fn counts() -> (u64, u64) {
        handler::counts()
    }

    fn page_size() -> usize {
        handler::page_size()
    }

    fn can_run(strategy: Strategy) -> bool {
        cpu::can_run(strategy)
    }

    /// `AdvSimd`: the one strategy, on every aarch64 CPU.
    fn default_strategy() -> Strategy {
        Strategy::AdvSimd
    }

    fn dispatch_rule() -> String {
        cpu::rule()
    }

    /// No size thresholds here: every method "never" (installs, as on x86-64).
    fn thresholds() -> Thresholds {
        ready();
        Thresholds::NEVER
    }

    fn checksum() -> crate::Checksum {
        match detected_crc() {
            Some(CrcRoutine::Pmull) => crate::Checksum::Crc32cxPmull,
            Some(CrcRoutine::Stream) => crate::Checksum::Crc32cx,
            None => crate::Checksum::Software,
        }
    }

    #[inline(always)]
    #[track_caller]
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
        // SAFETY: the current routine is installed and runs here; the caller's
        // contract.
        unsafe { copy_with_routine(current_routine(), dst, src, len) }
    }

    #[inline(always)]
    #[track_caller]
    unsafe fn copy_with(
        strategy: Strategy,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Fault> {
        ensure_runnable(strategy);
        // SAFETY: as in `copy`; the CPU runs the routine (checked).
        unsafe { copy_with_routine(advsimd(), dst, src, len) }
    }

    #[inline(always)]
    #[track_caller]
    fn copy_routine(strategy: Option<Strategy>) -> Self::Copy {
        match strategy {
            Some(strategy) => {
                ensure_runnable(strategy);
                advsimd()
            }
            None => current_routine(),
        }
    }

    /// Installs first: `read_mc` and `write_mc` may be a process's first call
    /// into mcsafe, and their one load must find the handler in place. No CPU
    /// model here needs x86-64's cache-line rule (`load_at`).
    #[inline]
    fn exact_routine(size: usize, _load_at: Option<usize>) -> Option<Self::Copy> {
        Self::ensure_installed();
        exact(size)
    }

    #[inline(always)]
    unsafe fn run_copy(
        routine: Self::Copy,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Stopped> {
        // SAFETY: the caller's contract.
        unsafe { routine.run(dst, src, len) }.map_err(|exit| match exit {
            Exit::Refused => crate::copy::reject(dst, src, len),
            Exit::Stopped(stopped) => stopped,
        })
    }

    #[inline(always)]
    unsafe fn run_fill(dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped> {
        // SAFETY: the caller's contract.
        unsafe { fill().run(dst, byte, len) }
    }

    #[inline(always)]
    fn crc() -> Option<Checksum> {
        detected_crc().map(CrcRoutine::checksum)
    }

    /// Installs first (the handler is in place before a routine that may fault
    /// runs).
    #[inline(always)]
    fn protected_crc() -> Option<Checksum> {
        Self::ensure_installed();
        Self::crc()
    }

    fn stream_crc() -> Option<Checksum> {
        cpu::can_run_crc(CrcRoutine::Stream).then(|| CrcRoutine::Stream.checksum())
    }

    #[inline(always)]
    unsafe fn run_crc(
        routine: Checksum,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        // SAFETY: the caller's contract.
        unsafe { routine.routine.run(src, len, state) }
    }

    #[inline(always)]
    unsafe fn run_crc_short(
        routine: Checksum,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        // SAFETY: the caller's contract (the same call at every length).
        unsafe { Self::run_crc(routine, src, len, state) }
    }

    fn copy_crc_of(routine: Checksum) -> Option<CopyChecksum> {
        Some(CopyChecksum {
            routine: CrcRoutine::of(routine.routine)?.copy_routine()?,
            blocks: (BLOCK, usize::MAX),
        })
    }

    #[inline(always)]
    unsafe fn run_copy_crc(
        routine: CopyChecksum,
        dst: *mut u8,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        // SAFETY: the caller's contract.
        unsafe { routine.routine.run(dst, src, len, state) }
    }

    fn c_copy_entry(sink: super::FaultSink) -> usize {
        c_api::copy_entry(sink)
    }
}

/// Whether this CPU has the instructions of `routine`.
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn can_run_crc(routine: CrcRoutine) -> bool {
    cpu::can_run_crc(routine)
}

/// The checksum routine `crc32c_mc` takes here, if any.
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // the test hooks'
pub(crate) fn crc_routine() -> Option<CrcRoutine> {
    detected_crc()
}

/// Every routine the Rust side runs, with its convention: what the descriptor
/// table must hold (table.rs tests it).
#[cfg(test)]
pub(crate) fn every_routine() -> Vec<(usize, crate::table::Convention)> {
    use crate::table::Convention;
    let mut all = vec![(advsimd().addr(), Convention::Copy)];
    for size in [1, 2, 4, 8] {
        all.push((exact(size).map_or(0, Routine::addr), Convention::Copy));
    }
    all.push((fill().addr(), Convention::Fill));
    for crc in CrcRoutine::ALL {
        all.push((crc.routine().addr(), Convention::Crc));
        if let Some(copy) = crc.copy_routine() {
            all.push((copy.addr(), Convention::CopyCrc));
        }
    }
    all
}
