package store

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "moat.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("b", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on empty store: %v, want ErrNotFound", err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put("b", string(rune('a'+i)), []byte{byte(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _ := s.Count("b"); n != 8 {
		t.Fatalf("Count = %d, want 8", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Values survive a reopen.
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Get("b", "c")
	if err != nil || len(v) != 1 || v[0] != 2 {
		t.Fatalf("Get after reopen = %v, %v", v, err)
	}
	if err := s.Delete("b", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("b", "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.DropBucket("b"); err != nil {
		t.Fatal(err)
	}
	// A second opener times out with a clear error instead of hanging.
	if _, err := Open(path, 50*time.Millisecond); err == nil {
		t.Fatal("second Open of a held store succeeded")
	}
}

func TestDefaultDirs(t *testing.T) {
	t.Setenv("MOAT_HOME", "/srv/moat")
	d, err := DefaultDirs()
	if err != nil || d.Cache != "/srv/moat/cache" || d.State != "/srv/moat/state" {
		t.Fatalf("DefaultDirs with MOAT_HOME = %+v, %v", d, err)
	}
	t.Setenv("MOAT_HOME", "relative")
	if _, err := DefaultDirs(); err == nil {
		t.Fatal("relative MOAT_HOME accepted")
	}
	t.Setenv("MOAT_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/c")
	t.Setenv("XDG_STATE_HOME", "/s")
	d, err = DefaultDirs()
	if err != nil || d.Cache != "/c/moat" || d.State != "/s/moat" {
		t.Fatalf("DefaultDirs with XDG = %+v, %v", d, err)
	}
}

func TestUpdate(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "moat.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *Tx) error {
		if err := tx.Insert("names", "web", []byte("1")); err != nil {
			return err
		}
		return tx.Put("ctrs", "1", []byte("record"))
	}); err != nil {
		t.Fatal(err)
	}
	// A second insert of the key fails, and the whole transaction with it.
	err = s.Update(func(tx *Tx) error {
		if err := tx.Put("ctrs", "2", []byte("other")); err != nil {
			return err
		}
		return tx.Insert("names", "web", []byte("2"))
	})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Insert: %v, want ErrExists", err)
	}
	if _, err := s.Get("ctrs", "2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled-back Put is visible: %v", err)
	}
	var keys []string
	if err := s.ForEach("ctrs", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "1=record" {
		t.Fatalf("ForEach = %v", keys)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Delete("names", "web") }); err != nil {
		t.Fatal(err)
	}
	if err := s.ForEach("missing", func(string, []byte) error { return errors.New("called") }); err != nil {
		t.Fatalf("ForEach on a missing bucket: %v", err)
	}
}
