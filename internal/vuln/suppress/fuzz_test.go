package suppress

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzIgnore(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "moatignore.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		"",
		"ignore: []\n",
		"ignore:\n  - id: CVE-1\n    package: \"pkg:deb/debian/a@1?arch=amd64\"\n    reason: r\n    expires: 2024-01-01T10:00:00+02:00\n",
		"ignore:\n  - &e {id: CVE-1, reason: r}\n  - *e\n",
		"ignore:\n  - id: CVE-1\n    id: CVE-2\n",
		"a: &a [*a]\n",
		"--- !!map\n? [x]\n: y\n",
		"ignore: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2024, 6, 15, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseIgnore(data, "f.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		for _, e := range file.Entries {
			if e.ID == "" || e.Reason == "" || e.Source != "f.yaml" || e.Line <= 0 {
				t.Errorf("invalid entry accepted: %+v", e)
			}
		}
		fs := testFindings()
		expired := file.Apply(fs, now)
		for _, e := range expired {
			if !e.Expired(now) {
				t.Errorf("entry reported as expired is not: %+v", e)
			}
		}
		for _, fd := range fs {
			if s := fd.Suppressed; s != nil && (s.Kind != KindIgnore || s.Reason == "") {
				t.Errorf("suppression %+v", s)
			}
		}
	})
}

func FuzzVEX(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "image.openvex.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		"",
		"{}",
		vexDoc(""),
		vexDoc(stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("ab")+`", "subcomponents": [{"@id": "pkg:deb/debian/libssl3"}]}]`)),
		vexDoc(stmt("GO-2024-2687", "fixed", `[{"hashes": {"sha-256": "ab"}, "identifiers": {"purl": "pkg:oci/app?repository_url=x"}}]`)),
		`{"@context": "https://openvex.dev/ns", "statements": [{"vulnerability": "CVE-1", "products": ["p"], "status": "fixed"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseVEX(data, "v.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "v.json") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		fs := testFindings()
		n := ApplyVEX(fs, testImage(), doc, doc)
		count := 0
		for _, fd := range fs {
			s := fd.Suppressed
			if s == nil {
				continue
			}
			count++
			status, _, _, ok := ParseVEXReason(s.Reason)
			if !ok || (status != "not_affected" && status != "fixed") || s.Kind != KindVEX || s.Source != "v.json" {
				t.Errorf("suppression %+v", s)
			}
		}
		if count != n {
			t.Errorf("ApplyVEX returned %d, %d findings suppressed", n, count)
		}
	})
}
