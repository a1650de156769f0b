# mcsafe_asm_copy_avx2: 32-byte vectors, shaped like glibc's memmove-vec-unaligned-erms.
#
# Size classes (VEC = 32 bytes), after the argument check:
#   0..31        SMALL_COPIES: two overlapping moves of 1, 2, 4, 8 or 16 bytes
#   32..64       first and last vector
#   65..128      two vectors from each end
#   129..256     four vectors from each end
#   257..        store the first vector, align the destination, 4 vectors per
#                iteration with aligned stores, then the last 4 vectors from the end
#                (backward when each range lies inside one page:
#                UNLESS_INSIDE_ONE_PAGE, tested first);
#                from mcsafe_asm_avx2_rep_movsb_threshold: rep movsb instead;
#                from mcsafe_asm_non_temporal_threshold (checked first, whatever the
#                rep movsb threshold): the loop with non-temporal stores.
# Up to 256 bytes every load comes before every store and no pointer moves: one
# REGS_ENTRY range, no prologue. After a fault there the careful forward step
# (src/copy.rs) copies the prefix again, with a length that no longer reaches the lost
# granule. Every exit that used a ymm register runs vzeroupper, so later SSE code pays
# no transition penalty.
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction --test sweep
# --test forward_step --test lost_pages`, `cargo xtask vm-test`, and for speed `cargo bench
# --bench summary -- --quick` (the small sizes also under `cargo xtask bench-layout`).

	ROUTINE copy_avx2
	CHECK_COPY_ARGUMENTS
	cmp	$32, %rdx
	jb	.Lavx2_small			# under one vector: SMALL_COPIES below
	vmovdqu	(%rsi), %ymm0			# the first vector, whatever the class
	cmp	$64, %rdx
	ja	.Lavx2_more_2x_vec
	vmovdqu	-32(%rsi,%rdx), %ymm1		# 32..64: first and last vector
	vmovdqu	%ymm0, (%rdi)
	vmovdqu	%ymm1, -32(%rdi,%rdx)
	vzeroupper
	xor	%eax, %eax			# every byte copied
	ret

.Lavx2_more_2x_vec:
	vmovdqu	32(%rsi), %ymm1
	cmp	$256, %rdx
	ja	.Lavx2_more_8x_vec
	cmp	$128, %rdx
	jbe	.Lavx2_up_to_4x_vec
	vmovdqu	64(%rsi), %ymm2			# 129..256: four vectors from each end
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
	xor	%eax, %eax
	ret

.Lavx2_up_to_4x_vec:
	vmovdqu	-64(%rsi,%rdx), %ymm2		# 65..128: two vectors from each end
	vmovdqu	-32(%rsi,%rdx), %ymm3
	vmovdqu	%ymm0, (%rdi)
	vmovdqu	%ymm1, 32(%rdi)
	vmovdqu	%ymm2, -64(%rdi,%rdx)
	vmovdqu	%ymm3, -32(%rdi,%rdx)
	vzeroupper
	xor	%eax, %eax
	ret

.Lavx2_small:
	SMALL_COPIES avx2, 32, vmovdqu, %xmm0, %xmm1

.Lavx2_more_8x_vec:
	UNLESS_INSIDE_ONE_PAGE .Lavx2_forward	# (in the entry range)
	COPY_4X_BACKWARD 32, vmovdqu, vmovdqa, %ymm0, %ymm1, %ymm2, %ymm3, %ymm4, %ymm5, %ymm6, %ymm7, %ymm8
	vzeroupper
	xor	%eax, %eax
	ret

.Lavx2_forward:
	SAVE_RANGE_REGISTERS copy_avx2		# from here rdi, rsi, rdx move
	cmp	mcsafe_asm_non_temporal_threshold(%rip), %rdx
	jae	.Lavx2_non_temporal
	cmp	mcsafe_asm_avx2_rep_movsb_threshold(%rip), %rdx
	jae	.Lavx2_rep_movsb
	STORE_FIRST_VEC_ALIGN_DST 32, vmovdqu, %ymm0
.Lavx2_loop_4x:
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
	ja	.Lavx2_loop_4x
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
	xor	%eax, %eax
	ret


.Lavx2_rep_movsb:
	vzeroupper
	mov	%rdx, %rcx
	rep movsb
	xor	%eax, %eax			# every byte copied
	ret

.Lavx2_non_temporal:
	STORE_FIRST_VEC_ALIGN_DST 32, vmovdqu, %ymm0
.Lavx2_non_temporal_loop:			# no software prefetch: on Zen 3 the
						# avx512 routine's prefetcht0 1 KiB ahead
						# cost 15-20 % from 64 MiB (docs/performance.md)
	vmovdqu	(%rsi), %ymm0			# four vectors per iteration, stored
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
	ja	.Lavx2_non_temporal_loop
	sfence					# order them before the plain stores
	jmp	.Lavx2_last_4x

.macro AVX2_BEFORE_FIXUP
	vzeroupper				# the fault may leave ymm state dirty,
	sfence					# and streaming stores go first
.endm
	END_ROUTINE copy_avx2, AVX2_BEFORE_FIXUP, c
