//! Memory for the cases: mappings, data patterns, poison, physical addresses,
//! and the check every case makes of a copy that a lost granule stopped.

use std::ffi::CStr;
use std::ptr;

use mcsafe::{Fault, FaultKind, Side, Strategy};

pub const PAGE: usize = 4096;
pub const HUGE: usize = 2 << 20;

/// The last OS error, as text for a failure message.
pub fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A mapping that is unmapped when dropped.
pub struct Mapping {
    pub base: *mut u8,
    pub len: usize,
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, flags, fd, 0)`.
    pub fn new(len: usize, flags: i32, fd: i32) -> Result<Mapping, String> {
        Self::with_prot(len, libc::PROT_READ | libc::PROT_WRITE, flags, fd)
    }

    pub fn with_prot(len: usize, prot: i32, flags: i32, fd: i32) -> Result<Mapping, String> {
        // SAFETY: a new mapping at an address the kernel picks.
        let base = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, fd, 0) };
        if base == libc::MAP_FAILED {
            return Err(os_error("mmap"));
        }
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }

    /// Private anonymous memory in 4 KiB pages (no transparent huge pages, so
    /// that a poisoned page is one page and its neighbours stay).
    pub fn anon_small_pages(len: usize) -> Result<Mapping, String> {
        let m = Mapping::new(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)?;
        m.advise(0, len, libc::MADV_NOHUGEPAGE)?;
        Ok(m)
    }

    pub fn at(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.len);
        self.base.wrapping_add(offset)
    }

    pub fn advise(&self, offset: usize, len: usize, advice: i32) -> Result<(), String> {
        // SAFETY: the range lies inside this mapping.
        if unsafe { libc::madvise(self.at(offset).cast(), len, advice) } != 0 {
            return Err(os_error(&format!("madvise({advice}) at +{offset:#x}")));
        }
        Ok(())
    }

    /// Poisons the page at `offset` with `MADV_HWPOISON` (the kernel's
    /// memory-failure path, as for a real uncorrected error; needs root),
    /// from a short-lived child that shares the page (private pages are
    /// shared copy-on-write after the fork): since the 2024 change that makes
    /// `madvise` pass `MF_ACTION_REQUIRED` (the arm64 VM's 6.12 kernel has it,
    /// the x86-64 VM's 6.1 does not), the calling thread also gets
    /// `BUS_MCEERR_AR` at once, outside any copy, and that child takes it.
    pub fn poison(&self, offset: usize) -> Result<(), String> {
        let page = self.at(offset & !(PAGE - 1));
        // SAFETY: fork from a single-threaded case child; the child makes two
        // system calls and leaves with _exit.
        unsafe {
            let pid = libc::fork();
            if pid < 0 {
                return Err(os_error("fork"));
            }
            if pid == 0 {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                libc::prctl(libc::PR_MCE_KILL, libc::PR_MCE_KILL_CLEAR, 0, 0, 0);
                let rc = libc::madvise(page.cast(), PAGE, libc::MADV_HWPOISON);
                let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(1);
                libc::_exit(if rc == 0 { 0 } else { errno.clamp(1, 125) });
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            let by_its_own_signal =
                libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS;
            if (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) || by_its_own_signal {
                return Ok(());
            }
            Err(format!(
                "madvise(MADV_HWPOISON) in the poisoning child: status {status:#x} (errno {} if it exited)",
                libc::WEXITSTATUS(status)
            ))
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The pattern byte at offset `i` of a buffer filled with `seed`: every 8-byte
/// word differs from its neighbours, and so does every byte of a word.
pub fn byte_at(seed: u64, i: usize) -> u8 {
    (word_at(seed, i / 8) >> ((i % 8) * 8)) as u8
}

fn word_at(seed: u64, word: usize) -> u64 {
    let mut x = (word as u64).wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

/// Fills `len` bytes at `p` (8-aligned) with the pattern of `seed`, word by word.
///
/// # Safety
/// `p..p+len` is writable and does not fault.
pub unsafe fn fill(p: *mut u8, len: usize, seed: u64) {
    assert_eq!(p as usize % 8, 0);
    for w in 0..len / 8 {
        // SAFETY: per the contract; aligned.
        unsafe { p.cast::<u64>().add(w).write_volatile(word_at(seed, w)) };
    }
    for i in len / 8 * 8..len {
        // SAFETY: per the contract.
        unsafe { p.add(i).write_volatile(byte_at(seed, i)) };
    }
}

/// First offset where `a` and `b` differ over `len` bytes. Raw reads: only
/// call it on ranges that cannot fault.
///
/// # Safety
/// Both ranges are readable and do not fault.
pub unsafe fn first_difference(a: *const u8, b: *const u8, len: usize) -> Option<usize> {
    // SAFETY: per the contract.
    (0..len).find(|&i| unsafe { a.add(i).read_volatile() != b.add(i).read_volatile() })
}

/// First offset where `p[..len]` differs from the pattern of `seed` starting at
/// pattern offset `from`.
///
/// # Safety
/// `p..p+len` is readable and does not fault.
pub unsafe fn first_pattern_difference(
    p: *const u8,
    len: usize,
    seed: u64,
    from: usize,
) -> Option<usize> {
    // SAFETY: per the contract.
    (0..len).find(|&i| unsafe { p.add(i).read_volatile() } != byte_at(seed, from + i))
}

/// The pagemap entry of the page holding `va` (root sees the frame number).
fn pagemap_entry(va: usize) -> Result<u64, String> {
    read_u64_at(c"/proc/self/pagemap", (va / PAGE * 8) as i64)
}

fn read_u64_at(path: &CStr, offset: i64) -> Result<u64, String> {
    // SAFETY: plain file I/O into a local buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(os_error(&format!("open {path:?}")));
        }
        let mut word = 0u64;
        let n = libc::pread(fd, (&raw mut word).cast(), 8, offset);
        libc::close(fd);
        if n != 8 {
            return Err(os_error(&format!("pread {path:?} at {offset}")));
        }
        Ok(word)
    }
}

/// The page frame number behind `va`, which must be present.
pub fn pfn(va: usize) -> Result<u64, String> {
    let entry = pagemap_entry(va)?;
    let frame = entry & ((1 << 55) - 1);
    if entry >> 63 == 0 || frame == 0 {
        return Err(format!("page {va:#x} not present (pagemap {entry:#x})"));
    }
    Ok(frame)
}

/// The physical address of the page holding `va`.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))] // the x86-64 machine checks
pub fn physical_page(va: usize) -> Result<u64, String> {
    Ok(pfn(va)? * PAGE as u64)
}

/// Whether the page frame `pfn` is part of a transparent huge page
/// (`/proc/kpageflags` bit KPF_THP).
pub fn is_thp(pfn: u64) -> Result<bool, String> {
    const KPF_THP: u64 = 22;
    Ok(read_u64_at(c"/proc/kpageflags", (pfn * 8) as i64)? >> KPF_THP & 1 == 1)
}

/// What a faulting copy must report.
#[derive(Clone, Copy, Debug)]
pub struct Want {
    /// First byte of the lost granule (page or huge page), in the faulting buffer.
    pub lost: usize,
    pub granule: usize,
    pub side: Side,
}

/// Runs `copy_mc_with(strategy, dst, src, len)` and checks everything a user
/// relies on when a granule is lost: `Err` with kind `Poison`, the side, the
/// granule, an address inside the lost granule, `copied` = exactly the bytes
/// before it on the faulting side, `dst[..copied] == src[..copied]`, and one
/// signal taken. Returns the fault.
///
/// # Safety
/// As for `copy_mc`; the ranges before the lost granule do not fault.
pub unsafe fn expect_poison(
    strategy: Strategy,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    want: Want,
) -> Result<Fault, String> {
    let what = format!("{strategy} dst {dst:?} src {src:?} len {len:#x}");
    let start = match want.side {
        Side::Source => src as usize,
        _ => dst as usize,
    };
    // A granule that starts before the buffer cuts it at 0.
    let copied = want.lost.saturating_sub(start);
    // Every byte of the prefix starts out wrong, so that bytes an earlier copy
    // left there cannot stand in for bytes this copy failed to store.
    for i in 0..copied {
        // SAFETY: both prefixes end before the lost granule.
        unsafe { dst.add(i).write_volatile(!src.add(i).read_volatile()) };
    }
    let before = mcsafe::stats().recovered;
    // SAFETY: per the contract.
    let result = unsafe { mcsafe::copy_mc_with(strategy, dst, src, len) };
    let signals = mcsafe::stats().recovered - before;
    let fault = match result {
        Ok(()) => return Err(format!("{what}: copy succeeded over a poisoned granule")),
        Err(fault) => fault,
    };
    let problems = poison_problems(&fault, want, copied, signals);
    if !problems.is_empty() {
        return Err(format!("{what}: {fault}: wrong {}", problems.join(", ")));
    }
    // SAFETY: both prefixes end before the lost granule.
    if let Some(i) = unsafe { first_difference(dst, src, fault.copied()) } {
        return Err(format!("{what}: {fault}: prefix differs at byte {i}"));
    }
    Ok(fault)
}

/// What is wrong with `fault` as the report of the granule `want` lost under a
/// call that got `copied` bytes done before it and took `signals` signals:
/// kind `Poison`, the side, the granule, an address inside it, exactly the bytes
/// before it, one signal. Empty when all is right.
pub fn poison_problems(fault: &Fault, want: Want, copied: usize, signals: u64) -> Vec<String> {
    let lost_seen = fault.addr() & !(fault.granule().wrapping_sub(1));
    [
        (fault.kind() != FaultKind::Poison).then(|| format!("kind {:?}", fault.kind())),
        (fault.side() != want.side).then(|| format!("side {}", fault.side())),
        (fault.granule() != want.granule).then(|| format!("granule {:#x}", fault.granule())),
        (lost_seen != want.lost).then(|| format!("address {:#x}", fault.addr())),
        (fault.copied() != copied)
            .then(|| format!("copied {:#x} (want {copied:#x})", fault.copied())),
        (signals != 1).then(|| format!("{signals} signals taken")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Source misalignments the cases try: aligned, odd, one cache line in, and
/// most of a page in.
pub const SRC_OFFSETS: [usize; 4] = [0, 1, 63, 4000];
/// Destination misalignments, crossed with [`SRC_OFFSETS`].
pub const DST_OFFSETS: [usize; 2] = [0, 7];

/// CRC32C of `data`, one bit at a time from the polynomial: the reference the
/// checksum cases compare with (it shares no code with mcsafe's).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))] // the x86-64 machine checks
pub fn crc32c_bytewise(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |mut crc, &b| {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
        crc
    })
}
