//go:build linux

#include "textflag.h"

// func getg() unsafe.Pointer
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVD	g, R0
	MOVD	R0, ret+0(FP)
	RET

// func curTID() uint32
// g.m.procid at the offsets discovery verified (gmOffset is 48), or a
// gettid system call while procidOff is 0 (not verified, or revoked).
TEXT ·curTID(SB),NOSPLIT,$0-4
	MOVD	·procidOff(SB), R1
	CBZ	R1, slow
	MOVD	48(g), R0
	MOVWU	(R0)(R1), R0
	MOVW	R0, ret+0(FP)
	RET
slow:
	MOVD	$178, R8 // SYS_gettid
	SVC
	MOVW	R0, ret+0(FP)
	RET

// func LookupFast() *Thread
// Lookup's flat-array path in one call: the TID from g.m.procid, the
// record at flat + tid*128, valid if its sentinel word (offset 32) holds
// the TID. nil when any step does not apply; the caller then takes the
// slow path. flatLen is loaded with acquire, ordering the load of flat
// after it (they are published in that order). Offsets are checked against
// the Go types in tid_asm.go.
TEXT ·LookupFast(SB),NOSPLIT,$0-8
	MOVD	·procidOff(SB), R1
	CBZ	R1, miss
	MOVD	48(g), R0
	MOVWU	(R0)(R1), R0
	MOVD	$·flatLen(SB), R2
	LDARW	(R2), R2
	CMP	R2, R0
	BHS	miss
	MOVD	·flat(SB), R3
	ADD	R0<<7, R3, R3
	MOVD	32(R3), R4
	CMP	R4, R0
	BNE	miss
	MOVD	R3, ret+0(FP)
	RET
miss:
	MOVD	ZR, ret+0(FP)
	RET
