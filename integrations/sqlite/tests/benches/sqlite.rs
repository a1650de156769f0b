//! `cargo bench -p mcsafe-sqlite-tests [-- --quick]`: installs libmcsafe and
//! the VFS (`cargo xtask capi`) into a scratch prefix, builds
//! `integrations/sqlite/bench/sqlite_bench.c` against them and runs it: the
//! mcsafe VFS against stock SQLite with mmap and with pread, point lookups and
//! a full scan, ratios measured in one run (the C file says how). For figures,
//! pin it: `MCSAFE_BENCH_RUNNER="chrt -f 50 taskset -c 1"` runs the measuring
//! program under that prefix. Exits 1 when a goal is missed.

use std::path::Path;
use std::process::{Command, ExitCode};

use mcsafe_sqlite_tests::{Link, build, prefix, toolchain, workspace};

fn main() -> ExitCode {
    if !toolchain("the SQLite VFS benchmark", false) {
        return ExitCode::SUCCESS;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let exe = build(
        prefix(tmp),
        &workspace().join("integrations/sqlite/bench/sqlite_bench.c"),
        Link::Linked,
    );
    let db = tmp.join("sqlite-bench.db");
    let quick = std::env::args().any(|a| a == "--quick");
    let runner = std::env::var("MCSAFE_BENCH_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut command = match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    command.arg(&db);
    if quick {
        command.arg("--quick");
    }
    let status = command.status().expect("the benchmark runs");
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(1) => ExitCode::FAILURE,
        _ => {
            eprintln!("sqlite_bench: {status}");
            ExitCode::from(2)
        }
    }
}
