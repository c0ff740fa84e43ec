"""Rules for every Kubernetes object in the plan, whichever component created it.

- images pinned by digest (a tag, even a version tag, can be re-pointed to other bytes);
- every container has CPU and memory requests and limits;
- every container runs non-root, with a read-only root filesystem, all capabilities dropped, no privilege
  escalation, not privileged (pod-level runAsNonRoot counts);
- every workload's pods selected by an ingress NetworkPolicy of their namespace (default-open pods are reachable
  by every pod of the cluster);
- RBAC: no binding to cluster-admin (or admin/edit), no wildcard verbs/resources/apiGroups;
- every object valid against the Kubernetes OpenAPI schema of `kubernetes.clusterVersion` (kubernetes-validate,
  strict: unknown fields are errors). Custom resources (PrometheusRule, AlertmanagerConfig, ...) have no schema
  there and are skipped by this check only; the other checks still apply to them where they make sense.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import kubernetes_validate
from kubernetes_validate import utils as kv_utils

from infra.plan.model import UNKNOWN, UNKNOWN_SECRET
from infra.validation import Plan, PlannedResource, Violation, rule

# Where the pod spec sits inside each workload kind.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
ADMIN_ROLES = ("cluster-admin", "admin", "edit")
RESOURCE_KEYS = ("cpu", "memory")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
# kubernetes-validate reads and parses its schema files on every call (a version's _definitions.json is 1.6 MB:
# ~13 ms per object, 0.27 s of a plan's 20 objects). They are read-only data: each file is parsed once per process.
kv_utils.schema_contents = cache(kv_utils.schema_contents)


def image_pinned(image: str) -> bool:
    """Pinned = a digest (`a/b@sha256:<64 hex>`, `registry:5000/a/b:v1@sha256:...`); a tag alone is not."""
    name = _DIGEST.sub("", image)
    if name == image or not name or " " in name:
        return False
    repo, _, tag = name.rpartition(":")
    # A colon before the last slash is a registry port, not a tag.
    return "/" in tag or not repo or bool(_TAG.match(tag))


def k8s_objects(plan: Plan) -> list[PlannedResource]:
    """Kubernetes objects (not providers, not Helm releases or YAML groups without apiVersion/kind)."""
    return [r for r in plan.resources
            if r.custom and r.type.startswith("kubernetes:") and r.inputs.get("kind") and r.inputs.get("apiVersion")]


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def pod_spec(obj: PlannedResource) -> dict[str, Any] | None:
    path = POD_SPEC_PATHS.get(str(obj.inputs.get("kind")))
    spec = _dig(obj.inputs, path) if path else None
    return spec if isinstance(spec, dict) else None


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield f"{key[:-1]} {c.get('name', '?')}", c


def _workloads(plan: Plan) -> Iterator[tuple[PlannedResource, dict[str, Any], str, dict[str, Any]]]:
    for obj in k8s_objects(plan):
        spec = pod_spec(obj)
        if spec is None:
            continue
        for where, c in containers(spec):
            yield obj, spec, where, c


@rule
def k8s_images_pinned(plan: Plan) -> Iterator[Violation]:
    for obj, _, where, c in _workloads(plan):
        image = str(c.get("image") or "")
        if not image_pinned(image):
            yield Violation("k8s_images_pinned", obj.label,
                            f"{where}: image {image!r} is not pinned by digest (use name[:tag]@sha256:<64 hex>; "
                            "a tag can be re-pointed)")


def pod_labels(obj: PlannedResource) -> dict[str, str]:
    """The labels of the pods a workload creates (a Pod's own, else its pod template's)."""
    path = POD_SPEC_PATHS.get(str(obj.inputs.get("kind")))
    labels = _dig(obj.inputs, (*path[:-1], "metadata", "labels")) if path else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _selects(selector: Any, labels: dict[str, str]) -> bool:
    """matchLabels only: a selector with matchExpressions is not evaluated here and counts as not selecting."""
    if not isinstance(selector, dict) or selector.get("matchExpressions"):
        return False
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(str(k)) == str(v) for k, v in wanted.items())


@rule
def k8s_network_policy(plan: Plan) -> Iterator[Violation]:
    policies = [(_dig(r.inputs, ("metadata", "namespace")), r.inputs.get("spec") or {}) for r in k8s_objects(plan)
                if r.inputs.get("kind") == "NetworkPolicy"]
    ingress = [(ns, spec.get("podSelector")) for ns, spec in policies
               if "Ingress" in (spec.get("policyTypes") or ["Ingress"])]
    for obj in k8s_objects(plan):
        if pod_spec(obj) is None:
            continue
        ns, labels = _dig(obj.inputs, ("metadata", "namespace")), pod_labels(obj)
        if not any(pns == ns and _selects(selector, labels) for pns, selector in ingress):
            yield Violation("k8s_network_policy", obj.label,
                            f"no ingress NetworkPolicy in namespace {ns!r} selects its pods {labels}: any pod of "
                            "the cluster can reach them")


@rule
def k8s_container_resources(plan: Plan) -> Iterator[Violation]:
    for obj, _, where, c in _workloads(plan):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = [k for k in RESOURCE_KEYS if not (res.get(kind) or {}).get(k)]
            if missing:
                yield Violation("k8s_container_resources", obj.label,
                                f"{where}: no {kind} for {', '.join(missing)}")


@rule
def k8s_security_context(plan: Plan) -> Iterator[Violation]:
    for obj, spec, where, c in _workloads(plan):
        pod_sc = spec.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        problems = []
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True:
            problems.append("runAsNonRoot is not true")
        if user == 0:
            problems.append("runAsUser is 0 (root)")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if sc.get("privileged") is True:
            problems.append("privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append("capabilities.drop does not contain ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"adds capabilities {sc['capabilities']['add']}")
        for p in problems:
            yield Violation("k8s_security_context", obj.label, f"{where}: {p}")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            yield Violation("k8s_security_context", obj.label, f"{where}: pod shares a host namespace")


@rule
def k8s_rbac_least_privilege(plan: Plan) -> Iterator[Violation]:
    for obj in k8s_objects(plan):
        kind = obj.inputs.get("kind")
        if kind in ("ClusterRoleBinding", "RoleBinding"):
            ref = obj.inputs.get("roleRef") or {}
            if ref.get("name") in ADMIN_ROLES and ref.get("kind") == "ClusterRole":
                yield Violation("k8s_rbac_least_privilege", obj.label,
                                f"binds the built-in ClusterRole {ref.get('name')}; grant only what is needed")
        if kind in ("ClusterRole", "Role"):
            for i, r in enumerate(obj.inputs.get("rules") or []):
                for key in ("verbs", "resources", "apiGroups", "nonResourceURLs"):
                    if "*" in (r.get(key) or []):
                        yield Violation("k8s_rbac_least_privilege", obj.label,
                                        f"rules[{i}].{key} contains '*'; list what is needed")
                if r.get("resources") and {"secrets"} & set(r["resources"]) and not r.get("resourceNames"):
                    yield Violation("k8s_rbac_least_privilege", obj.label,
                                    f"rules[{i}] reads every secret; restrict with resourceNames")
            if obj.inputs.get("aggregationRule"):
                yield Violation("k8s_rbac_least_privilege", obj.label,
                                "aggregationRule: the role's rights depend on other roles; list rules explicitly")


@cache
def schema_versions() -> tuple[str, ...]:
    """Kubernetes minor versions the installed kubernetes-validate has schemas for."""
    return tuple(kv_utils.major_minor(v) for v in kv_utils.all_versions())


def schema_problem(manifest: dict[str, Any], version: str) -> str | None:
    """None if `manifest` is valid for Kubernetes `version` (or is a kind it has no schema for)."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return None  # a custom resource: its CRD's schema is not in the Kubernetes OpenAPI document
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.absolute_path) or "(root)"
        return f"not valid for Kubernetes {version}: {path}: {err.message}"
    return None


def _without_redacted(value: Any) -> Any:
    """Drop fields the plan redacted as "[secret]" (e.g. every Secret's data/stringData, which the SDK marks
    secret) or holds as unknown at preview (a Secret's data built from keys another provider creates): their shape
    cannot be checked, the rest of the object still is."""
    if isinstance(value, dict):
        return {k: _without_redacted(v) for k, v in value.items() if v not in ("[secret]", UNKNOWN, UNKNOWN_SECRET)}
    if isinstance(value, list):
        return [_without_redacted(v) for v in value]
    return value


@rule
def k8s_openapi_schema(plan: Plan) -> Iterator[Violation]:
    objects = k8s_objects(plan)
    if not objects:
        return
    version = plan.config.kubernetes.cluster_version
    known = schema_versions()
    if version not in known:
        yield Violation("k8s_openapi_schema", f"kubernetes.clusterVersion {version}",
                        f"kubernetes-validate {kubernetes_validate.version.__version__} has schemas for "
                        f"{known[0]}..{known[-1]} only; objects cannot be checked")
        return
    for obj in objects:
        problem = schema_problem(_without_redacted(obj.inputs), version)
        if problem:
            yield Violation("k8s_openapi_schema", obj.label, problem)
