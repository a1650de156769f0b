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
    /// If `MCSAFE_STRATEGY` names no strategy or one this CPU cannot run (the
    /// error of [`Strategy::try_current`], which is what the panic says): a
    /// forced choice that cannot be honoured is a configuration error, not
    /// something to replace silently.
    ///
    /// ```
    /// let strategy = mcsafe::Strategy::current();
    /// println!("copies here use the {strategy} routine");
    /// ```
    #[track_caller]
    pub fn current() -> Strategy {
        match Strategy::try_current() {
            Ok(strategy) => strategy,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Strategy::current`], or why `MCSAFE_STRATEGY` cannot be honoured,
    /// without a panic: the check a program makes at start-up to report a bad
    /// value in one line. [`install`](crate::install) makes it too
    /// ([`InstallError::BadStrategy`](crate::InstallError::BadStrategy)).
    ///
    /// The variable is read once per process, at the first call of this, of
    /// [`Strategy::current`] or of any entry point that installs: every later
    /// answer is that one. A value that is not valid UTF-8 names no strategy.
    /// Reads the environment: call it before copies run in signal handlers.
    ///
    /// ```
    /// match mcsafe::Strategy::try_current() {
    ///     Ok(strategy) => println!("copies here use the {strategy} routine"),
    ///     // MCSAFE_STRATEGY=turbo: no such strategy; known: fragile, ...
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// ```
    pub fn try_current() -> Result<Strategy, StrategyEnvError> {
        static CHOICE: OnceLock<Result<Strategy, (String, Option<Strategy>)>> = OnceLock::new();
        let choice = CHOICE.get_or_init(|| {
            let Some(raw) = std::env::var_os(STRATEGY_ENV) else {
                return Ok(Arch::default_strategy());
            };
            let value = raw.to_string_lossy().into_owned();
            match raw.to_str().and_then(Strategy::from_name) {
                Some(s) if s.is_available() => Ok(s),
                named => Err((value, named)),
            }
        });
        match choice {
            Ok(strategy) => Ok(*strategy),
            Err((value, named)) => Err(StrategyEnvError {
                value: value.as_str(),
                named: *named,
            }),
        }
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

/// `MCSAFE_STRATEGY` names no strategy, or one this CPU cannot run: the error
/// of [`Strategy::try_current`] and of [`install`](crate::install)
/// ([`InstallError::BadStrategy`](crate::InstallError::BadStrategy)), and what
/// the first copy panics with. `Display` says it in one line, naming the value,
/// the known names and those available here:
///
/// `MCSAFE_STRATEGY=turbo: no such strategy; known: fragile, rep_movsb, avx2,
/// avx512; available here: fragile, rep_movsb, avx2`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrategyEnvError {
    value: &'static str,
    named: Option<Strategy>,
}

impl StrategyEnvError {
    /// The variable's value, as read (a value that is not UTF-8 converted
    /// lossily).
    pub fn value(&self) -> &'static str {
        self.value
    }

    /// The strategy the value names, which this CPU cannot run; `None` if it
    /// names none.
    pub fn strategy(&self) -> Option<Strategy> {
        self.named
    }
}

impl fmt::Display for StrategyEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let available = names(&Strategy::available());
        // The value as typed when it is a plain word, else quoted and escaped
        // (empty, white space, control characters): one line either way.
        let value = self.value;
        let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
        let value = if plain {
            value.to_string()
        } else {
            format!("{value:?}")
        };
        match self.named {
            Some(s) => write!(
                f,
                "{STRATEGY_ENV}={}: this CPU cannot run the {} strategy; available here: {available}",
                value,
                s.name()
            ),
            None => write!(
                f,
                "{STRATEGY_ENV}={}: no such strategy; known: {}; available here: {available}",
                value,
                names(&Strategy::ALL)
            ),
        }
    }
}

impl std::error::Error for StrategyEnvError {}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
