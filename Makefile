# The two commands a fresh machine needs: `make plan` (offline plan of the staging stack) and `make test`.
# Both set up what they need: the venv and its packages, and the Debian tools (promtool, amtool).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
STACK ?= staging
VENV ?= .venv
PY := $(VENV)/bin/python
BOOTSTRAP_PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The Go tools (promtool, prometheus, alertmanager, amtool) collect garbage 4x less often: promtool's rule tests and
# replays are allocation-bound (rules/tests: 57 -> 50 s CPU, an incident replay 13.4 -> 11.7 s; memory 120 -> 250
# MB at most). Go's GOGC (pkg.go.dev/runtime, "Environment Variables"); a value set by the caller wins.
export GOGC ?= 400

.PHONY: help venv plan-venv tools plan plan-all package test lint generate docs clean

help:  ## this list: every target and what it does (the text after `##` on its rule line)
	@echo "Usage: make <target> [STACK=staging|prod] (a target's rule line says what it does after its ##)"
	@awk -F':[^#]*## ' '/^[a-zA-Z0-9][a-zA-Z0-9_.-]*:[^=#]*## / {printf "  %-26s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# `make plan`'s packages only: the program's, the model build's and the plan validation's (pyproject.toml extras
# model-build, plan), installed by uv (measured: 5 s, where pip took 75 s for the same set: uv downloads and
# unpacks in parallel). The project itself is not installed: commands run from here. --compile-bytecode, as pip
# does by default: where PYTHONDONTWRITEBYTECODE is set (this machine), Python would otherwise compile the ~500
# SDK modules a plan imports on every run (+2.5 s of each `make plan`); it costs ~15 s once, in parallel.
UV_VERSION := 0.13.8
# Long steps say what they do before and how long they took after (STEP / DONE).
STEP = @mkdir -p $(dir $@); echo "==> $(1)"; date +%s > $@.started
DONE = @echo "    done in $$(( $$(date +%s) - $$(cat $@.started) )) s"; rm -f $@.started
$(VENV)/.plan-installed: pyproject.toml
	$(call STEP,installing make plan's packages into $(VENV) (uv; about 45 s the first time))
	@$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) </dev/null
	@$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r pyproject.toml --extra model-build \
	  --extra plan </dev/null
	$(DONE)
	@touch $@

# Everything else `make test` needs (dev: pytest, moto, torch for the edge model's reference...), with uv too: it
# compiles the bytecode on every core, where pip compiles one file at a time (a fresh clone's `make test` on 2
# cores: this step 49 s with uv, 108 s with pip, both caches warm). uv does not read pip's configuration, so the
# find-links pip is given (PIP_FIND_LINKS: where a machine keeps torch's CPU wheel) are passed on; the packages are
# the same versions pip picks (`uv pip freeze` of both venvs compared).
UV_FIND_LINKS = $(foreach d,$(PIP_FIND_LINKS),--find-links $(d))
$(VENV)/.installed: $(VENV)/.plan-installed pyproject.toml
	$(call STEP,installing the test and development packages into $(VENV) (uv; about 2 minutes the first time))
	@$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) $(UV_FIND_LINKS) \
	  -e '.[dev,model-build,plan]' </dev/null
	$(DONE)
	@touch $@

venv: $(VENV)/.installed  ## the full dev environment in .venv (VENV=...): make test's packages
plan-venv: $(VENV)/.plan-installed  ## only `make plan`'s packages in .venv (uv; about 45 s the first time)

# promtool (prometheus 2.42) and amtool (alertmanager 0.25) from Debian; installed once.
tools:  ## promtool and amtool from Debian (installed once)
	@if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then \
	  echo "==> installing promtool and amtool (Debian packages prometheus, prometheus-alertmanager)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager </dev/null >/dev/null; \
	fi
	@promtool --version 2>&1 | head -1; amtool --version 2>&1 | head -1

# Plan, first preview and cost in one job (infra/offline/job.py): SDKs imported once, the preview forked beside
# the plan.
plan: plan-venv tools  ## offline plan, first preview and cost estimate of STACK (default staging): the main job
	$(PY) -m infra.offline.job --stack $(STACK) --offline-secrets

plan-all: plan-venv tools  ## `make plan` for staging and prod in one job
	$(PY) -m infra.offline.job --stack staging --stack prod --offline-secrets

package: venv  ## build the Lambda zips of STACK and print their sizes against the AWS limits
	$(PY) -m infra.offline.package --stack $(STACK) --rebuild

lint: venv  ## ruff over the repository
	$(PY) -m ruff check .

# One pytest worker per core plus one (TEST_WORKERS=1 for a serial run): many tests wait on daemons, subprocesses
# and rule timings, and the extra worker runs while they wait. --dist loadfile keeps a module and its fixtures
# (daemons, plans) on one worker; tests/conftest.py hands out the long modules first. Measured from a fresh clone on
# 2 quiet cores: 3 workers 572 s, 2 workers 721 s (the tests' CPU is ~1,060 s since the cuts of stop 37; at ~1,500 s
# a third worker did not pay: 757 s against 740 s). --durations: the 20 slowest steps, in every CI log.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) + 1 )))
test: venv tools  ## ruff, then every test on every core, plus one worker (installs what it needs)
	$(PY) -m ruff check .
	@echo "==> every test on $(TEST_WORKERS) workers (pytest prints the total)"
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# Every checked-in generated artifact at once: rules/ (from rules/slos.yaml and rules/symptoms.yaml), dashboards/
# (from the plans), the config reference page (docs/configuration.md). `make rules`, `make dashboards`, `make docs` do one part each.
generate: venv tools edge-model  ## rewrite every checked-in generated file (rules/, dashboards/, config reference, module map, runbook pages)
	@echo "==> planning every stack and rewriting the generated files"; start=$$(date +%s); \
	  $(PY) -m infra.offline.generate; echo "    done in $$(( $$(date +%s) - start )) s"

docs: venv  ## rewrite the generated config reference only
	$(PY) -m infra.offline.generate docs

clean:  ## remove build/ (plans, caches, zips, models)
	rm -rf build

# ---- component targets (one block per component; keep each in its own block) ----
# -- xray --
.PHONY: xray-test xray-smoke
XRAY_DAEMON ?= xray-daemon.observability.svc.cluster.local:2000
XRAY_REGION ?= us-east-1
xray-test: venv  ## the tracing tests only
	$(PY) -m pytest -q tests/test_xray_plan.py tests/test_xray_rules.py tests/test_xray_smoke.py
# Post-deploy: one segment over UDP in the daemon protocol, then found with GetTraceSummaries (run in-cluster).
xray-smoke: venv  ## post-deploy: send one segment to the X-Ray daemon and find it again (run in the cluster)
	$(PY) -m infra.tools.xray_smoke --daemon $(XRAY_DAEMON) --region $(XRAY_REGION)
# -- emf-edge --
.PHONY: edge-model bench-edge
# The slow first-run steps, in parallel: fetch the weights, write all-MiniLM-L6-v2 as ONNX and quantise it (cached
# in build/models by its inputs' hash) while every function's wheels are downloaded (build/cache/deps, by content).
edge-model: plan-venv  ## export and quantise the edge model, download every function's wheels (cached, slow the first time)
	$(PY) -m infra.offline.package --model-only
# The edge function against sentence-transformers in one process: the source of the edge figures (docs/performance.md).
bench-edge: venv edge-model  ## the edge function against sentence-transformers: the edge figures
	$(PY) -m benchmarks.bench_edge
test: edge-model
plan: edge-model
plan-all: edge-model
package: edge-model
# -- anomaly --
.PHONY: anomaly-test bench-anomaly bench-detector
anomaly-test: venv  ## the anomaly detection tests only
	$(PY) -m pytest tests/test_anomaly*.py -q

# NAB standard-profile scoring of the streaming detector on shared/nab-dev (not part of `make test`): per-file
# and total dev score, the threshold curve, the parameter sweep and the production view at the shipped threshold;
# then the leave-one-family-out table (issue 28): every choice made on four families, the fifth scored with it, over
# the candidates the docs quote (--calibrated: the shipped set is among them) with each one alone.
NAB_DATA ?= ../shared/nab-dev
bench-anomaly: venv  ## NAB standard-profile scoring of the detector on NAB_DATA, and the trainer's validation report
	$(PY) -m benchmarks.run_nab --data $(NAB_DATA) --rescore --sweep
	$(PY) -m benchmarks.lofo --data $(NAB_DATA) --calibrated --alone --jobs 2
	$(PY) -m benchmarks.fit_report --data $(NAB_DATA)
# One 5-minute cycle of the fanned-out detector (dispatcher + one invocation per batch, up to the mapping's maximum
# concurrency at once) from the built zips against a moto server: wall time, invocations, memory, monthly cost.
# BENCH_METRICS=400 for a quick look; `make test` runs 50 metrics (tests/test_anomaly_fanout.py).
BENCH_METRICS ?= 10000
bench-detector: venv  ## one detector cycle at 10,000 metrics against moto: wall time, invocations, memory, cost
	$(PY) -m benchmarks.bench_detector --metrics $(BENCH_METRICS)
# -- slo-alerting --
.PHONY: rules slo-check slo-replay slo-test
# Regenerate rules/prometheus, rules/alertmanager and rules/tests from rules/slos.yaml and rules/symptoms.yaml
# (never edit them by hand); part of `make generate`.
rules: venv  ## rewrite rules/ from rules/slos.yaml and rules/symptoms.yaml
	$(PY) -m infra.offline.generate rules
# What `make test` runs through pytest (tests/test_slo_rules.py), for humans: promtool and amtool on the files.
slo-check: tools  ## promtool and amtool on the checked-in rules and Alertmanager configs
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
# MTTD / noise replays through promtool, ours and the plan's rules, and the healthy month's alert budget through
# every rule (prints the table; ~10 min of promtool CPU; the suite replays a week of it).
slo-replay: venv tools  ## MTTD replays of ours and the plan's rules, and a healthy month through every rule (about 10 min)
	$(PY) -m infra.slo.replay
slo-test: venv tools  ## the SLO alerting tests only
	$(PY) -m pytest -q tests/test_slo_rules.py tests/test_slo_alerting.py tests/test_slo_replay.py tests/test_slo_replay_long.py \
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
plan-diff: venv tools  ## what `pulumi preview --diff` would show for this change (AGAINST=REF or PLAN=FILE; default: merge base with main)
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
checkov: venv $(CHECKOV_VENV)/.installed  ## checkov's Kubernetes checks on STACK's planned objects (own venv)
	$(PY) -m infra.offline.manifests --stack $(STACK)
	$(CHECKOV_VENV)/bin/checkov -d build/$(STACK)/manifests --framework kubernetes --compact --quiet
# `pulumi import` lines, from config, for the resources a destroy keeps (retainOnDelete, skipDestroy, protect).
import-retained: venv tools  ## `pulumi import` lines for what a destroy of STACK leaves behind
	$(PY) -m infra.offline.retained --stack $(STACK)
# requirements.txt (read by `pulumi install`) from pyproject.toml.
requirements: venv  ## rewrite requirements.txt (read by `pulumi install`) from pyproject.toml
	$(PY) -m infra.offline.requirements
plan-diff import-retained: edge-model
# -- the stack watching itself: probes, alerting path, cost, restore drill --
.PHONY: cost dr-drill watch-test
# Monthly cost estimate of the last plan of STACK (per component and type; exit 1 above costWatch.ceilingUsd).
cost: venv  ## monthly cost estimate of STACK's last plan (exit 1 above costWatch.ceilingUsd)
	@test -f build/$(STACK)/plan.json || $(PY) -m infra.offline.plan --stack $(STACK) --offline-secrets >/dev/null
	$(PY) -m infra.offline.cost_report --stack $(STACK)
# Delete the detector's band/state and a model in a versioned bucket (moto), restore them, check it resumes.
dr-drill: venv  ## delete and restore the detector's state and a model on moto, check the detector resumes
	$(PY) -m infra.tools.dr_drill
watch-test: venv  ## the tests of the probes, the alerting path, the cost watch and the restore drill
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
paths: venv edge-model  ## every signal of both stacks to the person it reaches, and the dead ends (exit 1 on one)
	$(PY) -m infra.tools.signal_paths_report --stack staging --stack prod

# -- policy pack --
.PHONY: policy-venv policy-test
# The pack's own venv where the CLI looks for it (PulumiPolicy.yaml: virtualenv: venv), built as the workflows build
# it: for a local `pulumi preview --policy-pack policy/`.
policy/venv/.installed: policy/requirements.txt
	rm -rf policy/venv
	$(BOOTSTRAP_PYTHON) -m venv policy/venv
	policy/venv/bin/pip install --quiet --no-compile -r policy/requirements.txt </dev/null
	touch $@
policy-venv: policy/venv/.installed  ## the policy pack's own venv (policy/venv), for a local `pulumi preview --policy-pack policy/`
# The pack started as the CLI starts it, in that venv (built in build/policy-venv/<hash>), on both stacks' plans.
policy-test: venv tools edge-model  ## the policy pack run as the CLI runs it, on both stacks' plans
	$(PY) -m pytest -q -s tests/test_policy_pack.py

# -- workflows: every workflow job offline, deploy markers --
.PHONY: workflow-steps
# Every job of every workflow with every matrix combination (make test runs the first combination of each).
workflow-steps: venv tools  ## every job of every workflow with every matrix combination, offline
	WORKFLOW_STEPS_FULL=1 $(PY) -m pytest -q -s tests/test_workflow_steps.py

# -- config hardening: the stack-config fuzz pass --
.PHONY: fuzz-config
# CASES mutated stack files (structural, provider namespaces, values the services refuse) judged as accepted,
# rejected naming the key, or a finding; ROOT=<checkout> runs another checkout's code (figures before a change).
fuzz-config: venv  ## CASES mutated stack files judged accepted, rejected naming the key, or a finding
	PYTHONPATH=$(or $(ROOT),$(CURDIR)) $(PY) tests/fuzz_stack_config.py --cases $(or $(CASES),600) $(if $(ROOT),--root $(ROOT))

# -- drill --
.PHONY: drill drill-short
# The paths end to end with real Prometheus and Alertmanager (shipped rules and config), a synthetic akidb-rest,
# PagerDuty/Slack stand-ins and the runbook webhook on moto (infra/tools/drill); report in build/drill/.
drill: venv tools  ## the signal paths end to end with real Prometheus and Alertmanager; report in build/drill/
	$(PY) -m infra.tools.drill --scenarios all
# The subset `make test` runs (tests/test_drill.py), with 10 s scrape/evaluation and without waiting for resolves.
drill-short: venv tools  ## the drill subset `make test` runs
	$(PY) -m infra.tools.drill --scenarios short --scrape-interval 5 --evaluation-interval 5 --no-resolve

# -- prometheus values --
.PHONY: check-prometheus-values
# A kube-prometheus-stack values file against what the shipped rules need (retention, scrape and evaluation
# intervals, derived from the definitions): make check-prometheus-values VALUES=docs/kube-prometheus-stack-values.yaml
check-prometheus-values: venv  ## check a kube-prometheus-stack values file (VALUES=...) against what the rules need
	$(PY) -m infra.tools.check_prometheus_values $(or $(VALUES),$(error VALUES=<kube-prometheus-stack values.yaml> is required))

# -- coverage --
# Expected firings of every CloudWatch alarm of both plans in a healthy week (seeded; docs/coverage.md); fails at
# the plan's 10 alerts a week.
.PHONY: alarm-noise
alarm-noise: venv tools edge-model  ## expected firings of every CloudWatch alarm of both plans in a healthy week (budget 10)
	$(PY) -m infra.offline.alarm_noise --verbose

# -- once --
.PHONY: exactly-once
# Every fault interleaving of the runbook webhook and worker, the anomaly detector's batches and the trainer (a
# throttled call, or the time running out, before each AWS call of a run; then redeliveries), from the built zips
# against moto server: each effect exactly once. `make test` runs a subset (tests/test_exactly_once.py
# suite_indexes, tests/zip_env.py fault_positions).
exactly-once: venv  ## every fault interleaving of the runbook, detector and trainer functions: each side effect exactly once
	EXACTLY_ONCE_ALL=1 $(PY) -m pytest -q -s tests/test_exactly_once.py tests/test_anomaly_fanout.py \
	  tests/test_anomaly_trainer_zip.py

# -- slo --
.PHONY: slo-properties
# Anyone's SLOs (tests/slo_specs.py: 1-5 services, 1-4 SLOs each, 90%..99.999%, 7/28/30 days): a larger budget
# than the suite's one example. make slo-properties SLO_PROPERTY_EXAMPLES=100
SLO_PROPERTY_EXAMPLES ?= 25
slo-properties: venv  ## the SLO property test with a larger budget (SLO_PROPERTY_EXAMPLES, default 25)
	SLO_PROPERTY_EXAMPLES=$(SLO_PROPERTY_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/test_slo_properties.py
.PHONY: slo-guard-band
# The quickest page against bursts of 0.8/0.9/1.1/1.2 x its budget share (jittered 30 s scrapes, new bad series,
# shifted phases; asserted by tests/test_slo_guard_band.py), and its MTTD next to Sloth's default page (about 1 min).
slo-guard-band: venv tools  ## the quickest page against bursts of 0.8/0.9/1.1/1.2x its budget share, and its MTTD next to Sloth's
	$(PY) -m infra.slo.guard_band
