//! The x86-64 side of the handler's signal context (under the lints of
//! `signal/mod.rs`): the installed entry, and the one place that reads and edits
//! the saved registers of the interrupted routine.

use core::ffi::{c_int, c_void};

use libc::{siginfo_t, ucontext_t};

use super::pads::Regs;

/// The handler as installed: hands its own return address to `on_sigbus` as a
/// fourth argument. A handler the kernel calls returns to the restorer of its
/// action, so that address says who called (rule 3). A jump, not a call: the
/// stack stays as the caller left it.
// SAFETY: two instructions that keep the System V convention: rdi, rsi and rdx
// untouched, rcx the fourth argument, the stack unchanged for on_sigbus.
#[unsafe(naked)]
pub(crate) extern "C" fn entry(signo: c_int, info: *mut siginfo_t, context: *mut c_void) {
    core::arch::naked_asm!(
        "mov rcx, [rsp]",
        "jmp {on_sigbus}",
        on_sigbus = sym super::on_sigbus,
    )
}

/// A saved general register (0 where the context has none of that number).
fn reg(context: &ucontext_t, r: c_int) -> usize {
    let gregs = &context.uc_mcontext.gregs;
    gregs.get(r as usize).map_or(0, |&v| v as usize)
}

/// The interrupted instruction's address.
pub(super) fn pc(context: &ucontext_t) -> usize {
    reg(context, libc::REG_RIP)
}

/// The buffers of the interrupted call (dst, src, len), from the registers the
/// range's row names (asm/routine.s, "Range registers").
pub(super) fn buffers(context: &ucontext_t, regs: Regs) -> (usize, usize, usize) {
    let r = |n| reg(context, n);
    match regs {
        Regs::Saved => (r(libc::REG_R8), r(libc::REG_R9), r(libc::REG_R10)),
        Regs::Entry => (r(libc::REG_RDI), r(libc::REG_RSI), r(libc::REG_RDX)),
        Regs::OneBuffer => (r(libc::REG_R8), r(libc::REG_R8), r(libc::REG_R10)),
    }
}

/// Resumes the routine at `fixup`, with the fault word in rax and si_addr in r11
/// (asm/routine.s: what a fixup finds).
pub(super) fn redirect(context: &mut ucontext_t, fixup: usize, word: usize, addr: usize) {
    let gregs = &mut context.uc_mcontext.gregs;
    for (r, value) in [
        (libc::REG_RAX, word),
        (libc::REG_R11, addr),
        (libc::REG_RIP, fixup),
    ] {
        if let Some(slot) = gregs.get_mut(r as usize) {
            *slot = value as i64;
        }
    }
}
