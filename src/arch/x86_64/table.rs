//! The two tables the assembly emits (asm/routine.s, "The tables"): the
//! landing pads, one row per code range of a routine with the fixup that ends it
//! after a fault, and the descriptors, one row per routine. Both are sorted by
//! address, in read-only sections bracketed by start and end symbols.
//!
//! The SIGBUS handler searches the landing pads ([`find`]), so every function it
//! calls here is async-signal-safe: plain loads from static memory. The
//! descriptors are what the tests walk (every routine, its convention, its ranges,
//! what it needs of the CPU) and what `cpu.rs` reads to tell which routines run.
//!
//! Change it, or a routine's declaration, then run `cargo test -p mcsafe --lib
//! table` and `cargo test -p mcsafe-tests --test every_instruction`.

use super::cpu::Needs;

/// One landing-pad row as the assembly lays it out: three offsets, each from its
/// own address, and where the range registers are (`REGS_*` in asm/routine.s).
#[repr(C)]
struct Row {
    begin: i32,
    end: i32,
    fixup: i32,
    regs: u32,
}

/// One descriptor row as the assembly lays it out (END_ROUTINE): entry, end and
/// name as offsets from their own addresses, then the convention, the number of
/// landing-pad rows and the CPU needs.
#[repr(C)]
struct DescriptorRow {
    entry: i32,
    end: i32,
    name: i32,
    convention: u8,
    ranges: u8,
    needs: u16,
}

/// Where a range keeps the call's buffers, for the handler's check that a fault
/// is this call's (asm/routine.s, "Range registers").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regs {
    /// `r8` = dst, `r9` = src, `r10` = len (`REGS_SAVED`).
    Saved,
    /// Still the arguments: `rdi` = dst, `rsi` = src, `rdx` = len (`REGS_ENTRY`).
    Entry,
    /// `r8` = the one buffer, `r10` = len (`REGS_ONE_BUFFER`: fill, checksums).
    OneBuffer,
}

impl Regs {
    fn of(word: u32) -> Option<Regs> {
        match word {
            0 => Some(Regs::Saved),
            1 => Some(Regs::Entry),
            2 => Some(Regs::OneBuffer),
            _ => None,
        }
    }
}

/// A routine's calling convention (asm/routine.s, CONV_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// rdi = dst, rsi = src, rdx = len: the strategies and the exact-size routines.
    Copy,
    /// rdi = dst, rdx = len, ecx = the byte.
    Fill,
    /// rdi = src, esi = state, rdx = len.
    Crc,
    /// rdi = dst, rcx = src, rdx = len, esi = state.
    CopyCrc,
    /// The C API's `int f(dst, src, len, context)`.
    CCopy,
}

unsafe extern "C" {
    static mcsafe_asm_landing_pads_start: [Row; 0];
    static mcsafe_asm_landing_pads_end: [Row; 0];
    static mcsafe_asm_routines_start: [DescriptorRow; 0];
    static mcsafe_asm_routines_end: [DescriptorRow; 0];
}

/// One resolved landing-pad row: a fault with RIP in `begin..end` resumes at `fixup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LandingPad {
    /// First byte of the range.
    pub begin: usize,
    /// One past the last byte of the range.
    pub end: usize,
    /// Where execution resumes.
    pub fixup: usize,
    /// Where the range registers are (`None`: a malformed row, which install refuses).
    pub regs: Option<Regs>,
}

/// One resolved descriptor: a routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// `mcsafe_asm_<name>`: its entry.
    pub entry: usize,
    /// One past its last byte (its fixups included).
    pub end: usize,
    /// Its name in asm/ (`copy_avx2`).
    pub name: &'static str,
    /// How it is called (`None`: a malformed row).
    pub convention: Option<Convention>,
    /// How many landing-pad rows it emitted.
    pub ranges: usize,
    /// What it needs of the CPU.
    pub needs: Needs,
}

/// The rows between two symbols of one section.
///
/// # Safety
/// `start` and `end` bracket rows of type `T` (asm/routine.s, TABLE): `end` is
/// `start` plus a whole number of rows, all 4-aligned, never written.
unsafe fn between<T>(start: *const T, end: *const T) -> &'static [T] {
    let count = (end as usize - start as usize) / size_of::<T>();
    // SAFETY: per this function's contract.
    unsafe { core::slice::from_raw_parts(start, count) }
}

fn rows() -> &'static [Row] {
    // SAFETY: the two symbols bracket the landing-pad section of one object
    // (routine.s puts them in subsections 0 and 2, every row in 1).
    unsafe {
        between(
            (&raw const mcsafe_asm_landing_pads_start).cast(),
            (&raw const mcsafe_asm_landing_pads_end).cast(),
        )
    }
}

fn descriptor_rows() -> &'static [DescriptorRow] {
    // SAFETY: as in `rows`, for the descriptor section.
    unsafe {
        between(
            (&raw const mcsafe_asm_routines_start).cast(),
            (&raw const mcsafe_asm_routines_end).cast(),
        )
    }
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
        regs: Regs::of(row.regs),
    }
}

/// Every landing-pad row, in table order.
pub fn landing_pads() -> impl Iterator<Item = LandingPad> {
    rows().iter().map(landing_pad)
}

/// Every routine, in table (address) order.
pub fn descriptors() -> impl Iterator<Item = Descriptor> {
    descriptor_rows().iter().map(|row| {
        // SAFETY: the name field points at a NUL-terminated ASCII string in
        // .rodata (END_ROUTINE's .asciz), never written.
        let name = unsafe { core::ffi::CStr::from_ptr(resolve(&row.name) as *const _) };
        Descriptor {
            entry: resolve(&row.entry),
            end: resolve(&row.end),
            name: name.to_str().unwrap_or("?"),
            convention: match row.convention {
                0 => Some(Convention::Copy),
                1 => Some(Convention::Fill),
                2 => Some(Convention::Crc),
                3 => Some(Convention::CopyCrc),
                4 => Some(Convention::CCopy),
                _ => None,
            },
            ranges: usize::from(row.ranges),
            needs: Needs::from_bits(row.needs),
        }
    })
}

/// The descriptor of the routine whose entry is `entry`.
pub fn descriptor_at(entry: usize) -> Option<Descriptor> {
    descriptors().find(|d| d.entry == entry)
}

/// The row whose range holds `rip`: a binary search, async-signal-safe.
pub(crate) fn find(rip: usize) -> Option<LandingPad> {
    let rows = rows();
    let i = rows.partition_point(|row| resolve(&row.end) <= rip);
    let pad = landing_pad(rows.get(i)?);
    (pad.begin <= rip).then_some(pad)
}

/// True when the landing pads are non-empty, sorted, disjoint, name a known
/// register map, and no fixup lies inside a range (a fault in a fixup must not be
/// taken for a copy fault); and when every routine is well described: its rows lie
/// inside it, as many as it declared, every row belongs to a routine.
pub(crate) fn is_well_formed() -> bool {
    let pads: Vec<LandingPad> = landing_pads().collect();
    let routines: Vec<Descriptor> = descriptors().collect();
    pads_are_well_formed(&pads) && routines_are_well_formed(&routines, &pads)
}

/// [`is_well_formed`]'s rules over resolved landing pads, apart so that its tests
/// can hand it broken tables.
fn pads_are_well_formed(pads: &[LandingPad]) -> bool {
    let inside_a_range = |at: usize| pads.iter().any(|q| q.begin <= at && at < q.end);
    !pads.is_empty()
        && pads.iter().all(|p| p.begin < p.end && p.regs.is_some())
        && pads.windows(2).all(|w| w[0].end <= w[1].begin)
        && pads.iter().all(|p| !inside_a_range(p.fixup))
}

/// [`is_well_formed`]'s rules over the descriptors: sorted and disjoint, each
/// with a convention, its rows inside it and as many as it says, every row inside
/// some routine.
fn routines_are_well_formed(routines: &[Descriptor], pads: &[LandingPad]) -> bool {
    let mine = |d: &Descriptor| {
        pads.iter()
            .filter(|p| d.entry <= p.begin && p.end <= d.end)
            .count()
    };
    !routines.is_empty()
        && routines.windows(2).all(|w| w[0].end <= w[1].entry)
        && routines.iter().all(|d| {
            d.entry < d.end && d.convention.is_some() && d.ranges > 0 && mine(d) == d.ranges
        })
        && routines.iter().map(mine).sum::<usize>() == pads.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emitted_tables_are_well_formed() {
        assert!(is_well_formed());
    }

    /// Every routine the Rust side runs is in the descriptor table with the
    /// convention its type says, and the table holds no other: the one declaration
    /// (asm/) and its uses (Rust) agree.
    #[test]
    fn the_descriptors_are_the_routines_the_rust_side_runs() {
        let used = super::super::every_routine();
        let all: Vec<Descriptor> = descriptors().collect();
        for &(entry, convention) in &used {
            let d = descriptor_at(entry).unwrap_or_else(|| panic!("no descriptor at {entry:#x}"));
            assert_eq!(d.convention, Some(convention), "{}", d.name);
        }
        for d in &all {
            assert!(
                used.iter().any(|&(entry, _)| entry == d.entry),
                "{} is declared in asm/ but never run",
                d.name
            );
        }
    }

    #[test]
    fn broken_tables_are_refused() {
        let pad = |begin, end, fixup| LandingPad {
            begin,
            end,
            fixup,
            regs: Some(Regs::Saved),
        };
        let good = [pad(100, 110, 200), pad(110, 120, 210), pad(130, 140, 120)];
        assert!(pads_are_well_formed(&good), "back to back, fixups outside");
        let unknown_regs = LandingPad {
            regs: None,
            ..pad(100, 110, 200)
        };
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
            (vec![unknown_regs], "an unknown register map"),
        ] {
            assert!(!pads_are_well_formed(&broken), "{why}: {broken:?}");
        }
        let routine = |entry, end, ranges| Descriptor {
            entry,
            end,
            name: "r",
            convention: Some(Convention::Copy),
            ranges,
            needs: Needs::NONE,
        };
        let pads = [pad(100, 110, 200), pad(110, 120, 210), pad(300, 310, 320)];
        let good = [routine(100, 250, 2), routine(300, 330, 1)];
        assert!(routines_are_well_formed(&good, &pads));
        for (broken, why) in [
            (
                vec![routine(100, 250, 1), routine(300, 330, 1)],
                "a count too low",
            ),
            (
                vec![routine(100, 250, 3), routine(300, 330, 1)],
                "a count too high",
            ),
            (vec![routine(100, 250, 2)], "a row outside every routine"),
            (
                vec![routine(100, 320, 3), routine(300, 330, 1)],
                "overlapping routines",
            ),
            (
                vec![
                    Descriptor {
                        convention: None,
                        ..routine(100, 250, 2)
                    },
                    routine(300, 330, 1),
                ],
                "an unknown convention",
            ),
        ] {
            assert!(!routines_are_well_formed(&broken, &pads), "{why}");
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
        let pads: Vec<LandingPad> = landing_pads().collect();
        for d in descriptors() {
            let mine: Vec<&LandingPad> = pads
                .iter()
                .filter(|p| p.begin >= d.entry && p.end <= d.end)
                .collect();
            assert!(!mine.is_empty(), "{} has no range", d.name);
            let first = mine[0];
            match first.regs {
                // A C API routine first keeps its context on the stack.
                Some(Regs::Entry) if d.convention == Some(Convention::CCopy) => {
                    assert!(first.begin > d.entry, "{}", d.name)
                }
                Some(Regs::Entry) => assert_eq!(first.begin, d.entry, "{}", d.name),
                // After the prologue, whose length this test does not assume.
                _ => assert!(first.begin > d.entry, "{}", d.name),
            }
            for w in mine.windows(2) {
                assert_eq!(w[0].end, w[1].begin, "{}: ranges are contiguous", d.name);
            }
        }
    }
}
