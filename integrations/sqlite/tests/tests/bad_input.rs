//! Through the mcsafe VFS, a database that is not a file (`:memory:`, a pipe,
//! a directory), a missing file and a file that shrinks to zero under a read
//! give the error stock SQLite gives, never a crash or a hang (`c/bad_input.c`
//! compares the two VFSes case by case).

use std::path::Path;

use mcsafe_sqlite_tests::{Link, build, extension, prefix, run, toolchain};

#[test]
fn bad_input_gets_stock_sqlites_errors_linked_and_loaded() {
    if !toolchain("the SQLite VFS", false) {
        return;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = prefix(tmp);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/bad_input.c");
    for link in [Link::Linked, Link::Loaded] {
        let dir = tmp.join(format!("bad-input-{link:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let exe = build(prefix, &source, link);
        let ext = extension(prefix);
        let mut args = vec![dir.as_os_str()];
        if link == Link::Loaded {
            args.push(ext.as_os_str());
        }
        let out = run(&exe, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{link:?}: {:?}\n{stdout}", out.status);
        for line in [
            "bad_input :memory:: works",
            "bad_input a pipe: ",
            "bad_input a directory: 14 \"unable to open database file\" through both",
            "bad_input a missing file, read-only: 14 \"unable to open database file\" through both",
            "bad_input a file shrunk to zero under a read: mcsafe 266 (disk I/O error)",
            "the next transaction: 1 \"no such table: t\" through both",
            "bad_input: 0 failures",
        ] {
            assert!(stdout.contains(line), "{link:?}: no {line:?} in\n{stdout}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
