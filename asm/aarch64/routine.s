// mcsafe on aarch64: what a routine is. The calling convention of every routine,
// the macros that declare one (ROUTINE ... END_ROUTINE write its symbol, its frame,
// its fixups, its landing-pad rows and its descriptor row, with asm/table.s's
// LANDING_PAD and DESCRIPTOR, as asm/routine.s does on x86-64), and the argument
// check of the copies.
//
// Assembled after asm/table.s and before the other files of asm/aarch64/
// (src/arch/aarch64/routines.rs, one global_asm!), by rustc's integrated
// assembler. "Changing the asm" at the end says what to touch and what to run.
//
// ---- The calling convention (one way in, one way out) ----
// In, by convention (asm/table.s, CONV_*; each file's header says more):
//   copy (CONV_COPY): x0 = dst, x1 = src, x2 = len.
//   fill (CONV_FILL): x0 = dst, x2 = len, w3 = the byte.
//   checksum (CONV_CRC): x0 = src, x2 = len, w3 = the CRC state (not inverted).
//   copy and checksum (CONV_COPY_CRC): x0 = dst, x1 = src, x2 = len, w3 = state.
// Every routine ends in register mode, its one exit:
//   x16 = status: 0 when every byte was done, else the fault word (si_code |
//   si_addr_lsb << 16, written by the handler) or STATUS_BAD_ARGUMENTS; only then:
//   x15 = bytes not done, x17 = si_addr. Always: x0, x1, x2 as they came in (so
//   the caller keeps nothing alive across the call); w3 = the CRC state of exactly
//   the bytes done (checksums).
// Clobbered: x3-x17 (x18, the platform register, never), v0-v7 and v16-v31,
// NZCV. No stack, no call: lr stays the caller's. Every entry starts with `bti c`
// (a NOP without BTI), so an indirect call may reach it from a guarded page.
// There are no Rust-mode or C-mode instantiations here (CONV_RUST_COPY,
// CONV_C_COPY are x86-64's): copy_mc and libmcsafe's copy run the register-mode
// routine and build their result in Rust (src/arch/aarch64/mod.rs).
//
// ---- Range registers and progress ----
// x0, x1, x2 are never written inside any routine: at every instruction, the
// handler finds the call's buffers there (REGS_ONE_BUFFER: x0 and x2 only). The
// row's register-map word (asm/table.s, REGS_*) says how far the routine got:
//   REGS_ENTRY: nothing done yet (the small size classes, which load everything
//               before they store anything; the one-access routines): progress 0.
//   REGS_SAVED: the cursor x4 is set; progress = x4 - x0 (x5 the source cursor).
//   REGS_ONE_BUFFER: the same for the one buffer (fill, checksums; no x5).
// Progress invariant, true at EVERY instruction inside a range (a machine check
// may be reported at any instruction boundary, not only at the access):
//   every byte of [x0, x4) has been stored (checksums: folded into w3).
// x4 only moves forward, and only past bytes already done; the copy moves it with
// the post-index writeback of its stores (`stp q0, q1, [x4], #32`), which a
// faulting store does not perform. The source cursor x5 may run ahead (a
// post-index load that faults writes nothing back either). Where one instruction
// must sit between two that update the state and the cursor (a `crc32cx` after the
// post-index load that fed it), that instruction is a range of its own (ALONE)
// whose fixup moves x4 back first.
//
// ---- On a fault ----
// The handler (src/handler/signal/, the registers in aarch64.rs) sets pc to the
// row's fixup, x16 to the fault word, x17 to si_addr, clears BTYPE in the saved
// pstate (the fixups have no `bti`), and returns. A fixup lies outside every
// range, touches no memory, sets x15 = bytes not done and returns: REGS_ENTRY
// fixups x15 = x2, the others x15 = x0 + x2 - x4. The Rust side decides what
// happens next (src/forward.rs: the careful forward step); the handler never
// retries.
//
// Variants: copy.s (the AdvSimd strategy, and the exact 1/2/4/8-byte routines of
// read_mc/write_mc), fill.s, crc32c.s (the one-chain checksum, the three-stream
// checksum merged with PMULL, and the copy-and-checksum). No MOPS (CPYF*): see
// docs/cpus.md, "aarch64", for what their registers would allow.

	.set	STATUS_BAD_ARGUMENTS_HI, 0x8000		// 0x8000000000000001

// What a routine needs of the CPU (the descriptor's `needs` bits;
// src/arch/aarch64/cpu.rs, Needs, from HWCAP): offered only where the CPU has all.
	.set	NEEDS_ASIMD, 1				// Advanced SIMD (q registers)
	.set	NEEDS_CRC32, 2				// FEAT_CRC32 (crc32c*)
	.set	NEEDS_PMULL, 4				// FEAT_PMULL (pmull 64x64)

// ---- A routine ----
// ROUTINE name, convention[, prologue[, needs]]: the symbol mcsafe_asm_<name>, its
// CFI, `bti c`, then the first range. Prologues:
//   entry (the default): a REGS_ENTRY range, which SET_CURSORS may end;
//   saved: x4 = x0 and x5 = x1 at once (two moves that touch no memory), then
//     segment 0 of the REGS_SAVED ranges;
//   one_buffer: x4 = x0 at once, then segment 0 of the REGS_ONE_BUFFER ranges.
// The body between ROUTINE and END_ROUTINE is all a routine is; every way out of
// it that did every byte is DONE.
.macro ROUTINE name, convention, prologue=entry, needs=0
	.text
	.p2align 6
	.globl	mcsafe_asm_\name
	.hidden	mcsafe_asm_\name
	.type	mcsafe_asm_\name, %function
mcsafe_asm_\name:
	.cfi_startproc
	.set	.L\name\()_convention, \convention
	.set	.L\name\()_needs, \needs
	.set	.L\name\()_rows, 0
	.set	.L\name\()_regs, REGS_SAVED
	.ifc \prologue, entry
	.set	.L\name\()_ranges, 1			// an entry range is open
.L\name\()_entry:
	hint	#34					// bti c
	.else
	.set	.L\name\()_ranges, 2			// only cursor ranges
	hint	#34					// bti c
	mov	x4, x0
	.ifc \prologue, one_buffer
	.set	.L\name\()_regs, REGS_ONE_BUFFER
	.else
	mov	x5, x1
	.endif
.L\name\()_seg0:
	.endif
.endm

// Ends the entry range (its row now, so that the table stays sorted) and starts
// segment 0 of the saved ones: from here on x4 is the progress.
.macro SET_CURSORS name
	.set	.L\name\()_ranges, 3			// an entry range, then saved ones
	mov	x4, x0					// still in the entry range:
	mov	x5, x1					// progress 0
.L\name\()_entry_end:
	LANDING_PAD \name, .L\name\()_entry, .L\name\()_entry_end, .L\name\()_entry_fixup, REGS_ENTRY
.L\name\()_seg0:
.endm

// One instruction in a range of its own, with its own fixup, inside the cursor
// ranges: closes segment `prev` (unless `none`: the instruction before was ALONE
// too), then opens segment `next` after the instruction (unless `none`).
.macro ALONE name, prev, next, fixup, insn:vararg
	.ifnc \prev, none
.L\name\()_seg\prev\()_end:
	LANDING_PAD \name, .L\name\()_seg\prev, .L\name\()_seg\prev\()_end, .L\name\()_fixup, .L\name\()_regs
	.endif
.L\name\()_alone\@:
	\insn
.L\name\()_alone_end\@:
	LANDING_PAD \name, .L\name\()_alone\@, .L\name\()_alone_end\@, \fixup, .L\name\()_regs
	.ifnc \next, none
.L\name\()_seg\next:
	.endif
.endm

// Closes the last range (segment `last` of the cursor ranges, unless `none`; or
// the entry range), so that the fixups of the routine's ALONE ranges can follow,
// outside every range, before END_ROUTINE (optional: END_ROUTINE does it
// otherwise). Those fixups end by branching to .L<name>_fixup.
.macro END_RANGES name, last=0
.L\name\()_end:
	.if .L\name\()_ranges == 1
	LANDING_PAD \name, .L\name\()_entry, .L\name\()_end, .L\name\()_entry_fixup, REGS_ENTRY
	.else
	.ifnc \last, none
	LANDING_PAD \name, .L\name\()_seg\last, .L\name\()_end, .L\name\()_fixup, .L\name\()_regs
	.endif
	.endif
.endm

// END_ROUTINE name[, last]: closes the ranges (END_RANGES, if the body did not),
// writes the fixups, outside every range, then the routine's size and its
// descriptor (asm/table.s).
.macro END_ROUTINE name, last=0
	.ifndef .L\name\()_end
	END_RANGES \name, \last
	.endif
	.if .L\name\()_ranges != 2
.L\name\()_entry_fixup:				// nothing done
	mov	x15, x2
	ret
	.endif
	.if .L\name\()_ranges != 1
.L\name\()_fixup:				// bytes not done = end - cursor
	add	x15, x0, x2
	sub	x15, x15, x4
	ret
	.endif
	.cfi_endproc
.L\name\()_stop:
	.size	mcsafe_asm_\name, . - mcsafe_asm_\name
	DESCRIPTOR \name
.endm

// Every way out of a routine that did every byte: inside its range (a machine
// check reported at the `ret` still finds the call), x16 is no range register.
.macro DONE
	mov	x16, xzr
	ret
.endm

// ---- The argument check of every copy routine ----
// Refuses, before any access, what copy_mc refuses (src/copy.rs `ranges_are_bad`
// is the same rule in Rust): with len > 0, a null pointer, a pointer or a length
// at or above 2^61, or overlapping ranges (dst - src + len - 1 < 2 len - 1,
// unsigned). len 0 goes to the refusal, which finds it fine. Clobbers x9, x10,
// NZCV.
.macro CHECK_COPY_ARGUMENTS
	sub	x9, x0, #1				// null becomes all ones
	sub	x10, x1, #1
	orr	x9, x9, x10
	orr	x9, x9, x2
	tst	x9, #0xe000000000000000
	b.ne	mcsafe_asm_copy_refused
	sub	x9, x0, x1
	add	x9, x9, x2
	sub	x9, x9, #1
	lsl	x10, x2, #1
	sub	x10, x10, #1
	cmp	x9, x10
	b.lo	mcsafe_asm_copy_refused
.endm

// The refusal: STATUS_BAD_ARGUMENTS (0 for len 0), x15 = len. Not in any range:
// touches no memory.
	.text
	.p2align 4
	.type	mcsafe_asm_copy_refused, %function
mcsafe_asm_copy_refused:
	.cfi_startproc
	mov	x15, x2
	mov	x16, xzr
	cbz	x2, 1f					// len 0: nothing to do, nothing wrong
	mov	x16, #1
	movk	x16, #STATUS_BAD_ARGUMENTS_HI, lsl #48
1:	ret
	.cfi_endproc
	.size	mcsafe_asm_copy_refused, . - mcsafe_asm_copy_refused

// ---- Changing the asm ----
// - A new routine: ROUTINE <name>, <convention> ... END_ROUTINE <name> in a file of
//   this directory, added to the global_asm! list of src/arch/aarch64/routines.rs
//   (after this file), run from Rust with `routine!("<name>")` and listed by
//   `every_routine` (src/arch/aarch64/mod.rs: table.rs's test fails until it is).
//   Keep every access to the caller's memory inside a range, x0-x2 unwritten, and
//   the invariant above true at every instruction of it.
// - Then run, cross-built (docs/cpus.md, "aarch64"): cargo test --target
//   aarch64-unknown-linux-gnu -p mcsafe --lib, -p mcsafe-tests --test sweep --test
//   storage_sweep --test copy_crc_sweep, and cargo xtask vm-test-aarch64 (every
//   instruction of every range under ptrace, real poison).
