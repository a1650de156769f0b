//! Where the bytes are: the calls a measurement makes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;

/// One copy: `len` bytes from `src` to `dst`.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// Destination.
    pub dst: *mut u8,
    /// Source.
    pub src: *const u8,
    /// Bytes.
    pub len: usize,
}

/// A source of calls for a measurement.
pub trait Workload {
    /// The next `n` calls. Cold workloads keep walking forward, so no call
    /// finds its bytes in the cache.
    fn batch(&mut self, n: usize) -> &[Call];
    /// Mean bytes per call (for throughput).
    fn bytes_per_call(&self) -> f64;
    /// A cap on `n`, when the workload cannot make more distinct calls.
    fn max_batch(&self) -> usize {
        1 << 20
    }
}

/// A page-aligned anonymous mapping, populated and filled with bytes.
pub struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    /// Maps and touches `len` bytes.
    pub fn new(len: usize) -> Region {
        // SAFETY: a fresh private anonymous mapping, written only here.
        unsafe {
            let p = libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(
                p,
                libc::MAP_FAILED,
                "mmap {len} bytes: {}",
                std::io::Error::last_os_error()
            );
            ptr::write_bytes(p.cast::<u8>(), 0x5a, len);
            Region { ptr: p.cast(), len }
        }
    }

    /// First byte.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Calls that cycle through `sizes`, always on the same buffers, so the bytes
/// stay in the cache (for sizes that fit it).
pub struct Hot {
    calls: Vec<Call>,
    sizes: Vec<usize>,
    src: *const u8,
    dst: *mut u8,
}

impl Hot {
    /// `sizes` copied from `src_region + src_off` to `dst_region + dst_off`.
    pub fn new(src: &Region, dst: &Region, sizes: &[usize], src_off: usize, dst_off: usize) -> Hot {
        let largest = sizes.iter().max().copied().unwrap_or(0);
        assert!(largest + src_off.max(dst_off) <= src.len().min(dst.len()));
        Hot::at(
            src.ptr().wrapping_add(src_off),
            dst.ptr().wrapping_add(dst_off),
            sizes,
        )
    }

    /// `sizes` read from the start of `file`'s mapping into `dst`.
    pub fn from_file(file: &HotFile, dst: &Region, sizes: &[usize]) -> Hot {
        assert!(sizes.iter().all(|&s| s <= file.len && s <= dst.len()));
        Hot::at(file.map, dst.ptr(), sizes)
    }

    fn at(src: *const u8, dst: *mut u8, sizes: &[usize]) -> Hot {
        Hot {
            calls: Vec::new(),
            sizes: sizes.to_vec(),
            src,
            dst,
        }
    }
}

impl Workload for Hot {
    fn batch(&mut self, n: usize) -> &[Call] {
        if self.calls.len() != n {
            self.calls = (0..n)
                .map(|i| Call {
                    dst: self.dst,
                    src: self.src,
                    len: self.sizes[i % self.sizes.len()],
                })
                .collect();
        }
        &self.calls
    }

    fn bytes_per_call(&self) -> f64 {
        self.sizes.iter().sum::<usize>() as f64 / self.sizes.len() as f64
    }
}

/// Calls that walk forward through regions much larger than the last-level
/// cache, so that every copy reads and writes memory the cache does not hold.
pub struct Cold<'a> {
    src: &'a Region,
    dst: &'a Region,
    sizes: Vec<usize>,
    src_off: usize,
    dst_off: usize,
    stride: usize,
    slots: usize,
    cursor: usize,
    calls: Vec<Call>,
}

impl<'a> Cold<'a> {
    /// `sizes` at `src_off`/`dst_off` past page boundaries, one slot per call.
    pub fn new(
        src: &'a Region,
        dst: &'a Region,
        sizes: &[usize],
        src_off: usize,
        dst_off: usize,
    ) -> Cold<'a> {
        let largest = sizes.iter().max().copied().unwrap_or(0);
        let stride = (largest + 64).next_multiple_of(4096);
        let slots = src.len().min(dst.len()) / stride;
        assert!(
            slots >= 2,
            "regions too small for {largest}-byte cold copies"
        );
        Cold {
            src,
            dst,
            sizes: sizes.to_vec(),
            src_off,
            dst_off,
            stride,
            slots,
            cursor: 0,
            calls: Vec::new(),
        }
    }
}

impl Workload for Cold<'_> {
    fn batch(&mut self, n: usize) -> &[Call] {
        self.calls.clear();
        for i in 0..n {
            let slot = (self.cursor + i) % self.slots;
            self.calls.push(Call {
                dst: self
                    .dst
                    .ptr()
                    .wrapping_add(slot * self.stride + self.dst_off),
                src: self
                    .src
                    .ptr()
                    .wrapping_add(slot * self.stride + self.src_off),
                len: self.sizes[(self.cursor + i) % self.sizes.len()],
            });
        }
        self.cursor = (self.cursor + n) % (self.slots * self.sizes.len());
        &self.calls
    }

    fn bytes_per_call(&self) -> f64 {
        self.sizes.iter().sum::<usize>() as f64 / self.sizes.len() as f64
    }

    fn max_batch(&self) -> usize {
        self.slots
    }
}

/// A production-like mix, pre-generated so every comparator sees the same calls:
/// most calls at most 128 bytes, most bytes in calls over 1 KiB, random sizes
/// and byte offsets, so branch prediction cannot settle on a pattern.
pub struct Randomized {
    calls: Vec<Call>,
    bytes_per_call: f64,
}

/// The size mix of [`Randomized`]: (share of calls, smallest, largest), sizes
/// spread log-uniformly inside each band.
pub const RANDOM_MIX: [(f64, usize, usize); 4] = [
    (0.60, 1, 64),
    (0.25, 65, 128),
    (0.10, 129, 4096),
    (0.05, 4097, 65536),
];

impl Randomized {
    /// `count` calls inside `src` and `dst` (each at least 1 MiB), from `seed`.
    pub fn new(src: &Region, dst: &Region, count: usize, seed: u64) -> Randomized {
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let space = src.len().min(dst.len());
        let calls: Vec<Call> = (0..count)
            .map(|_| {
                let pick = (next() % 10_000) as f64 / 10_000.0;
                let mut acc = 0.0;
                let &(_, lo, hi) = RANDOM_MIX
                    .iter()
                    .find(|(share, _, _)| {
                        acc += share;
                        pick < acc
                    })
                    .unwrap_or(&RANDOM_MIX[0]);
                let unit = (next() % 1_000_000) as f64 / 1_000_000.0;
                let len = ((lo as f64) * ((hi as f64) / (lo as f64)).powf(unit)).round() as usize;
                let len = len.clamp(lo, hi);
                let src_at = (next() as usize) % (space - len);
                let dst_at = (next() as usize) % (space - len);
                Call {
                    dst: dst.ptr().wrapping_add(dst_at),
                    src: src.ptr().wrapping_add(src_at),
                    len,
                }
            })
            .collect();
        let bytes_per_call = calls.iter().map(|c| c.len).sum::<usize>() as f64 / count as f64;
        Randomized {
            calls,
            bytes_per_call,
        }
    }

    /// Share of calls of at most `size` bytes, and share of bytes in calls
    /// larger than `large`.
    pub fn shape(&self, size: usize, large: usize) -> (f64, f64) {
        let n = self.calls.len() as f64;
        let small = self.calls.iter().filter(|c| c.len <= size).count() as f64 / n;
        let total: usize = self.calls.iter().map(|c| c.len).sum();
        let big: usize = self
            .calls
            .iter()
            .filter(|c| c.len > large)
            .map(|c| c.len)
            .sum();
        (small, big as f64 / total as f64)
    }
}

impl Workload for Randomized {
    fn batch(&mut self, n: usize) -> &[Call] {
        &self.calls[..n.min(self.calls.len())]
    }

    fn bytes_per_call(&self) -> f64 {
        self.bytes_per_call
    }

    fn max_batch(&self) -> usize {
        self.calls.len()
    }
}

/// A file in the page cache, and a shared mapping of it: for comparing
/// `pread(2)` with a copy out of the mapping.
pub struct HotFile {
    fd: OwnedFd,
    map: *mut u8,
    len: usize,
}

impl HotFile {
    /// A `len`-byte file in the temporary directory, written, read back once and
    /// mapped; the file is unlinked at once (the descriptor keeps it).
    pub fn new(len: usize) -> HotFile {
        let path = std::env::temp_dir().join(format!("mcsafe-bench-{}.dat", std::process::id()));
        std::fs::write(&path, vec![0x3cu8; len]).expect("write the benchmark file");
        let file = std::fs::File::open(&path).expect("open the benchmark file");
        let _ = std::fs::remove_file(&path);
        let fd = OwnedFd::from(file);
        // SAFETY: a shared read-only mapping of the whole open file.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        HotFile {
            fd,
            map: map.cast(),
            len,
        }
    }

    /// The descriptor.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The mapping as a source region description: base and length.
    pub fn map(&self) -> (*const u8, usize) {
        (self.map, self.len)
    }
}

impl Drop for HotFile {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

/// A 4 KiB source whose second half is lost (a memfd mapping of two pages, the
/// second past the end of the file): every copy of it takes one SIGBUS. For
/// measuring the fault path.
pub struct HalfLost {
    map: *mut u8,
}

impl HalfLost {
    /// Maps it.
    pub fn new() -> HalfLost {
        // SAFETY: a memfd we own, mapped whole, then truncated to one page.
        unsafe {
            let fd = libc::memfd_create(c"mcsafe-bench-fault".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            assert_eq!(libc::ftruncate(fd, 2 * 4096), 0);
            let map = libc::mmap(
                ptr::null_mut(),
                2 * 4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::ftruncate(fd, 4096), 0);
            libc::close(fd);
            HalfLost { map: map.cast() }
        }
    }

    /// The 4 KiB source: its last 2 KiB are lost.
    pub fn source(&self) -> *const u8 {
        self.map.wrapping_add(2048)
    }
}

impl Default for HalfLost {
    fn default() -> HalfLost {
        HalfLost::new()
    }
}

impl Drop for HalfLost {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.map.cast(), 2 * 4096) };
    }
}
