package report

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/catalogers"
	"github.com/moatsec/moat/internal/sbom/engine"
)

// TestSampleImageReports writes every format for the real sample image (make test builds it)
// and checks each against its schema or rules: real package names, versions and licenses
// exercise far more than the hand-made fixtures.
func TestSampleImageReports(t *testing.T) {
	dir := env.SampleImage.Get()
	if dir == "" {
		t.Skip("MOAT_SAMPLE_IMAGE is not set; `make test` builds the sample image and sets it")
	}
	tmp := t.TempDir()
	img, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: filepath.Join(dir, "image.oci")}, image.Options{TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	e, err := engine.New(catalogers.Default(tmp), engine.WithTempDir(tmp))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := e.Inventory(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) < 150 {
		t.Fatalf("only %d packages in the sample", len(inv.Packages))
	}
	get := func() *sbom.Inventory { return inv }
	if err := validate(t, compile(t, sbomSchemaID, map[string][]byte{sbomSchemaID: SBOMSchema}), write(t, FormatJSON, get(), Options{})); err != nil {
		t.Errorf("moat JSON of the sample does not match sbom.schema.json: %v", err)
	}
	if err := validate(t, cyclonedxSchema(t), write(t, FormatCycloneDXJSON, get(), Options{})); err != nil {
		t.Errorf("CycloneDX of the sample does not match bom-1.6.schema.json: %v", err)
	}
	spdx := write(t, FormatSPDXJSON, get(), Options{})
	if err := validateSPDX(t, spdxSchema(t), spdx); err != nil {
		t.Errorf("SPDX of the sample does not match spdx-schema-2.3.json: %v", err)
	}
	if p := spdxProblems(spdx); len(p) != 0 {
		t.Errorf("SPDX of the sample breaks SPDX 2.3 rules: %v", p)
	}
	if out := write(t, FormatTable, get(), Options{}); len(out) == 0 {
		t.Error("empty table")
	}
}
