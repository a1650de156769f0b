//! `mcsafe bench`: the speed summary of `cargo bench --bench summary`, from the
//! installed tool: mcsafe against glibc memcpy and the other comparators, per
//! size class, hot and cold, aligned and misaligned, measured side by side.

use std::path::PathBuf;
use std::process::ExitCode;

use mcsafe_bench::summary::{Options, run as measure};

/// `mcsafe bench` options.
pub struct BenchOptions {
    summary: Options,
    plot: Option<PathBuf>,
}

impl BenchOptions {
    /// Parses `[--quick] [--rounds N] [--max-size BYTES] [--cold BYTES] [--plot FILE]`.
    pub fn parse(args: &[String]) -> Result<BenchOptions, String> {
        let mut options = BenchOptions {
            summary: Options::full(),
            plot: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    options.summary = Options {
                        cold_region: options.summary.cold_region,
                        ..Options::quick()
                    }
                }
                "--rounds" => {
                    let text = value()?;
                    options.summary.rounds = text
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--rounds: not a positive count: {text:?}"))?;
                }
                "--max-size" => options.summary.max_size = crate::parse_bytes(value()?)? as usize,
                "--cold" => options.summary.cold_region = crate::parse_bytes(value()?)? as usize,
                "--plot" => options.plot = Some(PathBuf::from(value()?)),
                other => return Err(format!("bench: unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

pub fn run(options: &BenchOptions) -> ExitCode {
    let report = measure(options.summary);
    println!("{}", report.render());
    if let Some(path) = &options.plot {
        if let Err(e) = report.plot(path) {
            eprintln!(
                "mcsafe bench: cannot write the plot {}: {e}",
                path.display()
            );
            return ExitCode::from(crate::EXIT_IO);
        }
        println!("plot: {}", path.display());
    }
    ExitCode::SUCCESS
}
