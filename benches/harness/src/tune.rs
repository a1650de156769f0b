//! `mcsafe tune`: measures on the running machine which copy method is fastest
//! at each size, side by side with glibc's memcpy, and derives the rule (the three
//! thresholds of `MCSAFE_TUNABLES`) for the default vector strategy.
//!
//! Candidates, at each size from 64 B to 64 MiB, hot (the same buffers every call)
//! and cold (a walk through regions much larger than the last-level cache): every
//! available strategy as configured now, and the default vector strategy forced to
//! each of its methods (its vector loop, `rep movsb`, non-temporal stores). A
//! method's score at a size is the lower of its hot and cold ratios to memcpy (the
//! summary's goal is every cell at 0.95 or more, hot and cold); the best score wins
//! the size, a win within [`TIE`] going to the method of the size below.
//! `rep movsb` may win a size only if it also keeps up with the vector loop, hot,
//! at the distances `(dst - src) mod 4096` where some CPUs slow it down
//! ([`REP_MOVSB_DISTANCES`], [`REP_MOVSB_GUARD`]): the aligned copies above cannot
//! see that, and a rule found on them would hand those CPUs' users a copy 30x
//! slower whenever their buffers sit at such a distance. The rule
//! is then: `rep movsb` from the first size it wins until the first size it loses;
//! non-temporal stores from the size from which they win every larger size.
//!
//! Change it, then run `cargo test -p mcsafe-bench` and `mcsafe tune` (about a
//! minute; `--quick` a few seconds).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mcsafe::Strategy;
use mcsafe::internals::{Thresholds, set_thresholds, thresholds};

use crate::comparators::{Comparator, Env, thread_time};
use crate::measure::{Measurement, Timer, interleaved};
use crate::workload::{Call, Cold, Hot, Region};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// A win by less than this is a tie (noise on a shared machine).
pub const TIE: f64 = 0.02;

/// Distances `(dst - src) mod 4096` at which `rep movsb` is slow on some CPUs:
/// on the Zen 3 guest of rounds 1-2 1-3 GB/s at 1..31 (35-97 elsewhere), on a
/// Zen 4 guest this round (family 0x19 model 0x11) 2-3 GB/s at 1..15 and about
/// half speed at 16..31, from 4 KiB to 1 MiB (docs/cpus.md); none on Zen 5
/// (issue 18: 129-134 GB/s at 1..63 at 16 KiB). One distance in each band: on
/// Zen 4 the worst of 1, 8, 17 and 31 was always 1, 8 or 17, and 1 and 8 gave
/// the same 2-3.5 GB/s.
pub const REP_MOVSB_DISTANCES: [usize; 2] = [1, 17];

/// At each of [`REP_MOVSB_DISTANCES`], `rep movsb` must copy at least this
/// fraction of the vector loop's speed at the same distance to win a size.
pub const REP_MOVSB_GUARD: f64 = 0.9;

/// A forced method of the vector strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The 4-vector loop (no `rep movsb`, no non-temporal stores).
    Vector,
    /// `rep movsb` above 8 vectors.
    RepMovsb,
    /// Non-temporal stores above 8 vectors.
    NonTemporal,
}

impl Method {
    /// Every method, in the order of the report's columns.
    pub const ALL: [Method; 3] = [Method::Vector, Method::RepMovsb, Method::NonTemporal];

    /// The thresholds that force it.
    fn thresholds(self) -> Thresholds {
        let never = usize::MAX;
        let (rep, nt) = match self {
            Method::Vector => (never, never),
            Method::RepMovsb => (1, never),
            Method::NonTemporal => (never, 1),
        };
        Thresholds {
            avx2_rep_movsb: rep,
            avx512_rep_movsb: rep,
            rep_movsb_stop: never,
            non_temporal: nt,
        }
    }

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Method::Vector => "vector",
            Method::RepMovsb => "rep movsb",
            Method::NonTemporal => "non-temporal",
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sizes, ascending.
    pub sizes: Vec<usize>,
    /// Interleaved rounds per size and condition.
    pub rounds: usize,
    /// Bytes per cold region (one for the source, one for the destination).
    pub cold_region: usize,
}

impl Options {
    /// Powers of two from 64 B to 64 MiB, 7 rounds: about a minute here.
    pub fn full() -> Options {
        Options {
            sizes: (6..=26).map(|p| 1usize << p).collect(),
            rounds: 7,
            cold_region: 512 * MIB,
        }
    }

    /// Fewer sizes and rounds, for a check that it runs (a few seconds).
    pub fn quick() -> Options {
        Options {
            sizes: vec![256, 4 * KIB, 64 * KIB, MIB, 16 * MIB],
            rounds: 3,
            cold_region: 256 * MIB,
        }
    }
}

/// One size: the throughput of every candidate, hot and cold.
#[derive(Clone, Debug)]
pub struct Row {
    /// Bytes per copy.
    pub size: usize,
    /// glibc's memcpy, hot and cold.
    pub memcpy: [Measurement; 2],
    /// Each strategy as configured, hot and cold (in [`Tune::strategies`] order).
    pub strategies: Vec<[Measurement; 2]>,
    /// The vector strategy forced to each method (in [`Method::ALL`] order).
    pub methods: Vec<[Measurement; 2]>,
    /// `rep movsb` against the vector loop, hot, at its worst distance of
    /// [`REP_MOVSB_DISTANCES`]; measured only above 8 vectors, where the methods
    /// run different code (`None` up to 8: every method is the same moves from
    /// both ends).
    pub distance: Option<Distance>,
    /// The method that won this size.
    pub best: Method,
}

/// `rep movsb` and the vector loop at the distance where `rep movsb` fared worst.
#[derive(Clone, Copy, Debug)]
pub struct Distance {
    /// `(dst - src) mod 4096`.
    pub distance: usize,
    /// `rep movsb` there, hot.
    pub rep_movsb: Measurement,
    /// The vector loop there, hot.
    pub vector: Measurement,
    /// glibc's memcpy there, hot (which may use `rep movsb` itself).
    pub memcpy: Measurement,
}

impl Distance {
    /// `rep movsb`'s speed as a fraction of the vector loop's.
    pub fn ratio(&self) -> f64 {
        self.rep_movsb.gb_per_s / self.vector.gb_per_s
    }
}

impl Row {
    /// A method's score: the lower of its hot and cold ratios to memcpy.
    pub fn score(&self, method: Method) -> f64 {
        let m = &self.methods[method as usize];
        (m[0].gb_per_s / self.memcpy[0].gb_per_s).min(m[1].gb_per_s / self.memcpy[1].gb_per_s)
    }

    /// Whether the methods run different code at this size (above 8 vectors).
    pub fn methods_differ(&self) -> bool {
        self.distance.is_some()
    }

    /// Whether `method` may win this size: `rep movsb` only where it passes the
    /// distance guard.
    pub fn eligible(&self, method: Method) -> bool {
        method != Method::RepMovsb || self.distance.is_none_or(|d| d.ratio() >= REP_MOVSB_GUARD)
    }
}

/// The rule found: where the vector strategy should switch method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// From here, `rep movsb` (`None`: never).
    pub rep_movsb: Option<usize>,
    /// ... up to here (`None`: to the end, or never).
    pub rep_movsb_stop: Option<usize>,
    /// From here, non-temporal stores (`None`: never, up to the largest size).
    pub non_temporal: Option<usize>,
}

/// What `mcsafe tune` found.
#[derive(Clone, Debug)]
pub struct Tune {
    /// The vector strategy the rule is for.
    pub strategy: Strategy,
    /// The strategies measured as configured.
    pub strategies: Vec<Strategy>,
    /// One row per size.
    pub rows: Vec<Row>,
    /// The thresholds in force while measuring the configured strategies.
    pub configured: Thresholds,
    /// The rule the rows give.
    pub rule: Rule,
    /// How long the measurement took.
    pub elapsed: Duration,
}

/// The strategy the rule is tuned for: the current one when it is a vector
/// strategy, else the widest vector strategy available (`None`: none, so there is
/// no method to tune).
pub fn vector_strategy() -> Option<Strategy> {
    let current = Strategy::current();
    if matches!(current, Strategy::Avx2 | Strategy::Avx512) {
        return Some(current);
    }
    [Strategy::Avx512, Strategy::Avx2]
        .into_iter()
        .find(|s| s.is_available())
}

/// A vector of `strategy`'s loop, in bytes.
fn vector_bytes(strategy: Strategy) -> usize {
    if strategy == Strategy::Avx512 { 64 } else { 32 }
}

/// The method each size wins, ties going to the size below's (and, first, to
/// the vector loop); where the methods run the same code, the vector loop (a
/// difference there is noise, and would carry over as ties).
fn winners(rows: &mut [Row]) {
    let mut previous = Method::Vector;
    for row in rows.iter_mut() {
        if !row.methods_differ() {
            row.best = Method::Vector;
            previous = Method::Vector;
            continue;
        }
        let best = Method::ALL
            .into_iter()
            .filter(|m| row.eligible(*m))
            .max_by(|a, b| row.score(*a).total_cmp(&row.score(*b)))
            .unwrap_or(Method::Vector);
        row.best = if !row.eligible(previous) || row.score(best) > row.score(previous) * (1.0 + TIE)
        {
            best
        } else {
            previous
        };
        previous = row.best;
    }
}

/// The rule the winners give (see the module docs).
pub fn rule_of(rows: &[Row]) -> Rule {
    let rep_movsb = rows.iter().position(|r| r.best == Method::RepMovsb);
    let rep_movsb_stop = rep_movsb.and_then(|first| {
        rows[first..]
            .iter()
            .find(|r| r.best != Method::RepMovsb)
            .map(|r| r.size)
    });
    let non_temporal = (0..rows.len())
        .find(|&i| rows[i..].iter().all(|r| r.best == Method::NonTemporal))
        .map(|i| rows[i].size);
    Rule {
        rep_movsb: rep_movsb.map(|i| rows[i].size),
        rep_movsb_stop,
        non_temporal,
    }
}

/// Measures (see the module docs); `progress(done, total)` after each size and
/// condition. Restores the thresholds in force before it returns.
pub fn run(options: &Options, mut progress: impl FnMut(usize, usize)) -> Option<Tune> {
    let strategy = vector_strategy()?;
    let started = Instant::now();
    let configured = thresholds();
    let strategies = Strategy::available();
    let largest = options.sizes.iter().copied().max().unwrap_or(0);
    let hot_src = Region::new(largest + 4096);
    let hot_dst = Region::new(largest + 4096);
    let cold_len = (4 * largest).max(options.cold_region);
    let cold_src = Region::new(cold_len);
    let cold_dst = Region::new(cold_len);
    let env = Env::new();
    let memcpy = |calls: &[Call]| {
        // SAFETY: the calls are the workload's, inside its regions.
        unsafe { Comparator::Memcpy.time(calls, &env) }
    };
    // Each timer sets the thresholds it measures, then times the batch.
    let with = |t: Thresholds, s: Strategy| {
        move |calls: &[Call]| {
            set_thresholds(t);
            let start = thread_time();
            for c in calls {
                // SAFETY: as above.
                let _ =
                    std::hint::black_box(unsafe { mcsafe::copy_mc_with(s, c.dst, c.src, c.len) });
            }
            thread_time().saturating_sub(start)
        }
    };
    let at_distance: [Timer<'_>; 3] = [
        Box::new(with(Method::Vector.thresholds(), strategy)),
        Box::new(with(Method::RepMovsb.thresholds(), strategy)),
        Box::new(memcpy),
    ];
    let mut timers: Vec<Timer<'_>> = vec![Box::new(memcpy)];
    for &s in &strategies {
        timers.push(Box::new(with(configured, s)));
    }
    for m in Method::ALL {
        timers.push(Box::new(with(m.thresholds(), strategy)));
    }
    let total = 3 * options.sizes.len();
    let mut rows = Vec::new();
    for (i, &size) in options.sizes.iter().enumerate() {
        let mut hot = Hot::new(&hot_src, &hot_dst, &[size], 0, 0);
        let hot_m = interleaved(&timers, &memcpy, &mut hot, options.rounds);
        progress(3 * i + 1, total);
        let mut cold = Cold::new(&cold_src, &cold_dst, &[size], 0, 0);
        let cold_m = interleaved(&timers, &memcpy, &mut cold, options.rounds);
        progress(3 * i + 2, total);
        let distance = (size > 8 * vector_bytes(strategy)).then(|| {
            REP_MOVSB_DISTANCES
                .into_iter()
                .map(|d| {
                    let mut hot = Hot::new(&hot_src, &hot_dst, &[size], 0, d);
                    let m = interleaved(&at_distance, &*at_distance[0], &mut hot, options.rounds);
                    Distance {
                        distance: d,
                        vector: m[0],
                        rep_movsb: m[1],
                        memcpy: m[2],
                    }
                })
                .min_by(|a, b| a.ratio().total_cmp(&b.ratio()))
                .expect("REP_MOVSB_DISTANCES is not empty")
        });
        progress(3 * i + 3, total);
        let pair = |k: usize| [hot_m[k], cold_m[k]];
        rows.push(Row {
            size,
            memcpy: pair(0),
            strategies: (0..strategies.len()).map(|k| pair(1 + k)).collect(),
            methods: (0..Method::ALL.len())
                .map(|k| pair(1 + strategies.len() + k))
                .collect(),
            distance,
            best: Method::Vector,
        });
    }
    set_thresholds(configured);
    winners(&mut rows);
    let rule = rule_of(&rows);
    Some(Tune {
        strategy,
        strategies,
        rows,
        configured,
        rule,
        elapsed: started.elapsed(),
    })
}

/// A size in the largest binary unit that divides it (`16K`, `1M`, `2112`), as
/// `MCSAFE_TUNABLES` takes it.
pub fn size_text(n: usize) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

impl Tune {
    /// The `MCSAFE_TUNABLES` value that applies the rule (every threshold named:
    /// `never` as the largest size the variable takes, 2^47).
    pub fn tunables(&self) -> String {
        let never = "0x800000000000".to_string();
        let r = &self.rule;
        format!(
            "rep_movsb_threshold={}:rep_movsb_stop_threshold={}:non_temporal_threshold={}",
            r.rep_movsb.map_or(never.clone(), size_text),
            r.rep_movsb_stop.map_or(never.clone(), size_text),
            r.non_temporal.map_or(never, size_text),
        )
    }

    /// The rule in words.
    pub fn rule_text(&self) -> String {
        let r = &self.rule;
        let mut text = format!("{}: the vector loop", self.strategy);
        match (r.rep_movsb, r.rep_movsb_stop) {
            (Some(from), Some(to)) => write!(
                text,
                "; rep movsb from {} to {}",
                size_text(from),
                size_text(to)
            )
            .unwrap(),
            (Some(from), None) => write!(text, "; rep movsb from {}", size_text(from)).unwrap(),
            _ => text.push_str("; no rep movsb"),
        }
        match r.non_temporal {
            Some(from) => write!(text, "; non-temporal stores from {}", size_text(from)).unwrap(),
            None => write!(
                text,
                "; no non-temporal stores up to {}",
                size_text(self.rows.last().map_or(0, |r| r.size))
            )
            .unwrap(),
        }
        text
    }

    /// The whole report: the table, the rule, the line that applies it, a row
    /// for docs/cpus.md.
    pub fn render(&self, cpu: &str) -> String {
        let mut out = format!(
            "mcsafe tune: {cpu}; measured in {:.0} s; GB/s, medians of interleaved rounds in \
             the thread's CPU time; ratio = mcsafe/memcpy; thresholds while measuring the \
             configured strategies: {}\n\n",
            self.elapsed.as_secs_f64(),
            self.configured
        );
        let mut head = String::from("| size | memcpy hot / cold |");
        let mut rule = String::from("|---:|---:|");
        for s in &self.strategies {
            write!(head, " {s} |").unwrap();
            rule.push_str("---:|");
        }
        for m in Method::ALL {
            write!(head, " {} {} |", self.strategy, m.name()).unwrap();
            rule.push_str("---:|");
        }
        write!(
            head,
            " {} rep movsb / vector / memcpy, hot, at rep movsb's worst distance |",
            self.strategy
        )
        .unwrap();
        head.push_str(" best |");
        rule.push_str("---:|---|");
        writeln!(out, "{head}\n{rule}").unwrap();
        for row in &self.rows {
            let cell = |m: &[Measurement; 2]| {
                format!(
                    "{:.1} / {:.1} ({:.2}/{:.2})",
                    m[0].gb_per_s,
                    m[1].gb_per_s,
                    m[0].gb_per_s / row.memcpy[0].gb_per_s,
                    m[1].gb_per_s / row.memcpy[1].gb_per_s
                )
            };
            write!(
                out,
                "| {} | {:.1} / {:.1} |",
                size_text(row.size),
                row.memcpy[0].gb_per_s,
                row.memcpy[1].gb_per_s
            )
            .unwrap();
            for m in row.strategies.iter().chain(&row.methods) {
                write!(out, " {} |", cell(m)).unwrap();
            }
            match &row.distance {
                Some(d) => write!(
                    out,
                    " {:.1} / {:.1} / {:.1} at {} ({:.2}{}) |",
                    d.rep_movsb.gb_per_s,
                    d.vector.gb_per_s,
                    d.memcpy.gb_per_s,
                    d.distance,
                    d.ratio(),
                    if row.eligible(Method::RepMovsb) {
                        ""
                    } else {
                        ": not eligible"
                    }
                ),
                None => write!(out, " - (8 vectors or less: the same code) |"),
            }
            .unwrap();
            writeln!(out, " {} |", row.best.name()).unwrap();
        }
        writeln!(
            out,
            "\nrep movsb may win a size only at {REP_MOVSB_GUARD}x the vector loop or more at \
             every distance (dst - src) mod 4096 of {REP_MOVSB_DISTANCES:?}"
        )
        .unwrap();
        writeln!(out, "rule found: {}", self.rule_text()).unwrap();
        writeln!(
            out,
            "apply it: {}={}",
            mcsafe::TUNABLES_ENV,
            self.tunables()
        )
        .unwrap();
        let cell = |v: Option<usize>| v.map_or("never".to_string(), size_text);
        writeln!(
            out,
            "docs/cpus.md row: | {cpu} | {} | {} | {} | {} | measured with `mcsafe tune` |",
            self.strategy,
            cell(self.rule.rep_movsb),
            cell(self.rule.rep_movsb_stop),
            cell(self.rule.non_temporal),
        )
        .unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(gb: f64) -> Measurement {
        Measurement {
            ns_per_call: 1.0,
            gb_per_s: gb,
        }
    }

    /// A row whose `rep movsb` keeps up at every distance.
    fn row(size: usize, vector: f64, rep: f64, nt: f64) -> Row {
        let m = |gb: f64| [measurement(gb); 2];
        Row {
            size,
            memcpy: m(100.0),
            strategies: Vec::new(),
            methods: vec![m(vector), m(rep), m(nt)],
            distance: Some(Distance {
                distance: 1,
                rep_movsb: measurement(rep),
                vector: measurement(vector),
                memcpy: measurement(100.0),
            }),
            best: Method::Vector,
        }
    }

    #[test]
    fn rep_movsb_slow_at_a_distance_never_wins() {
        // Zen 4's shape: rep movsb wins aligned, but at distance 1 it copies
        // at 3 GB/s where the vector loop does 45.
        let slow_at_a_distance = |size| {
            let mut r = row(size, 100.0, 130.0, 50.0);
            r.distance.as_mut().unwrap().rep_movsb = measurement(3.0);
            r.distance.as_mut().unwrap().vector = measurement(45.0);
            r
        };
        let mut rows = vec![
            row(1024, 100.0, 90.0, 50.0),
            slow_at_a_distance(16384),
            row(65536, 100.0, 130.0, 50.0),
            slow_at_a_distance(1 << 20),
            row(64 << 20, 80.0, 85.0, 100.0),
        ];
        winners(&mut rows);
        let best: Vec<Method> = rows.iter().map(|r| r.best).collect();
        assert_eq!(
            best,
            [
                Method::Vector,
                Method::Vector,
                Method::RepMovsb,
                Method::Vector,
                Method::NonTemporal
            ],
            "rep movsb wins only where the guard lets it, and does not carry over \
             as a tie to a size where it fails the guard"
        );
        assert_eq!(
            rule_of(&rows),
            Rule {
                rep_movsb: Some(65536),
                rep_movsb_stop: Some(1 << 20),
                non_temporal: Some(64 << 20),
            }
        );
        // Just at the guard it may win; just below it may not.
        let mut r = slow_at_a_distance(16384);
        r.distance.as_mut().unwrap().rep_movsb = measurement(45.0 * REP_MOVSB_GUARD);
        assert!(r.eligible(Method::RepMovsb));
        r.distance.as_mut().unwrap().rep_movsb = measurement(45.0 * REP_MOVSB_GUARD * 0.99);
        assert!(!r.eligible(Method::RepMovsb));
        assert!(r.eligible(Method::Vector) && r.eligible(Method::NonTemporal));
    }

    #[test]
    fn the_rule_follows_the_winners_and_ties_keep_the_method_below() {
        let mut rows = vec![
            row(1024, 100.0, 90.0, 50.0),
            row(8192, 100.0, 101.0, 50.0), // a tie: the vector loop stays
            row(16384, 100.0, 120.0, 50.0),
            row(65536, 100.0, 121.0, 60.0),
            row(1 << 20, 110.0, 100.0, 90.0),
            row(16 << 20, 90.0, 90.0, 100.0),
            row(64 << 20, 80.0, 85.0, 100.0),
        ];
        winners(&mut rows);
        let best: Vec<Method> = rows.iter().map(|r| r.best).collect();
        assert_eq!(best[1], Method::Vector, "a 1 % win is a tie");
        assert_eq!(
            rule_of(&rows),
            Rule {
                rep_movsb: Some(16384),
                rep_movsb_stop: Some(1 << 20),
                non_temporal: Some(16 << 20),
            }
        );
    }

    #[test]
    fn noise_where_the_methods_run_the_same_code_is_no_win() {
        // Zen 4, mcsafe tune: at 256 B (4 vectors) "rep movsb" measured 81.8
        // GB/s against the vector loop's 71.1, the same code, and the tie that
        // followed at 1-2 KiB made a rule "rep movsb from 256".
        let mut same = row(256, 71.1, 81.8, 50.0);
        same.distance = None;
        let mut rows = vec![
            same,
            row(1024, 98.0, 99.0, 97.0),
            row(4096, 100.0, 90.0, 80.0),
        ];
        winners(&mut rows);
        let best: Vec<Method> = rows.iter().map(|r| r.best).collect();
        assert_eq!(best, [Method::Vector; 3]);
        assert_eq!(rule_of(&rows).rep_movsb, None);
    }

    #[test]
    fn a_method_that_never_wins_gives_never() {
        let mut rows = vec![
            row(1024, 100.0, 50.0, 50.0),
            row(1 << 20, 100.0, 99.0, 98.0),
        ];
        winners(&mut rows);
        let rule = rule_of(&rows);
        assert_eq!(
            rule,
            Rule {
                rep_movsb: None,
                rep_movsb_stop: None,
                non_temporal: None
            }
        );
        // Non-temporal stores that win in the middle but lose at the top are no rule.
        let mut rows = vec![
            row(1024, 100.0, 50.0, 50.0),
            row(1 << 20, 100.0, 50.0, 120.0),
            row(64 << 20, 100.0, 50.0, 80.0),
        ];
        winners(&mut rows);
        assert_eq!(rule_of(&rows).non_temporal, None);
    }

    #[test]
    fn sizes_print_as_the_tunables_take_them() {
        assert_eq!(size_text(2112), "2112");
        assert_eq!(size_text(16 << 10), "16K");
        assert_eq!(size_text(64 << 20), "64M");
        assert_eq!(size_text(3 << 30), "3G");
    }
}
