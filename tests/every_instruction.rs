//! Contract 6: the registers describe the copy's progress at EVERY instruction of
//! every landing-pad range, because a real machine check can be reported at any
//! instruction boundary of a loop (QEMU's at the start of a translated block, a
//! Skylake-SP erratum after `rep movs`), not only at the load that consumed it.
//!
//! Under ptrace, for each strategy and a set of copies that cross pages on both
//! sides and run through every path of every routine:
//!
//! 1. Step pass: single-step the routine. At each instruction inside a range,
//!    the range registers hold the call's buffers and every byte below rdi is
//!    already stored (read through a shared memfd mapping). Only the three
//!    prologue instructions lie outside the ranges.
//! 2. Injection passes: for each in-range instruction k (every dynamic
//!    instruction; of a `rep movsb`, whose iterations are steps at one address,
//!    the first 8 iterations and every 16th), run the copy again, stop
//!    at k, make one page of the source (then of the destination) unreadable by
//!    truncating its memfd, and deliver a forged `BUS_MCEERR_AR` for that page,
//!    page-aligned, lsb 12, exactly as the kernel reports a machine check. The
//!    copy must return `Poison` with exactly the bytes before that page, an exact
//!    prefix, and one signal: touching the "poisoned" page again would raise a
//!    second, real SIGBUS.
//! 3. Coverage: with `objdump`, every instruction of every range was executed
//!    (and so injected at) by some copy.
//!
//! A test binary with its own `main` (`harness = false`): the tracer forks, and
//! forking is only safe from a single-threaded process.

mod common;

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::ptr;

use common::*;
use mcsafe::internals::{Thresholds, landing_pads, routine_addr, set_thresholds};
use mcsafe::{FaultKind, Side, Strategy};
use nix::sys::ptrace;
use nix::sys::signal::{Signal, raise};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

const PAGES: usize = 4;

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
        // SAFETY: our file.
        assert_eq!(
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
/// words; and every size class of the vector routines (masked or overlapping
/// small moves, 2, 4 and 8 vectors, the aligned loop, `rep movsb` and the
/// non-temporal loop, reached with the thresholds of `THRESHOLDS`).
const COPIES: [Copy; 15] = [
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
];

/// Low thresholds, so that short copies reach every method of the vector
/// routines: the aligned loop (516 bytes), `rep movsb` (530) and the
/// non-temporal loop (from 700).
const THRESHOLDS: Thresholds = Thresholds {
    rep_movsb: 520,
    non_temporal: 600,
};

/// Whether a copy adds paths for `strategy`: the fragile loop and `rep movsb`
/// have no size classes past a few hundred bytes, so longer copies would only
/// repeat the same iterations.
fn worth_tracing(strategy: Strategy, copy: Copy) -> bool {
    match strategy {
        Strategy::Fragile => copy.len <= 1000,
        Strategy::RepMovsb => copy.len <= 310,
        _ => true,
    }
}

/// Whether to inject at the step pass's k-th in-range instruction. Every one,
/// except inside one string instruction that repeats at the same address (each
/// `rep movsb` iteration is a step): its first 8 iterations and every 16th.
fn worth_injecting(rips: &[usize], k: usize) -> bool {
    let repeats = rips[..k]
        .iter()
        .rev()
        .take_while(|&&r| r == rips[k])
        .count();
    repeats < 8 || repeats % 16 == 0
}

#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Check the progress invariant at every instruction.
    Step,
    /// At the k-th in-range instruction, lose `page` (an address) of `side` and
    /// report a machine check for it.
    Inject { k: usize, side: Side, page: usize },
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

/// The traced child: stops, copies, checks the outcome the plan expects, exits
/// 0 if all is as it should be.
fn child(world: &World, strategy: Strategy, copy: Copy, plan: Plan) -> ! {
    ptrace::traceme().unwrap();
    raise(Signal::SIGSTOP).unwrap();
    let (dst, src) = (
        world.dst.base.wrapping_add(copy.dst_at),
        world.src.base.wrapping_add(copy.src_at),
    );
    let before = mcsafe::stats().recovered;
    // SAFETY: both mappings are ours; the tracer may take pages away (SIGBUS).
    let result = unsafe { mcsafe::copy_mc_with(strategy, dst, src, copy.len) };
    let signals = mcsafe::stats().recovered - before;
    let (copied, problem) = match (plan, result) {
        (Plan::Step, Ok(())) => (
            copy.len,
            (signals != 0).then(|| format!("{signals} signals")),
        ),
        (Plan::Inject { side, page, .. }, Err(f)) => {
            let start = if side == Side::Source { src } else { dst } as usize;
            let want = page.saturating_sub(start);
            let ok = f.copied() == want
                && f.side() == side
                && f.kind() == FaultKind::Poison
                && f.granule() == PAGE
                && f.addr() == page
                && signals == 1;
            (
                f.copied(),
                (!ok).then(|| format!("got {f:?} after {signals} signals, want copied {want}")),
            )
        }
        (_, r) => (0, Some(format!("unexpected result {r:?}"))),
    };
    // SAFETY: the prefix lies before any page the tracer took away.
    let problem = problem.or_else(|| {
        unsafe { first_difference(dst, src, copied) }.map(|i| format!("prefix differs at {i}"))
    });
    if let Some(problem) = problem {
        eprintln!("{strategy} {copy:?} {plan:?}: {problem}");
        // SAFETY: leaving the forked child without running the parent's atexit work.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

fn wait_stop(pid: Pid) -> Signal {
    match waitpid(pid, None).unwrap() {
        WaitStatus::Stopped(_, sig) => sig,
        other => panic!("tracee did not stop: {other:?}"),
    }
}

/// Runs one traced copy; returns what the step pass saw (empty for injections).
fn trace(world: &World, strategy: Strategy, copy: Copy, plan: Plan) -> Trace {
    // SAFETY: this binary is single-threaded (harness = false), so the child may
    // run ordinary code after fork.
    let pid = match unsafe { fork() }.unwrap() {
        ForkResult::Child => child(world, strategy, copy, plan),
        ForkResult::Parent { child } => child,
    };
    assert_eq!(wait_stop(pid), Signal::SIGSTOP);

    // Run to the routine's entry with a breakpoint, then step from there.
    let entry = routine_addr(strategy);
    let word = ptrace::read(pid, entry as ptrace::AddressType).unwrap();
    ptrace::write(pid, entry as ptrace::AddressType, (word & !0xff) | 0xcc).unwrap();
    ptrace::cont(pid, None).unwrap();
    assert_eq!(wait_stop(pid), Signal::SIGTRAP);
    let mut regs = ptrace::getregs(pid).unwrap();
    assert_eq!(regs.rip as usize, entry + 1, "stopped at the breakpoint");
    ptrace::write(pid, entry as ptrace::AddressType, word).unwrap();
    regs.rip = entry as u64;
    ptrace::setregs(pid, regs).unwrap();
    let return_to = ptrace::read(pid, regs.rsp as ptrace::AddressType).unwrap() as u64;

    let (dst, src) = (
        world.dst.base as usize + copy.dst_at,
        world.src.base as usize + copy.src_at,
    );
    let mut seen = Trace {
        in_range: 0,
        visited: BTreeSet::new(),
        rips: Vec::new(),
    };
    let mut outside = 0;
    let mut checked = 0;
    let what = format!("{strategy} {copy:?}");
    loop {
        let regs = ptrace::getregs(pid).unwrap();
        let rip = regs.rip as usize;
        if regs.rip == return_to {
            break;
        }
        if in_a_range(rip) {
            if let Plan::Inject { k, side, page } = plan {
                if k == seen.in_range {
                    let file = if side == Side::Source {
                        &world.src
                    } else {
                        &world.dst
                    };
                    file.lose_from(page - file.base as usize);
                    ptrace::setsiginfo(pid, &machine_check(page)).unwrap();
                    ptrace::cont(pid, Signal::SIGBUS).unwrap();
                    break;
                }
            } else {
                assert_eq!(
                    (regs.r8, regs.r9, regs.r10),
                    (dst as u64, src as u64, copy.len as u64),
                    "{what}: range registers at {rip:#x}"
                );
                let progress = (regs.rdi as usize)
                    .checked_sub(dst)
                    .filter(|&p| p <= copy.len);
                let progress = progress.unwrap_or_else(|| {
                    panic!("{what}: rdi {:#x} outside dst at {rip:#x}", regs.rdi)
                });
                if progress > checked {
                    // SAFETY: both ranges are readable in this process too (shared mappings).
                    let diff = unsafe {
                        first_difference(
                            (dst + checked) as *const u8,
                            (src + checked) as *const u8,
                            progress - checked,
                        )
                    };
                    assert_eq!(
                        diff, None,
                        "{what}: at {rip:#x} rdi says {progress} bytes stored, but they are not"
                    );
                    checked = progress;
                }
            }
            seen.visited.insert(rip);
            seen.rips.push(rip);
            seen.in_range += 1;
        } else {
            assert_eq!(
                seen.in_range, 0,
                "{what}: instruction {rip:#x} after the prologue lies outside every range"
            );
            outside += 1;
        }
        ptrace::step(pid, None).unwrap();
        assert_eq!(wait_stop(pid), Signal::SIGTRAP, "{what}: single step");
    }
    if let Plan::Step = plan {
        assert_eq!(outside, 3, "{what}: the prologue is three instructions");
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

/// The siginfo the kernel sends for a machine check consumed in user mode:
/// BUS_MCEERR_AR, the page-aligned address, lsb 12.
fn machine_check(page: usize) -> libc::siginfo_t {
    // SAFETY: an all-zero siginfo_t is valid; the fields are written at the
    // kernel's x86-64 offsets (signo 0, code 8, addr 16, addr_lsb 24).
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let raw = (&raw mut info).cast::<u8>();
        raw.cast::<i32>().write(libc::SIGBUS);
        raw.add(8).cast::<i32>().write(libc::BUS_MCEERR_AR);
        raw.add(16).cast::<usize>().write(page);
        raw.add(24).cast::<i16>().write(12);
        info
    }
}

/// Pages of `start..start+len`, as addresses.
fn pages_of(start: usize, len: usize) -> Vec<usize> {
    (start & !(PAGE - 1)..start + len).step_by(PAGE).collect()
}

/// Instruction addresses inside every range, from objdump, or why not.
fn instructions_in_ranges() -> Result<BTreeSet<usize>, String> {
    let exe = std::env::current_exe().unwrap();
    let nm = Command::new("nm")
        .arg(&exe)
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let linked = symbols
        .lines()
        .find_map(|l| l.strip_suffix(" mcsafe_copy_fragile"))
        .and_then(|l| usize::from_str_radix(l.split(' ').next()?, 16).ok())
        .ok_or("nm: no mcsafe_copy_fragile symbol")?;
    let bias = routine_addr(Strategy::Fragile) - linked;
    let mut all = BTreeSet::new();
    for pad in landing_pads() {
        let out = Command::new("objdump")
            .args(["-d", "--no-show-raw-insn"])
            .arg(format!("--start-address={:#x}", pad.begin - bias))
            .arg(format!("--stop-address={:#x}", pad.end - bias))
            .arg(&exe)
            .output()
            .map_err(|e| format!("objdump: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((addr, rest)) = line.trim_start().split_once(":\t") else {
                continue;
            };
            if let (Ok(addr), false) = (usize::from_str_radix(addr, 16), rest.is_empty()) {
                all.insert(addr + bias);
            }
        }
    }
    if all.is_empty() {
        Err("objdump found no instructions".into())
    } else {
        Ok(all)
    }
}

fn main() {
    let world = World {
        src: SharedFile::new(Some(0x1234)),
        dst: SharedFile::new(None),
    };
    mcsafe::install().unwrap();
    set_thresholds(THRESHOLDS);
    let mut visited = BTreeSet::new();
    let mut injections = 0;
    for strategy in Strategy::available() {
        for copy in COPIES {
            if !worth_tracing(strategy, copy) {
                continue;
            }
            let steps = trace(&world, strategy, copy, Plan::Step);
            visited.extend(&steps.visited);
            let src_pages = pages_of(world.src.base as usize + copy.src_at, copy.len);
            let dst_pages = pages_of(world.dst.base as usize + copy.dst_at, copy.len);
            for k in (0..steps.in_range).filter(|&k| worth_injecting(&steps.rips, k)) {
                for (side, pages) in [(Side::Source, &src_pages), (Side::Destination, &dst_pages)] {
                    let page = pages[k % pages.len()];
                    trace(&world, strategy, copy, Plan::Inject { k, side, page });
                    injections += 1;
                }
            }
            eprintln!(
                "{strategy:>9} len {:>4}: {:>4} instructions stepped and injected at (both sides)",
                copy.len, steps.in_range
            );
        }
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
                landing_pads().count()
            );
        }
        Err(why) => {
            require(false, "instruction coverage", &why);
        }
    }
    println!("every_instruction: {injections} machine checks injected, all recovered exactly");
}
