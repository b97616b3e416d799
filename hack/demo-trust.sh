#!/usr/bin/env bash
# The trust half of `make demo`: start the CNCF distribution registry on loopback, push the
# sample image to it, generate a key, sign and verify the image, scan it with --attest, and
# evaluate hack/demo/policy.yaml for it and for an unsigned copy; then run it with `moat run`
# under that policy (in the gVisor sandbox the policy chooses), see the unsigned copy denied,
# and take a detached container through ps, exec, logs, stop and rm. Everything stays on
# 127.0.0.1; the registry is stopped by its PID at the end. Containers live in
# /var/lib/moat-demo (MOAT_ENGINE_DIR), which the containers' unprivileged root can reach.
# Usage: hack/demo-trust.sh SAMPLE_DIR TOOLS_DIR MOAT_HOME
set -euo pipefail
cd "$(dirname "$0")/.."
sample=$1 tools=$2 home=$3
root=$PWD
work=$(mktemp -d)
pid=
cleanup() {
  moat rm --force demo-app >/dev/null 2>&1 || true
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
moat() { MOAT_HOME=$home MOAT_ENGINE_DIR=/var/lib/moat-demo "$root/bin/moat" "$@"; }

go build -o "$work/demotool" ./hack/demotool
port=$("$work/demotool" freeport)
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
"$tools/registry" serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/registry.log"; exit 1; }
  sleep 0.1
done
ref=127.0.0.1:$port/demo/app:1.0
unsigned=127.0.0.1:$port/demo/unsigned:1.0
echo "== the CNCF distribution registry on 127.0.0.1:$port; pushing the sample image as $ref"
"$work/demotool" push "$sample/image.oci" "$ref"
"$work/demotool" push "$sample/image.oci" "$unsigned"

cd "$work"
cp "$root/hack/demo/policy.yaml" .
export MOAT_PASSWORD=demo-password
echo "== moat key generate; moat sign; moat verify"
moat key generate --output-prefix release
moat sign "$ref" --key release.key --insecure -a env=demo
moat verify "$ref" --key release.pub --insecure
echo "== moat scan --attest: attach the SBOM and the vulnerability report, signed"
moat scan "$ref" --insecure --db-max-age 0 --attest --key release.key -o json >scan.json
moat verify-attestation "$ref" --key release.pub --insecure
echo "== moat policy eval $ref (hack/demo/policy.yaml)"
moat policy eval "$ref" --policy policy.yaml --insecure -o table --decision-log decisions.jsonl
echo "== moat policy eval $unsigned: unsigned, so no rule decides (exit code 4)"
code=0
moat policy eval "$unsigned" --policy policy.yaml --insecure -o table --decision-log decisions.jsonl || code=$?
echo "== moat policy eval exited with $code"
[ "$code" -eq 4 ]
echo "== the decision log holds $(wc -l <decisions.jsonl) decisions"

echo "== moat run --policy: the signed image runs at the level the policy chose (sandbox: gVisor)"
moat run --rm --policy policy.yaml --insecure --decision-log decisions.jsonl "$ref" cat /etc/os-release | head -n 2
echo "== moat run of the unsigned copy: denied before anything runs (exit code 4)"
code=0
moat run --rm --policy policy.yaml --insecure --decision-log decisions.jsonl "$unsigned" true || code=$?
echo "== moat run exited with $code"
[ "$code" -eq 4 ]
echo "== moat run -d; moat ps; moat exec; moat logs; moat stop; moat rm"
moat run -d --name demo-app --policy policy.yaml --insecure --decision-log decisions.jsonl "$ref" \
  sh -c 'echo "demo-app started as $(id -u) on $(hostname)"; exec sleep 600'
moat ps
moat exec demo-app sh -c 'echo "exec: uid $(id -u), capabilities $(grep CapEff /proc/self/status)"'
for _ in $(seq 50); do moat logs demo-app | grep -q started && break; sleep 0.1; done
moat logs demo-app
moat stop --time 1 demo-app
moat ps --all
moat rm demo-app
