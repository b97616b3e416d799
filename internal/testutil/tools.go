package testutil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// InstallTools is the script that builds the pinned programs below; `make test` runs it.
const InstallTools = "hack/install-tools.sh"

// A pinned third-party program that interoperability tests run. The pins must match
// hack/install-tools.sh.
type tool struct {
	name, module, version string
}

// CosignVersion and RegistryVersion are the versions the tests run against.
const (
	CosignVersion   = "v2.6.5"
	RegistryVersion = "v3.1.2"
)

var (
	cosignTool   = tool{"cosign", "github.com/sigstore/cosign/v2", CosignVersion}
	registryTool = tool{"registry", "github.com/distribution/distribution/v3", RegistryVersion}
)

// toolPath finds tl's binary at its pinned version: first in ~/.cache/moat-dev/bin, where
// the install script puts it, then on PATH (make test puts its own cache directory there). A
// missing or differently built binary fails the test: these tests are part of the suite and
// must not pass by skipping.
func toolPath(t testing.TB, tl tool) string {
	t.Helper()
	var candidates, seen []string
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "moat-dev", "bin", tl.name))
	}
	if p, err := exec.LookPath(tl.name); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		bi, err := buildinfo.ReadFile(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				seen = append(seen, fmt.Sprintf("%s (%v)", p, err))
			}
			continue
		}
		if bi.Main.Path == tl.module && bi.Main.Version == tl.version {
			return p
		}
		seen = append(seen, fmt.Sprintf("%s (%s %s)", p, bi.Main.Path, bi.Main.Version))
	}
	msg := fmt.Sprintf("%s %s %s is not installed; run %s (make test does)", tl.name, tl.module, tl.version, InstallTools)
	if len(seen) > 0 {
		msg += "; found only " + strings.Join(seen, ", ")
	}
	t.Fatal(msg)
	return ""
}

// StartRegistry runs the CNCF distribution registry (the pinned `registry` binary) on a free
// loopback port, plain HTTP, storing blobs in a temporary directory, with deletes enabled. It
// returns the registry's host, "127.0.0.1:PORT", once GET /v2/ answers, and kills the process
// when the test ends.
func StartRegistry(t testing.TB) string {
	t.Helper()
	bin := toolPath(t, registryTool)
	dir := t.TempDir()
	proxy := newNetworkGuard(t)
	secret := make([]byte, 16)
	rand.Read(secret)
	var lastErr error
	// The port is free when chosen but could be taken before the registry binds it; a
	// registry that exits at once is started again on another port.
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		host := fmt.Sprintf("127.0.0.1:%d", port)
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(registryConfig(filepath.Join(dir, "storage"), host, hex.EncodeToString(secret))), 0o600); err != nil {
			t.Fatal(err)
		}
		out := &lockedBuffer{}
		cmd := exec.Command(bin, "serve", cfg)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = append(proxy.env(), "HOME="+dir, "PATH=/nonexistent",
			// The registry's OpenTelemetry SDK would otherwise export traces to localhost:4318.
			"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			// By PID, the process this test started and nothing else.
			cmd.Process.Kill()
			<-exited
		}
		if lastErr = waitRegistry(host, exited); lastErr == nil {
			t.Cleanup(stop)
			return host
		}
		stop()
		lastErr = fmt.Errorf("%w; registry output:\n%s", lastErr, out.String())
	}
	t.Fatalf("starting registry %s: %v", registryTool.version, lastErr)
	return ""
}

// registryConfig is the registry's configuration: quiet logs, filesystem storage in root, no
// TLS, no background upload purging, and a fixed HTTP secret (without one it warns and
// makes its own).
func registryConfig(root, addr, secret string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
`, root, addr, secret)
}

// waitRegistry polls GET /v2/ until it answers 200, the process exits or 30 seconds pass.
func waitRegistry(host string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	return waitReady("registry", client, "http://"+host+"/v2/", exited, 30*time.Second, 50*time.Millisecond)
}

// waitReady polls GET url with client until it answers 200, the server's process exits
// (exited closes) or timeout passes, every interval.
func waitReady(what string, client *http.Client, url string, exited <-chan struct{}, timeout, interval time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before answering", what)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %w", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Cosign runs the pinned cosign binary in an environment of its own: a temporary HOME,
// working directory and sigstore caches, no inherited variables, COSIGN_YES=true, and HTTP
// proxies pointing at a loopback listener that refuses every request. Loopback addresses
// bypass the proxy, so cosign reaches a test registry and nothing else; any request it tries
// to send elsewhere is recorded and fails the test when it ends.
type Cosign struct {
	t     testing.TB
	bin   string
	env   []string
	guard *networkGuard
	// Dir is cosign's working directory: `cosign generate-key-pair` writes cosign.key and
	// cosign.pub here.
	Dir string
}

// NewCosign returns a runner for cosign that unlocks keys with password (COSIGN_PASSWORD).
func NewCosign(t testing.TB, password string) *Cosign {
	t.Helper()
	c := &Cosign{t: t, bin: toolPath(t, cosignTool), Dir: t.TempDir()}
	c.guard = newNetworkGuard(t)
	home := filepath.Join(c.Dir, ".home")
	for _, d := range []string{home, filepath.Join(home, ".docker"), filepath.Join(home, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	c.env = append(c.guard.env(),
		"HOME="+home,
		"PATH=/nonexistent",
		"TMPDIR="+filepath.Join(home, "tmp"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"DOCKER_CONFIG="+filepath.Join(home, ".docker"), // no registry credentials from the host
		"TUF_ROOT="+filepath.Join(home, ".sigstore", "root"),
		"SIGSTORE_NO_CACHE=true",
		"COSIGN_YES=true",
		"COSIGN_PASSWORD="+password,
	)
	return c
}

// Setenv sets a variable for the cosign commands run after it, such as COSIGN_EXPERIMENTAL.
func (c *Cosign) Setenv(name, value string) {
	c.env = append(c.env, name+"="+value)
}

// Run runs cosign with args and returns what it wrote to stdout and stderr. A non-zero exit
// is an *exec.ExitError.
func (c *Cosign) Run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = c.Dir, c.env, &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// MustRun runs cosign with args, with a two-minute limit, and fails the test unless it exits
// with status 0. It returns stdout.
func (c *Cosign) MustRun(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, e, err := c.Run(ctx, args...)
	if err != nil {
		c.t.Fatalf("cosign %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, o, e)
	}
	return o
}

// NetworkAttempts lists the requests cosign tried to send off the loopback interface so far,
// as "METHOD TARGET" lines.
func (c *Cosign) NetworkAttempts() []string { return c.guard.attempts() }

// networkGuard is the proxy that cosign and the registry are given: it answers every request
// with 403 and records it, so that a request meant for the internet fails at once, never
// leaves the machine, and is reported.
type networkGuard struct {
	l    net.Listener
	mu   sync.Mutex
	seen []string
}

func newNetworkGuard(t testing.TB) *networkGuard {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting network guard: %v", err)
	}
	g := &networkGuard{l: l}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go g.refuse(conn)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		if a := g.attempts(); len(a) > 0 {
			t.Errorf("a program under test tried to reach the network (refused by the loopback proxy):\n  %s", strings.Join(a, "\n  "))
		}
	})
	return g
}

func (g *networkGuard) refuse(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	g.mu.Lock()
	g.seen = append(g.seen, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "HTTP/1.1")))
	g.mu.Unlock()
	fmt.Fprint(conn, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

func (g *networkGuard) attempts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.seen...)
}

// env is the proxy configuration that sends everything but loopback to the guard. Go never
// proxies loopback addresses; NO_PROXY says so for other HTTP stacks too.
func (g *networkGuard) env() []string {
	u := "http://" + g.l.Addr().String()
	return []string{
		"HTTP_PROXY=" + u, "HTTPS_PROXY=" + u, "NO_PROXY=127.0.0.1,localhost",
		"http_proxy=" + u, "https_proxy=" + u, "no_proxy=127.0.0.1,localhost",
	}
}

// lockedBuffer collects a process's output from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
