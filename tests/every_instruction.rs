//! Contract 6: the registers describe the copy's progress at EVERY instruction of
//! every landing-pad range, because a real machine check can be reported at any
//! instruction boundary of a loop (QEMU's at the start of a translated block, a
//! Skylake-SP erratum after `rep movs`), not only at the load that consumed it.
//!
//! Under ptrace, for each routine of the descriptor table (each copy strategy
//! and its C API twin, the exact-size routines of `read_mc`/`write_mc`, the fill
//! of `fill_mc`, the checksums of `crc32c_mc` and `copy_crc32c_mc`) and a set of
//! calls that cross pages and run through every path:
//!
//! 1. Step pass: single-step the routine. At each instruction inside a range,
//!    the range registers hold the call's buffers and every byte below rdi is
//!    already stored (read through a shared memfd mapping; for the checksum,
//!    esi is the CRC state of exactly the bytes its fixup would count). Only
//!    the instructions of a prologue lie outside the ranges, and the disassembly
//!    shows that they touch no memory.
//! 2. Injection passes: for each in-range instruction k (every dynamic
//!    instruction; of a `rep movsb`, whose iterations are steps at one address,
//!    the first 8 iterations and every 16th; in the one long copy, each
//!    instruction's first 4 executions and every 16th), run the copy again, stop
//!    at k, make one page of the source (then of the destination) unreadable by
//!    truncating its memfd, and deliver a forged `BUS_MCEERR_AR` for that page,
//!    page-aligned, lsb 12, exactly as the kernel reports a machine check. The
//!    call must return `Poison` with exactly the bytes before that page, an exact
//!    prefix (the CRC of exactly those bytes), and one signal: touching the
//!    "poisoned" page again would raise a second, real SIGBUS.
//! 3. Coverage: with `objdump` (aarch64: every 4 bytes), every instruction of
//!    every range was executed (and so injected at) by some copy.
//!
//! On aarch64 the same binary runs in the arm64 VM (`cargo xtask
//! vm-test-aarch64`: ptrace does not work under qemu-user, where it says NOT RUN):
//! the registers are x0-x2, x4 (the cursor) and w3 (the CRC state); each
//! instruction of each routine is injected at a bounded number of times
//! ([`PER_INSTRUCTION`], reached by breakpoints, since every traced step costs far
//! more under full emulation), and once more with an abort without an address
//! (`BUS_OBJERR`, `si_addr` 0), which the routine's registers must place.
//!
//! A test binary with its own `main` (`harness = false`): the tracer forks, and
//! forking is only safe from a single-threaded process.

mod common;
#[path = "common/trace.rs"]
mod trace;

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
#[cfg(target_arch = "x86_64")]
use std::process::Command;
use std::ptr;

use common::*;
use mcsafe::internals::{
    CrcPath, Descriptor, Regs, Thresholds, avx512_page_streams, c_copy_with, c_strategy_routine,
    can_run, copy_crc32c_mc_with, crc32c_mc_with, descriptors, landing_pads, register_copy_with,
    routine, rust_strategy_routine, set_avx512_page_streams, set_fold512_prefetch, set_thresholds,
    strategy_routine,
};
use mcsafe::{FaultKind, Side, Strategy};
use nix::sys::ptrace;
use nix::sys::signal::{Signal, raise};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

const PAGES: usize = 8;

/// A MAP_SHARED memfd mapping: the tracer sees what the traced child writes,
/// and can take pages away from it by truncating the file.
struct SharedFile {
    base: *mut u8,
    fd: OwnedFd,
    seed: Option<u64>,
}

impl SharedFile {
    fn new(seed: Option<u64>) -> SharedFile {
        // SAFETY: plain system calls on descriptors and memory we own.
        unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"every-insn".as_ptr(), 0));
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), (PAGES * PAGE) as i64), 0);
            let base = libc::mmap(
                ptr::null_mut(),
                PAGES * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            let file = SharedFile {
                base: base.cast(),
                fd,
                seed,
            };
            file.restore();
            file
        }
    }

    /// Every page back, holding the pattern (source) or sentinels (destination).
    fn restore(&self) {
        // SAFETY: our file and our mapping of it.
        unsafe {
            assert_eq!(
                libc::ftruncate(self.fd.as_raw_fd(), (PAGES * PAGE) as i64),
                0
            );
            match self.seed {
                Some(seed) => fill(self.base, PAGES * PAGE, seed),
                None => ptr::write_bytes(self.base, SENTINEL, PAGES * PAGE),
            }
        }
    }

    /// Pages from `offset` on become unreadable (SIGBUS on touch).
    fn lose_from(&self, offset: usize) {
        assert_eq!(
            // SAFETY: our own open file descriptor; truncating touches no memory.
            unsafe { libc::ftruncate(self.fd.as_raw_fd(), offset as i64) },
            0
        );
    }
}

#[derive(Clone, Copy, Debug)]
struct Copy {
    len: usize,
    src_at: usize,
    dst_at: usize,
}

/// Copies that cross a page on both sides and between them run every path of
/// every routine: fragile bytes only, an unaligned fragile head, 32-byte blocks,
/// words; and every size class of the vector routines (overlapping
/// small moves, 2, 4 and 8 vectors, the aligned loop, `rep movsb` and the
/// non-temporal loop, reached with the thresholds of `THRESHOLDS`).
const COPIES: [Copy; 17] = [
    Copy {
        len: 1,
        src_at: PAGE - 1,
        dst_at: PAGE - 1,
    },
    Copy {
        len: 3,
        src_at: PAGE - 2,
        dst_at: 2 * PAGE - 1,
    },
    Copy {
        len: 5,
        src_at: PAGE - 2,
        dst_at: 2 * PAGE - 3,
    },
    Copy {
        len: 13,
        src_at: PAGE - 7,
        dst_at: PAGE - 5,
    },
    Copy {
        len: 27,
        src_at: PAGE - 11,
        dst_at: 2 * PAGE - 20,
    },
    Copy {
        len: 50,
        src_at: PAGE - 25,
        dst_at: PAGE - 3,
    },
    Copy {
        len: 100,
        src_at: PAGE - 60,
        dst_at: PAGE - 40,
    },
    Copy {
        len: 191,
        src_at: PAGE - 100,
        dst_at: PAGE - 50,
    },
    Copy {
        len: 310,
        src_at: 2 * PAGE - 157,
        dst_at: PAGE - 33,
    },
    Copy {
        len: 516,
        src_at: PAGE - 299,
        dst_at: 2 * PAGE - 300,
    },
    Copy {
        len: 530,
        src_at: PAGE - 301,
        dst_at: PAGE - 35,
    },
    // dst 10 bytes past src within a page, each range inside one page: the
    // vector routines' loop backward.
    Copy {
        len: 517,
        src_at: PAGE + 300,
        dst_at: PAGE + 310,
    },
    Copy {
        len: 700,
        src_at: PAGE - 299,
        dst_at: 2 * PAGE - 300,
    },
    Copy {
        len: 1000,
        src_at: PAGE - 493,
        dst_at: PAGE - 333,
    },
    Copy {
        len: 1200,
        src_at: PAGE - 601,
        dst_at: 2 * PAGE - 1001,
    },
    Copy {
        len: 2100,
        src_at: PAGE - 1001,
        dst_at: 2 * PAGE - 2001,
    },
    // Past 17 KiB: the AVX-512 routine's four-page streaming loop.
    Copy {
        len: 18000,
        src_at: PAGE - 1001,
        dst_at: 2 * PAGE - 2033,
    },
];

/// Copies long enough that injecting at every dynamic instruction would take
/// minutes (the passes are quadratic in the steps).
const LONG: usize = 4096;

/// From this length `worth_injecting` samples: [`LONG`], but 512 bytes in the
/// arm64 VM, where under full emulation each traced step costs far more: every
/// instruction of every loop is still injected at, its first 4 executions and
/// every 16th.
#[cfg(target_arch = "x86_64")]
const SAMPLED_FROM: usize = LONG;
#[cfg(target_arch = "aarch64")]
const SAMPLED_FROM: usize = 512;

/// In the arm64 VM, injections per instruction address over the whole run:
/// under full emulation a traced child costs about a tenth of a second even when
/// breakpoints take it to the instruction, so every dynamic instruction of every
/// call would take most of an hour. Each static instruction of every range is
/// still injected at (the coverage step checks it), at its first executions, for
/// pages of both sides in turn, and once more with an abort without an address.
const PER_INSTRUCTION: usize = 4;

/// Low thresholds, so that short copies reach every method of the vector
/// routines: the aligned loop (516 bytes, and backward at 517), `rep movsb` (530)
/// and the non-temporal loop (from 700).
const THRESHOLDS: Thresholds = Thresholds {
    avx2_rep_movsb: 520,
    avx512_rep_movsb: 520,
    rep_movsb_stop: 560,
    non_temporal: 600,
};

/// Whether a copy adds paths for `strategy`: the fragile loop and `rep movsb`
/// have no size classes past a few hundred bytes, so longer copies would only
/// repeat the same iterations.
fn worth_tracing(strategy: Strategy, copy: Copy) -> bool {
    match strategy {
        Strategy::Fragile => copy.len <= 1000,
        Strategy::RepMovsb => copy.len <= 310,
        // Only AVX-512 has a path that needs a long copy.
        _ if copy.len >= LONG => strategy == Strategy::Avx512,
        _ => true,
    }
}

/// Whether to inject at the step pass's k-th in-range instruction. Every one,
/// except inside one string instruction that repeats at the same address (each
/// `rep movsb` iteration is a step): its first 8 iterations and every 16th.
/// In a long copy (`SAMPLED_FROM` bytes or more), each instruction's first 4
/// executions and every 16th: every instruction of every loop is still
/// injected at, early, late and in between.
fn worth_injecting(rips: &[usize], k: usize, len: usize) -> bool {
    if len >= SAMPLED_FROM {
        let seen = rips[..k].iter().filter(|&&r| r == rips[k]).count();
        return seen < 4 || seen % 16 == 0;
    }
    let repeats = rips[..k]
        .iter()
        .rev()
        .take_while(|&&r| r == rips[k])
        .count();
    repeats < 8 || repeats % 16 == 0
}

/// The routine under test, and the public call that runs it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// `copy_mc_with(strategy, dst, src, len)`: the strategy's Rust copy.
    Copy(Strategy),
    /// The strategy's register-mode routine (the forward step's, the lossy copy's).
    RegCopy(Strategy),
    /// The strategy's C API routine (libmcsafe's `mcsafe_copy`).
    CCopy(Strategy),
    /// One of the three copies above with the avx512 routine's non-temporal loop
    /// in the shape it does not have on this CPU's vendor (plain on Intel, page
    /// streams on AMD).
    OtherNtShape(Via, Strategy),
    /// `read_mc` of a `len`-byte integer at src (len 1, 2, 4 or 8).
    Read,
    /// `write_mc` of a `len`-byte integer at dst.
    Write,
    /// `fill_mc(dst, FILL_BYTE, len)`.
    Fill,
    /// `crc32c_mc(0, src, len)` through the one-stream (`Stream`) or a
    /// folding routine, the latter with blocks of this many bytes.
    Crc32c(CrcPath, usize),
    /// `copy_crc32c_mc(0, dst, src, len)` through a one-pass routine
    /// (`Fold512`, `Fold256`, `Fold128`), with blocks of this many bytes, and
    /// blocks without streams from calls of the last many (`Fold512`, which
    /// has no streams: non-temporal stores from calls of that many bytes).
    CopyCrc32c(CrcPath, usize, usize),
}

/// Which of the copy ops an [`Op::OtherNtShape`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Rust,
    Register,
    C,
}

impl Via {
    const ALL: [Via; 3] = [Via::Rust, Via::Register, Via::C];

    fn op(self, strategy: Strategy) -> Op {
        match self {
            Via::Rust => Op::Copy(strategy),
            Via::Register => Op::RegCopy(strategy),
            Via::C => Op::CCopy(strategy),
        }
    }
}

const FILL_BYTE: u8 = 0x3c;

/// The folding checksum's default block size (`crc32c_mc_with`'s `block`).
const BLOCK: usize = 8192;

/// No blocks without streams (the vector-only length of `copy_crc32c_mc_with`).
const NEVER: usize = usize::MAX;

impl Op {
    /// The routine that the call runs first.
    fn routine(self, len: usize) -> Descriptor {
        let named = |name: String| routine(&name).unwrap_or_else(|| panic!("no routine {name}"));
        match self {
            Op::Copy(strategy) => rust_strategy_routine(strategy),
            Op::OtherNtShape(via, strategy) => via.op(strategy).routine(len),
            Op::RegCopy(strategy) => strategy_routine(strategy),
            Op::CCopy(strategy) => c_strategy_routine(strategy),
            Op::Read | Op::Write => named(format!("copy_exact_{len}")),
            Op::Fill => named("fill".into()),
            Op::Crc32c(path, _) => path.routine_descriptor().expect("a checksum routine"),
            Op::CopyCrc32c(path, ..) => path.copy_routine_descriptor().expect("a fused routine"),
        }
    }

    /// The sides whose memory the routine touches (so can lose).
    fn sides(self) -> &'static [Side] {
        match self {
            Op::Copy(_)
            | Op::RegCopy(_)
            | Op::CCopy(_)
            | Op::OtherNtShape(..)
            | Op::CopyCrc32c(..) => &[Side::Source, Side::Destination],
            Op::Read | Op::Crc32c(..) => &[Side::Source],
            Op::Write | Op::Fill => &[Side::Destination],
        }
    }
}

/// The bytes `write_mc` stores: distinct, and unlike the source pattern.
fn written(len: usize) -> u64 {
    0x8877_6655_4433_2211u64 & (u64::MAX >> (64 - 8 * len))
}

/// The source pattern's bytes at `at..at + len`.
fn source_bytes(at: usize, len: usize) -> Vec<u8> {
    (at..at + len).map(|i| byte_at(SRC_SEED, i)).collect()
}

const SRC_SEED: u64 = 0x1234;

#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Check the progress invariant at every instruction.
    Step,
    /// At the k-th in-range instruction, lose `page` (an address) of `side` and
    /// report a machine check for it; or (`unknown`, aarch64) report an abort
    /// without an address and lose nothing.
    Inject {
        k: usize,
        side: Side,
        page: usize,
        unknown: bool,
        /// Where the k-th in-range instruction is, and how many times it ran
        /// before: the arm64 VM gets there by breakpoints instead of single
        /// steps (see [`PER_INSTRUCTION`]).
        at: Option<(usize, usize)>,
    },
}

struct World {
    src: SharedFile,
    dst: SharedFile,
}

/// What a step pass saw.
struct Trace {
    in_range: usize,
    visited: BTreeSet<usize>,
    /// RIP of each in-range step, in order.
    rips: Vec<usize>,
}

fn in_a_range(rip: usize) -> bool {
    landing_pads().any(|p| p.begin <= rip && rip < p.end)
}

/// The traced child: stops, runs the call, checks the outcome the plan
/// expects, exits 0 if all is as it should be.
fn child(world: &World, op: Op, copy: Copy, plan: Plan) -> ! {
    ptrace::traceme().unwrap();
    raise(Signal::SIGSTOP).unwrap();
    let (dst, src) = (
        world.dst.base.wrapping_add(copy.dst_at),
        world.src.base.wrapping_add(copy.src_at),
    );
    let before = mcsafe::stats().recovered;
    let problem = match run(op, dst, src, copy) {
        Ok(outcome) => check_outcome(op, copy, plan, outcome, before, dst, src),
        Err(problem) => Some(problem),
    };
    if let Some(problem) = problem {
        eprintln!("{op:?} {copy:?} {plan:?}: {problem}");
        // SAFETY: leaving the forked child without running the parent's atexit work.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// What a call returned: the fault (if any), and for a checksum its CRC.
struct Outcome {
    fault: Option<mcsafe::Fault>,
    crc: Option<u32>,
}

/// Runs the op's public call; `Err` for a result of the wrong shape.
fn run(op: Op, dst: *mut u8, src: *const u8, copy: Copy) -> Result<Outcome, String> {
    let len = copy.len;
    let plain = |r: Result<(), mcsafe::Fault>| Outcome {
        fault: r.err(),
        crc: None,
    };
    let checksum = |r: Result<u32, mcsafe::CrcFault>| match r {
        Ok(crc) => Outcome {
            fault: None,
            crc: Some(crc),
        },
        Err(e) => Outcome {
            fault: Some(e.fault()),
            crc: Some(e.crc()),
        },
    };
    // SAFETY: both mappings are ours; the tracer may take pages away (SIGBUS).
    unsafe {
        Ok(match op {
            Op::Copy(strategy) => plain(mcsafe::copy_mc_with(strategy, dst, src, len)),
            Op::OtherNtShape(via, strategy) => {
                let streams = avx512_page_streams();
                set_avx512_page_streams(!streams);
                let outcome = run(via.op(strategy), dst, src, copy);
                set_avx512_page_streams(streams);
                return outcome;
            }
            Op::RegCopy(strategy) => plain(register_copy_with(strategy, dst, src, len)),
            Op::CCopy(strategy) => match c_copy_with(strategy, dst, src, len) {
                (0, None) => plain(Ok(())),
                (code, Some(fault)) if code == -libc::EIO => plain(Err(fault)),
                (code, fault) => return Err(format!("C API copy returned {code}, {fault:?}")),
            },
            Op::Read => {
                let value = match len {
                    1 => mcsafe::read_mc(src).map(|v: u8| u64::from(v)),
                    2 => mcsafe::read_mc(src.cast::<u16>()).map(u64::from),
                    4 => mcsafe::read_mc(src.cast::<u32>()).map(u64::from),
                    _ => mcsafe::read_mc(src.cast::<u64>()),
                };
                match value {
                    Ok(v) if v.to_le_bytes()[..len] != source_bytes(copy.src_at, len) => {
                        return Err(format!("read {v:#x}"));
                    }
                    v => plain(v.map(|_| ())),
                }
            }
            Op::Write => {
                let v = written(len);
                plain(match len {
                    1 => mcsafe::write_mc(dst, v as u8),
                    2 => mcsafe::write_mc(dst.cast::<u16>(), v as u16),
                    4 => mcsafe::write_mc(dst.cast::<u32>(), v as u32),
                    _ => mcsafe::write_mc(dst.cast::<u64>(), v),
                })
            }
            Op::Fill => plain(mcsafe::fill_mc(dst, FILL_BYTE, len)),
            Op::Crc32c(path, block) => checksum(crc32c_mc_with(path, block, 0, src, len)),
            Op::CopyCrc32c(CrcPath::Fold512, block, non_temporal) => {
                // The child's own thresholds: the traced copy's store kind.
                set_thresholds(Thresholds {
                    non_temporal,
                    ..THRESHOLDS
                });
                let blocks = (block, NEVER);
                checksum(copy_crc32c_mc_with(
                    CrcPath::Fold512,
                    blocks,
                    0,
                    dst,
                    src,
                    len,
                ))
            }
            Op::CopyCrc32c(path, block, vector_only) => {
                let blocks = (block, vector_only);
                checksum(copy_crc32c_mc_with(path, blocks, 0, dst, src, len))
            }
        })
    }
}

/// Checks a call's outcome against the plan: no fault and everything done for
/// a step pass; for an injection, `Poison` with exactly the bytes before the
/// page, and one signal. Then the exact prefix: the destination holds what the
/// call stores, the CRC is that of exactly the bytes counted.
fn check_outcome(
    op: Op,
    copy: Copy,
    plan: Plan,
    outcome: Outcome,
    before: u64,
    dst: *mut u8,
    src: *const u8,
) -> Option<String> {
    let signals = mcsafe::stats().recovered - before;
    let done = match (plan, outcome.fault) {
        (Plan::Step, None) if signals == 0 => copy.len,
        (Plan::Inject { unknown: true, .. }, Some(f)) => {
            // No address (arm64 BUS_OBJERR, si_addr 0), nothing really lost:
            // recovered, cut at the start of a page the call touches.
            let cut_at = |base: *const u8| (base as usize + f.copied()).is_multiple_of(PAGE);
            let ok = f.kind() == FaultKind::ObjectError
                && f.granule() == PAGE
                && signals == 1
                && (f.copied() == 0 || cut_at(src) || cut_at(dst.cast_const()))
                && f.copied() < copy.len;
            if !ok {
                return Some(format!(
                    "got {f:?} after {signals} signals for an unclaimed abort"
                ));
            }
            f.copied()
        }
        (Plan::Inject { side, page, .. }, Some(f)) => {
            let start = if side == Side::Source {
                src
            } else {
                dst.cast_const()
            } as usize;
            let want = page.saturating_sub(start);
            let ok = f.copied() == want
                && f.side() == side
                && f.kind() == FaultKind::Poison
                && f.granule() == PAGE
                && f.addr() == page
                && signals == 1;
            if !ok {
                return Some(format!(
                    "got {f:?} after {signals} signals, want copied {want}"
                ));
            }
            want
        }
        (_, fault) => return Some(format!("unexpected {fault:?} after {signals} signals")),
    };
    // SAFETY: the compared bytes lie before any page the tracer took away.
    let stored = |want: &[u8]| unsafe {
        first_difference(dst, want.as_ptr(), want.len()).map(|i| format!("byte {i} not stored"))
    };
    match op {
        Op::Copy(_) | Op::RegCopy(_) | Op::CCopy(_) | Op::OtherNtShape(..) => {
            // SAFETY: as above: the first `done` bytes of both lie before any
            // page the tracer took away.
            unsafe { first_difference(dst, src, done) }.map(|i| format!("prefix differs at {i}"))
        }
        Op::Read => None,
        Op::Write => stored(&written(copy.len).to_le_bytes()[..done]),
        Op::Fill => stored(&vec![FILL_BYTE; done]),
        Op::Crc32c(..) => {
            let want = crc32c_reference(&source_bytes(copy.src_at, done));
            (outcome.crc != Some(want))
                .then(|| format!("crc {:x?} of {done} bytes, want {want:#x}", outcome.crc))
        }
        Op::CopyCrc32c(..) => {
            let want = crc32c_reference(&source_bytes(copy.src_at, done));
            // SAFETY: as above.
            let prefix = unsafe { first_difference(dst, src, done) };
            match prefix {
                Some(i) => Some(format!("prefix differs at {i}")),
                None => (outcome.crc != Some(want))
                    .then(|| format!("crc {:x?} of {done} bytes, want {want:#x}", outcome.crc)),
            }
        }
    }
}

fn wait_stop(pid: Pid) -> Signal {
    match waitpid(pid, None).unwrap() {
        WaitStatus::Stopped(_, sig) => sig,
        other => panic!("tracee did not stop: {other:?}"),
    }
}

/// Injects the plan's fault into the stopped child and lets it run: takes `page`
/// of `side` away and reports a machine check for it, or (`unknown`) reports an
/// abort without an address and takes nothing away.
fn inject(world: &World, pid: Pid, side: Side, page: usize, unknown: bool) {
    let info = if unknown {
        unclaimed_abort()
    } else {
        let file = if side == Side::Source {
            &world.src
        } else {
            &world.dst
        };
        file.lose_from(page - file.base as usize);
        machine_check(page)
    };
    ptrace::setsiginfo(pid, &info).unwrap();
    ptrace::cont(pid, Signal::SIGBUS).unwrap();
}

/// Runs one traced call; returns what the step pass saw (empty for injections).
fn trace(world: &World, op: Op, copy: Copy, plan: Plan) -> Trace {
    // SAFETY: this binary is single-threaded (harness = false), so the child may
    // run ordinary code after fork.
    let pid = match unsafe { fork() }.unwrap() {
        ForkResult::Child => child(world, op, copy, plan),
        ForkResult::Parent { child } => child,
    };
    assert_eq!(wait_stop(pid), Signal::SIGSTOP);

    // Run to the routine's entry with a breakpoint, then step from there.
    let regs = trace::run_to(pid, op.routine(copy.len).entry);
    let return_to = arch::return_address(pid, &regs);
    if let Plan::Inject {
        side,
        page,
        unknown,
        at: Some((pc, before)),
        ..
    } = plan
    {
        trace::run_to_occurrence(pid, pc, before);
        inject(world, pid, side, page, unknown);
        match waitpid(pid, None).unwrap() {
            WaitStatus::Exited(_, 0) => {}
            other => panic!("{op:?} {copy:?} {plan:?}: child ended with {other:?}"),
        }
        world.src.restore();
        world.dst.restore();
        return Trace {
            in_range: 0,
            visited: BTreeSet::new(),
            rips: Vec::new(),
        };
    }

    let (dst, src) = (
        world.dst.base as usize + copy.dst_at,
        world.src.base as usize + copy.src_at,
    );
    let mut seen = Trace {
        in_range: 0,
        visited: BTreeSet::new(),
        rips: Vec::new(),
    };
    let mut checked = 0;
    let what = format!("{op:?} {copy:?}");
    loop {
        let regs = ptrace::getregs(pid).unwrap();
        let rip = trace::pc(&regs);
        if rip == return_to {
            break;
        }
        if in_a_range(rip) {
            if let Plan::Inject {
                k,
                side,
                page,
                unknown,
                ..
            } = plan
            {
                if k == seen.in_range {
                    inject(world, pid, side, page, unknown);
                    break;
                }
            } else {
                checked = check_step(op, copy, &regs, (dst, src), checked, &what);
            }
            seen.visited.insert(rip);
            seen.rips.push(rip);
            seen.in_range += 1;
        } else {
            assert_eq!(
                seen.in_range, 0,
                "{what}: instruction {rip:#x} after the prologue lies outside every range"
            );
        }
        ptrace::step(pid, None).unwrap();
        assert_eq!(wait_stop(pid), Signal::SIGTRAP, "{what}: single step");
    }
    if let Plan::Step = plan {
        // Instructions before the first range (a prologue that saves the range
        // registers) touch no memory: `prologues_touch_no_memory` checks that on
        // the disassembly.
        ptrace::cont(pid, None).unwrap();
        // SAFETY: the bytes after the copy lie in the destination mapping.
        unsafe {
            assert_untouched(
                (dst + copy.len) as *const u8,
                64,
                &format!("{what}: after dst"),
            )
        };
    }
    match waitpid(pid, None).unwrap() {
        WaitStatus::Exited(_, 0) => {}
        other => panic!("{what} {plan:?}: child ended with {other:?}"),
    }
    world.src.restore();
    world.dst.restore();
    seen
}

/// The step pass at one in-range instruction: the range registers hold the
/// call's buffers (a stack temporary of `read_mc`/`write_mc` is not checked),
/// and the progress register says no more than is done. Returns how many bytes
/// are now known checked.
fn check_step(
    op: Op,
    copy: Copy,
    regs: &libc::user_regs_struct,
    (dst, src): (usize, usize),
    checked: usize,
    what: &str,
) -> usize {
    let rip = trace::pc(regs);
    let pad = landing_pads()
        .find(|p| p.begin <= rip && rip < p.end)
        .unwrap();
    // Where this range keeps the call's buffers (asm/routine.s and
    // asm/aarch64/routine.s, "Range registers").
    let map = pad
        .regs
        .unwrap_or_else(|| panic!("{what}: a row without a register map at {rip:#x}"));
    let (r8, r9, r10) = arch::buffers(regs, map);
    let len = copy.len;
    let expected = match op {
        Op::Copy(_) | Op::RegCopy(_) | Op::CCopy(_) | Op::OtherNtShape(..) | Op::CopyCrc32c(..) => {
            (Some(dst), Some(src))
        }
        Op::Read => (None, Some(src)),
        Op::Write => (Some(dst), None),
        Op::Fill => (Some(dst), Some(dst)),
        Op::Crc32c(..) => (Some(src), Some(src)),
    };
    assert_eq!(
        r10, len,
        "{what}: len register ({:?}) at {rip:#x}",
        pad.regs
    );
    for (reg, value, name) in [(r8, expected.0, "dst"), (r9, expected.1, "src")] {
        if let Some(value) = value {
            assert_eq!(
                reg, value,
                "{what}: {name} register ({:?}) at {rip:#x}",
                pad.regs
            );
        }
    }
    let cursor = arch::cursor(regs, map, r8);
    let progress = cursor.checked_sub(r8).filter(|&p| p <= len);
    let progress =
        progress.unwrap_or_else(|| panic!("{what}: cursor {cursor:#x} outside dst.. at {rip:#x}"));
    if pad.regs == Some(Regs::Entry) {
        // An entry range keeps rdi at the start: nothing is claimed stored.
        assert_eq!(
            progress, 0,
            "{what}: rdi moved in an entry range at {rip:#x}"
        );
    }
    match op {
        // rdi never moves in the exact-size routines.
        Op::Read | Op::Write => assert_eq!(progress, 0, "{what}: rdi moved at {rip:#x}"),
        Op::Crc32c(..) => {
            // esi is the CRC state of exactly the bytes the fixup would count.
            let counted = fixup_counts(pad.fixup, regs, progress);
            let want = !crc32c_reference(&source_bytes(copy.src_at, counted));
            assert_eq!(
                arch::crc_state(regs),
                want,
                "{what}: at {rip:#x} esi is not the CRC state of the {counted} bytes counted"
            );
        }
        Op::CopyCrc32c(..) => {
            // Every byte the fixup would count is stored, and esi is the CRC
            // state of exactly those bytes of the source.
            let pad = landing_pads()
                .find(|p| p.begin <= rip && rip < p.end)
                .unwrap();
            let counted = fixup_counts(pad.fixup, regs, progress);
            let want = !crc32c_reference(&source_bytes(copy.src_at, counted));
            assert_eq!(
                arch::crc_state(regs),
                want,
                "{what}: at {rip:#x} esi is not the CRC state of the {counted} bytes counted"
            );
            if counted > checked {
                // SAFETY: both mappings are readable in this process too.
                let diff = unsafe {
                    first_difference(
                        (dst + checked) as *const u8,
                        (src + checked) as *const u8,
                        counted - checked,
                    )
                };
                assert_eq!(
                    diff, None,
                    "{what}: at {rip:#x} {counted} bytes counted, but they are not all stored"
                );
                return counted;
            }
        }
        Op::Copy(_) | Op::RegCopy(_) | Op::CCopy(_) | Op::OtherNtShape(..) | Op::Fill
            if progress > checked =>
        {
            let stored: Vec<u8> = match op {
                Op::Fill => vec![FILL_BYTE; progress - checked],
                // SAFETY: the source is readable in this process too (shared mapping).
                _ => unsafe {
                    std::slice::from_raw_parts((src + checked) as *const u8, progress - checked)
                        .to_vec()
                },
            };
            // SAFETY: the destination is readable in this process too (shared mapping).
            let diff = unsafe {
                first_difference((dst + checked) as *const u8, stored.as_ptr(), stored.len())
            };
            assert_eq!(
                diff, None,
                "{what}: at {rip:#x} rdi says {progress} bytes stored, but they are not"
            );
            return progress;
        }
        _ => {}
    }
    checked
}

/// How many bytes a checksum's fixup counts as done: rdi's `progress`, moved
/// by what the fixup does to rdi before returning, read from this process's
/// copy of the code (the same binary as the child's): `inc %rdi` or
/// `add $n, %rdi` after a `crc32` (asm/crc32c.s), `mov %r12, %rdi` (the end of
/// a committed block; `mov %r9, %rdi` in asm/crc32c_fold512.s's checksum) or
/// `lea (%r8,%r10), %rdi` (the whole buffer, after a short last block)
/// (asm/crc32c_fold.s); otherwise nothing.
#[cfg(target_arch = "x86_64")]
fn fixup_counts(fixup: usize, regs: &libc::user_regs_struct, progress: usize) -> usize {
    // SAFETY: the fixup is code of this binary, mapped readable.
    let code = unsafe { std::slice::from_raw_parts(fixup as *const u8, 4) };
    match code {
        [0x48, 0xff, 0xc7, _] => progress + 1,
        [0x48, 0x83, 0xc7, n] => progress + usize::from(*n),
        [0x4c, 0x89, 0xe7, _] => (regs.r12 - regs.r8) as usize,
        [0x4c, 0x89, 0xcf, _] => (regs.r9 - regs.r8) as usize,
        [0x4b, 0x8d, 0x3c, 0x10] => regs.r10 as usize,
        _ => progress,
    }
}

/// The siginfo the kernel sends for a machine check consumed in user mode:
/// BUS_MCEERR_AR, the page-aligned address, lsb 12.
fn machine_check(page: usize) -> libc::siginfo_t {
    trace::sigbus_info(libc::BUS_MCEERR_AR, page, 12)
}

/// The siginfo of an arm64 synchronous external abort nobody claimed, with
/// ESR.FnV set: BUS_OBJERR, no address, no lsb.
fn unclaimed_abort() -> libc::siginfo_t {
    trace::sigbus_info(libc::BUS_OBJERR, 0, 0)
}

/// The registers the checks read, per architecture.
#[cfg(target_arch = "x86_64")]
mod arch {
    use super::*;

    /// Where the routine returns (read at its entry): the word at rsp.
    pub fn return_address(pid: Pid, regs: &libc::user_regs_struct) -> usize {
        ptrace::read(pid, regs.rsp as ptrace::AddressType).unwrap() as usize
    }

    /// (dst, src, len) from the range registers the row names: the arguments
    /// themselves, or their copies in r8, r9, r10.
    pub fn buffers(regs: &libc::user_regs_struct, map: Regs) -> (usize, usize, usize) {
        let (a, b, c) = match map {
            Regs::Entry => (regs.rdi, regs.rsi, regs.rdx),
            Regs::Saved => (regs.r8, regs.r9, regs.r10),
            Regs::OneBuffer => (regs.r8, regs.r8, regs.r10),
        };
        (a as usize, b as usize, c as usize)
    }

    /// The progress cursor: rdi.
    pub fn cursor(regs: &libc::user_regs_struct, _: Regs, _dst: usize) -> usize {
        regs.rdi as usize
    }

    /// The checksums' CRC state: esi.
    pub fn crc_state(regs: &libc::user_regs_struct) -> u32 {
        regs.rsi as u32
    }
}

/// The registers the checks read, per architecture.
#[cfg(target_arch = "aarch64")]
mod arch {
    use super::*;

    /// Where the routine returns (read at its entry): lr.
    pub fn return_address(_: Pid, regs: &libc::user_regs_struct) -> usize {
        regs.regs[30] as usize
    }

    /// (dst, src, len): x0, x1, x2 in every range (x0 twice for one buffer).
    pub fn buffers(regs: &libc::user_regs_struct, map: Regs) -> (usize, usize, usize) {
        let (x0, x1, x2) = (
            regs.regs[0] as usize,
            regs.regs[1] as usize,
            regs.regs[2] as usize,
        );
        match map {
            Regs::OneBuffer => (x0, x0, x2),
            Regs::Entry | Regs::Saved => (x0, x1, x2),
        }
    }

    /// The progress cursor: x4 in a cursor range; dst (nothing done) in an
    /// entry range, where x4 is not set yet.
    pub fn cursor(regs: &libc::user_regs_struct, map: Regs, dst: usize) -> usize {
        match map {
            Regs::Saved | Regs::OneBuffer => regs.regs[4] as usize,
            Regs::Entry => dst,
        }
    }

    /// The checksums' CRC state: w3.
    pub fn crc_state(regs: &libc::user_regs_struct) -> u32 {
        regs.regs[3] as u32
    }
}

/// How many bytes a checksum's fixup counts as done: x4's `progress`, less what
/// the fixup subtracts from x4 before the routine's own fixup (a chain of `sub
/// x4, x4, #n`, asm/aarch64/crc32c.s), read from this process's copy of the
/// code (the same binary as the child's).
#[cfg(target_arch = "aarch64")]
fn fixup_counts(fixup: usize, _: &libc::user_regs_struct, progress: usize) -> usize {
    let mut back = 0;
    let mut at = fixup;
    loop {
        // SAFETY: the fixup is code of this binary, mapped readable.
        let insn = unsafe { (at as *const u32).read() };
        // sub x4, x4, #imm12 (no shift)
        if insn & 0xffc0_03ff != 0xd100_0084 {
            return progress - back;
        }
        back += ((insn >> 10) & 0xfff) as usize;
        at += 4;
    }
}

/// Every traced call: each copy strategy over [`COPIES`], then the storage
/// routines over calls that cross pages and run every path of each.
fn cases() -> Vec<(Op, Copy)> {
    let mut cases = Vec::new();
    for strategy in Strategy::available() {
        for copy in COPIES {
            if worth_tracing(strategy, copy) {
                cases.push((Op::Copy(strategy), copy));
                // aarch64 has one instantiation per routine: copy_mc_with, the
                // forward step and the C entry all run the register-mode one.
                if cfg!(target_arch = "x86_64") {
                    cases.push((Op::RegCopy(strategy), copy));
                    cases.push((Op::CCopy(strategy), copy));
                }
            }
            if strategy == Strategy::Avx512 && copy.len >= THRESHOLDS.non_temporal {
                for via in Via::ALL {
                    cases.push((Op::OtherNtShape(via, strategy), copy));
                }
            }
        }
    }
    let at = |len, src_at, dst_at| Copy {
        len,
        src_at,
        dst_at,
    };
    for len in [1usize, 2, 4, 8] {
        // Inside a page, and across a page boundary (one byte before it for len 1).
        for offset in [2 * PAGE + 5, PAGE - len.div_ceil(2)] {
            cases.push((Op::Read, at(len, offset, 0)));
            cases.push((Op::Write, at(len, 0, offset)));
        }
    }
    for (len, dst_at) in [(5, 2 * PAGE - 3), (300, PAGE - 100), (23, PAGE - 10)] {
        cases.push((Op::Fill, at(len, 0, dst_at)));
    }
    // Bytes only; a misaligned head, words and a tail; aligned words only.
    for (len, src_at) in [
        (5, PAGE - 2),
        (1000, PAGE - 493),
        (64, 2 * PAGE - 32),
        (13, PAGE - 8),
        (14, PAGE - 6),
    ] {
        cases.push((Op::Crc32c(CrcPath::Stream, BLOCK), at(len, src_at, 0)));
    }
    // aarch64's PMULL routines have fixed blocks (3 KiB, then 384 bytes): one
    // call of each reaches both and the chain after them (its 4- and 1-byte
    // tails); a short one reaches the chain's 8- and 2-byte tails.
    if CrcPath::Pmull.is_available() {
        for (len, src_at, dst_at) in [
            (3 * 1024 + 384 + 53, PAGE - 1000, 2 * PAGE - 700),
            (26, PAGE - 12, PAGE - 5),
        ] {
            cases.push((Op::Crc32c(CrcPath::Pmull, BLOCK), at(len, src_at, 0)));
            cases.push((
                Op::CopyCrc32c(CrcPath::Pmull, BLOCK, NEVER),
                at(len, src_at, dst_at),
            ));
        }
    }
    // The folding routines' shapes (asm/crc32c_fold.s): short chains (no
    // run of eight words and every tail bit; two runs and no tail; three runs
    // and every tail bit); streams only, vector blocks (2 units and 2 extra
    // words; 7 units), each with a head of 15 and of 23 bytes (its bits 8 and
    // 16); then, with the smallest blocks, commits followed by a vector block
    // and by a short chain.
    for path in [CrcPath::Fold256, CrcPath::Fold128] {
        if !path.is_available() {
            continue;
        }
        for (len, src_at, block) in [
            (63, PAGE - 30, BLOCK),
            (128, PAGE - 40, BLOCK),
            (255, PAGE - 100, BLOCK),
            (279, PAGE - 40, BLOCK),
            (287, PAGE - 160, BLOCK),
            (335, PAGE - 150, BLOCK),
            (343, PAGE - 150, BLOCK),
            (1000, PAGE - 493, BLOCK),
            (320 + 343, PAGE - 333, 320),
            (320 + 50, 2 * PAGE - 33, 320),
        ] {
            cases.push((Op::Crc32c(path, block), at(len, src_at, 0)));
        }
        // The one-pass copies (asm/copy_crc32c.s), both sides crossing pages:
        // short chains (one and two runs, every tail bit), streams only (a
        // 15-byte head), vector blocks (2 units and 2 extra words; 8 units),
        // and commits with the smallest blocks; then blocks without streams
        // (a 63-byte head, 4 units; commits).
        for (len, src_at, dst_at, block, vector_only) in [
            (63, PAGE - 30, 2 * PAGE - 20, BLOCK, NEVER),
            (71, PAGE - 40, PAGE - 9, BLOCK, NEVER),
            (79, PAGE - 40, 2 * PAGE - 50, BLOCK, NEVER),
            (271, PAGE - 150, PAGE - 33, BLOCK, NEVER),
            (1000, PAGE - 493, 2 * PAGE - 300, BLOCK, NEVER),
            (320 + 271, PAGE - 333, PAGE - 100, 320, NEVER),
            (320 + 50, 2 * PAGE - 33, PAGE - 340, 320, NEVER),
            (319, PAGE - 100, PAGE - 200, BLOCK, 0),
            (320 + 319, PAGE - 300, 2 * PAGE - 7, 320, 0),
        ] {
            cases.push((
                Op::CopyCrc32c(path, block, vector_only),
                at(len, src_at, dst_at),
            ));
        }
    }
    if CrcPath::Fold512.is_available() {
        cases.extend(fold512_cases());
    }
    cases
}

/// The 512-bit routines' shapes (asm/crc32c_fold512.s). The checksum: short
/// chains (as above); a vector part of 3 units with a 63-byte head (every head
/// bit) and a 45-byte tail; 14 units (two loop iterations, 2 more units) with a
/// 45-byte head and a 59-byte tail (with the last, every tail bit); 8 units, no
/// head, an 8-byte tail (one iteration, no unit left); 31 units (iterations
/// that prefetch); commits with 320-byte blocks, then a short last block. The
/// copy, with plain stores (`NEVER` non-temporal) or non-temporal ones (from 0
/// bytes): short chains; 1 and 2 units; 4 units (no loop) with a 33-byte head; 9
/// units, one iteration; 16 units (iterations that prefetch); 18 units, three
/// non-temporal iterations (the first prefetches); commits with 320-byte blocks, plain and then
/// non-temporal (the fenced returns after a commit and after a short last
/// block).
fn fold512_cases() -> Vec<(Op, Copy)> {
    let at = |len, src_at, dst_at| Copy {
        len,
        src_at,
        dst_at,
    };
    let path = CrcPath::Fold512;
    let mut cases = Vec::new();
    for (len, src_at, block) in [
        (63, PAGE - 30, BLOCK),
        (128, PAGE - 40, BLOCK),
        (255, PAGE - 100, BLOCK),
        (300, PAGE - 63, BLOCK),
        (1000, PAGE - 493, BLOCK),
        (520, PAGE - 256, BLOCK),
        (2100, PAGE - 1001, BLOCK),
        (320 + 343, PAGE - 333, 320),
        (320 + 50, 2 * PAGE - 33, 320),
    ] {
        cases.push((Op::Crc32c(path, block), at(len, src_at, 0)));
    }
    for (len, src_at, dst_at, block, non_temporal) in [
        (63, PAGE - 30, 2 * PAGE - 20, BLOCK, NEVER),
        (100, PAGE - 40, PAGE - 9, BLOCK, NEVER),
        (150, PAGE - 77, PAGE - 60, BLOCK, NEVER),
        (200, PAGE - 100, PAGE - 70, BLOCK, NEVER),
        (300, PAGE - 150, PAGE - 33, BLOCK, NEVER),
        (580, PAGE - 301, PAGE - 64, BLOCK, NEVER),
        (1100, PAGE - 601, 2 * PAGE - 500, BLOCK, NEVER),
        (1200, PAGE - 493, 2 * PAGE - 300, BLOCK, 0),
        (320 + 271, PAGE - 333, PAGE - 100, 320, NEVER),
        (2 * 320 + 50, 2 * PAGE - 33, PAGE - 340, 320, 0),
    ] {
        cases.push((
            Op::CopyCrc32c(path, block, non_temporal),
            at(len, src_at, dst_at),
        ));
    }
    cases
}

/// Pages of `start..start+len`, as addresses.
fn pages_of(start: usize, len: usize) -> Vec<usize> {
    (start & !(PAGE - 1)..start + len).step_by(PAGE).collect()
}

/// The routines this CPU cannot run (their ranges cannot be traced here): what
/// they need is missing (see Strategy::available, CrcPath).
fn unavailable_routines() -> Vec<Descriptor> {
    descriptors().filter(|d| !can_run(d)).collect()
}

/// Entry addresses of every routine with landing pads (the descriptor table),
/// sorted.
fn routine_entries() -> Vec<usize> {
    descriptors().map(|d| d.entry).collect()
}

/// Whether the range starting at `begin` belongs to a routine this CPU runs.
fn runs_here(begin: usize) -> bool {
    descriptors().any(|d| d.entry <= begin && begin < d.end && can_run(&d))
}

/// The bias from link-time addresses (objdump's) to this process's, or why not.
#[cfg(target_arch = "x86_64")]
fn load_bias() -> Result<usize, String> {
    let exe = std::env::current_exe().unwrap();
    let nm = Command::new("nm")
        .arg(&exe)
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let linked = symbols
        .lines()
        .find_map(|l| l.strip_suffix(" mcsafe_asm_copy_fragile"))
        .and_then(|l| usize::from_str_radix(l.split(' ').next()?, 16).ok())
        .ok_or("nm: no mcsafe_asm_copy_fragile symbol")?;
    Ok(strategy_routine(Strategy::Fragile).entry - linked)
}

/// Each instruction in `start..stop` (this process's addresses) as (address,
/// objdump's text of it).
#[cfg(target_arch = "x86_64")]
fn disassemble(start: usize, stop: usize, bias: usize) -> Result<Vec<(usize, String)>, String> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address={:#x}", start - bias))
        .arg(format!("--stop-address={:#x}", stop - bias))
        .arg(std::env::current_exe().unwrap())
        .output()
        .map_err(|e| format!("objdump: {e}"))?;
    let mut all = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((addr, rest)) = line.trim_start().split_once(":\t") else {
            continue;
        };
        if let (Ok(addr), false) = (usize::from_str_radix(addr, 16), rest.is_empty()) {
            all.push((addr + bias, rest.to_string()));
        }
    }
    Ok(all)
}

/// Each routine's prologue: its entry, and the start of its first range.
fn prologues() -> Result<Vec<(usize, usize)>, String> {
    let pads: Vec<_> = landing_pads().collect();
    routine_entries()
        .into_iter()
        .map(|entry| {
            let first = pads
                .iter()
                .filter(|p| p.begin >= entry)
                .map(|p| p.begin)
                .min()
                .ok_or("a routine without ranges")?;
            Ok((entry, first))
        })
        .collect()
}

/// Whether every instruction of a routine before its first range (its prologue)
/// leaves the caller's memory alone: a register-to-register move has no `(` in
/// AT&T syntax, and the one store a C API routine makes there is to its own
/// stack (`(%rsp)`: the red zone, where it keeps its context).
#[cfg(target_arch = "x86_64")]
fn prologues_touch_no_memory() -> Result<usize, String> {
    let bias = load_bias()?;
    let mut checked = 0;
    for (entry, first) in prologues()? {
        for (addr, text) in disassemble(entry, first, bias)? {
            if text.contains('(') && !text.contains("(%rsp)") {
                return Err(format!(
                    "{addr:#x} `{text}` before the first range touches memory"
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Instruction addresses inside every range of the routines this CPU runs,
/// from objdump, or why not.
#[cfg(target_arch = "x86_64")]
fn instructions_in_ranges() -> Result<BTreeSet<usize>, String> {
    let bias = load_bias()?;
    let mut all = BTreeSet::new();
    for pad in landing_pads().filter(|pad| runs_here(pad.begin)) {
        all.extend(
            disassemble(pad.begin, pad.end, bias)?
                .into_iter()
                .map(|(a, _)| a),
        );
    }
    if all.is_empty() {
        Err("objdump found no instructions".into())
    } else {
        Ok(all)
    }
}

/// Whether every instruction of a routine before its first range (its prologue)
/// leaves memory alone: no load or store (op0 = x1x0).
#[cfg(target_arch = "aarch64")]
fn prologues_touch_no_memory() -> Result<usize, String> {
    let mut checked = 0;
    for (entry, first) in prologues()? {
        for at in (entry..first).step_by(4) {
            // SAFETY: code of this binary, mapped readable.
            let insn = unsafe { (at as *const u32).read() };
            if insn & 0x0a00_0000 == 0x0800_0000 {
                return Err(format!(
                    "{at:#x} {insn:#010x} before the first range is a load or store"
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Instruction addresses inside every range of the routines this CPU runs: every
/// 4 bytes (A64 instructions are all 4 bytes, and no range holds data).
#[cfg(target_arch = "aarch64")]
fn instructions_in_ranges() -> Result<BTreeSet<usize>, String> {
    Ok(landing_pads()
        .filter(|pad| runs_here(pad.begin))
        .flat_map(|pad| (pad.begin..pad.end).step_by(4))
        .collect())
}

fn main() {
    if !trace::can_trace("every_instruction") {
        println!("every_instruction: NOT RUN under qemu-user (ptrace); the arm64 VM runs it");
        return;
    }
    let world = World {
        src: SharedFile::new(Some(SRC_SEED)),
        dst: SharedFile::new(None),
    };
    mcsafe::install().unwrap();
    set_thresholds(THRESHOLDS);
    // The fold512 walks with their prefetches (off on AMD): the shape without
    // them runs the same instructions but the prefetches, so this one covers both.
    set_fold512_prefetch(true);
    let mut visited = BTreeSet::new();
    let mut injections = 0;
    let mut unclaimed = 0;
    let mut injected_at = std::collections::HashMap::<usize, usize>::new();
    for (op, copy) in cases() {
        let steps = trace(&world, op, copy, Plan::Step);
        visited.extend(&steps.visited);
        let pages = |side: Side| match side {
            Side::Source => pages_of(world.src.base as usize + copy.src_at, copy.len),
            _ => pages_of(world.dst.base as usize + copy.dst_at, copy.len),
        };
        let sides: Vec<(Side, Vec<usize>)> = op.sides().iter().map(|&s| (s, pages(s))).collect();
        let page_count: usize = sides.iter().map(|(_, p)| p.len()).sum();
        // Short routines: every page of every side at every instruction; long
        // ones: one page per side at each instruction, in turn. In the arm64 VM
        // (see SAMPLED_FROM), one page of one side at each, in turn.
        let arm64 = cfg!(target_arch = "aarch64");
        let every_page = steps.in_range * page_count <= 200 && !arm64;
        let before = injections;
        for k in (0..steps.in_range).filter(|&k| worth_injecting(&steps.rips, k, copy.len)) {
            // The arm64 VM: each instruction of each routine at most
            // PER_INSTRUCTION times over all the calls (the first ones that
            // reach it), so that the run fits CI; every one still at least once,
            // reached by breakpoints (its address, and how many times it ran
            // before in this call).
            let mut at = None;
            if arm64 {
                let pc = steps.rips[k];
                let seen = injected_at.entry(pc).or_insert(0);
                if *seen >= PER_INSTRUCTION {
                    continue;
                }
                *seen += 1;
                at = Some((pc, steps.rips[..k].iter().filter(|&&r| r == pc).count()));
            }
            let sides_now = if arm64 {
                &sides[k % sides.len()..=k % sides.len()]
            } else {
                &sides[..]
            };
            for (side, pages) in sides_now {
                let chosen = if every_page {
                    pages.clone()
                } else {
                    vec![pages[k % pages.len()]]
                };
                for page in chosen {
                    let (side, unknown) = (*side, false);
                    let plan = Plan::Inject {
                        k,
                        side,
                        page,
                        unknown,
                        at,
                    };
                    trace(&world, op, copy, plan);
                    injections += 1;
                }
            }
            // aarch64: each instruction also interrupted once by an abort
            // without an address, which the routine's registers must place.
            if arm64 && injected_at.get(&steps.rips[k]) == Some(&1) {
                let (side, page) = (sides[0].0, sides[0].1[0]);
                let plan = Plan::Inject {
                    k,
                    side,
                    page,
                    unknown: true,
                    at,
                };
                trace(&world, op, copy, plan);
                unclaimed += 1;
            }
        }
        eprintln!(
            "{:>16} len {:>5}: {:>4} instructions stepped, {:>4} machine checks injected ({})",
            format!("{op:?}"),
            copy.len,
            steps.in_range,
            injections - before,
            if every_page {
                "every page at each"
            } else if arm64 {
                "one page of one side at each"
            } else {
                "one page per side at each"
            }
        );
    }
    match prologues_touch_no_memory() {
        Ok(n) => {
            eprintln!("prologues: {n} instructions before the first ranges, none touches memory")
        }
        Err(why) if why.starts_with("objdump:") || why.starts_with("nm:") => {
            require(false, "the prologues", &why);
        }
        Err(why) => panic!("{why}"),
    }
    match instructions_in_ranges() {
        Ok(all) => {
            let missed: Vec<String> = all
                .difference(&visited)
                .map(|a| format!("{a:#x}"))
                .collect();
            assert!(
                missed.is_empty(),
                "range instructions no copy executed (add a copy that does): {missed:?}"
            );
            eprintln!(
                "coverage: all {} instructions of {} ranges executed",
                all.len(),
                landing_pads().filter(|p| runs_here(p.begin)).count()
            );
            for routine in unavailable_routines() {
                // Not silent: a CPU without the instructions cannot run them.
                eprintln!(
                    "coverage: the {} routine's ranges were NOT traced: \
                     this CPU cannot run it (see Strategy::available, CrcPath)",
                    routine.name
                );
            }
        }
        Err(why) => {
            require(false, "instruction coverage", &why);
        }
    }
    if unclaimed > 0 {
        println!(
            "every_instruction: {unclaimed} unclaimed aborts without an address injected, all recovered"
        );
    }
    println!("every_instruction: {injections} machine checks injected, all recovered exactly");
}
