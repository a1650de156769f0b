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
//! Nothing is written before every check has passed: SRC is a regular file, a
//! block device or a DAX device (looked at before it is opened: opening a FIFO
//! would wait for a writer), not a file of size 0 that reads data (`/proc`);
//! SRC, DST and the map are three different files (same device and inode,
//! through links too); an existing DST or map is overwritten only with
//! `--force`, or gone on with under `--resume`; `MCSAFE_STRATEGY` can run
//! (`main.rs`). Then DST is opened (created), the map written (all non-tried,
//! `?`) before a byte is copied, DST sized, and the copy starts.
//!
//! As ddrescue does, the map is saved as the copy goes (every [`SAVE_EVERY`],
//! after syncing DST, so that it never claims more than DST holds), and when
//! SIGINT, SIGTERM or SIGHUP arrives: the copy stops between two blocks, the
//! map marks what was not read yet `?`, and the process dies of the signal.
//! `--resume` reads such a map and copies only its `?` ranges. A rescue that
//! fails or is stopped before it has read a byte removes the DST and map it
//! created; after that it keeps both, with the map saved.
//!
//! Tests: `cli/tests/cli.rs` (end to end, each map checked by `ddrescuelog`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcsafe::{FaultKind, MappedRegion, Side};

use crate::progress::{Clock, Progress, human, rate};
use crate::{EXIT_IO, EXIT_LOST, EXIT_USAGE, parse_bytes};

/// `rescue`'s command line (its help text is the `Rescue` variant's doc in
/// `main.rs`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file or device to rescue.
    pub src: PathBuf,
    /// Where the copy goes. Must not exist, unless --force or --resume.
    pub dst: PathBuf,
    /// Where the map of good and lost ranges goes [default: DST.map].
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Bytes to copy [default: the size of SRC]. Mapping past the end of a
    /// file loses the pages there. Takes K, M, G, T suffixes (powers of 1024).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub size: Option<u64>,
    /// Bytes per lossy read.
    #[arg(long, value_name = "BYTES", value_parser = parse_positive, default_value = "1M")]
    pub block: u64,
    /// Overwrite DST and the map if they exist (a regular DST is truncated
    /// first, so that lost ranges read as zeros).
    #[arg(long, short, conflicts_with = "resume")]
    pub force: bool,
    /// Go on from the map of an interrupted rescue: copy into the existing
    /// DST only the ranges the map marks non-tried (`?`); finished (`+`) and
    /// lost (`-`) ranges are not read again.
    #[arg(long)]
    pub resume: bool,
    /// Read at most BYTES per second (as ddrescue's --max-read-rate), to
    /// spare a failing disk or the machine's other work.
    #[arg(long, value_name = "BYTES", value_parser = parse_positive)]
    pub max_rate: Option<u64>,
    /// Always draw the progress bar on stderr [default: when stderr is a
    /// terminal and SRC is at least 16 MiB].
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_positive(text: &str) -> Result<u64, String> {
    Some(parse_bytes(text)?)
        .filter(|&b| b > 0 && usize::try_from(b).is_ok())
        .ok_or_else(|| "must be at least 1 byte".into())
}

/// Inputs at least this large get a progress bar when stderr is a terminal.
const PROGRESS_FROM: u64 = 16 << 20;

/// How often the map is saved while the copy runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

impl Args {
    fn map_path(&self) -> PathBuf {
        self.map
            .clone()
            .unwrap_or_else(|| suffixed(&self.dst, ".map"))
    }

    fn progress_wanted(&self, size: u64) -> bool {
        match (self.progress, self.no_progress) {
            (true, _) => true,
            (_, true) => false,
            _ => io::IsTerminal::is_terminal(&io::stderr()) && size >= PROGRESS_FROM,
        }
    }

    /// The command that goes on from where this one stopped.
    fn resume_command(&self, map: &Path) -> String {
        let mut words: Vec<OsString> = vec!["mcsafe".into(), "rescue".into(), "--resume".into()];
        if let Some(size) = self.size {
            words.extend(["--size".into(), size.to_string().into()]);
        }
        words.extend(["--map".into(), map.as_os_str().to_owned()]);
        words.extend([self.src.clone().into(), self.dst.clone().into()]);
        command_line(words.into_iter())
    }
}

/// `path` with `suffix` added to its name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Why a rescue did not run to the end: refused before touching anything, or
/// stopped by an I/O error. One line each.
#[derive(Debug)]
pub enum Failure {
    Refused(String),
    Io(String),
    /// Stopped by a signal before anything worth keeping was written.
    Interrupted(i32, String),
}

impl Failure {
    fn exit(&self) -> ExitCode {
        eprintln!("mcsafe rescue: {}", self.text());
        match self {
            Failure::Refused(_) => ExitCode::from(EXIT_USAGE),
            Failure::Io(_) => ExitCode::from(EXIT_IO),
            Failure::Interrupted(signal, _) => die_of(*signal),
        }
    }

    fn text(&self) -> &str {
        match self {
            Failure::Refused(text) | Failure::Io(text) | Failure::Interrupted(_, text) => text,
        }
    }

    /// The same failure, with `more` said after it.
    fn and(self, more: &str) -> Failure {
        let text = format!("{}; {more}", self.text());
        match self {
            Failure::Refused(_) => Failure::Refused(text),
            Failure::Io(_) => Failure::Io(text),
            Failure::Interrupted(signal, _) => Failure::Interrupted(signal, text),
        }
    }
}

/// `context` for an I/O error.
fn io(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure::Io(format!("{what}: {e}"))
}

/// What the map says of a range, as ddrescue's status characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `+`: copied (holes read as zeros included).
    Finished,
    /// `-`: lost, not written in DST; the fault's kind where known (the
    /// maps rescue writes say it in a comment).
    Lost(Option<FaultKind>),
    /// `?`: not read yet: what an interrupted rescue left.
    NonTried,
}

impl Status {
    fn symbol(self) -> char {
        match self {
            Status::Finished => '+',
            Status::Lost(_) => '-',
            Status::NonTried => '?',
        }
    }
}

/// A range of the source and what the map says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub pos: u64,
    pub len: u64,
    pub status: Status,
}

impl Range {
    fn end(&self) -> u64 {
        self.pos + self.len
    }
}

/// What a rescue did.
#[derive(Debug, Default)]
pub struct Report {
    pub size: u64,
    /// The map from 0 up to where the rescue has got, in order, without gaps.
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
    /// Bytes of the source this run went through (copied or found lost).
    pub read_now: u64,
    /// Bytes a resumed map had already finished or marked lost.
    pub done_before: u64,
}

impl Report {
    fn push(&mut self, pos: u64, len: u64, status: Status) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.ranges.last_mut()
            && last.status == status
            && last.end() == pos
        {
            last.len += len;
            return;
        }
        self.ranges.push(Range { pos, len, status });
    }

    pub fn lost_bytes(&self) -> u64 {
        self.lost_ranges().map(|r| r.len).sum()
    }

    pub fn lost_ranges(&self) -> impl Iterator<Item = &Range> {
        self.ranges
            .iter()
            .filter(|r| matches!(r.status, Status::Lost(_)))
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

    /// Where the rescue has got.
    fn end(&self) -> u64 {
        self.ranges.last().map_or(0, Range::end)
    }
}

/// The ranges of `plan` from `from` on, the first one cut there.
fn rest_of(plan: &[Range], from: u64) -> Vec<Range> {
    plan.iter()
        .filter(|r| r.end() > from)
        .map(|r| {
            let pos = r.pos.max(from);
            Range {
                pos,
                len: r.end() - pos,
                status: r.status,
            }
        })
        .collect()
}

/// SIGINT, SIGTERM and SIGHUP, caught: the copy stops between two blocks,
/// saves the map, and the process then dies of the signal. A second one
/// ends the process at once (the map as last saved is whole: saves are
/// atomic).
struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    fn catch() -> io::Result<Interrupt> {
        let which = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        for signal in Self::SIGNALS {
            // The conditional exit first: it sees `seen` before this signal sets it.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, seen.clone())?;
            signal_hook::flag::register(signal, seen.clone())?;
            signal_hook::flag::register_usize(signal, which.clone(), signal as usize)?;
        }
        Ok(Interrupt(which))
    }

    /// The signal that asked the rescue to stop, if one did.
    fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal as i32),
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Dies of `signal` as a process it killed would (a shell reports 128 +
/// its number), as ddrescue does once its map is saved.
fn die_of(signal: i32) -> ExitCode {
    let _ = io::stdout().flush();
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    // Only if the signal did not kill: the status a shell would show.
    ExitCode::from((128 + signal) as u8)
}

/// How a rescue ended, unless it failed.
struct Done {
    report: Report,
    map: PathBuf,
    took: Duration,
    /// The signal that stopped it before the end.
    interrupted: Option<i32>,
}

pub fn run(args: &Args) -> ExitCode {
    let command = command_line(std::env::args_os());
    let stop = match Interrupt::catch() {
        Ok(stop) => stop,
        Err(e) => return Failure::Io(format!("cannot catch SIGINT and SIGTERM: {e}")).exit(),
    };
    let done = match rescue(args, &command, &stop) {
        Ok(done) => done,
        Err(failure) => return failure.exit(),
    };
    let Done {
        report,
        map,
        took,
        interrupted,
    } = done;
    if let Some(signal) = interrupted {
        eprintln!(
            "mcsafe rescue: interrupted by {} after {} of {} bytes: the map {} marks the rest \
             non-tried (?); go on with: {}",
            signal_name(signal),
            report.end(),
            report.size,
            map.display(),
            args.resume_command(&map)
        );
        return die_of(signal);
    }
    summary(args, &report, &map, took)
}

/// The summary on stdout, and the exit status it comes to.
fn summary(args: &Args, report: &Report, map_path: &Path, took: Duration) -> ExitCode {
    let lost = report.lost_bytes();
    let copied = report.size - lost;
    println!(
        "mcsafe rescue: {} -> {}",
        args.src.display(),
        args.dst.display()
    );
    println!(
        "  read    {} bytes in {:.2} s ({})",
        report.read_now,
        took.as_secs_f64(),
        rate(report.read_now, took)
    );
    if args.resume {
        println!(
            "  resumed {} bytes finished or lost before, as the map said: not read again",
            report.done_before
        );
    }
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
                r.end(),
                lost_name(r.status)
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

/// The reasons the map's comments give, by kind.
const LOST_NAMES: [(FaultKind, &str); 3] = [
    (FaultKind::Poison, "BUS_MCEERR_AR: hardware memory error"),
    (FaultKind::ObjectError, "BUS_OBJERR: backing object error"),
    (FaultKind::AddressError, "BUS_ADRERR: no memory at address"),
];

fn lost_name(status: Status) -> &'static str {
    match status {
        Status::Lost(Some(kind)) => LOST_NAMES
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(LOST_NAMES[2].1, |(_, name)| name),
        Status::Lost(None) => "lost (the map resumed from gave no reason)",
        Status::Finished => "copied",
        Status::NonTried => "not read yet",
    }
}

/// The map of `report`, then of `rest` (the part of the plan not reached,
/// when the rescue stopped early), in GNU ddrescue's mapfile format (see
/// `docs/cli.md`).
pub fn mapfile(report: &Report, rest: &[Range], command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Mapfile. Created by mcsafe rescue {}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "# Command line: {command}");
    let ranges: Vec<&Range> = report.ranges.iter().chain(rest).collect();
    let (pos, status) = match ranges.iter().find(|r| r.status == Status::NonTried) {
        Some(r) => (r.pos, '?'),
        None => (report.size, '+'),
    };
    let _ = writeln!(out, "# current_pos  current_status  current_pass");
    let _ = writeln!(out, "0x{pos:08X}     {status}               1");
    let _ = writeln!(out, "#      pos        size  status");
    for r in &ranges {
        let _ = writeln!(
            out,
            "0x{:08X}  0x{:08X}  {}",
            r.pos,
            r.len,
            r.status.symbol()
        );
    }
    if status == '?' {
        let _ = writeln!(
            out,
            "# not finished: the ? ranges were not read yet; mcsafe rescue --resume reads them"
        );
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
    let lost: Vec<&&Range> = ranges
        .iter()
        .filter(|r| matches!(r.status, Status::Lost(_)))
        .collect();
    if !lost.is_empty() {
        let _ = writeln!(out, "# lost ranges and why:");
        for r in lost {
            let _ = writeln!(
                out,
                "#   0x{:08X}  0x{:08X}  {}",
                r.pos,
                r.len,
                lost_name(r.status)
            );
        }
    }
    out
}

/// A number of a map: `0x` hexadecimal or decimal, as ddrescue writes and
/// reads them.
fn map_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The ranges of a map in ddrescue's format, from 0 and without gaps: `+`
/// finished, `-` lost, `?` non-tried; ddrescue's own `*` (non-trimmed) and
/// `/` (non-scraped) are failed areas, kept as lost and not read again. The
/// kinds of lost ranges come back from the comments rescue writes.
pub fn read_map(text: &str) -> Result<Vec<Range>, String> {
    let mut kinds = HashMap::new();
    let mut status_line = false;
    let mut ranges: Vec<Range> = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if let Some(comment) = line.strip_prefix('#') {
            let f: Vec<&str> = comment.split_whitespace().collect();
            if let [pos, len, why, ..] = f[..]
                && let (Some(pos), Some(len)) = (map_number(pos), map_number(len))
                && let Some((kind, _)) = LOST_NAMES.iter().find(|(_, n)| n.starts_with(why))
            {
                kinds.insert((pos, len), *kind);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if !status_line {
            if f.len() < 2 || map_number(f[0]).is_none() {
                return Err(format!("line {number}: not a status line: {line:?}"));
            }
            status_line = true;
            continue;
        }
        let [pos, len, status] = f[..] else {
            return Err(format!("line {number}: not \"pos size status\": {line:?}"));
        };
        let (Some(pos), Some(len)) = (map_number(pos), map_number(len)) else {
            return Err(format!("line {number}: not numbers: {line:?}"));
        };
        let expected = ranges.last().map_or(0, Range::end);
        if pos != expected {
            return Err(format!(
                "line {number}: a range at 0x{pos:X} where 0x{expected:X} was expected (the \
                 ranges follow each other from 0)"
            ));
        }
        let status = match status {
            "+" => Status::Finished,
            "-" | "*" | "/" => Status::Lost(None),
            "?" => Status::NonTried,
            _ => return Err(format!("line {number}: unknown status {status:?}")),
        };
        if pos.checked_add(len).is_none() {
            return Err(format!("line {number}: a range past 2^64: {line:?}"));
        }
        if len > 0 {
            ranges.push(Range { pos, len, status });
        }
    }
    if !status_line {
        return Err("no status line: not a ddrescue map".into());
    }
    for r in &mut ranges {
        if r.status == Status::Lost(None) {
            r.status = Status::Lost(kinds.get(&(r.pos, r.len)).copied());
        }
    }
    Ok(ranges)
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
    if let Some(size) = fs::read_to_string(char_sysfs(meta, "size"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        return Ok(size);
    }
    Err("cannot tell the size of this kind of file: give --size".into())
}

/// A file of a character device's directory in sysfs.
fn char_sysfs(meta: &Metadata, file: &str) -> String {
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    format!("/sys/dev/char/{major}:{minor}/{file}")
}

/// Refuses a source that is not a regular file, a block device or a DAX
/// character device: what a mapping cannot read (a FIFO, a socket, most
/// character devices) or is not a file (a directory).
fn refuse_kind(src: &Path, meta: &Metadata) -> Result<(), Failure> {
    let kind = meta.file_type();
    let what = if kind.is_file() || kind.is_block_device() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (a named pipe: it cannot be mapped, nor read twice)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        let subsystem = fs::read_link(char_sysfs(meta, "subsystem")).ok();
        if subsystem.is_some_and(|s| s.file_name().is_some_and(|n| n == "dax")) {
            return Ok(());
        }
        "a character device that is not a DAX device"
    } else {
        "neither a file nor a device"
    };
    Err(Failure::Refused(format!(
        "{} is {what}: rescue copies a regular file, a block device or a DAX device",
        src.display()
    )))
}

/// Refuses a regular file of size 0 that reads data: a file made as it is
/// read (`/proc`, and the like), which a mapping of its size would copy as
/// nothing at all.
fn refuse_generated(src: &Path, meta: &Metadata, file: &File) -> Result<(), Failure> {
    if !meta.is_file() || meta.len() != 0 {
        return Ok(());
    }
    let mut byte = [0u8; 1];
    match file.read_at(&mut byte, 0) {
        Ok(n) if n > 0 => Err(Failure::Refused(format!(
            "{} says it is 0 bytes long but reads data: a file made as it is read (as in \
             /proc), which a copy through a mapping cannot read; copy it with cp or cat",
            src.display()
        ))),
        _ => Ok(()),
    }
}

/// The identity of an existing file (following links), or `None`.
fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether two paths name the same file: the same device and inode if both
/// exist, else the same place once their directories are resolved (two paths
/// in directories that do not exist are not the same file: nothing is).
fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => matches!((place(a), place(b)), (Some(x), Some(y)) if x == y),
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

/// Every check of the three paths before anything is written: the refusals
/// of the module docs.
fn check(args: &Args, src_meta: &Metadata, map: &Path, tmp: &Path) -> Result<(), Failure> {
    let src = &args.src;
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
    if same_file(&args.dst, tmp) || fs::symlink_metadata(tmp).is_ok() {
        return Err(Failure::Refused(format!(
            "{} exists or is DST: rescue saves the map through it (rename it, or remove it if a \
             rescue killed while saving its map left it)",
            tmp.display()
        )));
    }
    let exists = |path: &Path| fs::symlink_metadata(path).is_ok();
    let (dst, map_name) = (args.dst.display(), map.display());
    if args.resume {
        if !exists(map) {
            return Err(Failure::Refused(format!(
                "the map {map_name} does not exist: nothing to resume (without --resume, a new \
                 rescue starts)"
            )));
        }
        if !exists(&args.dst) {
            return Err(Failure::Refused(format!(
                "DST {dst} does not exist: --resume goes on writing the copy its map describes"
            )));
        }
    } else if !args.force {
        if exists(&args.dst) {
            return Err(Failure::Refused(format!(
                "DST {dst} exists: give --force to overwrite it"
            )));
        }
        if exists(map) {
            return Err(Failure::Refused(format!(
                "the map {map_name} exists: give --resume to go on from it, or --force to start \
                 over"
            )));
        }
    }
    Ok(())
}

/// The plan of a resumed rescue: the ranges of its map, and past the map's
/// end, if SRC is longer now, a non-tried range. Also the map's end.
fn resume_plan(map: &Path, size: u64) -> Result<(Vec<Range>, u64), Failure> {
    let name = map.display();
    let text = fs::read_to_string(map).map_err(io(format_args!("cannot read the map {name}")))?;
    let mut plan = read_map(&text).map_err(|e| {
        Failure::Refused(format!(
            "the map {name}, {e}: not a map --resume can go on from"
        ))
    })?;
    let end = plan.last().map_or(0, Range::end);
    if end > size {
        return Err(Failure::Refused(format!(
            "the map {name} covers {end} bytes, more than the {size} to copy: is it SRC's map? \
             (--size sets the size)"
        )));
    }
    if end < size {
        plan.push(Range {
            pos: end,
            len: size - end,
            status: Status::NonTried,
        });
    }
    Ok((plan, end))
}

/// Saves the map: atomically (a new file beside it, renamed over it), after
/// syncing DST, so that the map on disk is always whole and never claims
/// more than DST holds.
struct Saver {
    path: PathBuf,
    tmp: PathBuf,
    command: String,
    last: Instant,
}

impl Saver {
    fn due(&self) -> bool {
        self.last.elapsed() >= SAVE_EVERY
    }

    /// Writes the map of `report` and `rest` (see [`mapfile`]), syncing `dst`
    /// (named `dst_name`) first if given.
    fn save(
        &mut self,
        report: &Report,
        rest: &[Range],
        dst: Option<(&File, &Path)>,
    ) -> Result<(), Failure> {
        if let Some((dst, name)) = dst {
            dst.sync_data()
                .map_err(io(format_args!("cannot sync {}", name.display())))?;
        }
        let text = mapfile(report, rest, &self.command);
        let mut created = false;
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.tmp)?;
            created = true;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&self.tmp, &self.path)
        })();
        self.last = Instant::now();
        written.map_err(|e| {
            if created {
                let _ = fs::remove_file(&self.tmp);
            }
            Failure::Io(format!("cannot write the map {}: {e}", self.path.display()))
        })
    }
}

/// Maps SRC and gives it to a region that reads again with `pread(2)` what
/// the mapping cannot page in; returns why it cannot, if it cannot (the
/// region then reads through the mapping alone).
fn map_source(
    src: &File,
    len: usize,
    name: &Path,
) -> Result<(MappedRegion, Option<String>), Failure> {
    let map = || {
        // SAFETY: the map goes straight into the region, which reads it only
        // through mcsafe; no slice of it is ever formed. The file may shrink
        // or go bad under it: that is what the region survives.
        unsafe { memmap2::MmapOptions::new().len(len).map(src) }
            .map(MappedRegion::from_mmap)
            .map_err(io(format_args!("cannot map {}", name.display())))
    };
    // With its file, the region reads again what the mapping cannot page in
    // (holes, the file's end) before it calls it lost.
    match map()?.with_file(src) {
        Ok(region) => Ok((region, None)),
        Err(e) => Ok((map()?, Some(e.to_string()))),
    }
}

/// Opens DST for the copy: a new file, or an existing one (with `--force` or
/// `--resume`). Returns it, whether it is a regular file (whose unwritten
/// ranges read as zeros, and which may be cut), and whether this run
/// created it.
fn open_destination(args: &Args) -> Result<(File, bool, bool), Failure> {
    let existing = fs::metadata(&args.dst).ok();
    let dst = match &existing {
        None => OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&args.dst),
        Some(_) => OpenOptions::new().write(true).open(&args.dst),
    }
    .map_err(io(format_args!("cannot open {}", args.dst.display())))?;
    let regular = existing.as_ref().is_none_or(Metadata::is_file);
    Ok((dst, regular, existing.is_none()))
}

/// The whole rescue: checks, the copy, the map. Returns how it ended.
fn rescue(args: &Args, command: &str, stop: &Interrupt) -> Result<Done, Failure> {
    let src_name = args.src.display();
    // What SRC is, before opening it: opening a FIFO waits for a writer, and
    // some devices act when opened.
    let path_meta = fs::metadata(&args.src).map_err(io(format_args!("cannot open {src_name}")))?;
    refuse_kind(&args.src, &path_meta)?;
    let src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&args.src)
        .map_err(io(format_args!("cannot open {src_name}")))?;
    let src_meta = src
        .metadata()
        .map_err(io(format_args!("cannot stat {src_name}")))?;
    // Again, on what was opened: the path may have changed in between.
    refuse_kind(&args.src, &src_meta)?;
    refuse_generated(&args.src, &src_meta, &src)?;
    let map_path = args.map_path();
    let tmp = suffixed(&map_path, ".tmp");
    check(args, &src_meta, &map_path, &tmp)?;
    let size = match args.size {
        Some(size) => size,
        None => source_size(&src_meta, &src)
            .map_err(|e| Failure::Refused(format!("{src_name}: {e}")))?,
    };
    let len = usize::try_from(size)
        .map_err(|_| Failure::Refused(format!("{src_name}: too large to map ({size} bytes)")))?;
    let (plan, map_end) = if args.resume {
        resume_plan(&map_path, size)?
    } else {
        let all = Range {
            pos: 0,
            len: size,
            status: Status::NonTried,
        };
        (if size == 0 { vec![] } else { vec![all] }, 0)
    };
    // A resumed regular DST holds what its map says was done (ddrescue's
    // own DST ends where its last write did), and nothing past the map.
    let has_data_to = plan
        .iter()
        .filter(|r| r.status != Status::NonTried)
        .map(Range::end)
        .max()
        .unwrap_or(0);
    if args.resume
        && let Ok(meta) = fs::metadata(&args.dst)
        && meta.is_file()
        && !(has_data_to..=map_end).contains(&meta.len())
    {
        return Err(Failure::Refused(format!(
            "DST {} is {} bytes, and its map {} describes a copy of {map_end} bytes with data \
             up to byte {has_data_to}: not the copy this map describes",
            args.dst.display(),
            meta.len(),
            map_path.display()
        )));
    }
    let region = match len {
        0 => None,
        _ => Some(map_source(&src, len, &args.src)?),
    };

    // From here on files are written: DST opened (created), the map.
    let (dst, regular, created) = open_destination(args)?;
    let map_existed = fs::symlink_metadata(&map_path).is_ok();
    // What a rescue that stops before it has read a byte leaves: nothing it
    // created.
    let clean_up = |failure: Failure, map_too: bool| {
        if created {
            let _ = fs::remove_file(&args.dst);
        }
        if map_too && !map_existed {
            let _ = fs::remove_file(&map_path);
        }
        failure
    };
    let mut saver = Saver {
        path: map_path.clone(),
        tmp,
        command: command.into(),
        last: Instant::now(),
    };
    let mut report = Report {
        size,
        no_reread: region.as_ref().and_then(|(_, why)| why.clone()),
        done_before: plan
            .iter()
            .filter(|r| r.status != Status::NonTried)
            .map(|r| r.len)
            .sum(),
        ..Report::default()
    };
    saver
        .save(&report, &plan, None)
        .map_err(|f| clean_up(f, false))?;
    let sized = if !regular {
        Ok(())
    } else if !args.resume {
        // Lost ranges stay holes: zeros, taking no space.
        dst.set_len(0).and_then(|()| dst.set_len(size))
    } else {
        // A resumed DST is only lengthened, never cut.
        dst.metadata().and_then(|m| match m.len() < size {
            true => dst.set_len(size),
            false => Ok(()),
        })
    };
    sized
        .map_err(io(format_args!("cannot size {}", args.dst.display())))
        .map_err(|f| clean_up(f, true))?;

    let todo: u64 = plan
        .iter()
        .filter(|r| r.status == Status::NonTried)
        .map(|r| r.len)
        .sum();
    let clock = Clock::start();
    let progress = Progress::new(todo, args.progress_wanted(todo), &clock);
    let mut copy = Copy {
        args,
        dst: &dst,
        regular,
        progress: &progress,
        stop,
        started: Instant::now(),
        buf: vec![0u8; (args.block as usize).min(len)],
    };
    let halted = copy.plan(
        region.as_ref().map(|(r, _)| r),
        &plan,
        &mut report,
        &mut saver,
    );
    let dst_named = Some((&dst, args.dst.as_path()));
    let resume_hint = format!(
        "DST and the map are kept; go on with: {}",
        args.resume_command(&map_path)
    );
    match halted {
        Ok(()) => {}
        Err(halt) if report.read_now == 0 && created => {
            // Stopped before a byte was read: nothing worth keeping.
            return match halt {
                Halt::Failed(failure) => Err(clean_up(failure, true)),
                Halt::Signal(signal) => Err(clean_up(
                    Failure::Interrupted(
                        signal,
                        format!(
                            "interrupted by {} before a byte was read: DST and the map removed",
                            signal_name(signal)
                        ),
                    ),
                    true,
                )),
            };
        }
        Err(Halt::Failed(failure)) => {
            let rest = rest_of(&plan, report.end());
            return Err(match saver.save(&report, &rest, dst_named) {
                Ok(()) => failure.and(&resume_hint),
                Err(also) => failure.and(&format!(
                    "and {}; DST is kept, and the map as last saved stays valid",
                    also.text()
                )),
            });
        }
        Err(Halt::Signal(signal)) => {
            let rest = rest_of(&plan, report.end());
            saver.save(&report, &rest, dst_named)?;
            return Ok(Done {
                report,
                map: map_path,
                took: clock.stop(),
                interrupted: Some(signal),
            });
        }
    }
    if report.shrank.is_some() && regular {
        // As cp would leave it: the copy ends where the source does.
        dst.set_len(report.size).map_err(io(format_args!(
            "cannot cut {} to the source's end",
            args.dst.display()
        )))?;
    }
    progress.set_total(report.read_now);
    progress.finish(report.read_now, report.lost_bytes());
    let took = clock.stop();
    saver.save(&report, &[], dst_named)?;
    Ok(Done {
        report,
        map: map_path,
        took,
        interrupted: None,
    })
}

/// Why the copy stopped before the end of its plan.
enum Halt {
    Signal(i32),
    Failed(Failure),
}

/// The copy loop's state.
struct Copy<'a> {
    args: &'a Args,
    dst: &'a File,
    regular: bool,
    progress: &'a Progress,
    stop: &'a Interrupt,
    started: Instant,
    buf: Vec<u8>,
}

impl Copy<'_> {
    /// Goes through `plan`: reads its non-tried ranges from `region`, keeps
    /// the others as they are; saves the map as it goes.
    fn plan(
        &mut self,
        region: Option<&MappedRegion>,
        plan: &[Range],
        report: &mut Report,
        saver: &mut Saver,
    ) -> Result<(), Halt> {
        for (i, r) in plan.iter().enumerate() {
            match (r.status, region) {
                (Status::NonTried, Some(region)) => {
                    self.range(region, r.pos..r.end(), &plan[i..], report, saver)?;
                }
                (status, _) => report.push(r.pos, r.len, status),
            }
            if report.shrank.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Copies `range` of the region to DST in blocks with the lossy read:
    /// good bytes are written, lost ones left alone (holes in a new file),
    /// and so are holes read as zeros where DST is a regular file; stops
    /// where the source ends. `rest` is the plan from this range on.
    fn range(
        &mut self,
        region: &MappedRegion,
        range: std::ops::Range<u64>,
        rest: &[Range],
        report: &mut Report,
        saver: &mut Saver,
    ) -> Result<(), Halt> {
        let (dst, name) = (self.dst, self.args.dst.display());
        let write = |bytes: &[u8], at: u64| {
            dst.write_all_at(bytes, at)
                .map_err(io(format_args!("cannot write {name}")))
                .map_err(Halt::Failed)
        };
        let mut at = range.start;
        while at < range.end {
            if let Some(signal) = self.stop.signal() {
                return Err(Halt::Signal(signal));
            }
            let n = self.buf.len().min((range.end - at) as usize);
            let block = &mut self.buf[..n];
            let read = region
                .read_lossy_at(at, block)
                .map_err(io("cannot read the source"))
                .map_err(Halt::Failed)?;
            let lost = read.lost();
            let done = read.bytes_read();
            // What to write: the block up to where it was read, less what was
            // lost, less the holes a regular file has already.
            let mut skip: Vec<std::ops::Range<usize>> = lost.iter().map(|l| l.range()).collect();
            for r in read.reread() {
                if r.is_hole() {
                    report.hole(r.in_region());
                    if self.regular {
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
                    return Err(Halt::Failed(Failure::Io(format!(
                        "the copy buffer itself faulted: {l}"
                    ))));
                }
                report.push(
                    at + copied as u64,
                    (l.range().start - copied) as u64,
                    Status::Finished,
                );
                report.push(
                    l.in_region().start,
                    l.len() as u64,
                    Status::Lost(Some(l.kind())),
                );
                copied = l.range().end;
            }
            report.push(at + copied as u64, (done - copied) as u64, Status::Finished);
            if let Some(end) = read.file_end() {
                let end = end.min(at + done as u64);
                report.read_now += end.saturating_sub(at);
                report.end_at(end);
                return Ok(());
            }
            let mut next = at + n as u64;
            // A lost huge page may go on past the block: skip the rest of it
            // (in this range) rather than touch it again.
            if let Some(last) = lost.last().filter(|l| l.skip_to() > next) {
                let to = last.skip_to().min(range.end);
                report.push(next, to - next, Status::Lost(Some(last.kind())));
                next = to;
            }
            report.read_now += next - at;
            at = next;
            self.progress.update(report.read_now, report.lost_bytes());
            self.pace(report.read_now)?;
            if saver.due() {
                saver
                    .save(report, &rest_of(rest, at), Some((dst, &self.args.dst)))
                    .map_err(Halt::Failed)?;
            }
        }
        Ok(())
    }

    /// Waits, where `--max-rate` asks for it, until `read` bytes are due;
    /// a signal ends the wait.
    fn pace(&self, read: u64) -> Result<(), Halt> {
        let Some(rate) = self.args.max_rate else {
            return Ok(());
        };
        let due = Duration::from_secs_f64(read as f64 / rate as f64);
        loop {
            if let Some(signal) = self.stop.signal() {
                return Err(Halt::Signal(signal));
            }
            let now = self.started.elapsed();
            if now >= due {
                return Ok(());
            }
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
        }
    }
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
        let adrerr = Status::Lost(Some(FaultKind::AddressError));
        r.push(0, 0x1000, Status::Finished);
        r.push(0x1000, 0x1000, Status::Finished);
        r.push(0x2000, 0x1000, adrerr);
        r.push(0x3000, 0x1000, adrerr);
        r.push(0x4000, 0, Status::Finished);
        r.push(0x4000, 0x2000, Status::Finished);
        assert_eq!(r.ranges.len(), 3);
        assert_eq!(r.lost_bytes(), 0x2000);
        let text = mapfile(&r, &[], "mcsafe rescue a b");
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
        // Read back: the same ranges, the kind from the comment.
        assert_eq!(read_map(&text).unwrap(), r.ranges);
    }

    #[test]
    fn an_interrupted_map_marks_the_rest_non_tried_and_reads_back() {
        let mut r = Report {
            size: 0x5000,
            ..Report::default()
        };
        let poison = Status::Lost(Some(FaultKind::Poison));
        r.push(0, 0x1000, Status::Finished);
        r.push(0x1000, 0x1000, poison);
        let plan = [
            Range {
                pos: 0,
                len: 0x4000,
                status: Status::NonTried,
            },
            Range {
                pos: 0x4000,
                len: 0x1000,
                status: Status::Lost(None),
            },
        ];
        let rest = rest_of(&plan, r.end());
        let text = mapfile(&r, &rest, "mcsafe rescue a b");
        let data: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            data,
            [
                "0x00002000     ?               1",
                "0x00000000  0x00001000  +",
                "0x00001000  0x00001000  -",
                "0x00002000  0x00002000  ?",
                "0x00004000  0x00001000  -",
            ]
        );
        let back = read_map(&text).unwrap();
        assert_eq!(back[..2], r.ranges[..]);
        assert_eq!(back[2..], rest[..]);
    }

    #[test]
    fn a_map_that_is_not_whole_is_refused_with_its_line() {
        let head = "# c\n0x0 + 1\n";
        for (body, says) in [
            (
                "0x0 0x10 +\n0x20 0x10 +\n",
                "line 4: a range at 0x20 where 0x10",
            ),
            ("0x10 0x10 +\n", "line 3: a range at 0x10 where 0x0"),
            ("0x0 0x10 x\n", "line 3: unknown status \"x\""),
            ("0x0 0x10\n", "line 3: not \"pos size status\""),
            ("0x0 zz +\n", "line 3: not numbers"),
        ] {
            let e = read_map(&format!("{head}{body}")).unwrap_err();
            assert!(e.starts_with(says), "{e}");
        }
        assert!(read_map("# only comments\n").is_err());
        assert!(
            read_map("garbage here\n")
                .unwrap_err()
                .contains("not a status line")
        );
        // ddrescue's own failed areas are kept as lost; decimal numbers read.
        let ranges = read_map("0 ? 1\n0 16 *\n16 16 /\n32 16 ?\n").unwrap();
        assert_eq!(
            ranges.iter().map(|r| r.status).collect::<Vec<_>>(),
            [Status::Lost(None), Status::Lost(None), Status::NonTried]
        );
    }

    #[test]
    fn paths_in_directories_that_do_not_exist_are_not_the_same_file() {
        let missing = Path::new("/nonexistent-mcsafe-dir/copy.bin");
        assert!(!same_file(missing, &suffixed(missing, ".map")));
        let here = std::env::temp_dir().join("mcsafe-never-created");
        assert!(same_file(&here, &here));
        assert!(!same_file(&here, &suffixed(&here, ".map")));
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
