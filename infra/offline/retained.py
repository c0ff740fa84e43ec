"""`make import-retained STACK=<stack>`: the `pulumi import` lines that adopt what a destroy leaves behind.

A destroy keeps resources marked `retainOnDelete` (the edge function, its role and policy: Lambda@Edge replicas
outlive the association for hours) or `skipDestroy`, and refuses to touch `protect`ed ones (prod's buckets,
keys, topics, table). After a destroy (or a lost state) those still exist in AWS under their fixed names, so
the next `pulumi up` fails with "already exists" until they are imported back into the stack. The lines below
are derived from the stack's config through the plan: the same names, parents and providers the program uses.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import PROJECT
from infra.offline.plan import plan_document, run_plan


@dataclass(frozen=True)
class Retained:
    type: str
    name: str
    reasons: tuple[str, ...]
    import_id: str
    parent_urn: str | None
    provider_urn: str | None
    region: str | None
    protect: bool

    def command(self, stack: str) -> str:
        parts = ["pulumi", "import", "--stack", stack, "--yes", "--generate-code=false",
                 f"--protect={'true' if self.protect else 'false'}"]
        if self.parent_urn:
            parts += ["--parent", f"parent={self.parent_urn}"]
        if self.provider_urn:
            parts += ["--provider", f"provider={self.provider_urn}"]
        quoted = " ".join(shlex.quote(p) for p in [*parts, self.type, self.name])
        # An id found by a lookup is double-quoted so the shell runs the lookup.
        ident = f'"{self.import_id}"' if "$(" in self.import_id else shlex.quote(self.import_id)
        return f"{quoted} {ident}"


def engine_urn(urn: str | None) -> str | None:
    """The mock runtime puts the root stack's type into top-level URNs; the engine does not."""
    return urn.replace("::pulumi:pulumi:Stack$", "::") if urn else None


def _reasons(entry: dict[str, Any]) -> tuple[str, ...]:
    options = entry.get("options") or {}
    out = [key for key in ("retainOnDelete", "protect") if options.get(key)]
    if entry.get("inputs", {}).get("skipDestroy"):
        out.append("skipDestroy")
    return tuple(out)


def _account(doc: dict[str, Any]) -> str:
    """The account the providers are pinned to (`aws.allowedAccountIds` in the stack config)."""
    for r in doc["resources"]:
        if r["type"] == "pulumi:providers:aws":
            ids = r.get("inputs", {}).get("allowedAccountIds")
            parsed = json.loads(ids) if isinstance(ids, str) else ids
            if parsed:
                return str(parsed[0])
    return "<account-id>"


def import_id(entry: dict[str, Any], doc: dict[str, Any]) -> str:
    """The id `pulumi import` needs for this type (pulumi-aws import docs), built from known names."""
    t, inputs, region = entry["type"], entry.get("inputs", {}), entry.get("region") or "us-east-1"
    account = _account(doc)
    if t in ("aws:lambda/function:Function", "aws:iam/role:Role", "aws:cloudwatch/logGroup:LogGroup",
             "aws:dynamodb/table:Table", "aws:kms/alias:Alias"):
        return str(inputs.get("name"))
    if t == "aws:s3/bucket:Bucket":
        return str(inputs.get("bucket"))
    if t == "aws:iam/rolePolicy:RolePolicy":
        if inputs.get("name"):
            return f"{inputs.get('role')}:{inputs.get('name')}"
        # Autonamed by Pulumi (`<resource name>-<random suffix>`): found on the role.
        query = f"PolicyNames[?starts_with(@, '{entry['name']}-')]|[0]"
        return (f"{inputs.get('role')}:$(aws iam list-role-policies --role-name {inputs.get('role')} "
                f"--query \"{query}\" --output text)")
    if t == "aws:iam/policy:Policy":
        return f"arn:aws:iam::{account}:policy{inputs.get('path') or '/'}{inputs.get('name')}"
    if t == "aws:sns/topic:Topic":
        return f"arn:aws:sns:{region}:{account}:{inputs.get('name')}"
    if t == "aws:sqs/queue:Queue":
        return f"https://sqs.{region}.amazonaws.com/{account}/{inputs.get('name')}"
    if t == "aws:kms/key:Key":
        alias = next((a["inputs"].get("name") for a in doc["resources"]
                      if a["type"] == "aws:kms/alias:Alias" and _same_key(a, entry)), None)
        if alias:
            return (f"$(aws kms describe-key --region {region} --key-id {alias} "
                    "--query KeyMetadata.KeyId --output text)")
        return (f"$(aws kms list-keys --region {region} --query Keys[].KeyId --output text)"
                f"  # pick the key described as {inputs.get('description')!r}")
    if t == "aws:secretsmanager/secret:Secret":
        return (f"$(aws secretsmanager describe-secret --region {region} --secret-id {inputs.get('name')} "
                "--query ARN --output text)")
    if t == "pagerduty:index/service:Service":
        # PagerDuty imports by object id, which PagerDuty picks: looked up by the service's name (REST API v2,
        # GET /services?query=), with the token the stack's provider uses.
        return ("$(curl -s -H \"Authorization: Token token=$PAGERDUTY_TOKEN\" "
                f"\"https://api.pagerduty.com/services?query={inputs.get('name')}\" | jq -r '.services[0].id')")
    if t.startswith("kubernetes:"):
        meta = inputs.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
    for key in ("name", "bucket", "alarmName", "dashboardName"):
        if inputs.get(key):
            return str(inputs[key])
    return f"<id: see the pulumi-aws import docs for {t}>"


def _same_key(alias: dict[str, Any], key: dict[str, Any]) -> bool:
    """The components name a key's alias after the key (`<key>-alias`)."""
    return bool(alias["name"] == f"{key['name']}-alias")


def retained(doc: dict[str, Any]) -> list[Retained]:
    urns = {(r.get("type"), r.get("name")): r.get("urn") for r in doc["resources"]}
    by_name = {r["name"]: r for r in doc["resources"]}
    out = []
    for entry in doc["resources"]:
        reasons = _reasons(entry)
        if not reasons or not entry.get("custom", True):
            continue
        parent = by_name.get(entry["parent"]) if entry.get("parent") else None
        provider = by_name.get(entry["provider"]) if entry.get("provider") else None
        out.append(Retained(
            type=entry["type"], name=entry["name"], reasons=reasons, import_id=import_id(entry, doc),
            parent_urn=engine_urn(urns.get((parent["type"], parent["name"]))) if parent else None,
            provider_urn=engine_urn(urns.get((provider["type"], provider["name"]))) if provider else None,
            region=entry.get("region"), protect=bool((entry.get("options") or {}).get("protect"))))
    return out


def render(stack: str, items: list[Retained]) -> str:
    lines = [f"# Resources of stack '{stack}' ({PROJECT}) that a destroy keeps or refuses to delete: {len(items)}.",
             "# After `pulumi destroy` (or a lost state), run these before the next `pulumi up`;",
             "# an id in $(...) is looked up with the AWS CLI (it is assigned by AWS, not by config).",
             "# First the providers and parent components the imports attach to (no AWS resource is created):"]
    targets = sorted({u for item in items for u in (item.parent_urn, item.provider_urn) if u})
    if targets:
        lines.append(" ".join(["pulumi", "up", "--stack", stack, "--yes",
                               *[f"--target {shlex.quote(u)}" for u in targets]]))
    for item in items:
        lines.append(f"# {item.type} {item.name} [{', '.join(item.reasons)}]"
                     f"{f' in {item.region}' if item.region else ''}")
        lines.append(item.command(stack))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pulumi import lines for the resources a destroy leaves behind.")
    parser.add_argument("--stack", default="staging", help="stack name (Pulumi.<stack>.yaml), default staging")
    parser.add_argument("--plan", type=Path, metavar="FILE", help="read a saved plan.json instead of planning")
    args = parser.parse_args(argv)
    if args.plan is not None:
        try:
            doc = json.loads(args.plan.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"import-retained: cannot read {args.plan}: {err}", file=sys.stderr)
            return 2
        if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
            print(f"import-retained: {args.plan} is not an offline plan (no 'resources' list)", file=sys.stderr)
            return 2
    else:
        result = run_plan(args.stack, quiet=True, write=False)
        if result.config_problems:
            print(f"Invalid stack config for '{args.stack}':", file=sys.stderr)
            for line in result.config_problems:
                print(f"  {line}", file=sys.stderr)
            return 2
        doc = plan_document(result)
    print(render(args.stack, retained(doc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
