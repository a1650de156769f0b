//! One copy of mcsafe per process, enforced.
//!
//! The SIGBUS handler is process-wide, so a process must hold one copy of the
//! protected code. Two can meet without cargo noticing (`links = "mcsafe"` only
//! covers one cargo build): a program that loads `libmcsafe.so` (the C library,
//! package `mcsafe-capi`) and also contains the crate through a Rust library or
//! its own code, or two shared objects that each contain the crate. Each copy
//! would install its own handler over the other's: copies still work through
//! the chain, but statistics split, `install` probes the other copy as a
//! foreign replacement, and each copy's chaining rules apply twice. Rather than
//! that subtle state, no copy initialises while another is loaded
//! ([`InstallError::AnotherCopy`]: every copy it is asked to make panics, or in
//! C returns `-EEXIST`). A copy that initialised before the other was loaded
//! (by `dlopen`) keeps working, and its next `install` reports the error.
//!
//! How a copy finds the others: every object (executable or shared library)
//! that contains mcsafe carries the ELF note below, in a `PT_NOTE` segment. At
//! installation, [`ensure_only_one`] walks the loaded objects with
//! `dl_iterate_phdr(3)` and counts those notes. It reads only program headers
//! and note segments that lie inside the object's own `PT_LOAD` segments, while
//! the loader's lock keeps them mapped: no memory that may be unmapped. It runs
//! at installation only, never in the signal handler, so it need not be
//! async-signal-safe. (Two copies linked statically into one object do not get
//! this far: their global `mcsafe_asm_*` symbols collide at link time.)
//!
//! Changing the note: keep name, type and the parser below in step; run
//! `cargo test -p mcsafe --lib instance` and the C tests of `capi/` (which
//! load two copies on purpose).

use core::ffi::{c_int, c_void};

use crate::InstallError;

// The note: name "mcsafe", type NOTE_TYPE, no descriptor. `SHT_NOTE` sections
// outside a section group are kept by `--gc-sections` (GNU ld and lld), and
// `loaded_copies` refers to its label, so the object file holding it is linked
// (from a static archive too) wherever installation code is.
core::arch::global_asm!(
    ".pushsection .note.mcsafe, \"a\", @note",
    ".balign 4",
    ".globl mcsafe_asm_instance_note",
    ".hidden mcsafe_asm_instance_note",
    "mcsafe_asm_instance_note:",
    ".long 7",           // namesz: "mcsafe" and its NUL
    ".long 0",           // descsz
    ".long 0x6d637366",  // type: NOTE_TYPE
    ".asciz \"mcsafe\"", // name
    ".balign 4",
    ".popsection",
);

const NOTE_NAME: &[u8] = b"mcsafe\0";
const NOTE_TYPE: u32 = 0x6d63_7366;

unsafe extern "C" {
    static mcsafe_asm_instance_note: u8;
}

/// `Err(AnotherCopy)` when more than one copy of mcsafe is loaded in this
/// process. Called on the installation path (`arch::init` and `arch::install`).
pub(crate) fn ensure_only_one() -> Result<(), InstallError> {
    if loaded_copies().count > 1 {
        return Err(InstallError::AnotherCopy);
    }
    Ok(())
}

/// What the walk over the loaded objects found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Copies {
    /// mcsafe notes in all loaded objects: 1 in a sound process.
    pub(crate) count: usize,
    /// Whether one of them is this copy's own (0 notes, or none of ours,
    /// would mean a linker dropped it: the tests rule that out).
    pub(crate) ours_seen: bool,
    own: usize,
}

/// Counts the copies of mcsafe in the loaded objects.
pub(crate) fn loaded_copies() -> Copies {
    let mut copies = Copies {
        own: (&raw const mcsafe_asm_instance_note) as usize,
        ..Copies::default()
    };
    // SAFETY: the callback matches dl_iterate_phdr's signature and reads
    // `data` as the `Copies` passed here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(count_notes), (&raw mut copies).cast()) };
    copies
}

/// dl_iterate_phdr callback: adds this object's mcsafe notes to `*data`.
/// Must not panic (it is called from C): saturating arithmetic, no indexing.
unsafe extern "C" fn count_notes(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info, whose dlpi_phdr points to
    // dlpi_phnum program headers, and our `data`.
    let (info, copies) = unsafe { (&*info, &mut *data.cast::<Copies>()) };
    let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: as above.
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let loaded = |start: u64, len: u64| {
        phdrs.iter().any(|p| {
            p.p_type == libc::PT_LOAD
                && start >= p.p_vaddr
                && start.saturating_add(len) <= p.p_vaddr.saturating_add(p.p_memsz)
        })
    };
    for p in phdrs {
        if p.p_type != libc::PT_NOTE || !loaded(p.p_vaddr, p.p_filesz) {
            continue;
        }
        let at = (info.dlpi_addr as usize).wrapping_add(p.p_vaddr as usize);
        // SAFETY: a note segment inside one of the object's loaded segments,
        // mapped while dl_iterate_phdr runs (it holds the loader's lock).
        let notes = unsafe { core::slice::from_raw_parts(at as *const u8, p.p_filesz as usize) };
        copies.count = copies
            .count
            .saturating_add(count_in_segment(notes, p.p_align));
        copies.ours_seen |= (at..at.saturating_add(notes.len())).contains(&copies.own);
    }
    0
}

/// mcsafe notes in one `PT_NOTE` segment: entries of a 12-byte header (name
/// size, descriptor size, type), then name and descriptor, each padded to the
/// segment's alignment (4, or 8 for segments such as `.note.gnu.property`).
fn count_in_segment(mut notes: &[u8], align: u64) -> usize {
    let pad = if align == 8 { 8 } else { 4 };
    let padded = |n: usize| n.checked_next_multiple_of(pad);
    let word = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as usize)
    };
    let mut found = 0;
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (word(notes, 0), word(notes, 4), word(notes, 8))
    {
        let Some(name_end) = padded(namesz).and_then(|n| n.checked_add(12)) else {
            break;
        };
        let Some(end) = padded(descsz).and_then(|d| d.checked_add(name_end)) else {
            break;
        };
        let Some(rest) = notes.get(end..) else {
            break; // a truncated entry: not a note
        };
        if notes.get(12..12 + namesz) == Some(NOTE_NAME) && kind == NOTE_TYPE as usize {
            found += 1;
        }
        notes = rest;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_carries_exactly_one_copy() {
        // Catches a linker that drops the note (then a second copy would go
        // unnoticed) as well as a stray second copy in the test binary.
        let copies = loaded_copies();
        assert_eq!((copies.count, copies.ours_seen), (1, true), "{copies:?}");
        assert_eq!(ensure_only_one(), Ok(()));
    }

    #[test]
    fn the_parser_counts_only_mcsafe_notes_and_stops_at_a_truncated_entry() {
        let note = |name: &[u8], kind: u32, desc: &[u8]| {
            let mut v = Vec::new();
            v.extend((name.len() as u32).to_ne_bytes());
            v.extend((desc.len() as u32).to_ne_bytes());
            v.extend(kind.to_ne_bytes());
            v.extend(name);
            v.resize(v.len().next_multiple_of(4), 0);
            v.extend(desc);
            v.resize(v.len().next_multiple_of(4), 0);
            v
        };
        let ours = note(NOTE_NAME, NOTE_TYPE, &[]);
        let gnu = note(b"GNU\0", 3, &[1; 20]);
        let wrong_type = note(NOTE_NAME, 1, &[]);
        let segment = [gnu.clone(), ours.clone(), wrong_type, ours.clone()].concat();
        assert_eq!(count_in_segment(&segment, 4), 2);
        assert_eq!(count_in_segment(&ours[..ours.len() - 1], 4), 0);
        assert_eq!(count_in_segment(&[], 4), 0);
        // An absurd size ends the walk instead of overflowing.
        let mut huge = ours.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(count_in_segment(&[huge, ours].concat(), 4), 0);
    }
}
