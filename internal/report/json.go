package report

import (
	_ "embed"
	"encoding/json"
	"io"

	"github.com/moatsec/moat/internal/sbom"
)

// SBOMSchema is the JSON Schema (draft 2020-12) of moat's JSON inventory format, the output of
// the json format. docs/formats/sbom.schema.json is a copy of it.
//
//go:embed schema/sbom.schema.json
var SBOMSchema []byte

// writeJSON writes the inventory in moat's own format, indented by two spaces. Lists that
// the schema requires are written as empty arrays rather than null.
func writeJSON(w io.Writer, inv *sbom.Inventory) error {
	out := *inv
	if out.SchemaVersion == "" {
		out.SchemaVersion = sbom.SchemaVersion
	}
	if out.Image.Layers == nil {
		out.Image.Layers = []sbom.LayerRef{}
	}
	out.Packages = make([]sbom.Package, len(inv.Packages))
	for i, p := range inv.Packages {
		if p.Locations == nil {
			p.Locations = []sbom.Location{}
		}
		out.Packages[i] = p
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&out)
}
