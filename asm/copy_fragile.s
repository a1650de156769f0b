# mcsafe_asm_copy_fragile: the shape of the kernel's copy_mc_fragile.
#
# Some Xeon generations (the kernel's Brickland and Purley quirks) cannot recover
# from poison consumed by a fast-string move or by a load that straddles two cache
# lines. So: align the source to 8 bytes with byte moves, copy aligned words (no
# aligned word crosses a cache line), finish with byte moves. No rep movs.

	.text
	.p2align 5
	.globl	mcsafe_asm_copy_fragile
	.hidden	mcsafe_asm_copy_fragile
	.type	mcsafe_asm_copy_fragile, @function
mcsafe_asm_copy_fragile:
	.cfi_startproc
	mov	%rdi, %r8			# range registers (landing_pads.s)
	mov	%rsi, %r9
	mov	%rdx, %r10
.Lfragile_begin:
	cmp	$8, %rdx
	jb	.Lfragile_bytes			# too short to align: bytes only

	mov	%esi, %ecx			# ecx = bytes until src is 8-aligned
	neg	%ecx
	and	$7, %ecx
	jz	.Lfragile_words
	sub	%rcx, %rdx
.Lfragile_head:
	movb	(%rsi), %al			# fault point: source
	movb	%al, (%rdi)			# fault point: destination
	inc	%rsi
	inc	%rdi				# past a stored byte: invariant holds
	dec	%ecx
	jnz	.Lfragile_head

.Lfragile_words:
	mov	%rdx, %rcx
	shr	$5, %rcx			# rcx = 32-byte blocks
	jz	.Lfragile_word
.Lfragile_block_loop:
	mov	(%rsi), %rax			# fault points: each load and store;
	mov	%rax, (%rdi)			# rdi moves only after all four stores
	mov	8(%rsi), %r11
	mov	%r11, 8(%rdi)
	mov	16(%rsi), %rax
	mov	%rax, 16(%rdi)
	mov	24(%rsi), %r11
	mov	%r11, 24(%rdi)
	add	$32, %rsi
	add	$32, %rdi
	dec	%rcx
	jnz	.Lfragile_block_loop
	and	$31, %edx

.Lfragile_word:
	cmp	$8, %rdx
	jb	.Lfragile_bytes
	mov	(%rsi), %rax			# fault point: source
	mov	%rax, (%rdi)			# fault point: destination
	add	$8, %rsi
	add	$8, %rdi
	sub	$8, %rdx
	jmp	.Lfragile_word

.Lfragile_bytes:
	test	%rdx, %rdx
	jz	.Lfragile_done
.Lfragile_byte_loop:
	movb	(%rsi), %al			# fault point: source
	movb	%al, (%rdi)			# fault point: destination
	inc	%rsi
	inc	%rdi
	dec	%rdx
	jnz	.Lfragile_byte_loop

.Lfragile_done:
	xor	%eax, %eax			# nothing left, no fault
	xor	%ecx, %ecx
	ret
.Lfragile_end:					# the range includes the ret

.Lfragile_fixup:
	RETURN_BYTES_NOT_COPIED
	.cfi_endproc
	.size	mcsafe_asm_copy_fragile, . - mcsafe_asm_copy_fragile
	LANDING_PAD .Lfragile_begin, .Lfragile_end, .Lfragile_fixup
