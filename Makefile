# pgAnalytics. `make help` lists the targets.
SHELL      := bash
GO         ?= go
BIN        := bin
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X github.com/pganalytics/pganalytics/internal/buildinfo.Version=$(VERSION)
PG_MAJORS  ?= 13 14 15 16 17 18
# Packages whose tests depend on the PostgreSQL major (run once per major by test-matrix).
MATRIX_PKGS ?= ./internal/pgtest/... ./internal/pgcluster/... ./collector/... ./server/store/...

.PHONY: help build test test-matrix outage demo bench soak lint fuzz deps clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install missing system packages (PostgreSQL, tmux) on Debian
	@./scripts/ensure-deps.sh

build: ## build pganalytics-api, pganalytics and pgactl into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/pganalytics-api ./cmd/pganalytics ./cmd/pgactl

test: deps ## run every test (unit + integration against real PostgreSQL clusters)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...

test-matrix: deps ## run the PostgreSQL-dependent tests on every major 13-18
	@set -e; for v in $(PG_MAJORS); do \
	  echo "== PostgreSQL $$v"; \
	  PGTEST_PG_VERSION=$$v $(GO) test -count=1 -timeout 10m $(MATRIX_PKGS); \
	done

# How long `make outage` keeps the API down (a Go duration).
OUTAGE     ?= 3m

outage: deps ## the collector's backlog delivery time after a 3-minute API outage (OUTAGE=3m; e2e, not in make test)
	PGA_E2E_OUTAGE=$(OUTAGE) $(GO) test -count=1 -timeout 20m -v -run '^TestCollectorLosesNothingWhileAPIIsDown$$' ./e2e/

demo: deps build ## start the whole stack locally (throwaway clusters, API, collector, console)
	$(BIN)/pgactl demo --bin-dir $(BIN)

# The push-latency load test also writes the baseline `pgactl runbook watch --baseline` compares
# production with (BASELINE=path to put it elsewhere).
BASELINE ?= $(BIN)/load-test-baseline.json

bench: deps ## run the benchmarks (figures go to docs/performance.md) and write the load-test baseline ($(BASELINE))
	@mkdir -p $(dir $(BASELINE))
	PGANALYTICS_BASELINE_FILE=$(abspath $(BASELINE)) $(GO) test -p 1 -run '^$$' -bench . -benchmem -count=1 -timeout 20m ./...

SOAK ?= 1h

soak: deps ## 1,000 simulated collectors against one API server for SOAK (1h): memory, goroutines, store growth, p95 (not in CI)
	@mkdir -p $(BIN)
	set -o pipefail; PGANALYTICS_SOAK_DURATION=$(SOAK) $(GO) test -p 1 -run '^$$' -bench Soak -benchtime 1x -timeout 0 ./server/ | tee $(BIN)/soak.txt

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	@./scripts/fuzz.sh $${FUZZTIME:-20s}

lint: ## gofmt + go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n $$out ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean: ## remove build outputs
	rm -rf $(BIN)
