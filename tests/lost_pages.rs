//! proptest: any length (0..=3 pages, and a few large), any source and
//! destination offsets, any set of lost pages on either side or both
//! (`UFFDIO_POISON`: any set; a truncated memfd: a suffix), every strategy:
//! the case of `common/lost_case.rs` holds. 10,000 cases; a failure shrinks to
//! a minimal case. The mappings are made once and reused: each case loses and
//! heals only the pages it needs.

mod common;
#[path = "common/lost_case.rs"]
mod lost_case;
#[path = "common/pages.rs"]
mod pages;

use common::*;
use lost_case::{LONGEST, Lost, run_case, world};
use mcsafe::Strategy;
use pages::Backing;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn length() -> impl proptest::strategy::Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..=3 * PAGE,
        1 => prop::sample::select(vec![64 * 1024 - 1, 256 * 1024 + 5, LONGEST]),
    ]
}

fn lost() -> impl proptest::strategy::Strategy<Value = Lost> {
    (
        prop::sample::select(vec![Backing::Uffd, Backing::File]),
        prop::collection::vec(any::<u16>(), 0..=3),
    )
        .prop_map(|(backing, positions)| Lost { backing, positions })
}

/// Cases by default and at least this many in CI; `PROPTEST_CASES` can ask
/// for more (or, outside CI, fewer, to try something quickly).
const CASES: u32 = 10_000;

#[test]
fn copied_is_exact_for_any_lost_pages() {
    if world().is_none() {
        return;
    }
    let asked = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    // CI runs at least CASES, whatever the environment says.
    let cases = if in_ci() { asked.max(CASES) } else { asked };
    let mut runner = TestRunner::new(Config {
        cases,
        // Failures are reported and shrunk here; no regression file is kept.
        failure_persistence: None,
        ..Config::default()
    });
    let case = (
        prop::sample::select(Strategy::available()),
        length(),
        0usize..PAGE + 64,
        0usize..PAGE + 64,
        lost(),
        lost(),
    );
    let started = std::time::Instant::now();
    let faults = std::cell::Cell::new(0u64);
    let result = runner.run(
        &case,
        |(strategy, len, src_at, dst_at, src_lost, dst_lost)| {
            let recovered = mcsafe::stats().recovered;
            run_case(strategy, len, src_at, dst_at, &src_lost, &dst_lost)
                .map_err(TestCaseError::fail)?;
            faults.set(faults.get() + (mcsafe::stats().recovered - recovered));
            Ok(())
        },
    );
    if let Err(e) = result {
        // The minimal failing case, after shrinking.
        panic!("{e}");
    }
    println!(
        "lost_pages: {cases} cases ({} faults recovered) in {:.1} s",
        faults.get(),
        started.elapsed().as_secs_f64()
    );
}
