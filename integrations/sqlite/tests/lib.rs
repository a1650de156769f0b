//! What the SQLite VFS's tests and benchmark share: the tools they need, the
//! prefix `cargo xtask capi` installs into, and building C programs against it.
//!
//! The tests (`tests/`) and the benchmark (`benches/sqlite.rs`) call these;
//! the C programs they build are in `c/` and `../bench/`.

#[path = "../../../tests/common/mod.rs"]
pub mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap()
}

fn runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether gcc, pkg-config and SQLite's development files are here (and, with
/// `shell`, the sqlite3 shell): otherwise prints NOT RUN and returns false, or
/// fails in CI, which installs them (.ci/run).
pub fn toolchain(what: &str, shell: bool) -> bool {
    let mut missing = Vec::new();
    for (tool, package) in [("gcc", "gcc"), ("pkg-config", "pkg-config")] {
        if !runs(tool, "--version") {
            missing.push(format!("{tool} (Debian: {package})"));
        }
    }
    if missing.is_empty() && !sqlite_pc_exists() {
        missing.push("sqlite3.pc and sqlite3ext.h (Debian: libsqlite3-dev)".into());
    }
    if shell && !runs("sqlite3", "-version") {
        missing.push("the sqlite3 shell (Debian: sqlite3)".into());
    }
    common::require(
        missing.is_empty(),
        what,
        &format!("{} not installed", missing.join(", ")),
    )
}

fn sqlite_pc_exists() -> bool {
    Command::new("pkg-config")
        .args(["--exists", "sqlite3"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The prefix `cargo xtask capi` installed libmcsafe and the VFS into, once per
/// process, under `dir`.
pub fn prefix(dir: &Path) -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = dir.join("sqlite-prefix");
        common::install_capi(&workspace(), &prefix);
        assert!(
            prefix.join("lib/libmcsafe_sqlite.so").exists(),
            "cargo xtask capi did not build the SQLite VFS (are SQLite's headers installed?)"
        );
        prefix
    })
}

/// The loadable extension, without its `.so` (as `.load` and
/// `sqlite3_load_extension` take it).
pub fn extension(prefix: &Path) -> PathBuf {
    prefix.join("lib/libmcsafe_sqlite")
}

/// How a C program gets the VFS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    /// Linked with `pkg-config mcsafe-sqlite`; calls `mcsafe_sqlite_register`
    /// (compiled with `-DMCSAFE_SQLITE_LINKED`).
    Linked,
    /// Linked with SQLite and libmcsafe only; loads the extension at run time.
    Loaded,
}

/// Compiles `source` with gcc against the prefix; returns the executable.
pub fn build(prefix: &Path, source: &Path, link: Link) -> PathBuf {
    let name = format!(
        "{}-{}",
        source.file_stem().unwrap().to_str().unwrap(),
        if link == Link::Linked {
            "linked"
        } else {
            "loaded"
        }
    );
    let exe = prefix.join("bin").join(name);
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut gcc = Command::new("gcc");
    gcc.args(["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg(source)
        .arg("-o")
        .arg(&exe)
        .arg(format!(
            "-I{}",
            workspace().join("integrations/sqlite/tests/c").display()
        ));
    match link {
        Link::Linked => {
            gcc.arg("-DMCSAFE_SQLITE_LINKED");
            gcc.args(common::pkg_config(prefix, &["mcsafe-sqlite", "mcsafe"]));
        }
        Link::Loaded => {
            gcc.args(common::pkg_config(prefix, &["sqlite3", "mcsafe"]));
        }
    }
    gcc.arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    let output = gcc.output().expect("gcc runs");
    assert!(
        output.status.success(),
        "{gcc:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs `exe` with `args`; returns its output, printing it.
pub fn run(exe: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let output = Command::new(exe).args(args).output().unwrap();
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}
