//! Memory copies that survive SIGBUS.
//!
//! Reading an mmap'ed file, persistent memory or guest memory directly is fast
//! until one page is bad: a hardware-poisoned page (machine check), a file
//! truncated under its mapping, a page that failed to read in, a pmem bad block.
//! The kernel sends SIGBUS and the process dies. [`copy_mc`] copies like
//! `memcpy`, but such a fault ends the copy with an error that says exactly how
//! many bytes were copied, which side faulted and why, and the process lives on.
//!
//! ```no_run
//! # fn demo(mapped_file: *const u8, len: usize) {
//! let mut buf = vec![0u8; len];
//! // SAFETY: `mapped_file..+len` is a live mapping; `buf` is ours.
//! match unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), mapped_file, len) } {
//!     Ok(()) => println!("all {len} bytes copied"),
//!     Err(fault) => println!(
//!         "{} bytes copied, then the {} hit: {}",
//!         fault.copied(),
//!         fault.side(),
//!         fault.kind()
//!     ),
//! }
//! # }
//! ```
//!
//! # For storage engines
//!
//! Beyond copies, the same contract for what engines do straight on a mapping:
//!
//! - [`read_mc`] / [`write_mc`]: one value, one load or store instruction for
//!   1, 2, 4 and 8-byte types (a header word, a page LSN);
//! - [`fill_mc`]: `memset` (zeroing a page);
//! - [`crc32c_mc`]: CRC32C in place, with the SSE4.2 `crc32` instruction, to
//!   verify a block without copying it; on a fault, the CRC of exactly the bytes
//!   before the lost granule;
//! - [`MappedRegion`]: safe `read_at` / `write_at` / `read_exact_at` /
//!   `crc32c_at` and a [`Read`](std::io::Read) + [`Write`](std::io::Write) +
//!   [`Seek`](std::io::Seek) cursor over a mapping (with the `memmap2` feature,
//!   built from a `memmap2::Mmap`), whose errors are `pread(2)`'s `EIO` with the
//!   file offsets of the lost range ([`RegionFault`]).
//!
//! # The contract
//!
//! 1. **Exact prefix.** On `Err(f)`, `dst[..f.copied()] == src[..f.copied()]`,
//!    and `copied` is exactly the number of bytes before the lost granule
//!    (`f.addr() & !(f.granule() - 1)`) on the faulting side, for every length,
//!    alignment and [`Strategy`]. Bytes of `dst` past `copied` may have been
//!    written; bytes past `len` never are. The kernel's own `copy_mc` is exact
//!    to a word at best; here the routine's registers give a lower bound, and a
//!    careful forward step extends the copy up to the lost granule.
//! 2. **The lost granule is never touched again**: no retry, no prefault, no
//!    byte-by-byte tail into it. A copy with one bad page takes one SIGBUS.
//!    (A second machine check on the same line is what the kernel's 2020
//!    `copy_mc` fixes were about.)
//! 3. **Both sides**: faults reading `src` and writing `dst` are both recovered,
//!    told apart by [`Fault::side`].
//! 4. **Only our faults.** The handler acts only on a kernel-generated SIGBUS
//!    `BUS_MCEERR_AR`, `BUS_ADRERR` or `BUS_OBJERR` whose RIP lies in a copy
//!    routine and whose granule overlaps that copy's buffers. Every other SIGBUS
//!    (`BUS_MCEERR_AO`, `SI_KERNEL`, a fault elsewhere, one sent by `kill` or
//!    `sigqueue`), and any other signal a chaining handler hands it, is passed
//!    on to the action installed before, as the kernel would have delivered it
//!    (its mask, stack and `SA_RESETHAND`); if that was `SIG_DFL` (or `SIG_IGN`
//!    for a fault the kernel forces through), the process dies by SIGBUS as it
//!    would have without this crate. (Reached through a handler installed after
//!    mcsafe's that chains, it does what that handler would have done with the
//!    previous action: a plain call, and `SIG_DFL` applied only to a fault that
//!    would repeat.) If that handler changes its own
//!    disposition while it runs (Rust std's handler resets SIGBUS to
//!    `SIG_DFL`), the change applies to the action mcsafe passes signals on to,
//!    and mcsafe's handler stays in place. Handlers installed after mcsafe's
//!    are left alone. The rules, and the matrix of install orders each checked
//!    against the same program without mcsafe: `docs/reliability.md`.
//! 5. **Async-signal-safe handler**: it edits the saved registers (RIP to a
//!    fixup, the fault into two registers) and returns. No longjmp. Its action
//!    has `SA_SIGINFO` and the previous action's mask, `SA_NODEFER`,
//!    `SA_ONSTACK` and `SA_RESTART` (over `SIG_DFL` or `SIG_IGN`:
//!    `SA_ONSTACK | SA_RESTART`).
//!
//! # Fault kinds
//!
//! | kernel `si_code` | [`FaultKind`] | typical cause | granule |
//! |---|---|---|---|
//! | `BUS_MCEERR_AR` | [`Poison`](FaultKind::Poison) | machine check, hwpoisoned page, pmem bad block | page, or huge page |
//! | `BUS_ADRERR` | [`AddressError`](FaultKind::AddressError) | mapping past end of file (truncation) | page |
//! | `BUS_OBJERR` | [`ObjectError`](FaultKind::ObjectError) | page-in failed | page |
//!
//! # Safety rules
//!
//! - Memory that may fault travels as raw pointers. Never form a `&[u8]` to it:
//!   the compiler may read through a reference whenever it likes, and that read
//!   is not protected.
//! - SIGSEGV (unmapped memory, a read-only destination) is not SIGBUS: it is not
//!   caught, and kills the process as with `memcpy`.
//! - Overlapping buffers, null pointers with `len > 0` and ranges that wrap or
//!   leave user space are rejected with a panic before any memory is touched.
//! - SIGBUS must not be blocked in a thread that copies, nor be in the
//!   `sa_mask` of a signal handler that copies: the kernel forces a blocked
//!   synchronous SIGBUS to its default action and the process dies. Programs
//!   that block every signal and `sigwait` in one thread must unblock SIGBUS;
//!   [`install`] reports it blocked in the thread that calls it.
//! - The handler is process-wide. Install other SIGBUS handlers *before* the
//!   first copy (they receive every SIGBUS that is not mcsafe's), or make them
//!   pass what they do not own on to the handler they replaced, as `signal-hook`
//!   does. [`install`] tells a replacement that passes copy faults on from one
//!   that does not (it probes with a real copy fault in a forked child) and
//!   reports the latter.
//! - SIGSEGV is not hooked at all: Rust's stack-overflow report and any other
//!   SIGSEGV handler keep working as without mcsafe.
//! - On an alternate signal stack, mcsafe's handler needs about 1 KiB beyond
//!   the kernel's signal frame (which is several KiB with AVX-512 state): size
//!   such stacks with `sysconf(_SC_SIGSTKSZ)`, not `MINSIGSTKSZ`.
//! - [`copy_mc`] may be called from a signal handler once [`install`] has
//!   returned `Ok` (or the process has made one copy): from then on a copy
//!   takes no lock, reads no environment and allocates nothing.
//!
//! # Testing code that uses mcsafe
//!
//! With the `inject` feature, `mcsafe::inject` makes pages go bad on purpose, the
//! ways the kernel allows (a truncated file, `UFFDIO_POISON`, `MADV_HWPOISON`,
//! holes of a full tmpfs), says which of them this machine allows, and cleans
//! up after itself: mcsafe's own tests use it. The `mcsafe` command-line tool
//! (package `mcsafe-cli`) prints what a machine can recover (`mcsafe probe`)
//! and copies a damaged file, skipping lost pages (`mcsafe rescue`).
//!
//! # Targets
//!
//! Fault-safe copies exist on x86-64 Linux only. Elsewhere the crate builds with
//! the same API, copies are plain copies (a fault kills the process, as with
//! `memcpy`), [`Strategy::available`] is empty and [`install`] returns
//! [`InstallError::Unsupported`]: call it at start-up to find out.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod access;
mod arch;
mod copy;
mod crc32c;
mod fault;
mod region;
mod strategy;

#[cfg(all(feature = "inject", target_os = "linux"))]
pub mod inject;

pub use access::{fill_mc, read_mc, write_mc};
pub use copy::{copy_mc, copy_mc_with};
pub use crc32c::{CrcFault, crc32c, crc32c_mc};
pub use fault::{Fault, FaultKind, InstallError, Replacement, Side};
pub use region::{MappedRegion, RegionCursor, RegionFault};
pub use strategy::{STRATEGY_ENV, Strategy};

/// Installs the process-wide SIGBUS handler, or checks that copy faults still
/// reach it.
///
/// Idempotent and thread-safe; [`copy_mc`] calls it on first use, so calling it
/// is optional. Call it early if other code installs SIGBUS handlers: mcsafe
/// saves the handler it replaces and passes on to it every SIGBUS that is not
/// a copy fault.
///
/// Call it again after any other code may have installed a SIGBUS handler (a
/// runtime, a profiler, a crash reporter). While mcsafe's handler is the current
/// one, that costs one `sigaction` query. If another handler function replaced
/// it, `install` cannot tell from the action alone whether that handler passes
/// copy faults on, so it checks: a forked child process takes one real copy
/// fault (on an empty memfd mapping) and the parent waits for it, at most 2
/// seconds (a handler that returns without passing the fault on makes it repeat
/// forever; the child is then killed). The child does only async-signal-safe
/// work, so this is safe in a multithreaded process. The verdict is remembered
/// for that handler. Not async-signal-safe: do not call it from a signal handler.
///
/// It also picks the copy routines ([`Strategy::current`]), so that after it
/// returns `Ok`, every copy is async-signal-safe: [`copy_mc`] and the other
/// entry points then take no lock, read no environment and allocate nothing, and
/// may run inside a signal handler. (Without `install`, the first copy does this.)
///
/// # Panics
///
/// If `MCSAFE_STRATEGY` names a strategy this CPU cannot run, or none.
///
/// # Errors
///
/// - [`InstallError::Replaced`] if some code replaced mcsafe's SIGBUS handler
///   with an action that does not pass copy faults on: `SIG_DFL`, `SIG_IGN`, or
///   a handler that, on a copy fault, kills the process, exits, or returns
///   without passing the fault on (see [`Replacement`]). Copy faults would not
///   be recovered. What to do: install that handler *before* the first call of
///   `install` or [`copy_mc`] (mcsafe then passes on to it every SIGBUS that
///   is not its own), or make it call the handler it replaced for SIGBUS it does
///   not own, as `signal-hook` does. A replacement that does chain (such as a
///   `signal-hook` registration made after mcsafe's) gives `Ok(())`.
/// - [`InstallError::SigbusBlocked`] if SIGBUS is blocked in the calling
///   thread: the handler is installed, but a copy fault in this thread (or in
///   threads that inherit its mask) would kill the process.
/// - [`InstallError::Sigaction`] if `sigaction(2)` fails.
/// - [`InstallError::Unsupported`] on targets without fault-safe copies.
///
/// # Example
///
/// ```
/// match mcsafe::install() {
///     Ok(()) => println!("SIGBUS in copy_mc will be recovered"),
///     Err(mcsafe::InstallError::Unsupported) => println!("plain copies on this target"),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub fn install() -> Result<(), InstallError> {
    arch::install()
}

/// Counters of the SIGBUS handler since the process started; see [`stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Faults inside copy routines, redirected to a fixup (one per signal).
    pub recovered: u64,
    /// Signals that were not mcsafe's, passed on to the previous action
    /// (was `forwarded`).
    pub passed_on: u64,
}

/// The handler's counters: for monitoring, and for tests that count signals.
/// Process-wide; all zero on targets without fault-safe copies.
///
/// ```
/// let before = mcsafe::stats();
/// let (src, mut dst) = (vec![1u8; 64], vec![0u8; 64]);
/// // SAFETY: two distinct heap buffers.
/// unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), 64) }.unwrap();
/// // A copy without a fault takes no signal. (Other threads may add to these.)
/// assert!(mcsafe::stats().recovered >= before.recovered);
/// ```
pub fn stats() -> Stats {
    let (recovered, passed_on) = arch::counts();
    Stats {
        recovered,
        passed_on,
    }
}

/// Internals for mcsafe's own tests and harness; not a stable API.
#[doc(hidden)]
pub mod internals {
    #[cfg(mcsafe_protected)]
    pub use crate::arch::table::{LandingPad, landing_pads};

    /// Entry address of a strategy's routine.
    #[cfg(mcsafe_protected)]
    pub fn routine_addr(strategy: crate::Strategy) -> usize {
        crate::arch::routine_addr(strategy)
    }

    pub use crate::arch::Thresholds;

    /// The vector routines' size thresholds in force (initializes the crate).
    pub fn thresholds() -> Thresholds {
        crate::arch::thresholds()
    }

    /// Replaces the size thresholds, so that tests can reach every path of the
    /// vector routines with small copies and benchmarks can compare methods.
    /// Copies stay correct under any thresholds; only their speed changes.
    pub fn set_thresholds(thresholds: Thresholds) {
        crate::arch::set_thresholds(thresholds)
    }

    /// Entry address of the exact-size routine (`read_mc`, `write_mc`) of
    /// `size` bytes (1, 2, 4 or 8).
    #[cfg(mcsafe_protected)]
    pub fn exact_addr(size: usize) -> Option<usize> {
        crate::arch::exact_addr(size)
    }

    /// Entry address of the fill routine (`fill_mc`).
    #[cfg(mcsafe_protected)]
    pub fn fill_addr() -> usize {
        crate::arch::fill_addr()
    }

    /// Entry address of the `crc32` routine (`crc32c_mc` with SSE4.2).
    #[cfg(mcsafe_protected)]
    pub fn crc32c_addr() -> usize {
        crate::arch::crc32c_addr()
    }

    /// `crc32c_mc` through the fallback that CPUs without SSE4.2 use: copy_mc
    /// into a stack buffer, then the software CRC.
    ///
    /// # Safety
    /// As for [`crc32c_mc`](crate::crc32c_mc).
    pub unsafe fn crc32c_mc_fallback(
        crc: u32,
        src: *const u8,
        len: usize,
    ) -> Result<u32, crate::CrcFault> {
        if len == 0 {
            return Ok(crc);
        }
        crate::copy::check_range("source", src as usize, len);
        // SAFETY: per this function's contract, range checked.
        unsafe { crate::crc32c::through_copies(crc, src, len) }
    }
}
