//! The aarch64 side of the handler's signal context (under the lints of
//! `signal/mod.rs`): the installed entry, and the one place that reads and edits
//! the saved registers of the interrupted routine (asm/aarch64/routine.s, "Range
//! registers and progress" and "On a fault"). The same four items as
//! `x86_64.rs`, and one of arm64's own: the address of a fault that came without
//! one.
//!
//! Only `regs`, `pc` and `pstate` of `uc_mcontext` are read, whose places are
//! fixed; never the frame's `__reserved` records (fpsimd, esr, sve, extra), so an
//! SVE or SME frame of any size changes nothing.

use core::ffi::{c_int, c_void};

use libc::{siginfo_t, ucontext_t};

use super::pads::Regs;

/// The handler as installed: hands its own return address (lr: the action's
/// restorer, or the vDSO's sigreturn trampoline, when the kernel called it) to
/// `on_sigbus` as a fourth argument (rule 3). `hint #34` is `bti c`: the kernel
/// enters a handler with BTYPE set, and a guarded page needs a landing pad (a NOP
/// on CPUs without BTI). A branch, not a call: x30 and the stack stay.
// SAFETY: three instructions that keep the AAPCS64: x0-x2 untouched, x3 the
// fourth argument, sp and x30 unchanged for on_sigbus.
#[unsafe(naked)]
pub(crate) extern "C" fn entry(signo: c_int, info: *mut siginfo_t, context: *mut c_void) {
    core::arch::naked_asm!(
        "hint #34",
        "mov x3, x30",
        "b {on_sigbus}",
        on_sigbus = sym super::on_sigbus,
    )
}

/// A saved general register (0 where the context has none of that number).
fn reg(context: &ucontext_t, n: usize) -> usize {
    context.uc_mcontext.regs.get(n).map_or(0, |&v| v as usize)
}

/// The interrupted instruction's address.
pub(super) fn pc(context: &ucontext_t) -> usize {
    context.uc_mcontext.pc as usize
}

/// The buffers of the interrupted call (dst, src, len): x0, x1, x2, which no
/// routine writes (for a one-buffer range, x0 as both).
pub(super) fn buffers(context: &ucontext_t, regs: Regs) -> (usize, usize, usize) {
    let (x0, x2) = (reg(context, 0), reg(context, 2));
    match regs {
        Regs::OneBuffer => (x0, x0, x2),
        Regs::Saved | Regs::Entry => (x0, reg(context, 1), x2),
    }
}

/// The address a fault that came without one stands for (an unclaimed
/// synchronous external abort with ESR.FnV set: `BUS_OBJERR`, `si_addr` 0): the
/// first byte the routine has not done (x4, or nothing done in an entry range),
/// on the side the instruction at pc accesses (a store: the destination; a load,
/// or an instruction that is no access, where a late report lands: the source).
/// With the page granule the kernel's lsb 0 implies, the cut is then the start
/// of that byte's page: never more than the routine did, and never a page it did
/// not reach. The lost line itself may lie up to one access further, on the next
/// page: a later call that reaches it takes a second signal there (docs/cpus.md,
/// "aarch64").
pub(super) fn unreported_address(
    context: &ucontext_t,
    regs: Regs,
    (dst, src, len): (usize, usize, usize),
) -> Option<usize> {
    let last = len.checked_sub(1)?;
    let progress = match regs {
        Regs::Entry => 0,
        Regs::Saved | Regs::OneBuffer => reg(context, 4).wrapping_sub(dst).min(last),
    };
    // SAFETY: pc lies in a landing-pad range (the caller found its row): code of
    // this object, mapped readable and executable, 4-byte aligned.
    let insn = unsafe { (pc(context) as *const u32).read() };
    // Loads and stores: op0 = x1x0 (bits 28..25); bit 22 is L (load) for the
    // pair, register and unsigned-offset forms the routines use.
    let is_store = insn & 0x0a00_0000 == 0x0800_0000 && insn & (1 << 22) == 0;
    let base = if is_store { dst } else { src };
    Some(base.wrapping_add(progress)).filter(|&a| a != 0)
}

/// Resumes the routine at `fixup` with the fault word in x16 and `si_addr` in x17
/// (asm/aarch64/routine.s: what a fixup finds), BTYPE (pstate bits 11:10)
/// cleared: the fixups are no branch targets.
pub(super) fn redirect(context: &mut ucontext_t, fixup: usize, word: usize, addr: usize) {
    let mcontext = &mut context.uc_mcontext;
    for (n, value) in [(16, word), (17, addr)] {
        if let Some(slot) = mcontext.regs.get_mut(n) {
            *slot = value as u64;
        }
    }
    mcontext.pc = fixup as u64;
    mcontext.pstate &= !(3 << 10);
}
