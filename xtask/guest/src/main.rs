//! The `/init` of mcsafe's VM harness (`cargo xtask vm-test`).
//!
//! Runs as PID 1 of a Debian kernel with memory-failure support under QEMU:
//! mounts what the cases need, loads the modules for the ext4 disk, runs each
//! case of issue 3 in a forked child (a crash fails one case, reported with
//! its signal), writes one result line per case to the second serial port
//! (see `protocol.rs`), and powers the VM off.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod cases;
mod lossy;
#[cfg(target_arch = "x86_64")]
mod mce;
mod mem;
#[allow(dead_code)] // shared with the host, which uses the other half
mod protocol;
mod record;

use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use mcsafe::Strategy;
use protocol::{Line, PARAM_MCE_FROM};

/// The port the host reads: the x86-64 VM's second serial port, or the arm64
/// VM's virtio console (its one PL011 UART is the kernel's console), raw mode.
#[derive(Clone, Copy)]
pub struct Port(i32);

impl Port {
    fn open() -> Result<Port, String> {
        // SAFETY: plain system calls on a descriptor we own.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            let path = c"/dev/ttyS1";
            #[cfg(target_arch = "aarch64")]
            let path = c"/dev/hvc0";
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(mem::os_error(&format!("open {path:?}")));
            }
            let mut tio: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut tio) == 0 {
                libc::cfmakeraw(&mut tio);
                libc::tcsetattr(fd, libc::TCSANOW, &tio);
            }
            Ok(Port(fd))
        }
    }

    /// Sends one line (one write, so lines of two processes never mix).
    pub fn send(&self, line: &Line) {
        write_all(self.0, format!("{line}\n").as_bytes());
        // The console (ttyS0, a log file on the host) gets a copy for context.
        println!("{line}");
    }
}

fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a live buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// What a case child gets.
pub struct Child {
    pub strategies: Vec<Strategy>,
    pub port: Port,
    notes: i32,
}

impl Child {
    /// Tells the parent how far the case got (for cases that must die).
    pub fn note(&self, text: &str) {
        write_all(self.notes, format!("NOTE {text}\n").as_bytes());
    }
}

/// How a case child ended.
pub enum Verdict {
    /// It reported, then exited normally.
    Reported(Result<String, String>),
    /// Killed by a signal, with the notes it wrote first.
    Killed(i32, String),
    /// Exited without a report.
    Exited(i32, String),
    TimedOut(String),
}

impl Verdict {
    /// The case's result, given the signal that must end it, if any.
    pub fn into_result(self, must_die_by: Option<i32>) -> Result<String, String> {
        match (self, must_die_by) {
            (Verdict::Reported(result), None) => result,
            (Verdict::Reported(result), Some(sig)) => Err(format!(
                "not killed by signal {sig}: {}",
                result.unwrap_or_else(|e| e)
            )),
            (Verdict::Killed(sig, notes), Some(want)) if sig == want && !notes.is_empty() => {
                Ok(format!("{notes}; then killed by {}", signal_name(sig)))
            }
            (Verdict::Killed(sig, notes), _) => Err(format!(
                "child killed by {} (see the console log); its notes: {notes}",
                signal_name(sig)
            )),
            (Verdict::Exited(code, notes), _) => Err(format!(
                "child exited {code} without a report; notes: {notes}"
            )),
            (Verdict::TimedOut(notes), _) => Err(format!("timed out and killed; notes: {notes}")),
        }
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGKILL => "SIGKILL".into(),
        n => format!("signal {n}"),
    }
}

static ALARM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: i32) {
    ALARM.store(true, Relaxed);
}

/// Runs `body` in a forked child with a time limit, and says how it ended.
pub fn in_child(
    strategies: Vec<Strategy>,
    port: Port,
    limit: Duration,
    body: impl FnOnce(&mut Child) -> Result<String, String>,
) -> Verdict {
    record::clear();
    let mut fds = [0; 2];
    // SAFETY: plain system calls; the child leaves through _exit only.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe");
        let pid = libc::fork();
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            libc::close(fds[0]);
            let mut child = Child {
                strategies,
                port,
                notes: fds[1],
            };
            let report = match catch_unwind(AssertUnwindSafe(|| body(&mut child))) {
                Ok(Ok(text)) => format!("PASS {text}\n"),
                Ok(Err(text)) => format!("FAIL {text}\n"),
                Err(_) => "FAIL panicked (message on the console log)\n".to_string(),
            };
            write_all(fds[1], report.as_bytes());
            libc::_exit(0);
        }
        libc::close(fds[1]);
        ALARM.store(false, Relaxed);
        libc::alarm(limit.as_secs().max(1) as u32);
        let mut output = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
            if n > 0 {
                output.extend_from_slice(&buf[..n as usize]);
            } else if n == 0 || ALARM.load(Relaxed) {
                break;
            }
        }
        libc::close(fds[0]);
        if ALARM.load(Relaxed) {
            libc::kill(pid, libc::SIGKILL);
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {
            // Interrupted by the alarm while the child closed its pipe but
            // lingers: it is out of time.
            libc::kill(pid, libc::SIGKILL);
        }
        libc::alarm(0);
        let output = String::from_utf8_lossy(&output);
        let notes: Vec<&str> = output
            .lines()
            .filter_map(|l| l.strip_prefix("NOTE "))
            .collect();
        let notes = notes.join("; ");
        let report = output.lines().find_map(|l| {
            l.strip_prefix("PASS ")
                .map(|t| Ok(t.to_string()))
                .or_else(|| l.strip_prefix("FAIL ").map(|t| Err(t.to_string())))
        });
        if ALARM.load(Relaxed) && report.is_none() {
            return Verdict::TimedOut(notes);
        }
        if libc::WIFSIGNALED(status) {
            return Verdict::Killed(libc::WTERMSIG(status), notes);
        }
        match report {
            Some(result) if libc::WEXITSTATUS(status) == 0 => Verdict::Reported(result),
            _ => Verdict::Exited(libc::WEXITSTATUS(status), notes),
        }
    }
}

fn mount(source: &str, target: &str, fstype: &str) -> Result<(), String> {
    let c = |s: &str| CString::new(s).unwrap();
    let _ = std::fs::create_dir_all(target);
    // SAFETY: plain system call with valid strings.
    let rc = unsafe {
        libc::mount(
            c(source).as_ptr(),
            c(target).as_ptr(),
            c(fstype).as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(mem::os_error(&format!("mount {fstype} on {target}")));
    }
    Ok(())
}

/// Loads the modules the host packed under /modules (already in dependency
/// order by name), waits for the virtio disk and mounts its ext4 file system.
fn mount_disk() -> Result<String, String> {
    let mut names: Vec<_> = std::fs::read_dir("/modules")
        .map_err(|e| format!("/modules: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for path in &names {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: finit_module on an open module file, no parameters.
        let rc =
            unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c"".as_ptr(), 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            return Err(mem::os_error(&format!("finit_module {}", path.display())));
        }
    }
    let disk = "/dev/vda";
    for _ in 0..100 {
        if std::path::Path::new(disk).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    mount(disk, cases::EXT4_DIR, "ext4")?;
    Ok(format!(
        "{} modules loaded, {disk} mounted on {} (ext4)",
        names.len(),
        cases::EXT4_DIR
    ))
}

fn power_off() -> ! {
    // SAFETY: PID 1 ending the VM after flushing file systems.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn first_line_of(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("{path}: no {key}"))
}

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "mcsafe-vm-guest is the /init of the VM that `cargo xtask vm-test` boots; run that instead"
        );
        std::process::exit(2);
    }
    let mounted = [
        ("proc", "/proc", "proc"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("sysfs", "/sys", "sysfs"),
    ]
    .iter()
    .map(|(s, t, f)| mount(s, t, f))
    .collect::<Result<Vec<()>, String>>();
    let port = match mounted.and_then(|_| Port::open()) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("mcsafe guest: {e}");
            power_off();
        }
    };
    // A child's time limit interrupts the parent's waits.
    // SAFETY: a plain handler that only stores an atomic; no SA_RESTART.
    unsafe { libc::signal(libc::SIGALRM, on_alarm as *const () as usize) };
    record::init();

    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mce_from: Option<usize> = cmdline.split_whitespace().find_map(|w| {
        w.strip_prefix(PARAM_MCE_FROM)?
            .strip_prefix('=')?
            .parse()
            .ok()
    });
    let strategies = Strategy::available();
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    port.send(&Line::Info(format!(
        "kernel {}, {}, memory_failure_recovery {}",
        uname.trim(),
        first_line_of("/proc/cpuinfo", "model name"),
        std::fs::read_to_string("/proc/sys/vm/memory_failure_recovery")
            .unwrap_or("missing".into())
            .trim()
    )));
    port.send(&Line::Info(format!(
        "{}, THP {}",
        first_line_of("/proc/meminfo", "HugePages_Total"),
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default()
            .trim()
    )));
    let untraced: Vec<String> = mcsafe::internals::CrcPath::ALL
        .into_iter()
        .filter(|p| !p.is_available())
        .map(|p| format!("{p:?}"))
        .collect();
    #[cfg(target_arch = "x86_64")]
    port.send(&Line::Info(format!(
        "crc32c_mc takes the {:?} path here (sse4.2 {}, pclmulqdq {}, avx {}, avx2 {}, vpclmulqdq {}, \
         avx512f {}, avx512vl {}); paths this CPU cannot take, so no real fault reaches their \
         routines here: {}",
        mcsafe::internals::CrcPath::current(),
        std::arch::is_x86_feature_detected!("sse4.2"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
        std::arch::is_x86_feature_detected!("avx"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("vpclmulqdq"),
        std::arch::is_x86_feature_detected!("avx512f"),
        std::arch::is_x86_feature_detected!("avx512vl"),
        if untraced.is_empty() {
            "none".to_string()
        } else {
            untraced.join(", ")
        },
    )));
    // Not mcsafe::dispatch(), which installs: the cases install mcsafe
    // themselves, each in its own order with its own handlers.
    #[cfg(target_arch = "aarch64")]
    port.send(&Line::Info(format!(
        "crc32c_mc takes the {:?} path here (HWCAP {:#x}); paths of this target it cannot \
         take: {}",
        mcsafe::internals::CrcPath::current(),
        // SAFETY: getauxval has no preconditions.
        unsafe { libc::getauxval(libc::AT_HWCAP) },
        {
            use mcsafe::internals::CrcPath;
            let here = [CrcPath::Pmull, CrcPath::Stream];
            let missing: Vec<String> = untraced
                .iter()
                .filter(|p| here.iter().any(|h| format!("{h:?}") == **p))
                .cloned()
                .collect();
            if missing.is_empty() {
                "none".to_string()
            } else {
                missing.join(", ")
            }
        },
    )));
    port.send(&Line::Strategies(
        strategies.iter().map(|s| s.name().to_string()).collect(),
    ));
    port.send(&Line::Ranges(
        mcsafe::internals::landing_pads()
            .map(|pad| protocol::Range {
                name: cases::routine_at(pad.begin).unwrap_or("?").to_string(),
                begin: pad.begin as u64,
                end: pad.end as u64,
            })
            .collect(),
    ));

    if mce_from.is_none() {
        let disk = mount_disk();
        port.send(&Line::Info(
            disk.clone()
                .unwrap_or_else(|e| format!("no ext4 disk: {e}")),
        ));
        #[cfg(target_arch = "x86_64")]
        let own: &[cases::Case] = &[];
        #[cfg(target_arch = "aarch64")]
        let own = aarch64::CASES;
        for case in cases::CASES.iter().chain(own) {
            let must_die_by = match case.ending {
                cases::Ending::Report => None,
                cases::Ending::KilledBy(sig) => Some(sig),
            };
            let result = if case.id.starts_with("4-") && disk.is_err() {
                Err(format!("no ext4 disk: {}", disk.clone().unwrap_err()))
            } else {
                in_child(strategies.clone(), port, Duration::from_secs(120), case.run)
                    .into_result(must_die_by)
            };
            port.send(&Line::Case {
                id: case.id.to_string(),
                pass: result.is_ok(),
                detail: format!("{}: {}", case.title, result.unwrap_or_else(|e| e)),
            });
        }
        // SAFETY: plain system call.
        unsafe { libc::umount2(c"/mnt".as_ptr(), 0) };
        #[cfg(target_arch = "aarch64")]
        for &(name, args) in aarch64::TESTS {
            let result = aarch64::run_test(name, args, Duration::from_secs(1000), port);
            port.send(&Line::Case {
                id: format!("T-{name}"),
                pass: result.is_ok(),
                detail: format!(
                    "/tests/{name} under the real kernel: {}",
                    result.unwrap_or_else(|e| e)
                ),
            });
        }
    }
    #[cfg(target_arch = "x86_64")]
    mce::run(&strategies, &port, mce_from.unwrap_or(0));
    port.send(&Line::Done);
    power_off();
}
