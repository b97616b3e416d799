#!/usr/bin/env bash
# moat's benchmarks: Go benchmarks of the inventory against the floor of reading and
# decompressing the same layers, of moat run against bare runc (warm) and against tar + runc
# (first run) (same process, same run), then whole-command measurements of bin/moat: warm
# re-inventory wall time and peak RSS on a 1 GB image.
# Needs MOAT_SAMPLE_IMAGE (make bench sets it). Prints ratios; record them in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MOAT_SAMPLE_IMAGE:?run make bench}"
count=${BENCH_COUNT:-5}
out=$(mktemp)
MOAT_BIN="$PWD/bin/moat" go test -tags "${TAGS:-}" -run='^$' -bench=. -benchtime=${BENCH_TIME:-3x} -count="$count" ./bench/ | tee "$out"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
metric() { # benchmark name, unit
  awk -v b="^Benchmark$1-" -v u="$2" '$1 ~ b { for (i=2;i<=NF;i++) if ($(i+1)==u) print $i }' "$out" | median
}
floor_ns=$(metric Floor ns/op); cold_ns=$(metric InventoryCold ns/op); warm_ns=$(metric InventoryWarm ns/op)
floor_cpu=$(metric Floor cpu-s/op); cold_cpu=$(metric InventoryCold cpu-s/op)
size=$(du -sb "$MOAT_SAMPLE_IMAGE/rootfs.tar" | cut -f1)
echo
echo "== sample image (rootfs tar $((size/1000000)) MB + application layer), medians of $count runs"
awk -v f="$floor_ns" -v c="$cold_ns" -v w="$warm_ns" -v fc="$floor_cpu" -v cc="$cold_cpu" 'BEGIN {
  printf "floor (read+decompress):  %8.1f ms wall  %6.3f cpu-s\n", f/1e6, fc
  printf "inventory, cold cache:    %8.1f ms wall  %6.3f cpu-s   ratio to floor: %.2fx wall (target < 2x), cpu %.3f s (target < 1 s)\n", c/1e6, cc, c/f, cc
  printf "inventory, warm cache:    %8.1f ms wall                  (target < 100 ms)\n", w/1e6
}'

parse_ns=$(metric ParseGo ns/op); import_ns=$(metric ImportGo ns/op)
lookup_ns=$(metric Lookup1000 ns/op); match_ns=$(metric Match1000 ns/op)
scold_ns=$(metric ScanCold ns/op); scold_cpu=$(metric ScanCold cpu-s/op); swarm_ns=$(metric ScanWarm ns/op)
echo
echo "== vulnerability database and scan (Go+PyPI from ../shared/vulndata, fixtures from testdata/osv)"
awk -v p="$parse_ns" -v i="$import_ns" -v l="$lookup_ns" -v m="$match_ns" -v sc="$scold_ns" -v scc="$scold_cpu" -v sw="$swarm_ns" -v f="$floor_ns" 'BEGIN {
  printf "parse Go archive (baseline):  %8.1f ms\n", p/1e6
  printf "import Go archive (4,291):    %8.1f ms   ratio to parse: %.2fx (target < 1 s)\n", i/1e6, i/p
  printf "1,000 lookups (baseline):     %8.1f ms\n", l/1e6
  printf "match 1,000 packages:         %8.1f ms   ratio to lookups: %.2fx (target < 50 ms)\n", m/1e6, m/l
  printf "scan, cold cache:             %8.1f ms wall  %6.3f cpu-s   ratio to floor: %.2fx (target < 1.5 cpu-s)\n", sc/1e6, scc, sc/f
  printf "scan, warm cache:             %8.1f ms                     (target < 150 ms)\n", sw/1e6
}'

ejson_ns=$(metric EvidenceJSON ns/op); eval_ns=$(metric PolicyEval ns/op)
resolve_ns=$(metric ResolveBaseline ns/op); verify_ns=$(metric Verify ns/op)
echo
echo "== signatures and policy (in-process registry on loopback, warm connections)"
awk -v j="$ejson_ns" -v e="$eval_ns" -v r="$resolve_ns" -v v="$verify_ns" 'BEGIN {
  printf "encode evidence JSON (baseline): %8.1f us\n", j/1e3
  printf "policy eval (example policy):    %8.1f us   ratio to baseline: %.2fx (target < 100 us)\n", e/1e3, e/j
  printf "resolve tag (baseline):          %8.2f ms\n", r/1e6
  printf "resolve + verify signature:      %8.2f ms   ratio to baseline: %.2fx (target < 30 ms)\n", v/1e6, v/r
}'

echo
echo "== moat run --rm, warm layer cache, in process: each iteration runs the runtime's own run of"
echo "   a bundle with the same spec, then the engine (store, overlay, spec, run, removal); medians"
for rt in Runc Crun Runsc; do
  b=$(metric Run$rt bare-ms); e=$(metric Run$rt engine-ms); d=$(metric Run$rt over-ms)
  awk -v r="$b" -v e="$e" -v d="$d" -v n="$rt" 'BEGIN {
    printf "%-5s: bare %7.1f ms, engine %7.1f ms, engine - bare per iteration %+6.1f ms (target < 20 ms)\n", tolower(n), r, e, d
  }'
done

b=$(metric RunCommandRunc bare-ms); m=$(metric RunCommandRunc moat-ms); d=$(metric RunCommandRunc over-ms)
echo
echo "== moat run --rm as a command (bin/moat: process start, decision log, engine, removal) against"
echo "   the runc run command on a bundle with the same spec, one after the other in each iteration"
awk -v r="$b" -v m="$m" -v d="$d" 'BEGIN {
  printf "runc : bare %7.1f ms, moat %7.1f ms, moat - bare per iteration %+6.1f ms (target < 20 ms)\n", r, m, d
}'

fbase_ns=$(metric FirstRunBaseline ns/op); feng_ns=$(metric FirstRunEngine ns/op)
echo
echo "== first moat run of the sample image (empty layer cache, hardened, runc, /bin/true, in process)"
awk -v r="$fbase_ns" -v e="$feng_ns" 'BEGIN {
  printf "tar -xzf of each layer + sync + bare runc run (baseline): %8.1f ms\n", r/1e6
  printf "engine run --rm, empty layer cache (unpack, run, removal): %8.1f ms   ratio to baseline: %.2fx (target < 2 s)\n", e/1e6, e/r
}'

# Whole command, warm cache: what a user waits for.
export MOAT_HOME=$(mktemp -d)
bin/moat sbom -q oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" -o json >/dev/null
best=999999
for _ in $(seq 5); do
  s=$(date +%s%N); bin/moat sbom -q oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" -o json >/dev/null; e=$(date +%s%N)
  t=$(( (e-s)/1000000 )); [ "$t" -lt "$best" ] && best=$t
done
echo "moat sbom, warm cache (whole command, best of 5): ${best} ms (target < 100 ms)"
vd=${VULNDATA:-../shared/vulndata}
bin/moat db import -q "$vd/osv/Go/all.zip" "$vd/osv/PyPI/all.zip" testdata/osv/Debian testdata/osv/npm testdata/osv/Maven >/dev/null
bin/moat scan -q --db-max-age 0 oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" -o json >/dev/null
best=999999
for _ in $(seq 5); do
  s=$(date +%s%N); bin/moat scan -q --db-max-age 0 oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" -o json >/dev/null; e=$(date +%s%N)
  t=$(( (e-s)/1000000 )); [ "$t" -lt "$best" ] && best=$t
done
echo "moat scan, warm cache (whole command, best of 5): ${best} ms (target < 150 ms)"

# moat run as a user waits for it: the whole command, warm layer cache, no policy, runc.
export MOAT_ENGINE_DIR="$MOAT_HOME/engine"
chmod 711 "$MOAT_HOME"
bin/moat run --rm oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" true 2>/dev/null
runs=() starts=()
for _ in $(seq 9); do
  s=$(date +%s%N); bin/moat version >/dev/null; e=$(date +%s%N); starts+=($(( (e-s)/100000 )))
  s=$(date +%s%N); bin/moat run --rm oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" true 2>/dev/null; e=$(date +%s%N); runs+=($(( (e-s)/100000 )))
done
printf '%s\n' "${starts[@]}" | median | awk '{printf "moat version (process start, median of 9): %.1f ms\n", $1/10}'
printf '%s\n' "${runs[@]}" | median | awk '{printf "moat run --rm SAMPLE true, warm cache (whole command, median of 9): %.1f ms\n", $1/10}'
unset MOAT_ENGINE_DIR
rm -rf "$MOAT_HOME"

# Peak RSS on a 1 GB image: the sample plus 800 MB of incompressible files.
big="$MOAT_SAMPLE_IMAGE/big.oci"
if [ ! -d "$big" ]; then
  go run -tags "${TAGS:-}" ./bench/cmd/mkimage -rootfs "$MOAT_SAMPLE_IMAGE/rootfs.tar" -app "$MOAT_SAMPLE_IMAGE/app" -pad $((800*1024*1024)) -oci "$big"
fi
export MOAT_HOME=$(mktemp -d)
rss=$( { /usr/bin/time -f '%M' bin/moat sbom -q --no-cache oci-dir:"$big" -o json >/dev/null; } 2>&1 | tail -1)
echo "moat sbom of a 1 GB image: peak RSS $((rss/1024)) MB (target < 150 MB)"
rm -rf "$MOAT_HOME" "$out"
