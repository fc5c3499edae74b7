# appkeeper developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER := $(PYTHON) hack/localcluster.py
# The local cluster's kubeconfig and binaries, once `make cluster-up` has run.
CLUSTER_ENV = eval "$$($(CLUSTER) env)"

.PHONY: help venv lint package-check test-lowest test-pythons test test-unit test-chart test-e2e binaries prometheus image cluster-up cluster-down cluster-status kind-up kind-down test-kind kind-host-up kind-host-down test-kind-host demo demo-down bench bench-plots bench-scale bench-shards chart-check

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## create .venv with the package and its test/dev tools

lint: venv ## ruff and mypy --strict (the bench too; the kopf peer is written in kopf's documented style, untyped)
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict --follow-imports=silent bench/*.py

test-unit: venv ## the fast suite: pure code, no cluster, no binaries (under 5 s)
	$(PY) -m pytest -q tests/unit

test-chart: venv binaries prometheus ## the chart with the pinned helm: templates, lint, schema, RBAC vs kinds, promtool
	$(PY) -m pytest -q tests/chart

test-e2e: venv ## against $$KUBECONFIG, or the local cluster (built and started when needed); then the teardown check
	$(PY) -m pytest -q -rA tests/e2e
	@if [ -z "$$KUBECONFIG" ]; then $(PY) -m pytest -q -rA tests/teardown; fi

test: lint package-check binaries test-unit test-chart test-e2e ## everything CI runs: lint, the wheel, the pinned binaries, unit, chart, e2e

test-lowest: ## the unit suite with the lowest version pyproject.toml allows of each dependency (constraints-lowest.txt)
	rm -rf build/lowest && $(PYTHON) -m venv build/lowest
	build/lowest/bin/pip install -q -c constraints-lowest.txt -e . "pytest>=8" "pytest-timeout>=2.3"
	build/lowest/bin/pip list 2>/dev/null | grep -iE '^(kopf|kubernetes|prometheus.client|croniter|python-json-logger|pyyaml|urllib3) '
	build/lowest/bin/python -m pytest -q -p no:cacheprovider tests/unit

# Every CPython pyproject.toml's classifiers claim, with the pinned dependencies: the .venv's own
# version runs there (what `make test-unit` runs); each other in a venv of its own (build/py3.N),
# from pyenv's versions or python3.N on PATH, whichever the machine has.
PYTHONS ?= $(shell sed -n 's/.*"Programming Language :: Python :: \(3\.[0-9][0-9]*\)".*/\1/p' pyproject.toml)
test-pythons: venv ## the unit suite on every CPython the package claims (3.11, 3.12, 3.13), from PATH or pyenv
	@set -e; own=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); for v in $(PYTHONS); do \
	  if [ "$$v" = "$$own" ]; then echo "== CPython $$v: the .venv's"; $(PY) -m pytest -q -p no:cacheprovider tests/unit; continue; fi; \
	  py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v || true); \
	  if [ -z "$$py" ] || ! $$py -c '' 2>/dev/null; then echo "error: no CPython $$v on PATH or in pyenv (pyproject.toml claims it)" >&2; exit 2; fi; \
	  echo "== CPython $$v: $$py"; \
	  [ -x build/py$$v/bin/python ] || $$py -m venv build/py$$v; \
	  build/py$$v/bin/pip install -q -c constraints.txt -e . pytest pytest-timeout; \
	  build/py$$v/bin/python -m pytest -q -p no:cacheprovider tests/unit; \
	done

package-check: ## `pip wheel . --no-build-isolation` in a clean venv with the oldest setuptools pyproject.toml allows
	@minimum=$$(sed -n 's/.*"setuptools>=\([0-9][0-9]*\)".*/\1/p' pyproject.toml); \
	rm -rf build/package-check && $(PYTHON) -m venv build/package-check && \
	build/package-check/bin/pip install -q "setuptools~=$$minimum.0" && \
	build/package-check/bin/pip wheel -q . --no-build-isolation --no-deps -w build/package-check/dist && \
	echo "wheel built with setuptools $$(build/package-check/bin/python -c 'import setuptools; print(setuptools.__version__)'): $$(ls build/package-check/dist)"

prometheus: ## Debian's prometheus (promtool for the alert tests; the e2e's Prometheus), installed when missing
	@command -v promtool >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; }

binaries: ## build-or-reuse the pinned Kubernetes, etcd, KWOK, Helm binaries
	hack/build-binaries.sh

image: venv ## the operator image (no Docker: debootstrap + OCI archive; docker build where Docker runs); imported into the real node when it runs
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
	  docker build -t "$$($(PY) -c 'import sys; sys.path.insert(0, "hack"); import images; print(images.operator_image())')" . ; \
	elif [ -S /run/appkeeper-realnode/containerd.sock ]; then $(PY) hack/images.py import operator; \
	else $(PY) hack/images.py build operator; fi

cluster-up: ## start the local control plane + 3 KWOK nodes + the real node (as root); prints the exports to use it
	$(CLUSTER) up

cluster-down: ## stop exactly the processes cluster-up started
	$(CLUSTER) down

cluster-status:
	$(CLUSTER) status

kind-up: venv ## a kind cluster "appkeeper": the user's Docker and kindest/node, or here our engine and a node built here
	$(PY) hack/kindcluster.py up
	@echo "then: export KUBECONFIG=$$HOME/.cache/appkeeper/kind/kubeconfig; make test-e2e (or make test-kind)"

kind-down: ## delete it; here, stop our engine too: the host as it was
	$(PY) hack/kindcluster.py down

test-kind: venv ## the e2e suite on the kind cluster (KWOK-only and local-node tests skip, saying why)
	KUBECONFIG=$$HOME/.cache/appkeeper/kind/kubeconfig PATH="$$($(PY) hack/localcluster.py build):$$PATH" \
	  $(PY) -m pytest -q -rA tests/e2e

kind-host-up: ## here, with no Docker: our own dockerd for kind (hack/kindhost.py: capshim runtime, guarded network)
	python3 hack/kindhost.py up

kind-host-down: ## stop it; the host as it was
	python3 hack/kindhost.py down

test-kind-host: venv ## the kind host against the real engine: privileged container, guard, DNS, clean teardown (root)
	$(PY) -m pytest -q -rA tests/kind

demo: venv ## local cluster + helm install + the operator + an example App, shown Ready
	hack/demo.sh up

demo-down: ## stop the demo's operator and the local cluster
	hack/demo.sh down

bench-plots: venv ## the pictures in bench/results.md, from the committed JSON (matplotlib: the bench extra)
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) bench/plots.py

bench: venv ## side by side (ceiling, appkeeper, the kopf peer, KCM; 1,000 Apps x 3), then latencies and steady state
	$(PY) bench/compare.py --apps 1000 --runs 3
	$(PY) bench/operator_bench.py

bench-shards: venv ## sharding: 1, 2 and 3 replicas over 6 shards, 1,000 Apps x 3 (bench/shards.json)
	$(PY) bench/shards.py --apps 1000 --runs 3

bench-scale: venv ## the 10,000-App run: the ceiling and appkeeper, then 4 idle minutes with one resync (bench/compare-10000.json)
	$(PY) bench/compare.py --apps 10000 --runs 1 --parties ceiling,appkeeper --resync-seconds 240 --steady-seconds 240 --out bench/compare-10000.json
