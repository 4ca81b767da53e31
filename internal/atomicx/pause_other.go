//go:build !amd64 && !arm64

package atomicx

func pause() {}
