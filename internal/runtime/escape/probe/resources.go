//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The bounds of the resource checks: far above the hardened limits (512 processes, 512 MiB),
// far below what hurts a host without limits.
const (
	forkBombCap  = 2000
	memoryHogMiB = 1536
	resourceTime = 40 * time.Second
)

var errTimeout = errors.New("timed out")

func checkForkBomb(*probe) outcome {
	if _, err := os.Stat(pausePath); err != nil {
		return inconclusive("%s: %s", pausePath, errName(err))
	}
	// Once the processes run out the Go runtime cannot start a thread, and dies if it needs
	// one: it gets its threads now, while it can.
	prewarmThreads(8)
	deadline := time.Now().Add(resourceTime)
	var pids []int
	var stop error
	for len(pids) < forkBombCap {
		if time.Now().After(deadline) {
			stop = errTimeout
			break
		}
		pid, err := syscall.ForkExec(pausePath, []string{"pause"}, &syscall.ProcAttr{})
		if err != nil {
			stop = err
			break
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		syscall.Wait4(pid, nil, 0, nil)
	}
	switch {
	case stop == nil:
		return allowed("started all %d (killed)", forkBombCap)
	case stop == errTimeout:
		return inconclusive("started %d in %s without reaching a limit", len(pids), resourceTime)
	}
	return blocked("%d started, then %s", len(pids), errName(stop))
}

// prewarmThreads makes the Go runtime start n threads, which it keeps idle afterwards.
func prewarmThreads(n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := unix.Timespec{Nsec: 20_000_000}
			unix.Nanosleep(&ts, nil)
		}()
	}
	wg.Wait()
}

func checkMemoryHog(p *probe) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), resourceTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.self, "memhog", strconv.Itoa(memoryHogMiB))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return inconclusive("%v", err)
	}
	if err := cmd.Start(); err != nil {
		return inconclusive("starting the child: %s", errName(err))
	}
	var last int
	var done bool
	var failure string
	s := bufio.NewScanner(out)
	for s.Scan() {
		line := s.Text()
		switch {
		case line == "done":
			done = true
		case strings.HasPrefix(line, "error "):
			failure = strings.TrimPrefix(line, "error ")
		default:
			if n, err := strconv.Atoi(line); err == nil {
				last = n
				// Also on stderr: if the limit kills the whole container (gVisor's sandbox is
				// one process on the host), this is all that is left.
				if n%128 == 0 {
					fmt.Fprintf(os.Stderr, "probe: memory-hog: %d MiB touched\n", n)
				}
			}
		}
	}
	err = cmd.Wait()
	var ws syscall.WaitStatus
	if cmd.ProcessState != nil {
		ws, _ = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	switch {
	case ctx.Err() != nil:
		return inconclusive("no end within %s (%d MiB touched)", resourceTime, last)
	case done:
		return allowed("%d MiB allocated and touched (freed)", memoryHogMiB)
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return blocked("killed after %d MiB", last)
	case failure != "":
		return blocked("%s after %d MiB", failure, last)
	}
	return inconclusive("the child ended (%v) after %d MiB", err, last)
}

// memhog is the memory hog's child: it makes itself the first choice of the OOM killer, then
// allocates and touches memory 16 MiB at a time, writing the total after each step.
func memhog(args []string) {
	limit, err := strconv.Atoi(strings.Join(args, ""))
	if err != nil || limit <= 0 {
		fmt.Println("error usage: probe memhog MIB")
		os.Exit(2)
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "probe memhog: oom_score_adj:", err)
	}
	const chunk = 16
	for total := 0; total < limit; {
		b, err := unix.Mmap(-1, 0, chunk<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Printf("error mmap: %s\n", errName(err))
			os.Exit(3)
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		total += chunk
		fmt.Println(total)
	}
	fmt.Println("done")
}
