"""Rendered dashboards under dashboards/: exactly what the plan deploys, checked in so reviewers see a change.

`make generate` (infra/offline/generate.py) plans every stack offline and writes the CloudWatch bodies and Grafana
JSON found in the plan; `--check` only compares and exits 1 on drift (the test does the same).
Reading them back from the plan, not re-rendering them, guarantees the files show what `pulumi up` sends,
alarm names and account ids included. A file identical in every stack is written once (dashboards/<kind>/),
otherwise per stack (dashboards/<stack>/<kind>/).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.core.paths import DASHBOARDS_DIR
from infra.plan.model import Plan
from infra.plan.types import DASHBOARD
from infra.validation.dashboards import grafana_config_maps


def _pretty(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def plan_dashboards(plan: Plan) -> dict[str, dict[str, Any]]:
    """{"cloudwatch/<name>.json" | "grafana/<key>.json": parsed JSON} of one planned stack."""
    out: dict[str, dict[str, Any]] = {}
    for dash in plan.of_type(DASHBOARD):
        out[f"cloudwatch/{dash.inputs['dashboardName']}.json"] = json.loads(dash.inputs["dashboardBody"])
    for cm in grafana_config_maps(plan):
        for key, text in (cm.inputs.get("data") or {}).items():
            out[f"grafana/{key}"] = json.loads(text)
    return out


def expected_files(plans: Mapping[str, Plan]) -> dict[str, str]:
    """Relative path under dashboards/ -> file text, for every stack."""
    per_stack = {stack: {k: _pretty(v) for k, v in plan_dashboards(plan).items()} for stack, plan in plans.items()}
    names = sorted({n for files in per_stack.values() for n in files})
    out: dict[str, str] = {}
    for name in names:
        texts = {stack: files.get(name) for stack, files in per_stack.items()}
        if len(set(texts.values())) == 1 and None not in texts.values():
            out[name] = next(iter(texts.values()))  # type: ignore[assignment]
            continue
        for stack, text in texts.items():
            if text is not None:
                out[f"{stack}/{name}"] = text
    return out


def on_disk(root: Path = DASHBOARDS_DIR) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.json"))}


def drift(expected: Mapping[str, str], actual: Mapping[str, str], folder: str = "dashboards") -> list[str]:
    out = [f"missing: {folder}/{n}" for n in sorted(set(expected) - set(actual))]
    out += [f"stale (no longer generated): {folder}/{n}" for n in sorted(set(actual) - set(expected))]
    out += [f"differs: {folder}/{n}" for n in sorted(set(expected) & set(actual)) if expected[n] != actual[n]]
    return out


def write(expected: Mapping[str, str], root: Path = DASHBOARDS_DIR) -> list[str]:
    for path in root.rglob("*.json"):
        if str(path.relative_to(root)) not in expected:
            path.unlink()
    for name, text in expected.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return sorted(expected)
