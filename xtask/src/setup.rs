//! Everything the VM needs, found or made: QEMU, the Debian kernel and its
//! modules (cached under target/vm), the static guest, the initramfs and the
//! ext4 disk image.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::Archive;
use crate::vm::Arch;
use crate::{Error, run};

/// Finds `program` in PATH (or the sbin directories a non-root PATH may
/// lack); if missing, installs Debian `package` with apt-get.
pub fn tool(program: &str, package: &str) -> Result<PathBuf, Error> {
    if let Some(found) = find_in_path(program) {
        return Ok(found);
    }
    println!("vm-test: {program} not found: installing the Debian package {package}");
    apt_install(package)?;
    find_in_path(program)
        .ok_or_else(|| format!("{program} still missing after installing {package}").into())
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// `apt-get install`, after an `apt-get update` (a fresh machine may have
/// no package lists, or stale ones).
fn apt_install(package: &str) -> Result<(), Error> {
    apt_update()?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `apt-get update`, once per run, and only when apt is needed at all.
fn apt_update() -> Result<(), Error> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !DONE.swap(true, std::sync::atomic::Ordering::Relaxed) {
        run(Command::new("apt-get").arg("update"))?;
    }
    Ok(())
}

/// The Debian kernel package tree: boot/vmlinuz-* and lib/modules/*.
pub struct Kernel {
    pub package: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

/// The kernel that `linux-image-amd64` (x86-64) or `linux-image-arm64`
/// (aarch64) depends on, downloaded with `apt-get download` and unpacked with
/// `dpkg-deb -x` into `cache` once; later runs find it there and download
/// nothing.
pub fn kernel(cache: &Path, arch: Arch) -> Result<Kernel, Error> {
    let marker = cache.join("package");
    if let Ok(package) = fs::read_to_string(&marker)
        && let Ok(kernel) = unpacked(cache, package.trim())
    {
        println!(
            "vm-test: kernel {} (cached in {})",
            kernel.package,
            cache.display()
        );
        return Ok(kernel);
    }
    let apt = match arch {
        Arch::X86_64 => {
            apt_update()?;
            Vec::new()
        }
        Arch::Aarch64 => arm64_apt(cache)?,
    };
    let package = kernel_package(&apt, arch)?.ok_or_else(|| {
        format!(
            "apt-cache: {} depends on no linux-image package",
            arch.kernel_meta()
        )
    })?;
    println!("vm-test: downloading the kernel package {package}");
    let download = cache.join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)?;
    run(Command::new("apt-get")
        .args(&apt)
        .args(["download", &package])
        .current_dir(&download))?;
    let deb = fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let tree = cache.join(&package);
    let _ = fs::remove_dir_all(&tree);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    fs::remove_dir_all(&download)?;
    let kernel = unpacked(cache, &package)?;
    fs::write(&marker, &package)?;
    Ok(kernel)
}

/// The kernel package the architecture's meta package depends on: for arm64,
/// the newest version offered (bookworm-backports' 6.12, see [`arm64_apt`]).
fn kernel_package(apt: &[String], arch: Arch) -> Result<Option<String>, Error> {
    let out = Command::new("apt-cache")
        .args(apt)
        .args(["show", arch.kernel_meta()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut best: Option<(String, String)> = None;
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        let (Some(version), Some(depends)) = (field("Version:"), field("Depends:")) else {
            continue;
        };
        let Some(package) = depends
            .split([',', ' '])
            .find(|d| d.starts_with("linux-image-"))
        else {
            continue;
        };
        let newer = best.as_ref().is_none_or(|(v, _)| {
            Command::new("dpkg")
                .args(["--compare-versions", &version, "gt", v])
                .status()
                .is_ok_and(|s| s.success())
        });
        if newer {
            best = Some((version, package.to_string()));
        }
    }
    Ok(best.map(|(_, package)| package))
}

/// apt options for arm64 packages, without touching the machine's own apt
/// state (no `dpkg --add-architecture`): a private sources list, lists and
/// cache under `cache/apt`, updated once per run. Debian bookworm and its
/// security updates, and bookworm-backports, whose 6.12 kernel has
/// `UFFDIO_POISON` (Linux 6.6) and the arm64 memory-failure changes that
/// bookworm's 6.1 lacks.
fn arm64_apt(cache: &Path) -> Result<Vec<String>, Error> {
    let dir = cache.join("apt");
    for sub in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let sources = [
        ("http://deb.debian.org/debian", "bookworm"),
        ("http://deb.debian.org/debian-security", "bookworm-security"),
        ("http://deb.debian.org/debian", "bookworm-backports"),
    ]
    .map(|(uri, suite)| format!("deb [arch=arm64 signed-by={keyring}] {uri} {suite} main\n"))
    .concat();
    let list = dir.join("sources.list");
    fs::write(&list, sources)?;
    let options = [
        "APT::Architecture=arm64".to_string(),
        "APT::Architectures=arm64".to_string(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        format!("Dir::Etc::SourceList={}", list.display()),
        "Dir::Etc::SourceParts=/nonexistent".to_string(),
        format!("Dir::Cache={}", dir.join("cache").display()),
        "Dir::State::status=/dev/null".to_string(),
    ];
    let apt: Vec<String> = options
        .iter()
        .flat_map(|o| ["-o".to_string(), o.clone()])
        .collect();
    run(Command::new("apt-get").args(&apt).arg("update"))?;
    Ok(apt)
}

fn unpacked(cache: &Path, package: &str) -> Result<Kernel, Error> {
    let tree = cache.join(package);
    let vmlinuz = fs::read_dir(tree.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or("no boot/vmlinuz-*")?;
    let modules = fs::read_dir(tree.join("lib/modules"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .ok_or("no lib/modules/*")?;
    Ok(Kernel {
        package: package.to_string(),
        vmlinuz,
        modules,
    })
}

/// The modules the ext4-on-virtio case needs, with everything they depend on
/// (read from each module's `depends=` field), dependencies first.
/// `crc32c_generic` is listed because ext4's metadata checksums ask the crypto
/// API for crc32c at mount time, and the guest has no modprobe to load it then.
/// (arm64's virtio_pci is built in.)
pub fn disk_modules(kernel: &Kernel, arch: Arch) -> Result<Vec<PathBuf>, Error> {
    let mut index = HashMap::new();
    index_modules(&kernel.modules.join("kernel"), &mut index)?;
    let mut order = Vec::new();
    let wanted: &[&str] = match arch {
        Arch::X86_64 => &["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"],
        Arch::Aarch64 => &["virtio_blk", "crc32c_generic", "ext4"],
    };
    for wanted in wanted {
        add_with_dependencies(wanted, &index, &mut order)?;
    }
    Ok(order.into_iter().map(|name| index[&name].clone()).collect())
}

/// A module's bytes, decompressed (Debian's arm64 modules are `.ko.xz`).
pub fn module_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    if path.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz").arg("-dc").arg(path).output()?;
        if !out.status.success() {
            return Err(format!("xz -dc {}: {}", path.display(), out.status).into());
        }
        return Ok(out.stdout);
    }
    Ok(fs::read(path)?)
}

fn index_modules(dir: &Path, index: &mut HashMap<String, PathBuf>) -> Result<(), Error> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko").or_else(|| n.strip_suffix(".ko.xz")))
        {
            index.insert(name.replace('-', "_"), path);
        }
    }
    Ok(())
}

fn add_with_dependencies(
    name: &str,
    index: &HashMap<String, PathBuf>,
    order: &mut Vec<String>,
) -> Result<(), Error> {
    let name = name.replace('-', "_");
    if order.contains(&name) {
        return Ok(());
    }
    let path = index
        .get(&name)
        .ok_or_else(|| format!("kernel module {name} not in the package (built in?)"))?;
    for dep in depends(&module_bytes(path)?) {
        add_with_dependencies(&dep, index, order)?;
    }
    order.push(name);
    Ok(())
}

/// The `depends=` field of a module's .modinfo section.
fn depends(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = module.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &module[at + KEY.len()..];
    let value = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
    String::from_utf8_lossy(value)
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// Builds the guest as a static binary, in its own target directory so that
/// its RUSTFLAGS do not invalidate the workspace's main build.
pub fn guest(workspace: &Path, target: &Path, arch: Arch) -> Result<PathBuf, Error> {
    let triple = arch.triple();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "mcsafe-vm-guest",
            "--target",
            triple,
        ])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))?;
    let binary = target.join(triple).join("release/mcsafe-vm-guest");
    if has_interpreter(&fs::read(&binary)?) {
        return Err(format!(
            "{} is dynamically linked: it cannot be /init",
            binary.display()
        )
        .into());
    }
    Ok(binary)
}

/// The test binaries of `mcsafe-tests` named `tests`, built statically for
/// `arch` in the guest's target directory: the ones the arm64 VM runs under a
/// real kernel (ptrace). Returns (name, path).
pub fn test_binaries(
    workspace: &Path,
    target: &Path,
    arch: Arch,
    tests: &[&str],
) -> Result<Vec<(String, PathBuf)>, Error> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["test", "--quiet", "--no-run", "--message-format=json"])
        .args(["--package", "mcsafe-tests", "--target", arch.triple()])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target)
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=debuginfo",
        )
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for test in tests {
        command.args(["--test", test]);
    }
    let out = command.output()?;
    if !out.status.success() {
        return Err(format!(
            "building the tests for {}: {}\n{}",
            arch.triple(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // {"reason":"compiler-artifact",...,"target":{..."name":"api",...},...,"executable":"/path"}
        let (Some(name), Some(exe)) = (
            json_field(line, "\"name\":\""),
            json_field(line, "\"executable\":\""),
        ) else {
            continue;
        };
        if tests.contains(&name.as_str()) {
            let path = PathBuf::from(exe);
            if has_interpreter(&fs::read(&path)?) {
                return Err(format!("{} is dynamically linked", path.display()).into());
            }
            found.push((name, path));
        }
    }
    if found.len() != tests.len() {
        return Err(format!("built {found:?}, wanted {tests:?}").into());
    }
    Ok(found)
}

/// The first string value after `key` in a line of cargo's JSON (names and
/// paths hold no escaped quotes here).
fn json_field(line: &str, key: &str) -> Option<String> {
    let rest = &line[line.find(key)? + key.len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Whether an ELF64 file asks for a dynamic loader (a PT_INTERP header).
fn has_interpreter(elf: &[u8]) -> bool {
    let u = |at: usize, n: usize| {
        elf.get(at..at + n)
            .map_or(0, |b| b.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64))
    };
    let (phoff, phentsize, phnum) = (
        u(0x20, 8) as usize,
        u(0x36, 2) as usize,
        u(0x38, 2) as usize,
    );
    (0..phnum).any(|i| u(phoff + i * phentsize, 4) == 3)
}

/// The initramfs: the guest as /init, the directories it mounts on, a console
/// node for the kernel to open before /init runs, the disk modules under
/// /modules (decompressed), named so that sorting them gives the load order,
/// and the test binaries the guest runs under /tests.
pub fn initramfs(
    guest: &Path,
    modules: &[PathBuf],
    tests: &[(String, PathBuf)],
    out: &Path,
) -> Result<(), Error> {
    let mut archive = Archive::default();
    for dir in ["dev", "proc", "sys", "mnt", "modules", "tests", "tmp"] {
        archive.dir(dir);
    }
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.file("init", 0o755, &fs::read(guest)?);
    for (i, module) in modules.iter().enumerate() {
        let name = module.file_name().unwrap().to_string_lossy();
        let name = name.strip_suffix(".xz").unwrap_or(&name);
        archive.file(
            &format!("modules/{i:02}-{name}"),
            0o644,
            &module_bytes(module)?,
        );
    }
    for (name, path) in tests {
        archive.file(&format!("tests/{name}"), 0o755, &fs::read(path)?);
    }
    fs::write(out, archive.finish())?;
    Ok(())
}

/// A fresh 64 MiB ext4 image for the virtio disk.
pub fn disk(mkfs: &Path, out: &Path) -> Result<(), Error> {
    let _ = fs::remove_file(out);
    fs::File::create(out)?.set_len(64 << 20)?;
    run(Command::new(mkfs)
        .args(["-q", "-F", "-L", "mcsafe-vm"])
        .arg(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_reads_the_modinfo_field() {
        let module = b"\x7fELF...\0license=GPL\0depends=jbd2,mbcache,crc16\0intree=Y\0";
        assert_eq!(depends(module), ["jbd2", "mbcache", "crc16"]);
        assert!(depends(b"\0depends=\0name=x\0").is_empty());
        assert!(depends(b"nothing here").is_empty());
    }

    #[test]
    fn a_static_binary_has_no_interpreter() {
        // This test binary is dynamically linked (the default for the host).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
        assert!(!has_interpreter(&[0u8; 64]));
    }
}
