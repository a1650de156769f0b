# mcsafe: the landing-pad table, and the calling convention of every copy routine.
#
# Assembled first of all the files in asm/ (see src/arch/x86_64/routines.rs), in
# AT&T syntax, by rustc's integrated assembler.
#
# Calling convention (the routines are called only from routines.rs, never as C functions)
#   in:   rdi = dst, rsi = src, rdx = len (the ranges do not overlap)
#   out:  rcx = fault word: 0 on success, else si_code | si_addr_lsb << 16
#         rax = bytes not copied, r11 = si_addr (both meaningful only after a fault)
#   clobbers every caller-saved general, vector and mask register.
#
# The prologue of every routine copies its arguments into the range registers
#   r8 = dst start, r9 = src start, r10 = len
# and no instruction inside a landing-pad range writes them. The SIGBUS handler
# reads them to check that the fault lies inside this call's buffers.
#
# Progress invariant, true at EVERY instruction inside a range (a real machine check
# may be reported at any instruction boundary, not only at the consuming load):
#   every byte of [r8, rdi) has been stored.
# So rdi only moves forward, and only past bytes already stored. Registers other
# than rdi, r8 and r10 mean nothing to a fixup.
#
# On a fault the handler sets RIP to the range's fixup, rcx to the fault word and
# r11 to si_addr, and returns. The fixup turns the invariant into "bytes not copied"
# (RETURN_BYTES_NOT_COPIED below) and returns to the caller. The handler never
# retries, and a fixup never touches memory: the caller decides what happens next.
#
# Variants, each documented in its file: copy_exact.s (exactly 1, 2, 4 or 8 bytes,
# one load and one store; rdi never moves), fill.s (one buffer: rsi = rdi = dst,
# the byte in ecx) and crc32c.s (one buffer, read-only: r8 = r9 = src, rdi is the
# progress cursor, esi the CRC state, with per-range fixups that count the bytes
# a `crc32` has just folded in). Routines with one buffer set r8 = r9 so that the
# handler's overlap check tests that buffer only.

# The table: one row per range, [begin, end) -> fixup. Each field is a 32-bit offset
# from the field's own address, so the table needs no relocation at load time. Rows
# appear in the order ranges appear in .text, so the table is sorted by address;
# src/arch/x86_64/table.rs checks that at install time and binary-searches it.
	.pushsection .rodata.mcsafe_landing_pads, "a"
	.balign 4
	.globl	mcsafe_asm_landing_pads_start
	.hidden	mcsafe_asm_landing_pads_start
mcsafe_asm_landing_pads_start:
	.popsection

.macro LANDING_PAD begin, end, fixup
	.pushsection .rodata.mcsafe_landing_pads, "a"
	.long	\begin - .
	.long	\end - .
	.long	\fixup - .
	.popsection
.endm

# Size thresholds of the vector routines, set once by src/arch/x86_64/mod.rs (init)
# from CPUID before any routine runs; the defaults here never take a method that
# the CPU may lack.
	.pushsection .data.mcsafe_thresholds, "aw"
	.balign 8
	.globl	mcsafe_asm_avx2_rep_movsb_threshold
	.hidden	mcsafe_asm_avx2_rep_movsb_threshold
mcsafe_asm_avx2_rep_movsb_threshold:		# from this many bytes, copy_avx2: rep movsb
	.quad	-1
	.globl	mcsafe_asm_avx512_rep_movsb_threshold
	.hidden	mcsafe_asm_avx512_rep_movsb_threshold
mcsafe_asm_avx512_rep_movsb_threshold:		# the same for copy_avx512
	.quad	-1
	.globl	mcsafe_asm_non_temporal_threshold
	.hidden	mcsafe_asm_non_temporal_threshold
mcsafe_asm_non_temporal_threshold:			# from this many bytes: non-temporal stores
	.quad	-1
	.popsection

# Every fixup ends the same way: bytes not copied = dst end - dst cursor.
.macro RETURN_BYTES_NOT_COPIED
	lea	(%r8,%r10), %rax
	sub	%rdi, %rax
	ret
.endm
