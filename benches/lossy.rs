//! The lossy copy at scale: `cargo bench --bench lossy`. The cost per lost page
//! of `copy_mc_lossy` over a source lost whole, at 1 Ki, 16 Ki and 256 Ki
//! pages, side by side with a faulting `copy_mc`; a lossy copy that loses
//! nothing against `copy_mc`; the goals of issue 20. See
//! `benches/harness/src/lossy.rs`. Options after `--`:
//! - `--quick`: 3 rounds instead of 7;
//! - `--max-pages N`: leave out sizes above N pages.

use mcsafe_bench::lossy::{Options, run};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut options = if args.iter().any(|a| a == "--quick") {
        Options::quick()
    } else {
        Options::full()
    };
    if let Some(i) = args.iter().position(|a| a == "--max-pages") {
        let max: usize = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--max-pages takes a number of pages");
        options.pages.retain(|&p| p <= max);
    }
    println!("{}", run(&options).render());
}
