# mcsafe_asm_copy_rep_movsb: one `rep movsb` (fast on CPUs with ERMS/FSRM).
#
# On a fault inside a string move, rdi/rsi/rcx describe the iterations that
# completed, so the progress invariant holds at the instruction itself. A
# Skylake-SP erratum reports a machine check in `rep movs` at the NEXT
# instruction: the range extends past it, and the invariant still holds there.
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction --test sweep
# --test forward_step --test lost_pages` and `cargo xtask vm-test`.

	ROUTINE copy_rep_movsb
	CHECK_COPY_ARGUMENTS
	SAVE_RANGE_REGISTERS copy_rep_movsb
	mov	%rdx, %rcx
	rep movsb				# fault point: either side
	xor	%eax, %eax			# every byte copied
	ret
	END_ROUTINE copy_rep_movsb, , c		# the range includes the ret: the
						# erratum's late report lands there
