"""The policy pack (policy/, `pulumi preview --policy-pack policy/`) in exactly the environment the workflows build.

- The venv: `python -m venv` + `pip install --no-compile -r policy/requirements.txt`, as the workflows' policy-venv
  action does on a miss of its cache (preview.yml, pulumi-up.yml, drift.yml) (here in
  build/policy-venv/<sha256-12 of the file and the command>/, reused while both are unchanged).
- The start: the CLI runs `pulumi-analyzer-policy-python <engine> . -virtualenv=venv` in the pack's folder; that
  script (pulumi/pulumi sdk/python/dist/pulumi-analyzer-policy-python) puts the venv's bin first on PATH, unsets
  PYTHONHOME and runs `<venv>/bin/python -u -m pulumi.policy <engine> .`, which runs policy/__main__.py; the pack
  prints its gRPC port (pulumi_policy.policy.PolicyPack) and the engine dials it.
- The engine's side: the Analyzer service through the SDK's own stubs (pulumi.runtime.proto), the calls the CLI
  makes (pulumi/pulumi sdk/go/common/resource/plugin/analyzer_plugin.go: Handshake, ConfigureStack,
  GetAnalyzerInfo, GetPluginInfo, AnalyzeStack), each planned resource as an AnalyzerResource whose properties
  are a protobuf Struct (archives as the engine marshals them), on the real offline plans of both stacks.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.config import PROJECT
from infra.core.files import exclusive
from infra.core.paths import BUILD_DIR, ROOT
from infra.offline.plan import PlanResult
from infra.offline.preview import PreviewResult, run_preview
from infra.plan.model import UNKNOWN, UNKNOWN_SECRET
from infra.validation import PLAN_ONLY, Plan, PlannedResource, load_rules, validate

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers

RULES = load_rules()  # fills PLAN_ONLY too

PACK_DIR = ROOT / "policy"
REQUIREMENTS = PACK_DIR / "requirements.txt"
VENVS = BUILD_DIR / "policy-venv"
START_TIMEOUT_S = 120
# The engine's encoding of archives, assets and secrets in a property map (pulumi/pulumi
# sdk/go/common/resource/properties.go).
SIG_KEY, ARCHIVE_SIG, ASSET_SIG, SECRET_SIG = ("4dabf18193072939515e22adb298388d", "0def7320c3a5731c473e5ecbe6d01bc7",
                                               "c44067f5952c0a294b673a41bacd8c17", "1b47061264138c4ac30d75fd1eb44270")
REDACTED = "[secret]"  # what the offline plan records for a secret input (infra/offline/mocks.py)
# The engine's value for anything unknown at a preview (KeepUnknowns; pulumi_policy.proxy.UNKNOWN_STRING_VALUE).
ENGINE_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# The checkout a pack needs (its code, the project's packages, the generated rules): copied for the import check.
SOURCE_TREES = ("infra", "lambdas", "policy", "rules")


# The workflows' pip command for the pack's venv (checked against their policy-venv action below).
PIP_INSTALL = ("install", "--quiet", "--no-compile", "-r")
# Where the workflows build the pack's venv (on a miss of its cache): the one place that holds the commands.
POLICY_VENV_ACTION = ROOT / ".github" / "actions" / "policy-venv" / "action.yml"


def requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + " ".join(PIP_INSTALL).encode()).hexdigest()[:12]


def _clean_env() -> dict[str, str]:
    """This machine's environment without what the test session adds (CI sets neither)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def pack_venv() -> Path:
    """The workflows' venv for the pack, built once per content of policy/requirements.txt on this machine."""
    venv = VENVS / requirements_digest()
    done = venv / ".complete"
    with exclusive(VENVS / f".{venv.name}.lock"):
        if done.exists():
            print(f"\npolicy pack venv: warm ({venv.relative_to(ROOT)})")
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that died half way
        started = time.monotonic()
        # Exactly the workflows' two commands (`python` there is the runner's Python, here this session's base).
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env())
        subprocess.run([str(venv / "bin" / "pip"), *PIP_INSTALL, str(REQUIREMENTS)], check=True,
                       env=_clean_env(), stdin=subprocess.DEVNULL)
        done.write_text(REQUIREMENTS.read_text())
        print(f"\npolicy pack venv: cold build {time.monotonic() - started:.1f} s ({venv.relative_to(ROOT)})")
        return venv


def test_the_venv_is_built_with_the_workflows_own_command() -> None:
    """pack_venv builds what the workflows and `make policy-venv` build: their policy-venv action runs exactly these
    two commands, the Makefile the same pip command, and every workflow that runs the pack takes its venv from that
    action, never from commands of its own."""
    command = f"policy/venv/bin/pip {' '.join(PIP_INSTALL)} policy/requirements.txt"
    steps = yaml.safe_load(POLICY_VENV_ACTION.read_text())["runs"]["steps"]
    builds = [str(s["run"]).strip().splitlines() for s in steps if "pip" in str(s.get("run", ""))]
    assert builds == [["python -m venv policy/venv", command]], f"{POLICY_VENV_ACTION.name}: not `{command}`"
    # `make policy-venv` (a local `pulumi preview --policy-pack`) builds it the same way.
    recipe = (ROOT / "Makefile").read_text().split("\npolicy/venv/.installed:", 1)[1].split("\n\n", 1)[0]
    assert command in recipe, f"make policy-venv does not run `{command}`"
    packs = [p for p in (ROOT / ".github" / "workflows").glob("*.yml") if "--policy-pack" in p.read_text()]
    assert {p.name for p in packs} >= {"preview.yml", "pulumi-up.yml", "drift.yml"}
    for path in packs:
        text = path.read_text()
        assert "uses: ./.github/actions/policy-venv" in text, f"{path.name} runs the pack without its venv action"
        assert "policy/venv/bin/pip" not in text and "-m venv policy/venv" not in text, (
            f"{path.name} builds the pack's venv itself: use ./.github/actions/policy-venv (cached)")


class PackDidNotStart(RuntimeError):
    pass


@dataclass
class RunningPack:
    stub: analyzer_pb2_grpc.AnalyzerStub
    start_seconds: float


@contextmanager
def started_pack(venv: Path, stack: str, pack_dir: Path = PACK_DIR) -> Iterator[RunningPack]:
    """The pack as the CLI starts it for `pulumi preview --stack <stack> --policy-pack <pack_dir>`."""
    env = _clean_env()
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    # constructEnv (analyzer_plugin.go): the stack the engine runs; the pack reads its config from Pulumi.<stack>.yaml.
    env.update(PULUMI_ORGANIZATION="organization", PULUMI_PROJECT=PROJECT, PULUMI_STACK=stack, PULUMI_DRY_RUN="true")
    # The engine address is only dialled by the pack's log calls; nothing listens here, as nothing needs to.
    engine = "127.0.0.1:1"
    started = time.monotonic()
    proc = subprocess.Popen([str(venv / "bin" / "python"), "-u", "-m", "pulumi.policy", engine, "."], cwd=pack_dir,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    channel = None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise PackDidNotStart(f"the pack printed {line!r} instead of its port; stderr:\n{err.decode()[-4000:]}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield RunningPack(analyzer_pb2_grpc.AnalyzerStub(channel), time.monotonic() - started)
    finally:
        if channel is not None:
            channel.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# ---- the engine's side ----

def _value(value: Any) -> Any:
    """A planned input as the engine marshals it: archives and assets (recorded as {"path": ...}) and secrets by
    signature, values unknown at preview as the engine's unknown."""
    if isinstance(value, dict):
        if set(value) == {"path"} and isinstance(value["path"], str):
            is_archive = value["path"].endswith(".zip") or Path(value["path"]).is_dir()
            return {SIG_KEY: ARCHIVE_SIG if is_archive else ASSET_SIG, "path": value["path"]}
        return {k: _value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v) for v in value]
    if value == REDACTED:
        return {SIG_KEY: SECRET_SIG, "value": value}
    if value == UNKNOWN:
        return ENGINE_UNKNOWN
    if value == UNKNOWN_SECRET:  # a secret whose value is not known yet (a key PagerDuty picks at create)
        return {SIG_KEY: SECRET_SIG, "value": ENGINE_UNKNOWN}
    return value


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(_value(props))
    return out


def analyzer_resources(resources: list[PlannedResource], stack: str) -> list[analyzer_pb2.AnalyzerResource]:
    """The planned resources (and the stack) as AnalyzeStack's request carries them after the update: inputs and
    outputs as one property map, parent and provider by URN."""
    stack_urn = f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"
    # A plan names parents by logical name; only those names must be unique (Pulumi allows one logical name for
    # resources of different types: a metric filter and its alarm).
    parents = {r.parent for r in resources if r.parent}
    urn_of: dict[str, str] = {}
    for r in resources:
        if r.name in parents and urn_of.setdefault(r.name, r.urn) != r.urn:
            raise ValueError(f"two planned resources are named {r.name!r}: parents by name are ambiguous")
    providers = {r.name: r for r in resources if r.type.startswith("pulumi:providers:")}
    out = [analyzer_pb2.AnalyzerResource(type="pulumi:pulumi:Stack", urn=stack_urn, name=f"{PROJECT}-{stack}",
                                         properties=_struct({}))]
    for r in resources:
        res = analyzer_pb2.AnalyzerResource(type=r.type, urn=r.urn, name=r.name,
                                            properties=_struct(dict(r.outputs, **r.inputs)),
                                            parent=urn_of[r.parent] if r.parent else stack_urn)
        if r.provider:
            p = providers[r.provider]
            res.provider.CopyFrom(analyzer_pb2.AnalyzerProviderResource(type=p.type, urn=p.urn, name=p.name,
                                                                        properties=_struct(p.inputs)))
        out.append(res)
    return out


def engine_session(pack: RunningPack, stack: str) -> analyzer_pb2.AnalyzerInfo:
    """What the CLI asks a policy pack before any resource: handshake, stack, policies, plugin version."""
    try:
        pack.stub.Handshake(analyzer_pb2.AnalyzerHandshakeRequest(engine_address="127.0.0.1:1",
                                                                  root_directory=str(PACK_DIR),
                                                                  program_directory=str(PACK_DIR)), timeout=30)
    except grpc.RpcError as err:  # the CLI falls back to the plain start when a pack has no Handshake
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED, err
    pack.stub.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(stack=stack, project=PROJECT,
                                                                        organization="organization"), timeout=30)
    info = pack.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert pack.stub.GetPluginInfo(empty_pb2.Empty(), timeout=30).version
    return info


Found = list[tuple[str, str, str]]  # (policy, urn or "", message)


def analyze_stack(pack: RunningPack, resources: list[PlannedResource], stack: str) -> tuple[Found, float]:
    started = time.monotonic()
    response = pack.stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(
        resources=analyzer_resources(resources, stack)), timeout=300)
    seconds = time.monotonic() - started
    assert {n.policy_name: n.reason for n in response.not_applicable} == {
        name: f"runs in `make plan` only: {reason}" for name, reason in PLAN_ONLY.items()}
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in response.diagnostics), response.diagnostics
    # The SDK puts the policy's description before the rule's message (pulumi_policy's report_violation).
    return sorted((d.policyName, d.urn, d.message.removeprefix(f"{d.description}\n"))
                  for d in response.diagnostics), seconds


def offline_findings(plan: Plan) -> Found:
    """What `make plan` reports for `plan`, as the pack reports it (rules it runs only, URN when a resource)."""
    urn_of = {r.label: r.urn for r in plan.resources}
    return sorted((v.rule, urn_of.get(v.resource, ""),
                   v.message if v.resource in urn_of else f"{v.resource}: {v.message}")
                  for v in validate(plan) if v.rule not in PLAN_ONLY)


# ---- the tests ----

@pytest.fixture(scope="module")
def venv() -> Path:
    return pack_venv()


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_rule_passes_on_the_real_plans_in_the_packs_own_venv(venv: Path, planned: dict[str, PlanResult],
                                                                    stack: str) -> None:
    """As one `pulumi up` of the stack: one pack process, AnalyzeStack on the preview (a first one: every computed
    output unknown) and again after the update (everything known)."""
    result, preview = planned[stack], _first_preview(stack)
    assert result.violations == [] and preview.config is not None
    preview_plan = Plan(resources=preview.resources, config=preview.config)
    assert any(UNKNOWN in json.dumps(r.inputs) for r in preview.resources), "a first preview has unknown inputs"
    with started_pack(venv, stack) as pack:
        info = engine_session(pack, stack)
        # Every registered rule, a module added later included; the plan-only ones say so, with their reason.
        assert sorted(p.name for p in info.policies) == sorted(RULES)
        assert info.name == "akidb-observability-rules" and all(p.description for p in info.policies)
        assert all(name in info.description for name in PLAN_ONLY)
        at_preview, preview_seconds = analyze_stack(pack, preview.resources, stack)
        after_update, seconds = analyze_stack(pack, result.resources, stack)
        print(f"\npolicy pack {stack}: started in {pack.start_seconds:.1f} s, AnalyzeStack of "
              f"{len(result.resources)} resources in {preview_seconds:.1f} s (preview), {seconds:.1f} s (update)")
    assert at_preview == offline_findings(preview_plan) == []
    assert after_update == []


def _first_preview(stack: str) -> PreviewResult:
    return run_preview(stack, offline_secrets=True)


def _without_one_edge_alarm(result: PlanResult) -> tuple[list[PlannedResource], PlannedResource]:
    """The plan less the first p95 latency alarm on the edge namespace (edge_regions_covered requires it)."""
    namespace = result.plan.config.emf_edge.namespace if result.plan else None
    alarms = [r for r in result.resources if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"
              and r.inputs.get("namespace") == namespace and r.inputs.get("extendedStatistic") == "p95"]
    assert alarms, f"the plan has no p95 alarm on {namespace}"
    return [r for r in result.resources if r is not alarms[0]], alarms[0]


def test_a_broken_plan_gives_the_violations_make_plan_gives(venv: Path, planned: dict[str, PlanResult],
                                                             tmp_path: Path) -> None:
    result = planned["staging"]
    assert result.plan is not None
    resources, removed = _without_one_edge_alarm(result)
    # A function whose zip was not built by infra.artifacts.packaging: the pack must see the engine's archive.
    handmade = tmp_path / "handmade.zip"
    with zipfile.ZipFile(handmade, "w") as zf:
        zf.writestr("index.py", "def handler(event, context):\n    return None\n")
    fn = next(r for r in result.resources if r.type == "aws:lambda/function:Function")
    resources.append(replace(fn, urn=fn.urn.rsplit("::", 1)[0] + "::handmade", name="handmade",
                             inputs={**fn.inputs, "code": {"path": str(handmade)}}))
    # And a resource on the ambient default provider with a list value: the engine hands lists as proxies.
    provider = PlannedResource(urn=f"urn:pulumi:staging::{PROJECT}::pulumi:providers:aws::default_7_51_1",
                               type="pulumi:providers:aws", name="default_7_51_1", parent=None, region="us-east-1",
                               inputs={"region": "us-east-1"}, custom=True)
    stray = PlannedResource(urn=f"urn:pulumi:staging::{PROJECT}::aws:sns/topic:Topic::stray",
                            type="aws:sns/topic:Topic", name="stray", parent=None, region="us-east-1",
                            inputs={"name": "stray", "tags": {"Service": "akidb"}}, custom=True,
                            provider=provider.name)
    resources += [provider, stray]
    expected = offline_findings(replace(result.plan, resources=resources))
    assert ("edge_regions_covered", "", f"{removed.region}: no alarm on {result.plan.config.emf_edge.namespace} "
            "InferenceLatency (p95)") in expected
    assert {"explicit_providers", "encryption_at_rest"} <= {rule for rule, urn, _ in expected if urn == stray.urn}
    assert any(rule == "lambda_packages" and str(handmade) in message for rule, _, message in expected)
    with started_pack(venv, "staging") as pack:
        engine_session(pack, "staging")
        found, _ = analyze_stack(pack, resources, "staging")
    assert found == expected


def test_a_rule_module_importing_what_the_pack_lacks_stops_the_pack(venv: Path, tmp_path: Path) -> None:
    """A checkout whose rule modules include one importing numpy (the model's runtime) does not start in the pack's
    venv: the check the tests above make of every registered rule would fail on it."""
    for name in SOURCE_TREES:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "venv", "*.pyc"))
    for stack_file in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(stack_file, tmp_path / stack_file.name)
    (tmp_path / "infra" / "validation" / "zz_heavy.py").write_text(
        '"""A rule that needs the model\'s runtime at import (written by tests/test_policy_pack.py)."""\n'
        "import numpy\n\nfrom infra.validation import rule\n\n\n@rule\ndef heavy(plan):\n"
        "    return [] if numpy.zeros(1).any() else []\n")
    with pytest.raises(PackDidNotStart, match="No module named 'numpy'"), \
            started_pack(venv, "staging", pack_dir=tmp_path / "policy"):
        pass


def _is_plan_only(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "plan_only") or \
        (isinstance(target, ast.Attribute) and target.attr == "plan_only")


def function_imports(source: str) -> list[str]:
    """The import statements inside the functions of a rule module, except inside `@plan_only` rules (the only
    place an import may need more than the pack's venv). Module-level imports are checked by the pack's start."""
    found: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not any(_is_plan_only(d) for d in child.decorator_list):
                    visit(child, True)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                if in_function:
                    found.append(ast.unparse(child))
            else:
                visit(child, in_function)

    visit(ast.parse(source), False)
    return found


def failing_in_pack_venv(venv: Path, statements: list[str]) -> dict[str, str]:
    """Each import statement run by the pack venv's Python from the checkout: the ones that fail, with the error."""
    script = ("import json, sys\nfailed = {}\nfor statement in json.load(sys.stdin):\n    try:\n"
              "        exec(statement, {})\n    except Exception as err:\n"
              "        failed[statement] = f'{type(err).__name__}: {err}'\nprint(json.dumps(failed))\n")
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", script], input=json.dumps(statements), cwd=ROOT,
                          env=_clean_env(), capture_output=True, text=True, check=True)
    failed: dict[str, str] = json.loads(proc.stdout.splitlines()[-1])
    return failed


def test_imports_inside_rules_resolve_in_the_packs_venv(venv: Path) -> None:
    """A rule body runs only on the plans that reach it: its imports are checked whatever the plan."""
    statements = [s for path in sorted((ROOT / "infra" / "validation").glob("*.py"))
                  for s in function_imports(path.read_text())]
    assert failing_in_pack_venv(venv, statements) == {}


def test_the_import_check_finds_a_rule_body_importing_the_models_runtime(venv: Path) -> None:
    source = ("from infra.validation import plan_only, rule\n\n"
              "@rule\ndef light(plan):\n    import numpy\n    return []\n\n"
              "@rule\n@plan_only('needs the model')\ndef heavy(plan):\n    import onnxruntime\n    return []\n")
    assert function_imports(source) == ["import numpy"]
    assert failing_in_pack_venv(venv, function_imports(source)) == {
        "import numpy": "ModuleNotFoundError: No module named 'numpy'"}


def test_plan_only_rules_are_listed_with_their_reason() -> None:
    assert set(PLAN_ONLY) <= set(RULES)
    doc = (ROOT / "docs" / "policy-pack.md").read_text()
    listed = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert listed == set(PLAN_ONLY), "docs/policy-pack.md's table lists the @plan_only rules"
    for name, reason in PLAN_ONLY.items():
        assert reason.strip() and name in doc


def test_pack_manifest_and_pins_agree_with_pyproject() -> None:
    manifest = (PACK_DIR / "PulumiPolicy.yaml").read_text()
    assert "name: python" in manifest and "virtualenv: venv" in manifest
    pins = dict(line.split("==") for line in REQUIREMENTS.read_text().splitlines()
                if line and not line.startswith("#"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    declared_pins = dict(d.split("==") for d in declared if "==" in d)
    shared = {name: version for name, version in pins.items() if name in declared_pins}
    assert {"pulumi", "pulumi-aws", "pulumi-kubernetes"} <= set(shared)
    assert shared == {name: declared_pins[name] for name in shared}, "policy/requirements.txt vs pyproject.toml"

