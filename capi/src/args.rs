//! Argument checks made before any call into the Rust API, so that bad input
//! from C gets `-EINVAL` and never reaches the API's panics.
//!
//! The rules are those the `mcsafe` crate documents for its panics (`copy_mc`,
//! `fill_mc`, `read_mc`, `crc32c_mc`, "# Panics"): with `len > 0`, a null
//! pointer, a range that starts or ends at or above 2^62 (which covers every
//! range that wraps or leaves user space), or overlapping buffers. The crate's
//! own hot-path check is a little looser at the top (it lets through a range
//! that starts exactly at 2^62, or ends above it: those fault with SIGSEGV, as
//! memcpy would); this one refuses every range the crate refuses, and those
//! too. If the crate's rules change, change [`USER_SPACE_END`] and these checks
//! with them and run `cargo test -p mcsafe-capi` (the unit tests below call the
//! Rust API on refused input, under `catch_unwind`, to prove that it refuses
//! it as well, and on accepted edges with real buffers).

/// Every user-space range ends at or below `1 << 62` (user space ends below
/// 2^57 on x86-64); the crate refuses ranges that start at or above it.
pub(crate) const USER_SPACE_END: usize = 1 << 62;

/// Whether `start..start + len` (`len > 0`) is acceptable: not null, and
/// ending at or below [`USER_SPACE_END`] without wrapping.
#[inline(always)]
pub(crate) fn range_ok(start: usize, len: usize) -> bool {
    start != 0 && len <= USER_SPACE_END && start <= USER_SPACE_END - len
}

/// Whether a copy of `len > 0` bytes between these pointers is acceptable:
/// both ranges acceptable (as [`range_ok`]), and not overlapping.
///
/// On the hot path of `mcsafe_copy`, so it is the crate's own refusal
/// (`ranges_are_bad` in src/copy.rs: null, outside the first 2^62 bytes, or
/// `|dst - src| < len`) written the same way, which lets the optimiser share
/// it with the crate's check that follows, plus the stricter end.
#[inline(always)]
pub(crate) fn copy_ok(dst: usize, src: usize, len: usize) -> bool {
    let outside = (dst.wrapping_sub(1) | src.wrapping_sub(1) | len) >= USER_SPACE_END;
    // When `outside` is false, nothing below wraps.
    let overlap = dst.wrapping_sub(src).wrapping_add(len - 1) < len.wrapping_mul(2).wrapping_sub(1);
    let past_end = dst.max(src).wrapping_add(len) > USER_SPACE_END;
    !(outside | overlap | past_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    /// Whether the Rust API panics (refuses) on a copy of these arguments.
    /// Only called with arguments that are refused before any access, or with
    /// real buffers.
    fn rust_refuses(dst: usize, src: usize, len: usize) -> bool {
        // SAFETY: either refused before touching memory, or real buffers.
        catch_unwind(|| unsafe { mcsafe::copy_mc(dst as *mut u8, src as *const u8, len) }).is_err()
    }

    #[test]
    fn refuses_what_the_rust_api_refuses() {
        let top = USER_SPACE_END;
        let refused = [
            (0, 0x1000, 1),
            (0x1000, 0, 1),
            (0x10000, 0x20000, top),
            (top + 1, 0x20000, 1),
            (0x10000, top + 4096, 1),
            (usize::MAX, 0x20000, 1),
            (0x10000, 0x10000, 1),
            (0x10000, 0x10fff, 0x1000),
            (0x10fff, 0x10000, 0x1000),
        ];
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for (dst, src, len) in refused {
            assert!(!copy_ok(dst, src, len), "{dst:#x} {src:#x} {len}");
            assert!(rust_refuses(dst, src, len), "{dst:#x} {src:#x} {len}");
        }
        std::panic::set_hook(previous);
        // Refused here though the crate's hot path lets them through (they
        // would fault with SIGSEGV there): not called.
        for (dst, src, len) in [(top, 0x20000, 1), (0x10000, top - 1, 2), (0x10000, 1, top)] {
            assert!(!copy_ok(dst, src, len), "{dst:#x} {src:#x} {len}");
        }
        assert!(copy_ok(top - 8, 0x10000, 8));
    }

    #[test]
    fn accepts_adjacent_buffers_as_the_rust_api_does() {
        let mut buf = vec![0u8; 64];
        let base = buf.as_mut_ptr() as usize;
        for (dst, src) in [(base, base + 32), (base + 32, base)] {
            assert!(copy_ok(dst, src, 32));
            assert!(!rust_refuses(dst, src, 32));
        }
        assert!(!copy_ok(base, base + 31, 32));
    }
}
