#!/usr/bin/env bash
# Builds moat's sample image into DIR (default ~/.cache/moat-dev/sample):
#   layer 0: a Debian 12 root filesystem made with debootstrap --variant=minbase (cached as
#            rootfs.tar; python3-yaml and python3-requests included, so dpkg owns some Python
#            distributions);
#   layer 1: an application: Go binaries built here against pinned module versions, npm
#            packages installed with npm, Python dist-info and Java archives taken from Debian
#            packages into application paths.
# Writes DIR/image.oci (OCI layout), DIR/image.tar (docker save archive) and DIR/app (the
# application tree, kept so tests can compare against it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$HOME/.cache/moat-dev/sample}
mkdir -p "$out"
stamp=$(cat "$0" "$root"/hack/sample-app/go.mod "$root"/hack/sample-app/*.go "$root"/bench/cmd/mkimage/*.go | sha256sum | cut -c1-16)

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if [ ! -s "$out/rootfs.tar" ]; then
  echo "debootstrap: Debian 12 minbase from $mirror (once; cached in $out/rootfs.tar)"
  tmp=$(mktemp -d "$out/rootfs.XXXX")
  debootstrap --variant=minbase --include=python3-yaml,python3-requests,ca-certificates \
    bookworm "$tmp/root" "$mirror" >"$out/debootstrap.log" 2>&1 || { tail -20 "$out/debootstrap.log"; exit 1; }
  rm -rf "$tmp/root"/var/cache/apt/archives/*.deb "$tmp/root"/var/lib/apt/lists/*
  tar -C "$tmp/root" --numeric-owner --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf "$tmp/rootfs.tar" .
  mv "$tmp/rootfs.tar" "$out/rootfs.tar"
  rm -rf "$tmp"
fi

if [ -f "$out/image.tar" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
echo "building the application layer"
app="$out/app"
rm -rf "$app" && mkdir -p "$app"

# Go: the sample app (old module versions on purpose) and moat itself.
mkdir -p "$app/usr/local/bin"
(cd "$root/hack/sample-app" && GOFLAGS=-mod=mod go build -trimpath -o "$app/usr/local/bin/sample-app" .)
(cd "$root" && go build -tags "${TAGS:-}" -trimpath -o "$app/usr/local/bin/moat" ./cmd/moat)

# npm: real packages from the registry, pinned.
mkdir -p "$app/srv/web"
cat >"$app/srv/web/package.json" <<'JSON'
{"name": "sample-web", "version": "1.0.0", "private": true,
 "dependencies": {"express": "4.17.1", "lodash": "4.17.20", "minimist": "1.2.5"}}
JSON
(cd "$app/srv/web" && npm install --no-audit --no-fund --loglevel=error --cache "$out/npm-cache" >/dev/null)

# Python and Java: real dist-info and jars from Debian packages, placed where an application
# would install them (so no OS package owns them).
debs="$out/debs"
mkdir -p "$debs"
(cd "$debs" && for p in python3-jinja2 python3-markupsafe python3-urllib3 python3-idna libcommons-lang3-java libcommons-io-java libjackson2-databind-java; do
  ls "$p"_*.deb >/dev/null 2>&1 || apt-get download -qq "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq "$p"; }
done)
x=$(mktemp -d)
for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$x"; done
site="$app/opt/venv/lib/python3.11/site-packages"
mkdir -p "$site" "$app/opt/app/lib"
cp -r "$x"/usr/lib/python3/dist-packages/*.dist-info "$x"/usr/lib/python3/dist-packages/*.egg-info "$site"/ 2>/dev/null || true
find "$x/usr/share/java" -name '*.jar' -type f -exec cp {} "$app/opt/app/lib/" \;
rm -rf "$x"

(cd "$root" && go run ./bench/cmd/mkimage -rootfs "$out/rootfs.tar" -app "$app" -oci "$out/image.oci" -docker "$out/image.tar")
echo "$stamp" >"$out/stamp"
echo "sample image: $out/image.oci and $out/image.tar"
