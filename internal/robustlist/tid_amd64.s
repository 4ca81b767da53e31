//go:build linux

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

// func LookupFast() *Thread
// Lookup's flat-array path in one call: the TID from g.m.procid, the
// record at flat + tid*128, valid if its sentinel word (offset 32) holds
// the TID. nil when any step does not apply; the caller then takes the
// slow path. Offsets are checked against the Go types in tid_asm.go.
TEXT ·LookupFast(SB),NOSPLIT,$0-8
	MOVQ	·procidOff(SB), CX
	TESTQ	CX, CX
	JZ	miss
	MOVQ	(TLS), AX
	MOVQ	48(AX), AX
	MOVL	(AX)(CX*1), AX
	MOVL	·flatLen(SB), DX
	CMPQ	AX, DX
	JAE	miss
	MOVQ	AX, DX
	SHLQ	$7, DX
	ADDQ	·flat(SB), DX
	CMPQ	32(DX), AX
	JNE	miss
	MOVQ	DX, ret+0(FP)
	RET
miss:
	MOVQ	$0, ret+0(FP)
	RET
