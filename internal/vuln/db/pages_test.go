package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltFile writes a bbolt file whose bucket "b" is large enough to need branch pages and whose
// bucket "small" is inline, and returns its bytes and page size.
func boltFile(t *testing.T) ([]byte, int) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.db")
	b, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		big, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 3000 {
			if err := big.Put(fmt.Appendf(nil, "key-%05d", i), bytes.Repeat([]byte{'v'}, 64)); err != nil {
				return err
			}
		}
		small, err := tx.CreateBucket([]byte("small"))
		if err != nil {
			return err
		}
		return small.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	ps := b.Info().PageSize
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data, ps
}

// usedMeta returns the meta page bbolt reads: the valid one with the higher transaction ID.
func usedMeta(t *testing.T, data []byte) meta {
	t.Helper()
	m0, err := parseMeta(data[pageHeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	m1, err := parseMeta(data[int(m0.pageSize)+pageHeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if m1.txid > m0.txid {
		return m1
	}
	return m0
}

// pagesWith returns the IDs of the pages with these flags.
func pagesWith(data []byte, ps int, flags uint16) []uint64 {
	var out []uint64
	for id := 2; (id+1)*ps <= len(data); id++ {
		p := data[id*ps:]
		if binary.LittleEndian.Uint64(p) == uint64(id) && binary.LittleEndian.Uint16(p[8:]) == flags {
			out = append(out, uint64(id))
		}
	}
	return out
}

func TestCheckPages(t *testing.T) {
	data, ps := boltFile(t)
	if err := checkPages(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("a sound file: %v", err)
	}
	le := binary.LittleEndian
	branches := pagesWith(data, ps, flagBranch)
	if len(branches) == 0 {
		t.Fatal("the test file has no branch page")
	}
	br := int(branches[0]) * ps
	leaf := int(le.Uint64(data[br+pageHeaderSize+8:])) * ps // a child of the branch
	for le.Uint16(data[leaf+8:]) == flagBranch {
		leaf = int(le.Uint64(data[leaf+pageHeaderSize+8:])) * ps
	}
	used := int(usedMeta(t, data).pgid)
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"a branch that points to itself", func(b []byte) []byte {
			le.PutUint64(b[br+pageHeaderSize+8:], branches[0])
			return b
		}, "reached twice"},
		{"two branch elements with one child", func(b []byte) []byte {
			copy(b[br+pageHeaderSize+elementSize+8:br+pageHeaderSize+elementSize+16], b[br+pageHeaderSize+8:br+pageHeaderSize+16])
			return b
		}, "reached twice"},
		{"a child past the end", func(b []byte) []byte {
			le.PutUint64(b[br+pageHeaderSize+8:], 1<<40)
			return b
		}, "outside the file"},
		{"a child in the meta pages", func(b []byte) []byte {
			le.PutUint64(b[br+pageHeaderSize+8:], 1)
			return b
		}, "outside the file"},
		{"an empty branch", func(b []byte) []byte {
			le.PutUint16(b[br+10:], 0)
			return b
		}, "empty branch"},
		{"a key outside its page", func(b []byte) []byte {
			le.PutUint32(b[br+pageHeaderSize:], uint32(ps))
			return b
		}, "outside the page"},
		{"unsorted keys", func(b []byte) []byte {
			e := br + pageHeaderSize + elementSize
			pos := int(le.Uint32(b[e:]))
			b[e+pos] = 0
			return b
		}, "out of order"},
		{"an unknown page type", func(b []byte) []byte {
			le.PutUint16(b[br+8:], 0x40)
			return b
		}, "neither a branch nor a leaf"},
		{"a page that is another", func(b []byte) []byte {
			le.PutUint64(b[br:], 99)
			return b
		}, "says it is page 99"},
		{"overflow past the end", func(b []byte) []byte {
			le.PutUint32(b[br+12:], 1<<20)
			return b
		}, "runs past"},
		{"an element with unknown flags", func(b []byte) []byte {
			le.PutUint32(b[leaf+pageHeaderSize:], 0x80)
			return b
		}, "flags"},
		{"truncated", func(b []byte) []byte { return b[:(used-1)*ps] }, "truncated"},
		{"not bbolt", func(b []byte) []byte {
			copy(b[pageHeaderSize:], "nope")
			return b
		}, "magic"},
		{"a meta page's checksum", func(b []byte) []byte {
			b[ps+pageHeaderSize+40]++
			return b
		}, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.damage(bytes.Clone(data))
			err := checkPages(bytes.NewReader(b), int64(len(b)))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrCorrupt containing %q", err, tc.want)
			}
		})
	}
}

// TestOpenStamp checks that Open records the file it checked, and that a changed file is
// checked again.
func TestOpenStamp(t *testing.T) {
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{})
	live := filepath.Join(dir, FileName)
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	stamp, err := os.ReadFile(live + stampSuffix)
	if err != nil {
		t.Fatalf("no stamp after Open: %v", err)
	}
	if !strings.HasPrefix(string(stamp), "moat-db-checked ") {
		t.Errorf("stamp %q", stamp)
	}
	// Damage the file in place, as a restored cache or another program might: the stamp no
	// longer names it, so Open checks it again and refuses it.
	data, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	m := usedMeta(t, data)
	binary.LittleEndian.PutUint16(data[int(m.root)*int(m.pageSize)+8:], 0x40)
	if err := os.WriteFile(live, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			d.Close()
		}
		t.Errorf("Open of a file damaged after its stamp: %v", err)
	}
}

// TestVerifyCycle damages a real database so that a branch page of an advisory bucket names
// itself as its child. bbolt would descend into it for ever; Verify must refuse the file.
func TestVerifyCycle(t *testing.T) {
	slow(t)
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: sharedZip(t, "Go")}}, UpdateOptions{})
	live := filepath.Join(dir, FileName)
	data, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(usedMeta(t, data).pageSize)
	branches := pagesWith(data, ps, flagBranch)
	if len(branches) == 0 {
		t.Fatal("the database has no branch page")
	}
	for _, id := range branches {
		binary.LittleEndian.PutUint64(data[int(id)*ps+pageHeaderSize+8:], id)
	}
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Verify(context.Background(), p)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "reached twice") {
			t.Errorf("Verify: %v, want ErrCorrupt naming a page reached twice", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Verify did not return")
	}
}
