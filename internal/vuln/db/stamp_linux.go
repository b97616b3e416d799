package db

import (
	"os"
	"syscall"
)

// fileIdentity names fi by device, inode, size and times; ok is false where the platform does
// not say.
func fileIdentity(fi os.FileInfo) (string, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return formatIdentity(st.Dev, st.Ino, st.Size, fi.ModTime().UnixNano(), st.Ctim.Nano()), true
}
