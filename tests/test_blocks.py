"""The building blocks (infra/blocks): every function and bucket of both stacks is made by one, the same way."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
from dataclasses import is_dataclass
from pathlib import Path

import infra.components
from infra.artifacts.packaging import LambdaPackage, read_package
from infra.core.paths import ROOT
from infra.offline.plan import PlanResult
from infra.plan.model import Plan, PlannedResource

STACKS = ("staging", "prod")
FUNCTION = "aws:lambda/function:Function"
BUCKET = "aws:s3/bucket:Bucket"


def _package_of(plan: Plan, fn: PlannedResource) -> LambdaPackage:
    code = fn.inputs.get("code")
    if isinstance(code, dict):
        pkg = read_package(code.get("path"))
    else:  # uploaded through S3: the object whose key the function names
        obj = next(o for o in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
                   if o.inputs.get("key") == fn.inputs.get("s3Key"))
        pkg = read_package(obj.inputs["source"]["path"])
    assert pkg is not None, f"{fn.label}: no built package behind its code"
    return pkg


def test_runtime_and_architecture_come_from_the_package(planned: dict[str, PlanResult]) -> None:
    for stack in STACKS:
        plan = planned[stack].plan
        functions = plan.of_type(FUNCTION)
        assert functions
        for fn in functions:
            pkg = _package_of(plan, fn)
            assert fn.inputs["runtime"] == pkg.runtime, fn.label
            assert fn.inputs["architectures"] == [pkg.architecture], fn.label


def test_each_function_writes_only_its_own_retained_log_groups(planned: dict[str, PlanResult]) -> None:
    for stack in STACKS:
        plan = planned[stack].plan
        policies = {p.inputs["role"]: json.loads(p.inputs["policy"])
                    for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")}
        groups = {(g.region, g.inputs["name"]): g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
        for fn in plan.of_type(FUNCTION):
            role_name = fn.inputs["role"].rsplit("/", 1)[-1]
            statements = policies[role_name]["Statement"]
            logs = [s for s in statements if "logs:PutLogEvents" in s["Action"]]
            assert len(logs) == 1, fn.label
            for arn in logs[0]["Resource"]:
                _, _, _, region, _, rest = arn.split(":", 5)
                name = rest.removeprefix("log-group:").removesuffix(":*")
                assert fn.inputs["name"] in name, f"{fn.label} may write {arn}"
                group = groups.get((region, name))
                assert group is not None, f"{fn.label}: no log group {name} in {region} (Lambda would make one)"
                assert group.inputs["retentionInDays"] > 0


def test_every_bucket_is_private_encrypted_versioned_and_tls_only(planned: dict[str, PlanResult]) -> None:
    for stack in STACKS:
        plan = planned[stack].plan
        buckets = plan.of_type(BUCKET)
        assert buckets
        for bucket in buckets:
            name = bucket.inputs["bucket"]

            def of(token: str, bucket_name: str = name, in_plan: Plan = plan) -> list[PlannedResource]:
                return [r for r in in_plan.of_type(token) if r.inputs.get("bucket") == bucket_name]

            assert bucket.inputs.get("forceDestroy", False) is (not plan.config.protect_stateful), bucket.label
            [sse] = of("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
            algorithm = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
            assert algorithm in ("AES256", "aws:kms")
            [versioning] = of("aws:s3/bucketVersioning:BucketVersioning")
            assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
            [block] = of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
            assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                                         "ignorePublicAcls", "restrictPublicBuckets"))
            [policy] = of("aws:s3/bucketPolicy:BucketPolicy")
            [deny] = [s for s in json.loads(policy.inputs["policy"])["Statement"] if s["Effect"] == "Deny"]
            assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]


def _calls(path: Path) -> set[str]:
    """Dotted names of everything called in a module (`aws.lambda_.Function`, ...)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                out.add(".".join([func.id, *reversed(parts)]))
    return out


def test_functions_roles_log_groups_and_bucket_hardening_are_written_once() -> None:
    """Only the blocks create these; a component that needs one uses the block."""
    owners: dict[str, str] = {
        "aws.lambda_.Function": "infra/blocks/function.py",
        "aws.s3.BucketPublicAccessBlock": "infra/blocks/bucket.py",
        "aws.s3.BucketServerSideEncryptionConfiguration": "infra/blocks/bucket.py",
        "aws.s3.BucketVersioning": "infra/blocks/bucket.py",
        "aws.s3.BucketPolicy": "infra/blocks/bucket.py",
    }
    callers: dict[str, set[str]] = {name: set() for name in owners}
    for path in sorted((ROOT / "infra").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in _calls(path) & set(owners):
            callers[name].add(rel)
    for name, owner in owners.items():
        assert callers[name] == {owner}, f"{name} created outside {owner}: {sorted(callers[name])}"


def test_component_types_are_the_exported_tokens(planned: dict[str, PlanResult]) -> None:
    """Each component module exports its type token and an Args dataclass; validation reads the tokens."""
    tokens = {}
    for mod in pkgutil.iter_modules(infra.components.__path__):
        module = importlib.import_module(f"infra.components.{mod.name}")
        if hasattr(module, "TOKEN"):
            tokens[module.TOKEN] = module
            assert any(name.endswith("Args") and is_dataclass(getattr(module, name)) for name in dir(module)), mod.name
    for stack in STACKS:
        components = {r.type for r in planned[stack].resources if not r.custom}
        assert components and components <= set(tokens), components - set(tokens)


def test_every_log_group_uses_its_regions_stack_key(planned: dict[str, PlanResult]) -> None:
    import dataclasses

    from infra.validation.foundation import encryption_at_rest

    for stack in STACKS:
        plan = planned[stack].plan
        keys = {k.region: k.outputs.get("arn") for k in plan.of_type("aws:kms/key:Key")
                if "alert topics and log groups" in str(k.inputs.get("description"))}
        groups = plan.of_type("aws:cloudwatch/logGroup:LogGroup")
        assert groups
        for group in groups:
            assert group.inputs.get("kmsKeyId") == keys[group.region], group.label
        bare = dataclasses.replace(plan, resources=[
            dataclasses.replace(r, inputs={k: v for k, v in r.inputs.items() if k != "kmsKeyId"})
            if r is groups[0] else r for r in plan.resources])
        assert [v.resource for v in encryption_at_rest(bare)] == [groups[0].label]
