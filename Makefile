# The two commands a fresh machine needs: `make plan` (offline plan of the staging stack) and `make test`.
# Both set up what they need: the venv and its packages, and the Debian tools (promtool, amtool).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
STACK ?= staging
VENV ?= .venv
PY := $(VENV)/bin/python
BOOTSTRAP_PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv plan-venv tools plan plan-all package test lint generate docs clean

help:
	@echo "make plan [STACK=staging|prod]  offline plan of a stack (the main job)"
	@echo "make test                        every test (installs what it needs)"
	@echo "make package [STACK=...]         build the Lambda zips, print sizes against AWS limits"
	@echo "make lint                        ruff"
	@echo "make plan-diff [STACK=] [AGAINST=REF|PLAN=FILE]  what pulumi preview --diff would show (default: merge base with main)"
	@echo "make import-retained STACK=...    pulumi import lines for what a destroy leaves behind"
	@echo "make generate                    rewrite every generated file (rules/, dashboards/, README reference)"

# `make plan`'s packages only: the program's, the model build's and the plan validation's (pyproject.toml extras
# model-build, plan), installed by uv (measured: 5 s, where pip took 75 s for the same set: uv downloads and
# unpacks in parallel). The project itself is not installed: commands run from here. --compile-bytecode, as pip
# does by default: where PYTHONDONTWRITEBYTECODE is set (this machine), Python would otherwise compile the ~500
# SDK modules a plan imports on every run (+2.5 s of each `make plan`); it costs ~15 s once, in parallel.
UV_VERSION := 0.13.8
$(VENV)/.plan-installed: pyproject.toml
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) </dev/null
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r pyproject.toml --extra model-build \
	  --extra plan </dev/null
	touch $@

# Everything else `make test` needs (dev: pytest, moto, torch for the edge model's reference...), with pip: it
# reads this machine's pip configuration (torch's CPU wheel comes from its find-links; uv would not look there).
$(VENV)/.installed: $(VENV)/.plan-installed pyproject.toml
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,model-build,plan]'
	touch $@

venv: $(VENV)/.installed
plan-venv: $(VENV)/.plan-installed

# promtool (prometheus 2.42) and amtool (alertmanager 0.25) from Debian; installed once.
tools:
	@if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager </dev/null >/dev/null; \
	fi
	@promtool --version 2>&1 | head -1; amtool --version 2>&1 | head -1

# Plan, first preview and cost in one job (infra/offline/job.py): SDKs imported once, the preview forked beside
# the plan.
plan: plan-venv tools
	$(PY) -m infra.offline.job --stack $(STACK) --offline-secrets

plan-all: plan-venv tools
	$(PY) -m infra.offline.job --stack staging --stack prod --offline-secrets

package: venv
	$(PY) -m infra.offline.package --stack $(STACK) --rebuild

lint: venv
	$(PY) -m ruff check .

test: venv tools
	$(PY) -m ruff check .
	$(PY) -m pytest

# Every checked-in generated artifact at once: rules/ (from rules/slos.yaml and rules/symptoms.yaml), dashboards/
# (from the plans), the README's config reference. `make rules`, `make dashboards`, `make docs` do one part each.
generate: venv tools edge-model
	$(PY) -m infra.offline.generate

docs: venv
	$(PY) -m infra.offline.generate docs

clean:
	rm -rf build

# ---- component targets (one block per component; keep each in its own block) ----
# -- xray --
.PHONY: xray-test xray-smoke
XRAY_DAEMON ?= xray-daemon.observability.svc.cluster.local:2000
XRAY_REGION ?= us-east-1
xray-test: venv
	$(PY) -m pytest -q tests/test_xray_plan.py tests/test_xray_rules.py tests/test_xray_smoke.py
# Post-deploy: one segment over UDP in the daemon protocol, then found with GetTraceSummaries (run in-cluster).
xray-smoke: venv
	$(PY) -m infra.tools.xray_smoke --daemon $(XRAY_DAEMON) --region $(XRAY_REGION)
# -- emf-edge --
.PHONY: edge-model bench-edge
# The slow first-run steps, in parallel: fetch the weights, write all-MiniLM-L6-v2 as ONNX and quantise it (cached
# in build/models by its inputs' hash) while every function's wheels are downloaded (build/cache/deps, by content).
edge-model: plan-venv
	$(PY) -m infra.offline.package --model-only
# The edge function against sentence-transformers in one process: the source of the README's edge figures.
bench-edge: venv edge-model
	$(PY) -m benchmarks.bench_edge
test: edge-model
plan: edge-model
plan-all: edge-model
package: edge-model
# -- anomaly --
.PHONY: anomaly-test bench-anomaly bench-detector
anomaly-test: venv
	$(PY) -m pytest tests/test_anomaly*.py -q

# NAB standard-profile scoring of the streaming detector on shared/nab-dev (not part of `make test`): per-file
# and total dev score, the threshold curve, the parameter sweep and the production view at the shipped threshold.
NAB_DATA ?= ../shared/nab-dev
bench-anomaly: venv
	$(PY) -m benchmarks.run_nab --data $(NAB_DATA) --rescore --sweep
	$(PY) -m benchmarks.fit_report --data $(NAB_DATA)
# One detector invocation for 1, 20, 100 and 1,000 metrics against a moto server: time, peak RSS, linear fit.
bench-detector: venv
	$(PY) -m benchmarks.bench_detector
# -- slo-alerting --
.PHONY: rules slo-check slo-replay slo-test
# Regenerate rules/prometheus, rules/alertmanager and rules/tests from rules/slos.yaml and rules/symptoms.yaml
# (never edit them by hand); part of `make generate`.
rules: venv
	$(PY) -m infra.offline.generate rules
# What `make test` runs through pytest (tests/test_slo_rules.py), for humans: promtool and amtool on the files.
slo-check: tools
	promtool check rules rules/prometheus/*.yml
	promtool test rules rules/tests/*.test.yml
	amtool check-config rules/alertmanager/*.yml
	amtool config routes test --config.file=rules/alertmanager/alertmanager-paging.yml \
	  --verify.receivers=pagerduty-critical severity=P0 service=akidb-rest slo=availability
	amtool config routes test --config.file=rules/alertmanager/alertmanager-paging.yml \
	  --verify.receivers=pagerduty-error severity=P1 service=akidb-rest slo=availability
	amtool config routes test --config.file=rules/alertmanager/alertmanager-paging.yml \
	  --verify.receivers=tickets,chat severity=P2 service=akidb-rest slo=availability
	amtool config routes test --config.file=rules/alertmanager/alertmanager-tickets-only.yml \
	  --verify.receivers=tickets severity=P0 service=akidb-rest slo=availability
# MTTD / noise replays through promtool, ours and the plan's rules (prints the table; ~2 min).
slo-replay: venv tools
	$(PY) -m infra.slo.replay
slo-test: venv tools
	$(PY) -m pytest -q tests/test_slo_rules.py tests/test_slo_alerting.py tests/test_slo_replay.py \
	  tests/test_runbook_automation.py tests/test_alertmanager_inhibition.py
# -- dashboards --
.PHONY: dashboards dashboards-check dashboards-preview
dashboards: venv tools  ## rewrite dashboards/ from the plan of every stack
	$(PY) -m infra.offline.generate dashboards
dashboards-check: venv tools  ## exit 1 when dashboards/ drifted from the definitions
	$(PY) -m infra.offline.generate dashboards --check
dashboards-preview: dashboards  ## PNG of each dashboard's layout with sample series, in build/dashboards-preview/
	$(PY) -m infra.dashboard_defs.preview
dashboards dashboards-check: edge-model
# -- engine: plan diff, retained resources, policy pack, workflow checks --
.PHONY: plan-diff import-retained requirements
AGAINST ?=
PLAN ?=
MARKDOWN ?=
# What `pulumi preview --diff` would print for this change, from the offline plans of both sides.
plan-diff: venv tools
	$(PY) -m infra.offline.diff --stack $(STACK) --offline-secrets \
	  $(if $(PLAN),--plan $(PLAN),$(if $(AGAINST),--against $(AGAINST))) \
	  $(if $(MARKDOWN),--markdown $(MARKDOWN))
# checkov's Kubernetes checks on the plan's objects. Its own virtualenv: checkov pins boto3 below what moto and
# the Lambdas use. Not in `make test` (a minute of install per CI run; the k8s rules of the plan cover the same).
CHECKOV_VENV := build/checkov-venv
$(CHECKOV_VENV)/.installed:
	$(BOOTSTRAP_PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $@
.PHONY: checkov
checkov: venv $(CHECKOV_VENV)/.installed
	$(PY) -m infra.offline.manifests --stack $(STACK)
	$(CHECKOV_VENV)/bin/checkov -d build/$(STACK)/manifests --framework kubernetes --compact --quiet
# `pulumi import` lines, from config, for the resources a destroy keeps (retainOnDelete, skipDestroy, protect).
import-retained: venv tools
	$(PY) -m infra.offline.retained --stack $(STACK)
# requirements.txt (read by `pulumi install`) from pyproject.toml.
requirements: venv
	$(PY) -m infra.offline.requirements
plan-diff import-retained: edge-model
# -- dashboards: Day 5 probes, alerting path, cost, restore drill --
.PHONY: cost dr-drill day5-test
# Monthly cost estimate of the last plan of STACK (per component and type; exit 1 above dashboards.cost.ceilingUsd).
cost: venv
	@test -f build/$(STACK)/plan.json || $(PY) -m infra.offline.plan --stack $(STACK) --offline-secrets >/dev/null
	$(PY) -m infra.offline.cost_report --stack $(STACK)
# Delete the detector's band/state and a model in a versioned bucket (moto), restore them, check it resumes.
dr-drill: venv
	$(PY) -m infra.tools.dr_drill
day5-test: venv
	$(PY) -m pytest -q tests/test_canary.py tests/test_alerting_path.py tests/test_cost.py tests/test_dr_drill.py \
	  tests/test_heartbeat.py tests/test_grafana_cloudwatch.py tests/test_incident_timeline.py

# -- runbooks and docs site --
# The docs site (MkDocs, strict: a broken link, a missing page or a page outside the nav fails) into build/site;
# the runbook pages' generated parts and the nav come from `make generate` (target runbooks).
.PHONY: docs-site runbooks
docs-site: venv  ## build the docs site (MkDocs, strict) into build/site
	@start=$$(date +%s%N); $(PY) -m mkdocs build --strict --quiet -d build/site; \
	  echo "docs site built into build/site in $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

runbooks: venv tools edge-model  ## rewrite the runbook pages' generated parts and the docs nav
	$(PY) -m infra.offline.generate runbooks

# -- signal paths --
.PHONY: paths
# Every signal of both stacks to the person it reaches (Markdown table) and the dead ends (exit 1 on one).
paths: venv edge-model
	$(PY) -m infra.tools.signal_paths_report --stack staging --stack prod

# -- policy pack --
.PHONY: policy-venv policy-test
# The pack's own venv where the CLI looks for it (PulumiPolicy.yaml: virtualenv: venv), built as the workflows build
# it: for a local `pulumi preview --policy-pack policy/`.
policy/venv/.installed: policy/requirements.txt
	rm -rf policy/venv
	$(BOOTSTRAP_PYTHON) -m venv policy/venv
	policy/venv/bin/pip install --quiet -r policy/requirements.txt </dev/null
	touch $@
policy-venv: policy/venv/.installed
# The pack started as the CLI starts it, in that venv (built in build/policy-venv/<hash>), on both stacks' plans.
policy-test: venv tools edge-model
	$(PY) -m pytest -q -s tests/test_policy_pack.py

# -- workflows: every workflow job offline, deploy markers --
.PHONY: workflow-steps
# Every job of every workflow with every matrix combination (make test runs the first combination of each).
workflow-steps: venv tools
	WORKFLOW_STEPS_FULL=1 $(PY) -m pytest -q -s tests/test_workflow_steps.py

# -- config hardening: the stack-config fuzz pass --
.PHONY: fuzz-config
# CASES mutated stack files (structural, provider namespaces, values the services refuse) judged as accepted,
# rejected naming the key, or a finding; ROOT=<checkout> runs another checkout's code (figures before a change).
fuzz-config: venv
	PYTHONPATH=$(or $(ROOT),$(CURDIR)) $(PY) tests/fuzz_stack_config.py --cases $(or $(CASES),600) $(if $(ROOT),--root $(ROOT))

# -- drill --
.PHONY: drill drill-short
# The paths end to end with real Prometheus and Alertmanager (shipped rules and config), a synthetic akidb-rest,
# PagerDuty/Slack stand-ins and the runbook webhook on moto (infra/tools/drill); report in build/drill/.
drill: venv tools
	$(PY) -m infra.tools.drill --scenarios all
# The subset `make test` runs (tests/test_drill.py), with 10 s scrape/evaluation and without waiting for resolves.
drill-short: venv tools
	$(PY) -m infra.tools.drill --scenarios short --scrape-interval 10 --evaluation-interval 10 --no-resolve

# -- prometheus values --
.PHONY: check-prometheus-values
# A kube-prometheus-stack values file against what the shipped rules need (retention, scrape and evaluation
# intervals, derived from the definitions): make check-prometheus-values VALUES=docs/kube-prometheus-stack-values.yaml
check-prometheus-values: venv
	$(PY) -m infra.tools.check_prometheus_values $(or $(VALUES),$(error VALUES=<kube-prometheus-stack values.yaml> is required))

# -- slo --
.PHONY: slo-properties
# Anyone's SLOs (tests/slo_specs.py: 1-5 services, 1-4 SLOs each, 90%..99.999%, 7/28/30 days): a larger budget
# than the suite's two small examples. make slo-properties SLO_PROPERTY_EXAMPLES=100
SLO_PROPERTY_EXAMPLES ?= 25
slo-properties: venv
	SLO_PROPERTY_EXAMPLES=$(SLO_PROPERTY_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/test_slo_properties.py
.PHONY: slo-guard-band
# The quickest page against bursts of 0.8/0.9/1.1/1.2 x its budget share (new bad series, shifted phases).
slo-guard-band: venv
	$(PY) -m infra.slo.guard_band
