package spec

import (
	"errors"
	"fmt"
)

// Level is an isolation level, as the trust policy names it.
type Level string

// The isolation levels. Hardened runs under runc or crun; Sandbox under gVisor's runsc, a
// user-space kernel between the container and the host's; VM is accepted by the policy schema
// but no backend exists yet, so Generate refuses it.
const (
	Hardened Level = "hardened"
	Sandbox  Level = "sandbox"
	VM       Level = "vm"
)

// Errors Generate, the parsers and the profile loaders return; each is matched with errors.Is.
var (
	// ErrInvalid is the category of every error about the options themselves: a bad mount, an
	// unknown capability, conflicting fields. Nothing was created.
	ErrInvalid = errors.New("invalid container options")
	// ErrUnsupportedLevel is returned for an isolation level moat cannot provide (vm).
	ErrUnsupportedLevel = errors.New("unsupported isolation level")
	// ErrNoCommand means neither the image nor the options name a command to run.
	ErrNoCommand = fmt.Errorf("%w: the image has no entrypoint or command and none was given", ErrInvalid)
	// ErrUnknownUser means the user or group is not a number and not in the image's
	// /etc/passwd or /etc/group.
	ErrUnknownUser = fmt.Errorf("%w: unknown user", ErrInvalid)
	// ErrInvalidProfile is the category of every error about a seccomp profile.
	ErrInvalidProfile = errors.New("invalid seccomp profile")
)

// ParseLevel reads a level name ("" is Hardened). It accepts vm, which Generate then refuses
// with ErrUnsupportedLevel, so that the caller can tell a typo from a level moat lacks.
func ParseLevel(s string) (Level, error) {
	switch Level(s) {
	case "", Hardened:
		return Hardened, nil
	case Sandbox, VM:
		return Level(s), nil
	}
	return "", fmt.Errorf("%w: isolation level %q (want hardened, sandbox or vm)", ErrInvalid, s)
}

// Rank orders the levels by strength (hardened < sandbox < vm), so that a caller can check that
// --isolation only raises the level a policy chose. Unknown levels rank 0.
func (l Level) Rank() int {
	switch l {
	case "", Hardened:
		return 1
	case Sandbox:
		return 2
	case VM:
		return 3
	}
	return 0
}

func (l Level) check() error {
	switch l {
	case Hardened, Sandbox:
		return nil
	case VM:
		return fmt.Errorf("%w: isolation level vm needs a micro-VM backend, which moat does not have yet; use hardened or sandbox", ErrUnsupportedLevel)
	}
	return fmt.Errorf("%w: isolation level %q (want hardened, sandbox or vm)", ErrInvalid, string(l))
}
