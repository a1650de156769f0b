//! The arm64 VM's own cases (`cargo xtask vm-test-aarch64`), beside the shared
//! ones of `cases.rs`: `UFFDIO_POISON` (a 6.6+ kernel: the harness boots
//! Debian's bookworm-backports arm64 kernel), a real synchronous external
//! abort from a load of an unbacked physical address through `/dev/mem`, and
//! the test binaries that need a real kernel (packed under /tests by the
//! host), which qemu-user cannot run. (A real `BUS_ADRALN` cannot be had
//! here: QEMU 7.2's TCG sends an unaligned load of device memory to the bus,
//! which aborts it, instead of raising an alignment fault; fault_kinds
//! injects one under ptrace instead.)

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use mcsafe::inject::UffdPoisonMapping;
use mcsafe::{FaultKind, Side};

use crate::cases::{Case, Ending};
use crate::mem::*;
pub use crate::protocol::ARM64_TESTS as TESTS;
use crate::protocol::Line;
use crate::{Child, Port};

pub const CASES: &[Case] = &[
    Case {
        id: "11-uffd-poison",
        title: "UFFDIO_POISON, both sides: Poison (BUS_MCEERR_AR), exact prefix, one signal",
        ending: Ending::Report,
        run: uffd_poison,
    },
    Case {
        id: "12-devmem-sea",
        title: "/dev/mem load of an unbacked physical address: a real synchronous external abort, ObjectError",
        ending: Ending::Report,
        run: devmem_abort,
    },
];

const PAGES: usize = 16;
const LOST_PAGE: usize = 9;

fn uffd_poison(ctx: &mut Child) -> Result<String, String> {
    let mut copies = 0;
    for side in [Side::Source, Side::Destination] {
        for &strategy in &ctx.strategies {
            for (poisoned_off, other_off) in [(0, 0), (1, 7), (4000, 0)] {
                let m = UffdPoisonMapping::new(PAGES).map_err(|e| e.to_string())?;
                // SAFETY: a fresh mapping of ours.
                unsafe { fill(m.as_ptr(), m.len(), 9) };
                m.poison(LOST_PAGE).map_err(|e| e.to_string())?;
                let other = Mapping::anon_small_pages(m.len() + PAGE)?;
                // SAFETY: fresh memory.
                unsafe { fill(other.base, other.len, 0x9e) };
                let len = m.len() - poisoned_off;
                let poisoned = m.as_ptr().wrapping_add(poisoned_off);
                let (dst, src) = match side {
                    Side::Source => (other.at(other_off), poisoned.cast_const()),
                    _ => (poisoned, other.at(other_off).cast_const()),
                };
                let want = Want {
                    lost: m.as_ptr() as usize + LOST_PAGE * PAGE,
                    granule: PAGE,
                    side,
                };
                // SAFETY: both buffers are ours; only the poisoned page faults.
                unsafe { expect_poison(strategy, dst, src, len, want) }?;
                copies += 1;
            }
        }
    }
    Ok(format!(
        "{copies} faulting copies exact (both sides, 3 misalignments), one signal each"
    ))
}

/// A physical address the `virt` board leaves unbacked (between its
/// virtio-mmio transports at 0x0a000000 and the platform bus at 0x0c000000):
/// a load there ends in a bus error, which QEMU (TCG too) delivers as a
/// synchronous external abort. Not RAM, so STRICT_DEVMEM lets /dev/mem map it.
const UNBACKED: i64 = 0x0b00_0000;

/// A read-only shared mapping of /dev/mem at [`UNBACKED`] (device memory).
fn unbacked_page() -> Result<Mapping, String> {
    // SAFETY: plain system calls.
    let fd = unsafe { libc::open(c"/dev/mem".as_ptr(), libc::O_RDONLY | libc::O_SYNC) };
    if fd < 0 {
        return Err(os_error("open /dev/mem"));
    }
    // SAFETY: a new mapping of the device; nothing else uses it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            UNBACKED,
        )
    };
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    if base == libc::MAP_FAILED {
        return Err(os_error("mmap /dev/mem"));
    }
    Ok(Mapping {
        base: base.cast(),
        len: PAGE,
    })
}

fn devmem_abort(_: &mut Child) -> Result<String, String> {
    let page = unbacked_page()?;
    mcsafe::install().map_err(|e| e.to_string())?;
    let before = mcsafe::stats().recovered;
    let mut seen = Vec::new();
    // One 8-byte load (read_mc), and aligned copies of each size class
    // (device memory takes no unaligned access).
    // SAFETY: mapped; the load aborts, and mcsafe recovers it.
    let read = unsafe { mcsafe::read_mc(page.base.cast::<u64>().cast_const()) };
    let f = read
        .err()
        .ok_or("read_mc of an unbacked address succeeded")?;
    seen.push(f);
    let mut dst = vec![0u8; 512];
    for len in [16usize, 64, 128, 512] {
        // SAFETY: as above; dst is ours.
        let copy = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), page.base, len) };
        seen.push(
            copy.err()
                .ok_or(format!("copy_mc of {len} bytes succeeded"))?,
        );
    }
    let signals = mcsafe::stats().recovered - before;
    for f in &seen {
        let lost = f.addr() & !(f.granule() - 1);
        if f.kind() != FaultKind::ObjectError
            || f.side() != Side::Source
            || f.copied() != 0
            || lost != page.base as usize
        {
            return Err(format!(
                "{f:?}: want ObjectError, source, copied 0, address in the page"
            ));
        }
    }
    if signals != seen.len() as u64 {
        return Err(format!("{signals} signals for {} calls", seen.len()));
    }
    Ok(format!(
        "{} calls (read_mc, copy_mc of 16..512 bytes): ObjectError (BUS_OBJERR from the kernel's \
         do_sea), si_addr {:#x} in the page, copied 0, one signal each",
        seen.len(),
        seen[0].addr()
    ))
}

/// Runs one packed test binary; its output goes to the console log, its
/// summary lines into the result.
pub fn run_test(
    name: &'static str,
    args: &[&str],
    limit: Duration,
    port: Port,
) -> Result<String, String> {
    let path = format!("/tests/{name}");
    let start = Instant::now();
    let mut child = Command::new(&path)
        .args(args)
        .env("CI", "true")
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{path}: {e}"))?;
    // Each line goes to the console log as it comes (a long test can be
    // followed there), and is kept for the summary.
    let lines = |stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut kept = String::new();
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                println!("{name}: {line}");
                kept.push_str(&line);
                kept.push('\n');
            }
            kept
        })
    };
    let output = lines(Box::new(child.stdout.take().unwrap()));
    let errors = lines(Box::new(child.stderr.take().unwrap()));
    let mut said = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().map_err(|e| e.to_string())?;
        }
        if said.elapsed() > Duration::from_secs(60) {
            // The host takes 150 s of silence for a stuck guest.
            port.send(&Line::Info(format!(
                "/tests/{name} still running after {:.0} s",
                start.elapsed().as_secs_f64()
            )));
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = output.join().unwrap_or_default();
    let errors = errors.join().unwrap_or_default();
    let summary: Vec<&str> = text
        .lines()
        .chain(errors.lines())
        .filter(|l| {
            l.starts_with("test result:")
                || l.starts_with("every_instruction:")
                || l.starts_with("NOT RUN")
                || l.contains("FAILED")
                || l.contains("panicked")
        })
        .take(6)
        .collect();
    let summary = format!(
        "{} in {:.0} s: {}",
        if status.success() { "passed" } else { "failed" },
        start.elapsed().as_secs_f64(),
        summary.join(" | ")
    );
    if status.success() {
        Ok(summary)
    } else {
        Err(format!(
            "{summary} (status {:?}, signal {:?}; output in the console log)",
            status.code(),
            status.signal()
        ))
    }
}
