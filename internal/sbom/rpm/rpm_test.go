package rpm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ndbBlobAt returns the offset of the blob header the i-th slot of an ndb file points to.
func ndbBlobAt(t testing.TB, db []byte, i int) int {
	t.Helper()
	slot := 32 + 16*i
	if binary.LittleEndian.Uint32(db[slot:]) != ndbSlotMagic || binary.LittleEndian.Uint32(db[slot+4:]) == 0 {
		t.Fatalf("slot %d is not a used slot", i)
	}
	return int(binary.LittleEndian.Uint32(db[slot+8:])) * ndbBlockSize
}

func patched(b []byte, off int, with ...byte) []byte {
	b = bytes.Clone(b)
	copy(b[off:], with)
	return b
}

var vendorFedora = map[string]string{"vendor": "Fedora Project"}

func cases(t testing.TB) []sbomtest.Case {
	fedora := fixture(t, "fedora35/rpmdb.sqlite")
	fedora512 := fixture(t, "fedora35-512/rpmdb.sqlite")
	centos := fixture(t, "centos7/Packages")
	sle := fixture(t, "sle15-bci/Packages.db")
	ubi := fixture(t, "ubi8-libuuid/Packages")

	// A blob whose header no longer says it belongs to its slot, and a header whose index
	// length is nonsense: the first is skipped by our reader, the second by go-rpmdb.
	sleBadBlob := patched(sle, ndbBlobAt(t, sle, 1), 'X')
	sleBadHeader := patched(sle, ndbBlobAt(t, sle, 2)+ndbBlobHeader, 0x7f, 0xff, 0xff, 0xff)

	return []sbomtest.Case{
		{
			Name: "fedora 35 sqlite", Path: "var/lib/rpm/rpmdb.sqlite", Content: fedora, WantCount: 5,
			Want: []sbom.Package{
				{Name: "libgcc", Version: "11.2.1-1.fc35", Type: sbom.TypeRPM, Arch: "x86_64",
					Source:   &sbom.Source{Name: "gcc", Version: "11.2.1-1.fc35"},
					Licenses: []string{"GPLv3+ and GPLv3+ with exceptions and GPLv2+ with exceptions and LGPLv2+ and BSD"},
					Metadata: vendorFedora},
				{Name: "gmp", Version: "1:6.2.0-7.fc35", Type: sbom.TypeRPM, Arch: "x86_64",
					Source: &sbom.Source{Name: "gmp", Version: "1:6.2.0-7.fc35"}, Licenses: []string{"LGPLv3+ or GPLv2+"}},
				{Name: "shadow-utils", Version: "2:4.9-7.fc35", Type: sbom.TypeRPM,
					Source: &sbom.Source{Name: "shadow-utils", Version: "2:4.9-7.fc35"}},
				{Name: "fedora-release-identity-container", Version: "35-35", Type: sbom.TypeRPM, Arch: "noarch",
					Source: &sbom.Source{Name: "fedora-release", Version: "35-35"}},
				{Name: "bash", Version: "5.1.8-2.fc35", Type: sbom.TypeRPM, Licenses: []string{"GPLv3+"}},
			},
			WantOwners: []sbom.FileOwner{
				{Type: sbom.TypeRPM, Package: "bash", Paths: []string{"usr/bin/bash", "usr/bin/sh"}},
				{Type: sbom.TypeRPM, Package: "libgcc", Paths: []string{"lib64/libgcc_s.so.1"}},
			},
		},
		{
			Name: "fedora 35 sqlite with 512-byte pages", Path: "usr/lib/sysimage/rpm/rpmdb.sqlite", Content: fedora512, WantCount: 2,
			Want: []sbom.Package{
				{Name: "gmp", Version: "1:6.2.0-7.fc35", Type: sbom.TypeRPM},
				{Name: "fedora-release-identity-container", Version: "35-35", Type: sbom.TypeRPM},
			},
		},
		{
			Name: "centos 7 berkeley db", Path: "var/lib/rpm/Packages", Content: centos, WantCount: 5,
			Want: []sbom.Package{
				{Name: "openssl-libs", Version: "1:1.0.2k-12.el7", Type: sbom.TypeRPM, Arch: "x86_64",
					Source: &sbom.Source{Name: "openssl", Version: "1:1.0.2k-12.el7"}, Licenses: []string{"OpenSSL"},
					Metadata: map[string]string{"vendor": "CentOS"}},
				{Name: "vim-minimal", Version: "2:7.4.160-4.el7", Type: sbom.TypeRPM, Source: &sbom.Source{Name: "vim", Version: "2:7.4.160-4.el7"}},
				{Name: "centos-release", Version: "7-5.1804.4.el7.centos", Type: sbom.TypeRPM},
				{Name: "libgcc", Version: "4.8.5-28.el7_5.1", Type: sbom.TypeRPM, Source: &sbom.Source{Name: "gcc", Version: "4.8.5-28.el7_5.1"}},
				{Name: "bash", Version: "4.2.46-30.el7", Type: sbom.TypeRPM},
			},
			WantOwners: []sbom.FileOwner{{Type: sbom.TypeRPM, Package: "bash", Paths: []string{"usr/bin/bash"}}},
		},
		{
			Name: "ubi 8 berkeley db", Path: "var/lib/rpm/Packages", Content: ubi, WantCount: 1,
			Want: []sbom.Package{{Name: "libuuid", Version: "2.32.1-42.el8_8", Type: sbom.TypeRPM, Arch: "x86_64",
				Source: &sbom.Source{Name: "util-linux", Version: "2.32.1-42.el8_8"}, Licenses: []string{"BSD"},
				Metadata: map[string]string{"vendor": "Red Hat, Inc."}}},
			WantOwners: []sbom.FileOwner{{Type: sbom.TypeRPM, Package: "libuuid", Paths: []string{"usr/lib64/libuuid.so.1"}}},
		},
		{
			Name: "sles 15 ndb", Path: "usr/lib/sysimage/rpm/Packages.db", Content: sle, WantCount: 35,
			Want: []sbom.Package{
				{Name: "glibc", Version: "2.31-9.3.2", Type: sbom.TypeRPM, Arch: "x86_64",
					Licenses: []string{"LGPL-2.1-or-later AND LGPL-2.1-or-later WITH GCC-exception-2.0 AND GPL-2.0-or-later"},
					Metadata: map[string]string{"vendor": "SUSE LLC <https://www.suse.com/>"}},
				{Name: "libgmp10", Version: "6.1.2-4.6.1", Type: sbom.TypeRPM, Source: &sbom.Source{Name: "gmp", Version: "6.1.2-4.6.1"}},
				{Name: "sles-release", Version: "15.3-55.4.1", Type: sbom.TypeRPM},
			},
			WantOwners: []sbom.FileOwner{{Type: sbom.TypeRPM, Package: "bash", Paths: []string{"bin/bash"}}},
		},
		{Name: "ndb with a misplaced blob", Path: "var/lib/rpm/Packages.db", Content: sleBadBlob, WantCount: 34, WantWarning: true},
		{Name: "ndb with a malformed header", Path: "var/lib/rpm/Packages.db", Content: sleBadHeader, WantCount: 34, WantWarning: true},
		{Name: "ndb truncated", Path: "var/lib/rpm/Packages.db", Content: sle[:len(sle)/2], WantWarning: true,
			Want: []sbom.Package{{Name: "system-user-root", Version: "20190513-3.3.1", Type: sbom.TypeRPM}}},
		{Name: "sqlite truncated to its first page", Path: "var/lib/rpm/rpmdb.sqlite", Content: fedora[:4096], WantErr: true},
		{Name: "sqlite without a Packages table", Path: "var/lib/rpm/rpmdb.sqlite",
			Content: bytes.ReplaceAll(fedora512, []byte("Packages"), []byte("Packagez")), WantErr: true},
		{Name: "berkeley db truncated to its metadata", Path: "var/lib/rpm/Packages", Content: centos[:4096], WantErr: true},
		{Name: "not a database", Path: "var/lib/rpm/Packages", Content: []byte("this is not an rpm database\n"), WantErr: true},
		{Name: "empty", Path: "var/lib/rpm/rpmdb.sqlite", Content: nil, WantErr: true},
		{Name: "index database", Path: "var/lib/rpm/Basenames", NoMatch: true},
		{Name: "sqlite write-ahead log", Path: "var/lib/rpm/rpmdb.sqlite-wal", NoMatch: true},
		{Name: "elsewhere", Path: "usr/share/rpm/Packages", NoMatch: true},
	}
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(WithTempDir(t.TempDir())), cases(t)) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(WithTempDir(f.TempDir())), cases(f)) }

func TestTempFileRemoved(t *testing.T) {
	dir := t.TempDir()
	c := New(WithTempDir(dir))
	for _, name := range []string{"fedora35/rpmdb.sqlite", "centos7/Packages"} {
		data := fixture(t, name)
		if _, err := c.Parse(context.Background(), sbom.FileInfo{Path: "var/lib/rpm/x"}, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		// A database that fails must clean up too.
		_, _ = c.Parse(context.Background(), sbom.FileInfo{Path: "var/lib/rpm/x"}, bytes.NewReader(data[:len(data)/3]))
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestUnusableTempDir(t *testing.T) {
	c := New(WithTempDir(filepath.Join(t.TempDir(), "missing")))
	_, err := c.Parse(context.Background(), sbom.FileInfo{Path: "var/lib/rpm/Packages"}, bytes.NewReader(fixture(t, "ubi8-libuuid/Packages")))
	if err == nil {
		t.Fatal("Parse succeeded without a usable temporary directory")
	}
}

func TestDefaultTempDir(t *testing.T) {
	if New().tempDir != os.TempDir() {
		t.Errorf("default temporary directory %q, want %q", New().tempDir, os.TempDir())
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(WithTempDir(t.TempDir())).Parse(ctx, sbom.FileInfo{Path: "var/lib/rpm/Packages.db"}, bytes.NewReader(fixture(t, "sle15-bci/Packages.db")))
	if err == nil {
		t.Fatal("Parse succeeded with a canceled context")
	}
}

func TestTooLarge(t *testing.T) {
	_, err := New(WithTempDir(t.TempDir())).Parse(context.Background(), sbom.FileInfo{Path: "var/lib/rpm/Packages"}, sizedContent{maxDBSize + 1})
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("err = %v, want the size limit", err)
	}
}

// sizedContent claims a size without holding the bytes.
type sizedContent struct{ n int64 }

func (s sizedContent) Read([]byte) (int, error)          { return 0, nil }
func (s sizedContent) ReadAt([]byte, int64) (int, error) { return 0, nil }
func (s sizedContent) Seek(int64, int) (int64, error)    { return 0, nil }
func (s sizedContent) Size() int64                       { return s.n }

// bdbLoop builds a Berkeley DB hash file whose one package header lives in an overflow page
// that points back to itself, and claims tlen bytes.
func bdbLoop(tlen uint32) []byte {
	const ps = 512
	b := make([]byte, 3*ps)
	le := binary.LittleEndian
	le.PutUint32(b[12:], bdbHashMagic)
	le.PutUint32(b[20:], ps)
	le.PutUint32(b[32:], 2) // last page
	b[25] = bdbMetaPage
	hp := b[ps:]
	le.PutUint16(hp[20:], 2) // entries: one key/data pair
	hp[25] = bdbHashPage
	le.PutUint16(hp[26:], ps-8)  // key
	le.PutUint16(hp[28:], ps-24) // data
	hp[ps-8] = bdbKeyData
	hp[ps-24] = bdbOffPage
	le.PutUint32(hp[ps-24+4:], 2)
	le.PutUint32(hp[ps-24+8:], tlen)
	ov := b[2*ps:]
	ov[25] = bdbOverflow
	le.PutUint32(ov[16:], 2) // next: itself
	le.PutUint16(ov[22:], 10)
	return b
}

func TestHostileBerkeleyDB(t *testing.T) {
	for _, tlen := range []uint32{1000, 1 << 30} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err := New(WithTempDir(t.TempDir())).Parse(context.Background(), sbom.FileInfo{Path: "var/lib/rpm/Packages"}, bytes.NewReader(bdbLoop(tlen)))
			if err == nil && len(res.Packages) > 0 {
				t.Errorf("tlen %d: found packages in a hostile database: %v", tlen, res.Packages)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("tlen %d: Parse did not return", tlen)
		}
	}
}

func TestParseSourceRPM(t *testing.T) {
	tests := []struct {
		in, name, version string
		ok                bool
	}{
		{"openssl-3.0.7-27.el9.src.rpm", "openssl", "3.0.7-27.el9", true},
		{"util-linux-2.32.1-42.el8_8.src.rpm", "util-linux", "2.32.1-42.el8_8", true},
		{"kernel-5.14.0-427.13.1.el9_4.nosrc.rpm", "kernel", "5.14.0-427.13.1.el9_4", true},
		{"python3.11-3.11.7-1.el9.src.rpm", "python3.11", "3.11.7-1.el9", true},
		{"", "", "", false},
		{"(none)", "", "", false},
		{"noversion.src.rpm", "", "", false},
		{"-1-2.src.rpm", "", "", false},
		{"a--2.src.rpm", "", "", false},
		{"a-1-.src.rpm", "", "", false},
		{"with space-1-2.src.rpm", "", "", false},
	}
	for _, tt := range tests {
		name, version, ok := parseSourceRPM(tt.in)
		if name != tt.name || version != tt.version || ok != tt.ok {
			t.Errorf("parseSourceRPM(%q) = %q, %q, %v; want %q, %q, %v", tt.in, name, version, ok, tt.name, tt.version, tt.ok)
		}
	}
}

func TestToPackage(t *testing.T) {
	zero, one := 0, 1
	tests := []struct {
		name string
		in   rpmdb.PackageInfo
		want string // version, or "" when the header must be rejected
		src  string
	}{
		{"no epoch", rpmdb.PackageInfo{Name: "bash", Version: "5.1.8", Release: "2.fc35", SourceRpm: "bash-5.1.8-2.fc35.src.rpm"}, "5.1.8-2.fc35", "bash 5.1.8-2.fc35"},
		{"zero epoch is no epoch", rpmdb.PackageInfo{Epoch: &zero, Name: "bash", Version: "5.1.8", Release: "2.fc35"}, "5.1.8-2.fc35", "bash 5.1.8-2.fc35"},
		{"epoch on source too", rpmdb.PackageInfo{Epoch: &one, Name: "openssl-libs", Version: "3.0.7", Release: "27.el9", SourceRpm: "openssl-3.0.7-27.el9.src.rpm"}, "1:3.0.7-27.el9", "openssl 1:3.0.7-27.el9"},
		{"no release", rpmdb.PackageInfo{Name: "x", Version: "1"}, "1", "x 1"},
		{"space in name", rpmdb.PackageInfo{Name: "a b", Version: "1", Release: "1"}, "", ""},
		{"no version", rpmdb.PackageInfo{Name: "a", Release: "1"}, "", ""},
		{"newline in release", rpmdb.PackageInfo{Name: "a", Version: "1", Release: "1\n2"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := toPackage(&tt.in)
			if tt.want == "" {
				if ok {
					t.Fatalf("accepted %+v", tt.in)
				}
				return
			}
			if !ok || p.Version != tt.want || p.Source == nil || p.Source.Name+" "+p.Source.Version != tt.src {
				t.Errorf("got %v %q source %+v, want %q source %q", ok, p.Version, p.Source, tt.want, tt.src)
			}
		})
	}
}

// FuzzHeader feeds single header blobs to the decoder, which is where go-rpmdb sees untrusted
// bytes; the seeds are the headers of a real database.
func FuzzHeader(f *testing.F) {
	data := fixture(f, "fedora35-512/rpmdb.sqlite")
	err := readSQLite(context.Background(), bytes.NewReader(data), int64(len(data)), &readStats{}, func(b []byte) error {
		f.Add(bytes.Clone(b))
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	dec, err := newDecoder(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = dec.Close() })
	f.Fuzz(func(t *testing.T, blob []byte) {
		info, _, err := dec.decode(blob)
		if errors.Is(err, errTemp) {
			t.Fatal(err)
		}
		if info != nil {
			_, _ = toPackage(info)
		}
	})
}

// TestNoGoroutineLeak checks that malformed databases leave no reader goroutine of go-rpmdb
// blocked behind them.
func TestNoGoroutineLeak(t *testing.T) {
	c := New(WithTempDir(t.TempDir()))
	before := runtime.NumGoroutine()
	rng := rand.New(rand.NewSource(1))
	for _, name := range []string{"fedora35-512/rpmdb.sqlite", "centos7/Packages"} {
		data := fixture(t, name)
		for i := 0; i < 40; i++ {
			b := bytes.Clone(data)
			for j := 0; j < 1+rng.Intn(40); j++ {
				b[rng.Intn(len(b))] = byte(rng.Intn(256))
			}
			_, _ = c.Parse(context.Background(), sbom.FileInfo{Path: "var/lib/rpm/Packages"}, bytes.NewReader(b))
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after", before, n)
	}
}
