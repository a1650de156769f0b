//! Helpers shared by the integration tests: mappings with lost pages, data
//! patterns, signal counting, child processes, and environment requirements.
//!
//! Also compiled into `capi/tests/c.rs` and the fuzz target (by `#[path]`), which
//! have no nix: keep this file to std, libc and mcsafe. Change it, then run `cargo
//! test -p mcsafe-tests`, `cargo test -p mcsafe-capi --test c` and `cargo clippy
//! --manifest-path fuzz/Cargo.toml --locked -- -D warnings`.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use mcsafe::inject::{TruncatedMapping, UffdPoisonMapping};

pub const PAGE: usize = 4096;

/// Deterministic bytes for offset `i` of a buffer seeded with `seed`: neighbouring
/// bytes differ, so a copy shifted by any small amount is caught.
pub fn byte_at(seed: u64, i: usize) -> u8 {
    let mut x = (i as u64).wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 29;
    x as u8
}

/// Fills `len` bytes at `p` with the pattern of `seed`.
///
/// # Safety
/// `p..p+len` is writable.
pub unsafe fn fill(p: *mut u8, len: usize, seed: u64) {
    for i in 0..len {
        // SAFETY: per the contract.
        unsafe { p.add(i).write(byte_at(seed, i)) };
    }
}

/// A `MAP_SHARED` memfd mapping of `valid + lost` pages whose last `lost` pages
/// lie past the end of the file: touching them raises SIGBUS `BUS_ADRERR`.
/// A thin wrapper over the kit's [`mcsafe::inject::TruncatedMapping`].
pub struct LostTail {
    map: TruncatedMapping,
    valid: usize,
}

impl LostTail {
    pub fn new(valid_pages: usize, lost_pages: usize, seed: u64) -> LostTail {
        let map = TruncatedMapping::new(valid_pages + lost_pages)
            .unwrap_or_else(|e| panic!("truncated mapping: {e}"));
        let valid = valid_pages * PAGE;
        // SAFETY: the whole mapping is backed by the file until the truncation.
        unsafe { fill(map.as_ptr(), valid, seed) };
        map.truncate_to(valid)
            .unwrap_or_else(|e| panic!("truncate: {e}"));
        LostTail { map, valid }
    }

    /// First byte of the mapping.
    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// First lost byte (page-aligned).
    pub fn boundary(&self) -> *mut u8 {
        self.map.as_ptr().wrapping_add(self.valid)
    }

    /// Bytes before the boundary.
    pub fn valid_len(&self) -> usize {
        self.valid
    }
}

/// An ordinary heap buffer with `GUARD` sentinel bytes on each side, for the side
/// of a copy that does not fault.
pub struct Guarded {
    buf: Vec<u8>,
}

pub const GUARD: usize = 128;
pub const SENTINEL: u8 = 0xa5;

impl Guarded {
    pub fn new(len: usize) -> Guarded {
        Guarded {
            buf: vec![SENTINEL; len + 2 * GUARD + 128],
        }
    }

    /// A pointer `misalign` (< 64) bytes past a 64-byte boundary, with `GUARD`
    /// bytes before it and `len + GUARD` bytes from it inside the buffer.
    pub fn at(&mut self, misalign: usize) -> *mut u8 {
        assert!(misalign < 64);
        let base = self.buf.as_mut_ptr() as usize + GUARD;
        let aligned = (base + 63) & !63;
        (aligned + misalign) as *mut u8
    }

    /// A pointer `offset` (< 4096) bytes past a page boundary, with `GUARD`
    /// bytes before it and `len - 4096 - 64 + GUARD` bytes from it inside the
    /// buffer (for placing one buffer at a chosen distance from another, mod 4096).
    pub fn at_page_offset(&mut self, offset: usize) -> *mut u8 {
        assert!(offset < 4096);
        let base = self.buf.as_mut_ptr() as usize + GUARD;
        (base + (offset + 4096 - base % 4096) % 4096) as *mut u8
    }

    pub fn reset(&mut self) {
        self.buf.fill(SENTINEL);
    }
}

/// A sweep's fixture: a mapping whose tail is lost, and two heap buffers for
/// the side of a copy that does not fault (the source one filled from `seed`).
pub struct Fixture {
    pub lost: LostTail,
    pub heap_dst: Guarded,
    pub heap_src: Guarded,
}

impl Fixture {
    pub fn new(max_len: usize, seed: u64) -> Fixture {
        let mut heap_src = Guarded::new(max_len + PAGE);
        let p = heap_src.at(0);
        // SAFETY: `at(0)` leaves room for max_len + PAGE - 64 bytes and more.
        unsafe { fill(p, max_len + PAGE - 64, seed) };
        Fixture {
            // A lost tail as long as the longest call: one that starts inside
            // it stays inside the mapping.
            lost: LostTail::new(max_len / PAGE + 4, max_len / PAGE + 2, 0x5eed),
            heap_dst: Guarded::new(max_len + PAGE),
            heap_src,
        }
    }
}

/// The readable bytes around a sweep's destination, set to [`SENTINEL`] before
/// the copy and checked after it: up to [`GUARD`] bytes ending at `dst` and up
/// to `GUARD` from `dst + len`, each cut where it would reach `lost`'s lost
/// pages (when the destination is the faulting side).
pub struct Sentinels {
    before: *mut u8,
    before_len: usize,
    after: *mut u8,
    after_len: usize,
}

impl Sentinels {
    /// Writes the sentinels around `dst..dst+len`; `side` is the faulting side,
    /// whose buffer starts `b` bytes before `lost`'s boundary (`b <= 0`: inside
    /// the lost page).
    ///
    /// # Safety
    /// The other side's destination is a [`Guarded`] buffer (`GUARD` bytes of
    /// room each side); a faulting destination lies in `lost`'s mapping.
    pub unsafe fn place(
        lost: &LostTail,
        side: mcsafe::Side,
        b: isize,
        dst: *mut u8,
        len: usize,
    ) -> Sentinels {
        use mcsafe::Side;
        let after = dst.wrapping_add(len);
        let after_len = match side {
            Side::Source => GUARD,
            _ => (lost.boundary() as usize)
                .saturating_sub(after as usize)
                .min(GUARD),
        };
        let before_len = match side {
            Side::Destination if b <= 0 => 0,
            Side::Destination => (b as usize + GUARD).min(lost.valid_len()) - b as usize,
            _ => GUARD,
        };
        let before = dst.wrapping_sub(before_len);
        // SAFETY: both ranges lie in readable, writable memory (the contract).
        unsafe {
            std::ptr::write_bytes(before, SENTINEL, before_len);
            std::ptr::write_bytes(after, SENTINEL, after_len);
        }
        Sentinels {
            before,
            before_len,
            after,
            after_len,
        }
    }

    /// Panics, naming `what`, if the copy wrote a sentinel.
    ///
    /// # Safety
    /// As for [`Sentinels::place`], the memory still mapped.
    pub unsafe fn check(&self, what: &str) {
        // SAFETY: the ranges `place` wrote.
        unsafe {
            assert_untouched(self.before, self.before_len, &format!("{what}: before dst"));
            assert_untouched(self.after, self.after_len, &format!("{what}: after dst"));
        }
    }
}

/// Asserts that `len` bytes at `p` still hold the sentinel.
///
/// # Safety
/// `p..p+len` is readable.
pub unsafe fn assert_untouched(p: *const u8, len: usize, what: &str) {
    for i in 0..len {
        // SAFETY: per the contract.
        let b = unsafe { p.add(i).read() };
        assert_eq!(b, SENTINEL, "{what}: byte {i} was written");
    }
}

/// Overwrites `len` bytes at `dst` with the complement of `want(i)`, the byte the
/// call under test should store at offset `i`: every byte then differs from what
/// it should become. Call it before each call of a sweep that reuses its
/// buffers: otherwise the destination already holds the right bytes from the
/// previous call (the same copy one byte longer, or with another strategy), and
/// a store the call skips (the last overlapping store of a size class, a tail
/// byte) passes the check of what it stored.
///
/// # Safety
/// `dst..dst+len` is writable and does not fault.
pub unsafe fn overwrite_unlike(dst: *mut u8, len: usize, want: impl Fn(usize) -> u8) {
    // SAFETY: per the contract; this range does not fault.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, len) };
    for (i, d) in dst.iter_mut().enumerate() {
        *d = !want(i);
    }
}

/// [`overwrite_unlike`] for a copy from `src`: `dst[i] = !src[i]` for `i < len`.
///
/// # Safety
/// `dst..dst+len` is writable, `src..src+len` readable, neither faults, and
/// they do not overlap.
pub unsafe fn overwrite_unlike_copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: per the contract; these ranges do not fault.
    let (dst, src) = unsafe {
        (
            std::slice::from_raw_parts_mut(dst, len),
            std::slice::from_raw_parts(src, len),
        )
    };
    for (d, s) in dst.iter_mut().zip(src) {
        *d = !s;
    }
}

/// Index of the first byte where `a` and `b` differ over `len` bytes, if any.
///
/// # Safety
/// Both ranges are readable.
pub unsafe fn first_difference(a: *const u8, b: *const u8, len: usize) -> Option<usize> {
    // SAFETY: per the contract; these ranges do not fault.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, len),
            std::slice::from_raw_parts(b, len),
        )
    };
    if a == b {
        None
    } else {
        a.iter().zip(b).position(|(x, y)| x != y)
    }
}

/// Serializes the tests of one binary that count signals through
/// `mcsafe::stats()`, which is process-wide.
pub fn signal_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn recovered() -> u64 {
    mcsafe::stats().recovered
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether this is an aarch64 build running under qemu-user on a kernel of
/// another architecture (the cross-built suite in CI, docs/cpus.md
/// "aarch64"): there the test binary cannot exec itself directly (no
/// binfmt_misc; see [`this_binary`]) and ptrace does not work.
pub fn emulated() -> bool {
    cfg!(target_arch = "aarch64")
        && std::fs::read_to_string("/proc/sys/kernel/arch").is_ok_and(|a| a.trim() != "aarch64")
}

/// What qemu-user (7.2) does not emulate, which some tests need: under
/// [`emulated`] they say so and return. The arm64 VM (`cargo xtask
/// vm-test-aarch64`) runs those test binaries under a real kernel.
pub mod qemu_user {
    /// mcsafe passes a fault on to `SIG_DFL` by re-sending its siginfo to its
    /// own thread (`rt_tgsigqueueinfo`); qemu-user's host handler takes that
    /// signal, si_code > 0, for a fault of its own and aborts (`cpu_exec:
    /// assertion failed`, exit 127) instead of dying by it.
    pub const RE_SENT_FAULT: &str = "qemu-user aborts on a fault siginfo re-sent to its own thread (mcsafe's pass-on to SIG_DFL)";
    /// The kernel forces a synchronous SIGBUS through SIG_IGN or a blocked
    /// mask; qemu-user ignores it and runs the faulting load again, forever.
    pub const FORCED_FAULT: &str =
        "qemu-user does not force a synchronous SIGBUS through SIG_IGN or a blocked mask";
    /// `madvise(MADV_HWPOISON)` returns 0 and poisons nothing.
    pub const HWPOISON: &str = "qemu-user does not emulate MADV_HWPOISON";
    /// A host program that qemu-user execs inherits qemu's dispositions.
    pub const EXEC: &str =
        "a program exec'd under qemu-user inherits qemu's signal dispositions, not the guest's";
}

/// Under [`emulated`], prints that `what` is not run here because of `why`
/// (one of [`qemu_user`]'s reasons) and returns true: the caller returns.
pub fn qemu_user_cannot(what: &str, why: &str) -> bool {
    if emulated() {
        eprintln!(
            "NOT RUN here: {what}: {why}; the arm64 VM runs it (cargo xtask vm-test-aarch64)"
        );
    }
    emulated()
}

/// A command that runs this test binary again, for child processes: the binary
/// itself, or under [`emulated`], the same qemu that runs this one
/// (`MCSAFE_QEMU`, default `qemu-aarch64-static`; `QEMU_LD_PREFIX` is
/// inherited from .cargo/config.toml).
pub fn this_binary() -> Command {
    target_program(&std::env::current_exe().unwrap())
}

/// A command that runs `exe`, a program built for this test binary's target:
/// directly, or under [`emulated`] through qemu, as [`this_binary`].
pub fn target_program(exe: &std::path::Path) -> Command {
    if emulated() {
        let qemu = std::env::var("MCSAFE_QEMU").unwrap_or_else(|_| "qemu-aarch64-static".into());
        let mut command = Command::new(qemu);
        command.arg(exe);
        command
    } else {
        Command::new(exe)
    }
}

/// For a test whose environment may be missing: true if `available`; otherwise
/// prints why the test cannot run and returns false, except in CI, where the
/// environment must be there and the test fails (but under qemu-user, see
/// [`emulated`]: the arm64 VM runs such binaries in CI).
pub fn require(available: bool, what: &str, why: &str) -> bool {
    if available {
        return true;
    }
    let message = format!("cannot test {what}: {why}");
    // Under qemu-user what the kernel offers is qemu's (no userfaultfd, say):
    // the arm64 VM runs these binaries where the environment is real.
    if in_ci() && !emulated() {
        panic!("{message} (CI must provide it)");
    }
    eprintln!("NOT RUN: {message}");
    false
}

const CHILD_ENV: &str = "MCSAFE_TEST_CHILD";
/// What a child prints when its body returned: an exit status of 0 without it
/// means something ended the process early (an `_exit(0)` somewhere), which is
/// not the body's success.
const BODY_RETURNED: &str = "mcsafe-tests: the child's body returned";

/// Runs `body` in a child process (this test binary, running only the test
/// `test_name`) and returns how the child ended. In the child, runs `body` and
/// exits 0 if it returns. `test_name` must be the calling test's path.
pub fn in_child(test_name: &str, body: impl FnOnce()) -> ExitStatus {
    in_child_with_env(test_name, &[], body)
}

/// [`in_child`] with extra environment variables for the child.
pub fn in_child_with_env(test_name: &str, env: &[(&str, &str)], body: impl FnOnce()) -> ExitStatus {
    let output = in_child_output(test_name, env, body);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("child {test_name}: {:?}\n{stderr}", output.status);
    output.status
}

/// [`in_child_with_env`] that returns what the child printed as well as how
/// it ended, for a test that reads a value or a marker from the child's stderr.
pub fn in_child_output(
    test_name: &str,
    env: &[(&str, &str)],
    body: impl FnOnce(),
) -> std::process::Output {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        body();
        eprintln!("{BODY_RETURNED}");
        std::process::exit(0);
    }
    child_output(test_name, env)
}

/// Runs the test `test_name` of this binary in a child process (where
/// [`in_child`] runs its body) and returns how it ended and what it printed.
/// A child still running after [`child_deadline`] is killed and the test fails:
/// a broken handler chain that loops must not hang the test binary.
pub fn child_output(test_name: &str, env: &[(&str, &str)]) -> std::process::Output {
    use std::process::Stdio;
    let child = this_binary()
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let pid = child.id() as libc::pid_t;
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let deadline = child_deadline();
    let watchdog = std::thread::spawn(move || {
        let late = finished.recv_timeout(deadline).is_err();
        if late {
            // SAFETY: our own child, not yet reaped (the main thread waits for it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        late
    });
    let output = child.wait_with_output().expect("wait for the test binary");
    let _ = done.send(());
    if watchdog.join().unwrap() {
        panic!("child {test_name} ({env:?}) still running after {deadline:?}: killed");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stdout.contains("running 1 test") {
        panic!("child did not run {test_name}:\n{stdout}\n{stderr}");
    }
    if output.status.success() && !stderr.contains(BODY_RETURNED) {
        panic!("child {test_name} ({env:?}) exited 0 before its body returned:\n{stderr}");
    }
    output
}

/// How long a child of [`child_output`] may run: 120 s, plus
/// `MCSAFE_STRESS_SECS` for the stress tests that run in one.
pub fn child_deadline() -> std::time::Duration {
    let stress: f64 = std::env::var("MCSAFE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    std::time::Duration::from_secs_f64(120.0 + stress.max(0.0))
}

/// The signal that ended a child, if one did.
pub fn killed_by(status: ExitStatus) -> Option<i32> {
    status.signal()
}

/// The calling thread's alternate signal stack, as `sigaltstack` reports it.
pub fn current_altstack() -> libc::stack_t {
    // SAFETY: an all-zero stack_t is valid; sigaltstack only writes it.
    unsafe {
        let mut now: libc::stack_t = std::mem::zeroed();
        assert_eq!(libc::sigaltstack(std::ptr::null(), &mut now), 0);
        now
    }
}

/// Removes the calling thread's alternate signal stack (Rust's std gives every
/// thread it starts one, for its stack-overflow report; a test may have set its
/// own), and checks it is gone.
pub fn disable_altstack() {
    let off = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: disabling this thread's alternate stack; the memory of the one it
    // had (std's, or the caller's) is not used from then on.
    assert_eq!(unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) }, 0);
    assert_ne!(
        current_altstack().ss_flags & libc::SS_DISABLE,
        0,
        "the thread has no alternate stack"
    );
}

/// A private anonymous mapping with pages poisoned through `UFFDIO_POISON`
/// (Linux 6.6+): touching them raises SIGBUS (`BUS_MCEERR_AR` with
/// CONFIG_MEMORY_FAILURE, `BUS_ADRERR` without). The other pages hold data.
/// A thin wrapper over the kit's [`mcsafe::inject::UffdPoisonMapping`].
pub struct UffdPoisoned {
    map: UffdPoisonMapping,
}

impl UffdPoisoned {
    /// `pages` pages filled with the pattern of `seed`, with the pages at the
    /// indices in `poisoned` poisoned. The error explains what is missing.
    pub fn new(pages: usize, poisoned: &[usize], seed: u64) -> std::io::Result<UffdPoisoned> {
        let map = UffdPoisonMapping::new(pages)?;
        // SAFETY: the mapping is ours, populated, and nothing is poisoned yet.
        unsafe { fill(map.as_ptr(), pages * PAGE, seed) };
        for &page in poisoned {
            map.poison(page)?;
        }
        Ok(UffdPoisoned { map })
    }

    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr()
    }
}

/// Whether this kernel has memory-failure support (CONFIG_MEMORY_FAILURE), which
/// turns UFFDIO_POISON and MADV_HWPOISON faults into `BUS_MCEERR_AR`.
pub fn kernel_has_memory_failure() -> bool {
    mcsafe::inject::capabilities().memory_failure()
}

/// CRC32C of `data`, from the polynomial with a byte table built here: the
/// reference the crate's checksums are compared with (it shares no code with
/// them).
pub fn crc32c_reference(data: &[u8]) -> u32 {
    crc32c_reference_from(0, data)
}

/// [`crc32c_reference`] continuing from the CRC `crc` of earlier bytes.
pub fn crc32c_reference_from(crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            (0..8).fold(i as u32, |c, _| {
                if c & 1 == 1 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                }
            })
        })
    });
    !data.iter().fold(!crc, |crc, &b| {
        (crc >> 8) ^ table[((crc ^ u32::from(b)) & 0xff) as usize]
    })
}

/// Checks [`crc32c_reference`] against the known values: RFC 3720 (iSCSI)
/// appendix B.4 and the "123456789" check value of the CRC-32C catalogue, so
/// that the oracle the tests compare the crate's checksums with is right.
pub fn assert_crc32c_reference_is_right() {
    let vectors: [(Vec<u8>, u32); 6] = [
        (b"123456789".to_vec(), 0xe306_9283),
        (vec![0; 32], 0x8a91_36aa),
        (vec![0xff; 32], 0x62a8_ab43),
        ((0..32).collect(), 0x46dd_794e),
        ((0..32).rev().collect(), 0x113f_db5c),
        (Vec::new(), 0),
    ];
    for (data, want) in vectors {
        assert_eq!(crc32c_reference(&data), want, "{data:02x?}");
    }
    // Continuing from an earlier CRC is the CRC of both parts.
    assert_eq!(
        crc32c_reference_from(crc32c_reference(b"1234"), b"56789"),
        0xe306_9283
    );
}

/// Positions for a buffer that starts `misalign` bytes past a 64-byte boundary
/// and `b` bytes before a lost page: from inside the lost page, through every
/// 64-byte step that keeps the misalignment, to one past `len` (no fault).
pub fn positions(misalign: usize, len: usize) -> impl Iterator<Item = isize> {
    let first = (64 - misalign) % 64;
    std::iter::once(-(misalign as isize)).chain((first..=len + 64).step_by(64).map(|b| b as isize))
}

/// The bytes before a lost page that cuts an access of `len` bytes starting `b`
/// bytes before it: `None` if the access does not reach the page.
pub fn expected_cut(b: isize, len: usize) -> Option<usize> {
    if len == 0 || b >= len as isize {
        None
    } else {
        Some(b.max(0) as usize)
    }
}

/// A checksum with `crc32c_mc`'s signature.
pub type Checksum = unsafe fn(u32, *const u8, usize) -> Result<u32, mcsafe::CrcFault>;

/// The block sizes the forced checksum paths below pass (`crc32c_mc_with`'s
/// `block`, `copy_crc32c_mc_with`'s `blocks`): tests set smaller ones to reach
/// several commits with short buffers, and set them back with
/// [`default_blocks`]. The library itself has no such knob: these are arguments.
static CRC_BLOCK: AtomicUsize = AtomicUsize::new(mcsafe::internals::CRC_BLOCK);
static COPY_BLOCK: AtomicUsize = AtomicUsize::new(mcsafe::internals::COPY_CRC_BLOCKS.0);
static VECTOR_ONLY: AtomicUsize = AtomicUsize::new(mcsafe::internals::COPY_CRC_BLOCKS.1);

/// Blocks of `crc` bytes for the folding checksums, and of `copy` bytes with no
/// streams from calls of `vector_only` bytes for the one-pass copies.
pub fn set_blocks(crc: usize, copy: usize, vector_only: usize) {
    CRC_BLOCK.store(crc, Ordering::Relaxed);
    COPY_BLOCK.store(copy, Ordering::Relaxed);
    VECTOR_ONLY.store(vector_only, Ordering::Relaxed);
}

/// The library's own block sizes back.
pub fn default_blocks() {
    let (copy, vector_only) = mcsafe::internals::COPY_CRC_BLOCKS;
    set_blocks(mcsafe::internals::CRC_BLOCK, copy, vector_only);
}

macro_rules! checksum_via {
    ($name:ident, $path:ident) => {
        /// # Safety
        /// As for `crc32c_mc`.
        unsafe fn $name(crc: u32, src: *const u8, len: usize) -> Result<u32, mcsafe::CrcFault> {
            use mcsafe::internals::{CrcPath, crc32c_mc_with};
            let block = CRC_BLOCK.load(Ordering::Relaxed);
            // SAFETY: the caller's contract.
            unsafe { crc32c_mc_with(CrcPath::$path, block, crc, src, len) }
        }
    };
}
checksum_via!(via_fold512, Fold512);
checksum_via!(via_fold256, Fold256);
checksum_via!(via_fold128, Fold128);
checksum_via!(via_stream, Stream);
checksum_via!(via_pmull, Pmull);
checksum_via!(via_copies, Copies);

/// `crc32c_mc`, then each of its paths forced (the folding routines, the
/// one-stream `crc32` routine, aarch64's PMULL-merged streams, copies and
/// software) that this CPU can take; a
/// path it cannot take is named on stderr (a CPU feature, not an environment CI
/// could provide).
pub fn checksums() -> Vec<(&'static str, Checksum)> {
    use mcsafe::internals::CrcPath;
    let mut all: Vec<(&'static str, Checksum)> = vec![("crc32c_mc", mcsafe::crc32c_mc)];
    for (name, path, f) in [
        ("fold512", CrcPath::Fold512, via_fold512 as Checksum),
        ("fold256", CrcPath::Fold256, via_fold256),
        ("fold128", CrcPath::Fold128, via_fold128),
        ("stream", CrcPath::Stream, via_stream),
        ("pmull", CrcPath::Pmull, via_pmull),
        ("copies", CrcPath::Copies, via_copies),
    ] {
        if path.is_available() {
            all.push((name, f));
        } else {
            eprintln!("NOT RUN: the {name} checksum path: this CPU cannot take it");
        }
    }
    all
}

/// Whether this checksum or copy-and-checksum (by its name in [`checksums`] or
/// [`copy_checksums`]) reads several parts of a block at once, so that its first
/// fault may be on a later lost page than the first: a folding routine with
/// streams (fold256, fold128), aarch64's PMULL one (three streams), or the public
/// call where it takes one. fold512 walks in address order: its first fault is on
/// the first lost page.
pub fn reads_in_parallel(name: &str) -> bool {
    use mcsafe::internals::CrcPath;
    matches!(name, "fold256" | "fold128" | "pmull")
        || (matches!(name, "crc32c_mc" | "copy_crc32c_mc")
            && matches!(
                CrcPath::current(),
                CrcPath::Fold256 | CrcPath::Fold128 | CrcPath::Pmull
            ))
}

/// A copy-and-checksum with `copy_crc32c_mc`'s signature.
pub type CopyChecksum = unsafe fn(u32, *mut u8, *const u8, usize) -> Result<u32, mcsafe::CrcFault>;

macro_rules! copy_via {
    ($name:ident, $path:ident) => {
        /// # Safety
        /// As for `copy_crc32c_mc`.
        unsafe fn $name(
            crc: u32,
            dst: *mut u8,
            src: *const u8,
            len: usize,
        ) -> Result<u32, mcsafe::CrcFault> {
            use mcsafe::internals::{CrcPath, copy_crc32c_mc_with};
            let blocks = (
                COPY_BLOCK.load(Ordering::Relaxed),
                VECTOR_ONLY.load(Ordering::Relaxed),
            );
            // SAFETY: the caller's contract.
            unsafe { copy_crc32c_mc_with(CrcPath::$path, blocks, crc, dst, src, len) }
        }
    };
}
copy_via!(copy_via_fold512, Fold512);
copy_via!(copy_via_fold256, Fold256);
copy_via!(copy_via_fold128, Fold128);
copy_via!(copy_via_stream, Stream);
copy_via!(copy_via_pmull, Pmull);
copy_via!(copy_via_copies, Copies);

/// `copy_crc32c_mc`, then each of its paths forced that this CPU can take:
/// the one-pass routines (`fold512`, `fold256`, `fold128`; aarch64's `pmull`), and the careful path
/// (`copy_mc`, then the checksum) with the one-stream routine (`stream`) and
/// with copies and software (`copies`). A path it cannot take is named on
/// stderr.
pub fn copy_checksums() -> Vec<(&'static str, CopyChecksum)> {
    use mcsafe::internals::CrcPath;
    let mut all: Vec<(&'static str, CopyChecksum)> =
        vec![("copy_crc32c_mc", mcsafe::copy_crc32c_mc)];
    for (name, path, f) in [
        (
            "fold512",
            CrcPath::Fold512,
            copy_via_fold512 as CopyChecksum,
        ),
        ("fold256", CrcPath::Fold256, copy_via_fold256),
        ("fold128", CrcPath::Fold128, copy_via_fold128),
        ("pmull", CrcPath::Pmull, copy_via_pmull),
        ("stream", CrcPath::Stream, copy_via_stream),
        ("copies", CrcPath::Copies, copy_via_copies),
    ] {
        if path.is_available() {
            all.push((name, f));
        } else {
            eprintln!("NOT RUN: the {name} copy-and-checksum path: this CPU cannot take it");
        }
    }
    all
}

/// Copy faults with every strategy (the third page of a mapping is lost):
/// recovered exactly.
pub fn assert_copy_faults_recovered() {
    let lost = LostTail::new(2, 1, 7);
    let mut dst = vec![0u8; 3 * PAGE];
    for strategy in mcsafe::Strategy::available() {
        // SAFETY: the mapping's third page is lost.
        let f = unsafe { mcsafe::copy_mc_with(strategy, dst.as_mut_ptr(), lost.base(), 3 * PAGE) }
            .unwrap_err();
        assert_eq!(f.copied(), 2 * PAGE, "{strategy}");
    }
}

/// Runs `cargo xtask capi --prefix PREFIX` from the workspace root `root`
/// (libmcsafe, and the SQLite VFS where SQLite's headers are), removing an
/// older prefix first; panics with its output if it fails.
pub fn install_capi(root: &Path, prefix: &Path) {
    let _ = std::fs::remove_dir_all(prefix);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "capi",
            "--prefix",
        ])
        .arg(prefix);
    if emulated() {
        // The library for this test binary's target; xtask itself runs on the
        // host, not through the target's runner.
        command
            .args(["--target", "aarch64-unknown-linux-gnu"])
            .env_remove("CARGO_BUILD_TARGET");
    }
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo xtask capi failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `pkg-config --cflags --libs PACKAGES` against the pkg-config files that
/// [`install_capi`] put under `prefix`.
pub fn pkg_config(prefix: &Path, packages: &[&str]) -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "--libs"])
        .args(packages)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config runs");
    assert!(
        output.status.success(),
        "pkg-config {packages:?}: {output:?}"
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}
