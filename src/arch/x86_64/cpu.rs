//! CPU facts that pick a strategy and its size thresholds: which routines can run,
//! whether this is a CPU model that cannot recover from poison consumed by fast
//! strings, and how large the last-level cache is.

use core::arch::x86_64::{__cpuid, __cpuid_count};

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

/// Whether the CPU has the SSE4.2 `crc32` instruction (`asm/crc32c.s`).
pub(crate) fn has_crc32c() -> bool {
    std::arch::is_x86_feature_detected!("sse4.2")
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

    /// This CPU as the kernel describes it (/proc/cpuinfo: vendor, family,
    /// model, flags), or `None` where there is no /proc.
    fn cpuinfo() -> Option<(String, u32, u32, Vec<String>)> {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let field = |name: &str| {
            text.lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let flags = field("flags")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let family = field("cpu family")?.parse().ok()?;
        Some((
            field("vendor_id")?,
            family,
            field("model")?.parse().ok()?,
            flags,
        ))
    }

    /// The CPUID facts mcsafe decides from, against the kernel's reading of
    /// the same CPU: a mistake in the bit fields shows here on any machine.
    #[test]
    fn the_cpu_facts_agree_with_the_kernels() {
        let Some((vendor_id, family, model, flags)) = cpuinfo() else {
            eprintln!("NOT RUN: no /proc/cpuinfo");
            return;
        };
        let has = |flag: &str| flags.iter().any(|f| f == flag);
        let want = match vendor_id.as_str() {
            "GenuineIntel" => Vendor::Intel,
            "AuthenticAMD" => Vendor::Amd,
            _ => Vendor::Other,
        };
        assert_eq!(vendor(), want);
        let fragile = want == Vendor::Intel && family == 6 && FRAGILE_MODELS.contains(&model);
        assert_eq!(
            is_fragile_model(),
            fragile,
            "family {family} model {model:#x}"
        );
        assert_eq!(has_crc32c(), has("sse4_2"));
        assert_eq!(can_run(Strategy::RepMovsb), has("erms"));
        assert_eq!(can_run(Strategy::Avx2), has("avx2"));
        assert_eq!(can_run(Strategy::Avx512), has("avx512f") && has("avx512vl"));
        let default = if fragile {
            Strategy::Fragile
        } else if want == Vendor::Intel && has("avx512f") && has("avx512vl") {
            Strategy::Avx512
        } else if has("avx2") {
            Strategy::Avx2
        } else if has("erms") {
            Strategy::RepMovsb
        } else {
            Strategy::Fragile
        };
        assert_eq!(default_strategy(), default);
        let t = thresholds();
        let fsrm = has("erms") && has("fsrm");
        let rep = match (want == Vendor::Intel, has("erms"), fsrm) {
            (true, true, true) => (2112, 16 << 10),
            (true, true, false) => (8 << 10, 16 << 10),
            _ => (usize::MAX, usize::MAX),
        };
        assert_eq!((t.avx2_rep_movsb, t.avx512_rep_movsb), rep);
    }

    /// The largest data or unified cache, as CPUID gives it, against the
    /// kernel's sysfs; and the non-temporal threshold made from it.
    #[test]
    fn the_last_level_cache_is_the_kernels_and_sets_the_non_temporal_threshold() {
        let index = |i: usize, file: &str| {
            std::fs::read_to_string(format!(
                "/sys/devices/system/cpu/cpu0/cache/index{i}/{file}"
            ))
            .ok()
            .map(|s| s.trim().to_owned())
        };
        let mut largest: Option<(usize, usize)> = None;
        for i in 0.. {
            let (Some(kind), Some(size), Some(shared)) = (
                index(i, "type"),
                index(i, "size"),
                index(i, "shared_cpu_list"),
            ) else {
                break;
            };
            if kind == "Instruction" {
                continue;
            }
            let size = size
                .strip_suffix('K')
                .and_then(|k| k.parse::<usize>().ok())
                .unwrap()
                << 10;
            // "0-1,4": the logical processors (online here) that share it.
            let sharing = shared
                .split(',')
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                    None => 1,
                })
                .sum();
            if largest.is_none_or(|(s, _)| size > s) {
                largest = Some((size, sharing));
            }
        }
        let Some((size, sharing)) = largest else {
            eprintln!("NOT RUN: no cache description in sysfs");
            return;
        };
        let Some((llc, llc_sharing)) = last_level_cache() else {
            assert_eq!(vendor(), Vendor::Other, "Intel and AMD report their caches");
            return;
        };
        assert_eq!(llc, size);
        // CPUID counts the processors that may share it, sysfs those online.
        assert!(llc_sharing >= sharing, "{llc_sharing} < {sharing}");
        let share = llc / llc_sharing * 3 / 4;
        assert_eq!(
            thresholds().non_temporal,
            share.clamp(1 << 20, NON_TEMPORAL_CAP)
        );
    }
}
