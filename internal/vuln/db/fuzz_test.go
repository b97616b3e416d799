package db

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/vuln"
)

// fill sets every field reachable from v to a value that differs from its zero value and from
// the other fields, so that a field the codec forgets shows in a round trip.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(int64(*n)*1000003, int64(*n)).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).Name == "Source" && v.Type() == reflect.TypeFor[vuln.Advisory]() {
				continue // stored as the bucket, not in the value
			}
			fill(v.Field(i), n)
		}
	default:
		panic(fmt.Sprintf("fill: a %s field: teach the codec and this test about it", v.Kind()))
	}
}

// TestCodecCoversAdvisory fails when vuln.Advisory gains a field the codec does not store.
func TestCodecCoversAdvisory(t *testing.T) {
	var a vuln.Advisory
	n := 0
	fill(reflect.ValueOf(&a).Elem(), &n)
	got, err := decodeAdvisoryValue(encodeAdvisory(nil, &a))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &a) {
		t.Errorf("round trip lost data:\n got %+v\nwant %+v", got, &a)
	}
	// Empty lists and zero times too; Affected stays non-nil, as vuln.FromOSV makes it.
	empty := &vuln.Advisory{ID: "X-1", Affected: []vuln.Affected{{Ecosystem: "Go", Name: "m"}}}
	got, err = decodeAdvisoryValue(encodeAdvisory(nil, empty))
	if err != nil || !reflect.DeepEqual(got, empty) {
		t.Errorf("round trip of %+v: %+v, %v", empty, got, err)
	}
	got, err = decodeAdvisoryValue(encodeAdvisory(nil, &vuln.Advisory{ID: "X-2"}))
	if err != nil || got.Affected == nil || len(got.Affected) != 0 {
		t.Errorf("no affected: %+v, %v", got, err)
	}
}

func TestDecodeAdvisoryErrors(t *testing.T) {
	good := encodeAdvisory(nil, &vuln.Advisory{ID: "GO-2022-1059", Summary: "s", Modified: time.Unix(1700000000, 5).UTC(),
		Affected: []vuln.Affected{{Ecosystem: "Go", Name: "golang.org/x/text", Versions: []string{"1", "2"}}}})
	for i := range len(good) {
		if _, err := decodeAdvisoryValue(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	for _, b := range [][]byte{
		nil,
		{2},
		append(bytes.Clone(good), 0),
		{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		{1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
		// An ID, then a list that claims 2^40 aliases.
		{1, 1, 'x', 0x80, 0x80, 0x80, 0x80, 0x80, 0x20},
	} {
		if _, err := decodeAdvisoryValue(b); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
}

func FuzzDecodeAdvisory(f *testing.F) {
	f.Add(encodeAdvisory(nil, &vuln.Advisory{ID: "A-1", Affected: []vuln.Affected{}}))
	var a vuln.Advisory
	n := 0
	fill(reflect.ValueOf(&a).Elem(), &n)
	f.Add(encodeAdvisory(nil, &a))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAdvisoryValue(b)
		if err != nil {
			return
		}
		again, err := decodeAdvisoryValue(encodeAdvisory(nil, a))
		if err != nil {
			t.Fatalf("re-encoding a decoded value: %v", err)
		}
		if !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip changed the advisory:\n%+v\n%+v", a, again)
		}
	})
}

func FuzzDecodeIDs(f *testing.F) {
	f.Add([]byte("GO-2022-1059"))
	f.Add([]byte("GHSA-xxxx-yyyy-zzzz\nPYSEC-2021-1"))
	f.Add([]byte("a\n\nb"))
	f.Add([]byte("b\na"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := decodeIDs(b)
		if err != nil {
			return
		}
		if len(ids) == 0 || !bytes.Equal(encodeIDs(ids), b) {
			t.Fatalf("decodeIDs(%q) = %q, which encodes differently", b, ids)
		}
		for _, id := range ids {
			if checkID(id) != nil {
				t.Fatalf("decodeIDs(%q) accepted id %q", b, id)
			}
		}
	})
}

func FuzzDecodeInfo(f *testing.F) {
	in := &info{Built: time.Unix(1700000000, 0).UTC(), Sources: []SourceStatus{{Name: "Go", Records: 3, Ecosystems: map[string]int{"Go": 3},
		Inputs: []InputInfo{{Origin: "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip", SHA256: strings.Repeat("a", 64), Size: 10}}}}}
	b, _ := encodeInfo(in)
	f.Add(b)
	f.Add([]byte(`{"sources":[{"name":"a"},{"name":"a"}]}`))
	f.Add([]byte(`{"sources":[{"name":"../x","records":-1}]}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeInfo(b)
		if err != nil {
			return
		}
		for _, s := range in.Sources {
			if checkSourceName(s.Name) != nil || s.Records < 0 {
				t.Fatalf("decodeInfo accepted source %+v", s)
			}
		}
	})
}

// FuzzOpen opens and verifies damaged database files: each must give an error or a database
// that reads, never a crash. The seed is a real database; the fuzzer flips its bytes.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	if _, err := Update(context.Background(), dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, uint32(0), byte(0))
	f.Add(seed, uint32(4096+64), byte(0xff))
	f.Add(seed, uint32(len(seed)-100), byte(1))
	f.Fuzz(func(t *testing.T, base []byte, at uint32, x byte) {
		if len(base) > 1<<20 {
			return
		}
		b := bytes.Clone(base)
		if len(b) > 0 {
			b[int(at)%len(b)] ^= x
		}
		p := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := OpenFile(p)
		if err != nil {
			return
		}
		defer d.Close()
		ctx := context.Background()
		d.Lookup(ctx, "npm", "lodash")
		d.Get(ctx, "GHSA-35jh-r3h4-6jhm")
		d.Ecosystems(ctx)
		d.verify(ctx)
	})
}
