package key

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

func TestRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if k.Curve != elliptic.P256() {
		t.Fatalf("Generate made a %s key, want P-256", k.Curve.Params().Name)
	}
	for _, pw := range []string{"correct horse", ""} {
		enc, err := EncryptPrivateKey(k, []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(enc, []byte("-----BEGIN "+PEMTypeEncrypted+"-----\n")) {
			t.Fatalf("PEM type: %s", enc)
		}
		got, err := LoadPrivateKey(enc, []byte(pw))
		if err != nil {
			t.Fatalf("password %q: %v", pw, err)
		}
		if !k.Equal(got) {
			t.Fatalf("password %q: loaded key differs", pw)
		}
		_, err = LoadPrivateKey(enc, []byte(pw+"x"))
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: got %v, want ErrWrongPassword", err)
		}
	}
}

// TestEnvelopeByHand opens moat's output with scrypt and secretbox directly, following the
// format description rather than moat's loader, so a symmetric mistake in both halves of the
// round trip cannot pass.
func TestEnvelopeByHand(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncryptPrivateKey(k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(enc)
	var raw map[string]any
	if err := json.Unmarshal(block.Bytes, &raw); err != nil {
		t.Fatal(err)
	}
	kdf := raw["kdf"].(map[string]any)
	params := kdf["params"].(map[string]any)
	if kdf["name"] != "scrypt" || params["N"] != 32768.0 || params["r"] != 8.0 || params["p"] != 1.0 {
		t.Fatalf("kdf: %v", kdf)
	}
	cipher := raw["cipher"].(map[string]any)
	if cipher["name"] != "nacl/secretbox" {
		t.Fatalf("cipher: %v", cipher)
	}
	b64 := func(v any) []byte {
		b, err := base64.StdEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	salt, nonceB, ct := b64(kdf["salt"]), b64(cipher["nonce"]), b64(raw["ciphertext"])
	bk, err := scrypt.Key([]byte("pw"), salt, 32768, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	var kk [32]byte
	var nonce [24]byte
	copy(kk[:], bk)
	copy(nonce[:], nonceB)
	der, ok := secretbox.Open(nil, ct, &nonce, &kk)
	if !ok {
		t.Fatal("secretbox did not open")
	}
	want, _ := x509.MarshalPKCS8PrivateKey(k)
	if !bytes.Equal(der, want) {
		t.Fatal("plaintext is not the PKCS#8 DER of the key")
	}
}

// TestCosignKeys loads keys that cosign generated (see testdata/README.md).
func TestCosignKeys(t *testing.T) {
	for _, tc := range []struct {
		file    string
		wantErr error
	}{
		{"cosign-sigstore.key", nil},
		{"cosign-legacy.key", nil},
		{"cosign-sec1.key", ErrMalformed},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			k, err := LoadPrivateKey(b, []byte("hello"))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if strings.Contains(err.Error(), "password") {
					t.Fatalf("the envelope should open; error: %v", err)
				}
				return
			}
			// The key signs, and the signature checks against its public half
			// after a trip through a PEM public key.
			t.Logf("%s holds a %T", tc.file, k.Public())
			pubPEM, err := MarshalPublicKey(k.Public())
			if err != nil {
				t.Fatal(err)
			}
			pub, err := LoadPublicKey(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte("payload"))
			sig, err := k.Sign(rand.Reader, sum[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			switch p := pub.(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(p, sum[:], sig) {
					t.Fatal("signature does not verify")
				}
			case *rsa.PublicKey:
				if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, sum[:], sig); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("unexpected key type %T", pub)
			}
			if _, err := LoadPrivateKey(b, []byte("Hello")); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

func TestLoadPrivateKeyRejects(t *testing.T) {
	k, _ := Generate()
	good, err := EncryptPrivateKey(k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	withBody := func(typ string, body []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: body})
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(block.Bytes, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return withBody(PEMTypeEncrypted, b)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	for name, in := range map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("hello"),
		"plain PKCS#8":   withBody("PRIVATE KEY", der),
		"public key":     withBody(PEMTypePublic, der),
		"not JSON":       withBody(PEMTypeEncrypted, []byte("{")),
		"trailing JSON":  withBody(PEMTypeEncrypted, append(bytes.Clone(block.Bytes), []byte(" {}")...)),
		"two blocks":     append(bytes.Clone(good), good...),
		"oversized":      append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxPEMSize)...),
		"huge N":         edit(func(m map[string]any) { m["kdf"].(map[string]any)["params"].(map[string]any)["N"] = 1 << 30 }),
		"N not pow2":     edit(func(m map[string]any) { m["kdf"].(map[string]any)["params"].(map[string]any)["N"] = 1000 }),
		"huge p":         edit(func(m map[string]any) { m["kdf"].(map[string]any)["params"].(map[string]any)["p"] = 1 << 20 }),
		"other kdf":      edit(func(m map[string]any) { m["kdf"].(map[string]any)["name"] = "pbkdf2" }),
		"other cipher":   edit(func(m map[string]any) { m["cipher"].(map[string]any)["name"] = "aes-gcm" }),
		"short nonce":    edit(func(m map[string]any) { m["cipher"].(map[string]any)["nonce"] = "AAAA" }),
		"no ciphertext":  edit(func(m map[string]any) { delete(m, "ciphertext") }),
		"unknown fields": edit(func(m map[string]any) { m["extra"] = 1 }),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadPrivateKey(in, []byte("pw"))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("edited ciphertext", func(t *testing.T) {
		in := edit(func(m map[string]any) {
			ct, _ := base64.StdEncoding.DecodeString(m["ciphertext"].(string))
			ct[len(ct)-1] ^= 1
			m["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
		})
		if _, err := LoadPrivateKey(in, []byte("pw")); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("got %v, want ErrWrongPassword", err)
		}
	})
}

func TestPublicKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tc := range map[string]struct {
		pub crypto.PublicKey
		ok  bool
	}{
		"P-256":    {p256.Public(), true},
		"P-384":    {p384.Public(), true},
		"Ed25519":  {edPub, true},
		"RSA 2048": {rsa2048.Public(), true},
		"P-224":    {p224.Public(), false},
		"RSA 1024": {rsa1024.Public(), false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := MarshalPublicKey(tc.pub)
			if tc.ok != (err == nil) {
				t.Fatalf("MarshalPublicKey: %v", err)
			}
			der, err := x509.MarshalPKIXPublicKey(tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			in := pem.EncodeToMemory(&pem.Block{Type: PEMTypePublic, Bytes: der})
			got, err := LoadPublicKey(in)
			if !tc.ok {
				if !errors.Is(err, ErrUnsupportedKey) {
					t.Fatalf("got %v, want ErrUnsupportedKey", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.pub) {
				t.Fatal("loaded key differs")
			}
			f1, _ := Fingerprint(got)
			f2, _ := Fingerprint(tc.pub)
			if f1 != f2 || !strings.HasPrefix(f1, "sha256:") || len(f1) != 7+64 {
				t.Fatalf("fingerprint %q vs %q", f1, f2)
			}
		})
	}
	if _, err := LoadPublicKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage DER: %v", err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(p256)
	if _, err := LoadPublicKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("private key as public: %v", err)
	}
}
