package db

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Status describes a database: when it was built and what each source holds.
type Status struct {
	// Path is the database file.
	Path string `json:"path"`
	// Schema is the file's schema version.
	Schema int `json:"schema"`
	// Built is when the file was written.
	Built time.Time `json:"built"`
	// Sources are the imported sources, sorted by name.
	Sources []SourceStatus `json:"sources"`
}

// SourceStatus describes one source: where its data came from, when, and how much of it there
// is. It is stored in the database as JSON, as written here.
type SourceStatus struct {
	// Name is the source: the OSV bucket's ecosystem ("Go", "Debian") or a name given to a
	// local import.
	Name string `json:"name"`
	// Inputs are the archives, directories or files the source was imported from.
	Inputs []InputInfo `json:"inputs"`
	// ImportedAt is when the source was imported.
	ImportedAt time.Time `json:"importedAt"`
	// AsOf is how recent the data is: the archive's Last-Modified time for a download,
	// otherwise the newest modified time of its records or, when they state none, the input's
	// modification time.
	AsOf time.Time `json:"asOf"`
	// NewestModified is the newest known modified time of a stored record; zero when the
	// records state none (the Go database's exports).
	NewestModified time.Time `json:"newestModified,omitzero"`
	// Records is the number of advisories stored.
	Records int `json:"records"`
	// Withdrawn is the number of withdrawn records, which are not stored.
	Withdrawn int `json:"withdrawn"`
	// Skipped is the number of records that could not be read and were not stored.
	Skipped int `json:"skipped"`
	// Warnings is the number of problems found in the input; Examples holds the first few.
	Warnings int      `json:"warnings"`
	Examples []string `json:"examples,omitempty"`
	// Ecosystems counts the stored advisories per ecosystem ("Debian:12": n).
	Ecosystems map[string]int `json:"ecosystems"`
}

// InputInfo identifies one input of a source.
type InputInfo struct {
	// Origin is the URL the archive was downloaded from, or the local path it was read from.
	Origin string `json:"origin"`
	// SHA256 is the hex digest of the archive or file; empty for a directory.
	SHA256 string `json:"sha256,omitempty"`
	// Size is the archive's or file's size in bytes.
	Size int64 `json:"size"`
}

// Age returns how old the stalest source's data is at now (see SourceStatus.AsOf); zero when
// there are no sources.
func (s Status) Age(now time.Time) time.Duration {
	var age time.Duration
	for _, src := range s.Sources {
		age = max(age, src.Age(now))
	}
	return age
}

// Stale returns the names of the sources whose data is older than maxAge at now; none when
// maxAge is zero or negative.
func (s Status) Stale(now time.Time, maxAge time.Duration) []string {
	if maxAge <= 0 {
		return nil
	}
	var out []string
	for _, src := range s.Sources {
		if src.Age(now) > maxAge {
			out = append(out, src.Name)
		}
	}
	return out
}

// Records returns the number of advisories stored, over all sources.
func (s Status) Records() int {
	n := 0
	for _, src := range s.Sources {
		n += src.Records
	}
	return n
}

// Source returns the status of the named source.
func (s Status) Source(name string) (SourceStatus, bool) {
	for _, src := range s.Sources {
		if src.Name == name {
			return src, true
		}
	}
	return SourceStatus{}, false
}

// Age returns how old the source's data is at now, never less than zero.
func (s SourceStatus) Age(now time.Time) time.Duration {
	return max(now.Sub(s.AsOf), 0)
}

// info is the meta bucket's "info" value.
type info struct {
	Built   time.Time      `json:"built"`
	Sources []SourceStatus `json:"sources"`
}

// Limits on what a database file may hold, checked when it is read.
const (
	maxIDLen     = 256
	maxSourceLen = 128
	maxExamples  = 10
	// maxInfo bounds the info value: a few KiB per source is plenty.
	maxInfo = 16 << 20
)

func encodeInfo(in *info) ([]byte, error) {
	return json.Marshal(in)
}

// decodeInfo reads the meta bucket's info value, which comes from the file and so is checked.
func decodeInfo(b []byte) (*info, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: no info in the meta bucket", ErrCorrupt)
	}
	if len(b) > maxInfo {
		return nil, fmt.Errorf("%w: info of %d bytes", ErrCorrupt, len(b))
	}
	in := new(info)
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(in); err != nil {
		return nil, fmt.Errorf("%w: reading info: %w", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: reading info: data after the value", ErrCorrupt)
	}
	seen := map[string]bool{}
	for i, s := range in.Sources {
		if err := checkSourceName(s.Name); err != nil {
			return nil, fmt.Errorf("%w: info: source %d: %w", ErrCorrupt, i, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%w: info: source %q listed twice", ErrCorrupt, s.Name)
		}
		seen[s.Name] = true
		if s.Records < 0 || s.Withdrawn < 0 || s.Skipped < 0 || s.Warnings < 0 {
			return nil, fmt.Errorf("%w: info: source %q has negative counts", ErrCorrupt, s.Name)
		}
		for eco, n := range s.Ecosystems {
			if eco == "" || strings.ContainsRune(eco, 0) || n < 0 {
				return nil, fmt.Errorf("%w: info: source %q: ecosystem %q with count %d", ErrCorrupt, s.Name, eco, n)
			}
		}
	}
	slices.SortFunc(in.Sources, func(a, b SourceStatus) int { return strings.Compare(a.Name, b.Name) })
	return in, nil
}

// checkSourceName accepts the names of OSV ecosystems ("Red Hat", "crates.io") and others
// like them: printable, short, not empty.
func checkSourceName(s string) error {
	if s == "" || len(s) > maxSourceLen || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return fmt.Errorf("invalid source name %q", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return fmt.Errorf("invalid source name %q", s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("invalid source name %q", s)
	}
	return nil
}

// checkID accepts advisory IDs as databases write them ("GO-2022-1059", "RHSA-2024:1234"):
// printable, without the index's separator.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("advisory id %q: empty or longer than %d bytes", id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("advisory id %q: control character", id)
		}
	}
	return nil
}

// encodeIDs writes an index value: the IDs, sorted, separated by '\n'.
func encodeIDs(ids []string) []byte {
	return []byte(strings.Join(ids, "\n"))
}

// decodeIDs reads an index value, which comes from the file and so is checked.
func decodeIDs(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty index entry", ErrCorrupt)
	}
	out := strings.Split(string(b), "\n")
	for i, id := range out {
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("%w: index entry: %w", ErrCorrupt, err)
		}
		if i > 0 && out[i-1] >= id {
			return nil, fmt.Errorf("%w: index entry: ids not sorted and distinct", ErrCorrupt)
		}
	}
	return out, nil
}
