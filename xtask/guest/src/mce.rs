//! Case 6: real machine checks. For each injection, a child fills a large
//! source, tells the host the physical address of one of its pages, and copies
//! (or checksums) the source in a loop until the host's `mce` (QEMU monitor)
//! lands. The #MC arrives asynchronously, at whatever instruction the CPU is
//! at; the kernel's memory-failure code poisons and unmaps the page and sends
//! `BUS_MCEERR_AR` with the page-aligned address. The copy must return
//! Poison/Source with exactly the bytes before that page (a checksum: and the
//! CRC of exactly those bytes), and the child goes on.

use std::time::{Duration, Instant};

use mcsafe::internals::{CrcPath, Thresholds};
use mcsafe::{Side, Strategy};

use crate::cases::routine_at;
use crate::mem::*;
use crate::protocol::{INJECTIONS, Line};
use crate::{Child, Verdict, record};

/// Source size: large, so that the CPU is nearly always inside a copy routine
/// (an #MC that lands in user mode between two copies kills the child, as it
/// should: that SIGBUS is not a copy fault).
const PAGES: usize = 4096;

/// Page positions of the injections: the first pages, both sides of a 2 MiB
/// boundary, the middle, the last pages.
const POSITIONS: [usize; 12] = [0, 1, 2, 63, 511, 512, 1000, 2047, 2048, 3333, 4094, 4095];

/// Source misalignments, cycled independently of the positions.
const SRC_OFFSETS: [usize; 5] = [0, 1, 8, 100, 4095];

/// Tries per injection that the #MC may land outside a copy routine.
const TRIES: usize = 4;

/// Injections `0..COPY_INJECTIONS` copy (`copy_mc_with`, the strategies in
/// turn); the next `CHECKSUM_INJECTIONS` checksum (`crc32c_mc`, the path this
/// CPU takes: a folding routine where it has PCLMULQDQ and AVX); the rest, up
/// to `INJECTIONS`, copy and checksum in one pass (`copy_crc32c_mc`, the same
/// path: its one-pass routine).
const COPY_INJECTIONS: usize = 24;
const CHECKSUM_INJECTIONS: usize = 6;

/// What an injection's loop runs while it waits for the machine check.
#[derive(Clone, Copy)]
enum Target {
    Copy(Strategy),
    Checksum(CrcPath),
    CopyChecksum(CrcPath),
}

impl Target {
    fn of(index: usize, strategies: &[Strategy]) -> Target {
        if index < COPY_INJECTIONS {
            Target::Copy(strategies[index % strategies.len()])
        } else if index < COPY_INJECTIONS + CHECKSUM_INJECTIONS {
            Target::Checksum(CrcPath::current())
        } else {
            Target::CopyChecksum(CrcPath::current())
        }
    }

    fn name(self) -> String {
        match self {
            Target::Copy(strategy) => strategy.name().to_string(),
            Target::Checksum(path) => format!("crc32c-{path:?}").to_lowercase(),
            Target::CopyChecksum(path) => format!("copy-crc32c-{path:?}").to_lowercase(),
        }
    }
}

/// Runs injections `from..INJECTIONS`: one case line each. Returns the verdicts.
pub fn run(ctx_strategies: &[Strategy], port: &crate::Port, from: usize) -> Vec<bool> {
    let mut verdicts = Vec::new();
    for index in from..INJECTIONS {
        let target = Target::of(index, ctx_strategies);
        let page = POSITIONS[index % POSITIONS.len()];
        let src_off = SRC_OFFSETS[index % SRC_OFFSETS.len()];
        let id = format!("6-mce-{index:02}-{}", target.name());
        let mut verdict = None;
        for attempt in 0..TRIES {
            // A retry takes a neighbouring page: the first one is poisoned for good.
            let page = if attempt % 2 == 0 { page } else { page ^ 1 };
            let outcome = crate::in_child(
                ctx_strategies.to_vec(),
                *port,
                Duration::from_secs(90),
                |ctx| inject_once(ctx, index, target, page, src_off),
            );
            let seen = record::seen();
            match outcome {
                Verdict::Killed(libc::SIGBUS, _)
                    if seen.count > 0 && routine_at(seen.rip).is_none() =>
                {
                    port.send(&Line::MceOutside {
                        index,
                        detail: format!(
                            "attempt {attempt}: si_code {} at RIP {:#x}, outside every copy routine: killed by SIGBUS",
                            seen.code, seen.rip
                        ),
                    });
                }
                Verdict::Killed(libc::SIGBUS, notes) if seen.count > 0 => {
                    verdict = Some(Err(format!(
                        "mcsafe passed on a fault at RIP {:#x} inside the {} routine (si_code {}, addr {:#x}); {notes}",
                        seen.rip,
                        routine_at(seen.rip).unwrap_or("?"),
                        seen.code,
                        seen.addr
                    )));
                    break;
                }
                other => {
                    verdict = Some(other.into_result(None));
                    break;
                }
            }
        }
        let result = verdict.unwrap_or_else(|| {
            Err(format!(
                "{TRIES} injections all landed outside a copy routine"
            ))
        });
        verdicts.push(result.is_ok());
        port.send(&Line::Case {
            id,
            pass: result.is_ok(),
            detail: result.unwrap_or_else(|e| e),
        });
    }
    verdicts
}

/// How a vector strategy copies this injection's 16 MiB: every third injection
/// of such a strategy with `rep movsb`, every third with its aligned vector
/// loop, every third with its non-temporal loop, by setting the thresholds in
/// the injection's own process (the defaults depend on the CPU: docs/cpus.md).
fn vector_method(strategy: Strategy, index: usize) -> (&'static str, Option<Thresholds>) {
    if matches!(strategy, Strategy::Fragile | Strategy::RepMovsb) {
        return ("", None);
    }
    let never = usize::MAX;
    match (index / 3) % 3 {
        // Explicit, not the CPU's defaults: rep movsb may be off by rule there
        // (AMD before Zen 5), and then this third would repeat the vector loop.
        0 => (
            " (rep movsb)",
            Some(Thresholds {
                avx2_rep_movsb: 0,
                avx512_rep_movsb: 0,
                rep_movsb_stop: never,
                non_temporal: never,
            }),
        ),
        1 => (
            " (vector loop)",
            Some(Thresholds {
                avx2_rep_movsb: never,
                avx512_rep_movsb: never,
                rep_movsb_stop: never,
                non_temporal: never,
            }),
        ),
        _ => (
            " (non-temporal loop)",
            Some(Thresholds {
                avx2_rep_movsb: never,
                avx512_rep_movsb: never,
                rep_movsb_stop: never,
                non_temporal: 0,
            }),
        ),
    }
}

fn inject_once(
    ctx: &mut Child,
    index: usize,
    target: Target,
    page: usize,
    src_off: usize,
) -> Result<String, String> {
    let strategy = match target {
        Target::Copy(strategy) => strategy,
        Target::Checksum(path) => return checksum_once(ctx, index, path, page, src_off),
        Target::CopyChecksum(path) => return copy_checksum_once(ctx, index, path, page, src_off),
    };
    record::install(true);
    mcsafe::install().map_err(|e| e.to_string())?;
    let (method, thresholds) = vector_method(strategy, index);
    if let Some(t) = thresholds {
        mcsafe::internals::set_thresholds(t);
    }
    let src = Mapping::anon_small_pages(PAGES * PAGE)?;
    // Successive copies go to two destinations 64 bytes apart, so that what an
    // earlier clean copy left there cannot pass for the faulting copy's prefix.
    let dst = Mapping::anon_small_pages(PAGES * PAGE + PAGE)?;
    // SAFETY: fresh memory; filling the destination also faults it in, so the
    // loop below spends its time copying, not in the kernel.
    unsafe {
        fill(src.base, src.len, index as u64);
        fill(dst.base, dst.len, !0);
    }
    let lost = src.base as usize + page * PAGE;
    let paddr = physical_page(lost)?;
    let (from, len) = (src.at(src_off), src.len - src_off);
    let want = Want {
        lost,
        granule: PAGE,
        side: Side::Source,
    };
    let cpu = copy_cpu()?;
    ctx.port.send(&Line::MceReady { index, cpu, paddr });
    let before = mcsafe::stats().recovered;
    let start = Instant::now();
    let mut clean = 0u64;
    let (fault, to) = loop {
        let to = dst.at(clean as usize % 2 * 64);
        // SAFETY: our buffers; the machine check may poison `lost` at any time.
        match unsafe { mcsafe::copy_mc_with(strategy, to, from, len) } {
            Ok(()) => clean += 1,
            Err(fault) => break (fault, to),
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "no machine check arrived within 60 s ({clean} clean copies)"
            ));
        }
    };
    let waited = start.elapsed();
    let signals = mcsafe::stats().recovered - before;
    let copied = lost.saturating_sub(from as usize);
    let exact = fault.kind() == mcsafe::FaultKind::Poison
        && fault.side() == want.side
        && fault.granule() == PAGE
        && fault.addr() == lost
        && fault.copied() == copied
        && signals == 1;
    if !exact {
        return Err(format!(
            "{strategy}{method}: {fault} ({signals} signals); want Poison/source at {lost:#x} (page-aligned), copied {copied}"
        ));
    }
    // SAFETY: the prefix ends before the lost page on both sides.
    if let Some(i) = unsafe { first_difference(to, from, copied) } {
        return Err(format!("{strategy}{method}: prefix differs at byte {i}"));
    }
    Ok(format!(
        "{strategy}{method}: page {page} of {PAGES} at {paddr:#x}, src +{src_off}: Poison, source, si_addr page-aligned, copied {copied} \
         exact, one signal; #MC after {clean} clean copies ({:.1} s)",
        waited.as_secs_f64()
    ))
}

/// The checksum's injection: `crc32c_mc` over the source in a loop until the
/// machine check lands; then Poison/Source at the page, exactly the bytes
/// before it checked, their CRC (computed here byte by byte), one signal.
fn checksum_once(
    ctx: &mut Child,
    index: usize,
    path: CrcPath,
    page: usize,
    src_off: usize,
) -> Result<String, String> {
    record::install(true);
    mcsafe::install().map_err(|e| e.to_string())?;
    let src = Mapping::anon_small_pages(PAGES * PAGE)?;
    // SAFETY: fresh memory.
    unsafe { fill(src.base, src.len, index as u64) };
    let lost = src.base as usize + page * PAGE;
    let paddr = physical_page(lost)?;
    let (from, len) = (src.at(src_off), src.len - src_off);
    let cpu = copy_cpu()?;
    ctx.port.send(&Line::MceReady { index, cpu, paddr });
    let before = mcsafe::stats().recovered;
    let start = Instant::now();
    let mut clean = 0u64;
    let fault = loop {
        // SAFETY: our buffer; the machine check may poison `lost` at any time.
        match unsafe {
            mcsafe::internals::crc32c_mc_with(path, mcsafe::internals::CRC_BLOCK, 0, from, len)
        } {
            Ok(_) => clean += 1,
            Err(fault) => break fault,
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "no machine check arrived within 60 s ({clean} clean checksums)"
            ));
        }
    };
    let waited = start.elapsed();
    let signals = mcsafe::stats().recovered - before;
    let checked = lost.saturating_sub(from as usize);
    let f = fault.fault();
    let exact = f.kind() == mcsafe::FaultKind::Poison
        && f.side() == Side::Source
        && f.granule() == PAGE
        && f.addr() == lost
        && fault.checked() == checked
        && signals == 1;
    if !exact {
        return Err(format!(
            "{path:?}: {fault} ({signals} signals); want Poison/source at {lost:#x} (page-aligned), checked {checked}"
        ));
    }
    // SAFETY: the checked bytes end before the lost page.
    let want = crc32c_bytewise(unsafe { std::slice::from_raw_parts(from, checked) });
    if fault.crc() != want {
        return Err(format!(
            "{path:?}: CRC {:#010x} of the {checked} bytes before the page, want {want:#010x}",
            fault.crc()
        ));
    }
    Ok(format!(
        "crc32c_mc ({path:?}): page {page} of {PAGES} at {paddr:#x}, src +{src_off}: Poison, source, si_addr page-aligned, checked {checked} \
         exact, CRC of those bytes exact, one signal; #MC after {clean} clean checksums ({:.1} s)",
        waited.as_secs_f64()
    ))
}

/// The one-pass copy's injection: `copy_crc32c_mc` from the source in a loop
/// (to two destinations in turn, as the copies do) until the machine check
/// lands; then Poison/Source at the page, exactly the bytes before it copied
/// (the prefix first overwritten, so no stale byte passes) and their CRC, one
/// signal. Every other injection keeps the streams in the blocks of this long
/// call (the routine's default from 256 KiB on is blocks without them); fold512,
/// which has no streams, stores plainly in every other injection and around the
/// cache in the rest (the copy's non-temporal threshold moved in this process).
fn copy_checksum_once(
    ctx: &mut Child,
    index: usize,
    path: CrcPath,
    page: usize,
    src_off: usize,
) -> Result<String, String> {
    record::install(true);
    mcsafe::install().map_err(|e| e.to_string())?;
    let blocks = match (path, index.is_multiple_of(2)) {
        (CrcPath::Fold512, plain) => {
            let defaults = mcsafe::internals::thresholds();
            mcsafe::internals::set_thresholds(Thresholds {
                non_temporal: if plain { usize::MAX } else { 0 },
                ..defaults
            });
            if plain {
                "plain stores"
            } else {
                "non-temporal stores"
            }
        }
        (_, true) => "blocks with streams",
        (_, false) => "blocks without streams",
    };
    let (block, vector_only) = mcsafe::internals::COPY_CRC_BLOCKS;
    let sizes = (
        block,
        if index.is_multiple_of(2) {
            usize::MAX
        } else {
            vector_only
        },
    );
    let src = Mapping::anon_small_pages(PAGES * PAGE)?;
    let dst = Mapping::anon_small_pages(PAGES * PAGE + PAGE)?;
    // SAFETY: fresh memory; filling the destination also faults it in.
    unsafe {
        fill(src.base, src.len, index as u64);
        fill(dst.base, dst.len, !0);
    }
    let lost = src.base as usize + page * PAGE;
    let paddr = physical_page(lost)?;
    let (from, len) = (src.at(src_off), src.len - src_off);
    let cpu = copy_cpu()?;
    ctx.port.send(&Line::MceReady { index, cpu, paddr });
    let before = mcsafe::stats().recovered;
    let start = Instant::now();
    let mut clean = 0u64;
    let (fault, to) = loop {
        let to = dst.at(clean as usize % 2 * 64);
        // SAFETY: our buffers; the machine check may poison `lost` at any time.
        match unsafe { mcsafe::internals::copy_crc32c_mc_with(path, sizes, 0, to, from, len) } {
            Ok(_) => clean += 1,
            Err(fault) => break (fault, to),
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "no machine check arrived within 60 s ({clean} clean copies)"
            ));
        }
    };
    let waited = start.elapsed();
    let signals = mcsafe::stats().recovered - before;
    let copied = lost.saturating_sub(from as usize);
    let f = fault.fault();
    let exact = f.kind() == mcsafe::FaultKind::Poison
        && f.side() == Side::Source
        && f.granule() == PAGE
        && f.addr() == lost
        && fault.checked() == copied
        && signals == 1;
    if !exact {
        return Err(format!(
            "{path:?}: {fault} ({signals} signals); want Poison/source at {lost:#x} (page-aligned), copied {copied}"
        ));
    }
    // SAFETY: the prefix ends before the lost page on both sides.
    if let Some(i) = unsafe { first_difference(to, from, copied) } {
        return Err(format!("{path:?}: prefix differs at byte {i}"));
    }
    // SAFETY: as above.
    let want = crc32c_bytewise(unsafe { std::slice::from_raw_parts(from, copied) });
    if fault.crc() != want {
        return Err(format!(
            "{path:?}: CRC {:#010x} of the {copied} bytes copied, want {want:#010x}",
            fault.crc()
        ));
    }
    Ok(format!(
        "copy_crc32c_mc ({path:?}, {blocks}): page {page} of {PAGES} at {paddr:#x}, src +{src_off}: Poison, source, si_addr page-aligned, copied {copied} \
         exact, prefix and its CRC exact, one signal; #MC after {clean} clean copies ({:.1} s)",
        waited.as_secs_f64()
    ))
}

/// Moves this process to the last CPU (isolated, tickless: see the host's
/// kernel command line) and returns its number.
fn copy_cpu() -> Result<usize, String> {
    // SAFETY: sysconf and sched_setaffinity on this process, with a local set.
    unsafe {
        let cpus = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let cpu = cpus - 1;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(os_error("sched_setaffinity"));
        }
        libc::sched_yield();
        Ok(cpu)
    }
}
