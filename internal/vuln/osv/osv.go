// Package osv reads vulnerability advisories in the OSV schema (https://ossf.github.io/osv-schema/),
// one JSON record at a time (Parse) or a whole ecosystem export, the all.zip that the OSV
// bucket publishes per ecosystem (ReadZip). It is the reading half of `moat db import`: records
// come back as the official binding's types (osvschema), checked for what moat's matchers rely
// on, and nothing is stored here.
//
// Records are untrusted input. Parse bounds their size, rejects what moat could not match
// against (no id, no modified time, a range of unknown type) and never panics; ReadZip bounds
// the archive and fails on one that is corrupt, but a single bad record only becomes a warning,
// so that one broken advisory does not hold back the thousands beside it.
package osv

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/moatsec/moat/internal/lazyregexp"
)

// MaxRecordSize is the largest record Parse accepts, in bytes. Real records are far smaller
// (the largest in the Go and PyPI databases is 25 KiB); the bound keeps a hostile one from
// costing memory.
const MaxRecordSize = 4 << 20

// ErrInvalidRecord is wrapped by every Parse error: the bytes are not an OSV record moat can use.
var ErrInvalidRecord = errors.New("invalid OSV record")

// unmarshal ignores fields and enum names that this binding does not know, so that records
// written against a newer schema still parse. An unknown range type becomes UNSPECIFIED,
// which Parse then rejects.
var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// Parse reads one OSV record.
//
// Beyond the JSON itself, Parse requires a non-empty id, a modified time, and for every range
// a known type (SEMVER, ECOSYSTEM or GIT) and at least one event. An affected entry that does
// not name a package (its ecosystem and name) cannot be matched to anything moat finds in an
// image: Parse removes it from the record rather than rejecting the record, and ReadZip reports
// each removal as a warning. GIT ranges are kept; they name commits, not versions, so a matcher
// must use the entry's versions list or skip them (HasGitRanges tells which records have them).
//
// The Go vulnerability database writes "0001-01-01T00:00:00Z" as every record's modified time;
// Parse accepts it, since the field is present and valid (see KnownModified).
func Parse(data []byte) (*osvschema.Vulnerability, error) {
	v, _, err := parse(data)
	return v, err
}

// parse is Parse that also returns what it removed from the record, as warnings.
func parse(data []byte) (*osvschema.Vulnerability, []error, error) {
	if len(data) > MaxRecordSize {
		return nil, nil, fmt.Errorf("parsing OSV record: %w: %d bytes, more than the limit of %d", ErrInvalidRecord, len(data), MaxRecordSize)
	}
	v := new(osvschema.Vulnerability)
	if err := unmarshal.Unmarshal(data, v); err != nil {
		return nil, nil, fmt.Errorf("parsing OSV record: %w: %w%s", ErrInvalidRecord, err, near(data, err))
	}
	if v.GetId() == "" {
		return nil, nil, fmt.Errorf("parsing OSV record: %w: no id", ErrInvalidRecord)
	}
	if v.GetModified() == nil {
		return nil, nil, fmt.Errorf("parsing OSV record %s: %w: no modified time", quote(v.GetId()), ErrInvalidRecord)
	}
	var warnings []error
	kept := v.Affected[:0]
	for i, a := range v.GetAffected() {
		p := a.GetPackage()
		if p.GetEcosystem() == "" || p.GetName() == "" {
			warnings = append(warnings, fmt.Errorf("record %s: affected[%d] names no package ecosystem and name; entry dropped", quote(v.GetId()), i))
			continue
		}
		for j, r := range a.GetRanges() {
			if r.GetType() == osvschema.Range_UNSPECIFIED {
				return nil, nil, fmt.Errorf("parsing OSV record %s: %w: affected[%d] (%s %s): range[%d] has no known type",
					quote(v.GetId()), ErrInvalidRecord, i, p.GetEcosystem(), quote(p.GetName()), j)
			}
			if len(r.GetEvents()) == 0 {
				return nil, nil, fmt.Errorf("parsing OSV record %s: %w: affected[%d] (%s %s): range[%d] has no events",
					quote(v.GetId()), ErrInvalidRecord, i, p.GetEcosystem(), quote(p.GetName()), j)
			}
		}
		kept = append(kept, a)
	}
	clear(v.Affected[len(kept):])
	v.Affected = kept
	return v, warnings, nil
}

// Withdrawn tells whether the record has been withdrawn by its database: such a record still
// parses, and an importer should remove what it stored for the id.
func Withdrawn(v *osvschema.Vulnerability) bool {
	return v.GetWithdrawn() != nil
}

// KnownModified tells whether the record's modified time is a real one, not the zero time
// ("0001-01-01T00:00:00Z") that the Go vulnerability database writes in its exports.
func KnownModified(v *osvschema.Vulnerability) bool {
	m := v.GetModified()
	return m != nil && m.AsTime().Year() > 1
}

// HasGitRanges tells whether any affected entry of the record has a GIT range, whose events are
// commits rather than versions.
func HasGitRanges(v *osvschema.Vulnerability) bool {
	for _, a := range v.GetAffected() {
		for _, r := range a.GetRanges() {
			if r.GetType() == osvschema.Range_GIT {
				return true
			}
		}
	}
	return false
}

// Ecosystems returns the distinct ecosystems of the record's affected packages, sorted, as
// written: "Debian:12" stays "Debian:12", so that a release-specific record is stored under its
// release.
func Ecosystems(v *osvschema.Vulnerability) []string {
	var out []string
	for _, a := range v.GetAffected() {
		if e := a.GetPackage().GetEcosystem(); e != "" {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Aliases returns the record's aliases, sorted and without duplicates, in a new slice.
func Aliases(v *osvschema.Vulnerability) []string {
	out := slices.Clone(v.GetAliases())
	slices.Sort(out)
	return slices.Compact(out)
}

// quote bounds and quotes a string from a record for an error message.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// position finds where protojson's errors say the fault is.
var position = lazyregexp.New(`\(line (\d+):(\d+)\)`)

// near quotes the record's text around the place a protojson error points at, which names the
// field when the error itself does not (a malformed timestamp, a string for a list).
func near(data []byte, err error) string {
	m := position().FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	start := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			return ""
		}
		start += i + 1
	}
	end := bytes.IndexByte(data[start:], '\n')
	if end < 0 {
		end = len(data)
	} else {
		end += start
	}
	// col counts bytes from 1 on the line.
	at := min(start+col-1, end)
	const span = 40
	from, to := max(start, at-span), min(end, at+span)
	return " near " + quote(strings.TrimSpace(string(data[from:to])))
}
