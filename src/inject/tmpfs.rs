//! [`Method::FullTmpfs`]: holes of a file on a private tmpfs filled to the
//! last block, which cannot be paged in.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{InjectError, Method, last_errno, page_size};

fn explain_mount(errno: i32) -> String {
    match errno {
        libc::EPERM => {
            "mounting a tmpfs needs CAP_SYS_ADMIN (root), or a user and mount namespace \
                        of one's own"
                .into()
        }
        libc::ENODEV => "this kernel has no tmpfs".into(),
        libc::ENOENT => "the mount point vanished".into(),
        _ => "the kernel refused to mount a tmpfs".into(),
    }
}

/// [`Method::FullTmpfs`]: a real file of `pages` pages on a private tmpfs
/// mounted just for it, with the chosen pages left as holes and the file
/// system then filled to the last block. Any access to a hole through a
/// mapping needs a new page the file system cannot give, and raises SIGBUS
/// `BUS_ADRERR`, as a page that failed to read in would; `read(2)` of a hole
/// still returns zeros. Other processes can open [`path`](Self::path). The file
/// system is unmounted (lazily) and its directory removed on drop.
///
/// Punching a hole in an ordinary file does not lose data this way: the hole
/// reads as zeros and is allocated on demand. Only the full file system makes
/// the page-in fail.
///
/// ```
/// use mcsafe::inject::{self, FullTmpfsFile, Method};
///
/// # if inject::capabilities().allows(Method::FullTmpfs) {
/// // 4 pages; page 1 is a hole that cannot be paged in.
/// let file = FullTmpfsFile::new(4, &[1], |_, page| page.fill(b'x')).unwrap();
/// assert_eq!(std::fs::read(file.path()).unwrap()[4096], 0); // read(2) sees zeros
/// // A mapping of file.path() raises BUS_ADRERR at offset 4096..8192.
/// # }
/// ```
#[derive(Debug)]
pub struct FullTmpfsFile {
    dir: PathBuf,
    path: PathBuf,
    len: usize,
}

impl FullTmpfsFile {
    /// Creates the file: `pages` pages, page `i` filled by `fill(i, page)`
    /// unless `i` is in `lost`, in which case it stays a hole that cannot be
    /// paged in.
    pub fn new(
        pages: usize,
        lost: &[usize],
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<FullTmpfsFile, InjectError> {
        use std::os::unix::fs::FileExt;
        let m = Method::FullTmpfs;
        let page = page_size();
        let data_pages = (0..pages).filter(|i| !lost.contains(i)).count();
        let dir = mount_private_tmpfs((data_pages + 1) * page)?;
        let this = FullTmpfsFile {
            path: dir.join("data"),
            dir,
            len: pages * page,
        };
        let io_error = |call, e: io::Error| {
            InjectError::os(m, call, e.raw_os_error().unwrap_or(libc::EIO), |_| {
                "could not write the file on the private tmpfs".into()
            })
        };
        let file = fs::File::create(&this.path).map_err(|e| io_error("create the file", e))?;
        file.set_len(this.len as u64)
            .map_err(|e| io_error("set the file length", e))?;
        let mut buf = vec![0u8; page];
        for i in (0..pages).filter(|i| !lost.contains(i)) {
            buf.fill(0);
            fill(i, &mut buf);
            file.write_all_at(&buf, (i * page) as u64)
                .map_err(|e| io_error("write a page", e))?;
        }
        // Take every block that is left.
        let filler = fs::File::create(this.dir.join("filler"))
            .map_err(|e| io_error("create the filler", e))?;
        buf.fill(0xff);
        let mut at = 0u64;
        loop {
            match filler.write_at(&buf, at) {
                Ok(n) if n > 0 => at += n as u64,
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(io_error("fill the file system", e)),
            }
        }
        Ok(this)
    }

    /// The file's path, while this value lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for FullTmpfsFile {
    fn drop(&mut self) {
        unmount(&self.dir);
    }
}

fn mount_private_tmpfs(size: usize) -> Result<PathBuf, InjectError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let m = Method::FullTmpfs;
    let dir = std::env::temp_dir().join(format!(
        "mcsafe-inject-tmpfs-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).map_err(|e| {
        InjectError::os(m, "mkdir", e.raw_os_error().unwrap_or(libc::EIO), |_| {
            "could not create the mount point in the temporary directory".into()
        })
    })?;
    let target = CString::new(dir.as_os_str().as_encoded_bytes()).expect("no NUL in temp dir");
    let options = CString::new(format!("size={size},mode=0700,huge=never")).expect("no NUL");
    // SAFETY: valid C strings; a tmpfs takes no source device.
    let mounted = unsafe {
        libc::mount(
            c"mcsafe-inject".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if mounted != 0 {
        let errno = last_errno();
        let _ = fs::remove_dir(&dir);
        return Err(InjectError::os(m, "mount(tmpfs)", errno, explain_mount));
    }
    Ok(dir)
}

fn unmount(dir: &Path) {
    if let Ok(target) = CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid C string naming our own mount point.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = fs::remove_dir(dir);
}

pub(super) fn probe_full_tmpfs() -> Result<(), InjectError> {
    unmount(&mount_private_tmpfs(page_size())?);
    Ok(())
}
