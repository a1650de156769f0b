//! `MCSAFE_TUNABLES`: the copy thresholds set from the environment, in glibc's
//! style (`GLIBC_TUNABLES=glibc.cpu.x86_non_temporal_threshold=...`), read once at
//! installation:
//!
//! ```text
//! MCSAFE_TUNABLES=non_temporal_threshold=32M:rep_movsb_threshold=16K:rep_movsb_stop_threshold=1M
//! ```
//!
//! Sizes are bytes, in decimal, hex (`0x...`) or with a binary suffix (`K`, `M`,
//! `G`). A setting that cannot be used (an unknown name, a value that is not a
//! size, 0, more than 2^47) is ignored, the default kept, and named by
//! [`dispatch`](crate::dispatch) (`mcsafe probe` prints it): never a failed
//! installation, never a silent change.
//!
//! Change it, then run `cargo test -p mcsafe --lib tunables` and `cargo test -p
//! mcsafe-cli` (the probe's report).

use core::fmt;

/// The environment variable read once at installation.
pub const TUNABLES_ENV: &str = "MCSAFE_TUNABLES";

/// The largest size a tunable takes: past it no copy can reach (user space is
/// 2^47 bytes with 4-level paging), so a larger value is a mistake.
const LARGEST: u64 = 1 << 47;

/// The settings of [`TUNABLES_ENV`] that apply, and those ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tunables {
    /// From this many bytes, the vector routines copy with non-temporal stores.
    pub(crate) non_temporal: Option<usize>,
    /// From this many bytes, they copy with `rep movsb`...
    pub(crate) rep_movsb: Option<usize>,
    /// ... up to this many (then their vector loop again).
    pub(crate) rep_movsb_stop: Option<usize>,
    /// The settings ignored, each with why.
    pub(crate) ignored: Vec<Ignored>,
    /// The variable's value as read (`None`: not set).
    pub(crate) text: Option<String>,
}

/// A setting of [`TUNABLES_ENV`] that was ignored, and why: `Display` says
/// both (`banana: not name=size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// The setting as written.
    pub setting: String,
    /// Why it was ignored.
    pub why: String,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.setting, self.why)
    }
}

impl Tunables {
    /// The settings of `text` (the variable's value): `name=size` items
    /// separated by `:`; a later setting of the same name replaces an earlier one.
    pub(crate) fn parse(text: &str) -> Tunables {
        let mut tunables = Tunables::default();
        for setting in text.split(':').filter(|s| !s.trim().is_empty()) {
            let ignore = |why: String| Ignored {
                setting: setting.to_string(),
                why,
            };
            let Some((name, value)) = setting.split_once('=') else {
                tunables.ignored.push(ignore("not name=size".into()));
                continue;
            };
            let slot = match name.trim() {
                "non_temporal_threshold" => &mut tunables.non_temporal,
                "rep_movsb_threshold" => &mut tunables.rep_movsb,
                "rep_movsb_stop_threshold" => &mut tunables.rep_movsb_stop,
                other => {
                    tunables.ignored.push(ignore(format!(
                        "unknown name {other:?} (non_temporal_threshold, rep_movsb_threshold, \
                         rep_movsb_stop_threshold)"
                    )));
                    continue;
                }
            };
            match size(value.trim()) {
                Ok(bytes) => *slot = Some(bytes),
                Err(why) => tunables.ignored.push(ignore(why)),
            }
        }
        tunables
    }

    /// `thresholds` with the settings that apply in place of their defaults
    /// (`rep_movsb_threshold` for both vector routines).
    #[cfg_attr(not(mcsafe_protected), allow(dead_code))] // no thresholds there
    pub(crate) fn apply(&self, thresholds: crate::Thresholds) -> crate::Thresholds {
        crate::Thresholds {
            avx2_rep_movsb: self.rep_movsb.unwrap_or(thresholds.avx2_rep_movsb),
            avx512_rep_movsb: self.rep_movsb.unwrap_or(thresholds.avx512_rep_movsb),
            rep_movsb_stop: self.rep_movsb_stop.unwrap_or(thresholds.rep_movsb_stop),
            non_temporal: self.non_temporal.unwrap_or(thresholds.non_temporal),
        }
    }

    /// The settings of the environment, read once per process.
    pub(crate) fn in_force() -> &'static Tunables {
        static IN_FORCE: std::sync::OnceLock<Tunables> = std::sync::OnceLock::new();
        IN_FORCE.get_or_init(Tunables::from_env)
    }

    /// The settings of the environment (none when the variable is not set; a
    /// value that is not Unicode is ignored as a whole).
    fn from_env() -> Tunables {
        match std::env::var(TUNABLES_ENV) {
            Ok(text) => Tunables {
                text: Some(text.clone()),
                ..Tunables::parse(&text)
            },
            Err(std::env::VarError::NotPresent) => Tunables::default(),
            Err(std::env::VarError::NotUnicode(raw)) => {
                let text = raw.to_string_lossy().into_owned();
                Tunables {
                    ignored: vec![Ignored {
                        setting: text.clone(),
                        why: "not Unicode".into(),
                    }],
                    text: Some(text),
                    ..Tunables::default()
                }
            }
        }
    }
}

/// A size: decimal, `0x` hex, or either with a `K`, `M` or `G` suffix (powers of
/// 1024); between 1 and 2^47.
fn size(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    let number = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse::<u64>(),
    }
    .map_err(|_| format!("{text:?} is not a size (bytes, hex, or with K, M or G)"))?;
    let bytes = number
        .checked_mul(unit)
        .filter(|&b| b <= LARGEST)
        .ok_or_else(|| format!("{text} is more than 2^47 bytes"))?;
    if bytes == 0 {
        return Err("a threshold of 0 would take the method for every size".into());
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_names_take_sizes_in_every_notation() {
        let t = Tunables::parse(
            "non_temporal_threshold=32M:rep_movsb_threshold=16K:rep_movsb_stop_threshold=0x100000",
        );
        assert_eq!(t.non_temporal, Some(32 << 20));
        assert_eq!(t.rep_movsb, Some(16 << 10));
        assert_eq!(t.rep_movsb_stop, Some(1 << 20));
        assert!(t.ignored.is_empty(), "{:?}", t.ignored);
        let t = Tunables::parse("rep_movsb_threshold=2112:non_temporal_threshold=1g");
        assert_eq!((t.rep_movsb, t.non_temporal), (Some(2112), Some(1 << 30)));
        assert_eq!(
            Tunables::parse("rep_movsb_threshold=1K:rep_movsb_threshold=2K").rep_movsb,
            Some(2048)
        );
        assert_eq!(Tunables::parse(""), Tunables::default());
    }

    #[test]
    fn unusable_settings_are_ignored_and_named_and_the_rest_apply() {
        let t = Tunables::parse(
            "banana:color=red:rep_movsb_threshold=0:non_temporal_threshold=1048576G:\
             rep_movsb_stop_threshold=12Q:rep_movsb_threshold=4K",
        );
        assert_eq!(t.rep_movsb, Some(4096), "a later good setting applies");
        assert_eq!((t.non_temporal, t.rep_movsb_stop), (None, None));
        let why: Vec<String> = t.ignored.iter().map(ToString::to_string).collect();
        assert_eq!(why.len(), 5, "{why:?}");
        assert!(why[0].contains("banana") && why[0].contains("not name=size"));
        assert!(why[1].contains("unknown name \"color\""));
        assert!(why[2].contains("0"), "{}", why[2]);
        assert!(why[3].contains("2^47"), "{}", why[3]);
        assert!(why[4].contains("not a size"), "{}", why[4]);
    }

    #[test]
    fn settings_replace_only_their_own_defaults() {
        let defaults = crate::Thresholds {
            avx2_rep_movsb: 2112,
            avx512_rep_movsb: 16 << 10,
            rep_movsb_stop: usize::MAX,
            non_temporal: 8 << 20,
        };
        assert_eq!(Tunables::default().apply(defaults), defaults);
        let t = Tunables::parse("rep_movsb_threshold=4K:non_temporal_threshold=64M");
        let applied = t.apply(defaults);
        assert_eq!(
            (applied.avx2_rep_movsb, applied.avx512_rep_movsb),
            (4096, 4096)
        );
        assert_eq!(applied.rep_movsb_stop, usize::MAX);
        assert_eq!(applied.non_temporal, 64 << 20);
        let t = Tunables::parse("rep_movsb_stop_threshold=1M");
        assert_eq!(t.apply(defaults).rep_movsb_stop, 1 << 20);
    }

    #[test]
    fn the_largest_size_is_two_to_the_47() {
        assert_eq!(size("0x800000000000"), Ok(1 << 47));
        assert!(size("0x800000000001").is_err());
        assert!(size("18446744073709551616").is_err(), "past u64");
        assert!(size("-1").is_err());
    }
}
