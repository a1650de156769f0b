//! `mcsafe bench`: the speed summary of `cargo bench --bench summary`, from the
//! installed tool: mcsafe against glibc memcpy and the other comparators, per
//! size class, hot and cold, aligned and misaligned, measured side by side.
//!
//! This file only maps the flags onto the harness's `Options`; what is
//! measured and how lives in `benches/harness` (`mcsafe_bench::summary`).

use std::path::PathBuf;
use std::process::ExitCode;

use mcsafe_bench::summary::{Options, run as measure};

use crate::parse_bytes;

/// `bench`'s command line (its help text is the `Bench` variant's doc in
/// `main.rs`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A quick look: 5 rounds, sizes up to 16 MiB. --rounds and --max-size,
    /// given too, win whatever their order.
    #[arg(long)]
    pub quick: bool,
    /// Rounds per measurement (medians of N) [default: 9, or 5 with --quick].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub rounds: Option<u64>,
    /// Leave out size classes above BYTES [default: none, or 16M with --quick].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub max_size: Option<u64>,
    /// Size of each cold region [default: the harness's].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub cold: Option<u64>,
    /// Where to write the throughput plot.
    #[arg(long, value_name = "FILE", default_value = "mcsafe-throughput.svg")]
    pub plot: PathBuf,
    /// Write no plot.
    #[arg(long, conflicts_with = "plot")]
    pub no_plot: bool,
}

fn positive(text: &str) -> Result<u64, String> {
    text.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| "not a positive count".into())
}

impl Args {
    /// The harness's options: the preset, then every flag given explicitly.
    pub fn options(&self) -> Options {
        let mut options = if self.quick {
            Options::quick()
        } else {
            Options::full()
        };
        let size = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
        if let Some(rounds) = self.rounds {
            options.rounds = size(rounds);
        }
        if let Some(max) = self.max_size {
            options.max_size = size(max);
        }
        if let Some(cold) = self.cold {
            options.cold_region = size(cold);
        }
        options
    }
}

pub fn run(args: &Args) -> ExitCode {
    let report = measure(args.options());
    println!("{}", report.render());
    if args.no_plot {
        return ExitCode::SUCCESS;
    }
    if let Err(e) = report.plot(&args.plot) {
        eprintln!(
            "mcsafe bench: cannot write the plot {}: {e}",
            args.plot.display()
        );
        return ExitCode::from(crate::EXIT_IO);
    }
    println!("plot: {}", args.plot.display());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: super::Args,
    }

    fn options(line: &str) -> mcsafe_bench::summary::Options {
        let words = std::iter::once("bench").chain(line.split_whitespace());
        Cli::try_parse_from(words).unwrap().bench.options()
    }

    #[test]
    fn quick_keeps_explicit_rounds_and_max_size_in_any_order() {
        let quick = mcsafe_bench::summary::Options::quick();
        for line in [
            "--rounds 3 --max-size 64 --quick",
            "--quick --rounds 3 --max-size 64",
            "--max-size 64 --quick --rounds 3",
        ] {
            let o = options(line);
            assert_eq!((o.rounds, o.max_size), (3, 64), "{line}");
            assert_eq!(o.cold_region, quick.cold_region, "{line}");
        }
        let o = options("--quick");
        assert_eq!((o.rounds, o.max_size), (quick.rounds, quick.max_size));
        let full = mcsafe_bench::summary::Options::full();
        let o = options("--cold 64M");
        assert_eq!((o.rounds, o.cold_region), (full.rounds, 64 << 20));
    }
}
