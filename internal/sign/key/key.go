// Package key generates, encrypts and loads signing keys in the formats cosign uses, so that a
// key pair moves freely between moat and cosign.
//
// A private key is stored as a PEM block of type "ENCRYPTED SIGSTORE PRIVATE KEY" (cosign before
// v1.5 wrote "ENCRYPTED COSIGN PRIVATE KEY"; both load). The block holds a JSON envelope: the
// PKCS#8 DER of the key, sealed with NaCl secretbox under a key derived from the password with
// scrypt. A public key is a PKIX "PUBLIC KEY" PEM block.
//
// Supported keys are the ones cosign itself accepts (sigstore's goodkey policy): ECDSA on
// P-256, P-384 and P-521, RSA from 2048 to 4096 bits, and Ed25519. Anything else is
// ErrUnsupportedKey. Generate always makes ECDSA P-256, cosign's default.
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
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// PEM block types.
const (
	// PEMTypeEncrypted is what moat and cosign (v1.5 and later) write for a private key.
	PEMTypeEncrypted = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// PEMTypeEncryptedCosign is what older cosign versions wrote; it is read, never written.
	PEMTypeEncryptedCosign = "ENCRYPTED COSIGN PRIVATE KEY"
	// PEMTypePublic is a PKIX public key.
	PEMTypePublic = "PUBLIC KEY"
)

// MaxPEMSize bounds what the loaders read: a 4096-bit RSA key in cosign's envelope is under
// 4 KiB, so anything past this is not a key.
const MaxPEMSize = 64 << 10

// Errors that callers can tell apart with errors.Is.
var (
	// ErrWrongPassword means the envelope did not open: the password is wrong or the
	// ciphertext was changed (secretbox cannot tell the two apart).
	ErrWrongPassword = errors.New("wrong password, or the encrypted key is corrupted")
	// ErrUnsupportedKey means the key is well formed but not a type or size that cosign uses.
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrMalformed means the input is not a key in the expected format.
	ErrMalformed = errors.New("malformed key")
)

// Parameters moat writes; they are the ones cosign writes.
const (
	scryptN   = 32768
	scryptR   = 8
	scryptP   = 1
	saltSize  = 32
	nonceSize = 24
	boxKeyLen = 32
	// maxScryptMemory caps 128*N*r, the memory scrypt needs, for envelopes read from disk: a
	// crafted file must not make the loader allocate gigabytes. Cosign writes N=32768, r=8
	// (32 MiB); its older test keys use N=65536 (64 MiB); this allows twice that.
	maxScryptMemory = 128 << 20
	// maxScryptP caps the parallelism parameter, which multiplies the time scrypt takes.
	maxScryptP = 4
)

// envelope is the JSON inside an encrypted PEM block (go-securesystemslib's "encrypted"
// format, which cosign uses). []byte fields are standard base64, as encoding/json writes them.
type envelope struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// Generate makes a new ECDSA P-256 key, the kind `cosign generate-key-pair` makes.
func Generate() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// EncryptPrivateKey seals k under password and returns it as an "ENCRYPTED SIGSTORE PRIVATE
// KEY" PEM block that cosign loads. An empty password is allowed, as in cosign.
func EncryptPrivateKey(k crypto.Signer, password []byte) ([]byte, error) {
	if err := checkPublic(k.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key as PKCS#8: %w", err)
	}
	var env envelope
	env.KDF.Name = "scrypt"
	env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P = scryptN, scryptR, scryptP
	env.KDF.Salt = make([]byte, saltSize)
	env.Cipher.Name = "nacl/secretbox"
	env.Cipher.Nonce = make([]byte, nonceSize)
	if _, err := rand.Read(env.KDF.Salt); err != nil {
		return nil, fmt.Errorf("making salt: %w", err)
	}
	if _, err := rand.Read(env.Cipher.Nonce); err != nil {
		return nil, fmt.Errorf("making nonce: %w", err)
	}
	boxKey, err := scrypt.Key(password, env.KDF.Salt, scryptN, scryptR, scryptP, boxKeyLen)
	if err != nil {
		return nil, fmt.Errorf("deriving key from password: %w", err)
	}
	var kk [boxKeyLen]byte
	var nonce [nonceSize]byte
	copy(kk[:], boxKey)
	copy(nonce[:], env.Cipher.Nonce)
	env.Ciphertext = secretbox.Seal(nil, der, &nonce, &kk)
	clear(der)
	clear(kk[:])
	body, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encoding key envelope: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMTypeEncrypted, Bytes: body}), nil
}

// LoadPrivateKey opens an encrypted private key written by moat or cosign (either PEM type).
// A wrong password is ErrWrongPassword; input that is not such a key is ErrMalformed; a key
// cosign would not use is ErrUnsupportedKey.
func LoadPrivateKey(pemBytes, password []byte) (crypto.Signer, error) {
	block, err := decodeOne(pemBytes)
	if err != nil {
		return nil, err
	}
	if block.Type != PEMTypeEncrypted && block.Type != PEMTypeEncryptedCosign {
		return nil, fmt.Errorf("%w: PEM type %q, want %q", ErrMalformed, block.Type, PEMTypeEncrypted)
	}
	env, err := parseEnvelope(block.Bytes)
	if err != nil {
		return nil, err
	}
	p := env.KDF.Params
	boxKey, err := scrypt.Key(password, env.KDF.Salt, p.N, p.R, p.P, boxKeyLen)
	if err != nil {
		return nil, fmt.Errorf("%w: scrypt parameters: %w", ErrMalformed, err)
	}
	var kk [boxKeyLen]byte
	var nonce [nonceSize]byte
	copy(kk[:], boxKey)
	copy(nonce[:], env.Cipher.Nonce)
	der, ok := secretbox.Open(nil, env.Ciphertext, &nonce, &kk)
	clear(kk[:])
	if !ok {
		return nil, fmt.Errorf("decrypting private key: %w", ErrWrongPassword)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: decrypted key is not PKCS#8: %w", ErrMalformed, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, k)
	}
	if err := checkPublic(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// parseEnvelope decodes and checks the JSON envelope before any expensive work, so that a
// crafted file cannot make scrypt run with huge parameters.
func parseEnvelope(b []byte) (*envelope, error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: key envelope: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: key envelope: data after the JSON object", ErrMalformed)
	}
	if env.KDF.Name != "scrypt" {
		return nil, fmt.Errorf("%w: key derivation %q, want scrypt", ErrMalformed, env.KDF.Name)
	}
	if env.Cipher.Name != "nacl/secretbox" {
		return nil, fmt.Errorf("%w: cipher %q, want nacl/secretbox", ErrMalformed, env.Cipher.Name)
	}
	p := env.KDF.Params
	if p.N < 2 || bits.OnesCount(uint(p.N)) != 1 || p.R < 1 || p.P < 1 || p.R > 32 || p.P > maxScryptP ||
		int64(p.N)*int64(p.R)*128 > maxScryptMemory {
		return nil, fmt.Errorf("%w: scrypt parameters N=%d r=%d p=%d out of range", ErrMalformed, p.N, p.R, p.P)
	}
	if len(env.KDF.Salt) == 0 || len(env.KDF.Salt) > 1024 {
		return nil, fmt.Errorf("%w: salt of %d bytes", ErrMalformed, len(env.KDF.Salt))
	}
	if len(env.Cipher.Nonce) != nonceSize {
		return nil, fmt.Errorf("%w: nonce of %d bytes, want %d", ErrMalformed, len(env.Cipher.Nonce), nonceSize)
	}
	if len(env.Ciphertext) < secretbox.Overhead {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes is too short", ErrMalformed, len(env.Ciphertext))
	}
	return &env, nil
}

// MarshalPublicKey encodes pub as a PKIX "PUBLIC KEY" PEM block, as cosign writes cosign.pub.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMTypePublic, Bytes: der}), nil
}

// LoadPublicKey reads a PKIX "PUBLIC KEY" PEM block such as cosign.pub. The result is an
// *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey.
func LoadPublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, err := decodeOne(pemBytes)
	if err != nil {
		return nil, err
	}
	if block.Type != PEMTypePublic {
		return nil, fmt.Errorf("%w: PEM type %q, want %q", ErrMalformed, block.Type, PEMTypePublic)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrMalformed, err)
	}
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// Fingerprint names a public key in reports and errors: "sha256:" and the hex SHA-256 of its
// PKIX DER encoding. It identifies the key, not the file it came from.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// decodeOne reads exactly one PEM block, allowing only whitespace around it.
func decodeOne(b []byte) (*pem.Block, error) {
	if len(b) > MaxPEMSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a key can take", ErrMalformed, len(b), MaxPEMSize)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrMalformed)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM headers are not used by this format", ErrMalformed)
	}
	return block, nil
}

// checkPublic applies cosign's key policy.
func checkPublic(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 4096 {
			return fmt.Errorf("%w: RSA key of %d bits (want 2048 to 4096)", ErrUnsupportedKey, n)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return nil
	}
	return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}
