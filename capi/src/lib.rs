//! libmcsafe: the C API of mcsafe, for C and C++ storage engines.
//!
//! Every function here is `extern "C"`, declared in `include/mcsafe.h`, which
//! cbindgen generates from this file (the doc comments become the header's
//! comments; `tests/header.rs` fails when the committed header is stale:
//! `MCSAFE_BLESS=1 cargo test -p mcsafe-capi --test header` rewrites it).
//! `cargo xtask capi --prefix DIR` builds and installs the library, the header
//! and the pkg-config files; `docs/c.md` is the user's guide.
//!
//! Each entry point checks its arguments with the crate's own rules before
//! calling the Rust API (`args.rs`), makes sure the crate is initialised
//! without a first-use panic (`status.rs`), and runs under `catch_unwind`: no
//! panic crosses into C.
//!
//! Changing the API: edit this file, bless the header, update `docs/c.md`, and
//! run `cargo test -p mcsafe-capi` (header check, unit tests, the C programs of
//! `tests/c/` against an installed copy).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// The C names are fixed by the API (struct mcsafe_fault, ...).
#![allow(non_camel_case_types)]

mod args;
mod status;

use core::ffi::{c_char, c_int, c_void};

// `size_t` and `uintptr_t` by name, so that cbindgen writes them so (both
// are `usize` to Rust).
use libc::{size_t, uintptr_t};

use mcsafe::{Fault, Strategy};

/// The fault was reading the source buffer.
pub const MCSAFE_SIDE_SOURCE: c_int = 0;
/// The fault was writing the destination buffer.
pub const MCSAFE_SIDE_DESTINATION: c_int = 1;

/// `BUS_MCEERR_AR`: hardware memory error (a machine check, a page the kernel
/// already marked poisoned, a pmem bad block). The data is gone for good.
pub const MCSAFE_KIND_POISON: c_int = 1;
/// `BUS_ADRERR`: no memory behind the address, e.g. a file mapping past the
/// end of its file after a truncation.
pub const MCSAFE_KIND_ADDRESS_ERROR: c_int = 2;
/// `BUS_OBJERR`: the object behind the mapping failed, e.g. a page-in error.
pub const MCSAFE_KIND_OBJECT_ERROR: c_int = 3;

/// What a call that returned `-EIO` lost, filled in when the caller passes a
/// non-NULL pointer. Untouched by calls that return anything else.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct mcsafe_fault {
    /// Bytes done before the lost granule: exactly the bytes that precede it on
    /// the faulting side (0 when it begins before the buffer). For a copy,
    /// `dst[0..copied) == src[0..copied)`; bytes of `dst` at or past `copied`
    /// may have been written, bytes past `len` never are.
    pub copied: size_t,
    /// The faulting address as the kernel gave it (`si_addr`): exact for a page
    /// fault, page-aligned for a machine check.
    pub addr: uintptr_t,
    /// Bytes in the lost unit (`1 << si_addr_lsb`, or the page size): the
    /// granule is `[addr & ~(granule - 1), +granule)`, a whole huge page for
    /// hugetlb poison.
    pub granule: size_t,
    /// `MCSAFE_SIDE_SOURCE` or `MCSAFE_SIDE_DESTINATION`.
    pub side: c_int,
    /// `MCSAFE_KIND_POISON`, `MCSAFE_KIND_ADDRESS_ERROR` or `MCSAFE_KIND_OBJECT_ERROR`.
    pub kind: c_int,
    /// The signal's `si_code`: `BUS_MCEERR_AR`, `BUS_ADRERR` or `BUS_OBJERR`.
    pub si_code: c_int,
}

/// Counters of the SIGBUS handler since the process started, for monitoring
/// and for tests that count signals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct mcsafe_stats {
    /// Faults inside mcsafe's routines, recovered (one per signal).
    pub recovered: u64,
    /// SIGBUS that were not mcsafe's, passed on to the handler installed before.
    pub passed_on: u64,
}

/// Installs the process-wide SIGBUS handler, or checks that copy faults still
/// reach it. Idempotent and thread-safe; optional (the first call of any other
/// function does it), but call it at start-up: it reports problems that the
/// other functions cannot. Install your own SIGBUS handlers before it: mcsafe
/// hands them every SIGBUS that is not a fault in its own routines. Not
/// async-signal-safe. After it returned 0, every other function is: copies
/// may then run in signal handlers.
///
/// Returns 0, or a negative errno (`mcsafe_strerror` explains each):
/// - `-ENOTSUP`: no fault-safe copies on this target (only x86-64 and aarch64
///   Linux have them). The other functions still work, as plain copies: a
///   SIGBUS in them kills the process, as with memcpy.
/// - `-EEXIST`: another copy of mcsafe is loaded in this process (this library
///   and a Rust program or library that contains the `mcsafe` crate, say). No
///   copy initialises while another is loaded: the other functions return
///   `-EEXIST` too (unless this library was initialised before the other copy
///   was loaded with dlopen: then they keep working). Use one copy.
/// - `-EBUSY`: some code replaced mcsafe's handler with one that does not pass
///   copy faults on; faults would not be recovered. Copies still run.
/// - `-EAGAIN`: SIGBUS is blocked in the calling thread, where a copy fault
///   would kill the process. Copies still run.
/// - `-EINVAL`: the environment variable `MCSAFE_STRATEGY` names a strategy
///   this CPU cannot run, or none; every other function then returns `-EINVAL`.
/// - `-ENOEXEC`: the landing-pad table is malformed (a build defect).
/// - `-ENOTRECOVERABLE`: mcsafe caught a panic (a bug); any function may
///   return it, having done nothing more.
/// - another negative errno: `sigaction(2)` failed with it.
#[unsafe(no_mangle)]
pub extern "C" fn mcsafe_install() -> c_int {
    status::guard(status::initialise)
}

/// Copies `len` bytes from `src` to `dst` like memcpy, surviving a SIGBUS on
/// either buffer (hardware poison, a truncated file mapping, a failed page-in).
///
/// Returns 0 when every byte was copied; `-EIO` when a granule of either buffer
/// was lost, with `*fault` filled in (when `fault` is not NULL): the first
/// `fault->copied` bytes of `dst` equal those of `src`, exactly up to the lost
/// granule, which is never touched again (one lost page, one signal). Returns
/// `-EINVAL`, touching nothing, when `len > 0` and a pointer is NULL, a range
/// wraps or leaves user space, or the buffers overlap (there are no memmove
/// semantics). `len == 0` returns 0 and reads no pointer. An unmapped or
/// read-only page raises SIGSEGV, which mcsafe does not catch, as with memcpy.
/// SIGBUS must not be blocked in the calling thread. Also returns the codes of
/// `mcsafe_install` that stop copies (`-EEXIST`, `-EINVAL` for a bad
/// `MCSAFE_STRATEGY`) on first use.
///
/// # Safety
///
/// `src..src+len` readable and `dst..dst+len` writable (except where they may
/// raise SIGBUS), and nothing else accesses `dst` during the call.
#[unsafe(no_mangle)]
#[cfg_attr(target_arch = "x86_64", unsafe(naked))]
pub unsafe extern "C" fn mcsafe_copy(
    dst: *mut c_void,
    src: *const c_void,
    len: size_t,
    fault: *mut mcsafe_fault,
) -> c_int {
    // On x86-64 this symbol is an IFUNC (see `through_copy_entry`): the dynamic
    // linker puts in the caller's GOT the crate's direct entry, which tests one
    // word and falls into the C API routine: called through the PLT this costs
    // what memcpy costs, plus three instructions; no Rust frame, no jump of ours.
    // The routine returns 0 or -EINVAL itself and, after a fault, what
    // `copy_stopped` returns (-EIO with *fault filled in). Elsewhere: a call
    // through COPY_ENTRY.
    through_copy_entry!(dst, src, len, fault)
}

/// `mcsafe_copy`'s body. On x86-64 the symbol is made an IFUNC (a
/// `gnu_indirect_function`, as glibc's memcpy is) whose resolver is this naked
/// body: the dynamic linker (or, linked statically, the startup code) calls it
/// once, before the first call, and it returns the crate's direct entry for this
/// CPU, having registered `copy_dispatch` for every call the direct entry cannot
/// take itself (before first use: `copy_first`, which installs). Resolving
/// installs nothing and reads no environment: installation stays at first use.
/// Elsewhere, a call through the word.
#[cfg(target_arch = "x86_64")]
macro_rules! through_copy_entry {
    ($($argument:ident),*) => {
        core::arch::naked_asm!(
            ".type mcsafe_copy, @gnu_indirect_function",
            "jmp {resolve}",
            resolve = sym resolve_copy,
        )
    };
}

/// `mcsafe_copy`'s IFUNC resolver (see `through_copy_entry`).
#[cfg(target_arch = "x86_64")]
extern "C" fn resolve_copy() -> usize {
    mcsafe::c_api::direct_entry(copy_dispatch)
}

/// Where the direct entry sends a call it cannot take: a jump through
/// COPY_ENTRY, with the arguments as they came.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn copy_dispatch(
    _dst: *mut c_void,
    _src: *const c_void,
    _len: size_t,
    _context: *mut c_void,
) -> c_int {
    core::arch::naked_asm!("jmp qword ptr [rip + {entry}]", entry = sym COPY_ENTRY)
}
#[cfg(not(target_arch = "x86_64"))]
macro_rules! through_copy_entry {
    ($dst:ident, $src:ident, $len:ident, $fault:ident) => {{
        let entry = COPY_ENTRY.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: every value of the word is a `CopyFn` (copy_first, or the entry
        // mcsafe::c_api::copy_entry gave).
        let copy = unsafe { core::mem::transmute::<*mut (), CopyFn>(entry) };
        // SAFETY: as for `mcsafe_copy`.
        unsafe { copy($dst, $src, $len, $fault) }
    }};
}
use through_copy_entry;

/// `mcsafe_copy`'s C function: `copy_first` until the crate is ready, then the
/// crate's C API routine of the current strategy.
type CopyFn = unsafe extern "C" fn(*mut c_void, *const c_void, size_t, *mut mcsafe_fault) -> c_int;

/// The word `mcsafe_copy` jumps through (a `CopyFn`).
static COPY_ENTRY: core::sync::atomic::AtomicPtr<()> =
    core::sync::atomic::AtomicPtr::new(copy_first as CopyFn as *mut ());

/// `mcsafe_copy` before the crate is ready: install (or return why not), publish
/// the C API routine in [`COPY_ENTRY`], then copy with it.
///
/// # Safety
/// As for `mcsafe_copy`.
#[cold]
#[inline(never)]
unsafe extern "C" fn copy_first(
    dst: *mut c_void,
    src: *const c_void,
    len: size_t,
    fault: *mut mcsafe_fault,
) -> c_int {
    let entry = status::ready().and_then(|()| {
        std::panic::catch_unwind(|| mcsafe::c_api::copy_entry(copy_stopped))
            .map_err(|_| -libc::ENOTRECOVERABLE)
    });
    let entry = match entry {
        Ok(entry) => entry as *mut (),
        Err(code) => return code,
    };
    COPY_ENTRY.store(entry, core::sync::atomic::Ordering::Release);
    // SAFETY: the entry is a `CopyFn` (mcsafe::c_api::copy_entry's contract).
    let copy = unsafe { core::mem::transmute::<*mut (), CopyFn>(entry) };
    // SAFETY: as for this function.
    unsafe { copy(dst, src, len, fault) }
}

/// What a copy stopped by a fault returns (the crate's C API routines call it
/// after their careful forward step, with `mcsafe_copy`'s `fault` argument):
/// `-EIO` with `*fault` filled in when not NULL, or `-ENOTRECOVERABLE` when the
/// crate caught a panic.
fn copy_stopped(lost: Option<Fault>, fault: *mut c_void) -> c_int {
    match lost {
        // SAFETY: `fault` is mcsafe_copy's: NULL or a writable mcsafe_fault.
        Some(lost) => unsafe { report(fault.cast(), lost) },
        None => -libc::ENOTRECOVERABLE,
    }
}

/// Fills `len` bytes at `dst` with `(unsigned char)byte` like memset,
/// surviving a SIGBUS. Returns 0; or `-EIO` with `*fault` filled in, the first
/// `fault->copied` bytes filled, exactly up to the lost granule, and
/// `fault->side` `MCSAFE_SIDE_DESTINATION`; or `-EINVAL` (NULL with `len > 0`,
/// a range that wraps or leaves user space), touching nothing. `len == 0`
/// returns 0.
///
/// # Safety
///
/// `dst..dst+len` writable (except where it may raise SIGBUS), and nothing else
/// accesses it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcsafe_fill(
    dst: *mut c_void,
    byte: c_int,
    len: size_t,
    fault: *mut mcsafe_fault,
) -> c_int {
    status::guard(|| {
        if len == 0 {
            return 0;
        }
        if !args::range_ok(dst as usize, len) {
            return -libc::EINVAL;
        }
        if let Err(code) = status::ready() {
            return code;
        }
        // SAFETY: range checked; the caller vouches for the memory.
        match unsafe { mcsafe::fill_mc(dst.cast(), byte as u8, len) } {
            Ok(()) => 0,
            // SAFETY: the caller passes NULL or a writable mcsafe_fault.
            Err(lost) => unsafe { report(fault, lost) },
        }
    })
}

/// Reads the 8 bytes at `src` (any alignment) with one load instruction,
/// surviving a SIGBUS: a header word, a page LSN. Returns 0 and stores them in
/// `*value`; or `-EIO` with `*fault` filled in (`fault->copied` is the bytes of
/// `*src` before the lost granule, 0 unless it straddles one) and `*value`
/// untouched; or `-EINVAL` when `src` or `value` is NULL or `src..src+8` wraps
/// or leaves user space.
///
/// # Safety
///
/// `src..src+8` readable (except where it may raise SIGBUS); `value` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcsafe_read_u64(
    src: *const c_void,
    value: *mut u64,
    fault: *mut mcsafe_fault,
) -> c_int {
    status::guard(|| {
        if value.is_null() || !args::range_ok(src as usize, size_of::<u64>()) {
            return -libc::EINVAL;
        }
        if let Err(code) = status::ready() {
            return code;
        }
        // SAFETY: range checked; any 8 bytes are a valid u64.
        match unsafe { mcsafe::read_mc(src.cast::<u64>()) } {
            Ok(read) => {
                // SAFETY: checked non-NULL; the caller vouches it is writable.
                unsafe { value.write_unaligned(read) };
                0
            }
            // SAFETY: the caller passes NULL or a writable mcsafe_fault.
            Err(lost) => unsafe { report(fault, lost) },
        }
    })
}

/// CRC32C (Castagnoli, as iSCSI, ext4, Btrfs and RocksDB use it) of `len`
/// bytes at `src`, continuing `crc` (0 to start; the result of one call is the
/// `crc` of the next), read in place with SSE4.2 and surviving a SIGBUS.
/// Returns 0 with the CRC in `*out`; or `-EIO` with `*fault` filled in and
/// `*out` the CRC of exactly the first `fault->copied` bytes (those before the
/// lost granule); or `-EINVAL` when `out` is NULL, or `len > 0` and `src` is
/// NULL or its range wraps or leaves user space. `len == 0` stores `crc`.
/// "123456789" gives 0xe3069283.
///
/// # Safety
///
/// `src..src+len` readable (except where it may raise SIGBUS); `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcsafe_crc32c(
    crc: u32,
    src: *const c_void,
    len: size_t,
    out: *mut u32,
    fault: *mut mcsafe_fault,
) -> c_int {
    status::guard(|| {
        if out.is_null() || (len > 0 && !args::range_ok(src as usize, len)) {
            return -libc::EINVAL;
        }
        if len > 0
            && let Err(code) = status::ready()
        {
            return code;
        }
        // SAFETY: range checked; the caller vouches for the memory.
        let (result, code) = match unsafe { mcsafe::crc32c_mc(crc, src.cast(), len) } {
            Ok(result) => (result, 0),
            // SAFETY: the caller passes NULL or a writable mcsafe_fault.
            Err(lost) => (lost.crc(), unsafe { report(fault, lost.fault()) }),
        };
        // SAFETY: checked non-NULL; the caller vouches it is writable.
        unsafe { out.write_unaligned(result) };
        code
    })
}

/// The copy strategy in use, chosen once per process from CPUID or forced by
/// the environment variable `MCSAFE_STRATEGY`: "fragile", "rep_movsb", "avx2"
/// or "avx512". "none" where copies are plain (targets without protection) or
/// cannot run (`MCSAFE_STRATEGY` is invalid: see `mcsafe_install`). Never NULL;
/// a static string.
#[unsafe(no_mangle)]
pub extern "C" fn mcsafe_strategy() -> *const c_char {
    status::strategy().as_ptr()
}

/// How copies are made in this process, in words, for logs and benchmarks: the
/// strategy, the size thresholds in force (where `rep movsb` and non-temporal
/// stores start), `MCSAFE_TUNABLES` as read and any of its settings ignored.
/// Installs mcsafe first, as the first copy would (an installation error leaves
/// a description of plain copies). Never NULL; a static string.
#[unsafe(no_mangle)]
pub extern "C" fn mcsafe_dispatch() -> *const c_char {
    static TEXT: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let text = std::panic::catch_unwind(|| {
            let _ = status::ready();
            let d = mcsafe::dispatch();
            format!("strategy {}; {}", d.strategy, d.thresholds_line())
        })
        .unwrap_or_else(|_| "unknown (mcsafe caught a panic)".into());
        std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default()
    })
    .as_ptr()
}

/// The library's version, e.g. "0.1.0". A static string.
#[unsafe(no_mangle)]
pub extern "C" fn mcsafe_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// What a return code of this library means, in words: for 0, `-EIO`,
/// `-EINVAL` and each code of `mcsafe_install` (either sign is accepted). A
/// static string, never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn mcsafe_strerror(code: c_int) -> *const c_char {
    status::describe(code).as_ptr()
}

/// The name of a `MCSAFE_KIND_*` value, e.g. "hardware memory error
/// (BUS_MCEERR_AR)"; "unknown" for other values. A static string.
#[unsafe(no_mangle)]
pub extern "C" fn mcsafe_fault_kind_name(kind: c_int) -> *const c_char {
    match kind {
        MCSAFE_KIND_POISON => c"hardware memory error (BUS_MCEERR_AR)",
        MCSAFE_KIND_ADDRESS_ERROR => c"no memory at address (BUS_ADRERR)",
        MCSAFE_KIND_OBJECT_ERROR => c"backing object error (BUS_OBJERR)",
        _ => c"unknown",
    }
    .as_ptr()
}

/// Stores the handler's counters in `*stats`. Returns 0, or `-EINVAL` when
/// `stats` is NULL. All zero on targets without protection. Async-signal-safe.
///
/// # Safety
///
/// `stats` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcsafe_get_stats(stats: *mut mcsafe_stats) -> c_int {
    if stats.is_null() {
        return -libc::EINVAL;
    }
    let now = mcsafe::stats();
    let counters = mcsafe_stats {
        recovered: now.recovered,
        passed_on: now.passed_on,
    };
    // SAFETY: checked non-NULL; the caller vouches it is writable.
    unsafe { stats.write_unaligned(counters) };
    0
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Fills `*out` (when not NULL) from `fault`; returns `-EIO`.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn report(out: *mut mcsafe_fault, fault: Fault) -> c_int {
    if !out.is_null() {
        // SAFETY: per this function's contract.
        unsafe { out.write_unaligned(to_c(fault)) };
    }
    -libc::EIO
}

/// The C view of a [`Fault`], so that every entry point reports alike.
fn to_c(fault: Fault) -> mcsafe_fault {
    use mcsafe::{FaultKind, Side};
    let (kind, si_code) = match fault.kind() {
        FaultKind::Poison => (MCSAFE_KIND_POISON, libc::BUS_MCEERR_AR),
        FaultKind::AddressError => (MCSAFE_KIND_ADDRESS_ERROR, libc::BUS_ADRERR),
        // Every kind the crate has; a new one is an object error until named here.
        _ => (MCSAFE_KIND_OBJECT_ERROR, libc::BUS_OBJERR),
    };
    mcsafe_fault {
        copied: fault.copied(),
        addr: fault.addr(),
        granule: fault.granule(),
        side: match fault.side() {
            Side::Destination => MCSAFE_SIDE_DESTINATION,
            _ => MCSAFE_SIDE_SOURCE,
        },
        kind,
        si_code,
    }
}

/// The NUL-terminated name of a strategy ("unknown" for one added to the crate
/// but not here: the unit test below catches that).
pub(crate) fn strategy_name(strategy: Strategy) -> &'static core::ffi::CStr {
    match strategy {
        Strategy::Fragile => c"fragile",
        Strategy::RepMovsb => c"rep_movsb",
        Strategy::Avx2 => c"avx2",
        Strategy::Avx512 => c"avx512",
        Strategy::AdvSimd => c"advsimd",
        _ => c"unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    /// On x86-64 Linux, 0 and a strategy; on other targets (CI builds this
    /// with MCSAFE_UNPROTECTED=1), -ENOTSUP and plain copies that work.
    #[test]
    fn install_says_what_this_target_has_and_copies_work_either_way() {
        // SAFETY: static strings.
        let strategy = unsafe { CStr::from_ptr(mcsafe_strategy()) }
            .to_str()
            .unwrap();
        if Strategy::available().is_empty() {
            assert_eq!(mcsafe_install(), -libc::ENOTSUP);
            assert_eq!(strategy, "none");
        } else {
            assert_eq!(mcsafe_install(), 0);
            assert_eq!(strategy, Strategy::current().name());
        }
        let (src, mut dst) = ([9u8; 100], [0u8; 100]);
        let mut fault = mcsafe_fault::default();
        // SAFETY: two distinct stack buffers of 100 bytes.
        let rc = unsafe {
            mcsafe_copy(
                dst.as_mut_ptr().cast(),
                src.as_ptr().cast(),
                100,
                &mut fault,
            )
        };
        assert_eq!((rc, dst), (0, src));
        assert_eq!(fault, mcsafe_fault::default(), "untouched on success");
    }

    #[test]
    fn names_match_the_rust_api() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy_name(strategy).to_str().unwrap(), strategy.name());
        }
        let kinds = [
            (MCSAFE_KIND_POISON, mcsafe::FaultKind::Poison),
            (MCSAFE_KIND_ADDRESS_ERROR, mcsafe::FaultKind::AddressError),
            (MCSAFE_KIND_OBJECT_ERROR, mcsafe::FaultKind::ObjectError),
        ];
        for (code, kind) in kinds {
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(mcsafe_fault_kind_name(code)) };
            assert_eq!(name.to_str().unwrap(), kind.to_string());
        }
        // SAFETY: as above.
        let version = unsafe { CStr::from_ptr(mcsafe_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
