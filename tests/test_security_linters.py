"""The field's own linters over what the stack deploys and what the repository holds (issue 12).

- parliament (Duo Labs' IAM linter) on every policy document in both plans: identity policies (role policies)
  must have no finding at all (unknown actions or condition keys, a resource of the wrong type for an action,
  `*` where the action takes a resource); resource policies (key, topic, queue, bucket and trust policies) must
  name only actions, prefixes and condition keys that exist. parliament reads resource policies as identity
  policies (it asks them for a Resource; `*` in a key policy means "this key"), so only those checks apply there.
- detect-secrets on every tracked file: nothing that looks like a credential beyond the audited entries of
  `.secrets.baseline` (names of secrets, test fixtures, an image digest: each marked `is_secret: false`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import parliament
import pytest
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

from infra.core.paths import ROOT
from infra.plan.model import Plan
from infra.validation.foundation import identity_policy_docs

IDENTITY_POLICY_TYPES = {"aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"}
# Resource policies: whatever else holds a policy document (keys, topics, buckets, queues, trust policies).
POLICY_KEYS = ("policy", "assumeRolePolicy", "accessPolicies")
# Findings that are not about the policy: what a resource policy is, and parliament's IAM data (1.6.4) lagging
# AWS. kms:ResourceAliases is a global KMS condition key since 2021 (AWS KMS "ABAC" docs); parliament's
# iam_definition.json predates it. EKS OIDC providers are not in its list of federation sources.
RESOURCE_POLICY_ONLY = {"UNKNOWN_ACTION", "UNKNOWN_PREFIX", "UNKNOWN_CONDITION_FOR_ACTION", "MALFORMED_JSON",
                        "UNKNOWN_OPERATOR", "MISMATCHED_TYPE"}
KNOWN_STALE = {("UNKNOWN_CONDITION_FOR_ACTION", "kms:ResourceAliases")}
BASELINE = ROOT / ".secrets.baseline"
# Generated from definitions that are scanned themselves (the drift tests hold them to those definitions).
NOT_SCANNED = ("dashboards/", "rules/")


@dataclass(frozen=True)
class PolicyFinding:
    resource: str
    key: str
    issue: str
    detail: str

    def __str__(self) -> str:
        return f"{self.resource} {self.key}: {self.issue} {self.detail}"


def _documents(plan: Plan) -> Iterator[tuple[str, str, str, bool]]:
    # Identity policies as the plan rules read them (iam_least_privilege), inline role policies included.
    for label, doc in identity_policy_docs(plan):
        yield label, "policy", json.dumps(doc), True
    for r in plan.resources:
        for key in POLICY_KEYS:
            value = r.inputs.get(key)
            if (isinstance(value, str) and value.lstrip().startswith("{")
                    and not (r.type in IDENTITY_POLICY_TYPES and key == "policy")):
                yield r.label, key, value, False


def _stale(issue: str, detail: Any) -> bool:
    return any(issue == i and key in str(detail) for i, key in KNOWN_STALE)


def policy_findings(plan: Plan) -> list[PolicyFinding]:
    found = []
    for label, key, text, identity in _documents(plan):
        for f in parliament.analyze_policy_string(text, ignore_private_auditors=True).findings:
            if _stale(f.issue, f.detail) or (not identity and f.issue not in RESOURCE_POLICY_ONLY):
                continue
            found.append(PolicyFinding(label, key, f.issue, str(f.detail)[:300]))
    return found


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_policy_passes_parliament(planned, stack):
    plan = planned[stack].plan
    identity = [d for d in _documents(plan) if d[3]]
    roles = plan.of_type("aws:iam/role:Role")
    assert roles and len(identity) >= len(roles), "a role's policy was not found: the lint would pass vacuously"
    assert [str(f) for f in policy_findings(plan)] == []


def _with_statement(plan: Plan, statement: dict[str, Any], resource_type: str) -> Plan:
    resources = list(plan.resources)
    i = next(i for i, r in enumerate(resources) if r.type == resource_type and "policy" in r.inputs)
    doc = json.loads(resources[i].inputs["policy"])
    doc["Statement"].append(statement)
    resources[i] = dataclasses.replace(resources[i], inputs={**resources[i].inputs, "policy": json.dumps(doc)})
    return dataclasses.replace(plan, resources=resources)


@pytest.mark.parametrize("statement, issue", [
    ({"Effect": "Allow", "Action": "sns:Publsh", "Resource": "*"}, "UNKNOWN_ACTION"),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:sns:us-east-1:111111111111:t"},
     "RESOURCE_MISMATCH"),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "RESOURCE_STAR"),
])
def test_parliament_catches_a_bad_role_statement(planned, statement, issue):
    bad = _with_statement(planned["staging"].plan, statement, "aws:iam/rolePolicy:RolePolicy")
    assert issue in {f.issue for f in policy_findings(bad)}


def test_parliament_catches_an_unknown_action_in_a_resource_policy(planned):
    bad = _with_statement(planned["staging"].plan, {"Effect": "Allow", "Principal": {"AWS": "*"},
                                                    "Action": "kms:Decrpyt", "Resource": "*"}, "aws:kms/key:Key")
    assert "UNKNOWN_ACTION" in {f.issue for f in policy_findings(bad)}


# ---------------------------------------------------------------------------------------------- detect-secrets
def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if not f.startswith(NOT_SCANNED) and f != BASELINE.name
            and (ROOT / f).is_file()]


def _secret_keys(results: dict[str, list[dict[str, Any]]]) -> set[tuple[str, str, str]]:
    return {(path, s["type"], s["hashed_secret"]) for path, found in results.items() for s in found}


def scan(files: list[str], root: Path = ROOT) -> dict[str, list[dict[str, Any]]]:
    collection = SecretsCollection(root=str(root))
    with default_settings():
        for f in files:
            collection.scan_file(f)
    results: dict[str, list[dict[str, Any]]] = collection.json()
    return results


def test_no_secret_in_the_repository_beyond_the_audited_baseline():
    baseline = json.loads(BASELINE.read_text())["results"]
    assert all(s.get("is_secret") is False for found in baseline.values() for s in found), \
        ".secrets.baseline holds an entry not audited as a false positive (is_secret: false)"
    new = _secret_keys(scan(_tracked_files())) - _secret_keys(baseline)
    assert sorted(new) == [], "possible secrets (audit them, or remove them and use a Pulumi secret)"


def test_detect_secrets_finds_a_planted_key(tmp_path):
    planted = tmp_path / "leak.py"
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # pragma: allowlist secret
    token = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"  # pragma: allowlist secret
    planted.write_text(f'AWS_SECRET_ACCESS_KEY = "{key}"\ntoken = "{token}"\n')
    found = scan([str(planted)], root=tmp_path)
    assert found, "detect-secrets found nothing in a file holding an AWS secret key and a GitHub token"
