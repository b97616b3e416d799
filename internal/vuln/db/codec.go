package db

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/moatsec/moat/internal/vuln"
)

// The adv bucket's values are vuln.Advisory in a compact binary form rather than JSON: a scan
// decodes thousands of advisories, and this form decodes about twenty times faster.
//
// A value is a format byte (codecVersion) and the advisory's fields in declaration order
// (Source excepted: it is the bucket the value is in). A string is its length as a uvarint
// and its bytes; a list is its length as a uvarint and its elements; a time is a byte (0:
// zero time, 1: set) then, when set, the Unix seconds as a varint and the nanoseconds as a
// uvarint; a struct is its fields in order. TestCodecCoversAdvisory fails when a field is added
// to vuln.Advisory and not here.
const codecVersion = 1

var errTruncated = errors.New("truncated value")

// encodeAdvisory appends the binary form of a to buf.
func encodeAdvisory(buf []byte, a *vuln.Advisory) []byte {
	e := encoder{buf: append(buf, codecVersion)}
	e.str(a.ID)
	e.strs(a.Aliases)
	e.strs(a.Upstream)
	e.strs(a.Related)
	e.str(a.Summary)
	e.str(a.Details)
	e.time(a.Published)
	e.time(a.Modified)
	if a.Withdrawn != nil {
		e.time(*a.Withdrawn)
	} else {
		e.time(time.Time{})
	}
	e.severities(a.Severity)
	e.uint(len(a.References))
	for _, r := range a.References {
		e.str(r.Type)
		e.str(r.URL)
	}
	e.uint(len(a.Affected))
	for _, af := range a.Affected {
		e.str(af.Ecosystem)
		e.str(af.Name)
		e.str(af.PURL)
		e.uint(len(af.Ranges))
		for _, r := range af.Ranges {
			e.str(r.Type)
			e.uint(len(r.Events))
			for _, ev := range r.Events {
				e.str(ev.Introduced)
				e.str(ev.Fixed)
				e.str(ev.LastAffected)
				e.str(ev.Limit)
			}
		}
		e.strs(af.Versions)
		e.severities(af.Severity)
		e.str(string(af.Status))
		e.strs(af.Imports)
	}
	return e.buf
}

type encoder struct{ buf []byte }

func (e *encoder) uint(n int)   { e.buf = binary.AppendUvarint(e.buf, uint64(n)) }
func (e *encoder) str(s string) { e.uint(len(s)); e.buf = append(e.buf, s...) }
func (e *encoder) strs(ss []string) {
	e.uint(len(ss))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = append(e.buf, 1)
	e.buf = binary.AppendVarint(e.buf, t.Unix())
	e.buf = binary.AppendUvarint(e.buf, uint64(t.Nanosecond()))
}

func (e *encoder) severities(ss []vuln.Severity) {
	e.uint(len(ss))
	for _, s := range ss {
		e.str(s.Type)
		e.str(s.Score)
	}
}

// decodeAdvisoryValue reads the binary form of an advisory. The value comes from the file and
// may be damaged or hostile: every length is checked against what remains, so a bad value is
// an error, never a panic or an allocation larger than the value.
func decodeAdvisoryValue(b []byte) (*vuln.Advisory, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("unknown advisory encoding")
	}
	// One string holds every string of the advisory: one allocation instead of dozens.
	d := decoder{s: string(b[1:])}
	a := &vuln.Advisory{}
	a.ID = d.str()
	a.Aliases = d.strs()
	a.Upstream = d.strs()
	a.Related = d.strs()
	a.Summary = d.str()
	a.Details = d.str()
	a.Published = d.time()
	a.Modified = d.time()
	if w := d.time(); !w.IsZero() {
		a.Withdrawn = &w
	}
	a.Severity = d.severities()
	if n := d.count(2); n > 0 {
		a.References = make([]vuln.Reference, n)
		for i := range a.References {
			a.References[i] = vuln.Reference{Type: d.str(), URL: d.str()}
		}
	}
	a.Affected = make([]vuln.Affected, d.count(8))
	for i := range a.Affected {
		af := &a.Affected[i]
		af.Ecosystem = d.str()
		af.Name = d.str()
		af.PURL = d.str()
		if n := d.count(2); n > 0 {
			af.Ranges = make([]vuln.Range, n)
			for j := range af.Ranges {
				r := &af.Ranges[j]
				r.Type = d.str()
				if n := d.count(4); n > 0 {
					r.Events = make([]vuln.Event, n)
					for k := range r.Events {
						r.Events[k] = vuln.Event{Introduced: d.str(), Fixed: d.str(), LastAffected: d.str(), Limit: d.str()}
					}
				}
			}
		}
		af.Versions = d.strs()
		af.Severity = d.severities()
		af.Status = vuln.FixStatus(d.str())
		af.Imports = d.strs()
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.i != len(d.s) {
		return nil, fmt.Errorf("%d bytes after the advisory", len(d.s)-d.i)
	}
	return a, nil
}

type decoder struct {
	s   string
	i   int
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.i = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var shift uint
	for n := 0; ; n++ {
		if d.i >= len(d.s) || n == binary.MaxVarintLen64 {
			d.fail(errTruncated)
			return 0
		}
		c := d.s[d.i]
		d.i++
		if c < 0x80 {
			if n == binary.MaxVarintLen64-1 && c > 1 {
				d.fail(errors.New("varint overflows"))
				return 0
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
}

// count reads a length of a list whose elements take at least min bytes each, and checks it
// against the bytes that remain.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.i)/uint64(min) {
		d.fail(fmt.Errorf("list of %d elements in %d bytes", n, len(d.s)-d.i))
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	s := d.s[d.i : d.i+n]
	d.i += n
	return s
}

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *decoder) time() time.Time {
	if d.i >= len(d.s) {
		d.fail(errTruncated)
		return time.Time{}
	}
	set := d.s[d.i]
	d.i++
	switch set {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail(errors.New("bad time flag"))
		return time.Time{}
	}
	u := d.uvarint()
	sec := int64(u>>1) ^ -int64(u&1) // zigzag, as binary.AppendVarint writes
	nsec := d.uvarint()
	if nsec >= 1e9 || sec < minUnix || sec > maxUnix {
		d.fail(errors.New("time out of range"))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// The range of times an advisory may carry: years 1 to 9999, as RFC 3339 allows.
var (
	minUnix = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxUnix = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
)

func (d *decoder) severities() []vuln.Severity {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	out := make([]vuln.Severity, n)
	for i := range out {
		out[i] = vuln.Severity{Type: d.str(), Score: d.str()}
	}
	return out
}
