# mcsafe_asm_copy_crc32c_fold256 and mcsafe_asm_copy_crc32c_fold128: copy and
# CRC32C in one pass, for copy_crc32c_mc (src/crc32c.rs): each source byte is
# loaded once, into a register that is both stored to the destination and
# folded into the CRC. The method of asm/crc32c_fold.s (assembled before this
# file: its macros FOLD_XPOW, FOLD_HEAD, the constants .Lfold_k64/k32/k16, the
# shift table and the block size are used here), with two `crc32` streams
# instead of three: a copy needs a register per stream for the loaded word, and
# only eight scratch registers are free. Same CPUs as there (fold256: AVX2 and
# VPCLMULQDQ; fold128: AVX and PCLMULQDQ; SSE4.2 for both; not fragile models).
#
# Convention: the copy-and-checksum one (routine.s, CONV_COPY_CRC), the copy
# convention with a CRC state, as in asm/crc32c.s, for which the source moves to rcx:
#   in:   rdi = dst, rcx = src, rdx = len (> 0, no overlap), esi = CRC state
#         to continue (not inverted), r11 = the block size (at most COPY_BLOCK is
#         used), rax = the length from which a call's blocks have no streams (the
#         Rust side passes COPY_BLOCK and COPY_VECTOR_ONLY; tests smaller ones, to
#         reach several commits and blocks without streams with short calls)
#   out:  register mode (routine.s): rax = status (0, or the fault word),
#         rcx = bytes not copied, esi = CRC state of exactly the bytes copied,
#         [src, src + len - rcx); r11 = si_addr
#   clobbers the C ABI's caller-saved registers, every ymm register, r12-r15,
#   and the 32 bytes below the stack pointer (the red zone).
# The prologue sets r8 = dst, r9 = src, r10 = len: the handler checks both sides.
#
# Progress, at every instruction inside a range:
#   every byte of [r8, rdi + a) has been stored, and esi is the CRC state of
#   exactly the source bytes [r9, r9 + (rdi + a - r8))
# with a as in asm/crc32c_fold.s: 0, except in `.Lcc_window*` (a = r12 - rdi)
# and `.Lcc_short_done*` (a = r8 + r10 - rdi), whose fixups set rdi first.
# A block is copied and checksummed in scratch registers; the commit moves esi
# and rdi past it. Registers inside a block:
#   rax      dst - src (stores go to the load address plus rax)
#   rcx      source cursor (head, then stream 0)   rdx   dst - src + S (stream 1's
#   r11      S, the bytes of each stream                 stores: rcx + rdx)
#   r12      vector source cursor; at the commit, the destination end of the block
#   r13, r14 the two stream CRCs (r13 first the state, through the head)
#   r15      the word in flight (loaded, folded, stored)
#   -8(%rsp) the source end of the vector part; -16(%rsp) the end of stream 0
#   -24(%rsp) the block size; -32(%rsp) the length from which blocks have no streams
#   vector registers as in asm/crc32c_fold.s, plus xmm9-10 / ymm9-10 (loaded data)
#
# A block of L <= COPY_BLOCK bytes: below COPY_CHAIN_MAX (only ever the last),
# one chain; else
#   [head: t bytes][stream 0: S][stream 1: S][vector part: 64n bytes]
# with S = 8w: n = L / 112, w = 3n + (L % 112) / 16, t = L % 16; below
# COPY_VECTOR_MIN bytes, n = 0 and w = L / 16. In calls of at least
# COPY_VECTOR_ONLY bytes (see the end of this file), a block
# is [head: L % 64][vector part: 64n] with the state XORed into its first bytes. Each iteration of the main loop
# copies and folds 64 bytes and copies three words of each stream. The merge is
# that of asm/crc32c_fold.s with two streams: the state after the head and the
# first stream's CRC shifted onto the second (no vector part), or the state and
# both streams shifted into X's last 8 bytes.
#
# Change it with asm/crc32c_fold.s and docs/crc.md in mind; then run `cargo test
# -p mcsafe --lib crc32c`, `cargo test -p mcsafe-tests --test every_instruction
# --test storage_sweep --test copy_crc_sweep` and the CRC benchmark (`cargo bench
# --bench crc`).

	.set	COPY_CHAIN_MAX, 72		# below: one chain
	.set	COPY_VECTOR_MIN, 256		# below: streams only, no vector part
	.set	COPY_BLOCK, 4096		# bytes per block, at most (see below)
	.set	COPY_VECTOR_ONLY, 262144	# calls from this long: blocks without streams
					# (why: the end of this file)

# Why blocks of at most 4 KiB here: the vector cursor runs ahead of the streams'
# by 40 bytes an iteration, so within a block the distance from a stream's
# stores to the vector part's loads sweeps 24n..88n bytes. When that distance is
# a multiple of 4 KiB and source and destination share their page offset (the
# common case), each such load is taken for one that may depend on those stores
# (4K aliasing) and waits: measured here, 8 KiB blocks ran a quarter slower
# than 4 KiB ones. Up to 4 KiB the sweep stays below 4 KiB.

# Copies rdx < 16 bytes at rcx to rcx + rax and continues the CRC in r13 over
# them: 8, 4, 2, 1 bytes by the bits of the count. Advances rcx; uses r15.
.macro COPY_HEAD
	test	$8, %dl
	jz	.Lcc_head_4\@
	mov	(%rcx), %r15			# fault point: source
	crc32q	%r15, %r13
	mov	%r15, (%rcx,%rax)		# fault point: destination
	add	$8, %rcx
.Lcc_head_4\@:
	test	$4, %dl
	jz	.Lcc_head_2\@
	mov	(%rcx), %r15d
	crc32l	%r15d, %r13d
	mov	%r15d, (%rcx,%rax)
	add	$4, %rcx
.Lcc_head_2\@:
	test	$2, %dl
	jz	.Lcc_head_1\@
	movzwl	(%rcx), %r15d
	crc32w	%r15w, %r13d
	mov	%r15w, (%rcx,%rax)
	add	$2, %rcx
.Lcc_head_1\@:
	test	$1, %dl
	jz	.Lcc_head_done\@
	movzbl	(%rcx), %r15d
	crc32b	%r15b, %r13d
	mov	%r15b, (%rcx,%rax)
	inc	%rcx
.Lcc_head_done\@:
.endm

# One word of stream \stream (0 or 1) \at bytes past the cursors: loaded from
# the source, into the stream's CRC (r13 or r14), stored to the destination.
.macro COPY_WORD at, stream
.if \stream == 0
	mov	\at(%rcx), %r15			# fault point: source
	crc32q	%r15, %r13
	mov	%r15, \at(%rcx,%rax)		# fault point: destination
.else
	mov	\at(%rcx,%r11), %r15		# fault point: source
	crc32q	%r15, %r14
	mov	%r15, \at(%rcx,%rdx)		# fault point: destination
.endif
.endm

# One word of each stream, \at bytes past the cursors.
.macro COPY_STREAMS_WORD at
	COPY_WORD \at, 0
	COPY_WORD \at, 1
.endm

# Copies rdx < 72 bytes at rcx to rcx + rax, continuing the CRC in r13: runs of
# four words, then 16, 8, 4, 2, 1 bytes. Advances rcx.
.macro COPY_CHAIN
	cmp	$32, %edx
	jb	.Lcc_chain_16\@
.Lcc_chain_run\@:
	COPY_CHAIN_RUN
	sub	$32, %edx
	cmp	$32, %edx
	jae	.Lcc_chain_run\@
.Lcc_chain_16\@:
	test	$16, %dl
	jz	.Lcc_chain_8\@
	mov	(%rcx), %r15			# fault points
	crc32q	%r15, %r13
	mov	%r15, (%rcx,%rax)
	mov	8(%rcx), %r15
	crc32q	%r15, %r13
	mov	%r15, 8(%rcx,%rax)
	add	$16, %rcx
.Lcc_chain_8\@:
	COPY_HEAD
.endm

# Four words at rcx into r13, stored at rcx + rax; advances rcx by 32.
.macro COPY_CHAIN_RUN
	mov	(%rcx), %r15			# fault points
	crc32q	%r15, %r13
	mov	%r15, (%rcx,%rax)
	mov	8(%rcx), %r15
	crc32q	%r15, %r13
	mov	%r15, 8(%rcx,%rax)
	mov	16(%rcx), %r15
	crc32q	%r15, %r13
	mov	%r15, 16(%rcx,%rax)
	mov	24(%rcx), %r15
	crc32q	%r15, %r13
	mov	%r15, 24(%rcx,%rax)
	add	$32, %rcx
.endm

# The vector part, by lane width, as in asm/crc32c_fold.s, but each 64 bytes are
# loaded into registers, stored at the load address + rax, and folded.
.macro COPY_VECTOR_FIRST width
.if \width == 256
	vbroadcasti128 .Lfold_k64(%rip), %ymm11
	vmovdqu	(%r12), %ymm0			# fault points: source
	vmovdqu	32(%r12), %ymm1
	vmovdqu	%ymm0, (%r12,%rax)		# fault points: destination
	vmovdqu	%ymm1, 32(%r12,%rax)
.else
	vmovdqa	.Lfold_k64(%rip), %xmm11
	vmovdqu	(%r12), %xmm0			# fault points: source
	vmovdqu	16(%r12), %xmm1
	vmovdqu	32(%r12), %xmm5
	vmovdqu	48(%r12), %xmm6
	vmovdqu	%xmm0, (%r12,%rax)		# fault points: destination
	vmovdqu	%xmm1, 16(%r12,%rax)
	vmovdqu	%xmm5, 32(%r12,%rax)
	vmovdqu	%xmm6, 48(%r12,%rax)
.endif
.endm

# One iteration of the vector-only blocks: the 64 bytes at r12 loaded, stored
# at r12 + rax, folded.
.macro COPY_VECTOR_ONLY_ITERATION width
.if \width == 256
	vmovdqu	(%r12), %ymm9			# fault points: source
	vmovdqu	32(%r12), %ymm10
	vpclmulqdq $0x00, %ymm11, %ymm0, %ymm2
	vpclmulqdq $0x11, %ymm11, %ymm0, %ymm0
	vpclmulqdq $0x00, %ymm11, %ymm1, %ymm3
	vpclmulqdq $0x11, %ymm11, %ymm1, %ymm1
	vmovdqu	%ymm9, (%r12,%rax)		# fault points: destination
	vmovdqu	%ymm10, 32(%r12,%rax)
	vpxor	%ymm9, %ymm2, %ymm2
	vpxor	%ymm10, %ymm3, %ymm3
	vpxor	%ymm2, %ymm0, %ymm0
	vpxor	%ymm3, %ymm1, %ymm1
.else
	vmovdqu	(%r12), %xmm9			# fault points: source
	vmovdqu	16(%r12), %xmm10
	vpclmulqdq $0x00, %xmm11, %xmm0, %xmm2
	vpclmulqdq $0x11, %xmm11, %xmm0, %xmm0
	vpclmulqdq $0x00, %xmm11, %xmm1, %xmm3
	vpclmulqdq $0x11, %xmm11, %xmm1, %xmm1
	vmovdqu	%xmm9, (%r12,%rax)		# fault points: destination
	vmovdqu	%xmm10, 16(%r12,%rax)
	vpxor	%xmm9, %xmm2, %xmm2
	vpxor	%xmm10, %xmm3, %xmm3
	vpxor	%xmm2, %xmm0, %xmm0
	vpxor	%xmm3, %xmm1, %xmm1
	vmovdqu	32(%r12), %xmm9			# fault points: source
	vmovdqu	48(%r12), %xmm10
	vpclmulqdq $0x00, %xmm11, %xmm5, %xmm7
	vpclmulqdq $0x11, %xmm11, %xmm5, %xmm5
	vpclmulqdq $0x00, %xmm11, %xmm6, %xmm8
	vpclmulqdq $0x11, %xmm11, %xmm6, %xmm6
	vmovdqu	%xmm9, 32(%r12,%rax)		# fault points: destination
	vmovdqu	%xmm10, 48(%r12,%rax)
	vpxor	%xmm9, %xmm7, %xmm7
	vpxor	%xmm10, %xmm8, %xmm8
	vpxor	%xmm7, %xmm5, %xmm5
	vpxor	%xmm8, %xmm6, %xmm6
.endif
.endm

.macro COPY_VECTOR_ITERATION width
.if \width == 256
	vmovdqu	(%r12), %ymm9			# fault points: source
	COPY_WORD 0, 0
	vmovdqu	32(%r12), %ymm10
	COPY_WORD 0, 1
	vpclmulqdq $0x00, %ymm11, %ymm0, %ymm2
	vpclmulqdq $0x11, %ymm11, %ymm0, %ymm0
	COPY_WORD 8, 0
	vpclmulqdq $0x00, %ymm11, %ymm1, %ymm3
	vpclmulqdq $0x11, %ymm11, %ymm1, %ymm1
	COPY_WORD 8, 1
	vmovdqu	%ymm9, (%r12,%rax)		# fault points: destination
	vmovdqu	%ymm10, 32(%r12,%rax)
	COPY_WORD 16, 0
	vpxor	%ymm9, %ymm2, %ymm2
	vpxor	%ymm10, %ymm3, %ymm3
	COPY_WORD 16, 1
	vpxor	%ymm2, %ymm0, %ymm0
	vpxor	%ymm3, %ymm1, %ymm1
.else
	vmovdqu	(%r12), %xmm9			# fault points: source
	vmovdqu	16(%r12), %xmm10
	COPY_WORD 0, 0
	vpclmulqdq $0x00, %xmm11, %xmm0, %xmm2
	vpclmulqdq $0x11, %xmm11, %xmm0, %xmm0
	vpclmulqdq $0x00, %xmm11, %xmm1, %xmm3
	vpclmulqdq $0x11, %xmm11, %xmm1, %xmm1
	COPY_WORD 0, 1
	vmovdqu	%xmm9, (%r12,%rax)		# fault points: destination
	vmovdqu	%xmm10, 16(%r12,%rax)
	vpxor	%xmm9, %xmm2, %xmm2
	vpxor	%xmm10, %xmm3, %xmm3
	COPY_WORD 8, 0
	vpxor	%xmm2, %xmm0, %xmm0
	vpxor	%xmm3, %xmm1, %xmm1
	vmovdqu	32(%r12), %xmm9			# fault points: source
	vmovdqu	48(%r12), %xmm10
	COPY_WORD 8, 1
	vpclmulqdq $0x00, %xmm11, %xmm5, %xmm7
	vpclmulqdq $0x11, %xmm11, %xmm5, %xmm5
	vpclmulqdq $0x00, %xmm11, %xmm6, %xmm8
	vpclmulqdq $0x11, %xmm11, %xmm6, %xmm6
	COPY_WORD 16, 0
	vmovdqu	%xmm9, 32(%r12,%rax)		# fault points: destination
	vmovdqu	%xmm10, 48(%r12,%rax)
	vpxor	%xmm9, %xmm7, %xmm7
	vpxor	%xmm10, %xmm8, %xmm8
	COPY_WORD 16, 1
	vpxor	%xmm7, %xmm5, %xmm5
	vpxor	%xmm8, %xmm6, %xmm6
.endif
.endm

# The routine \name, copying and folding with \width-bit vectors (256 or 128).
.macro COPY_CRC32C_FOLD name, width, needs
	ROUTINE \name, CONV_COPY_CRC, saved_rcx, 6, \needs	# r8 = dst, r9 = src, r10 = len
	mov	$COPY_BLOCK, %r15d
	cmp	%r15, %r11
	cmova	%r15, %r11
	mov	%r11, -24(%rsp)			# the block size, at most COPY_BLOCK
	mov	%rax, -32(%rsp)			# from this length, no streams
.Lcc_block\@:					# rdi = block start (dst), esi = its state
	lea	(%r8,%r10), %rdx
	sub	%rdi, %rdx			# bytes left
	jz	.Lcc_done\@
	mov	-24(%rsp), %r11
	cmp	%r11, %rdx
	cmova	%r11, %rdx			# rdx = L, this block's length
	mov	%r8, %rax
	sub	%r9, %rax			# rax = dst - src
	mov	%rdi, %rcx
	sub	%rax, %rcx			# rcx = the block's source
	mov	%esi, %r13d
	cmp	$COPY_CHAIN_MAX, %rdx
	jb	.Lcc_short\@			# the last block: what is left is short
	cmp	$COPY_VECTOR_MIN, %rdx
	jb	.Lcc_streams_only\@
	cmp	-32(%rsp), %r10
	jae	.Lcc_vector_only\@

	# n, w, t (see the top); 9363 / 2^20 divides exactly by 112 for L <= 8192.
	imul	$9363, %rdx, %r12
	shr	$20, %r12			# r12 = n
	imul	$112, %r12, %r11
	sub	%r11, %rdx			# rdx = L % 112
	mov	%rdx, %r14
	shr	$4, %r14			# r14 = q
	and	$15, %edx			# rdx = t
	lea	(%r12,%r12,2), %r11
	add	%r11, %r14			# r14 = w
	COPY_HEAD				# r13 = state after the head
	vmovd	%r13d, %xmm14			# [state, c0 at the merge]
	# Shift constants (see asm/crc32c_fold.s): k = 2w+8n for the state, w+8n
	# and 8n for streams 0 and 1.
	lea	mcsafe_asm_crc32c_shifts(%rip), %r11
	lea	0(,%r12,8), %r15		# 8n
	vmovd	(%r11,%r15,4), %xmm13		# [k(8n), 0]
	add	%r14, %r15			# w + 8n
	lea	(%r15,%r14), %rdx		# 2w + 8n
	vmovd	(%r11,%rdx,4), %xmm12
	vpinsrd	$2, (%r11,%r15,4), %xmm12, %xmm12	# [k(2w+8n), k(w+8n)]
	lea	0(,%r14,8), %r11		# r11 = S
	lea	(%rcx,%r11), %r15
	mov	%r15, -16(%rsp)			# the end of stream 0
	shl	$6, %r12
	add	%r11, %r12
	add	%r15, %r12
	mov	%r12, -8(%rsp)			# the end of the vector part
	lea	(%rcx,%r11,2), %r12		# r12 = the vector part
	lea	(%rax,%r11), %rdx		# rdx = dst - src + S
	xor	%r13d, %r13d
	xor	%r14d, %r14d

	COPY_VECTOR_FIRST \width
	COPY_STREAMS_WORD 0
	COPY_STREAMS_WORD 8
	COPY_STREAMS_WORD 16
	add	$64, %r12
	add	$24, %rcx
	cmp	-8(%rsp), %r12
	jae	.Lcc_extra\@
.Lcc_loop\@:
	COPY_VECTOR_ITERATION \width
	add	$64, %r12
	add	$24, %rcx
	cmp	-8(%rsp), %r12
	jb	.Lcc_loop\@
.Lcc_extra\@:					# the streams' last words
	cmp	-16(%rsp), %rcx
	jae	.Lcc_merge\@
.Lcc_extra_word\@:
	COPY_STREAMS_WORD 0
	add	$8, %rcx
	cmp	-16(%rsp), %rcx
	jb	.Lcc_extra_word\@
.Lcc_merge\@:
	FOLD_VECTOR_REDUCE \width		# xmm3 = X
	vpinsrq	$1, %r13, %xmm14, %xmm14	# [state, c0]
	vmovq	%r14, %xmm15			# [c1, 0]
	vpclmulqdq $0x00, %xmm12, %xmm14, %xmm0
	vpclmulqdq $0x11, %xmm12, %xmm14, %xmm1
	vpclmulqdq $0x00, %xmm13, %xmm15, %xmm2
	vpxor	%xmm0, %xmm1, %xmm1
	vpxor	%xmm1, %xmm2, %xmm2		# the shifted CRCs, low qword
	vpslldq	$8, %xmm2, %xmm2
	vpxor	%xmm2, %xmm3, %xmm3		# ... XORed into X's last 8 bytes
	add	%rax, %r12			# r12 = the block's end in dst
	vmovq	%xmm3, %rdx
	vpextrq	$1, %xmm3, %r11
	xor	%eax, %eax
	crc32q	%rdx, %rax
	crc32q	%r11, %rax			# eax = the state after the block
	jmp	.Lcc_commit\@

.Lcc_vector_only\@:				# a long call's block: [head][vector part]
	mov	%rdx, %r12
	shr	$6, %r12			# r12 = n = L / 64
	and	$63, %edx			# rdx = t
	COPY_CHAIN				# r13 = state after the head
	vmovd	%r13d, %xmm14
	mov	%r12, %rdx			# rdx = units left
	mov	%rcx, %r12			# r12 = the vector part
	COPY_VECTOR_FIRST \width
.if \width == 256
	vpxor	%ymm14, %ymm0, %ymm0		# the state into the first 4 bytes
.else
	vpxor	%xmm14, %xmm0, %xmm0		# (AVX alone has no 256-bit vpxor)
.endif
	add	$64, %r12
	dec	%rdx
	jz	.Lcc_vector_only_merge\@
.Lcc_vector_only_loop\@:
	COPY_VECTOR_ONLY_ITERATION \width
	add	$64, %r12
	dec	%rdx
	jnz	.Lcc_vector_only_loop\@
.Lcc_vector_only_merge\@:
	FOLD_VECTOR_REDUCE \width		# xmm3 = X: its CRC is the block's
	add	%rax, %r12			# r12 = the block's end in dst
	vmovq	%xmm3, %rdx
	vpextrq	$1, %xmm3, %r11
	xor	%eax, %eax
	crc32q	%rdx, %rax
	crc32q	%r11, %rax			# eax = the state after the block
	jmp	.Lcc_commit\@

.Lcc_streams_only\@:				# COPY_CHAIN_MAX <= L < COPY_VECTOR_MIN
	mov	%rdx, %r12
	shr	$4, %r12			# r12 = w
	and	$15, %edx			# rdx = t
	COPY_HEAD				# r13: stream 0 continues the state
	lea	0(,%r12,8), %r11		# r11 = S
	lea	(%rax,%r11), %rdx		# rdx = dst - src + S
	lea	(%rcx,%r11), %r15
	mov	%r15, -16(%rsp)			# the end of stream 0
	mov	%r12, -8(%rsp)			# w, for the shift constant
	xor	%r14d, %r14d
.Lcc_streams_word\@:
	COPY_STREAMS_WORD 0
	add	$8, %rcx
	cmp	-16(%rsp), %rcx
	jb	.Lcc_streams_word\@
	lea	(%rcx,%rdx), %r12		# the block's end in dst
	mov	-8(%rsp), %r15
	lea	mcsafe_asm_crc32c_shifts(%rip), %rax
	vmovd	(%rax,%r15,4), %xmm12		# k(w): stream 0 is followed by S bytes
	vmovq	%r13, %xmm14
	vpclmulqdq $0x00, %xmm12, %xmm14, %xmm0
	vmovq	%xmm0, %rdx
	xor	%eax, %eax
	crc32q	%rdx, %rax
	xor	%r14d, %eax			# eax = the state after the block

.Lcc_commit\@:					# eax = new state, r12 = block end (dst)
	mov	%eax, %esi
.Lcc_window\@:
	mov	%r12, %rdi			# a = r12 - rdi before this (own range)
.Lcc_window_end\@:
	jmp	.Lcc_block\@
.Lcc_done\@:
	vzeroupper
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret

.Lcc_short\@:					# the last bytes, fewer than COPY_CHAIN_MAX:
	COPY_CHAIN				# one chain, then the return, no commit
	mov	%r13d, %esi
.Lcc_short_done\@:				# a = r8 + r10 - rdi from here (own range)
	vzeroupper
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
	END_RANGES \name

.Lcc_fixup_done\@:
	lea	(%r8,%r10), %rdi		# the whole buffer is done: count it
	jmp	.L\name\()_fixup
.Lcc_fixup_window\@:
	mov	%r12, %rdi			# the block is done: count it
	jmp	.L\name\()_fixup
	# Two windows, as in asm/crc32c_fold.s.
	END_ROUTINE \name, vzeroupper, .Lcc_window\@, .Lcc_window_end\@, .Lcc_fixup_window\@, .Lcc_short_done\@, .L\name\()_end, .Lcc_fixup_done\@
.endm

	COPY_CRC32C_FOLD copy_crc32c_fold256, 256, NEEDS_SSE42|NEEDS_PCLMUL|NEEDS_AVX|NEEDS_AVX2|NEEDS_VPCLMUL
	COPY_CRC32C_FOLD copy_crc32c_fold128, 128, NEEDS_SSE42|NEEDS_PCLMUL|NEEDS_AVX

# From this many bytes a call copies its blocks without streams: [head][vector
# part], the vector part's loads and stores one sequential pass. A call that
# long is unlikely to be in the cache, and from memory the streams' six
# interleaved regions (three loaded, three stored) kept too few lines in flight:
# measured here, cold 256 KiB..4 MiB calls went from 5-6 GB/s to 8.7 (copy_mc:
# 10.5); in the cache the streams are faster (30 GB/s against 25 up to 64 KiB).
# Tests pass a lower length (the convention's rax) to reach these blocks with short
# calls.
