//! The arch interface: what a target provides ([`Target`]), and the one module per
//! target that provides it. x86-64 Linux (`x86_64`) and aarch64 Linux (`aarch64`)
//! have fault-safe copies; elsewhere `unprotected` keeps the API and copies
//! plainly (see the crate docs). The rest of the crate reaches the target only
//! through [`Arch`], this build's implementation, so the compiler checks every
//! target against the same list. (The test hooks, `src/internals.rs`, and the
//! checksum's unit tests also name a few items of the protected target's module,
//! as `native`: the same names on both.)
//!
//! A target provides routines in four calling conventions (copy, fill, checksum,
//! copy-and-checksum), each run once by a `run_*` function that returns where it
//! stopped ([`Stopped`]); the portable code builds the public API on them, with
//! the careful forward step (`src/forward.rs`). Change this trait, then build
//! every implementation: `cargo build --workspace --all-targets`, the same with
//! `--target aarch64-unknown-linux-gnu`, and the unprotected build
//! (`MCSAFE_UNPROTECTED=1 CARGO_TARGET_DIR=target/unprotected cargo test -p mcsafe
//! -p mcsafe-capi --lib`).

use core::fmt::Debug;
#[cfg(mcsafe_protected)]
use core::marker::PhantomData;

use crate::{Fault, InstallError, Strategy};

#[cfg(all(mcsafe_protected, target_arch = "x86_64"))]
pub(crate) mod x86_64;
#[cfg(all(mcsafe_protected, target_arch = "x86_64"))]
#[cfg_attr(not(feature = "internals"), allow(unused_imports))] // the test hooks'
pub(crate) use x86_64 as native;
/// This build's target.
#[cfg(all(mcsafe_protected, target_arch = "x86_64"))]
pub(crate) type Arch = x86_64::X86_64;

#[cfg(all(mcsafe_protected, target_arch = "aarch64"))]
pub(crate) mod aarch64;
#[cfg(all(mcsafe_protected, target_arch = "aarch64"))]
#[cfg_attr(not(feature = "internals"), allow(unused_imports))] // the test hooks'
pub(crate) use aarch64 as native;
/// This build's target.
#[cfg(all(mcsafe_protected, target_arch = "aarch64"))]
pub(crate) type Arch = aarch64::Aarch64;

#[cfg(all(mcsafe_protected, test))]
pub(crate) use native::every_routine;

#[cfg(not(mcsafe_protected))]
mod unprotected;
/// This build's target.
#[cfg(not(mcsafe_protected))]
pub(crate) type Arch = unprotected::Unprotected;

/// What a target provides. Every function that runs a routine is `unsafe`: its
/// callers vouch for the ranges (checked by the portable code before the call, unless
/// the function says it checks them) and for the memory behind them.
pub(crate) trait Target {
    /// A routine of the copy convention: a strategy's, or an exact-size one.
    type Copy: Copy + PartialEq + Debug;
    /// A checksum routine (with its block size).
    type Crc: Copy + PartialEq + Debug;
    /// A copy-and-checksum routine (with its block sizes).
    type CopyCrc: Copy + PartialEq + Debug;

    /// Below this many bytes, [`Target::run_crc_short`] may run a checksum: the
    /// short call saves no registers, so it can stay inline.
    const CRC_SHORT: usize;
    /// Whether the strategies' copy routines check their ranges themselves (so
    /// that a caller need not before [`Target::run_copy`]).
    const CHECKS_COPIES: bool;

    // ---- Installation ----

    /// `mcsafe::install`: the handler, the routines, and the checks.
    fn install() -> Result<(), InstallError>;
    /// Installs everything on first use, or panics as a first use does.
    fn ensure_installed();
    /// The handler's counters: recovered, passed on.
    fn counts() -> (u64, u64);
    /// The granule of a fault that reports none.
    fn page_size() -> usize;

    // ---- Dispatch ----

    /// Whether this CPU can run `strategy`'s routine.
    fn can_run(strategy: Strategy) -> bool;
    /// The strategy chosen when `MCSAFE_STRATEGY` is not set.
    fn default_strategy() -> Strategy;
    /// The rule that picked the default and the thresholds, in words.
    fn dispatch_rule() -> String;
    /// The vector routines' size thresholds in force (installs).
    fn thresholds() -> Thresholds;
    /// How the widest routine's non-temporal loop runs here, in words (empty
    /// where there is only one shape). Installs first.
    fn non_temporal_loop() -> &'static str {
        ""
    }
    /// How the checksums compute here.
    fn checksum() -> crate::Checksum;

    // ---- Copies ----

    /// `copy_mc`: the current strategy's routine, which checks the ranges itself
    /// (a panic that names them), then the forward step after a fault.
    ///
    /// # Safety
    /// As for `copy_mc`.
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault>;
    /// `copy_mc_with`: as [`Target::copy`] with `strategy`'s routine (panics if
    /// this CPU cannot run it).
    ///
    /// # Safety
    /// As for `copy_mc`.
    unsafe fn copy_with(
        strategy: Strategy,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Fault>;
    /// The routine of `strategy`, or of the current one (`None`), installing on
    /// first use; panics if this CPU cannot run it.
    fn copy_routine(strategy: Option<Strategy>) -> Self::Copy;
    /// The one-load, one-store routine for `size` bytes, or `None` where the copy
    /// routine must do it (`load_at`: the load's address, when it is the caller's).
    fn exact_routine(size: usize, load_at: Option<usize>) -> Option<Self::Copy>;
    /// Runs a copy routine once over `len > 0` bytes. A strategy's routine
    /// refuses bad ranges with `copy_mc`'s panic where [`Target::CHECKS_COPIES`],
    /// and there also takes `len == 0`, returning `Ok` before reading a pointer.
    ///
    /// # Safety
    /// The handler is installed; as for `copy_mc` for the memory; an exact
    /// routine gets exactly its size, and ranges its caller checked (it checks
    /// nothing); the ranges pass `ranges_are_bad` where not `CHECKS_COPIES`.
    unsafe fn run_copy(
        routine: Self::Copy,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Stopped>;
    /// Runs the fill routine once over `len > 0` bytes.
    ///
    /// # Safety
    /// The range is checked; the handler is installed; as for `fill_mc`.
    unsafe fn run_fill(dst: *mut u8, byte: u8, len: usize) -> Result<(), Stopped>;

    // ---- Checksums ----

    /// The checksum routine this CPU runs best (`None`: software), without
    /// installing anything: for `crc32c` of a slice. Cheap once known.
    fn crc() -> Option<Self::Crc>;
    /// The same with the handler installed: for memory that may fault.
    fn protected_crc() -> Option<Self::Crc>;
    /// The one-stream routine, which the careful forward step runs (sequential
    /// reads), if this CPU has one.
    fn stream_crc() -> Option<Self::Crc>;
    /// Runs a checksum routine once over `len > 0` bytes, continuing `state`
    /// (not inverted); returns the state of exactly the bytes done.
    ///
    /// # Safety
    /// The range is checked; readable but where it may raise SIGBUS, which only
    /// an installed handler survives.
    unsafe fn run_crc(
        routine: Self::Crc,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>);
    /// [`Target::run_crc`] for `0 < len < CRC_SHORT`.
    ///
    /// # Safety
    /// As for [`Target::run_crc`].
    unsafe fn run_crc_short(
        routine: Self::Crc,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>);
    /// The copy-and-checksum routine of `routine`'s width, if there is one.
    fn copy_crc_of(routine: Self::Crc) -> Option<Self::CopyCrc>;
    /// Runs a copy-and-checksum routine once over `len > 0` bytes.
    ///
    /// # Safety
    /// As for [`Target::run_copy`].
    unsafe fn run_copy_crc(
        routine: Self::CopyCrc,
        dst: *mut u8,
        src: *const u8,
        len: usize,
        state: u32,
    ) -> (u32, Result<(), Stopped>);

    // ---- The C API ----

    /// The entry of libmcsafe's copy, `int f(void *dst, const void *src, size_t
    /// len, void *context)`: 0 when every byte was copied, -EINVAL (touching
    /// nothing) for what `copy_mc` refuses with a panic, and after a fault what
    /// `sink` returns for the exact fault and `context`. Installs first.
    #[cfg_attr(not(feature = "c-api"), allow(dead_code))] // libmcsafe's only
    fn c_copy_entry(sink: FaultSink) -> usize;

    /// For libmcsafe's IFUNC resolver: an entry of the same shape that a caller
    /// can reach with no jump of libmcsafe's own, `dispatch` (libmcsafe's way to
    /// [`Target::c_copy_entry`]'s routine, and to installation on first use)
    /// wherever the entry cannot go straight in. Installs nothing, reads no
    /// environment, takes no lock (it runs inside the dynamic linker). Without a
    /// direct entry: `dispatch` itself.
    #[cfg_attr(not(feature = "c-api"), allow(dead_code))] // libmcsafe's only
    fn c_copy_direct_entry(dispatch: CCopyFn) -> usize {
        dispatch as usize
    }
}

/// The shape of a C API copy: `int f(void *dst, const void *src, size_t len,
/// void *context)`.
pub type CCopyFn = unsafe extern "C" fn(
    *mut core::ffi::c_void,
    *const core::ffi::c_void,
    usize,
    *mut core::ffi::c_void,
) -> core::ffi::c_int;

/// What the C library makes of a copy stopped by a fault: the exact fault (or
/// `None` when the forward step panicked, a bug) and the context its caller
/// passed; its return value is what the C copy returns.
pub type FaultSink = fn(Option<Fault>, *mut core::ffi::c_void) -> core::ffi::c_int;

/// The sink in force (a [`FaultSink`] as a word; 0 until a target's
/// `c_copy_entry` set it): shared by the protected targets' C entries.
#[cfg(mcsafe_protected)]
static SINK: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Makes C copies stopped by a fault return what `sink` makes of them.
#[cfg(mcsafe_protected)]
#[cfg_attr(not(any(feature = "c-api", feature = "internals")), allow(dead_code))]
pub(crate) fn set_fault_sink(sink: FaultSink) {
    SINK.store(sink as usize, core::sync::atomic::Ordering::Release);
}

/// What a C copy stopped by a fault returns: `finish` (its careful forward
/// step) runs here, then the sink gets the exact fault (`None` if `finish`
/// panicked, a bug) and `context`. -ENOTRECOVERABLE without a sink or when it
/// panics: no panic leaves this function, so none crosses into C.
#[cfg(mcsafe_protected)]
pub(crate) fn c_copy_stopped(
    finish: impl FnOnce() -> Fault,
    context: *mut core::ffi::c_void,
) -> core::ffi::c_int {
    let fault = std::panic::catch_unwind(std::panic::AssertUnwindSafe(finish)).ok();
    let sink = SINK.load(core::sync::atomic::Ordering::Acquire);
    if sink == 0 {
        return -libc::ENOTRECOVERABLE;
    }
    // SAFETY: every non-zero value of SINK is a `FaultSink` (set_fault_sink).
    let sink = unsafe { core::mem::transmute::<usize, FaultSink>(sink) };
    std::panic::catch_unwind(|| sink(fault, context)).unwrap_or(-libc::ENOTRECOVERABLE)
}

/// Sizes at which the vector strategies change method (`usize::MAX`: never).
/// Set once from CPUID on x86-64 Linux (`x86_64/cpu.rs`); every method is
/// "never" elsewhere (aarch64, whose one strategy has fixed size classes, and
/// targets without fault-safe copies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// From this many bytes, the AVX2 routine copies with `rep movsb`.
    pub avx2_rep_movsb: usize,
    /// From this many bytes, the AVX-512 routine copies with `rep movsb`.
    pub avx512_rep_movsb: usize,
    /// From this many bytes, both copy with their vector loop again instead of
    /// `rep movsb` (glibc's `rep_movsb_stop_threshold`).
    pub rep_movsb_stop: usize,
    /// From this many bytes, both copy with non-temporal stores (checked first).
    pub non_temporal: usize,
}

impl Thresholds {
    /// Every method "never": where there are no vector routines.
    #[cfg_attr(all(mcsafe_protected, target_arch = "x86_64"), allow(dead_code))]
    pub(crate) const NEVER: Thresholds = Thresholds {
        avx2_rep_movsb: usize::MAX,
        avx512_rep_movsb: usize::MAX,
        rep_movsb_stop: usize::MAX,
        non_temporal: usize::MAX,
    };
}

/// `rep movsb from 2112 B (avx2), 16 KiB (avx512) to never; non-temporal from
/// 8 MiB`: what the probe and the benchmarks' headers print.
impl core::fmt::Display for Thresholds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "rep movsb from {} (avx2), {} (avx512) to {}; non-temporal stores from {}",
            Size(self.avx2_rep_movsb),
            Size(self.avx512_rep_movsb),
            Size(self.rep_movsb_stop),
            Size(self.non_temporal)
        )
    }
}

/// A threshold in words: `never`, or bytes in the largest binary unit that
/// divides them (`2112 B`, `16 KiB`, `8 MiB`).
struct Size(usize);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let n = self.0;
        if n >= 1 << 47 {
            return f.write_str("never");
        }
        match [(30, "GiB"), (20, "MiB"), (10, "KiB")]
            .into_iter()
            .find(|&(shift, _)| n >= 1 << shift && n.is_multiple_of(1 << shift))
        {
            Some((shift, unit)) => write!(f, "{} {unit}", n >> shift),
            None => write!(f, "{n} B"),
        }
    }
}

/// A routine stopped by a fault: what it had done and what the handler saw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopped {
    /// Bytes from the start of the run known done (the progress invariant).
    pub(crate) progress: usize,
    /// `si_code` of the SIGBUS.
    pub(crate) code: i32,
    /// `si_addr_lsb` of the SIGBUS (0 when the kernel gave none).
    pub(crate) addr_lsb: u32,
    /// `si_addr` of the SIGBUS.
    pub(crate) addr: usize,
}

/// The refusal status of a copy routine's argument check (x86-64 rax, aarch64
/// x16; asm/routine.s, asm/aarch64/routine.s): nothing was touched.
#[cfg(mcsafe_protected)]
pub(crate) const STATUS_BAD_ARGUMENTS: usize = 0x8000_0000_0000_0001;

#[cfg(mcsafe_protected)]
impl Stopped {
    /// The fault of a run over `len` bytes from a routine's exit registers:
    /// the bytes not done, the fault word the handler wrote (`si_code`, and
    /// `si_addr_lsb` from bit `WORD_LSB_SHIFT`) and `si_addr`. Only for a word
    /// that is a fault.
    #[inline]
    pub(crate) fn from_exit(len: usize, not_done: usize, word: usize, addr: usize) -> Stopped {
        use crate::handler::signal::WORD_LSB_SHIFT;
        Stopped {
            progress: len - not_done.min(len),
            code: (word & 0xffff) as u16 as i16 as i32,
            addr_lsb: ((word >> WORD_LSB_SHIFT) & 0xff) as u32,
            addr,
        }
    }
}

/// The outcome of a one-buffer run (fill, checksum) over `len` bytes, from its
/// exit registers (status 0: all done).
#[cfg(mcsafe_protected)]
#[inline]
pub(crate) fn outcome(
    len: usize,
    not_done: usize,
    word: usize,
    addr: usize,
) -> Result<(), Stopped> {
    match word {
        0 => Ok(()),
        word => Err(Stopped::from_exit(len, not_done, word, addr)),
    }
}

/// The entry of one routine of convention `C` (each target's `routines::conv`
/// types): a routine of one convention can only be run the way it says.
#[cfg(mcsafe_protected)]
#[derive(Debug)]
pub(crate) struct Routine<C>(usize, PhantomData<C>);

#[cfg(mcsafe_protected)]
impl<C> Clone for Routine<C> {
    fn clone(&self) -> Self {
        *self
    }
}
#[cfg(mcsafe_protected)]
impl<C> Copy for Routine<C> {}
#[cfg(mcsafe_protected)]
impl<C> PartialEq for Routine<C> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

#[cfg(mcsafe_protected)]
impl<C> Routine<C> {
    /// The routine whose entry is `entry` (from a target's `routine!` or a
    /// dispatch word).
    #[inline(always)]
    pub(crate) const fn at(entry: usize) -> Routine<C> {
        Routine(entry, PhantomData)
    }

    /// Its entry address.
    #[inline(always)]
    pub(crate) fn addr(self) -> usize {
        self.0
    }
}
