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
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
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
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
