# mcsafe_asm_copy_rep_movsb: one `rep movsb` (fast on CPUs with ERMS/FSRM).
#
# On a fault inside a string move, rdi/rsi/rcx describe the iterations that
# completed, so the progress invariant holds at the instruction itself. A
# Skylake-SP erratum reports a machine check in `rep movs` at the NEXT
# instruction: the range extends past it, and the invariant still holds there.
#
# Instantiated once per copy convention (asm/routine.s): copy_rep_movsb (register
# mode), rust_copy_rep_movsb and c_copy_rep_movsb.
#
# Change it, then run `cargo test -p mcsafe-tests --test every_instruction --test sweep
# --test forward_step --test lost_pages` and `cargo xtask vm-test`.

.macro COPY_REP_MOVSB name, convention
	ROUTINE \name, \convention, entry, 5, NEEDS_ERMS
	CHECK_COPY_ARGUMENTS \name
	SAVE_RANGE_REGISTERS \name
	mov	%rdx, %rcx
	rep movsb				# fault point: either side
	xor	%eax, %eax			# every byte copied
	ret
	END_ROUTINE \name				# the range includes the ret: the
						# erratum's late report lands there
.endm
	COPY_REP_MOVSB copy_rep_movsb, CONV_COPY
	COPY_REP_MOVSB rust_copy_rep_movsb, CONV_RUST_COPY
	COPY_REP_MOVSB c_copy_rep_movsb, CONV_C_COPY
