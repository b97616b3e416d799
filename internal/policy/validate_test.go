package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/moatsec/moat/internal/testutil"
)

// docRoot is a document with apiVersion and kind, then body.
func docRoot(body string) string { return "apiVersion: moat.dev/v1\nkind: Policy\n" + body }

// docKeys is a valid document but for its keys.
func docKeys(keys string) string {
	return docRoot("keys: " + keys + "\nrules: [{name: a, action: deny}]\n")
}

// docRule is a valid document but for its one rule, written in flow style.
func docRule(rule string) string {
	return docRoot("keys: {k: {publicKey: k.pub}, ci: {publicKey: ci.pub}}\nrules:\n  - " + rule + "\n")
}

// docRequire is a valid document but for its one rule's require.
func docRequire(req string) string { return docRule("{name: a, action: deny, require: " + req + "}") }

// docSignatures is a valid document but for its one rule's require.signatures.
func docSignatures(sig string) string { return docRequire("{signatures: " + sig + "}") }

// docAttestation is a valid document but for its one rule's only attestation requirement.
func docAttestation(att string) string { return docRequire("{attestations: [" + att + "]}") }

// schemaCases are targeted documents for every keyword of policy.schema.json: valid says
// whether the schema accepts the document; want is a text the error must hold when not.
var schemaCases = []struct {
	name  string
	doc   string
	valid bool
	want  string
}{
	// The root.
	{"minimal", docRoot("rules: [{name: a, action: deny}]\n"), true, ""},
	{"root array", "[]\n", false, "/: got array, want object"},
	{"root string", "policy\n", false, "/: got string, want object"},
	{"root null", "~\n", false, "/: got null, want object"},
	{"root integer", "1\n", false, "/: got integer, want object"},
	{"no apiVersion", "kind: Policy\nrules: [{name: a, action: deny}]\n", false, `1:1: /: missing required field "apiVersion"`},
	{"nothing required", "{}\n", false, `/: missing required fields "apiVersion", "kind", "rules"`},
	{"apiVersion other", "apiVersion: moat.dev/v2\nkind: Policy\nrules: [{name: a, action: deny}]\n", false, `/apiVersion: must be "moat.dev/v1"`},
	{"apiVersion number", "apiVersion: 1\nkind: Policy\nrules: [{name: a, action: deny}]\n", false, `/apiVersion: must be "moat.dev/v1"`},
	{"apiVersion null", "apiVersion:\nkind: Policy\nrules: [{name: a, action: deny}]\n", false, `/apiVersion: must be "moat.dev/v1"`},
	{"apiVersion list", "apiVersion: [moat.dev/v1]\nkind: Policy\nrules: [{name: a, action: deny}]\n", false, `/apiVersion: must be`},
	{"apiVersion quoted", "apiVersion: 'moat.dev/v1'\nkind: \"Policy\"\nrules: [{name: a, action: deny}]\n", true, ""},
	{"apiVersion tagged", "apiVersion: !!str moat.dev/v1\nkind: !custom Policy\nrules: [{name: a, action: deny}]\n", true, ""},
	{"kind other", "apiVersion: moat.dev/v1\nkind: policy\nrules: [{name: a, action: deny}]\n", false, `/kind: must be "Policy"`},
	{"kind null", "apiVersion: moat.dev/v1\nkind: null\nrules: [{name: a, action: deny}]\n", false, `/kind: must be "Policy"`},
	{"unknown root field", docRoot("rules: [{name: a, action: deny}]\nrule: []\n"), false, `4:1: /rule: unknown field "rule"`},
	{"unknown root fields", docRoot("rules: [{name: a, action: deny}]\nrule: []\nkey: {}\n"), false, `4:1: /rule: unknown fields "rule", "key"`},

	// keys.
	{"keys empty", docKeys("{}"), true, ""},
	{"keys null", docKeys("null"), false, "/keys: got null, want object"},
	{"keys list", docKeys("[k]"), false, "/keys: got array, want object"},
	{"keys string", docKeys("k"), false, "/keys: got string, want object"},
	{"key names", docKeys("{a.b_c-1: {publicKey: x}, 1k: {publicKey: y}, K: {publicKey: z}}"), true, ""},
	{"key name dash", docKeys("{-k: {publicKey: x}}"), false, `/keys/-k: invalid name "-k"`},
	{"key name dot", docKeys("{.k: {publicKey: x}}"), false, `/keys/.k: invalid name ".k"`},
	{"key name space", docKeys("{'a b': {publicKey: x}}"), false, `/keys/a b: invalid name "a b"`},
	{"key name slash", docKeys("{a/b: {publicKey: x}}"), false, `invalid name "a/b"`},
	{"key name empty", docKeys("{'': {publicKey: x}}"), false, `/keys/: invalid name ""`},
	{"key name unicode", docKeys("{é: {publicKey: x}}"), false, `invalid name "é"`},
	{"key name number", docKeys("{1: {publicKey: x}}"), true, ""},
	{"key not object", docKeys("{k: k.pub}"), false, "/keys/k: got string, want object"},
	{"key null", docKeys("{k: }"), false, "/keys/k: got null, want object"},
	{"key without publicKey", docKeys("{k: {}}"), false, `/keys/k: missing required field "publicKey"`},
	{"key unknown field", docKeys("{k: {publicKey: x, public: y}}"), false, `/keys/k/public: unknown field "public"`},
	{"publicKey empty", docKeys("{k: {publicKey: ''}}"), false, "/keys/k/publicKey: must not be empty"},
	{"publicKey number", docKeys("{k: {publicKey: 1}}"), false, "/keys/k/publicKey: got integer, want string"},
	{"publicKey null", docKeys("{k: {publicKey: null}}"), false, "/keys/k/publicKey: got null, want string"},
	{"publicKey binary", docKeys("{k: {publicKey: !!binary aGVsbG8=}}"), true, ""},
	{"publicKey block", docRoot("keys:\n  k:\n    publicKey: |\n      -----BEGIN PUBLIC KEY-----\n      abc\n      -----END PUBLIC KEY-----\nrules: [{name: a, action: deny}]\n"), true, ""},

	// rules.
	{"rules empty", docRoot("rules: []\n"), false, "3:1: /rules: needs at least 1 item"},
	{"rules null", docRoot("rules:\n"), false, "/rules: got null, want array"},
	{"rules object", docRoot("rules: {name: a, action: deny}\n"), false, "/rules: got object, want array"},
	{"rules string", docRoot("rules: a\n"), false, "/rules: got string, want array"},
	{"rule string", docRoot("rules: [a]\n"), false, "/rules/0: got string, want object"},
	{"rule null", docRoot("rules: [~]\n"), false, "/rules/0: got null, want object"},
	{"rule list", docRoot("rules: [[]]\n"), false, "/rules/0: got array, want object"},
	{"rule empty", docRoot("rules: [{}]\n"), false, `/rules/0: missing required fields "name", "action"`},
	{"rule without name", docRule("{action: deny}"), false, `/rules/0: missing required field "name"`},
	{"rule without action", docRule("{name: a}"), false, `/rules/0: missing required field "action"`},
	{"rule unknown field", docRule("{name: a, action: deny, when: x}"), false, `/rules/0/when: unknown field "when"`},
	{"name empty", docRule("{name: '', action: deny}"), false, "/rules/0/name: must not be empty"},
	{"name number", docRule("{name: 1, action: deny}"), false, "/rules/0/name: got integer, want string"},
	{"name float", docRule("{name: 1.5, action: deny}"), false, "/rules/0/name: got number, want string"},
	{"name bool", docRule("{name: true, action: deny}"), false, "/rules/0/name: got boolean, want string"},
	{"name yes", docRule("{name: yes, action: deny}"), true, ""},
	{"name timestamp", docRule("{name: 2001-12-14, action: deny}"), true, ""},
	{"name quoted number", docRule("{name: '1', action: deny}"), true, ""},
	{"name list", docRule("{name: [a], action: deny}"), false, "/rules/0/name: got array, want string"},
	{"description", docRule("{name: a, description: '', action: deny}"), true, ""},
	{"description null", docRule("{name: a, description: null, action: deny}"), false, "/rules/0/description: got null, want string"},
	{"description number", docRule("{name: a, description: 2, action: deny}"), false, "/rules/0/description: got integer, want string"},
	{"action other", docRule("{name: a, action: maybe}"), false, `/rules/0/action: must be one of "allow", "deny"`},
	{"action case", docRule("{name: a, action: Allow, isolation: vm}"), false, `/rules/0/action: must be one of "allow", "deny"`},
	{"action null", docRule("{name: a, action: null}"), false, `/rules/0/action: must be one of`},
	{"action bool", docRule("{name: a, action: true}"), false, `/rules/0/action: must be one of`},
	{"allow", docRule("{name: a, action: allow, isolation: vm}"), true, ""},
	{"allow quoted", docRule(`{name: a, action: "allow", isolation: "sandbox"}`), true, ""},
	{"allow without isolation", docRule("{name: a, action: allow}"), false, `/rules/0: missing required field "isolation" (an allow rule needs one)`},
	{"allow with null isolation", docRule("{name: a, action: allow, isolation: }"), false, `/rules/0/isolation: must be one of "hardened", "sandbox", "vm"`},
	{"deny with isolation", docRule("{name: a, action: deny, isolation: hardened}"), true, ""},
	{"bad action and no isolation", docRule("{name: a, action: alow}"), false, `/rules/0/action: must be one of`},
	{"isolation other", docRule("{name: a, action: allow, isolation: none}"), false, `/rules/0/isolation: must be one of "hardened", "sandbox", "vm"`},
	{"isolation number", docRule("{name: a, action: allow, isolation: 1}"), false, `/rules/0/isolation: must be one of`},

	// relaxations.
	{"relaxations", docRule("{name: a, action: allow, isolation: hardened, relaxations: [cap-add, 'cap-add:NET_ADMIN', writable-rootfs, 'bind-mount:/a:/b:ro', 'seccomp-profile:x:y', 'network:']}"), true, ""},
	{"relaxations empty", docRule("{name: a, action: allow, isolation: hardened, relaxations: []}"), false, "/rules/0/relaxations: needs at least 1 item"},
	{"relaxations string", docRule("{name: a, action: allow, isolation: hardened, relaxations: cap-add}"), false, "/rules/0/relaxations: got string, want array"},
	{"relaxations null", docRule("{name: a, action: allow, isolation: hardened, relaxations: ~}"), false, "/rules/0/relaxations: got null, want array"},
	{"relaxations equal", docRule("{name: a, action: allow, isolation: hardened, relaxations: [cap-add, new-privileges, cap-add]}"), false, "/rules/0/relaxations: items 0 and 2 are equal"},
	{"relaxations equal quoted", docRule(`{name: a, action: allow, isolation: hardened, relaxations: ['unlimited:cpus', "unlimited:cpus"]}`), false, "/rules/0/relaxations: items 0 and 1 are equal"},
	{"relaxation unknown kind", docRule("{name: a, action: allow, isolation: hardened, relaxations: [cap_add]}"), false, `/rules/0/relaxations/0: unknown relaxation kind "cap_add" (want KIND or KIND:VALUE, KIND one of cap-add,`},
	{"relaxation kind prefix", docRule("{name: a, action: allow, isolation: hardened, relaxations: [cap-addx]}"), false, `unknown relaxation kind "cap-addx"`},
	{"relaxation kind case", docRule("{name: a, action: allow, isolation: hardened, relaxations: ['Cap-add:x']}"), false, `unknown relaxation kind "Cap-add"`},
	{"relaxation newline", docRule(`{name: a, action: allow, isolation: hardened, relaxations: ["cap-add:a\nb"]}`), false, `unknown relaxation kind "cap-add"`},
	{"relaxation number", docRule("{name: a, action: allow, isolation: hardened, relaxations: [1]}"), false, "/rules/0/relaxations/0: got integer, want string"},
	{"relaxation null", docRule("{name: a, action: allow, isolation: hardened, relaxations: [null]}"), false, "/rules/0/relaxations/0: got null, want string"},
	{"relaxations equal numbers", docRule("{name: a, action: allow, isolation: hardened, relaxations: [1, 1.0]}"), false, "/rules/0/relaxations/0: got integer, want string"},

	// match.
	{"match empty", docRule("{name: a, action: deny, match: {}}"), true, ""},
	{"match null", docRule("{name: a, action: deny, match: }"), false, "/rules/0/match: got null, want object"},
	{"match list", docRule("{name: a, action: deny, match: [x]}"), false, "/rules/0/match: got array, want object"},
	{"match unknown field", docRule("{name: a, action: deny, match: {image: [x]}}"), false, `/rules/0/match/image: unknown field "image"`},
	{"images empty", docRule("{name: a, action: deny, match: {images: []}}"), false, "/rules/0/match/images: needs at least 1 item"},
	{"images string", docRule("{name: a, action: deny, match: {images: x}}"), false, "/rules/0/match/images: got string, want array"},
	{"images empty glob", docRule("{name: a, action: deny, match: {images: ['']}}"), false, "/rules/0/match/images/0: must not be empty"},
	{"images number", docRule("{name: a, action: deny, match: {images: [1]}}"), false, "/rules/0/match/images/0: got integer, want string"},
	{"images equal", docRule("{name: a, action: deny, match: {images: [a, a]}}"), true, ""},

	// require.
	{"require empty", docRequire("{}"), true, ""},
	{"require null", docRequire("null"), false, "/rules/0/require: got null, want object"},
	{"require string", docRequire("x"), false, "/rules/0/require: got string, want object"},
	{"require unknown field", docRequire("{signature: {keys: [k]}}"), false, `/rules/0/require/signature: unknown field "signature"`},
	{"registries", docRequire("{registries: [a, '*.b']}"), true, ""},
	{"registries empty", docRequire("{registries: []}"), false, "/rules/0/require/registries: needs at least 1 item"},
	{"registries empty glob", docRequire("{registries: ['']}"), false, "/rules/0/require/registries/0: must not be empty"},
	{"registries object", docRequire("{registries: {a: b}}"), false, "/rules/0/require/registries: got object, want array"},

	// signatures.
	{"signatures", docSignatures("{keys: [k, ci], threshold: 2}"), true, ""},
	{"signatures null", docSignatures("null"), false, "/rules/0/require/signatures: got null, want object"},
	{"signatures list", docSignatures("[k]"), false, "/rules/0/require/signatures: got array, want object"},
	{"signatures without keys", docSignatures("{threshold: 1}"), false, `/rules/0/require/signatures: missing required field "keys"`},
	{"signatures unknown field", docSignatures("{keys: [k], treshold: 1}"), false, `/rules/0/require/signatures/treshold: unknown field "treshold"`},
	{"signature keys empty", docSignatures("{keys: []}"), false, "/rules/0/require/signatures/keys: needs at least 1 item"},
	{"signature keys string", docSignatures("{keys: k}"), false, "/rules/0/require/signatures/keys: got string, want array"},
	{"signature keys equal", docSignatures("{keys: [k, ci, k]}"), false, "/rules/0/require/signatures/keys: items 0 and 2 are equal"},
	{"signature key empty", docSignatures("{keys: ['']}"), false, "/rules/0/require/signatures/keys/0: must not be empty"},
	{"signature key number", docSignatures("{keys: [1]}"), false, "/rules/0/require/signatures/keys/0: got integer, want string"},
	{"signature key null", docSignatures("{keys: [~]}"), false, "/rules/0/require/signatures/keys/0: got null, want string"},
	{"threshold 1.0", docSignatures("{keys: [k], threshold: 1.0}"), true, ""},
	{"threshold 1e0", docSignatures("{keys: [k], threshold: 1e0}"), true, ""},
	{"threshold hex", docSignatures("{keys: [k], threshold: 0x1}"), true, ""},
	{"threshold octal", docSignatures("{keys: [k], threshold: 0o1}"), true, ""},
	{"threshold float tag", docSignatures("{keys: [k], threshold: !!float 1}"), true, ""},
	{"threshold 1.5", docSignatures("{keys: [k], threshold: 1.5}"), false, "/rules/0/require/signatures/threshold: got number, want integer"},
	{"threshold .5", docSignatures("{keys: [k], threshold: .5}"), false, "/rules/0/require/signatures/threshold: got number, want integer"},
	{"threshold 0", docSignatures("{keys: [k], threshold: 0}"), false, "/rules/0/require/signatures/threshold: must be at least 1, got 0"},
	{"threshold 0.0", docSignatures("{keys: [k], threshold: 0.0}"), false, "/rules/0/require/signatures/threshold: must be at least 1"},
	{"threshold -1", docSignatures("{keys: [k], threshold: -1}"), false, "/rules/0/require/signatures/threshold: must be at least 1, got -1"},
	{"threshold 0.99", docSignatures("{keys: [k], threshold: 0.99}"), false, "/rules/0/require/signatures/threshold: got number, want integer"},
	{"threshold string", docSignatures("{keys: [k], threshold: '1'}"), false, "/rules/0/require/signatures/threshold: got string, want integer"},
	{"threshold null", docSignatures("{keys: [k], threshold: }"), false, "/rules/0/require/signatures/threshold: got null, want integer"},
	{"threshold bool", docSignatures("{keys: [k], threshold: true}"), false, "/rules/0/require/signatures/threshold: got boolean, want integer"},
	{"threshold inf", docSignatures("{keys: [k], threshold: .inf}"), false, "/rules/0/require/signatures/threshold: got number, want integer"},
	{"threshold -inf", docSignatures("{keys: [k], threshold: -.inf}"), false, "/rules/0/require/signatures/threshold: got number, want integer"},
	{"threshold nan", docSignatures("{keys: [k], threshold: .nan}"), false, "/rules/0/require/signatures/threshold: got number, want integer"},
	{"threshold huge", docSignatures("{keys: [k], threshold: 99999999999999999999}"), true, ""},
	{"threshold 1e400", docSignatures("{keys: [k], threshold: 1e400}"), false, "/rules/0/require/signatures/threshold: got string, want integer"},
	{"threshold float tag 1e400", docSignatures("{keys: [k], threshold: !!float 1e400}"), false, "/rules/0/require/signatures/threshold: reading a number"},
	{"threshold -0", docSignatures("{keys: [k], threshold: -0}"), false, "/rules/0/require/signatures/threshold: must be at least 1, got -0"},
	{"threshold bad int", docSignatures("{keys: [k], threshold: !!int x}"), false, "/rules/0/require/signatures/threshold: reading a number: yaml: cannot decode !!str `x` as a !!int"},

	// attestations.
	{"attestations", docRequire("{attestations: [{type: sbom, keys: [k], maxAge: 7d}, {type: 'https://example.com/p/v1', keys: [ci], maxAge: 1h30m}]}"), true, ""},
	{"attestations empty", docRequire("{attestations: []}"), false, "/rules/0/require/attestations: needs at least 1 item"},
	{"attestations object", docRequire("{attestations: {type: sbom, keys: [k]}}"), false, "/rules/0/require/attestations: got object, want array"},
	{"attestation string", docAttestation("sbom"), false, "/rules/0/require/attestations/0: got string, want object"},
	{"attestation null", docAttestation("null"), false, "/rules/0/require/attestations/0: got null, want object"},
	{"attestation without type", docAttestation("{keys: [k]}"), false, `/rules/0/require/attestations/0: missing required field "type"`},
	{"attestation without keys", docAttestation("{type: sbom}"), false, `/rules/0/require/attestations/0: missing required field "keys"`},
	{"attestation unknown field", docAttestation("{type: sbom, keys: [k], max_age: 1h}"), false, `/rules/0/require/attestations/0/max_age: unknown field "max_age"`},
	{"attestation aliases", docRequire("{attestations: [{type: vuln, keys: [k]}, {type: spdx, keys: [k]}, {type: cyclonedx, keys: [k]}, {type: openvex, keys: [k]}, {type: slsaprovenance, keys: [k]}]}"), true, ""},
	{"attestation urn", docAttestation("{type: 'urn:example:x', keys: [k]}"), true, ""},
	{"attestation uri with plus", docAttestation("{type: 'git+ssh://h/p', keys: [k]}"), true, ""},
	{"attestation alias case", docAttestation("{type: SBOM, keys: [k]}"), false, `/rules/0/require/attestations/0/type: unknown attestation type "SBOM" (want one of cyclonedx, openvex, sbom, slsaprovenance, spdx, vuln, or a predicate type URI)`},
	{"attestation type other", docAttestation("{type: provenance, keys: [k]}"), false, `unknown attestation type "provenance"`},
	{"attestation type digit scheme", docAttestation("{type: '1http://x', keys: [k]}"), false, `unknown attestation type "1http://x"`},
	{"attestation type space", docAttestation("{type: 'https://x y', keys: [k]}"), false, `unknown attestation type "https://x y"`},
	{"attestation type no rest", docAttestation("{type: 'https:', keys: [k]}"), false, `unknown attestation type "https:"`},
	{"attestation type empty", docAttestation("{type: '', keys: [k]}"), false, `unknown attestation type ""`},
	{"attestation type number", docAttestation("{type: 1, keys: [k]}"), false, "/rules/0/require/attestations/0/type: got integer, want string"},
	{"attestation type null", docAttestation("{type: , keys: [k]}"), false, "/rules/0/require/attestations/0/type: got null, want string"},
	{"attestation keys empty", docAttestation("{type: sbom, keys: []}"), false, "/rules/0/require/attestations/0/keys: needs at least 1 item"},
	{"attestation keys equal", docAttestation("{type: sbom, keys: [k, k]}"), false, "/rules/0/require/attestations/0/keys: items 0 and 1 are equal"},
	{"attestation key empty", docAttestation("{type: sbom, keys: ['']}"), false, "/rules/0/require/attestations/0/keys/0: must not be empty"},
	{"maxAge forms", docRequire("{attestations: [{type: sbom, keys: [k], maxAge: 1.5h}, {type: vuln, keys: [k], maxAge: 1µs}, {type: spdx, keys: [k], maxAge: 2h45m0.5s}, {type: openvex, keys: [k], maxAge: 0d}]}"), true, ""},
	{"maxAge words", docAttestation("{type: sbom, keys: [k], maxAge: 3 days}"), false, `/rules/0/require/attestations/0/maxAge: invalid duration "3 days" (want a Go duration such as 72h or whole days such as 7d)`},
	{"maxAge fractional days", docAttestation("{type: sbom, keys: [k], maxAge: 1.5d}"), false, `invalid duration "1.5d"`},
	{"maxAge negative", docAttestation("{type: sbom, keys: [k], maxAge: -1h}"), false, `invalid duration "-1h"`},
	{"maxAge no unit", docAttestation("{type: sbom, keys: [k], maxAge: '7'}"), false, `invalid duration "7"`},
	{"maxAge empty", docAttestation("{type: sbom, keys: [k], maxAge: ''}"), false, `invalid duration ""`},
	{"maxAge number", docAttestation("{type: sbom, keys: [k], maxAge: 7}"), false, "/rules/0/require/attestations/0/maxAge: got integer, want string"},
	{"maxAge null", docAttestation("{type: sbom, keys: [k], maxAge: }"), false, "/rules/0/require/attestations/0/maxAge: got null, want string"},

	// vulnerabilities.
	{"vulnerabilities", docRequire("{vulnerabilities: {denyAtOrAbove: critical, ignoreUnfixed: false, maxDatabaseAge: 24h}}"), true, ""},
	{"vulnerabilities empty", docRequire("{vulnerabilities: {}}"), true, ""},
	{"vulnerabilities null", docRequire("{vulnerabilities: }"), false, "/rules/0/require/vulnerabilities: got null, want object"},
	{"vulnerabilities unknown field", docRequire("{vulnerabilities: {denyAbove: high}}"), false, `/rules/0/require/vulnerabilities/denyAbove: unknown field "denyAbove"`},
	{"severities", docRequire("{vulnerabilities: {denyAtOrAbove: unknown}}"), true, ""},
	{"severity none", docRequire("{vulnerabilities: {denyAtOrAbove: none}}"), true, ""},
	{"severity other", docRequire("{vulnerabilities: {denyAtOrAbove: severe}}"), false, `/rules/0/require/vulnerabilities/denyAtOrAbove: must be one of "unknown", "none", "low", "medium", "high", "critical"`},
	{"severity alias", docRequire("{vulnerabilities: {denyAtOrAbove: moderate}}"), false, `/rules/0/require/vulnerabilities/denyAtOrAbove: must be one of`},
	{"severity null", docRequire("{vulnerabilities: {denyAtOrAbove: null}}"), false, `/rules/0/require/vulnerabilities/denyAtOrAbove: must be one of`},
	{"severity number", docRequire("{vulnerabilities: {denyAtOrAbove: 3}}"), false, `/rules/0/require/vulnerabilities/denyAtOrAbove: must be one of`},
	{"ignoreUnfixed yes", docRequire("{vulnerabilities: {ignoreUnfixed: yes}}"), false, "/rules/0/require/vulnerabilities/ignoreUnfixed: got string, want boolean"},
	{"ignoreUnfixed number", docRequire("{vulnerabilities: {ignoreUnfixed: 1}}"), false, "/rules/0/require/vulnerabilities/ignoreUnfixed: got integer, want boolean"},
	{"ignoreUnfixed null", docRequire("{vulnerabilities: {ignoreUnfixed: ~}}"), false, "/rules/0/require/vulnerabilities/ignoreUnfixed: got null, want boolean"},
	{"ignoreUnfixed True", docRequire("{vulnerabilities: {ignoreUnfixed: True}}"), true, ""},
	{"ignoreUnfixed bad bool", docRequire("{vulnerabilities: {ignoreUnfixed: !!bool maybe}}"), false, "/rules/0/require/vulnerabilities/ignoreUnfixed: reading a boolean"},
	{"maxDatabaseAge", docRequire("{vulnerabilities: {maxDatabaseAge: 72 h}}"), false, `/rules/0/require/vulnerabilities/maxDatabaseAge: invalid duration "72 h"`},
	{"maxDatabaseAge number", docRequire("{vulnerabilities: {maxDatabaseAge: 72}}"), false, "/rules/0/require/vulnerabilities/maxDatabaseAge: got integer, want string"},

	// config.
	{"config", docRequire("{config: {nonRoot: true, noSecretsInEnv: false}}"), true, ""},
	{"config null", docRequire("{config: null}"), false, "/rules/0/require/config: got null, want object"},
	{"config unknown field", docRequire("{config: {nonroot: true}}"), false, `/rules/0/require/config/nonroot: unknown field "nonroot"`},
	{"nonRoot string", docRequire("{config: {nonRoot: 'true'}}"), false, "/rules/0/require/config/nonRoot: got string, want boolean"},
	{"noSecretsInEnv number", docRequire("{config: {noSecretsInEnv: 0}}"), false, "/rules/0/require/config/noSecretsInEnv: got integer, want boolean"},

	// cel.
	{"cel", docRequire("{cel: ['true', 'false']}"), true, ""},
	{"cel empty", docRequire("{cel: []}"), false, "/rules/0/require/cel: needs at least 1 item"},
	{"cel string", docRequire("{cel: 'true'}"), false, "/rules/0/require/cel: got string, want array"},
	{"cel empty expression", docRequire("{cel: ['']}"), false, "/rules/0/require/cel/0: must not be empty"},
	{"cel bool", docRequire("{cel: [true]}"), false, "/rules/0/require/cel/0: got boolean, want string"},

	// YAML that JSON has no form for.
	{"alias", docRoot("keys: {k: &k {publicKey: x}, j: *k}\nrules: [{name: a, action: deny}]\n"), false, "/keys/j: YAML aliases are not allowed in a policy"},
	{"alias key", docRoot("keys: {&a k: {publicKey: x}, *a : {publicKey: y}}\nrules: [{name: a, action: deny}]\n"), false, "/keys: YAML aliases are not allowed in a policy"},
	{"recursive alias", docRoot("rules: &a [*a]\n"), false, "3:12: /rules/0: YAML aliases are not allowed in a policy"},
	{"anchor only", docRoot("rules: [&r {name: a, action: deny}]\n"), true, ""},
	{"merge key", docRoot("keys: {k: {<<: {publicKey: x}}}\nrules: [{name: a, action: deny}]\n"), false, "/keys/k: YAML merge keys (<<) are not allowed in a policy"},
	{"quoted merge key", docRoot("keys: {k: {'<<': {publicKey: x}, publicKey: y}}\nrules: [{name: a, action: deny}]\n"), false, `/keys/k/<<: unknown field "<<"`},
	{"duplicate key", docRoot("rules: [{name: a, action: deny}]\nrules: [{name: b, action: deny}]\n"), false, `4:1: /rules: duplicate key "rules" (first at line 3)`},
	{"duplicate quoted key", docRule("{name: a, 'name': b, action: deny}"), false, `/rules/0/name: duplicate key "name" (first at line 5)`},
	{"tagged mapping", docSignatures("!!str {keys: !!map [k]}"), true, ""},
	{"null key", docRoot("rules: [{name: a, action: deny}]\n? \n: x\n"), false, `/: unknown field ""`},
	{"merge tag", docRoot("rules: [{name: a, action: deny}]\n!!merge foo: x\n"), false, "/: YAML merge keys (<<) are not allowed in a policy"},
	{"list key", docRoot("rules: [{name: a, action: deny}]\n? [a]\n: b\n"), false, "4:3: /: mapping keys must be plain strings"},
	{"map key", docRoot("rules: [{name: a, action: deny}]\n? {a: b}\n: c\n"), false, "/: mapping keys must be plain strings"},
}

// TestValidateStructure runs schemaCases: each valid document is accepted, each other one
// refused with the error expected.
func TestValidateStructure(t *testing.T) {
	for _, tt := range schemaCases {
		t.Run(tt.name, func(t *testing.T) {
			root, err := parseDocument([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			errs := validateStructure("p.yaml", root)
			if tt.valid {
				if len(errs) > 0 {
					t.Errorf("refused: %v", errors.Join(errs...))
				}
				return
			}
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			if got := errors.Join(errs...).Error(); !strings.Contains(got, tt.want) {
				t.Errorf("error\n%s\ndoes not hold\n%s", got, tt.want)
			}
		})
	}
}

// TestValidateStructureAll checks that every problem of a document is reported, each at its
// line, in document order and once.
func TestValidateStructureAll(t *testing.T) {
	doc := `apiVersion: moat.dev/v2
kind: Policy
keys:
  -bad: {publicKey: ""}
rules:
  - name: a
    action: allow
    relaxations: [cap, cap, 1]
    foo: 1
    bar: 2
  - 1
  - action: allow
    match: {images: []}
  - name: d
    action: deny
    require:
      signatures:
        keys: [k, k]
        threshold: 0
      attestations:
        - keys: [k]
          maxAge: 3 days
      vulnerabilities:
        denyAtOrAbove:
          severe
`
	want := []string{
		`p.yaml:1:1: /apiVersion: must be "moat.dev/v1"`,
		`p.yaml:4:3: /keys/-bad: invalid name "-bad" (want a letter or digit, then letters, digits, ".", "_" or "-")`,
		`p.yaml:4:10: /keys/-bad/publicKey: must not be empty`,
		`p.yaml:6:5: /rules/0: missing required field "isolation" (an allow rule needs one)`,
		`p.yaml:8:5: /rules/0/relaxations: items 0 and 1 are equal`,
		`p.yaml:8:19: /rules/0/relaxations/0: unknown relaxation kind "cap" (want KIND or KIND:VALUE, KIND one of ` + strings.Join(relaxationKinds, ", ") + ")",
		`p.yaml:8:24: /rules/0/relaxations/1: unknown relaxation kind "cap" (want KIND or KIND:VALUE, KIND one of ` + strings.Join(relaxationKinds, ", ") + ")",
		`p.yaml:8:29: /rules/0/relaxations/2: got integer, want string`,
		`p.yaml:9:5: /rules/0/foo: unknown fields "foo", "bar"`,
		`p.yaml:11:5: /rules/1: got integer, want object`,
		`p.yaml:12:5: /rules/2: missing required field "name"`,
		`p.yaml:12:5: /rules/2: missing required field "isolation" (an allow rule needs one)`,
		`p.yaml:13:13: /rules/2/match/images: needs at least 1 item`,
		`p.yaml:18:9: /rules/3/require/signatures/keys: items 0 and 1 are equal`,
		`p.yaml:19:9: /rules/3/require/signatures/threshold: must be at least 1, got 0`,
		`p.yaml:21:11: /rules/3/require/attestations/0: missing required field "type"`,
		`p.yaml:22:11: /rules/3/require/attestations/0/maxAge: invalid duration "3 days" (want a Go duration such as 72h or whole days such as 7d)`,
		`p.yaml:24:9: /rules/3/require/vulnerabilities/denyAtOrAbove: must be one of "unknown", "none", "low", "medium", "high", "critical"`,
	}
	root, err := parseDocument([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	errs := validateStructure("p.yaml", root)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, err = Parse("p.yaml", []byte(doc))
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Parse error\n%v\nwant the same errors", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 1 || !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse error is not the *Error values: %v", err)
	}
}

// compiledTestSchema compiles the published schema with a JSON Schema validator.
func compiledTestSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	const id = "https://moat.dev/schemas/policy/v1/policy.schema.json"
	return testutil.CompileSchema(t, id, map[string][]byte{id: Schema})
}

// schemaAccepts reports whether the JSON Schema validator accepts the document root. A
// document JSON has no form for (aliases, merge keys, duplicate or non-string keys) is
// refused, as validateStructure refuses it.
func schemaAccepts(s *jsonschema.Schema, root *yaml.Node) (bool, error) {
	v, err := toJSONValue(root)
	if err != nil {
		return false, nil
	}
	err = s.Validate(v)
	var ve *jsonschema.ValidationError
	if err != nil && !errors.As(err, &ve) {
		return false, err
	}
	return err == nil, nil
}

// agreeWithSchema fails t when validateStructure and the published schema disagree on doc.
// Documents that are not one YAML document are left out: Parse refuses them before either.
func agreeWithSchema(t *testing.T, s *jsonschema.Schema, doc []byte) {
	root, err := parseDocument(doc)
	if err != nil {
		return
	}
	errs := validateStructure("p.yaml", root)
	ok, err := schemaAccepts(s, root)
	if err != nil {
		t.Fatalf("schema validation: %v", err)
	}
	if ok != (len(errs) == 0) {
		t.Errorf("schema accepts: %t; validation: %v\ndocument:\n%s", ok, errors.Join(errs...), doc)
	}
}

// conformanceCorpus is every document the conformance test runs: the example policies,
// the documents of TestParseErrors and the targeted schemaCases.
func conformanceCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	corpus := map[string][]byte{}
	names, err := filepath.Glob(filepath.Join("testdata", "*", "policy.yaml"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no test policies: %v", err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		corpus[name] = b
	}
	for _, tt := range parseErrorTests {
		corpus["TestParseErrors/"+tt.name] = []byte(tt.doc)
	}
	for _, tt := range schemaCases {
		corpus["schemaCases/"+tt.name] = []byte(tt.doc)
	}
	return corpus
}

// TestValidationAgreesWithSchema checks that the structural validation accepts a document
// exactly when the published JSON Schema does.
func TestValidationAgreesWithSchema(t *testing.T) {
	s := compiledTestSchema(t)
	for name, doc := range conformanceCorpus(t) {
		t.Run(name, func(t *testing.T) { agreeWithSchema(t, s, doc) })
	}
}

// FuzzValidationAgreesWithSchema checks the agreement of TestValidationAgreesWithSchema on
// any input.
func FuzzValidationAgreesWithSchema(f *testing.F) {
	for _, doc := range conformanceCorpus(f) {
		f.Add(doc)
	}
	s := compiledTestSchema(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		agreeWithSchema(t, s, data)
	})
}
