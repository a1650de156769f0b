//! x86-64 Linux: the only target with fault-safe copies.
//!
//! - `routines`: the assembly routines and the `asm!` call that runs one;
//! - `table`: the landing-pad table the assembly emits, and its lookup;
//! - `handler`: the SIGBUS handler, its installation and its chaining;
//! - `cpu`: CPUID facts that decide which routines can run and which is default;
//! - this file: dispatch, the routine `copy_mc` calls, cached after first use.

mod cpu;
mod handler;
mod routines;
pub(crate) mod table;

use core::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use handler::{counts, install, page_size};
pub(crate) use routines::{Routine, Stopped, call, call_crc32c, call_fill};

use crate::Strategy;

pub(crate) fn is_available(strategy: Strategy) -> bool {
    cpu::can_run(strategy)
}

pub(crate) fn default_strategy() -> Strategy {
    cpu::default_strategy()
}

/// The routine of [`Strategy::current`], 0 until the first copy. Set only after
/// the handler is installed, so one load answers both "installed?" and "which?".
static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// The routine `copy_mc` runs: one atomic load on the hot path.
#[inline]
pub(crate) fn current_routine() -> Routine {
    match CURRENT.load(Ordering::Acquire) {
        0 => first_routine(),
        addr => Routine::from_addr(addr),
    }
}

#[cold]
fn first_routine() -> Routine {
    ensure_installed();
    let routine = Routine::of(Strategy::current());
    CURRENT.store(routine.addr(), Ordering::Release);
    routine
}

/// The routine of `strategy`, for `copy_mc_with`.
///
/// # Panics
/// If this CPU cannot run `strategy`: running it would raise SIGILL.
pub(crate) fn routine_for(strategy: Strategy) -> Routine {
    assert!(
        cpu::can_run(strategy),
        "mcsafe: this CPU cannot run the {strategy} strategy (see Strategy::available())"
    );
    ensure_installed();
    Routine::of(strategy)
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

/// Whether `call_crc32c` can run here (SSE4.2); otherwise the checksum copies
/// into a buffer with `copy_mc` and computes in software. The handler is
/// installed either way once this returns.
pub(crate) fn has_crc32c() -> bool {
    ensure_installed();
    cpu::has_crc32c()
}

/// Installs the handler if it is not yet; for routines other than copies.
pub(crate) fn ensure_installed() {
    if !handler::is_installed() {
        if let Err(e) = install() {
            panic!("mcsafe: cannot install the SIGBUS handler: {e}");
        }
    }
}

/// Address of the routine of `strategy`, for tests that trace the routines.
pub(crate) fn routine_addr(strategy: Strategy) -> usize {
    Routine::of(strategy).addr()
}

/// Address of the exact-size routine of `size` bytes, for tests that trace it.
pub(crate) fn exact_addr(size: usize) -> Option<usize> {
    Routine::exact(size).map(Routine::addr)
}

pub(crate) use routines::{crc32c_addr, fill_addr};
