//! The main job, shown on a real fault: a file is mapped, then truncated under
//! its mapping, so its last pages have no file behind them. A plain memcpy of
//! the mapping (run in a child process) dies of SIGBUS; `mcsafe::copy_mc` of the
//! same mapping returns a `Fault` that says how much was copied, which side
//! faulted and why, and the process carries on.
//!
//!     cargo run --release --example demo

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::ptr;

const FILE_LEN: usize = 64 * 1024;
const TRUNCATED_LEN: usize = 40_000;

/// Maps `len` bytes of the file at `path`, shared and read-only.
fn map(path: &Path, len: usize) -> *const u8 {
    let file = File::open(path).expect("open the data file");
    // SAFETY: a fresh read-only shared mapping of an open file; the mapping
    // outlives the descriptor, as mmap allows.
    let p = unsafe {
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
        p,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    p.cast()
}

fn byte(i: usize) -> u8 {
    (i * 7 + i / 251) as u8
}

/// What a program without mcsafe does: memcpy out of the mapping. Run as a child.
fn plain_memcpy(path: &Path) {
    let src = map(path, FILE_LEN);
    let mut buf = vec![0u8; FILE_LEN];
    // SAFETY: the mapping is FILE_LEN bytes; its tail has no file behind it, so
    // this raises SIGBUS, which is the point of the demonstration.
    unsafe { ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), FILE_LEN) };
    std::hint::black_box(&buf);
    println!("plain memcpy survived (it should not have)");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = &args[..]
        && flag == "--plain-memcpy"
    {
        plain_memcpy(Path::new(path));
        return ExitCode::SUCCESS;
    }

    let dir = std::env::temp_dir().join(format!("mcsafe-demo-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a temporary directory");
    let path = dir.join("data.bin");
    let data: Vec<u8> = (0..FILE_LEN).map(byte).collect();
    File::create(&path)
        .and_then(|mut f| f.write_all(&data))
        .expect("write the data file");

    println!("mcsafe demo (strategy: {})", mcsafe::Strategy::current());
    let src = map(&path, FILE_LEN);
    println!(
        "1. wrote {FILE_LEN} bytes to {} and mapped all of them",
        path.display()
    );
    File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(TRUNCATED_LEN as u64))
        .expect("truncate the data file");
    let page = 4096;
    let lost_from = TRUNCATED_LEN.div_ceil(page) * page;
    println!(
        "2. truncated the file to {TRUNCATED_LEN} bytes: mapped pages from offset {lost_from} on \
         now have no file behind them"
    );

    let child = Command::new(std::env::current_exe().unwrap())
        .arg("--plain-memcpy")
        .arg(&path)
        .status()
        .expect("run the plain memcpy child");
    match child.signal() {
        Some(libc::SIGBUS) => {
            println!("3. plain memcpy of the mapping, in a child process: killed by SIGBUS")
        }
        _ => println!("3. plain memcpy of the mapping, in a child process: ended with {child}"),
    }

    let mut buf = vec![0u8; FILE_LEN];
    let before = mcsafe::stats();
    // SAFETY: `src` maps FILE_LEN bytes (some of which now fault with SIGBUS);
    // `buf` is a distinct heap buffer of the same length.
    let result = unsafe { mcsafe::copy_mc(buf.as_mut_ptr(), src, FILE_LEN) };
    let signals = mcsafe::stats().recovered - before.recovered;
    let _ = fs::remove_dir_all(&dir);
    let Err(fault) = result else {
        println!("4. mcsafe::copy_mc copied everything: the kernel did not fault (unexpected)");
        return ExitCode::FAILURE;
    };
    // What the mapping holds before the lost page: the file's bytes, then the
    // rest of its last page, which the kernel fills with zeros.
    let copied = &buf[..fault.copied()];
    let prefix_ok = copied.len() >= TRUNCATED_LEN
        && copied[..TRUNCATED_LEN] == data[..TRUNCATED_LEN]
        && copied[TRUNCATED_LEN..].iter().all(|&b| b == 0);
    println!("4. mcsafe::copy_mc of the same mapping returned an error instead of dying:");
    println!("     {fault}");
    println!(
        "     copied:  {} of {FILE_LEN} bytes, {} the mapping (the file's {TRUNCATED_LEN} \
         bytes, then zeros to the end of its last page)",
        fault.copied(),
        if prefix_ok {
            "identical to"
        } else {
            "NOT identical to"
        },
    );
    println!("     side:    {}", fault.side());
    println!("     kind:    {}", fault.kind());
    println!(
        "     address: {:#x} (granule {} bytes)",
        fault.addr(),
        fault.granule()
    );
    println!("     signals: {signals} SIGBUS taken and recovered");
    println!("5. this process is alive and carries on.");
    if prefix_ok && fault.copied() == lost_from && signals == 1 {
        ExitCode::SUCCESS
    } else {
        println!("   (expected {lost_from} bytes copied with one signal)");
        ExitCode::FAILURE
    }
}
