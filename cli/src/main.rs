//! `mcsafe`: what this machine can recover, and a copy that survives lost pages.
//!
//! ```text
//! mcsafe probe                      CPU, strategies, kernel capabilities, SIGBUS handler
//! mcsafe rescue [OPTIONS] SRC DST   copy SRC to DST through a mapping, skipping lost pages
//! mcsafe bench [OPTIONS]            the speed summary, measured side by side
//! ```
//!
//! Exit status: 0 success; 1 `rescue` lost data (the map says where); 2 usage
//! error; 3 an I/O error (cannot open, map or write).

mod bench;
mod probe;
mod progress;
mod rescue;

use std::process::ExitCode;

/// Exit status: `rescue` copied all it could, but some bytes were lost.
pub const EXIT_LOST: u8 = 1;
/// Exit status: the command line is wrong, or the command is not available.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: an I/O error stopped the command.
pub const EXIT_IO: u8 = 3;

const USAGE: &str = "\
usage: mcsafe probe
       mcsafe rescue [--map FILE] [--size BYTES] [--block BYTES] [--progress|--no-progress] SRC DST
       mcsafe bench [--quick] [--rounds N] [--max-size BYTES] [--cold BYTES] [--plot FILE]

probe    CPU features, the chosen and available copy strategies, kernel
         capabilities (memory-failure support, early kill, UFFDIO_POISON,
         fault injection methods) and the state of the SIGBUS handler.
rescue   Copy SRC (a file, or a block/DAX device with --size) to DST through a
         read-only mapping with mcsafe::copy_mc. Lost pages are skipped (left
         as zeros in DST) instead of killing the process, and listed in a map
         (default DST.map; GNU ddrescue's mapfile format). Exit status 0 if
         nothing was lost, 1 if something was, 3 on an I/O error.
           --map FILE      where to write the map of good and lost ranges
           --size BYTES    bytes to copy (default: the size of SRC); mapping
                           past the end of a file loses the pages there
           --block BYTES   bytes per copy_mc call (default 1 MiB)
           --progress      always draw the progress bar on stderr
           --no-progress   never draw it (default: when stderr is a terminal
                           and SRC is at least 16 MiB)
bench    The speed summary: copy_mc against glibc memcpy, copy_nonoverlapping,
         every strategy, a sigsetjmp-guarded memcpy, pread(2) and a plain
         non-temporal loop, per size class, hot and cold, aligned and
         misaligned, measured side by side; then the speed targets, met or not.
           --quick         5 rounds, sizes up to 16 MiB (default: 9 rounds, all)
           --rounds N      rounds per measurement (medians of N)
           --max-size B    leave out size classes above B bytes
           --cold BYTES    size of each cold region (default 3 GiB)
           --plot FILE     also write the throughput plot (SVG)";

/// A parsed command line: one variant per command.
enum Command {
    Probe,
    Rescue(rescue::Options),
    Bench(bench::BenchOptions),
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    match command.as_str() {
        "probe" if rest.is_empty() => Ok(Command::Probe),
        "rescue" => rescue::Options::parse(rest).map(Command::Rescue),
        "bench" => bench::BenchOptions::parse(rest).map(Command::Bench),
        "help" | "-h" | "--help" => Ok(Command::Help),
        "probe" => Err(format!("{command} takes no arguments")),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("mcsafe: {problem}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Probe => probe::run(),
        Command::Rescue(options) => rescue::run(&options),
        Command::Bench(options) => bench::run(&options),
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
    }
}

/// Parses a byte count: digits with an optional K, M, G, T suffix (powers of
/// 1024, an optional `i`/`iB`/`B` after it).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a byte count: {text:?}"))?;
    let shift = match suffix.trim_end_matches('B').trim_end_matches('i') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(format!("unknown unit in {text:?} (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("byte count too large: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert!(parse_bytes("1.5M").is_err());
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn each_command_parses_to_its_own_variant() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(matches!(parse(&args("probe")), Ok(Command::Probe)));
        assert!(matches!(parse(&args("bench")), Ok(Command::Bench(_))));
        assert!(matches!(
            parse(&args("bench --quick --rounds 3")),
            Ok(Command::Bench(_))
        ));
        assert!(parse(&args("bench --rounds 0")).is_err());
        assert!(parse(&args("bench --frobnicate")).is_err());
        assert!(matches!(parse(&args("rescue a b")), Ok(Command::Rescue(_))));
        assert!(matches!(parse(&args("--help")), Ok(Command::Help)));
        assert!(parse(&args("probe extra")).is_err());
        assert!(parse(&args("rescue a")).is_err());
        assert!(parse(&args("frobnicate")).is_err());
        assert!(parse(&[]).is_err());
    }
}
