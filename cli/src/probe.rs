//! `mcsafe probe`: what this machine and kernel let mcsafe recover, and how.
//!
//! The first line is the verdict ([`verdict`]), drawn from the facts the
//! lines below it report: the handler installed or not (and why), a forced
//! strategy that cannot run, memory-failure support, its recovery sysctl,
//! early kill.

use std::fs;
use std::process::ExitCode;

use mcsafe::Strategy;
use mcsafe::inject::{self, Method};

pub fn run() -> ExitCode {
    print!("{}", report());
    ExitCode::SUCCESS
}

/// What the verdict is drawn from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `MCSAFE_STRATEGY` names a strategy that does not exist or cannot run
    /// here: every copy would panic.
    pub strategy_problem: Option<String>,
    /// Why mcsafe's SIGBUS handler cannot be installed, if it cannot.
    pub not_installed: Option<String>,
    /// `CONFIG_MEMORY_FAILURE`.
    pub memory_failure: bool,
    /// `vm.memory_failure_recovery`: `None` where it cannot be read.
    pub recovery: Option<bool>,
    /// `vm.memory_failure_early_kill`.
    pub early_kill: Option<bool>,
}

/// The report's first line: what this machine recovers, and what not and why.
///
/// Truncation (`BUS_ADRERR` past the end of a file), failed page-ins (a file
/// system's I/O error) and holes that cannot be paged in (a full file system)
/// need only the handler; hardware memory errors also need the kernel's
/// memory-failure support with its recovery on.
pub fn verdict(facts: &Facts) -> String {
    if let Some(problem) = &facts.strategy_problem {
        return format!(
            "recovers: nothing in this environment: {problem} (every copy would panic: unset {} \
             or name an available strategy)",
            mcsafe::STRATEGY_ENV
        );
    }
    if let Some(why) = &facts.not_installed {
        return format!("recovers: nothing here: the SIGBUS handler is not installed: {why}");
    }
    let recovered = "recovers: truncation, page-in errors, holes";
    let hardware = "hardware memory errors";
    match (facts.memory_failure, facts.recovery, facts.early_kill) {
        (false, ..) => format!("{recovered}; not {hardware} here: no CONFIG_MEMORY_FAILURE"),
        (true, Some(false), _) => format!(
            "{recovered}; not {hardware} here: vm.memory_failure_recovery=0 (the kernel panics \
             on poison)"
        ),
        (true, None, _) => format!(
            "{recovered}, {hardware} if the kernel recovers them (vm.memory_failure_recovery \
             cannot be read here)"
        ),
        (true, Some(true), Some(true)) => format!(
            "{recovered}, {hardware} a copy touches (BUS_MCEERR_AR); not poison the kernel finds \
             first: vm.memory_failure_early_kill=1 sends BUS_MCEERR_AO, which kills"
        ),
        (true, Some(true), _) => format!("{recovered}, {hardware} (BUS_MCEERR_AR)"),
    }
}

/// The whole report, as printed.
pub fn report() -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<22}{value}\n"));

    line("cpu", cpu_name());
    line("cpu features", cpu_features());
    let available = Strategy::available();
    let forced = std::env::var(mcsafe::STRATEGY_ENV).ok();
    let strategy_problem = crate::strategy_env_problem();
    let caps = inject::capabilities();
    let recovery = sysctl("memory_failure_recovery");
    let mut facts = Facts {
        strategy_problem: strategy_problem.clone(),
        not_installed: None,
        memory_failure: caps.memory_failure(),
        recovery: recovery.as_deref().map(|v| v == "1"),
        early_kill: caps.early_kill(),
    };
    if let Some(problem) = &strategy_problem {
        // Strategy::current, the dispatch and install would panic.
        line("strategy", format!("none: {problem}"));
        line("strategies available", names(&available));
        facts.not_installed = Some(format!("not tried: {problem}"));
        out.insert_str(0, &format!("{}\n", verdict(&facts)));
        let before = disposition();
        return out + &kernel_report(&caps, recovery.as_deref(), &before, None);
    }
    let current = Strategy::current();
    line(
        "strategy",
        match &forced {
            Some(name) => format!("{current} (forced by {}={name})", mcsafe::STRATEGY_ENV),
            None => format!("{current} (chosen from CPUID)"),
        },
    );
    line("strategies available", names(&available));
    let dispatch = mcsafe::dispatch();
    line("dispatch rule", dispatch.rule);
    line("thresholds", dispatch.thresholds.to_string());
    line(
        "tunables",
        match &dispatch.tunables {
            Some(text) => format!("{}={text}", mcsafe::TUNABLES_ENV),
            None => format!("none ({} is not set)", mcsafe::TUNABLES_ENV),
        },
    );
    for ignored in &dispatch.ignored_tunables {
        line("tunable ignored", format!("{ignored}; its default is kept"));
    }
    line("crc32c", dispatch.checksum.to_string());
    if forced.is_none() && current == Strategy::Fragile && available.len() > 1 {
        line(
            "fragile cpu",
            "yes: a model the kernel treats as unable to recover from poison consumed by \
             fast strings; only the fragile routine is recoverable here"
                .into(),
        );
    }

    let before = disposition();
    let installed = mcsafe::install().map_err(|e| e.to_string());
    facts.not_installed = installed.as_ref().err().cloned();
    out.insert_str(0, &format!("{}\n", verdict(&facts)));
    out + &kernel_report(&caps, recovery.as_deref(), &before, Some(installed))
}

/// The kernel's capabilities, the injection methods and the SIGBUS handler:
/// `before` is its disposition before `install`, `installed` what `install`
/// returned, `None` where it was not tried.
fn kernel_report(
    caps: &inject::Capabilities,
    recovery: Option<&str>,
    before: &str,
    installed: Option<Result<(), String>>,
) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<22}{value}\n"));

    line("kernel", caps.kernel().to_string());
    line(
        "memory failure",
        if caps.memory_failure() {
            format!(
                "yes (CONFIG_MEMORY_FAILURE); recovery {}",
                recovery
                    .map(|v| if v == "1" {
                        "on"
                    } else {
                        "off: the kernel panics on poison"
                    })
                    .unwrap_or("unknown")
            )
        } else {
            "no (CONFIG_MEMORY_FAILURE is off): a machine check in user mode kills the \
             process, whatever mcsafe does; truncation and page-in faults are still recovered"
                .into()
        },
    );
    line(
        "early kill",
        match caps.early_kill() {
            Some(true) => "on (vm.memory_failure_early_kill=1): processes mapping a page found \
                           poisoned get BUS_MCEERR_AO at once, which mcsafe passes on (SIG_DFL \
                           kills)"
                .into(),
            Some(false) => "off (vm.memory_failure_early_kill=0): poison is reported when \
                            touched (BUS_MCEERR_AR), which mcsafe recovers"
                .into(),
            None => "n/a (no memory-failure support)".into(),
        },
    );
    line(
        "UFFDIO_POISON",
        match caps.check(Method::UffdPoison) {
            Ok(()) => format!(
                "yes, reported as {}",
                kind_code(caps.expected_kind(Method::UffdPoison))
            ),
            Err(e) => format!("no: {}", e.hint()),
        },
    );
    line("fault injection", "(mcsafe::inject methods)".into());
    for method in Method::ALL {
        line(
            &format!("  {method}"),
            match caps.check(method) {
                Ok(()) => format!("yes ({})", kind_code(caps.expected_kind(method))),
                Err(e) => format!("no: {e}"),
            },
        );
    }

    line("SIGBUS before mcsafe", before.to_string());
    line(
        "SIGBUS handler",
        match installed {
            Some(Ok(())) => "mcsafe's, installed (SA_SIGINFO | SA_ONSTACK | SA_NODEFER); other \
                             SIGBUS go to the disposition above"
                .into(),
            Some(Err(e)) => format!("not installed: {e}"),
            None => format!("not installed: {} is wrong", mcsafe::STRATEGY_ENV),
        },
    );
    let stats = mcsafe::stats();
    line(
        "handler counters",
        format!(
            "{} recovered, {} passed on",
            stats.recovered, stats.passed_on
        ),
    );
    out
}

fn kind_code(kind: mcsafe::FaultKind) -> &'static str {
    match kind {
        mcsafe::FaultKind::Poison => "BUS_MCEERR_AR",
        mcsafe::FaultKind::ObjectError => "BUS_OBJERR",
        _ => "BUS_ADRERR",
    }
}

fn names(list: &[Strategy]) -> String {
    if list.is_empty() {
        return "none (no fault-safe copies on this target)".into();
    }
    list.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

fn sysctl(name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/sys/vm/{name}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The SIGBUS disposition in place now (before `install` in `report`).
fn disposition() -> String {
    let mut action = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only queries; `action` is writable.
    if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), action.as_mut_ptr()) } != 0 {
        return format!("unknown ({})", std::io::Error::last_os_error());
    }
    // SAFETY: sigaction filled it in.
    let action = unsafe { action.assume_init() };
    match action.sa_sigaction {
        libc::SIG_DFL => "SIG_DFL (a SIGBUS that is not mcsafe's kills the process)".into(),
        libc::SIG_IGN => "SIG_IGN".into(),
        addr => format!(
            "a handler at {addr:#x} (in a Rust program, the standard library's stack \
             overflow reporter); mcsafe passes on to it every SIGBUS that is not its own"
        ),
    }
}

#[cfg(target_arch = "x86_64")]
pub fn cpu_name() -> String {
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86-64 CPU; leaves are checked before use.
    #[allow(unused_unsafe)]
    let (vendor, signature, max_ext) = unsafe { (__cpuid(0), __cpuid(1), __cpuid(0x8000_0000)) };
    let mut vendor_bytes = Vec::new();
    for word in [vendor.ebx, vendor.edx, vendor.ecx] {
        vendor_bytes.extend_from_slice(&word.to_le_bytes());
    }
    let mut brand = Vec::new();
    if max_ext.eax >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            // SAFETY: the leaf exists (checked above).
            #[allow(unused_unsafe)]
            let r = unsafe { __cpuid(leaf) };
            for word in [r.eax, r.ebx, r.ecx, r.edx] {
                brand.extend_from_slice(&word.to_le_bytes());
            }
        }
    }
    // The display family: the base family, plus the extended family when the
    // base is 0xf (AMD's 0x17, 0x19, 0x1a...).
    let base = (signature.eax >> 8) & 0xf;
    let family = if base == 0xf {
        base + ((signature.eax >> 20) & 0xff)
    } else {
        base
    };
    let model = ((signature.eax >> 4) & 0xf) | ((signature.eax >> 12) & 0xf0);
    format!(
        "{} family {family:#x} model {model:#x}: {}",
        String::from_utf8_lossy(&vendor_bytes),
        String::from_utf8_lossy(&brand)
            .trim_matches(char::from(0))
            .trim()
    )
}

#[cfg(not(target_arch = "x86_64"))]
pub fn cpu_name() -> String {
    std::env::consts::ARCH.to_string()
}

#[cfg(target_arch = "x86_64")]
fn cpu_features() -> String {
    let mut found = Vec::new();
    macro_rules! check {
        ($($f:tt),*) => {$(
            if std::arch::is_x86_feature_detected!($f) {
                found.push($f);
            }
        )*};
    }
    check!("ermsb", "avx2", "avx512f", "avx512bw", "bmi2", "sse4.2");
    found.join(" ")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_features() -> String {
    "(not probed on this architecture)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            strategy_problem: None,
            not_installed: None,
            memory_failure: true,
            recovery: Some(true),
            early_kill: Some(false),
        }
    }

    #[test]
    fn the_verdict_names_what_is_recovered_and_why_not_the_rest() {
        let all = "recovers: truncation, page-in errors, holes, hardware memory errors \
                   (BUS_MCEERR_AR)";
        assert_eq!(verdict(&facts()), all);
        let no_mf = Facts {
            memory_failure: false,
            recovery: None,
            early_kill: None,
            ..facts()
        };
        assert_eq!(
            verdict(&no_mf),
            "recovers: truncation, page-in errors, holes; not hardware memory errors here: \
             no CONFIG_MEMORY_FAILURE"
        );
        let off = Facts {
            recovery: Some(false),
            ..facts()
        };
        assert!(
            verdict(&off).ends_with(
                "not hardware memory errors here: \
                                     vm.memory_failure_recovery=0 (the kernel panics on poison)"
            ),
            "{}",
            verdict(&off)
        );
        let early = Facts {
            early_kill: Some(true),
            ..facts()
        };
        assert!(
            verdict(&early).contains("vm.memory_failure_early_kill=1"),
            "{}",
            verdict(&early)
        );
        let unread = Facts {
            recovery: None,
            ..facts()
        };
        assert!(verdict(&unread).contains("cannot be read"));
        let uninstalled = Facts {
            not_installed: Some("no fault-safe copies on this target".into()),
            ..facts()
        };
        assert_eq!(
            verdict(&uninstalled),
            "recovers: nothing here: the SIGBUS handler is not installed: no fault-safe copies \
             on this target"
        );
        let forced = Facts {
            strategy_problem: Some("MCSAFE_STRATEGY=bogus: no such strategy".into()),
            ..uninstalled
        };
        assert!(
            verdict(&forced)
                .starts_with("recovers: nothing in this environment: MCSAFE_STRATEGY=bogus"),
            "{}",
            verdict(&forced)
        );
        for f in [facts(), no_mf, off, early, unread, forced] {
            assert!(!verdict(&f).contains('\n'));
        }
    }
}
