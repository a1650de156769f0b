//! A reusable mapping whose set of lost pages can change from one test case to
//! the next without remapping: `UFFDIO_POISON` markers (any set of pages) or a
//! memfd truncated below the mapping (a suffix of pages). Healthy pages hold
//! the pattern of the mapping's seed. Used by the property test and the fuzz
//! target's harness, which run thousands of cases over the same memory.
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

use crate::common::{PAGE, byte_at};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Private anonymous memory under userfaultfd: any page can be poisoned
    /// (`UFFDIO_POISON`) and healed (`UFFDIO_COPY` of its data).
    Uffd,
    /// A shared memfd mapping: pages past the file's end are lost (truncation),
    /// so only a suffix can be lost.
    File,
}

pub struct Pages {
    base: *mut u8,
    pages: usize,
    /// What the healthy pages hold.
    pattern: Vec<u8>,
    backing: Backing,
    fd: OwnedFd,
    lost: Vec<bool>,
    /// File pages (File backing): the first lost page.
    size: usize,
}

const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_POISON: u64 = 1 << 14;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;
const UFFDIO_POISON: libc::c_ulong = 0xc020_aa08;

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Pages {
    pub fn new(backing: Backing, pages: usize, seed: u64) -> io::Result<Pages> {
        let len = pages * PAGE;
        // SAFETY: system calls on memory and descriptors this function owns.
        unsafe {
            let (flags, fd) = match backing {
                Backing::Uffd => {
                    let fd =
                        libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY);
                    check(fd as i32)?;
                    (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, fd as i32)
                }
                Backing::File => {
                    let fd = libc::memfd_create(c"mcsafe-pages".as_ptr(), libc::MFD_CLOEXEC);
                    check(fd)?;
                    check(libc::ftruncate(fd, len as i64))?;
                    (libc::MAP_SHARED, fd)
                }
            };
            let fd = OwnedFd::from_raw_fd(fd);
            let map_fd = if backing == Backing::File {
                fd.as_raw_fd()
            } else {
                -1
            };
            let base = libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                map_fd,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let this = Pages {
                base: base.cast(),
                pages,
                pattern: (0..len).map(|i| byte_at(seed, i)).collect(),
                backing,
                fd,
                lost: vec![false; pages],
                size: pages,
            };
            ptr::copy_nonoverlapping(this.pattern.as_ptr(), this.base, len);
            if backing == Backing::Uffd {
                let uffd = this.fd.as_raw_fd();
                let mut api = [UFFD_API, UFFD_FEATURE_POISON, 0];
                check(libc::ioctl(uffd, UFFDIO_API, api.as_mut_ptr()))?;
                let mut register = [
                    this.base as u64,
                    len as u64,
                    UFFDIO_REGISTER_MODE_MISSING,
                    0,
                ];
                check(libc::ioctl(uffd, UFFDIO_REGISTER, register.as_mut_ptr()))?;
            }
            Ok(this)
        }
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    pub fn backing(&self) -> Backing {
        self.backing
    }

    pub fn is_lost(&self, page: usize) -> bool {
        self.lost.get(page).copied().unwrap_or(false)
    }

    /// The pattern byte at offset `i` of this mapping.
    pub fn expected(&self, i: usize) -> u8 {
        self.pattern[i]
    }

    /// Makes exactly the pages in `lost` lost (for File backing: every page
    /// from the smallest of them on). Pages that come back hold the pattern.
    pub fn set_lost(&mut self, lost: &[usize]) -> io::Result<()> {
        match self.backing {
            Backing::File => {
                let first = lost
                    .iter()
                    .copied()
                    .min()
                    .unwrap_or(self.pages)
                    .min(self.pages);
                self.truncate(first)
            }
            Backing::Uffd => {
                let mut want = vec![false; self.pages];
                for &p in lost {
                    if p < self.pages {
                        want[p] = true;
                    }
                }
                for (page, want) in want.into_iter().enumerate() {
                    if want != self.lost[page] {
                        self.set_uffd_page(page, want)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn truncate(&mut self, pages: usize) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        if pages < self.size {
            // SAFETY: our file.
            check(unsafe { libc::ftruncate(fd, (pages * PAGE) as i64) })?;
        } else if pages > self.size {
            let data: Vec<u8> = (self.size * PAGE..pages * PAGE)
                .map(|i| self.expected(i))
                .collect();
            // SAFETY: our file; `data` is readable. pwrite extends the file.
            let n = unsafe {
                libc::pwrite(
                    fd,
                    data.as_ptr().cast(),
                    data.len(),
                    (self.size * PAGE) as i64,
                )
            };
            if n != data.len() as isize {
                return Err(io::Error::last_os_error());
            }
        }
        self.size = pages;
        for (page, lost) in self.lost.iter_mut().enumerate() {
            *lost = page >= pages;
        }
        Ok(())
    }

    fn set_uffd_page(&mut self, page: usize, lost: bool) -> io::Result<()> {
        let uffd = self.fd.as_raw_fd();
        let at = self.base.wrapping_add(page * PAGE);
        // SAFETY: our mapping and our userfaultfd; the page is empty (no PTE)
        // after MADV_DONTNEED, as both ioctls need.
        unsafe {
            check(libc::madvise(at.cast(), PAGE, libc::MADV_DONTNEED))?;
            if lost {
                let mut poison = [at as u64, PAGE as u64, 0, 0];
                check(libc::ioctl(uffd, UFFDIO_POISON, poison.as_mut_ptr()))?;
            } else {
                let data: Vec<u8> = (page * PAGE..(page + 1) * PAGE)
                    .map(|i| self.expected(i))
                    .collect();
                let mut copy = [at as u64, data.as_ptr() as u64, PAGE as u64, 0, 0];
                check(libc::ioctl(uffd, UFFDIO_COPY, copy.as_mut_ptr()))?;
            }
        }
        self.lost[page] = lost;
        Ok(())
    }

    /// Puts the pattern back over `at..at+len`, in the pages that are not lost.
    pub fn restore(&mut self, at: usize, len: usize) {
        let end = (at + len).min(self.pages * PAGE);
        let mut i = at;
        while i < end {
            let stop = ((i / PAGE + 1) * PAGE).min(end);
            if !self.is_lost(i / PAGE) {
                // SAFETY: inside the mapping, in a page that is not lost.
                unsafe {
                    ptr::copy_nonoverlapping(self.pattern[i..].as_ptr(), self.base.add(i), stop - i)
                };
            }
            i = stop;
        }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.base.cast(), self.pages * PAGE) };
    }
}
