//! The CRC32C table alone: `cargo bench --bench crc` (`-- --quick`: fewer
//! rounds, smaller cold regions). See `benches/harness/src/crc.rs`; the summary
//! (`cargo bench --bench summary`) prints the same table after its own.

use mcsafe_bench::crc::{Options, run};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let report = run(if quick {
        Options::quick()
    } else {
        Options::full()
    });
    println!("{}", report.render());
}
