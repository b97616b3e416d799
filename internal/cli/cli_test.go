package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/testutil"
)

// env isolates one test: moat's data in a fresh MOAT_HOME, no settings or credentials from the
// machine running the tests, and TMPDIR and the working directory pointed at empty directories
// that must still be empty when the test ends.
type testEnv struct {
	home string
	work string
}

func setup(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{home: t.TempDir(), work: t.TempDir()}
	tmp := t.TempDir()
	for k, v := range map[string]string{
		"MOAT_HOME": e.home, "MOAT_LOG_LEVEL": "", "MOAT_NO_COLOR": "", "NO_COLOR": "",
		"DOCKER_CONFIG": t.TempDir(), "DOCKER_HOST": "unix:///nonexistent/docker.sock", "TMPDIR": tmp,
	} {
		t.Setenv(k, v)
	}
	t.Chdir(e.work)
	t.Cleanup(func() {
		// Nothing is left in moat's own temporary directory, nor anywhere outside MOAT_HOME.
		assertEmpty(t, filepath.Join(e.home, "cache", "tmp"))
		assertEmpty(t, tmp)
	})
	return e
}

// assertEmpty fails unless dir is missing or empty, apart from the names in except.
func assertEmpty(t *testing.T, dir string, except ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !slices.Contains(except, e.Name()) {
			t.Errorf("%s holds %s, want nothing there", dir, e.Name())
		}
	}
}

// run calls Execute in-process and returns what it wrote and its exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Execute(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), ExitCode(err), err
}

// mustRun runs args and fails the test unless they succeed.
func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code, err := run(t, args...)
	if code != ExitOK {
		t.Fatalf("moat %s: exit %d, err %v, stderr:\n%s", strings.Join(args, " "), code, err, stderr)
	}
	return stdout, stderr
}

const osRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`

const dpkgStatus = `Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
`

// wantPackages are the packages the test image holds, name to version.
var wantPackages = map[string]string{
	"libc6":       "2.36-9+deb12u4",
	"bash":        "5.2.15-2+b2",
	"left-pad":    "1.3.0",
	"@types/node": "20.11.5",
}

// imageFiles are the test image's files, one slice per layer: a Debian base, then an npm app.
func imageFiles() [][]testutil.Entry {
	return [][]testutil.Entry{
		{
			testutil.Dir("etc"),
			testutil.File("etc/os-release", osRelease),
			testutil.Dir("var"), testutil.Dir("var/lib"), testutil.Dir("var/lib/dpkg"),
			testutil.File("var/lib/dpkg/status", dpkgStatus),
		},
		{
			testutil.Dir("app"), testutil.Dir("app/node_modules"),
			testutil.Dir("app/node_modules/left-pad"),
			testutil.File("app/node_modules/left-pad/package.json", `{"name": "left-pad", "version": "1.3.0", "license": "WTFPL"}`),
			testutil.Dir("app/node_modules/@types"), testutil.Dir("app/node_modules/@types/node"),
			testutil.File("app/node_modules/@types/node/package.json", `{"name": "@types/node", "version": "20.11.5", "license": "MIT"}`),
		},
	}
}

// testImage builds the test image for this host's architecture, so that no --platform is needed.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, files := range imageFiles() {
		layers = append(layers, testutil.Layer(t, files...))
	}
	return testutil.WithPlatform(t, testutil.Image(t, layers...), runtime.GOARCH)
}

// rootfs writes the test image's files into a directory, for dir: targets.
func rootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, files := range imageFiles() {
		for _, f := range files {
			p := filepath.Join(root, filepath.FromSlash(f.Name))
			if f.Body == "" {
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.WriteFile(p, []byte(f.Body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// targets serves the test image from every source moat reads, named by source; the registry
// targets need --insecure.
func targets(t *testing.T) map[string]string {
	t.Helper()
	img := testImage(t)
	reg := testutil.Registry(t)
	testutil.Push(t, reg+"/moat/test:1", img)
	archive := testutil.DockerArchive(t, img, "moat/test:1")
	return map[string]string{
		"registry":             reg + "/moat/test:1",
		"registry prefix":      "registry:" + reg + "/moat/test:1",
		"docker-archive":       "docker-archive:" + archive,
		"gzip docker-archive":  "docker-archive:" + testutil.GzipFile(t, archive),
		"oci-archive":          "oci-archive:" + testutil.OCIArchive(t, img),
		"gzip oci-archive":     "oci-archive:" + testutil.GzipFile(t, testutil.OCIArchive(t, img)),
		"oci-dir":              "oci-dir:" + testutil.OCIDir(t, img),
		"dir":                  "dir:" + rootfs(t),
		"unprefixed archive":   archive,
		"unprefixed directory": testutil.OCIDir(t, img),
	}
}

// sbomSchema compiles moat's JSON inventory schema from memory (no network).
func sbomSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	const id = "https://raw.githubusercontent.com/moatsec/moat/main/docs/formats/sbom.schema.json"
	return testutil.CompileSchema(t, id, map[string][]byte{id: report.SBOMSchema})
}

// checkMoatJSON validates a moat JSON inventory against the schema and returns its packages.
func checkMoatJSON(t *testing.T, s *jsonschema.Schema, out []byte) map[string]string {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("output does not match sbom.schema.json: %v", err)
	}
	var doc struct {
		Packages []struct{ Name, Version string } `json:"packages"`
		Distro   struct{ ID, VersionID string }   `json:"distro"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Distro.ID != "debian" || doc.Distro.VersionID != "12" {
		t.Errorf("distro = %+v, want debian 12", doc.Distro)
	}
	got := map[string]string{}
	for _, p := range doc.Packages {
		got[p.Name] = p.Version
	}
	return got
}

// packagesIn checks out is a document in format f and returns the packages it lists, name to
// version (for the table, every wanted name and version found on one line).
func packagesIn(t *testing.T, s *jsonschema.Schema, f report.Format, out []byte) map[string]string {
	t.Helper()
	got := map[string]string{}
	switch f {
	case report.FormatJSON:
		return checkMoatJSON(t, s, out)
	case report.FormatCycloneDXJSON:
		var doc struct {
			BOMFormat, SpecVersion string
			Components             []struct {
				Name, Version, Type string
				Group               string
			}
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.6" {
			t.Errorf("bomFormat %q specVersion %q, want CycloneDX 1.6", doc.BOMFormat, doc.SpecVersion)
		}
		for _, c := range doc.Components {
			name := c.Name
			if c.Group != "" {
				name = c.Group + "/" + c.Name
			}
			got[name] = c.Version
		}
	case report.FormatSPDXJSON:
		var doc struct {
			SPDXVersion string `json:"spdxVersion"`
			Packages    []struct {
				Name    string `json:"name"`
				Version string `json:"versionInfo"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if doc.SPDXVersion != "SPDX-2.3" {
			t.Errorf("spdxVersion %q, want SPDX-2.3", doc.SPDXVersion)
		}
		for _, p := range doc.Packages {
			got[p.Name] = p.Version
		}
	case report.FormatTable:
		if json.Valid(out) {
			t.Errorf("table output is JSON")
		}
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			for name, version := range wantPackages {
				if slices.Contains(fields, name) && slices.Contains(fields, version) {
					got[name] = version
				}
			}
		}
	default:
		t.Fatalf("no check for format %s", f)
	}
	return got
}

// checkPackages fails unless got holds every wanted package with its version.
func checkPackages(t *testing.T, got map[string]string) {
	t.Helper()
	for name, version := range wantPackages {
		if v, ok := got[name]; !ok {
			t.Errorf("package %s missing (have %v)", name, got)
		} else if v != version {
			t.Errorf("package %s version %q, want %q", name, v, version)
		}
	}
}

func TestSBOMSourcesAndFormats(t *testing.T) {
	setup(t)
	schema := sbomSchema(t)
	formats := []struct {
		flag string
		want report.Format
	}{
		{"table", report.FormatTable},
		{"json", report.FormatJSON},
		{"cyclonedx-json", report.FormatCycloneDXJSON},
		{"spdx-json", report.FormatSPDXJSON},
		{"moat-json", report.FormatJSON},
		{"cyclonedx", report.FormatCycloneDXJSON},
		{"cdx", report.FormatCycloneDXJSON},
		{"spdx", report.FormatSPDXJSON},
		{"SPDX-JSON", report.FormatSPDXJSON},
		{"", report.FormatJSON}, // the default when stdout is not a terminal
	}
	for source, target := range targets(t) {
		for _, f := range formats {
			t.Run(source+"/"+f.flag, func(t *testing.T) {
				args := []string{"sbom", "--insecure", target}
				if f.flag != "" {
					args = append(args, "-o", f.flag)
				}
				out, _ := mustRun(t, args...)
				checkPackages(t, packagesIn(t, schema, f.want, []byte(out)))
			})
		}
	}
}

// TestSBOMFormatsAgree checks that every format of one image lists every package of the JSON
// inventory, with the same version (CycloneDX and SPDX add the image and the OS as packages).
func TestSBOMFormatsAgree(t *testing.T) {
	setup(t)
	target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
	schema := sbomSchema(t)
	out, _ := mustRun(t, "sbom", target, "-o", "json")
	want := checkMoatJSON(t, schema, []byte(out))
	for _, f := range []report.Format{report.FormatCycloneDXJSON, report.FormatSPDXJSON} {
		out, _ := mustRun(t, "sbom", target, "-o", string(f))
		got := packagesIn(t, schema, f, []byte(out))
		for name, version := range want {
			if got[name] != version {
				t.Errorf("%s: package %s version %q, json says %q", f, name, got[name], version)
			}
		}
	}
}

func TestSBOMPlatform(t *testing.T) {
	setup(t)
	mk := func(arch, pkg string) v1.Image {
		l := testutil.Layer(t, testutil.File("app/node_modules/"+pkg+"/package.json", `{"name": "`+pkg+`", "version": "1.0.0"}`))
		return testutil.WithPlatform(t, testutil.Image(t, l), arch)
	}
	reg := testutil.Registry(t)
	ref := reg + "/moat/multi:1"
	testutil.Push(t, ref, testutil.Index(t, mk("amd64", "only-on-amd64"), mk("arm64", "only-on-arm64")))
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			out, _ := mustRun(t, "sbom", "--insecure", "--platform", "linux/"+arch, ref)
			var doc struct {
				Image    struct{ Platform string }
				Packages []struct{ Name string }
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Image.Platform != "linux/"+arch {
				t.Errorf("platform %q, want linux/%s", doc.Image.Platform, arch)
			}
			if len(doc.Packages) != 1 || doc.Packages[0].Name != "only-on-"+arch {
				t.Errorf("packages %+v, want only-on-%s", doc.Packages, arch)
			}
		})
	}
	_, _, code, err := run(t, "sbom", "--insecure", "--platform", "linux/s390x", ref)
	if code != ExitError || err == nil {
		t.Errorf("a platform the index lacks: exit %d (%v), want %d", code, err, ExitError)
	}
}

func TestSBOMOutputFile(t *testing.T) {
	schema := sbomSchema(t)
	tests := []struct {
		name   string
		args   []string
		format report.Format
	}{
		{"default format is json", nil, report.FormatJSON},
		{"json", []string{"-o", "json"}, report.FormatJSON},
		{"cyclonedx", []string{"-o", "cyclonedx-json"}, report.FormatCycloneDXJSON},
		{"spdx", []string{"-o", "spdx"}, report.FormatSPDXJSON},
		{"table", []string{"-o", "table"}, report.FormatTable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setup(t)
			target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
			dir := t.TempDir()
			p := filepath.Join(dir, "report.out")
			if err := os.WriteFile(p, []byte("old content"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _ := mustRun(t, append([]string{"sbom", target, "--output-file", p}, tt.args...)...)
			if out != "" {
				t.Errorf("stdout %q, want nothing when writing to a file", out)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			checkPackages(t, packagesIn(t, schema, tt.format, b))
			if tt.format == report.FormatTable && strings.Contains(string(b), "\033[") {
				t.Error("table in a file has colour escapes")
			}
			assertEmpty(t, dir, "report.out") // no temporary file left beside it
		})
	}

	t.Run("relative path", func(t *testing.T) {
		e := setup(t)
		target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
		mustRun(t, "sbom", target, "--output-file", "out.json")
		checkMoatJSON(t, schema, readFile(t, filepath.Join(e.work, "out.json")))
		assertEmpty(t, e.work, "out.json")
	})

	t.Run("failed run keeps the old file", func(t *testing.T) {
		setup(t)
		dir := t.TempDir()
		p := filepath.Join(dir, "report.json")
		if err := os.WriteFile(p, []byte("previous report"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, code, _ := run(t, "sbom", "docker-archive:/nonexistent/image.tar", "--output-file", p); code != ExitError {
			t.Errorf("exit %d, want %d", code, ExitError)
		}
		if b := readFile(t, p); string(b) != "previous report" {
			t.Errorf("output file changed to %q", b)
		}
		assertEmpty(t, dir, "report.json")
	})

	t.Run("missing directory", func(t *testing.T) {
		setup(t)
		target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
		p := filepath.Join(t.TempDir(), "no", "such", "dir", "out.json")
		out, _, code, err := run(t, "sbom", target, "--output-file", p)
		if code != ExitError || err == nil || !strings.Contains(err.Error(), filepath.Dir(p)) {
			t.Errorf("exit %d, err %v; want %d naming %s", code, err, ExitError, filepath.Dir(p))
		}
		if out != "" {
			t.Errorf("stdout %q, want nothing", out)
		}
	})
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"unknown command", []string{"frobnicate"}, "frobnicate"},
		{"unknown flag", []string{"sbom", "--frobnicate", "alpine"}, "--frobnicate"},
		{"unknown shorthand", []string{"sbom", "-Z", "alpine"}, "-Z"},
		{"unknown global flag", []string{"--frobnicate", "version"}, "--frobnicate"},
		{"missing argument", []string{"sbom"}, "1 arg"},
		{"two arguments", []string{"sbom", "alpine", "debian"}, "received 2"},
		{"flag without value", []string{"sbom", "alpine", "-o"}, "-o"},
		{"bad format", []string{"sbom", "-o", "nonsense", "alpine"}, "nonsense"},
		{"bad format with output file", []string{"sbom", "-o", "nonsense", "--output-file", "x.json", "alpine"}, "nonsense"},
		{"bad platform", []string{"sbom", "--platform", "garbage", "alpine"}, "garbage"},
		{"platform without arch", []string{"sbom", "--platform", "linux/", "alpine"}, "linux/"},
		{"bad log level", []string{"--log-level", "loud", "sbom", "alpine"}, "loud"},
		{"bad log level after command", []string{"sbom", "alpine", "--log-level", "loud"}, "loud"},
		{"bad boolean", []string{"sbom", "--insecure=maybe", "alpine"}, "maybe"},
		{"version with argument", []string{"version", "extra"}, "extra"},
		{"cache info with argument", []string{"cache", "info", "extra"}, "extra"},
		{"cache clean with argument", []string{"cache", "clean", "extra"}, "extra"},
		{"unknown cache command", []string{"cache", "frobnicate"}, "frobnicate"},
		{"completion for unknown shell", []string{"completion", "tcsh"}, "tcsh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			out, _, code, err := run(t, tt.args...)
			if code != ExitUsage {
				t.Fatalf("moat %s: exit %d (err %v), want %d", strings.Join(tt.args, " "), code, err, ExitUsage)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			// A usage error is found before moat touches anything.
			assertEmpty(t, e.home)
			assertEmpty(t, e.work)
		})
	}
}

// nonLoopbackAddr returns an address of this machine that is not on loopback, or "".
func nonLoopbackAddr() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

func TestInsecureOnlyOnLoopback(t *testing.T) {
	setup(t)
	// A server on a non-loopback address of this machine counts connections: --insecure must
	// refuse it before any traffic.
	var hits atomic.Int64
	host := "registry.example.com"
	if addr := nonLoopbackAddr(); addr != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err == nil {
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					hits.Add(1) // any connection, plain HTTP or a TLS handshake
				}
			}
			srv.Listener.Close()
			srv.Listener = l
			srv.Start()
			t.Cleanup(srv.Close)
			host = l.Addr().String()
		}
	}
	for _, ref := range []string{host + "/moat/test:1", "registry.example.com/moat/test:1", "docker.io/library/alpine:3.20"} {
		_, _, code, err := run(t, "sbom", "--insecure", ref)
		if code != ExitError || err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--insecure %s: exit %d, err %v; want %d naming loopback", ref, code, err, ExitError)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the non-loopback registry got %d connections", n)
	}
	if host != "registry.example.com" {
		// The counter works: without --insecure moat tries TLS, which the server fails.
		if _, _, code, _ := run(t, "sbom", host+"/moat/test:1"); code != ExitError {
			t.Errorf("TLS to a plain HTTP server: exit %d, want %d", code, ExitError)
		}
		if hits.Load() == 0 {
			t.Error("the connection counter saw nothing")
		}
	}
}

func TestRuntimeErrors(t *testing.T) {
	setup(t)
	reg := testutil.Registry(t)
	testutil.Push(t, reg+"/moat/test:1", testImage(t))
	notImage := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notImage, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string // each in the error message
	}{
		{"missing docker archive", []string{"sbom", "docker-archive:/nonexistent"}, []string{"/nonexistent"}},
		{"missing oci archive", []string{"sbom", "oci-archive:/nonexistent/image.tar"}, []string{"/nonexistent/image.tar"}},
		{"missing oci dir", []string{"sbom", "oci-dir:/nonexistent/layout"}, []string{"/nonexistent/layout"}},
		{"missing dir", []string{"sbom", "dir:/nonexistent/rootfs"}, []string{"/nonexistent/rootfs"}},
		{"not an archive", []string{"sbom", "docker-archive:" + notImage}, []string{notImage}},
		{"unknown unprefixed file", []string{"sbom", notImage}, []string{notImage}},
		{"missing repository", []string{"sbom", "--insecure", reg + "/moat/missing:1"}, []string{"moat/missing"}},
		{"missing tag", []string{"sbom", "--insecure", reg + "/moat/test:2"}, []string{"moat/test:2"}},
		{"bad reference", []string{"sbom", "--insecure", "UPPER/Case::x"}, []string{"UPPER/Case::x"}},
		{"no docker daemon", []string{"sbom", "docker:moat/test:1"}, []string{"moat/test:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, code, err := run(t, tt.args...)
			if code != ExitError {
				t.Fatalf("moat %s: exit %d (err %v), want %d", strings.Join(tt.args, " "), code, err, ExitError)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

var cachedLayers = regexp.MustCompile(`cached layers: (\d+)`)

// cacheCount runs `cache info` and returns the number of cached layers.
func cacheCount(t *testing.T, home string) int {
	t.Helper()
	out, _ := mustRun(t, "cache", "info")
	m := cachedLayers.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("cache info printed no count:\n%s", out)
	}
	if !strings.Contains(out, filepath.Join(home, "cache", "moat.db")) {
		t.Errorf("cache info does not name the store under MOAT_HOME:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestCache(t *testing.T) {
	e := setup(t)
	target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
	// The report's creation time is left out: two runs may straddle a second.
	created := regexp.MustCompile(`(?m)^  "created": "[^"]*",\n`)
	sbom := func(extra ...string) (hit bool, out string) {
		t.Helper()
		out, stderr := mustRun(t, append([]string{"sbom", target, "--log-level", "debug"}, extra...)...)
		if !created.MatchString(out) {
			t.Fatalf("no creation time in the report:\n%s", out)
		}
		return strings.Contains(stderr, "layer cache hit"), created.ReplaceAllString(out, "")
	}

	if n := cacheCount(t, e.home); n != 0 {
		t.Fatalf("fresh cache holds %d layers", n)
	}
	hit, first := sbom()
	if hit {
		t.Error("first run hit the cache")
	}
	n := cacheCount(t, e.home)
	if n != len(imageFiles()) {
		t.Errorf("cache holds %d layers, want %d", n, len(imageFiles()))
	}
	hit, second := sbom()
	if !hit {
		t.Error("second run logged no layer cache hit")
	}
	if first != second {
		t.Errorf("a cached run reports differently:\n%s\nvs\n%s", first, second)
	}
	if hit, out := sbom("--no-cache"); hit {
		t.Error("--no-cache hit the cache")
	} else if out != first {
		t.Errorf("--no-cache reports differently:\n%s\nvs\n%s", first, out)
	}
	if got := cacheCount(t, e.home); got != n {
		t.Errorf("after --no-cache the cache holds %d layers, want %d", got, n)
	}

	out, _ := mustRun(t, "cache", "clean")
	if !strings.Contains(out, "cache cleared") {
		t.Errorf("cache clean printed %q", out)
	}
	if n := cacheCount(t, e.home); n != 0 {
		t.Errorf("after cache clean the cache holds %d layers", n)
	}
	if hit, _ := sbom(); hit {
		t.Error("the run after cache clean hit the cache")
	}
	if n := cacheCount(t, e.home); n == 0 {
		t.Error("the run after cache clean did not fill the cache again")
	}
	// A stale temporary file an interrupted run left is removed by cache clean.
	stale := filepath.Join(e.home, "cache", "tmp", "moat-spill-123")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cache", "clean")
	assertEmpty(t, e.home, "cache")
	assertEmpty(t, filepath.Join(e.home, "cache"), "moat.db", "tmp")
}

func TestLogging(t *testing.T) {
	setup(t)
	target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
	// A partly broken status file makes a warning.
	broken := testutil.Image(t, testutil.Layer(t,
		testutil.File("var/lib/dpkg/status", "Package: good\nStatus: install ok installed\nVersion: 1.0\n\nthis is not a field\nVersion: 2\n"),
	))
	brokenTarget := "oci-dir:" + testutil.OCIDir(t, testutil.WithPlatform(t, broken, runtime.GOARCH))

	tests := []struct {
		name     string
		args     []string
		env      string // MOAT_LOG_LEVEL
		want     []string
		wantNone bool
	}{
		{"quiet success", []string{"sbom", "-q", target}, "", nil, true},
		{"quiet overrides debug", []string{"sbom", "--quiet", "--log-level", "debug", target}, "", nil, true},
		{"quiet hides warnings", []string{"sbom", "--quiet", brokenTarget}, "", nil, true},
		{"default success is silent", []string{"sbom", target}, "", nil, true},
		{"warnings by default", []string{"sbom", brokenTarget}, "", []string{"level=WARN", "could not be fully read"}, false},
		{"info", []string{"sbom", "--log-level", "info", target}, "", []string{"image opened", "inventory done"}, false},
		{"level from the environment", []string{"sbom", target}, "info", []string{"inventory done"}, false},
		{"flag beats the environment", []string{"sbom", "--log-level", "error", brokenTarget}, "debug", nil, true},
		{"level names ignore case", []string{"sbom", "--log-level", "DEBUG", target}, "", []string{"level=DEBUG"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MOAT_LOG_LEVEL", tt.env)
			out, stderr := mustRun(t, tt.args...)
			if out == "" {
				t.Error("no report on stdout")
			}
			if tt.wantNone && stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestNoColor(t *testing.T) {
	setup(t)
	target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
	// A buffer is not a terminal: no colour, whatever the flags say.
	for _, args := range [][]string{{"sbom", "-o", "table", target}, {"sbom", "-o", "table", "--no-color", target}} {
		out, _ := mustRun(t, args...)
		if strings.Contains(out, "\033[") {
			t.Errorf("moat %s: colour escapes in output to a buffer", strings.Join(args, " "))
		}
	}
}

func TestVersionHelpCompletion(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"version", []string{"version"}, []string{"moat dev"}},
		{"version flag", []string{"--version"}, []string{"moat version dev"}},
		{"help", []string{"--help"}, []string{"Examples:", "moat sbom alpine:3.20", "Available Commands:", "sbom", "cache", "--log-level", "--quiet"}},
		{"no command", nil, []string{"Available Commands:", "sbom"}},
		{"help command", []string{"help", "sbom"}, []string{"Examples:", "moat sbom debian:12"}},
		{"sbom help", []string{"sbom", "--help"}, []string{"Examples:", "moat sbom debian:12", "docker-archive:PATH", "registry:NAME", "oci-archive:PATH", "oci-dir:PATH", "docker:NAME", "dir:PATH", "--output-file", "--no-cache", "--platform", "--insecure", "cyclonedx-json"}},
		{"sbom -h", []string{"sbom", "-h"}, []string{"Examples:"}},
		{"run help after global flags", []string{"--log-level", "error", "-q", "run", "--help"}, []string{"moat run --rm oci-dir:./app-layout", "--rm", "Global Flags:", "--log-level"}},
		{"cache help", []string{"cache", "--help"}, []string{"info", "clean"}},
		{"cache without subcommand", []string{"cache"}, []string{"info", "clean"}},
		{"completion without shell", []string{"completion"}, []string{"bash", "zsh", "fish", "powershell"}},
		{"completion bash", []string{"completion", "bash"}, []string{"bash completion", "moat"}},
		{"completion zsh", []string{"completion", "zsh"}, []string{"#compdef moat"}},
		{"completion fish", []string{"completion", "fish"}, []string{"complete -c moat"}},
		{"completion powershell", []string{"completion", "powershell"}, []string{"Register-ArgumentCompleter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			out, stderr := mustRun(t, tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			if stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			assertEmpty(t, e.home)
		})
	}
}

// TestCommandNamed checks how Execute finds the one top-level command to build: every entry
// of commands builds the command it is named after, and only a plain command after the
// global flags is picked; anything else builds the whole tree.
func TestCommandNamed(t *testing.T) {
	for _, c := range commands {
		if got := c.build(&app{}).Name(); got != c.name {
			t.Errorf("commands entry %q builds %q", c.name, got)
		}
	}
	if all := newRoot(&app{}).Commands(); len(all) != len(commands)+2 { // and help, completion
		t.Errorf("the whole tree has %d commands, want the %d listed and help and completion", len(all), len(commands))
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rm", "oci-dir:x"}, "run"},
		{[]string{"--log-level", "debug", "--quiet", "ps", "-a"}, "ps"},
		{[]string{"--log-level=info", "-q", "--no-color", "scan", "x"}, "scan"},
		{[]string{"--log-level", "run"}, ""}, // "run" is the level: cobra reports it
		{[]string{"--help"}, ""},
		{[]string{"-h", "run"}, ""},
		{[]string{"--version"}, ""},
		{[]string{"help", "run"}, ""},
		{[]string{"completion", "bash"}, ""},
		{[]string{"__complete", "run", ""}, ""},
		{[]string{"runn"}, ""}, // cobra suggests "run" from the whole tree
		{[]string{"--", "run"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := commandNamed(tt.args); got != tt.want {
			t.Errorf("commandNamed(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestCompletionScriptIsBash(t *testing.T) {
	setup(t)
	out, _ := mustRun(t, "completion", "bash")
	for _, w := range []string{"__start_moat", "complete -o default -F __start_moat moat"} {
		if !strings.Contains(out, w) {
			t.Errorf("bash completion lacks %q", w)
		}
	}
}

func TestMOATHomeMustBeAbsolute(t *testing.T) {
	setup(t)
	t.Setenv("MOAT_HOME", "relative/home")
	_, _, code, err := run(t, "cache", "info")
	if code != ExitError || err == nil || !strings.Contains(err.Error(), "MOAT_HOME") {
		t.Errorf("exit %d, err %v; want %d naming MOAT_HOME", code, err, ExitError)
	}
}

func TestXDGDirectories(t *testing.T) {
	setup(t)
	cache := t.TempDir()
	t.Setenv("MOAT_HOME", "")
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	out, _ := mustRun(t, "cache", "info")
	if want := filepath.Join(cache, "moat", "moat.db"); !strings.Contains(out, want) {
		t.Errorf("cache info does not name %s:\n%s", want, out)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{&UsageError{Err: errors.New("bad flag")}, ExitUsage},
		{errorsJoin(&UsageError{Err: errors.New("bad flag")}), ExitUsage},
		{context.Canceled, ExitError},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("context"), err) }

// TestRuntimeErrorsAreNotUsage checks that an error from running a command is never taken for
// a usage error because of its wording.
func TestRuntimeErrorsAreNotUsage(t *testing.T) {
	setup(t)
	for _, p := range []string{"/nonexistent/unknown command", "/nonexistent/accepts 1 arg(s)", "/nonexistent/unknown flag"} {
		_, _, code, err := run(t, "sbom", "docker-archive:"+p)
		if code != ExitError {
			t.Errorf("missing %q: exit %d (%v), want %d", p, code, err, ExitError)
		}
	}
}

func TestCanceled(t *testing.T) {
	setup(t)
	target := "oci-dir:" + testutil.OCIDir(t, testImage(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	err := Execute(ctx, []string{"sbom", target}, strings.NewReader(""), &out, &errOut)
	if ExitCode(err) != ExitError {
		t.Errorf("canceled run: exit %d (%v), want %d", ExitCode(err), err, ExitError)
	}
	if out.Len() != 0 {
		t.Errorf("canceled run wrote %d bytes of report", out.Len())
	}
}
