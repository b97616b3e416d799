package dsse

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestPAE(t *testing.T) {
	for _, tc := range []struct {
		typ, body, want string
	}{
		// The example of the DSSE specification (protocol.md).
		{"http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"", "", "DSSEv1 0  0 "},
		// Lengths count bytes, not runes.
		{"t", "é", "DSSEv1 1 t 2 é"},
	} {
		if got := string(PAE(tc.typ, []byte(tc.body))); got != tc.want {
			t.Errorf("PAE(%q, %q) = %q, want %q", tc.typ, tc.body, got, tc.want)
		}
	}
}

func TestSignMarshalParse(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`)
	for name, tc := range map[string]struct {
		signer crypto.Signer
		opts   crypto.SignerOpts
		verify func(pae, sig []byte) bool
	}{
		"ecdsa p-256 sha-256": {ec, crypto.SHA256, func(pae, sig []byte) bool {
			sum := sha256.Sum256(pae)
			return ecdsa.VerifyASN1(&ec.PublicKey, sum[:], sig)
		}},
		"ed25519": {ed, crypto.Hash(0), func(pae, sig []byte) bool {
			return ed25519.Verify(ed.Public().(ed25519.PublicKey), pae, sig)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			env, err := Sign(tc.signer, tc.opts, "application/vnd.in-toto+json", payload)
			if err != nil {
				t.Fatal(err)
			}
			b, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, env) {
				t.Fatalf("parsed %+v, want %+v", got, env)
			}
			if !tc.verify(PAE(got.PayloadType, got.Payload), got.Signatures[0].Sig) {
				t.Fatal("signature does not verify over PAE")
			}
		})
	}
}

// TestMarshalShape pins the JSON that cosign (go-securesystemslib's Envelope through
// encoding/json) writes, byte for byte.
func TestMarshalShape(t *testing.T) {
	env := &Envelope{PayloadType: "application/vnd.in-toto+json", Payload: []byte("{}\xff"), Signatures: []Signature{{Sig: []byte{1, 2, 0xfb}}}}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"payloadType":"application/vnd.in-toto+json","payload":"e33/","signatures":[{"keyid":"","sig":"AQL7"}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if _, err := (&Envelope{PayloadType: "x"}).Marshal(); err == nil {
		t.Error("an envelope without signatures encoded")
	}
	if _, err := (&Envelope{PayloadType: "x", Signatures: []Signature{{}}}).Marshal(); err == nil {
		t.Error("an empty signature encoded")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParse(t *testing.T) {
	sig := b64("sig")
	ok := func(extra string) string {
		return `{"payloadType":"t","payload":"` + b64("body?>") + `","signatures":[{"keyid":"k","sig":"` + sig + `"}]` + extra + `}`
	}
	for _, tc := range []struct {
		name, in string
		want     *Envelope // nil: an error
	}{
		{"cosign shape", ok(""), &Envelope{PayloadType: "t", Payload: []byte("body?>"), Signatures: []Signature{{KeyID: "k", Sig: []byte("sig")}}}},
		{"key order and spacing do not matter",
			" {\"signatures\" : [ {\"sig\":\"" + sig + "\"} ],\n\"payload\":\"" + b64("x") + "\", \"payloadType\":\"t\"} ",
			&Envelope{PayloadType: "t", Payload: []byte("x"), Signatures: []Signature{{Sig: []byte("sig")}}}},
		{"url alphabet", `{"payloadType":"t","payload":"Pz8-","signatures":[{"sig":"Pz8_"}]}`,
			&Envelope{PayloadType: "t", Payload: []byte("??>"), Signatures: []Signature{{Sig: []byte("???")}}}},
		{"unpadded", `{"payloadType":"t","payload":"eA","signatures":[{"sig":"eQ"}]}`,
			&Envelope{PayloadType: "t", Payload: []byte("x"), Signatures: []Signature{{Sig: []byte("y")}}}},
		{"unknown keys ignored", ok(`,"extension":{"a":[1,{"b":null}]}`),
			&Envelope{PayloadType: "t", Payload: []byte("body?>"), Signatures: []Signature{{KeyID: "k", Sig: []byte("sig")}}}},
		{"empty payload", `{"payloadType":"t","payload":"","signatures":[{"sig":"eQ=="}]}`,
			&Envelope{PayloadType: "t", Payload: []byte{}, Signatures: []Signature{{Sig: []byte("y")}}}},

		{"duplicate payload", `{"payloadType":"t","payload":"eA==","payload":"eQ==","signatures":[{"sig":"eQ=="}]}`, nil},
		{"duplicate payloadType", `{"payloadType":"t","payloadType":"u","payload":"eA==","signatures":[{"sig":"eQ=="}]}`, nil},
		{"duplicate sig", `{"payloadType":"t","payload":"eA==","signatures":[{"sig":"eQ==","sig":"eA=="}]}`, nil},
		{"duplicate inside unknown", ok(`,"x":{"a":1,"a":2}`), nil},
		{"unknown nested too deeply", ok(`,"x":` + strings.Repeat("[", maxSkipDepth+1) + strings.Repeat("]", maxSkipDepth+1)), nil},
		{"no payloadType", `{"payload":"eA==","signatures":[{"sig":"eQ=="}]}`, nil},
		{"no payload", `{"payloadType":"t","signatures":[{"sig":"eQ=="}]}`, nil},
		{"no signatures", `{"payloadType":"t","payload":"eA=="}`, nil},
		{"empty signatures", `{"payloadType":"t","payload":"eA==","signatures":[]}`, nil},
		{"null signatures", `{"payloadType":"t","payload":"eA==","signatures":null}`, nil},
		{"signature without sig", `{"payloadType":"t","payload":"eA==","signatures":[{"keyid":"k"}]}`, nil},
		{"empty sig", `{"payloadType":"t","payload":"eA==","signatures":[{"sig":""}]}`, nil},
		{"payload not a string", `{"payloadType":"t","payload":1,"signatures":[{"sig":"eQ=="}]}`, nil},
		{"payloadType null", `{"payloadType":null,"payload":"eA==","signatures":[{"sig":"eQ=="}]}`, nil},
		{"payload not base64", `{"payloadType":"t","payload":"%%%","signatures":[{"sig":"eQ=="}]}`, nil},
		{"payload with stray bits", `{"payloadType":"t","payload":"eB==","signatures":[{"sig":"eQ=="}]}`, nil},
		{"sig not base64", `{"payloadType":"t","payload":"eA==","signatures":[{"sig":"!"}]}`, nil},
		{"signature not an object", `{"payloadType":"t","payload":"eA==","signatures":["eQ=="]}`, nil},
		{"too many signatures", `{"payloadType":"t","payload":"eA==","signatures":[` +
			strings.TrimSuffix(strings.Repeat(`{"sig":"eQ=="},`, MaxSignatures+1), ",") + `]}`, nil},
		{"trailing value", ok("") + "{}", nil},
		{"trailing garbage", ok("") + "x", nil},
		{"array", `[]`, nil},
		{"string", `"x"`, nil},
		{"empty", ``, nil},
		{"truncated", ok("")[:40], nil},
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
				t.Fatalf("parsed %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseProtoJSON(t *testing.T) {
	sig := b64("sig")
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"as sigstore writes it", `{"payload":"` + b64("body?>") + `","payloadType":"t","signatures":[{"sig":"` + sig + `","keyid":""}]}`, true},
		{"without keyid", `{"payload":"eA==","payloadType":"t","signatures":[{"sig":"` + sig + `"}]}`, true},
		{"url alphabet", `{"payloadType":"t","payload":"Pz8-","signatures":[{"sig":"` + sig + `"}]}`, false},
		{"unpadded", `{"payloadType":"t","payload":"eA","signatures":[{"sig":"` + sig + `"}]}`, false},
		{"unknown key", `{"payloadType":"t","payload":"eA==","signatures":[{"sig":"` + sig + `"}],"x":1}`, false},
		{"unknown signature key", `{"payloadType":"t","payload":"eA==","signatures":[{"sig":"` + sig + `","x":1}]}`, false},
		{"protobuf field name", `{"payload_type":"t","payload":"eA==","signatures":[{"sig":"` + sig + `"}]}`, false},
		{"duplicate payload", `{"payloadType":"t","payload":"eA==","payload":"eQ==","signatures":[{"sig":"eQ=="}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProtoJSON([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("got %+v, %v; want ok %v", got, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"MEUCIQ=="}]}`,
		`{"payloadType":"t","payload":"Pz8-","signatures":[{"sig":"Pz8_"},{"sig":"eQ","keyid":"k"}],"x":[{}]}`,
		`{"payloadType":"t","payload":"eA==","payload":"eQ==","signatures":[{"sig":"eQ=="}]}`,
		`{"signatures":[{"sig":"eQ=="}],"payload":"","payloadType":""}`,
		`[]`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Parse(b)
		if p, perr := ParseProtoJSON(b); perr == nil && (err != nil || !reflect.DeepEqual(p, env)) {
			t.Fatalf("ParseProtoJSON accepted what Parse reads otherwise: %+v, %v", p, err)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(env.Signatures) == 0 || len(env.Signatures) > MaxSignatures {
			t.Fatalf("%d signatures accepted", len(env.Signatures))
		}
		// What parses re-encodes, and reads back the same.
		out, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v\n%s", err, out)
		}
		if again.PayloadType != env.PayloadType || !bytes.Equal(again.Payload, env.Payload) || len(again.Signatures) != len(env.Signatures) {
			t.Fatalf("round trip changed the envelope: %+v, %+v", env, again)
		}
		var generic map[string]any
		if err := json.Unmarshal(out, &generic); err != nil {
			t.Fatal(fmt.Errorf("re-encoded envelope is not JSON: %w", err))
		}
	})
}
