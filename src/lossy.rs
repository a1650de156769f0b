//! The lossy copy: [`copy_mc_lossy`] goes on past lost granules, leaves zeros
//! in the destination where the source was lost, and lists what was lost.
//!
//! How it works (change it here, then run `cargo test -p mcsafe-tests --test
//! lossy` and, for real poison, `cargo xtask vm-test`): a loop over the copy's
//! offsets that keeps the lost granules it has met (address ranges) and never
//! lets a routine touch one again. At each offset:
//! - inside a known lost granule of the destination: the range is recorded
//!   as lost on the destination side and skipped (nothing can be written
//!   there, and the source is not read from there on; the routine that met
//!   the granule loaded the source under its first bytes before its store
//!   faulted);
//! - inside a known lost granule of the source: the destination is filled with
//!   zeros up to the granule's end (the fill routine), recorded as lost on the
//!   source side;
//! - elsewhere: the copy routine runs up to the next known granule.
//!
//! A routine stopped by a fault teaches the loop one granule; the loop goes on
//! from the routine's progress (a lower bound), which is the careful forward
//! step of `copy.rs` in another form: the next step ends before the granule, so
//! it never touches it. Every granule a routine faulted on stays known for as
//! long as it lies ahead of the loop, including one a vector loop reached
//! before an earlier lost one: so each lost granule costs exactly one signal,
//! which the public `copy_mc` (whose forward step reports only the first
//! granule) could not guarantee here. The known granules are kept in
//! `lossy/granules.rs` ([`Granules`]), where every lookup costs the same
//! however much was lost: a copy of `n` lost pages costs `n` times one.
//!
//! Built on `Arch::run_copy` / `Arch::run_fill` and `forward::describe`, the
//! same primitives `copy_mc` and `fill_mc` run on, all called from the module
//! `calls` at the end of this file. `cargo bench --bench lossy` measures the
//! cost per lost page against a faulting `copy_mc`.

use core::fmt;
use core::ops::{ControlFlow, Range};

mod granules;

use granules::{Buffer, Granule, Granules};

use crate::{FaultKind, Side, Strategy};

/// Copies `len` bytes from `src` to `dst` like [`copy_mc`](crate::copy_mc),
/// but goes on past lost granules: where the source is lost, the destination
/// gets zeros; where the destination is lost, it is skipped. Returns what was
/// lost.
///
/// For readers that want as much as they can get and decide by themselves what
/// a lost range means (a zero-filled page whose records fail their checksums, a
/// hole in a rescued image), as systemd's journal, sapling's indexedlog and
/// `ddrescue` do.
///
/// When it returns, for every offset `i < len`:
/// - in no lost range: `dst[i] == src[i]`;
/// - in a [`Side::Source`] range: `dst[i] == 0`;
/// - in a [`Side::Destination`] range: `dst[i]` could not be written; `src[i]`
///   may have been read (a copy loads before it stores, so the source under a
///   lost destination granule is read up to where the store that found it
///   faulted, and a vector routine's loads may run a few hundred bytes past
///   that), and if that source is lost too, its signal is one of
///   [`LossyCopy::faults`]. Once a destination granule is known lost, the rest
///   of the source under it is not read.
///
/// Each lost granule is touched once and costs one signal, never a retry or a
/// prefault ([`LossyCopy::faults`] counts them). A destination granule lost
/// where the source is lost too is reported once, on the destination side:
/// nothing could be written there whatever the source held.
///
/// Uses [`Strategy::current`]; [`copy_mc_lossy_with`] picks the strategy and
/// can stop the copy early. Allocates (the report, and what it keeps of the
/// granules it met) only when something is lost: so, unlike [`copy_mc`](crate::copy_mc),
/// it is async-signal-safe only as long as nothing is lost.
///
/// # Safety
///
/// As for [`copy_mc`](crate::copy_mc).
///
/// # Panics
///
/// As for [`copy_mc`](crate::copy_mc): before touching memory, on a null
/// pointer, a range that wraps or leaves user space, or overlapping buffers
/// (with `len > 0`); on first use, if the SIGBUS handler cannot be installed.
/// `len == 0` returns an empty report and reads no pointer.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "inject")] {
/// use mcsafe::inject::TruncatedMapping;
/// use mcsafe::{FaultKind, Side};
///
/// // Four pages of 7s, then the file is cut after two: pages 2 and 3 are lost.
/// let map = TruncatedMapping::new(4).unwrap();
/// let page = map.page_size();
/// // SAFETY: our mapping, nothing lost yet.
/// unsafe { map.as_ptr().write_bytes(7, 4 * page) };
/// map.truncate_to(2 * page).unwrap();
///
/// let mut buf = vec![0xffu8; 4 * page];
/// // SAFETY: both buffers are mapped; the lost pages raise SIGBUS, which mcsafe catches.
/// let copy = unsafe { mcsafe::copy_mc_lossy(buf.as_mut_ptr(), map.as_ptr(), 4 * page) };
/// assert_eq!(copy.faults(), 2); // one signal per lost page
/// let [lost] = copy.lost() else { panic!("one range: {copy}") };
/// assert_eq!(lost.range(), 2 * page..4 * page); // neighbours of one kind merged
/// assert_eq!((lost.side(), lost.kind()), (Side::Source, FaultKind::AddressError));
/// assert!(buf[..2 * page].iter().all(|&b| b == 7));
/// assert!(buf[2 * page..].iter().all(|&b| b == 0)); // zeros where the source was lost
/// # }
/// ```
// Inline always: the copy that loses nothing is copy_mc's one call; everything
// else is out of line (`run_after`).
#[inline(always)]
#[track_caller]
pub unsafe fn copy_mc_lossy(dst: *mut u8, src: *const u8, len: usize) -> LossyCopy {
    if calls::nothing_to_copy(dst, src, len) {
        return LossyCopy::whole(0);
    }
    // SAFETY: ranges checked; the caller guarantees the rest.
    unsafe {
        lossy(calls::of(None), dst, src, len, &mut |_| {
            ControlFlow::Continue(())
        })
    }
}

/// [`copy_mc_lossy`] with a chosen [`Strategy`], and `on_lost` called with each
/// lost piece as it is found, in order, before it joins the report: return
/// [`ControlFlow::Break`] to stop the copy right after that piece.
///
/// The way to bound a copy whose source may be lost entirely: each lost
/// granule costs a signal (some microseconds) and the report grows by one
/// entry per run of lost granules (neighbours merge), so a caller that wants a
/// cap counts in `on_lost` and stops. After a stop, [`LossyCopy::done`] says
/// how far the copy got; bytes of `dst` from there on were not written.
///
/// A piece is one lost granule, or the part of it inside the copy, or a part of
/// that split where the other side's loss begins; pieces come in increasing
/// offset order and do not overlap.
///
/// # Safety
///
/// As for [`copy_mc`](crate::copy_mc).
///
/// # Panics
///
/// As for [`copy_mc_lossy`], and, before touching memory and whatever `len` (0 too), if this
/// CPU cannot run `strategy` ([`Strategy::available`] lacks it: an x86-64
/// strategy on aarch64, `AdvSimd` on x86-64, `Avx512` on a CPU without
/// AVX-512): `mcsafe: this CPU cannot run the avx512 strategy (see
/// Strategy::available())`. Its routine never runs (it would raise SIGILL).
///
/// # Example
///
/// Give up once more than 1 MiB is lost:
///
/// ```
/// use std::ops::ControlFlow;
///
/// # fn read_some(dst: *mut u8, src: *const u8, len: usize) -> mcsafe::LossyCopy {
/// let mut lost = 0;
/// // SAFETY: the caller's buffers, as for copy_mc.
/// let copy = unsafe {
///     mcsafe::copy_mc_lossy_with(mcsafe::Strategy::current(), dst, src, len, |piece| {
///         lost += piece.len();
///         if lost > 1 << 20 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
///     })
/// };
/// if copy.done() < len {
///     eprintln!("gave up at byte {}: {copy}", copy.done());
/// }
/// # copy }
/// # let (src, mut dst) = (vec![1u8; 100], vec![0u8; 100]);
/// # assert!(read_some(dst.as_mut_ptr(), src.as_ptr(), 100).is_complete());
/// ```
#[inline(always)]
#[track_caller]
pub unsafe fn copy_mc_lossy_with(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    mut on_lost: impl FnMut(&LostRange) -> ControlFlow<()>,
) -> LossyCopy {
    // The strategy first, as `copy_mc_with` does: refused even for `len == 0`.
    let routine = calls::of(Some(strategy));
    if calls::nothing_to_copy(dst, src, len) {
        return LossyCopy::whole(0);
    }
    // SAFETY: ranges checked; the caller guarantees the rest.
    unsafe { lossy(routine, dst, src, len, &mut on_lost) }
}

/// The copy as `copy_mc` makes it, inline: a copy that loses nothing costs
/// what `copy_mc` costs; the first fault hands over to the loop.
///
/// # Safety
/// As for `copy_with`: ranges checked, `routine` runnable here; `len > 0`
/// unless `routine` is a strategy's and `Arch::CHECKS_COPIES`.
#[inline(always)]
unsafe fn lossy(
    routine: calls::Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    on_lost: &mut dyn FnMut(&LostRange) -> ControlFlow<()>,
) -> LossyCopy {
    // SAFETY: per this function's contract.
    match unsafe { calls::whole_raw(routine, dst, src, len) } {
        Ok(()) => LossyCopy::whole(len),
        // SAFETY: as above.
        Err(stopped) => unsafe { run_after(routine, dst, src, len, stopped, on_lost) },
    }
}

/// [`run`] after the first stop, out of line, so that the inline path above
/// keeps no register and builds no frame.
///
/// # Safety
/// As for [`lossy`].
#[cold]
#[inline(never)]
unsafe fn run_after(
    routine: calls::Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    stopped: calls::Stopped,
    on_lost: &mut dyn FnMut(&LostRange) -> ControlFlow<()>,
) -> LossyCopy {
    let first = calls::stop(stopped, dst, src, len);
    // SAFETY: per this function's contract.
    unsafe { run(routine, dst, src, len, first, on_lost) }
}

/// What a lossy copy did: the lost ranges, in order, and how many signals it
/// took. Returned by [`copy_mc_lossy`] and [`copy_mc_lossy_with`].
///
/// The ranges are offsets from the start of the copy (the same for `src` and
/// `dst`), sorted, disjoint, each clipped to `0..len`. Each one is a run of
/// lost granules of one side and one kind: neighbours of the same side, kind
/// and granule size are merged, so a source lost entirely is one range, and the
/// list holds at most one entry per run (never one per page). Their ends are
/// granule boundaries of the side that lost them, or `0` / `len`.
///
/// `Display` prints a one-line summary.
#[must_use = "the report says which bytes of the destination are not the source's"]
#[derive(Clone, PartialEq, Eq)]
pub struct LossyCopy(Outcome);

/// Two words, so that a copy that loses nothing returns in two registers as
/// `copy_mc`'s `Result` does: returned through memory, the 40-byte report of
/// the first version made a hot 64-byte lossy copy 1.3x `copy_mc`'s time (its
/// four stores, on Emerald Rapids; `cargo bench --bench lossy`, "nothing lost").
#[derive(Clone, PartialEq, Eq)]
enum Outcome {
    /// Nothing lost, no signal: the copy's length.
    Whole(usize),
    /// Anything else, built by the loop (always through [`LossyCopy::from_report`]).
    Report(Box<Report>),
}

/// What the loop builds: the lost ranges, how far it went, the signals taken.
#[derive(Clone, Default, PartialEq, Eq)]
struct Report {
    lost: Vec<LostRange>,
    done: usize,
    faults: usize,
}

/// One run of lost granules in a [`LossyCopy`]: offsets from the start of the
/// copy, the side, and the kind of fault.
///
/// `Display` prints `source bytes 8192..16384 lost: no memory at address
/// (BUS_ADRERR)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LostRange {
    start: usize,
    end: usize,
    side: Side,
    kind: FaultKind,
    granule: usize,
}

impl LossyCopy {
    /// A copy of `len` bytes that lost nothing.
    #[inline(always)]
    fn whole(len: usize) -> LossyCopy {
        LossyCopy(Outcome::Whole(len))
    }

    /// The loop's report; one with nothing lost and no signal is `whole`, so
    /// that equal outcomes compare equal.
    fn from_report(report: Report) -> LossyCopy {
        if report.lost.is_empty() && report.faults == 0 {
            LossyCopy::whole(report.done)
        } else {
            LossyCopy(Outcome::Report(Box::new(report)))
        }
    }

    /// The lost ranges, sorted by offset; empty when nothing was lost.
    pub fn lost(&self) -> &[LostRange] {
        match &self.0 {
            Outcome::Whole(_) => &[],
            Outcome::Report(r) => &r.lost,
        }
    }

    /// The lost ranges, owned.
    pub fn into_lost(self) -> Vec<LostRange> {
        match self.0 {
            Outcome::Whole(_) => Vec::new(),
            Outcome::Report(r) => r.lost,
        }
    }

    /// Whether every byte was copied: nothing lost, and `on_lost` did not stop
    /// the copy.
    #[inline]
    pub fn is_complete(&self) -> bool {
        // A stop always comes right after a lost piece, so an empty list also
        // means the copy ran to the end.
        self.lost().is_empty()
    }

    /// Total bytes in the lost ranges.
    pub fn lost_bytes(&self) -> usize {
        self.lost().iter().map(LostRange::len).sum()
    }

    /// Bytes from the start that the copy went through: all of them, unless
    /// `on_lost` stopped it (then the end of the piece it stopped at).
    pub fn done(&self) -> usize {
        match &self.0 {
            Outcome::Whole(len) => *len,
            Outcome::Report(r) => r.done,
        }
    }

    /// The signals (SIGBUS) this copy took and recovered: one per lost granule.
    pub fn faults(&self) -> usize {
        match &self.0 {
            Outcome::Whole(_) => 0,
            Outcome::Report(r) => r.faults,
        }
    }
}

/// As a struct of its three parts, whichever way it is held.
impl fmt::Debug for LossyCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossyCopy")
            .field("lost", &self.lost())
            .field("done", &self.done())
            .field("faults", &self.faults())
            .finish()
    }
}

impl Report {
    /// Adds a piece, merged into the last range when it continues it.
    fn push(&mut self, piece: LostRange) {
        match self.lost.last_mut() {
            Some(last)
                if last.end == piece.start
                    && (last.side, last.kind, last.granule)
                        == (piece.side, piece.kind, piece.granule) =>
            {
                last.end = piece.end
            }
            _ => self.lost.push(piece),
        }
    }
}

impl LostRange {
    /// Offsets from the start of the copy.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }

    /// Bytes in the range (never 0).
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Always false: a lost range holds at least one byte. (For clippy's
    /// `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Which buffer lost it: [`Side::Source`] (the destination holds zeros
    /// there) or [`Side::Destination`] (not written).
    pub fn side(&self) -> Side {
        self.side
    }

    /// Why it was lost.
    pub fn kind(&self) -> FaultKind {
        self.kind
    }

    /// Size of the granules lost (the page, or a huge page), as
    /// [`Fault::granule`](crate::Fault::granule).
    pub fn granule(&self) -> usize {
        self.granule
    }

    /// The part of the range before offset `end`, if any.
    pub(crate) fn clipped_to(self, end: usize) -> Option<LostRange> {
        (self.start < end).then(|| LostRange {
            end: self.end.min(end),
            ..self
        })
    }
}

impl fmt::Display for LossyCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lost, done, faults) = (self.lost(), self.done(), self.faults());
        let Some(first) = lost.first() else {
            return write!(f, "nothing lost in {done} bytes");
        };
        let ranges = lost.len();
        write!(
            f,
            "{} of {done} bytes lost in {ranges} range{} ({faults} signal{}); first: {first}",
            self.lost_bytes(),
            if ranges == 1 { "" } else { "s" },
            if faults == 1 { "" } else { "s" },
        )
    }
}

impl fmt::Display for LostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes {}..{} lost: {}",
            self.side, self.start, self.end, self.kind
        )
    }
}

/// The loop of the module docs, after the first run of the routine over the
/// whole copy stopped with `first`.
///
/// # Safety
/// As for [`lossy`].
#[cold]
#[inline(never)]
unsafe fn run(
    routine: calls::Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    first: calls::Stop,
    on_lost: &mut dyn FnMut(&LostRange) -> ControlFlow<()>,
) -> LossyCopy {
    let mut report = Report::default();
    let mut known = Granules::new(dst as usize, src as usize, len);
    let mut pos = learn(&mut known, &mut report, first, 0);
    while pos < len {
        known.forget_before(pos);
        // Where the next known granule begins, in either buffer.
        let next = known.next_after(pos);
        let mut record = |report: &mut Report, side, end, g: Granule| {
            let piece = LostRange {
                start: pos,
                end,
                side,
                kind: g.kind,
                granule: g.size,
            };
            report.push(piece);
            on_lost(&piece)
        };
        if let Some((g, end)) = known.covering(Buffer::Destination, pos) {
            let flow = record(&mut report, Side::Destination, end, g);
            pos = end;
            if flow.is_break() {
                break;
            }
        } else if let Some((g, end)) = known.covering(Buffer::Source, pos) {
            let stop = next.min(end);
            // SAFETY: pos < stop <= len: inside the caller's destination, and
            // no known lost granule starts in pos..stop.
            let filled = match unsafe { calls::zeros(dst.wrapping_add(pos), stop - pos) } {
                Ok(()) => stop,
                Err(stopped) => learn(&mut known, &mut report, stopped, pos),
            };
            if filled > pos {
                let flow = record(&mut report, Side::Source, filled, g);
                pos = filled;
                if flow.is_break() {
                    break;
                }
            }
        } else {
            // SAFETY: as above, for both buffers: no known lost granule of
            // either starts in pos..next, and neither covers pos.
            pos = match unsafe { calls::copy(routine, dst, src, pos, next) } {
                Ok(()) => next,
                Err(stopped) => learn(&mut known, &mut report, stopped, pos),
            };
        }
    }
    report.done = pos;
    LossyCopy::from_report(report)
}

/// Takes in the granule of a routine that ran from copy offset `step` and
/// stopped, and returns the offset the loop goes on from: the routine's
/// progress (a lower bound of what it did), but no further than the first byte
/// of either buffer inside the granule (a routine reported as ahead, by a late
/// machine check, did not do the bytes in the granule).
fn learn(known: &mut Granules, report: &mut Report, stopped: calls::Stop, step: usize) -> usize {
    let fault = stopped.fault;
    let start = fault.addr() & !(fault.granule() - 1);
    let granule = Granule {
        start,
        end: start.saturating_add(fault.granule()),
        kind: fault.kind(),
        size: fault.granule(),
    };
    report.faults += 1;
    // The handler redirects a fault only when its granule overlaps the
    // routine's buffers, which lie in step..len: so there is a first byte.
    let first = known
        .first_byte_from(granule, step)
        .expect("mcsafe: a fault outside the copy's buffers reached the lossy copy");
    // A second signal on one granule would break the contract (and, with a
    // fixup that makes no progress, loop forever): fail loudly instead.
    assert!(
        known.insert(granule),
        "mcsafe: the lossy copy touched the lost granule at {start:#x} twice (a bug)"
    );
    (step + stopped.progress).min(first)
}

/// The loop's calls into the routines: every use of `crate::arch`,
/// `crate::copy` and `crate::forward` in this file is here.
mod calls {
    pub(super) use crate::arch::Stopped;
    use crate::arch::{Arch, Target};
    use crate::copy::check_copy;
    use crate::forward::describe;
    use crate::{Fault, Side, Strategy};

    pub(super) type Routine = <Arch as Target>::Copy;

    /// A routine stopped by a fault: the fault, described over the routine's
    /// buffers, and its progress (a lower bound of the bytes it did).
    pub(super) struct Stop {
        pub(super) fault: Fault,
        pub(super) progress: usize,
    }

    /// The routine `copy_mc` runs, or the one of `strategy`.
    #[inline(always)]
    pub(super) fn of(strategy: Option<Strategy>) -> Routine {
        Arch::copy_routine(strategy)
    }

    /// Whether there is nothing to copy (`len == 0`), after `copy_mc`'s range
    /// check (and its panic) where the routines do not check ranges. Where they
    /// do (`Arch::CHECKS_COPIES`), always `false`: the routine refuses bad ranges
    /// with the same panic before any access and returns at once for `len == 0`,
    /// reading no pointer, so the hot path has no branch of its own.
    #[inline(always)]
    #[track_caller]
    pub(super) fn nothing_to_copy(dst: *mut u8, src: *const u8, len: usize) -> bool {
        if Arch::CHECKS_COPIES {
            return false;
        }
        if len == 0 {
            return true;
        }
        check_copy(dst, src, len);
        false
    }

    /// [`whole`] with the stop as the routine reported it.
    ///
    /// # Safety
    /// As for [`whole`].
    #[inline(always)]
    pub(super) unsafe fn whole_raw(
        routine: Routine,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Stopped> {
        // SAFETY: per this function's contract.
        unsafe { Arch::run_copy(routine, dst, src, len) }
    }

    /// The whole copy, as `copy_mc` runs it: nothing else on the way when
    /// nothing is lost.
    ///
    /// # Safety
    /// As for `Arch::run_copy`: ranges checked, `routine` runnable here;
    /// `len > 0` unless `Arch::CHECKS_COPIES` (see [`nothing_to_copy`]).
    #[inline(always)]
    pub(super) unsafe fn whole(
        routine: Routine,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> Result<(), Stop> {
        // SAFETY: per this function's contract.
        match unsafe { Arch::run_copy(routine, dst, src, len) } {
            Ok(()) => Ok(()),
            Err(stopped) => Err(stop(stopped, dst, src, len)),
        }
    }

    #[cold]
    pub(super) fn stop(stopped: Stopped, dst: *mut u8, src: *const u8, len: usize) -> Stop {
        Stop {
            fault: describe(stopped, dst, src, len, None),
            progress: stopped.progress,
        }
    }

    /// Copies copy offsets `from..to` (`from < to`).
    ///
    /// # Safety
    /// As for [`whole`], for the sub-range.
    pub(super) unsafe fn copy(
        routine: Routine,
        dst: *mut u8,
        src: *const u8,
        from: usize,
        to: usize,
    ) -> Result<(), Stop> {
        // SAFETY: per this function's contract.
        unsafe {
            whole(
                routine,
                dst.wrapping_add(from),
                src.wrapping_add(from),
                to - from,
            )
        }
    }

    /// Fills `len > 0` bytes at `dst` with zeros.
    ///
    /// # Safety
    /// `dst..dst + len` inside a checked destination.
    pub(super) unsafe fn zeros(dst: *mut u8, len: usize) -> Result<(), Stop> {
        // SAFETY: per this function's contract.
        unsafe { Arch::run_fill(dst, 0, len) }.map_err(|stopped| Stop {
            fault: describe(stopped, dst, dst, len, Some(Side::Destination)),
            progress: stopped.progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_that_lost_nothing_is_two_words_and_equal_however_it_was_made() {
        // Two words: returned in two registers (see `Outcome`).
        assert_eq!(size_of::<LossyCopy>(), 2 * size_of::<usize>());
        let looped = LossyCopy::from_report(Report {
            lost: Vec::new(),
            done: 4096,
            faults: 0,
        });
        assert_eq!(looped, LossyCopy::whole(4096));
        assert!(looped.is_complete());
        assert_eq!(
            (looped.done(), looped.faults(), looped.lost_bytes()),
            (4096, 0, 0)
        );
        assert_eq!(
            format!("{looped:?}"),
            "LossyCopy { lost: [], done: 4096, faults: 0 }"
        );
        assert_eq!(looped.to_string(), "nothing lost in 4096 bytes");
        assert!(looped.into_lost().is_empty());
    }

    #[test]
    fn neighbours_of_one_side_and_kind_merge_others_do_not() {
        let piece = |start, end, side, kind| LostRange {
            start,
            end,
            side,
            kind,
            granule: 4096,
        };
        let mut r = Report::default();
        let ae = FaultKind::AddressError;
        r.push(piece(0, 4096, Side::Source, ae));
        r.push(piece(4096, 8192, Side::Source, ae));
        r.push(piece(8192, 9000, Side::Destination, ae));
        r.push(piece(9000, 12288, Side::Source, FaultKind::Poison));
        r.push(piece(16384, 20480, Side::Source, FaultKind::Poison));
        r.faults = 5;
        let r = LossyCopy::from_report(r);
        let ranges: Vec<_> = r.lost().iter().map(LostRange::range).collect();
        assert_eq!(ranges, [0..8192, 8192..9000, 9000..12288, 16384..20480]);
        assert_eq!(r.lost_bytes(), 8192 + 808 + 3288 + 4096);
    }
}
