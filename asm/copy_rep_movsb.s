# mcsafe_asm_copy_rep_movsb: one `rep movsb` (fast on CPUs with ERMS/FSRM).
#
# On a fault inside a string move, rdi/rsi/rcx describe the iterations that
# completed, so the progress invariant holds at the instruction itself. A
# Skylake-SP erratum reports a machine check in `rep movs` at the NEXT
# instruction: the range extends past it, and the invariant still holds there.

	.text
	.p2align 5
	.globl	mcsafe_asm_copy_rep_movsb
	.hidden	mcsafe_asm_copy_rep_movsb
	.type	mcsafe_asm_copy_rep_movsb, @function
mcsafe_asm_copy_rep_movsb:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lrep_movsb_begin:
	mov	%rdx, %rcx
	rep movsb				# fault point: either side
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
.Lrep_movsb_end:

.Lrep_movsb_fixup:
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_asm_copy_rep_movsb, . - mcsafe_asm_copy_rep_movsb
	LANDING_PAD .Lrep_movsb_begin, .Lrep_movsb_end, .Lrep_movsb_fixup
