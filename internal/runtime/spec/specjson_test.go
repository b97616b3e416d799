package spec

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/moatsec/moat/internal/runtime/spec/internal/specgen"
)

// builtinProfileFiles reads profiles/*.json, the source of the compiled-in profiles.
func builtinProfileFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("profiles", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no profiles/*.json: %v", err)
	}
	profiles := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		profiles[strings.TrimSuffix(filepath.Base(f), ".json")] = data
	}
	return profiles
}

// TestGeneratedUpToDate fails when specjson_gen.go or profiles_gen.go is not what the
// generator makes from today's runtime-spec types and profiles/*.json: run
// `go generate ./internal/runtime/spec`.
func TestGeneratedUpToDate(t *testing.T) {
	enc, err := specgen.Encoder()
	if err != nil {
		t.Fatal(err)
	}
	prof, err := specgen.Profiles(builtinProfileFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]byte{"specjson_gen.go": enc, "profiles_gen.go": prof} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run go generate ./internal/runtime/spec", file)
		}
	}
}

// TestBuiltinProfilesGenerated checks the compiled-in profiles against their JSON, and that
// every call returns a copy of its own.
func TestBuiltinProfilesGenerated(t *testing.T) {
	files := builtinProfileFiles(t)
	if got, want := ProfileNames(), slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
		t.Errorf("ProfileNames() = %v, profiles/ has %v", got, want)
	}
	for name, data := range files {
		want, err := decodeProfile(name, data)
		if err != nil {
			t.Fatal(err)
		}
		want.Builtin = true
		got, err := Profile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("profile %s: the compiled-in profile differs from profiles/%s.json", name, name)
		}
		got.Seccomp.Syscalls[0].Names[0] = "changed"
		*got.Seccomp.DefaultErrnoRet = 99
		again, _ := Profile(name)
		if !reflect.DeepEqual(again, want) {
			t.Errorf("profile %s: changing one copy changed the next", name)
		}
	}
	if _, err := Profile("nope"); err == nil {
		t.Error("Profile(nope) returned no error")
	}
}

// TestConfigJSONMatchesEncodingJSON compares the generated encoder with json.Marshal, byte for
// byte: on the specs Generate makes and on specs with every field filled at random (nil and
// empty slices and maps, nil pointers, strings that need escaping).
func TestConfigJSONMatchesEncodingJSON(t *testing.T) {
	for _, o := range []Options{{}, {CapAdd: []string{"ALL"}, SeccompUnconfined: true, Terminal: true, Env: []string{"A=<&>"}}} {
		r := generate(t, o)
		compareEncoders(t, r.Spec)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var s specs.Spec
		fill(rng, reflect.ValueOf(&s).Elem(), 0)
		s.Windows = nil // the one field of interface type is left to encoding/json anyway
		compareEncoders(t, &s)
	}
}

// FuzzConfigJSON puts arbitrary strings where an image or a user puts them into a spec.
func FuzzConfigJSON(f *testing.F) {
	f.Add("a=b", "/bin/sh", "org.example", "x")
	f.Add("<&>\u2028\u2029", "\x00\x1f\"\\", "\xff\xfe", "é🙂")
	f.Fuzz(func(t *testing.T, env, arg, key, value string) {
		s := &specs.Spec{
			Version:     SpecVersion,
			Process:     &specs.Process{Env: []string{env}, Args: []string{arg, value}, Cwd: value},
			Hostname:    value,
			Annotations: map[string]string{key: value, value: key},
			Mounts:      []specs.Mount{{Destination: arg, Source: value, Options: []string{key}}},
			Linux:       &specs.Linux{Sysctl: map[string]string{key: env}},
		}
		compareEncoders(t, s)
	})
}

func compareEncoders(t *testing.T, s *specs.Spec) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&Result{Spec: s}).ConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(want, '\n')) {
		i := 0
		for i < len(want) && i < len(got) && want[i] == got[i] {
			i++
		}
		t.Fatalf("the generated encoder differs from json.Marshal at byte %d:\n got  %.200s\n want %.200s", i, got[i:], want[i:])
	}
}

// fill sets every settable field of v at random.
func fill(rng *rand.Rand, v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(randString(rng))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(rng.Uint64()) >> (64 - v.Type().Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := rng.Uint64() >> (64 - v.Type().Bits())
		if rng.IntN(4) == 0 {
			n = 0
		}
		v.SetUint(n)
	case reflect.Pointer:
		if rng.IntN(4) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(rng, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		switch rng.IntN(4) {
		case 0:
			return
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + rng.IntN(3)
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				fill(rng, v.Index(i), depth+1)
			}
		}
	case reflect.Map:
		switch rng.IntN(4) {
		case 0:
			return
		case 1:
			v.Set(reflect.MakeMap(v.Type()))
		default:
			m := reflect.MakeMap(v.Type())
			for range 1 + rng.IntN(4) {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(rng, k, depth+1)
				fill(rng, e, depth+1)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				fill(rng, v.Field(i), depth+1)
			}
		}
	}
}

func randString(rng *rand.Rand) string {
	pieces := []string{"", "a", "moat", "/bin/sh", "<", ">", "&", `"`, `\`, "\n", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\xff", "\xe2\x80", "\u2028", "\u2029", "é", "🙂", "\ufffd"}
	var b strings.Builder
	for range rng.IntN(6) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}
