"""Every Kubernetes and tracing validation rule fails on a bad input (a real planned object, broken one way)."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable

import pytest
import yaml

from infra.components import xray_collector as oc
from infra.validation import Plan, PlannedResource
from infra.validation import kubernetes as kr
from infra.validation import xray as xr


@pytest.fixture(scope="module")
def base(planned) -> Plan:
    return planned["staging"].plan


def _mutate(plan: Plan, match: Callable[[PlannedResource], bool],
            change: Callable[[dict], object]) -> Plan:
    """A copy of `plan` where every matching resource's inputs went through `change` (in place on a copy)."""
    out, hit = [], False
    for r in plan.resources:
        if match(r):
            inputs = copy.deepcopy(r.inputs)
            change(inputs)
            r = dataclasses.replace(r, inputs=inputs)
            hit = True
        out.append(r)
    assert hit, "the mutation matched nothing"
    return Plan(resources=out, config=plan.config, outputs=plan.outputs)


def _named(kind: str, name: str) -> Callable[[PlannedResource], bool]:
    return lambda r: r.inputs.get("kind") == kind and (r.inputs.get("metadata") or {}).get("name") == name


def _container(inputs: dict) -> dict:
    return inputs["spec"]["template"]["spec"]["containers"][0]


def _messages(rule, plan: Plan) -> list[str]:
    return [v.message for v in rule(plan)]


def _add(plan: Plan, *extra: PlannedResource) -> Plan:
    return Plan(resources=[*plan.resources, *extra], config=plan.config, outputs=plan.outputs)


def _k8s(kind: str, api: str, inputs: dict, name: str = "x") -> PlannedResource:
    body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "observability"}, **inputs}
    group, _, version = api.rpartition("/")
    return PlannedResource(urn=f"urn:{kind}:{name}", type=f"kubernetes:{group or 'core'}/{version}:{kind}",
                           name=name, parent=None, region=None, inputs=body, custom=True, provider="kubernetes")


ALL_RULES = [kr.k8s_images_pinned, kr.k8s_network_policy, kr.k8s_container_resources, kr.k8s_security_context,
             kr.k8s_rbac_least_privilege, kr.k8s_openapi_schema, xr.otel_collector_references,
             xr.otel_collector_connected, xr.xray_tail_sampling_matches_config, xr.xray_load_balancer_target,
             xr.xray_daemon_service, xr.xray_config_checksum, xr.irsa_scoped_to_service_account,
             xr.xray_sampling_rules]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.__name__)
def test_the_planned_stack_passes_every_rule(base, rule):
    assert list(rule(base)) == []


# ------------------------------------------------------------------------------------------------- kubernetes
@pytest.mark.parametrize("image", ["public.ecr.aws/aws-observability/aws-otel-collector:latest",
                                   "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3",
                                   "public.ecr.aws/aws-observability/aws-otel-collector", "otel"])
def test_unpinned_image_is_a_violation(base, image):
    bad = _mutate(base, _named("DaemonSet", "adot-agent"), lambda i: _container(i).update(image=image))
    assert any("not pinned" in m for m in _messages(kr.k8s_images_pinned, bad))


def test_missing_limits_is_a_violation(base):
    bad = _mutate(base, _named("Deployment", "adot-gateway"),
                  lambda i: _container(i)["resources"].pop("limits"))
    assert _messages(kr.k8s_container_resources, bad) == ["container collector: no limits for cpu, memory"]


@pytest.mark.parametrize("change, expected", [
    (lambda c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot is not true"),
    (lambda c: c["securityContext"].update(runAsUser=0), "runAsUser is 0"),
    (lambda c: c["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
    (lambda c: c["securityContext"].update(capabilities={"drop": ["NET_RAW"]}), "drop does not contain ALL"),
    (lambda c: c["securityContext"].update(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}), "adds"),
    (lambda c: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    (lambda c: c["securityContext"].update(privileged=True), "privileged"),
    (lambda c: c.pop("securityContext"), "readOnlyRootFilesystem"),
])
def test_insecure_container_is_a_violation(base, change, expected):
    bad = _mutate(base, _named("DaemonSet", "adot-agent"), lambda i: change(_container(i)))
    assert any(expected in m for m in _messages(kr.k8s_security_context, bad))


def test_host_network_is_a_violation(base):
    bad = _mutate(base, _named("DaemonSet", "adot-agent"),
                  lambda i: i["spec"]["template"]["spec"].update(hostNetwork=True))
    assert any("host namespace" in m for m in _messages(kr.k8s_security_context, bad))


def test_pod_level_non_root_counts(base):
    ok = _mutate(base, _named("DaemonSet", "adot-agent"),
                 lambda i: [_container(i)["securityContext"].pop(k) for k in ("runAsNonRoot", "runAsUser")])
    assert _messages(kr.k8s_security_context, ok) == []


def test_cluster_admin_binding_and_wildcard_rbac_are_violations(base):
    binding = _k8s("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "xray-daemon", "namespace": "observability"}]})
    role = _k8s("ClusterRole", "rbac.authorization.k8s.io/v1", {"rules": [
        {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}, name="reader")
    msgs = _messages(kr.k8s_rbac_least_privilege, _add(base, binding, role))
    assert any("cluster-admin" in m for m in msgs)
    for key in ("verbs", "resources", "apiGroups"):
        assert any(m.startswith(f"rules[1].{key} contains '*'") for m in msgs), msgs
    assert any("rules[2] reads every secret" in m for m in msgs)
    assert not any("rules[0]" in m for m in msgs)  # get/list/watch on pods is fine


def test_schema_rejects_unknown_and_mistyped_fields(base):
    typo = _mutate(base, _named("Deployment", "adot-gateway"), lambda i: i["spec"].update(replica=2))
    assert any("'replica' was unexpected" in m for m in _messages(kr.k8s_openapi_schema, typo))
    wrong_type = _mutate(base, _named("Service", "xray-daemon"),
                         lambda i: i["spec"]["ports"][0].update(port="two-thousand"))
    msgs = _messages(kr.k8s_openapi_schema, wrong_type)
    assert any("spec.ports.0.port" in m and "Kubernetes 1.30" in m for m in msgs), msgs


def test_schema_skips_custom_resources_but_other_rules_still_apply(base):
    rule = _k8s("PrometheusRule", "monitoring.coreos.com/v1", {"spec": {"groups": []}, "bogus": 1})
    assert _messages(kr.k8s_openapi_schema, _add(base, rule)) == []
    # Skipping the custom resource does not skip the objects around it.
    role = _k8s("ClusterRole", "rbac.authorization.k8s.io/v1", {"rules": [{"verbs": ["*"]}]})
    assert _messages(kr.k8s_rbac_least_privilege, _add(base, rule, role))


def test_unsupported_cluster_version_is_one_clear_violation(base):
    plan = Plan(resources=base.resources, config=dataclasses.replace(
        base.config, kubernetes=dataclasses.replace(base.config.kubernetes, cluster_version="1.24")))
    msgs = _messages(kr.k8s_openapi_schema, plan)
    assert len(msgs) == 1 and "schemas for 1.25.." in msgs[0]


def test_schema_uses_the_configured_version(base):
    # sleepAction in lifecycle hooks exists from Kubernetes 1.29 on (unknown field before).
    def add_sleep(i):
        _container(i)["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
    plan = _mutate(base, _named("Deployment", "adot-gateway"), add_sleep)
    assert _messages(kr.k8s_openapi_schema, plan) == []
    old = Plan(resources=plan.resources, config=dataclasses.replace(
        base.config, kubernetes=dataclasses.replace(base.config.kubernetes, cluster_version="1.28")))
    assert any("sleep" in m for m in _messages(kr.k8s_openapi_schema, old))


# ---------------------------------------------------------------------------------------- collector configs
def _edit_config(tier: str, change: Callable[[dict], object]) -> Callable[[dict], object]:
    def apply(inputs: dict) -> None:
        doc = yaml.safe_load(inputs["data"][oc.CONFIG_KEY])
        change(doc)
        inputs["data"][oc.CONFIG_KEY] = oc.render(doc)
    return apply


def _config(base: Plan, tier: str, change: Callable[[dict], object]) -> Plan:
    return _mutate(base, _named("ConfigMap", f"{tier}-config"), _edit_config(tier, change))


def test_undefined_references_are_violations(base):
    def break_it(doc):
        doc["service"]["pipelines"]["traces"]["processors"].append("k8sattributes")
        doc["service"]["pipelines"]["traces"]["exporters"] = ["otlp/gateway"]
        doc["service"]["extensions"].append("pprof")
        doc["service"]["pipelines"]["spans"] = {"receivers": ["otlp"], "exporters": ["loadbalancing"]}
    msgs = _messages(xr.otel_collector_references, _config(base, "adot-agent", break_it))
    assert "pipeline 'traces' names undefined processor 'k8sattributes'" in msgs
    assert "pipeline 'traces' names undefined exporter 'otlp/gateway'" in msgs
    assert "service.extensions names undefined extension 'pprof'" in msgs
    assert any("pipeline 'spans': type must be" in m for m in msgs)


def test_unparseable_config_is_a_violation(base):
    bad = _mutate(base, _named("ConfigMap", "adot-agent-config"),
                  lambda i: i["data"].update({oc.CONFIG_KEY: "receivers: [unclosed"}))
    assert any("not valid YAML" in m for m in _messages(xr.otel_collector_references, bad))


def test_unconnected_components_are_violations(base):
    def break_it(doc):
        doc["exporters"]["debug"] = {}
        doc["extensions"]["pprof"] = {}
        doc["service"]["pipelines"]["traces"]["exporters"] = []
    msgs = _messages(xr.otel_collector_connected, _config(base, "adot-gateway", break_it))
    assert "pipeline 'traces' has no exporters: it is not connected" in msgs
    assert "exporter 'debug' is defined but no pipeline uses it" in msgs
    assert "exporter 'awsxray' is defined but no pipeline uses it" in msgs
    assert "extension 'pprof' is defined but no pipeline uses it" in msgs


@pytest.mark.parametrize("change, expected", [
    (lambda ts: ts["policies"].pop(0), "no status_code policy"),
    (lambda ts: ts["policies"][1]["latency"].update(threshold_ms=500), "threshold_ms [500]"),
    (lambda ts: ts["policies"][2]["probabilistic"].update(sampling_percentage=50), "sampling_percentage [50]"),
    (lambda ts: ts.update(decision_wait="30s"), "decision_wait"),
    (lambda ts: ts["policies"].append({"name": "all", "type": "always_sample"}), "unexpected policy types"),
])
def test_tail_sampling_drift_from_config_is_a_violation(base, change, expected):
    bad = _config(base, "adot-gateway", lambda doc: change(doc["processors"]["tail_sampling"]))
    assert any(expected in m for m in _messages(xr.xray_tail_sampling_matches_config, bad))


def test_tail_sampler_outside_the_pipeline_is_a_violation(base):
    bad = _config(base, "adot-gateway",
                  lambda doc: doc["service"]["pipelines"]["traces"]["processors"].remove("tail_sampling"))
    assert "tail_sampling is not in any pipeline" in _messages(xr.xray_tail_sampling_matches_config, bad)


def test_load_balancer_must_route_on_trace_id_to_a_headless_gateway(base):
    by_service = _config(base, "adot-agent",
                         lambda doc: doc["exporters"]["loadbalancing"].update(routing_key="service"))
    assert any("needs traceID" in m for m in _messages(xr.xray_load_balancer_target, by_service))
    not_headless = _mutate(base, _named("Service", "adot-gateway-lb"), lambda i: i["spec"].pop("clusterIP"))
    assert any("not headless" in m for m in _messages(xr.xray_load_balancer_target, not_headless))
    wrong_host = _config(base, "adot-agent", lambda doc: doc["exporters"]["loadbalancing"]["resolver"]["dns"]
                         .update(hostname="adot-gw.observability.svc.cluster.local"))
    assert any("no Service observability/adot-gw" in m for m in _messages(xr.xray_load_balancer_target, wrong_host))
    wrong_port = _config(base, "adot-agent",
                         lambda doc: doc["exporters"]["loadbalancing"]["resolver"]["dns"].update(port=4318))
    assert any("4318/TCP" in m for m in _messages(xr.xray_load_balancer_target, wrong_port))


def test_daemon_service_must_expose_udp_2000_to_the_agents(base):
    tcp_only = _mutate(base, _named("Service", "xray-daemon"),
                       lambda i: i["spec"].update(ports=[p for p in i["spec"]["ports"] if p["protocol"] == "TCP"]))
    assert any("2000/UDP" in m for m in _messages(xr.xray_daemon_service, tcp_only))
    wrong_selector = _mutate(base, _named("Service", "xray-daemon"),
                             lambda i: i["spec"].update(selector={"app": "xray-daemon"}))
    assert any("selects no DaemonSet" in m for m in _messages(xr.xray_daemon_service, wrong_selector))
    gone = Plan([r for r in base.resources if not _named("Service", "xray-daemon")(r)], base.config)
    assert _messages(xr.xray_daemon_service, gone) == ["no Service observability/xray-daemon"]


def test_stale_checksum_is_a_violation(base):
    changed = _config(base, "adot-gateway", lambda doc: doc["processors"]["batch"].update(timeout="2s"))
    msgs = _messages(xr.xray_config_checksum, changed)
    assert len(msgs) == 1 and "would not roll the pods" in msgs[0]


def _trust_of(role_suffix: str, change: Callable[[dict], object]) -> Callable[[dict], object]:
    def apply(inputs: dict) -> None:
        doc = json.loads(inputs["assumeRolePolicy"])
        change(doc["Statement"][0])
        inputs["assumeRolePolicy"] = json.dumps(doc)
    return apply


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["Condition"]["StringEquals"].pop(next(k for k in s["Condition"]["StringEquals"]
                                                       if k.endswith(":sub"))), ":sub is None"),
    (lambda s: s["Condition"]["StringEquals"].update(
        {next(k for k in s["Condition"]["StringEquals"] if k.endswith(":sub")): "system:serviceaccount:*:*"}),
     ":sub is 'system:serviceaccount:*:*'"),
    (lambda s: s["Condition"]["StringEquals"].pop(next(k for k in s["Condition"]["StringEquals"]
                                                       if k.endswith(":aud"))), ":aud is None"),
    (lambda s: s.update(Principal={"Federated": "arn:aws:iam::111111111111:oidc-provider/other"}),
     "not the cluster's OIDC provider"),
    (lambda s: s.update(Action="sts:AssumeRole"), "expected sts:AssumeRoleWithWebIdentity"),
])
def test_irsa_trust_must_be_scoped_to_the_service_account(base, change, expected):
    bad = _mutate(base, lambda r: r.type == "aws:iam/role:Role" and r.inputs["name"].endswith("adot-gateway"),
                  _trust_of("adot-gateway", change))
    assert any(expected in m for m in _messages(xr.irsa_scoped_to_service_account, bad))


def test_collector_role_with_non_xray_actions_is_a_violation(base):
    def widen(inputs):
        doc = json.loads(inputs["policy"])
        doc["Statement"][0]["Action"].append("s3:GetObject")
        inputs["policy"] = json.dumps(doc)
    bad = _mutate(base, lambda r: r.type == "aws:iam/rolePolicy:RolePolicy"
                  and str(r.inputs.get("role", "")).endswith("adot-agent"), widen)
    assert any("s3:GetObject" in m for m in _messages(xr.irsa_scoped_to_service_account, bad))


def test_sampling_rule_limits_are_violations(base):
    long_name = _mutate(base, lambda r: r.type == "aws:xray/samplingRule:SamplingRule"
                        and r.inputs["serviceName"] == "akidb-rest",
                        lambda i: i.update(ruleName="x" * 33, priority=9999))
    msgs = _messages(xr.xray_sampling_rules, long_name)
    assert any("1..32 characters" in m for m in msgs)
    assert any("priority 9999 also used" in m for m in msgs)
    no_default = Plan([r for r in base.resources if not (r.type == "aws:xray/samplingRule:SamplingRule"
                                                         and r.inputs["serviceName"] == "*")], base.config)
    assert "no catch-all rule (serviceName '*')" in _messages(xr.xray_sampling_rules, no_default)


def _without_network_policy(plan: Plan, name: str) -> Plan:
    return Plan(resources=[r for r in plan.resources if not _named("NetworkPolicy", name)(r)], config=plan.config,
                outputs=plan.outputs)


def test_a_workload_without_an_ingress_network_policy_is_a_violation(base):
    bare = _without_network_policy(base, "adot-gateway-ingress")
    found = list(kr.k8s_network_policy(bare))
    # Only the gateway: the agents' policy has another podSelector and does not cover it.
    assert [v.resource.split()[0] for v in found] == ["kubernetes:apps/v1:Deployment"]
    assert "no ingress NetworkPolicy" in found[0].message and "adot-gateway" in found[0].message


def test_a_network_policy_of_another_namespace_or_egress_only_does_not_count(base):
    moved = _mutate(base, _named("NetworkPolicy", "adot-gateway-ingress"),
                    lambda i: i["metadata"].update(namespace="default"))
    assert list(kr.k8s_network_policy(moved))
    egress_only = _mutate(base, _named("NetworkPolicy", "adot-gateway-ingress"),
                          lambda i: i["spec"].update(policyTypes=["Egress"]))
    assert list(kr.k8s_network_policy(egress_only))


@pytest.mark.parametrize("image, pinned", [
    ("a/b@sha256:" + "0" * 64, True), ("registry.local:5000/team/app:v1.2@sha256:" + "a" * 64, True),
    ("busybox@sha256:" + "f" * 64, True),
    ("busybox:1.36", False), ("registry.local:5000/team/app:v1.2", False), ("busybox", False),
    ("busybox:latest", False), ("registry.local:5000/team/app", False), ("a/b:", False),
    ("a/b@sha256:" + "0" * 63, False), ("a/b@sha256:" + "G" * 64, False), ("@sha256:" + "0" * 64, False),
])
def test_image_pinned_forms(image, pinned):
    assert kr.image_pinned(image) is pinned
