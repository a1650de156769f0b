//! The cases of issue 3, each run in a forked child by `main.rs`. A case
//! returns `Ok(what it saw)` or `Err(what went wrong)`; cases that must end
//! with the child killed write notes first and are judged by the parent.

use std::ffi::CString;
use std::time::{Duration, Instant};

use mcsafe::{Side, Strategy};

use crate::Child;
use crate::mem::*;
use crate::record;

/// How a case child must end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exits normally after reporting.
    Report,
    /// Is killed by this signal (after its notes say it got that far).
    KilledBy(i32),
}

pub struct Case {
    pub id: &'static str,
    pub title: &'static str,
    pub ending: Ending,
    pub run: fn(&mut Child) -> Result<String, String>,
}

pub const CASES: &[Case] = &[
    Case {
        id: "1-anon-src",
        title: "MADV_HWPOISON, private anonymous, source page",
        ending: Ending::Report,
        run: anon_source,
    },
    Case {
        id: "1-anon-dst",
        title: "MADV_HWPOISON, private anonymous, destination page",
        ending: Ending::Report,
        run: anon_destination,
    },
    Case {
        id: "2-again",
        title: "second copy over the poisoned page: same answer, one signal",
        ending: Ending::Report,
        run: second_copy,
    },
    Case {
        id: "3-shared-anon",
        title: "MAP_SHARED anonymous (shmem), both sides",
        ending: Ending::Report,
        run: shared_anon,
    },
    Case {
        id: "3-memfd",
        title: "memfd (shmem), both sides; stays poisoned (pread EIO, new mapping)",
        ending: Ending::Report,
        run: memfd,
    },
    Case {
        id: "4-ext4-dirty",
        title: "ext4 on virtio disk, dirty page-cache page: Poison; fsync EIO once",
        ending: Ending::Report,
        run: ext4_dirty,
    },
    Case {
        id: "4-ext4-clean",
        title: "ext4 on virtio disk, clean page: dropped, re-read, copy succeeds",
        ending: Ending::Report,
        run: ext4_clean,
    },
    Case {
        id: "5-hugetlb",
        title: "hugetlb 2 MiB page, both sides: granule 2 MiB",
        ending: Ending::Report,
        run: hugetlb,
    },
    Case {
        id: "5-thp",
        title: "THP: one 4 KiB subpage lost, the rest of the huge page intact",
        ending: Ending::Report,
        run: thp,
    },
    Case {
        id: "9-checksums",
        title: "MADV_HWPOISON under crc32c_mc and copy_crc32c_mc, every path the CPU takes, both sides",
        ending: Ending::Report,
        run: checksums,
    },
    Case {
        id: "7-early-kill-handler",
        title: "early kill: BUS_MCEERR_AO reaches the handler installed before mcsafe",
        ending: Ending::Report,
        run: early_kill_to_handler,
    },
    Case {
        id: "7-early-kill-default",
        title: "early kill: BUS_MCEERR_AO takes the default action (killed by SIGBUS)",
        ending: Ending::Report,
        run: early_kill_default,
    },
    Case {
        id: "13-lossy",
        title: "lossy copy and region across poison: zeros, exact lists, one signal per granule, huge page, EIO",
        ending: Ending::Report,
        run: crate::lossy::run,
    },
    Case {
        id: "8-touch",
        title: "direct touch of a poisoned page outside copy_mc kills by SIGBUS",
        ending: Ending::KilledBy(libc::SIGBUS),
        run: touch_outside,
    },
];

const PAGES: usize = 16;
const LOST_PAGE: usize = 9;

/// Every strategy × misalignment copy over a buffer of `poisoned` whose granule
/// at `lost` (an offset into it) is poisoned, with that buffer on `side` and an
/// ordinary buffer on the other. Returns the number of faulting copies checked.
fn sweep(
    ctx: &Child,
    poisoned: &Mapping,
    lost: usize,
    granule: usize,
    side: Side,
    offsets: &[(usize, usize)],
) -> Result<usize, String> {
    let other = Mapping::anon_small_pages(poisoned.len + PAGE)?;
    // SAFETY: fresh memory.
    unsafe { fill(other.base, other.len, 0x07e4) };
    let mut copies = 0;
    for &strategy in &ctx.strategies {
        for &(poisoned_off, other_off) in offsets {
            let len = poisoned.len - poisoned_off;
            let (dst, src) = match side {
                Side::Source => (other.at(other_off), poisoned.at(poisoned_off)),
                _ => (poisoned.at(poisoned_off), other.at(other_off)),
            };
            let want = Want {
                lost: poisoned.base as usize + lost,
                granule,
                side,
            };
            // SAFETY: both buffers are ours; only the lost granule faults.
            unsafe { expect_poison(strategy, dst, src, len, want) }?;
            copies += 1;
        }
    }
    Ok(copies)
}

/// Every (source offset, destination offset) pair of the small-page cases.
fn all_offsets() -> Vec<(usize, usize)> {
    SRC_OFFSETS
        .iter()
        .flat_map(|&s| DST_OFFSETS.iter().map(move |&d| (s, d)))
        .collect()
}

/// A filled private anonymous buffer of `PAGES` small pages with page
/// `LOST_PAGE` poisoned.
fn poisoned_anon() -> Result<Mapping, String> {
    let m = Mapping::anon_small_pages(PAGES * PAGE)?;
    // SAFETY: fresh memory.
    unsafe { fill(m.base, m.len, 1) };
    m.poison(LOST_PAGE * PAGE)?;
    Ok(m)
}

/// What a copy from `m` must report when its page `LOST_PAGE` is poisoned.
fn source_page_lost(m: &Mapping) -> Want {
    Want {
        lost: m.base as usize + LOST_PAGE * PAGE,
        granule: PAGE,
        side: Side::Source,
    }
}

fn summary(copies: usize, ctx: &Child) -> String {
    format!(
        "{copies} faulting copies exact ({} strategies x misalignments), one signal each",
        ctx.strategies.len()
    )
}

/// [`sweep`] over a small-page buffer whose page `LOST_PAGE` is poisoned.
fn sweep_lost_page(
    ctx: &Child,
    m: &Mapping,
    side: Side,
    offsets: &[(usize, usize)],
) -> Result<usize, String> {
    sweep(ctx, m, LOST_PAGE * PAGE, PAGE, side, offsets)
}

fn anon_source(ctx: &mut Child) -> Result<String, String> {
    let n = sweep_lost_page(ctx, &poisoned_anon()?, Side::Source, &all_offsets())?;
    Ok(summary(n, ctx))
}

fn anon_destination(ctx: &mut Child) -> Result<String, String> {
    let n = sweep_lost_page(ctx, &poisoned_anon()?, Side::Destination, &all_offsets())?;
    Ok(summary(n, ctx))
}

fn second_copy(ctx: &mut Child) -> Result<String, String> {
    let m = poisoned_anon()?;
    let dst = Mapping::anon_small_pages(m.len)?;
    let want = source_page_lost(&m);
    for &strategy in &ctx.strategies {
        // SAFETY: our buffers; only the poisoned page faults.
        let first = unsafe { expect_poison(strategy, dst.base, m.at(5), m.len - 5, want) }?;
        // SAFETY: as above.
        let second = unsafe { expect_poison(strategy, dst.base, m.at(5), m.len - 5, want) }?;
        if first != second {
            return Err(format!("{strategy}: first {first:?}, second {second:?}"));
        }
    }
    Ok(format!(
        "{} strategies: two copies each, identical faults, one signal per copy",
        ctx.strategies.len()
    ))
}

/// A filled `MAP_SHARED` mapping of `fd` (or anonymous shmem when `fd` < 0)
/// with page `LOST_PAGE` poisoned.
fn poisoned_shared(fd: i32) -> Result<Mapping, String> {
    let flags = if fd < 0 {
        libc::MAP_SHARED | libc::MAP_ANONYMOUS
    } else {
        libc::MAP_SHARED
    };
    let m = Mapping::new(PAGES * PAGE, flags, fd)?;
    // SAFETY: fresh memory.
    unsafe { fill(m.base, m.len, 3) };
    m.poison(LOST_PAGE * PAGE)?;
    Ok(m)
}

fn both_sides(ctx: &Child, m: &Mapping, offsets: &[(usize, usize)]) -> Result<usize, String> {
    Ok(sweep_lost_page(ctx, m, Side::Source, offsets)?
        + sweep_lost_page(ctx, m, Side::Destination, offsets)?)
}

fn shared_anon(ctx: &mut Child) -> Result<String, String> {
    let m = poisoned_shared(-1)?;
    let n = both_sides(ctx, &m, &all_offsets())?;
    Ok(summary(n, ctx))
}

fn memfd_with_pages(name: &str, pages: usize) -> Result<i32, String> {
    let name = CString::new(name).unwrap();
    // SAFETY: plain system calls.
    unsafe {
        let fd = libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 || libc::ftruncate(fd, (pages * PAGE) as i64) != 0 {
            return Err(os_error("memfd"));
        }
        Ok(fd)
    }
}

/// `pread` of one page at `offset`: `Ok(())` or the errno.
fn pread_page(fd: i32, offset: usize) -> Result<(), i32> {
    let mut buf = vec![0u8; PAGE];
    // SAFETY: reads into our buffer.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), PAGE, offset as i64) };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

fn memfd(ctx: &mut Child) -> Result<String, String> {
    let fd = memfd_with_pages("mcsafe-vm", PAGES)?;
    let m = poisoned_shared(fd)?;
    let mut n = both_sides(ctx, &m, &all_offsets())?;
    // The page stays in the file, poisoned: read(2) fails with EIO, and a new
    // mapping of the file faults on it the same way.
    if pread_page(fd, LOST_PAGE * PAGE) != Err(libc::EIO) {
        return Err("pread of the poisoned page did not fail with EIO".into());
    }
    if pread_page(fd, (LOST_PAGE - 1) * PAGE).is_err() {
        return Err("pread of the page before the poisoned one failed".into());
    }
    let again = Mapping::new(PAGES * PAGE, libc::MAP_SHARED, fd)?;
    n += both_sides(ctx, &again, &[(0, 0), (1, 7)])?;
    Ok(format!(
        "{}; pread of the page: EIO; a new mapping faults the same",
        summary(n, ctx)
    ))
}

/// Where the ext4 file system of case 4 is mounted (by `main.rs` at boot).
pub const EXT4_DIR: &str = "/mnt";

fn ext4_file(name: &str) -> Result<i32, String> {
    let path = CString::new(format!("{EXT4_DIR}/{name}")).unwrap();
    // SAFETY: plain system call.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        )
    };
    if fd < 0 {
        return Err(os_error(&format!("open {path:?} (ext4 not mounted?)")));
    }
    Ok(fd)
}

fn fsync_errno(fd: i32) -> i32 {
    // SAFETY: plain system call.
    if unsafe { libc::fsync(fd) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

fn ext4_dirty(ctx: &mut Child) -> Result<String, String> {
    let mut n = 0;
    let mut fsyncs = Vec::new();
    for side in [Side::Source, Side::Destination] {
        let fd = ext4_file(&format!("dirty-{side}"))?;
        // SAFETY: plain system call.
        if unsafe { libc::ftruncate(fd, (PAGES * PAGE) as i64) } != 0 {
            return Err(os_error("ftruncate"));
        }
        // Written through the mapping and never synced: dirty page-cache pages.
        let m = poisoned_shared(fd)?;
        n += sweep_lost_page(ctx, &m, side, &all_offsets())?;
        // The kernel truncated the dirty page from the cache and recorded the
        // lost write: the next fsync reports it, the one after does not.
        let (first, second) = (fsync_errno(fd), fsync_errno(fd));
        if (first, second) != (libc::EIO, 0) {
            return Err(format!(
                "fsync after the dirty page was lost: errno {first}, then {second} (want EIO, then 0)"
            ));
        }
        fsyncs.push("EIO then 0");
    }
    Ok(format!("{}; fsync: {}", summary(n, ctx), fsyncs.join(", ")))
}

fn ext4_clean(ctx: &mut Child) -> Result<String, String> {
    const SEED: u64 = 4;
    let fd = ext4_file("clean")?;
    let mut data = vec![0u8; PAGES * PAGE];
    // SAFETY: our buffer.
    unsafe { fill(data.as_mut_ptr(), data.len(), SEED) };
    // SAFETY: plain system calls on our buffer and file.
    unsafe {
        if libc::write(fd, data.as_ptr().cast(), data.len()) != data.len() as isize
            || libc::fsync(fd) != 0
        {
            return Err(os_error("write and fsync"));
        }
    }
    let m = Mapping::with_prot(PAGES * PAGE, libc::PROT_READ, libc::MAP_SHARED, fd)?;
    // SAFETY: the file's pages are all there; this reads them into the cache.
    if let Some(i) = unsafe { first_pattern_difference(m.base, m.len, SEED, 0) } {
        return Err(format!("file reads back wrong at byte {i}"));
    }
    let lost = m.base as usize + LOST_PAGE * PAGE;
    let frame_before = pfn(lost)?;
    m.poison(LOST_PAGE * PAGE)?;
    let dst = Mapping::anon_small_pages(m.len + PAGE)?;
    let before = mcsafe::stats().recovered;
    for &strategy in &ctx.strategies {
        for (src_off, dst_off) in all_offsets() {
            let len = m.len - src_off;
            // SAFETY: our buffers; the clean page comes back from disk.
            unsafe { mcsafe::copy_mc_with(strategy, dst.at(dst_off), m.at(src_off), len) }
                .map_err(|f| format!("{strategy}: copy over the dropped clean page failed: {f}"))?;
            if let Some(i) =
                // SAFETY: `dst.at(dst_off)..+len` lies inside `dst` (`m.len + PAGE`
                // bytes, `dst_off < PAGE`, `len <= m.len`), anonymous memory that
                // does not fault; it holds the `len` copied bytes.
                unsafe { first_pattern_difference(dst.at(dst_off), len, SEED, src_off) }
            {
                return Err(format!("{strategy}: byte {i} differs from the file's data"));
            }
        }
    }
    let signals = mcsafe::stats().recovered - before;
    let frame_after = pfn(lost)?;
    if signals != 0 || frame_after == frame_before {
        return Err(format!(
            "{signals} signals; page frame {frame_before:#x} -> {frame_after:#x} (want 0 signals and a new frame)"
        ));
    }
    Ok(format!(
        "{} copies succeeded with the file's data, 0 signals; the page was re-read from disk into a new frame ({frame_before:#x} -> {frame_after:#x})",
        ctx.strategies.len() * all_offsets().len()
    ))
}

fn hugetlb(ctx: &mut Child) -> Result<String, String> {
    let mut n = 0;
    for side in [Side::Source, Side::Destination] {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB;
        let m = Mapping::new(3 * HUGE, flags, -1)
            .map_err(|e| format!("{e} (no huge pages reserved? boot with hugepages=)"))?;
        // SAFETY: fresh memory.
        unsafe { fill(m.base, m.len, 5) };
        // One 4 KiB page in the middle huge page: the whole huge page is lost.
        m.poison(HUGE + 77 * PAGE)?;
        n += sweep(ctx, &m, HUGE, HUGE, side, &[(0, 0), (1, 7), (4000, 0)])?;
    }
    Ok(format!(
        "{n} faulting copies: granule 2 MiB, copied = bytes before the huge page, one signal each"
    ))
}

fn thp(ctx: &mut Child) -> Result<String, String> {
    const SEED: u64 = 6;
    let raw = Mapping::new(3 * HUGE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)?;
    let aligned = (raw.base as usize).next_multiple_of(HUGE) - raw.base as usize;
    raw.advise(aligned, HUGE, libc::MADV_HUGEPAGE)?;
    let base = raw.at(aligned);
    // SAFETY: our memory.
    unsafe { fill(base, HUGE, SEED) };
    let huge = Mapping { base, len: HUGE };
    let result = thp_in(ctx, &huge, SEED);
    std::mem::forget(huge); // part of `raw`, unmapped with it
    result
}

fn thp_in(ctx: &Child, huge: &Mapping, seed: u64) -> Result<String, String> {
    let lost = 200;
    let frame = pfn(huge.base as usize)?;
    if !is_thp(frame)? {
        return Err(
            "the kernel did not back the aligned 2 MiB with a transparent huge page".into(),
        );
    }
    huge.poison(lost * PAGE)?;
    let after = pfn(huge.at((lost + 1) * PAGE) as usize)?;
    if is_thp(after)? {
        return Err("the huge page was not split after poisoning a subpage".into());
    }
    let n = sweep(ctx, huge, lost * PAGE, PAGE, Side::Source, &all_offsets())?;
    // Only the poisoned 4 KiB is gone: everything after it copies and matches.
    let dst = Mapping::anon_small_pages(HUGE)?;
    let from = (lost + 1) * PAGE;
    for &strategy in &ctx.strategies {
        // SAFETY: our buffers; the range after the lost page is intact.
        unsafe { mcsafe::copy_mc_with(strategy, dst.base, huge.at(from), HUGE - from) }
            .map_err(|f| format!("{strategy}: copy after the lost subpage failed: {f}"))?;
        // SAFETY: dst holds the copied bytes.
        if let Some(i) = unsafe { first_pattern_difference(dst.base, HUGE - from, seed, from) } {
            return Err(format!(
                "{strategy}: byte {i} after the lost subpage differs"
            ));
        }
    }
    Ok(format!(
        "THP split on poison; {n} faulting copies with granule 4 KiB; the other 511 subpages copy intact"
    ))
}

// ---- case 7: early kill ----

/// The routine (its name in asm/: `copy_avx2`, `c_copy_fragile`, `fill`,
/// `crc32c_fold256`, ...) whose landing-pad range holds `rip`.
pub fn routine_at(rip: usize) -> Option<&'static str> {
    mcsafe::internals::landing_pads().find(|p| p.begin <= rip && rip < p.end)?;
    mcsafe::internals::descriptors()
        .find(|d| d.entry <= rip && rip < d.end)
        .map(|d| d.name)
}

/// Opts this process into early kill: the kernel signals it (`BUS_MCEERR_AO`)
/// as soon as a page it maps is found poisoned, wherever it is running.
fn early_kill() -> Result<(), String> {
    // SAFETY: plain system call.
    if unsafe {
        libc::prctl(
            libc::PR_MCE_KILL,
            libc::PR_MCE_KILL_SET,
            libc::PR_MCE_KILL_EARLY,
            0,
            0,
        )
    } != 0
    {
        return Err(os_error("prctl(PR_MCE_KILL_EARLY)"));
    }
    Ok(())
}

/// Copies the pages before `LOST_PAGE` of a shared memfd buffer in a loop with
/// `strategy` while a forked process poisons page `LOST_PAGE`, until the early
/// kill's `BUS_MCEERR_AO` has reached the recording handler (or, with the
/// default action, killed this process): the copies never touch the poisoned
/// page, so the AO lands in them, not after a copy fault. (Copying the whole
/// buffer, the arm64 VM's copier met the unmapped page before the kernel sent
/// the AO, whose pc was then the fixup's, eight rounds in a row.) One copy of the
/// whole buffer then gets all the checks of `expect_poison`. Returns the clean
/// copies before and the lost page's address, or an error (also when `give_up`
/// passes first).
fn copy_while_another_poisons(
    strategy: Strategy,
    give_up: Duration,
) -> Result<(usize, usize), String> {
    let fd = memfd_with_pages("mcsafe-early", PAGES)?;
    let m = Mapping::new(PAGES * PAGE, libc::MAP_SHARED, fd)?;
    // SAFETY: fresh memory.
    unsafe { fill(m.base, m.len, 7) };
    let dst = Mapping::anon_small_pages(m.len)?;
    // SAFETY: fork from a single-threaded process.
    let poisoner = unsafe { libc::fork() };
    if poisoner == 0 {
        // The poisoner itself must not be signalled early: only the copier is.
        // SAFETY: plain system call.
        unsafe { libc::prctl(libc::PR_MCE_KILL, libc::PR_MCE_KILL_CLEAR, 0, 0, 0) };
        std::thread::sleep(Duration::from_millis(30));
        let code = if m.poison(LOST_PAGE * PAGE).is_ok() {
            0
        } else {
            1
        };
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let want = source_page_lost(&m);
    let start = Instant::now();
    let mut clean = 0;
    let signalled = record::seen().count;
    let result = loop {
        if start.elapsed() > give_up {
            break Err(format!(
                "{strategy}: no early-kill signal within {give_up:?}"
            ));
        }
        if let Err(fault) =
            // SAFETY: our buffers (`dst` as long as `m`); the pages copied here,
            // before `LOST_PAGE`, are not the poisoned one.
            unsafe { mcsafe::copy_mc_with(strategy, dst.base, m.base, LOST_PAGE * PAGE) }
        {
            break Err(format!(
                "{strategy}: a copy of healthy pages returned {fault} (a BUS_MCEERR_AO taken as \
                 a copy fault?)"
            ));
        }
        clean += 1;
        if record::seen().count != signalled {
            // The page is poisoned now: the full set of checks on a copy of it.
            // SAFETY: our buffers; the poisoned page faults, and mcsafe recovers.
            break unsafe { expect_poison(strategy, dst.base, m.base, m.len, want) }
                .map(|_| (clean, want.lost));
        }
    };
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(poisoner, &mut status, 0) };
    if status != 0 {
        return Err(format!("the poisoning process failed (status {status:#x})"));
    }
    result
}

fn early_kill_to_handler(ctx: &mut Child) -> Result<String, String> {
    record::install(false);
    mcsafe::install().map_err(|e| e.to_string())?;
    early_kill()?;
    let mut seen = Vec::new();
    let mut in_routine = 0;
    // Where the AO lands is chance (the copy loop spends most, not all, of its
    // time in the routine): with one strategy (arm64) a round may see none
    // inside, so up to four rounds until one does.
    let rounds = ctx.strategies.iter().cycle().take(4 * ctx.strategies.len());
    for (i, &strategy) in rounds.enumerate() {
        if in_routine > 0 && i >= ctx.strategies.len() {
            break;
        }
        let (before, passed_on) = (record::seen(), mcsafe::stats().passed_on);
        let (clean, lost) = copy_while_another_poisons(strategy, Duration::from_secs(20))?;
        let after = record::seen();
        let (signals, handed_on) = (
            after.count - before.count,
            mcsafe::stats().passed_on - passed_on,
        );
        if signals != 1 || handed_on != 1 || after.code != libc::BUS_MCEERR_AO || after.addr != lost
        {
            return Err(format!(
                "{strategy}: the earlier handler saw {signals} signals (last si_code {}, addr {:#x}; want 1, \
                 BUS_MCEERR_AO = {}, {lost:#x}); mcsafe passed on {handed_on}",
                after.code,
                after.addr,
                libc::BUS_MCEERR_AO
            ));
        }
        let place = routine_at(after.rip);
        in_routine += usize::from(place.is_some());
        seen.push(format!(
            "{strategy}: AO after {clean} clean copies, RIP {:#x} in {}",
            after.rip,
            place.unwrap_or("no copy routine")
        ));
    }
    if in_routine == 0 {
        return Err(format!(
            "no BUS_MCEERR_AO arrived while a copy routine ran, so none tested the handler's refusal: {}",
            seen.join("; ")
        ));
    }
    Ok(format!(
        "BUS_MCEERR_AO reached the earlier handler once per copy run, never a copy fault; \
         the poisoned page then gave Poison as usual. {}",
        seen.join("; ")
    ))
}

fn early_kill_default(ctx: &mut Child) -> Result<String, String> {
    let mut seen = Vec::new();
    for &strategy in &ctx.strategies {
        // SAFETY: fork from a single-threaded process.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // No earlier handler: this /init is a Rust program, whose std installs
            // its own SIGBUS handler at start-up (for stack overflows); put the
            // default action back so that mcsafe has SIG_DFL to pass on to.
            // SAFETY: setting a disposition in this single-threaded child.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            let code = match mcsafe::install()
                .map_err(|e| e.to_string())
                .and_then(|()| early_kill())
            {
                // Reaching the end means the AO did not kill: the parent fails it.
                Ok(()) => match copy_while_another_poisons(strategy, Duration::from_secs(20)) {
                    Ok(_) => 3,
                    Err(e) => {
                        eprintln!("7-early-kill-default {strategy}: {e}");
                        4
                    }
                },
                Err(_) => 5,
            };
            // SAFETY: leave the forked child without the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS) {
            return Err(format!(
                "{strategy}: the copying process was not killed by SIGBUS (status {status:#x}: 3 = it survived the AO and \
                 met the poison, 4 = see console, 5 = setup failed)"
            ));
        }
        seen.push(strategy.name());
    }
    Ok(format!(
        "killed by SIGBUS (the AO's default action) while copying, for {}",
        seen.join(", ")
    ))
}

fn touch_outside(ctx: &mut Child) -> Result<String, String> {
    let m = poisoned_anon()?;
    let dst = Mapping::anon_small_pages(m.len)?;
    let want = source_page_lost(&m);
    // SAFETY: our buffers; only the poisoned page faults.
    unsafe { expect_poison(ctx.strategies[0], dst.base, m.base, m.len, want) }?;
    ctx.note("copy_mc recovered; now reading the poisoned page directly");
    // SAFETY: a plain read of a mapped page: it raises SIGBUS, which is the point.
    let byte = unsafe { m.at(LOST_PAGE * PAGE).read_volatile() };
    Err(format!("read the poisoned page and lived (got {byte:#x})"))
}

/// `crc32c_mc` over a buffer whose page `LOST_PAGE` is poisoned, and
/// `copy_crc32c_mc` with it as source and as destination, along every checksum
/// path this CPU can take, at every offset pair (for the checksum, the source
/// offsets), with the default blocks and with the smallest (commits before the
/// page). Each must report Poison on the poisoned side, the page-aligned page,
/// exactly the bytes before it, their CRC (and for the copy an exact prefix),
/// and take one signal.
fn checksums(_ctx: &mut Child) -> Result<String, String> {
    use mcsafe::internals::{
        COPY_CRC_BLOCKS, CRC_BLOCK, CrcPath, copy_crc32c_mc_with, crc32c_mc_with,
    };
    let poisoned = poisoned_anon()?;
    let other = Mapping::anon_small_pages(poisoned.len + PAGE)?;
    // SAFETY: fresh memory.
    unsafe { fill(other.base, other.len, 0x0c5c) };
    let lost = poisoned.base as usize + LOST_PAGE * PAGE;
    let paths: Vec<CrcPath> = CrcPath::ALL
        .into_iter()
        .filter(|p| p.is_available())
        .collect();
    let check = |what: &str,
                 result: Result<u32, mcsafe::CrcFault>,
                 side: Side,
                 start: usize,
                 src: *const u8,
                 signals: u64| {
        let fault = match result {
            Ok(_) => return Err(format!("{what}: succeeded over a poisoned page")),
            Err(e) => e,
        };
        let want = lost - start;
        let lost_page = Want {
            lost,
            granule: PAGE,
            side,
        };
        let problems = poison_problems(&fault.fault(), lost_page, want, signals);
        if !problems.is_empty() {
            return Err(format!("{what}: {fault}: wrong {}", problems.join(", ")));
        }
        // SAFETY: the prefix ends before the poisoned page.
        let prefix = unsafe { std::slice::from_raw_parts(src, want) };
        if fault.crc() != crc32c_bytewise(prefix) {
            return Err(format!(
                "{what}: CRC {:#010x} is not that of the {want} bytes",
                fault.crc()
            ));
        }
        Ok(())
    };
    let mut calls = 0;
    for &path in &paths {
        for (block, copy_blocks) in [(CRC_BLOCK, COPY_CRC_BLOCKS), (320, (320, 0))] {
            for &(poisoned_off, other_off) in &all_offsets() {
                let len = poisoned.len - poisoned_off;
                let src = poisoned.at(poisoned_off).cast_const();
                let before = mcsafe::stats().recovered;
                // SAFETY: ours; only the poisoned page faults.
                let result = unsafe { crc32c_mc_with(path, block, 0, src, len) };
                let what = format!("crc32c_mc ({path:?}, block {block}) from +{poisoned_off}");
                check(
                    &what,
                    result,
                    Side::Source,
                    src as usize,
                    src,
                    mcsafe::stats().recovered - before,
                )?;
                for side in [Side::Source, Side::Destination] {
                    let (dst, src) = match side {
                        Side::Source => {
                            (other.at(other_off), poisoned.at(poisoned_off).cast_const())
                        }
                        _ => (poisoned.at(poisoned_off), other.at(other_off).cast_const()),
                    };
                    let start = if side == Side::Source {
                        src as usize
                    } else {
                        dst as usize
                    };
                    let want = lost - start;
                    for i in 0..want {
                        // SAFETY: the prefix ends before the poisoned page.
                        unsafe { dst.add(i).write_volatile(!src.add(i).read_volatile()) };
                    }
                    let before = mcsafe::stats().recovered;
                    // SAFETY: ours, distinct; only the poisoned page faults.
                    let result =
                        unsafe { copy_crc32c_mc_with(path, copy_blocks, 0, dst, src, len) };
                    let what = format!(
                        "copy_crc32c_mc ({path:?}, block {block}), {side} poisoned, +{poisoned_off}/+{other_off}"
                    );
                    check(
                        &what,
                        result,
                        side,
                        start,
                        src,
                        mcsafe::stats().recovered - before,
                    )?;
                    // SAFETY: as above.
                    if let Some(i) = unsafe { first_difference(dst, src, want) } {
                        return Err(format!("{what}: prefix differs at byte {i}"));
                    }
                    calls += 1;
                }
                calls += 1;
            }
        }
    }
    let names: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    Ok(format!(
        "{calls} faulting checksums and one-pass copies exact along {} (checked bytes, CRC, prefix, side), one signal each",
        names.join(", ")
    ))
}
