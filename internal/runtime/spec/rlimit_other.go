//go:build !unix

package spec

func ownNofileHard() uint64 { return nofileHard }
