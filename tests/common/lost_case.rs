//! One case of the lost-pages property, shared by the proptest
//! (`tests/lost_pages.rs`) and the fuzz target (`fuzz/`): a copy of any length
//! between two reused mappings, each with any set of lost pages, checked
//! against what the contract says: `copied` is exactly the bytes before the
//! first lost page on either side, the side and address name that page, the
//! prefix is exact, and nothing outside `dst..dst+len` is written.
#![allow(dead_code)]

use std::cell::RefCell;

use crate::common::*;
use crate::pages::{Backing, Pages};
use mcsafe::{FaultKind, Side, Strategy};

/// `assert_eq!` that returns the failure as an `Err(String)`.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(, $($what:tt)+)?) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            let what: String = String::new() $(+ &format!($($what)+))?;
            return Err(format!("{left:?} != {right:?}: {what}"));
        }
    }};
}

/// The longest copy, and the mapping size: room for it from any offset in
/// the first page, plus one page after it.
pub const LONGEST: usize = 1 << 20;
const PAGES: usize = LONGEST / PAGE + 3;

struct World {
    src: [Pages; 2],
    dst: [Pages; 2],
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

pub fn world() -> Option<()> {
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

/// Lost pages as positions to be mapped onto the pages the copy spans (so that
/// most of them matter, whatever the length), on a backing.
#[derive(Clone, Debug)]
pub struct Lost {
    pub backing: Backing,
    pub positions: Vec<u16>,
}

impl Lost {
    /// The lost page indices, for a copy spanning pages 0..span (and one more:
    /// the page right after the copy may be lost too, and must not matter).
    pub fn pages(&self, span: usize) -> Vec<usize> {
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

pub fn run_case(
    strategy: Strategy,
    len: usize,
    src_at: usize,
    dst_at: usize,
    src_lost: &Lost,
    dst_lost: &Lost,
) -> Result<(), String> {
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
                    ensure_eq!(f.copied(), want, "{:?}", f);
                    // The side whose lost page stops the copy (either one on a tie).
                    let (pages, at, page) = match f.side() {
                        Side::Source => (src, s as usize, sc),
                        _ => (dst, d as usize, dc),
                    };
                    let (side_cut, page) =
                        page.ok_or_else(|| format!("{f:?}: that side lost nothing"))?;
                    ensure_eq!(side_cut, want, "{:?}", f);
                    let page_addr = pages.base() as usize + page * PAGE;
                    ensure_eq!(f.addr() & !(PAGE - 1), page_addr, "{:?} at {:#x}", f, at);
                    ensure_eq!(f.granule(), PAGE);
                    ensure_eq!(f.kind(), expected_kind(pages.backing()));
                    want
                }
                (r, sc, dc) => {
                    return Err(format!("{r:?}, expected cuts {sc:?} {dc:?}"));
                }
            };
            // SAFETY: the prefixes lie before every lost page of both sides.
            ensure_eq!(unsafe { first_difference(d, s, copied) }, None, "prefix");
            // Nothing written before dst or past dst+len (where readable).
            for i in (dst_at.saturating_sub(64)..dst_at).chain(dst_at + len..dst_at + len + 64) {
                if i < PAGES * PAGE && !dst.is_lost(i / PAGE) {
                    // SAFETY: inside the mapping, in a page that is not lost.
                    let b = unsafe { dst.base().add(i).read() };
                    ensure_eq!(
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
