"""The tracing component as planned for each stack: sampling values, least privilege, ports, image, rollout."""

from __future__ import annotations

import json

import pytest
import yaml

from infra.components import xray_collector as oc
from infra.config import PINNED_IMAGE_PATTERN
from infra.validation.kubernetes import pod_spec

STACK_SAMPLING = {"staging": 25.0, "prod": 10.0}


def _xray(result):
    return [r for r in result.plan.resources if r.parent == "tracing"]


def _k8s(result, kind, name=None):
    return [r for r in _xray(result) if r.inputs.get("kind") == kind
            and (name is None or r.get("metadata.name") == name)]


def _collector_config(result, tier):
    (cm,) = _k8s(result, "ConfigMap", f"{tier}-config")
    return yaml.safe_load(cm.inputs["data"][oc.CONFIG_KEY]), cm


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_tail_sampling_policies_per_stack(planned, stack):
    result = planned[stack]
    doc, _ = _collector_config(result, "adot-gateway")
    policies = {p["type"]: p for p in doc["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] == 100
    assert policies["probabilistic"]["probabilistic"]["sampling_percentage"] == STACK_SAMPLING[stack]
    assert doc["service"]["pipelines"]["traces"]["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    assert doc["service"]["pipelines"]["traces"]["exporters"] == ["awsxray"]
    assert doc["exporters"]["awsxray"]["region"] == "us-east-1"


def test_staging_keeps_more_healthy_traces_than_prod(planned):
    pct = {s: _collector_config(planned[s], "adot-gateway")[0]["processors"]["tail_sampling"]["policies"][2]
           ["probabilistic"]["sampling_percentage"] for s in ("staging", "prod")}
    assert pct["staging"] > pct["prod"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_head_sampling_rules_feed_the_tail_sampler(planned, stack):
    rules = {r.inputs["serviceName"]: r.inputs for r in planned[stack].plan.of_type(
        "aws:xray/samplingRule:SamplingRule")}
    assert set(rules) == {"akidb-rest", "*"}
    assert rules["*"]["priority"] == 9999 and rules["akidb-rest"]["priority"] < 9999
    # Head sampling at 100%: a trace the SDK drops can never be kept by the tail sampler.
    assert rules["akidb-rest"]["fixedRate"] == 1 and rules["*"]["fixedRate"] == 1
    assert all(len(r["ruleName"]) <= 32 for r in rules.values())


def test_agent_load_balances_on_trace_id_to_the_headless_gateway_service(planned):
    result = planned["prod"]
    doc, _ = _collector_config(result, "adot-agent")
    lb = doc["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    assert lb["resolver"]["dns"] == {"hostname": "adot-gateway-lb.observability.svc.cluster.local", "port": 4317}
    (svc,) = _k8s(result, "Service", "adot-gateway-lb")
    assert svc.inputs["spec"]["clusterIP"] == "None"
    (gw,) = _k8s(result, "Deployment", "adot-gateway")
    assert gw.inputs["spec"]["replicas"] == 3
    assert svc.inputs["spec"]["selector"] == gw.inputs["spec"]["template"]["metadata"]["labels"]
    (pdb,) = _k8s(result, "PodDisruptionBudget")
    assert pdb.inputs["spec"]["selector"]["matchLabels"] == svc.inputs["spec"]["selector"]
    assert pdb.inputs["spec"]["maxUnavailable"] == 1


def test_ports_daemon_contract_otlp_and_health(planned):
    result = planned["staging"]
    (svc,) = _k8s(result, "Service", "xray-daemon")
    ports = {(p["port"], p["protocol"]) for p in svc.inputs["spec"]["ports"]}
    assert ports == {(2000, "UDP"), (2000, "TCP"), (4317, "TCP"), (4318, "TCP")}
    assert svc.get("metadata.namespace") == "observability"
    assert result.outputs["xrayDaemonAddress"] == "xray-daemon.observability.svc.cluster.local:2000"
    (ds,) = _k8s(result, "DaemonSet", "adot-agent")
    (container,) = pod_spec(ds)["containers"]
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} == ports | {(13133, "TCP"), (8888, "TCP")}
    doc, _ = _collector_config(result, "adot-agent")
    assert doc["receivers"]["awsxray"]["endpoint"] == "0.0.0.0:2000"
    assert doc["receivers"]["awsxray"]["transport"] == "udp"
    assert doc["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert doc["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == 13133
    assert doc["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_pods_are_pinned_non_root_read_only_and_bounded(planned, stack):
    import re

    workloads = _k8s(planned[stack], "DaemonSet") + _k8s(planned[stack], "Deployment")
    assert len(workloads) == 2
    for w in workloads:
        spec = pod_spec(w)
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            assert re.match(PINNED_IMAGE_PATTERN, c["image"]) and not c["image"].endswith(":latest")
            assert c["image"] == planned[stack].plan.config.xray.collector_image
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
            assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
            assert sc["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_least_privilege_irsa_and_no_kubernetes_rbac(planned, stack):
    result = planned[stack]
    provider = result.plan.config.kubernetes.oidc_provider_arn
    issuer = provider.split(":oidc-provider/")[1]
    assert not [r for r in result.plan.resources if r.type.startswith("kubernetes:rbac")
                and r.parent == "tracing"], "the collector needs no Kubernetes API rights"
    assert not [r for r in result.plan.resources if "ClusterRoleBinding" in r.type
                and (r.inputs.get("roleRef") or {}).get("name") == "cluster-admin"]
    roles = {r.inputs["name"]: r for r in _xray(result) if r.type == "aws:iam/role:Role"}
    policies = {r.inputs["role"]: json.loads(r.inputs["policy"]) for r in _xray(result)
                if r.type == "aws:iam/rolePolicy:RolePolicy"}
    sas = _k8s(result, "ServiceAccount")
    assert {sa.get("metadata.name") for sa in sas} == {"adot-agent", "adot-gateway"}
    for sa in sas:
        name = sa.get("metadata.name")
        role_name = sa.get("metadata.annotations")["eks.amazonaws.com/role-arn"].split(":role/")[1]
        trust = json.loads(roles[role_name].inputs["assumeRolePolicy"])
        (stmt,) = trust["Statement"]
        assert stmt["Principal"] == {"Federated": provider}
        assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert stmt["Condition"] == {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:observability:{name}",
            f"{issuer}:aud": "sts.amazonaws.com"}}
        actions = {a for s in policies[role_name]["Statement"] for a in s["Action"]}
        assert actions and all(a.startswith("xray:") for a in actions)
    gateway_role = next(n for n in roles if n.endswith("adot-gateway"))
    agent_role = next(n for n in roles if n.endswith("adot-agent"))
    assert {a for s in policies[gateway_role]["Statement"] for a in s["Action"]} == {
        "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert "xray:PutTraceSegments" not in {a for s in policies[agent_role]["Statement"] for a in s["Action"]}


def test_groups_insights_and_event_rule_to_home_p1(planned):
    result = planned["prod"]
    groups = {g.inputs["groupName"]: g.inputs for g in result.plan.of_type("aws:xray/group:Group")}
    assert groups["akidb-prod-errors"]["filterExpression"] == "fault = true OR error = true"
    assert groups["akidb-prod-slow"]["filterExpression"] == "responsetime > 0.1"
    for g in groups.values():
        assert g["insightsConfiguration"] == {"insightsEnabled": True, "notificationsEnabled": True}
    (rule,) = [r for r in result.plan.of_type("aws:cloudwatch/eventRule:EventRule") if r.parent == "tracing"]
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["source"] == ["aws.xray"] and pattern["detail-type"] == ["AWS X-Ray Insight Update"]
    assert sorted(pattern["detail"]["GroupName"]) == sorted(groups)
    (target,) = [t for t in result.plan.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.parent == "tracing"]
    assert target.inputs["arn"] == result.outputs["alertTopicArns"]["us-east-1"]["P1"]
    assert set(result.outputs["xrayGroupArns"]) == {"errors", "slow"}


def test_config_drives_the_pipeline_and_a_change_rolls_the_pods(run_stack, planned):
    base = planned["staging"]
    changed = run_stack("staging", overrides={"xray": {"latencyThresholdMs": 250, "samplingFraction": 0.05,
                                                       "gatewayReplicas": 4, "insightsEnabled": False}})
    assert changed.violations == [], [str(v) for v in changed.violations]
    doc, _ = _collector_config(changed, "adot-gateway")
    policies = {p["type"]: p for p in doc["processors"]["tail_sampling"]["policies"]}
    assert policies["latency"]["latency"]["threshold_ms"] == 250
    assert policies["probabilistic"]["probabilistic"]["sampling_percentage"] == 5.0
    groups = {g.inputs["groupName"]: g.inputs for g in changed.plan.of_type("aws:xray/group:Group")}
    assert groups["akidb-staging-slow"]["filterExpression"] == "responsetime > 0.25"
    assert not [r for r in changed.plan.of_type("aws:cloudwatch/eventRule:EventRule") if r.parent == "tracing"]

    def sums(result):
        return {w.get("metadata.name"): w.get("spec.template.metadata.annotations")["checksum/config"]
                for w in _k8s(result, "DaemonSet") + _k8s(result, "Deployment")}

    before, after = sums(base), sums(changed)
    assert after["adot-gateway"] != before["adot-gateway"]  # gateway config changed: its pods roll
    assert after["adot-agent"] == before["adot-agent"]  # agent config unchanged: agents stay
    (gw,) = _k8s(changed, "Deployment")
    assert gw.inputs["spec"]["replicas"] == 4


@pytest.mark.parametrize("overrides, fragment", [
    ({"xray": {"gatewayReplicas": 1}}, "xray.gatewayReplicas"),
    ({"xray": {"collectorImage": "public.ecr.aws/aws-observability/aws-otel-collector:latest"}},
     "xray.collectorImage"),
    ({"xray": {"samplingFraction": 0}}, "xray.samplingFraction"),
    ({"xray": {"samplingRules": [{"serviceName": "*", "fixedRate": 1.0}]}}, "samplingRules[0].serviceName"),
    ({"xray": {"samplingRules": [{"serviceName": "a", "fixedRate": 1.0, "priority": 9999}]}},
     "samplingRules[0].priority"),
])
def test_bad_xray_config_is_refused_with_the_key(run_stack, overrides, fragment):
    result = run_stack("staging", overrides=overrides)
    assert result.exit_code == 2 and any(fragment in p for p in result.config_problems), result.config_problems


def test_missing_oidc_provider_is_refused(run_stack):
    result = run_stack("staging", overrides={"kubernetes": {"oidcProviderArn": None}})
    assert any("kubernetes.oidcProviderArn" in p for p in result.config_problems), result.config_problems


def test_disabled_xray_plans_nothing_of_it(run_stack):
    result = run_stack("staging", overrides={"xray": {"enabled": False}})
    assert result.violations == [], [str(v) for v in result.violations]
    assert not _xray(result) and "xrayDaemonAddress" not in result.outputs


def test_each_collector_tier_admits_only_its_senders(planned) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: only the agents reach the gateway (IRSA writes to X-Ray), only the cluster's pods the agents."""
    from infra.components import xray

    for result in planned.values():
        policies = {r.inputs["metadata"]["name"]: r.inputs["spec"]
                    for r in result.plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
        gateway = policies[f"{xray.GATEWAY}-ingress"]
        assert gateway["podSelector"]["matchLabels"] == xray.labels(xray.GATEWAY)
        assert gateway["ingress"][0]["from"] == [{"podSelector": {"matchLabels": xray.labels(xray.AGENT)}}]
        assert {p["port"] for p in gateway["ingress"][0]["ports"]} == {
            p["containerPort"] for p in xray.GATEWAY_PORTS}
        agent = policies[f"{xray.AGENT}-ingress"]
        assert agent["ingress"][0]["from"] == [{"namespaceSelector": {}}]
        assert {p["port"] for p in agent["ingress"][0]["ports"]} == {p["containerPort"] for p in xray.AGENT_PORTS}
        # Nothing else is admitted: the other rules open the health port, and the metrics port to Prometheus only.
        scrape = {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": xray.PROMETHEUS_POD_LABELS}}],
                  "ports": [{"protocol": "TCP", "port": oc.METRICS_PORT}]}
        for policy in (gateway, agent):
            assert policy["ingress"][1:] == [{"ports": [{"protocol": "TCP", "port": oc.HEALTH_PORT}]}, scrape]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_prometheus_scrapes_both_tiers_own_telemetry(planned, stack) -> None:  # type: ignore[no-untyped-def]
    """Issue 25: the collectors serve their internal metrics on the port a PodMonitor the chart's Prometheus
    selects (the stack's rule labels) scrapes as job adot-collector, keeping the tier as `component`."""
    from infra.components import xray

    result = planned[stack]
    (monitor,) = result.plan.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    labels = monitor.get("metadata.labels")
    assert labels.items() >= result.plan.config.kubernetes.prometheus_rule_labels.items()
    spec = monitor.inputs["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [monitor.get("metadata.namespace")]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert {r["targetLabel"]: r.get("replacement") for r in endpoint["relabelings"]}["job"] == xray.METRICS_JOB
    for tier in (xray.AGENT, xray.GATEWAY):
        doc, _ = _collector_config(result, tier)
        reader = doc["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
        assert reader == {"host": "0.0.0.0", "port": oc.METRICS_PORT}
        (workload,) = [w for kind in ("Deployment", "DaemonSet") for w in _k8s(result, kind, tier)]
        template_labels = workload.get("spec.template.metadata.labels")
        assert template_labels.items() >= spec["selector"]["matchLabels"].items()
        assert template_labels["app.kubernetes.io/component"] == tier
        (container,) = pod_spec(workload)["containers"]
        assert {(p["name"], p["containerPort"]) for p in container["ports"]} >= {(endpoint["port"], oc.METRICS_PORT)}
