//! Where a handler the kernel calls returns to, when its action has no restorer:
//! glibc on aarch64 sets no `SA_RESTORER`, and the arm64 kernel then points lr at
//! the vDSO's `__kernel_rt_sigreturn` (arch/arm64/kernel/signal.c,
//! `setup_return`). The handler's rule 3 (who called: the kernel, or a chaining
//! handler) compares its return address with that. (On x86-64 glibc always sets
//! a restorer, which the kernel requires there; its 64-bit vDSO has no such
//! symbol, so this finds none.)
//!
//! Read once at install, not in signal context: the vDSO's ELF image (from
//! `getauxval(AT_SYSINFO_EHDR)`), its section headers, `.dynsym` and `.dynstr`.
//! Every read is bounds-checked against the image's own sizes.
//!
//! Change it, then run `cargo test -p mcsafe --lib vdso` on both targets and the
//! chaining tests (`cargo test -p mcsafe-tests --test chaining_matrix --test
//! chaining_rules`; in the arm64 VM too: `cargo xtask vm-test-aarch64`).

use core::ffi::CStr;

/// `SHT_DYNSYM` (the `libc` crate has no constant for it).
const SHT_DYNSYM: u32 = 11;

/// The address of `__kernel_rt_sigreturn` in this process's vDSO, or 0 where
/// there is none (then every caller counts as the kernel, as before rule 3).
pub(crate) fn sigreturn_trampoline() -> usize {
    // SAFETY: getauxval has no preconditions.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return 0;
    }
    // SAFETY: the kernel maps the whole vDSO image, section headers included,
    // readable at `base` for the life of the process.
    unsafe { find(base, c"__kernel_rt_sigreturn") }.unwrap_or(0)
}

/// # Safety
/// `base` is the start of a mapped ELF64 image whose section headers and
/// sections lie inside it.
unsafe fn find(base: usize, name: &CStr) -> Option<usize> {
    // SAFETY: per this function's contract.
    let header = unsafe { &*(base as *const libc::Elf64_Ehdr) };
    if header.e_ident[..4] != *b"\x7fELF" {
        return None;
    }
    let at = |offset: u64| base.checked_add(usize::try_from(offset).ok()?);
    // SAFETY: the section headers lie inside the image.
    let sections = unsafe {
        core::slice::from_raw_parts(
            at(header.e_shoff)? as *const libc::Elf64_Shdr,
            usize::from(header.e_shnum),
        )
    };
    let dynsym = sections.iter().find(|s| s.sh_type == SHT_DYNSYM)?;
    let strings = sections.get(usize::try_from(dynsym.sh_link).ok()?)?;
    let count = usize::try_from(dynsym.sh_size / dynsym.sh_entsize.max(1)).ok()?;
    // SAFETY: `.dynsym` lies inside the image.
    let symbols = unsafe {
        core::slice::from_raw_parts(at(dynsym.sh_offset)? as *const libc::Elf64_Sym, count)
    };
    // The image's link address: symbols' values are relative to it.
    // SAFETY: the program headers lie inside the image.
    let phdrs = unsafe {
        core::slice::from_raw_parts(
            at(header.e_phoff)? as *const libc::Elf64_Phdr,
            usize::from(header.e_phnum),
        )
    };
    let linked = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD)?.p_vaddr;
    symbols.iter().find_map(|symbol| {
        let offset = u64::from(symbol.st_name);
        if offset >= strings.sh_size {
            return None;
        }
        // SAFETY: a NUL-terminated string inside `.dynstr`, which the vDSO
        // ends with a NUL.
        let found = unsafe { CStr::from_ptr(at(strings.sh_offset + offset)? as *const _) };
        (found == name && symbol.st_value != 0)
            .then(|| base.checked_add(usize::try_from(symbol.st_value.checked_sub(linked)?).ok()?))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_x86_64_vdso_has_none() {
        assert_eq!(super::sigreturn_trampoline(), 0);
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn the_vdso_has_its_sigreturn_trampoline() {
        let at = super::sigreturn_trampoline();
        // An arm64 kernel's vDSO has it; qemu-user's may not (then 0).
        let native =
            std::fs::read_to_string("/proc/sys/kernel/arch").is_ok_and(|a| a.trim() == "aarch64");
        assert!(at != 0 || !native, "no __kernel_rt_sigreturn in the vDSO");
        // SAFETY: getauxval has no preconditions.
        let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        if at != 0 {
            assert!(at > base && at < base + (1 << 20), "{at:#x} base {base:#x}");
            // The trampoline: mov x8, #139 (rt_sigreturn); svc #0.
            // SAFETY: code of the vDSO, mapped readable.
            let code = unsafe { (at as *const [u32; 2]).read() };
            assert_eq!(code, [0xd280_1168, 0xd400_0001], "{at:#x}");
        }
    }
}
