package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Case is one policy test case: the evidence for an image and the decision expected.
// A case file is one YAML (or JSON) document:
//
//	name: signed and clean      # optional, defaults to the file name
//	now: 2026-01-02T00:00:00Z   # optional evaluation time, defaults to the time of the run
//	evidence: {...}             # an Evidence, with its JSON field names
//	relaxations: ["cap-add CAP_NET_ADMIN"]  # optional, as the decision log writes them
//	expect: {allow: true, isolation: hardened, rule: signed-clean, refused: []}
//
// Unknown fields are errors, as in policy files.
type Case struct {
	Name     string    `json:"name"`
	File     string    `json:"-"`
	Now      time.Time `json:"now"`
	Evidence Evidence  `json:"evidence"`
	// Relaxations are those the container of the case asks for, checked against an allow
	// decision (Decision.CheckRelaxations).
	Relaxations []Relaxation `json:"relaxations"`
	Expect      Expectation  `json:"expect"`
}

// Expectation is the decision a case expects. Rule and Isolation are compared only when
// set. Refused is compared when the decision is an allow and the case lists relaxations (or
// Refused): it is exactly the relaxations the decision must refuse, empty for none.
type Expectation struct {
	Allow     bool         `json:"allow"`
	Isolation string       `json:"isolation"`
	Rule      string       `json:"rule"`
	Refused   []Relaxation `json:"refused"`
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Case     Case
	Decision Decision
	// Pass is set when the decision is the one expected.
	Pass bool
	// Refused are the case's relaxations the decision refuses (Decision.CheckRelaxations).
	Refused []Relaxation
	// Mismatches describe how the decision differs from the expectation.
	Mismatches []string
	// Err is set when the case file could not be read; such a case does not pass.
	Err error
}

// LoadCases reads every .yaml, .yml and .json file of dir (not recursing), in name order.
// A file that cannot be read is returned as an error; see RunCases for reporting each.
func LoadCases(dir string) ([]Case, error) {
	files, err := caseFiles(dir)
	if err != nil {
		return nil, err
	}
	var cases []Case
	for _, f := range files {
		c, err := LoadCase(f)
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	return cases, nil
}

func caseFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading cases: %w", err)
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	slices.Sort(files)
	return files, nil
}

// LoadCase reads one case file.
func LoadCase(name string) (Case, error) {
	var c Case
	if err := loadStrict(name, "case", &c); err != nil {
		return Case{}, err
	}
	c.File = name
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	return c, nil
}

// RunCases evaluates p against every case file in dir. A case file that cannot be read
// becomes a failing result with Err set; the error return is for dir itself.
func RunCases(p *Policy, dir string) ([]CaseResult, error) {
	files, err := caseFiles(dir)
	if err != nil {
		return nil, err
	}
	results := make([]CaseResult, 0, len(files))
	for _, f := range files {
		c, err := LoadCase(f)
		if err != nil {
			results = append(results, CaseResult{Case: Case{Name: filepath.Base(f), File: f}, Err: err})
			continue
		}
		results = append(results, RunCase(p, c))
	}
	return results, nil
}

// RunCase evaluates p for one case.
func RunCase(p *Policy, c Case) CaseResult {
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	d := Evaluate(p, &c.Evidence, now)
	r := CaseResult{Case: c, Decision: d}
	if d.Allow != c.Expect.Allow {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("allow is %t, want %t", d.Allow, c.Expect.Allow))
	}
	if c.Expect.Isolation != "" && d.Isolation != c.Expect.Isolation {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("isolation is %q, want %q", d.Isolation, c.Expect.Isolation))
	}
	if c.Expect.Rule != "" && d.Rule != c.Expect.Rule {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("rule is %q, want %q", d.Rule, c.Expect.Rule))
	}
	var re *RelaxationError
	if err := d.CheckRelaxations(c.Relaxations); errors.As(err, &re) {
		r.Refused = re.Refused
	}
	if d.Allow && (len(c.Relaxations) > 0 || len(c.Expect.Refused) > 0) && !sameRelaxations(r.Refused, c.Expect.Refused) {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("refused relaxations are %s, want %s", relaxationList(r.Refused), relaxationList(c.Expect.Refused)))
	}
	r.Pass = len(r.Mismatches) == 0
	return r
}

// sameRelaxations compares two lists as sets.
func sameRelaxations(a, b []Relaxation) bool {
	return slices.Equal(sortedStrings(a), sortedStrings(b))
}

func sortedStrings(rs []Relaxation) []string {
	s := make([]string, 0, len(rs))
	for _, r := range rs {
		s = append(s, r.String())
	}
	slices.Sort(s)
	return slices.Compact(s)
}

func relaxationList(rs []Relaxation) string {
	if len(rs) == 0 {
		return "none"
	}
	return "[" + strings.Join(sortedStrings(rs), ", ") + "]"
}

// LoadEvidence reads an evidence object from a JSON or YAML file: the "evidence" of a case, or
// of `moat policy eval -o json`. Unknown fields are errors.
func LoadEvidence(name string) (*Evidence, error) {
	var ev Evidence
	if err := loadStrict(name, "evidence", &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// loadStrict decodes the YAML or JSON document in file name into v, refusing unknown fields.
func loadStrict(name, what string, v any) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return decodeStrict(name, what, data, v)
}

// decodeStrict decodes the YAML or JSON document data, read from file name, into v.
func decodeStrict(name, what string, data []byte, v any) error {
	root, err := parseDocument(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	j, err := toJSONValue(root)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: decoding %s: %w", name, what, err)
	}
	return nil
}
