package atomicx

import (
	"errors"
	"testing"
	"unsafe"
)

func TestViewsCheckRangeAndAlignment(t *testing.T) {
	buf := make([]uint64, 4) // 8-byte aligned backing
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 32)
	for _, c := range []struct {
		off  int
		want error
	}{
		{0, nil}, {8, nil}, {24, nil}, {4, ErrAlign}, {28, ErrRange}, {32, ErrRange}, {-8, ErrRange}, {33, ErrRange},
	} {
		_, err := Uint64(mem, c.off)
		if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
			t.Errorf("Uint64(mem, %d) = %v, want %v", c.off, err, c.want)
		}
	}
	p, err := Uint32(mem, 28)
	if err != nil {
		t.Fatal(err)
	}
	*p = 7
	if mem[28] != 7 {
		t.Fatal("view does not alias the memory")
	}
	if _, err := Ptr(mem, 0, 0, 1); !errors.Is(err, ErrRange) {
		t.Fatalf("empty view accepted: %v", err)
	}
}
