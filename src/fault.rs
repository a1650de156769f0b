//! What a failed copy reports: [`Fault`], [`Side`], [`FaultKind`], and the
//! handler's [`InstallError`] and [`Replacement`].
//!
//! Change it, then run `cargo test -p mcsafe --lib fault`, `cargo test -p
//! mcsafe-tests --test api` and `cargo test -p mcsafe-capi` (C's `struct
//! mcsafe_fault`, which libmcsafe fills from a `Fault`).

use core::fmt;
use core::num::NonZeroU64;

/// A copy stopped by a memory fault: how far it got, where, and why.
///
/// Returned by [`copy_mc`](crate::copy_mc) and
/// [`copy_mc_with`](crate::copy_mc_with). The process is unharmed; the bytes of
/// the lost granule were not touched again after the fault.
///
/// ```
/// # #[cfg(feature = "inject")] {
/// use mcsafe::{FaultKind, Side};
/// use mcsafe::inject::TruncatedMapping;
///
/// // A mapping of 3 pages whose file ends after 1 page and 10 bytes.
/// let map = TruncatedMapping::new(3).unwrap();
/// let page = map.page_size();
/// map.truncate_to(page + 10).unwrap();
///
/// let mut buf = vec![0u8; 3 * page];
/// // SAFETY: both buffers are mapped; the third page raises SIGBUS.
/// let fault = unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), map.as_ptr(), 3 * page) }.unwrap_err();
/// assert_eq!(fault.copied(), 2 * page); // the page holding the end of file is whole
/// assert_eq!(fault.side(), Side::Source);
/// assert_eq!(fault.kind(), FaultKind::AddressError);
/// assert_eq!(fault.addr() & !(fault.granule() - 1), map.as_ptr() as usize + 2 * page);
/// assert_eq!(fault.raw_os_error(), libc::EFAULT);
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    // Two words, so that `Result<(), Fault>` comes back in two registers and a
    // caller that stores it stores two words (a 32-byte result written by byte
    // and read back whole stalled store forwarding: README, Performance):
    /// `copied` in bits 0..62 (it is below the length, and lengths are below
    /// 2^62), the kind in bits 62..64 (1..=3): never zero, which is the niche
    /// `Result<(), Fault>` uses for `Ok`.
    copied_kind: NonZeroU64,
    /// `addr` in bits 0..57 (user space ends below 2^57; the handler takes no
    /// fault above), log2 of the granule in bits 57..63, the side in bit 63.
    addr_granule_side: u64,
}

const COPIED_BITS: u32 = 62;
const ADDR_BITS: u32 = 57;
const SIDE_BIT: u32 = 63;

/// `Result<(), Fault>` as the two machine words the Rust-facing copy routines
/// return in rax:rdx (asm/routine.s, CONV_RUST_COPY): `Ok(())` when the first is
/// 0, else `Err` of the `Fault` whose words they are. The layout this relies on
/// is checked at compile time below, so a compiler that laid `Result<(), Fault>`
/// out otherwise would fail to build mcsafe rather than misread a result.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawResult {
    first: u64,
    second: u64,
}

#[cfg_attr(not(all(mcsafe_protected, target_arch = "x86_64")), allow(dead_code))] // only the x86-64 routines return it
impl RawResult {
    /// The words of a result.
    pub(crate) fn from_result(result: Result<(), Fault>) -> RawResult {
        match result {
            Ok(()) => RawResult {
                first: 0,
                second: 0,
            },
            Err(f) => RawResult {
                first: f.copied_kind.get(),
                second: f.addr_granule_side,
            },
        }
    }

    /// The result these words are: a no-op on the hot path.
    #[inline(always)]
    pub(crate) fn into_result(self) -> Result<(), Fault> {
        // SAFETY: `Result<(), Fault>` is two words with `Ok` the niche 0 of the
        // first (checked by LAYOUT below): `first == 0` is `Ok(())`, whatever
        // `second` (padding then); any other value is `Err` of a valid `Fault`
        // (a non-zero first word and any second).
        unsafe { core::mem::transmute::<RawResult, Result<(), Fault>>(self) }
    }
}

/// The layout [`RawResult::into_result`] relies on, checked when mcsafe compiles.
const LAYOUT: () = {
    use core::mem::{MaybeUninit, size_of, transmute};
    assert!(size_of::<Result<(), Fault>>() == 16 && size_of::<RawResult>() == 16);
    // SAFETY: reinterpreting 16 bytes as 16 bytes; only initialized words are read.
    let ok: [MaybeUninit<u64>; 2] = unsafe { transmute(Ok::<(), Fault>(())) };
    // SAFETY: the niche word of `Ok` is initialized.
    assert!(unsafe { ok[0].assume_init() } == 0);
    let fault = Fault {
        copied_kind: match NonZeroU64::new(0x4000_0000_0000_1234) {
            Some(w) => w,
            None => panic!(),
        },
        addr_granule_side: 0x0a00_0000_0000_5678,
    };
    // SAFETY: as above; both words of `Err` are initialized.
    let err: [u64; 2] = unsafe { transmute(Err::<(), Fault>(fault)) };
    assert!(err[0] == 0x4000_0000_0000_1234 && err[1] == 0x0a00_0000_0000_5678);
};
const _: () = LAYOUT;

/// Which buffer of the copy faulted. `Display` prints `source` or `destination`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Reading the source faulted (the usual case: poisoned or truncated input).
    Source,
    /// Writing the destination faulted.
    Destination,
}

/// Why the kernel raised SIGBUS, from its `si_code`. `Display` names the code:
/// `hardware memory error (BUS_MCEERR_AR)`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `BUS_MCEERR_AR`: hardware memory error (machine check, or a page the kernel
    /// already marked poisoned). The data of the granule is gone for good.
    Poison,
    /// `BUS_ADRERR`: no memory behind the address, e.g. a file mapping past the
    /// end of its file after a truncation, or a `UFFDIO_POISON` marker on a kernel
    /// without memory-failure support.
    AddressError,
    /// `BUS_OBJERR`: the object behind the mapping failed, e.g. a page-in error.
    ObjectError,
}

impl Fault {
    /// A fault of `kind` at `addr`, `granule` bytes lost (a power of two), on
    /// `side`, `copied` bytes before it. `copied < 2^62` and `addr < 2^57`
    /// always hold for faults the handler takes (lengths are refused from 2^61,
    /// and it takes no address from 2^57).
    pub(crate) fn new(
        copied: usize,
        side: Side,
        kind: FaultKind,
        addr: usize,
        granule: usize,
    ) -> Fault {
        let (copied, addr) = (copied as u64, addr as u64);
        debug_assert!(copied >> COPIED_BITS == 0 && addr >> ADDR_BITS == 0);
        debug_assert!(granule.is_power_of_two());
        let kind_bits = match kind {
            FaultKind::Poison => 1u64,
            FaultKind::AddressError => 2,
            FaultKind::ObjectError => 3,
        };
        let side_bit = u64::from(side == Side::Destination);
        let copied_kind = (copied & ((1 << COPIED_BITS) - 1)) | kind_bits << COPIED_BITS;
        Fault {
            // kind_bits >= 1: never zero, so never the fallback.
            copied_kind: NonZeroU64::new(copied_kind).unwrap_or(NonZeroU64::MIN),
            addr_granule_side: (addr & ((1 << ADDR_BITS) - 1))
                | u64::from(granule.trailing_zeros()) << ADDR_BITS
                | side_bit << SIDE_BIT,
        }
    }

    /// Bytes copied: `dst[..copied] == src[..copied]` is guaranteed.
    ///
    /// This is exactly the number of bytes that precede the lost granule
    /// (`addr() & !(granule() - 1)`) on the faulting side, counted from that
    /// side's start, or 0 when the granule begins before it. When the same
    /// granule also lies inside the other buffer, the copy stops at the first
    /// byte of either buffer inside it. Bytes of `dst` at or past `copied` may
    /// have been written; bytes past `len` never are.
    pub fn copied(&self) -> usize {
        (self.copied_kind.get() & ((1 << COPIED_BITS) - 1)) as usize
    }

    /// Which buffer faulted.
    pub fn side(&self) -> Side {
        if self.addr_granule_side >> SIDE_BIT == 1 {
            Side::Destination
        } else {
            Side::Source
        }
    }

    /// Why it faulted.
    pub fn kind(&self) -> FaultKind {
        match self.copied_kind.get() >> COPIED_BITS {
            1 => FaultKind::Poison,
            3 => FaultKind::ObjectError,
            _ => FaultKind::AddressError,
        }
    }

    /// The faulting address as the kernel reported it (`si_addr`): exact for a
    /// page fault, page-aligned for a machine check reported by the hardware.
    pub fn addr(&self) -> usize {
        (self.addr_granule_side & ((1 << ADDR_BITS) - 1)) as usize
    }

    /// Size in bytes of the lost unit: `1 << si_addr_lsb`, or the page size when
    /// the kernel reports no granularity (`BUS_ADRERR`, `BUS_OBJERR`). A whole
    /// huge page for hugetlb poison.
    pub fn granule(&self) -> usize {
        1 << ((self.addr_granule_side >> ADDR_BITS) & 0x3f)
    }

    /// The `errno` a `pread(2)` of the same bytes would have failed with:
    /// `EIO` for poison and object errors, `EFAULT` for an address error.
    pub fn raw_os_error(&self) -> i32 {
        match self.kind() {
            FaultKind::Poison | FaultKind::ObjectError => libc::EIO,
            FaultKind::AddressError => libc::EFAULT,
        }
    }

    /// The same fault with another `copied`: for an operation done in pieces,
    /// whose cut is counted from the start of the whole.
    pub(crate) fn with_copied(self, copied: usize) -> Fault {
        Fault::new(
            copied,
            self.side(),
            self.kind(),
            self.addr(),
            self.granule(),
        )
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Poison => "hardware memory error (BUS_MCEERR_AR)",
            FaultKind::AddressError => "no memory at address (BUS_ADRERR)",
            FaultKind::ObjectError => "backing object error (BUS_OBJERR)",
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fault: {} at {:#x}, {}-byte unit lost; {} bytes copied before it",
            self.side(),
            self.kind(),
            self.addr(),
            self.granule(),
            self.copied()
        )
    }
}

/// As `#[derive(Debug)]` would print the fields.
impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("copied", &self.copied())
            .field("side", &self.side())
            .field("kind", &self.kind())
            .field("addr", &self.addr())
            .field("granule", &self.granule())
            .finish()
    }
}

impl std::error::Error for Fault {}

/// Converts to an [`std::io::Error`] that carries the `Fault` inside.
///
/// `get_ref()` / `into_inner()` give the `Fault` back, downcast from
/// `dyn Error`. The kind is [`std::io::ErrorKind::Other`].
///
/// A `std::io::Error` holds either a raw OS error or a payload, never both;
/// this one keeps the payload, so `raw_os_error()` is `None`. The errno a
/// `pread(2)` would have given (`EIO` for poison) is
/// [`Fault::raw_os_error`], reachable from the payload:
///
/// ```
/// # fn check(err: std::io::Error) -> Option<i32> {
/// let errno = err
///     .get_ref()
///     .and_then(|e| e.downcast_ref::<mcsafe::Fault>())
///     .map(|fault| fault.raw_os_error());
/// # errno }
/// ```
impl From<Fault> for std::io::Error {
    fn from(fault: Fault) -> std::io::Error {
        std::io::Error::other(fault)
    }
}

/// Why the SIGBUS handler could not be put in place, or is no longer in place:
/// the error of [`install`](crate::install). `Display` explains it in words.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// `sigaction(2)` failed with this errno.
    Sigaction(i32),
    /// The landing-pad table emitted by the assembly is not sorted or has an empty
    /// or overlapping range: a build defect, reported instead of mis-routing faults.
    CorruptTable,
    /// Some code replaced mcsafe's SIGBUS handler after it was installed, and the
    /// replacement does not pass copy faults on to it: a fault inside a copy would
    /// not be recovered. What the replacement does with one is the
    /// [`Replacement`]. Install the other handler *before* mcsafe's (mcsafe
    /// passes every SIGBUS that is not its own on to it), or make it call the
    /// handler it replaced for SIGBUS it does not own, as `signal-hook` does.
    Replaced(Replacement),
    /// SIGBUS is blocked in the calling thread. The handler is installed, but
    /// a copy fault in this thread (or in threads that inherit its signal mask)
    /// would kill the process: the kernel forces a blocked synchronous SIGBUS to
    /// its default action. Unblock SIGBUS in every thread that copies, and keep
    /// it out of the `sa_mask` of signal handlers that copy.
    SigbusBlocked,
    /// This target has no fault-safe copy (only x86-64 and aarch64 Linux have one); copies
    /// are plain copies and a fault kills the process.
    Unsupported,
    /// Another copy of mcsafe is loaded in this process: for example the C
    /// library `libmcsafe.so` and a Rust program or library that contains this
    /// crate, or two shared libraries that each contain it. The SIGBUS handler
    /// is process-wide, so there must be one copy. No copy initialises while
    /// another is loaded (its copies panic, or in C return `-EEXIST`); one that
    /// initialised before the other was loaded (by `dlopen`) keeps working,
    /// and its `install` reports this. Use one
    /// copy: from Rust, call the C library (or link everything against one
    /// build of the crate). Each object that contains mcsafe carries an ELF
    /// note named `mcsafe` (`readelf -n`), which is how the copies find each
    /// other.
    AnotherCopy,
    /// `MCSAFE_STRATEGY` names no strategy, or one this CPU cannot run: nothing
    /// was installed, and every copy (and every other entry point that
    /// installs on first use) panics with the same words before touching
    /// memory, as it would without this call: a forced choice that cannot be
    /// honoured is never replaced by another. Unset the variable or name one of
    /// [`Strategy::available`](crate::Strategy::available).
    /// [`Strategy::try_current`](crate::Strategy::try_current) makes the same
    /// check without installing anything.
    BadStrategy(crate::StrategyEnvError),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::Sigaction(errno) => write!(
                f,
                "sigaction(SIGBUS) failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            InstallError::CorruptTable => f.write_str(
                "mcsafe's landing-pad table is not sorted or has bad ranges (build defect)",
            ),
            InstallError::Replaced(by) => write!(
                f,
                "mcsafe's SIGBUS handler was replaced by {by}, so copy faults are not \
                 recovered: install that handler before mcsafe's, or make it pass \
                 SIGBUS it does not own on to the handler it replaced (as signal-hook does)"
            ),
            InstallError::SigbusBlocked => f.write_str(
                "SIGBUS is blocked in this thread: a copy fault here would kill the process \
                 (the kernel forces a blocked synchronous SIGBUS to its default action); \
                 unblock SIGBUS in every thread that copies (pthread_sigmask(SIG_UNBLOCK, ...))",
            ),
            InstallError::Unsupported => f.write_str(
                "mcsafe has no fault-safe copy on this target (x86-64 and aarch64 Linux only); \
                 copies are plain and a fault kills the process",
            ),
            InstallError::AnotherCopy => f.write_str(
                "another copy of mcsafe is loaded in this process (libmcsafe.so and a Rust \
                 program or library that contains the crate, or two libraries that each \
                 contain it; `readelf -n` shows an `mcsafe` note in each): its SIGBUS handler \
                 is process-wide, so use one copy",
            ),
            InstallError::BadStrategy(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for InstallError {}

/// What replaced mcsafe's SIGBUS handler, as [`install`](crate::install) found
/// out: the current action, or, for a handler function, what it did with a real
/// copy fault taken by a probe in a forked child process.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// `SIG_DFL`: a copy fault kills the process by SIGBUS.
    Default,
    /// `SIG_IGN`: the kernel forces a copy fault through and kills the process.
    Ignore,
    /// A handler that let the probe's copy fault neither finish nor end the
    /// process within the probe's time limit: one that returns without passing
    /// the fault on makes the faulting instruction fault again, forever (or it
    /// blocked).
    Hung,
    /// A handler that ended the probe by this signal on a copy fault.
    Killed(i32),
    /// A handler that made the probe exit with this status on a copy fault.
    Exited(i32),
    /// A handler mcsafe could not check: the probe failed with this errno
    /// (`fork` failed, or the probe was reaped by someone else).
    Unverified(i32),
}

impl fmt::Display for Replacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Replacement::Default => f.write_str("SIG_DFL (a copy fault kills the process)"),
            Replacement::Ignore => f.write_str(
                "SIG_IGN (the kernel forces a copy fault through and kills the process)",
            ),
            Replacement::Hung => f.write_str(
                "a handler that does not pass copy faults on (a probe copy fault was still \
                 repeating or blocked when its time ran out)",
            ),
            Replacement::Killed(signal) => write!(
                f,
                "a handler that does not pass copy faults on (a probe copy fault ended by \
                 signal {signal})"
            ),
            Replacement::Exited(status) => write!(
                f,
                "a handler that does not pass copy faults on (a probe copy fault made the \
                 process exit with status {status})"
            ),
            Replacement::Unverified(errno) => write!(
                f,
                "a handler mcsafe could not check ({})",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_keeps_every_field_in_two_words() {
        assert_eq!(size_of::<Fault>(), 16);
        assert_eq!(size_of::<Result<(), Fault>>(), 16, "Ok is the niche");
        let extremes = [
            (0, Side::Source, FaultKind::Poison, 0, 1),
            (
                (1 << 62) - 1,
                Side::Destination,
                FaultKind::ObjectError,
                (1 << 57) - 1,
                1 << 63,
            ),
            (
                4096,
                Side::Destination,
                FaultKind::AddressError,
                0x7fff_1234_5678,
                2 << 20,
            ),
            (12, Side::Source, FaultKind::Poison, 0x1000, 1 << 30),
        ];
        for (copied, side, kind, addr, granule) in extremes {
            let f = Fault::new(copied, side, kind, addr, granule);
            assert_eq!(
                (f.copied(), f.side(), f.kind(), f.addr(), f.granule()),
                (copied, side, kind, addr, granule)
            );
            assert_eq!(f.with_copied(7).copied(), 7);
            assert_eq!(f.with_copied(7).addr(), addr);
            assert!(Err::<(), Fault>(f).is_err());
        }
        let f = Fault::new(3, Side::Destination, FaultKind::Poison, 0x5000, 4096);
        assert_eq!(
            format!("{f:?}"),
            "Fault { copied: 3, side: Destination, kind: Poison, addr: 20480, granule: 4096 }"
        );
    }
}
