//go:build linux && !cgo

package robustlist_test

const cgoBuild = false
