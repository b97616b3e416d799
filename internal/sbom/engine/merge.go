package engine

import (
	"path"
	"slices"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/osrelease"
)

// merge applies the layer scans in order and fills inv with the packages of the final filesystem.
func merge(inv *sbom.Inventory, scans []*layerScan) {
	type visible struct {
		layer int
		f     *fileResult
	}
	var files []visible
	for i, s := range scans {
		inv.Warnings = append(inv.Warnings, s.Warnings...)
		for j := range s.Files {
			if visibleAt(scans, i, s.Files[j].Path) {
				files = append(files, visible{i, &s.Files[j]})
			}
		}
	}

	// The operating system first: package URLs of OS packages need it.
	var releases []sbom.Release
	for _, v := range files {
		if r := v.f.Result.Release; r != nil && r.ID != "" {
			cp := *r
			cp.Source = "/" + v.f.Path
			releases = append(releases, cp)
		}
	}
	inv.Distro = osrelease.Best(releases)

	// Files that OS packages installed, for marking language packages they contain.
	owners := map[string]string{}
	for _, v := range files {
		for _, o := range v.f.Result.Owners {
			for _, p := range o.Paths {
				owners[canonical(scans, p)] = string(o.Type) + ":" + o.Package
			}
		}
	}

	inv.Packages = []sbom.Package{}
	for _, v := range files {
		s := scans[v.layer]
		for _, p := range v.f.Result.Packages {
			p.FoundBy = v.f.Cataloger
			p.Locations = []sbom.Location{{Path: "/" + v.f.Path, LayerDigest: layerTag(s.layer)}}
			if intro := introducedIn(scans, v.layer, v.f, p); scans[intro].layer != nil {
				l := scans[intro].layer
				p.Layer = &sbom.LayerRef{Index: l.Index, Digest: l.Digest.String(), DiffID: l.DiffID.String(), CreatedBy: l.CreatedBy}
			}
			if !p.Type.IsOS() {
				if o, ok := owners[v.f.Path]; ok {
					p.OwnedBy = o
				}
			}
			p.PURL = sbom.PURL(p, inv.Distro)
			inv.Packages = append(inv.Packages, p)
		}
	}
	sortPackages(inv.Packages)
	inv.Packages = dedupe(inv.Packages)
}

// dedupe folds packages that are the same package installed once but declared by several
// files (an npm package's package.json and the lock file that lists it, the Go toolchain of
// two binaries) into one with every location. Packages from different layers, owners or
// catalogers stay apart. ps must be sorted.
func dedupe(ps []sbom.Package) []sbom.Package {
	type key struct {
		purl, owner, by string
		layer           int
	}
	keyOf := func(p sbom.Package) key {
		k := key{purl: p.PURL, owner: p.OwnedBy, by: p.FoundBy, layer: -1}
		if p.Layer != nil {
			k.layer = p.Layer.Index
		}
		return k
	}
	out := ps[:0]
	seen := map[key]int{}
	for _, p := range ps {
		if p.PURL == "" {
			out = append(out, p)
			continue
		}
		k := keyOf(p)
		if i, ok := seen[k]; ok {
			q := &out[i]
			q.Locations = append(q.Locations, p.Locations...)
			for _, l := range p.Licenses {
				if !slices.Contains(q.Licenses, l) {
					q.Licenses = append(q.Licenses, l)
				}
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, p)
	}
	return out
}

// visibleAt reports whether the copy of p that layer i wrote is in the final filesystem: no
// later layer wrote p again, deleted it or an ancestor with a whiteout, made an ancestor
// opaque, or replaced an ancestor with something that is not a directory.
func visibleAt(scans []*layerScan, i int, p string) bool {
	for j := i + 1; j < len(scans); j++ {
		s := scans[j]
		if _, ok := s.kind(p); ok || has(s.Whiteouts, p) {
			return false
		}
		for a := path.Dir(p); ; a = path.Dir(a) {
			if a == "." {
				a = ""
			}
			if has(s.Opaques, a) {
				return false
			}
			if a == "" {
				break
			}
			if has(s.Whiteouts, a) {
				return false
			}
			if k, ok := s.kind(a); ok && k != kindDir {
				return false
			}
		}
	}
	return true
}

// introducedIn walks back from the layer whose copy of a file is final to the first layer of
// the unbroken run of layers whose copies of that file all list the package.
func introducedIn(scans []*layerScan, final int, f *fileResult, p sbom.Package) int {
	intro := final
	for j := final - 1; j >= 0; j-- {
		s := scans[j+1]
		// A whiteout or opaque directory in a later layer cuts the run.
		if has(s.Whiteouts, f.Path) || deletedAncestor(s, f.Path) {
			break
		}
		prev := scans[j]
		k, ok := prev.kind(f.Path)
		if !ok {
			continue // this layer did not touch the file
		}
		if k != kindFile || !listsPackage(prev, f, p) {
			break
		}
		intro = j
	}
	return intro
}

func deletedAncestor(s *layerScan, p string) bool {
	for a := path.Dir(p); a != "."; a = path.Dir(a) {
		if has(s.Whiteouts, a) || has(s.Opaques, a) {
			return true
		}
	}
	return has(s.Opaques, "")
}

func listsPackage(s *layerScan, f *fileResult, p sbom.Package) bool {
	i, ok := slices.BinarySearchFunc(s.Files, f, func(a fileResult, b *fileResult) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Cataloger, b.Cataloger)
	})
	if !ok {
		return false
	}
	return slices.ContainsFunc(s.Files[i].Result.Packages, func(q sbom.Package) bool {
		return q.Name == p.Name && q.Version == p.Version && q.Arch == p.Arch && q.Type == p.Type
	})
}

// canonical resolves a symbolic link in the first directory of p in the final filesystem
// ("lib/x" when /lib -> usr/lib becomes "usr/lib/x"), so that files OS packages list under
// their merged-/usr aliases are found.
func canonical(scans []*layerScan, p string) string {
	first, rest, ok := strings.Cut(p, "/")
	if !ok {
		return p
	}
	for j := len(scans) - 1; j >= 0; j-- {
		k, found := scans[j].kind(first)
		if !found {
			continue
		}
		if k == kindSymlink {
			t := strings.TrimPrefix(path.Clean("/"+scans[j].Links[first]), "/")
			if t != "" && !strings.Contains(t, "..") {
				return t + "/" + rest
			}
		}
		return p
	}
	return p
}
