# mcsafe_asm_copy_avx2 and mcsafe_asm_copy_avx512 (and their twins rust_copy_* and
# c_copy_*, the same body with the Rust and the C API exits: asm/routine.s): one
# algorithm at two vector widths, shaped like
# glibc's memmove-vec-unaligned-erms. COPY_VECTOR below is the body; the
# non-temporal loop is the only block written per width.
#
# Size classes (VEC = 32 or 64 bytes), after the argument check:
#   0..VEC-1       SMALL_COPIES: two overlapping moves of 1, 2, 4, 8, 16 (or 32) bytes
#                  (avx512: a masked 64-byte move was tried: no faster, slower cold,
#                  and its masked-off bytes may reach past len, into a lost granule)
#   VEC..2VEC      first and last vector
#   ..4VEC         two vectors from each end
#   ..8VEC         four vectors from each end
#   8VEC+1..       store the first vector, align the destination, 4 vectors per
#                  iteration with aligned stores, then the last 4 vectors from the end
#                  (backward when the destination is 0..255 bytes past the
#                  source modulo 4096 and each range lies inside one page:
#                  UNLESS_ALIASED_INSIDE_ONE_PAGE, tested first);
#                  from the width's rep movsb threshold up to
#                  mcsafe_asm_rep_movsb_stop_threshold: rep movsb instead;
#                  from mcsafe_asm_non_temporal_threshold (checked first, whatever the
#                  rep movsb threshold): the loop with non-temporal stores.
# Up to 8 vectors every load comes before every store and no pointer moves: one
# REGS_ENTRY range, no prologue. After a fault there the careful forward step
# (src/forward.rs) copies the prefix again, with a length that no longer reaches the
# lost granule. The avx2 routine runs vzeroupper at every exit that used a ymm
# register, so later SSE code pays no transition penalty; the avx512 one uses only
# zmm16-31 (EVEX), whose upper halves never cause one, and needs none.
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction --test sweep
# --test forward_step --test lost_pages`, `cargo xtask vm-test`, and for speed `cargo
# bench --bench summary -- --quick` (the small sizes also under `cargo xtask
# bench-layout`). The avx512 routine runs (and is traced) only on an AVX-512 machine:
# elsewhere `every_instruction` says its ranges were NOT traced.

# Copies of fewer than `vec` bytes (vec = 32 or 64), in a REGS_ENTRY range: two
# overlapping moves of 1, 2, 4, 8, 16 or 32 bytes from each end, every load before
# every store, every access inside the buffers. 8..15 bytes fall through (keys and
# headers: no taken branch); `x0, x1` are the 16-byte registers and `y0, y1` the
# 32-byte ones (vec 64 only) with their move instruction `vmov`.
.macro SMALL_COPIES name, vec, vmov, x0, x1, y0, y1
	cmp	$8, %edx
	jb	.L\name\()_0_7
	cmp	$16, %edx
	jae	.L\name\()_16_up
	movq	(%rsi), %rax			# 8..15
	movq	-8(%rsi,%rdx), %rcx
	movq	%rax, (%rdi)
	movq	%rcx, -8(%rdi,%rdx)
	xor	%eax, %eax
	ret
.L\name\()_16_up:
	.if \vec == 64
	cmp	$32, %edx
	jae	.L\name\()_32_63
	.endif
	\vmov	(%rsi), \x0			# 16..31 (xmm: no upper state dirtied)
	\vmov	-16(%rsi,%rdx), \x1
	\vmov	\x0, (%rdi)
	\vmov	\x1, -16(%rdi,%rdx)
	xor	%eax, %eax
	ret
	.if \vec == 64
.L\name\()_32_63:
	\vmov	(%rsi), \y0			# 32..63
	\vmov	-32(%rsi,%rdx), \y1
	\vmov	\y0, (%rdi)
	\vmov	\y1, -32(%rdi,%rdx)
	xor	%eax, %eax
	ret
	.endif
.L\name\()_0_7:
	cmp	$4, %edx
	jae	.L\name\()_4_7
	cmp	$1, %edx
	jb	.L\name\()_0			# flags live to the je below
	movzbl	(%rsi), %ecx			# 1..3: the first byte, and for 2..3
	je	.L\name\()_1			# the last two
	movzwl	-2(%rsi,%rdx), %eax
	movw	%ax, -2(%rdi,%rdx)
.L\name\()_1:
	movb	%cl, (%rdi)
.L\name\()_0:
	xor	%eax, %eax
	ret
.L\name\()_4_7:
	movl	(%rsi), %eax
	movl	-4(%rsi,%rdx), %ecx
	movl	%eax, (%rdi)
	movl	%ecx, -4(%rdi,%rdx)
	xor	%eax, %eax
	ret
.endm

# Stores the first vector (already loaded into `reg`) as it is, then steps all three
# cursors to the next `vec`-byte boundary of the destination: 1..vec bytes, all of
# them just stored, so rdi moves only past stored bytes. Clobbers rcx.
.macro STORE_FIRST_VEC_ALIGN_DST vec, vmov, reg
	\vmov	\reg, (%rdi)
	mov	%edi, %ecx
	and	$(\vec - 1), %ecx
	neg	%rcx
	add	$\vec, %rcx
	add	%rcx, %rsi
	add	%rcx, %rdi
	sub	%rcx, %rdx
.endm

# Steps the three cursors past one 4-vector block (`sub $-128` for 32-byte vectors:
# an 8-bit immediate, so the loop stays shorter).
.macro STEP_4X vec
	.if \vec == 32
	sub	$-128, %rsi
	sub	$-128, %rdi
	add	$-128, %rdx
	.else
	add	$(4 * \vec), %rsi
	add	$(4 * \vec), %rdi
	sub	$(4 * \vec), %rdx
	.endif
.endm

# The loop path copied backward, for copies that lie inside one page on each side
# with the destination 0..255 bytes past the source modulo 4096
# (UNLESS_ALIASED_INSIDE_ONE_PAGE; glibc's 4k-aliasing rule in
# memmove-vec-unaligned-erms.S): copied forward, the
# first loads wait on stores (of the previous iteration, or of the previous copy of
# the same buffers) whose addresses match them in the low 12 bits. `v0`
# holds the first vector (already loaded); `v1`..`v4` are the loop's, `v5`..`v7` the
# next three vectors, `v8` the last one. The 4-vector blocks are stored downward from
# the end, with aligned stores, then the first four vectors and the last one. rdi
# never moves (progress 0: the forward step redoes the prefix after a fault); rcx and
# rax are the cursors. Every access lies inside the buffers (len > 8 vectors). The
# caller writes the exit.
.macro COPY_4X_BACKWARD vec, vmovu, vmova, v0, v1, v2, v3, v4, v5, v6, v7, v8
	\vmovu	\vec(%rsi), \v5
	\vmovu	(2 * \vec)(%rsi), \v6
	\vmovu	(3 * \vec)(%rsi), \v7
	\vmovu	-\vec(%rsi,%rdx), \v8
	lea	(-4 * \vec - 1)(%rdi,%rdx), %rcx	# the last whole 4-vector block of
	and	$-\vec, %rcx				# dst, aligned down
	mov	%rcx, %rax				# and its source:
	sub	%rdi, %rax				# src + (block - dst)
	add	%rsi, %rax
	.p2align 4,, 10					# the loop at a fetch block start
1:	\vmovu	(3 * \vec)(%rax), \v1
	\vmovu	(2 * \vec)(%rax), \v2
	\vmovu	\vec(%rax), \v3
	\vmovu	(%rax), \v4
	\vmova	\v1, (3 * \vec)(%rcx)
	\vmova	\v2, (2 * \vec)(%rcx)
	\vmova	\v3, \vec(%rcx)
	\vmova	\v4, (%rcx)
	sub	$(4 * \vec), %rax
	sub	$(4 * \vec), %rcx
	cmp	%rcx, %rdi				# down to the block that reaches dst
	jb	1b
	\vmovu	\v0, (%rdi)				# then the first four vectors
	\vmovu	\v5, \vec(%rdi)
	\vmovu	\v6, (2 * \vec)(%rdi)
	\vmovu	\v7, (3 * \vec)(%rdi)
	\vmovu	\v8, -\vec(%rdi,%rdx)			# and the last one
.endm

# Whether the loop path goes backward (see COPY_4X_BACKWARD): jumps to `forward`
# unless the destination is 0..255 bytes past the source modulo 4096, where a
# forward copy's loads would wait on stores whose addresses match them in the low
# 12 bits (glibc's 4k-aliasing rule, tested as (dst - src) & (4096 - 256) == 0;
# distance 0 included: a hot copy of the same buffers again meets the previous
# copy's stores, measured on Emerald Rapids: page-aligned 1 KiB hot 5.4 ns forward,
# 4.8 backward), and unless each range lies inside one page (tested as (src | dst)
# mod 4096 + len <= 4096, which implies both), so that the backward copy, placed
# right after, is reached without a taken branch. Only for those distances: at the
# others there is no aliasing to avoid, and cold a backward copy was slower where
# measured (page-aligned 1 KiB from C, distance 0: 0.96-1.00x memcpy backward,
# 1.14-1.16 forward; hot decides at 0, as for glibc). Only
# inside one page: a backward copy touches the end first, and across pages it would
# meet a lost page past one a forward copy stops at (a copy past a truncation would
# take a signal for every lost page, not one); inside one page per side, the first
# access to either side's page is the one that faults, whatever the order, so a
# faulting copy still takes one signal. In the entry range, before the range
# registers are saved: the backward loop moves neither rdi, rsi nor rdx.
# Clobbers ecx.
.macro UNLESS_ALIASED_INSIDE_ONE_PAGE forward
	mov	%edi, %ecx
	sub	%esi, %ecx
	test	$(4096 - 256), %ecx
	jnz	\forward
	mov	%edi, %ecx
	or	%esi, %ecx
	and	$4095, %ecx
	add	%rdx, %rcx
	cmp	$4096, %rcx
	ja	\forward
.endm

# The body. `vzu` is `vzeroupper` for the 256-bit routine and empty for the zmm16-31
# one; `rep` names the width's rep movsb threshold; `nt` the width's non-temporal
# loop (a macro taking the routine's name, which ends by jumping to
# .L<name>_last_4x); `before_fixup` what the fixup runs first. x0, x1 (and y0, y1)
# are SMALL_COPIES' registers, v0..v8 the vector registers.
.macro COPY_VECTOR name, convention, align, needs, vec, vmovu, vmova, vzu, rep, nt, before_fixup, x0, x1, y0, y1, v0, v1, v2, v3, v4, v5, v6, v7, v8
	ROUTINE \name, \convention, entry, \align, \needs
	CHECK_COPY_ARGUMENTS \name
	cmp	$\vec, %rdx
	jb	.L\name\()_small		# under one vector: SMALL_COPIES below
	\vmovu	(%rsi), \v0			# the first vector, whatever the class
	cmp	$(2 * \vec), %rdx
	ja	.L\name\()_more_2x_vec
	\vmovu	-\vec(%rsi,%rdx), \v1		# VEC..2VEC: first and last vector
	\vmovu	\v0, (%rdi)
	\vmovu	\v1, -\vec(%rdi,%rdx)
	\vzu
	xor	%eax, %eax			# every byte copied
	ret

.L\name\()_more_2x_vec:
	\vmovu	\vec(%rsi), \v1
	cmp	$(8 * \vec), %rdx
	ja	.L\name\()_more_8x_vec
	cmp	$(4 * \vec), %rdx
	jbe	.L\name\()_up_to_4x_vec
	\vmovu	(2 * \vec)(%rsi), \v2		# ..8VEC: four vectors from each end
	\vmovu	(3 * \vec)(%rsi), \v3
	\vmovu	(-4 * \vec)(%rsi,%rdx), \v4
	\vmovu	(-3 * \vec)(%rsi,%rdx), \v5
	\vmovu	(-2 * \vec)(%rsi,%rdx), \v6
	\vmovu	-\vec(%rsi,%rdx), \v7
	\vmovu	\v0, (%rdi)
	\vmovu	\v1, \vec(%rdi)
	\vmovu	\v2, (2 * \vec)(%rdi)
	\vmovu	\v3, (3 * \vec)(%rdi)
	\vmovu	\v4, (-4 * \vec)(%rdi,%rdx)
	\vmovu	\v5, (-3 * \vec)(%rdi,%rdx)
	\vmovu	\v6, (-2 * \vec)(%rdi,%rdx)
	\vmovu	\v7, -\vec(%rdi,%rdx)
	\vzu
	xor	%eax, %eax
	ret

.L\name\()_up_to_4x_vec:
	\vmovu	(-2 * \vec)(%rsi,%rdx), \v2	# ..4VEC: two vectors from each end
	\vmovu	-\vec(%rsi,%rdx), \v3
	\vmovu	\v0, (%rdi)
	\vmovu	\v1, \vec(%rdi)
	\vmovu	\v2, (-2 * \vec)(%rdi,%rdx)
	\vmovu	\v3, -\vec(%rdi,%rdx)
	\vzu
	xor	%eax, %eax
	ret

.L\name\()_small:
	SMALL_COPIES \name, \vec, \vmovu, \x0, \x1, \y0, \y1

.L\name\()_more_8x_vec:
	UNLESS_ALIASED_INSIDE_ONE_PAGE .L\name\()_forward	# (in the entry range)
	COPY_4X_BACKWARD \vec, \vmovu, \vmova, \v0, \v1, \v2, \v3, \v4, \v5, \v6, \v7, \v8
	\vzu
	xor	%eax, %eax
	ret

.L\name\()_forward:
	SAVE_RANGE_REGISTERS \name		# from here rdi, rsi, rdx move
	cmp	mcsafe_asm_non_temporal_threshold(%rip), %rdx
	jae	.L\name\()_non_temporal
	cmp	mcsafe_asm_\rep\()_threshold(%rip), %rdx
	jae	.L\name\()_rep_movsb
.L\name\()_vector_loop:
	STORE_FIRST_VEC_ALIGN_DST \vec, \vmovu, \v0
.L\name\()_loop_4x:
	\vmovu	(%rsi), \v0			# four vectors per iteration:
	\vmovu	\vec(%rsi), \v1			# loads, then aligned stores,
	\vmovu	(2 * \vec)(%rsi), \v2		# then rdi moves past them
	\vmovu	(3 * \vec)(%rsi), \v3
	\vmova	\v0, (%rdi)
	\vmova	\v1, \vec(%rdi)
	\vmova	\v2, (2 * \vec)(%rdi)
	\vmova	\v3, (3 * \vec)(%rdi)
	STEP_4X	\vec
	cmp	$(4 * \vec), %rdx
	ja	.L\name\()_loop_4x
.L\name\()_last_4x:
	\vmovu	(-4 * \vec)(%rsi,%rdx), \v0	# the last four vectors, ending at
	\vmovu	(-3 * \vec)(%rsi,%rdx), \v1	# the end (they may overlap bytes
	\vmovu	(-2 * \vec)(%rsi,%rdx), \v2	# already stored: same data)
	\vmovu	-\vec(%rsi,%rdx), \v3
	\vmovu	\v0, (-4 * \vec)(%rdi,%rdx)
	\vmovu	\v1, (-3 * \vec)(%rdi,%rdx)
	\vmovu	\v2, (-2 * \vec)(%rdi,%rdx)
	\vmovu	\v3, -\vec(%rdi,%rdx)
	\vzu
	xor	%eax, %eax
	ret

.L\name\()_rep_movsb:
	cmp	mcsafe_asm_rep_movsb_stop_threshold(%rip), %rdx
	jae	.L\name\()_vector_loop	# past the stop: the loop again
	\vzu
	mov	%rdx, %rcx
	rep movsb				# fault point: either side
	xor	%eax, %eax			# every byte copied
	ret

.L\name\()_non_temporal:
	\nt	\name
	END_ROUTINE \name, \before_fixup
.endm

# ---- The non-temporal loops, one per width ----

# 32-byte vectors: four per iteration, stored around the cache. No software
# prefetch: on Zen 3 the avx512 loop's prefetcht0 1 KiB ahead cost 15-20 % from
# 64 MiB (docs/performance.md).
.macro NON_TEMPORAL_AVX2 name
	STORE_FIRST_VEC_ALIGN_DST 32, vmovdqu, %ymm0
.L\name\()_non_temporal_loop:
	vmovdqu	(%rsi), %ymm0
	vmovdqu	32(%rsi), %ymm1
	vmovdqu	64(%rsi), %ymm2
	vmovdqu	96(%rsi), %ymm3
	vmovntdq %ymm0, (%rdi)
	vmovntdq %ymm1, 32(%rdi)
	vmovntdq %ymm2, 64(%rdi)
	vmovntdq %ymm3, 96(%rdi)
	STEP_4X	32
	cmp	$128, %rdx
	ja	.L\name\()_non_temporal_loop
	sfence					# order them before the plain stores
	jmp	.L\name\()_last_4x
.endm

# 256 bytes as eight 32-byte halves, stored around the cache (32-byte streaming
# stores outrun 64-byte ones on the CPUs measured), then the cursors step past them;
# back to `loop` while more than 256 bytes are left, else the sfence that orders
# them before the plain stores, and the last four vectors.
.macro NON_TEMPORAL_256 loop
	vmovdqu64 (%rsi), %ymm16
	vmovdqu64 32(%rsi), %ymm17
	vmovdqu64 64(%rsi), %ymm18
	vmovdqu64 96(%rsi), %ymm19
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
	STEP_4X	64
	cmp	$256, %rdx
	ja	\loop
	sfence
.endm

# 64-byte vectors, in one of two shapes (mcsafe_asm_avx512_page_streams, set per
# CPU family: src/arch/x86_64/cpu.rs):
# - page streams (Intel): four pages at a time while they last (four streams, one
#   per page, the same offset in each), then 256 bytes per iteration, prefetching
#   1 KiB ahead inside the source only;
# - plain (AMD): 256 bytes per iteration, no prefetch: the shape of the avx2
#   loop, which outran the streams on Zen 5 (25.8 against 22 GB/s from 64 MiB,
#   issue 18) as a prefetch 1 KiB ahead slowed Zen 3 by 15-20 %.
.macro NON_TEMPORAL_AVX512 name
	STORE_FIRST_VEC_ALIGN_DST 64, vmovdqu64, %zmm16
	cmpq	$0, mcsafe_asm_avx512_page_streams(%rip)
	je	.L\name\()_non_temporal_plain
.L\name\()_non_temporal_4_pages:
	cmp	$17408, %rdx			# four pages left, and the last step's
	jb	.L\name\()_non_temporal_body	# prefetch (+1 KiB) still inside them
	mov	$64, %ecx			# 4 KiB per page, 64 bytes a step
.L\name\()_non_temporal_4_pages_step:
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
	jnz	.L\name\()_non_temporal_4_pages_step
	add	$12288, %rsi			# the other three pages are stored
	add	$12288, %rdi			# too: past the whole group
	sub	$16384, %rdx
	jmp	.L\name\()_non_temporal_4_pages

.L\name\()_non_temporal_body:
	cmp	$1280, %rdx			# prefetch 1 KiB ahead, but only
	jb	1f				# inside the source: never into
	prefetcht0 1024(%rsi)			# bytes past len, which may be a
	prefetcht0 1088(%rsi)			# lost granule (the forward step
	prefetcht0 1152(%rsi)			# ends right before one)
	prefetcht0 1216(%rsi)
1:	NON_TEMPORAL_256 .L\name\()_non_temporal_body
	jmp	.L\name\()_last_4x

.L\name\()_non_temporal_plain:			# the same, no prefetch
	NON_TEMPORAL_256 .L\name\()_non_temporal_plain
	jmp	.L\name\()_last_4x
.endm

.macro AVX2_BEFORE_FIXUP
	vzeroupper				# the fault may leave ymm state dirty,
	sfence					# and streaming stores go first
.endm

# ---- The routines: each width in each copy convention ----
.macro COPY_AVX2 name, convention
	COPY_VECTOR \name, \convention, 5, NEEDS_AVX2, 32, vmovdqu, vmovdqa, vzeroupper, avx2_rep_movsb, NON_TEMPORAL_AVX2, AVX2_BEFORE_FIXUP, %xmm0, %xmm1, , , %ymm0, %ymm1, %ymm2, %ymm3, %ymm4, %ymm5, %ymm6, %ymm7, %ymm8
.endm
.macro COPY_AVX512 name, convention
	COPY_VECTOR \name, \convention, 6, NEEDS_AVX512, 64, vmovdqu64, vmovdqa64, , avx512_rep_movsb, NON_TEMPORAL_AVX512, sfence, %xmm16, %xmm17, %ymm16, %ymm17, %zmm16, %zmm17, %zmm18, %zmm19, %zmm20, %zmm21, %zmm22, %zmm23, %zmm24
.endm
	COPY_AVX2 copy_avx2, CONV_COPY
	COPY_AVX2 rust_copy_avx2, CONV_RUST_COPY
	COPY_AVX2 c_copy_avx2, CONV_C_COPY
	COPY_AVX512 copy_avx512, CONV_COPY
	COPY_AVX512 rust_copy_avx512, CONV_RUST_COPY
	COPY_AVX512 c_copy_avx512, CONV_C_COPY
