package osv

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// event returns the one non-empty bound of an OSV event as "kind=value".
func event(e *osvschema.Event) string {
	switch {
	case e.GetIntroduced() != "":
		return "introduced=" + e.GetIntroduced()
	case e.GetFixed() != "":
		return "fixed=" + e.GetFixed()
	case e.GetLastAffected() != "":
		return "last_affected=" + e.GetLastAffected()
	case e.GetLimit() != "":
		return "limit=" + e.GetLimit()
	}
	return "empty"
}

func events(r *osvschema.Range) []string {
	var out []string
	for _, e := range r.GetEvents() {
		out = append(out, event(e))
	}
	return out
}

func TestParseEcosystemShapes(t *testing.T) {
	type rng struct {
		typ    osvschema.Range_Type
		events []string
	}
	type affected struct {
		ecosystem, name string
		ranges          []rng
	}
	tests := []struct {
		file       string
		id         string
		aliases    []string
		ecosystems []string
		affected   []affected
	}{{
		file:       "debian-12.json",
		id:         "DEBIAN-CVE-2024-0001",
		aliases:    []string{"CVE-2024-0001", "DSA-5600-1"},
		ecosystems: []string{"Debian:12", "Debian:13"},
		affected: []affected{
			{"Debian:12", "libexample", []rng{{osvschema.Range_ECOSYSTEM, []string{"introduced=0", "fixed=1:1.2-3+deb12u1"}}}},
			{"Debian:13", "libexample", []rng{{osvschema.Range_ECOSYSTEM, []string{"introduced=0", "fixed=1:1.2-5"}}}},
		},
	}, {
		file:       "alpine-v3.20.json",
		id:         "ALPINE-CVE-2024-0002",
		ecosystems: []string{"Alpine:v3.20"},
		affected: []affected{
			{"Alpine:v3.20", "openssl", []rng{{osvschema.Range_ECOSYSTEM, []string{"introduced=0", "fixed=3.3.1-r1"}}}},
		},
	}, {
		file:       "npm.json",
		id:         "GHSA-aaaa-bbbb-cccc",
		aliases:    []string{"CVE-2024-0003"},
		ecosystems: []string{"npm"},
		affected: []affected{
			{"npm", "@example/merge", []rng{
				{osvschema.Range_SEMVER, []string{"introduced=0", "fixed=1.0.5"}},
				{osvschema.Range_SEMVER, []string{"introduced=2.0.0-beta.1", "last_affected=2.3.0"}},
			}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			v, err := Parse(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if v.GetId() != tt.id {
				t.Errorf("id = %q, want %q", v.GetId(), tt.id)
			}
			if got := Aliases(v); !slices.Equal(got, tt.aliases) {
				t.Errorf("Aliases = %q, want %q", got, tt.aliases)
			}
			if got := Ecosystems(v); !slices.Equal(got, tt.ecosystems) {
				t.Errorf("Ecosystems = %q, want %q", got, tt.ecosystems)
			}
			if Withdrawn(v) || HasGitRanges(v) || !KnownModified(v) {
				t.Errorf("Withdrawn, HasGitRanges, KnownModified = %v, %v, %v; want false, false, true", Withdrawn(v), HasGitRanges(v), KnownModified(v))
			}
			if len(v.GetAffected()) != len(tt.affected) {
				t.Fatalf("%d affected entries, want %d", len(v.GetAffected()), len(tt.affected))
			}
			for i, want := range tt.affected {
				a := v.GetAffected()[i]
				if a.GetPackage().GetEcosystem() != want.ecosystem || a.GetPackage().GetName() != want.name {
					t.Errorf("affected[%d] package = %s %s, want %s %s", i, a.GetPackage().GetEcosystem(), a.GetPackage().GetName(), want.ecosystem, want.name)
				}
				if len(a.GetRanges()) != len(want.ranges) {
					t.Fatalf("affected[%d]: %d ranges, want %d", i, len(a.GetRanges()), len(want.ranges))
				}
				for j, wr := range want.ranges {
					r := a.GetRanges()[j]
					if r.GetType() != wr.typ || !slices.Equal(events(r), wr.events) {
						t.Errorf("affected[%d].ranges[%d] = %v %q, want %v %q", i, j, r.GetType(), events(r), wr.typ, wr.events)
					}
				}
			}
		})
	}
}

func TestParseKeepsDatabaseSpecific(t *testing.T) {
	v, err := Parse(readTestdata(t, "npm.json"))
	if err != nil {
		t.Fatal(err)
	}
	ds := v.GetDatabaseSpecific().AsMap()
	if ds["severity"] != "CRITICAL" || ds["github_reviewed"] != true {
		t.Errorf("database_specific = %v", ds)
	}
	if got := v.GetSeverity(); len(got) != 1 || got[0].GetType() != osvschema.Severity_CVSS_V3 {
		t.Errorf("severity = %v", got)
	}
}

func TestParseDropsAffectedWithoutPackage(t *testing.T) {
	rec := `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[
		{"ranges":[{"type":"GIT","repo":"https://example.com/r","events":[{"introduced":"0"},{"fixed":"abc"}]}]},
		{"package":{"ecosystem":"PyPI"},"versions":["1.0"]},
		{"package":{"ecosystem":"PyPI","name":"x"},"ranges":[{"type":"GIT","repo":"https://example.com/r","events":[{"introduced":"0"}]}],"versions":["1.0"]}]}`
	v, warnings, err := parse([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings = %v, want 2", warnings)
	}
	if len(v.GetAffected()) != 1 || v.GetAffected()[0].GetPackage().GetName() != "x" {
		t.Errorf("affected = %v, want only package x", v.GetAffected())
	}
	if !HasGitRanges(v) {
		t.Error("HasGitRanges = false, want true")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, rec, want string
	}{
		{"not JSON", `not json`, "invalid OSV record"},
		{"wrong field type", `{"id":5,"modified":"2024-01-01T00:00:00Z"}`, "id"},
		{"aliases not a list", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","aliases":"CVE-1"}`, "aliases"},
		{"bad timestamp", `{"id":"X-1","modified":"1-01-01T00:00:00Z"}`, "modified"},
		{"no id", `{"modified":"2024-01-01T00:00:00Z"}`, "no id"},
		{"no modified", `{"id":"X-1"}`, "no modified time"},
		{"unknown range type", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"CALVER","events":[{"introduced":"0"}]}]}]}`, "range[0] has no known type"},
		{"range without type", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"events":[{"introduced":"0"}]}]}]}`, "range[0] has no known type"},
		{"range without events", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER"}]}]}`, "range[0] has no events"},
		{"duplicate field", `{"id":"X-1","id":"X-2","modified":"2024-01-01T00:00:00Z"}`, "duplicate"},
		{"too large", `{"id":"X-1","details":"` + strings.Repeat("a", MaxRecordSize) + `"}`, "more than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse([]byte(tt.rec))
			if err == nil {
				t.Fatalf("Parse succeeded with %v", v)
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("error %q does not wrap ErrInvalidRecord", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestWithdrawnAndModified(t *testing.T) {
	v, err := Parse([]byte(`{"id":"GO-1","modified":"0001-01-01T00:00:00Z","withdrawn":"2024-01-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !Withdrawn(v) || KnownModified(v) {
		t.Errorf("Withdrawn, KnownModified = %v, %v; want true, false", Withdrawn(v), KnownModified(v))
	}
	if Aliases(v) != nil || Ecosystems(v) != nil {
		t.Errorf("Aliases, Ecosystems = %q, %q; want nil", Aliases(v), Ecosystems(v))
	}
}

func TestAliasesSortedCopy(t *testing.T) {
	v := &osvschema.Vulnerability{Aliases: []string{"GHSA-x", "CVE-2", "CVE-1", "CVE-2"}}
	if got, want := Aliases(v), []string{"CVE-1", "CVE-2", "GHSA-x"}; !slices.Equal(got, want) {
		t.Errorf("Aliases = %q, want %q", got, want)
	}
	if v.Aliases[0] != "GHSA-x" {
		t.Error("Aliases changed the record")
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"debian-12.json", "alpine-v3.20.json", "npm.json"} {
		f.Add(readTestdata(f, name))
	}
	for _, eco := range []string{"Go", "PyPI"} {
		for _, rec := range sampleRecords(f, eco, 3) {
			f.Add(rec)
		}
	}
	f.Add([]byte(`{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, warnings, err := parse(data)
		if err != nil {
			if v != nil || warnings != nil {
				t.Fatal("parse returned a record or warnings with an error")
			}
			return
		}
		if v.GetId() == "" || v.GetModified() == nil {
			t.Fatal("parse accepted a record without id or modified time")
		}
		for _, a := range v.GetAffected() {
			if a.GetPackage().GetEcosystem() == "" || a.GetPackage().GetName() == "" {
				t.Fatal("parse kept an affected entry without a package")
			}
		}
		_, _, _, _ = Withdrawn(v), Ecosystems(v), Aliases(v), HasGitRanges(v)
	})
}
