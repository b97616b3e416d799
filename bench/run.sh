#!/usr/bin/env bash
# moat's benchmarks: Go benchmarks of the inventory against the floor of reading and
# decompressing the same layers (same process, same run), then whole-command measurements of
# bin/moat: warm re-inventory wall time and peak RSS on a 1 GB image.
# Needs MOAT_SAMPLE_IMAGE (make bench sets it). Prints ratios; record them in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MOAT_SAMPLE_IMAGE:?run make bench}"
count=${BENCH_COUNT:-5}
out=$(mktemp)
go test -tags "${TAGS:-}" -run='^$' -bench=. -benchtime=${BENCH_TIME:-3x} -count="$count" ./bench/ | tee "$out"

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

# Whole command, warm cache: what a user waits for.
export MOAT_HOME=$(mktemp -d)
bin/moat sbom -q oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" -o json >/dev/null
best=999999
for _ in $(seq 5); do
  s=$(date +%s%N); bin/moat sbom -q oci-dir:"$MOAT_SAMPLE_IMAGE/image.oci" -o json >/dev/null; e=$(date +%s%N)
  t=$(( (e-s)/1000000 )); [ "$t" -lt "$best" ] && best=$t
done
echo "moat sbom, warm cache (whole command, best of 5): ${best} ms (target < 100 ms)"
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
