#include "textflag.h"

// func pause()
TEXT ·pause(SB),NOSPLIT|NOFRAME,$0-0
	YIELD
	RET
