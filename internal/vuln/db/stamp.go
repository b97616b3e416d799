package db

import (
	"fmt"
	"os"
	"path/filepath"
)

// The page check (checkPages) reads every page of the file, which is more than a scan reads.
// Open therefore records, beside the live database, the identity of the file it last checked:
// device, inode, size, modification and change times. A file with the same identity is not
// checked again. Any change to the file, a copy of it, or a restored cache has a new change
// time or inode, and is checked in full before bbolt reads it. OpenFile, used for files from
// elsewhere, checks every time.
const stampSuffix = ".checked"

// stamped reports whether the stamp at stampPath names the file fi.
func stamped(stampPath string, fi os.FileInfo) bool {
	id, ok := fileIdentity(fi)
	if !ok {
		return false
	}
	b, err := os.ReadFile(stampPath)
	return err == nil && string(b) == id
}

// writeStamp records fi as checked, replacing the stamp atomically. It is best effort: a
// read-only directory only means the next Open checks again.
func writeStamp(stampPath string, fi os.FileInfo) {
	id, ok := fileIdentity(fi)
	if !ok {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(stampPath), filepath.Base(stampPath)+".new-*")
	if err != nil {
		return
	}
	_, werr := f.WriteString(id)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), stampPath) != nil {
		os.Remove(f.Name())
	}
}

func formatIdentity(dev, ino uint64, size, mtime, ctime int64) string {
	return fmt.Sprintf("moat-db-checked dev=%d ino=%d size=%d mtime=%d ctime=%d\n", dev, ino, size, mtime, ctime)
}
