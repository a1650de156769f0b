//! `mcsafe bench`: the speed summary table of the speed work (issue 4).
//!
//! Not available yet. When the benchmarks land, this module prints their
//! summary; `main.rs` already routes `bench` here, so wiring it is this file only.

use std::process::ExitCode;

pub fn run() -> ExitCode {
    eprintln!(
        "mcsafe bench: not available yet. It will print the speed summary (copy_mc against \
         memcpy, per strategy and size, measured side by side) once the speed work lands; \
         until then see `cargo bench`."
    );
    ExitCode::from(crate::EXIT_USAGE)
}
