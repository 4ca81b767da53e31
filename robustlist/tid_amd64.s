#include "textflag.h"

// func getg() unsafe.Pointer
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVQ	(TLS), AX
	MOVQ	AX, ret+0(FP)
	RET

// func curTID() uint32
// g.m.procid at the offsets discovery verified (gmOffset is 48), or a
// gettid system call while procidOff is 0 (not verified, or revoked).
TEXT ·curTID(SB),NOSPLIT,$0-4
	MOVQ	·procidOff(SB), CX
	TESTQ	CX, CX
	JZ	slow
	MOVQ	(TLS), AX
	MOVQ	48(AX), AX
	MOVL	(AX)(CX*1), AX
	MOVL	AX, ret+0(FP)
	RET
slow:
	MOVL	$186, AX // SYS_gettid
	SYSCALL
	MOVL	AX, ret+0(FP)
	RET
