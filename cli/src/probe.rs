//! `mcsafe probe`: what this machine and kernel let mcsafe recover, and how.

use std::fs;
use std::process::ExitCode;

use mcsafe::Strategy;
use mcsafe::inject::{self, Method};

pub fn run() -> ExitCode {
    print!("{}", report());
    ExitCode::SUCCESS
}

/// The whole report, as printed.
pub fn report() -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<22}{value}\n"));

    line("cpu", cpu_name());
    line("cpu features", cpu_features());
    let available = Strategy::available();
    let forced = std::env::var(mcsafe::STRATEGY_ENV).ok();
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

    let caps = inject::capabilities();
    line("kernel", caps.kernel().to_string());
    line(
        "memory failure",
        if caps.memory_failure() {
            format!(
                "yes (CONFIG_MEMORY_FAILURE); recovery {}",
                sysctl("memory_failure_recovery")
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

    line("SIGBUS before mcsafe", disposition());
    line(
        "SIGBUS handler",
        match mcsafe::install() {
            Ok(()) => "mcsafe's, installed (SA_SIGINFO | SA_ONSTACK | SA_NODEFER); other \
                       SIGBUS go to the disposition above"
                .into(),
            Err(e) => format!("not installed: {e}"),
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
