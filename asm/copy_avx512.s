# mcsafe_asm_copy_avx512: 64-byte vectors, shaped like glibc's memmove-vec-unaligned-erms.
#
# Size classes (VEC = 64 bytes):
#   0..63        two overlapping moves of 1, 2, 4, 8, 16 or 32 bytes (head and
#                tail): every access stays inside src..src+len and dst..dst+len
#                (a masked 64-byte move was tried: no faster here, slower cold,
#                and its masked-off bytes may reach past len, into a lost granule)
#   64..128      first and last vector
#   129..256     two vectors from each end
#   257..512     four vectors from each end
#   513..        store the first vector, align the destination, 4 vectors per
#                iteration with aligned stores, then the last 4 vectors from the end;
#                from mcsafe_asm_avx512_rep_movsb_threshold: rep movsb instead;
#                from mcsafe_asm_non_temporal_threshold (checked first, whatever the
#                rep movsb threshold): the loop with non-temporal stores.
# Small classes load everything before storing anything and leave rdi at the start:
# after a fault the careful forward step (src/copy.rs) copies the prefix again, with
# a shorter length that no longer reaches the lost granule.
#
# Only zmm16-31 (and their ymm halves) are used (EVEX): their upper halves never make
# later SSE code pay a transition penalty, so no vzeroupper is needed.

	.text
	.p2align 6
	.globl	mcsafe_asm_copy_avx512
	.hidden	mcsafe_asm_copy_avx512
	.type	mcsafe_asm_copy_avx512, @function
mcsafe_asm_copy_avx512:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lavx512_begin:
	cmp	$64, %rdx
	jb	.Lavx512_less_vec
	cmp	$128, %rdx
	ja	.Lavx512_more_2x_vec
	vmovdqu64 (%rsi), %zmm16		# 64..128: first and last vector
	vmovdqu64 -64(%rsi,%rdx), %zmm17
	vmovdqu64 %zmm16, (%rdi)
	vmovdqu64 %zmm17, -64(%rdi,%rdx)
	xor	%ecx, %ecx			# no fault
	ret

.Lavx512_less_vec:
	cmp	$32, %edx
	jae	.Lavx512_32_63
	cmp	$16, %edx
	jae	.Lavx512_16_31
	cmp	$8, %edx
	jae	.Lavx512_8_15
	cmp	$4, %edx
	jae	.Lavx512_4_7
	cmp	$1, %edx
	ja	.Lavx512_2_3
	jb	.Lavx512_done
	movzbl	(%rsi), %eax
	movb	%al, (%rdi)
	xor	%ecx, %ecx
	ret
.Lavx512_2_3:
	movzwl	(%rsi), %eax
	movzwl	-2(%rsi,%rdx), %ecx
	movw	%ax, (%rdi)
	movw	%cx, -2(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx512_4_7:
	movl	(%rsi), %eax
	movl	-4(%rsi,%rdx), %ecx
	movl	%eax, (%rdi)
	movl	%ecx, -4(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx512_8_15:
	movq	(%rsi), %rax
	movq	-8(%rsi,%rdx), %rcx
	movq	%rax, (%rdi)
	movq	%rcx, -8(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx512_16_31:
	vmovdqu64 (%rsi), %xmm16
	vmovdqu64 -16(%rsi,%rdx), %xmm17
	vmovdqu64 %xmm16, (%rdi)
	vmovdqu64 %xmm17, -16(%rdi,%rdx)
	xor	%ecx, %ecx
	ret
.Lavx512_32_63:
	vmovdqu64 (%rsi), %ymm16
	vmovdqu64 -32(%rsi,%rdx), %ymm17
	vmovdqu64 %ymm16, (%rdi)
	vmovdqu64 %ymm17, -32(%rdi,%rdx)
	xor	%ecx, %ecx
	ret

.Lavx512_more_2x_vec:
	cmp	$256, %rdx
	ja	.Lavx512_more_4x_vec
	vmovdqu64 (%rsi), %zmm16		# 129..256: two vectors from each end
	vmovdqu64 64(%rsi), %zmm17
	vmovdqu64 -128(%rsi,%rdx), %zmm18
	vmovdqu64 -64(%rsi,%rdx), %zmm19
	vmovdqu64 %zmm16, (%rdi)
	vmovdqu64 %zmm17, 64(%rdi)
	vmovdqu64 %zmm18, -128(%rdi,%rdx)
	vmovdqu64 %zmm19, -64(%rdi,%rdx)
	xor	%ecx, %ecx
	ret

.Lavx512_more_4x_vec:
	cmp	$512, %rdx
	ja	.Lavx512_more_8x_vec
	vmovdqu64 (%rsi), %zmm16		# 257..512: four vectors from each end
	vmovdqu64 64(%rsi), %zmm17
	vmovdqu64 128(%rsi), %zmm18
	vmovdqu64 192(%rsi), %zmm19
	vmovdqu64 -256(%rsi,%rdx), %zmm20
	vmovdqu64 -192(%rsi,%rdx), %zmm21
	vmovdqu64 -128(%rsi,%rdx), %zmm22
	vmovdqu64 -64(%rsi,%rdx), %zmm23
	vmovdqu64 %zmm16, (%rdi)
	vmovdqu64 %zmm17, 64(%rdi)
	vmovdqu64 %zmm18, 128(%rdi)
	vmovdqu64 %zmm19, 192(%rdi)
	vmovdqu64 %zmm20, -256(%rdi,%rdx)
	vmovdqu64 %zmm21, -192(%rdi,%rdx)
	vmovdqu64 %zmm22, -128(%rdi,%rdx)
	vmovdqu64 %zmm23, -64(%rdi,%rdx)
	xor	%ecx, %ecx
	ret

.Lavx512_more_8x_vec:
	cmp	mcsafe_asm_non_temporal_threshold(%rip), %rdx
	jae	.Lavx512_non_temporal
	cmp	mcsafe_asm_avx512_rep_movsb_threshold(%rip), %rdx
	jae	.Lavx512_rep_movsb
.Lavx512_loop_4x:
	vmovdqu64 (%rsi), %zmm16		# store the first vector as it is,
	vmovdqu64 %zmm16, (%rdi)
	mov	%edi, %ecx			# then step to the next 64-byte
	and	$63, %ecx			# boundary of the destination (1..64
	neg	%rcx				# bytes, all of them just stored)
	add	$64, %rcx
	add	%rcx, %rsi
	add	%rcx, %rdi
	sub	%rcx, %rdx
.Lavx512_loop_4x_body:
	vmovdqu64 (%rsi), %zmm16		# four vectors per iteration:
	vmovdqu64 64(%rsi), %zmm17		# loads, then aligned stores,
	vmovdqu64 128(%rsi), %zmm18		# then rdi moves past them
	vmovdqu64 192(%rsi), %zmm19
	vmovdqa64 %zmm16, (%rdi)
	vmovdqa64 %zmm17, 64(%rdi)
	vmovdqa64 %zmm18, 128(%rdi)
	vmovdqa64 %zmm19, 192(%rdi)
	add	$256, %rsi
	add	$256, %rdi
	sub	$256, %rdx
	cmp	$256, %rdx
	ja	.Lavx512_loop_4x_body
.Lavx512_last_4x:
	vmovdqu64 -256(%rsi,%rdx), %zmm16	# the last four vectors, ending at
	vmovdqu64 -192(%rsi,%rdx), %zmm17	# the end (they may overlap bytes
	vmovdqu64 -128(%rsi,%rdx), %zmm18	# already stored: same data)
	vmovdqu64 -64(%rsi,%rdx), %zmm19
	vmovdqu64 %zmm16, -256(%rdi,%rdx)
	vmovdqu64 %zmm17, -192(%rdi,%rdx)
	vmovdqu64 %zmm18, -128(%rdi,%rdx)
	vmovdqu64 %zmm19, -64(%rdi,%rdx)
.Lavx512_done:
	xor	%ecx, %ecx
	ret

.Lavx512_rep_movsb:
	mov	%rdx, %rcx
	rep movsb				# leaves rcx = 0: no fault
	ret

.Lavx512_non_temporal:
	vmovdqu64 (%rsi), %zmm16		# first vector, then align, as above
	vmovdqu64 %zmm16, (%rdi)
	mov	%edi, %ecx
	and	$63, %ecx
	neg	%rcx
	add	$64, %rcx
	add	%rcx, %rsi
	add	%rcx, %rdi
	sub	%rcx, %rdx
.Lavx512_non_temporal_4_pages:
	cmp	$17408, %rdx			# four pages left, and the last step's
	jb	.Lavx512_non_temporal_body	# prefetch (+1 KiB) still inside them
	mov	$64, %ecx			# 4 KiB per page, 64 bytes a step
.Lavx512_non_temporal_4_pages_step:
	prefetcht0 1024(%rsi)			# four streams, one per page: the
	prefetcht0 5120(%rsi)			# same offset in four consecutive
	prefetcht0 9216(%rsi)			# pages of the source (all inside it)
	prefetcht0 13312(%rsi)
	vmovdqu64 (%rsi), %ymm16
	vmovdqu64 32(%rsi), %ymm17
	vmovdqu64 4096(%rsi), %ymm18
	vmovdqu64 4128(%rsi), %ymm19
	vmovdqu64 8192(%rsi), %ymm20
	vmovdqu64 8224(%rsi), %ymm21
	vmovdqu64 12288(%rsi), %ymm22
	vmovdqu64 12320(%rsi), %ymm23
	vmovntdq %ymm16, (%rdi)
	vmovntdq %ymm17, 32(%rdi)
	vmovntdq %ymm18, 4096(%rdi)
	vmovntdq %ymm19, 4128(%rdi)
	vmovntdq %ymm20, 8192(%rdi)
	vmovntdq %ymm21, 8224(%rdi)
	vmovntdq %ymm22, 12288(%rdi)
	vmovntdq %ymm23, 12320(%rdi)
	add	$64, %rsi
	add	$64, %rdi			# walks the first page; the other
	dec	%ecx				# three run ahead at the same offset
	jnz	.Lavx512_non_temporal_4_pages_step
	add	$12288, %rsi			# the other three pages are stored
	add	$12288, %rdi			# too: past the whole group
	sub	$16384, %rdx
	jmp	.Lavx512_non_temporal_4_pages

.Lavx512_non_temporal_body:
	cmp	$1280, %rdx			# prefetch 1 KiB ahead, but only
	jb	1f				# inside the source: never into
	prefetcht0 1024(%rsi)			# bytes past len, which may be a
	prefetcht0 1088(%rsi)			# lost granule (the forward step
	prefetcht0 1152(%rsi)			# ends right before one)
	prefetcht0 1216(%rsi)
1:	vmovdqu64 (%rsi), %ymm16		# eight 32-byte halves per iteration,
	vmovdqu64 32(%rsi), %ymm17		# stored around the cache (32-byte
	vmovdqu64 64(%rsi), %ymm18		# streaming stores outrun 64-byte ones
	vmovdqu64 96(%rsi), %ymm19		# on the CPUs measured: see README)
	vmovdqu64 128(%rsi), %ymm20
	vmovdqu64 160(%rsi), %ymm21
	vmovdqu64 192(%rsi), %ymm22
	vmovdqu64 224(%rsi), %ymm23
	vmovntdq %ymm16, (%rdi)
	vmovntdq %ymm17, 32(%rdi)
	vmovntdq %ymm18, 64(%rdi)
	vmovntdq %ymm19, 96(%rdi)
	vmovntdq %ymm20, 128(%rdi)
	vmovntdq %ymm21, 160(%rdi)
	vmovntdq %ymm22, 192(%rdi)
	vmovntdq %ymm23, 224(%rdi)
	add	$256, %rsi
	add	$256, %rdi
	sub	$256, %rdx
	cmp	$256, %rdx
	ja	.Lavx512_non_temporal_body
	sfence					# order them before the plain stores
	jmp	.Lavx512_last_4x
.Lavx512_end:

.Lavx512_fixup:
	sfence					# non-temporal stores visible first
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_asm_copy_avx512, . - mcsafe_asm_copy_avx512
	LANDING_PAD .Lavx512_begin, .Lavx512_end, .Lavx512_fixup
