//! proptest: any length (0..=3 pages, and a few large), any source and
//! destination offsets, any set of lost pages on either side or both
//! (`UFFDIO_POISON`: any set; a truncated memfd: a suffix), every strategy:
//! `copied` is exactly the bytes before the first lost page on either side,
//! the side and address name that page, the prefix is exact, and nothing
//! outside `dst..dst+len` is written. 10,000 cases; a failure shrinks to a
//! minimal case. The mappings are made once and reused: each case loses and
//! heals only the pages it needs.

mod common;
#[path = "common/pages.rs"]
mod pages;

use std::cell::RefCell;

use common::*;
use mcsafe::{FaultKind, Side, Strategy};
use pages::{Backing, Pages};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use proptest::test_runner::{Config, TestRunner};

/// The longest copy, and the mapping size: room for it from any offset in
/// the first page, plus one page after it.
const LONGEST: usize = 1 << 20;
const PAGES: usize = LONGEST / PAGE + 3;

struct World {
    src: [Pages; 2],
    dst: [Pages; 2],
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn world() -> Option<()> {
    WORLD.with(|w| {
        if w.borrow().is_some() {
            return Some(());
        }
        let make = |backing, seed| Pages::new(backing, PAGES, seed);
        let made = (|| {
            Ok::<_, std::io::Error>(World {
                src: [make(Backing::Uffd, 1)?, make(Backing::File, 2)?],
                dst: [make(Backing::Uffd, 3)?, make(Backing::File, 4)?],
            })
        })();
        let why = made
            .as_ref()
            .err()
            .map(|e| format!("{e} (UFFDIO_POISON needs Linux 6.6+)"));
        require(
            made.is_ok(),
            "lost pages on demand",
            why.as_deref().unwrap_or(""),
        )
        .then(|| *w.borrow_mut() = made.ok())
    })
}

fn length() -> impl proptest::strategy::Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..=3 * PAGE,
        1 => prop::sample::select(vec![64 * 1024 - 1, 256 * 1024 + 5, LONGEST]),
    ]
}

/// Lost pages as positions to be mapped onto the pages the copy spans (so that
/// most of them matter, whatever the length), on a backing.
#[derive(Clone, Debug)]
struct Lost {
    backing: Backing,
    positions: Vec<u16>,
}

fn lost() -> impl proptest::strategy::Strategy<Value = Lost> {
    (
        prop::sample::select(vec![Backing::Uffd, Backing::File]),
        prop::collection::vec(any::<u16>(), 0..=3),
    )
        .prop_map(|(backing, positions)| Lost { backing, positions })
}

impl Lost {
    /// The lost page indices, for a copy spanning pages 0..span (and one more:
    /// the page right after the copy may be lost too, and must not matter).
    fn pages(&self, span: usize) -> Vec<usize> {
        self.positions
            .iter()
            .map(|&p| p as usize % (span + 1))
            .collect()
    }
}

fn slot(backing: Backing) -> usize {
    match backing {
        Backing::Uffd => 0,
        Backing::File => 1,
    }
}

/// Bytes of a copy from offset `at` of `pages` before its first lost page.
fn cut(pages: &Pages, at: usize, len: usize) -> Option<(usize, usize)> {
    let first = at / PAGE;
    let last = (at + len).div_ceil(PAGE);
    (first..last)
        .find(|&p| pages.is_lost(p))
        .map(|p| ((p * PAGE).saturating_sub(at), p))
}

fn expected_kind(backing: Backing) -> FaultKind {
    match backing {
        Backing::Uffd if kernel_has_memory_failure() => FaultKind::Poison,
        _ => FaultKind::AddressError,
    }
}

fn run_case(
    strategy: Strategy,
    len: usize,
    src_at: usize,
    dst_at: usize,
    src_lost: &Lost,
    dst_lost: &Lost,
) -> Result<(), TestCaseError> {
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let w = w.as_mut().unwrap();
        let span = |at: usize| (at + len).div_ceil(PAGE).max(1);
        let (si, di) = (slot(src_lost.backing), slot(dst_lost.backing));
        w.src[si].set_lost(&src_lost.pages(span(src_at))).unwrap();
        w.dst[di].set_lost(&dst_lost.pages(span(dst_at))).unwrap();
        let (src, dst) = (&w.src[si], &w.dst[di]);
        let outcome = (|| {
            let (s, d) = (
                src.base().wrapping_add(src_at),
                dst.base().wrapping_add(dst_at),
            );
            // SAFETY: both mappings are ours and long enough; lost pages fault.
            let result = unsafe { mcsafe::copy_mc_with(strategy, d, s, len) };
            let src_cut = cut(src, src_at, len).filter(|_| len > 0);
            let dst_cut = cut(dst, dst_at, len).filter(|_| len > 0);
            let copied = match (result, src_cut, dst_cut) {
                (Ok(()), None, None) => len,
                (Err(f), sc, dc) if sc.is_some() || dc.is_some() => {
                    let want = sc
                        .map_or(usize::MAX, |c| c.0)
                        .min(dc.map_or(usize::MAX, |c| c.0));
                    prop_assert_eq!(f.copied(), want, "{:?}", f);
                    // The side whose lost page stops the copy (either one on a tie).
                    let (pages, at, page) = match f.side() {
                        Side::Source => (src, s as usize, sc),
                        _ => (dst, d as usize, dc),
                    };
                    let (side_cut, page) = page.ok_or_else(|| {
                        TestCaseError::fail(format!("{f:?}: that side lost nothing"))
                    })?;
                    prop_assert_eq!(side_cut, want, "{:?}", f);
                    let page_addr = pages.base() as usize + page * PAGE;
                    prop_assert_eq!(f.addr() & !(PAGE - 1), page_addr, "{:?} at {:#x}", f, at);
                    prop_assert_eq!(f.granule(), PAGE);
                    prop_assert_eq!(f.kind(), expected_kind(pages.backing()));
                    want
                }
                (r, sc, dc) => {
                    return Err(TestCaseError::fail(format!(
                        "{r:?}, expected cuts {sc:?} {dc:?}"
                    )));
                }
            };
            // SAFETY: the prefixes lie before every lost page of both sides.
            prop_assert_eq!(unsafe { first_difference(d, s, copied) }, None, "prefix");
            // Nothing written before dst or past dst+len (where readable).
            for i in (dst_at.saturating_sub(64)..dst_at).chain(dst_at + len..dst_at + len + 64) {
                if i < PAGES * PAGE && !dst.is_lost(i / PAGE) {
                    // SAFETY: inside the mapping, in a page that is not lost.
                    let b = unsafe { dst.base().add(i).read() };
                    prop_assert_eq!(
                        b,
                        dst.expected(i),
                        "byte {} of dst written",
                        i as isize - dst_at as isize
                    );
                }
            }
            Ok(())
        })();
        // Put the destination back whatever the outcome: the next case (a
        // shrinking step, say) must start from the same state.
        w.dst[di].restore(dst_at, len);
        outcome
    })
}

/// Cases in CI and by default; `PROPTEST_CASES` can ask for more (or fewer,
/// to try something quickly).
const CASES: u32 = 10_000;

#[test]
fn copied_is_exact_for_any_lost_pages() {
    if world().is_none() {
        return;
    }
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::new(Config {
        cases,
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
            run_case(strategy, len, src_at, dst_at, &src_lost, &dst_lost)?;
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
