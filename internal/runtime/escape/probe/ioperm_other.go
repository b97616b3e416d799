//go:build linux && !(amd64 || 386)

package main

func checkIoperm(*probe) outcome { return blocked("no I/O ports on this architecture") }
