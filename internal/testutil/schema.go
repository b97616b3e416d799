package testutil

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// CompileSchema compiles the JSON Schema with id root from in-memory resources, keyed by
// their $id, asserting formats. The compiler has no loader for http URLs, so a reference to
// anything not given fails instead of reaching the network.
func CompileSchema(t testing.TB, root string, resources map[string][]byte) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for id, b := range resources {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("parsing schema %s: %v", id, err)
		}
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("adding schema %s: %v", id, err)
		}
	}
	s, err := c.Compile(root)
	if err != nil {
		t.Fatalf("compiling schema %s: %v", root, err)
	}
	return s
}
