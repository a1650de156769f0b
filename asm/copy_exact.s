# mcsafe_asm_copy_exact_{1,2,4,8}: copies of exactly 1, 2, 4 or 8 bytes with ONE load
# and ONE store, for read_mc and write_mc (src/access.rs).
#
# The standard calling convention (landing_pads.s) with rdx = the size: read_mc
# passes a stack temporary as dst, write_mc a stack copy of the value as src, so
# the only access that can fault is the one load (read_mc) or the one store
# (write_mc), and the handler's overlap check (r8/r9/r10) sees the real buffer.
#
# rdi never moves, so the progress invariant holds trivially ([r8, rdi) is empty)
# and a fixup always reports nothing copied. The Rust side then knows the cut
# from the fault and, for write_mc, stores the bytes before the lost granule with
# the careful forward step (a store that faults on a page stores nothing; one
# that is stopped late by a machine check may have stored: re-storing the same
# bytes before the granule is harmless).

.macro COPY_EXACT size, load, wide, narrow
	.text
	.p2align 4
	.globl	mcsafe_asm_copy_exact_\size
	.hidden	mcsafe_asm_copy_exact_\size
	.type	mcsafe_asm_copy_exact_\size, @function
mcsafe_asm_copy_exact_\size:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lexact_\size\()_begin:
	\load	(%rsi), \wide		# fault point: source (read_mc)
	mov	\narrow, (%rdi)		# fault point: destination (write_mc)
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
.Lexact_\size\()_end:

.Lexact_\size\()_fixup:
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_asm_copy_exact_\size, . - mcsafe_asm_copy_exact_\size
	LANDING_PAD .Lexact_\size\()_begin, .Lexact_\size\()_end, .Lexact_\size\()_fixup
.endm

	COPY_EXACT 1, movzbl, %eax, %al
	COPY_EXACT 2, movzwl, %eax, %ax
	COPY_EXACT 4, movl, %eax, %eax
	COPY_EXACT 8, movq, %rax, %rax
