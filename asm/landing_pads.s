# mcsafe: the calling convention of every routine, the landing-pad table, the macros
# that write a routine's frame, the argument check, and the dispatch words.
#
# Assembled first of all the files in asm/ (src/arch/x86_64/routines.rs), in AT&T
# syntax, by rustc's integrated assembler. "Changing the asm" at the end of this file
# says what to touch and what to run.
#
# Two ways in. Every routine takes rdi = dst, rsi = src, rdx = len, and clobbers only
# what the C ABI lets a function clobber (caller-saved general, vector and mask
# registers; DF clear), so:
#   C mode (the strategy routines, mode=c): called as the C function
#     RawResult routine(void *dst, const void *src, size_t len)
#   from Rust (src/arch/x86_64/routines.rs, `copy_current`): it returns
#   `Result<(), Fault>` itself, in rax:rdx (src/fault.rs, RawResult): rax = 0 when
#   every byte was copied. After a fault the fixup calls the Rust side
#   (mcsafe_asm_glue_finish_copy: the careful forward step) and returns what it
#   returns; refused arguments and a dispatch word not set yet jump to the Rust side
#   too (mcsafe_asm_glue_refused, mcsafe_asm_glue_first_use). So `copy_mc` is one
#   indirect call, and a caller that only passes the result on tail-calls it.
#   C API mode (the strategy routines, called by mcsafe_asm_capi_copy): as C mode,
#   but what comes back is libmcsafe's `int` (0, -EIO with `struct mcsafe_fault`
#   filled in, -EINVAL), never a panic.
#   Register mode (every routine; the strategy routines when called through
#   mcsafe_asm_call_registers, which the fixups recognise by their return address):
#   rax = status: 0 when every byte was done, else the fault word (si_code |
#   si_addr_lsb << 16, written by the handler) or STATUS_BAD_ARGUMENTS; after a
#   fault or a refusal, and only then: rcx = bytes not done, r11 = si_addr, rdx =
#   the routine's entry address, r8 = dst, r9 = src, r10 = len.
#
# Range registers: the SIGBUS handler must know the call's buffers to tell its own
# fault from a stray one. Each landing-pad range says where they are:
#   REGS_ENTRY: still in rdi, rsi, rdx (code that moves no pointer: the small size
#               classes, the one-access routines);
#   REGS_SAVED: in r8 = dst, r9 = src, r10 = len, copied there by SAVE_RANGE_REGISTERS;
#               no instruction inside such a range writes them.
#
# Progress invariant, true at EVERY instruction inside a range (a real machine check
# may be reported at any instruction boundary, not only at the consuming load):
#   every byte of [dst, rdi) has been stored.
# So rdi only moves forward, and only past bytes already stored; in REGS_ENTRY ranges
# it never moves. No other register means anything to a fixup.
#
# On a fault the handler sets RIP to the range's fixup, rax to the fault word and r11
# to si_addr, and returns. The fixup turns the invariant into "bytes not copied" and
# returns to the caller (register mode) or calls the Rust side with it (C mode). The
# handler never retries, and a fixup never touches the caller's memory: the Rust side
# decides what happens next (src/copy.rs: the careful forward step).
#
# Variants, each documented in its file: copy_exact.s (exactly 1, 2, 4 or 8 bytes, one
# load and one store), fill.s (one buffer: rsi = rdi = dst, the byte in ecx) and
# crc32c.s (one buffer, read-only: r8 = r9 = src, rdi the progress cursor, esi the CRC
# state, with per-range fixups that count the bytes a `crc32` has just folded in).

# ---- Status words (rax, register mode), besides 0 and fault words (below 1 << 24) ----
# Bad arguments: a null pointer with len > 0, a pointer or length at or above 2^61 (so wrapping
# or leaving user space), or overlapping ranges. Nothing was touched.
	.set	STATUS_BAD_ARGUMENTS, 0x8000000000000001

	.set	REGS_SAVED, 0
	.set	REGS_ENTRY, 1

# ---- The landing-pad table ----
# One row per range: [begin, end) -> fixup, and where the range registers are. The
# three addresses are 32-bit offsets from the field's own address, so the table needs
# no relocation at load time. Rows go to subsection 1 of the table section, between
# the start label (subsection 0) and the end label (subsection 2), whatever the order
# of the source files; they appear in the order the ranges appear in .text, so the
# table is sorted (src/arch/x86_64/table.rs checks that at install and binary-searches it).
	.pushsection .rodata.mcsafe_landing_pads, "a"
	.balign 4
	.globl	mcsafe_asm_landing_pads_start
	.hidden	mcsafe_asm_landing_pads_start
mcsafe_asm_landing_pads_start:
	.subsection 2
	.globl	mcsafe_asm_landing_pads_end
	.hidden	mcsafe_asm_landing_pads_end
mcsafe_asm_landing_pads_end:
	.popsection

.macro LANDING_PAD begin, end, fixup, regs
	.pushsection .rodata.mcsafe_landing_pads, "a"
	.subsection 1
	.long	\begin - .
	.long	\end - .
	.long	\fixup - .
	.long	\regs
	.popsection
.endm

# ---- A routine's frame ----
# ROUTINE name[, prologue]: the symbol mcsafe_asm_<name> and its CFI, then the first
# range. With prologue `entry` (the default) the range is REGS_ENTRY and the body may
# later call SAVE_RANGE_REGISTERS; with `saved` the range registers are saved at once
# (r8 = rdi, r9 = rsi, r10 = rdx); with `one_buffer` they are r8 = r9 = rdi, r10 = rdx
# (routines whose rsi is not a buffer). END_ROUTINE name[, before_fixup[, mode]]
# closes the range, writes the fixups (`before_fixup`, e.g. `vzeroupper`, runs first;
# mode `c` adds the C-mode exit), the size and the rows. The body between them is all
# a routine is; every way out of it sets rax = 0 ("all done") and returns.
.macro ROUTINE name, prologue=entry, align=5
	.text
	.p2align \align
	.globl	mcsafe_asm_\name
	.hidden	mcsafe_asm_\name
	.type	mcsafe_asm_\name, @function
mcsafe_asm_\name:
	.cfi_startproc
	.ifc \prologue, entry
	.set	.L\name\()_ranges, 1			# an entry range is open
.L\name\()_entry:
	.else
	.set	.L\name\()_ranges, 2			# only a saved range
	.ifc \prologue, one_buffer
	mov	%rdi, %r8
	mov	%rdi, %r9
	mov	%rdx, %r10
	.else
	mov	%rdi, %r8
	mov	%rsi, %r9
	mov	%rdx, %r10
	.endif
.L\name\()_saved:
	.endif
.endm

# Ends the entry range and starts the saved one: from here on rdi, rsi, rdx may move.
.macro SAVE_RANGE_REGISTERS name
	.set	.L\name\()_ranges, 3			# an entry range, then a saved one
	mov	%rdi, %r8				# still in the entry range: the
	mov	%rsi, %r9				# arguments are where it says
	mov	%rdx, %r10
.L\name\()_entry_end:
.L\name\()_saved:
.endm

.macro END_ROUTINE name, before_fixup, mode=registers
.L\name\()_end:
	# Fixups: outside every range (a fault inside one must not be taken for a copy fault).
	.if .L\name\()_ranges != 2
.L\name\()_entry_fixup:				# rdi, rsi, rdx still hold the arguments
	mov	%rdi, %r8
	mov	%rsi, %r9
	mov	%rdx, %r10
	.endif
.L\name\()_fixup:
	\before_fixup
	.ifc \mode, c
	FAULT_TO_RUST \name
	.endif
	lea	(%r8,%r10), %rcx			# bytes not done = dst end - cursor
	sub	%rdi, %rcx
	lea	mcsafe_asm_\name(%rip), %rdx		# which routine stopped
	ret
	.cfi_endproc
	.size	mcsafe_asm_\name, . - mcsafe_asm_\name
	.if .L\name\()_ranges == 1
	LANDING_PAD .L\name\()_entry, .L\name\()_end, .L\name\()_entry_fixup, REGS_ENTRY
	.elseif .L\name\()_ranges == 2
	LANDING_PAD .L\name\()_saved, .L\name\()_end, .L\name\()_fixup, REGS_SAVED
	.else
	LANDING_PAD .L\name\()_entry, .L\name\()_entry_end, .L\name\()_entry_fixup, REGS_ENTRY
	LANDING_PAD .L\name\()_saved, .L\name\()_end, .L\name\()_fixup, REGS_SAVED
	.endif
.endm

# The C-mode exit of a fixup: unless the routine was called in register mode (its
# return address is mcsafe_asm_call_registers_return), hand the stopped copy to the
# Rust side and return what it builds: the Result (C mode), or the C library's
# int and its `struct mcsafe_fault` (C API mode: called by mcsafe_asm_capi_copy,
# whose return address says so and whose fault pointer lies above it). The frame
# (src/arch/x86_64/routines.rs, FixupFrame) is 9 words on the stack; the CFI
# follows it, so a panic there unwinds.
.macro FAULT_TO_RUST name
	lea	mcsafe_asm_call_registers_return(%rip), %rcx
	cmp	%rcx, (%rsp)
	je	1f					# register mode: return registers
	sub	$72, %rsp				# 16-byte aligned for the call
	.cfi_adjust_cfa_offset 72
	mov	%r8, (%rsp)				# dst
	mov	%r9, 8(%rsp)				# src
	mov	%r10, 16(%rsp)				# len
	mov	%rdi, 24(%rsp)				# cursor: [dst, cursor) is stored
	mov	%rax, 32(%rsp)				# fault word
	mov	%r11, 40(%rsp)				# si_addr
	lea	mcsafe_asm_\name(%rip), %rcx
	mov	%rcx, 48(%rsp)				# the routine, for the forward step
	xor	%ecx, %ecx
	lea	mcsafe_asm_capi_copy_return(%rip), %rdx
	cmp	%rdx, 72(%rsp)
	sete	%cl
	mov	%rcx, 56(%rsp)				# 1 in C API mode
	mov	80(%rsp), %rdx
	mov	%rdx, 64(%rsp)				# C API mode: its fault pointer
	mov	%rsp, %rdi
	call	mcsafe_asm_glue_finish_copy
	add	$72, %rsp
	.cfi_adjust_cfa_offset -72
	ret
1:
.endm

# C API mode: `int mcsafe_asm_capi_copy(void *dst, const void *src, size_t len,
# struct mcsafe_fault *fault)`, the whole of libmcsafe's mcsafe_copy once the
# dispatch word is set (capi/src/lib.rs checks that first): 0, or -EIO with
# `*fault` (when not NULL), or -EINVAL, in eax, and no panic. The routine's exits
# know this caller by its return address, and find `fault` above it.
	.text
	.p2align 4
	.globl	mcsafe_asm_capi_copy
	.hidden	mcsafe_asm_capi_copy
	.type	mcsafe_asm_capi_copy, @function
mcsafe_asm_capi_copy:
	.cfi_startproc
	push	%rcx					# fault; the stack aligned as at entry
	.cfi_adjust_cfa_offset 8
	call	*mcsafe_asm_copy_current(%rip)
mcsafe_asm_capi_copy_return:
	pop	%rcx
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	mcsafe_asm_capi_copy, . - mcsafe_asm_capi_copy

# Register mode for a C-mode routine: `call mcsafe_asm_call_registers` with rax = the
# routine. Its return address tells the routine's fixups which way out to take.
	.text
	.p2align 4
	.globl	mcsafe_asm_call_registers
	.hidden	mcsafe_asm_call_registers
	.type	mcsafe_asm_call_registers, @function
mcsafe_asm_call_registers:
	.cfi_startproc
	call	*%rax
	.globl	mcsafe_asm_call_registers_return
	.hidden	mcsafe_asm_call_registers_return
mcsafe_asm_call_registers_return:
	ret
	.cfi_endproc
	.size	mcsafe_asm_call_registers, . - mcsafe_asm_call_registers

# The register-mode return of a fixup in a routine with ranges of its own
# (crc32c.s, crc32c_fold.s, copy_crc32c.s): bytes not done = end - cursor, in
# rcx; rax holds the fault word the handler wrote.
.macro RETURN_NOT_DONE
	lea	(%r8,%r10), %rcx
	sub	%rdi, %rcx
	ret
.endm

# ---- The argument check of every copy routine ----
# Refuses, before any access, what copy_mc refuses (src/copy.rs `ranges_are_bad` is
# the same rule in Rust): with len > 0, a null pointer, a pointer or a length at or
# above 2^61 (user space ends below 2^57; so every accepted range ends at or below
# 2^62 and none wraps), or overlapping ranges.
# 11 instructions, two not-taken branches; clobbers rax and rcx. len 0 with any
# pointers goes to the exit below, which finds it fine.
.macro CHECK_COPY_ARGUMENTS
	lea	-1(%rdi), %rax				# null becomes all ones
	lea	-1(%rsi), %rcx
	or	%rcx, %rax
	or	%rdx, %rax
	shr	$61, %rax
	jnz	mcsafe_asm_copy_refused
	lea	-1(%rdi,%rdx), %rax			# overlap: dst - src + len - 1
	sub	%rsi, %rax				#   < 2 len - 1, unsigned
	lea	-1(%rdx,%rdx), %rcx
	cmp	%rcx, %rax
	jb	mcsafe_asm_copy_refused
.endm

	.text
	.p2align 4
	.type	mcsafe_asm_copy_refused, @function
mcsafe_asm_copy_refused:			# not in any range: touches no memory
	.cfi_startproc
	lea	mcsafe_asm_capi_copy_return(%rip), %rcx
	cmp	%rcx, (%rsp)
	je	2f					# C API mode: -EINVAL
	lea	mcsafe_asm_call_registers_return(%rip), %rcx
	cmp	%rcx, (%rsp)
	jne	mcsafe_asm_glue_refused			# C mode: the Rust side says why
	mov	%rdi, %r8
	mov	%rsi, %r9
	mov	%rdx, %r10
	xor	%eax, %eax
	test	%rdx, %rdx				# len 0: nothing to copy, nothing wrong
	jz	1f
	movabs	$STATUS_BAD_ARGUMENTS, %rax
1:	mov	%rdx, %rcx
	lea	mcsafe_asm_copy_refused(%rip), %rdx
	ret
2:	xor	%eax, %eax				# len 0: 0, else -EINVAL (22)
	test	%rdx, %rdx
	jz	3f
	mov	$-22, %eax
3:	ret
	.cfi_endproc
	.size	mcsafe_asm_copy_refused, . - mcsafe_asm_copy_refused

# ---- Shapes the vector routines share (copy_avx2.s, copy_avx512.s) ----
# Copies of fewer than `vec` bytes (vec = 32 or 64), in a REGS_ENTRY range: two
# overlapping moves of 1, 2, 4, 8, 16 or 32 bytes from each end, every load before
# every store, every access inside the buffers. 8..15 bytes fall through (keys and
# headers: no taken branch); `x0, x1` are the 16-byte registers and `y0, y1` the
# 32-byte ones (vec 64 only) with their move instruction `vmov`.
.macro SMALL_COPIES name, vec, vmov, x0, x1, y0, y1
	cmp	$8, %edx
	jb	.L\name\()_0_7
	cmp	$16, %edx
	jae	.L\name\()_16_up
	movq	(%rsi), %rax			# 8..15
	movq	-8(%rsi,%rdx), %rcx
	movq	%rax, (%rdi)
	movq	%rcx, -8(%rdi,%rdx)
	xor	%eax, %eax
	ret
.L\name\()_16_up:
	.if \vec == 64
	cmp	$32, %edx
	jae	.L\name\()_32_63
	.endif
	\vmov	(%rsi), \x0			# 16..31 (xmm: no upper state dirtied)
	\vmov	-16(%rsi,%rdx), \x1
	\vmov	\x0, (%rdi)
	\vmov	\x1, -16(%rdi,%rdx)
	xor	%eax, %eax
	ret
	.if \vec == 64
.L\name\()_32_63:
	\vmov	(%rsi), \y0			# 32..63
	\vmov	-32(%rsi,%rdx), \y1
	\vmov	\y0, (%rdi)
	\vmov	\y1, -32(%rdi,%rdx)
	xor	%eax, %eax
	ret
	.endif
.L\name\()_0_7:
	cmp	$4, %edx
	jae	.L\name\()_4_7
	cmp	$1, %edx
	jb	.L\name\()_0			# flags live to the je below
	movzbl	(%rsi), %ecx			# 1..3: the first byte, and for 2..3
	je	.L\name\()_1			# the last two
	movzwl	-2(%rsi,%rdx), %eax
	movw	%ax, -2(%rdi,%rdx)
.L\name\()_1:
	movb	%cl, (%rdi)
.L\name\()_0:
	xor	%eax, %eax
	ret
.L\name\()_4_7:
	movl	(%rsi), %eax
	movl	-4(%rsi,%rdx), %ecx
	movl	%eax, (%rdi)
	movl	%ecx, -4(%rdi,%rdx)
	xor	%eax, %eax
	ret
.endm

# Stores the first vector (already loaded into `reg`) as it is, then steps all three
# cursors to the next `vec`-byte boundary of the destination: 1..vec bytes, all of
# them just stored, so rdi moves only past stored bytes. Clobbers rcx.
.macro STORE_FIRST_VEC_ALIGN_DST vec, vmov, reg
	\vmov	\reg, (%rdi)
	mov	%edi, %ecx
	and	$(\vec - 1), %ecx
	neg	%rcx
	add	$\vec, %rcx
	add	%rcx, %rsi
	add	%rcx, %rdi
	sub	%rcx, %rdx
.endm

# The loop path copied backward, for copies that lie inside one page on each side
# (UNLESS_INSIDE_ONE_PAGE): glibc copies backward when the destination is 0..255 bytes
# past the source within a page (its 4k-aliasing rule, memmove-vec-unaligned-erms.S):
# copied forward, the first loads wait on stores (of the previous iteration, or of
# the previous copy of the same buffers) whose addresses match them in the low 12
# bits. Inside one page the order costs nothing otherwise, and it is safe there. `v0` holds the first vector (already loaded);
# `v1`..`v4` are the loop's, `v5`..`v7` the next three vectors, `v8` the last one.
# The 4-vector blocks are stored downward from the end, with aligned stores, then
# the first four vectors and the last one. rdi never moves (progress 0: the forward
# step redoes the prefix after a fault); rcx and rax are the cursors. Every access
# lies inside the buffers (len > 8 vectors). The caller writes the exit.
.macro COPY_4X_BACKWARD vec, vmovu, vmova, v0, v1, v2, v3, v4, v5, v6, v7, v8
	\vmovu	\vec(%rsi), \v5
	\vmovu	(2 * \vec)(%rsi), \v6
	\vmovu	(3 * \vec)(%rsi), \v7
	\vmovu	-\vec(%rsi,%rdx), \v8
	lea	(-4 * \vec - 1)(%rdi,%rdx), %rcx	# the last whole 4-vector block of
	and	$-\vec, %rcx				# dst, aligned down
	mov	%rcx, %rax				# and its source:
	sub	%rdi, %rax				# src + (block - dst)
	add	%rsi, %rax
	.p2align 4,, 10					# the loop at a fetch block start
1:	\vmovu	(3 * \vec)(%rax), \v1
	\vmovu	(2 * \vec)(%rax), \v2
	\vmovu	\vec(%rax), \v3
	\vmovu	(%rax), \v4
	\vmova	\v1, (3 * \vec)(%rcx)
	\vmova	\v2, (2 * \vec)(%rcx)
	\vmova	\v3, \vec(%rcx)
	\vmova	\v4, (%rcx)
	sub	$(4 * \vec), %rax
	sub	$(4 * \vec), %rcx
	cmp	%rcx, %rdi				# down to the block that reaches dst
	jb	1b
	\vmovu	\v0, (%rdi)				# then the first four vectors
	\vmovu	\v5, \vec(%rdi)
	\vmovu	\v6, (2 * \vec)(%rdi)
	\vmovu	\v7, (3 * \vec)(%rdi)
	\vmovu	\v8, -\vec(%rdi,%rdx)			# and the last one
.endm

# Whether the loop path may go backward (see COPY_4X_BACKWARD): jumps to `forward`
# unless each range lies inside one page (tested as (src | dst) mod 4096 + len <=
# 4096, which implies both), so that the backward copy, placed right after, is
# reached without a taken branch. Only inside one page: a backward copy touches
# the end first, and across pages it would meet a lost page past one a forward copy
# stops at (a copy past a truncation would take a signal for every lost page, not
# one); inside one page per side, the first access to either side's page is the
# one that faults, whatever the order, so a faulting copy still takes one signal.
# In the entry range, before the range registers are saved: the backward loop
# moves neither rdi, rsi nor rdx. Clobbers ecx.
.macro UNLESS_INSIDE_ONE_PAGE forward
	mov	%edi, %ecx
	or	%esi, %ecx
	and	$4095, %ecx
	add	%rdx, %rcx
	cmp	$4096, %rcx
	ja	\forward
.endm

# ---- Dispatch ----
# The routine copy_mc calls (`mcsafe_asm_copy_current`, an indirect C call), and the
# routine of each Strategy in Strategy::ALL order (copy_mc_with). Until
# src/arch/x86_64/mod.rs (init) sets them, after installing the handler and the
# thresholds, each points at its not-ready stub, which goes to the Rust side with the
# slot (0..=3 the strategies, 4 the current one) in ecx to install and copy; a
# strategy the CPU cannot run keeps its stub for good. No "ready?" test on the hot path.
.macro NOT_READY slot
	.globl	mcsafe_asm_copy_not_ready_\slot
	.hidden	mcsafe_asm_copy_not_ready_\slot
	.type	mcsafe_asm_copy_not_ready_\slot, @function
mcsafe_asm_copy_not_ready_\slot:
	.cfi_startproc
	mov	$\slot, %ecx
	jmp	mcsafe_asm_glue_first_use
	.cfi_endproc
	.size	mcsafe_asm_copy_not_ready_\slot, . - mcsafe_asm_copy_not_ready_\slot
.endm
	.text
	.p2align 4
	NOT_READY 0
	NOT_READY 1
	NOT_READY 2
	NOT_READY 3
	NOT_READY 4

	.pushsection .data.rel.mcsafe_dispatch, "aw"
	.balign 8
	.globl	mcsafe_asm_copy_strategies
	.hidden	mcsafe_asm_copy_strategies
mcsafe_asm_copy_strategies:			# fragile, rep_movsb, avx2, avx512
	.quad	mcsafe_asm_copy_not_ready_0
	.quad	mcsafe_asm_copy_not_ready_1
	.quad	mcsafe_asm_copy_not_ready_2
	.quad	mcsafe_asm_copy_not_ready_3
	.globl	mcsafe_asm_copy_current
	.hidden	mcsafe_asm_copy_current
mcsafe_asm_copy_current:			# slot 4
	.quad	mcsafe_asm_copy_not_ready_4
	.popsection

# ---- Size thresholds of the vector routines ----
# Set once by src/arch/x86_64/mod.rs (init) from CPUID before any routine is published;
# the defaults here never take a method that the CPU may lack.
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
mcsafe_asm_non_temporal_threshold:		# from this many bytes: non-temporal stores
	.quad	-1
	.popsection

# ---- Changing the asm ----
# - A new routine: a file asm/<name>.s with ROUTINE <name> ... END_ROUTINE <name>; add
#   it to the global_asm! list in src/arch/x86_64/routines.rs (after this file and any
#   file whose macros it uses) and an entry point there; a new Strategy also needs its slot in mcsafe_asm_copy_strategies
#   and in cpu.rs. Keep every access to the caller's memory inside a range and the
#   invariant above true at every instruction of it.
# - Then run: cargo test -p mcsafe-tests --test every_instruction (every instruction of
#   every range, real-machine-check-like injections, objdump coverage), --test sweep,
#   cargo xtask vm-test (real machine checks under QEMU), and cargo bench --bench
#   summary for speed.
