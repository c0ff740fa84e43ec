"""The GitHub workflows: schema-valid, zizmor-clean (offline), node24 actions, the pinned CLI, kubeconfig,
the policy pack; and requirements.txt (what `pulumi install` reads) in step with pyproject.toml."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import yaml
from workflow_sim import base_python, evaluate, expression_functions, to_str

from infra.artifacts.packaging import runtime_python
from infra.core.paths import ROOT
from infra.offline import requirements

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
POLICY_VENV = "./.github/actions/policy-venv"  # the one place that builds the policy pack's venv (cached)
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
            steps = job.get("steps", [])
            runs = [str(s.get("run", "")) for s in steps]
            for i, run in enumerate(runs):
                if not re.search(r"pulumi (preview|up|refresh)\b", run):
                    continue
                assert any("aws eks update-kubeconfig" in r for r in runs[:i + 1]), (
                    f"{path.name}:{name} has no kubeconfig")
                if re.search(r"pulumi (preview|up)\b", run):
                    assert "--policy-pack policy/" in run, f"{path.name}:{name} runs without the policy pack"
                if "--policy-pack" in run:
                    # The pack's venv (cached) comes first, from the one action that builds it, after setup.
                    uses = [str(s.get("uses", "")) for s in steps[:i]]
                    assert POLICY_VENV in uses, f"{path.name}:{name} runs the pack before {POLICY_VENV}"
                    assert "./.github/actions/setup" in uses[:uses.index(POLICY_VENV)], (
                        f"{path.name}:{name}: {POLICY_VENV} needs setup's Python first")


def _policy_venv_steps(action: Path = ROOT / POLICY_VENV / "action.yml",
                       ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The policy-venv action's steps, and among them: the one whose outputs the key reads (the Python version),
    the cache, the build."""
    steps = _load(action)["runs"]["steps"]
    caches = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    builds = [s for s in steps if "pip" in str(s.get("run", ""))]
    assert len(caches) == 1, f"{POLICY_VENV}: {len(caches)} actions/cache steps, not one for policy/venv"
    assert len(builds) == 1, f"{POLICY_VENV}: {len(builds)} build steps"
    (cache,), (build,) = caches, builds
    refs = set(re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs", str(cache["with"]["key"])))
    versions = [s for s in steps if s.get("id") in refs]
    assert len(versions) == 1, f"{POLICY_VENV}: the key reads the outputs of {sorted(refs)}, not of one step"
    return steps, versions[0], cache, build


def test_the_policy_pack_venv_is_cached_and_built_on_a_miss_only() -> None:
    steps, version, cache, build = _policy_venv_steps()
    assert steps.index(version) < steps.index(cache) < steps.index(build)
    setup_cache = next(s for s in _load(ROOT / ".github" / "actions" / "setup" / "action.yml")["runs"]["steps"]
                       if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["uses"] == setup_cache["uses"], "one pin of actions/cache in the repository"
    assert str(cache["with"]["path"]).split() == ["policy/venv"]
    # Built only when the cache missed (`cache-hit` is empty then, not 'false': actions/cache README).
    assert re.fullmatch(rf"steps\.{re.escape(cache['id'])}\.outputs\.cache-hit != 'true'", str(build["if"]).strip())


def _pack_venv_key(ws: Path, python: str | None = None, runner_os: str = "Linux") -> str:
    """The key the policy-venv action of the checkout `ws` computes (see _cache_key)."""
    _, version, cache, _ = _policy_venv_steps(ws / POLICY_VENV / "action.yml")
    return _cache_key(ws, version, cache, python, runner_os)


def _cache_key(ws: Path, version: dict[str, Any], cache: dict[str, Any], python: str | None = None,
               runner_os: str = "Linux") -> str:
    """The key an action's cache step computes in the checkout `ws`: the step whose outputs it reads (`version`) run
    for real by `python` (setup-python's, this session's base interpreter, unless another is given), then the key
    evaluated as the runner evaluates it (hashFiles over `ws`)."""
    bin_dir, out = ws.parent / f"bin-{uuid.uuid4().hex[:8]}", ws.parent / "github-output"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(python or base_python())
    out.write_text("")
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", str(version["run"])], cwd=ws, check=True,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_OUTPUT": str(out)})
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    ctx: dict[str, Any] = {"runner": {"os": runner_os}, "steps": {version["id"]: {"outputs": outputs}}}
    return to_str(evaluate(cache["with"]["key"], ctx, expression_functions(ctx, ws)))


def test_the_policy_pack_venv_key_changes_with_what_the_venv_is_built_from(tmp_path: Path) -> None:
    """A change of the requirements, of the build commands, of the Python or of the OS is a new key (a miss, so a
    rebuild); the checkout here holds only the requirements and the action, so the key hashes nothing else."""
    ws = tmp_path / "ws"
    action, req = ws / POLICY_VENV / "action.yml", ws / "policy" / "requirements.txt"
    for f in (action, req):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes((ROOT / f.relative_to(ws)).read_bytes())
    key = _pack_venv_key(ws)
    assert key == _pack_venv_key(ws), "the key is not reproducible"
    assert _pack_venv_key(ws, runner_os="macOS") != key, "the key does not follow the runner's OS"
    assert _pack_venv_key(ws, python=runtime_python()) != key, "the key does not follow the Python version"
    original = req.read_text()
    req.write_text(original + "six==1.17.0\n")
    assert _pack_venv_key(ws) != key, "the key does not follow policy/requirements.txt"
    req.write_text(original)
    assert _pack_venv_key(ws) == key
    text = action.read_text()
    assert text.count("--no-compile -r policy/requirements.txt") == 1
    action.write_text(text.replace("--no-compile -r policy/requirements.txt", "-r policy/requirements.txt"))
    assert _pack_venv_key(ws) != key, "the key does not follow the install command"


def test_the_setup_venv_key_follows_the_python_version_it_is_built_with(tmp_path: Path) -> None:
    """The setup action's cache restores .venv, whose python links to setup-python's interpreter of that exact
    version: a runner image with another patch version must miss (a restored venv would not start, and its stamps
    would stop `make venv` rebuilding it)."""
    setup = Path(".github") / "actions" / "setup" / "action.yml"
    steps = _load(ROOT / setup)["runs"]["steps"]
    (cache,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    assert ".venv" in str(cache["with"]["path"]).split()
    refs = set(re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs", str(cache["with"]["key"])))
    (version,) = [s for s in steps if s.get("id") in refs]
    assert steps.index(version) < steps.index(cache)
    ws = tmp_path / "ws"
    for rel in (setup, *(Path(p) for p in re.findall(r"'([^']+)'", str(cache["with"]["key"])))):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes((ROOT / rel).read_bytes())
    key = _cache_key(ws, version, cache)
    assert key == _cache_key(ws, version, cache), "the key is not reproducible"
    assert _cache_key(ws, version, cache, python=runtime_python()) != key, "the key does not follow the Python"
    assert platform.python_version() in key


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
