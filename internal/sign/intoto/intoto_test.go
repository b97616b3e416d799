package intoto

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const hexA = "6c6fd6a4115c6e998ff357cd914680931bb9a6c1a7cd5f5cb2f5e1c0932ab6ed"

// cosignV1Statement is the statement of an attestation that cosign 1.x wrote, from cosign's
// own tests (pkg/cosign/verifiers_test.go): v0.1, predicateType before subject, indentation.
const cosignV1Statement = `{
  "_type": "https://in-toto.io/Statement/v0.1",
  "predicateType": "cosign.sigstore.dev/attestation/v1",
  "subject": [
    {
      "name": "registry.local:5000/knative/demo",
      "digest": {
        "sha256": "6c6fd6a4115c6e998ff357cd914680931bb9a6c1a7cd5f5cb2f5e1c0932ab6ed"
      }
    }
  ],
  "predicate": {
    "Data": "foobar test attestation",
    "Timestamp": "2022-04-07T19:22:25Z"
  }
}
`

func TestMarshal(t *testing.T) {
	s := &Statement{
		Type:          StatementV01,
		PredicateType: "https://cyclonedx.org/bom",
		Subject:       []Subject{{Name: "registry.example.com/app", Digest: map[string]string{"sha256": hexA}}},
		Predicate:     json.RawMessage(`{"bomFormat":"CycloneDX","n":12345678901234567890}`),
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Cosign 2.6's field order (in-toto-golang's StatementHeader), compact.
	want := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cyclonedx.org/bom",` +
		`"subject":[{"name":"registry.example.com/app","digest":{"sha256":"` + hexA + `"}}],` +
		`"predicate":{"bomFormat":"CycloneDX","n":12345678901234567890}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v, want %+v", got, s)
	}

	for name, bad := range map[string]Statement{
		"unknown type":         {Type: "x", PredicateType: "p", Subject: s.Subject},
		"no predicate type":    {Type: StatementV1, Subject: s.Subject},
		"no subject":           {Type: StatementV1, PredicateType: "p"},
		"subject no digest":    {Type: StatementV1, PredicateType: "p", Subject: []Subject{{Name: "n"}}},
		"empty digest value":   {Type: StatementV1, PredicateType: "p", Subject: []Subject{{Digest: map[string]string{"sha256": ""}}}},
		"predicate not JSON":   {Type: StatementV1, PredicateType: "p", Subject: s.Subject, Predicate: json.RawMessage(`{`)},
		"predicate dup keys":   {Type: StatementV1, PredicateType: "p", Subject: s.Subject, Predicate: json.RawMessage(`{"a":1,"a":2}`)},
		"predicate two values": {Type: StatementV1, PredicateType: "p", Subject: s.Subject, Predicate: json.RawMessage(`1 2`)},
	} {
		if b, err := bad.Marshal(); err == nil {
			t.Errorf("%s: encoded %s", name, b)
		}
	}
}

func TestParse(t *testing.T) {
	subj := `"subject":[{"name":"r","digest":{"sha256":"` + hexA + `"}}]`
	for _, tc := range []struct {
		name, in string
		want     *Statement // nil: an error
	}{
		{"cosign 1.x", cosignV1Statement, &Statement{
			Type: StatementV01, PredicateType: "cosign.sigstore.dev/attestation/v1",
			Subject:   []Subject{{Name: "registry.local:5000/knative/demo", Digest: map[string]string{"sha256": hexA}}},
			Predicate: json.RawMessage("{\n    \"Data\": \"foobar test attestation\",\n    \"Timestamp\": \"2022-04-07T19:22:25Z\"\n  }"),
		}},
		{"v1 with extra fields", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"uri":"u","digest":{"sha256":"ab","sha512":"cd"},"annotations":{}}],"predicateType":"p","predicate":"text","extra":1}`,
			&Statement{Type: StatementV1, PredicateType: "p", Subject: []Subject{{Digest: map[string]string{"sha256": "ab", "sha512": "cd"}}}, Predicate: json.RawMessage(`"text"`)}},
		{"no predicate", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p",` + subj + `}`,
			&Statement{Type: StatementV1, PredicateType: "p", Subject: []Subject{{Name: "r", Digest: map[string]string{"sha256": hexA}}}}},
		{"null predicate and name", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"name":null,"digest":{"sha256":"ab"}}],"predicate":null}`,
			&Statement{Type: StatementV1, PredicateType: "p", Subject: []Subject{{Digest: map[string]string{"sha256": "ab"}}}}},

		{"duplicate subject", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p",` + subj + `,` + subj + `}`, nil},
		{"duplicate digest algorithm", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"digest":{"sha256":"ab","sha256":"cd"}}]}`, nil},
		{"duplicate key deep in predicate", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p",` + subj + `,"predicate":{"a":[{"b":1,"b":2}]}}`, nil},
		// encoding/json would read "PredicateType" as predicateType; a case-sensitive reader
		// sees no predicateType at all.
		{"key in other case", `{"_type":"https://in-toto.io/Statement/v1","PredicateType":"p",` + subj + `}`, nil},
		{"unknown _type", `{"_type":"https://in-toto.io/Statement/v2","predicateType":"p",` + subj + `}`, nil},
		{"no _type", `{"predicateType":"p",` + subj + `}`, nil},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p"}`, nil},
		{"empty subject", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[]}`, nil},
		{"null subject entry", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[null]}`, nil},
		{"subject without digest", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"name":"r"}]}`, nil},
		{"digest not strings", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"digest":{"sha256":1}}]}`, nil},
		{"subject not a list", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":{"digest":{"sha256":"ab"}}}`, nil},
		{"predicateType not a string", `{"_type":"https://in-toto.io/Statement/v1","predicateType":1,` + subj + `}`, nil},
		{"empty predicateType", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"",` + subj + `}`, nil},
		{"too deep", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p",` + subj + `,"predicate":` +
			strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, nil},
		{"two values", `{} {}`, nil},
		{"array", `[]`, nil},
		{"null", `null`, nil},
		{"empty", ``, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parsed %+v\nwant   %+v", got, tc.want)
			}
		})
	}
}

func TestParseProtoJSON(t *testing.T) {
	subj := `{"name":"r","digest":{"sha256":"` + hexA + `"},"annotations":{"env":"prod","n":1}}`
	st := func(extra string) string {
		return `{"_type":"https://in-toto.io/Statement/v1","subject":[` + subj + `],"predicateType":"p"` + extra + `}`
	}
	want := &Statement{Type: StatementV1, PredicateType: "p",
		Subject: []Subject{{Name: "r", Digest: map[string]string{"sha256": hexA}, Annotations: map[string]any{"env": "prod", "n": 1.0}}}}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"as cosign writes it", st(`, "predicate" : {}`), true},
		{"no predicate", st(""), true},
		{"null predicate", st(`,"predicate":null`), true},
		{"v0.1", strings.Replace(st(""), "Statement/v1", "Statement/v0.1", 1), true},
		{"every descriptor field", strings.Replace(st(""), `"name":"r"`, `"name":"r","uri":"u","content":"","downloadLocation":"d","mediaType":"m"`, 1), true},
		{"unknown key", st(`,"x":1`), false},
		{"unknown subject key", strings.Replace(st(""), `"name":"r"`, `"name":"r","x":1`, 1), false},
		{"protobuf field name", st(`,"predicate_type":"p"`), false},
		{"key in another case", strings.Replace(st(""), `"subject"`, `"Subject"`, 1), false},
		{"predicate a string", st(`,"predicate":"text"`), false},
		{"predicate a list", st(`,"predicate":[]`), false},
		{"annotations not an object", strings.Replace(st(""), `{"env":"prod","n":1}`, `[]`, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProtoJSON([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("got %+v, %v; want ok %v", got, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if tc.name == "no predicate" && !reflect.DeepEqual(got, want) {
				t.Fatalf("parsed %+v\nwant   %+v", got, want)
			}
			// What ParseProtoJSON accepts, Parse accepts too.
			if _, err := Parse([]byte(tc.in)); tc.ok && err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestHasDigest(t *testing.T) {
	s := &Statement{Subject: []Subject{
		{Digest: map[string]string{"sha512": hexA}},
		{Digest: map[string]string{"sha256": "ab"}},
	}}
	for _, tc := range []struct {
		alg, hex string
		want     bool
	}{
		{"sha256", "ab", true},
		{"sha512", hexA, true},
		{"sha256", hexA, false}, // the right digest under another algorithm
		{"sha256", "AB", false}, // compared exactly, as cosign does
		{"sha256", "", false},
	} {
		if got := s.HasDigest(tc.alg, tc.hex); got != tc.want {
			t.Errorf("HasDigest(%s, %s) = %v", tc.alg, tc.hex, got)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	for in, ok := range map[string]bool{
		`1`: true, `"s"`: true, `{"a":{"a":1},"b":[{"a":1},{"a":2}]}`: true, `[[],{}]`: true,
		`{"a":1,"a":1}`: false, `{"a":{"b":1,"b":1}}`: false, `[{"x":1,"x":2}]`: false,
		`1 1`: false, ``: false, `{`: false, `{"a"}`: false,
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth):     true,
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1): false,
	} {
		if err := CheckJSON([]byte(in)); (err == nil) != ok {
			t.Errorf("CheckJSON(%.40q) = %v", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		cosignV1Statement,
		`{"_type":"https://in-toto.io/Statement/v1","subject":[{"uri":"u","digest":{"sha256":"ab"}}],"predicateType":"p","predicate":"text"}`,
		`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[{"name":"r","digest":{"sha256":"ab"}}],"predicate":{"a":[1,2,{"b":null}]}}`,
		`{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"digest":{"sha256":"ab","sha256":"cd"}}]}`,
		`{"_type":"https://in-toto.io/Statement/v1","PredicateType":"p","subject":[{"digest":{"sha256":"ab"}}]}`,
		`{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"digest":{"sha256":"ab"},"annotations":{"a":"b","n":[1]}}],"predicate":{}}`,
		`[]`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if p, perr := ParseProtoJSON(b); perr == nil && (err != nil || !reflect.DeepEqual(p, s)) {
			t.Fatalf("ParseProtoJSON accepted what Parse reads otherwise: %+v, %v", p, err)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What parses re-encodes, and reads back the same.
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("parsed statement does not encode: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded statement does not parse: %v\n%s", err, out)
		}
		if again.Type != s.Type || again.PredicateType != s.PredicateType || !reflect.DeepEqual(again.Subject, s.Subject) {
			t.Fatalf("round trip changed the statement: %+v, %+v", s, again)
		}
	})
}
