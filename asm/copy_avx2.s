# mcsafe_asm_copy_avx2: 32-byte vectors, the same shape as mcsafe_asm_copy_avx512.
#
# Size classes (VEC = 32 bytes):
#   0..31        two overlapping moves of 1, 2, 4, 8 or 16 bytes (head and tail)
#   32..64       first and last vector
#   65..128      two vectors from each end
#   129..256     four vectors from each end
#   257..        store the first vector, align the destination, 4 vectors per
#                iteration with aligned stores, then the last 4 vectors from the end;
#                from mcsafe_asm_avx2_rep_movsb_threshold: rep movsb instead;
#                from mcsafe_asm_non_temporal_threshold (checked first, whatever the
#                rep movsb threshold): the loop with non-temporal stores.
# Small classes leave rdi at the start (see copy_avx512.s). Every exit that used a
# ymm register runs vzeroupper, so later SSE code pays no transition penalty.

	.text
	.p2align 6
	.globl	mcsafe_asm_copy_avx2
	.hidden	mcsafe_asm_copy_avx2
	.type	mcsafe_asm_copy_avx2, @function
mcsafe_asm_copy_avx2:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lavx2_begin:
	cmp	$32, %rdx
	jb	.Lavx2_less_vec
	cmp	$64, %rdx
	ja	.Lavx2_more_2x_vec
	vmovdqu	(%rsi), %ymm0			# 32..64: first and last vector
	vmovdqu	-32(%rsi,%rdx), %ymm1
	vmovdqu	%ymm0, (%rdi)
	vmovdqu	%ymm1, -32(%rdi,%rdx)
	vzeroupper
	xor	%ecx, %ecx			# no fault
	ret

.Lavx2_less_vec:
	cmp	$16, %edx
	jae	.Lavx2_16_31
	cmp	$8, %edx
	jae	.Lavx2_8_15
	cmp	$4, %edx
	jae	.Lavx2_4_7
	cmp	$1, %edx
	ja	.Lavx2_2_3
	jb	.Lavx2_no_vector_done
	movzbl	(%rsi), %eax
	movb	%al, (%rdi)
	xor	%ecx, %ecx
	ret
.Lavx2_2_3:
	movzwl	(%rsi), %eax
	movzwl	-2(%rsi,%rdx), %ecx
	movw	%ax, (%rdi)
	movw	%cx, -2(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx2_4_7:
	movl	(%rsi), %eax
	movl	-4(%rsi,%rdx), %ecx
	movl	%eax, (%rdi)
	movl	%ecx, -4(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx2_8_15:
	movq	(%rsi), %rax
	movq	-8(%rsi,%rdx), %rcx
	movq	%rax, (%rdi)
	movq	%rcx, -8(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx2_16_31:
	vmovdqu	(%rsi), %xmm0			# VEX xmm: upper halves stay clean
	vmovdqu	-16(%rsi,%rdx), %xmm1
	vmovdqu	%xmm0, (%rdi)
	vmovdqu	%xmm1, -16(%rdi,%rdx)
.Lavx2_no_vector_done:
	xor	%ecx, %ecx
	ret

.Lavx2_more_2x_vec:
	cmp	$128, %rdx
	ja	.Lavx2_more_4x_vec
	vmovdqu	(%rsi), %ymm0			# 65..128: two vectors from each end
	vmovdqu	32(%rsi), %ymm1
	vmovdqu	-64(%rsi,%rdx), %ymm2
	vmovdqu	-32(%rsi,%rdx), %ymm3
	vmovdqu	%ymm0, (%rdi)
	vmovdqu	%ymm1, 32(%rdi)
	vmovdqu	%ymm2, -64(%rdi,%rdx)
	vmovdqu	%ymm3, -32(%rdi,%rdx)
	vzeroupper
	xor	%ecx, %ecx
	ret

.Lavx2_more_4x_vec:
	cmp	$256, %rdx
	ja	.Lavx2_more_8x_vec
	vmovdqu	(%rsi), %ymm0			# 129..256: four vectors from each end
	vmovdqu	32(%rsi), %ymm1
	vmovdqu	64(%rsi), %ymm2
	vmovdqu	96(%rsi), %ymm3
	vmovdqu	-128(%rsi,%rdx), %ymm4
	vmovdqu	-96(%rsi,%rdx), %ymm5
	vmovdqu	-64(%rsi,%rdx), %ymm6
	vmovdqu	-32(%rsi,%rdx), %ymm7
	vmovdqu	%ymm0, (%rdi)
	vmovdqu	%ymm1, 32(%rdi)
	vmovdqu	%ymm2, 64(%rdi)
	vmovdqu	%ymm3, 96(%rdi)
	vmovdqu	%ymm4, -128(%rdi,%rdx)
	vmovdqu	%ymm5, -96(%rdi,%rdx)
	vmovdqu	%ymm6, -64(%rdi,%rdx)
	vmovdqu	%ymm7, -32(%rdi,%rdx)
	vzeroupper
	xor	%ecx, %ecx
	ret

.Lavx2_more_8x_vec:
	cmp	mcsafe_asm_non_temporal_threshold(%rip), %rdx
	jae	.Lavx2_non_temporal
	cmp	mcsafe_asm_avx2_rep_movsb_threshold(%rip), %rdx
	jae	.Lavx2_rep_movsb
.Lavx2_loop_4x:
	vmovdqu	(%rsi), %ymm0			# store the first vector as it is,
	vmovdqu	%ymm0, (%rdi)
	mov	%edi, %ecx			# then step to the next 32-byte
	and	$31, %ecx			# boundary of the destination (1..32
	neg	%rcx				# bytes, all of them just stored)
	add	$32, %rcx
	add	%rcx, %rsi
	add	%rcx, %rdi
	sub	%rcx, %rdx
.Lavx2_loop_4x_body:
	vmovdqu	(%rsi), %ymm0			# four vectors per iteration:
	vmovdqu	32(%rsi), %ymm1			# loads, then aligned stores,
	vmovdqu	64(%rsi), %ymm2			# then rdi moves past them
	vmovdqu	96(%rsi), %ymm3
	vmovdqa	%ymm0, (%rdi)
	vmovdqa	%ymm1, 32(%rdi)
	vmovdqa	%ymm2, 64(%rdi)
	vmovdqa	%ymm3, 96(%rdi)
	sub	$-128, %rsi
	sub	$-128, %rdi
	add	$-128, %rdx
	cmp	$128, %rdx
	ja	.Lavx2_loop_4x_body
.Lavx2_last_4x:
	vmovdqu	-128(%rsi,%rdx), %ymm0		# the last four vectors, ending at
	vmovdqu	-96(%rsi,%rdx), %ymm1		# the end (they may overlap bytes
	vmovdqu	-64(%rsi,%rdx), %ymm2		# already stored: same data)
	vmovdqu	-32(%rsi,%rdx), %ymm3
	vmovdqu	%ymm0, -128(%rdi,%rdx)
	vmovdqu	%ymm1, -96(%rdi,%rdx)
	vmovdqu	%ymm2, -64(%rdi,%rdx)
	vmovdqu	%ymm3, -32(%rdi,%rdx)
	vzeroupper
	xor	%ecx, %ecx
	ret

.Lavx2_rep_movsb:
	mov	%rdx, %rcx
	rep movsb				# leaves rcx = 0: no fault
	ret

.Lavx2_non_temporal:
	vmovdqu	(%rsi), %ymm0			# first vector, then align, as above
	vmovdqu	%ymm0, (%rdi)
	mov	%edi, %ecx
	and	$31, %ecx
	neg	%rcx
	add	$32, %rcx
	add	%rcx, %rsi
	add	%rcx, %rdi
	sub	%rcx, %rdx
.Lavx2_non_temporal_body:
	cmp	$1152, %rdx			# prefetch 1 KiB ahead, only inside
	jb	1f				# the source (see copy_avx512.s)
	prefetcht0 1024(%rsi)
	prefetcht0 1088(%rsi)
1:	vmovdqu	(%rsi), %ymm0			# four vectors per iteration, stored
	vmovdqu	32(%rsi), %ymm1			# around the cache
	vmovdqu	64(%rsi), %ymm2
	vmovdqu	96(%rsi), %ymm3
	vmovntdq %ymm0, (%rdi)
	vmovntdq %ymm1, 32(%rdi)
	vmovntdq %ymm2, 64(%rdi)
	vmovntdq %ymm3, 96(%rdi)
	sub	$-128, %rsi
	sub	$-128, %rdi
	add	$-128, %rdx
	cmp	$128, %rdx
	ja	.Lavx2_non_temporal_body
	sfence					# order them before the plain stores
	jmp	.Lavx2_last_4x
.Lavx2_end:

.Lavx2_fixup:
	vzeroupper				# the fault may have left ymm state dirty
	sfence					# non-temporal stores visible first
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_asm_copy_avx2, . - mcsafe_asm_copy_avx2
	LANDING_PAD .Lavx2_begin, .Lavx2_end, .Lavx2_fixup
