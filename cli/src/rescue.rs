//! `mcsafe rescue SRC DST`: copy through a read-only mapping with
//! `mcsafe::copy_mc`, skipping lost pages instead of dying, and write a map of
//! the good and lost ranges.
//!
//! # The map
//!
//! GNU ddrescue's mapfile format, so that its tools (`ddrescuelog`) read it:
//!
//! ```text
//! # Mapfile. Created by mcsafe rescue 0.1.0
//! # Command line: mcsafe rescue data.bin copy.bin
//! # current_pos  current_status  current_pass
//! 0x00000000     +               1
//! #      pos        size  status
//! 0x00000000  0x00002000  +
//! 0x00002000  0x00002000  -
//! 0x00004000  0x00002000  +
//! # lost ranges and why:
//! #   0x00002000  0x00002000  BUS_ADRERR: no memory at address
//! ```
//!
//! Lines starting with `#` are comments. The status line says the run is
//! finished (`+`, pass 1). Each data line is a range of the source: position
//! and size in bytes (hexadecimal), and `+` (copied) or `-` (lost: left as
//! zeros in DST). The ranges cover the source in order, without gaps. The
//! closing comments give the fault kind of each lost range.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use mcsafe::{FaultKind, Side};

use crate::progress::{Progress, human};
use crate::{EXIT_IO, EXIT_LOST, parse_bytes};

/// `rescue`'s command line.
#[derive(Debug)]
pub struct Options {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub map: Option<PathBuf>,
    pub size: Option<u64>,
    pub block: usize,
    pub progress: Option<bool>,
}

const DEFAULT_BLOCK: usize = 1 << 20;
/// Inputs at least this large get a progress bar when stderr is a terminal.
const PROGRESS_FROM: u64 = 16 << 20;

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut paths = Vec::new();
        let (mut map, mut size, mut block, mut progress) = (None, None, DEFAULT_BLOCK, None);
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--map" => map = Some(PathBuf::from(value("--map")?)),
                "--size" => size = Some(parse_bytes(&value("--size")?)?),
                "--block" => {
                    block = usize::try_from(parse_bytes(&value("--block")?)?)
                        .ok()
                        .filter(|&b| b > 0)
                        .ok_or("--block must be at least 1 byte")?
                }
                "--progress" => progress = Some(true),
                "--no-progress" => progress = Some(false),
                flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
                path => paths.push(PathBuf::from(path)),
            }
        }
        let [src, dst]: [PathBuf; 2] = paths
            .try_into()
            .map_err(|_| "rescue needs exactly two paths: SRC DST".to_string())?;
        Ok(Options {
            src,
            dst,
            map,
            size,
            block,
            progress,
        })
    }

    fn map_path(&self) -> PathBuf {
        self.map.clone().unwrap_or_else(|| {
            let mut name = self.dst.clone().into_os_string();
            name.push(".map");
            PathBuf::from(name)
        })
    }
}

/// A range of the source: copied, or lost with the kind of its fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub pos: u64,
    pub len: u64,
    pub lost: Option<FaultKind>,
}

/// What a rescue did.
#[derive(Debug, Default)]
pub struct Report {
    pub size: u64,
    pub ranges: Vec<Range>,
}

impl Report {
    fn push(&mut self, pos: u64, len: u64, lost: Option<FaultKind>) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            if last.lost == lost && last.pos + last.len == pos {
                last.len += len;
                return;
            }
        }
        self.ranges.push(Range { pos, len, lost });
    }

    pub fn lost_bytes(&self) -> u64 {
        self.ranges
            .iter()
            .filter(|r| r.lost.is_some())
            .map(|r| r.len)
            .sum()
    }

    pub fn lost_ranges(&self) -> impl Iterator<Item = &Range> {
        self.ranges.iter().filter(|r| r.lost.is_some())
    }
}

pub fn run(options: &Options) -> ExitCode {
    let started = Instant::now();
    let report = match rescue(options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("mcsafe rescue: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    let map_path = options.map_path();
    let command = format!(
        "mcsafe rescue {} {}",
        options.src.display(),
        options.dst.display()
    );
    if let Err(e) = fs::write(&map_path, mapfile(&report, &command)) {
        eprintln!(
            "mcsafe rescue: cannot write the map {}: {e}",
            map_path.display()
        );
        return ExitCode::from(EXIT_IO);
    }
    let seconds = started.elapsed().as_secs_f64();
    let lost = report.lost_bytes();
    let copied = report.size - lost;
    println!(
        "mcsafe rescue: {} -> {}",
        options.src.display(),
        options.dst.display()
    );
    println!(
        "  copied  {copied} of {} bytes ({:.2}%) in {seconds:.2} s ({}/s)",
        report.size,
        percent(copied, report.size),
        human((copied as f64 / seconds.max(1e-6)) as u64)
    );
    let lost_ranges = report.lost_ranges().count();
    if lost == 0 {
        println!("  lost    nothing");
    } else {
        println!(
            "  lost    {lost} bytes ({}) in {lost_ranges} range{}, left as zeros in the copy:",
            human(lost),
            if lost_ranges == 1 { "" } else { "s" }
        );
        for r in report.lost_ranges().take(10) {
            println!(
                "          {:#x}..{:#x}  {}",
                r.pos,
                r.pos + r.len,
                kind_name(r.lost)
            );
        }
        if lost_ranges > 10 {
            println!("          ... (all in the map)");
        }
    }
    println!("  map     {}", map_path.display());
    if lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_LOST)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn kind_name(kind: Option<FaultKind>) -> &'static str {
    match kind {
        None => "copied",
        Some(FaultKind::Poison) => "BUS_MCEERR_AR: hardware memory error",
        Some(FaultKind::ObjectError) => "BUS_OBJERR: backing object error",
        Some(_) => "BUS_ADRERR: no memory at address",
    }
}

/// The map of `report` in GNU ddrescue's mapfile format (see the module docs).
pub fn mapfile(report: &Report, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Mapfile. Created by mcsafe rescue {}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "# Command line: {command}");
    let _ = writeln!(out, "# current_pos  current_status  current_pass");
    let _ = writeln!(out, "0x{:08X}     +               1", report.size);
    let _ = writeln!(out, "#      pos        size  status");
    for r in &report.ranges {
        let status = if r.lost.is_some() { '-' } else { '+' };
        let _ = writeln!(out, "0x{:08X}  0x{:08X}  {status}", r.pos, r.len);
    }
    if report.lost_ranges().next().is_some() {
        let _ = writeln!(out, "# lost ranges and why:");
        for r in report.lost_ranges() {
            let _ = writeln!(
                out,
                "#   0x{:08X}  0x{:08X}  {}",
                r.pos,
                r.len,
                kind_name(r.lost)
            );
        }
    }
    out
}

/// The size of `file`: its length, or a block device's capacity, or a DAX
/// character device's size from sysfs.
fn source_size(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(meta.len());
    }
    if kind.is_block_device() {
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        let mut size = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 to the pointer.
        if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(size);
    }
    if kind.is_char_device() {
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let sysfs = format!("/sys/dev/char/{major}:{minor}/size");
        if let Ok(text) = fs::read_to_string(&sysfs) {
            if let Ok(size) = text.trim().parse() {
                return Ok(size);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot tell the size of the source: give --size",
    ))
}

/// A read-only shared mapping, unmapped on drop.
struct Mapped {
    base: *const u8,
    len: usize,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.base as *mut _, self.len) };
    }
}

fn map_source(file: &File, len: usize) -> io::Result<Mapped> {
    // SAFETY: a fresh read-only mapping of an open file; it is read only
    // through mcsafe::copy_mc, never through a Rust reference.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapped {
        base: base.cast(),
        len,
    })
}

fn context(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Copies `options.src` to `options.dst`, range by range; the good and lost ranges.
pub fn rescue(options: &Options) -> io::Result<Report> {
    let src_name = options.src.display().to_string();
    let dst_name = options.dst.display().to_string();
    let src = File::open(&options.src).map_err(context(format!("cannot open {src_name}")))?;
    let size = match options.size {
        Some(size) => size,
        None => source_size(&src).map_err(context(src_name.clone()))?,
    };
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&options.dst)
        .map_err(context(format!("cannot open {dst_name}")))?;
    if dst.metadata()?.file_type().is_file() {
        // Lost ranges stay holes: zeros, taking no space.
        dst.set_len(0)
            .and_then(|()| dst.set_len(size))
            .map_err(context(format!("cannot size {dst_name}")))?;
    }
    let mut report = Report {
        size,
        ranges: Vec::new(),
    };
    if size == 0 {
        return Ok(report);
    }
    let len = usize::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "source too large"))?;
    let map = map_source(&src, len).map_err(context(format!("cannot map {src_name}")))?;
    // SAFETY: isatty has no preconditions.
    let on_terminal = unsafe { libc::isatty(2) } == 1;
    let mut progress = Progress::new(
        size,
        options
            .progress
            .unwrap_or(on_terminal && size >= PROGRESS_FROM),
    );
    let mut buf = vec![0u8; options.block.min(len)];
    let mut at = 0usize;
    while at < len {
        let n = buf.len().min(len - at);
        let src_at = map.base.wrapping_add(at);
        // SAFETY: `src_at..+n` lies inside the live mapping and is read only by
        // copy_mc; `buf` is our own heap buffer. Lost pages raise SIGBUS, which
        // copy_mc turns into an error.
        let result = unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), src_at, n) };
        let (good, lost) = match result {
            Ok(()) => (n, None),
            Err(fault) => {
                if fault.side() != Side::Source {
                    return Err(io::Error::other(format!(
                        "unexpected fault in the copy buffer: {fault}"
                    )));
                }
                // The lost granule, as offsets in the source: from the first
                // byte not copied to the end of the granule (a huge page may
                // end past this block).
                let granule_start = fault.addr() & !(fault.granule() - 1);
                let granule_end = granule_start.saturating_add(fault.granule());
                let lost_end = (granule_end.saturating_sub(map.base as usize)).min(len);
                let lost_start = at + fault.copied();
                (
                    fault.copied(),
                    Some((lost_start, lost_end.max(lost_start + 1), fault.kind())),
                )
            }
        };
        dst.write_all_at(&buf[..good], at as u64)
            .map_err(context(format!("cannot write {dst_name}")))?;
        report.push(at as u64, good as u64, None);
        at += good;
        if let Some((start, end, kind)) = lost {
            report.push(start as u64, (end - start) as u64, Some(kind));
            at = end;
        }
        progress.update(at as u64, report.lost_bytes());
    }
    progress.finish(at as u64, report.lost_bytes());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_ddrescue_shaped_and_merges_neighbours() {
        let mut r = Report {
            size: 0x6000,
            ..Report::default()
        };
        r.push(0, 0x1000, None);
        r.push(0x1000, 0x1000, None);
        r.push(0x2000, 0x1000, Some(FaultKind::AddressError));
        r.push(0x3000, 0x1000, Some(FaultKind::AddressError));
        r.push(0x4000, 0, None);
        r.push(0x4000, 0x2000, None);
        assert_eq!(r.ranges.len(), 3);
        assert_eq!(r.lost_bytes(), 0x2000);
        let text = mapfile(&r, "mcsafe rescue a b");
        let data: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            data,
            [
                "0x00006000     +               1",
                "0x00000000  0x00002000  +",
                "0x00002000  0x00002000  -",
                "0x00004000  0x00002000  +",
            ]
        );
        assert!(text.contains("#   0x00002000  0x00002000  BUS_ADRERR"));
    }

    #[test]
    fn options_need_two_paths_and_known_flags() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = Options::parse(&args("--size 8K a --block 4K b --no-progress")).unwrap();
        assert_eq!(
            (o.size, o.block, o.progress),
            (Some(8192), 4096, Some(false))
        );
        assert_eq!(o.map_path(), PathBuf::from("b.map"));
        assert!(Options::parse(&args("a b c")).is_err());
        assert!(Options::parse(&args("a --size")).is_err());
        assert!(Options::parse(&args("--block 0 a b")).is_err());
        assert!(Options::parse(&args("--frob a b")).is_err());
    }
}
