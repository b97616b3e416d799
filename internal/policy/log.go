package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"
)

// Record is one line of the decision log.
type Record struct {
	Time       time.Time `json:"time"`
	Image      string    `json:"image"`
	Digest     string    `json:"digest"`
	Rule       string    `json:"rule"`
	Decision   string    `json:"decision"` // "allow" or "deny"
	Isolation  string    `json:"isolation,omitempty"`
	Reasons    []string  `json:"reasons"`
	PolicyHash string    `json:"policyHash"`
	// Container names the container an allow decision started (moat run), or the one that
	// was not started because its relaxations were refused; empty for a decision about no
	// container (moat policy eval, a deny of the image).
	Container string `json:"container,omitempty"`
	// Relaxations are the loosenings of the hardened confinement that container runs with
	// ("cap-add CAP_NET_ADMIN", "bind-mount /srv:/data:ro", ...), each asked for by a flag.
	Relaxations []string `json:"relaxations,omitempty"`
	// Refused are the Relaxations the policy did not permit; when there are any, Decision is
	// "deny" and the container did not start.
	Refused []string `json:"refused,omitempty"`
}

// Refuse records that the container of r did not start because the policy did not permit
// the relaxations e names: the record becomes a deny, with Refused set and the reason added.
func (r *Record) Refuse(e *RelaxationError) {
	r.Decision = Deny
	r.Refused = nil
	for _, x := range e.Refused {
		r.Refused = append(r.Refused, x.String())
	}
	r.Reasons = append(slices.Clip(r.Reasons), "deny: "+e.Error())
}

// NewRecord makes the log record of decision d about ev, made at t.
func NewRecord(t time.Time, ev *Evidence, d Decision) Record {
	r := Record{
		Time:       t.UTC(),
		Rule:       d.Rule,
		Decision:   Deny,
		Isolation:  d.Isolation,
		Reasons:    d.Reasons,
		PolicyHash: d.PolicyHash,
	}
	if d.Allow {
		r.Decision = Allow
	}
	if ev != nil {
		r.Image, r.Digest = ev.Image.Reference, ev.Digest
	}
	return r
}

// Log appends decisions to a JSON-lines decision log. Each record is written with a single
// write call on a file opened with O_APPEND, so concurrent writers (several moat processes)
// never interleave within a line. A Log is safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	w     io.Writer
	f     *os.File
	fsync bool
}

// NewLog returns a Log writing to w; Close does not close w.
func NewLog(w io.Writer) *Log { return &Log{w: w} }

// OpenLog opens (creating it, mode 0600) the decision log at name for appending. With
// fsync set every record is synced to disk before Append returns.
func OpenLog(name string, fsync bool) (*Log, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening decision log: %w", err)
	}
	return &Log{w: f, f: f, fsync: fsync}, nil
}

// Append writes one record as one line.
func (l *Log) Append(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding decision record: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("writing decision log: %w", err)
	}
	if l.fsync && l.f != nil {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("syncing decision log: %w", err)
		}
	}
	return nil
}

// Close closes the file OpenLog opened.
func (l *Log) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}
