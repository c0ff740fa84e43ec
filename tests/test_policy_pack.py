"""The policy pack (policy/, `pulumi preview --policy-pack policy/`) runs the rules the offline plan runs.

The pack is loaded with the real pulumi-policy SDK; the engine's resources are built as the SDK's own
PolicyResource objects (what the analyzer hands a StackValidationPolicy)."""

from __future__ import annotations

import importlib.util
import re
import runpy
import subprocess
import sys
import tomllib
from types import ModuleType
from typing import Any

import pulumi_policy
import pytest
from pulumi_policy import EnforcementLevel, PolicyResource, PolicyResourceOptions, StackValidationArgs
from pulumi_policy.policy import PolicyProviderResource
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from infra.config import PROJECT
from infra.core.paths import ROOT
from infra.offline.plan import PlanResult
from infra.validation import Plan, PlannedResource, _known, load_rules, validate

PACK_DIR = ROOT / "policy"


def _pack_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("akidb_policy_pack", PACK_DIR / "__main__.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_registers_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}

    def fake_pack(**kwargs: Any) -> None:  # the real one starts the analyzer's gRPC server and blocks
        captured.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(PACK_DIR / "__main__.py"), run_name="__main__")
    policies = captured["policies"]
    assert all(isinstance(p, pulumi_policy.StackValidationPolicy) for p in policies)
    assert sorted(p.name for p in policies) == sorted(load_rules())
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY and p.description for p in policies)
    assert re.fullmatch(r"[a-zA-Z0-9._-]+", captured["name"])


def test_pack_manifest_and_pins_agree_with_pyproject() -> None:
    manifest = (PACK_DIR / "PulumiPolicy.yaml").read_text()
    assert "name: python" in manifest
    pins = dict(line.split("==") for line in (PACK_DIR / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    declared_pins = dict(d.split("==") for d in declared if "==" in d)
    for name, version in pins.items():
        if name in declared_pins:
            assert declared_pins[name] == version, f"policy/requirements.txt pins {name}=={version}"
    assert declared_pins["pulumi-policy"] == pins["pulumi-policy"]


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=None, additional_secret_outputs=[])  # type: ignore[arg-type]


def _engine_resources(resources: list[PlannedResource], stack: str) -> list[PolicyResource]:
    """The offline plan's resources as the engine's analyzer would hand them to the pack."""
    stack_res = PolicyResource("pulumi:pulumi:Stack", {}, f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::"
                               f"{PROJECT}-{stack}", f"{PROJECT}-{stack}", _options(), None, None, [], {})
    by_name: dict[str, PolicyResource] = {}
    providers = {r.name: PolicyProviderResource(r.type, r.inputs, r.urn, r.name)
                 for r in resources if r.type.startswith("pulumi:providers:")}
    out = [stack_res]
    for r in resources:
        res = PolicyResource(r.type, dict(r.outputs, **r.inputs), r.urn, r.name, _options(),
                             providers.get(r.provider) if r.provider else None, None, [], {})
        by_name[r.name] = res
        out.append(res)
    for r, res in zip(resources, out[1:], strict=True):
        res.parent = by_name.get(r.parent) if r.parent else stack_res
    return out


def _run_pack(module: ModuleType, resources: list[PolicyResource]) -> list[tuple[str, str, str | None]]:
    reported: list[tuple[str, str, str | None]] = []
    for policy in module.policies():
        policy.validate(StackValidationArgs(resources),
                        lambda message, urn=None, name=policy.name: reported.append((name, message, urn)))
    return reported


@pytest.fixture(scope="module")
def staging(planned: dict[str, PlanResult]) -> PlanResult:
    return planned["staging"]


def test_clean_stack_is_clean_in_both_runners(staging: PlanResult) -> None:
    assert staging.violations == []
    reported = _run_pack(_pack_module(), _engine_resources(staging.resources, "staging"))
    assert reported == []


def test_violating_resource_is_reported_by_both_runners(staging: PlanResult) -> None:
    # An unencrypted topic on the ambient default provider: `explicit_providers` and `encryption_at_rest`.
    bad = PlannedResource(urn=f"urn:pulumi:staging::{PROJECT}::aws:sns/topic:Topic::stray", type="aws:sns/topic:Topic",
                          name="stray", parent=None, region="us-east-1", inputs={"name": "stray"}, custom=True,
                          provider="default_7_51_1")
    default_provider = PlannedResource(
        urn=f"urn:pulumi:staging::{PROJECT}::pulumi:providers:aws::default_7_51_1", type="pulumi:providers:aws",
        name="default_7_51_1", parent=None, region="us-east-1", inputs={"region": "us-east-1"}, custom=True)
    resources = [*staging.resources, default_provider, bad]

    urn_of = {bad.label: bad.urn, default_provider.label: default_provider.urn}
    offline = validate(Plan(resources=resources, config=staging.plan.config))
    assert {v.resource for v in offline} <= set(urn_of)
    assert "explicit_providers" in {v.rule for v in offline if v.resource == bad.label}

    reported = _run_pack(_pack_module(), _engine_resources(resources, "staging"))
    assert sorted((name, urn) for name, _, urn in reported) == sorted((v.rule, urn_of[v.resource]) for v in offline)
    for v in offline:
        assert any(name == v.rule and v.message in message for name, message, _ in reported), v


def test_unknown_values_at_preview_become_none() -> None:
    props = unknown_checking_proxy({"name": "a", "arn": UNKNOWN_STRING_VALUE, "tags": {"x": UNKNOWN_STRING_VALUE}})
    assert _known(props) == {"name": "a", "arn": None, "tags": {"x": None}}



def test_pack_serves_the_analyzer_protocol_the_engine_speaks() -> None:
    """Started as the CLI starts a Python pack (`python policy/`, port on stdout), then asked over gRPC."""
    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    proc = subprocess.Popen([sys.executable, str(PACK_DIR)], cwd=PACK_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().strip())  # type: ignore[union-attr]
        stub = analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
        assert sorted(p.name for p in info.policies) == sorted(load_rules())

        stack_urn = f"urn:pulumi:staging::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-staging"
        provider_urn = f"urn:pulumi:staging::{PROJECT}::pulumi:providers:aws::default_7_51_1"
        topic_urn = f"urn:pulumi:staging::{PROJECT}::aws:sns/topic:Topic::stray"

        def props(values: dict[str, Any]) -> struct_pb2.Struct:
            out = struct_pb2.Struct()
            out.update(values)
            return out

        provider = analyzer_pb2.AnalyzerProviderResource(type="pulumi:providers:aws", urn=provider_urn,
                                                         name="default_7_51_1", properties=props({}))
        request = analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type="pulumi:pulumi:Stack", urn=stack_urn, name=f"{PROJECT}-staging",
                                          properties=props({})),
            analyzer_pb2.AnalyzerResource(type="aws:sns/topic:Topic", urn=topic_urn, name="stray", parent=stack_urn,
                                          properties=props({"name": "akidb-stray"}), provider=provider),
        ])
        response = stub.AnalyzeStack(request, timeout=120)
        found = {(d.policyName, d.urn) for d in response.diagnostics}
        assert ("explicit_providers", topic_urn) in found, found
        assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in response.diagnostics)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
