# mcsafe: what a routine is. The calling convention of every routine, and the macros
# that declare one: ROUTINE ... END_ROUTINE write its symbol, its frame, its fixups,
# its landing-pad rows and its descriptor row. A routine is that one declaration:
# the Rust side finds it by name (src/arch/x86_64/routines.rs, `routine!`) and the
# tests walk the descriptor table (src/table.rs).
#
# Assembled after asm/table.s (the tables, shared with aarch64) and before the other
# files in asm/ (src/arch/x86_64/routines.rs), in AT&T syntax, by rustc's
# integrated assembler. "Changing the asm" at the end says what to run.
#
# ---- The calling convention ----
# Every routine clobbers only what the C ABI lets a function clobber (caller-saved
# general, vector and mask registers; DF clear) and uses no stack beyond its return
# address (copy_crc32c.s also 32 bytes of the red zone). The registers in and out
# depend on the routine's convention (CONV_* below; each file's header says more):
#   copy (CONV_COPY): rdi = dst, rsi = src, rdx = len.
#   fill (CONV_FILL): rdi = dst, rdx = len, ecx = the byte.
#   checksum (CONV_CRC): rdi = src, esi = CRC state (not inverted), rdx = len, r9 =
#     the block size of a folding routine.
#   copy and checksum (CONV_COPY_CRC): rdi = dst, rcx = src, rdx = len, esi = state,
#     r11 = the block size, rax = the length from which blocks have no streams.
#   Rust copy (CONV_RUST_COPY): the C function `RawResult f(void *dst, const void
#     *src, size_t len)`, what copy_mc calls through the dispatch word: it returns
#     `Result<(), Fault>` itself in rax:rdx (src/fault.rs, RawResult), so that a
#     caller that only passes the result on tail-calls it (dispatch.s, "Rust").
#   C API copy (CONV_C_COPY): the C function `int f(void *dst, const void *src,
#     size_t len, void *context)`, for libmcsafe's mcsafe_copy (dispatch.s, "C API").
# Each strategy's body is instantiated three times, once per copy convention; the
# other routines have one. Every routine but the Rust and C API copies ends in
# register mode, its one exit:
#   rax = status: 0 when every byte was done; else the fault word (si_code |
#   si_addr_lsb << 16, written by the handler), STATUS_BAD_ARGUMENTS or
#   STATUS_NOT_READY (dispatch.s); then, and only then: rcx = bytes not done, r11 =
#   si_addr, rdx = the routine's entry, r8 = dst (or the one buffer), r9 = src, r10 =
#   len. (The checksums also return esi, the state of exactly the bytes done.)
# The Rust copies end in the Rust exit (dispatch.s): the Result, after the careful
# forward step with their register-mode twin; the C API routines in the C exit: 0,
# -EINVAL, or what libmcsafe's fault function makes of the stopped copy. Which exit
# a routine has is fixed by its convention: a fixup never looks at who called.
#
# ---- Range registers ----
# The SIGBUS handler must know the call's buffers to tell its own fault from a stray
# one. Each landing-pad range says where they are (src/table.rs, Regs):
#   REGS_SAVED: r8 = dst, r9 = src, r10 = len, copied there by the prologue or by
#               SAVE_RANGE_REGISTERS; no instruction inside such a range writes them;
#   REGS_ENTRY: still in rdi, rsi, rdx (code that moves no pointer: the small size
#               classes, the one-access routines);
#   REGS_ONE_BUFFER: r8 = the one buffer, r10 = len (fill, checksums; r9 is free).
#
# ---- Progress invariant, true at EVERY instruction inside a range ----
# (a real machine check may be reported at any instruction boundary, not only at the
# consuming load): every byte of [dst, rdi) has been stored (checksums: esi is the CRC
# state of exactly [src, rdi)). So rdi only moves forward, and only past bytes already
# done; in REGS_ENTRY ranges it never moves. A few one-instruction windows, where the
# invariant holds for rdi + a with a known a, have fixups of their own that add a
# first (END_ROUTINE's window list).
#
# On a fault the handler sets RIP to the range's fixup, rax to the fault word and r11
# to si_addr, and returns. The fixup turns the invariant into "bytes not done" and
# leaves by the routine's one exit. The handler never retries, and a fixup never
# touches the caller's memory: the Rust side decides what happens next (the careful
# forward step, src/forward.rs).

# ---- Status words (rax), besides 0 and fault words (below 1 << 24) ----
# Bad arguments: a null pointer with len > 0, a pointer or length at or above 2^61 (so
# wrapping or leaving user space), or overlapping ranges. Nothing was touched.
	.set	STATUS_BAD_ARGUMENTS, 0x8000000000000001
# The dispatch word is not set yet (dispatch.s): nothing was touched.
	.set	STATUS_NOT_READY, 0x8000000000000002

# REGS_* and CONV_* (the values of the table rows) are in asm/table.s, with the
# tables and the LANDING_PAD and DESCRIPTOR macros this file's END_ROUTINE uses.

# What a routine needs of the CPU (the descriptor's `needs` bits;
# src/arch/x86_64/cpu.rs, Needs): it is offered only where the CPU has all of them.
	.set	NEEDS_ERMS, 1			# fast strings (a preference: rep movsb runs anywhere)
	.set	NEEDS_AVX2, 2
	.set	NEEDS_AVX512, 4			# AVX-512F and VL, zmm state saved by the OS
	.set	NEEDS_SSE42, 8
	.set	NEEDS_PCLMUL, 16
	.set	NEEDS_AVX, 32
	.set	NEEDS_VPCLMUL, 64

# Rows from \from to \to with fixup \fixup, split by windows: each window is three
# labels (begin, end, fixup) inside [from, to), in order; a window may end at \to.
.macro ROWS name, from, to, fixup, regs, wbegin, wend, wfixup, windows:vararg
	.ifb \wbegin
	LANDING_PAD \name, \from, \to, \fixup, \regs
	.else
	LANDING_PAD \name, \from, \wbegin, \fixup, \regs
	LANDING_PAD \name, \wbegin, \wend, \wfixup, \regs
	.ifnc \wend, \to
	ROWS \name, \wend, \to, \fixup, \regs, \windows
	.endif
	.endif
.endm

# ---- The C API's direct entry ----
# A C API copy is entered by libmcsafe's mcsafe_copy, an IFUNC that the dynamic
# linker resolves once to mcsafe_asm_<name>_if_published of the strategy this CPU
# gets by default (mcsafe::c_api::resolve): a caller reaches the routine through
# the PLT alone, as it reaches glibc's memcpy. The entry goes straight into the
# routine when the routine is the one the C API published
# (mcsafe_asm_c_copy_published, set after installation: dispatch.s), else to the
# C library's dispatch (before first use, or when MCSAFE_STRATEGY chose another
# strategy), with the arguments untouched. Three instructions, no taken branch;
# outside every range (it touches no caller memory); rax is the return value's.
.macro C_COPY_IF_PUBLISHED name
	.globl	mcsafe_asm_\name\()_if_published
	.hidden	mcsafe_asm_\name\()_if_published
	.type	mcsafe_asm_\name\()_if_published, @function
mcsafe_asm_\name\()_if_published:
	.cfi_startproc
	lea	mcsafe_asm_\name(%rip), %rax
	cmp	%rax, mcsafe_asm_c_copy_published(%rip)
	jne	mcsafe_asm_c_copy_unpublished
	.size	mcsafe_asm_\name\()_if_published, mcsafe_asm_\name - mcsafe_asm_\name\()_if_published
.endm

# ---- A routine ----
# ROUTINE name, convention[, prologue[, align[, needs]]]: the symbol mcsafe_asm_<name>
# and its CFI, then the first range. Prologues:
#   entry (the default): a REGS_ENTRY range; the body may later call
#     SAVE_RANGE_REGISTERS to start a REGS_SAVED one;
#   saved: r8 = rdi, r9 = rsi, r10 = rdx at once, a REGS_SAVED range;
#   saved_rcx: the same with r9 = rcx (the copy-and-checksum's source);
#   one_buffer: r8 = rdi, r10 = rdx, a REGS_ONE_BUFFER range.
# A C API copy (convention CONV_C_COPY) first keeps its fourth argument, the
# context, below its return address (the red zone survives signal delivery), for
# the C exit: in the prologue, before every range, so that a fault anywhere in a
# range finds it (a stack store cannot touch the caller's buffers); its direct
# entry (C_COPY_IF_PUBLISHED) comes right before its symbol, in the same frame.
# The body between ROUTINE and END_ROUTINE is all a routine is; every way out of it
# sets rax = 0 ("all done") and returns.
.macro ROUTINE name, convention, prologue=entry, align=5, needs=0
	.text
	.p2align \align
	.globl	mcsafe_asm_\name
	.hidden	mcsafe_asm_\name
	.type	mcsafe_asm_\name, @function
	.if \convention == CONV_C_COPY
	C_COPY_IF_PUBLISHED \name
	.else
	.cfi_startproc
	.endif
mcsafe_asm_\name:
	.set	.L\name\()_convention, \convention
	.set	.L\name\()_needs, \needs
	.set	.L\name\()_rows, 0
	.if \convention == CONV_C_COPY
	mov	%rcx, -8(%rsp)				# the context, for the C exit (before
	.endif						# every range: a fault sees it kept)
	.ifc \prologue, entry
	.set	.L\name\()_ranges, 1			# an entry range is open
.L\name\()_entry:
	.else
	.set	.L\name\()_ranges, 2			# only a saved (or one-buffer) range
	.set	.L\name\()_regs, REGS_SAVED
	mov	%rdi, %r8
	.ifc \prologue, one_buffer
	.set	.L\name\()_regs, REGS_ONE_BUFFER
	.else
	.ifc \prologue, saved_rcx
	mov	%rcx, %r9
	.else
	mov	%rsi, %r9
	.endif
	.endif
	mov	%rdx, %r10
.L\name\()_saved:
	.endif
.endm

# Ends the entry range and starts the saved one: from here on rdi, rsi, rdx may move.
.macro SAVE_RANGE_REGISTERS name
	.set	.L\name\()_ranges, 3			# an entry range, then a saved one
	.set	.L\name\()_regs, REGS_SAVED
	mov	%rdi, %r8				# still in the entry range: the
	mov	%rsi, %r9				# arguments are where it says
	mov	%rdx, %r10
.L\name\()_entry_end:
.L\name\()_saved:
.endm

# Ends the ranges (optional: END_ROUTINE does it otherwise), so that fixups of the
# routine's own windows can follow, outside every range.
.macro END_RANGES name
.L\name\()_end:
.endm

# END_ROUTINE name[, before_fixup[, window labels...]]: closes the ranges, writes the
# fixups (`before_fixup`, e.g. `vzeroupper`, runs first) and the exit, then the
# routine's size, its landing-pad rows and its descriptor. Windows (three labels
# each: begin, end, fixup) split the saved range; their fixups, written by the body
# after END_RANGES, set rdi and jump to .L<name>_fixup.
.macro END_ROUTINE name, before_fixup, windows:vararg
	.ifndef .L\name\()_end
.L\name\()_end:
	.endif
	# Fixups: outside every range (a fault inside one must not be taken for a copy fault).
	.if .L\name\()_ranges != 2
.L\name\()_entry_fixup:				# rdi, rsi, rdx still hold the arguments
	mov	%rdi, %r8
	mov	%rsi, %r9
	mov	%rdx, %r10
	.endif
.L\name\()_fixup:
	\before_fixup
	lea	(%r8,%r10), %rcx			# bytes not done = end - cursor
	sub	%rdi, %rcx
	lea	mcsafe_asm_\name(%rip), %rdx		# which routine stopped
	.if .L\name\()_convention == CONV_C_COPY
	jmp	mcsafe_asm_c_copy_stopped		# the C exit (dispatch.s)
	.elseif .L\name\()_convention == CONV_RUST_COPY
	jmp	mcsafe_asm_rust_copy_stopped		# the Rust exit (dispatch.s)
	.else
	ret						# register mode
	.endif
	.cfi_endproc
.L\name\()_stop:
	.size	mcsafe_asm_\name, . - mcsafe_asm_\name
	.if .L\name\()_ranges == 1
	LANDING_PAD \name, .L\name\()_entry, .L\name\()_end, .L\name\()_entry_fixup, REGS_ENTRY
	.elseif .L\name\()_ranges == 2
	ROWS \name, .L\name\()_saved, .L\name\()_end, .L\name\()_fixup, .L\name\()_regs, \windows
	.else
	LANDING_PAD \name, .L\name\()_entry, .L\name\()_entry_end, .L\name\()_entry_fixup, REGS_ENTRY
	ROWS \name, .L\name\()_saved, .L\name\()_end, .L\name\()_fixup, .L\name\()_regs, \windows
	.endif
	DESCRIPTOR \name
.endm

# ---- Changing the asm ----
# - A new routine: a file asm/<name>.s (or a macro instantiated in one) with ROUTINE
#   <name>, <convention> ... END_ROUTINE <name>; add the file to the global_asm! list
#   in src/arch/x86_64/routines.rs (after this file, dispatch.s and any file whose
#   macros it uses) and call it there with `routine!(<name>)`. Keep every access to the
#   caller's memory inside a range and the invariant above true at every instruction
#   of it. docs/architecture.md, "Adding a routine", has the whole recipe.
# - Then run: cargo test -p mcsafe --lib table, cargo test -p mcsafe-tests --test
#   every_instruction (every instruction of every range, real-machine-check-like
#   injections, objdump coverage), --test sweep, cargo xtask vm-test (real machine
#   checks under QEMU), and cargo bench --bench summary for speed.
