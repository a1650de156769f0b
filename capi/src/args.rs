//! Argument checks made before any call into the Rust API, so that bad input
//! from C gets `-EINVAL` and never reaches the API's panics.
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
/// at most [`LIMIT`], the length below it.
#[inline(always)]
pub(crate) fn range_ok(start: usize, len: usize) -> bool {
    (start.wrapping_sub(1) | len) < LIMIT
}

/// Whether a copy of `len > 0` bytes between these pointers is acceptable:
/// both ranges acceptable (as [`range_ok`]), and not overlapping (`|dst - src| < len`, in wrapping arithmetic that cannot wrap
/// once the first test passed).
#[inline(always)]
pub(crate) fn copy_ok(dst: usize, src: usize, len: usize) -> bool {
    let outside = (dst.wrapping_sub(1) | src.wrapping_sub(1) | len) >= LIMIT;
    let overlap = dst.wrapping_sub(src).wrapping_add(len - 1) < len.wrapping_mul(2).wrapping_sub(1);
    !(outside | overlap)
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
        let top = 1usize << 62;
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
        // The edges: a start at 2^62 or past 2^61, a range ending above 2^62, a
        // length of 2^61: refused here and by the crate.
        let edges = [
            (top, 0x20000, 1),
            (0x10000, top - 1, 2),
            (0x10000, 1, top),
            (LIMIT + 1, 0x20000, 1),
            (0x10000, LIMIT + 1, 1),
            (0x10000, 0x20000, LIMIT),
        ];
        std::panic::set_hook(Box::new(|_| {}));
        let crate_refuses: Vec<bool> = edges
            .iter()
            .map(|&(d, s, l)| rust_refuses(d, s, l))
            .collect();
        let _ = std::panic::take_hook();
        for ((dst, src, len), refused) in edges.into_iter().zip(crate_refuses) {
            assert!(!copy_ok(dst, src, len), "{dst:#x} {src:#x} {len}");
            assert!(refused, "the crate accepts {dst:#x} {src:#x} {len}");
        }
        assert!(copy_ok(LIMIT - 8, 0x10000, 8));
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
