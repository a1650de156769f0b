//! The careful forward step: one loop for every routine (copy, fill, checksum,
//! copy and checksum) that turns a routine's progress after a fault into the exact
//! prefix.
//!
//! A routine stopped by a fault reports `progress` bytes known done (a lower bound:
//! vector loads run ahead of stores, a machine check may be reported late) and a
//! lost granule that cuts the operation at `cut` bytes (the bytes before it, on the
//! faulting side, measured over the whole operation: [`describe`]). Then:
//! - progress < cut: run the careful routine over `progress..cut`, which ends before
//!   the granule and so never touches it. That run may fault on another, earlier
//!   granule (lost while the operation ran, or past one a routine that reads ahead
//!   skipped): it becomes the new cut. Each round strictly shortens the range, so
//!   the loop ends.
//! - progress > cut (the routine got past the granule before the report): for
//!   stores, the bytes up to the cut are done; a checksum's state then holds bytes
//!   past the cut (maybe poison), so it starts over from 0 up to the cut (the
//!   overshoot rule, [`Operation::OVERSHOOT_KEEPS_PREFIX`]).
//! - progress == cut: done.
//!
//! Change it, then run `cargo test -p mcsafe --lib`, `cargo test -p mcsafe-tests
//! --test forward_step --test sweep --test lost_pages --test storage_sweep --test
//! copy_crc_sweep --test every_instruction` and `cargo xtask vm-test`.

use crate::arch::{Arch, Stopped, Target};
use crate::copy::{cut, granule};
use crate::{Fault, FaultKind, Side};

/// An operation the forward step can finish: its careful routine, run over a part.
pub(crate) trait Operation {
    /// What a run carries from one part to the next (a CRC state; `()` for stores).
    type State: core::marker::Copy;
    /// Whether a run that reported progress past the cut leaves the bytes up to the
    /// cut done with a usable state (stores: yes; a checksum: no, start over).
    const OVERSHOOT_KEEPS_PREFIX: bool;
    /// The state of nothing done.
    fn start(&self) -> Self::State;
    /// Runs the careful routine over bytes `from..to` (`to` at most the cut),
    /// continuing `state`. When a fault stops it: the bytes known done from the
    /// start of the operation, the state of exactly those, and the fault measured
    /// over the whole operation.
    ///
    /// # Safety
    /// `from < to <= len` of the operation, whose ranges its creator vouched for.
    unsafe fn step(
        &mut self,
        from: usize,
        to: usize,
        state: Self::State,
    ) -> Result<Self::State, (usize, Self::State, Fault)>;
}

/// The forward step after a first run stopped with `progress` bytes done, `state`
/// the state of exactly those, and `fault`. Returns the fault of the exact prefix
/// and the state of exactly its bytes.
///
/// # Safety
/// As for [`Operation::step`].
pub(crate) unsafe fn finish<O: Operation>(
    op: &mut O,
    mut progress: usize,
    mut state: O::State,
    mut fault: Fault,
) -> (O::State, Fault) {
    loop {
        let cut = fault.copied();
        if progress > cut {
            if O::OVERSHOOT_KEEPS_PREFIX {
                return (state, fault);
            }
            (progress, state) = (0, op.start());
        }
        if progress == cut {
            return (state, fault);
        }
        // SAFETY: progress < cut <= len; per this function's contract.
        match unsafe { op.step(progress, cut, state) } {
            Ok(state) => return (state, fault),
            Err(next) => (progress, state, fault) = next,
        }
    }
}

/// The whole operation with its careful routine: a first run over `0..len`, then
/// the forward step.
///
/// # Safety
/// As for [`Operation::step`], `len > 0`.
pub(crate) unsafe fn run<O: Operation>(
    op: &mut O,
    len: usize,
) -> Result<O::State, (O::State, Fault)> {
    let start = op.start();
    // SAFETY: 0 < len; per this function's contract.
    match unsafe { op.step(0, len, start) } {
        Ok(state) => Ok(state),
        // SAFETY: as above.
        Err((progress, state, fault)) => Err(unsafe { finish(op, progress, state, fault) }),
    }
}

/// The [`Fault`] of a stopped routine, measured over the whole operation
/// (`dst..dst+len`, `src..src+len`), whatever part the routine ran on: a granule
/// lost before the part's start (under a forward step, or under a copy racing a
/// truncation) still cuts the operation at its own boundary. `only` names the side
/// of a routine that has one buffer (fill: the destination, a checksum: the
/// source), passed as both `dst` and `src`.
pub(crate) fn describe(
    stopped: Stopped,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    only: Option<Side>,
) -> Fault {
    let kind = match stopped.code {
        libc::BUS_MCEERR_AR => FaultKind::Poison,
        libc::BUS_OBJERR => FaultKind::ObjectError,
        _ => FaultKind::AddressError,
    };
    let granule = granule(stopped.addr_lsb, Arch::page_size());
    // The handler redirected only because `cut` found an overlap with the
    // routine's range, which lies inside this one.
    let (side, copied) =
        cut(stopped.addr, granule, dst as usize, src as usize, len).unwrap_or((Side::Source, 0));
    Fault::new(copied, only.unwrap_or(side), kind, stopped.addr, granule)
}

/// A copy (or a store of a value): the copy routine over the same ranges.
pub(crate) struct Copy {
    pub(crate) routine: <Arch as Target>::Copy,
    pub(crate) dst: *mut u8,
    pub(crate) src: *const u8,
    pub(crate) len: usize,
}

impl Operation for Copy {
    type State = ();
    const OVERSHOOT_KEEPS_PREFIX: bool = true;

    fn start(&self) {}

    unsafe fn step(&mut self, from: usize, to: usize, (): ()) -> Result<(), (usize, (), Fault)> {
        let (dst, src) = (self.dst.wrapping_add(from), self.src.wrapping_add(from));
        // SAFETY: from < to <= len: inside the operation's ranges.
        unsafe { Arch::run_copy(self.routine, dst, src, to - from) }.map_err(|stopped| {
            let fault = describe(stopped, self.dst, self.src, self.len, None);
            (from + stopped.progress, (), fault)
        })
    }
}

/// The rest of a copy whose first run stopped on a fault: the forward step with
/// `routine`, the copy routine that stopped. Out of line.
///
/// # Safety
/// As for the routine's run over `dst..dst+len` and `src..src+len` (ranges checked,
/// handler installed).
#[cold]
#[inline(never)]
pub(crate) unsafe fn copy_after(
    routine: <Arch as Target>::Copy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    stopped: Stopped,
) -> Fault {
    let fault = describe(stopped, dst, src, len, None);
    let mut op = Copy {
        routine,
        dst,
        src,
        len,
    };
    // SAFETY: per this function's contract.
    unsafe { finish(&mut op, stopped.progress, (), fault) }.1
}

/// A fill of `len` bytes at `dst` with `byte`.
pub(crate) struct Fill {
    pub(crate) dst: *mut u8,
    pub(crate) byte: u8,
    pub(crate) len: usize,
}

impl Operation for Fill {
    type State = ();
    const OVERSHOOT_KEEPS_PREFIX: bool = true;

    fn start(&self) {}

    unsafe fn step(&mut self, from: usize, to: usize, (): ()) -> Result<(), (usize, (), Fault)> {
        let dst = self.dst.wrapping_add(from);
        // SAFETY: from < to <= len: inside the operation's range.
        unsafe { Arch::run_fill(dst, self.byte, to - from) }.map_err(|stopped| {
            let fault = describe(
                stopped,
                self.dst,
                self.dst,
                self.len,
                Some(Side::Destination),
            );
            (from + stopped.progress, (), fault)
        })
    }
}

/// A checksum of `len` bytes at `src`, continuing the state `initial` (not
/// inverted), finished with the one-stream routine: the folding routines read four
/// parts of a block at once, so their first fault may be on a granule past another
/// lost one; a sequential step then meets the earlier one first, and a call over
/// several lost granules takes at most two signals (one per granule, none twice).
pub(crate) struct Checksum {
    pub(crate) routine: <Arch as Target>::Crc,
    pub(crate) src: *const u8,
    pub(crate) len: usize,
    pub(crate) initial: u32,
}

impl Operation for Checksum {
    type State = u32;
    const OVERSHOOT_KEEPS_PREFIX: bool = false;

    fn start(&self) -> u32 {
        self.initial
    }

    unsafe fn step(
        &mut self,
        from: usize,
        to: usize,
        state: u32,
    ) -> Result<u32, (usize, u32, Fault)> {
        let src = self.src.wrapping_add(from);
        // SAFETY: from < to <= len: inside the operation's range.
        let (state, result) = unsafe { Arch::run_crc(self.routine, src, to - from, state) };
        result.map(|()| state).map_err(|stopped| {
            let fault = describe(
                stopped,
                self.src.cast_mut(),
                self.src,
                self.len,
                Some(Side::Source),
            );
            (from + stopped.progress, state, fault)
        })
    }
}
