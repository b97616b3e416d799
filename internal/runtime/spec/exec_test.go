package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExecProcess(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := *generate(t, Options{}).Spec.Process

	for _, tc := range []struct {
		name    string
		o       ExecOptions
		wantErr error
		check   func(t *testing.T, p *specs.Process)
	}{
		{name: "command only keeps the confinement", o: ExecOptions{Args: []string{"/bin/ls", "-l"}}, check: func(t *testing.T, p *specs.Process) {
			if !slices.Equal(p.Args, []string{"/bin/ls", "-l"}) || p.Cwd != base.Cwd || p.User.UID != base.User.UID {
				t.Errorf("process = %+v", p)
			}
			if !p.NoNewPrivileges || !slices.Equal(p.Capabilities.Bounding, base.Capabilities.Bounding) || len(p.Rlimits) != len(base.Rlimits) || *p.OOMScoreAdj != *base.OOMScoreAdj {
				t.Errorf("confinement changed: %+v", p)
			}
		}},
		{name: "user, env, cwd, terminal", o: ExecOptions{Args: []string{"sh"}, User: "app", Env: []string{"A=1", "PATH=/x"}, WorkingDir: "/srv/", Terminal: true}, check: func(t *testing.T, p *specs.Process) {
			if p.User.UID != 1000 || p.User.GID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{2000}) {
				t.Errorf("user = %+v", p.User)
			}
			for _, want := range []string{"A=1", "PATH=/x", "HOME=/home/app", "TERM=xterm"} {
				if !slices.Contains(p.Env, want) {
					t.Errorf("env %v lacks %s", p.Env, want)
				}
			}
			if p.Cwd != "/srv" || !p.Terminal {
				t.Errorf("cwd %q terminal %v", p.Cwd, p.Terminal)
			}
		}},
		{name: "no command", o: ExecOptions{}, wantErr: ErrNoCommand},
		{name: "relative cwd", o: ExecOptions{Args: []string{"x"}, WorkingDir: "srv"}, wantErr: ErrInvalid},
		{name: "unknown user", o: ExecOptions{Args: []string{"x"}, User: "nobody"}, wantErr: ErrInvalid},
		{name: "bad env", o: ExecOptions{Args: []string{"x"}, Env: []string{"=x"}}, wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ExecProcess(base, root, IDMap{}, tc.o)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
	// The base process is not changed through shared slices.
	withCap := *generate(t, Options{CapAdd: []string{"NET_BIND_SERVICE"}}).Spec.Process
	p, _ := ExecProcess(withCap, root, IDMap{}, ExecOptions{Args: []string{"x"}})
	p.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	if slices.Contains(withCap.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Error("ExecProcess shares the capability sets with its base")
	}
}
