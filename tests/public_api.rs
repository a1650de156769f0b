//! The public API is what a user's crate can name: the test hooks
//! (`mcsafe::internals`) are behind the feature `internals`, which mcsafe's own
//! packages turn on and a dependent with default features does not have.
//!
//! Builds the fixture `tests/fixtures/names_internals` (a crate that names the
//! hooks) twice with `cargo check`: with default features it must fail on
//! `internals`; with `--features mcsafe/internals` it must build (so the first
//! failure is the feature's, not a broken fixture).

use std::path::Path;
use std::process::Command;

fn check(features: &[&str]) -> (bool, String) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/names_internals");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("names-internals");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["check", "--locked", "--quiet", "--manifest-path"])
        .arg(fixture.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .args(features)
        .output()
        .expect("run cargo");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_dependent_with_default_features_cannot_name_the_test_hooks() {
    let (built, stderr) = check(&[]);
    assert!(
        !built,
        "a crate without the feature named mcsafe::internals"
    );
    assert!(
        stderr.contains("internals"),
        "the build failed, but not on `internals`:\n{stderr}"
    );
    let (built, stderr) = check(&["--features", "mcsafe/internals"]);
    assert!(built, "with the feature the fixture must build:\n{stderr}");
}
