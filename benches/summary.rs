//! One command, one run, side by side: `cargo bench --bench summary`.
//!
//! Prints the table of size classes (mcsafe and glibc memcpy in GB/s, their
//! ratio in each call shape, and every comparator), checks the speed targets,
//! writes the plot to `target/mcsafe-bench/throughput.svg` (it prints the path),
//! then the CRC32C table (`benches/harness/src/crc.rs`). Options after `--`:
//! - `--quick`: fewer rounds, classes up to 16 MiB;
//! - `--small`: the size tables up to 8 KiB only, no CRC table (what `cargo
//!   xtask bench-layout` builds with several code layouts);
//! - `--cells`: also print every size cell's ratio as a `cell` line, for tools;
//! - `--crc-only`: only the CRC32C table (as `cargo bench --bench crc` does).

use mcsafe_bench::summary::{Options, run};

fn main() {
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let crc = if has("--quick") {
        mcsafe_bench::crc::Options::quick()
    } else {
        mcsafe_bench::crc::Options::full()
    };
    if has("--crc-only") {
        println!("{}", mcsafe_bench::crc::run(crc).render());
        return;
    }
    let options = if has("--small") {
        Options::small()
    } else if has("--quick") {
        Options::quick()
    } else {
        Options::full()
    };
    let report = run(options);
    println!("{}", report.render());
    if has("--cells") {
        print!("{}", report.cells_text());
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mcsafe-bench");
    std::fs::create_dir_all(&dir).expect("create target/mcsafe-bench");
    let dir = dir.canonicalize().unwrap_or(dir);
    let plot = dir.join("throughput.svg");
    match report.plot(&plot) {
        Ok(()) => println!("plot: {}", plot.display()),
        Err(e) => eprintln!("could not write the plot: {e}"),
    }
    if !has("--small") {
        println!("{}", mcsafe_bench::crc::run(crc).render());
    }
}
