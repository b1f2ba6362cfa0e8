# Choreo: `make run` sets everything up and starts the platform; `make test`
# runs every test against a real broker and real PostgreSQL.

SHELL := /bin/bash
CARGO ?= cargo
# The broker is built once per user, outside the checkout, and reused: Tansu
# from its crates.io source with the project's patches (scripts/tansu), in a
# folder named after the patches and the build script, so a changed patch
# builds anew. `make tansu-stock` builds the release as published, for A/B runs.
TANSU_VERSION := 0.6.0
TANSU_PATCHES := $(sort $(wildcard scripts/tansu/*.patch))
TANSU_ROOT ?= $(HOME)/.cache/choreo/tansu-$(TANSU_VERSION)-$(shell cat scripts/build-tansu.sh $(TANSU_PATCHES) | sha256sum | cut -c1-12)
TANSU_BIN := $(TANSU_ROOT)/bin/tansu
TANSU_STOCK_BIN := $(HOME)/.cache/choreo/tansu-$(TANSU_VERSION)/bin/tansu
CHOREO_TANSU_BIN ?= $(TANSU_BIN)
export CHOREO_TANSU_BIN
# Schemathesis fuzzes the edge from its OpenAPI document; it lives in a
# virtual environment of its own in the same cache.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS_ROOT ?= $(HOME)/.cache/choreo/schemathesis-$(SCHEMATHESIS_VERSION)
SCHEMATHESIS_BIN := $(SCHEMATHESIS_ROOT)/bin/st
CHOREO_SCHEMATHESIS_BIN ?= $(SCHEMATHESIS_BIN)
export CHOREO_SCHEMATHESIS_BIN
# cargo-deny checks advisories, bans and licenses (deny.toml) against the
# RustSec database snapshot in third_party/advisory-db, placed as a git
# repository dated as the snapshot (scripts/advisory-db.sh).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY_ROOT ?= $(HOME)/.cache/choreo/cargo-deny-$(CARGO_DENY_VERSION)
CARGO_DENY_BIN := $(CARGO_DENY_ROOT)/bin/cargo-deny
ADVISORY_DB_DATE := 2026-08-21T08:28:40+02:00
# cargo-deny's folder for the database's URL (its name and an xxHash of it).
ADVISORY_DB := $(HOME)/.cache/choreo/advisory-db/advisory-db-3157b0e258782691
# The deployment checks' tools (compose, Helm's SDK, kubernetes-validate,
# yamllint, hadolint) share a virtual environment named after their pins.
DEPLOY_TOOLS_ROOT ?= $(HOME)/.cache/choreo/deploy-tools-$(shell sha256sum scripts/deploy-tools.txt | cut -c1-12)
DEPLOY_TOOLS_STAMP := $(DEPLOY_TOOLS_ROOT)/.installed

# promtool checks and unit-tests the alert rules. It comes from Debian's
# `prometheus` package, unpacked into the per-user cache rather than
# installed: installing would also set up a Prometheus server.
PROMTOOL_ROOT ?= $(HOME)/.cache/choreo/prometheus-debian
PROMTOOL_BIN := $(PROMTOOL_ROOT)/usr/bin/promtool
CHOREO_PROMTOOL_BIN ?= $(PROMTOOL_BIN)
export CHOREO_PROMTOOL_BIN

.PHONY: run test chaos bench bench-replay check fmt clippy build deny tansu tansu-stock schemathesis chromium postgres deploy-tools deploy-check clean-test-dbs saga-graph architecture promtool

run: tansu postgres build ## Set up and start the whole platform; Ctrl-C stops it.
	./target/debug/choreo up

test: tansu schemathesis chromium postgres deploy-tools promtool deny ## Every test, on a real Tansu broker and real PostgreSQL.
	# The `choreo up` test runs the real service binaries; `cargo test` alone
	# builds bin targets only as test harnesses, so build them first.
	$(CARGO) build --workspace --bins $(FAILPOINTS)
	$(DEPLOY_TOOLS_ROOT)/bin/python scripts/check-deploy.py target/debug target/deploy
	$(CARGO) test --workspace --all-targets $(FAILPOINTS)
	# The messaging runtime's and the saga tests again on a second
	# implementation of the protocol: librdkafka's mock cluster.
	CHOREO_TEST_BROKER=mock $(CARGO) test -p choreo-messaging -p choreo-saga-tests -p choreo-order $(FAILPOINTS)

deny: $(CARGO_DENY_BIN) ## Known advisories, banned crates and licenses (cargo deny, deny.toml).
	scripts/advisory-db.sh third_party/advisory-db $(ADVISORY_DB) "$(ADVISORY_DB_DATE)"
	# The crates' metadata is fetched first: the check itself runs offline.
	$(CARGO) fetch --locked
	$(CARGO_DENY_BIN) --offline check --hide-inclusion-graph

$(CARGO_DENY_BIN):
	$(CARGO) install cargo-deny --version $(CARGO_DENY_VERSION) --locked --root $(CARGO_DENY_ROOT)

deploy-check: deploy-tools build ## Dockerfile, compose and the Helm chart, by the real tools (no engine, no cluster).
	$(DEPLOY_TOOLS_ROOT)/bin/python scripts/check-deploy.py target/debug target/deploy

chaos: tansu postgres build ## Every failure-injection suite in saga-tests/suites; reports in target/chaos.
	./target/debug/choreo chaos run saga-tests/suites

# What users run, built as they build it: without fail points.
SERVICE_PACKAGES := choreo-order choreo-inventory choreo-payment choreo-shipping choreo-edge choreo-schema-registry choreo-provider

bench: tansu postgres ## The benchmark on release builds without fail points: sagas/s and latencies against this machine's ceilings; results in bench/results.
	$(CARGO) build --release $(addprefix -p ,$(SERVICE_PACKAGES)) -p choreo-cli
	./target/release/choreo bench run $(BENCH_ARGS)

bench-replay: tansu postgres ## How fast a service recovers: 100,000 events replayed into an empty database, then again; results in bench/results.
	$(CARGO) build --release $(addprefix -p ,$(SERVICE_PACKAGES)) -p choreo-cli
	./target/release/choreo bench replay $(BENCH_REPLAY_ARGS)

check: fmt clippy test ## What to run before every commit.

saga-graph: ## Write `choreo saga graph` into the README's flow diagram (a test fails when they drift).
	CHOREO_BLESS=1 $(CARGO) test -p choreo-events --test readme_graph
	CHOREO_BLESS=1 $(CARGO) test -p choreo-cli --test architecture the_architecture_map_shows_the_choreography

architecture: ## Write the generated crate and saga graphs into ARCHITECTURE.md (a test fails when they drift).
	CHOREO_BLESS=1 $(CARGO) test -p choreo-cli --test architecture

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets $(FAILPOINTS) -- -D warnings

# The fail points the chaos lab drives are compiled only into the builds
# that ask for them: this one (the local platform, the suites and the
# tests). `make bench`, the images and a plain `cargo build` have none.
FAILPOINTS := --features choreo-messaging/failpoints

build:
	$(CARGO) build --workspace --bins $(FAILPOINTS)

tansu: $(TANSU_BIN) ## Build the patched Tansu broker into the per-user cache.
	@# The tools' default broker (without CHOREO_TANSU_BIN) is this link.
	@ln -sfn $(TANSU_ROOT) $(HOME)/.cache/choreo/tansu

$(TANSU_BIN):
	@echo "Building the Tansu broker $(TANSU_VERSION), patched, into $(TANSU_ROOT) (once; about 12 minutes)"
	CARGO=$(CARGO) scripts/build-tansu.sh $(TANSU_VERSION) $(TANSU_ROOT) $(TANSU_PATCHES)

tansu-stock: $(TANSU_STOCK_BIN) ## Tansu as published, unpatched: the baseline of a broker A/B bench (--tansu-bin).

$(TANSU_STOCK_BIN):
	CARGO=$(CARGO) scripts/build-tansu.sh $(TANSU_VERSION) $(patsubst %/,%,$(dir $(@D)))

schemathesis: $(SCHEMATHESIS_BIN) ## Install Schemathesis (the OpenAPI fuzzer) into the per-user cache.

$(SCHEMATHESIS_BIN):
	python3 -m venv $(SCHEMATHESIS_ROOT)
	$(SCHEMATHESIS_ROOT)/bin/pip install --quiet schemathesis==$(SCHEMATHESIS_VERSION)

deploy-tools: | $(DEPLOY_TOOLS_STAMP) ## Install the deployment checks' tools into the per-user cache.

$(DEPLOY_TOOLS_STAMP):
	python3 -m venv $(DEPLOY_TOOLS_ROOT)
	$(DEPLOY_TOOLS_ROOT)/bin/pip install --quiet -r scripts/deploy-tools.txt
	touch $@

chromium: ## Debian's Chromium and chromedriver, for the dashboard test (headless).
	@command -v chromedriver >/dev/null && test -x /usr/bin/chromium || { \
		echo "Installing Debian's chromium and chromium-driver"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get install -y --no-install-recommends chromium chromium-driver \
		|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver; }; }

promtool: $(PROMTOOL_BIN) ## promtool, from Debian's prometheus package, into the per-user cache.

$(PROMTOOL_BIN):
	@echo "Unpacking promtool from Debian's prometheus package into $(PROMTOOL_ROOT)"
	rm -rf $(PROMTOOL_ROOT).download && mkdir -p $(PROMTOOL_ROOT).download
	cd $(PROMTOOL_ROOT).download && { apt-get download prometheus 2>/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); $$SUDO apt-get update && apt-get download prometheus; }; }
	dpkg-deb -x $(PROMTOOL_ROOT).download/prometheus_*.deb $(PROMTOOL_ROOT)
	rm -rf $(PROMTOOL_ROOT).download
	$(PROMTOOL_BIN) --version

postgres: ## Make sure PostgreSQL answers on 127.0.0.1:5432.
	@scripts/ensure-postgres.sh

clean-test-dbs: ## Drop databases left behind by failed test runs.
	@psql -h 127.0.0.1 -U postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'choreo_t_%'" \
	  | while read -r db; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE \"$$db\" WITH (FORCE)"; done
