//! The C library as C programs see it: `cargo xtask capi` installs it into a
//! temporary prefix, then gcc and g++ build the programs of `tests/c/` and
//! `examples/c/` against the INSTALLED header and library, linked both ways
//! (shared through `pkg-config mcsafe`, static through `pkg-config
//! mcsafe-static`), and this test runs them. Each C program checks its own
//! cases and prints one summary line; a failed check prints where and why.
//!
//! Needs gcc and pkg-config, and g++ for the header's C++ check (CI installs
//! them: .ci/run); without gcc or pkg-config every test prints NOT RUN, without
//! g++ only the C++ check does, and in CI either fails.
//!
//! Adding a C test: put `tests/c/NAME.c` (include "common.h") here and a
//! `#[test]` below that builds it with [`build`] and runs it with [`run`].

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use mcsafe::{InstallError, Strategy};

/// How a program links libmcsafe.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    /// `pkg-config --cflags --libs mcsafe`, with an rpath to the prefix.
    Shared,
    /// `pkg-config --cflags --libs mcsafe-static`.
    Static,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The C and C++ compilers for this test binary's target: the host's, or,
/// for the aarch64 build under qemu-user (docs/cpus.md, "aarch64"), Debian's
/// cross compilers; and the target triple to build the library for then.
fn compilers() -> (&'static str, &'static str, Option<&'static str>) {
    if common::emulated() {
        (
            "aarch64-linux-gnu-gcc",
            "aarch64-linux-gnu-g++",
            Some("aarch64-unknown-linux-gnu"),
        )
    } else {
        ("gcc", "g++", None)
    }
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the C toolchain is here (NOT RUN otherwise; CI must have it). The C
/// programs need only the C compiler and pkg-config: a machine without g++
/// still runs them ([`cxx_compiler`] guards the one C++ program).
fn toolchain() -> bool {
    let (cc, _, _) = compilers();
    let missing: Vec<&str> = [cc, "pkg-config"]
        .into_iter()
        .filter(|t| !installed(t))
        .collect();
    common::require(
        missing.is_empty(),
        "the C library from C",
        &format!(
            "{} not installed (Debian: gcc pkg-config; for aarch64 gcc-aarch64-linux-gnu)",
            missing.join(", ")
        ),
    )
}

/// Whether the C++ compiler is here, for the header's C++17 check (NOT RUN
/// otherwise; CI must have it).
fn cxx_compiler() -> bool {
    let (_, cxx, _) = compilers();
    common::require(
        installed(cxx),
        "the installed header from C++",
        &format!("{cxx} not installed (Debian: g++; for aarch64 g++-aarch64-linux-gnu)"),
    )
}

/// The prefix `cargo xtask capi` installed into, once per test binary.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi-prefix");
        common::install_capi(manifest_dir().parent().unwrap(), &prefix);
        prefix
    })
}

fn pkg_config(package: &str) -> Vec<String> {
    common::pkg_config(prefix(), &[package])
}

/// Compiles `source` (C, or C++ for `.cpp`) against the installed library;
/// returns the executable. `flags` come before the source (e.g. `-std=c99`).
fn build(source: &Path, link: Link, flags: &[&str]) -> PathBuf {
    let cxx = source.extension().is_some_and(|e| e == "cpp");
    let name = format!(
        "{}-{}{}",
        source.file_stem().unwrap().to_str().unwrap(),
        if link == Link::Shared {
            "shared"
        } else {
            "static"
        },
        if cxx { "-cxx" } else { "" }
    );
    let exe = prefix().join("bin").join(name);
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut command = Command::new(if cxx { compilers().1 } else { compilers().0 });
    command
        .args(flags)
        .arg(source)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-I{}", manifest_dir().join("tests/c").display()))
        .arg(format!(
            "-DMCSAFE_TEST_VERSION=\"{}\"",
            env!("CARGO_PKG_VERSION")
        ));
    match link {
        Link::Shared => {
            command.args(pkg_config("mcsafe"));
            command.arg(format!("-Wl,-rpath,{}", prefix().join("lib").display()));
        }
        Link::Static => {
            command.args(pkg_config("mcsafe-static"));
        }
    }
    let output = command.output().expect("the compiler runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs `exe` with `env`; returns its output, asserting that it exited 0.
fn run(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = common::target_program(exe)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "{} {args:?} {env:?}: {}\n{stdout}{}",
        exe.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn c_test(name: &str) -> PathBuf {
    manifest_dir().join("tests/c").join(name)
}

const C_FLAGS: &[&str] = &["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"];

/// Lines of the dynamic section (`readelf -d`) of an object.
fn dynamic_section(path: &Path) -> String {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_installed_header_is_strict_c99_and_cxx17() {
    if !toolchain() {
        return;
    }
    let c = build(
        &c_test("header.c"),
        Link::Shared,
        &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"],
    );
    run(&c, &[], &[]);
    if !cxx_compiler() {
        return;
    }
    for link in [Link::Shared, Link::Static] {
        let cxx = build(
            &c_test("header.cpp"),
            link,
            &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"],
        );
        let out = run(&cxx, &[], &[]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("from C++"));
    }
}

#[test]
fn the_truncated_memfd_sweep_passes_for_every_strategy_linked_both_ways() {
    if !toolchain() {
        return;
    }
    for link in [Link::Shared, Link::Static] {
        let exe = build(&c_test("sweep.c"), link, C_FLAGS);
        // The ELF note that lets a second copy of mcsafe be found (the
        // shared library carries it, see the exports test).
        let notes = Command::new("readelf")
            .arg("-n")
            .arg(&exe)
            .output()
            .unwrap();
        let has_note = String::from_utf8_lossy(&notes.stdout).contains(".note.mcsafe");
        assert_eq!(has_note, link == Link::Static, "{link:?}: readelf -n");
        let dynamic = dynamic_section(&exe);
        assert_eq!(
            dynamic.contains("Shared library: [libmcsafe.so.0]"),
            link == Link::Shared,
            "{link:?}: {dynamic}"
        );
        for strategy in Strategy::available() {
            let out = run(&exe, &[], &[("MCSAFE_STRATEGY", strategy.name())]);
            let out = String::from_utf8(out.stdout).unwrap();
            assert!(
                out.contains(&format!("strategy {strategy}, 0 failures")),
                "{out}"
            );
            assert!(
                out.contains("9976 cases, 5304 faults recovered exactly"),
                "{out}"
            );
        }
    }
}

#[test]
fn fill_read_u64_crc32c_and_invalid_input_from_c_linked_both_ways() {
    if !toolchain() {
        return;
    }
    for link in [Link::Shared, Link::Static] {
        let out = run(&build(&c_test("api.c"), link, C_FLAGS), &[], &[]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 failures"));
    }
}

#[test]
fn a_handler_installed_before_mcsafe_still_gets_its_foreign_faults() {
    if !toolchain() {
        return;
    }
    for link in [Link::Shared, Link::Static] {
        let out = run(&build(&c_test("foreign.c"), link, C_FLAGS), &[], &[]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 failures"));
    }
}

#[test]
fn a_bad_mcsafe_strategy_is_an_error_code_not_an_abort() {
    if !toolchain() {
        return;
    }
    let exe = build(&c_test("config.c"), Link::Shared, C_FLAGS);
    let unavailable = Strategy::ALL
        .into_iter()
        .find(|s| !s.is_available())
        .map(|s| s.name());
    for value in ["memcpy", ""].into_iter().chain(unavailable) {
        let out = run(&exe, &[], &[("MCSAFE_STRATEGY", value)]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 failures"));
    }
}

#[test]
fn install_returns_eagain_and_ebusy_as_documented_and_copies_still_run() {
    if !toolchain() {
        return;
    }
    for link in [Link::Shared, Link::Static] {
        let out = run(&build(&c_test("install_codes.c"), link, C_FLAGS), &[], &[]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(
            "install_codes: -EAGAIN and -EBUSY as documented, copies still run, 0 failures"
        ));
    }
}

#[test]
fn the_shared_library_exports_exactly_the_functions_of_the_header() {
    if !toolchain() {
        return;
    }
    let lib = prefix().join("lib/libmcsafe.so");
    assert!(dynamic_section(&lib).contains("Library soname: [libmcsafe.so.0]"));
    let notes = Command::new("readelf")
        .arg("-n")
        .arg(&lib)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&notes.stdout).contains(".note.mcsafe"));
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .unwrap();
    let listing = String::from_utf8(nm.stdout).unwrap();
    let mut exported: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .collect();
    // mcsafe_copy is an IFUNC on x86-64 (nm type `i`), resolved once to the
    // crate's direct entry: without it every call pays a jump of ours (capi/src/lib.rs).
    let copy_type = listing
        .lines()
        .find(|l| l.ends_with(" mcsafe_copy"))
        .and_then(|l| l.split_whitespace().nth(1));
    let want = if cfg!(target_arch = "x86_64") {
        "i"
    } else {
        "T"
    };
    assert_eq!(
        copy_type,
        Some(want),
        "nm -D type of mcsafe_copy:\n{listing}"
    );
    exported.sort();
    let header = std::fs::read_to_string(prefix().join("include/mcsafe.h")).unwrap();
    let mut declared: Vec<String> = header
        .lines()
        .filter(|l| !l.starts_with("//") && !l.starts_with(' ') && l.contains('('))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            name.starts_with("mcsafe_").then(|| name.to_string())
        })
        .collect();
    declared.sort();
    assert_eq!(exported, declared, "nm -D libmcsafe.so vs mcsafe.h");
    assert_eq!(declared.len(), 11, "{declared:?}");
}

#[test]
fn the_read_mapped_example_reports_lost_ranges_and_reads_on() {
    if !toolchain() {
        return;
    }
    let exe = build(
        &manifest_dir().join("../examples/c/read_mapped.c"),
        Link::Shared,
        C_FLAGS,
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("read-mapped");
    std::fs::create_dir_all(&dir).unwrap();
    // 1. A file of 10000 bytes read as 30000: a mapping past the end of the
    //    file (a truncation under a reader) loses bytes 12288.. (the page
    //    holding the end of the file reads as data, then zeros).
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let file = dir.join("short.bin");
    std::fs::write(&file, &data).unwrap();
    let out = run_status(&exe, &[file.to_str().unwrap(), "30000"], 1);
    let mut read = data.clone();
    read.resize(30_000, 0);
    assert!(
        out.contains("lost: bytes 12288..30000 (17712 bytes): no memory at address (BUS_ADRERR)\n"),
        "{out}"
    );
    let summary = format!(
        "read 30000 bytes, lost 17712 bytes in 1 ranges, crc32c {:#010x}",
        common::crc32c_reference(&read)
    );
    assert!(out.contains(&summary), "{out}\nexpected: {summary}");
    // The whole file, as it is: nothing lost, exit 0.
    let out = run_status(&exe, &[file.to_str().unwrap()], 0);
    assert!(out.contains("lost 0 bytes in 0 ranges"), "{out}");

    // 2. Pages lost in the middle of a real file: holes of a full tmpfs,
    //    which cannot be paged in (needs a tmpfs mount: root).
    use mcsafe::inject::{FullTmpfsFile, Method, capabilities};
    let caps = capabilities();
    let why = caps.check(Method::FullTmpfs).err().map(|e| e.to_string());
    if !common::require(
        why.is_none(),
        "read_mapped on pages lost in the middle of a file",
        why.as_deref().unwrap_or(""),
    ) {
        return;
    }
    let page = 4096;
    let file = FullTmpfsFile::new(12, &[3, 4, 9], |i, p| p.fill(i as u8 + 1)).unwrap();
    let out = run_status(&exe, &[file.path().to_str().unwrap()], 1);
    let mut expected = vec![0u8; 12 * page];
    for i in (0..12).filter(|i| ![3, 4, 9].contains(i)) {
        expected[i * page..(i + 1) * page].fill(i as u8 + 1);
    }
    for (start, end) in [(3, 5), (9, 10)] {
        let (a, b) = (start * page, end * page);
        let line = format!(
            "lost: bytes {a}..{b} ({} bytes): no memory at address (BUS_ADRERR)\n",
            b - a
        );
        assert!(out.contains(&line), "{out}\nexpected: {line}");
    }
    let summary = format!(
        "read {} bytes, lost {} bytes in 2 ranges, crc32c {:#010x}",
        12 * page,
        3 * page,
        common::crc32c_reference(&expected)
    );
    assert!(out.contains(&summary), "{out}\nexpected: {summary}");
}

/// The CRC oracle of the tests above (tests/common's, which shares no code with
/// the crate's) gives the known values.
#[test]
fn the_crc32c_oracle_gives_the_rfc_3720_values() {
    common::assert_crc32c_reference_is_right();
}

/// Runs `exe` and asserts its exit code; returns its stdout.
fn run_status(exe: &Path, args: &[&str], code: i32) -> String {
    let output = common::target_program(exe).args(args).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    print!("{stdout}");
    assert_eq!(
        output.status.code(),
        Some(code),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Two copies of mcsafe in one process: this test binary contains the crate,
/// and loads the installed libmcsafe.so with dlopen (a program that links the
/// C library and a Rust library containing the crate, in either order). Both
/// refuse to initialise while the other is loaded, loudly; a copy initialised
/// before the other was loaded keeps working and reports it from `install`.
#[test]
fn a_second_copy_of_mcsafe_in_the_process_is_refused_loudly() {
    if !toolchain() {
        return;
    }
    let lib = prefix().join("lib/libmcsafe.so.0");
    for rust_first in [true, false] {
        let child = common::this_binary()
            .args([
                "two_copies_in_a_child",
                "--exact",
                "--nocapture",
                "--ignored",
            ])
            .env("MCSAFE_TEST_LIB", &lib)
            .env("MCSAFE_TEST_RUST_FIRST", if rust_first { "1" } else { "0" })
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&child.stdout);
        assert!(
            child.status.success() && stdout.contains("1 passed"),
            "rust_first {rust_first}: {}\n{stdout}{}",
            child.status,
            String::from_utf8_lossy(&child.stderr)
        );
    }
}

/// The static case of two copies: `libmcsafe.a` and a Rust static library
/// that contains the crate (`tests/fixtures/rust_user`) in one link. The link
/// fails, loudly, on the routines' global symbols.
#[test]
fn two_copies_of_mcsafe_in_one_static_link_fail_to_link() {
    if !toolchain() {
        return;
    }
    let fixture = manifest_dir().join("tests/fixtures/rust_user");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-user");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(fixture.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    let (cc, _, triple) = compilers();
    if let Some(triple) = triple {
        build.args(["--target", triple]);
    }
    let built = build.status().unwrap();
    assert!(built.success(), "building the fixture: {built}");
    let release = match triple {
        Some(triple) => target.join(triple).join("release"),
        None => target.join("release"),
    };
    std::fs::create_dir_all(prefix().join("bin")).unwrap();
    let mut command = Command::new(cc);
    command
        .arg(c_test("two_static.c"))
        .arg("-o")
        .arg(prefix().join("bin/two-static"))
        .arg(release.join("librust_user.a"))
        .args(pkg_config("mcsafe-static"));
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "two copies linked: {command:?}");
    assert!(
        stderr.contains("multiple definition of `mcsafe_asm_"),
        "{command:?} failed, but not on mcsafe's symbols:\n{stderr}"
    );
}

/// Run only by [`a_second_copy_of_mcsafe_in_the_process_is_refused_loudly`],
/// in a child process, with the library's path in `MCSAFE_TEST_LIB`.
#[test]
#[ignore = "a child process of a_second_copy_of_mcsafe_in_the_process_is_refused_loudly"]
fn two_copies_in_a_child() {
    use core::ffi::{c_int, c_void};
    let Some(lib) = std::env::var_os("MCSAFE_TEST_LIB") else {
        return;
    };
    let rust_first = std::env::var("MCSAFE_TEST_RUST_FIRST").as_deref() == Ok("1");
    let (src, mut dst) = (vec![5u8; 4096], vec![0u8; 4096]);
    if rust_first {
        assert_eq!(mcsafe::install(), Ok(()));
    }
    let path =
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(lib.as_os_str())).unwrap();
    // SAFETY: loading the library we just installed; its constructors are Rust
    // std's, which do nothing unusual.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {}", path.to_string_lossy());
    type Install = unsafe extern "C" fn() -> c_int;
    type Copy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_void) -> c_int;
    // SAFETY: the symbols exist with these signatures (mcsafe.h).
    let (c_install, c_copy) = unsafe {
        let install = libc::dlsym(handle, c"mcsafe_install".as_ptr());
        let copy = libc::dlsym(handle, c"mcsafe_copy".as_ptr());
        assert!(!install.is_null() && !copy.is_null());
        (
            core::mem::transmute::<*mut c_void, Install>(install),
            core::mem::transmute::<*mut c_void, Copy>(copy),
        )
    };
    // The C library refuses: another copy (this binary's) is loaded.
    // SAFETY: plain calls of the C API on our own buffers.
    unsafe {
        assert_eq!(c_install(), -libc::EEXIST);
        let rc = c_copy(
            dst.as_mut_ptr().cast(),
            src.as_ptr().cast(),
            4096,
            core::ptr::null_mut(),
        );
        assert_eq!(rc, -libc::EEXIST);
    }
    assert_eq!(dst[0], 0, "the refused copy touched nothing");
    // The Rust copy says so too.
    assert_eq!(mcsafe::install(), Err(InstallError::AnotherCopy));
    let copied = std::panic::catch_unwind(move || {
        let mut dst = dst;
        // SAFETY: two distinct heap buffers.
        unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), src.as_ptr(), 4096) }.map(|()| dst)
    });
    if rust_first {
        // Initialised before the library was loaded: it keeps working.
        assert_eq!(copied.unwrap().unwrap()[4095], 5);
    } else {
        let panic = copied.unwrap_err();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("another copy of mcsafe"), "{message}");
    }
}
