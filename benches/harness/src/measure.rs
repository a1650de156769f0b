//! Comparators measured side by side: the machine is shared and noisy, so each
//! round runs every comparator once, in a rotated order, on the same workload,
//! and each comparator's result is its median over the rounds. Ratios of such
//! medians are what the targets are stated in.
//!
//! Each timed batch follows an untimed warm-up batch of the same comparator: a
//! comparator that makes a system call per copy (the sigsetjmp guard, `pread`)
//! leaves branch predictors and caches disturbed, and without the warm-up the
//! comparator after it in the round paid for that (seen here: `copy_mc` at a
//! third of its speed for small copies, always measured right after the guard).

use std::time::Duration;

use crate::comparators::{Comparator, Env};
use crate::workload::{Call, Workload};

/// One comparator's result.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    /// Median nanoseconds per call.
    pub ns_per_call: f64,
    /// Throughput at that median, in GB/s (10^9 bytes per second).
    pub gb_per_s: f64,
}

/// How long one batch should take: long enough to dwarf the timer, short
/// enough that many rounds fit in a few seconds.
pub const BATCH_TARGET: Duration = Duration::from_millis(4);

/// A timed function: runs every call of a batch once, returns the elapsed time.
pub type Timer<'a> = Box<dyn Fn(&[Call]) -> Duration + 'a>;

/// Measures `comparators` on `workload`, interleaved over `rounds` rounds.
///
/// # Safety
/// The workload's calls are valid for every comparator (see
/// [`Comparator::time`]).
pub unsafe fn side_by_side(
    comparators: &[Comparator],
    workload: &mut dyn Workload,
    env: &Env,
    rounds: usize,
) -> Vec<Measurement> {
    let timers: Vec<Timer<'_>> = comparators
        .iter()
        // SAFETY: `interleaved` passes only batches of `workload`, whose calls
        // are valid for every comparator (the caller's contract).
        .map(|c| Box::new(move |calls: &[Call]| unsafe { c.time(calls, env) }) as _)
        .collect();
    // SAFETY: as above; `Memcpy` is always available and needs only valid,
    // distinct ranges.
    let memcpy = |calls: &[Call]| unsafe { Comparator::Memcpy.time(calls, env) };
    interleaved(&timers, &memcpy, workload, rounds)
}

/// The measurement behind [`side_by_side`], for any timed functions (each runs
/// every call of a batch once and returns the elapsed time): batches sized so
/// that `calibrate` takes [`BATCH_TARGET`], then `rounds` rounds, each running
/// every timer once in a rotated order after an untimed warm-up batch; medians.
/// `benches/harness/src/crc.rs` measures its checksums with it.
pub fn interleaved(
    timers: &[Timer<'_>],
    calibrate: &dyn Fn(&[Call]) -> Duration,
    workload: &mut dyn Workload,
    rounds: usize,
) -> Vec<Measurement> {
    // Calibrate: double the batch until it takes BATCH_TARGET.
    let mut n = 1;
    loop {
        let t = calibrate(workload.batch(n));
        if t >= BATCH_TARGET || n >= workload.max_batch() {
            break;
        }
        n = (n * 2).min(workload.max_batch());
    }
    // Per timer and round: (nanoseconds per call, bytes per nanosecond), from
    // the bytes this batch really moved (a class's sizes are not evenly spread
    // over short batches).
    let mut samples = vec![Vec::with_capacity(rounds); timers.len()];
    for round in 0..rounds {
        for k in 0..timers.len() {
            let i = (k + round) % timers.len();
            timers[i](workload.batch(n.div_ceil(4)));
            let calls = workload.batch(n);
            let bytes: usize = calls.iter().map(|c| c.len).sum();
            let ns = timers[i](calls).as_secs_f64() * 1e9;
            samples[i].push((ns / calls.len() as f64, bytes as f64 / ns));
        }
    }
    samples
        .into_iter()
        .map(|s| {
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            Measurement {
                ns_per_call: median(s.iter().map(|x| x.0).collect()),
                gb_per_s: median(s.iter().map(|x| x.1).collect()),
            }
        })
        .collect()
}
