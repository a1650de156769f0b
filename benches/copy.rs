//! The criterion benchmarks: `cargo bench --bench copy [-- FILTER]`.
//!
//! Groups `hot/src+S/dst+D`, `cold/src+S/dst+D`, `random` and `fault`; each
//! benchmark id is `<comparator>/<size>`. The side-by-side table with ratios is
//! `cargo bench --bench summary`; this suite is for looking at one size, one
//! alignment, one comparator in depth, with criterion's statistics.
//!
//! What runs (environment variables):
//! - `MCSAFE_BENCH_SIZES=full`: every size 0..=256, every power of two and its
//!   +-1 up to 256 MiB, and each routine threshold +-1 (the default is the
//!   powers of two and their +-1 up to 64 MiB, and the thresholds +-1);
//! - `MCSAFE_BENCH_ALIGN=full`: every (src, dst) offset pair of 0, 1, 15, 31,
//!   63 (the default is (0, 0), (1, 1), (15, 31), (63, 0));
//! - `MCSAFE_BENCH_ALL=1`: every strategy and the sigsetjmp guard too (the
//!   default is mcsafe, glibc memcpy and `ptr::copy_nonoverlapping`).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcsafe::Strategy;
use mcsafe_bench::comparators::{Comparator, Env, guarded_memcpy, install_guard_handler};
use mcsafe_bench::workload::{Cold, HalfLost, Hot, Randomized, Region, Workload};

const MIB: usize = 1 << 20;
const OFFSETS: [usize; 5] = [0, 1, 15, 31, 63];

fn full(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "full" || v == "1")
}

fn sizes() -> Vec<usize> {
    let t = mcsafe::dispatch().thresholds;
    let max = if full("MCSAFE_BENCH_SIZES") {
        256 * MIB
    } else {
        64 * MIB
    };
    let mut v: Vec<usize> = if full("MCSAFE_BENCH_SIZES") {
        (0..=256).collect()
    } else {
        Vec::new()
    };
    let mut p = 1;
    while p <= max {
        v.extend([p - 1, p, p + 1]);
        p *= 2;
    }
    // The routines' own class boundaries and thresholds, +-1.
    for edge in [
        64,
        128,
        256,
        512,
        t.avx2_rep_movsb,
        t.avx512_rep_movsb,
        t.non_temporal,
    ] {
        if edge <= max && edge > 0 {
            v.extend([edge - 1, edge, edge + 1]);
        }
    }
    v.retain(|&s| s <= max);
    v.sort_unstable();
    v.dedup();
    v
}

fn alignments() -> Vec<(usize, usize)> {
    if full("MCSAFE_BENCH_ALIGN") {
        OFFSETS
            .iter()
            .flat_map(|&s| OFFSETS.iter().map(move |&d| (s, d)))
            .collect()
    } else {
        vec![(0, 0), (1, 1), (15, 31), (63, 0)]
    }
}

fn comparators() -> Vec<Comparator> {
    let mut v = vec![
        Comparator::Mcsafe,
        Comparator::Memcpy,
        Comparator::CopyNonoverlapping,
    ];
    if full("MCSAFE_BENCH_ALL") {
        v.extend(Strategy::available().into_iter().map(Comparator::Strategy));
        v.push(Comparator::SigsetjmpGuard);
    }
    v
}

/// The guard's handler first, then mcsafe's (which forwards the guard's faults
/// to it), once: installing the guard's again would replace mcsafe's.
fn setup() -> Env {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        install_guard_handler();
        mcsafe::install().expect("install mcsafe's handler");
    });
    Env::new()
}

/// Benchmarks `cmp` on `workload`, `iters` calls per sample.
fn bench(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cmp: Comparator,
    size: usize,
    env: &Env,
    workload: &mut dyn Workload,
) {
    group.bench_with_input(BenchmarkId::new(cmp.name(), size), &size, |b, _| {
        b.iter_custom(|iters| {
            let mut left = iters as usize;
            let mut total = Duration::ZERO;
            while left > 0 {
                let n = left.min(workload.max_batch());
                // SAFETY: the workloads' calls stay inside their distinct regions.
                total += unsafe { cmp.time(workload.batch(n), env) };
                left -= n;
            }
            total
        })
    });
}

/// One group per alignment, one benchmark per size and comparator, on the
/// workload `make` builds for (size, src offset, dst offset).
fn by_size<'a, W: Workload + 'a>(
    c: &mut Criterion,
    name: &str,
    sizes: &[usize],
    mut make: impl FnMut(usize, usize, usize) -> W,
) {
    let env = setup();
    for (s, d) in alignments() {
        let mut group = c.benchmark_group(format!("{name}/src+{s}/dst+{d}"));
        for &size in sizes {
            group.throughput(Throughput::Bytes(size as u64));
            for cmp in comparators() {
                bench(&mut group, cmp, size, &env, &mut make(size, s, d));
            }
        }
        group.finish();
    }
}

fn hot(c: &mut Criterion) {
    let sizes = sizes();
    let largest = sizes.iter().max().copied().unwrap_or(0);
    let (src, dst) = (Region::new(largest + 8192), Region::new(largest + 8192));
    by_size(c, "hot", &sizes, |size, s, d| {
        Hot::new(&src, &dst, &[size], s, d)
    });
}

fn cold(c: &mut Criterion) {
    let sizes: Vec<usize> = sizes().into_iter().filter(|&s| s <= 64 * MIB).collect();
    let region = (8 * sizes.iter().max().copied().unwrap_or(0)).max(3 << 30);
    let (src, dst) = (Region::new(region), Region::new(region));
    by_size(c, "cold", &sizes, |size, s, d| {
        Cold::new(&src, &dst, &[size.max(1)], s, d)
    });
}

fn random(c: &mut Criterion) {
    let env = setup();
    let (src, dst) = (Region::new(4 * MIB), Region::new(4 * MIB));
    let mut mix = Randomized::new(&src, &dst, 1 << 16, 0x6d63_7361_6665);
    let mut group = c.benchmark_group("random");
    group.throughput(Throughput::Bytes(mix.bytes_per_call() as u64));
    let mut all = comparators();
    all.extend(Strategy::available().into_iter().map(Comparator::Strategy));
    all.dedup();
    for cmp in all {
        bench(&mut group, cmp, 0, &env, &mut mix);
    }
    group.finish();
}

fn fault(c: &mut Criterion) {
    setup();
    // A 4 KiB copy whose source loses its second half: one SIGBUS per call.
    let lost = HalfLost::new();
    let src = lost.source();
    let mut dst = vec![0u8; 4096];
    let mut group = c.benchmark_group("fault");
    group.bench_function("copy_mc", |b| {
        // SAFETY: the fault is a SIGBUS that mcsafe recovers.
        b.iter(|| assert!(unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src, 4096) }.is_err()))
    });
    group.bench_function("sigsetjmp+memcpy", |b| {
        // SAFETY: the guard's handler recovers the fault (passed on by mcsafe).
        b.iter(|| assert!(unsafe { guarded_memcpy(dst.as_mut_ptr(), src, 4096) }.is_err()))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(300))
        .sample_size(10)
}

criterion_group!(name = benches; config = config(); targets = hot, cold, random, fault);
criterion_main!(benches);
