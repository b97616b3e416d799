# moat's build, demo, test and benchmark entry points. Every target installs what it needs,
# so each works on a fresh Debian 12 machine as root.

SHELL          := /bin/bash
GO             ?= go
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS        := -X github.com/moatsec/moat/internal/cli.version=$(VERSION)
# isal: gzip layers are inflated with Intel ISA-L (Debian's libisal), about 4x faster than Go's
# inflate. Without the tag (or with CGO_ENABLED=0) moat is pure Go and slower on gzip layers.
TAGS           ?= isal
# Downloads and builds reused between runs live outside the work tree.
DEV_CACHE      ?= $(HOME)/.cache/moat-dev
TOOLS          := $(DEV_CACHE)/bin
STATICCHECK    := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.6.1
SAMPLE         := $(DEV_CACHE)/sample
FUZZTIME       ?= 20000x
VULNDATA       ?= ../shared/vulndata
export PATH    := $(TOOLS):$(PATH)

.PHONY: all build deps tools demo test test-short lint fuzz bench sample-image clean

all: build

build: deps
	$(GO) build -tags "$(TAGS)" -trimpath -ldflags "$(LDFLAGS)" -o bin/moat ./cmd/moat

# System packages the demo, tests and benchmarks use.
deps:
	@hack/install-deps.sh

# The pinned cosign and CNCF distribution registry that the interoperability tests run
# (internal/sign/interop) and gVisor's runsc (internal/runtime/backend), built into $(TOOLS);
# a no-op once they are there at those versions.
tools:
	@GO=$(GO) hack/install-tools.sh $(TOOLS)

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# The sample image: a real Debian 12 root filesystem (debootstrap, cached) plus an application
# layer with Go binaries, npm packages, Python distributions and Java archives.
sample-image: deps
	@TAGS="$(TAGS)" hack/sample-image.sh "$(SAMPLE)"

# Build moat and inventory the sample image, as a table and as CycloneDX and SPDX files; scan
# it; then sign, attest and evaluate a policy for it on a loopback registry, and run it under
# that policy with moat run, detached too (hack/demo-trust.sh).
demo: build sample-image
	@echo "== moat sbom oci-dir:$(SAMPLE)/image.oci -o table (the first five packages of each type)"
	@MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat sbom oci-dir:$(SAMPLE)/image.oci -o table | \
		awk 'NF < 4 || $$1 == "NAME" || ++seen[$$3] <= 5'
	MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat sbom docker-archive:$(SAMPLE)/image.tar -o cyclonedx-json --output-file demo.cdx.json
	MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat sbom oci-dir:$(SAMPLE)/image.oci -o spdx-json --output-file demo.spdx.json
	@echo "== wrote demo.cdx.json and demo.spdx.json"
	@echo "== moat db import: real Go and PyPI advisories ($(VULNDATA)), hand-written Debian/npm/Maven fixtures (testdata/osv)"
	MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat db import $(VULNDATA)/osv/Go/all.zip $(VULNDATA)/osv/PyPI/all.zip testdata/osv/Debian testdata/osv/npm testdata/osv/Maven
	MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat db status --db-max-age 0
	@echo "== moat scan oci-dir:$(SAMPLE)/image.oci --fail-on critical (exit code 3: findings at or above critical)"
	@MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat scan --db-max-age 0 oci-dir:$(SAMPLE)/image.oci -o table --fail-on critical; \
		code=$$?; echo "== moat scan exited with $$code"; [ $$code -eq 3 ]
	MOAT_HOME=$(DEV_CACHE)/demo-home bin/moat scan --db-max-age 0 oci-dir:$(SAMPLE)/image.oci -o sarif --output-file demo.sarif
	@echo "== wrote demo.sarif (SARIF 2.1.0)"
	@GO=$(GO) hack/install-tools.sh $(TOOLS) registry runsc
	@hack/demo-trust.sh $(SAMPLE) $(TOOLS) $(DEV_CACHE)/demo-home

lint: deps $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags "$(TAGS)" ./...
	$(GO) vet ./...
	$(STATICCHECK) -tags "$(TAGS)" ./...

# Every test, including the end-to-end test on the sample image, then each fuzz target briefly.
test: deps tools sample-image
	MOAT_SAMPLE_IMAGE=$(SAMPLE) $(GO) test -tags "$(TAGS)" -count=1 -timeout 30m ./...
	@echo "== the pure-Go build (no isal): image and engine packages"
	$(GO) test -count=1 ./internal/image/... ./internal/sbom/engine/...
	@$(MAKE) --no-print-directory fuzz

test-short:
	$(GO) test -tags "$(TAGS)" -short ./...

fuzz:
	@TAGS="$(TAGS)" hack/fuzz.sh $(FUZZTIME)

bench: build sample-image tools
	MOAT_SAMPLE_IMAGE=$(SAMPLE) TAGS="$(TAGS)" bench/run.sh

clean:
	rm -rf bin demo.cdx.json demo.spdx.json demo.sarif
