//! One command, one run, side by side: `cargo bench --bench summary`.
//!
//! Prints the table of size classes (mcsafe and glibc memcpy in GB/s, their
//! ratio, and every comparator), checks the speed targets, and writes the plot
//! to `target/mcsafe-bench/throughput.svg`. `-- --quick` measures fewer rounds
//! and stops at 16 MiB. Then the CRC32C table (`benches/harness/src/crc.rs`);
//! `-- --crc-only` prints only that one (as `cargo bench --bench crc` does).

use mcsafe_bench::summary::{Options, run};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let crc = if quick {
        mcsafe_bench::crc::Options::quick()
    } else {
        mcsafe_bench::crc::Options::full()
    };
    if std::env::args().any(|a| a == "--crc-only") {
        println!("{}", mcsafe_bench::crc::run(crc).render());
        return;
    }
    let report = run(if quick {
        Options::quick()
    } else {
        Options::full()
    });
    println!("{}", report.render());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mcsafe-bench");
    std::fs::create_dir_all(&dir).expect("create target/mcsafe-bench");
    let plot = dir.join("throughput.svg");
    match report.plot(&plot) {
        Ok(()) => println!("plot: {}", plot.display()),
        Err(e) => eprintln!("could not write the plot: {e}"),
    }
    println!("{}", mcsafe_bench::crc::run(crc).render());
}
