//! mcsafe's benchmark harness, shared by `cargo bench --bench copy` (criterion),
//! `cargo bench --bench summary` and `mcsafe bench`.
//!
//! - [`comparators`]: what is measured: mcsafe's copies and what people use
//!   instead (glibc `memcpy`, `ptr::copy_nonoverlapping`, a sigsetjmp-guarded
//!   memcpy, `pread(2)`, a plain non-temporal loop);
//! - [`workload`]: where the bytes are: hot buffers, cold buffers walked
//!   through, a randomized production-like mix, a page-cache-hot file;
//! - [`measure`]: comparators measured side by side, interleaved, medians;
//! - [`summary`]: the table of size classes and the throughput plot;
//! - [`crc`]: the CRC32C table (mcsafe against the `crc32c` and `crc-fast`
//!   crates, and the one-pass copy-and-checksum), with issue 10's goals;
//! - [`lossy`]: the lossy copy's cost per lost page at 1 Ki to 256 Ki pages
//!   against the fault path, with issue 20's goals;
//! - [`tune`]: `mcsafe tune`, the fastest method per size on this machine and the
//!   `MCSAFE_TUNABLES` line that applies it.
//!
//! Change it, then run `cargo bench --bench summary -- --quick` (`-- --small` for
//! the small sizes alone), `cargo bench --bench crc -- --quick` for the CRC table,
//! `cargo bench --bench lossy -- --quick` for the lossy copy,
//! and `cargo test -p mcsafe-cli` (`mcsafe bench` runs this harness).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod comparators;
pub mod crc;
pub mod lossy;
pub mod measure;
pub mod summary;
pub mod tune;
pub mod workload;
