//! Argument checks made before any call into the Rust API that would panic, so
//! that bad input from C gets `-EINVAL` (copies need none: the routine
//! `mcsafe_copy` jumps to refuses them itself, with `-EINVAL`).
//!
//! The rules are those the `mcsafe` crate documents for its panics (`copy_mc`,
//! `fill_mc`, `read_mc`, `crc32c_mc`, "# Panics"), written the same way: with
//! `len > 0`, a null pointer, a pointer past 2^61 or a length of 2^61 or more
//! (so every accepted range ends below 2^62: none wraps or leaves user space,
//! which ends below 2^57), or overlapping buffers. If the crate's rules change, change
//! these with them and run `cargo test -p mcsafe-capi` (the unit tests below call
//! the Rust API on refused input, under `catch_unwind`, to prove that it refuses
//! it as well, and on accepted edges with real buffers).

/// Pointers of acceptable ranges are at most this, their lengths below it (the
/// crate's rule: `start - 1` and `len` below it, which also refuses null).
pub(crate) const LIMIT: usize = 1 << 61;

/// Whether `start..start + len` (`len > 0`) is acceptable: not null, the start
/// at most [`LIMIT`], the length below it (fill, read_u64, crc32c).
#[inline(always)]
pub(crate) fn range_ok(start: usize, len: usize) -> bool {
    (start.wrapping_sub(1) | len) < LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs where the target has fault-safe copies; the plain-copy
    /// fallback (`MCSAFE_UNPROTECTED`, other targets) has nothing to install
    /// and refuses exactly the same arguments, so these tests hold there too.
    fn install() {
        match mcsafe::install() {
            Ok(()) => assert!(!mcsafe::Strategy::available().is_empty()),
            Err(mcsafe::InstallError::Unsupported) => {
                assert!(mcsafe::Strategy::available().is_empty())
            }
            Err(other) => panic!("install: {other}"),
        }
    }

    /// What `mcsafe_copy` makes of a copy the crate refuses: `-EINVAL`, with
    /// no panic (the routine's own check). Only called with arguments that are
    /// refused before any access.
    fn refused(dst: usize, src: usize, len: usize) -> bool {
        install();
        let mut fault = crate::mcsafe_fault::default();
        // SAFETY: refused before any access.
        let rc = unsafe { crate::mcsafe_copy(dst as *mut _, src as *const _, len, &mut fault) };
        rc == -libc::EINVAL && fault == crate::mcsafe_fault::default()
    }

    #[test]
    fn copies_the_crate_refuses_are_refused_without_a_panic() {
        let top = 1usize << 62;
        for (dst, src, len) in [
            (0, 0x1000, 1),
            (0x1000, 0, 1),
            (0x10000, 0x20000, top),
            (top + 1, 0x20000, 1),
            (0x10000, top + 4096, 1),
            (usize::MAX, 0x20000, 1),
            (0x10000, 0x10000, 1),
            (0x10000, 0x10fff, 0x1000),
            (0x10fff, 0x10000, 0x1000),
            (top, 0x20000, 1),
            (0x10000, top - 1, 2),
            (LIMIT + 1, 0x20000, 1),
            (0x10000, LIMIT + 1, 1),
            (0x10000, 0x20000, LIMIT),
        ] {
            assert!(refused(dst, src, len), "{dst:#x} {src:#x} {len}");
        }
        // len 0 is nothing to do, whatever the pointers.
        let (null, nothing) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: len 0 reads no pointer.
        let rc = unsafe { crate::mcsafe_copy(null, std::ptr::null(), 0, nothing) };
        assert_eq!(rc, 0);
    }

    #[test]
    fn adjacent_buffers_are_copied_as_the_rust_api_does() {
        install();
        let mut buf: Vec<u8> = (0..64).collect();
        let base = buf.as_mut_ptr() as usize;
        for (dst, src) in [(base, base + 32), (base + 32, base)] {
            let (to, from) = (dst as *mut _, src as *const _);
            // SAFETY: two disjoint halves of `buf`.
            let rc = unsafe { crate::mcsafe_copy(to, from, 32, std::ptr::null_mut()) };
            assert_eq!(rc, 0);
        }
        assert!(refused(base, base + 31, 32));
    }

    #[test]
    fn single_ranges_follow_the_crate_rule() {
        assert!(range_ok(LIMIT, 1) && range_ok(1, LIMIT - 1));
        assert!(!range_ok(0, 1) && !range_ok(LIMIT + 1, 1) && !range_ok(0x1000, LIMIT));
    }
}
