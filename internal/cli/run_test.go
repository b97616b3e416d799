package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/backend/backendtest"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/testutil"
)

func TestMain(m *testing.M) {
	backend.HandleShim()
	engine.HandleAutoRemove()
	os.Exit(m.Run())
}

// runnable makes MOAT_HOME reachable by containers' mapped root and returns an OCI layout of
// an image whose entrypoint is the backend suite's test program.
func runnable(t *testing.T, e *testEnv) string {
	t.Helper()
	// Only the test's own directories: MOAT_HOME and the test's temporary root above it.
	for _, d := range []string{e.home, filepath.Dir(e.home)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	prog, err := os.ReadFile(backendtest.BuildProg(t))
	if err != nil {
		t.Fatal(err)
	}
	img := testutil.Image(t, testutil.Layer(t, testutil.Dir("bin/"), testutil.Exec("bin/prog", string(prog))))
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/prog"}, Cmd: []string{"check"}, Env: []string{"FROM_IMAGE=yes"}})
	if err != nil {
		t.Fatal(err)
	}
	return "oci-dir:" + testutil.OCIDir(t, img)
}

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	e := setup(t)
	target := runnable(t, e)
	t.Setenv("PATH", filepath.Dir(testutil.Runsc(t))+string(os.PathListSeparator)+os.Getenv("PATH")) // moat finds runsc in PATH
	out, stderr := mustRun(t, "run", "--rm", target)
	if !strings.Contains(out, "uid=0 ") || !strings.Contains(out, "readonly-root=true") || !strings.Contains(stderr, "no trust policy in force") {
		t.Errorf("run: %q %q", out, stderr)
	}
	// The container's exit code is moat's; flags after the image are the command's.
	out, _, code, _ := run(t, "run", "--rm", target, "exit", "3")
	if code != 3 || out != "out\n" {
		t.Errorf("exit 3: code %d, %q", code, out)
	}
	out, _ = mustRun(t, "run", "--rm", "-e", "A=1", "--isolation", "sandbox", target, "env", "A")
	if out != "1\n" {
		t.Errorf("-e in the sandbox: %q", out)
	}

	// Every container is in the decision log with the relaxations its flags asked for.
	out, _ = mustRun(t, "run", "--rm", "--name", "relaxed", "--cap-add", "NET_ADMIN", "-v", e.work+":/data:ro", target, "args", "x")
	if out != "x\n" {
		t.Errorf("relaxed run: %q", out)
	}
	log := string(readFile(t, filepath.Join(e.home, "state", "decisions.jsonl")))
	if !strings.Contains(log, `"container":"relaxed"`) || !strings.Contains(log, `"relaxations":["cap-add CAP_NET_ADMIN","bind-mount `+e.work+`:/data:ro"]`) {
		t.Errorf("decision log:\n%s", log)
	}

	// A policy decides: an unsigned local image matches no rule and is denied before anything runs.
	pol := `apiVersion: moat.dev/v1
kind: Policy
rules:
  - name: only-signed-from-our-registry
    require:
      registries: ["registry.example.com"]
    isolation: hardened
    action: allow
`
	os.WriteFile(filepath.Join(e.work, "policy.yaml"), []byte(pol), 0o644)
	_, stderr, code, _ = run(t, "run", "--rm", "--policy", "policy.yaml", target)
	if code != ExitDenied || !strings.Contains(stderr, "registry") {
		t.Errorf("denied: code %d, stderr %q", code, stderr)
	}

	// A relaxation the deciding rule does not permit is refused before the container starts.
	pol = `apiVersion: moat.dev/v1
kind: Policy
rules:
  - name: local
    isolation: hardened
    action: allow
    relaxations: ["cap-add:NET_BIND_SERVICE"]
`
	os.WriteFile(filepath.Join(e.work, "relax.yaml"), []byte(pol), 0o644)
	if out, _ := mustRun(t, "run", "--rm", "--policy", "relax.yaml", "--cap-add", "net_bind_service", target, "args", "ok"); out != "ok\n" {
		t.Errorf("a permitted relaxation: %q", out)
	}
	_, _, code, err := run(t, "run", "--rm", "--name", "refused", "--policy", "relax.yaml", "--cap-add", "NET_ADMIN", target, "args", "ok")
	if code != ExitDenied || err == nil || !strings.Contains(err.Error(), "cap-add CAP_NET_ADMIN") {
		t.Errorf("a refused relaxation: exit %d, %v", code, err)
	}
	log = string(readFile(t, filepath.Join(e.home, "state", "decisions.jsonl")))
	if !strings.Contains(log, `"container":"refused"`) || !strings.Contains(log, `"refused":["cap-add CAP_NET_ADMIN"]`) {
		t.Errorf("decision log:\n%s", log)
	}
	if out, _ := mustRun(t, "ps", "-a", "-o", "id"); out != "" {
		t.Errorf("a refused container is kept: %q", out)
	}
	// A bind source is judged by where its links lead: a link in a permitted directory to
	// one that is not is refused.
	pol = strings.Replace(pol, `relaxations: ["cap-add:NET_BIND_SERVICE"]`, `relaxations: ["bind-mount:`+e.work+`/data/**"]`, 1)
	os.WriteFile(filepath.Join(e.work, "relax.yaml"), []byte(pol), 0o644)
	os.MkdirAll(filepath.Join(e.work, "data", "ok"), 0o755)
	os.MkdirAll(filepath.Join(e.work, "secret"), 0o755)
	os.Symlink(filepath.Join(e.work, "secret"), filepath.Join(e.work, "data", "link"))
	mustRun(t, "run", "--rm", "--policy", "relax.yaml", "-v", e.work+"/data/ok:/d:ro", target, "args", "ok")
	if _, _, code, err := run(t, "run", "--rm", "--policy", "relax.yaml", "-v", e.work+"/data/link:/d:ro", target, "args", "ok"); code != ExitDenied || !strings.Contains(err.Error(), e.work+"/secret") {
		t.Errorf("a bind source linked out of the permitted directory: exit %d, %v", code, err)
	}

	// The policy permits bind mounts below data/, not the host's network.
	if _, _, code, err := run(t, "run", "--rm", "--policy", "relax.yaml", "--network", "host", target, "args", "ok"); code != ExitDenied || !strings.Contains(err.Error(), "network") {
		t.Errorf("--network host under a policy that does not permit it: exit %d, %v", code, err)
	}

	// Nor the bridge, which is refused before the host is touched (no bridge interface made).
	_, hadBridge := net.InterfaceByName("moat0")
	if _, _, code, err := run(t, "run", "--rm", "--policy", "relax.yaml", "--network", "bridge", target, "args", "ok"); code != ExitDenied || !strings.Contains(err.Error(), "network bridge") {
		t.Errorf("--network bridge under a policy that does not permit it: exit %d, %v", code, err)
	}
	if _, err := net.InterfaceByName("moat0"); err == nil && hadBridge != nil {
		t.Error("a denied --network bridge created the host's bridge")
	}

	for _, args := range [][]string{
		{"run", "--rm", "--isolation", "vm", target}, // no vm backend
		{"run", "--rm", "--network", "ns:/nonexistent/ns", target},
		{"run", "--rm", "--network", "container:", target},
		{"run", "--rm", "--network", "container:nobody", target},
		{"run", "--rm", "--network", "wifi", target},
		{"run", "--rm", "-p", "8080:80", target}, // publishing needs the bridge
		{"run", "--rm", "--network", "bridge", "-p", "80", target},
		{"run", "--rm", "--network", "bridge", "-p", "127.0.0.1:8080:80", target},
		{"run", "--rm", "--memory", "lots", target},
		{"run", "--rm", "dir:/", "true"},
	} {
		if _, _, code, err := run(t, args...); code != ExitUsage && code != ExitError {
			t.Errorf("%v: exit %d (%v)", args, code, err)
		}
	}
	// Nothing is left of the containers.
	for _, d := range []string{"containers", "data"} {
		if ents, _ := os.ReadDir(filepath.Join(e.home, "state", "engine", d)); len(ents) != 0 {
			t.Errorf("%s left: %v", d, ents)
		}
	}
}

// TestContainers drives the lifecycle commands on a detached container.
func TestContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	e := setup(t)
	target := runnable(t, e)
	out, _ := mustRun(t, "run", "-d", "--name", "web", target, "wait")
	id := strings.TrimSpace(out)
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want the container's ID", out)
	}
	out, _ = mustRun(t, "ps")
	if !strings.Contains(out, id[:12]) || !strings.Contains(out, "Up ") || !strings.Contains(out, "web") || !strings.Contains(out, "hardened") {
		t.Errorf("ps:\n%s", out)
	}
	if out, _ := mustRun(t, "ps", "-o", "id"); out != id+"\n" {
		t.Errorf("ps -o id: %q", out)
	}
	// The program writes "ready" once it waits for SIGTERM.
	deadline := time.Now().Add(30 * time.Second)
	for out, _ = mustRun(t, "logs", "web"); out != "ready\n"; out, _ = mustRun(t, "logs", "web") {
		if time.Now().After(deadline) {
			t.Fatalf("logs: %q", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// exec runs in the container, confined as it is, and exits with the command's code.
	if out, _ := mustRun(t, "exec", "-e", "X=1", "web", "/bin/prog", "env", "X"); out != "1\n" {
		t.Errorf("exec env: %q", out)
	}
	if _, _, code, _ := run(t, "exec", "web", "/bin/prog", "exit", "7"); code != 7 {
		t.Errorf("exec exit 7: exit %d", code)
	}
	if _, _, code, _ := run(t, "rm", "web"); code != ExitError {
		t.Errorf("rm of a running container: exit %d", code)
	}
	if out, _ := mustRun(t, "stop", "web"); out != "web\n" {
		t.Errorf("stop: %q", out)
	}
	out, _ = mustRun(t, "ps", "-a")
	if !strings.Contains(out, "Exited (42)") {
		t.Errorf("ps -a after stop:\n%s", out)
	}
	if out, _ := mustRun(t, "ps"); strings.Contains(out, "web") {
		t.Errorf("ps shows an exited container:\n%s", out)
	}
	out, _ = mustRun(t, "inspect", id[:10])
	if !strings.Contains(out, `"name": "web"`) || !strings.Contains(out, `"exitCode": 42`) || !strings.Contains(out, `"status": "exited"`) {
		t.Errorf("inspect:\n%s", out)
	}
	if out, _ := mustRun(t, "logs", "--tail", "1", "web"); out != "term\n" {
		t.Errorf("logs --tail 1: %q", out)
	}
	mustRun(t, "rm", "web")
	if out, _ := mustRun(t, "ps", "-a", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("ps -a after rm: %q", out)
	}
	for _, args := range [][]string{
		{"logs", "web"}, {"stop", "web"}, {"kill", "web"}, {"rm", "web"}, {"inspect", "web"}, {"exec", "web", "true"},
	} {
		if _, _, code, err := run(t, args...); code != ExitError || err == nil || !strings.Contains(err.Error(), "no such container") {
			t.Errorf("%v on a removed container: exit %d, %v", args, code, err)
		}
	}
	if _, _, code, _ := run(t, "kill", "-s", "NOPE", "web"); code != ExitUsage {
		t.Errorf("kill -s NOPE: exit %d", code)
	}
	ents, _ := os.ReadDir(filepath.Join(e.home, "state", "engine", "containers"))
	if len(ents) != 0 {
		t.Errorf("containers left: %v", ents)
	}
}

// moat attach: what is typed reaches a -dt container's terminal and its output comes back;
// ctrl-p ctrl-q detaches and the container goes on running; a container without a terminal
// is refused.
func TestAttach(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	e := setup(t)
	target := runnable(t, e)
	mustRun(t, "run", "-dt", "--name", "echo", target, "cat")
	var out testutil.LockedBuffer
	var errOut bytes.Buffer
	in, typing := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Execute(context.Background(), []string{"attach", "echo"}, in, &out, &errOut) }()
	// The user types a line, waits for it to come back, then detaches.
	typing.Write([]byte("hello attach\n"))
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "hello attach"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("what was typed never came back: %q", out.String())
		}
	}
	typing.Write(detachKeys)
	if err := <-done; err != nil {
		t.Fatalf("attach: %v\n%s", err, errOut.String())
	}
	// The terminal echoes the line, and cat writes it back.
	if got := strings.Count(out.String(), "hello attach"); got < 1 {
		t.Errorf("attach output %q lacks what was typed", out.String())
	}
	if !strings.Contains(errOut.String(), "detached from echo") {
		t.Errorf("attach stderr %q", errOut.String())
	}
	if out, _ := mustRun(t, "ps"); !strings.Contains(out, "echo") || !strings.Contains(out, "Up ") {
		t.Errorf("after detaching, ps:\n%s", out)
	}
	if log, _ := mustRun(t, "logs", "echo"); !strings.Contains(log, "hello attach") {
		t.Errorf("the log lacks what the container printed: %q", log)
	}
	mustRun(t, "stop", "echo")
	mustRun(t, "rm", "echo")

	mustRun(t, "run", "-d", "--name", "plain", target, "wait")
	if _, _, code, err := run(t, "attach", "plain"); code != ExitError || err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Errorf("attach to a container without a terminal: exit %d, %v", code, err)
	}
	mustRun(t, "rm", "-f", "plain")
}
