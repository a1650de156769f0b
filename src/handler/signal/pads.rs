//! The landing-pad table as the SIGBUS handler reads it (signal context, under
//! the lints and forbidden macros of `signal/mod.rs`): the rows the assembly
//! emits (asm/routine.s, LANDING_PAD), resolved, and the binary search of the
//! interrupted program counter. Plain loads from static memory.

/// One landing-pad row as the assembly lays it out: three offsets, each from its
/// own address, and where the range registers are (`REGS_*` in asm/routine.s).
#[repr(C)]
struct Row {
    begin: i32,
    end: i32,
    fixup: i32,
    regs: u32,
}

/// Where a range keeps the call's buffers, for the handler's check that a fault
/// is this call's (asm/routine.s, "Range registers"; each target's context code
/// reads the registers each names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regs {
    /// The saved copies of the arguments (x86-64: `r8` = dst, `r9` = src, `r10` =
    /// len; `REGS_SAVED`).
    Saved,
    /// Still the arguments (x86-64: `rdi` = dst, `rsi` = src, `rdx` = len;
    /// `REGS_ENTRY`).
    Entry,
    /// One buffer and its length (x86-64: `r8` and `r10`; `REGS_ONE_BUFFER`:
    /// fill, checksums).
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

unsafe extern "C" {
    static mcsafe_asm_landing_pads_start: [Row; 0];
    static mcsafe_asm_landing_pads_end: [Row; 0];
}

/// One resolved landing-pad row: a fault with its program counter in
/// `begin..end` resumes at `fixup`.
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

fn rows() -> &'static [Row] {
    let start = (&raw const mcsafe_asm_landing_pads_start).cast::<Row>();
    let end = (&raw const mcsafe_asm_landing_pads_end).cast::<Row>();
    // No arithmetic that could panic: the end lies at or after the start.
    let count = (end as usize)
        .wrapping_sub(start as usize)
        .checked_div(size_of::<Row>())
        .unwrap_or(0);
    // SAFETY: the two symbols bracket the landing-pad section of one object
    // (routine.s puts them in subsections 0 and 2, every row in 1), which holds
    // `count` rows of four 4-byte fields, 4-aligned, never written.
    unsafe { core::slice::from_raw_parts(start, count) }
}

/// The address a self-relative field points at.
pub(crate) fn resolve(field: &i32) -> usize {
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

/// The row whose range holds `pc`: a binary search.
pub(crate) fn find(pc: usize) -> Option<LandingPad> {
    let rows = rows();
    let i = rows.partition_point(|row| resolve(&row.end) <= pc);
    let pad = landing_pad(rows.get(i)?);
    (pad.begin <= pc).then_some(pad)
}
