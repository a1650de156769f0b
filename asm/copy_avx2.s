# mcsafe_copy_avx2: 32-byte vector moves, four per iteration.
#
# Loads run ahead of stores within an iteration; rdi moves only once all of the
# iteration's stores are done, so bytes below rdi are always stored. The tail
# steps down through 16, 8, 4, 2 and 1 byte moves in address order.

	.text
	.p2align 5
	.globl	mcsafe_copy_avx2
	.hidden	mcsafe_copy_avx2
	.type	mcsafe_copy_avx2, @function
mcsafe_copy_avx2:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lavx2_begin:
	cmp	$128, %rdx
	jb	.Lavx2_by_32
.Lavx2_loop_128:
	vmovdqu	(%rsi), %ymm0			# fault points: source
	vmovdqu	32(%rsi), %ymm1
	vmovdqu	64(%rsi), %ymm2
	vmovdqu	96(%rsi), %ymm3
	vmovdqu	%ymm0, (%rdi)			# fault points: destination
	vmovdqu	%ymm1, 32(%rdi)
	vmovdqu	%ymm2, 64(%rdi)
	vmovdqu	%ymm3, 96(%rdi)
	sub	$-128, %rsi
	sub	$-128, %rdi			# past four stored vectors
	add	$-128, %rdx
	cmp	$128, %rdx
	jae	.Lavx2_loop_128

.Lavx2_by_32:
	cmp	$32, %rdx
	jb	.Lavx2_below_32
	vmovdqu	(%rsi), %ymm0			# fault point: source
	vmovdqu	%ymm0, (%rdi)			# fault point: destination
	add	$32, %rsi
	add	$32, %rdi
	sub	$32, %rdx
	jmp	.Lavx2_by_32

.Lavx2_below_32:
	test	$16, %dl
	jz	1f
	vmovdqu	(%rsi), %xmm0
	vmovdqu	%xmm0, (%rdi)
	add	$16, %rsi
	add	$16, %rdi
1:	test	$8, %dl
	jz	1f
	mov	(%rsi), %rax
	mov	%rax, (%rdi)
	add	$8, %rsi
	add	$8, %rdi
1:	test	$4, %dl
	jz	1f
	mov	(%rsi), %eax
	mov	%eax, (%rdi)
	add	$4, %rsi
	add	$4, %rdi
1:	test	$2, %dl
	jz	1f
	movzwl	(%rsi), %eax
	mov	%ax, (%rdi)
	add	$2, %rsi
	add	$2, %rdi
1:	test	$1, %dl
	jz	1f
	movzbl	(%rsi), %eax
	mov	%al, (%rdi)
	inc	%rdi
1:	vzeroupper
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
.Lavx2_end:

.Lavx2_fixup:
	vzeroupper				# the fault may have left ymm state dirty
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_copy_avx2, . - mcsafe_copy_avx2
	LANDING_PAD .Lavx2_begin, .Lavx2_end, .Lavx2_fixup
