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

// TestExamplePolicyRelaxations runs the example policy over cases with relaxations (kept out
// of the example's cases directory, whose five cases other tests count).
func TestExamplePolicyRelaxations(t *testing.T) {
	p, err := Load("testdata/example/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunCases(p, "testdata/relaxations")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 {
		t.Fatalf("got %d results, want 1", len(results))
	}
	for _, r := range results {
		if r.Err != nil || !r.Pass || len(r.Refused) != 2 {
			t.Errorf("case %s: err %v, mismatches %v, refused %v", r.Case.Name, r.Err, r.Mismatches, r.Refused)
		}
	}
}
