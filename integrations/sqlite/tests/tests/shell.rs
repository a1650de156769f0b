//! The same scenario through the `sqlite3` shell (Debian `sqlite3`): `.load`
//! the extension, `.open` the 50 MB database (the VFS is the default now, and
//! stays: `SQLITE_OK_LOAD_PERMANENTLY`), ask for mmap, attach a second
//! database, begin a read transaction, truncate the file to 1 MiB with
//! `.shell truncate`, then read the whole table.
//!
//! Without `.load` the shell dies by SIGBUS; with it the read fails with
//! "disk I/O error (10)" (`.log stderr` shows mcsafe's message with the file
//! and offset), the attached database answers, and the shell carries on.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mcsafe_sqlite_tests::{extension, prefix, toolchain};

fn tmp() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// A 50 MB table and a 123-row one, made by the shell itself.
fn databases(name: &str) -> (PathBuf, PathBuf) {
    let db = tmp().join(format!("shell-{name}.db"));
    let other = tmp().join(format!("shell-{name}-other.db"));
    for path in [&db, &other] {
        let _ = std::fs::remove_file(path);
    }
    let script = format!(
        ".open {}\n\
         CREATE TABLE t(id INTEGER PRIMARY KEY, n, payload);\n\
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)\n\
         INSERT INTO t SELECT x, 2 * x, randomblob(1000) FROM c;\n\
         .open {}\n\
         CREATE TABLE t2(x);\n\
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 123)\n\
         INSERT INTO t2 SELECT x FROM c;\n",
        db.display(),
        other.display()
    );
    let out = shell(&script);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::metadata(&db).unwrap().len() > 50_000_000);
    (db, other)
}

fn shell(script: &str) -> Output {
    let mut child = Command::new("sqlite3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sqlite3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `.load` (or not), then the scenario.
fn scenario(load: Option<&Path>, db: &Path, other: &Path) -> String {
    let load = load.map_or(String::new(), |ext| format!(".load {}\n", ext.display()));
    format!(
        "{load}.log stderr\n\
         .open {db}\n\
         .vfsname\n\
         PRAGMA mmap_size=1073741824;\n\
         PRAGMA cache_size=-1000;\n\
         ATTACH '{other}' AS other;\n\
         BEGIN;\n\
         SELECT count(*) FROM t WHERE id <= 10;\n\
         .shell truncate -s 1048576 {db}\n\
         SELECT sum(n) FROM t;\n\
         SELECT count(*) FROM other.t2;\n\
         .print still here\n",
        db = db.display(),
        other = other.display()
    )
}

#[test]
fn the_shell_dies_by_sigbus_without_the_extension_and_gets_an_io_error_with_it() {
    if !toolchain("the SQLite VFS from the sqlite3 shell", true) {
        return;
    }
    let ext = extension(prefix(tmp()));
    let (db, other) = databases("stock");
    let out = shell(&scenario(None, &db, &other));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "stock shell: {:?}",
        out.status
    );

    let (db, other) = databases("mcsafe");
    let out = shell(&scenario(Some(&ext), &db, &other));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{:?}", out.status);
    assert_eq!(
        stdout, "mcsafe/unix\n1073741824\n10\n123\nstill here\n",
        "the shell's output (stderr: {stderr})"
    );
    assert!(stderr.contains("disk I/O error (10)"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "mcsafe: lost page in \"{}\" at file offset ",
            db.display()
        )),
        "{stderr}"
    );
    for path in [db, other] {
        std::fs::remove_file(path).unwrap();
    }
    let _ = std::fs::remove_file(tmp().join("shell-stock.db"));
    let _ = std::fs::remove_file(tmp().join("shell-stock-other.db"));
}
