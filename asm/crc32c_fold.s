# mcsafe_asm_crc32c_fold256 and mcsafe_asm_crc32c_fold128: CRC32C of a buffer
# that may fault, at about twice the speed of three interleaved `crc32`
# streams: carry-less multiplication folds one part of each block while three
# `crc32` streams run over the rest, on separate execution ports. For
# crc32c_mc (src/crc32c.rs). One source, two lane widths (the CRC32C_FOLD macro
# below):
#   fold256: two ymm accumulators, VPCLMULQDQ; needs SSE4.2, PCLMULQDQ, AVX2
#            and VPCLMULQDQ (Intel Ice Lake and later, AMD Zen 3 and later);
#   fold128: four xmm accumulators, PCLMULQDQ in its VEX form; needs SSE4.2,
#            PCLMULQDQ and AVX (Sandy Bridge, Zen 1 and later).
# Not on "fragile" CPUs: loads here are unaligned and may cross cache lines
# (src/arch/x86_64/cpu.rs decides). Read-only: no destination. The method and
# its figures: docs/crc.md.
#
# Convention: the checksum one (routine.s, CONV_CRC):
#   in:   rdi = src, esi = CRC state to continue (not inverted), rdx = len (> 0),
#         r9 = the largest block the caller allows (at least FOLD_VECTOR_MIN; the
#         routine takes at most FOLD_BLOCK; the Rust side passes the largest block
#         of any checksum routine, tests smaller ones to reach several commits
#         with short buffers)
#   out:  register mode (routine.s): rax = status (0, or the fault word),
#         rcx = bytes not checksummed, esi = CRC state of exactly
#         [src, src + len - rcx); r11 = si_addr
#   clobbers the C ABI's caller-saved registers, every ymm register, and r12-r15
#   (the asm! block in routines.rs names them). No stack beyond the return address.
# The prologue sets r8 = src and r10 = len (the handler checks the fault against
# the source only).
#
# Progress: the buffer is cut into blocks of at most FOLD_BLOCK bytes. A block is
# computed entirely in scratch registers; at its end the commit stores its CRC
# in esi and moves rdi past it. So at every instruction inside a range:
#   esi is the CRC state of exactly [r8, rdi + a)
# with a = 0 everywhere but in two short ranges of their own, whose fixups set
# rdi first, then return as the main fixup does: `.Lfold_window*`, one
# instruction where esi already holds the new state and rdi has not moved yet
# (a = r12 - rdi), and `.Lfold_short_done*`, the return after a last short
# block, whose chain goes into esi without a commit (a = r8 + r10 - rdi). Registers
# inside a block (scratch: nothing there survives a fault):
#   rcx      read cursor (head, then stream 0)      rdx   loop count
#   r11      S, the bytes of each stream            rax   extra words per stream
#   r12      vector cursor; at the commit, the end of the block (rdi's next value)
#   r13-r15  the three stream CRCs                  xmm11 / ymm11  fold constants
#   ymm0-ymm1 (fold256), xmm0, xmm1, xmm5, xmm6 (fold128)  fold accumulators
#   xmm12-13 the block's shift constants            xmm14-15   the CRCs to shift
#
# A block of L < FOLD_CHAIN_MAX bytes (only ever the last one): one `crc32`
# chain, computed into esi on the way out (see `.Lfold_short_done*`). Otherwise a
# block is laid out
#   [head: t bytes][stream 0: S][stream 1: S][stream 2: S][vector part: 64n bytes]
# with S = 8w, chosen from L (.Lfold_block*): n = L / 136, w = 3n + (L % 136) / 24
# and t < 24 what is left; below FOLD_VECTOR_MIN bytes, n = 0 and w = L / 24.
# The head continues the state with `crc32`. Each iteration of the main loop
# folds 64 bytes of the vector part into four 128-bit lanes (two ymm or four
# xmm accumulators) and feeds 8 bytes to each stream three times. At the end the lanes fold
# into one 128-bit residue X, whose CRC is that of the vector part; the state
# after the head and the three stream CRCs are each multiplied by x^(8k) mod P,
# k the number of bytes after them in the block (a table lookup and one
# PCLMULQDQ each), and XORed into the last 8 bytes of X; two `crc32q` over X
# give the block's CRC. Without a vector part, stream 0 starts from the state
# and streams 0 and 1 are shifted onto stream 2.
#
# A machine check reported late (after the block that consumed the poison was
# committed) leaves progress past the lost granule: the Rust side then starts
# over from the beginning up to the granule, as for asm/crc32c.s.
#
# Change the block shape here and in docs/crc.md together; then run
# `cargo test -p mcsafe --lib crc32c`, `cargo test -p mcsafe-tests --test
# every_instruction --test storage_sweep`, and `cargo bench --bench summary --
# --crc-only` (or the `crc` bench) for the speed.

	.set	FOLD_BLOCK, 8192		# bytes per commit (and per block), at most
	.set	FOLD_CHAIN_MAX, 257		# below (up to 256 bytes): one crc32 chain
	.set	FOLD_VECTOR_MIN, 320		# below: streams only, no vector part
	.set	FOLD_SHIFTS, 1025		# table entries: enough for FOLD_BLOCK
# (the largest entry used, for L <= FOLD_BLOCK: 3w + 8n = 17n + 3q <= 1023 here,
# 2w + 8n = 14n + 2q <= 1024 in asm/copy_crc32c.s; the unit tests check both)

# x^e mod P (P the CRC32C polynomial), bit-reflected as the crc32 instruction
# keeps its state (bit i holds the coefficient of x^(31-i)), in .Lfold_xp;
# e >= 31. Computed by the assembler one multiplication by x at a time.
.macro FOLD_XPOW e
	.set	.Lfold_xp, 1			# x^31
	.rept	(\e) - 31
	.set	.Lfold_xp, (.Lfold_xp >> 1) ^ (0x82f63b78 & -(.Lfold_xp & 1))
	.endr
.endm

# The two 64-bit constants that fold a 128-bit lane forward by \distance bytes
# with PCLMULQDQ 0x00 (low qword) and 0x11 (high qword): x^(8d+32) and x^(8d-32)
# mod P, reflected and shifted left by one (the product of two reflected values
# comes out one bit short).
.macro FOLD_CONSTANTS distance
	FOLD_XPOW 8 * (\distance) + 32
	.quad	.Lfold_xp << 1
	FOLD_XPOW 8 * (\distance) - 32
	.quad	.Lfold_xp << 1
.endm

# `crc32` over rdx < FOLD_CHAIN_MAX bytes at rcx into eax: runs of eight words,
# then 32 bytes if the count's bit 5 is set, then FOLD_HEAD. A short call is
# one chain of dependent `crc32`s, as few instructions as can be: back-to-back
# calls then overlap in the out-of-order window (up to 256 bytes, three streams
# and their merge cost more instructions than the chain's latency saves).
# Advances rcx.
.macro FOLD_CHAIN
	cmp	$64, %edx
	jb	.Lfold_chain_32\@
.Lfold_chain_run\@:
	crc32q	(%rcx), %rax			# fault points
	crc32q	8(%rcx), %rax
	crc32q	16(%rcx), %rax
	crc32q	24(%rcx), %rax
	crc32q	32(%rcx), %rax
	crc32q	40(%rcx), %rax
	crc32q	48(%rcx), %rax
	crc32q	56(%rcx), %rax
	add	$64, %rcx
	sub	$64, %edx
	cmp	$64, %edx
	jae	.Lfold_chain_run\@
	test	%edx, %edx			# a multiple of 64 bytes (most blocks): done
	jz	.Lfold_chain_done\@
.Lfold_chain_32\@:
	FOLD_UNDER_64
.Lfold_chain_done\@:
.endm

# `crc32` over rdx < 64 bytes at rcx into eax: 32 bytes if the count's bit 5 is
# set, then FOLD_HEAD. Advances rcx.
.macro FOLD_UNDER_64
	test	$32, %dl
	jz	.Lfold_under_64_16\@
	crc32q	(%rcx), %rax			# fault points
	crc32q	8(%rcx), %rax
	crc32q	16(%rcx), %rax
	crc32q	24(%rcx), %rax
	add	$32, %rcx
.Lfold_under_64_16\@:
	FOLD_HEAD
.endm

# `crc32` over rdx < 24 bytes at rcx into eax (a block's head): 16, 8, 4, 2, 1
# bytes by the bits of the count. Advances rcx.
.macro FOLD_HEAD
	test	$16, %dl
	jz	.Lfold_head_8\@
	crc32q	(%rcx), %rax			# fault points
	crc32q	8(%rcx), %rax
	add	$16, %rcx
.Lfold_head_8\@:
	test	$8, %dl
	jz	.Lfold_head_4\@
	crc32q	(%rcx), %rax			# fault point
	add	$8, %rcx
.Lfold_head_4\@:
	test	$4, %dl
	jz	.Lfold_head_2\@
	crc32l	(%rcx), %eax			# fault point
	add	$4, %rcx
.Lfold_head_2\@:
	test	$2, %dl
	jz	.Lfold_head_1\@
	crc32w	(%rcx), %eax			# fault point
	add	$2, %rcx
.Lfold_head_1\@:
	test	$1, %dl
	jz	.Lfold_head_done\@
	crc32b	(%rcx), %eax			# fault point
	inc	%rcx
.Lfold_head_done\@:
.endm

# One word of each stream, \at bytes past the stream cursor.
.macro FOLD_STREAMS_WORD at
	crc32q	\at(%rcx), %r13			# fault points
	crc32q	\at(%rcx,%r11), %r14
	crc32q	\at(%rcx,%r11,2), %r15
.endm

# The vector part, by lane width. Four 128-bit lanes hold 64 bytes: lane i
# bytes 16i..16i+16 of each 64-byte unit (fold256: ymm0 = lanes 0-1, ymm1 = lanes
# 2-3; fold128: xmm0, xmm1, xmm5, xmm6). Constants in xmm11 / ymm11.

# Loads the first unit at r12 into the accumulators, the 64-byte fold constants
# into (x/y)mm11.
.macro FOLD_VECTOR_FIRST width
.if \width == 256
	vbroadcasti128 .Lfold_k64(%rip), %ymm11
	vmovdqu	(%r12), %ymm0			# fault points
	vmovdqu	32(%r12), %ymm1
.else
	vmovdqa	.Lfold_k64(%rip), %xmm11
	vmovdqu	(%r12), %xmm0			# fault points
	vmovdqu	16(%r12), %xmm1
	vmovdqu	32(%r12), %xmm5
	vmovdqu	48(%r12), %xmm6
.endif
.endm

# One iteration of the main loop: each lane folds forward 64 bytes onto the next
# unit at r12, interleaved with three words of each stream at rcx.
.macro FOLD_VECTOR_ITERATION width
.if \width == 256
	vpclmulqdq $0x00, %ymm11, %ymm0, %ymm2
	crc32q	(%rcx), %r13			# fault points
	vpclmulqdq $0x11, %ymm11, %ymm0, %ymm0
	crc32q	(%rcx,%r11), %r14
	vpclmulqdq $0x00, %ymm11, %ymm1, %ymm3
	crc32q	(%rcx,%r11,2), %r15
	vpclmulqdq $0x11, %ymm11, %ymm1, %ymm1
	crc32q	8(%rcx), %r13
	vpxor	(%r12), %ymm2, %ymm2
	crc32q	8(%rcx,%r11), %r14
	vpxor	32(%r12), %ymm3, %ymm3
	crc32q	8(%rcx,%r11,2), %r15
	vpxor	%ymm2, %ymm0, %ymm0
	crc32q	16(%rcx), %r13
	vpxor	%ymm3, %ymm1, %ymm1
	crc32q	16(%rcx,%r11), %r14
	crc32q	16(%rcx,%r11,2), %r15
.else
	vpclmulqdq $0x00, %xmm11, %xmm0, %xmm2
	crc32q	(%rcx), %r13			# fault points
	vpclmulqdq $0x11, %xmm11, %xmm0, %xmm0
	crc32q	(%rcx,%r11), %r14
	vpclmulqdq $0x00, %xmm11, %xmm1, %xmm3
	crc32q	(%rcx,%r11,2), %r15
	vpclmulqdq $0x11, %xmm11, %xmm1, %xmm1
	crc32q	8(%rcx), %r13
	vpclmulqdq $0x00, %xmm11, %xmm5, %xmm7
	crc32q	8(%rcx,%r11), %r14
	vpclmulqdq $0x11, %xmm11, %xmm5, %xmm5
	crc32q	8(%rcx,%r11,2), %r15
	vpclmulqdq $0x00, %xmm11, %xmm6, %xmm8
	crc32q	16(%rcx), %r13
	vpclmulqdq $0x11, %xmm11, %xmm6, %xmm6
	crc32q	16(%rcx,%r11), %r14
	vpxor	(%r12), %xmm2, %xmm2
	crc32q	16(%rcx,%r11,2), %r15
	vpxor	16(%r12), %xmm3, %xmm3
	vpxor	32(%r12), %xmm7, %xmm7
	vpxor	48(%r12), %xmm8, %xmm8
	vpxor	%xmm2, %xmm0, %xmm0
	vpxor	%xmm3, %xmm1, %xmm1
	vpxor	%xmm7, %xmm5, %xmm5
	vpxor	%xmm8, %xmm6, %xmm6
.endif
.endm

# Folds the four lanes into one 128-bit residue X in xmm3: lanes 0 and 1 fold 32
# bytes onto lanes 2 and 3, then lane 2 folds 16 bytes onto lane 3.
.macro FOLD_VECTOR_REDUCE width
.if \width == 256
	vbroadcasti128 .Lfold_k32(%rip), %ymm11
	vpclmulqdq $0x00, %ymm11, %ymm0, %ymm2
	vpclmulqdq $0x11, %ymm11, %ymm0, %ymm0
	vpxor	%ymm2, %ymm1, %ymm1
	vpxor	%ymm0, %ymm1, %ymm1
	vextracti128 $1, %ymm1, %xmm3		# lane 3; xmm1 = lane 2
.else
	vmovdqa	.Lfold_k32(%rip), %xmm11
	vpclmulqdq $0x00, %xmm11, %xmm0, %xmm2
	vpclmulqdq $0x11, %xmm11, %xmm0, %xmm0
	vpxor	%xmm2, %xmm5, %xmm5
	vpxor	%xmm0, %xmm5, %xmm5		# lane 2
	vpclmulqdq $0x00, %xmm11, %xmm1, %xmm2
	vpclmulqdq $0x11, %xmm11, %xmm1, %xmm1
	vpxor	%xmm2, %xmm6, %xmm6
	vpxor	%xmm1, %xmm6, %xmm3		# lane 3
	vmovdqa	%xmm5, %xmm1			# lane 2
.endif
	vmovdqa	.Lfold_k16(%rip), %xmm11
	vpclmulqdq $0x00, %xmm11, %xmm1, %xmm2
	vpclmulqdq $0x11, %xmm11, %xmm1, %xmm0
	vpxor	%xmm2, %xmm3, %xmm3
	vpxor	%xmm0, %xmm3, %xmm3		# X
.endm

# The routine \name, folding with \width-bit vectors (256 or 128).
.macro CRC32C_FOLD name, width, needs
	ROUTINE \name, CONV_CRC, one_buffer, 6, \needs	# r8 = src, r10 = len
	mov	%rdi, %rcx
	mov	%esi, %eax
	cmp	$FOLD_CHAIN_MAX, %rdx
	jb	.Lfold_short\@
	mov	$FOLD_BLOCK, %r11d
	cmp	%r11, %r9
	cmova	%r11, %r9			# r9 = the block size, at most FOLD_BLOCK
.Lfold_block\@:					# rdi = block start, esi = its state
	lea	(%r8,%r10), %rdx
	sub	%rdi, %rdx			# bytes left
	jz	.Lfold_done\@
	cmp	%r9, %rdx
	cmova	%r9, %rdx			# rdx = L, this block's length
	mov	%rdi, %rcx
	mov	%esi, %eax
	cmp	$FOLD_CHAIN_MAX, %rdx
	jb	.Lfold_short\@			# the last block: what is left is short
	cmp	$FOLD_VECTOR_MIN, %rdx
	jb	.Lfold_streams_only\@

	# n, w, t (see the top); 7711 / 2^20 and 43 / 2^10 divide exactly by 136
	# and 24 in these ranges (L <= FOLD_BLOCK, L % 136 < 136).
	imul	$7711, %rdx, %r12
	shr	$20, %r12			# r12 = n
	imul	$136, %r12, %r11
	sub	%r11, %rdx			# rdx = L % 136
	imul	$43, %rdx, %r13
	shr	$10, %r13			# r13 = q
	imul	$24, %r13, %r11
	sub	%r11, %rdx			# rdx = t
	lea	(%r12,%r12,2), %r14
	add	%r14, %r13			# r13 = w
	FOLD_HEAD				# eax = state after the head
	vmovd	%eax, %xmm14			# [state, c0 at the merge]
	# Shift constants: x^(64k - 33) mod P for k = 3w+8n (the state: the whole
	# block follows it), 2w+8n, w+8n, 8n (streams 0, 1, 2: what follows each).
	lea	mcsafe_asm_crc32c_shifts(%rip), %rax
	lea	0(,%r12,8), %r14		# 8n
	lea	(%r14,%r13), %r15		# w + 8n
	vmovd	(%rax,%r15,4), %xmm13
	vpinsrd	$2, (%rax,%r14,4), %xmm13, %xmm13	# [k(w+8n), k(8n)]
	add	%r13, %r15			# 2w + 8n
	lea	(%r15,%r13), %r14		# 3w + 8n
	vmovd	(%rax,%r14,4), %xmm12
	vpinsrd	$2, (%rax,%r15,4), %xmm12, %xmm12	# [k(3w+8n), k(2w+8n)]
	lea	(%r12,%r12,2), %rax
	neg	%rax
	add	%r13, %rax			# rax = q = w - 3n
	lea	0(,%r13,8), %r11		# r11 = S
	mov	%r12, %rdx			# rdx = n
	lea	(%rcx,%r11,2), %r12
	add	%r11, %r12			# r12 = the vector part
	xor	%r13d, %r13d
	xor	%r14d, %r14d
	xor	%r15d, %r15d
	FOLD_VECTOR_FIRST \width		# fault points: the first 64 bytes
	FOLD_STREAMS_WORD 0
	FOLD_STREAMS_WORD 8
	FOLD_STREAMS_WORD 16
	add	$64, %r12
	add	$24, %rcx
	dec	%rdx
	jz	.Lfold_extra\@
.Lfold_loop\@:
	FOLD_VECTOR_ITERATION \width
	add	$64, %r12
	add	$24, %rcx
	dec	%rdx
	jnz	.Lfold_loop\@
.Lfold_extra\@:					# q more words per stream
	test	%rax, %rax
	jz	.Lfold_merge\@
.Lfold_extra_word\@:
	FOLD_STREAMS_WORD 0
	add	$8, %rcx
	dec	%rax
	jnz	.Lfold_extra_word\@
.Lfold_merge\@:
	FOLD_VECTOR_REDUCE \width		# xmm3 = X
	vpinsrq	$1, %r13, %xmm14, %xmm14	# [state, c0]
	vmovq	%r14, %xmm15
	vpinsrq	$1, %r15, %xmm15, %xmm15	# [c1, c2]
	vpclmulqdq $0x00, %xmm12, %xmm14, %xmm0
	vpclmulqdq $0x11, %xmm12, %xmm14, %xmm1
	vpclmulqdq $0x00, %xmm13, %xmm15, %xmm2
	vpclmulqdq $0x11, %xmm13, %xmm15, %xmm4
	vpxor	%xmm0, %xmm1, %xmm1
	vpxor	%xmm2, %xmm4, %xmm4
	vpxor	%xmm1, %xmm4, %xmm4		# the shifted CRCs, low qword
	vpslldq	$8, %xmm4, %xmm4
	vpxor	%xmm4, %xmm3, %xmm3		# ... XORed into X's last 8 bytes
	vmovq	%xmm3, %rdx
	vpextrq	$1, %xmm3, %r11
	xor	%eax, %eax
	crc32q	%rdx, %rax
	crc32q	%r11, %rax			# eax = the state after the block
	jmp	.Lfold_commit\@			# r12 = the block's end

.Lfold_streams_only\@:				# FOLD_CHAIN_MAX <= L < FOLD_VECTOR_MIN
	imul	$683, %rdx, %r13
	shr	$14, %r13			# r13 = w = L / 24 (exact for L < 1024)
	imul	$24, %r13, %r11
	sub	%r11, %rdx			# rdx = t
	FOLD_HEAD
	lea	0(,%r13,8), %r11		# r11 = S
	mov	%r13, %rdx
	mov	%eax, %r14d			# stream 0 continues the state
	xor	%r15d, %r15d
	xor	%eax, %eax			# stream 2 in rax
.Lfold_streams_word\@:
	crc32q	(%rcx), %r14			# fault points
	crc32q	(%rcx,%r11), %r15
	crc32q	(%rcx,%r11,2), %rax
	add	$8, %rcx
	dec	%rdx
	jnz	.Lfold_streams_word\@
	lea	(%rcx,%r11,2), %r12		# the block's end
	lea	mcsafe_asm_crc32c_shifts(%rip), %rdx
	vmovd	(%rdx,%r13,8), %xmm12
	vpinsrd	$2, (%rdx,%r13,4), %xmm12, %xmm12	# [k(2w), k(w)]
	vmovq	%r14, %xmm14
	vpinsrq	$1, %r15, %xmm14, %xmm14	# [c0, c1]
	vpclmulqdq $0x00, %xmm12, %xmm14, %xmm0
	vpclmulqdq $0x11, %xmm12, %xmm14, %xmm1
	vpxor	%xmm1, %xmm0, %xmm0
	vmovq	%xmm0, %rdx
	xor	%r11d, %r11d
	crc32q	%rdx, %r11
	xor	%r11d, %eax			# eax = the state after the block

.Lfold_commit\@:					# eax = new state, r12 = block end
	mov	%eax, %esi
.Lfold_window\@:
	mov	%r12, %rdi			# a = r12 - rdi before this (own range)
.Lfold_window_end\@:
	jmp	.Lfold_block\@
.Lfold_done\@:
	vzeroupper
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret

.Lfold_short\@:					# the last bytes, fewer than FOLD_CHAIN_MAX
	FOLD_CHAIN				# (a short call's only block): one chain,
	mov	%eax, %esi			# then the return, no commit
.Lfold_short_done\@:				# a = r8 + r10 - rdi from here (own range)
	vzeroupper				# (a long call's last block comes here too)
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
	END_RANGES \name

.Lfold_fixup_done\@:
	lea	(%r8,%r10), %rdi		# the whole buffer is in esi: count it
	jmp	.L\name\()_fixup
.Lfold_fixup_window\@:
	mov	%r12, %rdi			# the block is in esi: count it
	jmp	.L\name\()_fixup
	# Two windows: the commit's one instruction, and the return after a short
	# last block (to the end).
	END_ROUTINE \name, vzeroupper, .Lfold_window\@, .Lfold_window_end\@, .Lfold_fixup_window\@, .Lfold_short_done\@, .L\name\()_end, .Lfold_fixup_done\@
.endm

	CRC32C_FOLD crc32c_fold256, 256, NEEDS_SSE42|NEEDS_PCLMUL|NEEDS_AVX|NEEDS_AVX2|NEEDS_VPCLMUL
	CRC32C_FOLD crc32c_fold128, 128, NEEDS_SSE42|NEEDS_PCLMUL|NEEDS_AVX

	.pushsection .rodata.mcsafe_crc32c_fold, "a"
	.balign	16
.Lfold_k64:
	FOLD_CONSTANTS 64
.Lfold_k32:
	FOLD_CONSTANTS 32
.Lfold_k16:
	FOLD_CONSTANTS 16
# Entry k: x^(64k - 33) mod P, reflected. clmul(c, entry k) is a 64-bit value
# whose crc32q from 0 is c shifted over 8k zero bytes (c * x^(64k) mod P).
# Entry 0 is never used. Also read by asm/copy_crc32c.s and by the unit test
# that checks it against a Rust computation (src/crc32c.rs).
	.balign	4
	.globl	mcsafe_asm_crc32c_shifts
	.hidden	mcsafe_asm_crc32c_shifts
mcsafe_asm_crc32c_shifts:
	.long	0
	.set	.Lfold_kv, 1			# x^31: entry 1
	.rept	FOLD_SHIFTS - 1
	.long	.Lfold_kv
	.rept	64
	.set	.Lfold_kv, (.Lfold_kv >> 1) ^ (0x82f63b78 & -(.Lfold_kv & 1))
	.endr
	.endr
	.globl	mcsafe_asm_crc32c_shifts_end
	.hidden	mcsafe_asm_crc32c_shifts_end
mcsafe_asm_crc32c_shifts_end:
	.popsection
