package db

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Verify reads every advisory and index entry of the database file at path and checks that
// they agree with each other and with its status: the check a file from elsewhere (`moat db
// pull`) must pass before it is installed. It returns the file's status, or an error wrapping
// ErrCorrupt, ErrSchema or ErrNoDatabase.
func Verify(ctx context.Context, path string) (Status, error) {
	d, err := OpenFile(path)
	if err != nil {
		return Status{}, err
	}
	defer d.Close()
	if err := d.verify(ctx); err != nil {
		return Status{}, fmt.Errorf("verifying advisory database %s: %w", path, err)
	}
	return d.Status(), nil
}

func (d *DB) verify(ctx context.Context) error {
	return d.view(func(tx *bolt.Tx) error {
		listed := map[string]bool{}
		for _, s := range d.status.Sources {
			listed[sourcePrefix+s.Name] = true
			if err := verifySource(ctx, tx, s); err != nil {
				return fmt.Errorf("source %q: %w", s.Name, err)
			}
		}
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if n := string(name); n != string(bucketMeta) && !listed[n] {
				return fmt.Errorf("%w: bucket %q is not a listed source", ErrCorrupt, name)
			}
			return nil
		})
	})
}

func verifySource(ctx context.Context, tx *bolt.Tx, s SourceStatus) error {
	idx, adv, err := sourceBuckets(tx, s.Name)
	if err != nil {
		return err
	}
	n := 0
	c := adv.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if v == nil {
			return fmt.Errorf("%w: a bucket among the advisories", ErrCorrupt)
		}
		if err := checkID(string(k)); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if _, err := decodeAdvisory(adv, string(k), s.Name); err != nil {
			return err
		}
	}
	if n != s.Records {
		return fmt.Errorf("%w: %d advisories stored, the status says %d", ErrCorrupt, n, s.Records)
	}
	c = idx.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		eco, _, ok := bytes.Cut(k, []byte{0})
		if !ok || len(eco) == 0 {
			return fmt.Errorf("%w: index key %q has no ecosystem", ErrCorrupt, k)
		}
		if _, ok := s.Ecosystems[string(eco)]; !ok {
			return fmt.Errorf("%w: index key %q: ecosystem not in the status", ErrCorrupt, k)
		}
		if v == nil {
			return fmt.Errorf("%w: a bucket in the index", ErrCorrupt)
		}
		ids, err := decodeIDs(v)
		if err != nil {
			return fmt.Errorf("index key %q: %w", k, err)
		}
		for _, id := range ids {
			if adv.Get([]byte(id)) == nil {
				return fmt.Errorf("%w: index key %q names advisory %q, which is not stored", ErrCorrupt, k, id)
			}
		}
	}
	return nil
}

// Install verifies the database file at path (see Verify) and makes it the database in dir,
// replacing the current one atomically under the update lock: `moat db pull`. The file is
// moved, or copied when it is on another file system: path is gone when Install succeeds, and
// left in place when it fails.
func Install(ctx context.Context, dir, path string, opts UpdateOptions) (Status, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Status{}, fmt.Errorf("installing the advisory database: %w", err)
	}
	l, err := lockDir(ctx, dir, opts.LockWait)
	if err != nil {
		return Status{}, err
	}
	defer l.unlock()
	log := logger(opts.Logger)
	removeLeftovers(dir, log)
	st, err := Verify(ctx, path)
	if err != nil {
		return Status{}, fmt.Errorf("installing the advisory database: %w", err)
	}
	tmp, moved, err := placeBeside(path, dir)
	if err != nil {
		return Status{}, fmt.Errorf("installing the advisory database: %w", err)
	}
	if err := install(tmp, dir, log); err != nil {
		if !moved || os.Rename(tmp, path) != nil {
			os.Remove(tmp)
		}
		return Status{}, err
	}
	if !moved {
		os.Remove(path)
	}
	st.Path = filepath.Join(dir, FileName)
	log.Info("advisory database installed", "path", st.Path, "from", path, "records", st.Records())
	return st, nil
}

// placeBeside puts the file at path into dir under a temporary name, moving it when it can
// and copying it (and syncing the copy) otherwise.
func placeBeside(path, dir string) (tmp string, moved bool, err error) {
	f, err := os.CreateTemp(dir, FileName+".new-*")
	if err != nil {
		return "", false, err
	}
	tmp = f.Name()
	if err := os.Rename(path, tmp); err == nil {
		f.Close()
		if err := syncFile(tmp); err != nil {
			os.Rename(tmp, path)
			return "", false, err
		}
		return tmp, true, nil
	}
	src, err := os.Open(path)
	if err == nil {
		_, err = io.Copy(f, src)
		src.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", false, fmt.Errorf("copying %s into %s: %w", path, dir, err)
	}
	return tmp, false, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
