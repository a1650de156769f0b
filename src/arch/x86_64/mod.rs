//! x86-64 Linux: the only target with fault-safe copies.
//!
//! - `routines`: the assembly routines and the `asm!` call that runs one;
//! - `table`: the landing-pad table the assembly emits, and its lookup;
//! - `handler`: the SIGBUS handler, its installation and its chaining;
//! - `probe`: does a handler that replaced mcsafe's still pass copy faults on?
//! - `cpu`: CPUID facts that decide which routines can run and which is default;
//! - this file: dispatch, the routine `copy_mc` calls, cached after first use.

mod cpu;
mod handler;
mod probe;
mod routines;
pub(crate) mod table;

use core::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use handler::{counts, install, page_size};
pub(crate) use routines::{Routine, Stopped, call};

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

fn ensure_installed() {
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
