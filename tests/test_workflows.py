"""The GitHub workflows: schema-valid, zizmor-clean (offline), node24 actions, the pinned CLI, kubeconfig,
the policy pack; and requirements.txt (what `pulumi install` reads) in step with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import ROOT
from infra.offline import requirements

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
BIN = Path(sys.executable).parent
# The first major of each action that runs on node24 (node20 is removed from runners on 2026-09-23).
NODE24_MAJOR = {
    "actions/checkout": 5, "actions/setup-python": 6, "actions/cache": 5, "actions/github-script": 8,
    "aws-actions/configure-aws-credentials": 6, "pulumi/actions": 7,
}


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing from the venv: it is pinned in pyproject.toml's dev extras"
    return str(path)


def _load(path: Path) -> dict[Any, Any]:
    return dict(yaml.safe_load(path.read_text()))


def _steps(doc: dict[Any, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    if "runs" in doc:  # composite action
        out += [("action", {}, s) for s in doc["runs"]["steps"]]
    for name, job in (doc.get("jobs") or {}).items():
        out += [(name, job, s) for s in job.get("steps", [])]
    return out


def test_workflows_match_the_github_schemas() -> None:
    assert WORKFLOWS and ACTIONS
    for schema, files in (("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", ACTIONS)):
        proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_offline() -> None:
    proc = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(ROOT / ".github")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_action_runs_on_node24() -> None:
    for path in [*WORKFLOWS, *ACTIONS]:
        for _, _, step in _steps(_load(path)):
            uses = step.get("uses")
            if not uses or uses.startswith("./"):
                continue
            action, _, ref = uses.partition("@")
            assert action in NODE24_MAJOR, f"{path.name}: {uses} is not a known node24 action"
            major = re.fullmatch(r"v(\d+)(?:\.\d+)*", ref)
            assert major and int(major.group(1)) >= NODE24_MAJOR[action], f"{path.name}: {uses} runs on node20"


def test_one_pinned_pulumi_cli() -> None:
    version = (ROOT / ".pulumi-version").read_text().strip()
    sdk = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("pulumi=="))
    assert sdk == f"pulumi=={version}", "the CLI and the Python SDK are released together: keep them equal"
    installs = [s for p in [*WORKFLOWS, *ACTIONS] for _, _, s in _steps(_load(p))
                if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert installs and all(s.get("with", {}).get("pulumi-version-file") == ".pulumi-version" for s in installs)
    assert all("command" not in s.get("with", {}) for s in installs), "the CLI is run by `run:` steps"
    assert f"Pulumi CLI {version}" in (ROOT / "README.md").read_text()


def test_jobs_that_run_the_program_get_a_kubeconfig_and_the_policy_pack() -> None:
    for path in WORKFLOWS:
        for name, job in (_load(path).get("jobs") or {}).items():
            runs = [str(s.get("run", "")) for s in job.get("steps", [])]
            program = [r for r in runs if re.search(r"pulumi (preview|up|refresh)\b", r)]
            for run in program:
                before = runs[:runs.index(run) + 1]
                assert any("aws eks update-kubeconfig" in r for r in before), f"{path.name}:{name} has no kubeconfig"
                if re.search(r"pulumi (preview|up)\b", run):
                    assert "--policy-pack policy/" in run, f"{path.name}:{name} runs without the policy pack"


def test_least_privilege_permissions() -> None:
    for path in WORKFLOWS:
        doc = _load(path)
        assert doc.get("permissions") == {}, f"{path.name}: grant permissions per job, none at the top"
        for name, job in doc["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{path.name}:{name} has no explicit permissions"
            text = yaml.safe_dump(job)
            uses_oidc = any(k in text for k in ("configure-aws-credentials", "oidc-token", "uses: ./.github/workflows"))
            assert (perms.get("id-token") == "write") == uses_oidc, f"{path.name}:{name} id-token"
            assert set(perms.values()) <= {"read", "write"} and perms.get("contents") == "read"


def test_requirements_txt_is_generated_from_pyproject() -> None:
    assert (ROOT / "requirements.txt").read_text() == requirements.render(), (
        "requirements.txt drifted from pyproject.toml: run `python -m infra.offline.requirements`")
    rendered = requirements.render()
    for extra in requirements.PROGRAM_EXTRAS:
        for pin in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra]:
            assert pin in rendered.splitlines(), f"`pulumi install` misses {pin} (extra {extra})"
    assert "torch" not in rendered, "the program never imports torch; `pulumi install` must not download it"
    pulumi_yaml = _load(ROOT / "Pulumi.yaml")
    assert pulumi_yaml["runtime"]["options"]["toolchain"] == "pip"
