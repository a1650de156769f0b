//! mcsafe's task runner (`cargo xtask`, an alias in .cargo/config.toml).
//!
//! `cargo xtask capi --prefix DIR` builds and installs the C library, and
//! `cargo xtask capi-bench` measures it against memcpy from C (see `capi.rs`).
//! `cargo xtask bench-layout` (layout.rs) runs the small-size speed table under
//! several code layouts and reports the spread.
//!
//! `cargo xtask vm-test` proves recovery from real hardware poison and real machine checks in a VM
//! whose kernel has memory-failure support (this machine's has none):
//!
//! 1. finds or installs `qemu-system-x86_64` (Debian `qemu-system-x86`);
//! 2. gets the kernel `linux-image-amd64` depends on with `apt-get download`,
//!    unpacks it with `dpkg-deb -x`, and caches it under target/vm;
//! 3. builds the guest (`xtask/guest`) statically, packs it as /init into a
//!    newc cpio with the modules of the ext4-on-virtio case, makes the disk;
//! 4. boots QEMU TCG, prints one line per case the guest reports, injects
//!    machine checks through the monitor when the guest asks, reboots after a
//!    panic, and ends with `N passed, M failed`; exits non-zero on any
//!    failure, a boot that never reports, or a timeout.

mod capi;
mod cpio;
mod layout;
#[allow(dead_code)] // shared with the guest, which uses the other half
#[path = "../guest/src/protocol.rs"]
mod protocol;
mod setup;
mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

/// Runs a command with inherited output; an error names it unless it succeeds.
fn run(command: &mut Command) -> Result<(), Error> {
    let status = command.status().map_err(|e| format!("{command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?}: {status}").into());
    }
    Ok(())
}

/// The whole run, setup included, must end within this.
const TIME_LIMIT: Duration = Duration::from_secs(600);
/// The arm64 run: every instruction of every range, single-stepped under
/// full-system emulation, takes most of it (docs/vm.md).
const TIME_LIMIT_ARM64: Duration = Duration::from_secs(1200);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["vm-test"] => vm_test(vm::Arch::X86_64),
        ["vm-test-aarch64"] => vm_test(vm::Arch::Aarch64),
        ["bench-layout"] => match layout::run(&workspace()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("bench-layout: {e}");
                ExitCode::FAILURE
            }
        },
        ["capi-bench", ref rest @ ..] => match capi::bench(rest) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("capi-bench: {e}");
                ExitCode::from(2)
            }
        },
        ["capi", ref rest @ ..] => match capi::main(rest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("capi: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: {}", capi::usage());
            eprintln!("usage: cargo xtask vm-test | vm-test-aarch64 | bench-layout");
            eprintln!(
                "  vm-test: boots a Debian kernel under QEMU and runs mcsafe's real-fault cases (docs/vm.md)"
            );
            eprintln!(
                "  vm-test-aarch64: the same for arm64 (qemu-system-aarch64 -M virt, TCG), with the ptrace tests (docs/vm.md)"
            );
            eprintln!(
                "  bench-layout: the small-size speed table under several code layouts (docs/performance.md)"
            );
            ExitCode::from(2)
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn vm_test(arch: vm::Arch) -> ExitCode {
    let start = Instant::now();
    let limit = match arch {
        vm::Arch::X86_64 => TIME_LIMIT,
        vm::Arch::Aarch64 => TIME_LIMIT_ARM64,
    };
    let report = match prepare(arch).map(|machine| {
        println!(
            "vm-test: ready after {:.1} s",
            start.elapsed().as_secs_f64()
        );
        vm::run_all(&machine, start + limit)
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("vm-test: setup failed: {e}");
            println!("vm-test: 0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let passed = report.cases.iter().filter(|c| c.1).count();
    let mut failed = report.cases.len() - passed;
    if let Some(why) = &report.broken {
        println!("vm-test: the run did not finish: {why}");
        failed += 1;
    }
    let boots: Vec<String> = report
        .boots
        .iter()
        .map(|d| format!("{:.1} s", d.as_secs_f64()))
        .collect();
    println!(
        "vm-test: strategies in the guest: {}; {} machine checks injected; retries: {} after a kernel-mode \
         panic, {} after a kill outside a copy routine; boots: {}; total {:.1} s",
        report.strategies.join(", "),
        report.injections,
        report.kernel_mode_retries,
        report.outside_kills,
        boots.join(", "),
        start.elapsed().as_secs_f64()
    );
    for (place, rips) in &report.mc_rips {
        let mut distinct = rips.clone();
        distinct.sort_unstable();
        distinct.dedup();
        println!(
            "vm-test: kernel log: {} machine checks interrupted the guest in {place}, at {} distinct RIPs",
            rips.len(),
            distinct.len()
        );
    }
    for (id, _, detail) in report.cases.iter().filter(|c| !c.1) {
        println!("vm-test: FAILED {id}: {detail}");
    }
    println!("vm-test: {passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn prepare(arch: vm::Arch) -> Result<vm::Machine, Error> {
    let root = workspace();
    let dir = match arch {
        vm::Arch::X86_64 => root.join("target/vm"),
        vm::Arch::Aarch64 => root.join("target/vm-aarch64"),
    };
    std::fs::create_dir_all(&dir)?;
    let (program, package) = arch.qemu();
    let qemu = setup::tool(program, package)?;
    let mkfs = setup::tool("mkfs.ext4", "e2fsprogs")?;
    let kernel = setup::kernel(&dir.join("kernel"), arch)?;
    let modules = setup::disk_modules(&kernel, arch)?;
    println!("vm-test: building the static guest");
    let guest = setup::guest(&root, &dir.join("guest-build"), arch)?;
    let tests = match arch {
        vm::Arch::X86_64 => Vec::new(),
        vm::Arch::Aarch64 => {
            let names: Vec<&str> = protocol::ARM64_TESTS.iter().map(|t| t.0).collect();
            println!(
                "vm-test: building the static test binaries: {}",
                names.join(", ")
            );
            setup::test_binaries(&root, &dir.join("tests-build"), arch, &names)?
        }
    };
    let initrd = dir.join("initramfs.cpio");
    setup::initramfs(&guest, &modules, &tests, &initrd)?;
    let disk = dir.join("disk.img");
    setup::disk(&mkfs, &disk)?;
    Ok(vm::Machine {
        arch,
        qemu,
        kernel: kernel.vmlinuz,
        initrd,
        disk,
        dir,
    })
}
