//! x86-64 Linux: the only target with fault-safe copies. Implements the arch
//! interface ([`Target`] for [`X86_64`]).
//!
//! - `routines`: the assembly, `routine!` (a routine by name) and the one call of
//!   each convention;
//! - `cpu`: CPUID facts: which routines run here, the default, the size thresholds;
//! - `c_api`: the routines libmcsafe's `mcsafe_copy` jumps to, and their fault exit;
//! - this file: dispatch (install once, then publish the current routine in the
//!   dispatch word, asm/dispatch.s, which `copy_mc` calls with one indirect call)
//!   and the interface.
//!
//! Change the dispatch, then run `cargo test -p mcsafe --lib`, `cargo test -p
//! mcsafe-tests --test api --test signal_stacks` (first use; copies in a signal
//! handler), `cargo test -p mcsafe-capi` and `cargo bench --bench summary -- --quick`.

pub(crate) mod c_api;
pub(crate) mod cpu;
pub(crate) mod routines;

use crate::handler::{self, instance};

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use self::routines::{CRC_BLOCKS, Routine, STATUS_BAD_ARGUMENTS};
use self::routines::{conv, routine};
use super::{Stopped, Target, Thresholds};
use crate::{Fault, InstallError, Strategy};

/// x86-64 Linux, the protected target.
pub(crate) struct X86_64;

/// The routine that implements `strategy` (whether or not the CPU can run it).
#[inline]
pub(crate) fn strategy_routine(strategy: Strategy) -> Routine<conv::Copy> {
    match strategy {
        Strategy::Fragile => routine!("copy_fragile"),
        Strategy::RepMovsb => routine!("copy_rep_movsb"),
        Strategy::Avx2 => routine!("copy_avx2"),
        Strategy::Avx512 => routine!("copy_avx512"),
        Strategy::AdvSimd => other_architecture(strategy),
    }
}

/// The Rust copy of `strategy` (asm/routine.s, CONV_RUST_COPY): what `copy_mc`
/// and `copy_mc_with` call, which returns the `Result` itself.
#[inline(always)]
pub(crate) fn rust_strategy_routine(strategy: Strategy) -> Routine<conv::RustCopy> {
    match strategy {
        Strategy::Fragile => routine!("rust_copy_fragile"),
        Strategy::RepMovsb => routine!("rust_copy_rep_movsb"),
        Strategy::Avx2 => routine!("rust_copy_avx2"),
        Strategy::Avx512 => routine!("rust_copy_avx512"),
        Strategy::AdvSimd => other_architecture(strategy),
    }
}

/// The register-mode routine with the same body as the Rust or C API copy at
/// `entry` (what their forward step runs).
pub(crate) fn register_twin(entry: usize) -> Routine<conv::Copy> {
    let strategy = Strategy::ALL
        .into_iter()
        .find(|&s| {
            rust_strategy_routine(s).addr() == entry || c_strategy_routine(s).addr() == entry
        })
        .unwrap_or(Strategy::Fragile);
    strategy_routine(strategy)
}

/// The C API twin of [`strategy_routine`] (asm/routine.s, CONV_C_COPY).
pub(crate) fn c_strategy_routine(strategy: Strategy) -> Routine<conv::CCopy> {
    match strategy {
        Strategy::Fragile => routine!("c_copy_fragile"),
        Strategy::RepMovsb => routine!("c_copy_rep_movsb"),
        Strategy::Avx2 => routine!("c_copy_avx2"),
        Strategy::Avx512 => routine!("c_copy_avx512"),
        Strategy::AdvSimd => other_architecture(strategy),
    }
}

/// aarch64's strategy has no routine here; it is never runnable, so
/// `Strategy::is_available` and `ensure_runnable` refuse it before any routine is
/// asked for.
#[cold]
#[inline(never)]
#[track_caller]
fn other_architecture(strategy: Strategy) -> ! {
    panic!("mcsafe: the {strategy} strategy is aarch64's: this CPU cannot run it")
}

/// The routine that copies exactly `size` bytes with one load and one store
/// (`asm/copy_exact.s`), for sizes 1, 2, 4 and 8.
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

/// The fill routine (`asm/fill.s`).
#[inline(always)]
pub(crate) fn fill() -> Routine<conv::Fill> {
    routine!("fill")
}

/// The ways a checksum can be computed here: the one-stream `crc32` loop
/// (`asm/crc32c.s`, SSE4.2) or a folding routine (`asm/crc32c_fold.s`: PCLMULQDQ
/// and AVX, or VPCLMULQDQ and AVX2, too; `asm/crc32c_fold512.s`: VPCLMULQDQ on
/// zmm, AVX-512), each with its copy-and-checksum twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrcRoutine {
    /// `crc32c`: one `crc32` chain, aligned loads (the careful one).
    Stream,
    /// `crc32c_fold128`: blocks folded in xmm registers beside three `crc32`
    /// streams, committed block by block.
    Fold128,
    /// `crc32c_fold256`: the same in ymm registers (VPCLMULQDQ).
    Fold256,
    /// `crc32c_fold512`: four zmm accumulators (VPCLMULQDQ, AVX-512) in one
    /// sequential walk, no `crc32` streams, committed block by block.
    Fold512,
}

impl CrcRoutine {
    /// Every one, in the order of `cpu.rs`'s facts.
    pub(crate) const ALL: [CrcRoutine; 4] = [
        CrcRoutine::Stream,
        CrcRoutine::Fold128,
        CrcRoutine::Fold256,
        CrcRoutine::Fold512,
    ];

    /// Its checksum routine.
    #[inline]
    pub(crate) fn routine(self) -> Routine<conv::Crc> {
        match self {
            CrcRoutine::Stream => routine!("crc32c"),
            CrcRoutine::Fold128 => routine!("crc32c_fold128"),
            CrcRoutine::Fold256 => routine!("crc32c_fold256"),
            CrcRoutine::Fold512 => routine!("crc32c_fold512"),
        }
    }

    /// Its copy-and-checksum routine (`asm/copy_crc32c.s`), for a folding one.
    pub(crate) fn copy_routine(self) -> Option<Routine<conv::CopyCrc>> {
        match self {
            CrcRoutine::Stream => None,
            CrcRoutine::Fold128 => Some(routine!("copy_crc32c_fold128")),
            CrcRoutine::Fold256 => Some(routine!("copy_crc32c_fold256")),
            CrcRoutine::Fold512 => Some(routine!("copy_crc32c_fold512")),
        }
    }

    /// The one whose checksum routine is `routine`.
    fn of(routine: Routine<conv::Crc>) -> Option<CrcRoutine> {
        CrcRoutine::ALL.into_iter().find(|c| c.routine() == routine)
    }

    /// Its checksum with the default block.
    pub(crate) fn checksum(self) -> Checksum {
        Checksum {
            routine: self.routine(),
            block: FOLD_BLOCK,
        }
    }
}

/// The largest block a folding routine may take (its progress is committed once
/// per block): what a run passes, and each routine takes at most its own
/// (asm/crc32c_fold.s FOLD_BLOCK, asm/copy_crc32c.s COPY_BLOCK,
/// asm/crc32c_fold512.s FOLD512_BLOCK).
pub(crate) const FOLD_BLOCK: usize = *CRC_BLOCKS.end();
/// The call length from which the streams' copy-and-checksum routines
/// (asm/copy_crc32c.s, COPY_VECTOR_ONLY) take blocks without streams.
pub(crate) const COPY_VECTOR_ONLY: usize = 256 << 10;

/// A checksum routine with the largest block it may take (tests run smaller
/// blocks, to reach several commits with short buffers; the CRC is the same for
/// every block).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Checksum {
    pub(crate) routine: Routine<conv::Crc>,
    pub(crate) block: usize,
}

/// A copy-and-checksum routine with the largest block it may take and the length
/// from which its blocks have no streams (routines without streams ignore it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CopyChecksum {
    pub(crate) routine: Routine<conv::CopyCrc>,
    pub(crate) blocks: (usize, usize),
}

/// Installs the handler, sets the routines' size thresholds, and publishes the
/// current routine in the dispatch word, in that order, once. Afterwards a copy
/// takes no lock, reads no environment variable and allocates nothing: it is
/// async-signal-safe.
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
        routines::set_thresholds(crate::tunables::Tunables::in_force().apply(cpu::thresholds()));
        routines::set_avx512_page_streams(cpu::avx512_page_streams());
        routines::set_fold512_prefetch(cpu::fold512_prefetch());
        let runnable = Strategy::ALL
            .iter()
            .enumerate()
            .filter(|&(_, &s)| cpu::can_run(s))
            .fold(0, |bits, (i, _)| bits | 1 << i);
        RUNNABLE.store(runnable | READY, Ordering::Release);
        let current = Strategy::current();
        CURRENT_REGISTERS.store(strategy_routine(current).addr(), Ordering::Release);
        routines::publish_current(rust_strategy_routine(current));
        Ok(())
    })
}

/// The strategies this CPU runs, one bit each in `Strategy::ALL` order, and
/// [`READY`] once [`init`] has run: what `copy_mc_with` tests with one load.
static RUNNABLE: AtomicU8 = AtomicU8::new(0);
const READY: u8 = 0x80;

/// [`init`], for paths that cannot return an `InstallError` (first use).
pub(crate) fn ensure_ready() {
    ready();
}

/// [`init`], for paths that cannot return an `InstallError`.
fn ready() {
    match init() {
        Ok(()) => {}
        Err(InstallError::BadStrategy(e)) => panic!("mcsafe: {e}"),
        Err(e) => panic!("mcsafe: cannot install the SIGBUS handler: {e}"),
    }
}

/// Installs everything once and checks that this CPU runs `strategy`: one load on
/// the hot path of `copy_mc_with`.
///
/// # Panics
/// As [`init`] does, and if this CPU cannot run `strategy` (running it would
/// raise SIGILL).
#[inline(always)]
#[track_caller]
fn ensure_runnable(strategy: Strategy) {
    let bit = 1 << strategy.index();
    if RUNNABLE.load(Ordering::Acquire) & (bit | READY) != bit | READY {
        not_runnable(strategy);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn not_runnable(strategy: Strategy) {
    ready();
    if RUNNABLE.load(Ordering::Acquire) & (1 << strategy.index()) == 0 {
        panic!("mcsafe: this CPU cannot run the {strategy} strategy (see Strategy::available())");
    }
}

/// `mcsafe::install`: [`init`] (handler and routines), then the check that the
/// handler is still in place, or still reached (`handler::install_checked`).
fn install() -> Result<(), InstallError> {
    init()?;
    handler::install_checked()
}

/// The register-mode routine of the strategy `copy_mc` runs, installing on first
/// use: one load once installed (the lossy copy's hot path).
#[inline(always)]
pub(crate) fn current_routine() -> Routine<conv::Copy> {
    match CURRENT_REGISTERS.load(Ordering::Acquire) {
        0 => first_current_routine(),
        entry => Routine::at(entry),
    }
}

/// The register-mode twin of the published routine (set by [`init`]; 0 before).
static CURRENT_REGISTERS: AtomicUsize = AtomicUsize::new(0);

#[cold]
#[inline(never)]
fn first_current_routine() -> Routine<conv::Copy> {
    ready();
    strategy_routine(Strategy::current())
}

/// Cache values: not yet detected, or software; else an entry address (never
/// 0 or 1).
const CRC_UNKNOWN: usize = 0;
const CRC_SOFTWARE: usize = 1;

/// The checksum routine for this CPU, detected once (CPUID is slow in a VM).
fn detected_crc() -> Option<CrcRoutine> {
    static CODE: AtomicU8 = AtomicU8::new(0);
    match CODE.load(Ordering::Relaxed) {
        0 => {
            let routine = cpu::crc_routine();
            let code = routine.map_or(1, |r| 2 + r as u8);
            CODE.store(code, Ordering::Relaxed);
            routine
        }
        code => CrcRoutine::ALL.get(usize::from(code) - 2).copied(),
    }
}

/// The entry of [`detected_crc`] in `cache`: one atomic load once known, so that
/// `crc32c` stays cheap and async-signal-safe.
#[inline(always)]
fn cached_crc(cache: &AtomicUsize, order: Ordering, before: fn()) -> Option<Checksum> {
    let code = match cache.load(order) {
        CRC_UNKNOWN => detect_crc(cache, before),
        code => code,
    };
    (code != CRC_SOFTWARE).then_some(Checksum {
        routine: Routine::at(code),
        block: FOLD_BLOCK,
    })
}

#[cold]
#[inline(never)]
fn detect_crc(cache: &AtomicUsize, before: fn()) -> usize {
    before();
    let code = detected_crc().map_or(CRC_SOFTWARE, |r| r.routine().addr());
    cache.store(code, Ordering::Release);
    code
}

impl Target for X86_64 {
    type Copy = Routine<conv::Copy>;
    type Crc = Checksum;
    type CopyCrc = CopyChecksum;

    const CRC_SHORT: usize = routines::CRC_SHORT;
    const CHECKS_COPIES: bool = true;

    fn install() -> Result<(), InstallError> {
        install()
    }

    fn ensure_installed() {
        ready();
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

    fn default_strategy() -> Strategy {
        cpu::default_strategy()
    }

    fn dispatch_rule() -> String {
        cpu::rule()
    }

    fn thresholds() -> Thresholds {
        ready();
        routines::thresholds()
    }

    fn non_temporal_loop() -> &'static str {
        ready();
        cpu::page_streams_words(routines::avx512_page_streams())
    }

    fn checksum() -> crate::Checksum {
        match detected_crc() {
            Some(CrcRoutine::Fold512) => crate::Checksum::Fold512,
            Some(CrcRoutine::Fold256) => crate::Checksum::Fold256,
            Some(CrcRoutine::Fold128) => crate::Checksum::Fold128,
            Some(CrcRoutine::Stream) => crate::Checksum::Stream,
            None => crate::Checksum::Software,
        }
    }

    #[inline(always)]
    #[track_caller]
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
        // SAFETY: the routine refuses bad ranges before any access; the caller
        // vouches for the rest.
        unsafe { routines::copy_current(dst, src, len) }
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
        unsafe { rust_strategy_routine(strategy).run(dst, src, len) }
    }

    #[inline(always)]
    #[track_caller]
    fn copy_routine(strategy: Option<Strategy>) -> Self::Copy {
        match strategy {
            Some(strategy) => {
                ensure_runnable(strategy);
                strategy_routine(strategy)
            }
            None => current_routine(),
        }
    }

    /// `None` also for a load that crosses a cache line (`load_at`) when the
    /// current strategy is `Fragile`: those CPUs cannot recover from poison
    /// consumed by such a load.
    #[inline]
    fn exact_routine(size: usize, load_at: Option<usize>) -> Option<Self::Copy> {
        let routine = exact(size)?;
        let fragile = current_routine() == strategy_routine(Strategy::Fragile);
        let splits = load_at.is_some_and(|a| a % 64 + size > 64);
        (!(fragile && splits)).then_some(routine)
    }

    #[inline(always)]
    unsafe fn run_copy(
        routine: Self::Copy,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Stopped> {
        // SAFETY: the caller's contract.
        unsafe { routine.run(dst, src, len) }.map_err(|exit| match exit.word {
            STATUS_BAD_ARGUMENTS => crate::copy::reject(exit.dst, exit.src, exit.len),
            _ => exit.stopped(),
        })
    }

    #[inline(always)]
    unsafe fn run_fill(dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped> {
        // SAFETY: the caller's contract.
        unsafe { fill().run(dst, byte, len) }
    }

    #[inline(always)]
    fn crc() -> Option<Checksum> {
        static ANY: AtomicUsize = AtomicUsize::new(CRC_UNKNOWN);
        cached_crc(&ANY, Ordering::Relaxed, || {})
    }

    /// Stored only after the handler is in place (as the copy dispatch word).
    #[inline(always)]
    fn protected_crc() -> Option<Checksum> {
        static PROTECTED: AtomicUsize = AtomicUsize::new(CRC_UNKNOWN);
        cached_crc(&PROTECTED, Ordering::Acquire, ready)
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
        unsafe { routine.routine.run(src, len, state, routine.block) }
    }

    #[inline(always)]
    unsafe fn run_crc_short(
        routine: Checksum,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>) {
        // SAFETY: the caller's contract (len < CRC_SHORT).
        unsafe { routine.routine.run_short(src, len, state) }
    }

    fn copy_crc_of(routine: Checksum) -> Option<CopyChecksum> {
        Some(CopyChecksum {
            routine: CrcRoutine::of(routine.routine)?.copy_routine()?,
            blocks: (routine.block, COPY_VECTOR_ONLY),
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
        unsafe { routine.routine.run(dst, src, len, state, routine.blocks) }
    }

    fn c_copy_entry(sink: super::FaultSink) -> usize {
        c_api::copy_entry(sink)
    }

    fn c_copy_direct_entry(dispatch: super::CCopyFn) -> usize {
        c_api::direct_entry(dispatch)
    }
}

/// Whether this CPU has the instructions of `routine` (for tests that force
/// one; a fragile model can run the folding routines but does not by default).
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
    let mut all = Vec::new();
    for strategy in Strategy::ALL {
        all.push((strategy_routine(strategy).addr(), Convention::Copy));
        all.push((rust_strategy_routine(strategy).addr(), Convention::RustCopy));
        all.push((c_strategy_routine(strategy).addr(), Convention::CCopy));
    }
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
