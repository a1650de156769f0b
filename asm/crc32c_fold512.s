# mcsafe_asm_crc32c_fold512 and mcsafe_asm_copy_crc32c_fold512: CRC32C of a
# buffer that may fault (crc32c_mc), and the one-pass copy and CRC32C
# (copy_crc32c_mc), with carry-less multiplication on 512-bit vectors
# (VPCLMULQDQ on zmm): four zmm accumulators, 256 bytes per iteration, in ONE
# sequential walk of the source (no crc32 streams at other offsets). One
# source, two routines (the FOLD512 macro below, `copy` 0 or 1). Needs SSE4.2,
# PCLMULQDQ, AVX, AVX2, AVX-512 (F and VL) and VPCLMULQDQ; cpu.rs takes it only
# where the copy rules also run 512-bit code (Intel Sapphire Rapids and later,
# AMD Zen 4 and 5; not the fragile models). Uses the constants and the chain
# macros of asm/crc32c_fold.s and asm/copy_crc32c.s, assembled before this file.
# The method and its figures: docs/crc.md.
#
# Why one walk and no streams (measured on an Intel Emerald Rapids guest,
# docs/crc.md): there VPCLMULQDQ on zmm folds 64 bytes per two cycles on one
# port, four times what fold256's ymm folds and three crc32 streams did together
# (56-58 GB/s against 115-126 in the cache from 4 KiB), and cold data arrives
# fastest in one sequential walk with software prefetch ahead of it (fold256's
# four fronts per block, each starting cold, read at 10.8-12.5 GB/s from 1 GiB
# where crc-fast read at 14-15 and this walk at 13.5-16.7).
# crc-fast 1.x on such a CPU (corsix's "v3x2": three zmm accumulators, one walk,
# the tail up to 383 bytes by crc32) is the same kind of walk.
#
# Conventions (routine.s): the checksum one (CONV_CRC) for crc32c_fold512:
#   in:   rdi = src, esi = CRC state to continue (not inverted), rdx = len (> 0),
#         r9 = the largest block the caller allows (at least FOLD_VECTOR_MIN;
#         the routine takes at most FOLD512_BLOCK); below FOLD_CHAIN_MAX bytes
#         it touches neither r9 nor r12-r15 (routines.rs, CRC_SHORT)
#   clobbers the C ABI's caller-saved registers, every zmm register and k1.
# The copy-and-checksum one (CONV_COPY_CRC) for copy_crc32c_fold512:
#   in:   rdi = dst, rcx = src, rdx = len (> 0, no overlap), esi = state,
#         r11 = the largest block allowed (at least FOLD_VECTOR_MIN), rax unused
#         (there are no streams); stores are non-temporal in the main loop when
#         len >= mcsafe_asm_non_temporal_threshold (asm/dispatch.s), as copy_mc's
#         are, and every way out then runs sfence
#   clobbers the C ABI's caller-saved registers, every zmm register, k1 and
#   r12-r15; no stack.
# Both end in register mode: rax = status, rcx = bytes not done, esi = CRC state
# of exactly the bytes done, r11 = si_addr.
#
# Progress, at every instruction inside a range (as in asm/crc32c_fold.s):
#   esi is the CRC state of exactly the source bytes [src, src + (rdi + a - r8))
#   and, for the copy, every byte of [r8, rdi + a) is stored
# with a = 0 but in the two one-instruction windows (`.Lz_window*`: a = the
# block's end - rdi, in r9 for the checksum, r12 for the copy; `.Lz_short_done*`:
# a = r8 + r10 - rdi), whose fixups set rdi first. Blocks are computed in
# scratch registers and committed at their end (the new state into esi, then rdi
# past the block). The walk is sequential and the loads are in address order, so
# the first fault is on the first lost granule the call reaches: one signal per
# call, and the careful forward step then ends before that granule.
#
# A block is at most FOLD512_BLOCK bytes and, but for the last, ends 64-byte
# aligned (rdi: the source, or the destination of a copy). Below a chain length
# (FOLD_CHAIN_MAX for the checksum, FOLD512_COPY_CHAIN_MAX for the copy) it is
# one crc32 chain; otherwise
#   [head: t < 64 bytes, to 64-byte alignment][m units of 64 bytes][tail: < 64]
# The head continues the state with crc32 (and is copied word by word); the
# state after it is XORed into the first 4 bytes of the first unit; units fold
# into four zmm accumulators (unit i into accumulator i mod 4, 256 bytes per
# iteration). At the end every register left, the four accumulators and the
# last 0-3 units (or the 1-3 units of a short vector part), folds at once onto
# the last 16 bytes of the units, each 128-bit lane by its own distance (the
# table T below), so that the end costs one multiplication's latency, not a
# chain of them; the sum's four lanes XORed give one 128-bit residue X, whose two
# crc32q from 0 give the state after the units; the tail continues it with crc32.
# Registers inside a block:
#   rcx   source cursor                        rdx   count (head, units, tail)
#   r11   the block size                       checksum: r9 = the block's end,
#   copy: rax = dst - src, r12 = the block's         eax = the state
#         end in dst, r13 = the state, r14 = 1 for non-temporal stores, r15 = a word
#   zmm0-3 accumulators, zmm4-11 products and loaded units, zmm14 the loop's
#   constants; the table pointer (FOLD512's \tr: rax or r15); k1 = lane 3
#
# Change it, then run `cargo test -p mcsafe --lib crc32c`, `cargo test -p
# mcsafe-tests --test every_instruction --test storage_sweep --test
# copy_crc_sweep`, `cargo bench --bench crc` and `cargo xtask vm-test`.

	.set	FOLD512_BLOCK, 32768		# bytes per commit (and per block), at most
	.set	CRC_PREFETCH, 1024		# prefetch distances (Z_ITERATION)
	.set	COPY_PREFETCH, 512

# Whether the walks prefetch, set once per CPU family before any routine is
# published (src/arch/x86_64/cpu.rs, fold512_prefetch): each iteration prefetches
# while at least this many 64-byte units are left in the block, so a value no
# block reaches (-1) turns it off at no cost (the compare was there anyway).
# Defaults: on, as measured on Emerald Rapids.
	.pushsection .data.mcsafe_thresholds, "aw"
	.balign 8
	.globl	mcsafe_asm_crc_prefetch_from
	.hidden	mcsafe_asm_crc_prefetch_from
mcsafe_asm_crc_prefetch_from:			# the checksum's walk
	.quad	CRC_PREFETCH / 64 + 4
	.globl	mcsafe_asm_copy_crc_prefetch_from
	.hidden	mcsafe_asm_copy_crc_prefetch_from
mcsafe_asm_copy_crc_prefetch_from:		# the copy's (with plain stores)
	.quad	COPY_PREFETCH / 64 + 4
	.popsection
	.set	FOLD512_COPY_CHAIN_MAX, 128	# below: the copy's block is one chain
					# (from 128, t < 64 leaves at least one unit)

# The 64 bytes at \at(%rcx) into \reg; for the copy also stored at \at(%rcx,%rax)
# with \store (vmovdqu64, or vmovntdq: the destination is 64-byte aligned here).
.macro Z_UNIT copy, store, at, reg
	vmovdqu64 \at(%rcx), \reg		# fault point: source
.if \copy
	\store	\reg, \at(%rcx,%rax)		# fault point: destination
.endif
.endm

# crc32 over rdx bytes at rcx (copied to rcx + rax for the copy), advancing rcx:
# into eax for the checksum (FOLD_CHAIN, or FOLD_UNDER_64 for a head or tail,
# under 64 bytes), into r13d for the copy (COPY_CHAIN, any count).
.macro Z_CHAIN copy, under_64=0
.if \copy
	COPY_CHAIN
.elseif \under_64
	FOLD_UNDER_64
.else
	FOLD_CHAIN
.endif
.endm

# One iteration of the main loop: each accumulator folds forward 256 bytes and
# takes the next unit. \store: for the copy, how the units are stored. While the
# block has that much more, the lines CRC_PREFETCH (COPY_PREFETCH) bytes ahead
# are prefetched: the source, and for the copy with plain stores the destination
# too, for writing. Measured on the Emerald Rapids guest (docs/crc.md): cold
# checksums from 16 KiB went from about crc-fast's speed to 1.1x it and hot ones
# from 64 KiB from 118 to 125 GB/s; cold one-pass copies from about copy_mc's
# speed to 1.1-1.2x it (512 bytes ahead did best of 256, 512, 768, 1024 and
# 2048). Only inside the block: never past the call's last byte, which may be
# followed by a lost granule. Not in the non-temporal loop (a line fetched for
# writing, then stored around the cache, would be fetched for nothing). Not on
# AMD (mcsafe_asm_crc_prefetch_from above): on a Zen 4 guest the checksum read
# cold data at 0.72-0.81x crc-fast's speed from 64 KiB with it and 0.95-1.00x
# without (docs/crc.md).
.macro Z_ITERATION copy, store
.if \copy
	.set	.Lz_pd, COPY_PREFETCH
	cmp	mcsafe_asm_copy_crc_prefetch_from(%rip), %rdx
.else
	.set	.Lz_pd, CRC_PREFETCH
	cmp	mcsafe_asm_crc_prefetch_from(%rip), %rdx
.endif
	jb	.Lz_iteration\@
	prefetcht0 .Lz_pd(%rcx)
	prefetcht0 (.Lz_pd + 64)(%rcx)
	prefetcht0 (.Lz_pd + 128)(%rcx)
	prefetcht0 (.Lz_pd + 192)(%rcx)
.ifc \store, vmovdqu64
.if \copy
	prefetchw .Lz_pd(%rcx,%rax)
	prefetchw (.Lz_pd + 64)(%rcx,%rax)
	prefetchw (.Lz_pd + 128)(%rcx,%rax)
	prefetchw (.Lz_pd + 192)(%rcx,%rax)
.endif
.endif
.Lz_iteration\@:
.if \copy
	Z_UNIT	1, \store, 0, %zmm8
	Z_UNIT	1, \store, 64, %zmm9
	Z_UNIT	1, \store, 128, %zmm10
	Z_UNIT	1, \store, 192, %zmm11
.endif
	vpclmulqdq $0x00, %zmm14, %zmm0, %zmm4
	vpclmulqdq $0x11, %zmm14, %zmm0, %zmm0
	vpclmulqdq $0x00, %zmm14, %zmm1, %zmm5
	vpclmulqdq $0x11, %zmm14, %zmm1, %zmm1
	vpclmulqdq $0x00, %zmm14, %zmm2, %zmm6
	vpclmulqdq $0x11, %zmm14, %zmm2, %zmm2
	vpclmulqdq $0x00, %zmm14, %zmm3, %zmm7
	vpclmulqdq $0x11, %zmm14, %zmm3, %zmm3
.if \copy
	vpternlogq $0x96, %zmm8, %zmm4, %zmm0
	vpternlogq $0x96, %zmm9, %zmm5, %zmm1
	vpternlogq $0x96, %zmm10, %zmm6, %zmm2
	vpternlogq $0x96, %zmm11, %zmm7, %zmm3
.else
	vpternlogq $0x96, (%rcx), %zmm4, %zmm0		# fault points
	vpternlogq $0x96, 64(%rcx), %zmm5, %zmm1
	vpternlogq $0x96, 128(%rcx), %zmm6, %zmm2
	vpternlogq $0x96, 192(%rcx), %zmm7, %zmm3
.endif
	add	$256, %rcx
	sub	$4, %rdx
.endm

# The routine \name: the checksum (\copy 0) or the copy and checksum (\copy 1);
# \tr: a register free from the head on (the fold table's pointer).
.macro FOLD512 name, copy, tr
	.set	.Lz_needs, NEEDS_SSE42|NEEDS_PCLMUL|NEEDS_AVX|NEEDS_AVX2|NEEDS_AVX512|NEEDS_VPCLMUL
.if \copy
	ROUTINE \name, CONV_COPY_CRC, saved_rcx, 6, .Lz_needs	# r8 = dst, r9 = src, r10 = len
	mov	$FOLD512_BLOCK, %r15d
	cmp	%r15, %r11
	cmova	%r15, %r11			# r11 = the block size
	mov	%r8, %rax
	sub	%r9, %rax			# rax = dst - src, for the whole call
	xor	%r14d, %r14d
	cmp	mcsafe_asm_non_temporal_threshold(%rip), %r10
	setae	%r14b				# r14 = 1: non-temporal stores
.else
	ROUTINE \name, CONV_CRC, one_buffer, 6, .Lz_needs	# r8 = src, r10 = len
	mov	%rdi, %rcx
	mov	%esi, %eax
	cmp	$FOLD_CHAIN_MAX, %rdx
	jb	.Lz_short\@			# a short call: one chain, no block
	mov	$FOLD512_BLOCK, %r11d
	cmp	%r11, %r9
	cmovbe	%r9, %r11			# r11 = the block size
.endif
	mov	$0xc0, %edx
	kmovw	%edx, %k1			# k1: the two qwords of lane 3
.Lz_block\@:					# rdi = the block's start, esi = its state
	lea	(%r8,%r10), %rdx
	sub	%rdi, %rdx			# bytes left
	jz	.Lz_done\@
	mov	%edi, %ecx
	and	$63, %ecx
	neg	%rcx
	add	%r11, %rcx			# a full block ends 64-byte aligned
	cmp	%rcx, %rdx
	cmova	%rcx, %rdx			# rdx = L, this block's length
	mov	%rdi, %rcx
.if \copy
	lea	(%rdi,%rdx), %r12		# r12 = the block's end (in dst)
	sub	%rax, %rcx			# rcx = the block's source
	mov	%esi, %r13d
	cmp	$FOLD512_COPY_CHAIN_MAX, %rdx
.else
	lea	(%rdi,%rdx), %r9		# r9 = the block's end
	mov	%esi, %eax
	cmp	$FOLD_CHAIN_MAX, %rdx
.endif
	jb	.Lz_short\@			# the last block, short: one chain
	mov	%edi, %edx
	neg	%edx
	and	$63, %edx			# rdx = t
	jz	.Lz_aligned\@
	Z_CHAIN	\copy, 1			# the head: the state after it
.Lz_aligned\@:
.if \copy
	mov	%r12, %rdx
	sub	%rax, %rdx
	sub	%rcx, %rdx
	shr	$6, %rdx			# rdx = m (at least 1)
	vmovd	%r13d, %xmm4
.else
	mov	%r9, %rdx
	sub	%rcx, %rdx
	shr	$6, %rdx			# rdx = m (at least 3)
	vmovd	%eax, %xmm4
.endif
	Z_UNIT	\copy, vmovdqu64, 0, %zmm0
	vpxorq	%zmm4, %zmm0, %zmm0		# the state into the first 4 bytes
	add	$64, %rcx
	dec	%rdx				# rdx = the units after the first
	lea	.Lz_folds(%rip), \tr
	cmp	$3, %rdx
	jb	.Lz_few\@
	Z_UNIT	\copy, vmovdqu64, 0, %zmm1
	Z_UNIT	\copy, vmovdqu64, 64, %zmm2
	Z_UNIT	\copy, vmovdqu64, 128, %zmm3
	add	$192, %rcx
	sub	$3, %rdx
	cmp	$4, %rdx
	jb	.Lz_accumulators\@
	vbroadcasti32x4 .Lz_k256(%rip), %zmm14
.if \copy
	test	%r14d, %r14d
	jnz	.Lz_loop_nt\@
.endif
.Lz_loop\@:
	Z_ITERATION \copy, vmovdqu64
	cmp	$4, %rdx
	jae	.Lz_loop\@
.if \copy
	jmp	.Lz_accumulators\@
.Lz_loop_nt\@:					# the same, stored around the cache
	Z_ITERATION 1, vmovntdq
	cmp	$4, %rdx
	jae	.Lz_loop_nt\@
.endif
.Lz_accumulators\@:				# r = rdx units left (0-3); accumulator
	shl	$6, %rdx			# i folds by T[3 + r - i]
	add	%rdx, \tr			# tr = T[r]
	shr	$6, %rdx
	vmovdqa64 %zmm3, %zmm8			# the last register, if r = 0
	vpclmulqdq $0x00, 192(\tr), %zmm0, %zmm4
	vpclmulqdq $0x11, 192(\tr), %zmm0, %zmm0
	vpclmulqdq $0x00, 128(\tr), %zmm1, %zmm5
	vpclmulqdq $0x11, 128(\tr), %zmm1, %zmm1
	vpclmulqdq $0x00, 64(\tr), %zmm2, %zmm6
	vpclmulqdq $0x11, 64(\tr), %zmm2, %zmm2
	vpclmulqdq $0x00, (\tr), %zmm3, %zmm7
	vpclmulqdq $0x11, (\tr), %zmm3, %zmm3
	vpternlogq $0x96, %zmm4, %zmm5, %zmm0
	vpternlogq $0x96, %zmm1, %zmm6, %zmm2
	vpternlogq $0x96, %zmm7, %zmm3, %zmm0
	vpxorq	%zmm2, %zmm0, %zmm0		# zmm0 = the sum so far
	jmp	.Lz_units\@
.Lz_few\@:					# m = 1..3: rdx = m - 1 units after the
	shl	$6, %rdx			# first, which folds by T[m - 1]
	add	%rdx, \tr
	shr	$6, %rdx
	vmovdqa64 %zmm0, %zmm8			# the last register, if m = 1
	vpclmulqdq $0x00, (\tr), %zmm0, %zmm4
	vpclmulqdq $0x11, (\tr), %zmm0, %zmm0
	vpxorq	%zmm4, %zmm0, %zmm0		# zmm0 = the sum so far
.Lz_units\@:					# the last units: unit j (1..) folds by
	test	%rdx, %rdx			# T[(units left) - j], one below the last
	jz	.Lz_lanes\@
.Lz_unit\@:
	sub	$64, \tr
	Z_UNIT	\copy, vmovdqu64, 0, %zmm8
	vpclmulqdq $0x00, (\tr), %zmm8, %zmm4
	vpclmulqdq $0x11, (\tr), %zmm8, %zmm5
	vpternlogq $0x96, %zmm4, %zmm5, %zmm0
	add	$64, %rcx
	dec	%rdx
	jnz	.Lz_unit\@
.Lz_lanes\@:					# T[0]'s lane 3 is distance 0: the last
	vpxorq	%zmm8, %zmm0, %zmm0{%k1}	# register's lane 3 as it is; then the
	vextracti64x4 $1, %zmm0, %ymm1		# four lanes, all folded onto the
	vpxor	%ymm1, %ymm0, %ymm0		# position of the last 16 bytes, into
	vextracti128 $1, %ymm0, %xmm1		# one: X
	vpxor	%xmm1, %xmm0, %xmm0
	vmovq	%xmm0, %rdx
.if \copy
	xor	%r13d, %r13d
	crc32q	%rdx, %r13
	vpextrq	$1, %xmm0, %rdx
	crc32q	%rdx, %r13			# r13 = the state after the units
	mov	%r12, %rdx
	sub	%rax, %rdx
.else
	xor	%eax, %eax
	crc32q	%rdx, %rax
	vpextrq	$1, %xmm0, %rdx
	crc32q	%rdx, %rax			# eax = the state after the units
	mov	%r9, %rdx
.endif
	sub	%rcx, %rdx			# rdx = the tail
	jz	.Lz_commit\@
	Z_CHAIN	\copy, 1
.Lz_commit\@:
.if \copy
	mov	%r13d, %esi
.Lz_window\@:
	mov	%r12, %rdi			# a = r12 - rdi before this (own range)
.else
	mov	%eax, %esi
.Lz_window\@:
	mov	%r9, %rdi			# a = r9 - rdi before this (own range)
.endif
.Lz_window_end\@:
	jmp	.Lz_block\@
.Lz_done\@:
.if \copy
	test	%r14d, %r14d
	jz	.Lz_done_fenced\@
	sfence					# the streaming stores, before any later store
.Lz_done_fenced\@:
.endif
	vzeroupper
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret

.Lz_short\@:					# the last bytes, below the chain length
	Z_CHAIN	\copy				# (a short call's only block): one chain,
.if \copy					# then the return, no commit
	mov	%r13d, %esi
.else
	mov	%eax, %esi
.endif
.Lz_short_done\@:				# a = r8 + r10 - rdi from here (own range)
.if \copy
	test	%r14d, %r14d
	jz	.Lz_short_fenced\@
	sfence
.Lz_short_fenced\@:
.endif
	vzeroupper
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
	END_RANGES \name

.Lz_fixup_done\@:
	lea	(%r8,%r10), %rdi		# the whole buffer is done: count it
	jmp	.L\name\()_fixup
.Lz_fixup_window\@:
.if \copy
	mov	%r12, %rdi			# the block is done: count it
.else
	mov	%r9, %rdi
.endif
	jmp	.L\name\()_fixup
	# Two windows, as in asm/crc32c_fold.s; a fault may leave streaming stores
	# pending and the upper zmm state dirty.
	END_ROUTINE \name, Z_BEFORE_FIXUP, .Lz_window\@, .Lz_window_end\@, .Lz_fixup_window\@, .Lz_short_done\@, .L\name\()_end, .Lz_fixup_done\@
.endm

.macro Z_BEFORE_FIXUP
	sfence
	vzeroupper
.endm

	FOLD512 crc32c_fold512, 0, %rax
	FOLD512 copy_crc32c_fold512, 1, %r15

# The constants (the reflected forms of asm/crc32c_fold.s, FOLD_CONSTANTS).
# .Lz_k256: one 128-bit lane forward 256 bytes (the main loop). .Lz_folds: T[d]
# for d = 0..6, 64 bytes each: its lane k folds lane k of a register d units
# (64 bytes each) before the last one onto the last 16 bytes, a distance of
# 64d + 16(3 - k) bytes; T[0]'s lane 3 (distance 0) is zero, and that lane is
# added as it is.
	.pushsection .rodata.mcsafe_crc32c_fold512, "a"
	.balign	64
.Lz_folds:
	.set	.Lz_d, 0
	.rept	7
	FOLD_CONSTANTS 64 * .Lz_d + 48
	FOLD_CONSTANTS 64 * .Lz_d + 32
	FOLD_CONSTANTS 64 * .Lz_d + 16
	.if .Lz_d
	FOLD_CONSTANTS 64 * .Lz_d
	.else
	.quad	0, 0
	.endif
	.set	.Lz_d, .Lz_d + 1
	.endr
.Lz_k256:
	FOLD_CONSTANTS 256
	.popsection
