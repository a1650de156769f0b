//! `mcsafe tune`: which copy method is fastest at each size on this machine,
//! the rule it gives and the `MCSAFE_TUNABLES` line that applies it, with a
//! progress bar on stderr. What is measured and how lives in
//! `benches/harness` (`mcsafe_bench::tune`).

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use mcsafe_bench::tune::{Options, run as measure};

/// `tune`'s command line (its help text is the `Tune` variant's doc in `main.rs`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A quick look: 5 sizes, 3 rounds (a few seconds): checks that it runs,
    /// not a rule to rely on.
    #[arg(long)]
    pub quick: bool,
}

pub fn run(args: &Args) -> ExitCode {
    if let Err(e) = mcsafe::install() {
        eprintln!("mcsafe tune: cannot install mcsafe ({e}): nothing to tune");
        return ExitCode::from(crate::EXIT_USAGE);
    }
    let options = if args.quick {
        Options::quick()
    } else {
        Options::full()
    };
    let bar = ProgressBar::new(2 * options.sizes.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("mcsafe tune: measuring");
    let Some(tune) = measure(&options, |done, _| bar.set_position(done as u64)) else {
        bar.finish_and_clear();
        eprintln!("mcsafe tune: no vector strategy runs here: no method to tune");
        return ExitCode::from(crate::EXIT_USAGE);
    };
    bar.finish_and_clear();
    print!("{}", tune.render(&crate::probe::cpu_name()));
    ExitCode::SUCCESS
}
