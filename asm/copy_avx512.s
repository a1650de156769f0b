# mcsafe_asm_copy_avx512: 64-byte vectors, shaped like glibc's memmove-vec-unaligned-erms.
#
# Size classes (VEC = 64 bytes), after the argument check:
#   0..63        SMALL_COPIES: two overlapping moves of 1, 2, 4, 8, 16 or 32 bytes
#                (a masked 64-byte move was tried: no faster, slower cold, and its
#                masked-off bytes may reach past len, into a lost granule)
#   64..128      first and last vector
#   129..256     two vectors from each end
#   257..512     four vectors from each end
#   513..        store the first vector, align the destination, 4 vectors per
#                iteration with aligned stores, then the last 4 vectors from the end
#                (backward when each range lies inside one page:
#                UNLESS_INSIDE_ONE_PAGE, tested first);
#                from mcsafe_asm_avx512_rep_movsb_threshold: rep movsb instead;
#                from mcsafe_asm_non_temporal_threshold (checked first, whatever the
#                rep movsb threshold): the loop with non-temporal stores.
# Up to 512 bytes every load comes before every store and no pointer moves: one
# REGS_ENTRY range, no prologue (see copy_avx2.s).
#
# Only zmm16-31 (and their ymm/xmm halves) are used (EVEX): their upper halves never
# make later SSE code pay a transition penalty, so no vzeroupper is needed.
#
# Change it, then run what copy_avx2.s says, on a CPU with AVX-512: elsewhere the
# routine never runs, and `cargo test -p mcsafe-tests --test every_instruction` says
# that its ranges were NOT traced.

	ROUTINE copy_avx512, entry, 6
	CHECK_COPY_ARGUMENTS
	cmp	$64, %rdx
	jb	.Lavx512_small			# under one vector: SMALL_COPIES below
	vmovdqu64 (%rsi), %zmm16		# the first vector, whatever the class
	cmp	$128, %rdx
	ja	.Lavx512_more_2x_vec
	vmovdqu64 -64(%rsi,%rdx), %zmm17	# 64..128: first and last vector
	vmovdqu64 %zmm16, (%rdi)
	vmovdqu64 %zmm17, -64(%rdi,%rdx)
	xor	%eax, %eax			# every byte copied
	ret

.Lavx512_more_2x_vec:
	vmovdqu64 64(%rsi), %zmm17
	cmp	$512, %rdx
	ja	.Lavx512_more_8x_vec
	cmp	$256, %rdx
	jbe	.Lavx512_up_to_4x_vec
	vmovdqu64 128(%rsi), %zmm18		# 257..512: four vectors from each end
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
	xor	%eax, %eax
	ret

.Lavx512_up_to_4x_vec:
	vmovdqu64 -128(%rsi,%rdx), %zmm18	# 129..256: two vectors from each end
	vmovdqu64 -64(%rsi,%rdx), %zmm19
	vmovdqu64 %zmm16, (%rdi)
	vmovdqu64 %zmm17, 64(%rdi)
	vmovdqu64 %zmm18, -128(%rdi,%rdx)
	vmovdqu64 %zmm19, -64(%rdi,%rdx)
	xor	%eax, %eax
	ret

.Lavx512_small:
	SMALL_COPIES avx512, 64, vmovdqu64, %xmm16, %xmm17, %ymm16, %ymm17

.Lavx512_more_8x_vec:
	UNLESS_INSIDE_ONE_PAGE .Lavx512_forward	# (in the entry range)
	COPY_4X_BACKWARD 64, vmovdqu64, vmovdqa64, %zmm16, %zmm17, %zmm18, %zmm19, %zmm20, %zmm21, %zmm22, %zmm23, %zmm24
	xor	%eax, %eax
	ret

.Lavx512_forward:
	SAVE_RANGE_REGISTERS copy_avx512	# from here rdi, rsi, rdx move
	cmp	mcsafe_asm_non_temporal_threshold(%rip), %rdx
	jae	.Lavx512_non_temporal
	cmp	mcsafe_asm_avx512_rep_movsb_threshold(%rip), %rdx
	jae	.Lavx512_rep_movsb
	STORE_FIRST_VEC_ALIGN_DST 64, vmovdqu64, %zmm16
.Lavx512_loop_4x:
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
	ja	.Lavx512_loop_4x
.Lavx512_last_4x:
	vmovdqu64 -256(%rsi,%rdx), %zmm16	# the last four vectors, ending at
	vmovdqu64 -192(%rsi,%rdx), %zmm17	# the end (they may overlap bytes
	vmovdqu64 -128(%rsi,%rdx), %zmm18	# already stored: same data)
	vmovdqu64 -64(%rsi,%rdx), %zmm19
	vmovdqu64 %zmm16, -256(%rdi,%rdx)
	vmovdqu64 %zmm17, -192(%rdi,%rdx)
	vmovdqu64 %zmm18, -128(%rdi,%rdx)
	vmovdqu64 %zmm19, -64(%rdi,%rdx)
	xor	%eax, %eax
	ret


.Lavx512_rep_movsb:
	mov	%rdx, %rcx
	rep movsb
	xor	%eax, %eax			# every byte copied
	ret

.Lavx512_non_temporal:
	STORE_FIRST_VEC_ALIGN_DST 64, vmovdqu64, %zmm16
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
	END_ROUTINE copy_avx512, sfence, c		# streaming stores visible first
