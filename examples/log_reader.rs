//! A log-structured reader over an mmap'ed file that loses a page in the middle.
//!
//! The log is a sequence of records, each an 8-byte-aligned header (magic,
//! payload length, CRC32C of the payload) and its payload. The reader maps the
//! file and walks it through a `mcsafe::MappedRegion`: it verifies each payload
//! in place with `crc32c_at`, then copies it out. A record whose bytes are lost
//! is reported with its file offsets and skipped; when the lost bytes hold a
//! header, the reader scans past them for the next valid header. A plain reader
//! would have died of SIGBUS at the first lost byte.
//!
//! The lost page: one page of the mapping is replaced (`MAP_FIXED`) by a page
//! that lies past the end of an empty file, so touching it raises SIGBUS, as a
//! hardware-poisoned page does (`MADV_HWPOISON` needs `CAP_SYS_ADMIN` and a
//! kernel with memory-failure support).
//!
//!     cargo run --example log_reader
//!
//! `cargo test` runs this file's tests, which assert what `main` shows.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::ptr;

use mcsafe::{MappedRegion, RegionFault};

const MAGIC: u32 = 0x4743_4c4d; // "MLCG" in memory order
const HEADER: usize = 12;
const ALIGN: usize = 8;
const PAGE: usize = 4096;

/// What a walk over the log found.
#[derive(Debug, Default)]
struct Scan {
    /// Intact records: file offset and payload.
    records: Vec<(u64, Vec<u8>)>,
    /// Records (or stretches of the log) that could not be read: file offsets,
    /// and what was lost there.
    lost: Vec<(Range<u64>, &'static str)>,
    /// Records whose payload did not match its CRC (torn or corrupt writes).
    corrupt: Vec<u64>,
}

fn padded(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

/// The log's bytes: each payload behind its header, 8-byte aligned.
fn encode(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut log = Vec::new();
    for payload in payloads {
        log.extend_from_slice(&MAGIC.to_le_bytes());
        log.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        log.extend_from_slice(&mcsafe::crc32c(0, payload).to_le_bytes());
        log.extend_from_slice(payload);
        log.resize(padded(log.len()), 0);
    }
    log
}

/// A header read at `pos`: `Ok(None)` at the end of the log (no magic there).
fn header(region: &MappedRegion, pos: u64) -> std::io::Result<Option<(usize, u32)>> {
    let mut h = [0u8; HEADER];
    region.read_exact_at(pos, &mut h)?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let len = word(4) as usize;
    let fits = (pos as usize + HEADER)
        .checked_add(len)
        .is_some_and(|e| e <= region.len());
    Ok((word(0) == MAGIC && fits).then_some((len, word(8))))
}

/// Walks the whole log, skipping what is lost.
fn scan(region: &MappedRegion) -> Scan {
    let mut found = Scan::default();
    let mut pos = 0u64;
    while pos as usize + HEADER <= region.len() {
        let (len, crc) = match header(region, pos) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                // The header itself is lost: skip the lost range, then look for
                // the next header whose payload checks out.
                let lost = RegionFault::of(&e).expect("only lost pages fail here");
                let resume = resync(region, lost.lost_in_region().end);
                let skipped = region.file_offset() + pos..region.file_offset() + resume;
                found
                    .lost
                    .push((skipped, "a header; resynchronized at the next valid one"));
                pos = resume;
                continue;
            }
        };
        let at = region.file_offset() + pos;
        let body = pos + HEADER as u64;
        match region.crc32c_at(0, body, len) {
            Ok(c) if c == crc => {
                let mut payload = vec![0u8; len];
                region
                    .read_exact_at(body, &mut payload)
                    .expect("verified bytes read back");
                found.records.push((at, payload));
            }
            Ok(_) => found.corrupt.push(at),
            Err(e) => {
                let lost = RegionFault::of(&e).expect("only lost pages fail here");
                assert!(lost.offset() >= at);
                found
                    .lost
                    .push((at..at + (HEADER + len) as u64, "a record's payload"));
            }
        }
        pos += padded(HEADER + len) as u64;
    }
    found
}

/// The first aligned offset at or after `from` that holds a header whose
/// payload checks out, or the end of the region.
fn resync(region: &MappedRegion, from: u64) -> u64 {
    let mut pos = padded(from as usize) as u64;
    while pos as usize + HEADER <= region.len() {
        if let Ok(Some((len, crc))) = header(region, pos)
            && region
                .crc32c_at(0, pos + HEADER as u64, len)
                .is_ok_and(|c| c == crc)
        {
            return pos;
        }
        pos += ALIGN as u64;
    }
    region.len() as u64
}

/// The log file mapped shared and read-only, with page `lost_page` replaced by
/// a page that has no file behind it.
struct MappedLog {
    base: *mut u8,
    len: usize,
}

impl MappedLog {
    fn map(path: &Path, lost_page: Option<usize>) -> MappedLog {
        let file = File::open(path).expect("open the log");
        let len = file.metadata().expect("stat the log").len() as usize;
        // SAFETY: a fresh shared read-only mapping of an open file.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            base,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        let log = MappedLog {
            base: base.cast(),
            len,
        };
        if let Some(page) = lost_page {
            log.lose(page);
        }
        log
    }

    /// Replaces one page of the mapping by a page past the end of an empty
    /// memfd: touching it now raises SIGBUS (BUS_ADRERR).
    fn lose(&self, page: usize) {
        assert!((page + 1) * PAGE <= self.len);
        // SAFETY: an empty memfd mapped over one page of our own mapping.
        unsafe {
            let fd = OwnedFd::from_raw_fd(libc::memfd_create(c"lost".as_ptr(), 0));
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), PAGE as i64), 0);
            let at = self.base.add(page * PAGE).cast();
            let flags = libc::MAP_SHARED | libc::MAP_FIXED;
            let p = libc::mmap(at, PAGE, libc::PROT_READ, flags, fd.as_raw_fd(), 0);
            assert_eq!(p, at, "mmap: {}", std::io::Error::last_os_error());
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), 0), 0);
        }
    }

    fn region(&self) -> MappedRegion {
        // SAFETY: the mapping lives as long as `self`, which outlives the region
        // in every caller, and is only read through the region.
        unsafe { MappedRegion::from_raw_parts(self.base, self.len) }
    }
}

impl Drop for MappedLog {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Deterministic payloads of 1 to 700 bytes: `count` records.
fn payloads(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let len = 1 + (i * 7919) % 700;
            (0..len).map(|j| (i * 31 + j) as u8).collect()
        })
        .collect()
}

/// Writes the log to a temporary file and returns its path and the payloads.
fn write_log(name: &str, count: usize) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let path = std::env::temp_dir().join(format!("mcsafe-{name}-{}.log", std::process::id()));
    let payloads = payloads(count);
    let mut bytes = encode(&payloads);
    bytes.resize(bytes.len().div_ceil(PAGE) * PAGE, 0);
    File::create(&path)
        .and_then(|mut f| f.write_all(&bytes))
        .expect("write the log");
    (path, payloads)
}

fn main() {
    let (path, payloads) = write_log("example", 200);
    let log = MappedLog::map(&path, Some(9));
    println!(
        "log: {} records, {} bytes, mapped; page 9 (file bytes {}..{}) lost",
        payloads.len(),
        log.len,
        9 * PAGE,
        10 * PAGE
    );
    let before = mcsafe::stats().recovered;
    let found = scan(&log.region());
    println!("read {} intact records", found.records.len());
    for (range, what) in &found.lost {
        println!("skipped file bytes {range:?}: lost {what}");
    }
    println!("corrupt records: {}", found.corrupt.len());
    println!(
        "SIGBUS taken and recovered: {}",
        mcsafe::stats().recovered - before
    );
    drop(log);
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records a scan must return: every one that does not touch `lost`.
    fn untouched(payloads: &[Vec<u8>], lost: &Range<u64>) -> Vec<(u64, Vec<u8>)> {
        let mut at = 0u64;
        let mut out = Vec::new();
        for p in payloads {
            let end = at + (HEADER + p.len()) as u64;
            if end <= lost.start || at >= lost.end {
                out.push((at, p.clone()));
            }
            at += padded(HEADER + p.len()) as u64;
        }
        out
    }

    #[test]
    fn an_intact_log_reads_back_whole() {
        let (path, payloads) = write_log("intact", 120);
        let log = MappedLog::map(&path, None);
        let found = scan(&log.region());
        assert_eq!(found.records, untouched(&payloads, &(0..0)));
        assert!(found.lost.is_empty() && found.corrupt.is_empty());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_lost_page_costs_only_the_records_on_it() {
        let (path, payloads) = write_log("lost", 200);
        for page in [0, 3, 9, 17] {
            let log = MappedLog::map(&path, Some(page));
            let lost = (page * PAGE) as u64..((page + 1) * PAGE) as u64;
            let found = scan(&log.region());
            let want = untouched(&payloads, &lost);
            assert_eq!(found.records.len(), want.len(), "page {page}");
            assert_eq!(found.records, want, "page {page}");
            assert!(found.corrupt.is_empty(), "page {page}");
            // Every skipped range touches the lost page, and together they
            // cover every record that does.
            assert!(!found.lost.is_empty(), "page {page}");
            for (range, _) in &found.lost {
                assert!(
                    range.start < lost.end && lost.start < range.end,
                    "{range:?} page {page}"
                );
            }
        }
        std::fs::remove_file(path).unwrap();
    }
}
