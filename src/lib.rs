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
//! - [`copy_mc_lossy`]: a copy that goes on past lost granules, with zeros
//!   where the source was lost, and returns the lost ranges ([`LossyCopy`]),
//!   as engines that zero-fill a bad page and let their checksums reject its
//!   records do; one signal per lost granule, never a retry;
//! - [`crc32c_mc`]: CRC32C in place, to verify a block without copying it, at
//!   the speed of the fastest CRC32C crates or faster (carry-less
//!   multiplication beside three `crc32` streams); on a fault, the CRC of
//!   exactly the bytes before the lost granule. [`crc32c`] is the same checksum
//!   of an ordinary slice, which installs nothing;
//! - [`copy_crc32c_mc`]: copy a block out of a mapping and checksum it in one
//!   pass;
//! - [`MappedRegion`]: safe `read_at` / `write_at` / `read_exact_at` /
//!   `crc32c_at` / `read_exact_crc32c_at` and a [`Read`](std::io::Read) + [`Write`](std::io::Write) +
//!   [`Seek`](std::io::Seek) cursor over a mapping (with the `memmap2` feature,
//!   built from a `memmap2::Mmap`), whose errors are `pread(2)`'s `EIO` with the
//!   region and file offsets of the lost range ([`RegionFault`]), a lossy read
//!   and write ([`MappedRegion::read_lossy_at`]) and `flush`.
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
//!   takes no lock, reads no environment and allocates nothing. The same holds
//!   for [`copy_mc_with`], [`read_mc`], [`write_mc`], [`fill_mc`],
//!   [`crc32c_mc`], [`copy_crc32c_mc`], [`crc32c`] and the lossy copy while it
//!   loses nothing; a lossy copy that finds a lost granule allocates its report
//!   ([`LossyCopy::lost`] is a `Vec`), and [`MappedRegion`]'s errors are
//!   `io::Error`s, which allocate.
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
//! Fault-safe copies exist on x86-64 Linux and aarch64 Linux (docs/cpus.md says
//! what runs where and how each was proven). Elsewhere the crate builds with
//! the same API, copies are plain copies (a fault kills the process, as with
//! `memcpy`), [`Strategy::available`] is empty and [`install`] returns
//! [`InstallError::Unsupported`]: call it at start-up to find out.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod access;
mod arch;
mod copy;
mod crc32c;
mod dispatch;
mod fault;
mod forward;
#[cfg(mcsafe_protected)]
mod handler;
mod lossy;
mod region;
mod strategy;
#[cfg(mcsafe_protected)]
mod table;
mod tunables;

#[cfg(all(feature = "inject", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "inject", target_os = "linux"))))]
pub mod inject;

pub use access::{fill_mc, read_mc, write_mc};
pub use arch::Thresholds;
pub use copy::{copy_mc, copy_mc_with};
pub use crc32c::{CrcFault, copy_crc32c_mc, crc32c, crc32c_mc};
pub use dispatch::{Checksum, Dispatch, IgnoredTunable, dispatch};
pub use fault::{Fault, FaultKind, InstallError, Replacement, Side};
pub use lossy::{LossyCopy, LostRange, copy_mc_lossy, copy_mc_lossy_with};
pub use region::{MappedRegion, RegionCursor, RegionFault, RegionLost, RegionRead, RegionReread};
pub use strategy::{STRATEGY_ENV, Strategy, StrategyEnvError};
pub use tunables::TUNABLES_ENV;

/// Installs the process-wide SIGBUS handler, or checks that copy faults still
/// reach it.
///
/// Idempotent and thread-safe; [`copy_mc`] calls it on first use, so calling it
/// is optional. Call it early if other code installs SIGBUS handlers: mcsafe
/// saves the handler it replaces and passes on to it every SIGBUS that is not
/// a copy fault.
///
/// Call it again after any other code may have installed a SIGBUS handler (a
/// runtime, a profiler, a crash reporter). While mcsafe's handler is the
/// current one, that costs one `sigaction` query and a walk over the loaded
/// objects (`dl_iterate_phdr`, to find another copy of mcsafe). If another
/// handler function replaced it, `install` cannot tell from the action alone
/// whether that handler passes copy faults on, so it checks: a forked child
/// process takes one real copy fault (on an empty memfd mapping) and the parent
/// waits for it, at most 2 seconds (a handler that returns without passing the
/// fault on makes it repeat forever; the child is then killed). The child does
/// only async-signal-safe work, so this is safe in a multithreaded process. The
/// verdict is remembered for that handler. Not async-signal-safe: do not call
/// it from a signal handler.
///
/// It also picks the copy routines ([`Strategy::current`]), so that after it
/// returns `Ok`, every copy is async-signal-safe: [`copy_mc`] and the other
/// entry points then take no lock, read no environment and allocate nothing, and
/// may run inside a signal handler (but a lossy copy that finds a lost granule
/// allocates its report, and [`MappedRegion`]'s errors allocate; see "Safety
/// rules"). (Without `install`, the first copy does this.)
///
/// # Errors
///
/// - [`InstallError::BadStrategy`] if `MCSAFE_STRATEGY` names no strategy, or
///   one this CPU cannot run (checked first: nothing is installed then, and
///   copies panic with the same words, as without `install`). Its `Display` is
///   one line naming the value and the valid names, for a program to print and
///   exit on.
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
/// - [`InstallError::AnotherCopy`] if another copy of mcsafe is loaded in this
///   process (the C library `libmcsafe.so` next to this crate, say): there must
///   be one SIGBUS handler, so no copy installs one while another is loaded,
///   and every copy it is asked for panics (unless it was initialised before
///   the other was loaded: then it keeps working).
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
    <arch::Arch as arch::Target>::install()
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
    let (recovered, passed_on) = <arch::Arch as arch::Target>::counts();
    Stats {
        recovered,
        passed_on,
    }
}

/// Test hooks for mcsafe's own tests, benchmarks and VM harness (feature
/// `internals`): not an API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;

/// libmcsafe's way in (feature `c-api`, which the C library's package turns on):
/// the copy routine its `mcsafe_copy` jumps to. Not for Rust programs.
#[cfg(feature = "c-api")]
#[doc(hidden)]
pub mod c_api {
    use crate::arch::{Arch, Target};
    pub use crate::arch::{CCopyFn, FaultSink};

    /// The entry of the current strategy's C API routine: `int f(void *dst, const
    /// void *src, size_t len, void *context)`, which returns 0 when every byte was
    /// copied, -EINVAL (touching nothing) for what `copy_mc` refuses with a panic,
    /// and after a fault what `sink` returns for the exact fault (the same
    /// forward step as `copy_mc`'s) and `context`. Installs everything first
    /// (panics as a first use does: check `MCSAFE_STRATEGY` before).
    pub fn copy_entry(sink: FaultSink) -> usize {
        Arch::c_copy_entry(sink)
    }

    /// For an IFUNC resolver of the C copy: an entry of the same shape that goes
    /// straight into the C API routine of the strategy this CPU gets by default
    /// once [`copy_entry`] has published that routine, and to `dispatch` (with the
    /// arguments untouched) before, or when another strategy is in force.
    /// Registers `dispatch`; reads CPUID only: installs nothing, reads no
    /// environment, takes no lock, so that it can run inside the dynamic linker.
    pub fn direct_entry(dispatch: CCopyFn) -> usize {
        Arch::c_copy_direct_entry(dispatch)
    }
}
