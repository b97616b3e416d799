package key

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"testing"
)

// FuzzLoadPrivateKey feeds arbitrary files to the private key loader: it must return one of
// the documented errors or a usable key, and never panic or run away with memory.
func FuzzLoadPrivateKey(f *testing.F) {
	for _, name := range []string{"cosign-sigstore.key", "cosign-legacy.key"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte("hello"))
	}
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\ne30=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), []byte(""))
	f.Fuzz(func(t *testing.T, in, password []byte) {
		k, err := LoadPrivateKey(in, password)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if k == nil || k.Public() == nil {
			t.Fatal("nil key without error")
		}
	})
}

// FuzzLoadPublicKey does the same for public keys.
func FuzzLoadPublicKey(f *testing.F) {
	k, _ := Generate()
	pub, _ := MarshalPublicKey(k.Public())
	f.Add(pub)
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der[:len(der)-3]}))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := LoadPublicKey(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if _, err := MarshalPublicKey(p); err != nil {
			t.Fatalf("loaded key does not marshal: %v", err)
		}
	})
}
