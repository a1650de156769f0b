# mcsafe_asm_crc32c: CRC32C of a buffer that may fault, with the SSE4.2 `crc32`
# instruction, for crc32c_mc (src/crc32c.rs). Read-only: no destination.
#
# The checksum convention (routine.s, CONV_CRC):
#   in:   rdi = src, rdx = len (> 0), esi = CRC state to continue (not inverted
#         here: the Rust side applies the pre- and post-inversion); r9 unused
#   out:  register mode: rax = status (0, or the fault word), rcx = bytes not
#         checksummed, esi = CRC state of the bytes checksummed, [src, src + len -
#         rcx); r11 = si_addr
# The prologue (ROUTINE crc32c, CONV_CRC, one_buffer) sets r8 = src and r10 = len:
# the handler's overlap check tests the source and nothing else. rdi is the cursor
# that carries the progress, as the destination cursor does in a copy.
#
# Progress invariant, at every instruction inside a range:
#   esi is the CRC state of exactly [r8, rdi + a)
# with a = 0 in the main ranges, and a = 1 or 8 at the one instruction that
# follows each `crc32` (the `inc`/`add` that moves the cursor past the bytes just
# folded in). Those instructions form ranges of their own whose fixups first add
# a to rdi, then return as the main fixup does. No instruction writes both esi
# and rdi, so this is the only way to keep both exact at every instruction.
#
# A machine check reported late (after the `crc32` that consumed the poison) may
# leave poison-derived bits in esi together with a progress past the lost
# granule; the Rust side sees progress > cut and recomputes the CRC of the bytes
# before the granule from the start, without touching the granule again.
#
# Word loads are 8-aligned (bytes first up to alignment): no load crosses a cache
# line, which the "fragile" CPUs need to recover from poison.
#
# Change it, then run `cargo test -p mcsafe --lib crc32c`, `cargo test -p mcsafe-tests
# --test every_instruction --test storage_sweep --test copy_crc_sweep` (it also finishes
# every checksum a fault stopped) and `cargo bench --bench crc -- --quick`.

	ROUTINE crc32c, CONV_CRC, one_buffer, 5, NEEDS_SSE42	# r8 = src, r10 = len
	lea	(%r8,%r10), %rdx		# rdx = end
	mov	%rdx, %rcx
	and	$-8, %rcx			# rcx = end rounded down to 8
.Lcrc_next:
	cmp	%rdx, %rdi
	je	.Lcrc_done
	test	$7, %dil
	jnz	.Lcrc_byte			# align the cursor to 8 first
	cmp	%rcx, %rdi
	jb	.Lcrc_word			# a whole aligned word is left
.Lcrc_byte:
	crc32b	(%rdi), %esi			# fault point
.Lcrc_byte_step:
	inc	%rdi				# a = 1 here (own range)
.Lcrc_byte_stepped:
	jmp	.Lcrc_next
.Lcrc_word:
	crc32q	(%rdi), %rsi			# fault point
.Lcrc_word_step:
	add	$8, %rdi			# a = 8 here (own range)
.Lcrc_word_stepped:
	cmp	%rcx, %rdi
	jb	.Lcrc_word
	jmp	.Lcrc_next
.Lcrc_done:
	xor	%eax, %eax			# every byte folded in
	ret
	END_RANGES crc32c

.Lcrc_fixup_byte:
	inc	%rdi				# the byte is in esi: count it
	jmp	.Lcrc32c_fixup
.Lcrc_fixup_word:
	add	$8, %rdi			# the word is in esi: count it
	jmp	.Lcrc32c_fixup
	# Two one-instruction windows, after each `crc32`, with fixups of their own;
	# the main fixup keeps esi.
	END_ROUTINE crc32c, , .Lcrc_byte_step, .Lcrc_byte_stepped, .Lcrc_fixup_byte, .Lcrc_word_step, .Lcrc_word_stepped, .Lcrc_fixup_word
