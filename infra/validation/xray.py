"""Rules for the tracing pipeline: collector configs as the collector itself would reject them, and the
contracts between the pieces (load balancer -> headless Service, xray-daemon Service -> agent, checksum ->
ConfigMap, tail-sampling policies -> stack config, IRSA trust -> service account, sampling rules -> X-Ray).

Collector configs are found as ConfigMaps with the key `collector.yaml` (infra/components/xray_collector.py) and parsed
back from the planned YAML: what is checked is what the pods will read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from infra.components import xray_collector as oc
from infra.components.xray import CHECKSUM_ANNOTATION, DAEMON_SERVICE, IRSA_ANNOTATION, MAX_XRAY_NAME
from infra.core import yamldoc
from infra.validation import Plan, PlannedResource, Violation, rule
from infra.validation.kubernetes import k8s_objects, pod_spec

KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
PIPELINE_TYPES = ("traces", "metrics", "logs")
COLLECTOR_LABEL = ("app.kubernetes.io/name", "adot-collector")


def collector_configs(plan: Plan) -> Iterator[tuple[PlannedResource, dict[str, Any] | str]]:
    """(ConfigMap, parsed config) for every collector config; a string instead of a dict is a parse error."""
    for cm in plan.of_type("kubernetes:core/v1:ConfigMap"):
        text = (cm.inputs.get("data") or {}).get(oc.CONFIG_KEY)
        if text is None:
            continue
        try:
            doc = yamldoc.safe_load(text)
        except yaml.YAMLError as err:
            yield cm, f"{oc.CONFIG_KEY} is not valid YAML: {err}"
            continue
        yield cm, doc if isinstance(doc, dict) else f"{oc.CONFIG_KEY} is not a mapping"


def _names(doc: dict[str, Any], kind: str) -> set[str]:
    section = doc.get(kind) or {}
    return set(section) if isinstance(section, dict) else set()


def reference_problems(doc: dict[str, Any]) -> list[str]:
    """References to components the config does not define (the collector refuses to start)."""
    out = []
    service = doc.get("service") or {}
    connectors = _names(doc, "connectors")
    for ext in service.get("extensions") or []:
        if ext not in _names(doc, "extensions"):
            out.append(f"service.extensions names undefined extension {ext!r}")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        out.append("service.pipelines is empty")
    for pname, pipe in pipelines.items():
        if str(pname).split("/", 1)[0] not in PIPELINE_TYPES:
            out.append(f"pipeline {pname!r}: type must be one of {', '.join(PIPELINE_TYPES)}")
        pipe = pipe or {}
        for kind in ("receivers", "processors", "exporters"):
            defined = _names(doc, kind) | (connectors if kind != "processors" else set())
            for ref in pipe.get(kind) or []:
                if ref not in defined:
                    out.append(f"pipeline {pname!r} names undefined {kind[:-1]} {ref!r}")
    return out


def connection_problems(doc: dict[str, Any]) -> list[str]:
    """Pipelines with no input or no output, and defined components no pipeline uses."""
    out = []
    service = doc.get("service") or {}
    pipelines = service.get("pipelines") or {}
    used: dict[str, set[str]] = {k: set() for k in KINDS}
    used["extensions"] = set(service.get("extensions") or [])
    for pname, pipe in pipelines.items():
        pipe = pipe or {}
        for kind in ("receivers", "exporters"):
            if not pipe.get(kind):
                out.append(f"pipeline {pname!r} has no {kind}: it is not connected")
        for kind in ("receivers", "processors", "exporters"):
            used[kind] |= set(pipe.get(kind) or [])
    connectors = _names(doc, "connectors")
    used["connectors"] = connectors & (used["receivers"] | used["exporters"])
    for kind in KINDS:
        for name in sorted(_names(doc, kind) - used[kind]):
            if kind == "connectors" or name not in connectors:
                out.append(f"{kind[:-1]} {name!r} is defined but no pipeline uses it")
    return out


@rule
def otel_collector_references(plan: Plan) -> Iterator[Violation]:
    for cm, doc in collector_configs(plan):
        for msg in [doc] if isinstance(doc, str) else reference_problems(doc):
            yield Violation("otel_collector_references", cm.label, msg)


@rule
def otel_collector_connected(plan: Plan) -> Iterator[Violation]:
    for cm, doc in collector_configs(plan):
        if isinstance(doc, dict):
            for msg in connection_problems(doc):
                yield Violation("otel_collector_connected", cm.label, msg)


def _tier_configs(plan: Plan, tier: str) -> list[tuple[PlannedResource, dict[str, Any]]]:
    return [(cm, doc) for cm, doc in collector_configs(plan)
            if isinstance(doc, dict)
            and (cm.get("metadata.labels") or {}).get("app.kubernetes.io/component") == tier]


def tail_sampling_problems(doc: dict[str, Any], latency_ms: int, fraction: float, wait_s: int) -> list[str]:
    """The gateway's tail sampler keeps errors, traces slower than `latency_ms`, and `fraction` of the rest."""
    ts = (doc.get("processors") or {}).get("tail_sampling")
    if not isinstance(ts, dict):
        return ["no tail_sampling processor"]
    out = []
    pipelines = (doc.get("service") or {}).get("pipelines") or {}
    if not any("tail_sampling" in (p or {}).get("processors", []) for p in pipelines.values()):
        out.append("tail_sampling is not in any pipeline")
    if ts.get("decision_wait") != f"{wait_s}s":
        out.append(f"decision_wait {ts.get('decision_wait')!r}, config says {wait_s}s")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for p in ts.get("policies") or []:
        by_type.setdefault(p.get("type"), []).append(p)
    if not any("ERROR" in ((p.get("status_code") or {}).get("status_codes") or [])
               for p in by_type.get("status_code", [])):
        out.append("no status_code policy keeping ERROR traces")
    lat = [(p.get("latency") or {}).get("threshold_ms") for p in by_type.get("latency", [])]
    if lat != [latency_ms]:
        out.append(f"latency policy threshold_ms {lat}, config says [{latency_ms}]")
    pct = [(p.get("probabilistic") or {}).get("sampling_percentage") for p in by_type.get("probabilistic", [])]
    if len(pct) != 1 or pct[0] is None or abs(float(pct[0]) - fraction * 100) > 1e-6:
        out.append(f"probabilistic sampling_percentage {pct}, config says [{fraction * 100:g}]")
    unexpected = sorted(set(by_type) - {"status_code", "latency", "probabilistic"})
    if unexpected:
        out.append(f"unexpected policy types {unexpected}: any policy that samples widens what is kept")
    return out


@rule
def xray_tail_sampling_matches_config(plan: Plan) -> Iterator[Violation]:
    cfg = plan.config.xray
    if not cfg.enabled:
        return
    gateways = _tier_configs(plan, "adot-gateway")
    if not gateways:
        yield Violation("xray_tail_sampling_matches_config", "xray", "no gateway collector config in the plan")
    for cm, doc in gateways:
        for msg in tail_sampling_problems(doc, cfg.latency_threshold_ms, cfg.sampling_fraction, cfg.decision_wait_s):
            yield Violation("xray_tail_sampling_matches_config", cm.label, msg)


def _services(plan: Plan) -> list[PlannedResource]:
    return [r for r in k8s_objects(plan) if r.inputs.get("kind") == "Service"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _template_labels(obj: PlannedResource) -> dict[str, str]:
    return obj.get("spec.template.metadata.labels") or {}


def _ports(spec: dict[str, Any] | None) -> set[tuple[int, str]]:
    return {(int(p.get("containerPort")), p.get("protocol", "TCP"))
            for c in (spec or {}).get("containers") or [] for p in c.get("ports") or []}


@rule
def xray_load_balancer_target(plan: Plan) -> Iterator[Violation]:
    """Agents route on trace ID to a headless Service that selects the gateway pods on the OTLP port."""
    workloads = [r for r in k8s_objects(plan) if pod_spec(r) is not None]
    for cm, doc in collector_configs(plan):
        if not isinstance(doc, dict):
            continue
        lb = (doc.get("exporters") or {}).get("loadbalancing")
        if not isinstance(lb, dict):
            continue
        if lb.get("routing_key") != "traceID":
            yield Violation("xray_load_balancer_target", cm.label,
                            f"loadbalancing routing_key {lb.get('routing_key')!r}: tail sampling needs traceID")
        dns = (lb.get("resolver") or {}).get("dns") or {}
        m = re.match(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$", str(dns.get("hostname", "")))
        if not m:
            yield Violation("xray_load_balancer_target", cm.label,
                            f"resolver.dns.hostname {dns.get('hostname')!r} is not <service>.<ns>.svc.cluster.local")
            continue
        svc = next((s for s in _services(plan) if s.get("metadata.name") == m.group(1)
                    and s.get("metadata.namespace") == m.group(2)), None)
        if svc is None:
            yield Violation("xray_load_balancer_target", cm.label, f"no Service {m.group(2)}/{m.group(1)} in the plan")
            continue
        if svc.get("spec.clusterIP") != "None":
            yield Violation("xray_load_balancer_target", svc.label,
                            "not headless (clusterIP: None): the resolver would see one virtual IP, not the pods")
        selector = svc.get("spec.selector") or {}
        targets = [w for w in workloads if _selects(selector, _template_labels(w))]
        port = int(dns.get("port") or oc.OTLP_GRPC_PORT)
        if not any((port, "TCP") in _ports(pod_spec(w)) for w in targets):
            yield Violation("xray_load_balancer_target", svc.label,
                            f"selects no workload with a container port {port}/TCP")


@rule
def xray_daemon_service(plan: Plan) -> Iterator[Violation]:
    """`xray-daemon:2000/UDP` reaches a DaemonSet listening on UDP 2000, so existing senders need no change."""
    if not plan.config.xray.enabled:
        return
    ns = plan.config.kubernetes.namespace
    svc = next((s for s in _services(plan) if s.get("metadata.name") == DAEMON_SERVICE
                and s.get("metadata.namespace") == ns), None)
    if svc is None:
        yield Violation("xray_daemon_service", "xray", f"no Service {ns}/{DAEMON_SERVICE}")
        return
    if not any(int(p.get("port", 0)) == oc.XRAY_UDP_PORT and p.get("protocol") == "UDP"
               for p in svc.get("spec.ports") or []):
        yield Violation("xray_daemon_service", svc.label, f"does not expose {oc.XRAY_UDP_PORT}/UDP")
    daemonsets = [r for r in k8s_objects(plan) if r.inputs.get("kind") == "DaemonSet"
                  and _selects(svc.get("spec.selector") or {}, _template_labels(r))]
    if not any((oc.XRAY_UDP_PORT, "UDP") in _ports(pod_spec(d)) for d in daemonsets):
        yield Violation("xray_daemon_service", svc.label,
                        f"selects no DaemonSet with a container port {oc.XRAY_UDP_PORT}/UDP")


@rule
def xray_config_checksum(plan: Plan) -> Iterator[Violation]:
    """Collector pods carry the checksum of the config they mount, so a config change rolls them."""
    maps = {(cm.get("metadata.namespace"), cm.get("metadata.name")): cm
            for cm in plan.of_type("kubernetes:core/v1:ConfigMap")}
    for obj in k8s_objects(plan):
        spec = pod_spec(obj)
        if spec is None or (_template_labels(obj).get(COLLECTOR_LABEL[0]) != COLLECTOR_LABEL[1]):
            continue
        ns = obj.get("metadata.namespace")
        mounted = [maps.get((ns, (v.get("configMap") or {}).get("name"))) for v in spec.get("volumes") or []
                   if v.get("configMap")]
        texts = [(cm.inputs.get("data") or {}).get(oc.CONFIG_KEY) for cm in mounted if cm is not None]
        if len(texts) != 1 or texts[0] is None:
            yield Violation("xray_config_checksum", obj.label, "does not mount exactly one planned collector config")
            continue
        annotation = (obj.get("spec.template.metadata.annotations") or {}).get(CHECKSUM_ANNOTATION)
        if annotation != oc.checksum(texts[0]):
            yield Violation("xray_config_checksum", obj.label,
                            "pod template annotation checksum/config does not match its ConfigMap: "
                            "a config change would not roll the pods")


def _role_policies(plan: Plan, role_name: str) -> list[dict[str, Any]]:
    docs = []
    for rp in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        if rp.inputs.get("role") == role_name and isinstance(rp.inputs.get("policy"), str):
            docs.append(json.loads(rp.inputs["policy"]))
    return docs


def irsa_problems(trust: dict[str, Any], provider_arn: str | None, namespace: str, sa: str) -> list[str]:
    issuer = (provider_arn or "").split(":oidc-provider/", 1)[-1]
    out = []
    stmts = trust.get("Statement") or []
    if len(stmts) != 1:
        out.append(f"trust policy has {len(stmts)} statements; expected exactly one (the service account)")
    for s in stmts:
        if (s.get("Principal") or {}).get("Federated") != provider_arn:
            out.append(f"trusts {s.get('Principal')}, not the cluster's OIDC provider {provider_arn}")
        if s.get("Action") != "sts:AssumeRoleWithWebIdentity":
            out.append(f"trust action {s.get('Action')!r}, expected sts:AssumeRoleWithWebIdentity")
        eq = (s.get("Condition") or {}).get("StringEquals") or {}
        if eq.get(f"{issuer}:sub") != f"system:serviceaccount:{namespace}:{sa}":
            out.append(f"{issuer}:sub is {eq.get(f'{issuer}:sub')!r}, "
                       f"expected system:serviceaccount:{namespace}:{sa}")
        if eq.get(f"{issuer}:aud") != "sts.amazonaws.com":
            out.append(f"{issuer}:aud is {eq.get(f'{issuer}:aud')!r}, expected sts.amazonaws.com")
    return out


@rule
def irsa_scoped_to_service_account(plan: Plan) -> Iterator[Violation]:
    """Every IRSA-annotated ServiceAccount's role trusts exactly that service account of this cluster;
    the collector's roles carry X-Ray actions only."""
    roles = {r.inputs.get("name"): r for r in plan.of_type("aws:iam/role:Role")}
    provider_arn = plan.config.kubernetes.oidc_provider_arn
    for sa in k8s_objects(plan):
        if sa.inputs.get("kind") != "ServiceAccount":
            continue
        arn = (sa.get("metadata.annotations") or {}).get(IRSA_ANNOTATION)
        if not arn:
            continue
        role_name = str(arn).split(":role/", 1)[-1].rsplit("/", 1)[-1]
        role = roles.get(role_name)
        if role is None:
            yield Violation("irsa_scoped_to_service_account", sa.label, f"role {arn} is not in the plan")
            continue
        trust = json.loads(role.inputs.get("assumeRolePolicy") or "{}")
        for msg in irsa_problems(trust, provider_arn, sa.get("metadata.namespace"), sa.get("metadata.name")):
            yield Violation("irsa_scoped_to_service_account", role.label, msg)
        if (sa.get("metadata.labels") or {}).get(COLLECTOR_LABEL[0]) == COLLECTOR_LABEL[1]:
            for doc in _role_policies(plan, role_name):
                for s in doc.get("Statement") or []:
                    actions = s.get("Action") if isinstance(s.get("Action"), list) else [s.get("Action")]
                    for a in actions:
                        if not str(a).startswith("xray:"):
                            yield Violation("irsa_scoped_to_service_account", role.label,
                                            f"collector role grants {a}; it needs X-Ray actions only")
        for att in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
            if att.inputs.get("role") == role_name and "AWSXRayDaemonWriteAccess" not in str(
                    att.inputs.get("policyArn")):
                yield Violation("irsa_scoped_to_service_account", att.label,
                                f"attaches {att.inputs.get('policyArn')} to an IRSA role of the collector")


@rule
def xray_sampling_rules(plan: Plan) -> Iterator[Violation]:
    """Names fit X-Ray's 32 characters, priorities are distinct in 1..9999, and a catch-all rule exists."""
    rules = plan.of_type("aws:xray/samplingRule:SamplingRule")
    if plan.config.xray.enabled and not any(r.inputs.get("serviceName") == "*" for r in rules):
        yield Violation("xray_sampling_rules", "xray", "no catch-all rule (serviceName '*')")
    seen: dict[tuple[str | None, int], str] = {}
    for r in rules:
        name = str(r.inputs.get("ruleName") or "")
        if not 1 <= len(name) <= MAX_XRAY_NAME:
            yield Violation("xray_sampling_rules", r.label, f"ruleName {name!r} is not 1..{MAX_XRAY_NAME} characters")
        prio = int(r.inputs.get("priority") or 0)
        if not 1 <= prio <= 9999:
            yield Violation("xray_sampling_rules", r.label, f"priority {prio} is outside 1..9999")
        if (r.region, prio) in seen:
            yield Violation("xray_sampling_rules", r.label, f"priority {prio} also used by {seen[(r.region, prio)]}")
        seen[(r.region, prio)] = r.label
        rate = r.inputs.get("fixedRate")
        if rate is None or not 0 <= float(rate) <= 1:
            yield Violation("xray_sampling_rules", r.label, f"fixedRate {rate!r} is outside 0..1")
    for g in plan.of_type("aws:xray/group:Group"):
        name = str(g.inputs.get("groupName") or "")
        if not re.match(r"^[A-Za-z0-9_-]{1,32}$", name):
            yield Violation("xray_sampling_rules", g.label, f"groupName {name!r}: 1..32 of A-Z a-z 0-9 _ -")
