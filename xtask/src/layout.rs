//! `cargo xtask bench-layout`: is the small-copy speed an accident of code
//! placement? Builds the benchmark summary several times with different function
//! and block alignment (LLVM's `-align-all-functions` / `-align-all-nofallthru-blocks`,
//! which move every Rust loop and call site, not the assembly routines, which
//! align themselves), runs each build's small-size table (`--small`: classes up to
//! 8 KiB, hot and cold, aligned and misaligned, every call shape), and prints each
//! cell's ratio under every layout with the spread. Fails when the worst build
//! misses 0.95x memcpy in any cell. `MCSAFE_BENCH_RUNNER="chrt -f 50 taskset -c 1"`
//! runs each build under that prefix.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::Error;

/// The layouts: a name and the RUSTFLAGS that make it.
const LAYOUTS: [(&str, &str); 4] = [
    ("default", ""),
    (
        "fn64-blk64",
        "-C llvm-args=-align-all-functions=6 -C llvm-args=-align-all-nofallthru-blocks=6",
    ),
    (
        "fn32-blk32",
        "-C llvm-args=-align-all-functions=5 -C llvm-args=-align-all-nofallthru-blocks=5",
    ),
    (
        "fn16-blk8",
        "-C llvm-args=-align-all-functions=4 -C llvm-args=-align-all-nofallthru-blocks=3",
    ),
];

/// The target every cell must meet in the worst layout.
const TARGET: f64 = 0.95;

/// One cell: (condition, class, shape).
type Cell = (String, String, String);

pub fn run(root: &Path) -> Result<bool, Error> {
    let mut ratios: BTreeMap<Cell, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<Cell> = Vec::new();
    for (i, (name, flags)) in LAYOUTS.iter().enumerate() {
        let exe = build(root, name, flags)?;
        println!("bench-layout: running {name} ({})", exe.display());
        let out = runner(&exe)
            .args(["--small", "--cells"])
            .current_dir(root)
            .output()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!("{name}: the summary failed: {}", out.status).into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut cells = 0;
        for line in text.lines().filter_map(|l| l.strip_prefix("cell\t")) {
            let f: Vec<&str> = line.split('\t').collect();
            let [condition, class, shape, ratio] = f[..] else {
                return Err(format!("{name}: bad cell line {line:?}").into());
            };
            let cell = (condition.to_string(), class.to_string(), shape.to_string());
            let ratio: f64 = ratio.parse().map_err(|_| format!("bad ratio {ratio:?}"))?;
            let entry = ratios.entry(cell.clone()).or_default();
            if i == 0 {
                order.push(cell);
            }
            entry.push(ratio);
            cells += 1;
        }
        if cells == 0 {
            return Err(format!("{name}: the summary printed no cells").into());
        }
    }
    println!(
        "\n| condition | class | shape | {} | worst | spread |",
        names()
    );
    println!("|---|---|---|{}---:|---:|", "---:|".repeat(LAYOUTS.len()));
    let mut worst = f64::INFINITY;
    let mut widest: f64 = 0.0;
    let mut misses = Vec::new();
    for cell in &order {
        let r = &ratios[cell];
        let min = r.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.iter().copied().fold(0.0, f64::max);
        worst = worst.min(min);
        widest = widest.max(max - min);
        if min < TARGET {
            misses.push(format!("{} {} {} {min:.2}", cell.0, cell.1, cell.2));
        }
        let each: Vec<String> = r.iter().map(|v| format!("{v:.2}")).collect();
        println!(
            "| {} | {} | {} | {} | {min:.2} | {:.2} |",
            cell.0,
            cell.1,
            cell.2,
            each.join(" | "),
            max - min
        );
    }
    println!(
        "\nbench-layout: {} cells x {} layouts; worst {worst:.2}, widest spread {widest:.2}; below {TARGET}: {}",
        order.len(),
        LAYOUTS.len(),
        if misses.is_empty() {
            "none".to_string()
        } else {
            misses.join(", ")
        }
    );
    Ok(misses.is_empty())
}

/// The command that runs a build: the executable itself, or under the prefix
/// in `MCSAFE_BENCH_RUNNER` (such as `chrt -f 50 taskset -c 1`, to keep other
/// work off the measuring core on a shared machine; the builds stay outside it).
pub fn runner(exe: &Path) -> Command {
    let prefix = std::env::var("MCSAFE_BENCH_RUNNER").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(exe);
            command
        }
        None => Command::new(exe),
    }
}

fn names() -> String {
    LAYOUTS.map(|l| l.0).join(" | ")
}

/// Builds the summary bench with `flags` in a target directory of its own;
/// returns the executable.
fn build(root: &Path, name: &str, flags: &str) -> Result<std::path::PathBuf, Error> {
    println!("bench-layout: building {name} (RUSTFLAGS={flags:?})");
    let out = Command::new(env!("CARGO"))
        .args([
            "bench",
            "-p",
            "mcsafe-bench",
            "--bench",
            "summary",
            "--no-run",
            "--message-format=json",
        ])
        .env("RUSTFLAGS", flags)
        .env("CARGO_TARGET_DIR", root.join("target/layout").join(name))
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo bench: {e}"))?;
    if !out.status.success() {
        return Err(format!("building {name}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    // The compiler-artifact message of the bench target carries its executable.
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains("\"name\":\"summary\"") && l.contains("\"executable\":\""))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(std::path::PathBuf::from(&l[start..end]))
        })
        .ok_or_else(|| format!("{name}: cargo reported no summary executable").into())
}
