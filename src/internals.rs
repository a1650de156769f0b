//! Test hooks for mcsafe's own tests, benchmarks and VM harness (feature
//! `internals`); not a stable API, and not there unless a crate asks for the
//! feature, which mcsafe's own workspace packages do. Nothing in the crate
//! depends on this module, and nothing here is read by a routine on its hot path:
//! the hooks pass what they change (block sizes, paths) as arguments, except the
//! copy thresholds, which every vector copy reads once per call above 512 bytes
//! (they are tunables, not only test knobs).
//!
//! Change it, then run `cargo test` (every test package uses it) and `cargo test
//! -p xtask -p mcsafe-vm-guest`.

use crate::CrcFault;
#[cfg(mcsafe_protected)]
use crate::{Fault, Strategy};

pub use crate::arch::Thresholds;
#[cfg(mcsafe_protected)]
pub use crate::table::{
    Convention, Descriptor, LandingPad, Regs, descriptor_at, descriptors, landing_pads,
};

/// The routine `name` of `asm/` (`"copy_avx2"`, `"crc32c_fold256"`, ...), from the
/// descriptor table.
#[cfg(mcsafe_protected)]
pub fn routine(name: &str) -> Option<Descriptor> {
    descriptors().find(|d| d.name == name)
}

/// The routine of `strategy` (whether or not this CPU can run it): its name in
/// `asm/`, for [`routine`].
#[cfg(mcsafe_protected)]
pub fn strategy_routine(strategy: Strategy) -> Descriptor {
    let entry = crate::arch::native::strategy_routine(strategy).addr();
    descriptor_at(entry).unwrap_or_else(|| panic!("no descriptor for {strategy}"))
}

/// The Rust copy of `strategy` (what `copy_mc` and `copy_mc_with` call).
#[cfg(mcsafe_protected)]
pub fn rust_strategy_routine(strategy: Strategy) -> Descriptor {
    let entry = crate::arch::native::rust_strategy_routine(strategy).addr();
    descriptor_at(entry).unwrap_or_else(|| panic!("no Rust copy descriptor for {strategy}"))
}

/// [`copy_mc_with`](crate::copy_mc_with) through the strategy's register-mode
/// routine (what the forward steps and the lossy copy run), with the same forward
/// step after a fault: for tests that trace and sweep it.
///
/// # Safety
/// As for `copy_mc`; this CPU runs `strategy`.
///
/// # Panics
/// As for `copy_mc_with`.
#[cfg(mcsafe_protected)]
pub unsafe fn register_copy_with(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<(), Fault> {
    use crate::arch::{Arch, Target};
    if len == 0 {
        return Ok(());
    }
    crate::copy::check_copy(dst, src, len);
    let routine = Arch::copy_routine(Some(strategy));
    // SAFETY: ranges checked, installed (copy_routine), the CPU runs it; the
    // caller vouches for the memory.
    match unsafe { Arch::run_copy(routine, dst, src, len) } {
        Ok(()) => Ok(()),
        // SAFETY: as above.
        Err(stopped) => Err(unsafe { crate::forward::copy_after(routine, dst, src, len, stopped) }),
    }
}

/// The C API twin of [`strategy_routine`] (what libmcsafe's `mcsafe_copy` runs).
#[cfg(mcsafe_protected)]
pub fn c_strategy_routine(strategy: Strategy) -> Descriptor {
    let entry = crate::arch::native::c_strategy_routine(strategy).addr();
    descriptor_at(entry).unwrap_or_else(|| panic!("no C API descriptor for {strategy}"))
}

/// Whether this CPU has what the routine `d` needs.
#[cfg(mcsafe_protected)]
pub fn can_run(d: &Descriptor) -> bool {
    crate::arch::native::cpu::can_run_at(d.entry)
}

/// The vector routines' size thresholds in force (initializes the crate).
pub fn thresholds() -> Thresholds {
    <crate::arch::Arch as crate::arch::Target>::thresholds()
}

/// Replaces the size thresholds, so that tests can reach every path of the
/// vector routines with small copies and benchmarks can compare methods.
/// Copies stay correct under any thresholds; only their speed changes.
#[cfg(mcsafe_protected)]
pub fn set_thresholds(thresholds: Thresholds) {
    let _ = self::thresholds(); // after init, which would overwrite them
    crate::arch::native::routines::set_thresholds(thresholds)
}

/// The shape of the avx512 routine's non-temporal loop in force: page streams
/// with prefetches (`true`) or the plain loop (initializes the crate).
#[cfg(mcsafe_protected)]
pub fn avx512_page_streams() -> bool {
    let _ = self::thresholds(); // after init, which sets it
    crate::arch::native::routines::avx512_page_streams()
}

/// Sets the shape of the avx512 routine's non-temporal loop (see
/// [`avx512_page_streams`]), so that tests trace both and benchmarks compare
/// them on any CPU.
#[cfg(mcsafe_protected)]
pub fn set_avx512_page_streams(on: bool) {
    let _ = self::thresholds(); // after init, which would overwrite it
    crate::arch::native::routines::set_avx512_page_streams(on);
}

/// Whether the fold512 checksum walks prefetch in software (initializes the
/// crate).
#[cfg(mcsafe_protected)]
pub fn fold512_prefetch() -> bool {
    let _ = self::thresholds(); // after init, which sets it
    crate::arch::native::routines::fold512_prefetch()
}

/// Turns the fold512 checksum walks' software prefetch on or off, so that tests
/// run every instruction and benchmarks compare both on any CPU.
#[cfg(mcsafe_protected)]
pub fn set_fold512_prefetch(on: bool) {
    let _ = self::thresholds(); // after init, which would overwrite it
    crate::arch::native::routines::set_fold512_prefetch(on);
}

/// [`copy_mc_with`](crate::copy_mc_with) through the strategy's C API routine,
/// as libmcsafe's `mcsafe_copy` runs it (no Rust frame around the routine): 0,
/// -EINVAL for refused ranges, or -EIO with the exact fault (after the same
/// forward step). For tests that trace and sweep the C API routines without the
/// C library.
///
/// # Safety
/// As for `copy_mc`; this CPU runs `strategy`.
#[cfg(mcsafe_protected)]
pub unsafe fn c_copy_with(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> (i32, Option<Fault>) {
    fn sink(fault: Option<Fault>, context: *mut core::ffi::c_void) -> core::ffi::c_int {
        // SAFETY: the context is the `Option<Fault>` below.
        unsafe { context.cast::<Option<Fault>>().write(fault) };
        -libc::EIO
    }
    assert!(
        strategy.is_available(),
        "mcsafe: this CPU cannot run {strategy}"
    );
    let current = crate::arch::native::c_api::copy_entry(sink);
    // x86-64: the strategy's own C API routine; aarch64: the one C entry (one
    // strategy, checked above).
    #[cfg(target_arch = "x86_64")]
    let entry = {
        let _ = current;
        crate::arch::native::c_strategy_routine(strategy).addr()
    };
    #[cfg(target_arch = "aarch64")]
    let entry = current;
    type CCopy = unsafe extern "C" fn(*mut u8, *const u8, usize, *mut core::ffi::c_void) -> i32;
    // SAFETY: a C API routine is that C function (asm/routine.s, CONV_C_COPY).
    let f = unsafe { core::mem::transmute::<usize, CCopy>(entry) };
    let mut fault = None;
    // SAFETY: the caller's contract; the context outlives the call.
    let code = unsafe { f(dst, src, len, (&raw mut fault).cast()) };
    (code, fault)
}

/// The ways `crc32c_mc` can compute, for tests that run each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrcPath {
    /// The folding routine with 512-bit vectors, one sequential walk (SSE4.2,
    /// PCLMULQDQ, AVX, AVX2, AVX-512 F and VL, VPCLMULQDQ).
    Fold512,
    /// The folding routine with 256-bit vectors (SSE4.2, PCLMULQDQ, AVX2,
    /// VPCLMULQDQ).
    Fold256,
    /// The folding routine with 128-bit vectors (SSE4.2, PCLMULQDQ, AVX).
    Fold128,
    /// The one-stream `crc32` routine (SSE4.2), or aarch64's one `crc32cx`
    /// chain (FEAT_CRC32).
    Stream,
    /// aarch64: three `crc32cx` streams per block merged with PMULL (FEAT_CRC32
    /// and FEAT_PMULL).
    Pmull,
    /// `copy_mc` into a stack buffer, then the software CRC (any CPU).
    Copies,
}

/// The largest block the folding checksums are given by default (each takes at
/// most its own: 8 KiB for fold128 and fold256, 32 KiB for fold512; their
/// commits); tests pass smaller ones (at least 320) to reach several commits with
/// short buffers. (aarch64's blocks are fixed: the block a test passes changes
/// nothing there.)
pub const CRC_BLOCK: usize = 32768;

/// The copy-and-checksum's default largest block (each routine takes at most its
/// own: 4 KiB with streams, 32 KiB for fold512) and the call length from which the
/// routines with streams take blocks without them; tests pass smaller ones.
pub const COPY_CRC_BLOCKS: (usize, usize) = (32768, 256 << 10);

#[cfg(mcsafe_protected)]
use crate::arch::native::{Checksum, CopyChecksum, CrcRoutine};

impl CrcPath {
    /// Every path, of every target.
    pub const ALL: [CrcPath; 6] = [
        CrcPath::Fold512,
        CrcPath::Fold256,
        CrcPath::Fold128,
        CrcPath::Stream,
        CrcPath::Pmull,
        CrcPath::Copies,
    ];

    /// Its routine on this target (`None`: `Copies`, or a path of another target).
    #[cfg(all(mcsafe_protected, target_arch = "x86_64"))]
    fn routine(self) -> Option<CrcRoutine> {
        match self {
            CrcPath::Fold512 => Some(CrcRoutine::Fold512),
            CrcPath::Fold256 => Some(CrcRoutine::Fold256),
            CrcPath::Fold128 => Some(CrcRoutine::Fold128),
            CrcPath::Stream => Some(CrcRoutine::Stream),
            CrcPath::Pmull | CrcPath::Copies => None,
        }
    }

    /// Its routine on this target (`None`: `Copies`, or a path of another target).
    #[cfg(all(mcsafe_protected, target_arch = "aarch64"))]
    fn routine(self) -> Option<CrcRoutine> {
        match self {
            CrcPath::Pmull => Some(CrcRoutine::Pmull),
            CrcPath::Stream => Some(CrcRoutine::Stream),
            CrcPath::Fold512 | CrcPath::Fold256 | CrcPath::Fold128 | CrcPath::Copies => None,
        }
    }

    /// The path `crc32c_mc` takes on this CPU.
    pub fn current() -> CrcPath {
        #[cfg(mcsafe_protected)]
        return crate::arch::native::crc_routine()
            .and_then(|r| CrcPath::ALL.into_iter().find(|p| p.routine() == Some(r)))
            .unwrap_or(CrcPath::Copies);
        #[cfg(not(mcsafe_protected))]
        CrcPath::Copies
    }

    /// Whether this CPU can take it (found once: the forced calls below test it
    /// on every call, and the benchmarks time them).
    pub fn is_available(self) -> bool {
        #[cfg(mcsafe_protected)]
        {
            static AVAILABLE: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
            let bits = *AVAILABLE.get_or_init(|| {
                CrcPath::ALL
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        **p == CrcPath::Copies
                            || p.routine().is_some_and(crate::arch::native::can_run_crc)
                    })
                    .fold(0, |bits, (i, _)| bits | 1 << i)
            });
            let i = CrcPath::ALL.iter().position(|&p| p == self).unwrap_or(0);
            bits & (1 << i) != 0
        }
        #[cfg(not(mcsafe_protected))]
        {
            self == CrcPath::Copies
        }
    }

    /// Its routine's descriptor (its entry, for tracing), for all but `Copies`.
    #[cfg(mcsafe_protected)]
    pub fn routine_descriptor(self) -> Option<Descriptor> {
        descriptor_at(self.routine()?.routine().addr())
    }

    /// Its copy-and-checksum routine's descriptor, for the folding paths.
    #[cfg(mcsafe_protected)]
    pub fn copy_routine_descriptor(self) -> Option<Descriptor> {
        descriptor_at(self.routine()?.copy_routine()?.addr())
    }
}

/// `crc32c_mc` through the chosen path, with blocks of at most `block` bytes
/// (the folding routines'; [`CRC_BLOCK`] by default, clamped to 320..=CRC_BLOCK,
/// and each routine takes at most its own largest block): the CRC is the same for
/// every block size, only the commits move.
///
/// # Safety
/// As for [`crc32c_mc`](crate::crc32c_mc).
///
/// # Panics
/// As for `crc32c_mc`, and if this CPU cannot take `path`.
pub unsafe fn crc32c_mc_with(
    path: CrcPath,
    block: usize,
    crc: u32,
    src: *const u8,
    len: usize,
) -> Result<u32, CrcFault> {
    if len == 0 {
        return Ok(crc);
    }
    crate::copy::check_range("source", src as usize, len);
    assert!(path.is_available(), "mcsafe: this CPU cannot take {path:?}");
    <crate::arch::Arch as crate::arch::Target>::ensure_installed();
    #[cfg(mcsafe_protected)]
    if let Some(routine) = path.routine() {
        let checksum = Checksum {
            routine: routine.routine(),
            block: block.clamp(320, CRC_BLOCK),
        };
        // SAFETY: per this function's contract, range checked, the routine
        // runs here and the handler is installed.
        return unsafe { crate::crc32c::hardware(checksum, crc, src, len) };
    }
    let _ = block;
    // SAFETY: as above.
    unsafe { crate::crc32c::through_copies(crc, src, len) }
}

/// `copy_crc32c_mc` through the chosen path: the one-pass routine of that width
/// (`Fold512`, `Fold256`, `Fold128`) with `blocks` (the largest block, which each
/// routine caps at its own, and the call length from which the routines with
/// streams take blocks without them: [`COPY_CRC_BLOCKS`] by default), or `copy_mc`
/// then the checksum of that path over the copied source, chunk by chunk
/// (`Stream`, `Copies`). `Fold512` stores around the cache from the copy's
/// non-temporal threshold (`set_thresholds`).
///
/// # Safety
/// As for [`copy_crc32c_mc`](crate::copy_crc32c_mc).
///
/// # Panics
/// As for `copy_crc32c_mc`, and if this CPU cannot take `path`.
pub unsafe fn copy_crc32c_mc_with(
    path: CrcPath,
    blocks: (usize, usize),
    crc: u32,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> Result<u32, CrcFault> {
    if len == 0 {
        return Ok(crc);
    }
    crate::copy::check_copy(dst, src, len);
    assert!(path.is_available(), "mcsafe: this CPU cannot take {path:?}");
    <crate::arch::Arch as crate::arch::Target>::ensure_installed();
    #[cfg(mcsafe_protected)]
    if let Some(fused) = path.routine().and_then(CrcRoutine::copy_routine) {
        let fused = CopyChecksum {
            routine: fused,
            blocks: (blocks.0.clamp(320, COPY_CRC_BLOCKS.0), blocks.1),
        };
        // SAFETY: per this function's contract, ranges checked, the routine runs
        // here and the handler is installed.
        return unsafe { crate::crc32c::fused(fused, crc, dst, src, len) };
    }
    #[cfg(mcsafe_protected)]
    let checksum = path.routine().map(CrcRoutine::checksum);
    #[cfg(not(mcsafe_protected))]
    let checksum = {
        let _ = blocks;
        None
    };
    let mut op = crate::crc32c::CopyThenChecksum::with(checksum, crc, dst, src, len);
    // SAFETY: as above.
    unsafe { crate::forward::run(&mut op, len) }.map_err(|(crc, fault)| CrcFault::new(crc, fault))
}
