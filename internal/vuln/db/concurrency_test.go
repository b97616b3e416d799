package db

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadersDuringUpdate reads the database while an update replaces it: a reader opened
// before keeps its data, readers opened during get the old or the new data, never an error.
func TestReadersDuringUpdate(t *testing.T) {
	slow(t)
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: sharedZip(t, "Go")}}, UpdateOptions{})
	before := mustOpen(t, dir)
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups, opens, sawNew atomic.Int64
	errs := make(chan error, 100)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			as, err := before.Lookup(ctx, "Go", "golang.org/x/text")
			if err != nil || len(as) == 0 {
				errs <- errors.Join(err, errors.New("the open reader lost its data"))
				return
			}
			lookups.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, err := Open(dir)
			if err != nil {
				errs <- err
				return
			}
			ids, err := d.Lookup(ctx, "Go", "golang.org/x/text")
			if err != nil || len(ids) == 0 {
				errs <- errors.Join(err, errors.New("a new reader found nothing"))
			}
			if _, ok := d.Status().Source("PyPI"); ok {
				sawNew.Add(1)
			}
			d.Close()
			opens.Add(1)
			time.Sleep(time.Millisecond)
		}
	})
	// Let the readers run before, during and after the swap.
	time.Sleep(50 * time.Millisecond)
	mustUpdate(t, dir, []Input{{Path: sharedZip(t, "Go")}, {Path: sharedZip(t, "PyPI")}}, UpdateOptions{})
	deadline := time.Now().Add(10 * time.Second)
	for sawNew.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if lookups.Load() == 0 || opens.Load() == 0 || sawNew.Load() == 0 {
		t.Errorf("lookups %d, opens %d, opens that saw the new data %d", lookups.Load(), opens.Load(), sawNew.Load())
	}
	t.Logf("%d lookups on the old reader, %d opens during the update", lookups.Load(), opens.Load())

	if _, ok := before.Status().Source("PyPI"); ok {
		t.Error("the reader opened before the update sees its sources")
	}
	if ids := lookupIDs(t, before, "PyPI", "requests"); len(ids) != 0 {
		t.Errorf("the old reader found new data: %v", ids)
	}
	after := mustOpen(t, dir)
	if ids := lookupIDs(t, after, "PyPI", "requests"); len(ids) == 0 {
		t.Error("a reader opened after the update does not see it")
	}
}

// TestConcurrentUpdates runs updates at the same time: without a wait one of two fails with
// ErrBusy and a message naming the holder, with a wait both succeed; the file is always whole.
func TestConcurrentUpdates(t *testing.T) {
	slow(t)
	for _, wait := range []time.Duration{0, time.Minute} {
		dir := t.TempDir()
		mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "Alpine")}}, UpdateOptions{})
		inputs := [][]Input{{{Path: sharedZip(t, "Go")}}, {{Path: sharedZip(t, "PyPI")}}, {{Path: filepath.Join(fixtures, "npm")}}}
		errs := make([]error, len(inputs))
		var wg sync.WaitGroup
		for i, in := range inputs {
			wg.Go(func() {
				_, errs[i] = Update(context.Background(), dir, in, UpdateOptions{LockWait: wait})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case wait == 0 && errors.Is(err, ErrBusy) && strings.Contains(err.Error(), "(pid "):
			default:
				t.Errorf("wait %v: %v", wait, err)
			}
		}
		if ok == 0 || (wait > 0 && ok != len(inputs)) {
			t.Errorf("wait %v: %d of %d updates succeeded: %v", wait, ok, len(inputs), errs)
		}
		st, err := Verify(context.Background(), filepath.Join(dir, FileName))
		if err != nil {
			t.Fatalf("wait %v: %v", wait, err)
		}
		if len(st.Sources) != 1+ok {
			t.Errorf("wait %v: sources %d after %d updates", wait, len(st.Sources), ok)
		}
		if files := dirFiles(t, dir); !slices.Equal(files, []string{FileName, lockName}) {
			t.Errorf("files %v", files)
		}
	}
}

func TestLockWaitCancelled(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDir(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = Update(ctx, dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{LockWait: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v", err)
	}
}

var crashHelper = flag.String("crash-helper", "", "internal: run an update in this directory and hang mid-import (TestCrashDuringUpdate)")

// TestCrashHelper is the process TestCrashDuringUpdate kills.
func TestCrashHelper(t *testing.T) {
	if *crashHelper == "" {
		t.Skip("run by TestCrashDuringUpdate")
	}
	Update(context.Background(), *crashHelper, []Input{{Path: sharedZip(t, "PyPI")}}, UpdateOptions{
		Progress: func(_ string, n int) {
			if n == 1500 {
				os.Stdout.WriteString("mid-import\n")
				select {}
			}
		},
	})
	t.Fatal("the update finished")
}

// TestCrashDuringUpdate kills a process in the middle of an update: the database is as it was,
// the lock is free, and the next update removes what the dead one left.
func TestCrashDuringUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{})
	before := mustOpen(t, dir).Status()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-crash-helper="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "mid-import\n" {
		cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()

	files := dirFiles(t, dir)
	if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, FileName+".new-") }) {
		t.Errorf("the killed update left no file: %v", files)
	}
	d := mustOpen(t, dir)
	if !reflect.DeepEqual(d.Status(), before) {
		t.Errorf("status changed: %+v", d.Status())
	}
	if ids := lookupIDs(t, d, "npm", "lodash"); len(ids) != 1 {
		t.Errorf("lookup %v", ids)
	}
	// The dead process's lock went with it.
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "Maven")}}, UpdateOptions{})
	if files := dirFiles(t, dir); !slices.Equal(files, []string{FileName, lockName}) {
		t.Errorf("files %v", files)
	}
}

// TestOpenWhileReplaced swaps the file between Open's check of the file and bbolt's open of
// the path, a window too small for TestReadersDuringUpdate to hit reliably: Open must retry
// and return the new file whole, not measure one file and read the other.
func TestOpenWhileReplaced(t *testing.T) {
	small, large := t.TempDir(), t.TempDir()
	mustUpdate(t, small, []Input{{Path: filepath.Join(fixtures, "Alpine")}}, UpdateOptions{})
	mustUpdate(t, large, []Input{{Path: filepath.Join(fixtures, "Alpine")}, {Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{})
	swaps := 0
	testHookBeforeBolt = func() {
		if swaps++; swaps == 1 {
			if err := os.Rename(filepath.Join(large, FileName), filepath.Join(small, FileName)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { testHookBeforeBolt = nil })
	d, err := Open(small)
	if err != nil {
		t.Fatalf("Open while the file was replaced: %v", err)
	}
	defer d.Close()
	if swaps != 2 {
		t.Errorf("bbolt opened the path %d times, want 2 (one retry)", swaps)
	}
	if _, ok := d.Status().Source("npm"); !ok {
		t.Error("Open returned the replaced file, want the new one")
	}
}
