"""Tracing: an ADOT collector pipeline that keeps every error and every slow trace, plus X-Ray itself.

Kubernetes (namespace from config, `observability`):
  - agent DaemonSet: X-Ray daemon protocol (UDP 2000, sampling proxy TCP 2000) and OTLP (4317/4318) in,
    `loadbalancing` exporter keyed on trace ID out, to the gateway's headless Service;
  - gateway Deployment (>= 2 replicas, PodDisruptionBudget): `tail_sampling` (errors, latency, probabilistic),
    then the `awsxray` exporter;
  - Service `xray-daemon` (UDP 2000 and friends): akidb-rest keeps sending where it always did;
  - one ServiceAccount per tier with its own IRSA role: the agent may only read sampling rules (its proxy), the
    gateway may only write segments. No Kubernetes RBAC at all: neither tier calls the Kubernetes API.
AWS: head-sampling rules (high rates, so the tail sampler sees the errors it must keep), X-Ray groups for
errors/faults and slow requests with Insights, and an EventBridge rule sending Insights to the P1 topic.

The original plan's daemon was bound to cluster-admin and ran `:latest`; neither is reproduced (the
AWSXRayDaemonWriteAccess managed policy is all a sender needs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.blocks.context import StackContext
from infra.blocks.irsa import irsa_trust_policy
from infra.components import xray_collector as oc
from infra.core.iam import document, known_after, statement
from infra.core.naming import MAX_IAM_ROLE_NAME

COMPONENT = "xray"
TOKEN = "akidb:xray:Tracing"
DAEMON_SERVICE = "xray-daemon"  # the address akidb-rest already uses: keep it
AGENT = "adot-agent"
GATEWAY = "adot-gateway"
GATEWAY_HEADLESS = "adot-gateway-lb"
METRICS_PORT_NAME = "metrics"
# The `job` label of the collectors' own telemetry (rules/symptoms.yaml's trace-pipeline alerts select it).
METRICS_JOB = "adot-collector"
# kube-prometheus-stack's Prometheus pods carry this label (the operator sets it on every Prometheus it runs).
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}
COLLECTOR_UID = 10001  # the ADOT image's non-root user
CHECKSUM_ANNOTATION = "checksum/config"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
MAX_XRAY_NAME = 32  # sampling rule and group names
CATCH_ALL_PRIORITY = 9999  # the highest X-Ray accepts; per-service rules must sort before it
INSIGHT_DETAIL_TYPE = "AWS X-Ray Insight Update"

# Actions per tier, equivalent to the matching half of AWSXRayDaemonWriteAccess. X-Ray supports no
# resource-level permissions for these, so Resource is "*" (allowed by iam_least_privilege's STAR_ONLY list).
AGENT_ACTIONS = ["xray:GetSamplingRules", "xray:GetSamplingStatisticSummaries", "xray:GetSamplingTargets"]
GATEWAY_ACTIONS = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]

AGENT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
GATEWAY_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}


@dataclass
class TracingArgs:
    context: StackContext
    alert_topic_arn: pulumi.Input[str]  # the home region's P1 topic: Insights notifications go there


def seconds(ms: int) -> str:
    """X-Ray filter expressions take response time in seconds: 100 -> '0.1'."""
    return f"{ms / 1000:g}"


def labels(tier: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "adot-collector",
        "app.kubernetes.io/component": tier,
        "app.kubernetes.io/part-of": "akidb-observability",
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": COLLECTOR_UID,
        "runAsGroup": COLLECTOR_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_template(tier: str, image: str, region: str, service_account: str, config_map: str, config_sum: str,
                 ports: list[dict[str, Any]], resources: dict[str, Any]) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/", "port": oc.HEALTH_PORT}, "periodSeconds": 10, "timeoutSeconds": 2}
    return {
        "metadata": {"labels": labels(tier), "annotations": {CHECKSUM_ANNOTATION: config_sum}},
        "spec": {
            "serviceAccountName": service_account,
            # No Kubernetes API calls: no API token in the pod (the IRSA token is projected separately by EKS).
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": COLLECTOR_UID, "runAsGroup": COLLECTOR_UID,
                                "fsGroup": COLLECTOR_UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "collector",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": [f"--config={oc.CONFIG_DIR}/{oc.CONFIG_KEY}"],
                "env": [{"name": "AWS_REGION", "value": region},
                        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}],
                "ports": [*ports, {"name": "health", "containerPort": oc.HEALTH_PORT, "protocol": "TCP"},
                          {"name": METRICS_PORT_NAME, "containerPort": oc.METRICS_PORT, "protocol": "TCP"}],
                "resources": resources,
                "securityContext": container_security_context(),
                "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 3},
                "readinessProbe": {**probe, "initialDelaySeconds": 5, "failureThreshold": 2},
                "volumeMounts": [{"name": "config", "mountPath": oc.CONFIG_DIR, "readOnly": True},
                                 {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": config_map}},
                        # Writable scratch space, since the root filesystem is read-only.
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


AGENT_PORTS = [
    {"name": "xray-udp", "containerPort": oc.XRAY_UDP_PORT, "protocol": "UDP"},
    {"name": "xray-proxy", "containerPort": oc.XRAY_PROXY_PORT, "protocol": "TCP"},
    {"name": "otlp-grpc", "containerPort": oc.OTLP_GRPC_PORT, "protocol": "TCP"},
    {"name": "otlp-http", "containerPort": oc.OTLP_HTTP_PORT, "protocol": "TCP"},
]
GATEWAY_PORTS = [{"name": "otlp-grpc", "containerPort": oc.OTLP_GRPC_PORT, "protocol": "TCP"}]


def service_ports(container_ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": p["name"], "port": p["containerPort"], "targetPort": p["name"], "protocol": p["protocol"]}
            for p in container_ports]


class Tracing(pulumi.ComponentResource):
    """`daemon_address` is what senders use; `group_arns` are the X-Ray groups (errors, slow)."""

    daemon_address: str
    group_arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: TracingArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        self._ctx = ctx
        self._name = name
        cfg = ctx.config.xray
        ns = ctx.config.kubernetes.namespace
        self.daemon_address = f"{DAEMON_SERVICE}.{ns}.svc.cluster.local:{oc.XRAY_UDP_PORT}"

        endpoints = oc.Endpoints(namespace=ns, gateway_headless_service=GATEWAY_HEADLESS)
        # Pods start only once their service account, its AWS permissions and their config exist.
        agent_deps = self._service_account(AGENT, AGENT_ACTIONS)
        gateway_deps = self._service_account(GATEWAY, GATEWAY_ACTIONS)
        agent_cm, agent_sum = self._config_map(AGENT, oc.agent_config(cfg, ctx.region, endpoints), agent_deps)
        gateway_cm, gateway_sum = self._config_map(GATEWAY, oc.gateway_config(cfg, ctx.region), gateway_deps)

        self._gateway(cfg.collector_image, cfg.gateway_replicas, gateway_cm, gateway_sum, gateway_deps)
        self._agent(cfg.collector_image, agent_cm, agent_sum, agent_deps)
        self._network_policies()
        self._pod_monitor()
        self._sampling_rules()
        self.group_arns = self._groups_and_insights(args.alert_topic_arn)
        self.register_outputs({"daemonAddress": self.daemon_address, "groupArns": self.group_arns})

    # ------------------------------------------------------------------------------------------ Kubernetes
    def _child(self, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(depends))

    def _meta(self, name: str, tier: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": self._ctx.config.kubernetes.namespace, "labels": labels(tier), **extra}

    def _service_account(self, tier: str, actions: list[str]) -> list[pulumi.Resource]:
        """Role, policy and ServiceAccount named `tier`; returns them for the workload's depends_on."""
        ctx = self._ctx
        ns = ctx.config.kubernetes.namespace
        provider_arn = ctx.config.kubernetes.oidc_provider_arn
        assert provider_arn  # guaranteed by a cross-field rule of infra/config/__init__.py when xray is enabled
        role_name = ctx.naming.physical("xray", tier, max_len=MAX_IAM_ROLE_NAME)
        role = aws.iam.Role(
            f"{self._name}-{tier}-role",
            name=role_name,
            description=f"IRSA role of {ns}/{tier} (X-Ray only)",
            assume_role_policy=irsa_trust_policy(provider_arn, ns, tier),
            max_session_duration=3600,
            opts=self._child(),
        )
        policy = aws.iam.RolePolicy(
            f"{self._name}-{tier}-xray",
            role=role.name,
            name=f"xray-{tier}",
            policy=document(statement(actions, "*", sid="XRay")),
            opts=self._child(),
        )
        sa = k8s.core.v1.ServiceAccount(
            f"{self._name}-{tier}-sa",
            metadata=self._meta(tier, tier, annotations={IRSA_ANNOTATION: known_after(role, ctx.arns.role(role_name))}),
            automount_service_account_token=False,
            opts=self._child(),
        )
        return [policy, sa]

    def _config_map(self, tier: str, config: dict[str, Any], deps: list[pulumi.Resource]) -> tuple[str, str]:
        """The rendered config in a ConfigMap (added to `deps`); returns its name and checksum."""
        text = oc.render(config)
        name = f"{tier}-config"
        cm = k8s.core.v1.ConfigMap(
            f"{self._name}-{tier}-config",
            metadata=self._meta(name, tier),
            data={oc.CONFIG_KEY: text},
            opts=self._child(),
        )
        deps.append(cm)
        return name, oc.checksum(text)

    def _gateway(self, image: str, replicas: int, cm: str, config_sum: str, deps: list[pulumi.Resource]) -> None:
        ctx = self._ctx
        template = pod_template(GATEWAY, image, ctx.region, GATEWAY, cm, config_sum, GATEWAY_PORTS,
                                GATEWAY_RESOURCES)
        # Spread replicas over nodes and zones: losing one node must not lose every trace in flight.
        template["spec"]["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": labels(GATEWAY)}}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")]
        k8s.apps.v1.Deployment(
            f"{self._name}-gateway",
            metadata=self._meta(GATEWAY, GATEWAY),
            spec={
                "replicas": replicas,
                "selector": {"matchLabels": labels(GATEWAY)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": template,
            },
            opts=self._child(*deps),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-gateway-pdb",
            metadata=self._meta(GATEWAY, GATEWAY),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": labels(GATEWAY)}},
            opts=self._child(),
        )
        # Headless: the agents' DNS resolver sees every gateway pod IP and hashes trace IDs over them.
        k8s.core.v1.Service(
            f"{self._name}-gateway-lb",
            metadata=self._meta(GATEWAY_HEADLESS, GATEWAY),
            spec={"clusterIP": "None", "selector": labels(GATEWAY), "ports": service_ports(GATEWAY_PORTS)},
            opts=self._child(),
        )

    def _agent(self, image: str, cm: str, config_sum: str, deps: list[pulumi.Resource]) -> None:
        ctx = self._ctx
        template = pod_template(AGENT, image, ctx.region, AGENT, cm, config_sum, AGENT_PORTS, AGENT_RESOURCES)
        # A daemon runs on every node, tainted ones included: senders are routed to their own node's agent.
        template["spec"]["tolerations"] = [{"operator": "Exists"}]
        k8s.apps.v1.DaemonSet(
            f"{self._name}-agent",
            metadata=self._meta(AGENT, AGENT),
            spec={
                "selector": {"matchLabels": labels(AGENT)},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": template,
            },
            opts=self._child(*deps),
        )
        k8s.core.v1.Service(
            f"{self._name}-daemon",
            metadata=self._meta(DAEMON_SERVICE, AGENT),
            spec={
                "type": "ClusterIP",
                "selector": labels(AGENT),
                "ports": service_ports(AGENT_PORTS),
                # Like the old daemon on each node: a segment never crosses nodes before the load balancer.
                "internalTrafficPolicy": "Local",
            },
            opts=self._child(),
        )

    def _network_policies(self) -> None:
        """Only the agents may reach the gateway (it writes to X-Ray with its IRSA role); only pods of this
        cluster may reach the agents. Health checks stay open to the kubelet; the metrics port to Prometheus'
        pods (any namespace); egress (X-Ray, STS) is not limited."""
        health = {"protocol": "TCP", "port": oc.HEALTH_PORT}
        scrape = {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": PROMETHEUS_POD_LABELS}}],
                  "ports": [{"protocol": "TCP", "port": oc.METRICS_PORT}]}
        for tier, ports, sources in (
                (GATEWAY, GATEWAY_PORTS, [{"podSelector": {"matchLabels": labels(AGENT)}}]),
                (AGENT, AGENT_PORTS, [{"namespaceSelector": {}}])):
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{tier}-ingress",
                metadata=self._meta(f"{tier}-ingress", tier),
                spec={
                    "podSelector": {"matchLabels": labels(tier)},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {"from": sources,
                         "ports": [{"protocol": p["protocol"], "port": p["containerPort"]} for p in ports]},
                        {"ports": [health]},
                        scrape,
                    ],
                },
                opts=self._child(),
            )

    def _pod_monitor(self) -> None:
        """Both tiers' internal metrics scraped by kube-prometheus-stack's Prometheus: a PodMonitor carrying the
        labels its selectors match (the chart's default podMonitorSelector, like its ruleSelector, is
        `release: <release name>`: kubernetes.prometheusRuleLabels). `job` is fixed and the tier kept as
        `component`, so the alerts need not know the namespace."""
        kcfg = self._ctx.config.kubernetes
        name = "adot-collector"
        k8s.apiextensions.CustomResource(
            f"{self._name}-pod-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"name": name, "namespace": kcfg.namespace,
                      "labels": {**labels("telemetry"), **kcfg.prometheus_rule_labels}},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": "adot-collector"}},
                "namespaceSelector": {"matchNames": [kcfg.namespace]},
                "podMetricsEndpoints": [{
                    "port": METRICS_PORT_NAME,
                    "path": "/metrics",
                    "relabelings": [
                        {"action": "replace", "targetLabel": "job", "replacement": METRICS_JOB},
                        {"action": "replace", "targetLabel": "component",
                         "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]},
                    ],
                }],
            },
            opts=self._child(),
        )

    # ------------------------------------------------------------------------------------------------ AWS
    def _sampling_rules(self) -> None:
        """Head sampling decides what reaches the collector at all, so rates stay high (1.0 by default):
        a trace the SDK did not sample can never be kept by the tail sampler, error or not."""
        ctx = self._ctx
        cfg = ctx.config.xray
        rules = [(r.service_name, r.fixed_rate, r.reservoir_size, r.priority, r.url_path, r.http_method)
                 for r in cfg.sampling_rules]
        rules.append(("*", cfg.default_fixed_rate, 1, CATCH_ALL_PRIORITY, "*", "*"))
        for service, rate, reservoir, priority, path, method in rules:
            slug = "default" if service == "*" else service
            aws.xray.SamplingRule(
                f"{self._name}-rule-{slug}",
                rule_name=ctx.naming.physical(slug, max_len=MAX_XRAY_NAME),
                priority=priority,
                fixed_rate=rate,
                reservoir_size=reservoir,
                service_name=service,
                service_type="*",
                host="*",
                http_method=method,
                url_path=path,
                resource_arn="*",
                version=1,
                opts=self._child(),
            )

    def _groups_and_insights(self, topic_arn: pulumi.Input[str]) -> dict[str, pulumi.Output[str]]:
        ctx = self._ctx
        cfg = ctx.config.xray
        filters = {
            "errors": "fault = true OR error = true",
            "slow": f"responsetime > {seconds(cfg.latency_threshold_ms)}",
        }
        arns: dict[str, pulumi.Output[str]] = {}
        names: list[str] = []
        for key, expression in filters.items():
            group_name = ctx.naming.physical(key, max_len=MAX_XRAY_NAME)
            names.append(group_name)
            group = aws.xray.Group(
                f"{self._name}-group-{key}",
                group_name=group_name,
                filter_expression=expression,
                insights_configuration={"insights_enabled": cfg.insights_enabled,
                                        "notifications_enabled": cfg.insights_enabled},
                opts=self._child(),
            )
            arns[key] = group.arn
        if cfg.insights_enabled:
            rule = aws.cloudwatch.EventRule(
                f"{self._name}-insights",
                name=ctx.naming.physical("xray-insights"),
                description="X-Ray Insights on the errors and slow groups -> P1 alert topic",
                event_pattern=json.dumps({
                    "source": ["aws.xray"],
                    "detail-type": [INSIGHT_DETAIL_TYPE],
                    "detail": {"GroupName": names},
                }, sort_keys=True),
                opts=self._child(),
            )
            aws.cloudwatch.EventTarget(
                f"{self._name}-insights-p1",
                rule=rule.name,
                arn=topic_arn,
                retry_policy={"maximum_event_age_in_seconds": 3600, "maximum_retry_attempts": 10},
                opts=self._child(),
            )
        return arns
