#!/usr/bin/env bash
# Builds the pinned third-party programs moat's tests run against, the real cosign and the
# CNCF distribution registry (interoperability tests) and gVisor's runsc (the sandbox
# isolation level, internal/runtime/backend), into a cache directory (default
# ~/.cache/moat-dev/bin). A binary that `go version -m` shows was built from the pinned module
# version is kept, so a second run does nothing; anything else there is rebuilt. Pinned versions
# are never swapped for others: a failing build fails this script.
# Usage: hack/install-tools.sh [BINDIR [TOOL...]]   (all tools unless some are named)
set -euo pipefail
bin=${1:-$HOME/.cache/moat-dev/bin}
shift || true
only=" $* "
go=${GO:-go}

# name, package, module, version: one line per tool. Keep in step with internal/testutil.
tools=(
  "cosign github.com/sigstore/cosign/v2/cmd/cosign github.com/sigstore/cosign/v2 v2.6.5"
  "registry github.com/distribution/distribution/v3/cmd/registry github.com/distribution/distribution/v3 v3.1.2"
  # runsc must be static: a cgo build fails inside the chroot it makes for itself. About four
  # minutes on two cores. Keep in step with backend.RunscVersion.
  "runsc gvisor.dev/gvisor/runsc gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237"
)

mkdir -p "$bin"
for line in "${tools[@]}"; do
  read -r name pkg mod version <<<"$line"
  if [ "$only" != "  " ] && [[ "$only" != *" $name "* ]]; then
    continue
  fi
  if [ -x "$bin/$name" ] &&
    "$go" version -m "$bin/$name" 2>/dev/null | awk -v m="$mod" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { ok = 1 } END { exit !ok }'; then
    continue
  fi
  echo "building $name $version (a few minutes the first time)"
  start=$SECONDS
  # @version builds outside moat's module, so moat's go.mod neither constrains nor records it.
  # CGO is off so the binaries do not depend on the machine's C libraries.
  CGO_ENABLED=0 GOBIN="$bin" "$go" install -trimpath "$pkg@$version"
  echo "built $bin/$name $version in $((SECONDS - start))s"
done
