# mcsafe: the way into the copy routines. The argument check every copy routine
# starts with and its three refusals, the dispatch word copy_mc calls through, its
# not-ready stub, the exits of the Rust and C API copies, the words of the C API's
# direct entries, and the size thresholds of the vector routines. Assembled after routine.s (src/arch/x86_64/routines.rs).
#
# Change it, then run `cargo test -p mcsafe --lib`, `cargo test -p mcsafe-tests
# --test api --test every_instruction`, `cargo test -p mcsafe-capi` and `cargo bench
# --bench summary -- --quick`.

# ---- The argument check of every copy routine ----
# Refuses, before any access, what copy_mc refuses (src/copy.rs `ranges_are_bad` is
# the same rule in Rust): with len > 0, a null pointer, a pointer or a length at or
# above 2^61 (user space ends below 2^57; so every accepted range ends at or below
# 2^62 and none wraps), or overlapping ranges. 11 instructions, two not-taken
# branches; clobbers rax and rcx. len 0 with any pointers goes to the refusal, which
# finds it fine. `name` is the routine's: its convention picks the refusal.
.macro CHECK_COPY_ARGUMENTS name
	.if .L\name\()_convention == CONV_C_COPY
	.set	.L\name\()_refused, mcsafe_asm_c_copy_refused
	.elseif .L\name\()_convention == CONV_RUST_COPY
	.set	.L\name\()_refused, mcsafe_asm_rust_copy_refused
	.else
	.set	.L\name\()_refused, mcsafe_asm_copy_refused
	.endif
	lea	-1(%rdi), %rax				# null becomes all ones
	lea	-1(%rsi), %rcx
	or	%rcx, %rax
	or	%rdx, %rax
	shr	$61, %rax
	jnz	.L\name\()_refused
	lea	-1(%rdi,%rdx), %rax			# overlap: dst - src + len - 1
	sub	%rsi, %rax				#   < 2 len - 1, unsigned
	lea	-1(%rdx,%rdx), %rcx
	cmp	%rcx, %rax
	jb	.L\name\()_refused
.endm

# The register-mode refusal: STATUS_BAD_ARGUMENTS (0 for len 0) with the arguments
# handed back as after a fault. Not in any range: touches no memory.
	.text
	.p2align 4
	.type	mcsafe_asm_copy_refused, @function
mcsafe_asm_copy_refused:
	.cfi_startproc
	xor	%eax, %eax
	test	%rdx, %rdx				# len 0: nothing to copy, nothing wrong
	jz	1f
	movabs	$STATUS_BAD_ARGUMENTS, %rax
1:	mov	%rdi, %r8
	mov	%rsi, %r9
	mov	%rdx, %r10
	mov	%rdx, %rcx
	lea	mcsafe_asm_copy_refused(%rip), %rdx
	ret
	.cfi_endproc
	.size	mcsafe_asm_copy_refused, . - mcsafe_asm_copy_refused

# The Rust refusal: Ok (rax = 0) for len 0, else the Rust side's panic that names
# the ranges (a tail jump: the panic unwinds into the copy's caller).
	.text
	.p2align 4
	.type	mcsafe_asm_rust_copy_refused, @function
mcsafe_asm_rust_copy_refused:
	.cfi_startproc
	xor	%eax, %eax
	test	%rdx, %rdx
	jnz	mcsafe_asm_glue_refused
	ret
	.cfi_endproc
	.size	mcsafe_asm_rust_copy_refused, . - mcsafe_asm_rust_copy_refused

# The C API refusal: 0 for len 0, else -EINVAL (22 on Linux).
	.text
	.p2align 4
	.type	mcsafe_asm_c_copy_refused, @function
mcsafe_asm_c_copy_refused:
	.cfi_startproc
	xor	%eax, %eax
	test	%rdx, %rdx
	jz	1f
	mov	$-22, %eax
1:	ret
	.cfi_endproc
	.size	mcsafe_asm_c_copy_refused, . - mcsafe_asm_c_copy_refused

# ---- Dispatch ----
# The routine copy_mc calls (one indirect call through mcsafe_asm_copy_current):
# the current strategy's Rust copy. Until src/arch/x86_64/mod.rs (init) sets it,
# after installing the handler and the thresholds, it points at the not-ready
# stub, which hands the call to the Rust side: install, then copy. No "ready?"
# test on the hot path.
	.text
	.p2align 4
	.globl	mcsafe_asm_copy_not_ready
	.hidden	mcsafe_asm_copy_not_ready
	.type	mcsafe_asm_copy_not_ready, @function
mcsafe_asm_copy_not_ready:
	.cfi_startproc
	jmp	mcsafe_asm_glue_first_use		# the arguments as they came
	.cfi_endproc
	.size	mcsafe_asm_copy_not_ready, . - mcsafe_asm_copy_not_ready

	.pushsection .data.rel.mcsafe_dispatch, "aw"
	.balign 8
	.globl	mcsafe_asm_copy_current
	.hidden	mcsafe_asm_copy_current
mcsafe_asm_copy_current:
	.quad	mcsafe_asm_copy_not_ready
	.popsection

# ---- The exits of the Rust and C API copies ----
# Their fixups come here with the register-mode outputs, which this hands to the
# Rust side as one frame (src/arch/x86_64/routines.rs, Exit, in this order): the
# careful forward step with the register-mode twin, then the Result (Rust) or what
# libmcsafe's sink makes of it (C API). The CFI follows the frame, so a panic of
# the Rust side (a bug) unwinds through it and a debugger's backtrace stays whole.
.macro STOPPED_FRAME glue
	sub	$56, %rsp				# 16-byte aligned for the call
	.cfi_adjust_cfa_offset 56
	mov	%rax, (%rsp)				# fault word
	mov	%rcx, 8(%rsp)				# bytes not done
	mov	%r11, 16(%rsp)				# si_addr
	mov	%rdx, 24(%rsp)				# the routine
	mov	%r8, 32(%rsp)				# dst
	mov	%r9, 40(%rsp)				# src
	mov	%r10, 48(%rsp)				# len
	mov	%rsp, %rdi
	call	\glue
	add	$56, %rsp
	.cfi_adjust_cfa_offset -56
	ret
.endm

# The Rust exit: RawResult in rax:rdx.
	.text
	.p2align 4
	.type	mcsafe_asm_rust_copy_stopped, @function
mcsafe_asm_rust_copy_stopped:
	.cfi_startproc
	STOPPED_FRAME mcsafe_asm_glue_rust_copy_stopped
	.cfi_endproc
	.size	mcsafe_asm_rust_copy_stopped, . - mcsafe_asm_rust_copy_stopped

# ---- C API ----
# The C API routines (CONV_C_COPY: c_copy_<strategy>) are what libmcsafe's
# mcsafe_copy reaches: through their direct entry (routine.s, C_COPY_IF_PUBLISHED),
# to which the IFUNC mcsafe_copy resolves, or through the C library's dispatch
# word: 0 or -EINVAL come back from the routine itself. After a fault their fixup comes here: the frame above,
# and the context the routine kept below its return address, go to the Rust side,
# and its int comes back.
	.text
	.p2align 4
	.type	mcsafe_asm_c_copy_stopped, @function
mcsafe_asm_c_copy_stopped:
	.cfi_startproc
	mov	-8(%rsp), %rsi				# the context (second argument)
	STOPPED_FRAME mcsafe_asm_glue_c_copy_stopped
	.cfi_endproc
	.size	mcsafe_asm_c_copy_stopped, . - mcsafe_asm_c_copy_stopped

# The C API routine published (its entry; 0 until src/arch/x86_64/c_api.rs
# publishes it, after installation): the one whose direct entry goes straight in.
	.pushsection .data.mcsafe_c_published, "aw"
	.balign 8
	.globl	mcsafe_asm_c_copy_published
	.hidden	mcsafe_asm_c_copy_published
mcsafe_asm_c_copy_published:
	.quad	0
# Where a direct entry goes when its routine is not the published one: the C
# library's dispatch, registered by its IFUNC resolver before any direct entry is
# handed out (mcsafe::c_api::resolve); until then a stand-in that returns
# -ENOTRECOVERABLE (a direct entry reached without the resolver: a bug).
	.globl	mcsafe_asm_c_copy_dispatch
	.hidden	mcsafe_asm_c_copy_dispatch
mcsafe_asm_c_copy_dispatch:
	.quad	mcsafe_asm_c_copy_unregistered
	.popsection

	.text
	.p2align 4
	.type	mcsafe_asm_c_copy_unpublished, @function
mcsafe_asm_c_copy_unpublished:
	.cfi_startproc
	jmp	*mcsafe_asm_c_copy_dispatch(%rip)	# the arguments as they came
	.cfi_endproc
	.size	mcsafe_asm_c_copy_unpublished, . - mcsafe_asm_c_copy_unpublished

	.text
	.p2align 4
	.type	mcsafe_asm_c_copy_unregistered, @function
mcsafe_asm_c_copy_unregistered:
	.cfi_startproc
	mov	$-131, %eax				# -ENOTRECOVERABLE
	ret
	.cfi_endproc
	.size	mcsafe_asm_c_copy_unregistered, . - mcsafe_asm_c_copy_unregistered

# ---- Size thresholds of the vector routines ----
# Set once by src/arch/x86_64/mod.rs (init) before any routine is published; read
# once per call above the size classes. The defaults here never take a method that
# the CPU may lack.
.macro THRESHOLD name
	.globl	mcsafe_asm_\name\()_threshold
	.hidden	mcsafe_asm_\name\()_threshold
mcsafe_asm_\name\()_threshold:
	.quad	-1
.endm
	.pushsection .data.mcsafe_thresholds, "aw"
	.balign 8
	THRESHOLD avx2_rep_movsb			# from this many bytes, copy_avx2: rep movsb
	THRESHOLD avx512_rep_movsb			# the same for copy_avx512
	THRESHOLD rep_movsb_stop			# ... up to this many (then the loop)
	THRESHOLD non_temporal				# from this many bytes: non-temporal stores
# The shape of the avx512 routine's non-temporal loop: 1 for page streams and
# prefetches, 0 for the plain loop (copy_vector.s, NON_TEMPORAL_AVX512).
	.globl	mcsafe_asm_avx512_page_streams
	.hidden	mcsafe_asm_avx512_page_streams
mcsafe_asm_avx512_page_streams:
	.quad	1
	.popsection
