"""Lambda@Edge restrictions (CloudFront "Restrictions on Lambda@Edge") and the EMF/alarm consistency check.

Mocks accept any Lambda configuration; AWS refuses to replicate a function with environment variables, layers,
a VPC, active tracing, arm64, a DLQ or provisioned concurrency, and CloudFront only takes a numbered version
from us-east-1. The alarm check runs the packaged handler (its baked settings, the real model) on sample events
in each alarm's region and requires every alarm to name a (namespace, metric, dimensions) it really emits.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infra.artifacts.packaging import read_package
from infra.components import emf_edge
from infra.plan.model import UNKNOWN
from infra.plan.types import FUNCTION
from infra.plan.types import METRIC_ALARM as ALARM
from infra.validation import Plan, PlannedResource, Violation, plan_only, rule

EDGE_REGION = "us-east-1"
EDGE_TOKEN = emf_edge.TOKEN
ORIGIN_MAX_MEMORY_MB = 10240
ORIGIN_MAX_TIMEOUT_S = 30
EDGE_PRINCIPALS = {"lambda.amazonaws.com", "edgelambda.amazonaws.com"}
# (metric, statistic) pairs every edge region must alarm on.
REQUIRED_ALARMS = {("InferenceLatency", "p95"), ("InferenceLatency", "Average"), ("ErrorCount", "Sum"),
                   ("CacheHit", "Sum")}

MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]  # (namespace, metric, sorted dimensions)

def _is_role(role: PlannedResource, role_arn: Any) -> bool:
    """`role_arn` names `role`: its ARN output, or (at a preview, where a new role has no ARN yet) its name."""
    if role.outputs.get("arn") == role_arn:
        return True
    name = role.inputs.get("name")
    return isinstance(role_arn, str) and ":role/" in role_arn and bool(name) and role_arn.rsplit("/", 1)[-1] == name


def _trusted_services(plan: Plan, role_arn: Any) -> set[str] | None:
    for role in plan.of_type("aws:iam/role:Role"):
        if _is_role(role, role_arn):
            doc = json.loads(role.inputs.get("assumeRolePolicy") or "{}")
            found: set[str] = set()
            for stmt in doc.get("Statement", []):
                if stmt.get("Effect") == "Allow" and "sts:AssumeRole" in str(stmt.get("Action")):
                    services = (stmt.get("Principal") or {}).get("Service", [])
                    found |= set([services] if isinstance(services, str) else services)
            return found
    return None


def _associated_arns(plan: Plan) -> set[str]:
    arns: set[str] = set()
    for dist in plan.of_type("aws:cloudfront/distribution:Distribution"):
        behaviours = [dist.inputs.get("defaultCacheBehavior") or {}, *(dist.inputs.get("orderedCacheBehaviors") or [])]
        for b in behaviours:
            arns |= {str(a.get("lambdaArn")) for a in b.get("lambdaFunctionAssociations") or []}
    return arns


def edge_functions(plan: Plan) -> list[PlannedResource]:
    """Functions that run at the edge: children of the emf-edge component or attached to a distribution."""
    components = {r.name for r in plan.of_type(EDGE_TOKEN)}
    associated = _associated_arns(plan)
    return [fn for fn in plan.of_type(FUNCTION)
            if fn.parent in components or fn.outputs.get("qualifiedArn") in associated]


def _package_path(fn: PlannedResource) -> Path | None:
    code = fn.inputs.get("code")
    return Path(code["path"]) if isinstance(code, dict) and code.get("path") else None


@rule
def edge_function_restrictions(plan: Plan) -> Iterator[Violation]:
    for fn in edge_functions(plan):
        i = fn.inputs
        problems: list[str] = []
        if fn.region != EDGE_REGION:
            problems.append(f"created in {fn.region}; Lambda@Edge functions must be in {EDGE_REGION}")
        for key, what in (("environment", "environment variables"), ("layers", "layers"),
                          ("vpcConfig", "a VPC"), ("deadLetterConfig", "a dead-letter queue"),
                          ("fileSystemConfig", "EFS"), ("imageUri", "a container image")):
            if i.get(key):
                problems.append(f"{what} ({key}) are not supported by Lambda@Edge")
        if (i.get("tracingConfig") or {}).get("mode") == "Active":
            problems.append("X-Ray active tracing is not supported by Lambda@Edge; propagate X-Amzn-Trace-Id")
        if i.get("packageType", "Zip") != "Zip":
            problems.append(f"packageType {i.get('packageType')}; Lambda@Edge takes zip packages only")
        if (i.get("architectures") or ["x86_64"]) != ["x86_64"]:
            problems.append(f"architectures {i.get('architectures')}; Lambda@Edge runs x86_64 only")
        memory, timeout = int(i.get("memorySize") or 128), int(i.get("timeout") or 3)
        if not 128 <= memory <= ORIGIN_MAX_MEMORY_MB:
            problems.append(f"memorySize {memory}; origin-request functions allow 128..{ORIGIN_MAX_MEMORY_MB} MB")
        if not 1 <= timeout <= ORIGIN_MAX_TIMEOUT_S:
            problems.append(f"timeout {timeout}; origin-request functions allow 1..{ORIGIN_MAX_TIMEOUT_S} s")
        if i.get("publish") is not True:
            problems.append("publish must be true: CloudFront attaches a numbered version, never $LATEST")
        if i.get("skipDestroy") is not True:
            problems.append("skipDestroy must be true: replicas outlive the association, so a destroy would fail")
        # A new role's ARN is unknown at a preview: its trust is checked once known (make plan, after `pulumi up`).
        trusted = None if i.get("role") == UNKNOWN else _trusted_services(plan, i.get("role"))
        if i.get("role") != UNKNOWN and (trusted is None or not trusted >= EDGE_PRINCIPALS):
            problems.append(f"role must trust {sorted(EDGE_PRINCIPALS)}; it trusts {sorted(trusted or [])}")
        path = _package_path(fn)
        pkg = read_package(path)
        if pkg is not None and pkg.kind != "edge-origin":
            problems.append(f"package built as {pkg.kind!r}; build it as 'edge-origin' (50 MB compressed limit)")
        name = i.get("name")
        for pc in plan.of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"):
            if pc.inputs.get("functionName") in (name, fn.outputs.get("arn")):
                problems.append(f"{pc.label}: provisioned concurrency is not supported by Lambda@Edge")
        for p in problems:
            yield Violation("edge_function_restrictions", fn.label, p)


def _alarm_metrics(alarm: PlannedResource) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, statistic) of every metric an alarm reads."""
    i = alarm.inputs
    if i.get("metricName"):
        stat = i.get("extendedStatistic") or i.get("statistic") or ""
        return [(str(i.get("namespace")), str(i["metricName"]), dict(i.get("dimensions") or {}), str(stat))]
    out = []
    for q in i.get("metricQueries") or []:
        m = q.get("metric")
        if m:
            out.append((str(m.get("namespace")), str(m.get("metricName")), dict(m.get("dimensions") or {}),
                        str(m.get("stat"))))
    return out


def _describe(found: set[MetricKey], namespace: str, metric: str) -> str:
    sets = sorted("{" + ", ".join(f"{k}={v}" for k, v in dims) + "}" for ns, m, dims in found
                  if ns == namespace and m == metric)
    return ", ".join(sets) if sets else "nothing"


@rule
@plan_only("runs the packaged edge handler with the built ONNX model (onnxruntime, numpy, tokenizers: the model's "
           "runtime, not in the policy pack's venv); `make plan` and `make test` run it on every pull request")
def edge_emf_alarms_match(plan: Plan) -> Iterator[Violation]:
    """Every alarm on an edge namespace names a metric and dimension set the handler really emits there."""
    # The handler and the model's runtime (onnxruntime, numpy): imported by this plan-only rule alone.
    from infra.artifacts.edge_probe import emitted_metrics, unpack_baked
    functions: dict[str, PlannedResource] = {}
    for fn in edge_functions(plan):
        path = _package_path(fn)
        pkg = read_package(path)
        if pkg is None or pkg.function != "edge_inference":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            namespace = str(unpack_baked(pkg.path, Path(tmp)).settings["namespace"])
        functions[namespace] = fn
    watched_namespaces = set(functions) | ({plan.config.emf_edge.namespace} if plan.config.emf_edge.enabled else set())
    for alarm in plan.of_type(ALARM):
        for namespace, metric, dims, _stat in _alarm_metrics(alarm):
            if namespace not in watched_namespaces:
                continue
            emitting = functions.get(namespace)
            if emitting is None:
                yield Violation("edge_emf_alarms_match", alarm.label,
                                f"watches namespace {namespace}, which no edge function in this plan emits")
                continue
            pkg = read_package(_package_path(emitting))
            assert pkg is not None  # found above
            try:
                found, doc_problems = emitted_metrics(str(pkg.path), pkg.sha256, str(alarm.region))
            except Exception as exc:  # the handler could not run: the check cannot vouch for the alarm
                yield Violation("edge_emf_alarms_match", alarm.label,
                                f"could not run the edge handler to check this alarm: {type(exc).__name__}: {exc}")
                continue
            for p in doc_problems:
                yield Violation("edge_emf_alarms_match", fn.label, f"handler emits invalid EMF: {p}")
            key = (namespace, metric, tuple(sorted((k, str(v)) for k, v in dims.items())))
            if key not in found:
                shown = "{" + ", ".join(f"{k}={v}" for k, v in key[2]) + "}"
                yield Violation("edge_emf_alarms_match", alarm.label,
                                f"watches {namespace} {metric} {shown}, but the handler in {alarm.region} emits "
                                f"{metric} with: {_describe(set(found), namespace, metric)}")


@rule
def edge_regions_covered(plan: Plan) -> Iterator[Violation]:
    """Replicas emit where they run: each edge region needs the log group and the four alarms."""
    cfg = plan.config.emf_edge
    if not cfg.enabled or not edge_functions(plan):
        return
    names = {str(fn.inputs.get("name")) for fn in edge_functions(plan)}
    groups = {(lg.region, lg.inputs.get("name")) for lg in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for region in cfg.edge_regions:
        for name in sorted(names):
            if (region, f"/aws/lambda/{EDGE_REGION}.{name}") not in groups:
                yield Violation("edge_regions_covered", region,
                                f"no log group /aws/lambda/{EDGE_REGION}.{name}: replica logs and EMF would be lost")
        have = {(metric, stat) for a in plan.of_type(ALARM) if a.region == region
                for ns, metric, _d, stat in _alarm_metrics(a) if ns == cfg.namespace}
        for metric, stat in sorted(REQUIRED_ALARMS - have):
            yield Violation("edge_regions_covered", region, f"no alarm on {cfg.namespace} {metric} ({stat})")
