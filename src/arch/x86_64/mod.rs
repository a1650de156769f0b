//! x86-64 Linux: the only target with fault-safe copies.
//!
//! - `routines`: the assembly routines and the `asm!` call that runs one;
//! - `table`: the landing-pad table the assembly emits, and its lookup;
//! - `handler`: the SIGBUS handler, its installation and its chaining;
//! - `instance`: one copy of mcsafe per process (refuses a second one);
//! - `probe`: does a handler that replaced mcsafe's still pass copy faults on?
//! - `cpu`: CPUID facts: which routines run here, the default, the size thresholds;
//! - this file: dispatch: install once, then publish the routine of each slot
//!   (asm/landing_pads.s "Dispatch"), which a copy calls with one indirect call.
//!
//! Change the dispatch, then run `cargo test -p mcsafe --lib`, `cargo test -p
//! mcsafe-tests --test api --test signal_stacks` (first use; copies in a signal
//! handler), `cargo test -p mcsafe-capi` and `cargo bench --bench summary -- --quick`.

mod cpu;
mod handler;
mod instance;
mod probe;
mod routines;
pub(crate) mod table;

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub(crate) use handler::{counts, page_size};
pub(crate) use routines::{
    CRC_SHORT, CrcRoutine, Exit, Routine, Slot, Stopped, Why, call, call_copy_crc32c, call_crc32c,
    call_crc32c_long, call_crc32c_short, call_exact, call_fill, capi_copy, copy_current,
    copy_strategy,
};

use super::Thresholds;
use crate::Strategy;

pub(crate) fn is_available(strategy: Strategy) -> bool {
    cpu::can_run(strategy)
}

pub(crate) fn default_strategy() -> Strategy {
    cpu::default_strategy()
}

/// The rule that picks the strategy and the thresholds on this CPU, in words.
pub(crate) fn dispatch_rule() -> String {
    cpu::rule()
}

/// The routine behind `slot`, after a copy found it not set: installs everything
/// on first use ([`init`]).
///
/// # Panics
/// If this CPU cannot run the strategy (running it would raise SIGILL), or as
/// [`init`] does.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn resolve(slot: Slot) -> Routine {
    ready();
    match slot.routine() {
        Some(routine) => routine,
        None => panic!(
            "mcsafe: this CPU cannot run the {} strategy (see Strategy::available())",
            match slot {
                Slot::Of(strategy) => strategy,
                Slot::Current => Strategy::current(),
            }
        ),
    }
}

/// The routine of `strategy`, installing everything on first use.
///
/// # Panics
/// As [`resolve`]: if this CPU cannot run `strategy`.
#[track_caller]
pub(crate) fn routine_for(strategy: Strategy) -> Routine {
    Slot::Of(strategy)
        .routine()
        .unwrap_or_else(|| resolve(Slot::Of(strategy)))
}

/// The routine `copy_mc` runs, or `None` before [`init`] (nothing installed).
#[inline(always)]
pub(crate) fn ready_routine() -> Option<Routine> {
    Slot::Current.routine()
}

/// The routine `copy_mc` runs (after [`init`]).
pub(crate) fn current_routine() -> Routine {
    Slot::Current
        .routine()
        .unwrap_or_else(|| resolve(Slot::Current))
}

/// Installs the handler, sets the routines' size thresholds, and publishes the
/// routines in the dispatch words, in that order, once. Afterwards a copy takes no lock, reads no
/// environment variable and allocates nothing: it is async-signal-safe.
///
/// # Panics
/// If `MCSAFE_STRATEGY` asks for a strategy this CPU cannot run (see
/// [`Strategy::current`]).
fn init() -> Result<(), crate::InstallError> {
    static INIT: OnceLock<Result<(), crate::InstallError>> = OnceLock::new();
    *INIT.get_or_init(|| {
        instance::ensure_only_one()?;
        handler::install()?;
        routines::set_thresholds(cpu::thresholds());
        for strategy in Strategy::ALL {
            if cpu::can_run(strategy) {
                Slot::Of(strategy).publish(Routine::of(strategy));
            }
        }
        Slot::Current.publish(Routine::of(Strategy::current()));
        Ok(())
    })
}

/// [`init`], for paths that cannot return an `InstallError`.
fn ready() {
    if let Err(e) = init() {
        panic!("mcsafe: cannot install the SIGBUS handler: {e}");
    }
}

/// `mcsafe::install`: [`init`] (handler and routines), then the check that the
/// handler is still in place, or still reached (`handler::install`).
pub(crate) fn install() -> Result<(), crate::InstallError> {
    init()?;
    instance::ensure_only_one()?;
    handler::install()?;
    if handler::blocked_in_this_thread() {
        return Err(crate::InstallError::SigbusBlocked);
    }
    Ok(())
}

/// The one-load, one-store routine for an access of `size` bytes (1, 2, 4 or
/// 8), or `None` where the copy path must do it: other sizes, and a load that
/// crosses a cache line (`load_at` is its address) when the current strategy is
/// `Fragile`: those CPUs cannot recover from poison consumed by such a load.
#[inline]
pub(crate) fn exact_routine(size: usize, load_at: Option<usize>) -> Option<Routine> {
    let routine = Routine::exact(size)?;
    let fragile = current_routine() == Routine::of(Strategy::Fragile);
    let splits = load_at.is_some_and(|a| a % 64 + size > 64);
    (!(fragile && splits)).then_some(routine)
}

/// The checksum routine for this CPU (`None`: software), detected once.
pub(crate) fn crc_routine() -> Option<CrcRoutine> {
    cached_crc_routine()
}

/// The entry address of [`crc_routine`] (`None`: software), cached without a
/// lock, so that `crc32c` stays cheap and async-signal-safe and installs
/// nothing: one atomic load once known.
#[inline(always)]
pub(crate) fn crc_entry() -> Option<usize> {
    static DETECTED: AtomicUsize = AtomicUsize::new(CRC_UNKNOWN);
    match DETECTED.load(Ordering::Relaxed) {
        CRC_UNKNOWN => detect_crc(&DETECTED),
        code => crc_entry_of(code),
    }
}

/// The entry address of `crc32c_mc`'s routine (`None`: software), with the
/// handler installed: one atomic load on the hot path, stored only after the
/// handler is in place (as the copy dispatch words, `mcsafe_asm_copy_current`).
#[inline(always)]
pub(crate) fn protected_crc_entry() -> Option<usize> {
    static PROTECTED: AtomicUsize = AtomicUsize::new(CRC_UNKNOWN);
    match PROTECTED.load(Ordering::Acquire) {
        CRC_UNKNOWN => {
            ready();
            detect_crc(&PROTECTED)
        }
        code => crc_entry_of(code),
    }
}

/// `crc32c_mc`'s routine, with the handler installed (for the paths that are
/// not hot: the copy-and-checksum's choice, the tests' paths).
pub(crate) fn protected_crc_routine() -> Option<CrcRoutine> {
    ensure_installed();
    crc_routine()
}

/// Cache values: not yet detected, or software; else an entry address (never
/// 0 or 1).
const CRC_UNKNOWN: usize = 0;
const CRC_SOFTWARE: usize = 1;

#[inline(always)]
fn crc_entry_of(code: usize) -> Option<usize> {
    (code != CRC_SOFTWARE).then_some(code)
}

fn cached_crc_routine() -> Option<CrcRoutine> {
    // CPUID is slow in a VM: detect once. A race detects twice, the same.
    static CODE: AtomicUsize = AtomicUsize::new(0);
    let decode = |code: usize| match code {
        2 => None,
        3 => Some(CrcRoutine::Stream),
        4 => Some(CrcRoutine::Fold128),
        _ => Some(CrcRoutine::Fold256),
    };
    match CODE.load(Ordering::Relaxed) {
        0 => {
            let routine = cpu::crc_routine();
            let code = match routine {
                None => 2,
                Some(CrcRoutine::Stream) => 3,
                Some(CrcRoutine::Fold128) => 4,
                Some(CrcRoutine::Fold256) => 5,
            };
            CODE.store(code, Ordering::Relaxed);
            routine
        }
        code => decode(code),
    }
}

#[cold]
#[inline(never)]
fn detect_crc(cache: &AtomicUsize) -> Option<usize> {
    let entry = cached_crc_routine().map(CrcRoutine::addr);
    cache.store(entry.unwrap_or(CRC_SOFTWARE), Ordering::Release);
    entry
}

/// Whether this CPU has the instructions of `routine` (for tests that force
/// one; a fragile model can run the folding routines but does not by default).
pub(crate) fn can_run_crc(routine: CrcRoutine) -> bool {
    cpu::can_run_crc(routine)
}

/// Installs the handler (and resolves the routines) if not done yet; for
/// routines other than copies, which do not go through the routine table.
pub(crate) fn ensure_installed() {
    ready();
}

/// Address of the routine of `strategy`, for tests that trace the routines.
pub(crate) fn routine_addr(strategy: Strategy) -> usize {
    Routine::of(strategy).addr()
}

/// The size thresholds in force, for benchmarks and `mcsafe probe`.
pub(crate) fn thresholds() -> Thresholds {
    ready();
    routines::thresholds()
}

/// Replaces the size thresholds (after `init`, which would overwrite them).
pub(crate) fn set_thresholds(thresholds: Thresholds) {
    ready();
    routines::set_thresholds(thresholds);
}

/// Address of the exact-size routine of `size` bytes, for tests that trace it.
pub(crate) fn exact_addr(size: usize) -> Option<usize> {
    Routine::exact(size).map(Routine::addr)
}

pub(crate) use routines::{
    crc32c_addr, crc32c_fold_addr, fill_addr, set_copy_crc32c_vector_only, set_crc32c_block,
};
