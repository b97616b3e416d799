// Command prog is the program the backend conformance suite runs inside containers. It is
// built statically by the suite and is the only file in the container's root filesystem.
//
//	prog exit N       writes "out" to stdout and "err" to stderr, exits with N
//	prog args A...    writes each argument on a line
//	prog env NAME     writes the value of NAME
//	prog cat          copies stdin to stdout
//	prog check        writes facts about its confinement: uid, hostname, writable root
//	prog wait         writes "ready", waits for SIGTERM, writes "term" and exits with 42
//	                  (as PID 1 it would otherwise ignore SIGTERM)
//	prog pwd          writes its working directory
//	prog signal N     kills itself with signal N
//	prog confined     writes what confines it: no_new_privs, seccomp mode, effective and
//	                  bounding capabilities, RLIMIT_NOFILE, and what mkdir in /tmp returns
//	                  (the suite's seccomp profile denies mkdirat)
//	prog ttyinfo      writes whether stdin, stdout and stderr are terminals and the size
//	prog tty          writes the ttyinfo line (when the size is 0x0, after the first
//	                  SIGWINCH, with " after SIGWINCH"), reads a line from stdin and
//	                  writes it back, writes "winch?", waits for SIGWINCH and writes the new
//	                  size, then writes 256 KiB of numbered lines and "end", and exits with 3
//	prog listen ADDR  listens on the TCP address ADDR, writes "listening", and answers
//	                  each connection with "hello" until killed
//	prog dial ADDR    connects to the TCP address ADDR and writes "connected: " and what it
//	                  read, or "refused: " and the error, exiting with 1
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: prog exit|args|env|cat|check|wait ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		fmt.Println("out")
		fmt.Fprintln(os.Stderr, "err")
		os.Exit(n)
	case "args":
		for _, a := range os.Args[2:] {
			fmt.Println(a)
		}
	case "env":
		fmt.Println(os.Getenv(os.Args[2]))
	case "cat":
		io.Copy(os.Stdout, os.Stdin)
	case "readfile":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Println("readfile:", err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "check":
		host, _ := os.Hostname()
		err := os.WriteFile("/written", []byte("x"), 0o644)
		rofs := err != nil && strings.Contains(err.Error(), "read-only file system")
		fmt.Printf("uid=%d gid=%d hostname=%s readonly-root=%v pid=%d\n", os.Getuid(), os.Getgid(), host, rofs, os.Getpid())
	case "wait":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		fmt.Println("term")
		os.Exit(42)
	case "pwd":
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(wd)
	case "signal":
		n, _ := strconv.Atoi(os.Args[2])
		syscall.Kill(os.Getpid(), syscall.Signal(n))
		time.Sleep(10 * time.Second)
		os.Exit(1)
	case "confined":
		confined()
	case "ttyinfo":
		fmt.Println(ttyInfo())
	case "tty":
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		if rows, cols := winSize(0); rows == 0 && cols == 0 {
			select {
			case <-winch:
				fmt.Println(ttyInfo(), "after SIGWINCH")
			case <-time.After(30 * time.Second):
				fmt.Println(ttyInfo())
			}
		} else {
			fmt.Println(ttyInfo())
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Printf("read %q %v\n", strings.TrimSpace(line), err)
		fmt.Println("winch?")
		select {
		case <-winch:
			rows, cols := winSize(1)
			fmt.Printf("resized %dx%d\n", rows, cols)
		case <-time.After(30 * time.Second):
			fmt.Println("no SIGWINCH")
		}
		for i := 0; i < 8192; i++ {
			fmt.Printf("%031d\n", i)
		}
		fmt.Println("end")
		os.Exit(3)
	case "listen":
		l, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		fmt.Println("listening")
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", os.Args[2], 5*time.Second)
		if err != nil {
			fmt.Println("refused:", err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(c)
		fmt.Printf("connected: %s\n", b)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func confined() {
	status, _ := os.ReadFile("/proc/self/status")
	field := func(name string) string {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	var nofile syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	mkdir := "ok"
	if err := os.Mkdir("/tmp/probe", 0o755); err != nil {
		mkdir = err.(*os.PathError).Err.Error()
	} else {
		os.Remove("/tmp/probe")
	}
	fmt.Printf("nnp=%s seccomp=%s capeff=%s capbnd=%s nofile=%d/%d mkdir=%q\n",
		field("NoNewPrivs"), field("Seccomp"), field("CapEff"), field("CapBnd"), nofile.Cur, nofile.Max, mkdir)
}

func isTerminal(fd int) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

func winSize(fd int) (rows, cols uint16) {
	var ws struct{ Row, Col, X, Y uint16 }
	syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	return ws.Row, ws.Col
}

func ttyInfo() string {
	rows, cols := winSize(0)
	return fmt.Sprintf("tty stdin=%v stdout=%v stderr=%v size=%dx%d", isTerminal(0), isTerminal(1), isTerminal(2), rows, cols)
}
