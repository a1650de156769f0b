//! The storage API on ordinary and bad input: panics that name the problem
//! before any access, zero sizes that touch nothing, the error types, and
//! (proptest) every call equal to its plain counterpart when nothing faults.

mod common;

use std::ptr;

use common::*;
use mcsafe::{CrcFault, MappedRegion};
use proptest::prelude::*;

#[test]
#[should_panic(expected = "mcsafe: null source pointer with len 8")]
fn read_mc_of_null_panics() {
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::read_mc(ptr::null::<u64>()) };
}

#[test]
#[should_panic(expected = "mcsafe: null destination pointer with len 4")]
fn write_mc_to_null_panics() {
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::write_mc(ptr::null_mut::<u32>(), 1) };
}

#[test]
#[should_panic(
    expected = "mcsafe: destination range 0xfffffffffffffffe + 8 wraps the address space"
)]
fn write_mc_that_wraps_panics() {
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::write_mc((usize::MAX - 1) as *mut u64, 1) };
}

#[test]
#[should_panic(expected = "mcsafe: null destination pointer with len 3")]
fn fill_mc_of_null_panics() {
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::fill_mc(ptr::null_mut(), 0, 3) };
}

#[test]
#[should_panic(expected = "wraps the address space")]
fn crc32c_mc_that_wraps_panics() {
    // SAFETY: rejected before any access.
    let _ = unsafe { mcsafe::crc32c_mc(0, (usize::MAX - 2) as *const u8, 4) };
}

#[test]
fn zero_sizes_touch_nothing() {
    let lost = LostTail::new(1, 1, 1);
    let _serial = signal_lock();
    let before = recovered();
    // SAFETY: nothing is read or written for zero sizes.
    unsafe {
        assert_eq!(mcsafe::read_mc(ptr::null::<()>()), Ok(()));
        assert_eq!(mcsafe::read_mc(lost.boundary().cast::<[u8; 0]>()), Ok([]));
        assert_eq!(mcsafe::write_mc(lost.boundary().cast::<()>(), ()), Ok(()));
        assert_eq!(mcsafe::fill_mc(ptr::null_mut(), 1, 0), Ok(()));
        assert_eq!(mcsafe::fill_mc(lost.boundary(), 1, 0), Ok(()));
        assert_eq!(mcsafe::crc32c_mc(7, lost.boundary(), 0), Ok(7));
        for path in mcsafe::internals::CrcPath::ALL
            .into_iter()
            .filter(|p| p.is_available())
        {
            assert_eq!(
                mcsafe::internals::crc32c_mc_with(
                    path,
                    mcsafe::internals::CRC_BLOCK,
                    7,
                    ptr::null(),
                    0
                ),
                Ok(7)
            );
        }
    }
    assert_eq!(recovered(), before);
}

#[test]
fn errors_say_what_was_lost_and_keep_their_payload() {
    let lost = LostTail::new(1, 1, 2);
    let _serial = signal_lock();
    let start = lost.boundary().wrapping_sub(10);
    // SAFETY: mapped; the second page is lost.
    let e: CrcFault = unsafe { mcsafe::crc32c_mc(0, start, 100) }.unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("CRC32C stopped after 10 bytes (CRC 0x"),
        "{text}"
    );
    assert!(
        text.contains("source fault: no memory at address (BUS_ADRERR)"),
        "{text}"
    );
    let io: std::io::Error = e.into();
    let back = io.get_ref().and_then(|x| x.downcast_ref::<CrcFault>());
    assert_eq!(back, Some(&e));

    // SAFETY: the region's memory outlives it.
    let region = unsafe { MappedRegion::from_raw_parts(start, 100) }.with_file_offset(4096 - 10);
    let err = region.read_at(50, &mut [0u8; 10]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("input/output error at file offset 4136: file bytes 4096..4186 are lost"),
        "{text}"
    );
    let source = std::error::Error::source(mcsafe::RegionFault::of(&err).unwrap());
    assert!(source.is_some_and(|s| s.is::<mcsafe::Fault>()));
}

/// A heap buffer with room around `len` bytes at `at`, filled with a pattern.
fn buffer(len: usize, seed: u64) -> Vec<u8> {
    (0..len + 64).map(|i| byte_at(seed, i)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn read_and_write_equal_plain_unaligned_access(at in 0usize..64, value: u64, seed: u64) {
        let mut buf = buffer(64, seed);
        let p = buf.as_mut_ptr().wrapping_add(at);
        // SAFETY: `p..p+16` lies in `buf`; ordinary memory.
        unsafe {
            prop_assert_eq!(mcsafe::read_mc(p.cast::<u64>()), Ok(p.cast::<u64>().read_unaligned()));
            prop_assert_eq!(mcsafe::read_mc(p.cast::<u16>()), Ok(p.cast::<u16>().read_unaligned()));
            prop_assert_eq!(
                mcsafe::read_mc(p.cast::<[u32; 3]>()),
                Ok(p.cast::<[u32; 3]>().read_unaligned())
            );
        }
        let mut want = buf.clone();
        want[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        want[at + 8..at + 10].copy_from_slice(&(value as u16).to_ne_bytes());
        // SAFETY: as above.
        unsafe {
            prop_assert_eq!(mcsafe::write_mc(p.cast::<u64>(), value), Ok(()));
            prop_assert_eq!(mcsafe::write_mc(p.wrapping_add(8).cast::<u16>(), value as u16), Ok(()));
        }
        prop_assert_eq!(buf, want);
    }

    #[test]
    fn fill_equals_write_bytes(at in 0usize..64, len in 0usize..2000, byte: u8) {
        let mut buf = buffer(2000, 3);
        let mut want = buf.clone();
        want[at..at + len].fill(byte);
        // SAFETY: inside `buf`.
        prop_assert_eq!(unsafe { mcsafe::fill_mc(buf.as_mut_ptr().add(at), byte, len) }, Ok(()));
        prop_assert_eq!(buf, want);
    }

    #[test]
    fn checksums_equal_the_reference(at in 0usize..64, len in 0usize..3000, seed: u64, crc: u32) {
        let buf = buffer(3000, seed);
        let data = &buf[at..at + len];
        let want = crc32c_reference_from(crc, data);
        prop_assert_eq!(mcsafe::crc32c(crc, data), want);
        for (name, checksum) in checksums() {
            // SAFETY: inside `buf`.
            prop_assert_eq!(unsafe { checksum(crc, data.as_ptr(), len) }, Ok(want), "{}", name);
        }
    }

    #[test]
    fn region_io_equals_slice_io(offset in 0u64..300, len in 0usize..300, seed: u64) {
        let mut memory = buffer(200, seed);
        let snapshot = memory.clone();
        // SAFETY: `memory` outlives the region and is only used through it.
        let region = unsafe { MappedRegion::from_raw_parts_mut(memory.as_mut_ptr(), 200) };
        let mut buf = vec![0u8; len];
        let n = region.read_at(offset, &mut buf).unwrap();
        let from = (offset as usize).min(200);
        let want = len.min(200 - from);
        prop_assert_eq!(n, want);
        prop_assert_eq!(&buf[..n], &snapshot[from..from + n]);
        let data = vec![0x5a; len];
        prop_assert_eq!(region.write_at(offset, &data).unwrap(), want);
        drop(region);
        let mut expected = snapshot.clone();
        expected[from..from + want].fill(0x5a);
        prop_assert_eq!(&memory[..200], &expected[..200]);
    }
}
