"""plan.json is byte-identical for the same config: reviewed as a diff, compared by `make plan-diff`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from infra.core.paths import BUILD_DIR, ROOT
from infra.offline.plan import PlanResult, plan_document, plan_text


def test_two_plans_of_the_same_config_have_the_same_bytes(planned: dict[str, PlanResult]) -> None:
    # The second run is another process with another hash seed: set and dict order must not leak into the file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG")} | {"PYTHONHASHSEED": "12345"}
    proc = subprocess.run([sys.executable, "-m", "infra.offline.plan", "--stack", "staging", "--offline-secrets"],
                          cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = (BUILD_DIR / "staging" / "plan.json").read_text()
    assert written == plan_text(plan_document(planned["staging"]))


def test_plan_is_sorted_and_portable(planned: dict[str, PlanResult]) -> None:
    text = plan_text(plan_document(planned["prod"]))
    doc = json.loads(text)
    urns = [r["urn"] for r in doc["resources"]]
    assert urns == sorted(urns) and len(set(urns)) == len(urns)
    assert str(ROOT) not in text, "an absolute checkout path would differ between two clones"
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
