//! Decides whether this build has fault-safe copies, and keeps cargo honest.
//!
//! - `mcsafe_protected` is set on x86-64 Linux and aarch64 Linux, unless
//!   `MCSAFE_UNPROTECTED=1` asks for the plain-copy fallback (how CI tests the
//!   code other targets get).
//! - The routines are assembled from `asm/` through `global_asm!`; cargo must
//!   rebuild when an assembly file changes.
//! - This script also lets `links = "mcsafe"` keep a second copy of the crate
//!   (and a second SIGBUS handler) out of any build.
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mcsafe_protected)");
    println!("cargo::rerun-if-changed=asm");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=MCSAFE_UNPROTECTED");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let forced_off = env::var("MCSAFE_UNPROTECTED").is_ok_and(|v| v == "1");
    if matches!(arch.as_str(), "x86_64" | "aarch64") && os == "linux" && !forced_off {
        println!("cargo::rustc-cfg=mcsafe_protected");
    }
}
