//go:build !cgo

package robustlist_test

const cgoBuild = false
