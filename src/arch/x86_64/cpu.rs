//! CPU facts that pick a strategy and its size thresholds: which routines can run,
//! whether this is a CPU model that cannot recover from poison consumed by fast
//! strings, what glibc's memcpy picks here, and how large the last-level cache is.
//!
//! The rules follow glibc's (`sysdeps/x86/cpu-features.c`, `dl-cacheinfo.h`,
//! `sysdeps/x86_64/multiarch/ifunc-memmove.h`; 2.36 as Debian 12 ships it, and
//! 2.40+), so that mcsafe runs the same kind of code as the memcpy it is
//! compared with; where mcsafe differs on purpose, [`rule`] says so and why.
//! docs/cpus.md has the table per CPU family with the sources. Change a rule
//! here, then run `cargo test -p mcsafe --lib cpu`, `mcsafe probe` and
//! `cargo bench --bench summary` on the CPU it concerns.

use core::arch::x86_64::{__cpuid, __cpuid_count};

use super::CrcRoutine;
use crate::Strategy;
use crate::arch::Thresholds;

/// What a routine needs of the CPU: the `needs` bits of its descriptor
/// (asm/routine.s, NEEDS_*; the same values here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs(u16);

impl Needs {
    /// Nothing beyond x86-64.
    pub const NONE: Needs = Needs(0);
    /// Fast strings (ERMS): a preference, `rep movsb` runs anywhere.
    pub const ERMS: Needs = Needs(1);
    /// AVX2.
    pub const AVX2: Needs = Needs(2);
    /// AVX-512F and VL, with the zmm state saved by the OS.
    pub const AVX512: Needs = Needs(4);
    /// SSE4.2 (`crc32`).
    pub const SSE42: Needs = Needs(8);
    /// PCLMULQDQ.
    pub const PCLMUL: Needs = Needs(16);
    /// AVX.
    pub const AVX: Needs = Needs(32);
    /// VPCLMULQDQ.
    pub const VPCLMUL: Needs = Needs(64);

    /// The needs of a descriptor row.
    pub(crate) const fn from_bits(bits: u16) -> Needs {
        Needs(bits)
    }

    /// All of `self` and `other`.
    pub const fn and(self, other: Needs) -> Needs {
        Needs(self.0 | other.0)
    }

    /// Whether every need of `other` is in `self`.
    pub const fn contains(self, other: Needs) -> bool {
        self.0 & other.0 == other.0
    }

    /// What this CPU has (`is_x86_feature_detected` also checks that the OS
    /// saves the vector state; its answers are cached by std).
    pub(crate) fn here() -> Needs {
        use std::arch::is_x86_feature_detected as has;
        [
            (Needs::ERMS, has!("ermsb")),
            (Needs::AVX2, has!("avx2")),
            (Needs::AVX512, has!("avx512f") && has!("avx512vl")),
            (Needs::SSE42, has!("sse4.2")),
            (Needs::PCLMUL, has!("pclmulqdq")),
            (Needs::AVX, has!("avx")),
            (Needs::VPCLMUL, has!("vpclmulqdq")),
        ]
        .into_iter()
        .filter(|&(_, has)| has)
        .fold(Needs::NONE, |all, (need, _)| all.and(need))
    }
}

/// Whether this CPU has what the routine at `entry` needs (its descriptor).
pub(crate) fn can_run_at(entry: usize) -> bool {
    crate::table::descriptor_at(entry)
        .is_some_and(|d| Needs::here().contains(Needs::from_bits(d.needs)))
}

/// Whether this CPU can execute the routine of `strategy`.
pub(crate) fn can_run(strategy: Strategy) -> bool {
    can_run_at(super::strategy_routine(strategy).addr())
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

/// Display family and model (CPUID leaf 1, with the extended fields).
fn family_model() -> (u32, u32) {
    // SAFETY: CPUID leaf 1 exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let signature = unsafe { __cpuid(1) }.eax;
    let base = (signature >> 8) & 0xf;
    let family = if base == 0xf {
        base + ((signature >> 20) & 0xff)
    } else {
        base
    };
    let model = ((signature >> 4) & 0xf) | ((signature >> 12) & 0xf0);
    (family, model)
}

/// CPUID leaf 7 subleaf `sub`, or zeros where the CPU has no such leaf.
fn leaf7(sub: u32) -> core::arch::x86_64::CpuidResult {
    // SAFETY: leaf 0 gives the highest basic leaf; CPUID never faults.
    #[allow(unused_unsafe)]
    unsafe {
        if __cpuid(0).eax >= 7 {
            __cpuid_count(7, sub)
        } else {
            core::arch::x86_64::CpuidResult {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            }
        }
    }
}

/// Fast short `rep movsb` (CPUID.(7,0):EDX[4]).
fn has_fsrm() -> bool {
    leaf7(0).edx & (1 << 4) != 0
}

/// AVX512ER (CPUID.(7,0):EBX[27]; Xeon Phi only).
fn has_avx512er() -> bool {
    leaf7(0).ebx & (1 << 27) != 0
}

/// AVX-VNNI, the VEX-encoded one (CPUID.(7,1):EAX[4]).
fn has_avx_vnni() -> bool {
    leaf7(1).eax & (1 << 4) != 0
}

/// What the rules below read from the CPU, gathered in one place so that the
/// rules are pure functions of it: [`Facts::here`] for this CPU, literal ones in
/// the tests for the CPU families of docs/cpus.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Facts {
    vendor: Vendor,
    /// Display family and model (CPUID leaf 1).
    family: u32,
    model: u32,
    /// Fast strings (ERMS) and fast short `rep movsb` (FSRM).
    ermsb: bool,
    fsrm: bool,
    /// [`can_run`] for the two vector strategies.
    avx2: bool,
    avx512: bool,
    /// The bits behind glibc's `Prefer_No_AVX512`.
    avx512er: bool,
    avx_vnni: bool,
    /// [`can_run_crc`] for `Stream`, `Fold128`, `Fold256` and `Fold512`.
    crc: [bool; 4],
    /// The largest data or unified cache and how many logical processors share it.
    llc: Option<(usize, usize)>,
}

impl Facts {
    /// This CPU. Runs CPUID (slow in a VM): callers cache what they derive.
    fn here() -> Facts {
        let (family, model) = family_model();
        Facts {
            vendor: vendor(),
            family,
            model,
            ermsb: can_run(Strategy::RepMovsb),
            fsrm: has_fsrm(),
            avx2: can_run(Strategy::Avx2),
            avx512: can_run(Strategy::Avx512),
            avx512er: has_avx512er(),
            avx_vnni: has_avx_vnni(),
            crc: CRC_ROUTINES.map(can_run_crc),
            llc: last_level_cache(),
        }
    }

    /// Intel family 6 models on which only the fragile shape is recoverable
    /// ([`FRAGILE_MODELS`]).
    fn is_fragile_model(&self) -> bool {
        self.vendor == Vendor::Intel && self.family == 6 && FRAGILE_MODELS.contains(&self.model)
    }

    /// glibc's `Prefer_No_AVX512`: set on Intel CPUs without AVX512ER and without
    /// AVX-VNNI (Skylake-SP to Ice Lake: 512-bit code lowers their clock, BZ
    /// #21396), never on AMD. Where it is set, glibc's memcpy is a 32-byte one.
    fn glibc_prefers_no_avx512(&self) -> bool {
        self.vendor == Vendor::Intel && !self.avx512er && !self.avx_vnni
    }

    fn can_run_crc(&self, routine: CrcRoutine) -> bool {
        let i = CRC_ROUTINES.iter().position(|&r| r == routine);
        i.is_some_and(|i| self.crc[i])
    }

    /// See [`crc_routine`].
    fn crc_routine(&self) -> Option<CrcRoutine> {
        if !self.can_run_crc(CrcRoutine::Stream) {
            return None;
        }
        let fragile = self.is_fragile_model();
        // 512-bit code where the copy rules run it too (default_with_reason's
        // Avx512 arm): AVX-512 and not glibc's Prefer_No_AVX512.
        let zmm = self.avx512 && !self.glibc_prefers_no_avx512();
        Some(
            if self.can_run_crc(CrcRoutine::Fold512) && zmm && !fragile {
                CrcRoutine::Fold512
            } else if self.can_run_crc(CrcRoutine::Fold256) && !fragile {
                CrcRoutine::Fold256
            } else if self.can_run_crc(CrcRoutine::Fold128) && !fragile {
                CrcRoutine::Fold128
            } else {
                CrcRoutine::Stream
            },
        )
    }

    /// AMD Zen 4 and later: family 0x1a, or family 0x19 with AVX-512 (Zen 3,
    /// also family 0x19, has none; Zen 4 is AMD's first CPU with it).
    fn is_zen4_or_later(&self) -> bool {
        self.vendor == Vendor::Amd && (self.family >= ZEN5_FAMILY || self.avx512)
    }

    /// See [`default_strategy`].
    fn default_with_reason(&self) -> (Strategy, &'static str) {
        if self.is_fragile_model() {
            return (
                Strategy::Fragile,
                "an Intel Xeon model the kernel treats as fragile (poison consumed by fast \
                 strings or a split load is not recoverable): the kernel's copy_mc_fragile shape",
            );
        }
        if self.avx512 && !self.glibc_prefers_no_avx512() {
            return (
                Strategy::Avx512,
                "AVX-512F and VL, and glibc does not prefer 256-bit code here: glibc's memcpy is \
                 __memmove_avx512_unaligned_erms",
            );
        }
        if self.avx2 {
            return (
                Strategy::Avx2,
                if self.avx512 {
                    "AVX-512 that glibc avoids here (Prefer_No_AVX512: no AVX-VNNI): glibc's \
                     memcpy is the 32-byte __memmove_evex_unaligned_erms"
                } else {
                    "AVX2 without AVX-512: glibc's memcpy is __memmove_avx_unaligned(_erms)"
                },
            );
        }
        if self.ermsb {
            return (
                Strategy::RepMovsb,
                "fast strings without AVX2: glibc's memcpy is __memmove_sse2_unaligned_erms, \
                 rep movsb from 2 KiB",
            );
        }
        (
            Strategy::Fragile,
            "neither AVX2 nor fast strings: word copies",
        )
    }

    /// See [`thresholds`].
    fn thresholds_with_reason(&self) -> (Thresholds, String) {
        let fsrm = self.ermsb && self.fsrm;
        let (avx2_rep_movsb, avx512_rep_movsb, rep_why) = match (self.vendor, self.ermsb, fsrm) {
            (Vendor::Amd, true, true) if self.family >= ZEN5_FAMILY => (
                ZEN5_REP_MOVSB,
                ZEN5_REP_MOVSB,
                "above 8 KiB (Zen 5: measured, no distance cliff there; the vector loop wins \
                 up to 8 KiB)"
                    .to_string(),
            ),
            (Vendor::Amd, _, _) => (
                usize::MAX,
                usize::MAX,
                "never on AMD before Zen 5 (glibc 2.40+ does not either: 2-3 GB/s at some \
                 distances, measured on Zen 3 and Zen 4)"
                    .to_string(),
            ),
            (Vendor::Intel, true, true) => (
                2112,
                16 << 10,
                "from 2112 B (avx2: glibc's rule with FSRM) and 16 KiB (avx512: measured)".into(),
            ),
            (Vendor::Intel, true, false) => (
                8 << 10,
                16 << 10,
                "from 8 KiB (avx2: glibc's rule without FSRM) and 16 KiB (avx512)".into(),
            ),
            _ => (usize::MAX, usize::MAX, "never (no fast strings)".into()),
        };
        let (llc, sharing) = self.llc.unwrap_or((NO_CACHE_INFO, 1));
        let zen4_or_later = self.is_zen4_or_later();
        let (base, base_why) = if zen4_or_later {
            (llc / 2, "half the last-level cache (Zen 4 and 5)")
        } else {
            (
                (llc / sharing.max(1)).saturating_mul(3) / 4,
                "3/4 of the last-level cache's share per thread",
            )
        };
        let cap = if self.vendor == Vendor::Amd && !zen4_or_later {
            NON_TEMPORAL_CAP_AMD_BEFORE_ZEN4
        } else {
            NON_TEMPORAL_CAP
        };
        let non_temporal = base.clamp(1 << 20, cap);
        let nt_why = match self.llc {
            Some((llc, sharing)) => format!(
                "from {} MiB ({base_why} ({} MiB, {} sharing it) is {} MiB; at most {} MiB)",
                non_temporal >> 20,
                llc >> 20,
                sharing,
                base >> 20,
                cap >> 20
            ),
            None => format!("from {} MiB (no cache information)", non_temporal >> 20),
        };
        (
            Thresholds {
                avx2_rep_movsb,
                avx512_rep_movsb,
                rep_movsb_stop: usize::MAX,
                non_temporal,
            },
            format!("rep movsb {rep_why}; non-temporal stores {nt_why}"),
        )
    }

    /// See [`avx512_page_streams`].
    fn avx512_page_streams(&self) -> bool {
        self.vendor != Vendor::Amd
    }

    /// See [`fold512_prefetch`].
    fn fold512_prefetch(&self) -> bool {
        self.vendor != Vendor::Amd
    }

    /// See [`rule`].
    fn rule(&self) -> String {
        let vendor = match self.vendor {
            Vendor::Intel => "Intel",
            Vendor::Amd => "AMD",
            Vendor::Other => "other vendor",
        };
        let (strategy, why) = self.default_with_reason();
        let (_, thresholds) = self.thresholds_with_reason();
        let streams = page_streams_words(self.avx512_page_streams());
        format!(
            "{vendor} family {:#x} model {:#x}: {strategy}: {why}; {thresholds}; the avx512 \
             non-temporal loop {streams} ({}); the fold512 checksum walk {}",
            self.family,
            self.model,
            if self.vendor == Vendor::Amd {
                "AMD: faster on Zen 5 and Zen 3"
            } else {
                "measured on Emerald Rapids"
            },
            if self.fold512_prefetch() {
                "prefetching 1 KiB ahead (faster cold on Emerald Rapids)"
            } else {
                "without software prefetch (AMD: faster cold on Zen 4)"
            }
        )
    }
}

/// The checksum routines, in the order of [`Facts::crc`].
const CRC_ROUTINES: [CrcRoutine; 4] = CrcRoutine::ALL;

/// The checksum routine this CPU runs best, or `None` without SSE4.2 (then
/// the checksum is computed in software):
/// - `fold512` (`asm/crc32c_fold512.s`: zmm folds in one sequential walk) with
///   AVX-512 F and VL and VPCLMULQDQ where the copy rules run 512-bit code too
///   (the `Avx512` default: not glibc's `Prefer_No_AVX512`), that is Intel
///   Sapphire Rapids and later and AMD Zen 4 and 5. Measured on an Emerald
///   Rapids KVM guest (family 6 model 0xcf, docs/crc.md): 115-126 GB/s hot
///   from 4 KiB to 1 MiB where `fold256` ran at 55-58 and crc-fast's zmm path at
///   86-120; cold from 4 KiB 0.94-1.14x crc-fast where `fold256` was
///   0.76-0.85x (`cargo bench --bench crc -- --paths`).
///   Where glibc prefers 256-bit code (Skylake-SP to Ice Lake server, whose
///   clock drops under 512-bit code, BZ #21396) it is not taken; not measured
///   there. Zen 4 and 5 were not measured: taken there because their copies
///   run zmm code (glibc's rule) and issue 19's Zen 5 figures put crc-fast's
///   zmm fold, the same kind of walk, ahead of `fold256` (66-68 against 58-62
///   GB/s hot, 24-36 against 13-17 cold);
/// - else a folding routine with streams (`asm/crc32c_fold.s`): 256-bit with
///   PCLMULQDQ, AVX2 and VPCLMULQDQ (Intel Ice Lake and later, AMD Zen 3 and
///   later), else 128-bit with PCLMULQDQ and AVX;
/// - none of these on the fragile models: their loads are unaligned and may
///   cross cache lines, which those cannot recover from; they take the
///   one-stream `crc32` loop (`asm/crc32c.s`), whose loads are aligned words,
///   as does a CPU with SSE4.2 alone.
///
/// Runs CPUID (slow in a VM): callers cache the answer (`mod.rs`).
pub(crate) fn crc_routine() -> Option<CrcRoutine> {
    Facts::here().crc_routine()
}

/// Whether this CPU has every instruction of the checksum routine.
pub(crate) fn can_run_crc(routine: CrcRoutine) -> bool {
    can_run_at(routine.routine().addr())
}

/// Intel family 6 models on which the kernel enables `copy_mc_fragile`
/// (its Brickland and Purley platform quirks): Ivy Bridge-EX, Haswell-EX,
/// Broadwell-EX and Skylake-SP / Cascade Lake / Cooper Lake. The kernel also
/// reads a PCI capability register that user space cannot; treating every
/// such model as fragile errs on the safe side.
const FRAGILE_MODELS: [u32; 4] = [0x3e, 0x3f, 0x4f, 0x55];

/// The strategy chosen when `MCSAFE_STRATEGY` is not set.
///
/// - `Fragile` where only it is recoverable (the kernel's rule, not glibc's).
/// - `Avx512` where glibc's memcpy is its 64-byte zmm one: AVX-512F and VL, and not
///   `Prefer_No_AVX512` (Sapphire Rapids and later Xeons, with AVX-VNNI; AMD Zen 4
///   and Zen 5, where glibc never sets it).
/// - `Avx2` where glibc's memcpy is a 32-byte one: its `avx` or `evex` variants
///   (AMD Zen 1-3, Intel client CPUs, Skylake-SP to Ice Lake server).
/// - `RepMovsb` with fast strings but no AVX2 (glibc's `sse2_unaligned_erms` uses
///   `rep movsb` from 2 KiB; mcsafe has no SSE2 vector routine); else `Fragile`.
pub(crate) fn default_strategy() -> Strategy {
    Facts::here().default_with_reason().0
}

/// The thresholds for this CPU.
///
/// - `rep movsb`: on AMD before Zen 5, never (glibc 2.40+ never uses it there, BZ
///   30994: "20x slower" when the source is aligned and the destination not;
///   measured on a Zen 3 guest: 1-3 GB/s instead of 35-97 whenever `(dst - src)
///   mod 4096` is 1 to 31, at every size; measured on a Zen 4 guest, family 0x19
///   model 0x11, by `mcsafe tune`'s distance guard: 2.2-3.5 GB/s at distance 1
///   or 8 from 4 KiB to 64 MiB where the vector loop copied 9-80, and aligned
///   no faster than the loop, 0.99-1.03x from 8 KiB). On Zen 5 (family 0x1a) with ERMS and
///   FSRM, above 8 KiB for both widths: measured on a Zen 5 guest (issue 18), `rep
///   movsb` has no distance cliff (16 KiB at 129-134 GB/s at every distance 1..63,
///   256 KiB at 125-131), it copied 8-64 KiB hot at 143 GB/s where the AVX-512
///   loop did 113 and glibc 144, and OpenVMM's trycopy with `rep movsb` was
///   1.2-1.6x faster than the loop from 1 MiB; up to 8 KiB the loop won (252
///   against glibc's `rep movsb` 157). On Intel with fast strings, glibc's rule for the AVX2
///   routine: from 2112 bytes with FSRM, 8 KiB without. The AVX-512 routine's
///   4 x 64-byte loop keeps up with `rep movsb` for longer: measured on a Sapphire
///   Rapids-class Xeon, it was 1.0 to 1.5x faster up to 16 KiB and `rep movsb`
///   won from about 24 KiB (docs/performance.md), so it switches at 16 KiB where
///   glibc switches at 2112.
/// - Non-temporal stores: from 3/4 of the last-level cache's share per logical
///   processor sharing it (glibc's lower bound; on AMD the L3 of the core's own
///   complex, CPUID 0x8000001D, never the package total of 0x80000006, which a
///   VM may report as the host's), at least 1 MiB and at most a cap per family,
///   never glibc's upper rules (1/4 of the whole L3, 2.38+: 180 MiB on a Sapphire
///   Rapids guest reporting a 480 MiB L3, where even repeated copies fell out of
///   the cache from about 32 MiB and, from 4 MiB, non-temporal stores were as
///   fast as cached ones hot and 1.6x faster cold: round 1):
///   - Intel: at most 32 MiB. On this round's Emerald Rapids guest (300 MiB L3,
///     2 sharing) the summary's hot 1-16 MiB class went from 0.87-0.93x memcpy
///     with the cap at 8 MiB to 1.00 at 32 (cold 1.4 to 1.0, still above the goal).
///   - AMD before Zen 4: at most 8 MiB, the rule measured on the Zen 3 guest of
///     rounds 1-2 (hot 8 MiB at 1.66x memcpy from C with non-temporal stores,
///     docs/c.md; 16-64 MiB 1.6-1.9x).
///   - Zen 4 and 5 (AMD with AVX-512): from half the L3, whatever the sharing,
///     at most 32 MiB: the source and destination of a hot copy below it fit
///     the L3 a thread can use. Measured on Zen 5 (issue 18): a hot 8 MiB copy
///     with non-temporal stores ran at 0.68-0.70x memcpy on a 32 MiB L3, and
///     from 64 MiB the non-temporal loop is the fastest. Measured on a Zen 4
///     guest (family 0x19 model 0x11, 32 MiB L3 reported shared by 2; `mcsafe
///     tune`, docs/cpus.md): with the Zen 3 rule's 8 MiB a hot 8 MiB copy ran
///     at 27.6 GB/s against memcpy's 35.5 (0.78x; the vector loop 33.9), and
///     from 16 MiB non-temporal stores won hot (25.8 against 17.9) and cold
///     (19.2 against 9.2): 16 MiB, half the L3, is where they start winning.
///
///   Without cache information: 3/4 of 8 MiB, 6 MiB. `rep movsb` stops nowhere
///   (the non-temporal threshold comes first); an `MCSAFE_TUNABLES` stop, or one
///   `mcsafe tune` finds, sets one.
pub(crate) fn thresholds() -> Thresholds {
    Facts::here().thresholds_with_reason().0
}

/// Whether the avx512 routine's non-temporal loop runs four page streams with
/// prefetches (Intel, and CPUs of other vendors) or the plain loop (AMD), see
/// asm/copy_vector.s:
/// - Intel: the streams, measured this round on Emerald Rapids (docs/cpus.md):
///   8 and 64 MiB cold at 12.8 GB/s against 11.5 for the plain shape, hot at 18.4
///   against 19.3 (large copies are mostly cold).
/// - AMD: the plain loop. Zen 5 (issue 18): from 64 MiB the avx512 routine (the
///   streams) copied at 22 GB/s, the avx2 routine (plain, 32-byte stores as
///   well) at 25.8 and a plain loop at 28.5; Zen 3: a prefetch 1 KiB ahead cost
///   15-20 % from 64 MiB (docs/performance.md); Zen 4 (family 0x19 model 0x11,
///   the summary's large copies, which time the other shape beside the one in
///   force): 64-256 MiB at 19.1-21.5 GB/s plain, hot and cold, against 12.8-13.4
///   with the streams.
pub(crate) fn avx512_page_streams() -> bool {
    Facts::here().avx512_page_streams()
}

/// Whether the fold512 checksum walks prefetch ahead in software
/// (asm/crc32c_fold512.s, Z_ITERATION):
/// - Intel (and other vendors): yes. Measured on Emerald Rapids (docs/crc.md):
///   cold checksums from 16 KiB went from about crc-fast's speed to 1.1x it,
///   cold one-pass copies from copy_mc's speed to 1.1-1.2x it.
/// - AMD: no. Measured on a Zen 4 guest (family 0x19 model 0x11, `cargo bench
///   --bench crc -- --paths`, docs/crc.md): cold checksums from 64 KiB ran at
///   0.72-0.81x crc-fast with the prefetch (the distance made no difference:
///   1, 2 and 4 KiB) and at 0.95-1.00x without it, as a prefetch 1 KiB ahead
///   slowed Zen 3's copies by 15-20 % (docs/performance.md). Zen 5 by the same
///   rule, not measured.
pub(crate) fn fold512_prefetch() -> bool {
    Facts::here().fold512_prefetch()
}

/// [`avx512_page_streams`] in words.
pub(crate) fn page_streams_words(on: bool) -> &'static str {
    if on {
        "page streams with prefetches"
    } else {
        "plain, no prefetch"
    }
}

/// The rule that chose [`default_strategy`] and [`thresholds`] on this CPU, in
/// words, for `mcsafe probe`.
pub(crate) fn rule() -> String {
    Facts::here().rule()
}

/// The largest non-temporal threshold (see [`thresholds`]): on Intel and Zen 4
/// and later, and on AMD before Zen 4.
const NON_TEMPORAL_CAP: usize = 32 << 20;
const NON_TEMPORAL_CAP_AMD_BEFORE_ZEN4: usize = 8 << 20;

/// The last-level cache taken for a CPU that describes none.
const NO_CACHE_INFO: usize = 8 << 20;

/// AMD's Zen 5 family (0x1a): the first AMD family with `rep movsb` rules.
const ZEN5_FAMILY: u32 = 0x1a;

/// From this many bytes, Zen 5's routines copy with `rep movsb` (8 KiB stays
/// with the vector loop; see [`thresholds`]).
const ZEN5_REP_MOVSB: usize = (8 << 10) + 1;

/// The deterministic cache leaf of this vendor: 4 on Intel, 0x8000001D on AMD
/// when the CPU has it (`max_extended`: CPUID 0x80000000's EAX); both have the
/// same layout.
fn cache_leaf(vendor: Vendor, max_extended: u32) -> Option<u32> {
    match vendor {
        Vendor::Intel => Some(4),
        Vendor::Amd if max_extended >= 0x8000_001d => Some(0x8000_001d),
        _ => None,
    }
}

/// Size in bytes of the largest data or unified cache, and how many logical
/// processors share it, from this CPU's deterministic cache leaf.
fn last_level_cache() -> Option<(usize, usize)> {
    // SAFETY: extended leaf 0x80000000 exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let max_extended = unsafe { __cpuid(0x8000_0000) }.eax;
    let leaf = cache_leaf(vendor(), max_extended)?;
    // SAFETY: the leaf exists (checked above); CPUID never faults.
    #[allow(unused_unsafe)]
    largest_cache(|sub| unsafe { __cpuid_count(leaf, sub) })
}

/// The largest data or unified cache among the subleaves `subleaf(0..16)` of a
/// deterministic cache leaf (up to the first of type 0), with its sharing count.
fn largest_cache(
    subleaf: impl Fn(u32) -> core::arch::x86_64::CpuidResult,
) -> Option<(usize, usize)> {
    let mut best = None;
    for sub in 0..16 {
        let r = subleaf(sub);
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
    best // every size is at least 1 (each field counts from 1)
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
    fn the_default_strategy_runs_here_and_follows_glibc() {
        let s = default_strategy();
        assert!(can_run(s));
        // glibc's zmm memcpy exactly where mcsafe's default is the zmm routine.
        let here = Facts::here();
        let zmm = can_run(Strategy::Avx512) && !here.glibc_prefers_no_avx512();
        if !here.is_fragile_model() {
            assert_eq!(s == Strategy::Avx512, zmm, "{}", rule());
        }
    }

    #[test]
    fn the_rule_names_the_strategy_and_both_thresholds() {
        let rule = rule();
        assert!(rule.contains(default_strategy().name()), "{rule}");
        assert!(
            rule.contains("rep movsb") && rule.contains("non-temporal"),
            "{rule}"
        );
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
        assert_eq!(family_model(), (family, model), "display family and model");
        // The leaf-7 bits the rules read, each against the kernel's flag (the
        // vendor-gated rules below cannot show a wrong bit on every CPU).
        assert_eq!(has_fsrm(), has("fsrm"), "fsrm");
        assert_eq!(has_avx512er(), has("avx512er"), "avx512er");
        assert_eq!(has_avx_vnni(), has("avx_vnni"), "avx_vnni");
        let fragile = want == Vendor::Intel && family == 6 && FRAGILE_MODELS.contains(&model);
        let here = Facts::here();
        assert_eq!(
            here.is_fragile_model(),
            fragile,
            "family {family} model {model:#x}"
        );
        assert_eq!(crc_routine().is_some(), has("sse4_2"));
        let fold128 = has("sse4_2") && has("pclmulqdq") && has("avx");
        assert_eq!(can_run_crc(CrcRoutine::Stream), has("sse4_2"));
        assert_eq!(can_run_crc(CrcRoutine::Fold128), fold128);
        let fold256 = fold128 && has("avx2") && has("vpclmulqdq");
        assert_eq!(can_run_crc(CrcRoutine::Fold256), fold256);
        assert_eq!(
            can_run_crc(CrcRoutine::Fold512),
            fold256 && has("avx512f") && has("avx512vl")
        );
        assert_eq!(can_run(Strategy::RepMovsb), has("erms"));
        assert_eq!(can_run(Strategy::Avx2), has("avx2"));
        assert_eq!(can_run(Strategy::Avx512), has("avx512f") && has("avx512vl"));
        // glibc's Prefer_No_AVX512, from the kernel's flags: Intel without
        // AVX512ER and without AVX-VNNI (never on AMD: Zen 4 and 5 run zmm).
        let prefers_no_avx512 = want == Vendor::Intel && !has("avx512er") && !has("avx_vnni");
        assert_eq!(here.glibc_prefers_no_avx512(), prefers_no_avx512);
        let default = if fragile {
            Strategy::Fragile
        } else if has("avx512f") && has("avx512vl") && !prefers_no_avx512 {
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

    /// A CPU of docs/cpus.md's table, as [`Facts`].
    fn cpu(
        vendor: Vendor,
        family: u32,
        model: u32,
        features: &str,
        llc: Option<(usize, usize)>,
    ) -> Facts {
        let has = |f: &str| features.split_whitespace().any(|g| g == f);
        let fold128 = has("sse4.2") && has("pclmulqdq") && has("avx");
        let fold256 = fold128 && has("avx2") && has("vpclmulqdq");
        Facts {
            vendor,
            family,
            model,
            ermsb: has("erms"),
            fsrm: has("fsrm"),
            avx2: has("avx2"),
            avx512: has("avx512"),
            avx512er: has("avx512er"),
            avx_vnni: has("avx_vnni"),
            crc: [has("sse4.2"), fold128, fold256, fold256 && has("avx512")],
            llc,
        }
    }

    const MIB: usize = 1 << 20;
    const NEVER: usize = usize::MAX;

    /// A CPU, then what it gets: default strategy, `rep movsb` thresholds (avx2,
    /// avx512), non-temporal threshold, checksum routine.
    type Case = (
        &'static str,
        Facts,
        Strategy,
        (usize, usize),
        usize,
        Option<CrcRoutine>,
    );

    /// The rules on every CPU family of docs/cpus.md (what glibc picks there and
    /// what mcsafe picks), whatever CPU runs the test.
    #[test]
    fn the_rules_on_each_cpu_family() {
        use CrcRoutine::{Fold128, Fold256, Fold512, Stream};
        use Strategy::{Avx2, Avx512, Fragile, RepMovsb};
        use Vendor::{Amd, Intel, Other};
        let modern = "erms fsrm avx2 sse4.2 pclmulqdq avx vpclmulqdq";
        #[rustfmt::skip]
        let cases: [Case; 16] = [
            ("Zen 3 (the round-2 guest)", cpu(Amd, 0x19, 0x01, modern, Some((32 * MIB, 2))),
                Avx2, (NEVER, NEVER), 8 * MIB, Some(Fold256)),
            ("Zen 5 (the issue-18 guest)", cpu(Amd, 0x1a, 0x02, &format!("{modern} avx512"), Some((32 * MIB, 2))),
                Avx512, ((8 << 10) + 1, (8 << 10) + 1), 16 * MIB, Some(Fold512)),
            ("Zen 5, 16 threads on its L3", cpu(Amd, 0x1a, 0x02, &format!("{modern} avx512"), Some((32 * MIB, 16))),
                Avx512, ((8 << 10) + 1, (8 << 10) + 1), 16 * MIB, Some(Fold512)),
            ("Emerald Rapids (this round's guest)", cpu(Intel, 6, 0xcf, &format!("{modern} avx512 avx_vnni"), Some((300 * MIB, 2))),
                Avx512, (2112, 16 << 10), 32 * MIB, Some(Fold512)),
            ("Zen 4 (this round's guest)", cpu(Amd, 0x19, 0x11, &format!("{modern} avx512"), Some((32 * MIB, 2))),
                Avx512, (NEVER, NEVER), 16 * MIB, Some(Fold512)),
            ("Zen 4, 16 threads on its L3", cpu(Amd, 0x19, 0x11, &format!("{modern} avx512"), Some((32 * MIB, 16))),
                Avx512, (NEVER, NEVER), 16 * MIB, Some(Fold512)),
            ("Zen 2", cpu(Amd, 0x17, 0x31, "avx2 sse4.2 pclmulqdq avx", Some((16 * MIB, 8))),
                Avx2, (NEVER, NEVER), 3 * MIB / 2, Some(Fold128)),
            ("Sapphire Rapids", cpu(Intel, 6, 0x8f, &format!("{modern} avx512 avx_vnni"), Some((105 * MIB, 112))),
                Avx512, (2112, 16 << 10), MIB, Some(Fold512)),
            ("Ice Lake server", cpu(Intel, 6, 0x6a, &format!("{modern} avx512"), Some((48 * MIB, 8))),
                Avx2, (2112, 16 << 10), 9 * MIB / 2, Some(Fold256)),
            ("Skylake-SP (fragile)", cpu(Intel, 6, 0x55, "erms avx2 avx512 sse4.2 pclmulqdq avx", Some((38 * MIB, 4))),
                Fragile, (8 << 10, 16 << 10), 7 * MIB + MIB / 8, Some(Stream)),
            ("Haswell-EX (fragile)", cpu(Intel, 6, 0x3f, "erms avx2 sse4.2 pclmulqdq avx", None),
                Fragile, (8 << 10, 16 << 10), 6 * MIB, Some(Stream)),
            ("Haswell client", cpu(Intel, 6, 0x3c, "erms avx2 sse4.2 pclmulqdq avx", Some((8 * MIB, 8))),
                Avx2, (8 << 10, 16 << 10), MIB, Some(Fold128)),
            ("Ivy Bridge client", cpu(Intel, 6, 0x3a, "erms sse4.2 pclmulqdq avx", Some((8 * MIB, 2))),
                RepMovsb, (8 << 10, 16 << 10), 3 * MIB, Some(Fold128)),
            ("Xeon Phi-like: AVX512ER, no AVX-VNNI", cpu(Intel, 6, 0x85, "erms avx2 avx512 avx512er sse4.2", Some((16 * MIB, 1))),
                Avx512, (8 << 10, 16 << 10), 12 * MIB, Some(Stream)),
            ("another vendor, AVX2", cpu(Other, 6, 0x0f, "erms avx2", Some((16 * MIB, 1))),
                Avx2, (NEVER, NEVER), 12 * MIB, None),
            ("an old CPU", cpu(Other, 0xf, 0x02, "", None),
                Fragile, (NEVER, NEVER), 6 * MIB, None),
        ];
        for (name, facts, strategy, rep, non_temporal, crc) in cases {
            let (t, why) = facts.thresholds_with_reason();
            assert_eq!(facts.default_with_reason().0, strategy, "{name}");
            assert_eq!((t.avx2_rep_movsb, t.avx512_rep_movsb), rep, "{name}: {why}");
            assert_eq!(t.non_temporal, non_temporal, "{name}: {why}");
            assert_eq!(facts.crc_routine(), crc, "{name}");
            assert_eq!(facts.fold512_prefetch(), facts.vendor != Amd, "{name}");
            let rule = facts.rule();
            assert!(rule.contains(strategy.name()), "{name}: {rule}");
        }
    }

    #[test]
    fn the_cache_leaf_follows_the_vendor() {
        assert_eq!(cache_leaf(Vendor::Intel, 0x8000_0008), Some(4));
        assert_eq!(cache_leaf(Vendor::Amd, 0x8000_0020), Some(0x8000_001d));
        assert_eq!(cache_leaf(Vendor::Amd, 0x8000_001d), Some(0x8000_001d));
        assert_eq!(cache_leaf(Vendor::Amd, 0x8000_001c), None, "too old an AMD");
        assert_eq!(cache_leaf(Vendor::Other, 0x8000_0020), None);
    }

    /// One subleaf of a deterministic cache leaf: `kind` (1 data, 2
    /// instruction, 3 unified), the geometry, and how many share it.
    fn subleaf(
        kind: u32,
        ways: u32,
        partitions: u32,
        line: u32,
        sets: u32,
        sharing: u32,
    ) -> core::arch::x86_64::CpuidResult {
        core::arch::x86_64::CpuidResult {
            eax: kind | ((sharing - 1) << 14),
            ebx: ((ways - 1) << 22) | ((partitions - 1) << 12) | (line - 1),
            ecx: sets - 1,
            edx: 0,
        }
    }

    #[test]
    fn the_largest_data_or_unified_cache_is_found() {
        let zen3 = [
            subleaf(1, 8, 1, 64, 64, 2),       // L1d, 32 KiB
            subleaf(2, 8, 1, 64, 64, 2),       // L1i
            subleaf(3, 8, 1, 64, 1024, 2),     // L2, 512 KiB
            subleaf(3, 16, 1, 64, 32768, 16),  // L3, 32 MiB
            subleaf(0, 1, 1, 1, 1, 1),         // the end
            subleaf(3, 16, 1, 64, 1 << 20, 1), // never read
        ];
        let read = |caches: &[core::arch::x86_64::CpuidResult]| {
            let caches = caches.to_vec();
            largest_cache(move |sub| caches[sub as usize])
        };
        assert_eq!(read(&zen3), Some((32 * MIB, 16)));
        // An instruction cache larger than the rest is not a data cache; two
        // partitions double a cache; of two equal ones, the first counts.
        let odd = [
            subleaf(2, 16, 1, 64, 1 << 16, 1), // 64 MiB of instructions
            subleaf(3, 8, 2, 64, 4096, 4),     // 4 MiB
            subleaf(1, 16, 1, 64, 4096, 8),    // 4 MiB as well
            subleaf(1, 1, 1, 64, 1, 1),        // 64 B
            subleaf(0, 1, 1, 1, 1, 1),
        ];
        assert_eq!(read(&odd), Some((4 * MIB, 4)));
        assert_eq!(read(&[subleaf(0, 1, 1, 1, 1, 1)]), None, "no cache");
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
        // The threshold in force is the rule's for the cache sysfs describes.
        let described = Facts {
            llc: Some((size, llc_sharing)),
            ..Facts::here()
        };
        assert_eq!(
            thresholds().non_temporal,
            described.thresholds_with_reason().0.non_temporal
        );
    }
}
