package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrBusy is returned when another update of the same database is running.
var ErrBusy = errors.New("another update of the advisory database is running")

// lockName is the lock file that serialises updates of a directory. It holds the pid of the
// process that has it locked.
const lockName = "update.lock"

type dirLock struct{ f *os.File }

// lockDir takes the update lock of dir, waiting up to wait for another update to finish.
func lockDir(ctx context.Context, dir string, wait time.Duration) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the advisory database: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking the advisory database: %s: %w", path, err)
		}
		if ok {
			// The pid is for the message another update shows; the lock is the flock.
			if f.Truncate(0) == nil {
				f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			return &dirLock{f: f}, nil
		}
		if !time.Now().Before(deadline) {
			holder := holderPID(f)
			f.Close()
			return nil, fmt.Errorf("updating the advisory database in %s: %w (%s)", dir, ErrBusy, holder)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another update of the advisory database: %w", ctx.Err())
		case <-time.After(min(50*time.Millisecond, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// holderPID reads the pid the lock's holder wrote, which it does just after taking the lock.
func holderPID(f *os.File) string {
	for range 5 {
		var b [32]byte
		n, _ := f.ReadAt(b[:], 0)
		if pid := strings.TrimSpace(string(b[:n])); pid != "" {
			return "pid " + pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "pid unknown"
}

func (l *dirLock) unlock() {
	unlockFile(l.f)
	l.f.Close()
}
