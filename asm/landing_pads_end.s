# Assembled last: closes the landing-pad table opened in landing_pads.s.
	.pushsection .rodata.mcsafe_landing_pads, "a"
	.globl	mcsafe_asm_landing_pads_end
	.hidden	mcsafe_asm_landing_pads_end
mcsafe_asm_landing_pads_end:
	.popsection
