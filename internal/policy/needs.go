package policy

import "github.com/moatsec/moat/internal/lazyregexp"

// Needs says which evidence a policy's rules can look at, so that whoever gathers evidence
// does only the work that can change the decision: no registry round trips for signatures
// nobody requires, no scan for a policy without vulnerability limits.
type Needs struct {
	// Signatures: a rule requires signatures, or an expression reads them.
	Signatures bool
	// Attestations: a rule requires attestations, or an expression reads them.
	Attestations bool
	// Scan: a rule limits vulnerabilities, or an expression reads findings, the SBOM or the
	// database; this needs an inventory of the image and the advisory database.
	Scan bool
}

// celReads finds the evidence variables an expression names. It errs towards gathering: a
// name inside a string literal counts too.
var celReads = lazyregexp.New(`\b(evidence|signatures|attestations|sbom|findings|database)\b`)

// Needs returns the evidence p's rules can look at.
func (p *Policy) Needs() Needs {
	var n Needs
	for _, r := range p.Rules {
		req := r.Require
		n.Signatures = n.Signatures || req.Signatures != nil
		n.Attestations = n.Attestations || len(req.Attestations) > 0
		n.Scan = n.Scan || req.Vulnerabilities != nil
		for _, src := range req.CEL {
			for _, m := range celReads().FindAllString(src, -1) {
				switch m {
				case "evidence":
					n = Needs{Signatures: true, Attestations: true, Scan: true}
				case "signatures":
					n.Signatures = true
				case "attestations":
					n.Attestations = true
				default:
					n.Scan = true
				}
			}
		}
	}
	return n
}
