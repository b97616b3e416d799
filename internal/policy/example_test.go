package policy

import (
	"testing"
)

func TestExamplePolicyCases(t *testing.T) {
	p, err := Load("testdata/example/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunCases(p, "testdata/example/cases")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 5 {
		t.Fatalf("got %d results, want 5", len(results))
	}
	for _, r := range results {
		if r.Err != nil || !r.Pass {
			t.Errorf("case %s: err %v, mismatches %v\nreasons:\n%v", r.Case.Name, r.Err, r.Mismatches, r.Decision.Reasons)
		}
	}
	for _, r := range results {
		t.Logf("%s: %+v", r.Case.Name, r.Decision)
	}
}
