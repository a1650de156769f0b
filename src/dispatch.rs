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
    /// How `crc32c_mc` and `copy_crc32c_mc` compute.
    pub checksum: Checksum,
    /// The rule that chose the default strategy and the thresholds on this CPU,
    /// in words: the CPU, what glibc's memcpy is here, why each threshold is what
    /// it is.
    pub rule: String,
}

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
            Checksum::Software => "software tables (no crc32 instruction)",
        })
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
    Dispatch {
        thresholds: Arch::thresholds(),
        strategy: Strategy::current(),
        checksum: Arch::checksum(),
        rule: Arch::dispatch_rule(),
    }
}
