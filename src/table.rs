//! The two tables the assembly emits (asm/routine.s, "The tables"): the
//! landing pads, one row per code range of a routine with the fixup that ends it
//! after a fault, and the descriptors, one row per routine. Both are sorted by
//! address, in read-only sections bracketed by start and end symbols.
//!
//! The SIGBUS handler searches the landing pads (`handler/signal/pads.rs`, inside
//! the signal-context lints). The descriptors are what the tests walk (every
//! routine, its convention, its ranges, what it needs of the CPU) and what the
//! target reads to tell which routines run here (x86-64: `cpu.rs`).
//!
//! Change it, or a routine's declaration, then run `cargo test -p mcsafe --lib
//! table` and `cargo test -p mcsafe-tests --test every_instruction`.

use crate::handler::signal::pads::resolve;
#[cfg_attr(not(feature = "internals"), allow(unused_imports))] // the test hooks name them
pub use crate::handler::signal::pads::{LandingPad, Regs, landing_pads};

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
    /// `copy_mc`'s `RawResult f(dst, src, len)`: the `Result` itself.
    RustCopy,
}

unsafe extern "C" {
    static mcsafe_asm_routines_start: [DescriptorRow; 0];
    static mcsafe_asm_routines_end: [DescriptorRow; 0];
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
    /// What it needs of the CPU: the target's bits (x86-64: `cpu::Needs`).
    pub needs: u16,
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

fn descriptor_rows() -> &'static [DescriptorRow] {
    // SAFETY: as in `rows`, for the descriptor section.
    unsafe {
        between(
            (&raw const mcsafe_asm_routines_start).cast(),
            (&raw const mcsafe_asm_routines_end).cast(),
        )
    }
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
                5 => Some(Convention::RustCopy),
                _ => None,
            },
            ranges: usize::from(row.ranges),
            needs: row.needs,
        }
    })
}

/// The descriptor of the routine whose entry is `entry`.
pub fn descriptor_at(entry: usize) -> Option<Descriptor> {
    descriptors().find(|d| d.entry == entry)
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
    use crate::handler::signal::pads::find;

    #[test]
    fn the_emitted_tables_are_well_formed() {
        assert!(is_well_formed());
    }

    /// Every routine the Rust side runs is in the descriptor table with the
    /// convention its type says, and the table holds no other: the one declaration
    /// (asm/) and its uses (Rust) agree.
    #[test]
    fn the_descriptors_are_the_routines_the_rust_side_runs() {
        let used = crate::arch::every_routine();
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
            needs: 0,
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
