# mcsafe_copy_avx512: 64-byte vector moves, four per iteration, and one masked
# move for the last 0..63 bytes. A masked-off byte is never accessed (no fault,
# no store), so the tail reads and writes nothing past len.
#
# Only zmm16-zmm31 are used: their upper halves do not make later SSE code pay
# a state-transition penalty, so no vzeroupper is needed.

	.text
	.p2align 5
	.globl	mcsafe_copy_avx512
	.hidden	mcsafe_copy_avx512
	.type	mcsafe_copy_avx512, @function
mcsafe_copy_avx512:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lavx512_begin:
	cmp	$256, %rdx
	jb	.Lavx512_by_64
.Lavx512_loop_256:
	vmovdqu64 (%rsi), %zmm16		# fault points: source
	vmovdqu64 64(%rsi), %zmm17
	vmovdqu64 128(%rsi), %zmm18
	vmovdqu64 192(%rsi), %zmm19
	vmovdqu64 %zmm16, (%rdi)		# fault points: destination
	vmovdqu64 %zmm17, 64(%rdi)
	vmovdqu64 %zmm18, 128(%rdi)
	vmovdqu64 %zmm19, 192(%rdi)
	add	$256, %rsi
	add	$256, %rdi			# past four stored vectors
	sub	$256, %rdx
	cmp	$256, %rdx
	jae	.Lavx512_loop_256

.Lavx512_by_64:
	cmp	$64, %rdx
	jb	.Lavx512_tail
	vmovdqu64 (%rsi), %zmm16		# fault point: source
	vmovdqu64 %zmm16, (%rdi)		# fault point: destination
	add	$64, %rsi
	add	$64, %rdi
	sub	$64, %rdx
	jmp	.Lavx512_by_64

.Lavx512_tail:
	test	%rdx, %rdx
	jz	.Lavx512_done
	mov	$-1, %rax
	bzhi	%rdx, %rax, %rax		# rax = low rdx bits set
	kmovq	%rax, %k1
	vmovdqu8 (%rsi), %zmm16{%k1}{z}		# fault point: source
	vmovdqu8 %zmm16, (%rdi){%k1}		# fault point: destination
	add	%rdx, %rdi
.Lavx512_done:
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
.Lavx512_end:

.Lavx512_fixup:
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_copy_avx512, . - mcsafe_copy_avx512
	LANDING_PAD .Lavx512_begin, .Lavx512_end, .Lavx512_fixup
