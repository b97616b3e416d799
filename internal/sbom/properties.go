package sbom

// Property names moat writes into CycloneDX documents (internal/report) and reads back
// (internal/sbom/sbomfile), in the "moat:" namespace of the CycloneDX property taxonomy.
// docs/formats/sbom.md lists them with their meaning.
const (
	PropPackageType    = "moat:package:type"
	PropPackageArch    = "moat:package:arch"
	PropSourceName     = "moat:package:sourceName"
	PropSourceVersion  = "moat:package:sourceVersion"
	PropFoundBy        = "moat:foundBy"
	PropOwnedBy        = "moat:ownedBy"
	PropLayerIndex     = "moat:layer:index"
	PropLayerDigest    = "moat:layer:digest"
	PropLayerDiffID    = "moat:layer:diffID"
	PropLocationPrefix = "moat:location:" // moat:location:N:path, moat:location:N:layerDiffID
	PropMetadataPrefix = "moat:metadata:" // moat:metadata:KEY
	PropImagePrefix    = "moat:image:"    // moat:image:source, moat:image:layer:N:diffID, ...
	PropDistroPrefix   = "moat:distro:"   // moat:distro:idLike, ...
	PropWarning        = "moat:warning"   // one per warning, on the document
)
