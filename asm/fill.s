# mcsafe_asm_fill: memset that survives SIGBUS, for fill_mc (src/access.rs).
#
# The fill convention (routine.s), for a routine with one buffer, the destination:
#   in:   rdi = dst, rdx = len (> 0), ecx = the byte (low 8 bits)
#   out:  register mode (routine.s): rax = status, rcx = bytes not filled, r11 = si_addr
# The prologue (ROUTINE fill, CONV_FILL, one_buffer) sets r8 = dst and r10 = len, so
# the handler's overlap check tests the destination and nothing else; the Rust side
# knows the side.
#
# Progress invariant, as for copies: every byte of [r8, rdi) has been stored.
# `rep stosb` keeps it at every iteration: a fault inside it leaves rdi at the
# first byte not stored (the architectural state of an interrupted string op).
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction
# --test storage_sweep --test storage_uffd --test lossy` (the lossy copy's zeros).

	ROUTINE fill, CONV_FILL, one_buffer, 4
	mov	%ecx, %eax			# al = the byte
	mov	%rdx, %rcx
	rep stosb				# fault point: destination
	xor	%eax, %eax			# every byte filled
	ret
	END_ROUTINE fill
