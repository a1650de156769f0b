//! The lossy copy (`copy_mc_lossy`, `copy_mc_lossy_with`): proptest over any
//! lengths, offsets and strategies, with any set of lost pages on either side
//! or both: `UFFDIO_POISON` (any set), a truncated memfd (a suffix), and a file
//! on a full tmpfs (any set of holes, as source and as destination). Checked
//! against a model computed page by page: the destination holds the source's
//! bytes outside the lost ranges and zeros in the source's; the list is exact,
//! in order and merged; each lost page costs one signal; nothing outside the
//! destination is written. Then the API's edges: zero length, bad input,
//! stopping early, huge report sizes.

mod common;
#[path = "common/pages.rs"]
mod pages;

use std::cell::RefCell;
use std::ops::{ControlFlow, Range};
use std::os::fd::AsRawFd;

use common::*;
use mcsafe::inject::{self, FullTmpfsFile, Method};
use mcsafe::{FaultKind, LostRange, Side, Strategy};
use pages::{Backing, Pages};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Pages of each reusable mapping: room for the longest copy from any offset
/// in the first page, and a page after it.
const MAP_PAGES: usize = 40;
const LONGEST: usize = 36 * PAGE;

/// One side of a case: memory, where the copy starts in it, and which of its
/// pages are lost.
struct Mem<'a> {
    base: *mut u8,
    pages: usize,
    at: usize,
    lost: &'a dyn Fn(usize) -> bool,
    /// What a page that is not lost holds at mapping offset `i`.
    pattern: &'a dyn Fn(usize) -> u8,
    kind: FaultKind,
}

impl Mem<'_> {
    fn lost_at(&self, offset: usize) -> bool {
        (self.lost)((self.at + offset) / PAGE)
    }

    /// Lost pages that the copy's `0..len` touches (none for `len == 0`:
    /// the span below would hold the page of `at` when `at` is not
    /// page-aligned, a case the proptest met once in about ten runs).
    fn lost_pages(&self, len: usize) -> Vec<usize> {
        if len == 0 {
            return Vec::new();
        }
        let span = self.at / PAGE..(self.at + len).div_ceil(PAGE);
        span.filter(|&p| (self.lost)(p)).collect()
    }

    /// The next page boundary of this side after copy offset `i`.
    fn next_boundary(&self, i: usize) -> usize {
        (self.at + i) / PAGE * PAGE + PAGE - self.at
    }
}

/// What the model says about a run of offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Copied,
    Lost(Side, FaultKind),
}

/// The copy's offsets cut where either side's page changes, each run with
/// its class: the destination's loss wins (nothing can be written there),
/// then the source's.
fn model(len: usize, src: &Mem, dst: &Mem) -> Vec<(Range<usize>, Class)> {
    let mut runs: Vec<(Range<usize>, Class)> = Vec::new();
    let mut i = 0;
    while i < len {
        let end = src.next_boundary(i).min(dst.next_boundary(i)).min(len);
        let class = if dst.lost_at(i) {
            Class::Lost(Side::Destination, dst.kind)
        } else if src.lost_at(i) {
            Class::Lost(Side::Source, src.kind)
        } else {
            Class::Copied
        };
        match runs.last_mut() {
            Some((r, c)) if *c == class => r.end = end,
            _ => runs.push((i..end, class)),
        }
        i = end;
    }
    runs
}

/// Runs one lossy copy and checks it against the model.
fn check(strategy: Strategy, len: usize, src: &Mem, dst: &Mem) -> Result<(), String> {
    let (s, d) = (src.base.wrapping_add(src.at), dst.base.wrapping_add(dst.at));
    let runs = model(len, src, dst);
    let before = recovered();
    let mut pieces: Vec<LostRange> = Vec::new();
    // SAFETY: both mappings are ours and long enough; lost pages fault.
    let copy = unsafe {
        mcsafe::copy_mc_lossy_with(strategy, d, s, len, |piece| {
            pieces.push(*piece);
            ControlFlow::Continue(())
        })
    };
    let signals = recovered() - before;
    let what = format!("{strategy} len {len} src+{} dst+{}: {copy}", src.at, dst.at);

    // The list: exactly the model's lost runs, in order, merged.
    let want: Vec<(Range<usize>, Side, FaultKind)> = runs
        .iter()
        .filter_map(|(r, c)| match *c {
            Class::Lost(side, kind) => Some((r.clone(), side, kind)),
            Class::Copied => None,
        })
        .collect();
    let got: Vec<(Range<usize>, Side, FaultKind)> = copy
        .lost()
        .iter()
        .map(|l| (l.range(), l.side(), l.kind()))
        .collect();
    if got != want {
        return Err(format!("{what}: lost {got:?}, want {want:?}"));
    }
    if copy.lost().iter().any(|l| l.granule() != PAGE) || copy.done() != len {
        return Err(format!("{what}: granule or done wrong: {:?}", copy.lost()));
    }
    if copy.is_complete() != want.is_empty() {
        return Err(format!("{what}: is_complete {}", copy.is_complete()));
    }
    // The pieces given to on_lost: in order, disjoint, and covering the list.
    let mut at = 0;
    for p in &pieces {
        if p.range().start < at || p.is_empty() {
            return Err(format!("{what}: pieces out of order: {pieces:?}"));
        }
        at = p.range().end;
    }
    let piece_bytes: usize = pieces.iter().map(LostRange::len).sum();
    if piece_bytes != copy.lost_bytes() {
        return Err(format!("{what}: pieces {pieces:?} do not add up"));
    }

    // One signal per lost page touched: every lost destination page must be
    // met (each of its bytes is written or found lost); a lost source page
    // must be met where the destination under it is not lost, and may be met
    // where it is (a vector loop may load before it stores).
    let dst_pages = dst.lost_pages(len).len();
    let src_pages = src.lost_pages(len);
    let src_needed = src_pages
        .iter()
        .filter(|&&p| {
            let first = (p * PAGE).saturating_sub(src.at);
            let last = ((p + 1) * PAGE - src.at).min(len);
            runs.iter().any(|(r, c)| {
                *c == Class::Lost(Side::Source, src.kind) && r.start < last && first < r.end
            })
        })
        .count();
    let (low, high) = (dst_pages + src_needed, dst_pages + src_pages.len());
    if copy.faults() as u64 != signals || !(low..=high).contains(&copy.faults()) {
        return Err(format!(
            "{what}: {} faults reported, {signals} signals, want {low}..={high}",
            copy.faults()
        ));
    }

    // The bytes: the source's where copied, zeros where the source was lost.
    for (r, c) in &runs {
        for i in r.clone() {
            let want = match c {
                Class::Copied => (src.pattern)(src.at + i),
                Class::Lost(Side::Source, _) => 0,
                Class::Lost(..) => continue,
            };
            // SAFETY: a destination byte whose page is not lost.
            let byte = unsafe { d.add(i).read() };
            if byte != want {
                return Err(format!("{what}: dst byte {i} is {byte:#x}, want {want:#x}"));
            }
        }
    }
    // Nothing written just before or after the destination (where readable).
    let around = (dst.at.saturating_sub(64)..dst.at).chain(dst.at + len..dst.at + len + 64);
    for i in around {
        if i < dst.pages * PAGE && !(dst.lost)(i / PAGE) {
            // SAFETY: inside the mapping, in a page that is not lost.
            let byte = unsafe { dst.base.add(i).read() };
            if byte != (dst.pattern)(i) {
                return Err(format!(
                    "{what}: byte {i} of the destination mapping written"
                ));
            }
        }
    }
    Ok(())
}

fn kind_of(backing: Backing) -> FaultKind {
    match backing {
        Backing::Uffd if kernel_has_memory_failure() => FaultKind::Poison,
        _ => FaultKind::AddressError,
    }
}

struct World {
    src: [Pages; 2],
    dst: [Pages; 2],
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn world() -> bool {
    WORLD.with(|w| {
        if w.borrow().is_some() {
            return true;
        }
        let made = (|| {
            Ok::<_, std::io::Error>(World {
                src: [
                    Pages::new(Backing::Uffd, MAP_PAGES, 11)?,
                    Pages::new(Backing::File, MAP_PAGES, 12)?,
                ],
                dst: [
                    Pages::new(Backing::Uffd, MAP_PAGES, 13)?,
                    Pages::new(Backing::File, MAP_PAGES, 14)?,
                ],
            })
        })();
        let why = made
            .as_ref()
            .err()
            .map(|e| format!("{e} (UFFDIO_POISON needs Linux 6.6+)"));
        let ok = require(
            made.is_ok(),
            "lost pages on demand",
            why.as_deref().unwrap_or(""),
        );
        *w.borrow_mut() = made.ok();
        ok
    })
}

fn slot(backing: Backing) -> usize {
    match backing {
        Backing::Uffd => 0,
        Backing::File => 1,
    }
}

fn mem<'a>(
    pages: &'a Pages,
    at: usize,
    lost: &'a dyn Fn(usize) -> bool,
    pattern: &'a dyn Fn(usize) -> u8,
) -> Mem<'a> {
    Mem {
        base: pages.base(),
        pages: pages.pages(),
        at,
        lost,
        pattern,
        kind: kind_of(pages.backing()),
    }
}

fn length() -> impl proptest::strategy::Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=4 * PAGE,
        2 => 0usize..=LONGEST,
        1 => prop::sample::select(vec![1, 63, 64, PAGE, 2 * PAGE + 1, LONGEST]),
    ]
}

/// Lost pages as positions, mapped onto the pages the copy spans (and one
/// after it), so that most of them matter whatever the length.
fn positions() -> impl proptest::strategy::Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..=5)
}

fn lost_set(positions: &[u16], at: usize, len: usize) -> Vec<usize> {
    let span = (at + len).div_ceil(PAGE).max(1) + 1;
    positions.iter().map(|&p| p as usize % span).collect()
}

/// Cases by default and at least this many in CI; `PROPTEST_CASES` can ask
/// for more (or, outside CI, fewer).
const CASES: u32 = 3000;

fn cases(default: u32) -> u32 {
    let asked = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    if in_ci() { asked.max(default) } else { asked }
}

#[test]
fn lossy_copy_is_exact_for_any_lost_pages_on_either_side() {
    if !world() {
        return;
    }
    let _serial = signal_lock();
    let backing = || prop::sample::select(vec![Backing::Uffd, Backing::File]);
    let case = (
        prop::sample::select(Strategy::available()),
        length(),
        (0usize..PAGE + 64, backing(), positions()),
        (0usize..PAGE + 64, backing(), positions()),
    );
    let cases = cases(CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        // Failures are reported and shrunk here; no regression file is kept.
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let result = runner.run(
        &case,
        |(strategy, len, (src_at, src_b, src_p), (dst_at, dst_b, dst_p))| {
            WORLD.with(|w| {
                let mut w = w.borrow_mut();
                let w = w.as_mut().unwrap();
                let (si, di) = (slot(src_b), slot(dst_b));
                w.src[si].set_lost(&lost_set(&src_p, src_at, len)).unwrap();
                w.dst[di].set_lost(&lost_set(&dst_p, dst_at, len)).unwrap();
                let (sp, dp) = (&w.src[si], &w.dst[di]);
                let (src_lost, dst_lost) = (|p| sp.is_lost(p), |p| dp.is_lost(p));
                let (src_pat, dst_pat) = (|i| sp.expected(i), |i| dp.expected(i));
                let src = mem(sp, src_at, &src_lost, &src_pat);
                let dst = mem(dp, dst_at, &dst_lost, &dst_pat);
                let outcome = check(strategy, len, &src, &dst);
                // The next case (a shrinking step, say) starts from the pattern.
                w.dst[di].restore(dst_at, len);
                outcome.map_err(TestCaseError::fail)
            })
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "lossy: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A file of `MAP_PAGES` pages on a full tmpfs with the pages in `holes`
/// lost, mapped shared; `None` (after saying why) where no tmpfs can be
/// mounted.
struct TmpfsMap {
    _file: FullTmpfsFile,
    base: *mut u8,
    holes: Vec<usize>,
    seed: u8,
}

impl TmpfsMap {
    fn new(holes: &[usize], seed: u8, writable: bool) -> TmpfsMap {
        let file = FullTmpfsFile::new(MAP_PAGES, holes, |i, page| {
            for (j, b) in page.iter_mut().enumerate() {
                *b = tmpfs_byte(seed, i * PAGE + j);
            }
        })
        .unwrap();
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(file.path())
            .unwrap();
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of our file.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_PAGES * PAGE,
                prot,
                libc::MAP_SHARED,
                opened.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        TmpfsMap {
            _file: file,
            base: base.cast(),
            holes: holes.to_vec(),
            seed,
        }
    }

    fn is_lost(&self, page: usize) -> bool {
        self.holes.contains(&page)
    }
}

impl Drop for TmpfsMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.base.cast(), MAP_PAGES * PAGE) };
    }
}

fn tmpfs_byte(seed: u8, i: usize) -> u8 {
    byte_at(u64::from(seed) + 100, i)
}

fn full_tmpfs() -> bool {
    let why = inject::capabilities()
        .check(Method::FullTmpfs)
        .err()
        .map(ToString::to_string);
    require(why.is_none(), "full tmpfs", why.as_deref().unwrap_or(""))
}

/// A file whose holes cannot be paged in, as a source (read faults) and as a
/// destination (write faults: the pages cannot be allocated), against
/// `UFFDIO_POISON` pages on the other side. Fewer cases: each mounts and fills
/// a tmpfs.
#[test]
fn lossy_copy_over_a_file_on_a_full_tmpfs_with_any_holes() {
    if !full_tmpfs() || !world() {
        return;
    }
    let _serial = signal_lock();
    let holes = || prop::collection::btree_set(0usize..MAP_PAGES, 0..=6);
    let case = (
        prop::sample::select(Strategy::available()),
        any::<bool>(),
        holes(),
        length(),
        0usize..PAGE + 64,
        0usize..PAGE + 64,
        positions(),
    );
    let cases = cases(200);
    let mut runner = TestRunner::new(Config {
        cases,
        // Failures are reported and shrunk here; no regression file is kept.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &case,
        |(strategy, tmpfs_is_src, holes, len, tmpfs_at, other_at, other_p)| {
            let holes: Vec<usize> = holes.into_iter().collect();
            let file = TmpfsMap::new(&holes, 7, !tmpfs_is_src);
            WORLD.with(|w| {
                let mut w = w.borrow_mut();
                let w = w.as_mut().unwrap();
                let pages = if tmpfs_is_src {
                    &mut w.dst[0]
                } else {
                    &mut w.src[0]
                };
                pages.set_lost(&lost_set(&other_p, other_at, len)).unwrap();
                let pages = &*pages;
                let (other_lost, other_pat) = (|p| pages.is_lost(p), |i| pages.expected(i));
                let (file_lost, file_pat) = (|p| file.is_lost(p), |i| tmpfs_byte(file.seed, i));
                let other = mem(pages, other_at, &other_lost, &other_pat);
                let tmpfs = Mem {
                    base: file.base,
                    pages: MAP_PAGES,
                    at: tmpfs_at,
                    lost: &file_lost,
                    pattern: &file_pat,
                    kind: FaultKind::AddressError,
                };
                let outcome = if tmpfs_is_src {
                    check(strategy, len, &tmpfs, &other)
                } else {
                    check(strategy, len, &other, &tmpfs)
                };
                if tmpfs_is_src {
                    w.dst[0].restore(other_at, len);
                }
                outcome.map_err(TestCaseError::fail)
            })
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn zero_length_touches_nothing_and_reports_nothing() {
    // Dangling but non-null pointers: a zero-length copy must not read them.
    let p = std::ptr::NonNull::<u8>::dangling().as_ptr();
    // SAFETY: len 0 reads no pointer.
    let copy = unsafe { mcsafe::copy_mc_lossy(p, p, 0) };
    assert!(copy.is_complete() && copy.lost().is_empty());
    assert_eq!((copy.done(), copy.faults(), copy.lost_bytes()), (0, 0, 0));
    // SAFETY: as above; even null is fine with len 0, as for copy_mc.
    let copy = unsafe { mcsafe::copy_mc_lossy(std::ptr::null_mut(), std::ptr::null(), 0) };
    assert!(copy.is_complete());
    assert_eq!(copy.to_string(), "nothing lost in 0 bytes");
}

#[test]
#[should_panic(expected = "mcsafe: null source pointer with len 8")]
fn a_null_source_panics_before_touching_memory() {
    let mut dst = [0u8; 8];
    // SAFETY: the null pointer is rejected before any access.
    let _ = unsafe { mcsafe::copy_mc_lossy(dst.as_mut_ptr(), std::ptr::null(), 8) };
}

#[test]
#[should_panic(expected = "overlap")]
fn overlapping_buffers_panic_before_touching_memory() {
    let mut buf = [0u8; 64];
    let p = buf.as_mut_ptr();
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::copy_mc_lossy(p.wrapping_add(8), p, 32) };
}

#[test]
fn on_lost_can_stop_a_copy_whose_source_is_lost_entirely() {
    let _serial = signal_lock();
    // 64 pages, all past the end of the file.
    let map = LostTail::new(0, 64, 1);
    let mut dst = vec![0xeeu8; 64 * PAGE];
    let before = recovered();
    let mut seen = 0;
    // SAFETY: our mapping, every page lost; `dst` is ours.
    let copy = unsafe {
        mcsafe::copy_mc_lossy_with(
            Strategy::current(),
            dst.as_mut_ptr(),
            map.base(),
            64 * PAGE,
            |piece| {
                seen += piece.len();
                if seen >= 3 * PAGE {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
    };
    assert_eq!(recovered() - before, 3, "stopped after three signals");
    assert_eq!(copy.faults(), 3);
    assert_eq!(copy.done(), 3 * PAGE);
    assert!(!copy.is_complete());
    let [lost] = copy.lost() else {
        panic!("{copy}")
    };
    assert_eq!((lost.range(), lost.side()), (0..3 * PAGE, Side::Source));
    // Zeros where it went, untouched after the stop.
    assert!(dst[..3 * PAGE].iter().all(|&b| b == 0));
    assert!(dst[3 * PAGE..].iter().all(|&b| b == 0xee));
    assert!(copy.to_string().starts_with(
        "12288 of 12288 bytes lost in 1 range (3 signals); first: source bytes 0..12288 lost"
    ));

    // Without a stop, a source lost entirely is one range however long.
    // SAFETY: as above.
    let all = unsafe { mcsafe::copy_mc_lossy(dst.as_mut_ptr(), map.base(), 64 * PAGE) };
    assert_eq!(all.lost().len(), 1);
    assert_eq!((all.lost_bytes(), all.faults()), (64 * PAGE, 64));
    assert!(dst.iter().all(|&b| b == 0));
}

/// The source under a lost destination is read up to where a store finds the
/// loss (a copy loads before it stores): with the source lost there too, each
/// lost destination page costs its own signal and the source's under it one
/// more, and the report still names only the destination.
#[test]
fn the_source_under_a_lost_destination_is_read_until_the_loss_is_found() {
    let _serial = signal_lock();
    // Both: 4 pages, the last two past the end of their files.
    let dst = LostTail::new(2, 2, 3);
    let src = LostTail::new(2, 2, 4);
    for strategy in Strategy::available() {
        let before = recovered();
        // SAFETY: both mappings are ours; their lost pages fault.
        let copy = unsafe {
            mcsafe::copy_mc_lossy_with(strategy, dst.base(), src.base(), 4 * PAGE, |_| {
                ControlFlow::Continue(())
            })
        };
        let signals = recovered() - before;
        let [lost] = copy.lost() else {
            panic!("{strategy}: {copy}")
        };
        assert_eq!(
            (lost.range(), lost.side()),
            (2 * PAGE..4 * PAGE, Side::Destination),
            "{strategy}: {copy}"
        );
        assert_eq!(copy.faults() as u64, signals, "{strategy}: {copy}");
        // Two destination pages, and a source page under at least the first:
        // the source there was read.
        assert!(
            (3..=4).contains(&signals),
            "{strategy}: {signals} signals: {copy}"
        );
        eprintln!("{strategy}: {signals} signals ({copy})");
        assert_eq!(
            // SAFETY: the first two pages of both mappings are backed.
            unsafe { first_difference(dst.base(), src.base(), 2 * PAGE) },
            None
        );
    }
}

#[test]
fn a_lost_destination_is_skipped_and_reported_once() {
    let _serial = signal_lock();
    // Destination: 4 pages, the last two past the end of their file.
    let dst = LostTail::new(2, 2, 3);
    let src: Vec<u8> = (0..4 * PAGE).map(|i| byte_at(9, i)).collect();
    let before = recovered();
    // SAFETY: `src` is ours; the destination's lost pages fault.
    let copy = unsafe { mcsafe::copy_mc_lossy(dst.base(), src.as_ptr(), 4 * PAGE) };
    assert_eq!(recovered() - before, 2);
    let [lost] = copy.lost() else {
        panic!("{copy}")
    };
    assert_eq!(lost.range(), 2 * PAGE..4 * PAGE);
    assert_eq!(
        (lost.side(), lost.kind()),
        (Side::Destination, FaultKind::AddressError)
    );
    assert_eq!(
        // SAFETY: the mapping's first two pages are backed; `src` is a Vec of 4
        // pages.
        unsafe { first_difference(dst.base(), src.as_ptr(), 2 * PAGE) },
        None
    );
}

#[test]
fn a_granule_holding_both_buffers_is_touched_once_and_reported_once() {
    let _serial = signal_lock();
    // One lost page holds both the source (its first 100 bytes) and the
    // destination (bytes 200..300): it is the destination's loss.
    let map = LostTail::new(1, 1, 5);
    let page = map.boundary();
    let before = recovered();
    // SAFETY: both ranges lie in our mapping's lost page and do not overlap.
    let copy = unsafe { mcsafe::copy_mc_lossy(page.wrapping_add(200), page, 100) };
    assert_eq!(recovered() - before, 1, "{copy}");
    let [lost] = copy.lost() else {
        panic!("{copy}")
    };
    assert_eq!((lost.range(), lost.side()), (0..100, Side::Destination));
    // The source in good memory, the destination straddling into the lost
    // page: bytes before the page copied, then one destination range.
    let src: Vec<u8> = (0..300).map(|i| byte_at(6, i)).collect();
    let dst = page.wrapping_sub(100);
    let before = recovered();
    // SAFETY: `dst..dst+300` is the last 100 bytes of the backed page and the
    // first 200 of the lost one; `src` is ours.
    let copy = unsafe { mcsafe::copy_mc_lossy(dst, src.as_ptr(), 300) };
    assert_eq!(recovered() - before, 1);
    let got: Vec<_> = copy.lost().iter().map(|l| (l.range(), l.side())).collect();
    assert_eq!(got, [(100..300, Side::Destination)]);
    // SAFETY: the first 100 bytes are backed.
    assert_eq!(unsafe { first_difference(dst, src.as_ptr(), 100) }, None);
}
