//! One module per target. Only x86-64 Linux has fault-safe copies; elsewhere
//! `unprotected` keeps the API and copies plainly (see the crate docs).

#[cfg(mcsafe_protected)]
mod x86_64;
#[cfg(mcsafe_protected)]
pub(crate) use x86_64::*;

#[cfg(not(mcsafe_protected))]
mod unprotected;
#[cfg(not(mcsafe_protected))]
pub(crate) use unprotected::*;

/// Sizes at which the vector strategies change method (`usize::MAX`: never).
/// Set once from CPUID on x86-64 Linux (`x86_64/cpu.rs`); every method is
/// "never" elsewhere, where there are no vector routines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// From this many bytes, the AVX2 routine copies with `rep movsb`.
    pub avx2_rep_movsb: usize,
    /// From this many bytes, the AVX-512 routine copies with `rep movsb`.
    pub avx512_rep_movsb: usize,
    /// From this many bytes, both copy with non-temporal stores (checked first).
    pub non_temporal: usize,
}
