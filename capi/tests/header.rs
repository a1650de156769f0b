//! `include/mcsafe.h` is what cbindgen makes of `src/lib.rs` with
//! `cbindgen.toml`: this test regenerates it and fails on any difference, so
//! the committed header (the one `cargo xtask capi` installs) cannot drift
//! from the Rust side. `MCSAFE_BLESS=1` writes the regenerated header instead.

use std::path::Path;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses src/lib.rs")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = dir.join("include/mcsafe.h");
    if std::env::var_os("MCSAFE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is stale (first difference at line {}): run \
             MCSAFE_BLESS=1 cargo test -p mcsafe-capi --test header, and review the diff",
            path.display(),
            first + 1
        );
    }
}
