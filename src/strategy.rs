//! [`Strategy`]: which copy routine does the work, chosen once per process.
//!
//! Change it, then run `cargo test -p mcsafe-tests --test api --test sigsegv`
//! (`MCSAFE_STRATEGY`), `cargo test -p mcsafe --features inject --doc` and `cargo
//! test -p mcsafe-capi` (the C names). A new strategy takes more: see
//! docs/architecture.md, "Adding a strategy".

use core::fmt;
use std::sync::OnceLock;

use crate::arch::{Arch, Target};

/// A copy routine. Every strategy keeps the same contract (exact prefix, one
/// signal per lost granule); they differ in speed and in which CPUs can recover
/// from a machine check inside them.
///
/// ```
/// use mcsafe::Strategy;
///
/// let src = vec![3u8; 1000];
/// let mut dst = vec![0u8; 1000];
/// for strategy in Strategy::available() {
///     // SAFETY: two distinct heap buffers.
///     unsafe { mcsafe::copy_mc_with(strategy, dst.as_mut_ptr(), src.as_ptr(), 1000) }.unwrap();
///     assert_eq!(dst, src, "{strategy}");
/// }
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The kernel's `copy_mc_fragile` shape: source aligned to 8 bytes, aligned
    /// word loads, no `rep movs`, no load that crosses a cache line. The safe
    /// choice on CPUs that cannot recover from poison consumed otherwise
    /// (some Haswell/Broadwell-EX and Skylake-SP Xeons). Available everywhere.
    Fragile,
    /// A single `rep movsb`. Offered on CPUs with ERMS (fast `rep movsb`).
    RepMovsb,
    /// 32-byte AVX2 vectors in size classes like glibc's memcpy: overlapping
    /// head and tail moves up to 8 vectors, then an aligned-destination loop,
    /// `rep movsb` and non-temporal stores above thresholds set from CPUID.
    /// Offered on CPUs with AVX2.
    Avx2,
    /// The same shape with 64-byte AVX-512 vectors (EVEX registers 16-31 only,
    /// so no `vzeroupper`). Offered on CPUs with AVX-512F and AVX-512VL.
    Avx512,
    /// aarch64: `ldp`/`stp` of 128-bit Advanced SIMD (NEON) registers, the shape
    /// of glibc's generic aarch64 memcpy for small sizes (overlapping moves from
    /// both ends up to 128 bytes), then a forward-only loop of 64 bytes whose
    /// post-index stores move the destination cursor only past stored bytes, and
    /// a tail by halving sizes (asm/aarch64/copy.s). Offered on every aarch64
    /// Linux CPU (Advanced SIMD is part of its ABI); the only strategy there.
    AdvSimd,
}

/// The environment variable that forces [`Strategy::current`], by [`Strategy::name`]:
/// `MCSAFE_STRATEGY=fragile` runs every `copy_mc` of the process with the
/// fragile routine.
pub const STRATEGY_ENV: &str = "MCSAFE_STRATEGY";

/// Every variant, whatever the target: the names [`Strategy::from_name`] knows.
const EVERY: [Strategy; 5] = [
    Strategy::Fragile,
    Strategy::RepMovsb,
    Strategy::Avx2,
    Strategy::Avx512,
    Strategy::AdvSimd,
];

impl Strategy {
    /// Every strategy of this target's architecture, available on this CPU or
    /// not, in the order of [`Strategy::available`]: the four x86-64 ones (on
    /// x86-64, and on targets without fault-safe copies), or `AdvSimd` alone on
    /// aarch64. Every variant exists on every target; one of another
    /// architecture is never available.
    #[cfg(not(target_arch = "aarch64"))]
    pub const ALL: [Strategy; 4] = [
        Strategy::Fragile,
        Strategy::RepMovsb,
        Strategy::Avx2,
        Strategy::Avx512,
    ];

    /// Every strategy of this target's architecture: on aarch64, `AdvSimd`.
    #[cfg(target_arch = "aarch64")]
    pub const ALL: [Strategy; 1] = [Strategy::AdvSimd];

    /// Its place in [`Strategy::ALL`] (the declaration order).
    #[cfg_attr(not(all(mcsafe_protected, target_arch = "x86_64")), allow(dead_code))] // x86-64 dispatch only
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The strategies this CPU (and this target) can run, `Fragile` first on
    /// x86-64, `AdvSimd` on aarch64. Empty on targets without fault-safe copies.
    ///
    /// ```
    /// use mcsafe::Strategy;
    ///
    /// let here = Strategy::available();
    /// if mcsafe::install().is_ok() {
    ///     // Fragile runs on every x86-64 CPU, AdvSimd on every aarch64 one.
    ///     assert!([Strategy::Fragile, Strategy::AdvSimd].contains(&here[0]));
    ///     assert!(here.contains(&Strategy::current()));
    /// } else {
    ///     assert!(here.is_empty()); // no fault-safe copies on this target
    /// }
    /// ```
    pub fn available() -> Vec<Strategy> {
        Strategy::ALL
            .into_iter()
            .filter(|s| s.is_available())
            .collect()
    }

    /// Whether this CPU can run this strategy: [`copy_mc_with`](crate::copy_mc_with)
    /// panics on one it cannot.
    ///
    /// ```
    /// use mcsafe::Strategy;
    /// assert_eq!(Strategy::Avx512.is_available(), Strategy::available().contains(&Strategy::Avx512));
    /// ```
    pub fn is_available(&self) -> bool {
        // A strategy of another architecture is never asked of the target.
        Strategy::ALL.contains(self) && Arch::can_run(*self)
    }

    /// The strategy [`copy_mc`](crate::copy_mc) uses, chosen once per process.
    ///
    /// `MCSAFE_STRATEGY=<name>` forces it; otherwise it comes from CPUID on
    /// x86-64 (`Fragile` on the CPU models the kernel treats as fragile, else
    /// the fastest available); on aarch64 it is `AdvSimd`.
    ///
    /// # Panics
    ///
    /// On first use, if `MCSAFE_STRATEGY` names no strategy or one this CPU
    /// cannot run: a forced choice that cannot be honoured is a configuration
    /// error, not something to replace silently.
    ///
    /// ```
    /// let strategy = mcsafe::Strategy::current();
    /// println!("copies here use the {strategy} routine");
    /// ```
    pub fn current() -> Strategy {
        static CURRENT: OnceLock<Strategy> = OnceLock::new();
        *CURRENT.get_or_init(|| match std::env::var(STRATEGY_ENV) {
            Ok(name) => match Strategy::from_name(&name) {
                Some(s) if s.is_available() => s,
                Some(s) => panic!(
                    "{STRATEGY_ENV}={name}: this CPU cannot run the {} strategy; \
                     available here: {}",
                    s.name(),
                    names(&Strategy::available())
                ),
                None => panic!(
                    "{STRATEGY_ENV}={name}: no such strategy; known: {}; available here: {}",
                    names(&Strategy::ALL),
                    names(&Strategy::available())
                ),
            },
            Err(_) => Arch::default_strategy(),
        })
    }

    /// The strategy's name, as `MCSAFE_STRATEGY` takes it: `fragile`,
    /// `rep_movsb`, `avx2`, `avx512`, `advsimd`. `Display` prints the same.
    ///
    /// ```
    /// assert_eq!(mcsafe::Strategy::RepMovsb.name(), "rep_movsb");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Fragile => "fragile",
            Strategy::RepMovsb => "rep_movsb",
            Strategy::Avx2 => "avx2",
            Strategy::Avx512 => "avx512",
            Strategy::AdvSimd => "advsimd",
        }
    }

    /// The strategy with this [`name`](Strategy::name), ignoring ASCII case
    /// and surrounding white space.
    ///
    /// ```
    /// use mcsafe::Strategy;
    /// assert_eq!(Strategy::from_name(" AVX2 "), Some(Strategy::Avx2));
    /// assert_eq!(Strategy::from_name("memcpy"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Strategy> {
        EVERY
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name.trim()))
    }
}

fn names(list: &[Strategy]) -> String {
    let names: Vec<&str> = list.iter().map(Strategy::name).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
