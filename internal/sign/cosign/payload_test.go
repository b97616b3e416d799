package cosign

import (
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPayloadMarshal(t *testing.T) {
	h, _ := v1.NewHash(testDigest)
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{nil, `{"critical":{"identity":{"docker-reference":"reg.example/app"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"},"optional":null}`},
		{map[string]string{"b": "2", "a": "<1>"}, `{"critical":{"identity":{"docker-reference":"reg.example/app"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"},"optional":{"a":"\u003c1\u003e","b":"2"}}`},
	} {
		b, err := Payload{DockerReference: "reg.example/app", Digest: h, Annotations: tc.ann}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Fatalf("got  %s\nwant %s", b, tc.want)
		}
		p, err := ParsePayload(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Digest != h || p.DockerReference != "reg.example/app" || len(p.Annotations) != len(tc.ann) {
			t.Fatalf("parsed %+v", p)
		}
		for k, v := range tc.ann {
			if p.Annotations[k] != v {
				t.Fatalf("annotation %s: %q", k, p.Annotations[k])
			}
		}
	}
}

func TestParsePayloadRejects(t *testing.T) {
	crit := `"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"}`
	for name, in := range map[string]string{
		"empty":                ``,
		"not JSON":             `hello`,
		"array":                `[]`,
		"no critical":          `{"optional":null}`,
		"trailing value":       `{` + crit + `} {}`,
		"duplicate critical":   `{` + crit + `,` + crit + `}`,
		"duplicate in image":   `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"` + testDigest + `","docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"}}`,
		"duplicate optional":   `{` + crit + `,"optional":{"a":"1","a":"2"}}`,
		"unknown top":          `{` + crit + `,"extra":1}`,
		"unknown critical":     `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature","x":1}}`,
		"wrong type":           strings.Replace(`{`+crit+`}`, "cosign container image signature", "atomic container signature", 1),
		"no type":              `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"` + testDigest + `"}}}`,
		"no identity":          `{"critical":{"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"}}`,
		"empty reference":      strings.Replace(`{`+crit+`}`, `"r/a"`, `""`, 1),
		"no digest":            `{"critical":{"identity":{"docker-reference":"r/a"},"image":{},"type":"cosign container image signature"}}`,
		"uppercase digest":     strings.Replace(`{`+crit+`}`, testDigest, strings.ToUpper(testDigest[7:]), 1),
		"sha512 digest":        strings.Replace(`{`+crit+`}`, "sha256:", "sha512:", 1),
		"short digest":         strings.Replace(`{`+crit+`}`, testDigest, testDigest[:20], 1),
		"number annotation":    `{` + crit + `,"optional":{"a":1}}`,
		"nested annotation":    `{` + crit + `,"optional":{"a":{"b":"c"}}}`,
		"null critical":        `{"critical":null}`,
		"deep":                 `{` + crit + `,"optional":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`,
		"too large":            `{` + crit + `,"optional":{"a":"` + strings.Repeat("x", MaxPayloadSize) + `"}}`,
		"digest type":          strings.Replace(`{`+crit+`}`, `"`+testDigest+`"`, `1`, 1),
		"reference not string": strings.Replace(`{`+crit+`}`, `"r/a"`, `["r/a"]`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := ParsePayload([]byte(in))
			if !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("got %+v, %v; want ErrMalformedPayload", p, err)
			}
		})
	}
}

// FuzzParsePayload: the parser never panics, and whatever it accepts marshals back to a
// payload it accepts with the same meaning.
func FuzzParsePayload(f *testing.F) {
	h, _ := v1.NewHash(testDigest)
	b, _ := Payload{DockerReference: "reg.example/app", Digest: h, Annotations: map[string]string{"k": "v"}}.Marshal()
	f.Add(b)
	b, _ = Payload{DockerReference: "reg.example/app", Digest: h}.Marshal()
	f.Add(b)
	f.Add([]byte(`{"critical":{},"optional":{"a":"1","a":"2"}}`))
	f.Add([]byte(`[[[[{"a":[1,2,{"b":null}]}]]]]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePayload(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted payload does not marshal: %v", err)
		}
		q, err := ParsePayload(out)
		if err != nil {
			t.Fatalf("re-marshalled payload rejected: %v", err)
		}
		if q.Digest != p.Digest || q.DockerReference != p.DockerReference || len(q.Annotations) != len(p.Annotations) {
			t.Fatalf("meaning changed: %+v vs %+v", p, q)
		}
	})
}
