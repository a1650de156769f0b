//! CPU facts that pick a strategy and its size thresholds: which routines can run,
//! whether this is a CPU model that cannot recover from poison consumed by fast
//! strings, and how large the last-level cache is.

use core::arch::x86_64::{__cpuid, __cpuid_count};

use super::routines::CrcRoutine;
use crate::Strategy;
use crate::arch::Thresholds;

/// Whether this CPU can execute the routine of `strategy`.
pub(crate) fn can_run(strategy: Strategy) -> bool {
    match strategy {
        Strategy::Fragile => true,
        Strategy::RepMovsb => std::arch::is_x86_feature_detected!("ermsb"),
        Strategy::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
        Strategy::Avx512 => {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vendor {
    Intel,
    Amd,
    Other,
}

fn vendor() -> Vendor {
    // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let id = unsafe { __cpuid(0) };
    match (id.ebx, id.edx, id.ecx) {
        (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => Vendor::Intel, // "GenuineIntel"
        (0x6874_7541, 0x6974_6e65, 0x444d_4163) => Vendor::Amd,   // "AuthenticAMD"
        _ => Vendor::Other,
    }
}

/// The checksum routine this CPU runs best, or `None` without SSE4.2 (then
/// the checksum is computed in software):
/// - a folding routine (`asm/crc32c_fold.s`): 256-bit with PCLMULQDQ, AVX2 and
///   VPCLMULQDQ (Intel Ice Lake and later, AMD Zen 3 and later), else 128-bit
///   with PCLMULQDQ and AVX; except on the fragile models: their loads are
///   unaligned and may cross cache lines, which those cannot recover from;
/// - else the one-stream `crc32` loop (`asm/crc32c.s`), whose loads are
///   aligned words.
///
/// Runs CPUID (slow in a VM): callers cache the answer (`mod.rs`).
pub(crate) fn crc_routine() -> Option<CrcRoutine> {
    if !std::arch::is_x86_feature_detected!("sse4.2") {
        return None;
    }
    let fragile = is_fragile_model();
    Some(if can_run_crc(CrcRoutine::Fold256) && !fragile {
        CrcRoutine::Fold256
    } else if can_run_crc(CrcRoutine::Fold128) && !fragile {
        CrcRoutine::Fold128
    } else {
        CrcRoutine::Stream
    })
}

/// Whether this CPU has every instruction of the checksum routine.
pub(crate) fn can_run_crc(routine: CrcRoutine) -> bool {
    use std::arch::is_x86_feature_detected as has;
    let fold128 = has!("sse4.2") && has!("pclmulqdq") && has!("avx");
    match routine {
        CrcRoutine::Stream => has!("sse4.2"),
        CrcRoutine::Fold128 => fold128,
        CrcRoutine::Fold256 => fold128 && has!("avx2") && has!("vpclmulqdq"),
    }
}

/// Intel family 6 models on which the kernel enables `copy_mc_fragile`
/// (its Brickland and Purley platform quirks): Ivy Bridge-EX, Haswell-EX,
/// Broadwell-EX and Skylake-SP / Cascade Lake / Cooper Lake. The kernel also
/// reads a PCI capability register that user space cannot; treating every
/// such model as fragile errs on the safe side.
const FRAGILE_MODELS: [u32; 4] = [0x3e, 0x3f, 0x4f, 0x55];

/// True on the CPU models where only the fragile shape is recoverable.
pub(crate) fn is_fragile_model() -> bool {
    // SAFETY: CPUID leaf 1 exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let signature = unsafe { __cpuid(1) }.eax;
    let family = (signature >> 8) & 0xf;
    let model = ((signature >> 4) & 0xf) | ((signature >> 12) & 0xf0);
    vendor() == Vendor::Intel && family == 6 && FRAGILE_MODELS.contains(&model)
}

/// The strategy chosen when `MCSAFE_STRATEGY` is not set: `Fragile` where only
/// it is recoverable; else 64-byte vectors on Intel CPUs with AVX-512 (as glibc
/// picks `__memcpy_avx512_unaligned_erms` there; Skylake-SP, where 512-bit code
/// lowers the clock, is a fragile model anyway); else 32-byte vectors (AMD
/// Zen 4 runs 512-bit operations as two halves); else `rep movsb`.
pub(crate) fn default_strategy() -> Strategy {
    if is_fragile_model() {
        return Strategy::Fragile;
    }
    let preferred: &[Strategy] = match vendor() {
        Vendor::Intel => &[Strategy::Avx512, Strategy::Avx2, Strategy::RepMovsb],
        _ => &[Strategy::Avx2, Strategy::RepMovsb],
    };
    preferred
        .iter()
        .copied()
        .find(|s| can_run(*s))
        .unwrap_or(Strategy::Fragile)
}

/// The thresholds for this CPU.
///
/// - `rep movsb`: only on Intel CPUs with ERMS; never on AMD, where it is slow
///   for some alignments and distances. For the AVX2 routine, glibc's rule:
///   from 2112 bytes with fast short rep moves (FSRM), 8 KiB without. The
///   AVX-512 routine's 4 x 64-byte loop keeps up with `rep movsb` for longer:
///   measured on a Sapphire Rapids-class Xeon, it was 1.0 to 1.5x faster up to
///   16 KiB and `rep movsb` won from about 24 KiB (README, Performance).
/// - Non-temporal stores: from 3/4 of the last-level cache's share per logical
///   processor sharing it (glibc's rule: a copy that large evicts the cache
///   anyway, so its stores should not pass through it), but from 8 MiB at most.
///   The share CPUID reports can be far from what a thread gets: the KVM guest
///   this was measured on reports a 480 MiB L3 (a 180 MiB threshold), yet even
///   repeated copies fell out of the cache from about 32 MiB, and from 4 MiB
///   non-temporal stores were as fast as cached ones hot and 1.6x faster cold.
pub(crate) fn thresholds() -> Thresholds {
    let fast_strings = std::arch::is_x86_feature_detected!("ermsb");
    // SAFETY: leaf 7 exists whenever ERMS was detected (it is reported there).
    #[allow(unused_unsafe)]
    let fsrm = fast_strings && unsafe { __cpuid_count(7, 0) }.edx & (1 << 4) != 0;
    let intel = vendor() == Vendor::Intel;
    let (avx2_rep_movsb, avx512_rep_movsb) = match (intel, fast_strings, fsrm) {
        (true, true, true) => (2112, 16 << 10),
        (true, true, false) => (8 << 10, 16 << 10),
        _ => (usize::MAX, usize::MAX),
    };
    let (llc, sharing) = last_level_cache().unwrap_or((NON_TEMPORAL_CAP, 1));
    let share = (llc / sharing.max(1)).saturating_mul(3) / 4;
    Thresholds {
        avx2_rep_movsb,
        avx512_rep_movsb,
        non_temporal: share.clamp(1 << 20, NON_TEMPORAL_CAP),
    }
}

/// The largest non-temporal threshold (see [`thresholds`]).
const NON_TEMPORAL_CAP: usize = 8 << 20;

/// Size in bytes of the largest data or unified cache, and how many logical
/// processors share it, from CPUID's deterministic cache leaf (4 on Intel,
/// 0x8000001D on AMD; both have the same layout).
fn last_level_cache() -> Option<(usize, usize)> {
    let leaf = match vendor() {
        Vendor::Intel => 4,
        // SAFETY: extended leaf 0x80000000 exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        Vendor::Amd if unsafe { __cpuid(0x8000_0000) }.eax >= 0x8000_001d => 0x8000_001d,
        _ => return None,
    };
    let mut best = None;
    for sub in 0..16 {
        // SAFETY: the leaf exists (checked above); CPUID never faults.
        #[allow(unused_unsafe)]
        let r = unsafe { __cpuid_count(leaf, sub) };
        let kind = r.eax & 0x1f;
        if kind == 0 {
            break;
        }
        if kind == 2 {
            continue; // instruction cache
        }
        let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
        let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
        let line = (r.ebx & 0xfff) as usize + 1;
        let sets = r.ecx as usize + 1;
        let sharing = ((r.eax >> 14) & 0xfff) as usize + 1;
        let size = ways * partitions * line * sets;
        if best.is_none_or(|(s, _)| size > s) {
            best = Some((size, sharing));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_stay_in_their_ranges() {
        let t = thresholds();
        assert!(
            (1 << 20..=NON_TEMPORAL_CAP).contains(&t.non_temporal),
            "{t:?}"
        );
        // rep movsb only above the sizes the routines copy in registers (8 vectors).
        for rep in [t.avx2_rep_movsb, t.avx512_rep_movsb] {
            assert!(rep == usize::MAX || rep > 512, "{t:?}");
        }
        if vendor() != Vendor::Intel {
            assert_eq!(
                (t.avx2_rep_movsb, t.avx512_rep_movsb),
                (usize::MAX, usize::MAX)
            );
        }
    }

    #[test]
    fn the_default_strategy_runs_here() {
        assert!(can_run(default_strategy()));
    }
}
