//! The summary: every size class, hot and cold, aligned and misaligned, the
//! randomized mix, `pread`, large copies and the fault path, measured side by
//! side in one run; a table on stdout, the targets checked, and a plot.

use std::fmt::Write as _;
use std::path::Path;

use mcsafe::Strategy;

use crate::comparators::{Comparator, Env, install_guard_handler};
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
    /// outrun the last-level cache for "cold" to mean cold.
    pub cold_region: usize,
}

impl Options {
    /// The full run: 9 rounds, every class, 3 GiB cold regions (or 8x the
    /// largest copy): 1 GiB was not enough here, where CPUID reports a 480 MiB
    /// L3 and comparators measured in turn found each other's bytes cached.
    pub fn full() -> Options {
        Options {
            rounds: 9,
            max_size: usize::MAX,
            cold_region: 3 << 30,
        }
    }

    /// A quick look: 5 rounds, classes up to 16 MiB.
    pub fn quick() -> Options {
        Options {
            rounds: 5,
            max_size: 16 * MIB,
            ..Options::full()
        }
    }
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

    /// mcsafe's throughput over glibc memcpy's, per row.
    pub fn ratios(&self) -> Vec<f64> {
        let (m, g) = (
            self.index(Comparator::Mcsafe).unwrap(),
            self.index(Comparator::Memcpy).unwrap(),
        );
        self.rows
            .iter()
            .map(|r| r.results[m].gb_per_s / r.results[g].gb_per_s)
            .collect()
    }

    /// Renders as a Markdown table: GB/s per comparator and the ratio.
    pub fn render(&self) -> String {
        let mut out = format!("\n### {}\n\n| size class | mcsafe/memcpy |", self.title);
        for c in &self.comparators {
            let _ = write!(out, " {} GB/s |", c.name());
        }
        out.push_str("\n|---|---:|");
        out.push_str(&"---:|".repeat(self.comparators.len()));
        out.push('\n');
        for (row, ratio) in self.rows.iter().zip(self.ratios()) {
            let _ = write!(out, "| {} | {:.2} |", row.label, ratio);
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
    /// Nanoseconds per faulting call: mcsafe, then the sigsetjmp guard.
    pub fault_ns: (f64, f64),
    /// The randomized mix's shape: share of calls <= 128 B, share of bytes in
    /// calls > 1 KiB.
    pub random_shape: (f64, f64),
}

/// The comparators of the size tables. Those that make a system call per copy
/// (the sigsetjmp guard, `pread`) get their own tables, measured after these:
/// their system calls slow whatever runs next for a long time, warm-up or not
/// (seen here: with the guard in the rotation, memcpy and mcsafe both ran at
/// half speed for small copies).
fn size_comparators() -> Vec<Comparator> {
    let mut v = vec![
        Comparator::Mcsafe,
        Comparator::Memcpy,
        Comparator::CopyNonoverlapping,
    ];
    v.extend(Strategy::available().into_iter().map(Comparator::Strategy));
    v
}

fn machine() -> String {
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
    format!("{cpu}, {cores} logical CPUs, glibc {glibc}")
}

unsafe extern "C" {
    fn gnu_get_libc_version() -> *const std::ffi::c_char;
}

/// Runs every measurement; prints progress on stderr.
pub fn run(options: Options) -> Report {
    install_guard_handler();
    mcsafe::install().expect("install mcsafe's handler");
    let thresholds = mcsafe::internals::thresholds();
    let header = format!(
        "{}\nmcsafe strategy {} (available: {}); rep movsb from {} B (avx2) and {} B (avx512); \
         non-temporal stores from {} MiB\n\
         medians of {} interleaved rounds, each batch after an untimed warm-up; \
         GB/s = 10^9 bytes/s; mcsafe/memcpy = throughput ratio",
        machine(),
        Strategy::current(),
        Strategy::available()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        thresholds.avx2_rep_movsb,
        thresholds.avx512_rep_movsb,
        thresholds.non_temporal >> 20,
        options.rounds,
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
    // Cold regions: at least 8x the largest copy, so the walk outruns the cache.
    let cold_len = (8 * largest).max(options.cold_region);
    let cold_src = Region::new(cold_len);
    let cold_dst = Region::new(cold_len);

    let mut tables = Vec::new();
    for (title, cold, (src_off, dst_off)) in [
        ("hot, aligned (src+0, dst+0)", false, (0, 0)),
        ("hot, misaligned (src+1, dst+63)", false, (1, 63)),
        ("cold, aligned (src+0, dst+0)", true, (0, 0)),
        ("cold, misaligned (src+1, dst+63)", true, (1, 63)),
    ] {
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
        let large_cmp = vec![
            Comparator::Mcsafe,
            Comparator::Memcpy,
            Comparator::NonTemporalLoop,
        ];
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
                    "large copies, {}: memcpy and a plain non-temporal loop",
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
        fault_ns,
        random_shape,
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
    let time = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    // SAFETY: the source's second page faults with SIGBUS, which both catch.
    let ours =
        time(&mut || assert!(unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), half, 4096) }.is_err()));
    // SAFETY: as above.
    let guard = time(&mut || {
        assert!(
            unsafe { crate::comparators::guarded_memcpy(dst.as_mut_ptr(), half, 4096) }.is_err()
        )
    });
    (ours, guard)
}

impl Report {
    /// The tables, the fault path and the targets, as Markdown.
    pub fn render(&self) -> String {
        let mut out = format!("## mcsafe benchmark summary\n\n{}\n", self.header);
        for t in &self.tables {
            out.push_str(&t.render());
        }
        let _ = write!(
            out,
            "\n### fault path\n\nfaulting 4 KiB copy (source loses its second half): mcsafe {:.0} ns per call, \
             sigsetjmp guard {:.0} ns per call\n",
            self.fault_ns.0, self.fault_ns.1
        );
        out.push_str("\n### targets\n\n");
        for (ok, text) in self.targets() {
            let _ = writeln!(out, "- [{}] {text}", if ok { "x" } else { " " });
        }
        out
    }

    /// Each target of the speed issue: met or not, with the figures.
    pub fn targets(&self) -> Vec<(bool, String)> {
        let size_tables = &self.tables[..4];
        let mut misses = Vec::new();
        let mut all = Vec::new();
        for t in size_tables {
            for (row, r) in t.rows.iter().zip(t.ratios()) {
                all.push(r);
                if r < 0.95 {
                    misses.push(format!(
                        "{} {} {:.2}",
                        t.title.split(' ').next().unwrap_or(""),
                        row.label,
                        r
                    ));
                }
            }
        }
        let geomean = (all.iter().map(|r| r.ln()).sum::<f64>() / all.len() as f64).exp();
        let mut out = vec![
            (
                misses.is_empty(),
                format!(
                    "every size class >= 0.95x memcpy ({} cells; below: {})",
                    all.len(),
                    if misses.is_empty() {
                        "none".into()
                    } else {
                        misses.join(", ")
                    }
                ),
            ),
            (
                geomean >= 1.0,
                format!("geometric mean >= 1.0x: {geomean:.3}"),
            ),
        ];
        if let Some(mix) = self
            .tables
            .iter()
            .find(|t| t.title.starts_with("randomized"))
        {
            let r = mix.ratios()[0];
            out.push((r >= 1.0, format!("randomized mix >= 1.0x memcpy: {r:.2}")));
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

    /// Writes the throughput of every comparator against size (hot, aligned, and
    /// cold, aligned for mcsafe and memcpy) as an SVG plot.
    pub fn plot(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        use plotters::prelude::*;
        let hot = &self.tables[0];
        let cold = &self.tables[2];
        let min_gb = self.tables[..4]
            .iter()
            .flat_map(|t| {
                t.rows
                    .iter()
                    .flat_map(|r| r.results.iter().map(|m| m.gb_per_s))
            })
            .fold(f64::INFINITY, f64::min)
            .max(0.01);
        let max_gb = self.tables[..4]
            .iter()
            .flat_map(|t| {
                t.rows
                    .iter()
                    .flat_map(|r| r.results.iter().map(|m| m.gb_per_s))
            })
            .fold(1.0, f64::max);
        let max_size = hot.rows.iter().map(|r| r.bytes).fold(16.0, f64::max);
        let root = SVGBackend::new(path, (1100, 650)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "mcsafe: throughput against size (medians, side by side)",
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (4.0f64..max_size * 1.5).log_scale(),
                (min_gb * 0.8..max_gb * 1.25).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("bytes per copy (mean of the size class)")
            .y_desc("GB/s (log scale)")
            .x_label_formatter(&|x| bytes_label(*x as usize))
            .draw()?;
        // (label, points, dashed)
        type Series = (String, Vec<(f64, f64)>, bool);
        let mut series: Vec<Series> = hot
            .comparators
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("{} (hot)", c.name()),
                    hot.rows
                        .iter()
                        .map(|r| (r.bytes, r.results[i].gb_per_s))
                        .collect(),
                    false,
                )
            })
            .collect();
        for c in [Comparator::Mcsafe, Comparator::Memcpy] {
            let i = cold.index(c).unwrap();
            series.push((
                format!("{} (cold)", c.name()),
                cold.rows
                    .iter()
                    .map(|r| (r.bytes, r.results[i].gb_per_s))
                    .collect(),
                true,
            ));
        }
        for (k, (name, points, dashed)) in series.into_iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let width = if name.starts_with("mcsafe (") { 3 } else { 1 };
            let style = ShapeStyle {
                color,
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
        root.present()?;
        Ok(())
    }
}
