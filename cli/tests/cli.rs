//! The `mcsafe` binary end to end: `rescue` over files with pages lost in the
//! middle (holes of a full tmpfs, `BUS_ADRERR`), past the end (a mapping longer
//! than the file, as after a truncation), and, where the kernel allows it,
//! hardware-poisoned pages (`MADV_HWPOISON`, `BUS_MCEERR_AR`); `probe`; `bench`;
//! usage and I/O errors with their exit statuses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mcsafe::inject::{self, FullTmpfsFile, HwPoisonMapping, Method};

const PAGE: usize = 4096;

fn mcsafe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcsafe"))
        .args(args)
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

/// The data lines of a map: (pos, size, status).
fn map_lines(map: &Path) -> Vec<(u64, u64, char)> {
    let text = fs::read_to_string(map).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let status = lines.next().expect("status line");
    assert!(status.ends_with("+               1"), "{status}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            (hex(f[0]), hex(f[1]), f[2].chars().next().unwrap())
        })
        .collect()
}

#[test]
fn rescue_skips_lost_pages_in_the_middle_of_a_file_and_maps_them() {
    if !require(Method::FullTmpfs) {
        return;
    }
    let lost = [3, 4, 9];
    let file = FullTmpfsFile::new(12, &lost, |i, page| page.fill(page_byte(i))).unwrap();
    let dir = scratch("middle");
    let (dst, map) = (dir.join("copy.bin"), dir.join("copy.map"));
    let out = mcsafe(&[
        "rescue",
        "--block",
        "8K",
        "--map",
        map.to_str().unwrap(),
        file.path().to_str().unwrap(),
        dst.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "lost data is exit 1:\n{stdout}");
    assert!(stdout.contains("lost    12288 bytes"), "{stdout}");
    assert!(stdout.contains("in 2 ranges"), "{stdout}");
    let copy = fs::read(&dst).unwrap();
    assert_eq!(copy.len(), 12 * PAGE);
    for (i, page) in copy.chunks(PAGE).enumerate() {
        let want = if lost.contains(&i) { 0 } else { page_byte(i) };
        assert!(page.iter().all(|&b| b == want), "page {i} of the copy");
    }
    let p = PAGE as u64;
    assert_eq!(
        map_lines(&map),
        [
            (0, 3 * p, '+'),
            (3 * p, 2 * p, '-'),
            (5 * p, 4 * p, '+'),
            (9 * p, p, '-'),
            (10 * p, 2 * p, '+'),
        ]
    );
    assert!(fs::read_to_string(&map).unwrap().contains("BUS_ADRERR"));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rescue_of_an_intact_file_is_an_exact_copy_and_exit_0() {
    let dir = scratch("intact");
    let src = dir.join("src.bin");
    let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 + i / 255) as u8).collect();
    fs::write(&src, &data).unwrap();
    let dst = dir.join("dst.bin");
    let out = mcsafe(&["rescue", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("lost    nothing"));
    assert_eq!(fs::read(&dst).unwrap(), data);
    // The default map sits next to the copy.
    assert_eq!(map_lines(&dir.join("dst.bin.map")), [(0, 300_001, '+')]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rescue_past_the_end_of_a_file_loses_the_unbacked_pages() {
    // A mapping longer than its file is what a file truncated under a reader
    // looks like: the pages past the end raise BUS_ADRERR.
    let dir = scratch("past-end");
    let src = dir.join("src.bin");
    fs::write(&src, vec![0x5a; 2 * PAGE + 100]).unwrap();
    let dst = dir.join("dst.bin");
    let out = mcsafe(&[
        "rescue",
        "--size",
        "20K",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let copy = fs::read(&dst).unwrap();
    assert_eq!(copy.len(), 5 * PAGE);
    assert!(copy[..2 * PAGE + 100].iter().all(|&b| b == 0x5a));
    assert!(copy[2 * PAGE + 100..].iter().all(|&b| b == 0));
    let p = PAGE as u64;
    assert_eq!(
        map_lines(&dir.join("dst.bin.map")),
        [(0, 3 * p, '+'), (3 * p, 2 * p, '-')]
    );
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
    let out = mcsafe(&["rescue", path.to_str().unwrap(), dst.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let p = PAGE as u64;
    assert_eq!(
        map_lines(&dir.join("dst.bin.map")),
        [(0, 2 * p, '+'), (2 * p, p, '-'), (3 * p, p, '+')]
    );
    assert!(text(&out.stdout).contains("BUS_MCEERR_AR"));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_progress_bar_is_drawn_on_request_and_not_into_a_pipe() {
    let dir = scratch("progress");
    let src = dir.join("src.bin");
    fs::write(&src, vec![1u8; 64 * 1024]).unwrap();
    let dst = dir.join("dst.bin");
    let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
    let drawn = mcsafe(&["rescue", "--progress", s, d]);
    let stderr = text(&drawn.stderr);
    assert!(
        stderr.contains(&format!("[{}]", "#".repeat(30))),
        "{stderr}"
    );
    assert!(stderr.contains("100.0%"), "{stderr}");
    // stderr is a pipe here: no bar unless asked.
    let quiet = mcsafe(&["rescue", s, d]);
    assert!(
        !text(&quiet.stderr).contains('['),
        "{}",
        text(&quiet.stderr)
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn usage_and_io_errors_have_their_own_exit_statuses() {
    let usage = mcsafe(&["rescue", "only-one-path"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(text(&usage.stderr).contains("exactly two paths"));
    assert_eq!(mcsafe(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(mcsafe(&[]).status.code(), Some(2));
    let missing = mcsafe(&["rescue", "/nonexistent/src", "/tmp/never-written"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(text(&missing.stderr).contains("cannot open /nonexistent/src"));
    let help = mcsafe(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("ddrescue"));
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
fn bench_prints_the_summary_and_writes_the_plot() {
    // A tiny run: one round, classes up to 64 bytes, small cold regions.
    let plot = std::env::temp_dir().join(format!("mcsafe-cli-bench-{}.svg", std::process::id()));
    let out = mcsafe(&[
        "bench",
        "--rounds",
        "1",
        "--max-size",
        "64",
        "--cold",
        "64M",
        "--plot",
        plot.to_str().unwrap(),
    ]);
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
    let svg = std::fs::read_to_string(&plot).unwrap();
    let _ = std::fs::remove_file(&plot);
    assert!(
        svg.starts_with("<svg") && svg.contains("glibc memcpy (hot)"),
        "not the plot"
    );
}
