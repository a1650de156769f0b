//! Boots the guest under QEMU (TCG), reads its result lines from the second
//! serial port, injects machine checks through the monitor when it asks, and
//! reboots it after a panic (a machine check that landed in kernel mode).
//!
//! Change it (or `setup.rs`, `cpio.rs`, the guest), then run `cargo test -p xtask
//! -p mcsafe-vm-guest` (protocol, cpio, log parsing) and `cargo xtask vm-test`,
//! which must end with `vm-test: N passed, 0 failed`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;
use crate::protocol::{INJECTIONS, Line, PARAM_MCE_FROM, Range, mce_command};

/// The guest's architecture: the x86-64 VM (machine checks injected through
/// the monitor) or the arm64 one (`-M virt`, TCG; no injected aborts: QEMU
/// raises a guest SEA only under KVM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's meta package whose dependency is the kernel to boot.
    pub fn kernel_meta(self) -> &'static str {
        match self {
            Arch::X86_64 => "linux-image-amd64",
            Arch::Aarch64 => "linux-image-arm64",
        }
    }

    /// The QEMU program and the Debian package that has it.
    pub fn qemu(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("qemu-system-x86_64", "qemu-system-x86"),
            Arch::Aarch64 => ("qemu-system-aarch64", "qemu-system-arm"),
        }
    }

    fn machine(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => MACHINE,
            Arch::Aarch64 => MACHINE_ARM64,
        }
    }

    fn cmdline(self) -> &'static str {
        match self {
            Arch::X86_64 => GUEST_CMDLINE,
            Arch::Aarch64 => GUEST_CMDLINE_ARM64,
        }
    }

    /// Machine-check injections the guest asks for.
    fn injections(self) -> usize {
        match self {
            Arch::X86_64 => INJECTIONS,
            Arch::Aarch64 => 0,
        }
    }
}

/// What the VM needs, prepared by `setup`.
pub struct Machine {
    pub arch: Arch,
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
    /// Where logs and the monitor socket go.
    pub dir: PathBuf,
}

/// Everything the runs reported.
#[derive(Default)]
pub struct Report {
    pub cases: Vec<(String, bool, String)>,
    pub strategies: Vec<String>,
    pub injections: usize,
    /// Injections that panicked the guest (landed in kernel mode): rebooted.
    pub kernel_mode_retries: usize,
    /// Injections that landed in user mode outside a copy routine and killed
    /// the copying child by SIGBUS (correct; retried on another page).
    pub outside_kills: usize,
    pub boots: Vec<Duration>,
    /// Where the kernel's machine-check log says each #MC interrupted the
    /// guest ("kernel", a strategy's routine, or "user, outside"), with the
    /// RIPs seen there (offsets into the range for a routine).
    pub mc_rips: BTreeMap<String, Vec<u64>>,
    /// The current boot's landing-pad ranges (the guest is a static PIE).
    ranges: Vec<Range>,
    /// Why the run could not finish, if it could not.
    pub broken: Option<String>,
}

/// Silence longer than this from the guest means it is stuck.
const SILENCE: Duration = Duration::from_secs(150);
/// How long after the guest's MCE-READY the host waits before injecting, so
/// that the guest is inside its copy loop, not in the kernel writing the line.
const SETTLE: Duration = Duration::from_millis(300);
/// The kernel command line. CPU 1 is kept for the machine-check copies:
/// isolated from the scheduler and without its periodic tick while one task
/// runs there (`nohz_full`), so that an injected machine check rarely finds
/// it in the kernel (in a timer interrupt, say), where it panics the guest.
const GUEST_CMDLINE: &str =
    "console=ttyS0 panic=-1 quiet hugepages=8 isolcpus=1 nohz_full=1 rcu_nocbs=1";
/// The virtual machine: TCG (KVM hangs on these hosts), an Intel vendor
/// string (the kernel recovers from machine checks in user mode only on
/// CPUs it believes can; with QEMU's default AMD vendor it panics), 2 CPUs
/// (see `GUEST_CMDLINE`), room for the 16 MiB buffers and 8 huge pages.
#[rustfmt::skip]
const MACHINE: &[&str] = &[
    "-accel", "tcg",
    "-cpu", "max,vendor=GenuineIntel",
    "-smp", "2",
    "-m", "1024",
    "-nodefaults", "-display", "none", "-no-reboot",
];
/// The arm64 VM: the `virt` board, TCG, `-cpu max` (every feature QEMU
/// emulates: CRC32, PMULL, BTI), 2 CPUs, 1 GiB; the kernel console on the
/// PL011 UART, the guest's result lines on a virtio console (hvc0).
#[rustfmt::skip]
const MACHINE_ARM64: &[&str] = &[
    "-M", "virt",
    "-accel", "tcg",
    "-cpu", "max",
    "-smp", "2",
    "-m", "1024",
    "-nodefaults", "-display", "none", "-no-reboot",
    "-device", "virtio-serial-pci",
    "-chardev", "stdio,id=results",
    "-device", "virtconsole,chardev=results",
];
/// The arm64 kernel command line (no machine checks, so no isolated CPU).
const GUEST_CMDLINE_ARM64: &str = "console=ttyAMA0 panic=-1 quiet hugepages=8";
/// Reboots allowed for injections that panicked the guest.
const MAX_REBOOTS: usize = 8;

pub fn run_all(machine: &Machine, deadline: Instant) -> Report {
    let mut report = Report::default();
    let mut mce_from = None;
    loop {
        let boot = report.boots.len() + 1;
        let started = Instant::now();
        report.ranges.clear();
        let outcome = run_once(machine, boot, mce_from, deadline, &mut report);
        report.boots.push(started.elapsed());
        let log = fs::read_to_string(console_log(machine, boot)).unwrap_or_default();
        for (place, rip) in machine_check_rips(&log, &report.ranges) {
            report.mc_rips.entry(place).or_default().push(rip);
        }
        match outcome {
            Ok(Ended::Done) => return report,
            Ok(Ended::Panicked(index)) if report.kernel_mode_retries < MAX_REBOOTS => {
                report.kernel_mode_retries += 1;
                let rip = log
                    .lines()
                    .rfind(|l| l.contains("RIP 10:"))
                    .unwrap_or("no RIP logged");
                println!(
                    "vm-test: the guest panicked on injection {index} (a machine check in kernel mode: \
                     {}): rebooting from it (retry {})",
                    rip.trim(),
                    report.kernel_mode_retries
                );
                mce_from = Some(index);
            }
            Ok(Ended::Panicked(index)) => {
                report.broken = Some(format!(
                    "injection {index}: panicked again after {MAX_REBOOTS} reboots"
                ));
                return report;
            }
            Err(e) => {
                report.broken = Some(e.to_string());
                return report;
            }
        }
    }
}

enum Ended {
    Done,
    /// The guest panicked while injection `index` was pending.
    Panicked(usize),
}

fn run_once(
    machine: &Machine,
    boot: usize,
    mce_from: Option<usize>,
    deadline: Instant,
    report: &mut Report,
) -> Result<Ended, Error> {
    let console = console_log(machine, boot);
    let monitor_path = machine.dir.join("monitor.sock");
    let _ = fs::remove_file(&monitor_path);
    let mut append = String::from(machine.arch.cmdline());
    if let Some(from) = mce_from {
        append += &format!(" {PARAM_MCE_FROM}={from}");
    }
    println!("vm-test: boot {boot}: {append}");
    let stderr = machine.dir.join(format!("qemu-{boot}.stderr"));
    let mut qemu = Command::new(&machine.qemu);
    qemu.args(machine.arch.machine())
        .arg("-kernel")
        .arg(&machine.kernel)
        .arg("-initrd")
        .arg(&machine.initrd)
        .args(["-append", &append])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw",
            machine.disk.display()
        ))
        // The first serial port: the kernel console, to a log; the guest's
        // result lines on stdio (x86-64: the second serial port, ttyS1;
        // arm64: the virtio console of MACHINE_ARM64).
        .arg("-serial")
        .arg(format!("file:{}", console.display()));
    if machine.arch == Arch::X86_64 {
        qemu.args(["-serial", "stdio"]);
    }
    let qemu = qemu
        .arg("-monitor")
        .arg(format!(
            "unix:{},server=on,wait=off",
            monitor_path.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", machine.qemu.display()))?;
    let mut vm = Running {
        qemu,
        console,
        stderr,
    };
    let lines = read_lines(vm.qemu.stdout.take().unwrap());
    let mut monitor = Monitor::connect(&monitor_path)?;
    let mut pending = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(vm.fail("the run's time limit passed"));
        }
        let line = match lines.recv_timeout(SILENCE.min(left)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(vm.fail(&format!(
                    "no word from the guest for {:?}",
                    SILENCE.min(left)
                )));
            }
            Err(RecvTimeoutError::Disconnected) => {
                // QEMU is gone: the guest panicked (panic=-1 with -no-reboot) or died.
                let _ = vm.qemu.wait();
                let log = fs::read_to_string(&vm.console).unwrap_or_default();
                // Only a machine-check panic is the injection's doing; any
                // other panic is a failure like any other.
                let mc_panic = log
                    .lines()
                    .any(|l| l.contains("Kernel panic") && l.contains("machine check"));
                return match pending {
                    Some(index) if mc_panic => Ok(Ended::Panicked(index)),
                    _ => Err(vm.fail("the VM stopped before the guest said DONE")),
                };
            }
        };
        match line {
            Line::Info(text) => println!("  guest: {text}"),
            Line::Strategies(names) => {
                println!(
                    "  guest strategies (Strategy::available() on the TCG CPU): {}",
                    names.join(", ")
                );
                report.strategies = names;
            }
            Line::Ranges(ranges) => report.ranges = ranges,
            Line::Case { id, pass, detail } => {
                println!("{} {id}: {detail}", if pass { "PASS" } else { "FAIL" });
                if id.starts_with("6-") {
                    pending = None;
                }
                report.cases.push((id, pass, detail));
            }
            Line::MceReady { index, cpu, paddr } => {
                thread::sleep(SETTLE);
                monitor.command(&mce_command(cpu, paddr))?;
                report.injections += 1;
                pending = Some(index);
            }
            Line::MceOutside { index, detail } => {
                report.outside_kills += 1;
                println!(
                    "  injection {index} landed outside a copy routine: {detail}; retrying it"
                );
            }
            Line::Done => {
                vm.wait_exit(Duration::from_secs(20));
                let done = (0..machine.arch.injections()).all(|i| {
                    report
                        .cases
                        .iter()
                        .any(|c| c.0.starts_with(&format!("6-mce-{i:02}-")))
                });
                return if done {
                    Ok(Ended::Done)
                } else {
                    Err("the guest said DONE without every injection".into())
                };
            }
        }
    }
}

fn console_log(machine: &Machine, boot: usize) -> PathBuf {
    machine.dir.join(format!("console-{boot}.log"))
}

/// The RIP of every machine check in a kernel log ("mce: [Hardware Error]:
/// RIP 33:<00007f...>"), placed: "kernel" (code segment 0x10), the strategy
/// whose landing-pad range holds it (then as an offset into the range, the
/// same in every boot), or "user, outside the routines".
fn machine_check_rips(log: &str, ranges: &[Range]) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find("Hardware Error]: RIP ")? + "Hardware Error]: RIP ".len()..];
            let (cs, rest) = rest.split_once(":<")?;
            let rip = u64::from_str_radix(rest.split('>').next()?, 16).ok()?;
            let place = if cs.trim() != "33" {
                "kernel".to_string()
            } else if let Some(r) = ranges.iter().find(|r| r.begin <= rip && rip < r.end) {
                return Some((r.name.clone(), rip - r.begin));
            } else {
                "user, outside the routines".to_string()
            };
            Some((place, rip))
        })
        .collect()
}

/// Lines from the guest's port, parsed, on a channel (which disconnects when
/// QEMU exits). Anything that is not a protocol line is ignored.
fn read_lines(out: impl Read + Send + 'static) -> Receiver<Line> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for raw in BufReader::new(out).split(b'\n') {
            let Ok(raw) = raw else { break };
            if let Some(line) = Line::parse(&String::from_utf8_lossy(&raw))
                && tx.send(line).is_err()
            {
                break;
            }
        }
    });
    rx
}

struct Running {
    qemu: Child,
    console: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn wait_exit(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.qemu.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }

    /// Stops QEMU and describes the failure with the end of the console log
    /// and QEMU's own complaints.
    fn fail(&mut self, why: &str) -> Error {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let tail = |path: &Path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        format!(
            "{why}; console ({}):\n{}\nQEMU stderr ({}):\n{}",
            self.console.display(),
            tail(&self.console),
            self.stderr.display(),
            tail(&self.stderr)
        )
        .into()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.qemu.try_wait() {
            let _ = self.qemu.kill();
            let _ = self.qemu.wait();
        }
    }
}

/// The QEMU human monitor on a unix socket.
struct Monitor {
    stream: UnixStream,
}

const PROMPT: &[u8] = b"(qemu) ";

impl Monitor {
    fn connect(path: &Path) -> Result<Monitor, Error> {
        let start = Instant::now();
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                    let mut monitor = Monitor { stream };
                    monitor.until_prompt()?;
                    return Ok(monitor);
                }
                Err(_) if start.elapsed() < Duration::from_secs(20) => {
                    thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(format!("QEMU monitor {}: {e}", path.display()).into()),
            }
        }
    }

    /// Runs one command; QEMU's answer (empty for a successful `mce`) is printed.
    fn command(&mut self, command: &str) -> Result<(), Error> {
        self.stream.write_all(format!("{command}\n").as_bytes())?;
        let answer = self.until_prompt()?;
        // The monitor echoes the command (with terminal escapes); keep the rest.
        let answer = answer
            .lines()
            .filter(|l| !l.contains(command) && !l.trim().is_empty())
            .collect::<Vec<_>>();
        if !answer.is_empty() {
            println!("  monitor: {command}: {}", answer.join(" | "));
        }
        Ok(())
    }

    fn until_prompt(&mut self) -> Result<String, Error> {
        let mut got = Vec::new();
        let mut byte = [0u8; 256];
        while !got.ends_with(PROMPT) {
            let n = self
                .stream
                .read(&mut byte)
                .map_err(|e| format!("QEMU monitor: {e}"))?;
            if n == 0 {
                return Err("QEMU monitor closed".into());
            }
            got.extend_from_slice(&byte[..n]);
        }
        let text = String::from_utf8_lossy(&got[..got.len() - PROMPT.len()]);
        Ok(text.replace(|c: char| c.is_control() && c != '\n', ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_check_rips_are_placed_by_segment_and_range() {
        let log = "[   20.6] mce: [Hardware Error]: RIP 33:<00007ff53c044992> \n\
                   [   20.7] mce: [Hardware Error]: TSC bf82ea235 ADDR 21fb000 MISC 8c \n\
                   [   21.0] mce: [Hardware Error]: RIP 10:<ffffffffac66ed4d> {__sysvec_apic_timer_interrupt+0x2d/0x110}\n\
                   [   22.0] mce: [Hardware Error]: RIP 33:<0000000000401000> \n";
        let ranges = [Range {
            name: "fragile".into(),
            begin: 0x7ff5_3c04_4900,
            end: 0x7ff5_3c04_4a00,
        }];
        assert_eq!(
            machine_check_rips(log, &ranges),
            [
                ("fragile".to_string(), 0x92),
                ("kernel".to_string(), 0xffff_ffff_ac66_ed4d),
                ("user, outside the routines".to_string(), 0x40_1000),
            ]
        );
    }
}
