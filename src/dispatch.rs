//! [`dispatch`]: how this process copies and checksums, and why: what `mcsafe
//! probe` and the benchmarks print.
//!
//! Change it, then run `cargo test -p mcsafe --doc` and `cargo test -p mcsafe-cli`
//! (the probe prints it).

use core::fmt;

use crate::arch::{Arch, Target};
use crate::{Strategy, Thresholds};

/// How this process copies and checksums: returned by [`dispatch`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// The strategy `copy_mc` uses ([`Strategy::current`]).
    pub strategy: Strategy,
    /// The sizes at which the vector strategies change method.
    pub thresholds: Thresholds,
    /// How the widest routine's non-temporal loop runs here, in words (`page
    /// streams with prefetches` on Intel, `plain, no prefetch` on AMD: docs/cpus.md;
    /// empty where there is one shape).
    pub non_temporal_loop: &'static str,
    /// How `crc32c_mc` and `copy_crc32c_mc` compute.
    pub checksum: Checksum,
    /// The rule that chose the default strategy and the thresholds on this CPU,
    /// in words: the CPU, what glibc's memcpy is here, why each threshold is what
    /// it is (before `MCSAFE_TUNABLES`).
    pub rule: String,
    /// `MCSAFE_TUNABLES` as it was read at installation, if it was set: its
    /// settings that apply are in [`Dispatch::thresholds`].
    pub tunables: Option<String>,
    /// The settings of `MCSAFE_TUNABLES` that were ignored (their defaults kept),
    /// each with why.
    pub ignored_tunables: Vec<IgnoredTunable>,
}

pub use crate::tunables::Ignored as IgnoredTunable;

/// How the checksums compute on this CPU (`docs/crc.md`). `Display` says it in
/// words.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// Carry-less multiplication on 512-bit vectors (VPCLMULQDQ on zmm, AVX-512)
    /// in one sequential walk.
    Fold512,
    /// Carry-less multiplication on 256-bit vectors (VPCLMULQDQ) beside three
    /// `crc32` streams.
    Fold256,
    /// The same on 128-bit vectors (PCLMULQDQ).
    Fold128,
    /// One `crc32` stream (SSE4.2 without PCLMULQDQ and AVX, or a fragile model).
    Stream,
    /// aarch64: three `crc32cx` streams per block (3 KiB, then 384 bytes),
    /// merged with PMULL (FEAT_CRC32 and FEAT_PMULL).
    Crc32cxPmull,
    /// aarch64: one `crc32cx` chain (FEAT_CRC32 without FEAT_PMULL).
    Crc32cx,
    /// Tables in software (no `crc32` instruction, or no fault-safe routines).
    Software,
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Checksum::Fold512 => {
                "fold512: VPCLMULQDQ on zmm, four accumulators in one sequential walk"
            }
            Checksum::Fold256 => "fold256: VPCLMULQDQ on ymm beside three crc32 streams",
            Checksum::Fold128 => "fold128: PCLMULQDQ on xmm beside three crc32 streams",
            Checksum::Stream => "one crc32 stream (no PCLMULQDQ and AVX, or a fragile model)",
            Checksum::Crc32cxPmull => {
                "crc32cx-pmull: three crc32cx streams per block merged with PMULL (aarch64)"
            }
            Checksum::Crc32cx => "one crc32cx chain (aarch64 without FEAT_PMULL)",
            Checksum::Software => "software tables (no crc32 instruction)",
        })
    }
}

impl Dispatch {
    /// The thresholds and `MCSAFE_TUNABLES` in one line, as the benchmarks'
    /// headers print them: `thresholds: rep movsb from ...; tunables: none`.
    pub fn thresholds_line(&self) -> String {
        let mut line = format!("thresholds in force: {}; ", self.thresholds);
        if !self.non_temporal_loop.is_empty() {
            line.push_str(&format!(
                "avx512 non-temporal loop: {}; ",
                self.non_temporal_loop
            ));
        }
        match &self.tunables {
            Some(text) => line.push_str(&format!("{}={text}", crate::TUNABLES_ENV)),
            None => line.push_str(&format!("{} not set", crate::TUNABLES_ENV)),
        }
        for ignored in &self.ignored_tunables {
            line.push_str(&format!("; ignored {ignored}"));
        }
        line
    }
}

/// How this process copies and checksums, and why. Installs mcsafe first (as a
/// first copy would: see [`install`](crate::install)), so the thresholds are
/// those in force.
///
/// ```
/// let d = mcsafe::dispatch();
/// println!("{} ({}); checksums: {}", d.strategy, d.rule, d.checksum);
/// ```
///
/// # Panics
///
/// As a first copy does: if the handler cannot be installed, or
/// `MCSAFE_STRATEGY` names a strategy this CPU cannot run.
pub fn dispatch() -> Dispatch {
    let tunables = crate::tunables::Tunables::in_force();
    Dispatch {
        thresholds: Arch::thresholds(),
        non_temporal_loop: Arch::non_temporal_loop(),
        strategy: Strategy::current(),
        checksum: Arch::checksum(),
        rule: Arch::dispatch_rule(),
        tunables: tunables.text.clone(),
        ignored_tunables: tunables.ignored.clone(),
    }
}
