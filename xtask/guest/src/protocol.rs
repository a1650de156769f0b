//! What the guest and the host say to each other. Shared, file for file, by the
//! guest (`mod protocol;`) and the host (`#[path]` to this file), so the two
//! sides cannot drift apart.
//!
//! Guest to host: one line per message on the VM's second serial port
//! (`/dev/ttyS1`; the kernel's console is the first one and never writes
//! there), each starting with [`PREFIX`]. Host to guest: kernel command-line
//! parameters, read by the guest from `/proc/cmdline`.

/// Every protocol line starts with this; anything else on the port is noise.
pub const PREFIX: &str = "MCSAFE";

/// Kernel parameter: run machine-check injections from this index on (after a
/// reboot that followed a guest panic). Its presence also skips cases 1-5, 7, 8,
/// which the first boot already ran.
pub const PARAM_MCE_FROM: &str = "mcsafe_mce_from";

/// Machine-check injections per run: 24 into copies (issue 3 asks for at
/// least 20), then 6 into the checksum and 6 into the one-pass copy and
/// checksum (issue 10); see the guest's `mce.rs`.
pub const INJECTIONS: usize = 36;

/// The test binaries of `mcsafe-tests` the arm64 VM runs under its real kernel,
/// each with its arguments: the host builds them statically and packs them under
/// /tests (`setup::test_binaries`), the guest runs them (`aarch64.rs`). What
/// qemu-user cannot emulate (tests/common `qemu_user`): ptrace (every instruction
/// of every range, the forged faults of fault_kinds, promises, pass_on and forward_step,
/// the races of chaining_rules), a death by mcsafe's pass-on to SIG_DFL
/// (pass_on, chaining_matrix, foreign_faults, replacements), a SIGBUS forced
/// through a blocked mask (api's), real MADV_HWPOISON (inject), userfaultfd
/// (uffd_poison, storage_uffd, and the uffd backings of lossy and region).
pub const ARM64_TESTS: &[(&str, &[&str])] = &[
    ("every_instruction", &[]),
    ("fault_kinds", &["--test-threads=1"]),
    ("forward_step", &["--test-threads=1"]),
    ("pass_on", &["--test-threads=1"]),
    ("chaining_rules", &["--test-threads=1"]),
    ("chaining_matrix", &["--test-threads=1"]),
    ("foreign_faults", &["--test-threads=1"]),
    ("replacements", &["--test-threads=1"]),
    ("inject", &["--test-threads=1"]),
    ("uffd_poison", &["--test-threads=1"]),
    ("storage_uffd", &["--test-threads=1"]),
    ("lossy", &["--test-threads=1"]),
    // Its full-tmpfs rescue test runs cp, which the guest lacks (it runs under
    // qemu-user, where the host's cp is there).
    (
        "region",
        &[
            "--test-threads=1",
            "--skip",
            "a_sparse_file_on_a_full_tmpfs",
        ],
    ),
    (
        "api",
        &["--test-threads=1", "install_reports_sigbus_blocked"],
    ),
    // Fault::raw_os_error of each kernel code (forged by ptrace).
    (
        "promises",
        &[
            "--test-threads=1",
            "raw_os_error_is_the_errno_of_each_fault_kind",
        ],
    ),
];

/// The QEMU monitor command that raises a machine check for the page at
/// physical address `paddr` on CPU `cpu`: bank 1, status VAL|UC|EN|MISCV|ADDRV|S|AR
/// with a data-load error code, MCG status RIPV|EIPV|MCIP, misc "physical
/// address, lsb 12" (the numbers of /work/shared/FAULT-MODEL.md).
pub fn mce_command(cpu: usize, paddr: u64) -> String {
    format!("mce {cpu} 1 0xbd80000000100134 0xf {paddr:#x} 0x8c")
}

/// One line from the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Something worth printing (kernel, CPU, setup facts).
    Info(String),
    /// The strategies `Strategy::available()` offers on the guest's CPU.
    Strategies(Vec<String>),
    /// The guest's landing-pad ranges, each with its strategy's name, so that
    /// the host can place the RIPs of the kernel's machine-check log.
    Ranges(Vec<Range>),
    /// A case ended: its id, whether it passed, and what it saw.
    Case {
        id: String,
        pass: bool,
        detail: String,
    },
    /// Injection `index` is ready: the guest copies, on CPU `cpu`, from the
    /// page at `paddr` and waits for a machine check there.
    MceReady {
        index: usize,
        cpu: usize,
        paddr: u64,
    },
    /// Injection `index` landed in user mode outside a copy routine and
    /// killed the copying process (the correct outcome, not mcsafe's fault);
    /// the guest retries that injection on a fresh page.
    MceOutside { index: usize, detail: String },
    /// All cases ran; the guest powers off next.
    Done,
}

impl Line {
    /// Parses a line of the serial port; `None` for anything that is not ours.
    pub fn parse(line: &str) -> Option<Line> {
        let rest = line.trim_end_matches(['\r', '\n']);
        let rest = rest.strip_prefix(PREFIX)?.strip_prefix(' ')?;
        let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let (first, after_first) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(match word {
            "INFO" => Line::Info(rest.to_string()),
            "STRATEGIES" => Line::Strategies(rest.split(',').map(str::to_string).collect()),
            "RANGES" => Line::Ranges(rest.split(' ').map(Range::parse).collect::<Option<_>>()?),
            "CASE" => {
                let (verdict, detail) = after_first.split_once(' ').unwrap_or((after_first, ""));
                Line::Case {
                    id: first.to_string(),
                    pass: match verdict {
                        "PASS" => true,
                        "FAIL" => false,
                        _ => return None,
                    },
                    detail: detail.to_string(),
                }
            }
            "MCE-READY" => {
                let (cpu, paddr) = after_first.split_once(' ')?;
                Line::MceReady {
                    index: first.parse().ok()?,
                    cpu: cpu.parse().ok()?,
                    paddr: u64::from_str_radix(paddr.trim().trim_start_matches("0x"), 16).ok()?,
                }
            }
            "MCE-OUTSIDE" => Line::MceOutside {
                index: first.parse().ok()?,
                detail: after_first.to_string(),
            },
            "DONE" => Line::Done,
            _ => return None,
        })
    }
}

/// A landing-pad range `[begin, end)` of the routine of strategy `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub name: String,
    pub begin: u64,
    pub end: u64,
}

impl Range {
    fn parse(word: &str) -> Option<Range> {
        let (name, range) = word.split_once('=')?;
        let (begin, end) = range.split_once('-')?;
        let hex = |h: &str| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok();
        Some(Range {
            name: name.to_string(),
            begin: hex(begin)?,
            end: hex(end)?,
        })
    }
}

impl core::fmt::Display for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Line::Info(text) => write!(f, "{PREFIX} INFO {text}"),
            Line::Strategies(names) => write!(f, "{PREFIX} STRATEGIES {}", names.join(",")),
            Line::Ranges(ranges) => {
                write!(f, "{PREFIX} RANGES")?;
                ranges
                    .iter()
                    .try_for_each(|r| write!(f, " {}={:#x}-{:#x}", r.name, r.begin, r.end))
            }
            Line::Case { id, pass, detail } => {
                let verdict = if *pass { "PASS" } else { "FAIL" };
                // One line: a detail never carries a newline onto the port.
                let detail = detail.replace(['\n', '\r'], " | ");
                write!(f, "{PREFIX} CASE {id} {verdict} {detail}")
            }
            Line::MceReady { index, cpu, paddr } => {
                write!(f, "{PREFIX} MCE-READY {index} {cpu} {paddr:#x}")
            }
            Line::MceOutside { index, detail } => {
                write!(f, "{PREFIX} MCE-OUTSIDE {index} {detail}")
            }
            Line::Done => write!(f, "{PREFIX} DONE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_reads_back_as_written() {
        let lines = [
            Line::Info("kernel 6.1".into()),
            Line::Strategies(vec!["fragile".into(), "avx2".into()]),
            Line::Ranges(vec![
                Range {
                    name: "fragile".into(),
                    begin: 0x7f00_0000_1000,
                    end: 0x7f00_0000_1080,
                },
                Range {
                    name: "avx2".into(),
                    begin: 0x2000,
                    end: 0x2100,
                },
            ]),
            Line::Case {
                id: "1-anon-src".into(),
                pass: true,
                detail: "all good".into(),
            },
            Line::Case {
                id: "8".into(),
                pass: false,
                detail: String::new(),
            },
            Line::MceReady {
                index: 3,
                cpu: 1,
                paddr: 0x1234_5000,
            },
            Line::MceOutside {
                index: 7,
                detail: "rip 0x401000".into(),
            },
            Line::Done,
        ];
        for line in lines {
            assert_eq!(Line::parse(&format!("{line}\r\n")), Some(line));
        }
    }

    #[test]
    fn noise_is_not_a_line() {
        assert_eq!(Line::parse("[    1.0] Memory failure: 0x1234"), None);
        assert_eq!(Line::parse("MCSAFE CASE x MAYBE y"), None);
        assert_eq!(Line::parse("MCSAFEX DONE"), None);
    }
}
