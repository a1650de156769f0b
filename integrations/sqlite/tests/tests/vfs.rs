//! The scenario in C, through the mcsafe VFS linked into a program and
//! loaded as an extension, and through stock SQLite: a SELECT stepped halfway
//! through a 50 MB table, the database file truncated to 1 MiB under it (as
//! another process's checkpoint would), the SELECT stepped on.
//!
//! Stock SQLite with `PRAGMA mmap_size=1073741824`, in a child process: killed
//! by SIGBUS. Through the VFS: `sqlite3_step` returns `SQLITE_IOERR_READ`,
//! `sqlite3_log` names the file and the lost page's offset, the attached
//! second database still answers and the connection closes with `SQLITE_OK`
//! (`c/truncate.c` checks each, and every row read before, byte for byte).

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mcsafe_sqlite_tests::{Link, build, extension, prefix, run, toolchain};

fn tmp() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c/truncate.c")
}

/// The 50 MB database and the second one, made once; each case works on a copy.
fn pristine() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let exe = build(prefix(tmp()), &source(), Link::Linked);
        let db = tmp().join("truncate-pristine.db");
        let other = tmp().join("truncate-other.db");
        let out = run(
            &exe,
            &[OsStr::new("create"), db.as_os_str(), other.as_os_str()],
        );
        assert!(out.status.success(), "create: {:?}", out.status);
        assert!(std::fs::metadata(&db).unwrap().len() > 50_000_000);
        (db, other)
    })
}

fn copy_of_pristine(name: &str) -> PathBuf {
    let copy = tmp().join(format!("truncate-{name}.db"));
    std::fs::copy(&pristine().0, &copy).unwrap();
    copy
}

#[test]
fn stock_sqlite_with_mmap_is_killed_by_sigbus() {
    if !toolchain("the SQLite VFS", false) {
        return;
    }
    let exe = build(prefix(tmp()), &source(), Link::Linked);
    let db = copy_of_pristine("stock");
    let out = run(
        &exe,
        &[
            OsStr::new("stock"),
            db.as_os_str(),
            pristine().1.as_os_str(),
        ],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{:?}", out.status);
    std::fs::remove_file(db).unwrap();
}

fn check_mcsafe(link: Link) {
    let exe = build(prefix(tmp()), &source(), link);
    let db = copy_of_pristine(&format!("{link:?}"));
    let ext = extension(prefix(tmp()));
    let mut args = vec![
        OsStr::new("mcsafe"),
        db.as_os_str(),
        pristine().1.as_os_str(),
    ];
    if link == Link::Loaded {
        args.push(ext.as_os_str());
    }
    let out = run(&exe, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stdout}", out.status);
    assert!(
        stdout.contains("25000 of 50000 rows read exactly, then sqlite3_step: SQLITE_IOERR_READ"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "mcsafe: lost page in \"{}\" at file offset ",
            db.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("other.t2 answers 123 rows; sqlite3_close: SQLITE_OK"),
        "{stdout}"
    );
    std::fs::remove_file(db).unwrap();
}

#[test]
fn through_the_mcsafe_vfs_linked_the_step_is_sqlite_ioerr_read_and_the_connection_lives() {
    if toolchain("the SQLite VFS", false) {
        check_mcsafe(Link::Linked);
    }
}

#[test]
fn through_the_mcsafe_vfs_loaded_as_an_extension_the_same() {
    if toolchain("the SQLite VFS", false) {
        check_mcsafe(Link::Loaded);
    }
}
