//! The lost-pages property (`tests/common/lost_case.rs`) under libFuzzer: the
//! input picks the strategy, the length, both offsets, and the lost pages and
//! their kind (UFFDIO_POISON or truncation) on each side. Any failure panics.
//!
//! Run: `cargo +nightly fuzz run lost_pages` (from the repository root).
#![no_main]
// As in the main workspace (its `[workspace.lints]`): a `// SAFETY:` comment on
// every unsafe block, here those of the tests/common modules included below.
#![deny(clippy::undocumented_unsafe_blocks)]

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/lost_case.rs"]
mod lost_case;
#[path = "../../tests/common/pages.rs"]
mod pages;

use common::PAGE;
use libfuzzer_sys::fuzz_target;
use lost_case::{LONGEST, Lost, run_case, world};
use pages::Backing;

/// Reads the input as a little-endian stream; missing bytes read as 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn lost(&mut self) -> Lost {
        let head = self.u8();
        let backing = if head & 1 == 0 {
            Backing::Uffd
        } else {
            Backing::File
        };
        let positions = (0..(head >> 1) % 4).map(|_| self.u16()).collect();
        Lost { backing, positions }
    }
}

fuzz_target!(|data: &[u8]| {
    if world().is_none() {
        return;
    }
    let mut input = Input(data);
    let strategies = mcsafe::Strategy::available();
    let strategy = strategies[input.u8() as usize % strategies.len()];
    let len = match input.u8() % 16 {
        0 => LONGEST - input.u16() as usize % PAGE,
        _ => input.u16() as usize % (3 * PAGE + 1),
    };
    let src_at = input.u16() as usize % (PAGE + 64);
    let dst_at = input.u16() as usize % (PAGE + 64);
    let src_lost = input.lost();
    let dst_lost = input.lost();
    if let Err(e) = run_case(strategy, len, src_at, dst_at, &src_lost, &dst_lost) {
        panic!(
            "{strategy} len {len} src_at {src_at} dst_at {dst_at} {src_lost:?} {dst_lost:?}: {e}"
        );
    }
});
