//! The checksum table (issues 10 and 19): mcsafe's CRC32C against the `crc32c` and
//! `crc-fast` crates, and the one-pass copy-and-checksum against a copy
//! followed by a checksum, at sizes from 64 B to 16 MiB, hot and cold, measured
//! side by side (`measure::interleaved`), with the goals checked and printed.
//!
//! `cargo bench --bench crc` runs it alone (`-- --quick` for fewer rounds and
//! smaller cold regions; `MCSAFE_BENCH_CRC_SIZES=64,100` for some sizes only);
//! `cargo bench --bench summary` runs it after the copy tables. Every comparator is called the way users call it: through a
//! function that is not inlined, the result to `black_box`. Before any timing,
//! every comparator's CRC of each size is checked equal to the others (and the
//! copies to their sources).
//!
//! Change the goals here (`GOALS`) and in docs/crc.md together.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use crate::measure::{Measurement, Timer, interleaved};
use crate::workload::{Call, Cold, Hot, Region, Workload};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// The sizes of the table: powers of four from 64 B to 16 MiB, and sizes in
/// between that are no power of two (a block that does not end evenly).
pub const SIZES: &[usize] = &[
    64,
    100,
    256,
    1000,
    4 * KIB,
    9000,
    16 * KIB,
    64 * KIB,
    256 * KIB,
    MIB,
    4 * MIB,
    16 * MIB,
];

/// What is measured: a checksum of `len` bytes at `src`, or a copy to `dst`
/// with or without its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// `mcsafe::crc32c_mc(0, src, len)`.
    McsafeMc,
    /// `mcsafe::crc32c(0, slice)`: the plain checksum of a slice.
    McsafeSlice,
    /// `MappedRegion::crc32c_at(0, offset, len)` over a region of the source.
    McsafeRegion,
    /// The `crc32c` crate: `crc32c::crc32c(slice)`.
    Crc32cCrate,
    /// The `crc-fast` crate: `checksum(CrcAlgorithm::Crc32Iscsi, slice)`.
    CrcFast,
    /// `mcsafe::copy_crc32c_mc(0, dst, src, len)`: copy and checksum in one pass.
    Fused,
    /// `mcsafe::copy_mc(dst, src, len)` alone (no checksum).
    CopyMc,
    /// `copy_mc`, then `crc-fast` over the copy.
    CopyThenCrcFast,
}

impl Checksum {
    /// Every comparator, in the table's column order.
    pub const ALL: [Checksum; 8] = [
        Checksum::McsafeMc,
        Checksum::McsafeSlice,
        Checksum::McsafeRegion,
        Checksum::Crc32cCrate,
        Checksum::CrcFast,
        Checksum::Fused,
        Checksum::CopyMc,
        Checksum::CopyThenCrcFast,
    ];

    /// The column heading.
    pub fn name(self) -> &'static str {
        match self {
            Checksum::McsafeMc => "crc32c_mc",
            Checksum::McsafeSlice => "crc32c (slice)",
            Checksum::McsafeRegion => "crc32c_at",
            Checksum::Crc32cCrate => "crc32c crate",
            Checksum::CrcFast => "crc-fast",
            Checksum::Fused => "copy_crc32c_mc",
            Checksum::CopyMc => "copy_mc",
            Checksum::CopyThenCrcFast => "copy_mc+crc-fast",
        }
    }

    /// Runs `call` once: its CRC (0 for `CopyMc`).
    ///
    /// # Safety
    /// `call.src..+len` is readable ordinary memory inside `region`, and
    /// `call.dst..+len` writable ordinary memory, distinct from it.
    unsafe fn run(self, call: &Call, region: &mcsafe::MappedRegion) -> u32 {
        // SAFETY: in every arm, the caller's contract; the slices are ordinary
        // memory that no one else touches during the call.
        unsafe {
            match self {
                Checksum::McsafeMc => mcsafe_mc(call.src, call.len),
                Checksum::McsafeSlice => mcsafe_slice(slice(call)),
                Checksum::McsafeRegion => mcsafe_region(region, call),
                Checksum::Crc32cCrate => crate_crc32c(slice(call)),
                Checksum::CrcFast => crc_fast(slice(call)),
                Checksum::Fused => mcsafe_fused(call.dst, call.src, call.len),
                Checksum::CopyMc => mcsafe_copy(call.dst, call.src, call.len),
                Checksum::CopyThenCrcFast => copy_then_crc_fast(call.dst, call.src, call.len),
            }
        }
    }

    /// Whether it writes the destination.
    fn copies(self) -> bool {
        matches!(
            self,
            Checksum::Fused | Checksum::CopyMc | Checksum::CopyThenCrcFast
        )
    }
}

/// # Safety
/// `call.src..+len` is readable ordinary memory.
unsafe fn slice<'a>(call: &Call) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(call.src, call.len) }
}

// The comparators as users call them: separate functions, never inlined.

#[inline(never)]
unsafe fn mcsafe_mc(src: *const u8, len: usize) -> u32 {
    // SAFETY: the caller passes ordinary memory.
    match unsafe { mcsafe::crc32c_mc(0, src, len) } {
        Ok(crc) => crc,
        Err(e) => panic!("{e}"),
    }
}

#[inline(never)]
fn mcsafe_slice(data: &[u8]) -> u32 {
    mcsafe::crc32c(0, data)
}

#[inline(never)]
fn mcsafe_region(region: &mcsafe::MappedRegion, call: &Call) -> u32 {
    let offset = (call.src as usize - region.as_ptr() as usize) as u64;
    match region.crc32c_at(0, offset, call.len) {
        Ok(crc) => crc,
        Err(e) => panic!("{e}"),
    }
}

#[inline(never)]
fn crate_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

#[inline(never)]
fn crc_fast(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

#[inline(never)]
unsafe fn mcsafe_fused(dst: *mut u8, src: *const u8, len: usize) -> u32 {
    // SAFETY: the caller passes ordinary, distinct memory.
    match unsafe { mcsafe::copy_crc32c_mc(0, dst, src, len) } {
        Ok(crc) => crc,
        Err(e) => panic!("{e}"),
    }
}

#[inline(never)]
unsafe fn mcsafe_copy(dst: *mut u8, src: *const u8, len: usize) -> u32 {
    // SAFETY: as above.
    if let Err(e) = unsafe { mcsafe::copy_mc(dst, src, len) } {
        panic!("{e}");
    }
    0
}

#[inline(never)]
unsafe fn copy_then_crc_fast(dst: *mut u8, src: *const u8, len: usize) -> u32 {
    // SAFETY: as above; the copy is ordinary memory once written.
    unsafe {
        if let Err(e) = mcsafe::copy_mc(dst, src, len) {
            panic!("{e}");
        }
        crc_fast(std::slice::from_raw_parts(dst, len))
    }
}

/// One timed pass of `checksum` over `calls`, in this thread's CPU time: on a
/// machine shared with other work, the time slices the scheduler gives to
/// other processes in the middle of a batch do not count (wall time would
/// charge them to whichever comparator was running). Cache and SMT
/// interference still do; the medians take care of the rest.
///
/// # Safety
/// As for [`Checksum::run`], for every call.
unsafe fn time(checksum: Checksum, calls: &[Call], region: &mcsafe::MappedRegion) -> Duration {
    let start = thread_cpu_time();
    for call in calls {
        // SAFETY: the caller's contract.
        black_box(unsafe { checksum.run(black_box(call), region) });
    }
    thread_cpu_time().saturating_sub(start)
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to fill.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Rounds per measurement (medians of this many).
    pub rounds: usize,
    /// Bytes of each cold region (source and destination), walked through so
    /// that no call finds its bytes in the cache (the last-level cache here is
    /// 32 MiB; other machines' may be larger: see summary.rs).
    pub cold_region: usize,
}

impl Options {
    /// 7 rounds, 1 GiB cold regions.
    pub fn full() -> Options {
        Options {
            rounds: 7,
            cold_region: 1 << 30,
        }
    }

    /// 3 rounds, 256 MiB cold regions: a quick look while developing.
    pub fn quick() -> Options {
        Options {
            rounds: 3,
            cold_region: 256 << 20,
        }
    }
}

/// One row: a size and every comparator's result there.
pub struct Row {
    /// Bytes per call.
    pub size: usize,
    /// In `Checksum::ALL` order.
    pub results: Vec<Measurement>,
}

/// One table: hot or cold.
pub struct Table {
    /// "hot" or "cold".
    pub condition: &'static str,
    /// By size.
    pub rows: Vec<Row>,
}

impl Row {
    fn gb(&self, c: Checksum) -> f64 {
        let i = Checksum::ALL.iter().position(|&x| x == c).unwrap();
        self.results[i].gb_per_s
    }
}

/// A speed goal of issue 19 (issue 10's, raised): at every size from `from` on, `ours` over
/// `theirs` (each the slowest or fastest of several comparators) at least
/// `at_least` (or, if `strictly`, more than it).
pub struct Goal {
    /// What it says.
    pub text: &'static str,
    /// The smallest size it applies to.
    pub from: usize,
    /// The ratio's numerator: the slowest of these.
    pub ours: &'static [Checksum],
    /// The denominator: the fastest (`fastest`) or the slowest of these.
    pub theirs: &'static [Checksum],
    /// Whether the denominator is the fastest of `theirs` (else the slowest).
    pub fastest: bool,
    /// The bound.
    pub at_least: f64,
    /// Whether the ratio must exceed the bound (else reach it).
    pub strictly: bool,
}

/// The goals, as issue 19 states them.
pub const GOALS: &[Goal] = &[
    Goal {
        text: "1: crc32c_mc, crc32c and crc32c_at >= 0.95x the faster of the crc32c crate and crc-fast",
        from: 64,
        ours: &[
            Checksum::McsafeMc,
            Checksum::McsafeSlice,
            Checksum::McsafeRegion,
        ],
        theirs: &[Checksum::Crc32cCrate, Checksum::CrcFast],
        fastest: true,
        at_least: 0.95,
        strictly: false,
    },
    Goal {
        text: "3a: copy_crc32c_mc >= 1.1x copy_mc then crc-fast, from 4 KiB",
        from: 4 * KIB,
        ours: &[Checksum::Fused],
        theirs: &[Checksum::CopyThenCrcFast],
        fastest: true,
        at_least: 1.1,
        strictly: false,
    },
    Goal {
        text: "3b: copy_crc32c_mc >= 0.8x the slower of copy_mc and crc32c_mc, from 4 KiB",
        from: 4 * KIB,
        ours: &[Checksum::Fused],
        theirs: &[Checksum::CopyMc, Checksum::McsafeMc],
        fastest: false,
        at_least: 0.8,
        strictly: false,
    },
];

impl Goal {
    /// The ratio in one row.
    fn ratio(&self, row: &Row) -> f64 {
        let ours = self
            .ours
            .iter()
            .map(|&c| row.gb(c))
            .fold(f64::MAX, f64::min);
        let theirs = self.theirs.iter().map(|&c| row.gb(c));
        let theirs = if self.fastest {
            theirs.fold(0.0, f64::max)
        } else {
            theirs.fold(f64::MAX, f64::min)
        };
        ours / theirs
    }

    /// The worst ratio over every table, and where.
    fn worst(&self, tables: &[Table]) -> (f64, String) {
        tables
            .iter()
            .flat_map(|t| t.rows.iter().map(move |r| (t.condition, r)))
            .filter(|(_, r)| r.size >= self.from)
            .map(|(condition, r)| (self.ratio(r), format!("{condition}, {}", size_name(r.size))))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::NAN, "no size".into()))
    }

    fn met(&self, ratio: f64) -> bool {
        if self.strictly {
            ratio > self.at_least
        } else {
            ratio >= self.at_least
        }
    }
}

/// Everything one run measured.
pub struct Report {
    /// Machine, options, paths.
    pub header: String,
    /// Hot, then cold.
    pub tables: Vec<Table>,
}

impl Report {
    /// Whether every goal was met.
    pub fn all_met(&self) -> bool {
        GOALS.iter().all(|g| g.met(g.worst(&self.tables).0))
    }

    /// The tables (Markdown), the ratios of each goal per row, and the goals'
    /// verdicts with their worst ratios.
    pub fn render(&self) -> String {
        let mut out = format!("\n## CRC32C\n\n{}\n", self.header);
        for table in &self.tables {
            let _ = write!(out, "\n### {}, GB/s\n\n| size |", table.condition);
            for c in Checksum::ALL {
                let _ = write!(out, " {} |", c.name());
            }
            for (i, _) in GOALS.iter().enumerate() {
                let _ = write!(out, " goal {} |", goal_id(i));
            }
            out.push_str("\n|---:|");
            out.push_str(&"---:|".repeat(Checksum::ALL.len() + GOALS.len()));
            out.push('\n');
            for row in &table.rows {
                let _ = write!(out, "| {} |", size_name(row.size));
                for m in &row.results {
                    let _ = write!(out, " {:.1} |", m.gb_per_s);
                }
                for goal in GOALS {
                    if row.size >= goal.from {
                        let _ = write!(out, " {:.2} |", goal.ratio(row));
                    } else {
                        out.push_str(" |");
                    }
                }
                out.push('\n');
            }
        }
        out.push_str("\nGoals (ratio columns above; worst over hot and cold):\n");
        for goal in GOALS {
            let (worst, at) = goal.worst(&self.tables);
            let _ = writeln!(
                out,
                "- goal {}: {} (worst {worst:.2} at {at})",
                goal.text,
                if goal.met(worst) { "MET" } else { "NOT MET" }
            );
        }
        out
    }
}

fn goal_id(i: usize) -> &'static str {
    GOALS[i].text.split(':').next().unwrap_or("?")
}

fn size_name(size: usize) -> String {
    if size >= MIB && size.is_multiple_of(MIB) {
        format!("{} MiB", size / MIB)
    } else if size >= 4 * KIB && size.is_multiple_of(KIB) {
        format!("{} KiB", size / KIB)
    } else {
        format!("{size} B")
    }
}

/// Checks every comparator against the others on the first call of
/// `workload`: one CRC for all, and every copy equal to its source.
///
/// # Safety
/// As for [`Checksum::run`].
unsafe fn check_equal(workload: &mut dyn Workload, region: &mcsafe::MappedRegion) {
    let call = workload.batch(1)[0];
    // SAFETY: the caller's contract.
    let want = unsafe { Checksum::Crc32cCrate.run(&call, region) };
    for c in Checksum::ALL {
        // SAFETY: as above; the destination is written and then read back.
        unsafe {
            std::ptr::write_bytes(call.dst, !*call.src, call.len);
            let got = c.run(&call, region);
            if c != Checksum::CopyMc {
                assert_eq!(got, want, "{} of {} bytes", c.name(), call.len);
            }
            if c.copies() {
                let copy = std::slice::from_raw_parts(call.dst, call.len);
                assert!(
                    copy == slice(&call),
                    "{} of {} bytes: the copy differs",
                    c.name(),
                    call.len
                );
            }
        }
    }
}

/// Fills a region with bytes that have no short period (so that a checksum
/// that skipped or repeated a block would differ).
fn fill_pattern(region: &Region) {
    let mut x = 0x9e37_79b9u32;
    // SAFETY: the region's own bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(region.ptr(), region.len()) };
    for b in bytes {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
}

/// The sizes to measure: [`SIZES`], or those listed in `MCSAFE_BENCH_CRC_SIZES`
/// (bytes, comma-separated), to look at a few while developing.
fn sizes() -> Vec<usize> {
    match std::env::var("MCSAFE_BENCH_CRC_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("MCSAFE_BENCH_CRC_SIZES: sizes in bytes")
            })
            .collect(),
        Err(_) => SIZES.to_vec(),
    }
}

/// The hot and cold source and destination regions of a run over `sizes` (the
/// sources filled with [`fill_pattern`]): hot ones of the largest size, cold
/// ones of 8 times that and at least `options.cold_region`.
struct Regions {
    hot: (Region, Region),
    cold: (Region, Region),
    cold_len: usize,
}

impl Regions {
    fn new(sizes: &[usize], options: Options) -> Regions {
        let largest = sizes.iter().max().copied().unwrap_or(0);
        let cold_len = (8 * largest).max(options.cold_region);
        let regions = Regions {
            hot: (
                Region::new(largest + 2 * 4096),
                Region::new(largest + 2 * 4096),
            ),
            cold: (Region::new(cold_len), Region::new(cold_len)),
            cold_len,
        };
        fill_pattern(&regions.hot.0);
        fill_pattern(&regions.cold.0);
        regions
    }

    /// "hot" and "cold", each with its source and destination.
    fn conditions(&self) -> [(&'static str, &Region, &Region); 2] {
        [
            ("hot", &self.hot.0, &self.hot.1),
            ("cold", &self.cold.0, &self.cold.1),
        ]
    }
}

/// The calls of one size in one condition: the same buffers each call (hot),
/// or a walk through the regions (cold).
fn workload<'a>(
    condition: &str,
    src: &'a Region,
    dst: &'a Region,
    size: usize,
) -> Box<dyn Workload + 'a> {
    if condition == "cold" {
        Box::new(Cold::new(src, dst, &[size], 0, 0))
    } else {
        Box::new(Hot::new(src, dst, &[size], 0, 0))
    }
}

/// Runs the table; prints progress on stderr.
pub fn run(options: Options) -> Report {
    mcsafe::install().expect("install mcsafe's handler");
    let sizes = sizes();
    let regions = Regions::new(&sizes, options);
    let cold_len = regions.cold_len;
    let header = format!(
        "{}; crc32c_mc path: {:?} (copy_crc32c_mc: its one-pass twin, non-temporal \
         stores from {} KiB where it has them); copy strategy {}; medians of {} interleaved rounds, \
         each batch after an untimed warm-up, timed in the thread's CPU time; cold: a walk \
         through {} MiB regions; src and dst page-aligned; GB/s = 10^9 bytes/s",
        cpu(),
        mcsafe::internals::CrcPath::current(),
        mcsafe::internals::thresholds().non_temporal >> 10,
        mcsafe::Strategy::current(),
        options.rounds,
        cold_len >> 20,
    );
    let mut tables = Vec::new();
    for (condition, src, dst) in regions.conditions() {
        // SAFETY: the region outlives every call and is only read through mcsafe
        // and the slices of the comparators (ordinary memory: it cannot fault).
        let region = unsafe { mcsafe::MappedRegion::from_raw_parts(src.ptr(), src.len()) };
        let mut rows = Vec::new();
        for &size in &sizes {
            eprintln!("measuring crc32c, {condition}: {}", size_name(size));
            let mut calls = workload(condition, src, dst, size);
            let workload: &mut dyn Workload = &mut *calls;
            // SAFETY: the calls stay inside the two distinct regions.
            unsafe { check_equal(workload, &region) };
            let region = &region;
            let timers: Vec<Timer<'_>> = Checksum::ALL
                .iter()
                // SAFETY: as above.
                .map(|&c| Box::new(move |calls: &[Call]| unsafe { time(c, calls, region) }) as _)
                .collect();
            // SAFETY: as above.
            let calibrate = |calls: &[Call]| unsafe { time(Checksum::Crc32cCrate, calls, region) };
            let results = interleaved(&timers, &calibrate, workload, options.rounds);
            rows.push(Row { size, results });
        }
        tables.push(Table { condition, rows });
    }
    Report { header, tables }
}

/// The CPU's name, family and model (/proc/cpuinfo): a VM's name may say little
/// ("Intel(R) Xeon(R) Processor"), the family and model say which one.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => format!("{name}, family {family} model {model}"),
        (Some(name), ..) => name,
        _ => "unknown CPU".into(),
    }
}

/// `crc32c_mc` and `copy_crc32c_mc` along each path this CPU can take, forced
/// (`internals::crc32c_mc_with`, `copy_crc32c_mc_with`), beside crc-fast and
/// `copy_mc` then crc-fast: the facts behind the rule that picks the path
/// (cpu.rs, docs/crc.md). `cargo bench --bench crc -- --paths`; the same
/// workloads, rounds and timing as [`run`].
pub fn run_paths(options: Options) -> String {
    use mcsafe::internals::{COPY_CRC_BLOCKS, CRC_BLOCK, CrcPath};
    mcsafe::install().expect("install mcsafe's handler");
    // Each path as this CPU runs it, and fold512 also with the other prefetch
    // setting (cpu.rs, fold512_prefetch: on for Intel, off for AMD).
    let prefetch = mcsafe::internals::fold512_prefetch();
    let mut paths: Vec<(CrcPath, bool)> = CrcPath::ALL
        .into_iter()
        .filter(|p| p.is_available() && *p != CrcPath::Copies)
        .map(|p| (p, prefetch))
        .collect();
    if CrcPath::Fold512.is_available() {
        paths.insert(1, (CrcPath::Fold512, !prefetch));
    }
    let label = |(p, on): (CrcPath, bool)| {
        if p == CrcPath::Fold512 {
            format!("{p:?} prefetch {}", if on { "on" } else { "off" })
        } else {
            format!("{p:?}")
        }
    };
    let sizes = sizes();
    let regions = Regions::new(&sizes, options);
    let cold_len = regions.cold_len;
    let mut out = format!(
        "\n## CRC32C by path\n\n{}; each path forced; copy strategy {}; non-temporal stores from \
         {} KiB; medians of {} interleaved rounds; cold: a walk through {} MiB regions; GB/s\n",
        cpu(),
        mcsafe::Strategy::current(),
        mcsafe::internals::thresholds().non_temporal >> 10,
        options.rounds,
        cold_len >> 20
    );
    for (condition, src, dst) in regions.conditions() {
        let _ = write!(out, "\n### {condition}\n\n| size |");
        for &p in &paths {
            let _ = write!(out, " crc32c_mc {} |", label(p));
        }
        out.push_str(" crc-fast |");
        for &p in &paths {
            let _ = write!(out, " copy_crc32c_mc {} |", label(p));
        }
        out.push_str(" copy_mc+crc-fast |\n|---:|");
        out.push_str(&"---:|".repeat(2 * paths.len() + 2));
        out.push('\n');
        for &size in &sizes {
            eprintln!("measuring crc32c paths, {condition}: {}", size_name(size));
            let mut calls = workload(condition, src, dst, size);
            let workload: &mut dyn Workload = &mut *calls;
            let cpu_time = |f: &dyn Fn(&Call) -> u32, calls: &[Call]| {
                let start = thread_cpu_time();
                for call in calls {
                    black_box(f(black_box(call)));
                }
                thread_cpu_time().saturating_sub(start)
            };
            let mut timers: Vec<Timer<'_>> = Vec::new();
            for &(p, on) in &paths {
                timers.push(Box::new(move |calls: &[Call]| {
                    mcsafe::internals::set_fold512_prefetch(on);
                    // SAFETY: the calls stay inside the regions, ordinary memory.
                    let f = |c: &Call| match unsafe {
                        mcsafe::internals::crc32c_mc_with(p, CRC_BLOCK, 0, c.src, c.len)
                    } {
                        Ok(crc) => crc,
                        Err(e) => panic!("{e}"),
                    };
                    cpu_time(&f, calls)
                }));
            }
            timers.push(Box::new(move |calls: &[Call]| {
                // SAFETY: as above: `c.src..+len` is ordinary readable memory,
                // no one writes it while the slice lives.
                cpu_time(&|c: &Call| crc_fast(unsafe { slice(c) }), calls)
            }));
            for &(p, on) in &paths {
                timers.push(Box::new(move |calls: &[Call]| {
                    mcsafe::internals::set_fold512_prefetch(on);
                    // SAFETY: as above; source and destination are distinct.
                    let f = |c: &Call| match unsafe {
                        mcsafe::internals::copy_crc32c_mc_with(
                            p,
                            COPY_CRC_BLOCKS,
                            0,
                            c.dst,
                            c.src,
                            c.len,
                        )
                    } {
                        Ok(crc) => crc,
                        Err(e) => panic!("{e}"),
                    };
                    cpu_time(&f, calls)
                }));
            }
            timers.push(Box::new(move |calls: &[Call]| {
                cpu_time(
                    // SAFETY: as above; source and destination are distinct.
                    &|c: &Call| unsafe { copy_then_crc_fast(c.dst, c.src, c.len) },
                    calls,
                )
            }));
            // SAFETY: as for the crc-fast timer above.
            let calibrate =
                |calls: &[Call]| cpu_time(&|c: &Call| crc_fast(unsafe { slice(c) }), calls);
            let results = interleaved(&timers, &calibrate, workload, options.rounds);
            let _ = write!(out, "| {} |", size_name(size));
            for m in results {
                let _ = write!(out, " {:.1} |", m.gb_per_s);
            }
            out.push('\n');
        }
    }
    mcsafe::internals::set_fold512_prefetch(prefetch);
    out
}
