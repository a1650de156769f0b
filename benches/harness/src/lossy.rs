//! The lossy copy at scale (issue 20): `copy_mc_lossy` of a source lost whole
//! (a mapping of an empty memfd: every page raises `BUS_ADRERR`) at 1 Ki, 16 Ki
//! and 256 Ki pages, its cost per lost page side by side with the fault path (a
//! faulting 4 KiB `copy_mc`, the summary's figure); and a lossy copy that loses
//! nothing against `copy_mc` (the hot path both share). The goals are checked
//! and printed.
//!
//! Each round measures the fault path and every size once, in a rotated order;
//! each figure is the median over the rounds, in the thread's CPU time (a
//! signal's time in the kernel counts: it is the thread's). The destination is
//! touched before any timing, so that no page-in is counted.
//!
//! `cargo bench --bench lossy` (`-- --quick`: 3 rounds; `-- --max-pages N`:
//! leave out sizes above N pages).

use std::fmt::Write as _;
use std::hint::black_box;
use std::ptr;
use std::time::Duration;

use crate::comparators::thread_time;
use crate::measure::{Measurement, Timer, interleaved};
use crate::workload::{Call, HalfLost, Hot, Region};

const PAGE: usize = 4096;

/// How much to measure.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds (medians of this many).
    pub rounds: usize,
    /// Sizes of the lost source, in pages.
    pub pages: Vec<usize>,
}

impl Options {
    /// 7 rounds at 1 Ki, 16 Ki and 256 Ki pages (4 MiB, 64 MiB, 1 GiB).
    pub fn full() -> Options {
        Options {
            rounds: 7,
            pages: vec![1 << 10, 16 << 10, 256 << 10],
        }
    }

    /// The same sizes, 3 rounds.
    pub fn quick() -> Options {
        Options {
            rounds: 3,
            ..Options::full()
        }
    }
}

/// The sizes of the intact copies (hot, page-aligned).
const INTACT_SIZES: [usize; 4] = [64, 4096, 64 << 10, 1 << 20];

/// What was measured.
pub struct Report {
    header: String,
    /// Nanoseconds per faulting 4 KiB `copy_mc`.
    fault_ns: f64,
    /// The lossy copies of a source lost whole, sources above the destination
    /// first.
    lost: Vec<Row>,
    /// (size, copy_mc, copy_mc_lossy), nothing lost.
    intact: Vec<(usize, Measurement, Measurement)>,
}

/// One lossy copy of a source lost whole.
struct Row {
    pages: usize,
    /// Whether the source lies above the destination.
    above: bool,
    ns_per_page: f64,
}

impl Row {
    fn layout(&self) -> &'static str {
        if self.above { "above" } else { "below" }
    }
}

/// A mapping of `pages` pages of an empty memfd: every page is past the end of
/// the file.
struct EmptyFileMapping {
    map: *mut u8,
    len: usize,
}

impl EmptyFileMapping {
    fn new(pages: usize) -> EmptyFileMapping {
        let len = pages * PAGE;
        // SAFETY: a memfd we own, mapped and closed; the mapping keeps the file.
        unsafe {
            let fd = libc::memfd_create(c"mcsafe-bench-lossy".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            let map = libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
            libc::close(fd);
            EmptyFileMapping {
                map: map.cast(),
                len,
            }
        }
    }
}

impl Drop for EmptyFileMapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

/// Nanoseconds per call of `n` faulting 4 KiB `copy_mc` calls from `lost`
/// (the summary's fault path).
pub fn faulting_copy_mc_ns(lost: &HalfLost, dst: &mut [u8], n: usize) -> f64 {
    let start = thread_time();
    for _ in 0..n {
        // SAFETY: the source's second half faults with SIGBUS, which mcsafe
        // catches; `dst` holds 4 KiB.
        let r = unsafe { mcsafe::copy_mc(black_box(dst.as_mut_ptr()), lost.source(), 4096) };
        assert!(black_box(r).is_err());
    }
    (thread_time() - start).as_secs_f64() * 1e9 / n as f64
}

/// One lossy copy of a source lost whole: nanoseconds per lost page, after
/// checking that each page was lost once.
fn lossy_ns_per_page(dst: &Region, src: &EmptyFileMapping) -> f64 {
    let start = thread_time();
    // SAFETY: `dst` is ours and holds `src.len` bytes; every source page
    // raises SIGBUS, which the lossy copy catches.
    let copy = unsafe { mcsafe::copy_mc_lossy(black_box(dst.ptr()), src.map, src.len) };
    let took = thread_time() - start;
    let pages = src.len / PAGE;
    assert_eq!(
        (copy.faults(), copy.lost_bytes(), copy.lost().len()),
        (pages, src.len, 1),
        "{copy}"
    );
    took.as_secs_f64() * 1e9 / pages as f64
}

#[inline(never)]
unsafe fn plain(calls: &[Call]) -> Duration {
    let start = thread_time();
    for c in calls {
        // SAFETY: the caller's contract: ordinary, distinct buffers.
        let r = unsafe { mcsafe::copy_mc(c.dst, c.src, black_box(c.len)) };
        assert!(black_box(r.is_ok()));
    }
    thread_time().saturating_sub(start)
}

#[inline(never)]
unsafe fn lossy(calls: &[Call]) -> Duration {
    let start = thread_time();
    for c in calls {
        // SAFETY: as above.
        let r = unsafe { mcsafe::copy_mc_lossy(c.dst, c.src, black_box(c.len)) };
        assert!(black_box(r.is_complete()));
    }
    thread_time().saturating_sub(start)
}

/// Runs every measurement; prints progress on stderr.
pub fn run(options: &Options) -> Report {
    mcsafe::install().expect("install mcsafe's handler");
    let header = format!(
        "{}\nmcsafe strategy {}; medians of {} rounds, timed in the thread's CPU time; lost \
         source: a mapping of an empty memfd (every page BUS_ADRERR), destination touched \
         before timing",
        crate::summary::machine(),
        mcsafe::Strategy::current(),
        options.rounds
    );

    let half = HalfLost::new();
    let mut fault_dst = vec![0u8; 4096];
    let largest = options.pages.iter().copied().max().unwrap_or(0);
    // Mappings are placed downwards: the sources mapped before the destination
    // lie above it (the layout that made the first version quadratic: it kept
    // every source granule, seen from the destination, as ahead), those mapped
    // after it below. Each row says which it got.
    let above: Vec<EmptyFileMapping> = options
        .pages
        .iter()
        .map(|&p| EmptyFileMapping::new(p))
        .collect();
    eprintln!(
        "lossy: mapping {} MiB of destination",
        (largest * PAGE) >> 20
    );
    let dst = Region::new(largest * PAGE);
    let below: Vec<EmptyFileMapping> = options
        .pages
        .iter()
        .map(|&p| EmptyFileMapping::new(p))
        .collect();
    let sources: Vec<&EmptyFileMapping> = above.iter().chain(&below).collect();
    // Warm-up: one untimed pass over everything.
    faulting_copy_mc_ns(&half, &mut fault_dst, 200);
    for src in &sources {
        lossy_ns_per_page(&dst, src);
    }
    let mut fault = Vec::new();
    let mut lost = vec![Vec::new(); sources.len()];
    for round in 0..options.rounds {
        eprintln!("lossy: round {} of {}", round + 1, options.rounds);
        let n = sources.len() + 1;
        for k in 0..n {
            match (k + round) % n {
                0 => {
                    faulting_copy_mc_ns(&half, &mut fault_dst, 100);
                    fault.push(faulting_copy_mc_ns(&half, &mut fault_dst, 2000));
                }
                i => lost[i - 1].push(lossy_ns_per_page(&dst, sources[i - 1])),
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let lost = sources
        .iter()
        .zip(lost)
        .map(|(src, ns)| Row {
            pages: src.len / PAGE,
            above: src.map as usize > dst.ptr() as usize,
            ns_per_page: median(ns),
        })
        .collect();

    eprintln!("lossy: intact copies against copy_mc");
    let src = Region::new((1 << 20) + PAGE);
    let small_dst = Region::new((1 << 20) + PAGE);
    let mut intact = Vec::new();
    for size in INTACT_SIZES {
        let mut hot = Hot::new(&src, &small_dst, &[size], 0, 0);
        // `interleaved` passes only batches of `hot`, whose calls stay inside
        // the two distinct ordinary regions `src` and `small_dst`.
        let timers: Vec<Timer<'_>> = vec![
            // SAFETY: the calls are `hot`'s: ordinary, distinct buffers.
            Box::new(|calls: &[Call]| unsafe { plain(calls) }),
            // SAFETY: as above.
            Box::new(|calls: &[Call]| unsafe { lossy(calls) }),
        ];
        // SAFETY: as above.
        let calibrate = |calls: &[Call]| unsafe { plain(calls) };
        let r = interleaved(&timers, &calibrate, &mut hot, options.rounds.max(5));
        intact.push((size, r[0], r[1]));
    }

    Report {
        header,
        fault_ns: median(fault),
        lost,
        intact,
    }
}

fn pages_label(pages: usize) -> String {
    if pages >= 1024 && pages.is_multiple_of(1024) {
        format!("{} Ki", pages / 1024)
    } else {
        pages.to_string()
    }
}

fn bytes_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b.is_multiple_of(1 << 30) => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

impl Report {
    /// The goals: (met, what), in order.
    pub fn goals(&self) -> Vec<(bool, String)> {
        let mut goals = Vec::new();
        if let Some(worst) = self
            .lost
            .iter()
            .max_by(|a, b| a.ns_per_page.total_cmp(&b.ns_per_page))
        {
            let ratio = worst.ns_per_page / self.fault_ns;
            goals.push((
                ratio <= 2.0,
                format!(
                    "each lost page costs at most 2x a faulting copy_mc: worst {ratio:.2}x, at {} \
                     pages, source {} the destination",
                    pages_label(worst.pages),
                    worst.layout()
                ),
            ));
        }
        for above in [true, false] {
            let rows: Vec<&Row> = self.lost.iter().filter(|r| r.above == above).collect();
            if let (Some(first), Some(last)) = (rows.first(), rows.last())
                && last.pages > first.pages
            {
                let ratio = last.ns_per_page / first.ns_per_page;
                goals.push((
                    ratio <= 1.5,
                    format!(
                        "the cost per page at {} pages within 1.5x of the cost at {} pages, \
                         source {} the destination: {ratio:.2}x",
                        pages_label(last.pages),
                        pages_label(first.pages),
                        first.layout()
                    ),
                ));
            }
        }
        if let Some(worst) = self
            .intact
            .iter()
            .map(|(_, plain, lossy)| lossy.ns_per_call / plain.ns_per_call)
            .max_by(f64::total_cmp)
        {
            goals.push((
                worst <= 1.10,
                format!(
                    "a lossy copy that loses nothing costs what copy_mc costs (within 10 %): \
                     worst {worst:.2}x copy_mc's time"
                ),
            ));
        }
        goals
    }

    /// The tables and the goals, as Markdown.
    pub fn render(&self) -> String {
        let mut out = format!("## the lossy copy at scale\n\n{}\n\n", self.header);
        out.push_str(
            "| pages lost | bytes | source | ns per lost page | x fault path | x the smallest, \
             same layout |\n|---:|---:|---|---:|---:|---:|\n",
        );
        for row in &self.lost {
            let smallest = self
                .lost
                .iter()
                .find(|r| r.above == row.above)
                .map_or(row.ns_per_page, |r| r.ns_per_page);
            let _ = writeln!(
                out,
                "| {} | {} | {} the destination | {:.0} | {:.2} | {:.2} |",
                pages_label(row.pages),
                bytes_label(row.pages * PAGE),
                row.layout(),
                row.ns_per_page,
                row.ns_per_page / self.fault_ns,
                row.ns_per_page / smallest
            );
        }
        let _ = write!(
            out,
            "\nfault path: a faulting 4 KiB copy_mc (source loses its second half): {:.0} ns \
             per call\n\n### nothing lost: copy_mc_lossy against copy_mc (hot, ns per call)\n\n\
             | size | copy_mc | copy_mc_lossy | lossy / copy_mc |\n|---:|---:|---:|---:|\n",
            self.fault_ns
        );
        for (size, plain, lossy) in &self.intact {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.2} |",
                bytes_label(*size),
                plain.ns_per_call,
                lossy.ns_per_call,
                lossy.ns_per_call / plain.ns_per_call
            );
        }
        out.push_str("\n### goals\n\n");
        for (ok, text) in self.goals() {
            let _ = writeln!(out, "- [{}] {text}", if ok { "x" } else { " " });
        }
        out
    }
}
