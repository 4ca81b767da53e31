//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "qemuinit: the init of a Linux test guest; scripts/qemu-test runs it")
	os.Exit(2)
}
