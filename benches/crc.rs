//! The CRC32C table alone: `cargo bench --bench crc` (`-- --quick`: fewer
//! rounds, smaller cold regions; `-- --paths`: each checksum path this CPU can
//! take, forced, beside crc-fast). See `benches/harness/src/crc.rs`; the summary
//! (`cargo bench --bench summary`) prints the same table after its own.

use mcsafe_bench::crc::{Options, run, run_paths};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let options = if quick {
        Options::quick()
    } else {
        Options::full()
    };
    if std::env::args().any(|a| a == "--paths") {
        println!("{}", run_paths(options));
        return;
    }
    println!("{}", run(options).render());
}
