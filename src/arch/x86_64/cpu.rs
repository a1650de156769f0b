//! CPU facts that pick a strategy: which routines can run, and whether this is a
//! CPU model that cannot recover from poison consumed by fast strings.

use core::arch::x86_64::__cpuid;

use crate::Strategy;

/// Whether this CPU can execute the routine of `strategy`.
pub(crate) fn can_run(strategy: Strategy) -> bool {
    match strategy {
        Strategy::Fragile => true,
        Strategy::RepMovsb => std::arch::is_x86_feature_detected!("ermsb"),
        Strategy::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
        Strategy::Avx512 => {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("bmi2")
        }
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
    // SAFETY: CPUID exists on every x86-64 CPU; leaves 0 and 1 always exist.
    #[allow(unused_unsafe)]
    let (vendor, signature) = unsafe { (__cpuid(0), __cpuid(1)) };
    let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    let family = (signature.eax >> 8) & 0xf;
    let model = ((signature.eax >> 4) & 0xf) | ((signature.eax >> 12) & 0xf0);
    intel && family == 6 && FRAGILE_MODELS.contains(&model)
}

/// The strategy chosen when `MCSAFE_STRATEGY` is not set.
pub(crate) fn default_strategy() -> Strategy {
    if is_fragile_model() {
        return Strategy::Fragile;
    }
    [Strategy::Avx2, Strategy::RepMovsb]
        .into_iter()
        .find(|s| can_run(*s))
        .unwrap_or(Strategy::Fragile)
}
