// CRC32C on aarch64: the one-chain routine (`crc32c`: FEAT_CRC32), the
// three-stream routine merged with carry-less multiplication (`crc32c_pmull`:
// FEAT_CRC32 and FEAT_PMULL), and the copy-and-checksum of the same shape
// (`copy_crc32c_pmull`). Convention (routine.s: CONV_CRC, CONV_COPY_CRC): x0 =
// src (the copy: x0 = dst, x1 = src), x2 = len, w3 = the CRC state (not
// inverted), in and out. Progress: w3 is the CRC state of exactly [x0, x4) (the copy: those
// bytes are also stored) at every instruction inside a range; where a
// `crc32c*` runs after the post-index load that fed it moved x4, it is a range
// of its own (ALONE) whose fixup moves x4 back by the bytes not yet folded in.
// The method and its reasons: docs/crc.md and docs/cpus.md, "aarch64".
	.arch_extension crc
	.arch_extension aes

// Shift constants for the merge: K(n) = x^(8n - 33) mod P (CRC32C's P,
// bit-reflected). A 32-bit state s times K(n), carry-less (`pmull`), then
// `crc32cx` of that 64-bit product from 0, is s followed by n zero bytes.
// A wrong one breaks every CRC from 384 bytes: src/crc32c.rs's tests compare
// each routine with the software CRC at every length to 2100 and over blocks.
	.set	K128, 0x0d3b6092
	.set	K256, 0xb9e02b86
	.set	K1024, 0x170076fa
	.set	K2048, 0xa51b6135

// Loads `size` bytes into `reg` post-index: from x4 (the checksum: x4 is also
// the read cursor), or from x5 and stores them at x4 (the copy).
.macro CRC_MOVE copy, load, store, reg, size
	.if \copy
	\load	\reg, [x5], #\size
	\store	\reg, [x4], #\size
	.else
	\load	\reg, [x4], #\size
	.endif
.endm

// One `crc32cx` chain, 16 bytes per iteration, then a tail of 8, 4, 2, 1: in
// segments s0..s5 of the saved ranges (x9 = the end of x0's buffer). Every
// `crc32c*` is ALONE: the load before it moved x4 past the bytes it folds in.
.macro CRC_CHAIN name, s0, s1, s2, s3, s4, s5, copy
	sub	x10, x9, x4				// bytes left
	cmp	x10, #16
	b.lo	.L\name\()_tail
.L\name\()_chain:
	.if \copy
	ldp	x11, x12, [x5], #16
	stp	x11, x12, [x4], #16
	.else
	ldp	x11, x12, [x4], #16
	.endif
	ALONE	\name, \s0, none, .L\name\()_back16, crc32cx w3, w3, x11
	ALONE	\name, none, \s1, .L\name\()_back8, crc32cx w3, w3, x12
	sub	x10, x10, #16
	cmp	x10, #16
	b.hs	.L\name\()_chain
.L\name\()_tail:
	tbz	x10, #3, 1f
	CRC_MOVE \copy, ldr, str, x11, 8
	ALONE	\name, \s1, \s2, .L\name\()_back8, crc32cx w3, w3, x11
1:	tbz	x10, #2, 2f
	CRC_MOVE \copy, ldr, str, w11, 4
	ALONE	\name, \s2, \s3, .L\name\()_back4, crc32cw w3, w3, w11
2:	tbz	x10, #1, 3f
	CRC_MOVE \copy, ldrh, strh, w11, 2
	ALONE	\name, \s3, \s4, .L\name\()_back2, crc32ch w3, w3, w11
3:	tbz	x10, #0, 4f
	CRC_MOVE \copy, ldrb, strb, w11, 1
	ALONE	\name, \s4, \s5, .L\name\()_back1, crc32cb w3, w3, w11
4:	DONE
.endm

// The fixups of the chain's ALONE ranges: x4 back by 16, 8, 4, 2 or 1, then
// the routine's own fixup.
.macro CRC_CHAIN_FIXUPS name
.L\name\()_back16:
	sub	x4, x4, #8
.L\name\()_back8:
	sub	x4, x4, #4
.L\name\()_back4:
	sub	x4, x4, #2
.L\name\()_back2:
	sub	x4, x4, #1
.L\name\()_back1:
	sub	x4, x4, #1
	b	.L\name\()_fixup
.endm

// Blocks of three parts of `part` bytes while 3 * part bytes are left: three
// independent `crc32cx` chains, one per part (the second and third from 0),
// then merged: state(A) shifted by 2 * part bytes, xor state(B) shifted by
// part bytes, xor state(C). One commit per block: x4 moves by the block, then
// w3 takes the block's state (ALONE: its fixup moves x4 back by the block).
// Inside a block the progress is the block's start. The copy stores each word
// right after its load (x17 = dst - src - 8: where the word just loaded goes,
// from the part cursor its load moved).
.macro CRC_BLOCKS name, part, k2, k1, s_in, s_out, copy
.L\name\()_blocks\part:
	sub	x10, x9, x4
	cmp	x10, #(3 * \part)
	b.lo	.L\name\()_after\part
	.if \copy
	mov	x6, x5
	sub	x17, x0, x1
	sub	x17, x17, #8
	.else
	mov	x6, x4
	.endif
	add	x7, x6, #\part
	add	x8, x6, #(2 * \part)
	mov	w12, w3
	mov	w13, wzr
	mov	w14, wzr
	mov	x10, #(\part / 8)
1:	ldr	x11, [x6], #8
	ldr	x15, [x7], #8
	ldr	x16, [x8], #8
	.if \copy
	str	x11, [x6, x17]
	str	x15, [x7, x17]
	str	x16, [x8, x17]
	.endif
	crc32cx	w12, w12, x11
	crc32cx	w13, w13, x15
	crc32cx	w14, w14, x16
	subs	x10, x10, #1
	b.ne	1b
	fmov	s0, w12					// A << 2 part bytes
	movz	w11, #(\k2 & 0xffff)
	movk	w11, #(\k2 >> 16), lsl #16
	fmov	s1, w11
	pmull	v0.1q, v0.1d, v1.1d
	fmov	s2, w13					// B << part bytes
	movz	w11, #(\k1 & 0xffff)
	movk	w11, #(\k1 >> 16), lsl #16
	fmov	s3, w11
	pmull	v2.1q, v2.1d, v3.1d
	fmov	x11, d0
	fmov	x15, d2
	crc32cx	w11, wzr, x11
	crc32cx	w15, wzr, x15
	eor	w11, w11, w15
	eor	w11, w11, w14
	.if \copy
	add	x5, x5, #(3 * \part)
	.endif
	add	x4, x4, #(3 * \part)
	ALONE	\name, \s_in, \s_out, .L\name\()_back\part, mov w3, w11
	b	.L\name\()_blocks\part
.L\name\()_after\part:
.endm

.macro CRC_BLOCK_FIXUP name, part
.L\name\()_back\part:
	sub	x4, x4, #(3 * \part)
	b	.L\name\()_fixup
.endm

// The one-chain checksum: the careful one, which also finishes every
// checksum stopped by a fault (src/crc32c.rs, the forward step).
ROUTINE crc32c, CONV_CRC, one_buffer, NEEDS_CRC32
	add	x9, x0, x2
	CRC_CHAIN crc32c, 0, 1, 2, 3, 4, 5, 0
END_RANGES crc32c, 5
	CRC_CHAIN_FIXUPS crc32c
END_ROUTINE crc32c

// Three streams per block, merged with pmull: 3 KiB blocks, then 384-byte ones,
// then the chain; `copy` 1: the same while copying, each source byte read once,
// stored, folded in.
.macro CRC_PMULL name, convention, prologue, copy
ROUTINE \name, \convention, \prologue, NEEDS_CRC32|NEEDS_PMULL
	add	x9, x0, x2
	CRC_BLOCKS \name, 1024, K2048, K1024, 0, 1, \copy
	CRC_BLOCKS \name, 128, K256, K128, 1, 2, \copy
	CRC_CHAIN \name, 2, 3, 4, 5, 6, 7, \copy
END_RANGES \name, 7
	CRC_CHAIN_FIXUPS \name
	CRC_BLOCK_FIXUP \name, 1024
	CRC_BLOCK_FIXUP \name, 128
END_ROUTINE \name
.endm
	CRC_PMULL crc32c_pmull, CONV_CRC, one_buffer, 0
	CRC_PMULL copy_crc32c_pmull, CONV_COPY_CRC, saved, 1
