package policy

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// CEL limits. Expressions are compiled at load; at evaluation each one is bounded by a
// cost budget and, as a second line, a deadline.
const (
	celCostLimit = 1_000_000
	celTimeout   = 100 * time.Millisecond
)

var (
	envOnce sync.Once
	envVal  *cel.Env
	envErr  error
)

// celEnv declares the evidence to CEL with its Go types (field names are the JSON names),
// so a misspelt field is a load error rather than a runtime one.
func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		envVal, envErr = cel.NewEnv(
			ext.NativeTypes(
				reflect.TypeOf(&Evidence{}),
				ext.ParseStructTag("json"),
			),
			ext.Strings(),
			cel.Variable("evidence", cel.ObjectType("policy.Evidence")),
			cel.Variable("image", cel.ObjectType("policy.Image")),
			cel.Variable("digest", cel.StringType),
			cel.Variable("config", cel.ObjectType("policy.Config")),
			cel.Variable("signatures", cel.ListType(cel.ObjectType("policy.Signature"))),
			cel.Variable("attestations", cel.ListType(cel.ObjectType("policy.Attestation"))),
			cel.Variable("sbom", cel.ObjectType("policy.SBOM")),
			cel.Variable("findings", cel.ListType(cel.ObjectType("policy.Finding"))),
			cel.Variable("database", cel.ObjectType("policy.Database")),
			cel.Variable("errors", cel.ListType(cel.StringType)),
			cel.Variable("now", cel.TimestampType),
		)
	})
	return envVal, envErr
}

// compileCEL type-checks one expression; it must yield a bool (or dyn, checked at run time).
func compileCEL(env *cel.Env, src string) (cel.Program, error) {
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("CEL: %v", iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("CEL: expression yields %s, not bool", t)
	}
	prg, err := env.Program(ast,
		cel.CostLimit(celCostLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("CEL: %v", err)
	}
	return prg, nil
}

// activation exposes the evidence to CEL without copying or converting it: the native type
// provider reads the Go values as fields are selected.
type activation struct {
	ev  *Evidence
	now time.Time
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "evidence":
		return a.ev, true
	case "image":
		return a.ev.Image, true
	case "digest":
		return a.ev.Digest, true
	case "config":
		return a.ev.Config, true
	case "signatures":
		return a.ev.Signatures, true
	case "attestations":
		return a.ev.Attestations, true
	case "sbom":
		return a.ev.SBOM, true
	case "findings":
		return a.ev.Findings, true
	case "database":
		if a.ev.Database == nil {
			return Database{}, true
		}
		return a.ev.Database, true
	case "errors":
		return a.ev.Errors, true
	case "now":
		return a.now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// evalCEL runs one compiled expression. Anything but a bool true or false is an error.
func evalCEL(ctx context.Context, prg cel.Program, act *activation) (bool, error) {
	out, _, err := prg.ContextEval(ctx, act)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("result is %s, not bool", out.Type())
	}
	return b, nil
}
