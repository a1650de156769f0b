// The AdvSimd copy strategy, and the exact-size routines of read_mc/write_mc.
// Convention, range registers and progress: routine.s (CONV_COPY: x0 = dst, x1 =
// src, x2 = len; x4 the progress cursor, x5 the source cursor).
//
// copy_advsimd, the shapes and why (docs/cpus.md, "aarch64"):
// - up to 128 bytes: glibc's __memcpy_generic (sysdeps/aarch64/memcpy.S)
//   shapes: two overlapping moves from each end, of 1 (three bytes for 1..3),
//   4, 8, 16, 32 or 64 bytes, every load before every store, every access
//   inside the buffers. A REGS_ENTRY range: progress 0 (nothing counts as done
//   until the call returns), so a fault there makes the forward step copy the
//   bytes before the lost granule again, which never touches it.
// - longer: forward only, as the kernel's arm64 copy template
//   (arch/arm64/lib/copy_template.S) and its machine-check variant run:
//   the first 16 bytes, then the cursors to the destination's next 16-byte
//   boundary, a loop of 64 bytes (two `ldp q` then two `stp q`, post-index),
//   and a tail by halving sizes (32, 16, 8, 4, 2, 1), also post-index. The
//   stores' writeback moves x4 only past stored bytes, and a store or load
//   that faults writes nothing back: x4 - x0 is the exact progress at every
//   instruction. No tail that re-reads bytes before the cursor (glibc's
//   overlapping last 64 bytes): a page lost behind the cursor is never met.
// Unlike glibc, no backward path: memmove's overlap is refused by the
// argument check, and a forward loop is what makes the progress exact.

// One move from each end of `size` bytes through registers `first` and `last`,
// both loads before both stores (x8 = src end, x9 = dst end), then DONE: the
// classes of 4 to 32 bytes.
.macro FROM_BOTH_ENDS first, last, size
	ldr	\first, [x1]
	ldur	\last, [x8, #-\size]
	str	\first, [x0]
	stur	\last, [x9, #-\size]
	DONE
.endm

// One step of the tail: if bit `bit` of x10 (the bytes left) is set, `size`
// bytes more through `regs`, post-index on both cursors.
.macro TAIL bit, size, load, store, regs:vararg
	tbz	x10, #\bit, 1f
	\load	\regs, [x5], #\size
	\store	\regs, [x4], #\size
1:
.endm

ROUTINE copy_advsimd, CONV_COPY, entry, NEEDS_ASIMD
	CHECK_COPY_ARGUMENTS
	add	x8, x1, x2				// src end
	add	x9, x0, x2				// dst end
	cmp	x2, #16
	b.lo	.Lcopy_advsimd_0_15
	cmp	x2, #32
	b.hi	.Lcopy_advsimd_33_up
	FROM_BOTH_ENDS q0, q1, 16			// 16..32
.Lcopy_advsimd_0_15:
	cmp	x2, #8
	b.lo	.Lcopy_advsimd_0_7
	FROM_BOTH_ENDS x10, x11, 8			// 8..15
.Lcopy_advsimd_0_7:
	cmp	x2, #4
	b.lo	.Lcopy_advsimd_0_3
	FROM_BOTH_ENDS w10, w11, 4			// 4..7
.Lcopy_advsimd_0_3:
	cbz	x2, .Lcopy_advsimd_done
	lsr	x12, x2, #1				// 1..3: first, middle, last
	ldrb	w10, [x1]
	ldrb	w11, [x1, x12]
	ldurb	w13, [x8, #-1]
	strb	w10, [x0]
	strb	w11, [x0, x12]
	sturb	w13, [x9, #-1]
.Lcopy_advsimd_done:
	DONE
.Lcopy_advsimd_33_up:
	cmp	x2, #64
	b.hi	.Lcopy_advsimd_65_up
	ldp	q0, q1, [x1]				// 33..64
	ldp	q2, q3, [x8, #-32]
	stp	q0, q1, [x0]
	stp	q2, q3, [x9, #-32]
	DONE
.Lcopy_advsimd_65_up:
	cmp	x2, #128
	b.hi	.Lcopy_advsimd_long
	ldp	q0, q1, [x1]				// 65..128
	ldp	q2, q3, [x1, #32]
	ldp	q4, q5, [x8, #-64]
	ldp	q6, q7, [x8, #-32]
	stp	q0, q1, [x0]
	stp	q2, q3, [x0, #32]
	stp	q4, q5, [x9, #-64]
	stp	q6, q7, [x9, #-32]
	DONE
.Lcopy_advsimd_long:
	SET_CURSORS copy_advsimd
	ldr	q0, [x5]				// the first 16 bytes as they are,
	str	q0, [x4]
	and	x10, x4, #15				// then 1..16 of them counted, up
	mov	x11, #16				// to dst's next 16-byte boundary
	sub	x10, x11, x10
	add	x5, x5, x10
	add	x4, x4, x10
	sub	x10, x9, x4				// bytes left: more than 64 here
.Lcopy_advsimd_loop:
	ldp	q0, q1, [x5], #32
	ldp	q2, q3, [x5], #32
	stp	q0, q1, [x4], #32
	stp	q2, q3, [x4], #32
	sub	x10, x10, #64
	cmp	x10, #64
	b.hs	.Lcopy_advsimd_loop
	TAIL	5, 32, ldp, stp, q0, q1			// the tail: 0..63 bytes
	TAIL	4, 16, ldr, str, q0
	TAIL	3, 8, ldr, str, x11
	TAIL	2, 4, ldr, str, w11
	TAIL	1, 2, ldrh, strh, w11
	TAIL	0, 1, ldrb, strb, w11
	DONE
END_ROUTINE copy_advsimd

// Exactly `size` bytes, one load and one store (read_mc, write_mc): a
// REGS_ENTRY range, no argument check (the Rust side checks), no overlap.
.macro COPY_EXACT size, load, store, reg
ROUTINE copy_exact_\size, CONV_COPY
	\load	\reg, [x1]
	\store	\reg, [x0]
	DONE
END_ROUTINE copy_exact_\size
.endm
	COPY_EXACT 1, ldrb, strb, w10
	COPY_EXACT 2, ldrh, strh, w10
	COPY_EXACT 4, ldr, str, w10
	COPY_EXACT 8, ldr, str, x10
