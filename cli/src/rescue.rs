//! `mcsafe rescue SRC DST`: copy SRC through a read-only `MappedRegion` with
//! its lossy read, block by block: lost pages become holes (zeros) in DST and
//! ranges in a map, in GNU ddrescue's mapfile format (`docs/cli.md`).
//!
//! The region knows SRC (`with_file`), so a loss is called a loss only when it
//! is one: what the mapping cannot page in (`BUS_ADRERR`) is read again with
//! `pread(2)`. A hole of a sparse file on a full file system reads as zeros
//! (copied, left a hole in a regular DST, as `cp` leaves it); past the end of a
//! file that shrank the copy ends (DST and the map end where SRC ends now, as
//! ddrescue's map does at the end of its input); poison and what `pread(2)`
//! cannot read are lost. The summary names each.
//!
//! Nothing is touched before every check has passed: SRC is a file or a
//! device, not a directory; SRC, DST and the map are three different files
//! (same device and inode, through links too); an existing DST or map is
//! overwritten only with `--force`.
//!
//! Tests: `cli/tests/cli.rs` (end to end, each map checked by `ddrescuelog`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mcsafe::{FaultKind, MappedRegion, Side};

use crate::progress::{Clock, Progress, human, rate};
use crate::{EXIT_IO, EXIT_LOST, EXIT_USAGE, parse_bytes};

/// `rescue`'s command line (its help text is the `Rescue` variant's doc in
/// `main.rs`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file or device to rescue.
    pub src: PathBuf,
    /// Where the copy goes. Must not exist, unless --force.
    pub dst: PathBuf,
    /// Where the map of good and lost ranges goes [default: DST.map].
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Bytes to copy [default: the size of SRC]. Mapping past the end of a
    /// file loses the pages there. Takes K, M, G, T suffixes (powers of 1024).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub size: Option<u64>,
    /// Bytes per lossy read.
    #[arg(long, value_name = "BYTES", value_parser = parse_block, default_value = "1M")]
    pub block: usize,
    /// Overwrite DST and the map if they exist (a regular DST is truncated
    /// first, so that lost ranges read as zeros).
    #[arg(long, short)]
    pub force: bool,
    /// Always draw the progress bar on stderr [default: when stderr is a
    /// terminal and SRC is at least 16 MiB].
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_block(text: &str) -> Result<usize, String> {
    usize::try_from(parse_bytes(text)?)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| "must be at least 1 byte".into())
}

/// Inputs at least this large get a progress bar when stderr is a terminal.
const PROGRESS_FROM: u64 = 16 << 20;

impl Args {
    fn map_path(&self) -> PathBuf {
        self.map.clone().unwrap_or_else(|| {
            let mut name = self.dst.clone().into_os_string();
            name.push(".map");
            PathBuf::from(name)
        })
    }

    fn progress_wanted(&self, size: u64) -> bool {
        match (self.progress, self.no_progress) {
            (true, _) => true,
            (_, true) => false,
            _ => io::IsTerminal::is_terminal(&io::stderr()) && size >= PROGRESS_FROM,
        }
    }
}

/// Why a rescue did not run to the end: refused before touching anything, or
/// stopped by an I/O error. One line each.
#[derive(Debug)]
pub enum Failure {
    Refused(String),
    Io(String),
}

impl Failure {
    fn exit(&self) -> ExitCode {
        let (status, text) = match self {
            Failure::Refused(text) => (EXIT_USAGE, text),
            Failure::Io(text) => (EXIT_IO, text),
        };
        eprintln!("mcsafe rescue: {text}");
        ExitCode::from(status)
    }
}

/// `context` for an I/O error.
fn io(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure::Io(format!("{what}: {e}"))
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
    /// Holes the mapping could not page in, read as zeros with `pread(2)`,
    /// neighbours merged.
    pub holes: Vec<std::ops::Range<u64>>,
    /// Data the mapping could not page in that `pread(2)` read: bytes.
    pub reread: u64,
    /// Where SRC ended, when it ended before the size the rescue began with
    /// (it shrank, or `--size` reaches past it): (its end, that size).
    pub shrank: Option<(u64, u64)>,
    /// Why SRC could not be read again with `pread(2)`, if it could not.
    pub no_reread: Option<String>,
}

impl Report {
    fn push(&mut self, pos: u64, len: u64, lost: Option<FaultKind>) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.ranges.last_mut()
            && last.lost == lost
            && last.pos + last.len == pos
        {
            last.len += len;
            return;
        }
        self.ranges.push(Range { pos, len, lost });
    }

    pub fn lost_bytes(&self) -> u64 {
        self.lost_ranges().map(|r| r.len).sum()
    }

    pub fn lost_ranges(&self) -> impl Iterator<Item = &Range> {
        self.ranges.iter().filter(|r| r.lost.is_some())
    }

    /// A hole read as zeros at `range` of the source.
    fn hole(&mut self, range: std::ops::Range<u64>) {
        match self.holes.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.holes.push(range),
        }
    }

    pub fn hole_bytes(&self) -> u64 {
        self.holes.iter().map(|h| h.end - h.start).sum()
    }

    /// The source ends at `end`: nothing past it was read, lost or copied.
    fn end_at(&mut self, end: u64) {
        self.ranges.retain(|r| r.pos < end);
        if let Some(last) = self.ranges.last_mut() {
            last.len = last.len.min(end - last.pos);
        }
        self.shrank = Some((end, self.size));
        self.size = end;
    }
}

pub fn run(args: &Args) -> ExitCode {
    let command = command_line(std::env::args_os());
    let (report, map_path, took) = match rescue(args, &command) {
        Ok(done) => done,
        Err(failure) => return failure.exit(),
    };
    let lost = report.lost_bytes();
    let copied = report.size - lost;
    println!(
        "mcsafe rescue: {} -> {}",
        args.src.display(),
        args.dst.display()
    );
    println!(
        "  read    {} bytes in {:.2} s ({})",
        report.size,
        took.as_secs_f64(),
        rate(report.size, took)
    );
    println!(
        "  copied  {copied} bytes ({:.2}%)",
        percent(copied, report.size)
    );
    if let Some((end, began)) = report.shrank {
        println!(
            "  ended   {} ends at byte {end}, before the {began} bytes the rescue began with: it \
             shrank under the mapping (or --size reaches past it); the copy and the map end \
             there, nothing past it is lost",
            args.src.display()
        );
    }
    let holes = report.hole_bytes();
    if holes > 0 {
        println!(
            "  holes   {holes} bytes ({}) in {} hole{} read as zeros with read(2), as cp reads \
             them: the mapping could not page them in (a sparse file on a full file system); \
             not lost",
            human(holes),
            report.holes.len(),
            if report.holes.len() == 1 { "" } else { "s" }
        );
    }
    if report.reread > 0 {
        println!(
            "  reread  {} bytes the mapping could not page in, read with read(2); not lost",
            report.reread
        );
    }
    if let Some(why) = &report.no_reread {
        println!(
            "  note    {} could not be opened again ({why}): what the mapping could not page \
             in is counted lost, holes and the end of the file too",
            args.src.display()
        );
    }
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

/// The command line as a shell would read it back, for the map.
fn command_line(args: impl Iterator<Item = OsString>) -> String {
    let words: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
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

/// The map of `report` in GNU ddrescue's mapfile format (see `docs/cli.md`).
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
    if !report.holes.is_empty() {
        let _ = writeln!(
            out,
            "# holes read as zeros with read(2), not lost: 0x{:08X} bytes in {} ranges",
            report.hole_bytes(),
            report.holes.len()
        );
    }
    if let Some((end, began)) = report.shrank {
        let _ = writeln!(
            out,
            "# the source ended at 0x{end:08X}, before the 0x{began:08X} bytes the rescue began with"
        );
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

/// The size of the source: a file's length, a block device's capacity, or a
/// DAX character device's size from sysfs.
fn source_size(meta: &Metadata, file: &File) -> Result<u64, String> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(meta.len());
    }
    if kind.is_block_device() {
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        let mut size = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 to the pointer.
        if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size) } != 0 {
            return Err(format!(
                "cannot read the size of the block device: {}",
                io::Error::last_os_error()
            ));
        }
        return Ok(size);
    }
    if kind.is_char_device() {
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let sysfs = format!("/sys/dev/char/{major}:{minor}/size");
        if let Some(size) = fs::read_to_string(&sysfs)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Ok(size);
        }
    }
    Err("cannot tell the size of this kind of file: give --size".into())
}

/// The identity of an existing file (following links), or `None`.
fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether two paths name the same file: the same device and inode if both
/// exist, else the same place once their directories are resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => place(a) == place(b),
        _ => false,
    }
}

fn place(path: &Path) -> Option<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(dir).ok()?.join(path.file_name()?))
}

/// Every check before anything is written: the refusals of the module docs.
fn check(args: &Args, src_meta: &Metadata, map: &Path) -> Result<(), Failure> {
    let src = &args.src;
    if src_meta.is_dir() {
        return Err(Failure::Refused(format!(
            "{} is a directory: rescue copies a file or a device",
            src.display()
        )));
    }
    let refuse = |a: &Path, b: &Path, what: &str| {
        Failure::Refused(format!(
            "{} and {} are the same file ({what}): rescue never writes over what it reads \
             or has written",
            a.display(),
            b.display()
        ))
    };
    let src_id = (src_meta.dev(), src_meta.ino());
    if identity(&args.dst) == Some(src_id) {
        return Err(refuse(src, &args.dst, "SRC and DST"));
    }
    if identity(map) == Some(src_id) {
        return Err(refuse(src, map, "SRC and the map"));
    }
    if same_file(&args.dst, map) {
        return Err(refuse(&args.dst, map, "DST and the map"));
    }
    if !args.force {
        for (path, what) in [(&args.dst, "DST"), (&map.to_path_buf(), "the map")] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Failure::Refused(format!(
                    "{what} {} exists: give --force to overwrite it",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Opens DST for the copy: a new file of `size` bytes, or with `--force` an
/// existing one (a regular file truncated to `size`, a device as it is).
/// Returns it, and whether it is a regular file (whose unwritten ranges read as
/// zeros, and which may be cut).
fn open_destination(args: &Args, size: u64) -> Result<(File, bool), Failure> {
    let name = args.dst.display();
    let existing = fs::metadata(&args.dst).ok();
    let dst = match &existing {
        None => OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&args.dst),
        Some(_) => OpenOptions::new().write(true).open(&args.dst),
    }
    .map_err(io(format_args!("cannot open {name}")))?;
    let regular = existing.is_none_or(|m| m.is_file());
    if regular {
        // Lost ranges stay holes: zeros, taking no space.
        dst.set_len(0)
            .and_then(|()| dst.set_len(size))
            .map_err(io(format_args!("cannot size {name}")))?;
    }
    Ok((dst, regular))
}

/// The whole rescue: checks, the copy, the map. Returns the report, the
/// map's path and how long the copy took.
fn rescue(args: &Args, command: &str) -> Result<(Report, PathBuf, std::time::Duration), Failure> {
    let src_name = args.src.display();
    let src = File::open(&args.src).map_err(io(format_args!("cannot open {src_name}")))?;
    let src_meta = src
        .metadata()
        .map_err(io(format_args!("cannot stat {src_name}")))?;
    let map_path = args.map_path();
    check(args, &src_meta, &map_path)?;
    let size = match args.size {
        Some(size) => size,
        None => source_size(&src_meta, &src)
            .map_err(|e| Failure::Refused(format!("{src_name}: {e}")))?,
    };
    let len = usize::try_from(size)
        .map_err(|_| Failure::Refused(format!("{src_name}: too large to map ({size} bytes)")))?;
    let (dst, regular) = open_destination(args, size)?;
    let clock = Clock::start();
    let progress = Progress::new(size, args.progress_wanted(size), &clock);
    let mut report = if len == 0 {
        Report::default()
    } else {
        // SAFETY: the map goes straight into the region, which reads it only
        // through mcsafe; no slice of it is ever formed. The file may shrink
        // or go bad under it: that is what the region survives.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&src) }
            .map_err(io(format_args!("cannot map {src_name}")))?;
        let region = MappedRegion::from_mmap(map);
        // With its file, the region reads again what the mapping cannot page
        // in (holes, the file's end) before it calls it lost.
        match region.with_file(&src) {
            Ok(region) => copy_region(&region, &dst, regular, args, &progress)?,
            Err(e) => {
                // SAFETY: as above.
                let map = unsafe { memmap2::MmapOptions::new().len(len).map(&src) }
                    .map_err(io(format_args!("cannot map {src_name}")))?;
                let region = MappedRegion::from_mmap(map);
                Report {
                    no_reread: Some(e.to_string()),
                    ..copy_region(&region, &dst, regular, args, &progress)?
                }
            }
        }
    };
    if report.shrank.is_none() {
        report.size = size;
    } else if regular {
        // As cp would leave it: the copy ends where the source does.
        dst.set_len(report.size).map_err(io(format_args!(
            "cannot cut {} to the source's end",
            args.dst.display()
        )))?;
    }
    progress.set_total(report.size);
    progress.finish(report.size, report.lost_bytes());
    let took = clock.stop();
    fs::write(&map_path, mapfile(&report, command)).map_err(io(format_args!(
        "cannot write the map {}",
        map_path.display()
    )))?;
    Ok((report, map_path, took))
}

/// Copies the region to `dst` in blocks with the lossy read: good bytes are
/// written, lost ones left alone (holes in a new file), and so are holes read
/// as zeros where `dst` is a regular file (`regular`); stops where the source
/// ends.
fn copy_region(
    region: &MappedRegion,
    dst: &File,
    regular: bool,
    args: &Args,
    progress: &Progress,
) -> Result<Report, Failure> {
    let size = region.len() as u64;
    let write = |bytes: &[u8], at: u64| {
        dst.write_all_at(bytes, at)
            .map_err(io(format_args!("cannot write {}", args.dst.display())))
    };
    let mut report = Report {
        size,
        ..Report::default()
    };
    let mut buf = vec![0u8; args.block.min(region.len())];
    let mut at = 0u64;
    while at < size {
        let n = buf.len().min((size - at) as usize);
        let block = &mut buf[..n];
        let read = region
            .read_lossy_at(at, block)
            .map_err(io("cannot read the source"))?;
        let lost = read.lost();
        let done = read.bytes_read();
        // What to write: the block up to where it was read, less what was
        // lost, less the holes a regular file has already.
        let mut skip: Vec<std::ops::Range<usize>> = lost.iter().map(|l| l.range()).collect();
        for r in read.reread() {
            if r.is_hole() {
                report.hole(r.in_region());
                if regular {
                    skip.push(r.range());
                }
            } else {
                report.reread += r.len() as u64;
            }
        }
        skip.sort_by_key(|r| r.start);
        let mut good = 0;
        for s in &skip {
            write(&block[good..s.start], at + good as u64)?;
            good = s.end;
        }
        write(&block[good..done], at + good as u64)?;
        let mut copied = 0;
        for l in lost {
            if l.side() != Side::Source {
                return Err(Failure::Io(format!("the copy buffer itself faulted: {l}")));
            }
            report.push(at + copied as u64, (l.range().start - copied) as u64, None);
            report.push(l.in_region().start, l.len() as u64, Some(l.kind()));
            copied = l.range().end;
        }
        report.push(at + copied as u64, (done - copied) as u64, None);
        if let Some(end) = read.file_end() {
            report.end_at(end.min(at + done as u64));
            break;
        }
        let mut next = at + n as u64;
        // A lost huge page may go on past the block: skip the rest of it
        // rather than touch it again.
        if let Some(last) = lost.last().filter(|l| l.skip_to() > next) {
            report.push(next, last.skip_to() - next, Some(last.kind()));
            next = last.skip_to();
        }
        at = next;
        progress.update(at, report.lost_bytes());
    }
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
    fn the_command_line_is_quoted_as_a_shell_reads_it() {
        let args = ["mcsafe", "rescue", "--map", "my map", "a'b", "c"].map(OsString::from);
        assert_eq!(
            command_line(args.into_iter()),
            r#"mcsafe rescue --map 'my map' "a'b" c"#
        );
    }
}
