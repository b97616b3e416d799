package policy

import "time"

// Evidence is everything known about one image when a decision is made. It is gathered
// elsewhere (registry, signature verification, SBOM, vulnerability scan) and passed in;
// the policy package never fetches anything itself.
//
// The same object is what CEL expressions see: as the variable evidence and, field by
// field, as the top-level variables image, digest, config, signatures, attestations, sbom,
// findings, database and errors. CEL field names are the JSON names below.
type Evidence struct {
	// Image is the reference the decision is about.
	Image Image `json:"image"`
	// Digest is the manifest digest the reference resolved to ("sha256:...").
	Digest string `json:"digest"`
	// Config is the part of the image configuration that policies look at.
	Config Config `json:"config"`
	// Signatures are the signatures that verified against a key of the policy. Signatures
	// that did not verify are left out (and, when malformed, reported in Errors).
	Signatures []Signature `json:"signatures"`
	// Attestations are the attestations found for the digest, verified or not.
	Attestations []Attestation `json:"attestations"`
	// SBOM summarises the image's software bill of materials.
	SBOM SBOM `json:"sbom"`
	// Findings are the vulnerabilities found in the image.
	Findings []Finding `json:"findings"`
	// Database describes the advisory database the findings come from; nil means no
	// vulnerability scan was made, which fails every vulnerability requirement.
	Database *Database `json:"database"`
	// Rejected lists the signatures and attestations that were found but did not verify,
	// each with why ("signature 1 (sha256:ab12…): signature is for another image digest").
	// They count for nothing; the list explains a failed requirement.
	Rejected []string `json:"rejected"`
	// Errors are the failures met while gathering evidence (a registry error, a missing
	// database, a malformed signature). Any error makes the decision a deny.
	Errors []string `json:"errors"`
}

// Image names the image a decision is about.
type Image struct {
	// Reference is the reference as the user gave it ("registry.example.com/team/app:1.2").
	Reference string `json:"reference"`
	// Registry is the registry host ("registry.example.com", "docker.io").
	Registry string `json:"registry"`
	// Repository is the repository path inside the registry ("team/app", "library/alpine").
	Repository string `json:"repository"`
	// Tag is the tag of the reference, empty when it was given by digest.
	Tag string `json:"tag"`
}

// Config is the trimmed image configuration (the fields of go-containerregistry's
// v1.Config that policies use).
type Config struct {
	// User is the configured user ("", "root", "1000", "app:app").
	User string `json:"user"`
	// Env is the configured environment, "NAME=value" per entry.
	Env []string `json:"env"`
	// Labels are the configured labels.
	Labels map[string]string `json:"labels"`
}

// Signature is one verified signature on the digest.
type Signature struct {
	// Key is the name (in the policy's keys) of the key that verified the signature.
	Key string `json:"key"`
	// KeyID identifies the public key independently of the policy ("sha256:" and the hex
	// SHA-256 of its DER encoding).
	KeyID string `json:"keyID"`
	// Annotations are the signed annotations of the payload.
	Annotations map[string]string `json:"annotations"`
}

// Attestation is one attestation (an in-toto statement in a DSSE envelope) on the digest.
type Attestation struct {
	// PredicateType is the in-toto predicate type URI.
	PredicateType string `json:"predicateType"`
	// Key is the name (in the policy's keys) of the key that verified the envelope; empty
	// when none did.
	Key string `json:"key"`
	// KeyID identifies the signing key as in Signature.
	KeyID string `json:"keyID"`
	// Timestamp is when the predicate was produced (scan finish, SBOM creation); zero when
	// unknown, which fails any age limit.
	Timestamp time.Time `json:"timestamp"`
	// Verified is set when the envelope's signature verified and the statement's subject is
	// the digest. Unverified attestations never satisfy a requirement.
	Verified bool `json:"verified"`
}

// SBOM summarises a software bill of materials.
type SBOM struct {
	// Packages is the number of packages of each type ("deb", "npm", ...).
	Packages map[string]int `json:"packages"`
	// Total is the number of packages.
	Total int `json:"total"`
}

// Finding is one vulnerability in one package.
type Finding struct {
	// ID is the vulnerability's primary identifier.
	ID string `json:"id"`
	// Package and Version name the affected package.
	Package string `json:"package"`
	Version string `json:"version"`
	// Severity is the level name: unknown, none, low, medium, high or critical.
	Severity string `json:"severity"`
	// FixStatus is "fixed" when a fixed version exists, "not-fixed", "will-not-fix" or "".
	FixStatus string `json:"fixStatus"`
	// Suppressed is set when an ignore file or VEX statement hides the finding; suppressed
	// findings never fail a requirement.
	Suppressed bool `json:"suppressed"`
}

// Database describes the advisory database a scan used.
type Database struct {
	// Built is when the database was last updated.
	Built time.Time `json:"built"`
}
