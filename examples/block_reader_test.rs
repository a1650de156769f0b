//! Testing your own code against lost pages with the `mcsafe::inject` kit.
//!
//! `BlockReader` stands for a user's code: it reads fixed-size blocks out of a
//! mapping (of a file, of pmem) with `mcsafe::copy_mc`, and must report a lost
//! block, by number, instead of dying. The checks below poison a block in the
//! middle of the mapping (`UFFDIO_POISON`, or a truncated file where the kernel
//! lacks it) and assert that exactly that block is reported and every other
//! block still reads.
//!
//!     cargo run --example block_reader_test     # prints what it checks
//!     cargo test --example block_reader_test    # the same checks, as tests
//!
//! (`cargo test` runs them too: the example is declared with `test = true`.)

use std::fmt;

use mcsafe::inject::{self, Method, TruncatedMapping, UffdPoisonMapping};

// ---- the user's code --------------------------------------------------------

/// Reads `block_size`-byte blocks from `len` bytes of mapped memory at `base`.
pub struct BlockReader {
    base: *const u8,
    len: usize,
    block_size: usize,
}

/// Why a block could not be read.
#[derive(Debug, PartialEq)]
pub enum BlockError {
    /// The block number is past the end.
    OutOfRange { block: usize },
    /// The memory behind the block is lost; `valid` bytes at its start were
    /// copied before the lost page.
    Lost {
        block: usize,
        valid: usize,
        fault: mcsafe::Fault,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange { block } => write!(f, "block {block} is out of range"),
            BlockError::Lost {
                block,
                valid,
                fault,
            } => {
                write!(f, "block {block} is lost after {valid} bytes: {fault}")
            }
        }
    }
}

impl BlockReader {
    /// # Safety
    /// `base..base+len` stays mapped while the reader lives. It may hold lost
    /// pages: it is read with `copy_mc` only, never through a reference.
    pub unsafe fn new(base: *const u8, len: usize, block_size: usize) -> BlockReader {
        BlockReader {
            base,
            len,
            block_size,
        }
    }

    pub fn blocks(&self) -> usize {
        self.len / self.block_size
    }

    pub fn read_block(&self, block: usize) -> Result<Vec<u8>, BlockError> {
        if block >= self.blocks() {
            return Err(BlockError::OutOfRange { block });
        }
        let mut buf = vec![0u8; self.block_size];
        let src = self.base.wrapping_add(block * self.block_size);
        // SAFETY: the block lies inside the mapping (checked above, and per
        // `new`'s contract); `buf` is ours.
        match unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), src, self.block_size) } {
            Ok(()) => Ok(buf),
            Err(fault) => Err(BlockError::Lost {
                block,
                valid: fault.copied(),
                fault,
            }),
        }
    }
}

// ---- its test, with the kit --------------------------------------------------

const BLOCK: usize = 16 * 1024;
const BLOCKS: usize = 6;
const BAD_BLOCK: usize = 3;

fn fill_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// Memory that holds `BLOCKS` blocks with one page lost inside block
/// `BAD_BLOCK` (or, without UFFDIO_POISON, everything from that page on), and
/// the page index that was lost. The guard keeps the memory alive.
enum Poisoned {
    Uffd(UffdPoisonMapping),
    Truncated(TruncatedMapping),
}

impl Poisoned {
    fn base(&self) -> *const u8 {
        match self {
            Poisoned::Uffd(m) => m.as_ptr(),
            Poisoned::Truncated(m) => m.as_ptr(),
        }
    }
}

/// A page in the middle of block `BAD_BLOCK`.
fn bad_page(page: usize) -> usize {
    (BAD_BLOCK * BLOCK + BLOCK / 2) / page
}

fn poisoned_blocks() -> (Poisoned, Method) {
    let page = page_size();
    let pages = BLOCKS * BLOCK / page;
    let fill = |base: *mut u8| {
        for i in 0..BLOCKS * BLOCK {
            // SAFETY: the mapping is ours and nothing is lost yet.
            unsafe { base.add(i).write(fill_byte(i)) };
        }
    };
    let caps = inject::capabilities();
    if caps.allows(Method::UffdPoison) {
        let map = UffdPoisonMapping::new(pages).expect("map");
        fill(map.as_ptr());
        map.poison(bad_page(page)).expect("poison");
        (Poisoned::Uffd(map), Method::UffdPoison)
    } else {
        eprintln!(
            "(UFFDIO_POISON not available: {}; truncating a file instead)",
            caps.check(Method::UffdPoison).unwrap_err()
        );
        let map = TruncatedMapping::new(pages).expect("map");
        fill(map.as_ptr());
        map.truncate_to(bad_page(page) * page).expect("truncate");
        (Poisoned::Truncated(map), Method::Truncate)
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Reads every block and checks what the reader says; returns the report lines.
fn check_block_reader() -> Vec<String> {
    let (memory, method) = poisoned_blocks();
    // SAFETY: `memory` outlives the reader; it is read only through copy_mc.
    let reader = unsafe { BlockReader::new(memory.base(), BLOCKS * BLOCK, BLOCK) };
    let page = page_size();
    let mut lines = vec![format!(
        "{BLOCKS} blocks of {BLOCK} bytes, page {} lost ({method})",
        bad_page(page)
    )];
    for block in 0..reader.blocks() {
        let lost_here = match method {
            Method::Truncate => block >= BAD_BLOCK,
            _ => block == BAD_BLOCK,
        };
        match reader.read_block(block) {
            Ok(data) => {
                assert!(!lost_here, "block {block} should be reported lost");
                let start = block * BLOCK;
                assert!(
                    data.iter()
                        .enumerate()
                        .all(|(i, &b)| b == fill_byte(start + i)),
                    "block {block} read wrong bytes"
                );
                lines.push(format!("block {block}: ok"));
            }
            Err(e) => {
                assert!(lost_here, "block {block} should read: {e}");
                let BlockError::Lost { valid, fault, .. } = &e else {
                    panic!("unexpected {e}");
                };
                // The bytes before the lost page are valid, exactly.
                let want = if block == BAD_BLOCK {
                    bad_page(page) * page - BAD_BLOCK * BLOCK
                } else {
                    0
                };
                assert_eq!(*valid, want, "block {block}");
                assert_eq!(
                    fault.kind(),
                    inject::capabilities().expected_kind(method),
                    "block {block}"
                );
                lines.push(format!("block {block}: {e}"));
            }
        }
    }
    assert!(matches!(
        reader.read_block(BLOCKS),
        Err(BlockError::OutOfRange { block: BLOCKS })
    ));
    lines
}

fn main() {
    for line in check_block_reader() {
        println!("{line}");
    }
    println!("the block reader reports the lost block and reads every other one");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_block_reader_reports_exactly_the_lost_block() {
        let lines = super::check_block_reader();
        assert!(lines.iter().any(|l| l.contains("is lost after")));
    }
}
