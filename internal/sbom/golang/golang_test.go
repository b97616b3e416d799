package golang

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

// elfSection is one section of a constructed ELF file; load sections also get a writable
// PT_LOAD segment, which is where buildinfo reads data from.
type elfSection struct {
	name string
	typ  elf.SectionType
	addr uint64
	data []byte
	load bool
}

// buildELF writes a minimal little-endian ELF64 x86-64 executable holding the given sections.
func buildELF(sections []elfSection) []byte {
	const ehsize, phentsize, shentsize = 64, 56, 64
	align := func(n uint64) uint64 { return (n + 15) &^ 15 }

	var progs []elf.Prog64
	for _, s := range sections {
		if s.load {
			progs = append(progs, elf.Prog64{})
		}
	}
	shstrtab := []byte{0}
	nameOff := make([]uint32, len(sections)+1)
	for i, s := range sections {
		nameOff[i] = uint32(len(shstrtab))
		shstrtab = append(append(shstrtab, s.name...), 0)
	}
	nameOff[len(sections)] = uint32(len(shstrtab))
	shstrtab = append(shstrtab, ".shstrtab\x00"...)

	off := align(ehsize + uint64(len(progs))*phentsize)
	body := []byte{}
	shdrs := []elf.Section64{{}}
	p := 0
	for i, s := range sections {
		pos := off + uint64(len(body))
		shdrs = append(shdrs, elf.Section64{
			Name: nameOff[i], Type: uint32(s.typ), Flags: uint64(elf.SHF_ALLOC), Addr: s.addr,
			Off: pos, Size: uint64(len(s.data)), Addralign: 16,
		})
		if s.load {
			progs[p] = elf.Prog64{
				Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W), Off: pos,
				Vaddr: s.addr, Paddr: s.addr, Filesz: uint64(len(s.data)), Memsz: uint64(len(s.data)), Align: 16,
			}
			p++
		}
		body = append(body, s.data...)
		body = append(body, make([]byte, align(uint64(len(body)))-uint64(len(body)))...)
	}
	shdrs = append(shdrs, elf.Section64{
		Name: nameOff[len(sections)], Type: uint32(elf.SHT_STRTAB),
		Off: off + uint64(len(body)), Size: uint64(len(shstrtab)), Addralign: 1,
	})
	body = append(body, shstrtab...)
	body = append(body, make([]byte, align(uint64(len(body)))-uint64(len(body)))...)
	shoff := off + uint64(len(body))

	var hdr elf.Header64
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Type = uint16(elf.ET_EXEC)
	hdr.Machine = uint16(elf.EM_X86_64)
	hdr.Version = uint32(elf.EV_CURRENT)
	hdr.Entry = 0x401000
	if len(progs) > 0 {
		hdr.Phoff = ehsize
	}
	hdr.Shoff = shoff
	hdr.Ehsize = ehsize
	hdr.Phentsize = phentsize
	hdr.Phnum = uint16(len(progs))
	hdr.Shentsize = shentsize
	hdr.Shnum = uint16(len(shdrs))
	hdr.Shstrndx = uint16(len(shdrs) - 1)

	var buf bytes.Buffer
	must := func(err error) {
		if err != nil {
			panic(err) // writing to a bytes.Buffer does not fail
		}
	}
	must(binary.Write(&buf, binary.LittleEndian, hdr))
	must(binary.Write(&buf, binary.LittleEndian, progs))
	buf.Write(make([]byte, off-uint64(buf.Len())))
	buf.Write(body)
	must(binary.Write(&buf, binary.LittleEndian, shdrs))
	return buf.Bytes()
}

// goBinary constructs an ELF file carrying Go build information in the format Go 1.18 and later
// write: a 32-byte header followed by the varint-prefixed toolchain and module strings.
func goBinary(goVersion, modinfo string) []byte {
	blob := []byte("\xff Go buildinf:")
	blob = append(blob, 8, 0x2) // pointer size, inline strings little-endian
	blob = append(blob, make([]byte, 16)...)
	if modinfo != "" {
		// The module text sits between two 16-byte sentinels that buildinfo strips.
		modinfo = "0w\xaf\x0c\x92t\b\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6" + modinfo + "\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
	}
	for _, s := range []string{goVersion, modinfo} {
		blob = binary.AppendUvarint(blob, uint64(len(s)))
		blob = append(blob, s...)
	}
	blob = append(blob, make([]byte, 32-len(blob)%16)...) // the linker pads the section
	return buildELF([]elfSection{
		{name: ".text", typ: elf.SHT_PROGBITS, addr: 0x401000, data: bytes.Repeat([]byte{0xc3}, 64)},
		{name: ".go.buildinfo", typ: elf.SHT_PROGBITS, addr: 0x500000, data: blob, load: true},
	})
}

const modinfo = "path\tgithub.com/acme/server/cmd/server\n" +
	"mod\tgithub.com/acme/server\tv1.4.2\th1:abcdefabcdefabcdefabcdefabcdefabcdefabcdefab=\n" +
	"dep\tgithub.com/spf13/cobra\tv1.8.0\th1:7aJaZx1B85qltLMc546zn58BxxfZdR/W22ej9CFoEf0=\n" +
	"dep\tgolang.org/x/net\tv0.17.0\n" +
	"=>\tgolang.org/x/net\tv0.23.0\th1:7EYJ93RZ9vYSZAIb2x3lnuvqO5zneoD6IvWjuhfxjTs=\n" +
	"dep\tgithub.com/acme/internal\tv0.0.0-00010101000000-000000000000\n" +
	"=>\t../internal\t(devel)\t\n" +
	"build\t-buildmode=exe\n" +
	"build\t-compiler=gc\n" +
	"build\tCGO_ENABLED=0\n" +
	"build\tGOARCH=arm64\n" +
	"build\tGOOS=linux\n" +
	"build\tvcs=git\n" +
	"build\tvcs.revision=3f6e1c9b2a1d4e5f60718293a4b5c6d7e8f90123\n" +
	"build\tvcs.time=2024-05-01T10:00:00Z\n" +
	"build\tvcs.modified=false\n"

func syntheticCases() []sbomtest.Case {
	golang := func(name, version string, md map[string]string) sbom.Package {
		return sbom.Package{Name: name, Version: version, Type: sbom.TypeGolang, Metadata: md}
	}
	return []sbomtest.Case{
		{
			Name: "modules and replacements", Path: "usr/local/bin/server", Mode: 0o755,
			Content:   goBinary("go1.22.3 X:boringcrypto", modinfo),
			WantCount: 5,
			Want: []sbom.Package{
				golang("github.com/acme/server", "v1.4.2", map[string]string{
					"mainModule": "true", "mainPackage": "github.com/acme/server/cmd/server",
					"vcsRevision": "3f6e1c9b2a1d4e5f60718293a4b5c6d7e8f90123", "goVersion": "go1.22.3 X:boringcrypto",
				}),
				golang("github.com/spf13/cobra", "v1.8.0", map[string]string{
					"sum": "h1:7aJaZx1B85qltLMc546zn58BxxfZdR/W22ej9CFoEf0=", "goVersion": "go1.22.3 X:boringcrypto",
				}),
				golang("golang.org/x/net", "v0.23.0", map[string]string{
					"replaces": "golang.org/x/net", "sum": "h1:7EYJ93RZ9vYSZAIb2x3lnuvqO5zneoD6IvWjuhfxjTs=",
				}),
				golang("github.com/acme/internal", "(devel)", map[string]string{"localReplace": "../internal"}),
				golang("stdlib", "1.22.3", map[string]string{
					"goToolchain": "go1.22.3 X:boringcrypto", "goos": "linux", "goarch": "arm64",
				}),
			},
		},
		{
			Name: "shared object", Path: "usr/lib/libgo.so", Mode: 0o644,
			Content:   goBinary("go1.21.5", "path\tcommand-line-arguments\nmod\texample.com/lib\t\t\n"),
			WantCount: 2,
			Want: []sbom.Package{
				golang("example.com/lib", "(devel)", map[string]string{"mainModule": "true"}),
				golang("stdlib", "1.21.5", nil),
			},
		},
		{
			Name: "built without modules", Path: "bin/tool", Mode: 0o755,
			Content: goBinary("go1.16.15", ""), WantCount: 1,
			Want: []sbom.Package{golang("stdlib", "1.16.15", map[string]string{"goToolchain": "go1.16.15"})},
		},
		{
			Name: "development toolchain", Path: "bin/tool", Mode: 0o755,
			Content: goBinary("devel go1.23-e3d1f7e Tue Aug 6 10:10:10 2024 +0000", "path\texample.com/x\nmod\texample.com/x\t(devel)\t\n"),
			Want:    []sbom.Package{golang("stdlib", "(devel)", nil), golang("example.com/x", "(devel)", nil)},
		},
		{
			Name: "malformed module path", Path: "bin/tool", Mode: 0o755, WantWarning: true, WantCount: 2,
			Content: goBinary("go1.22.0", "path\texample.com/x\nmod\texample.com/x\tv1.0.0\t\ndep\texample.com/a b\tv1.0.0\t\ndep\texample.com/\x01\tv1\t\n"),
			Want:    []sbom.Package{golang("example.com/x", "v1.0.0", nil), golang("stdlib", "1.22.0", nil)},
		},
		{
			Name: "corrupt module list", Path: "bin/tool", Mode: 0o755, WantErr: true,
			Content: goBinary("go1.22.0", "path\texample.com/x\ndep\tonly-one-column\n"),
		},
		{
			Name: "C binary", Path: "usr/bin/true", Mode: 0o755,
			Content: buildELF([]elfSection{
				{name: ".text", typ: elf.SHT_PROGBITS, addr: 0x401000, data: bytes.Repeat([]byte{0x90}, 4096)},
				{name: ".data", typ: elf.SHT_PROGBITS, addr: 0x600000, data: bytes.Repeat([]byte{1}, 256), load: true},
			}),
		},
		{
			Name: "shell script", Path: "usr/local/bin/docker-entrypoint.sh", Mode: 0o755,
			Content: []byte("#!/bin/sh\nset -e\n\nif [ \"${1#-}\" != \"$1\" ]; then\n\tset -- server \"$@\"\nfi\n\nexec \"$@\"\n"),
		},
		{Name: "PE stub", Path: "opt/app/bin/app.exe", Content: append([]byte("MZ\x90\x00"), make([]byte, 60)...)},
		{Name: "configuration", Path: "etc/passwd", Content: []byte("root:x:0:0:root:/root:/bin/sh\n"), NoMatch: true},
		{Name: "tiny executable", Path: "opt/app/run", Mode: 0o755, Content: []byte("#!/bin/sh\n"), NoMatch: true},
		{Name: "directory", Path: "usr/local/bin", Mode: fs.ModeDir | 0o755, Content: make([]byte, 8192), NoMatch: true},
	}
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), syntheticCases()) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), syntheticCases()) }

func parseBytes(t *testing.T, data []byte) (*sbom.Result, error) {
	t.Helper()
	fi := sbom.FileInfo{Path: "usr/bin/x", Mode: 0o755, Size: int64(len(data))}
	return New().Parse(context.Background(), fi, bytes.NewReader(data))
}

// TestSilent checks that files which are not Go binaries give nothing at all: no package, no
// warning, no error, since most executables in an image are of this kind.
func TestSilent(t *testing.T) {
	inputs := map[string][]byte{
		"empty":        nil,
		"three bytes":  []byte("\x7fEL"),
		"ELF header":   []byte("\x7fELF\x02\x01\x01\x00" + strings.Repeat("\x00", 300)),
		"script":       []byte("#!/usr/bin/env python3\nprint('hi')\n"),
		"Java class":   []byte("\xca\xfe\xba\xbe\x00\x00\x00\x41" + strings.Repeat("\x00", 100)),
		"truncated Go": goBinary("go1.22.3", modinfo)[:200],
		"C binary": buildELF([]elfSection{
			{name: ".text", typ: elf.SHT_PROGBITS, addr: 0x401000, data: bytes.Repeat([]byte{0x90}, 256)},
			{name: ".data", typ: elf.SHT_PROGBITS, addr: 0x600000, data: bytes.Repeat([]byte{1}, 256), load: true},
		}),
	}
	for _, p := range []string{"/bin/true", "/bin/sh", "/usr/bin/env"} {
		if b, err := os.ReadFile(p); err == nil {
			inputs["system "+p] = b
		}
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			res, err := parseBytes(t, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(res.Packages) != 0 || len(res.Warnings) != 0 {
				t.Errorf("Parse found %v, warnings %v; want nothing", res.Packages, res.Warnings)
			}
		})
	}
}

func TestToolchainVersion(t *testing.T) {
	for raw, want := range map[string]string{
		"go1.22.3":                "1.22.3",
		"go1.22.3 X:boringcrypto": "1.22.3",
		"go1.21.0-bigcorp":        "1.21.0",
		"go1.21rc2":               "1.21rc2",
		"go1.24.1 X:nocoverageredesign,systemcrypto": "1.24.1",
		"devel go1.23-e3d1f7e Tue Aug 6 2024":        "(devel)",
		"go":                                         "(devel)",
	} {
		if got := toolchainVersion(raw); got != want {
			t.Errorf("toolchainVersion(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		fi   sbom.FileInfo
		want bool
	}{
		{sbom.FileInfo{Path: "usr/local/bin/app", Mode: 0o755, Size: 8 << 20}, true},
		{sbom.FileInfo{Path: "app/server", Mode: 0o700, Size: 4 << 10}, true},
		{sbom.FileInfo{Path: "app/server", Mode: 0o755, Size: 4<<10 - 1}, false},
		{sbom.FileInfo{Path: "app/server", Mode: 0o755, Size: 1<<30 + 1}, false},
		{sbom.FileInfo{Path: "usr/bin/app", Mode: 0o644, Size: 100}, true},
		{sbom.FileInfo{Path: "usr/lib/libx.so", Mode: 0o644, Size: 100}, true},
		{sbom.FileInfo{Path: "usr/lib/libx.so.1", Mode: 0o644, Size: 1 << 20}, false},
		{sbom.FileInfo{Path: "usr/bin/huge", Mode: 0o644, Size: 2 << 30}, false},
		{sbom.FileInfo{Path: "etc/os-release", Mode: 0o644, Size: 1 << 20}, false},
		{sbom.FileInfo{Path: "usr/share/bin/readme", Mode: 0o644, Size: 0}, false},
	} {
		if got := New().Match(tc.fi); got != tc.want {
			t.Errorf("Match(%+v) = %v, want %v", tc.fi, got, tc.want)
		}
	}
}

// The rest builds real Go binaries with the local toolchain, offline from the module cache.

const helloMod = `module example.com/hello

go 1.22

require (
	example.com/local v0.0.0
	github.com/package-url/packageurl-go v0.1.3
	golang.org/x/sys v0.37.0
	golang.org/x/text v0.14.0
)

replace golang.org/x/sys => golang.org/x/sys v0.33.0

replace example.com/local => ./local
`

const helloMain = `package main

import (
	"fmt"

	"example.com/local"
	"github.com/package-url/packageurl-go"
	"golang.org/x/sys/unix"
	"golang.org/x/text/language"
)

func main() {
	p := packageurl.NewPackageURL("golang", "", "x", "1", nil, "")
	fmt.Println(p.ToString(), language.English, unix.Getpid(), local.Hello())
}
`

var (
	buildOnce sync.Once
	built     map[string][]byte // by variant: "default", "stripped", "trimpath"
	builtGo   string            // the toolchain version, "go1.26.8"
	buildErr  error
)

// goBinaries builds the hello module three ways, once per test process.
func goBinaries(t *testing.T) (map[string][]byte, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds Go binaries; skipped in -short mode")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	buildOnce.Do(func() { built, builtGo, buildErr = buildHello(goTool) })
	if buildErr != nil {
		t.Fatalf("building test binaries: %v", buildErr)
	}
	return built, builtGo
}

func buildHello(goTool string) (map[string][]byte, string, error) {
	dir, err := os.MkdirTemp("", "moat-gobinary-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	files := map[string]string{
		"go.mod":         helloMod,
		"main.go":        helloMain,
		"local/go.mod":   "module example.com/local\n\ngo 1.22\n",
		"local/local.go": "package local\n\n// Hello greets.\nfunc Hello() string { return \"hi\" }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return nil, "", err
		}
	}
	// Modules come from the module cache or, on a fresh machine, the module proxy; the temporary
	// module has no go.sum, so the checksum database is not consulted.
	env := append(os.Environ(), "GOSUMDB=off", "GOFLAGS=-mod=mod -buildvcs=false",
		"GOTOOLCHAIN=local", "GOWORK=off", "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(goTool, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, &buildError{args: args, stderr: string(ee.Stderr)}
		}
		return out, err
	}
	version, err := run("env", "GOVERSION")
	if err != nil {
		return nil, "", err
	}
	out := map[string][]byte{}
	for variant, flags := range map[string][]string{
		"default":  nil,
		"stripped": {"-ldflags=-s -w"},
		"trimpath": {"-trimpath"},
	} {
		bin := filepath.Join(dir, "hello-"+variant)
		if _, err := run(append(append([]string{"build", "-o", bin}, flags...), ".")...); err != nil {
			return nil, "", err
		}
		if out[variant], err = os.ReadFile(bin); err != nil {
			return nil, "", err
		}
	}
	return out, strings.TrimSpace(string(version)), nil
}

type buildError struct {
	args   []string
	stderr string
}

func (e *buildError) Error() string { return "go " + strings.Join(e.args, " ") + ": " + e.stderr }

// TestBuiltBinaries runs the conformance suite on real binaries and checks that every module
// they were built from is found with the version that was compiled in.
func TestBuiltBinaries(t *testing.T) {
	bins, goVersion := goBinaries(t)
	want := []sbom.Package{
		{Name: "example.com/hello", Version: "(devel)", Type: sbom.TypeGolang,
			Metadata: map[string]string{"mainModule": "true", "mainPackage": "example.com/hello", "goVersion": goVersion}},
		{Name: "example.com/local", Version: "(devel)", Type: sbom.TypeGolang, Metadata: map[string]string{"localReplace": "./local"}},
		{Name: "github.com/package-url/packageurl-go", Version: "v0.1.3", Type: sbom.TypeGolang,
			Metadata: map[string]string{"sum": "h1:4juMED3hHiz0set3Vq3KeQ75KD1avthoXLtmE3I0PLs="}},
		{Name: "golang.org/x/sys", Version: "v0.33.0", Type: sbom.TypeGolang, Metadata: map[string]string{"replaces": "golang.org/x/sys"}},
		{Name: "golang.org/x/text", Version: "v0.14.0", Type: sbom.TypeGolang},
		{Name: "stdlib", Version: strings.TrimPrefix(goVersion, "go"), Type: sbom.TypeGolang,
			Metadata: map[string]string{"goToolchain": goVersion, "goos": runtime.GOOS, "goarch": runtime.GOARCH}},
	}
	var cases []sbomtest.Case
	for _, variant := range []string{"default", "stripped", "trimpath"} {
		cases = append(cases, sbomtest.Case{
			Name: variant, Path: "usr/local/bin/hello", Mode: 0o755, Content: bins[variant],
			Want: want, WantCount: len(want),
		})
	}
	sbomtest.Run(t, New(), cases)
}

// TestBuiltTruncated checks that a real binary cut short is silently not a Go binary.
func TestBuiltTruncated(t *testing.T) {
	bins, _ := goBinaries(t)
	bin := bins["default"]
	for _, n := range []int{64, 4096, len(bin) / 2, len(bin) - 100} {
		res, err := parseBytes(t, bin[:n])
		if err != nil {
			t.Errorf("Parse of the first %d bytes: %v", n, err)
			continue
		}
		sbomtest.CheckResult(t, res)
	}
}
