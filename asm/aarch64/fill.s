// fill_mc: x0 = dst, x2 = len, w3 = the byte (routine.s, CONV_FILL). Forward
// only: 64 bytes per iteration (two `stp q`), then a tail by halving sizes,
// every store post-index on x4, the progress: every byte of [x0, x4) holds the
// byte at every instruction, and a store that faults moves nothing.

ROUTINE fill, CONV_FILL, one_buffer, NEEDS_ASIMD
	dup	v0.16b, w3
	mov	x10, x2					// bytes left
	cmp	x10, #64
	b.lo	.Lfill_tail
.Lfill_loop:
	stp	q0, q0, [x4], #32
	stp	q0, q0, [x4], #32
	sub	x10, x10, #64
	cmp	x10, #64
	b.hs	.Lfill_loop
.Lfill_tail:
	tbz	x10, #5, 1f
	stp	q0, q0, [x4], #32
1:	tbz	x10, #4, 2f
	str	q0, [x4], #16
2:	tbz	x10, #3, 3f
	str	d0, [x4], #8
3:	tbz	x10, #2, 4f
	str	s0, [x4], #4
4:	tbz	x10, #1, 5f
	str	h0, [x4], #2
5:	tbz	x10, #0, 6f
	str	b0, [x4], #1
6:	DONE
END_ROUTINE fill
