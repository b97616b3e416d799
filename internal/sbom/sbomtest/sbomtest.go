// Package sbomtest is the conformance suite that every sbom.Cataloger passes: it checks the
// cataloger's identity, the packages it must find in sample files, that it is deterministic, and
// that truncated, empty and random input never makes it panic.
package sbomtest

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/sbom"
)

// Case is one file handed to a cataloger and what it must find there.
type Case struct {
	// Name names the sub-test.
	Name string
	// Path is the file's path in the image, without a leading slash.
	Path string
	// Mode defaults to 0644.
	Mode fs.FileMode
	// Content is the file's body.
	Content []byte
	// Want lists packages that must be found. Name, Version and Type must match; Arch,
	// Source, Licenses and Metadata entries are compared only where the wanted package sets them.
	Want []sbom.Package
	// WantCount, when positive, is the exact number of packages expected.
	WantCount int
	// WantOwners lists OS packages that must be reported as owning files, with at least the
	// given paths.
	WantOwners []sbom.FileOwner
	// WantRelease, when set, must equal the reported release (Source excluded).
	WantRelease *sbom.Release
	// WantWarning means the result must carry at least one warning.
	WantWarning bool
	// WantErr means Parse must fail.
	WantErr bool
	// NoMatch means Match must reject the file, and Parse is not called.
	NoMatch bool
}

func (c Case) info() sbom.FileInfo {
	mode := c.Mode
	if mode == 0 {
		mode = 0o644
	}
	return sbom.FileInfo{Path: c.Path, Mode: mode, Size: int64(len(c.Content))}
}

var knownTypes = []sbom.Type{sbom.TypeDeb, sbom.TypeAPK, sbom.TypeRPM, sbom.TypeGolang, sbom.TypeNPM,
	sbom.TypePyPI, sbom.TypeMaven, sbom.TypeCargo, sbom.TypeGem, sbom.TypeComposer, sbom.TypeNuGet}

// Run runs the conformance suite against c.
func Run(t *testing.T, c sbom.Cataloger, cases []Case) {
	t.Helper()
	if c.Name() == "" || strings.ToLower(c.Name()) != c.Name() || strings.ContainsAny(c.Name(), " /:") {
		t.Fatalf("cataloger name %q must be a non-empty lowercase word", c.Name())
	}
	if c.Version() < 1 {
		t.Fatalf("cataloger %s: Version() = %d, want >= 1", c.Name(), c.Version())
	}
	if len(cases) == 0 {
		t.Fatalf("cataloger %s: the conformance suite needs at least one case", c.Name())
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			fi := tc.info()
			if got := c.Match(fi); got == tc.NoMatch {
				t.Fatalf("Match(%q) = %v, want %v", fi.Path, got, !tc.NoMatch)
			}
			if tc.NoMatch {
				return
			}
			res, err := parse(t, c, fi, tc.Content)
			if tc.WantErr {
				if err == nil {
					t.Fatalf("Parse(%q) succeeded, want an error", fi.Path)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", fi.Path, err)
			}
			if res == nil {
				t.Fatalf("Parse(%q) returned a nil result and no error", fi.Path)
			}
			CheckResult(t, res)
			checkWant(t, tc, res)
			again, err := parse(t, c, fi, tc.Content)
			if err != nil || !reflect.DeepEqual(res, again) {
				t.Errorf("Parse(%q) is not deterministic: second call gave %+v, %v", fi.Path, again, err)
			}
			robust(t, c, fi, tc.Content)
		})
	}
}

func checkWant(t *testing.T, tc Case, res *sbom.Result) {
	t.Helper()
	if tc.WantCount > 0 && len(res.Packages) != tc.WantCount {
		t.Errorf("found %d packages, want %d: %v", len(res.Packages), tc.WantCount, names(res.Packages))
	}
	for _, w := range tc.Want {
		if !slices.ContainsFunc(res.Packages, func(p sbom.Package) bool { return matches(w, p) }) {
			t.Errorf("missing package %s %s@%s (arch %q, source %+v, licenses %v, metadata %v); found %v",
				w.Type, w.Name, w.Version, w.Arch, w.Source, w.Licenses, w.Metadata, names(res.Packages))
		}
	}
	for _, w := range tc.WantOwners {
		ok := slices.ContainsFunc(res.Owners, func(o sbom.FileOwner) bool {
			if o.Type != w.Type || o.Package != w.Package {
				return false
			}
			for _, p := range w.Paths {
				if !slices.Contains(o.Paths, p) {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Errorf("missing owner %s %s of %v; got %+v", w.Type, w.Package, w.Paths, res.Owners)
		}
	}
	if tc.WantRelease != nil {
		got := res.Release
		if got != nil {
			cp := *got
			cp.Source = ""
			got = &cp
		}
		if !reflect.DeepEqual(got, tc.WantRelease) {
			t.Errorf("release = %+v, want %+v", got, tc.WantRelease)
		}
	}
	if tc.WantWarning && len(res.Warnings) == 0 {
		t.Errorf("want a warning, got none")
	}
}

func matches(w, p sbom.Package) bool {
	if w.Name != p.Name || w.Version != p.Version || w.Type != p.Type {
		return false
	}
	if w.Arch != "" && w.Arch != p.Arch {
		return false
	}
	if w.Source != nil && (p.Source == nil || *w.Source != *p.Source) {
		return false
	}
	if w.Licenses != nil && !slices.Equal(w.Licenses, p.Licenses) {
		return false
	}
	for k, v := range w.Metadata {
		if p.Metadata[k] != v {
			return false
		}
	}
	return true
}

func names(ps []sbom.Package) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, string(p.Type)+":"+p.Name+"@"+p.Version)
	}
	return out
}

// CheckResult checks the invariants every result holds, whatever the input.
func CheckResult(t testing.TB, res *sbom.Result) {
	t.Helper()
	if res == nil {
		return
	}
	for _, p := range res.Packages {
		if p.Name == "" || p.Type == "" {
			t.Errorf("package with empty name or type: %+v", p)
		}
		if !slices.Contains(knownTypes, p.Type) {
			t.Errorf("package %s has unknown type %q", p.Name, p.Type)
		}
		if len(p.Locations) != 0 || p.Layer != nil || p.PURL != "" || p.OwnedBy != "" {
			t.Errorf("package %s: locations, layer, purl and ownedBy are the engine's to set", p.Name)
		}
		if strings.ContainsAny(p.Name, "\x00\n") || strings.ContainsAny(p.Version, "\x00\n") {
			t.Errorf("package %q@%q has control characters in its name or version", p.Name, p.Version)
		}
	}
	for _, o := range res.Owners {
		if !o.Type.IsOS() || o.Package == "" {
			t.Errorf("owner %+v must name an OS package", o)
		}
		for _, p := range o.Paths {
			if strings.HasPrefix(p, "/") {
				t.Errorf("owner %s path %q must not start with /", o.Package, p)
			}
		}
	}
}

func parse(t testing.TB, c sbom.Cataloger, fi sbom.FileInfo, data []byte) (res *sbom.Result, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Parse(%q) panicked on %d bytes: %v", fi.Path, len(data), r)
		}
	}()
	fi.Size = int64(len(data))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Parse(ctx, fi, bytes.NewReader(data))
}

// robust feeds truncations, corruptions and empty input; only panics and broken invariants fail.
func robust(t *testing.T, c sbom.Cataloger, fi sbom.FileInfo, data []byte) {
	t.Helper()
	rng := rand.New(rand.NewSource(int64(len(data))))
	inputs := [][]byte{nil, {0}, bytes.Repeat([]byte{0xff}, 64)}
	for _, cut := range []int{1, 7, len(data) / 3, len(data) / 2, len(data) - 1} {
		if cut > 0 && cut < len(data) {
			inputs = append(inputs, data[:cut])
		}
	}
	for i := 0; i < 8 && len(data) > 0; i++ {
		b := slices.Clone(data)
		for j := 0; j < 1+len(b)/64; j++ {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		res, _ := parse(t, c, fi, in)
		CheckResult(t, res)
	}
}

// Fuzz is the body of a cataloger's fuzz test: seeds come from the cases, and every input must
// leave Parse without a panic and with the result invariants intact.
func Fuzz(f *testing.F, c sbom.Cataloger, cases []Case) {
	f.Helper()
	var paths []sbom.FileInfo
	for _, tc := range cases {
		if tc.NoMatch {
			continue
		}
		f.Add(len(paths), tc.Content)
		paths = append(paths, tc.info())
	}
	if len(paths) == 0 {
		f.Fatal("no seed case that the cataloger matches")
	}
	f.Fuzz(func(t *testing.T, which int, data []byte) {
		if which < 0 {
			which = -which
		}
		fi := paths[which%len(paths)]
		res, _ := parse(t, c, fi, data)
		CheckResult(t, res)
	})
}
