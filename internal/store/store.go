// Package store is moat's embedded database: one bbolt file under moat's own directory holding
// caches now, and state and logs later. Values are opaque bytes grouped in named buckets.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moatsec/moat/internal/env"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned by Get for a key that is not stored.
var ErrNotFound = errors.New("not found")

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

// Dirs are the directories moat keeps its data in.
type Dirs struct {
	// Cache holds data that can be rebuilt (layer inventories, temporary spill files).
	Cache string
	// State holds data that must survive (container state, logs) in later versions.
	State string
}

// DefaultDirs returns moat's directories: $MOAT_HOME/{cache,state} when MOAT_HOME is set,
// otherwise $XDG_CACHE_HOME/moat and $XDG_STATE_HOME/moat with the XDG defaults.
func DefaultDirs() (Dirs, error) {
	if h := env.Home.Get(); h != "" {
		if !filepath.IsAbs(h) {
			return Dirs{}, fmt.Errorf("%s=%q must be an absolute path", env.Home.Name, h)
		}
		return Dirs{Cache: filepath.Join(h, "cache"), State: filepath.Join(h, "state")}, nil
	}
	home, herr := os.UserHomeDir()
	base := func(v env.Variable, def string) (string, error) {
		if d := v.Get(); filepath.IsAbs(d) {
			return d, nil
		}
		if herr != nil {
			return "", fmt.Errorf("finding the home directory (set %s): %w", env.Home.Name, herr)
		}
		return filepath.Join(home, def), nil
	}
	c, err := base(env.XDGCacheHome, ".cache")
	if err != nil {
		return Dirs{}, err
	}
	s, err := base(env.XDGStateHome, filepath.Join(".local", "state"))
	if err != nil {
		return Dirs{}, err
	}
	return Dirs{Cache: filepath.Join(c, "moat"), State: filepath.Join(s, "moat")}, nil
}

// Open opens (creating if needed) the database file at path. A second process opening the same
// file waits up to timeout for the first to close it.
func Open(path string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("opening store %s: another moat process holds it: %w", path, err)
		}
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Get returns a copy of the value of key in bucket, or ErrNotFound.
func (s *Store) Get(bucket, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("reading %s/%s: %w", bucket, key, err)
	}
	return out, err
}

// Put stores value under key in bucket, creating the bucket.
func (s *Store) Put(bucket, key string, value []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("writing %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Delete removes key from bucket; a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("deleting %s/%s: %w", bucket, key, err)
	}
	return nil
}

// DropBucket removes a bucket and everything in it.
func (s *Store) DropBucket(bucket string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		err := tx.DeleteBucket([]byte(bucket))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("dropping %s: %w", bucket, err)
	}
	return nil
}

// Count returns the number of keys in bucket.
func (s *Store) Count(bucket string) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n, err
}

// ErrExists is returned by Tx.Insert for a key that is already stored.
var ErrExists = errors.New("already exists")

// Tx is one read-write transaction: every change made through it lands together or not at
// all.
type Tx struct{ tx *bolt.Tx }

// Update runs fn in a read-write transaction, committed when fn returns nil and rolled back
// when it returns an error, which Update returns unchanged.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// Get returns a copy of the value of key in bucket, or ErrNotFound.
func (t *Tx) Get(bucket, key string) ([]byte, error) {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, ErrNotFound
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

// Put stores value under key in bucket, creating the bucket.
func (t *Tx) Put(bucket, key string, value []byte) error {
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("writing %s/%s: %w", bucket, key, err)
	}
	return b.Put([]byte(key), value)
}

// Insert stores value under key in bucket unless the key is there already (ErrExists).
func (t *Tx) Insert(bucket, key string, value []byte) error {
	if _, err := t.Get(bucket, key); err == nil {
		return fmt.Errorf("%s/%s: %w", bucket, key, ErrExists)
	}
	return t.Put(bucket, key, value)
}

// Delete removes key from bucket; a missing key is not an error.
func (t *Tx) Delete(bucket, key string) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

// ForEach calls fn with every key and value of bucket, in key order, as Store.ForEach does,
// inside the transaction.
func (t *Tx) ForEach(bucket string, fn func(key string, value []byte) error) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

// ForEach calls fn with every key and value of bucket, in key order; the value is valid only
// during the call. An error from fn stops the walk and is returned.
func (s *Store) ForEach(bucket string, fn func(key string, value []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}
