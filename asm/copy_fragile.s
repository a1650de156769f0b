# mcsafe_asm_copy_fragile: the shape of the kernel's copy_mc_fragile.
#
# Some Xeon generations (the kernel's Brickland and Purley quirks) cannot recover
# from poison consumed by a fast-string move or by a load that straddles two cache
# lines. So: align the source to 8 bytes with byte moves, copy aligned words (no
# aligned word crosses a cache line), finish with byte moves. No rep movs.
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction --test sweep
# --test forward_step --test lost_pages` and `cargo xtask vm-test`.

	ROUTINE copy_fragile
	CHECK_COPY_ARGUMENTS
	SAVE_RANGE_REGISTERS copy_fragile	# every path moves rdi
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
	xor	%eax, %eax			# every byte copied
	ret
	END_ROUTINE copy_fragile, , c			# the range includes the ret
