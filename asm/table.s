# mcsafe: the two tables every target's routines write, and the values their rows
# hold. Assembled first of all, on x86-64 (src/arch/x86_64/routines.rs) and on
# aarch64 (src/arch/aarch64/routines.rs); src/table.rs and
# src/handler/signal/pads.rs read what it writes. Nothing here names a register or
# an instruction: each target's routine.s (asm/routine.s, asm/aarch64/routine.s)
# says what the values mean there and declares its routines with these macros.
# (Comments start lines only: the aarch64 assembler takes `#` nowhere else.)
#
# Change it, then run `cargo test -p mcsafe --lib table` on both targets (aarch64:
# `cargo test --target aarch64-unknown-linux-gnu -p mcsafe --lib table`, under
# qemu-aarch64) and `cargo test -p mcsafe-tests --test every_instruction`.

# ---- Where a range keeps the call's buffers (the landing pad's `regs` word) ----
# src/handler/signal/pads.rs, Regs; each target's routine.s says which registers.
	.set	REGS_SAVED, 0
	.set	REGS_ENTRY, 1
	.set	REGS_ONE_BUFFER, 2

# ---- Conventions (the descriptor's `convention` byte; src/table.rs, Convention) ----
	.set	CONV_COPY, 0
	.set	CONV_FILL, 1
	.set	CONV_CRC, 2
	.set	CONV_COPY_CRC, 3
	.set	CONV_C_COPY, 4
	.set	CONV_RUST_COPY, 5

# ---- The tables ----
# Landing pads: one row per range, [begin, end) -> fixup, and where the range
# registers are. Descriptors: one row per routine, [entry, end), its name, its
# convention, how many landing-pad rows it has, what it needs. Addresses are 32-bit
# offsets from the field's own address, so neither table needs relocation at load
# time. Rows go to subsection 1 of their section, between a start label (subsection
# 0) and an end label (subsection 2), whatever the order of the source files; they
# appear in the order the routines appear in .text, so both tables are sorted
# (table.rs checks that at install, and binary-searches the landing pads).
.macro TABLE section, start, end
	.pushsection \section, "a"
	.balign 4
	.globl	\start
	.hidden	\start
\start:
	.subsection 2
	.globl	\end
	.hidden	\end
\end:
	.popsection
.endm
	TABLE .rodata.mcsafe_landing_pads, mcsafe_asm_landing_pads_start, mcsafe_asm_landing_pads_end
	TABLE .rodata.mcsafe_routines, mcsafe_asm_routines_start, mcsafe_asm_routines_end

# One landing-pad row of routine \name (counted for its descriptor): a target's
# ROUTINE sets .L<name>_rows to 0 first.
.macro LANDING_PAD name, begin, end, fixup, regs
	.pushsection .rodata.mcsafe_landing_pads, "a"
	.subsection 1
	.long	\begin - .
	.long	\end - .
	.long	\fixup - .
	.long	\regs
	.popsection
	.set	.L\name\()_rows, .L\name\()_rows + 1
.endm

# The descriptor row of routine \name, from what its target's ROUTINE and
# END_ROUTINE set: its entry mcsafe_asm_<name>, its end .L<name>_stop (past its
# fixups), its name, .L<name>_convention, the .L<name>_rows counted by
# LANDING_PAD, and .L<name>_needs (the target's bits: x86-64 cpu.rs Needs, aarch64
# cpu.rs Needs). After the routine's last landing-pad row.
.macro DESCRIPTOR name
	.pushsection .rodata.mcsafe_routine_names, "a"
.L\name\()_name:
	.asciz	"\name"
	.popsection
	.pushsection .rodata.mcsafe_routines, "a"
	.subsection 1
	.long	mcsafe_asm_\name - .
	.long	.L\name\()_stop - .
	.long	.L\name\()_name - .
	.byte	.L\name\()_convention
	.byte	.L\name\()_rows
	.short	.L\name\()_needs
	.popsection
.endm
