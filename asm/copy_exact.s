# mcsafe_asm_copy_exact_{1,2,4,8}: copies of exactly 1, 2, 4 or 8 bytes with ONE load
# and ONE store, for read_mc and write_mc (src/access.rs).
#
# The copy convention (routine.s) with rdx = the size, in one
# REGS_ENTRY range (no prologue: no pointer moves), and no argument check (the
# Rust side checks the one caller range; the other is its own stack): read_mc
# passes a stack temporary as dst, write_mc a stack copy of the value as src, so
# the only access that can fault is the one load (read_mc) or the one store
# (write_mc), and the handler's overlap check (rdi/rsi/rdx here) sees the real buffer.
#
# rdi never moves, so the progress invariant holds trivially ([dst, rdi) is empty)
# and a fixup always reports nothing copied. The Rust side then knows the cut
# from the fault and, for write_mc, stores the bytes before the lost granule with
# the careful forward step (a store that faults on a page stores nothing; one
# that is stopped late by a machine check may have stored: re-storing the same
# bytes before the granule is harmless).
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction
# --test storage_sweep --test storage_uffd`.

.macro COPY_EXACT size, load, wide, narrow
	ROUTINE copy_exact_\size, CONV_COPY, entry, 4
	\load	(%rsi), \wide		# fault point: source (read_mc)
	mov	\narrow, (%rdi)		# fault point: destination (write_mc)
	xor	%eax, %eax			# copied
	ret
	END_ROUTINE copy_exact_\size
.endm

	COPY_EXACT 1, movzbl, %eax, %al
	COPY_EXACT 2, movzwl, %eax, %ax
	COPY_EXACT 4, movl, %eax, %eax
	COPY_EXACT 8, movq, %rax, %rax
