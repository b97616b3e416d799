package escape_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/testutil"
)

var update = flag.Bool("update", false, "write the measured table into docs/isolation.md")

// docPath is the document the results table lives in, between the markers.
const (
	docPath     = "../../../docs/isolation.md"
	beginMarker = "<!-- BEGIN escape-test-results"
	endMarker   = "<!-- END escape-test-results -->"
)

func TestMain(m *testing.M) {
	backend.HandleShim()
	engine.HandleAutoRemove()
	os.Exit(m.Run())
}

// result is one check's outcome, as the probe writes it.
type result struct {
	Name         string `json:"name"`
	Attempt      string `json:"attempt"`
	Blocked      bool   `json:"blocked"`
	Detail       string `json:"detail"`
	Inconclusive bool   `json:"inconclusive"`
}

// check describes one of the probe's checks, as `probe describe` writes it.
type check struct {
	Name    string `json:"name"`
	Attempt string `json:"attempt"`
	// Run is how the check must be run: "default" (with the others, as container root),
	// "non-root" (alone, as uid 65534) or "alone" (alone, as container root, in a container
	// the check may end).
	Run string `json:"run"`
}

// column is one environment the probe ran in: a column of the table. The moat columns, whose
// titles start with "moat ", are asserted (every check blocked) and compared with the document.
type column struct {
	title string
	// results are in the order of the checks.
	results []result
}

// runFunc runs the probe in one environment as user ("" for the image's, root) with args and
// returns what it wrote and its exit code. It fails the test when the container cannot run.
type runFunc func(t *testing.T, user string, args ...string) (stdout, stderr string, exitCode int)

// The probe's image and its tag in the test dockerd.
const probeTag = "moat.test/escape-probe:1"

// killed is the exit code of a container whose process was killed with SIGKILL.
const killed = 128 + 9

func TestEscape(t *testing.T) {
	if testing.Short() {
		t.Skip("runs containers with runc, crun, runsc and a private dockerd")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the escape suite runs containers and needs root, as make test runs it")
	}
	probe := buildProbe(t)
	checks := describe(t, probe)
	img := probeImage(t, probe)
	opened := openImage(t, img)

	runc := newEngine(t, "runc")
	crun := newEngine(t, "crun")
	versions := []string{firstLine(t, "runc", "--version"), firstLine(t, "crun", "--version"), "runsc " + testutil.RunscVersion}
	cols := []*column{
		{title: "moat hardened (runc)"},
		{title: "moat hardened (crun)"},
		{title: "moat sandbox (runsc)"},
		{title: "Docker defaults"},
	}
	moatRuns := []struct {
		col   *column
		e     *engine.Engine
		level spec.Level
	}{
		{cols[0], runc, spec.Hardened},
		{cols[1], crun, spec.Hardened},
		{cols[2], runc, spec.Sandbox},
	}
	for _, r := range moatRuns {
		t.Run(r.col.title, func(t *testing.T) {
			r.col.results = runChecks(t, checks, moatRunner(opened, r.e, r.level))
			for _, res := range r.col.results {
				switch {
				case res.Inconclusive:
					t.Errorf("%s: the check could not be made: %s", res.Name, res.Detail)
				case !res.Blocked:
					t.Errorf("%s was NOT blocked: %s (attempt: %s)", res.Name, res.Detail, res.Attempt)
				}
			}
		})
	}
	t.Run(cols[3].title, func(t *testing.T) {
		// Docker's results are not asserted: only that the probe ran.
		d := newDocker(t)
		d.run(t, "load", "-i", testutil.DockerArchive(t, img, probeTag))
		cols[3].results = runChecks(t, checks, d.runProbe)
		versions = append(versions, "Docker "+strings.TrimSpace(d.run(t, "version", "--format", "{{.Server.Version}}"))+
			" (dockerd's defaults: its seccomp profile and capabilities, no user namespace, runc; `--network none`)")
	})
	if t.Failed() && !*update {
		return
	}
	for _, c := range cols {
		if len(c.results) != len(checks) {
			t.Fatalf("%s: no results, so the table cannot be made", c.title)
		}
	}
	table := renderTable(checks, cols, versions)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		out, err := replaceBlock(string(doc), table)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(docPath, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote the table to %s", docPath)
		return
	}
	current, err := block(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moatVerdicts(current), moatVerdicts(table); got != want {
		t.Errorf("the escape test results in docs/isolation.md are out of date: rerun, as root, with\n\tgo test ./internal/runtime/escape -run TestEscape -update\n%s", lineDiff(got, want))
	}
}

// runChecks runs every check with run: the default set together, the others one per
// container. It returns the results in the order of checks.
func runChecks(t *testing.T, checks []check, run runFunc) []result {
	t.Helper()
	got := map[string]result{}
	collect := func(stdout, stderr string) {
		for _, r := range parseResults(t, stdout, stderr) {
			got[r.Name] = r
		}
	}
	stdout, stderr, code := run(t, "")
	if code != 0 {
		t.Fatalf("the probe exited with %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	collect(stdout, stderr)
	for _, c := range checks {
		user := ""
		switch c.Run {
		case "default":
			continue
		case "non-root":
			user = "65534:65534"
		case "alone":
		default:
			t.Fatalf("check %s: unknown run mode %q", c.Name, c.Run)
		}
		stdout, stderr, code := run(t, user, c.Name)
		switch {
		case code == killed && c.Run == "alone":
			// The check ended the whole container (gVisor's sandbox is one process on the
			// host, which the memory limit kills): the container's limit stopped it.
			detail := fmt.Sprintf("the container was killed (exit %d)", code)
			if p := progress(stderr, c.Name); p != "" {
				detail += " after " + p
			}
			got[c.Name] = result{Name: c.Name, Blocked: true, Detail: detail}
		case code != 0:
			t.Fatalf("the probe (%s) exited with %d\nstdout:\n%s\nstderr:\n%s", c.Name, code, stdout, stderr)
		default:
			collect(stdout, stderr)
		}
	}
	var out []result
	for _, c := range checks {
		r, ok := got[c.Name]
		if !ok {
			t.Fatalf("the probe did not report check %s", c.Name)
		}
		r.Attempt = c.Attempt
		out = append(out, r)
	}
	return out
}

// progress is the last progress the probe wrote on stderr for check ("probe: CHECK: ...").
func progress(stderr, check string) string {
	last := ""
	for _, line := range strings.Split(stderr, "\n") {
		if p, ok := strings.CutPrefix(line, "probe: "+check+": "); ok {
			last = p
		}
	}
	return last
}

// describe asks the probe, run on the host, for its checks.
func describe(t *testing.T, probe string) []check {
	t.Helper()
	out, err := exec.Command(probe, "describe").Output()
	if err != nil {
		t.Fatalf("probe describe: %v", err)
	}
	var checks []check
	if err := json.Unmarshal(out, &checks); err != nil || len(checks) == 0 {
		t.Fatalf("probe describe: %v\n%s", err, out)
	}
	return checks
}

// buildProbe builds the probe statically, as the image has no C library, and returns its path.
func buildProbe(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, "./probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, b)
	}
	return out
}

// probeImage is the probe's image: the probe at /probe (the entrypoint), a setuid-root copy
// at /probe-suid, /pause (see pauseProgram), an /etc/passwd with nobody, and /tmp.
func probeImage(t *testing.T, path string) v1.Image {
	t.Helper()
	probe, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	suid := testutil.Entry{Name: "probe-suid", RawBytes: probe, Type: tar.TypeReg, Mode: 0o4755}
	tmp := testutil.Dir("tmp/")
	tmp.Mode = 0o1777
	img := testutil.Image(t, testutil.Layer(t,
		testutil.Dir("etc/"),
		testutil.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
		testutil.File("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
		testutil.File("etc/hostname", "escape-probe\n"),
		tmp,
		testutil.Entry{Name: "probe", RawBytes: probe, Type: tar.TypeReg, Mode: 0o755},
		suid,
		testutil.Entry{Name: "pause", RawBytes: pauseProgram(t), Type: tar.TypeReg, Mode: 0o755},
	))
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/probe"}, Env: []string{"PATH=/"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pauseProgram is a static executable that sleeps until it is killed, as one process with one
// thread: the fork bomb's children, which must each count as one task. No compiler makes one
// that small, so it is assembled here: an ELF header, one loadable segment, and a loop around
// pause (x86-64) or ppoll with no descriptors and no timeout (arm64). It loads at 0x400000,
// where the probe's process_vm_readv check expects its ELF header.
func pauseProgram(t *testing.T) []byte {
	t.Helper()
	var machine elf.Machine
	var code []byte
	switch runtime.GOARCH {
	case "amd64":
		machine = elf.EM_X86_64
		code = []byte{
			0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
			0x0f, 0x05, // syscall
			0xeb, 0xf7, // jmp to the start
		}
	case "arm64":
		machine = elf.EM_AARCH64
		for _, insn := range []uint32{
			0xd2800000, 0xd2800001, 0xd2800002, 0xd2800003, // mov x0..x3, #0
			0xd2800928, // mov x8, #73 (ppoll)
			0xd4000001, // svc #0
			0x17fffffa, // b to the start
		} {
			code = binary.LittleEndian.AppendUint32(code, insn)
		}
	default:
		t.Fatalf("no pause program for %s", runtime.GOARCH)
	}
	const base, headers = 0x400000, 64 + 56
	size := uint64(headers + len(code))
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     base + headers,
		Phoff:     64,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     1,
	})
	binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Vaddr: base, Paddr: base, Filesz: size, Memsz: size, Align: 0x1000,
	})
	b.Write(code)
	return b.Bytes()
}

func openImage(t *testing.T, img v1.Image) *image.Image {
	t.Helper()
	opened, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: testutil.OCIDir(t, img)}, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opened.Close() })
	return opened
}

// newEngine opens an engine whose hardened level runs with hardened ("runc" or "crun") and
// whose sandbox level runs the pinned runsc, in a directory containers can search: only the
// test's own two temporary directories are opened up for it.
func newEngine(t *testing.T, hardened string) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.New(filepath.Join(dir, "engine"), engine.WithHardenedRuntime(hardened), engine.WithRuntimeBinary("runsc", testutil.Runsc(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// moatRunner runs the probe with e at level.
func moatRunner(img *image.Image, e *engine.Engine, level spec.Level) runFunc {
	return func(t *testing.T, user string, args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		res, err := e.Run(ctx, img, engine.RunOptions{
			Level: level,
			Spec:  spec.Options{User: user, Args: args},
			IO:    backend.IO{Stdout: &stdout, Stderr: &stderr},
		})
		if err != nil {
			t.Fatalf("running the probe: %v\nstderr:\n%s", err, stderr.String())
		}
		return stdout.String(), stderr.String(), res.ExitCode
	}
}

func parseResults(t *testing.T, stdout, stderr string) []result {
	t.Helper()
	var rs []result
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil || len(rs) == 0 {
		t.Fatalf("the probe's output is not a list of results (%v):\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return rs
}

// docker runs the docker CLI against the test's private dockerd.
type docker struct {
	bin, host string
	env       []string
}

func newDocker(t *testing.T) *docker {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("the docker CLI is not installed (make test installs docker.io): %v", err)
	}
	cfg := t.TempDir()
	return &docker{
		bin:  bin,
		host: testutil.StartDockerd(t),
		// No configuration or credentials of the machine's.
		env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cfg, "DOCKER_CONFIG=" + cfg},
	}
}

// run runs docker with args and returns its stdout, failing the test unless it exits with 0.
func (d *docker) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.bin, append([]string{"-H", d.host}, args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = d.env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// runProbe is the runFunc of the test dockerd: docker run with Docker's defaults, but for the
// network (none).
func (d *docker) runProbe(t *testing.T, user string, args ...string) (string, string, int) {
	t.Helper()
	run := []string{"-H", d.host, "run", "--rm", "--network", "none"}
	if user != "" {
		run = append(run, "--user", user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.bin, append(append(run, probeTag), args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = d.env, &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit) && exit.ExitCode() < 125:
		// 125 and up are docker's own failures, not the container's exit code.
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("docker run: %v\nstderr:\n%s", err, stderr.String())
	return "", "", 0
}

func firstLine(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// renderTable is the generated part of docs/isolation.md: what it was measured with (versions)
// and one row per check, one column per environment.
func renderTable(checks []check, cols []*column, versions []string) string {
	var b strings.Builder
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Fprintf(&b, "Measured on Linux %s (%s) with %s.\n\n", unix.ByteSliceToString(uts.Release[:]), runtime.GOARCH, strings.Join(versions, ", "))
	b.WriteString("| Check | Attempt |")
	for _, c := range cols {
		b.WriteString(" " + c.title + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(cols)) + "\n")
	for i, c := range checks {
		fmt.Fprintf(&b, "| `%s` | %s |", c.Name, cell(c.Attempt))
		for _, col := range cols {
			r := col.results[i]
			b.WriteString(" " + verdict(r) + ": " + cell(r.Detail) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func verdict(r result) string {
	switch {
	case r.Inconclusive:
		return "inconclusive"
	case r.Blocked:
		return "blocked"
	}
	return "**ALLOWED**"
}

// cell escapes s for a table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// moatVerdicts is, for each row of a table renderTable made, the check and the verdicts of
// the moat columns: what must not change without the document changing. Details (errnos,
// counts) and Docker's column differ between machines and runs.
func moatVerdicts(table string) string {
	var b strings.Builder
	var moat []int
	for _, line := range strings.Split(table, "\n") {
		cells := splitRow(line)
		switch {
		case len(cells) < 2:
		case cells[0] == "Check":
			moat = moat[:0]
			for i, c := range cells {
				if strings.HasPrefix(c, "moat ") {
					moat = append(moat, i)
				}
			}
		case strings.HasPrefix(cells[0], "`"):
			b.WriteString(cells[0])
			for _, i := range moat {
				v := ""
				if i < len(cells) {
					v, _, _ = strings.Cut(cells[i], ":")
				}
				b.WriteString(" " + v)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// lineDiff lists the lines only the document has (-) and those only the measurement has (+).
func lineDiff(doc, measured string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	inDoc, inMeasured := in(doc), in(measured)
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !inMeasured[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(measured, "\n") {
		if !inDoc[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// splitRow splits a markdown table row into its trimmed cells, honouring \|.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") {
		return nil
	}
	var cells []string
	var cur strings.Builder
	for i := 1; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return cells
}

// block returns what lies between the markers in doc.
func block(doc string) (string, error) {
	_, after, ok := strings.Cut(doc, beginMarker)
	if !ok {
		return "", fmt.Errorf("%s has no %q marker", docPath, beginMarker)
	}
	_, inner, ok := strings.Cut(after, "-->\n")
	if !ok {
		return "", fmt.Errorf("%s: the begin marker is not closed", docPath)
	}
	inner, _, ok = strings.Cut(inner, endMarker)
	if !ok {
		return "", fmt.Errorf("%s has no %q marker", docPath, endMarker)
	}
	return inner, nil
}

// replaceBlock puts table between the markers in doc.
func replaceBlock(doc, table string) (string, error) {
	i := strings.Index(doc, beginMarker)
	if i < 0 {
		return "", fmt.Errorf("%s has no %q marker", docPath, beginMarker)
	}
	j := strings.Index(doc[i:], "-->\n")
	k := strings.Index(doc, endMarker)
	if j < 0 || k < i+j {
		return "", fmt.Errorf("%s: the markers are malformed", docPath)
	}
	start := i + j + len("-->\n")
	return doc[:start] + table + doc[k:], nil
}

func TestMoatVerdicts(t *testing.T) {
	table := "Measured on ...\n\n" +
		"| Check | Attempt | moat hardened (runc) | moat sandbox (runsc) | Docker defaults |\n" +
		"|---|---|---|---|---|\n" +
		"| `mount` | mount a tmpfs; blocked when it fails | blocked: EPERM | blocked: EPERM | **ALLOWED**: mounted |\n" +
		"| `pipes` | a \\| b | blocked: x \\| y: z | inconclusive: none | blocked: EPERM |\n"
	for _, tc := range []struct {
		name, table, want string
	}{
		{"table", table, "`mount` blocked blocked\n`pipes` blocked inconclusive\n"},
		{"docker differs", strings.ReplaceAll(table, "**ALLOWED**: mounted", "blocked: EPERM"), "`mount` blocked blocked\n`pipes` blocked inconclusive\n"},
		{"moat differs", strings.Replace(table, "blocked: EPERM |", "**ALLOWED**: mounted |", 1), "`mount` **ALLOWED** blocked\n`pipes` blocked inconclusive\n"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := moatVerdicts(tc.table); got != tc.want {
				t.Errorf("moatVerdicts = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReplaceBlock(t *testing.T) {
	doc := "# Title\n\nintro\n\n" + beginMarker + ": generated; do not edit -->\nold table\n" + endMarker + "\ntail\n"
	for _, tc := range []struct {
		name, doc, table, want, err string
	}{
		{"replaces", doc, "new table\n", "# Title\n\nintro\n\n" + beginMarker + ": generated; do not edit -->\nnew table\n" + endMarker + "\ntail\n", ""},
		{"no begin", "text\n" + endMarker + "\n", "x\n", "", "no"},
		{"no end", beginMarker + " -->\ntext\n", "x\n", "", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replaceBlock(tc.doc, tc.table)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("replaceBlock = %q, %v; want %q", got, err, tc.want)
			}
			inner, err := block(got)
			if err != nil || inner != tc.table {
				t.Errorf("block = %q, %v; want %q", inner, err, tc.table)
			}
		})
	}
}

// TestPauseProgram runs the hand-assembled pause program on the host: it must start, stay
// asleep as one process with one thread, and die of SIGKILL.
func TestPauseProgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(path, pauseProgram(t), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the pause program: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	cmd.Process.Kill()
	werr := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nThreads:\t1\n") || !strings.Contains(string(status), "\nState:\tS") {
		t.Errorf("the pause program is not one sleeping thread:\n%s", status)
	}
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ExitCode() != -1 {
		t.Errorf("the pause program ended with %v, want death by SIGKILL", werr)
	}
}
