//! Stress: on every core, threads copy from and to shared file mappings while
//! another thread shrinks and grows the files under them. Every result must be
//! consistent with some size the file had during the call: a copy that
//! succeeded copied the file's bytes; a copy that faulted stopped exactly at a
//! page boundary at or past a size the file had during the call, with the
//! bytes before it exact.
//!
//! Every other copier thread has an alternate signal stack. Bounded:
//! `MCSAFE_STRESS_SECS` seconds (default 3). Prints the counts.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use common::*;
use mcsafe::{FaultKind, Side, Strategy};

const FILE_PAGES: usize = 48;
/// Pages never truncated: copies that stay below them never fault.
const FLOOR_PAGES: usize = 2;
const FILE_LEN: usize = FILE_PAGES * PAGE;
const RING: usize = 1 << 16;
const SEED: u64 = 0x57e55;

/// A memfd mapped `FILE_PAGES` long whose size (in pages) one thread changes,
/// announcing every size in a ring: a shrink before it happens, a growth after,
/// so that an announced size is never larger than the file was.
struct Resizable {
    base: *mut u8,
    fd: OwnedFd,
    pages: AtomicUsize,
    ops: AtomicU64,
    ring: Vec<AtomicUsize>,
    /// Source files hold the pattern (growth writes it); destination files
    /// grow with zeros.
    pattern: bool,
}

// SAFETY: the mapping is shared memory that every thread may access through raw
// pointers (faults are the point); the rest are atomics and a descriptor.
unsafe impl Sync for Resizable {}
// SAFETY: as above.
unsafe impl Send for Resizable {}

impl Resizable {
    fn new(pattern: bool) -> Resizable {
        // SAFETY: plain system calls on a descriptor and a mapping we own.
        unsafe {
            let fd =
                OwnedFd::from_raw_fd(libc::memfd_create(c"stress".as_ptr(), libc::MFD_CLOEXEC));
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), FILE_LEN as i64), 0);
            let base = libc::mmap(
                ptr::null_mut(),
                FILE_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            let base = base.cast::<u8>();
            if pattern {
                fill(base, FILE_LEN, SEED);
            }
            let ring: Vec<AtomicUsize> = (0..RING).map(|_| AtomicUsize::new(0)).collect();
            ring[0].store(FILE_PAGES, SeqCst);
            Resizable {
                base,
                fd,
                pages: AtomicUsize::new(FILE_PAGES),
                ops: AtomicU64::new(0),
                ring,
                pattern,
            }
        }
    }

    fn announce(&self, pages: usize) {
        let op = self.ops.load(SeqCst) + 1;
        self.ring[op as usize % RING].store(pages, SeqCst);
        self.ops.store(op, SeqCst);
    }

    /// Only the resizer thread calls this.
    fn resize(&self, pages: usize, bytes: &[u8]) {
        let now = self.pages.load(SeqCst);
        let fd = self.fd.as_raw_fd();
        if pages < now {
            self.announce(pages);
            // SAFETY: our file.
            assert_eq!(unsafe { libc::ftruncate(fd, (pages * PAGE) as i64) }, 0);
        } else if pages > now {
            let (from, to) = (now * PAGE, pages * PAGE);
            if self.pattern {
                // pwrite extends the file page by page, each page written before
                // the size covers it: a reader never sees a page without its data.
                // SAFETY: `bytes` holds FILE_LEN bytes.
                let n = unsafe {
                    libc::pwrite(fd, bytes[from..].as_ptr().cast(), to - from, from as i64)
                };
                assert_eq!(n, (to - from) as isize);
            } else {
                // SAFETY: our file.
                assert_eq!(unsafe { libc::ftruncate(fd, to as i64) }, 0);
            }
            self.announce(pages);
        }
        self.pages.store(pages, SeqCst);
    }

    /// The smallest size announced from op `first` to op `last`, if the ring
    /// still holds them all.
    fn smallest_since(&self, first: u64, last: u64) -> Option<usize> {
        (last - first < RING as u64 - 1).then(|| {
            (first..=last)
                .map(|op| self.ring[op as usize % RING].load(SeqCst))
                .min()
                .unwrap()
        })
    }
}

impl Drop for Resizable {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base.cast(), FILE_LEN) };
    }
}

#[derive(Default)]
struct Counts {
    copies: AtomicU64,
    source_faults: AtomicU64,
    destination_faults: AtomicU64,
    resizes: AtomicU64,
    bytes: AtomicU64,
    /// Copies to a destination file, and how many of them (and bytes) the
    /// read-back verified (the others met a resize before it ended).
    writes: AtomicU64,
    verified: AtomicU64,
    verified_bytes: AtomicU64,
}

/// A small xorshift generator: each thread its own, seeded by its index.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Checks a fault against the file it hit: exactly at a page boundary that was
/// past the end of the file at some moment of the call.
fn check_fault(
    file: &Resizable,
    f: &mcsafe::Fault,
    at: usize,
    len: usize,
    ops: (u64, u64),
    what: &str,
) {
    assert_eq!(f.kind(), FaultKind::AddressError, "{what}");
    assert_eq!(f.granule(), PAGE, "{what}");
    let lost = f.addr().wrapping_sub(file.base as usize) & !(PAGE - 1);
    assert!(
        lost < FILE_LEN && lost < at + len && lost + PAGE > at,
        "{what}: page {lost:#x}"
    );
    assert_eq!(
        f.copied(),
        lost.saturating_sub(at),
        "{what}: copied {f:?} base {:#x}",
        file.base as usize
    );
    if let Some(smallest) = file.smallest_since(ops.0, ops.1) {
        assert!(
            smallest * PAGE <= lost,
            "{what}: page {lost:#x} lost, but the file had at least {smallest} pages throughout"
        );
    }
    assert!(
        lost >= FLOOR_PAGES * PAGE,
        "{what}: the floor is never lost"
    );
}

fn worker(
    index: usize,
    src: &Resizable,
    dst: &Resizable,
    pattern: &[u8],
    deadline: Instant,
    counts: &Counts,
) {
    let unlike: Vec<u8> = pattern.iter().map(|b| !b).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) * 0x1234_5678_9abc));
    let strategies = Strategy::available();
    let mut heap = vec![0u8; FILE_LEN];
    let mut back = vec![0u8; FILE_LEN];
    // Every other thread takes its faults on an alternate signal stack.
    let mut altstack = vec![0u8; 64 * 1024];
    if index % 2 == 1 {
        let stack = libc::stack_t {
            ss_sp: altstack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: altstack.len(),
        };
        // SAFETY: the buffer outlives its use: it is removed below, before the
        // buffer is dropped.
        assert_eq!(unsafe { libc::sigaltstack(&stack, ptr::null_mut()) }, 0);
    }
    while Instant::now() < deadline {
        let strategy = strategies[rng.below(strategies.len())];
        let at = rng.below(FILE_LEN);
        let len = 1 + rng.below(FILE_LEN - at);
        let what = format!("thread {index} {strategy} at {at} len {len}");
        let h = heap.as_mut_ptr();
        // Bytes unlike the pattern where a copy to the heap must store them.
        // SAFETY: `heap` and `pattern` hold FILE_LEN bytes; at + len <= FILE_LEN.
        unsafe { overwrite_unlike_copy(h, pattern[at..].as_ptr(), len) };
        match rng.below(8) {
            // From the shrinking source file.
            0..=3 => {
                let first = src.ops.load(SeqCst);
                // SAFETY: the mapping is FILE_LEN long; pages past the file's end fault.
                let result = unsafe { mcsafe::copy_mc_with(strategy, h, src.base.add(at), len) };
                let last = src.ops.load(SeqCst);
                let copied = match result {
                    Ok(()) => len,
                    Err(f) => {
                        assert_eq!(f.side(), Side::Source, "{what}");
                        check_fault(src, &f, at, len, (first, last), &what);
                        counts.source_faults.fetch_add(1, Relaxed);
                        f.copied()
                    }
                };
                assert!(heap[..copied] == pattern[at..at + copied], "{what}: data");
                counts.bytes.fetch_add(copied as u64, Relaxed);
            }
            // To this thread's shrinking destination file.
            4..=5 => {
                let first = dst.ops.load(SeqCst);
                // Bytes unlike the pattern where the copy must store (the file
                // holds the pattern from earlier copies): this may fault too,
                // where the file is short now.
                // SAFETY: as below.
                let _ = unsafe {
                    mcsafe::copy_mc_with(strategy, dst.base.add(at), unlike[at..].as_ptr(), len)
                };
                // SAFETY: the mapping is FILE_LEN long and only this thread writes it.
                let result = unsafe {
                    mcsafe::copy_mc_with(strategy, dst.base.add(at), pattern[at..].as_ptr(), len)
                };
                let copied = match result {
                    Ok(()) => len,
                    Err(f) => {
                        let last = dst.ops.load(SeqCst);
                        assert_eq!(f.side(), Side::Destination, "{what}");
                        check_fault(dst, &f, at, len, (first, last), &what);
                        counts.destination_faults.fetch_add(1, Relaxed);
                        f.copied()
                    }
                };
                // Read the written prefix back (it may be gone by now: then the
                // file changed, and nothing is compared).
                // SAFETY: as above.
                let back_result =
                    unsafe { mcsafe::copy_mc(back.as_mut_ptr(), dst.base.add(at), copied) };
                if back_result.is_ok() && dst.ops.load(SeqCst) == first {
                    assert!(
                        back[..copied] == pattern[at..at + copied],
                        "{what}: written data"
                    );
                    counts.verified.fetch_add(1, Relaxed);
                    counts.verified_bytes.fetch_add(copied as u64, Relaxed);
                }
                counts.writes.fetch_add(1, Relaxed);
                counts.bytes.fetch_add(copied as u64, Relaxed);
            }
            // Below the floor of the source file: never faults.
            6 => {
                let len = len.min(FLOOR_PAGES * PAGE - at % (FLOOR_PAGES * PAGE));
                let at = at % (FLOOR_PAGES * PAGE);
                // SAFETY: the floor pages are never truncated.
                let result = unsafe { mcsafe::copy_mc_with(strategy, h, src.base.add(at), len) };
                assert_eq!(result, Ok(()), "{what}: below the floor");
                assert!(heap[..len] == pattern[at..at + len], "{what}: data");
                counts.bytes.fetch_add(len as u64, Relaxed);
            }
            // Heap to heap.
            _ => {
                // SAFETY: two distinct heap buffers of FILE_LEN bytes.
                let result =
                    unsafe { mcsafe::copy_mc_with(strategy, h, pattern[at..].as_ptr(), len) };
                assert_eq!(result, Ok(()), "{what}: heap");
                assert!(heap[..len] == pattern[at..at + len], "{what}: data");
                counts.bytes.fetch_add(len as u64, Relaxed);
            }
        }
        counts.copies.fetch_add(1, Relaxed);
    }
    if index % 2 == 1 {
        disable_altstack();
        assert!(
            altstack.iter().any(|&b| b != 0),
            "faults ran on the alternate stack"
        );
    }
}

#[test]
fn copies_under_files_that_shrink_and_grow() {
    let secs: f64 = std::env::var("MCSAFE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    mcsafe::install().unwrap();
    let _serial = signal_lock();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = 2 * cores;
    let pattern: Vec<u8> = (0..FILE_LEN).map(|i| byte_at(SEED, i)).collect();
    let src = Resizable::new(true);
    let dsts: Vec<Resizable> = (0..threads).map(|_| Resizable::new(false)).collect();
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let recovered = mcsafe::stats().recovered;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for (i, dst) in dsts.iter().enumerate() {
            let (src, pattern, counts) = (&src, &pattern, &counts);
            std::thread::Builder::new()
                .name(format!("copier-{i}"))
                .spawn_scoped(s, move || worker(i, src, dst, pattern, deadline, counts))
                .unwrap();
        }
        s.spawn(|| {
            let mut rng = Rng(42);
            while !stop.load(SeqCst) && Instant::now() < deadline {
                for file in std::iter::once(&src).chain(&dsts) {
                    // Half the time whole, else cut somewhere above the floor.
                    let pages = match rng.below(2) {
                        0 => FILE_PAGES,
                        _ => FLOOR_PAGES + rng.below(FILE_PAGES - FLOOR_PAGES),
                    };
                    file.resize(pages, &pattern);
                    counts.resizes.fetch_add(1, Relaxed);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
    });
    stop.store(true, SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let faults = counts.source_faults.load(Relaxed) + counts.destination_faults.load(Relaxed);
    println!(
        "stress: {threads} copier threads on {cores} cores + 1 resizer, {elapsed:.1} s: {} copies \
         ({:.0} MB), {faults} faults recovered ({} source, {} destination), {} resizes",
        counts.copies.load(Relaxed),
        counts.bytes.load(Relaxed) as f64 / 1e6,
        counts.source_faults.load(Relaxed),
        counts.destination_faults.load(Relaxed),
        counts.resizes.load(Relaxed),
    );
    assert!(
        faults > 0 && counts.copies.load(Relaxed) > faults,
        "both kinds of copy ran"
    );
    assert!(counts.destination_faults.load(Relaxed) > 0);
    // The read-back of what the copies wrote verified something: a resize
    // between a write and its read-back skips the comparison, and so would a
    // resizer that never let one finish.
    let (writes, verified) = (counts.writes.load(Relaxed), counts.verified.load(Relaxed));
    let verified_bytes = counts.verified_bytes.load(Relaxed);
    println!(
        "stress: the read-back verified {verified} of {writes} copies to a destination file \
         ({verified_bytes} bytes)"
    );
    assert!(
        verified > 0 && verified_bytes > 0 && verified <= writes && verified * 100 >= writes,
        "the read-back verified {verified} of {writes} writes ({verified_bytes} bytes)"
    );
    // Each faulting copy took at least one signal; a forward step may take more.
    assert!(mcsafe::stats().recovered - recovered >= faults);
}
