//! The summary: every size class, hot and cold, aligned and misaligned, the
//! randomized mix, `pread`, large copies and the fault path, measured side by
//! side in one run; a table on stdout, the targets checked, and a plot.

use std::fmt::Write as _;
use std::path::Path;

use mcsafe::Strategy;

use crate::comparators::{Comparator, Env, Shape, install_guard_handler};
use crate::measure::{Measurement, side_by_side};
use crate::workload::{Cold, HalfLost, Hot, HotFile, Randomized, Region, Workload};

/// A size class: its name and the sizes its calls cycle through.
pub struct Class {
    /// Shown in the table.
    pub name: &'static str,
    /// The sizes measured, in turn.
    pub sizes: &'static [usize],
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// The size classes of the table, each named by its range; the sizes include
/// the routines' class boundaries (and the `rep movsb` threshold, 2112).
pub const CLASSES: &[Class] = &[
    Class {
        name: "1-16",
        sizes: &[1, 3, 7, 8, 12, 16],
    },
    Class {
        name: "17-32",
        sizes: &[17, 24, 31, 32],
    },
    Class {
        name: "33-64",
        sizes: &[33, 48, 63, 64],
    },
    Class {
        name: "65-128",
        sizes: &[65, 96, 127, 128],
    },
    Class {
        name: "129-256",
        sizes: &[129, 192, 255, 256],
    },
    Class {
        name: "257-512",
        sizes: &[257, 384, 511, 512],
    },
    Class {
        name: "513-2K",
        sizes: &[513, 1024, 1500, 2048],
    },
    Class {
        name: "2K-8K",
        sizes: &[2111, 2112, 4096, 8192],
    },
    Class {
        name: "8K-64K",
        sizes: &[8193, 16 * KIB, 32 * KIB, 64 * KIB],
    },
    Class {
        name: "64K-1M",
        sizes: &[64 * KIB + 1, 256 * KIB, MIB],
    },
    Class {
        name: "1M-16M",
        sizes: &[MIB + 1, 4 * MIB, 16 * MIB],
    },
    Class {
        name: "16M-64M",
        sizes: &[16 * MIB + 1, 32 * MIB, 64 * MIB],
    },
    Class {
        name: "64M-256M",
        sizes: &[64 * MIB + 1, 128 * MIB, 256 * MIB],
    },
];

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Rounds per measurement (medians of this many).
    pub rounds: usize,
    /// Skip classes above this size (to keep a quick run quick).
    pub max_size: usize,
    /// Bytes of each cold region (source and destination): the walk must
    /// outrun the last-level cache for "cold" to mean cold. [`cold_region_for`]
    /// sizes it from the largest copy, the cache and the memory there is.
    pub cold_region: usize,
    /// Only the four size tables: no randomized mix, `pread`, sigsetjmp guard,
    /// large copies or fault path (the layout runs of `cargo xtask bench-layout`).
    pub sizes_only: bool,
}

impl Options {
    /// The full run: 9 rounds, every class up to 256 MiB.
    pub fn full() -> Options {
        Options {
            rounds: 9,
            max_size: usize::MAX,
            cold_region: cold_region_for(256 * MIB),
            sizes_only: false,
        }
    }

    /// A quick look: 5 rounds, classes up to 16 MiB, cold regions of at most
    /// [`QUICK_COLD_CAP`] each (a peak of about 1.2 GB: `mcsafe bench --quick`
    /// must stay under 1.5 GB).
    pub fn quick() -> Options {
        Options {
            rounds: 5,
            max_size: 16 * MIB,
            cold_region: cold_region_for(16 * MIB).min(QUICK_COLD_CAP),
            sizes_only: false,
        }
    }

    /// The small-size table alone: the classes up to 8 KiB, every call shape,
    /// hot and cold, aligned and misaligned (for comparing code layouts).
    pub fn small() -> Options {
        Options {
            rounds: 9,
            max_size: 8 * KIB,
            cold_region: cold_region_for(8 * KIB),
            sizes_only: true,
        }
    }
}

/// The quick run's cold regions at most: 16 times a 32 MiB L3, where 4 times
/// the L3 a VM reports (the host's 256 MiB on the Zen 3 guest) came to 1 GiB
/// each and a 2.2 GB peak.
pub const QUICK_COLD_CAP: usize = 512 * MIB;

/// Bytes of each cold region for copies of up to `largest` bytes: 8 times the
/// largest copy and 4 times the last-level cache, so that no call finds its
/// bytes cached (with 1 GiB regions, comparators measured in turn found each
/// other's bytes in a Sapphire Rapids guest's 480 MiB reported L3), but at most
/// a quarter of the memory available, so that the run never swaps or dies.
pub fn cold_region_for(largest: usize) -> usize {
    let llc = last_level_cache().unwrap_or(64 * MIB);
    let wanted = (8 * largest).max(4 * llc).max(64 * MIB);
    let cap = available_memory().map_or(usize::MAX, |m| m / 4);
    wanted.min(cap).max(2 * largest + 8 * 4096)
}

/// The last-level cache's size, as glibc reports it.
fn last_level_cache() -> Option<usize> {
    // SAFETY: sysconf has no preconditions.
    let l3 = unsafe { libc::sysconf(libc::_SC_LEVEL3_CACHE_SIZE) };
    // SAFETY: as above.
    let l2 = unsafe { libc::sysconf(libc::_SC_LEVEL2_CACHE_SIZE) };
    [l3, l2].into_iter().find(|&n| n > 0).map(|n| n as usize)
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One row of a table: a class (or a label) and each comparator's measurement.
pub struct Row {
    /// The class or label.
    pub label: String,
    /// Mean bytes per call.
    pub bytes: f64,
    /// In the order of the table's comparators.
    pub results: Vec<Measurement>,
}

/// A table: one condition, several rows, the same comparators in each.
pub struct Table {
    /// What was measured.
    pub title: String,
    /// Column order.
    pub comparators: Vec<Comparator>,
    /// Rows.
    pub rows: Vec<Row>,
}

impl Table {
    fn index(&self, c: Comparator) -> Option<usize> {
        self.comparators.iter().position(|&x| x == c)
    }

    /// mcsafe's throughput over glibc memcpy's in `shape`, per row (`None` if
    /// the table does not measure that shape).
    pub fn ratios(&self, shape: Shape) -> Option<Vec<f64>> {
        let (mcsafe, memcpy) = shape.pair();
        let (m, g) = (self.index(mcsafe)?, self.index(memcpy)?);
        Some(
            self.rows
                .iter()
                .map(|r| r.results[m].gb_per_s / r.results[g].gb_per_s)
                .collect(),
        )
    }

    /// The shapes this table measures.
    fn shapes(&self) -> Vec<Shape> {
        Shape::ALL
            .into_iter()
            .filter(|s| self.ratios(*s).is_some())
            .collect()
    }

    /// Renders as a Markdown table: the ratio of each call shape, then GB/s per
    /// comparator.
    pub fn render(&self) -> String {
        let shapes = self.shapes();
        let mut out = format!("\n### {}\n\n| size class |", self.title);
        for shape in &shapes {
            let _ = write!(out, " mcsafe/memcpy, {} |", shape.name());
        }
        for c in &self.comparators {
            let _ = write!(out, " {} GB/s |", c.name());
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(shapes.len() + self.comparators.len()));
        out.push('\n');
        let ratios: Vec<Vec<f64>> = shapes.iter().filter_map(|s| self.ratios(*s)).collect();
        for (i, row) in self.rows.iter().enumerate() {
            let _ = write!(out, "| {} |", row.label);
            for r in &ratios {
                let _ = write!(out, " {:.2} |", r[i]);
            }
            for m in &row.results {
                let _ = write!(out, " {:.2} |", m.gb_per_s);
            }
            out.push('\n');
        }
        out
    }
}

/// Everything one run measured.
pub struct Report {
    /// The machine and the configuration.
    pub header: String,
    /// Size-class tables (hot/cold x aligned/misaligned), then the others.
    pub tables: Vec<Table>,
    /// Nanoseconds per faulting call: mcsafe, then the sigsetjmp guard (not
    /// measured with [`Options::sizes_only`]).
    pub fault_ns: Option<(f64, f64)>,
    /// The randomized mix's shape: share of calls <= 128 B, share of bytes in
    /// calls > 1 KiB.
    pub random_shape: Option<(f64, f64)>,
}

/// The comparators of the size tables. Those that make a system call per copy
/// (the sigsetjmp guard, `pread`) get their own tables, measured after these:
/// their system calls slow whatever runs next for a long time, warm-up or not
/// (seen here: with the guard in the rotation, memcpy and mcsafe both ran at
/// half speed for small copies).
fn size_comparators() -> Vec<Comparator> {
    let mut v: Vec<Comparator> = Shape::ALL
        .into_iter()
        .flat_map(|s| {
            let (mcsafe, memcpy) = s.pair();
            [mcsafe, memcpy]
        })
        .collect();
    v.push(Comparator::CopyNonoverlapping);
    v.extend(Strategy::available().into_iter().map(Comparator::Strategy));
    v
}

/// The four size tables' titles, with the short names used in target lists.
const SIZE_TABLES: [(&str, &str, bool, (usize, usize)); 4] = [
    ("hot, aligned (src+0, dst+0)", "hot aligned", false, (0, 0)),
    (
        "hot, misaligned (src+1, dst+63)",
        "hot misaligned",
        false,
        (1, 63),
    ),
    ("cold, aligned (src+0, dst+0)", "cold aligned", true, (0, 0)),
    (
        "cold, misaligned (src+1, dst+63)",
        "cold misaligned",
        true,
        (1, 63),
    ),
];

/// The CPU, the CPUs this process may run on, and glibc's version: the first
/// line of every report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} logical CPUs allowed to this process, glibc {glibc}")
}

unsafe extern "C" {
    fn gnu_get_libc_version() -> *const std::ffi::c_char;
}

/// Runs every measurement; prints progress on stderr.
pub fn run(options: Options) -> Report {
    install_guard_handler();
    mcsafe::install().expect("install mcsafe's handler");
    let header = format!(
        "{}\nmcsafe strategy {} (available: {}); {}\n{}\n\
         medians of {} interleaved rounds, each batch after an untimed warm-up, timed in the \
         thread's CPU time; cold regions {} MiB each; GB/s = 10^9 bytes/s; mcsafe/memcpy = \
         throughput ratio, each call shape against memcpy called the same way",
        machine(),
        Strategy::current(),
        Strategy::available()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        mcsafe::dispatch().rule,
        mcsafe::dispatch().thresholds_line(),
        options.rounds,
        options.cold_region >> 20,
    );
    let env = Env::new();
    let comparators = size_comparators();
    let classes: Vec<&Class> = CLASSES
        .iter()
        .filter(|c| c.sizes.iter().all(|&s| s <= options.max_size))
        .collect();
    let largest = classes
        .iter()
        .flat_map(|c| c.sizes)
        .max()
        .copied()
        .unwrap_or(0);

    let hot_src = Region::new(largest + 2 * 4096);
    let hot_dst = Region::new(largest + 2 * 4096);
    let cold_src = Region::new(options.cold_region);
    let cold_dst = Region::new(options.cold_region);

    let mut tables = Vec::new();
    for (title, _, cold, (src_off, dst_off)) in SIZE_TABLES {
        let mut rows = Vec::new();
        for class in &classes {
            eprintln!("measuring {title}: {}", class.name);
            let mut hot;
            let mut walk;
            let workload: &mut dyn Workload = if cold {
                walk = Cold::new(&cold_src, &cold_dst, class.sizes, src_off, dst_off);
                &mut walk
            } else {
                hot = Hot::new(&hot_src, &hot_dst, class.sizes, src_off, dst_off);
                &mut hot
            };
            let bytes = workload.bytes_per_call();
            // SAFETY: the workloads' calls stay inside their distinct regions.
            let results = unsafe { side_by_side(&comparators, workload, &env, options.rounds) };
            rows.push(Row {
                label: class.name.into(),
                bytes,
                results,
            });
        }
        tables.push(Table {
            title: title.into(),
            comparators: comparators.clone(),
            rows,
        });
    }

    if options.sizes_only {
        return Report {
            header,
            tables,
            fault_ns: None,
            random_shape: None,
        };
    }

    // The randomized mix, in hot 4 MiB regions.
    eprintln!("measuring the randomized mix");
    let mix_src = Region::new(4 * MIB);
    let mix_dst = Region::new(4 * MIB);
    let mut mix = Randomized::new(&mix_src, &mix_dst, 1 << 16, 0x6d63_7361_6665);
    let random_shape = mix.shape(128, KIB);
    let bytes = mix.bytes_per_call();
    // SAFETY: as above.
    let results = unsafe { side_by_side(&comparators, &mut mix, &env, options.rounds) };
    tables.push(Table {
        title: format!(
            "randomized mix ({:.0}% of calls <= 128 B, {:.0}% of bytes in calls > 1 KiB, random offsets)",
            100.0 * random_shape.0,
            100.0 * random_shape.1
        ),
        comparators: comparators.clone(),
        rows: vec![Row { label: "mix".into(), bytes, results }],
    });

    // pread(2) from a page-cache-hot file against copies out of its mapping.
    let file = HotFile::new(MIB);
    let file_dst = Region::new(MIB);
    let file_env = Env {
        file: Some((file.fd(), file.map().0)),
        ..env
    };
    let pread_cmp = vec![Comparator::Mcsafe, Comparator::Memcpy, Comparator::Pread];
    let mut rows = Vec::new();
    for size in [64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB] {
        eprintln!("measuring pread: {size}");
        let mut w = Hot::from_file(&file, &file_dst, &[size]);
        // SAFETY: sources lie in the file's mapping, destinations in file_dst.
        let results = unsafe { side_by_side(&pread_cmp, &mut w, &file_env, options.rounds) };
        rows.push(Row {
            label: bytes_label(size),
            bytes: size as f64,
            results,
        });
    }
    tables.push(Table {
        title: "page-cache-hot file: copy out of its mapping vs pread(2)".into(),
        comparators: pread_cmp,
        rows,
    });

    // The sigsetjmp guard: what surviving SIGBUS costs people today.
    let guard_cmp = vec![
        Comparator::Mcsafe,
        Comparator::Memcpy,
        Comparator::SigsetjmpGuard,
    ];
    let mut rows = Vec::new();
    for class in classes
        .iter()
        .filter(|c| c.sizes.iter().all(|&s| s <= 64 * KIB))
    {
        eprintln!("measuring the sigsetjmp guard: {}", class.name);
        let mut w = Hot::new(&hot_src, &hot_dst, class.sizes, 0, 0);
        // SAFETY: as above.
        let results = unsafe { side_by_side(&guard_cmp, &mut w, &env, options.rounds) };
        rows.push(Row {
            label: class.name.into(),
            bytes: w.bytes_per_call(),
            results,
        });
    }
    tables.push(Table {
        title: "hot, aligned, with the sigsetjmp guard (sigsetjmp(env, 1) + memcpy per copy)"
            .into(),
        comparators: guard_cmp,
        rows,
    });

    // Large copies against a plain non-temporal loop, cold and hot: which of
    // memcpy and the loop is better depends on whether the bytes are cached.
    if options.max_size >= 256 * MIB && Comparator::NonTemporalLoop.is_available() {
        let mut large_cmp = vec![
            Comparator::Mcsafe,
            Comparator::Memcpy,
            Comparator::NonTemporalLoop,
        ];
        // The avx512 routine's other non-temporal loop, beside the one in force.
        if Comparator::McsafeOtherNtShape.is_available() {
            large_cmp.push(Comparator::McsafeOtherNtShape);
        }
        for cold in [true, false] {
            let mut rows = Vec::new();
            for size in [64 * MIB, 128 * MIB, 256 * MIB] {
                let temperature = if cold { "cold" } else { "hot" };
                eprintln!(
                    "measuring large copies ({temperature}): {}",
                    bytes_label(size)
                );
                let mut walk;
                let mut hot;
                let w: &mut dyn Workload = if cold {
                    walk = Cold::new(&cold_src, &cold_dst, &[size], 0, 0);
                    &mut walk
                } else {
                    hot = Hot::new(&hot_src, &hot_dst, &[size], 0, 0);
                    &mut hot
                };
                // SAFETY: as above.
                let results = unsafe { side_by_side(&large_cmp, w, &env, options.rounds) };
                rows.push(Row {
                    label: bytes_label(size),
                    bytes: size as f64,
                    results,
                });
            }
            tables.push(Table {
                title: format!(
                    "large copies, {}: memcpy, a plain non-temporal loop, and mcsafe's \
                     other avx512 non-temporal loop shape where it has one",
                    if cold { "cold" } else { "hot" }
                ),
                comparators: large_cmp.clone(),
                rows,
            });
        }
    }

    eprintln!("measuring the fault path");
    let fault_ns = fault_path();
    Report {
        header,
        tables,
        fault_ns: Some(fault_ns),
        random_shape: Some(random_shape),
    }
}

fn bytes_label(size: usize) -> String {
    match size {
        s if s >= MIB && s % MIB == 0 => format!("{} MiB", s / MIB),
        s if s >= KIB && s % KIB == 0 => format!("{} KiB", s / KIB),
        s => format!("{s} B"),
    }
}

/// Nanoseconds per faulting copy: a 4 KiB copy whose source loses its second
/// half (a truncated memfd), through mcsafe and through the sigsetjmp guard.
fn fault_path() -> (f64, f64) {
    let lost = HalfLost::new();
    let half = lost.source();
    let mut dst = vec![0u8; 4096];
    let n = 20_000;
    let ours = crate::lossy::faulting_copy_mc_ns(&lost, &mut dst, n);
    let start = crate::comparators::thread_time();
    for _ in 0..n {
        assert!(
            // SAFETY: `dst` is a live Vec of 4096 bytes and `half` HalfLost's
            // 4 KiB source, mapped, its second half raising SIGBUS, which mcsafe
            // passes on to the guard's handler (installed first, in `run`); this
            // thread alone uses the guard.
            unsafe { crate::comparators::guarded_memcpy(dst.as_mut_ptr(), half, 4096) }.is_err()
        );
    }
    let guard = (crate::comparators::thread_time() - start).as_secs_f64() * 1e9 / n as f64;
    (ours, guard)
}

impl Report {
    /// The tables, the fault path and the targets, as Markdown.
    pub fn render(&self) -> String {
        let mut out = format!("## mcsafe benchmark summary\n\n{}\n", self.header);
        for t in &self.tables {
            out.push_str(&t.render());
        }
        if let Some((ours, guard)) = self.fault_ns {
            let _ = write!(
                out,
                "\n### fault path\n\nfaulting 4 KiB copy (source loses its second half): mcsafe \
                 {ours:.0} ns per call, sigsetjmp guard {guard:.0} ns per call\n"
            );
        }
        out.push_str("\n### nanoseconds per call, each call shape (hot, aligned)\n\n");
        out.push_str(&self.wrapper_cost());
        out.push_str("\n### targets\n\n");
        for (ok, text) in self.targets() {
            let _ = writeln!(out, "- [{}] {text}", if ok { "x" } else { " " });
        }
        out
    }

    /// The four size tables with their short names.
    fn size_tables(&self) -> impl Iterator<Item = (&'static str, &Table)> {
        SIZE_TABLES
            .iter()
            .map(|t| t.1)
            .zip(self.tables.iter().take(SIZE_TABLES.len()))
    }

    /// Every size cell's ratio: (condition, class, shape, ratio), for the layout
    /// runs (`cargo xtask bench-layout` reads the lines of [`Report::cells_text`]).
    pub fn cells(&self) -> Vec<(&'static str, String, Shape, f64)> {
        let mut cells = Vec::new();
        for (condition, t) in self.size_tables() {
            for shape in Shape::ALL {
                if let Some(ratios) = t.ratios(shape) {
                    for (row, r) in t.rows.iter().zip(ratios) {
                        cells.push((condition, row.label.clone(), shape, r));
                    }
                }
            }
        }
        cells
    }

    /// [`Report::cells`] as lines `cell<TAB>condition<TAB>class<TAB>shape<TAB>ratio`.
    pub fn cells_text(&self) -> String {
        let mut out = String::new();
        for (condition, class, shape, r) in self.cells() {
            let _ = writeln!(out, "cell\t{condition}\t{class}\t{}\t{r:.4}", shape.name());
        }
        out
    }

    /// Nanoseconds per call of `copy_mc` and of memcpy in each shape, for the hot
    /// aligned classes up to 2 KiB: the difference is what mcsafe's call costs
    /// over memcpy's (its argument check, the result, the dispatch).
    fn wrapper_cost(&self) -> String {
        let hot = &self.tables[0];
        let ns = |c: Comparator, row: &Row| hot.index(c).map(|i| row.results[i].ns_per_call);
        let mut out = String::from(
            "| size class | copy_mc ns (inline, &dyn, crate) | memcpy ns (inline, &dyn, crate) |\n|---|---:|---:|\n",
        );
        for row in hot.rows.iter().filter(|r| r.bytes <= 2048.0) {
            let shape_ns = |pick: fn((Comparator, Comparator)) -> Comparator| {
                Shape::ALL
                    .iter()
                    .filter_map(|s| ns(pick(s.pair()), row))
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                row.label,
                shape_ns(|p| p.0),
                shape_ns(|p| p.1),
            );
        }
        out
    }

    /// Each speed target: met or not, with the figures. Per call shape: every
    /// size cell >= 0.95x memcpy, the geometric mean >= 1.05x, the randomized mix
    /// >= 1.0x.
    pub fn targets(&self) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        for shape in Shape::ALL {
            let cells: Vec<_> = self.cells().into_iter().filter(|c| c.2 == shape).collect();
            if cells.is_empty() {
                continue;
            }
            let misses: Vec<String> = cells
                .iter()
                .filter(|c| c.3 < 0.95)
                .map(|(cond, class, _, r)| format!("{cond} {class} {r:.2}"))
                .collect();
            let worst = cells.iter().map(|c| c.3).fold(f64::INFINITY, f64::min);
            out.push((
                misses.is_empty(),
                format!(
                    "{}: every size class >= 0.95x memcpy ({} cells, worst {worst:.2}; below: {})",
                    shape.name(),
                    cells.len(),
                    if misses.is_empty() {
                        "none".into()
                    } else {
                        misses.join(", ")
                    }
                ),
            ));
            let geomean = (cells.iter().map(|c| c.3.ln()).sum::<f64>() / cells.len() as f64).exp();
            out.push((
                geomean >= 1.05,
                format!("{}: geometric mean >= 1.05x: {geomean:.3}", shape.name()),
            ));
            if let Some(r) = self
                .tables
                .iter()
                .find(|t| t.title.starts_with("randomized"))
                .and_then(|t| t.ratios(shape))
            {
                out.push((
                    r[0] >= 1.0,
                    format!(
                        "{}: randomized mix >= 1.0x memcpy: {:.2}",
                        shape.name(),
                        r[0]
                    ),
                ));
            }
        }
        if let Some(guard) = self.tables.iter().find(|t| t.title.contains("sigsetjmp")) {
            let (m, g) = (
                guard.index(Comparator::Mcsafe).unwrap(),
                guard.index(Comparator::SigsetjmpGuard).unwrap(),
            );
            let worst = guard
                .rows
                .iter()
                .filter(|r| r.bytes <= 256.0)
                .map(|r| r.results[m].gb_per_s / r.results[g].gb_per_s)
                .fold(f64::INFINITY, f64::min);
            out.push((
                worst >= 10.0,
                format!(">= 10x the sigsetjmp guard up to 256 B: worst {worst:.1}x"),
            ));
        }
        if let Some(p) = self.tables.iter().find(|t| t.title.contains("pread")) {
            let (m, q) = (
                p.index(Comparator::Mcsafe).unwrap(),
                p.index(Comparator::Pread).unwrap(),
            );
            let worst = p
                .rows
                .iter()
                .map(|r| r.results[m].gb_per_s / r.results[q].gb_per_s)
                .fold(f64::INFINITY, f64::min);
            out.push((
                worst > 1.0,
                format!("faster than pread at every size 64 B..1 MiB: worst {worst:.2}x"),
            ));
        }
        let large: Vec<&Table> = self
            .tables
            .iter()
            .filter(|t| t.title.starts_with("large"))
            .collect();
        if !large.is_empty() {
            let idx = |c| large[0].index(c).unwrap();
            let worst = large
                .iter()
                .flat_map(|l| l.rows.iter())
                .map(|r| {
                    let best = r.results[idx(Comparator::Memcpy)]
                        .ns_per_call
                        .min(r.results[idx(Comparator::NonTemporalLoop)].ns_per_call);
                    r.results[idx(Comparator::Mcsafe)].ns_per_call / best
                })
                .fold(0.0, f64::max);
            out.push((worst <= 1.10, format!(">= 64 MiB within 10% of the better of memcpy and an NT loop: worst {:.2}x its time", worst)));
        }
        out
    }

    /// Writes the plot as SVG: above, throughput against size (hot aligned for
    /// mcsafe, memcpy and each strategy; cold aligned, dashed, for mcsafe and
    /// memcpy); below, mcsafe's ratio to memcpy in each call shape, hot and cold,
    /// with the 0.95 target line: at small sizes the ratio is what matters.
    pub fn plot(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        use plotters::prelude::*;
        let hot = &self.tables[0];
        let cold = self.tables.get(2).unwrap_or(hot);
        let max_size = hot.rows.iter().map(|r| r.bytes).fold(16.0, f64::max);
        let x_range = || (1.0f64..max_size * 2.0).log_scale();
        let root = SVGBackend::new(path, (1200, 1000)).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, lower) = root.split_vertically(620);

        let gb: Vec<f64> = self.tables[..4.min(self.tables.len())]
            .iter()
            .flat_map(|t| {
                t.rows
                    .iter()
                    .flat_map(|r| r.results.iter().map(|m| m.gb_per_s))
            })
            .collect();
        let min_gb = gb.iter().copied().fold(f64::INFINITY, f64::min).max(0.01);
        let max_gb = gb.iter().copied().fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&upper)
            .caption(
                "mcsafe copy_mc against glibc memcpy (medians, measured side by side)",
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range(), (min_gb * 0.8..max_gb * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("bytes per copy (mean of the size class)")
            .y_desc("GB/s (log scale)")
            .x_label_formatter(&|x| size_label(*x))
            .draw()?;
        // The colours are fixed and distinct.
        let colours = [
            RGBColor(214, 39, 40),   // mcsafe: red
            RGBColor(31, 119, 180),  // memcpy: blue
            RGBColor(44, 160, 44),   // green
            RGBColor(148, 103, 189), // purple
            RGBColor(140, 86, 75),   // brown
            RGBColor(227, 119, 194), // pink
            RGBColor(127, 127, 127), // grey
            RGBColor(188, 189, 34),  // olive
        ];
        let mut series: Vec<Series> = Vec::new();
        let mut others = colours[2..].iter().cycle();
        for c in [Comparator::Mcsafe, Comparator::Memcpy]
            .into_iter()
            .chain(Strategy::available().into_iter().map(Comparator::Strategy))
        {
            let Some(i) = hot.index(c) else { continue };
            let colour = match c {
                Comparator::Mcsafe => colours[0],
                Comparator::Memcpy => colours[1],
                _ => *others.next().unwrap_or(&colours[6]),
            };
            let points = hot
                .rows
                .iter()
                .map(|r| (r.bytes, r.results[i].gb_per_s))
                .collect();
            series.push((format!("{} (hot)", c.name()), points, false, colour));
        }
        for (c, colour) in [
            (Comparator::Mcsafe, colours[0]),
            (Comparator::Memcpy, colours[1]),
        ] {
            if let Some(i) = cold.index(c) {
                let points = cold
                    .rows
                    .iter()
                    .map(|r| (r.bytes, r.results[i].gb_per_s))
                    .collect();
                series.push((format!("{} (cold)", c.name()), points, true, colour));
            }
        }
        for (name, points, dashed, colour) in series {
            let width = if name.starts_with("mcsafe (") { 3 } else { 1 };
            let style = ShapeStyle {
                color: colour.to_rgba(),
                filled: false,
                stroke_width: width,
            };
            let drawn = if dashed {
                chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(points, style))?
            };
            drawn
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;

        // The ratio panel.
        let mut ratios: Vec<Series> = Vec::new();
        let shape_colours = [colours[0], colours[2], colours[3]];
        for (table, dashed, temperature) in [(hot, false, "hot"), (cold, true, "cold")] {
            for (shape, colour) in Shape::ALL.into_iter().zip(shape_colours) {
                if let Some(r) = table.ratios(shape) {
                    let points = table.rows.iter().map(|row| row.bytes).zip(r).collect();
                    ratios.push((
                        format!("{}, {temperature}", shape.name()),
                        points,
                        dashed,
                        colour,
                    ));
                }
            }
        }
        let (lo, hi) = ratios
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .fold((0.9f64, 1.1f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
        let mut chart = ChartBuilder::on(&lower)
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range(), (lo - 0.05)..(hi + 0.05))?;
        chart
            .configure_mesh()
            .x_desc("bytes per copy")
            .y_desc("mcsafe / memcpy (throughput)")
            .x_label_formatter(&|x| size_label(*x))
            .draw()?;
        let target = ShapeStyle {
            color: BLACK.to_rgba(),
            filled: false,
            stroke_width: 1,
        };
        chart
            .draw_series(DashedLineSeries::new(
                vec![(1.0, 0.95), (max_size * 2.0, 0.95)],
                3,
                3,
                target,
            ))?
            .label("target 0.95")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], target));
        for (name, points, dashed, colour) in ratios {
            let style = ShapeStyle {
                color: colour.to_rgba(),
                filled: false,
                stroke_width: 2,
            };
            let drawn = if dashed {
                chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(points, style))?
            };
            drawn
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// One line of the plot: label, points, dashed, colour.
type Series = (String, Vec<(f64, f64)>, bool, plotters::style::RGBColor);

/// An axis label: the nearest power-of-two size in B, KiB, MiB or GiB.
fn size_label(x: f64) -> String {
    let n = x.round() as u64;
    let (unit, div) = match n {
        n if n >= 1 << 30 => ("GiB", 1u64 << 30),
        n if n >= 1 << 20 => ("MiB", 1 << 20),
        n if n >= 1 << 10 => ("KiB", 1 << 10),
        _ => ("B", 1),
    };
    let v = n as f64 / div as f64;
    if (v - v.round()).abs() < 0.05 {
        format!("{} {unit}", v.round())
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mcsafe bench --quick` must stay under 1.5 GB: its two cold regions
    /// and the hot buffers of its largest class (measured: 1.15 GB peak on the
    /// Zen 3 guest, whose reported L3 would otherwise make each region 1 GiB).
    #[test]
    fn the_quick_run_fits_in_a_gigabyte_and_a_half() {
        let quick = Options::quick();
        assert!(quick.cold_region <= QUICK_COLD_CAP);
        assert!(2 * quick.cold_region + 16 * quick.max_size < 1536 * MIB);
    }
}
