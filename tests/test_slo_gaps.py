"""Gaps in the data are not recoveries: the generated gap cases fail on the rules without the hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from infra.core.paths import RULES_DIR
from infra.slo.rules import SLO_FILE
from infra.slo.spec import BURN_ALERT

HOLD = "or on(service, slo) (\n"


def _promtool_test(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", "test", "rules", str(root / "tests" / "gaps.test.yml")],
                          capture_output=True, text=True, timeout=300, check=False)


def test_without_the_hold_a_page_resolves_in_the_gap(tmp_path: Path) -> None:
    for sub in ("prometheus", "tests"):
        shutil.copytree(RULES_DIR / sub, tmp_path / sub)
    doc = yaml.safe_load((tmp_path / "prometheus" / SLO_FILE).read_text())
    burns = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == BURN_ALERT]
    assert burns and all(HOLD in r["expr"] for r in burns)
    for rule in burns:
        rule["expr"] = rule["expr"].split(HOLD)[0]
    (tmp_path / "prometheus" / SLO_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))
    run = _promtool_test(tmp_path)
    assert run.returncode != 0
    out = run.stdout + run.stderr
    # The held cases fail (fewer firing evaluations than the gap's); the bounded ones pass either way.
    assert out.count("expr: \"count_over_time(") == out.count("expr: ") > 0, out
