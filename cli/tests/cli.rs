//! The `mcsafe` binary end to end: `rescue` over a sparse file on a full tmpfs
//! (holes the mapping cannot page in, `BUS_ADRERR`, read as zeros with
//! `read(2)`: nothing lost, the same bytes as `cp`), past the end (a mapping
//! longer than the file, as after a truncation: a short copy, not a loss), and,
//! where the kernel allows it, hardware-poisoned pages (`MADV_HWPOISON`,
//! `BUS_MCEERR_AR`: lost, exit 1); what it refuses
//! before touching anything (SRC and DST the same file, through links too; an
//! existing DST or map without `--force`; a directory); `--help`, `--version`,
//! one-line errors and exit statuses; the progress bar; `probe`; `bench`.
//! Every map a test writes is read back by GNU `ddrescuelog` (Debian package
//! `gddrescue`; CI installs it; elsewhere that check prints NOT RUN and the
//! test goes on with its own checks of the map).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mcsafe::inject::{self, FullTmpfsFile, HwPoisonMapping, Method};

const PAGE: usize = 4096;
const P: u64 = PAGE as u64;

fn mcsafe(args: &[&str]) -> Output {
    mcsafe_in(Path::new("."), args)
}

fn mcsafe_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcsafe"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mcsafe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcsafe-cli-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// True if `method` works here; otherwise says why, and fails in CI.
fn require(method: Method) -> bool {
    match inject::capabilities().check(method) {
        Ok(()) => true,
        Err(why) if in_ci() => panic!("cannot test with {method}: {why} (CI must provide it)"),
        Err(why) => {
            eprintln!("NOT RUN: cannot test with {method}: {why}");
            false
        }
    }
}

fn page_byte(i: usize) -> u8 {
    (i as u8).wrapping_mul(37).wrapping_add(11)
}

/// The data lines of a finished map: (pos, size, status), after checking
/// its status line (the end, `+`, pass 1) and what GNU ddrescuelog reads in
/// it ([`map_of`]).
fn map_lines(map: &Path) -> Vec<(u64, u64, char)> {
    let (status, data) = map_of(map);
    assert_eq!(status, '+', "{}", fs::read_to_string(map).unwrap());
    data
}

/// The status line's status and the data lines of a map, after checking that
/// the ranges follow each other from 0, and that GNU ddrescuelog reads the
/// map and lists the same lost and the same non-tried 4 KiB blocks (where it
/// is installed; CI installs it; elsewhere the rest of the checks still run).
fn map_of(map: &Path) -> (char, Vec<(u64, u64, char)>) {
    let text = fs::read_to_string(map).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let status_line = lines.next().expect("status line");
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let f: Vec<&str> = status_line.split_whitespace().collect();
    assert_eq!(f.len(), 3, "{status_line}");
    assert_eq!(f[2], "1", "pass 1: {status_line}");
    let status = f[1].chars().next().unwrap();
    let data: Vec<(u64, u64, char)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (hex(f[0]), hex(f[1]), f[2].chars().next().unwrap())
        })
        .collect();
    let mut end = 0;
    for &(pos, len, _) in &data {
        assert_eq!(pos, end, "a gap or an overlap in:\n{text}");
        end = pos + len;
    }
    // The status line's position: the end when finished, else the first `?`.
    let first_untried = data.iter().find(|d| d.2 == '?').map(|d| d.0);
    match first_untried {
        Some(pos) => assert_eq!((status, hex(f[0])), ('?', pos), "{text}"),
        None => assert_eq!((status, hex(f[0])), ('+', end), "{text}"),
    }
    for kind in ['-', '?'] {
        let blocks: Vec<u64> = data
            .iter()
            .filter(|d| d.2 == kind)
            .flat_map(|&(pos, len, _)| pos / P..(pos + len).div_ceil(P))
            .collect();
        if let Some(listed) = ddrescuelog_blocks(map, kind) {
            assert_eq!(listed, blocks, "{kind} blocks of\n{text}");
        }
    }
    (status, data)
}

/// The 4 KiB blocks of status `kind` ddrescuelog lists in `map` (`-b 4096
/// -l-` for the lost ones), or `None` (after saying why) where it is not
/// installed. Fails on a map it rejects.
fn ddrescuelog_blocks(map: &Path, kind: char) -> Option<Vec<u64>> {
    let out = match Command::new("ddrescuelog")
        .args(["-b", "4096", &format!("-l{kind}"), s(map)])
        .output()
    {
        Ok(out) => out,
        Err(e) if in_ci() => panic!("ddrescuelog: {e} (CI installs gddrescue)"),
        Err(e) => {
            eprintln!(
                "NOT RUN: the ddrescuelog check of {}: {e} (apt-get install gddrescue)",
                map.display()
            );
            return None;
        }
    };
    assert!(
        out.status.success(),
        "ddrescuelog rejects {}: {}\n{}",
        map.display(),
        text(&out.stderr),
        fs::read_to_string(map).unwrap()
    );
    Some(
        text(&out.stdout)
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect(),
    )
}

/// The one line a failing command wrote on stderr.
fn one_line_error(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    stderr.trim_end().to_string()
}

/// Issue 20: a sparse file on a full tmpfs was reported 98 % lost, exit 1,
/// where `cp` copies it: the holes read as zeros through read(2), which needs
/// no page. Now rescue reads them that way: nothing lost, exit 0, the map all
/// `+`, the copy equal to `cp`'s and as sparse.
#[test]
fn rescue_of_a_sparse_file_on_a_full_tmpfs_loses_nothing_and_equals_cp() {
    if !require(Method::FullTmpfs) {
        return;
    }
    // 1024 pages (4 MiB): 8 extents of 4 data pages, holes around them and at
    // both ends, read in 64 KiB blocks so that holes cross blocks.
    let pages = 1024;
    let data: Vec<usize> = (0..8).flat_map(|e| 64 + 120 * e..68 + 120 * e).collect();
    let holes: Vec<usize> = (0..pages).filter(|p| !data.contains(p)).collect();
    let file = FullTmpfsFile::new(pages, &holes, |i, page| page.fill(page_byte(i))).unwrap();
    let dir = scratch("sparse");
    let (dst, map, by_cp) = (
        dir.join("copy.bin"),
        dir.join("copy.map"),
        dir.join("cp.bin"),
    );
    let cp = Command::new("cp")
        .arg(file.path())
        .arg(&by_cp)
        .status()
        .unwrap();
    assert!(cp.success());
    let out = mcsafe(&[
        "rescue",
        "--block",
        "64K",
        "--map",
        s(&map),
        s(file.path()),
        s(&dst),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing lost is exit 0:\n{stdout}"
    );
    assert!(stdout.contains("lost    nothing"), "{stdout}");
    let hole_bytes = holes.len() * PAGE;
    assert!(
        stdout.contains(&format!("holes   {hole_bytes} bytes")) && stdout.contains("in 9 holes"),
        "the summary names the holes:\n{stdout}"
    );
    let copy = fs::read(&dst).unwrap();
    assert_eq!(copy, fs::read(&by_cp).unwrap(), "the same bytes as cp");
    assert_eq!(copy.len(), pages * PAGE);
    for (i, page) in copy.chunks(PAGE).enumerate() {
        let want = if data.contains(&i) { page_byte(i) } else { 0 };
        assert!(page.iter().all(|&b| b == want), "page {i} of the copy");
    }
    // The holes stay holes in the copy, as cp leaves them.
    let allocated = fs::metadata(&dst).unwrap().blocks() * 512;
    assert!(
        allocated < (pages * PAGE / 2) as u64,
        "{allocated} bytes allocated for a copy of {} data bytes",
        data.len() * PAGE
    );
    assert_eq!(map_lines(&map), [(0, (pages * PAGE) as u64, '+')]);
    let recorded = fs::read_to_string(&map).unwrap();
    assert!(
        recorded.contains("# holes read as zeros with read(2), not lost"),
        "{recorded}"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rescue_of_an_intact_file_is_an_exact_copy_and_exit_0() {
    let dir = scratch("intact");
    let src = dir.join("src.bin");
    let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 + i / 255) as u8).collect();
    fs::write(&src, &data).unwrap();
    let dst = dir.join("dst.bin");
    let out = mcsafe(&["rescue", s(&src), s(&dst)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("lost    nothing"));
    assert_eq!(fs::read(&dst).unwrap(), data);
    // The default map sits next to the copy.
    assert_eq!(map_lines(&dir.join("dst.bin.map")), [(0, 300_001, '+')]);
    // An empty source: an empty copy and a map ddrescuelog accepts.
    let empty = dir.join("empty");
    fs::write(&empty, b"").unwrap();
    let out = mcsafe(&["rescue", s(&empty), s(&dir.join("empty.copy"))]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(fs::metadata(dir.join("empty.copy")).unwrap().len(), 0);
    assert_eq!(map_lines(&dir.join("empty.copy.map")), []);
    fs::remove_dir_all(dir).unwrap();
}

/// A mapping longer than its file is what a file truncated under a reader
/// looks like: the pages past the end raise BUS_ADRERR. Issue 20: they were
/// reported lost; `pread(2)` says the file ends there, so the copy is short
/// (as cp's would be), the map ends where the file does, and nothing is lost.
#[test]
fn rescue_past_the_end_of_a_file_is_a_short_copy_and_the_map_says_how_it_ran() {
    let dir = scratch("past-end");
    let src = dir.join("src.bin");
    let end = 2 * PAGE + 100;
    fs::write(&src, vec![0x5a; end]).unwrap();
    let dst = dir.join("dst.bin");
    let map = dir.join("the map");
    let out = mcsafe(&[
        "rescue",
        "--size",
        "20K",
        "--block",
        "8K",
        "--map",
        s(&map),
        s(&src),
        s(&dst),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("lost    nothing"), "{stdout}");
    assert!(
        stdout.contains(&format!("ends at byte {end}, before the 20480 bytes")),
        "the summary says where the source ended:\n{stdout}"
    );
    assert_eq!(fs::read(&dst).unwrap(), fs::read(&src).unwrap());
    assert_eq!(map_lines(&map), [(0, end as u64, '+')]);
    let recorded = fs::read_to_string(&map).unwrap();
    assert!(
        recorded.contains(&format!("0x{end:08X}     +               1")),
        "{recorded}"
    );
    assert!(recorded.contains("# the source ended at"), "{recorded}");
    // The whole command line, quoted as a shell reads it back.
    let recorded = fs::read_to_string(&map).unwrap();
    let line = recorded
        .lines()
        .find_map(|l| l.strip_prefix("# Command line: "))
        .unwrap();
    let want = format!(
        "rescue --size 20K --block 8K --map '{}' {} {}",
        s(&map),
        s(&src),
        s(&dst)
    );
    assert!(line.ends_with(&want), "{line:?} does not end with {want:?}");
    fs::remove_dir_all(dir).unwrap();
}

/// With memory-failure support and root (the VM harness), a hardware-poisoned
/// page of a memfd, opened by path, is skipped as `BUS_MCEERR_AR`. Elsewhere
/// the kit must say why it cannot poison.
#[test]
fn rescue_skips_a_hardware_poisoned_page_where_the_kernel_allows_it() {
    let caps = inject::capabilities();
    let map = HwPoisonMapping::new(4).unwrap();
    // SAFETY: our own mapping, nothing poisoned yet.
    unsafe { map.as_ptr().write_bytes(0x77, 4 * PAGE) };
    if let Err(why) = caps.check(Method::MadvHwpoison) {
        let e = map.poison(2).unwrap_err();
        assert_eq!(e.errno(), why.errno(), "{e}");
        eprintln!("hardware poison not possible here, as the kit says: {e}");
        return;
    }
    map.poison(2).unwrap();
    let dir = scratch("hwpoison");
    let dst = dir.join("dst.bin");
    let path = map.path();
    let out = mcsafe(&["rescue", s(&path), s(&dst)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(
        map_lines(&dir.join("dst.bin.map")),
        [(0, 2 * P, '+'), (2 * P, P, '-'), (3 * P, P, '+')]
    );
    assert!(text(&out.stdout).contains("BUS_MCEERR_AR"));
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 14: `mcsafe rescue F F` zeroed F and said it lost nothing.
#[test]
fn rescue_refuses_src_and_dst_that_are_the_same_file_and_touches_nothing() {
    let dir = scratch("same");
    let src = dir.join("data.bin");
    let data = vec![0xc3u8; 3 * PAGE];
    fs::write(&src, &data).unwrap();
    let hard = dir.join("hard.bin");
    fs::hard_link(&src, &hard).unwrap();
    let soft = dir.join("soft.bin");
    std::os::unix::fs::symlink(&src, &soft).unwrap();
    let modified = fs::metadata(&src).unwrap().mtime_nsec();
    for dst in [&src, &hard, &soft] {
        for force in [false, true] {
            let mut args = vec!["rescue", s(&src), s(dst)];
            if force {
                args.insert(1, "--force");
            }
            let out = mcsafe(&args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?}: {}",
                text(&out.stdout)
            );
            let error = one_line_error(&out);
            assert!(error.contains("are the same file (SRC and DST)"), "{error}");
        }
    }
    // The map may not be SRC either, named or by default (DST + ".map").
    let out = mcsafe(&[
        "rescue",
        "--map",
        s(&hard),
        s(&src),
        s(&dir.join("new.bin")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("(SRC and the map)"));
    let out = mcsafe(&["rescue", s(&dir.join("x.map")), s(&dir.join("x"))]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "x.map does not exist: cannot open it"
    );
    fs::copy(&src, dir.join("x.map")).unwrap();
    let out = mcsafe(&[
        "rescue",
        "--force",
        s(&dir.join("x.map")),
        s(&dir.join("x")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("(SRC and the map)"));
    // Nor DST.
    let out = mcsafe(&[
        "rescue",
        "--map",
        s(&dir.join("y")),
        s(&src),
        s(&dir.join("y")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("(DST and the map)"));
    // Nothing was touched: SRC as it was, no copy, no map.
    assert_eq!(fs::read(&src).unwrap(), data);
    assert_eq!(fs::metadata(&src).unwrap().mtime_nsec(), modified);
    for never in [
        "new.bin",
        "new.bin.map",
        "x",
        "x.map.map",
        "y",
        "data.bin.map",
    ] {
        assert!(!dir.join(never).exists(), "{never} was written");
    }
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 14: an existing, larger DST was silently cut.
#[test]
fn rescue_overwrites_an_existing_dst_or_map_only_with_force() {
    let dir = scratch("existing");
    let src = dir.join("src.bin");
    fs::write(&src, vec![1u8; 2 * PAGE]).unwrap();
    let dst = dir.join("dst.bin");
    let old = vec![9u8; 5 * PAGE];
    fs::write(&dst, &old).unwrap();
    let out = mcsafe(&["rescue", s(&src), s(&dst)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("exists: give --force to overwrite it"));
    assert_eq!(fs::read(&dst).unwrap(), old, "DST untouched");
    assert!(!dir.join("dst.bin.map").exists());
    // An existing map is refused the same way, before DST is created.
    let map = dir.join("runs.map");
    fs::write(&map, "kept").unwrap();
    let fresh = dir.join("fresh.bin");
    let out = mcsafe(&["rescue", "--map", s(&map), s(&src), s(&fresh)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("the map"));
    assert!(!fresh.exists());
    assert_eq!(fs::read_to_string(&map).unwrap(), "kept");
    // With --force: an exact copy of SRC, cut to its length on purpose.
    let out = mcsafe(&["rescue", "-f", "--map", s(&map), s(&src), s(&dst)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(fs::read(&dst).unwrap(), vec![1u8; 2 * PAGE]);
    assert_eq!(map_lines(&map), [(0, 2 * P, '+')]);
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 14: a directory SRC said "cannot tell the size of the source".
#[test]
fn a_directory_source_is_a_clear_error() {
    let dir = scratch("directory");
    let dst = dir.join("copy");
    let out = mcsafe(&["rescue", s(&dir), s(&dst)]);
    assert_eq!(out.status.code(), Some(2));
    let error = one_line_error(&out);
    assert!(
        error.ends_with(
            "is a directory: rescue copies a regular file, a block device or a DAX device"
        ),
        "{error}"
    );
    assert!(!dst.exists());
    assert!(!dir.join("copy.map").exists());
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 14: `rescue --help` was "unknown option", and there was no --version.
#[test]
fn every_command_has_help_and_the_tool_has_a_version() {
    for (args, usage) in [
        (&["--help"][..], "Usage: mcsafe <COMMAND>"),
        (&["help"], "Usage: mcsafe <COMMAND>"),
        (
            &["rescue", "--help"],
            "Usage: mcsafe rescue [OPTIONS] <SRC> <DST>",
        ),
        (
            &["help", "rescue"],
            "Usage: mcsafe rescue [OPTIONS] <SRC> <DST>",
        ),
        (
            &["rescue", "-h"],
            "Usage: mcsafe rescue [OPTIONS] <SRC> <DST>",
        ),
        (&["probe", "--help"], "Usage: mcsafe probe"),
        (&["bench", "--help"], "Usage: mcsafe bench [OPTIONS]"),
    ] {
        let out = mcsafe(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text(&out.stdout).contains(usage),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    let help = text(&mcsafe(&["rescue", "--help"]).stdout);
    for part in [
        "--force",
        "--map <FILE>",
        "--size <BYTES>",
        "ddrescue",
        "Exit status",
    ] {
        assert!(help.contains(part), "{part} not in:\n{help}");
    }
    let version = mcsafe(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("mcsafe {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_and_io_errors_are_one_line_with_their_exit_statuses() {
    for args in [
        &["rescue", "only-one-path"][..],
        &["frobnicate"],
        &[],
        &["rescue", "--frob", "a", "b"],
        &["rescue", "--block", "0", "a", "b"],
        &["bench", "--rounds", "0"],
        &["probe", "extra"],
    ] {
        let out = mcsafe(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let error = one_line_error(&out);
        assert!(error.starts_with("mcsafe: "), "{error}");
    }
    let two = one_line_error(&mcsafe(&["rescue", "only-one-path"]));
    assert!(
        two.contains("<DST>") && two.contains("usage: mcsafe rescue"),
        "{two}"
    );
    let missing = mcsafe(&["rescue", "/nonexistent/src", "/tmp/never-written"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(one_line_error(&missing).starts_with("mcsafe rescue: cannot open /nonexistent/src"));
}

/// Issue 14: the bar said 1.2 GiB/s where the summary said 637 MiB/s.
#[test]
fn the_progress_bar_is_drawn_on_request_and_ends_on_the_summarys_speed() {
    let dir = scratch("progress");
    let src = dir.join("src.bin");
    fs::write(&src, vec![1u8; 3 << 20]).unwrap();
    let dst = dir.join("dst.bin");
    // 3 MiB of data, asked as 4 MiB: the copy ends with the file.
    let drawn = mcsafe(&[
        "rescue",
        "--progress",
        "--block",
        "256K",
        "--size",
        "4M",
        s(&src),
        s(&dst),
    ]);
    let (stderr, stdout) = (text(&drawn.stderr), text(&drawn.stdout));
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("[{}]", "#".repeat(30))),
        "{stderr}"
    );
    assert!(
        last.contains("100.0%") && last.contains("3.0 MiB / 3.0 MiB") && last.contains("lost 0 B"),
        "{last}"
    );
    let bar_speed = last.rsplit("  ").next().unwrap();
    let summary = stdout.lines().find(|l| l.contains("  read ")).unwrap();
    assert!(
        summary.ends_with(&format!("({bar_speed})")),
        "bar {bar_speed:?}, summary {summary:?}"
    );
    // stderr is a pipe here: no bar unless asked.
    let quiet = mcsafe(&["rescue", "--force", s(&src), s(&dst)]);
    assert!(text(&quiet.stderr).is_empty(), "{}", text(&quiet.stderr));
    map_lines(&dir.join("dst.bin.map"));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn probe_reports_cpu_kernel_injection_and_handler() {
    let out = mcsafe(&["probe"]);
    assert_eq!(out.status.code(), Some(0));
    let report = text(&out.stdout);
    for key in [
        "cpu ",
        "cpu features",
        "strategy ",
        "strategies available",
        "kernel ",
        "memory failure",
        "early kill",
        "UFFDIO_POISON",
        "  truncate",
        "  uffd-poison",
        "  madv-hwpoison",
        "  full-tmpfs",
        "SIGBUS before mcsafe",
        "SIGBUS handler        mcsafe's, installed",
        "handler counters",
    ] {
        assert!(report.contains(key), "missing {key:?} in:\n{report}");
    }
    // The dispatch rule names the vendor, the strategy it chose and both thresholds.
    let rule = report
        .lines()
        .find(|l| l.starts_with("dispatch rule"))
        .unwrap_or_else(|| panic!("no dispatch rule in:\n{report}"));
    // (The rule names the default; a strategy forced for the test run is not it.)
    let chosen = match std::env::var_os(mcsafe::STRATEGY_ENV) {
        Some(_) => "",
        None => mcsafe::Strategy::current().name(),
    };
    for part in ["family", chosen, "rep movsb", "non-temporal stores from"] {
        assert!(rule.contains(part), "{part:?} missing in {rule:?}");
    }
    let mf = std::path::Path::new("/proc/sys/vm/memory_failure_recovery").exists();
    assert_eq!(report.contains("memory failure        yes"), mf, "{report}");
    // A forced strategy is reported as forced.
    let forced = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
        .arg("probe")
        .env("MCSAFE_STRATEGY", "fragile")
        .output()
        .unwrap();
    assert!(text(&forced.stdout).contains("fragile (forced by MCSAFE_STRATEGY=fragile)"));
}

#[test]
fn probe_applies_mcsafe_tunables_and_names_each_one_it_ignored() {
    let tunables = "non_temporal_threshold=1M:rep_movsb_stop_threshold=0x10000:banana:\
                    rep_movsb_threshold=0:frobnicate=4K:non_temporal_threshold=200T";
    let out = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
        .arg("probe")
        .env(mcsafe::TUNABLES_ENV, tunables)
        .output()
        .unwrap();
    // Never a failed install: the handler is in, the exit status 0.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains("SIGBUS handler        mcsafe's, installed"),
        "{report}"
    );
    assert!(
        report.contains(&format!("MCSAFE_TUNABLES={tunables}")),
        "{report}"
    );
    let thresholds = report
        .lines()
        .find(|l| l.starts_with("thresholds "))
        .unwrap_or_else(|| panic!("no thresholds in:\n{report}"));
    if cfg!(target_arch = "x86_64") {
        // The two usable settings apply (the last of a name wins only when usable).
        assert!(
            thresholds.contains("non-temporal stores from 1 MiB"),
            "{thresholds}"
        );
        assert!(thresholds.contains("to 64 KiB"), "{thresholds}");
    }
    let ignored: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("tunable ignored"))
        .collect();
    for (setting, why) in [
        ("\"banana\"", "not name=size"),
        ("\"rep_movsb_threshold=0\"", "a threshold of 0"),
        ("\"frobnicate=4K\"", ""),
        ("\"non_temporal_threshold=200T\"", ""),
    ] {
        assert!(
            ignored
                .iter()
                .any(|l| l.contains(setting) && l.contains(why) && l.contains("default is kept")),
            "{setting} not named as ignored in:\n{report}"
        );
    }
    assert_eq!(ignored.len(), 4, "{report}");
}

#[test]
fn bench_prints_the_summary_and_writes_the_plot_where_it_says() {
    // A tiny run: one round, classes up to 64 bytes, small cold regions; the
    // plot goes to its default path, in the working directory.
    let dir = scratch("bench");
    let out = mcsafe_in(
        &dir,
        &[
            "bench",
            "--rounds",
            "1",
            "--max-size",
            "64",
            "--cold",
            "64M",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for part in [
        "### hot, aligned",
        "### cold, misaligned",
        "| 33-64 |",
        "### randomized mix",
        "pread",
        "### fault path",
        "### targets",
    ] {
        assert!(table.contains(part), "no {part:?} in:\n{table}");
    }
    let printed = table
        .lines()
        .find_map(|l| l.strip_prefix("plot: "))
        .expect("the plot's path");
    let svg = fs::read_to_string(dir.join(printed)).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("glibc memcpy (hot)"),
        "not the plot"
    );
    fs::remove_dir_all(dir).unwrap();
}

/// `mcsafe` with `args`, given `secs` seconds: a run still going then is
/// killed and the test fails (a FIFO source used to hang for ever).
fn mcsafe_within(secs: u64, args: &[&str]) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcsafe");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("{args:?} still ran after {secs} s: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Bytes unlike their neighbours, so that a copy from the wrong place shows.
fn data(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Issue 23: SIGINT or SIGTERM left a full-size DST and no map. Now the map
/// is saved as the copy goes (seen here before the signal), and again when
/// the signal stops it: the unread rest non-tried (`?`); the process dies of
/// the signal (a shell's 130, 143 or 129), as ddrescue does; and `--resume`
/// copies only the `?` ranges (SRC's finished part is changed before the
/// resume to show that it is not read again), giving a DST equal to SRC.
#[test]
fn an_interrupted_rescue_saves_its_map_dies_of_the_signal_and_resumes_from_it() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = scratch("interrupted");
    let src = dir.join("src.bin");
    let size = 8 << 20;
    let original = data(size);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        fs::write(&src, &original).unwrap();
        let (dst, map) = (dir.join("dst.bin"), dir.join("dst.bin.map"));
        let _ = fs::remove_file(&dst);
        let _ = fs::remove_file(&map);
        // 8 MiB at 2 MiB/s: 4 s, a map saved every second.
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
            .args([
                "rescue",
                "--block",
                "16K",
                "--max-rate",
                "2M",
                s(&src),
                s(&dst),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The map exists before the copy has finished, and shows progress.
        let start = Instant::now();
        let saved = loop {
            let seen = fs::read_to_string(&map).unwrap_or_default();
            if seen.lines().any(|l| l.ends_with("  +")) {
                break seen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no map with a finished range after 10 s: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(saved.contains("  ?"), "saved as it goes: {saved}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before the signal"
        );
        // SAFETY: kill(2) on our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(signal),
            "dies of signal {signal}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        let error = one_line_error(&out);
        assert!(
            error.contains("interrupted by SIG")
                && error.contains(&format!(
                    "go on with: mcsafe rescue --resume --map {} {} {}",
                    s(&map),
                    s(&src),
                    s(&dst)
                )),
            "{error}"
        );
        let (status, ranges) = map_of(&map);
        assert_eq!(status, '?');
        let finished: u64 = ranges.iter().filter(|r| r.2 == '+').map(|r| r.1).sum();
        let untried: u64 = ranges.iter().filter(|r| r.2 == '?').map(|r| r.1).sum();
        assert!(finished >= 16 << 10, "{ranges:x?}");
        assert!(untried > 0, "{ranges:x?}");
        assert_eq!(finished + untried, size as u64, "{ranges:x?}");
        assert_eq!(ranges[0], (0, finished, '+'), "finished first, then ?");
        assert_eq!(fs::metadata(&dst).unwrap().len(), size as u64);
        // What was copied is in DST already.
        let copied = fs::read(&dst).unwrap();
        assert!(copied[..finished as usize] == original[..finished as usize]);
        // A rerun without --resume is refused, and says how to go on.
        let again = mcsafe(&["rescue", s(&src), s(&dst)]);
        assert_eq!(again.status.code(), Some(2));
        assert!(one_line_error(&again).contains("exists: give --force to overwrite it"));
        let again = mcsafe(&["rescue", "--map", s(&map), s(&src), s(&dir.join("other"))]);
        assert_eq!(again.status.code(), Some(2));
        assert!(one_line_error(&again).contains("give --resume to go on from it"));

        let mut expected = original.clone();
        if signal == libc::SIGINT {
            // SRC's first page changes; the resume must not read it again.
            let mut changed = original.clone();
            changed[..PAGE].fill(0xee);
            fs::write(&src, &changed).unwrap();
        }
        let resumed = mcsafe(&["rescue", "--resume", "--map", s(&map), s(&src), s(&dst)]);
        let stdout = text(&resumed.stdout);
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "{stdout}{}",
            text(&resumed.stderr)
        );
        assert!(
            stdout.contains(&format!("read    {untried} bytes"))
                && stdout.contains(&format!("resumed {finished} bytes")),
            "{stdout}"
        );
        assert_eq!(map_lines(&map), [(0, size as u64, '+')]);
        if signal == libc::SIGINT {
            expected[..PAGE].copy_from_slice(&original[..PAGE]);
        }
        assert!(fs::read(&dst).unwrap() == expected, "DST after the resume");
        // A finished map resumed: nothing to read, nothing changes.
        let done = mcsafe(&["rescue", "--resume", "--map", s(&map), s(&src), s(&dst)]);
        assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
        assert!(text(&done.stdout).contains("read    0 bytes"));
        assert!(fs::read(&dst).unwrap() == expected);
    }
    fs::remove_dir_all(dir).unwrap();
}

/// `--resume` reads only the map's `?` ranges: a `-` (lost) range is not
/// read again, nor written, and stays lost (exit 1); a `+` range is not read
/// either. Maps it cannot go on from, and DSTs that are not the map's, are
/// refused before anything is written.
#[test]
fn resume_reads_only_non_tried_ranges_and_refuses_what_it_cannot_go_on_from() {
    let dir = scratch("resume");
    let src = dir.join("src.bin");
    fs::write(&src, vec![0x55u8; 4 * PAGE]).unwrap();
    let (dst, map) = (dir.join("dst.bin"), dir.join("dst.map"));
    fs::write(&dst, vec![0xaau8; 4 * PAGE]).unwrap();
    let hand = "# by hand\n0x00000000  ?  1\n0x0 0x2000 +\n0x2000 0x1000 -\n0x3000 0x1000 ?\n";
    fs::write(&map, hand).unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec!["rescue", "--resume", "--map", s(&map)];
        args.extend(extra);
        args.extend([s(&src), s(&dst)]);
        mcsafe(&args)
    };
    // --resume and --force contradict each other.
    let both = resume(&["--force"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(one_line_error(&both).contains("cannot be used with"));

    let out = resume(&[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "lost before, lost still: {stdout}"
    );
    assert!(stdout.contains("read    4096 bytes"), "{stdout}");
    assert!(
        stdout.contains("lost    4096 bytes")
            && stdout.contains("the map resumed from gave no reason"),
        "{stdout}"
    );
    let copy = fs::read(&dst).unwrap();
    assert!(
        copy[..3 * PAGE].iter().all(|&b| b == 0xaa),
        "+ and - ranges untouched"
    );
    assert!(
        copy[3 * PAGE..].iter().all(|&b| b == 0x55),
        "the ? range copied"
    );
    assert_eq!(
        map_lines(&map),
        [(0, 2 * P, '+'), (2 * P, P, '-'), (3 * P, P, '+')]
    );

    // Refused, and the map and DST left as they were.
    let kept = fs::read(&dst).unwrap();
    for (what, map_text, dst_len, says) in [
        (
            "a gap",
            "0x0 ? 1\n0x0 0x1000 +\n0x2000 0x2000 ?\n",
            4 * PAGE,
            "line 3: a range at 0x2000 where 0x1000 was expected",
        ),
        ("no status line", "", 4 * PAGE, "no status line"),
        (
            "larger than SRC",
            "0x0 ? 1\n0x0 0x5000 ?\n",
            5 * PAGE,
            "covers 20480 bytes, more than the 16384",
        ),
        (
            "a DST shorter than its data",
            "0x0 ? 1\n0x0 0x3000 +\n0x3000 0x1000 ?\n",
            2 * PAGE,
            "is 8192 bytes, and its map",
        ),
        (
            "a DST longer than its map",
            "0x0 ? 1\n0x0 0x1000 +\n0x1000 0x2000 ?\n",
            4 * PAGE,
            "describes a copy of 12288 bytes with data up to byte 4096: not the copy",
        ),
    ] {
        fs::write(&map, map_text).unwrap();
        fs::write(&dst, &kept[..dst_len.min(kept.len())]).unwrap();
        if dst_len > kept.len() {
            fs::OpenOptions::new()
                .write(true)
                .open(&dst)
                .unwrap()
                .set_len(dst_len as u64)
                .unwrap();
        }
        let before = fs::read(&dst).unwrap();
        let out = resume(&[]);
        assert_eq!(out.status.code(), Some(2), "{what}");
        let error = one_line_error(&out);
        assert!(error.contains(says), "{what}: {error}");
        assert_eq!(fs::read_to_string(&map).unwrap(), map_text, "{what}");
        assert!(fs::read(&dst).unwrap() == before, "{what}");
    }
    // Nothing to resume from.
    fs::remove_file(&map).unwrap();
    let out = resume(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("does not exist: nothing to resume"));
    fs::write(&map, hand).unwrap();
    let out = mcsafe(&[
        "rescue",
        "--resume",
        "--map",
        s(&map),
        s(&src),
        s(&dir.join("none")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("does not exist: --resume goes on writing"));
    assert!(!dir.join("none").exists());

    // A map as GNU ddrescue leaves it when interrupted, with a DST that ends
    // where its last write did: resumed, DST lengthened, SRC's rest copied.
    fs::write(
        &map,
        "# Mapfile. Created by GNU ddrescue version 1.27\n\
         # Command line: ddrescue src.bin dst.bin dst.map\n\
         # Start time:   2026-12-07 12:51:02\n\
         # Copying non-tried blocks... Pass 1 (forwards)\n\
         # current_pos  current_status  current_pass\n\
         0x00001000     ?               1\n\
         #      pos        size  status\n\
         0x00000000  0x00001000  +\n\
         0x00001000  0x00003000  ?\n",
    )
    .unwrap();
    fs::write(&dst, vec![0xaau8; PAGE]).unwrap();
    let out = resume(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let copy = fs::read(&dst).unwrap();
    assert_eq!(copy.len(), 4 * PAGE);
    assert!(
        copy[..PAGE].iter().all(|&b| b == 0xaa),
        "the + range untouched"
    );
    assert!(
        copy[PAGE..].iter().all(|&b| b == 0x55),
        "the ? range copied"
    );
    assert_eq!(map_lines(&map), [(0, 4 * P, '+')]);
    fs::remove_dir_all(dir).unwrap();
}

/// Runs `mcsafe args` with its files limited to `limit` bytes (RLIMIT_FSIZE,
/// SIGXFSZ ignored): a write past it fails with EFBIG, as on a full disk.
fn mcsafe_with_file_limit(limit: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcsafe"));
    command.args(args);
    // SAFETY: signal(2) and setrlimit(2) are async-signal-safe; the closure
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    command.output().expect("run mcsafe")
}

/// Issue 23: failures after DST was created left it behind. A failure before
/// a byte was copied (DST cannot be sized) removes the DST and the map it
/// created; one in the middle of the copy (a write fails) keeps both, the
/// map saved with the unread rest `?`, and `--resume` finishes the copy.
#[test]
fn a_failed_rescue_leaves_no_new_dst_before_the_copy_and_a_resumable_one_after() {
    let dir = scratch("failed");
    let src = dir.join("src.bin");
    let original = data(16 * PAGE);
    fs::write(&src, &original).unwrap();
    let (dst, map) = (dir.join("dst.bin"), dir.join("dst.bin.map"));
    let out = mcsafe_with_file_limit(4 * P, &["rescue", "--block", "8K", s(&src), s(&dst)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let error = one_line_error(&out);
    assert!(
        error.contains("cannot size") && error.contains("File too large"),
        "{error}"
    );
    assert!(!dst.exists(), "DST left behind");
    assert!(!map.exists(), "map left behind");

    // DST sized and a map of all `?`, as a rescue stopped at its start
    // leaves them; the resume's writes past 16 KiB fail.
    fs::File::create(&dst).unwrap().set_len(16 * P).unwrap();
    fs::write(&map, format!("0x0 ? 1\n0x0 {:#x} ?\n", 16 * P)).unwrap();
    let resume = ["rescue", "--resume", "--block", "8K", s(&src), s(&dst)];
    let out = mcsafe_with_file_limit(4 * P, &resume);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let error = one_line_error(&out);
    assert!(
        error.contains(&format!("cannot write {}", s(&dst)))
            && error.contains("DST and the map are kept; go on with: mcsafe rescue --resume"),
        "{error}"
    );
    assert_eq!(
        map_of(&map),
        ('?', vec![(0, 4 * P, '+'), (4 * P, 12 * P, '?')])
    );
    let out = mcsafe(&resume);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(map_lines(&map), [(0, 16 * P, '+')]);
    assert!(fs::read(&dst).unwrap() == original);
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 23: a FIFO source hung silently, `/proc/self/status` "succeeded"
/// with 0 bytes. What a mapping cannot copy is refused at once (exit 2), and
/// nothing is written.
#[test]
fn sources_a_mapping_cannot_copy_are_refused_before_anything_is_written() {
    let dir = scratch("sources");
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let socket = dir.join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let dst = dir.join("copy");
    for (src, says) in [
        (s(&fifo), "is a FIFO (a named pipe"),
        (s(&socket), "is a socket"),
        (
            "/dev/null",
            "is a character device that is not a DAX device",
        ),
        (
            "/proc/self/status",
            "says it is 0 bytes long but reads data",
        ),
    ] {
        for size in [None, Some("4K")] {
            let mut args = vec!["rescue"];
            args.extend(size.map(|s| ["--size", s]).into_iter().flatten());
            args.extend([src, s(&dst)]);
            let out = mcsafe_within(10, &args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?}: {}",
                text(&out.stdout)
            );
            let error = one_line_error(&out);
            assert!(
                error.starts_with(&format!("mcsafe rescue: {src} {says}")),
                "{error}"
            );
            assert!(
                !dst.exists() && !dir.join("copy.map").exists(),
                "{args:?} wrote"
            );
        }
    }
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 23: a DST in a directory that does not exist was refused as "the
/// same file" as its map (two missing paths compared equal); an unwritable
/// map was found only after the whole copy. Both are I/O errors (exit 3)
/// before the copy, naming the file, and leave nothing behind.
#[test]
fn a_missing_directory_and_an_unwritable_map_fail_before_the_copy() {
    use std::time::{Duration, Instant};
    let dir = scratch("missing");
    let src = dir.join("src.bin");
    fs::write(&src, data(1 << 20)).unwrap();
    let missing = dir.join("no such dir").join("copy.bin");
    let out = mcsafe(&["rescue", s(&src), s(&missing)]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        one_line_error(&out),
        format!(
            "mcsafe rescue: cannot open {}: No such file or directory (os error 2)",
            s(&missing)
        )
    );
    // A map where none can be written: under a missing directory, or under a
    // regular file. At 256 KiB/s the copy would take 4 s: the error comes first.
    let dst = dir.join("copy.bin");
    for (map, why) in [
        (
            dir.join("no such dir").join("copy.map"),
            "No such file or directory",
        ),
        (src.join("copy.map"), "Not a directory"),
    ] {
        let start = Instant::now();
        let out = mcsafe(&[
            "rescue",
            "--max-rate",
            "256K",
            "--map",
            s(&map),
            s(&src),
            s(&dst),
        ]);
        assert_eq!(out.status.code(), Some(3));
        let error = one_line_error(&out);
        assert!(
            error.starts_with(&format!(
                "mcsafe rescue: cannot write the map {}: {why}",
                s(&map)
            )),
            "{error}"
        );
        assert!(start.elapsed() < Duration::from_secs(3), "after the copy");
        assert!(!dst.exists(), "DST left behind");
    }
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 23: `MCSAFE_STRATEGY=bogus` panicked in the middle of a rescue
/// (exit 101), leaving a DST. It is a one-line error before anything is
/// written (exit 2), for rescue, bench and tune; probe reports it.
#[test]
fn a_strategy_that_cannot_run_is_a_one_line_error_before_any_work() {
    let dir = scratch("strategy");
    let src = dir.join("src.bin");
    fs::write(&src, data(3 * PAGE)).unwrap();
    let dst = dir.join("dst.bin");
    let other = if cfg!(target_arch = "aarch64") {
        "avx2"
    } else {
        "advsimd"
    };
    for (value, says) in [
        ("bogus", "MCSAFE_STRATEGY=bogus: no such strategy; known: "),
        (other, "this CPU cannot run the"),
    ] {
        for args in [
            &["rescue", s(&src), s(&dst)][..],
            &["bench", "--quick"],
            &["tune", "--quick"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
                .args(args)
                .env("MCSAFE_STRATEGY", value)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?} {value}");
            let error = one_line_error(&out);
            assert!(
                error.starts_with(&format!("mcsafe {}: MCSAFE_STRATEGY={value}: ", args[0]))
                    && error.contains(says)
                    && error.contains("available here: "),
                "{error}"
            );
            assert!(text(&out.stdout).is_empty());
        }
        assert!(!dst.exists() && !dir.join("dst.bin.map").exists());
        let probe = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
            .arg("probe")
            .env("MCSAFE_STRATEGY", value)
            .output()
            .unwrap();
        assert_eq!(probe.status.code(), Some(0), "{}", text(&probe.stderr));
        assert!(text(&probe.stderr).is_empty(), "{}", text(&probe.stderr));
        let report = text(&probe.stdout);
        let first = report.lines().next().unwrap();
        assert!(
            first.starts_with(&format!(
                "recovers: nothing in this environment: MCSAFE_STRATEGY={value}: "
            )),
            "{first}"
        );
        assert!(
            report.contains("SIGBUS handler        not installed"),
            "{report}"
        );
    }
    fs::remove_dir_all(dir).unwrap();
}

/// Issue 23: probe gave no one-line verdict. Its first line says what this
/// machine recovers, and why not hardware memory errors where it cannot:
/// read here from the kernel's own files, not from probe.
#[test]
fn probe_opens_with_a_one_line_verdict() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcsafe"))
        .arg("probe")
        .env_remove("MCSAFE_STRATEGY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = text(&out.stdout);
    let verdict = report.lines().next().unwrap();
    let recovery = fs::read_to_string("/proc/sys/vm/memory_failure_recovery").ok();
    let early = fs::read_to_string("/proc/sys/vm/memory_failure_early_kill").ok();
    let base = "recovers: truncation, page-in errors, holes";
    match (
        recovery.as_deref().map(str::trim),
        early.as_deref().map(str::trim),
    ) {
        (None, _) => assert_eq!(
            verdict,
            format!("{base}; not hardware memory errors here: no CONFIG_MEMORY_FAILURE")
        ),
        (Some("0"), _) => assert_eq!(
            verdict,
            format!(
                "{base}; not hardware memory errors here: vm.memory_failure_recovery=0 (the \
                 kernel panics on poison)"
            )
        ),
        (Some(_), Some("1")) => assert!(
            verdict.starts_with(&format!("{base}, hardware memory errors a copy touches"))
                && verdict.contains("vm.memory_failure_early_kill=1"),
            "{verdict}"
        ),
        (Some(_), _) => assert_eq!(
            verdict,
            format!("{base}, hardware memory errors (BUS_MCEERR_AR)")
        ),
    }
}

/// Every exit status the tool uses is in docs/cli.md's table.
#[test]
fn every_exit_status_is_in_the_docs_table() {
    let docs = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md")).unwrap();
    let table: Vec<&str> = docs
        .split("## Exit status")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('|'))
        .collect();
    for status in ["0", "1", "2", "3", "130", "143", "129"] {
        assert!(
            table
                .iter()
                .any(|row| row.starts_with(&format!("| {status} "))),
            "exit status {status} not in docs/cli.md:\n{}",
            table.join("\n")
        );
    }
}
