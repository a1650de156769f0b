//! The lost granules a lossy copy has met and that can still matter, kept so
//! that every question the loop asks costs the same however much is lost.
//!
//! A granule is kept as its parts: the copy offsets it covers in the
//! destination and in the source (a granule may lie in one buffer, or, a huge
//! page holding both, in the two). Each buffer's parts are disjoint (granules
//! are), so sorted by their start they are sorted by their end too. The loop
//! only moves forward, and a part that ends at or before its position can never
//! be touched again (every routine it runs starts there): such parts are
//! dropped from the front. What is left are the parts ahead of the loop: the
//! granule it stands in, and those a routine reached ahead of its progress (a
//! vector loop's lookahead, a late machine check). So, in each buffer:
//! - the part holding the loop's position, if any, is the first one;
//! - the next part to begin after it is the first or the second one;
//! - a new granule goes before every part already ahead (the routine that met
//!   it stopped before the next known part), at the front once the passed
//!   ones are dropped.
//!
//! Lookups read at most two parts per buffer; an insertion is a binary search
//! and an insertion near the front of a `VecDeque`; dropping is amortized
//! constant. (Keeping every granule met and scanning them, as the first version
//! did, made a copy of `n` lost pages cost `n^2`: issue 20.)
//!
//! Change it, then run `cargo test -p mcsafe --lib lossy` and `cargo test -p
//! mcsafe-tests --test lossy`; `cargo bench --bench lossy` shows the cost per
//! lost page.

use core::ops::Range;
use std::collections::VecDeque;

use crate::FaultKind;

/// A lost granule the loop has met: addresses `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Granule {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: FaultKind,
    pub(super) size: usize,
}

impl Granule {
    /// The granule's part of the buffer at `base`, as copy offsets in `0..len`
    /// (empty when it misses the buffer).
    pub(super) fn offsets(&self, base: usize, len: usize) -> Range<usize> {
        self.start.saturating_sub(base).min(len)..self.end.saturating_sub(base).min(len)
    }
}

/// One of the copy's two buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Buffer {
    Destination = 0,
    Source = 1,
}

/// A granule's part of one buffer: copy offsets, never empty.
#[derive(Clone, Debug)]
struct Part {
    offsets: Range<usize>,
    granule: Granule,
}

/// The known lost granules of a copy of `len` bytes between the buffers at
/// `bases`, as parts of each buffer, sorted.
#[derive(Debug)]
pub(super) struct Granules {
    bases: [usize; 2],
    len: usize,
    parts: [VecDeque<Part>; 2],
}

impl Granules {
    pub(super) fn new(dst: usize, src: usize, len: usize) -> Granules {
        Granules {
            bases: [dst, src],
            len,
            parts: [VecDeque::new(), VecDeque::new()],
        }
    }

    /// Takes in a granule a routine has just faulted on. Returns `false`, and
    /// keeps nothing, if it overlaps a granule still known: then a routine
    /// touched a lost granule again, which the loop must never let happen.
    pub(super) fn insert(&mut self, granule: Granule) -> bool {
        let mut places = [None, None];
        for (b, place) in places.iter_mut().enumerate() {
            let offsets = granule.offsets(self.bases[b], self.len);
            if offsets.is_empty() {
                continue;
            }
            let parts = &self.parts[b];
            let i = parts.partition_point(|p| p.offsets.start < offsets.start);
            let after_previous = i == 0 || parts[i - 1].offsets.end <= offsets.start;
            let before_next = parts.get(i).is_none_or(|p| offsets.end <= p.offsets.start);
            if !(after_previous && before_next) {
                return false;
            }
            *place = Some((i, offsets));
        }
        for (b, place) in places.into_iter().enumerate() {
            if let Some((i, offsets)) = place {
                self.parts[b].insert(i, Part { offsets, granule });
            }
        }
        true
    }

    /// The first copy offset at or after `step` inside `granule`, in either
    /// buffer, or `None` if it lies in neither after `step`.
    pub(super) fn first_byte_from(&self, granule: Granule, step: usize) -> Option<usize> {
        self.bases
            .iter()
            .map(|&base| granule.offsets(base, self.len))
            .filter(|r| r.end > step)
            .map(|r| r.start.max(step))
            .min()
    }

    /// Forgets the parts that end at or before copy offset `pos`: the loop has
    /// gone past them and starts every routine at `pos` or later. Call it
    /// whenever the loop moves, before [`covering`](Granules::covering) and
    /// [`next_after`](Granules::next_after).
    pub(super) fn forget_before(&mut self, pos: usize) {
        for parts in &mut self.parts {
            while parts.front().is_some_and(|p| p.offsets.end <= pos) {
                parts.pop_front();
            }
        }
    }

    /// The known granule of `buffer` that holds copy offset `pos`, and where
    /// its part of the buffer ends.
    pub(super) fn covering(&self, buffer: Buffer, pos: usize) -> Option<(Granule, usize)> {
        let first = self.parts[buffer as usize].front()?;
        debug_assert!(first.offsets.end > pos, "forget_before({pos}) first");
        (first.offsets.start <= pos).then_some((first.granule, first.offsets.end))
    }

    /// Where the next known part after copy offset `pos` begins, in either
    /// buffer, or `len` if none does.
    pub(super) fn next_after(&self, pos: usize) -> usize {
        self.parts
            .iter()
            .filter_map(|parts| {
                // Only the first part can hold `pos`: the next one begins after it.
                parts
                    .iter()
                    .take(2)
                    .map(|p| p.offsets.start)
                    .find(|&start| start > pos)
            })
            .min()
            .unwrap_or(self.len)
    }

    /// Parts kept, in both buffers.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.parts.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 0x1000;

    fn page(start: usize) -> Granule {
        Granule {
            start,
            end: start + PAGE,
            kind: FaultKind::AddressError,
            size: PAGE,
        }
    }

    #[test]
    fn a_granule_is_clipped_to_each_buffer() {
        let g = Granule {
            start: 0x10000,
            end: 0x11000,
            kind: FaultKind::Poison,
            size: 0x1000,
        };
        assert_eq!(g.offsets(0x10800, 0x2000), 0..0x800);
        assert_eq!(g.offsets(0xf000, 0x2000), 0x1000..0x2000);
        assert_eq!(g.offsets(0xf000, 0x1800), 0x1000..0x1800);
        assert!(g.offsets(0x20000, 0x1000).is_empty());
        assert!(g.offsets(0x8000, 0x1000).is_empty());
    }

    /// A source lost whole, page after page, as the loop meets it: the loop
    /// keeps one part at a time, however many pages it has met (the first
    /// version kept all of them, each seen from the destination too).
    #[test]
    fn a_source_lost_whole_keeps_one_part_at_a_time() {
        let (dst, src, len) = (0x1000_0000, 0x4000_0000, 4096 * PAGE);
        let mut known = Granules::new(dst, src, len);
        let mut pos = 0;
        while pos < len {
            known.forget_before(pos);
            assert_eq!(known.covering(Buffer::Source, pos), None);
            assert_eq!(known.next_after(pos), len);
            assert!(known.insert(page(src + pos)));
            assert!(known.kept() <= 1, "{} parts kept at {pos:#x}", known.kept());
            let (g, end) = known.covering(Buffer::Source, pos).unwrap();
            assert_eq!((g, end), (page(src + pos), pos + PAGE));
            assert_eq!(known.covering(Buffer::Destination, pos), None);
            pos = end;
        }
        known.forget_before(len);
        assert_eq!(known.kept(), 0);
    }

    #[test]
    fn the_next_part_is_found_in_either_buffer_and_passed_parts_are_forgotten() {
        let (dst, src, len) = (0x10_0000, 0x20_0000, 16 * PAGE);
        let mut known = Granules::new(dst, src, len);
        // Met in the order a vector loop may meet them: ahead first.
        assert!(known.insert(page(src + 9 * PAGE)));
        assert!(known.insert(page(dst + 5 * PAGE)));
        assert!(known.insert(page(src + 2 * PAGE)));
        known.forget_before(0);
        assert_eq!(known.next_after(0), 2 * PAGE);
        assert_eq!(known.covering(Buffer::Source, 0), None);
        known.forget_before(2 * PAGE + 7);
        assert_eq!(
            known.covering(Buffer::Source, 2 * PAGE + 7),
            Some((page(src + 2 * PAGE), 3 * PAGE))
        );
        assert_eq!(known.next_after(2 * PAGE + 7), 5 * PAGE);
        known.forget_before(3 * PAGE);
        assert_eq!(known.kept(), 2);
        assert_eq!(known.covering(Buffer::Source, 3 * PAGE), None);
        assert_eq!(known.next_after(3 * PAGE), 5 * PAGE);
        known.forget_before(5 * PAGE);
        assert_eq!(
            known.covering(Buffer::Destination, 5 * PAGE),
            Some((page(dst + 5 * PAGE), 6 * PAGE))
        );
        assert_eq!(known.next_after(5 * PAGE), 9 * PAGE);
        known.forget_before(10 * PAGE);
        assert_eq!((known.kept(), known.next_after(10 * PAGE)), (0, len));
    }

    #[test]
    fn a_granule_met_again_is_refused_and_nothing_is_kept_of_it() {
        let (dst, src, len) = (0x10_0000, 0x20_0000, 16 * PAGE);
        let mut known = Granules::new(dst, src, len);
        assert!(known.insert(page(src + 3 * PAGE)));
        assert!(!known.insert(page(src + 3 * PAGE)), "the same page");
        let huge = Granule {
            start: src,
            end: src + 8 * PAGE,
            kind: FaultKind::Poison,
            size: 8 * PAGE,
        };
        assert!(!known.insert(huge), "a larger granule around it");
        assert_eq!(known.kept(), 1);
        // Neighbours on both sides are fine.
        assert!(known.insert(page(src + 2 * PAGE)));
        assert!(known.insert(page(src + 4 * PAGE)));
        assert_eq!(known.kept(), 3);
    }

    /// A huge page holding the end of the source and the start of the
    /// destination: one granule, a part in each buffer.
    #[test]
    fn a_granule_holding_both_buffers_has_a_part_in_each() {
        let huge = 0x20_0000;
        let (src, dst, len) = (huge + 0x1000, huge + 0x11000, 0x10000);
        let g = Granule {
            start: huge,
            end: huge + 0x20_0000,
            kind: FaultKind::Poison,
            size: 0x20_0000,
        };
        let mut known = Granules::new(dst, src, len);
        assert!(known.insert(g));
        assert_eq!(known.kept(), 2);
        known.forget_before(0);
        assert_eq!(known.covering(Buffer::Destination, 0), Some((g, len)));
        assert_eq!(known.covering(Buffer::Source, 0), Some((g, len)));
        // Seen again from either buffer, it is refused.
        let inside = page(dst + 0x2000);
        assert!(!known.insert(inside));
    }

    #[test]
    fn a_granule_outside_both_buffers_is_not_kept() {
        let mut known = Granules::new(0x10_0000, 0x20_0000, PAGE);
        assert!(known.insert(page(0x30_0000)));
        assert_eq!(known.kept(), 0);
        assert_eq!(known.next_after(0), PAGE);
    }
}
