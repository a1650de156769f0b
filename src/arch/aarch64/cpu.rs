//! What this aarch64 CPU offers mcsafe, from the kernel's HWCAP word
//! (`getauxval(AT_HWCAP)`): Advanced SIMD (every aarch64 Linux CPU: the copy
//! strategy, the fill), FEAT_CRC32 (the `crc32c*` checksums; optional in Armv8.0,
//! required from Armv8.1) and FEAT_PMULL (the three-stream merge). Each routine's
//! descriptor says which it needs (asm/aarch64/routine.s, NEEDS_*). No CPUID
//! rules, no thresholds: one strategy, whose size classes are fixed.
//!
//! Change it, then run `cargo test --target aarch64-unknown-linux-gnu -p mcsafe
//! --lib cpu` (under qemu) and see docs/cpus.md, "aarch64".

use super::CrcRoutine;
use crate::Strategy;

/// What a routine needs of the CPU: the descriptor's `needs` bits
/// (asm/aarch64/routine.s, NEEDS_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs(u16);

impl Needs {
    const NONE: Needs = Needs(0);
    const ASIMD: Needs = Needs(1);
    const CRC32: Needs = Needs(2);
    const PMULL: Needs = Needs(4);

    /// What this CPU has.
    fn here() -> Needs {
        // SAFETY: getauxval has no preconditions.
        let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
        [
            (Needs::ASIMD, libc::HWCAP_ASIMD),
            (Needs::CRC32, libc::HWCAP_CRC32),
            (Needs::PMULL, libc::HWCAP_PMULL),
        ]
        .into_iter()
        .filter(|&(_, bit)| hwcap & bit != 0)
        .fold(Needs::NONE, |all, (need, _)| Needs(all.0 | need.0))
    }

    fn contains(self, other: Needs) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Whether this CPU has what the routine at `entry` needs (its descriptor).
pub(crate) fn can_run_at(entry: usize) -> bool {
    crate::table::descriptor_at(entry).is_some_and(|d| Needs::here().contains(Needs(d.needs)))
}

/// Whether this CPU runs the routine of `strategy`: `AdvSimd`'s, never an x86-64
/// one.
pub(crate) fn can_run(strategy: Strategy) -> bool {
    strategy == Strategy::AdvSimd && can_run_at(super::advsimd().addr())
}

/// Whether this CPU runs the checksum routine.
pub(crate) fn can_run_crc(routine: CrcRoutine) -> bool {
    can_run_at(routine.routine().addr())
}

/// The checksum routine for this CPU, the fastest it runs (`None`: software).
pub(crate) fn crc_routine() -> Option<CrcRoutine> {
    [CrcRoutine::Pmull, CrcRoutine::Stream]
        .into_iter()
        .find(|&r| can_run_crc(r))
}

/// `mcsafe probe`'s words for the choice.
pub(crate) fn rule() -> String {
    // SAFETY: getauxval has no preconditions.
    let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
    let checksum = match crc_routine() {
        Some(CrcRoutine::Pmull) => "crc32c_pmull (FEAT_CRC32 and FEAT_PMULL)",
        Some(CrcRoutine::Stream) => "crc32c, one chain (FEAT_CRC32, no FEAT_PMULL)",
        None => "software through copies (no FEAT_CRC32)",
    };
    format!(
        "aarch64 (HWCAP {hwcap:#x}): strategy advsimd, the only one here (ldp/stp of q \
         registers, forward-only loop; no size thresholds, no MOPS, no SVE); checksum \
         {checksum}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_strategy_runs_and_no_x86_one_does() {
        assert!(can_run(Strategy::AdvSimd));
        for s in [
            Strategy::Fragile,
            Strategy::RepMovsb,
            Strategy::Avx2,
            Strategy::Avx512,
        ] {
            assert!(!can_run(s), "{s}");
        }
        assert!(rule().contains("advsimd"), "{}", rule());
    }

    /// The descriptors' needs are HWCAP's: the exact routines need nothing, the
    /// copy and the fill Advanced SIMD, the checksums FEAT_CRC32 (and PMULL).
    #[test]
    fn each_routine_needs_what_its_instructions_need() {
        let needs = |name: &str| {
            crate::table::descriptors()
                .find(|d| d.name == name)
                .map(|d| Needs(d.needs))
                .unwrap_or_else(|| panic!("no routine {name}"))
        };
        assert_eq!(needs("copy_exact_8"), Needs::NONE);
        assert_eq!(needs("copy_advsimd"), Needs::ASIMD);
        assert_eq!(needs("fill"), Needs::ASIMD);
        assert_eq!(needs("crc32c"), Needs::CRC32);
        for pmull in ["crc32c_pmull", "copy_crc32c_pmull"] {
            assert_eq!(needs(pmull), Needs(Needs::CRC32.0 | Needs::PMULL.0));
        }
    }
}
