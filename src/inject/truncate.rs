//! [`Method::Truncate`]: a shared memfd mapping cut short by `ftruncate`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{InjectError, Mapping, Method, memfd, page_size, set_len};

/// [`Method::Truncate`]: a `MAP_SHARED` mapping of an in-memory file (memfd)
/// whose pages past the end of file, after [`truncate_to`](Self::truncate_to),
/// raise SIGBUS `BUS_ADRERR`. Unmapped and closed on drop.
#[derive(Debug)]
pub struct TruncatedMapping {
    map: Mapping,
    fd: OwnedFd,
}

impl TruncatedMapping {
    /// Maps `pages` pages of a new memfd of the same length, all readable and
    /// writable (zero-filled) until [`truncate_to`](Self::truncate_to).
    pub fn new(pages: usize) -> Result<TruncatedMapping, InjectError> {
        let m = Method::Truncate;
        let len = pages * page_size();
        let fd = memfd(m, c"mcsafe-inject-truncate")?;
        set_len(m, fd.as_fd(), len)?;
        let map = Mapping::new(m, len, libc::MAP_SHARED, Some(fd.as_fd()))?;
        Ok(TruncatedMapping { map, fd })
    }

    /// First byte of the mapping. Raw: pages past the end of file fault.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.base
    }

    /// Length of the mapping in bytes (it does not change on truncation).
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether the mapping is empty (zero pages).
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// The page size the mapping is made of.
    pub fn page_size(&self) -> usize {
        page_size()
    }

    /// Sets the file's length to `len` bytes. Every mapped page that starts at
    /// or after `len` rounded up to a page is lost (`BUS_ADRERR` on any access);
    /// the page holding byte `len - 1` stays, zero past `len`. Growing the file
    /// again brings pages back, zero-filled.
    pub fn truncate_to(&self, len: usize) -> Result<(), InjectError> {
        set_len(Method::Truncate, self.fd.as_fd(), len)
    }
}

impl AsFd for TruncatedMapping {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub(super) fn probe_truncate() -> Result<(), InjectError> {
    let map = TruncatedMapping::new(2)?;
    map.truncate_to(page_size())
}
