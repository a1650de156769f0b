# mcsafe_asm_copy_fragile: the shape of the kernel's copy_mc_fragile.
#
# Some Xeon generations (the kernel's Brickland and Purley quirks) cannot recover
# from poison consumed by a fast-string move or by a load that straddles two cache
# lines. So: align the source to 8 bytes with byte moves, copy aligned words (no
# aligned word crosses a cache line), finish with byte moves. No rep movs.
#
# Instantiated once per copy convention (asm/routine.s): copy_fragile (register
# mode), rust_copy_fragile and c_copy_fragile.
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction --test sweep
# --test forward_step --test lost_pages` and `cargo xtask vm-test`.

.macro COPY_FRAGILE name, convention
	ROUTINE \name, \convention
	CHECK_COPY_ARGUMENTS \name
	SAVE_RANGE_REGISTERS \name	# every path moves rdi
	cmp	$8, %rdx
	jb	.L\name\()_bytes			# too short to align: bytes only

	mov	%esi, %ecx			# ecx = bytes until src is 8-aligned
	neg	%ecx
	and	$7, %ecx
	jz	.L\name\()_words
	sub	%rcx, %rdx
.L\name\()_head:
	movb	(%rsi), %al			# fault point: source
	movb	%al, (%rdi)			# fault point: destination
	inc	%rsi
	inc	%rdi				# past a stored byte: invariant holds
	dec	%ecx
	jnz	.L\name\()_head

.L\name\()_words:
	mov	%rdx, %rcx
	shr	$5, %rcx			# rcx = 32-byte blocks
	jz	.L\name\()_word
.L\name\()_block_loop:
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
	jnz	.L\name\()_block_loop
	and	$31, %edx

.L\name\()_word:
	cmp	$8, %rdx
	jb	.L\name\()_bytes
	mov	(%rsi), %rax			# fault point: source
	mov	%rax, (%rdi)			# fault point: destination
	add	$8, %rsi
	add	$8, %rdi
	sub	$8, %rdx
	jmp	.L\name\()_word

.L\name\()_bytes:
	test	%rdx, %rdx
	jz	.L\name\()_done
.L\name\()_byte_loop:
	movb	(%rsi), %al			# fault point: source
	movb	%al, (%rdi)			# fault point: destination
	inc	%rsi
	inc	%rdi
	dec	%rdx
	jnz	.L\name\()_byte_loop

.L\name\()_done:
	xor	%eax, %eax			# every byte copied
	ret
	END_ROUTINE \name				# the range includes the ret
.endm
	COPY_FRAGILE copy_fragile, CONV_COPY
	COPY_FRAGILE rust_copy_fragile, CONV_RUST_COPY
	COPY_FRAGILE c_copy_fragile, CONV_C_COPY
