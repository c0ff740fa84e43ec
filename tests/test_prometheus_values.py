"""`python -m infra.tools.check_prometheus_values`: the example values pass, the chart's defaults fail on
retention, a too-long scrape interval fails, garbage exits 2, and the bounds follow the definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.core.paths import ROOT
from infra.slo.spec import SLO_FILE, duration_seconds, load_slos
from infra.slo.symptoms import SYMPTOMS_FILE
from infra.tools.check_prometheus_values import (
    CHART_DEFAULTS,
    format_duration,
    shipped_requirements,
)

EXAMPLE = ROOT / "docs" / "kube-prometheus-stack-values.yaml"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The command the user runs (python -m ...), from the worktree root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "infra.tools.check_prometheus_values", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def write_values(tmp_path: Path, spec: dict[str, str]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"prometheus": {"prometheusSpec": spec}}), encoding="utf-8")
    return path


def test_example_values_pass() -> None:
    out = run(EXAMPLE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout


def test_chart_defaults_fail_naming_retention(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    out = run(empty)
    assert out.returncode == 1, out.stdout + out.stderr
    longest = max(s.window_days for s in load_slos()) * 86400
    assert duration_seconds(CHART_DEFAULTS["retention"]) < longest  # the premise: the chart cuts the budget
    assert "prometheus.prometheusSpec.retention" in out.stderr
    assert f"{CHART_DEFAULTS['retention']} (chart default)" in out.stderr


def test_too_long_scrape_interval_fails(tmp_path: Path) -> None:
    req = shipped_requirements()
    spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["prometheus"]["prometheusSpec"]
    spec["scrapeInterval"] = format_duration(req.max_scrape * 2)
    out = run(write_values(tmp_path, spec))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "scrapeInterval" in out.stderr and "retention" not in out.stderr


@pytest.mark.parametrize("text, expected", [
    ("prometheus: [unclosed\n", "not valid YAML"),
    ("- a list\n- not a mapping\n", "YAML mapping"),
])
def test_garbage_exits_2_with_a_clear_message(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    out = run(path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    out = run(tmp_path / "nope.yaml")
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr


def test_bad_duration_is_named(tmp_path: Path) -> None:
    out = run(write_values(tmp_path, {"retention": "35 days"}))
    assert out.returncode == 1 and "retention" in out.stderr and "Prometheus duration" in out.stderr


def test_a_longer_slo_window_raises_the_required_retention(tmp_path: Path) -> None:
    """Derived, not copied: lengthen every SLO's period in a copy of the definitions."""
    before = shipped_requirements()
    longest_days = max(s.window_days for s in load_slos())
    longer = longest_days + 30
    docs = list(yaml.safe_load_all(SLO_FILE.read_text(encoding="utf-8")))
    for doc in docs:
        for tw in doc["spec"]["timeWindow"]:
            tw["duration"] = f"{longer}d"
    slos = tmp_path / "slos.yaml"
    slos.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    after = shipped_requirements(slos, SYMPTOMS_FILE)
    assert after.min_retention - before.min_retention == (longer - longest_days) * 86400
    # the example's retention covers the shipped window but not the longer one
    assert run(EXAMPLE, "--slos", slos).returncode == 1


def test_retention_size_is_reported_and_checked(tmp_path: Path) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["prometheus"]["prometheusSpec"]
    out = run(write_values(tmp_path, {**spec, "retentionSize": "100GiB"}))
    assert out.returncode == 0 and "retentionSize = 100GiB" in out.stdout
    out = run(write_values(tmp_path, {**spec, "retentionSize": "lots"}))
    assert out.returncode == 1 and "not a size like" in out.stderr
