//! `mcsafe`: what this machine can recover, and a copy that survives lost pages.
//!
//! ```text
//! mcsafe probe                      CPU, strategies, kernel capabilities, SIGBUS handler
//! mcsafe rescue [OPTIONS] SRC DST   copy SRC to DST through a mapping, skipping lost pages
//! mcsafe bench [OPTIONS]            the speed summary, measured side by side
//! mcsafe tune [--quick]             the fastest copy method per size here, and its rule
//! ```
//!
//! The reference (options, exit statuses, the map's format) is `docs/cli.md`;
//! `--help` on each command says the same in short. Errors are one line on
//! stderr: `mcsafe: ...` (a bad command line) or `mcsafe rescue: ...`.
//!
//! Exit status: 0 success; 1 `rescue` lost data (the map says where); 2 usage
//! error, or a request refused to keep data safe; 3 an I/O error; a `rescue`
//! interrupted by SIGINT, SIGTERM or SIGHUP saves its map and dies of that
//! signal (a shell reports 130, 143, 129).
//!
//! Changing a flag: edit its `#[arg]` here or in `rescue.rs` / `bench.rs`, the
//! table in `docs/cli.md`, and run `cargo test -p mcsafe-cli`.

mod bench;
mod probe;
mod progress;
mod rescue;
mod tune;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

/// Exit status: `rescue` copied all it could, but some bytes were lost.
pub const EXIT_LOST: u8 = 1;
/// Exit status: the command line is wrong, or asks for something refused.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: an I/O error stopped the command.
pub const EXIT_IO: u8 = 3;

/// Memory copies that survive SIGBUS: what this machine can recover, a copy
/// of a damaged file that skips lost pages, and the speed summary.
#[derive(Parser, Debug)]
#[command(
    name = "mcsafe",
    version,
    after_help = "Exit status: 0 success; 1 rescue lost data (the map says where); \
                  2 usage error or refused request; 3 I/O error; an interrupted rescue dies \
                  of its signal after saving its map (130 SIGINT, 143 SIGTERM, 129 SIGHUP in a \
                  shell). Reference: docs/cli.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// What this machine can recover.
    ///
    /// CPU features, the chosen and available copy strategies, kernel
    /// capabilities (memory-failure support, early kill, UFFDIO_POISON, each
    /// fault injection method) and the state of the SIGBUS handler.
    Probe,
    /// Copy SRC to DST through a read-only mapping, skipping lost pages.
    ///
    /// Reads SRC (a file, or a block or DAX device) with mcsafe's lossy copy,
    /// one block at a time. A lost page (hardware poison, a truncated file, a
    /// failed page-in, a hole on a full file system) does not kill the
    /// process: it is left as zeros (a hole) in DST, recorded in the map (GNU
    /// ddrescue's mapfile format, which ddrescuelog reads), and the copy goes
    /// on. SRC, DST and the map must be three different files; DST and the map
    /// must not exist, unless --force (start over) or --resume (go on).
    ///
    /// The map is written before the copy starts, saved as it goes (every
    /// second) and when SIGINT, SIGTERM or SIGHUP stops the rescue: what was
    /// not read yet is marked non-tried (`?`), and `--resume` copies only that.
    ///
    /// Exit status: 0 nothing lost; 1 something lost; 2 wrong or refused
    /// command line; 3 I/O error; interrupted: killed by the signal after the
    /// map is saved (a shell reports 130, 143 or 129).
    Rescue(rescue::Args),
    /// The speed summary, measured side by side on this machine.
    ///
    /// copy_mc against glibc memcpy, copy_nonoverlapping, every strategy, a
    /// sigsetjmp-guarded memcpy, pread(2) and a plain non-temporal loop, per
    /// size class, hot and cold, aligned and misaligned; then the speed
    /// targets, met or not, and the throughput plot (SVG).
    Bench(bench::Args),
    /// The fastest copy method per size on this machine, and its rule.
    ///
    /// Measures, side by side with glibc's memcpy, hot and cold, from 64 B to
    /// 64 MiB, every available strategy and the default vector strategy forced
    /// to each of its methods (vector loop, rep movsb, non-temporal stores), in
    /// under a minute (about 20 s on a 2-vCPU guest); prints the table, the rule it found (where rep movsb and
    /// non-temporal stores should start and stop), the MCSAFE_TUNABLES line that
    /// applies it, and a row for docs/cpus.md.
    Tune(tune::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(&e),
    };
    // A strategy forced by the environment that cannot be honoured makes the
    // first copy panic: said in one line before any work (probe reports it).
    let refuse = |command: &str| {
        strategy_env_problem().map(|problem| {
            eprintln!("mcsafe {command}: {problem}");
            ExitCode::from(EXIT_USAGE)
        })
    };
    match cli.command {
        Command::Probe => probe::run(),
        Command::Rescue(args) => refuse("rescue").unwrap_or_else(|| rescue::run(&args)),
        Command::Bench(args) => refuse("bench").unwrap_or_else(|| bench::run(&args)),
        Command::Tune(args) => refuse("tune").unwrap_or_else(|| tune::run(&args)),
    }
}

/// What is wrong with `MCSAFE_STRATEGY`, if it is set to a strategy that
/// does not exist or that this CPU cannot run (where every copy would panic):
/// the library's one line (`mcsafe::StrategyEnvError`), with the names that
/// would do.
pub fn strategy_env_problem() -> Option<String> {
    mcsafe::Strategy::try_current().err().map(|e| e.to_string())
}

/// `--help` and `--version` print as clap renders them (exit 0); a bad
/// command line is one line on stderr with the usage it breaks (exit 2).
fn parse_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("mcsafe: {}", one_line(&e.render().to_string()));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// clap's multi-line error as one line: the message, then the usage line.
fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad command line");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| format!(" (usage: {u}; see --help)"))
        .unwrap_or_else(|| " (see mcsafe --help)".into());
    if message.starts_with("Memory copies") || message.starts_with("Usage:") {
        // No command at all: clap shows the whole help.
        return format!("no command given{usage}");
    }
    format!("{message}{usage}")
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
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn each_command_parses_to_its_own_variant() {
        let parse =
            |s: &str| Cli::try_parse_from(std::iter::once("mcsafe").chain(s.split_whitespace()));
        assert!(matches!(parse("probe").unwrap().command, Command::Probe));
        assert!(matches!(parse("bench").unwrap().command, Command::Bench(_)));
        assert!(matches!(
            parse("rescue a b").unwrap().command,
            Command::Rescue(_)
        ));
        assert!(parse("bench --rounds 0").is_err());
        assert!(parse("bench --frobnicate").is_err());
        assert!(parse("probe extra").is_err());
        assert!(parse("rescue a").is_err());
        assert!(parse("frobnicate").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn errors_are_one_line_with_the_usage() {
        let e = Cli::try_parse_from(["mcsafe", "rescue", "--frob", "a", "b"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("unexpected argument '--frob' found"),
            "{line}"
        );
        assert!(
            line.contains("usage: mcsafe rescue [OPTIONS] <SRC> <DST>"),
            "{line}"
        );
        let e = Cli::try_parse_from(["mcsafe"]).unwrap_err();
        assert!(one_line(&e.render().to_string()).starts_with("no command given"));
    }
}
