//! The landing-pad table: code ranges of the copy routines, each with the fixup
//! that ends a routine stopped by a fault inside it.
//!
//! Emitted by the assembly (`LANDING_PAD` in `asm/landing_pads.s`) into its own
//! read-only section, sorted by address. Read by the SIGBUS handler, so every
//! function here is async-signal-safe: plain loads from static memory.
//!
//! Change it, or a routine's ranges (the count in the tests below), then run
//! `cargo test -p mcsafe --lib table` and `cargo test -p mcsafe-tests --test
//! every_instruction`.

/// One row as the assembly lays it out: three offsets, each from its own address,
/// and where the range registers are (`REGS_*` in asm/landing_pads.s).
#[repr(C)]
struct Row {
    begin: i32,
    end: i32,
    fixup: i32,
    regs: u32,
}

/// Where a range keeps the call's buffers, for the handler's check that a fault
/// is this call's (asm/landing_pads.s, "Range registers").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regs {
    /// `r8` = dst, `r9` = src, `r10` = len (`REGS_SAVED`).
    Saved,
    /// Still the arguments: `rdi` = dst, `rsi` = src, `rdx` = len (`REGS_ENTRY`).
    Entry,
}

unsafe extern "C" {
    static mcsafe_asm_landing_pads_start: [Row; 0];
    static mcsafe_asm_landing_pads_end: [Row; 0];
}

/// One resolved row: a fault with RIP in `begin..end` resumes at `fixup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LandingPad {
    /// First byte of the range.
    pub begin: usize,
    /// One past the last byte of the range.
    pub end: usize,
    /// Where execution resumes.
    pub fixup: usize,
    /// Where the range registers are.
    pub regs: Regs,
}

fn rows() -> &'static [Row] {
    let start = (&raw const mcsafe_asm_landing_pads_start).cast::<Row>();
    let end = (&raw const mcsafe_asm_landing_pads_end).cast::<Row>();
    let count = (end as usize - start as usize) / size_of::<Row>();
    // SAFETY: the two symbols bracket the table section of one object
    // (landing_pads.s puts them in subsections 0 and 2, every row in 1), which holds
    // `count` rows of four 4-byte fields, 4-aligned, never written.
    unsafe { core::slice::from_raw_parts(start, count) }
}

/// The address a self-relative field points at.
fn resolve(field: &i32) -> usize {
    (field as *const i32 as usize).wrapping_add_signed(*field as isize)
}

fn landing_pad(row: &Row) -> LandingPad {
    LandingPad {
        begin: resolve(&row.begin),
        end: resolve(&row.end),
        fixup: resolve(&row.fixup),
        regs: if row.regs == 1 {
            Regs::Entry
        } else {
            Regs::Saved
        },
    }
}

/// Every row, in table order.
pub fn landing_pads() -> impl Iterator<Item = LandingPad> {
    rows().iter().map(landing_pad)
}

/// The row whose range holds `rip`: a binary search, async-signal-safe.
pub(crate) fn find(rip: usize) -> Option<LandingPad> {
    let rows = rows();
    let i = rows.partition_point(|row| resolve(&row.end) <= rip);
    let pad = landing_pad(rows.get(i)?);
    (pad.begin <= rip).then_some(pad)
}

/// True when the ranges are non-empty, sorted, disjoint, name a known register
/// map, and no fixup lies inside a range (a fault in a fixup must not be taken
/// for a copy fault).
pub(crate) fn is_well_formed() -> bool {
    let pads: Vec<LandingPad> = landing_pads().collect();
    rows().iter().all(|r| r.regs <= 1) && pads_are_well_formed(&pads)
}

/// [`is_well_formed`]'s rules over resolved rows, apart so that its tests can
/// hand it broken tables.
fn pads_are_well_formed(pads: &[LandingPad]) -> bool {
    let inside_a_range = |at: usize| pads.iter().any(|q| q.begin <= at && at < q.end);
    !pads.is_empty()
        && pads.iter().all(|p| p.begin < p.end)
        && pads.windows(2).all(|w| w[0].end <= w[1].begin)
        && pads.iter().all(|p| !inside_a_range(p.fixup))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entry addresses of every routine with landing pads, sorted.
    fn entries() -> Vec<usize> {
        let mut entries: Vec<usize> = crate::Strategy::ALL
            .iter()
            .map(|s| super::super::routine_addr(*s))
            .chain([1, 2, 4, 8].map(|n| super::super::exact_addr(n).unwrap()))
            .chain([
                super::super::fill_addr(),
                super::super::crc32c_addr(),
                super::super::crc32c_fold_addr(super::super::CrcRoutine::Fold256),
                super::super::crc32c_fold_addr(super::super::CrcRoutine::Fold128),
            ])
            .chain(
                [
                    super::super::CrcRoutine::Fold256,
                    super::super::CrcRoutine::Fold128,
                ]
                .map(|r| r.copy_addr().unwrap()),
            )
            .collect();
        entries.sort_unstable();
        entries
    }

    #[test]
    fn the_emitted_table_is_well_formed_with_the_ranges_of_every_routine() {
        assert!(is_well_formed());
        // Two ranges per copy routine (4 strategies: the argument check and the
        // code that keeps the arguments in place, then the code that moves them),
        // one per exact size (4) and for the fill; the crc32c routine has five
        // (asm/crc32c.s: a main range split by the two one-instruction ranges that
        // follow its `crc32`s), the two folding ones four each (asm/crc32c_fold.s:
        // split by the commit window and by the return after a short last block),
        // and so do the two copy-and-checksum ones (asm/copy_crc32c.s).
        assert_eq!(landing_pads().count(), 4 * 2 + 4 + 1 + 5 + 2 * 4 + 2 * 4);
    }

    #[test]
    fn broken_tables_are_refused() {
        let pad = |begin, end, fixup| LandingPad {
            begin,
            end,
            fixup,
            regs: Regs::Saved,
        };
        let good = [pad(100, 110, 200), pad(110, 120, 210), pad(130, 140, 120)];
        assert!(pads_are_well_formed(&good), "back to back, fixups outside");
        for (broken, why) in [
            (vec![], "empty"),
            (vec![pad(100, 100, 200)], "an empty range"),
            (vec![pad(110, 100, 200)], "a reversed range"),
            (vec![pad(100, 111, 200), pad(110, 120, 210)], "overlapping"),
            (vec![pad(110, 120, 210), pad(100, 110, 200)], "not sorted"),
            (
                vec![pad(100, 110, 115), pad(110, 120, 210)],
                "a fixup in a range",
            ),
            (vec![pad(100, 110, 105)], "a fixup in its own range"),
            (
                vec![pad(100, 110, 200), pad(110, 120, 100)],
                "a fixup at a begin",
            ),
        ] {
            assert!(!pads_are_well_formed(&broken), "{why}: {broken:?}");
        }
    }

    #[test]
    fn find_hits_exactly_the_half_open_ranges() {
        for pad in landing_pads() {
            assert_eq!(find(pad.begin), Some(pad));
            assert_eq!(find(pad.end - 1), Some(pad));
            assert_ne!(find(pad.end), Some(pad), "end is exclusive");
            assert_ne!(find(pad.begin - 1), Some(pad));
            assert_eq!(find(pad.fixup), None, "a fixup is never inside a range");
        }
        assert_eq!(find(0), None);
        assert_eq!(find(usize::MAX), None);
    }

    #[test]
    fn each_routine_starts_with_a_range_or_its_argument_check() {
        // A routine's first range starts at its entry (REGS_ENTRY routines: no
        // prologue) or right after the moves of the range registers; the copy
        // routines' first range covers their argument check too. Ranges of one
        // routine are back to back, with no instruction outside them. (That every
        // instruction that touches the caller's memory lies in a range is checked
        // on the disassembly by tests/every_instruction.rs.)
        let entries = entries();
        let pads: Vec<LandingPad> = landing_pads().collect();
        for (i, entry) in entries.iter().enumerate() {
            let next = entries.get(i + 1).copied().unwrap_or(usize::MAX);
            let mine: Vec<&LandingPad> = pads
                .iter()
                .filter(|p| p.begin >= *entry && p.begin < next)
                .collect();
            assert!(!mine.is_empty(), "routine at {entry:#x} has no range");
            let first = mine[0];
            match first.regs {
                Regs::Entry => assert_eq!(first.begin, *entry),
                // After the prologue, whose length this test does not assume.
                Regs::Saved => assert!(first.begin > *entry),
            }
            for w in mine.windows(2) {
                assert_eq!(w[0].end, w[1].begin, "ranges of a routine are contiguous");
            }
        }
    }
}
