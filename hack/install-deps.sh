#!/usr/bin/env bash
# Installs the Debian packages moat's demo, tests and benchmarks use, if they are missing.
# Idempotent and quiet when everything is present.
set -euo pipefail
# runc and crun are the OCI runtimes of moat run's hardened level (internal/runtime/backend).
# iproute2: the network tests bring up loopback in a network namespace they create.
pkgs=(debootstrap ca-certificates git tar gzip xz-utils time docker.io libisal-dev runc crun iproute2)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
