package testutil

import "testing"

// RunscVersion is the gVisor version the sandbox backend's tests run; it must match
// hack/install-tools.sh and backend.RunscVersion.
const RunscVersion = "v0.0.0-20260905035102-160fafc42237"

var runscTool = tool{"runsc", "gvisor.dev/gvisor", RunscVersion}

// Runsc returns the path of the pinned runsc binary (a static build, CGO_ENABLED=0), failing
// the test when it is not installed.
func Runsc(t testing.TB) string {
	t.Helper()
	return toolPath(t, runscTool)
}
