"""`make plan-diff`: what `pulumi preview --diff` would print for this change, from two offline plans.

    python -m infra.offline.diff --stack staging                 # against the merge base with main
    python -m infra.offline.diff --stack prod --against v1.4.0   # against any git ref
    python -m infra.offline.diff --stack prod --plan old.json    # against a saved build/<stack>/plan.json

The base plan of a git ref is computed in a temporary `git worktree` of that ref (sharing this checkout's model
and wheel caches), the new plan from the working tree. Per resource: create (+), update (~), delete (-) or
replace (+-); per property: the old and new value, secrets masked; JSON documents held in strings (IAM policies,
dashboard bodies) are compared inside. A warning is printed for every replacement of a resource with a fixed
physical name: AWS refuses the create while the old resource exists (or, with deleteBeforeReplace, there is
downtime). `--markdown FILE` writes the PR comment (one per stack, found again by its marker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.core.paths import BUILD_DIR, ROOT
from infra.offline.plan import plan_document, run_plan

SECRET_MASK = "[secret]"
# Properties whose change makes the provider replace the resource (pulumi-aws / Terraform ForceNew, Kubernetes
# immutable metadata). "region" (pulumi-aws v7 per-resource region) replaces any AWS resource.
REPLACE_ON: dict[str, tuple[str, ...]] = {
    "aws:lambda/function:Function": ("name",),
    "aws:lambda/permission:Permission": ("action", "functionName", "principal", "qualifier", "sourceArn",
                                         "sourceAccount", "statementId"),
    "aws:lambda/alias:Alias": ("name", "functionName"),
    "aws:lambda/eventSourceMapping:EventSourceMapping": ("eventSourceArn", "startingPosition"),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": ("functionName", "qualifier"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("bucket", "key"),
    "aws:s3/bucketPolicy:BucketPolicy": ("bucket",),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("bucket",),
    "aws:s3/bucketVersioning:BucketVersioning": ("bucket",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ("bucket",),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ("bucket",),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/policy:Policy": ("name", "namePrefix", "path", "description"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "namePrefix", "role"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("role", "policyArn"),
    "aws:sns/topic:Topic": ("name", "namePrefix", "fifoTopic"),
    "aws:sns/topicPolicy:TopicPolicy": ("arn",),
    "aws:sns/topicSubscription:TopicSubscription": ("topic", "protocol", "endpoint"),
    "aws:sqs/queue:Queue": ("name", "namePrefix", "fifoQueue"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix", "logGroupClass"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("alarmName",),
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": ("alarmName",),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName",),
    "aws:cloudwatch/eventRule:EventRule": ("name", "namePrefix", "eventBusName"),
    "aws:cloudwatch/eventTarget:EventTarget": ("rule", "targetId", "eventBusName"),
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": ("name", "logGroupName"),
    "aws:dynamodb/table:Table": ("name",),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion"),
    "aws:kms/alias:Alias": ("name", "namePrefix"),
    "aws:secretsmanager/secret:Secret": ("name", "namePrefix"),
    "aws:secretsmanager/secretVersion:SecretVersion": ("secretId",),
    "aws:scheduler/schedule:Schedule": ("name", "groupName"),
    "aws:xray/group:Group": ("groupName",),
    "aws:xray/samplingRule:SamplingRule": ("ruleName",),
    "aws:apigatewayv2/api:Api": ("protocolType",),
    "aws:apigatewayv2/integration:Integration": ("apiId", "integrationType"),
    "aws:apigatewayv2/route:Route": ("apiId",),
    "aws:apigatewayv2/stage:Stage": ("apiId", "name"),
}
KUBERNETES_REPLACE_ON = ("metadata.name", "metadata.namespace")
# The input that holds a resource's fixed physical name (absent = autonamed: a replacement can create first).
PHYSICAL_NAME: dict[str, str] = {
    "aws:lambda/function:Function": "name", "aws:s3/bucket:Bucket": "bucket", "aws:iam/role:Role": "name",
    "aws:iam/policy:Policy": "name", "aws:iam/rolePolicy:RolePolicy": "name", "aws:sns/topic:Topic": "name",
    "aws:sqs/queue:Queue": "name", "aws:cloudwatch/logGroup:LogGroup": "name",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "alarmName", "aws:cloudwatch/compositeAlarm:CompositeAlarm":
    "alarmName", "aws:cloudwatch/dashboard:Dashboard": "dashboardName", "aws:cloudwatch/eventRule:EventRule":
    "name", "aws:dynamodb/table:Table": "name", "aws:kms/alias:Alias": "name",
    "aws:secretsmanager/secret:Secret": "name", "aws:scheduler/schedule:Schedule": "name",
    "aws:xray/group:Group": "groupName", "aws:xray/samplingRule:SamplingRule": "ruleName",
    "aws:s3/bucketObjectv2:BucketObjectv2": "key",
}


class DiffError(Exception):
    """A plan or ref that cannot be compared (message says what and how to fix it)."""


@dataclass
class PropertyChange:
    path: str
    old: Any
    new: Any
    replaces: bool = False

    def line(self) -> str:
        if self.old is _ABSENT:
            return f"+ {self.path}: {_show(self.new)}"
        if self.new is _ABSENT:
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} => {_show(self.new)}"


@dataclass
class ResourceChange:
    op: str  # create | update | delete | replace
    key: str
    type: str
    name: str
    properties: list[PropertyChange] = field(default_factory=list)
    warning: str | None = None


@dataclass
class PlanDiff:
    stack: str
    base: str
    changes: list[ResourceChange]
    moved: dict[str, str] = field(default_factory=dict)  # new URN -> old URN, matched by the new one's aliases

    @property
    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        for c in self.changes:
            out[c.op] += 1
        return out

    @property
    def warnings(self) -> list[str]:
        return [c.warning for c in self.changes if c.warning]


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()
_SYMBOL = {"create": "+ ", "update": "~ ", "delete": "- ", "replace": "+-"}


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."


def _decoded(value: Any) -> Any:
    """JSON documents held in strings (policies, dashboard bodies) are compared as documents."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _portable_path(path: str, value: Any) -> Any:
    """Archive paths of plans written before they were relative: `/any/checkout/build/x` -> `build/x`."""
    if path.endswith(".path") and isinstance(value, str) and value.startswith("/") and "/build/" in value:
        return "build/" + value.split("/build/", 1)[1]
    return value


def _masked(value: Any, secret: bool) -> Any:
    return SECRET_MASK if secret else value


def property_changes(old: Any, new: Any, path: str = "") -> Iterator[PropertyChange]:
    """Leaf-level differences between two input trees; a masked secret on either side hides both values."""
    old, new = _decoded(_portable_path(path, old)), _decoded(_portable_path(path, new))
    if SECRET_MASK in (old, new):
        if old != new:
            yield PropertyChange(path, _masked(old, True), _masked(new, True))
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            yield from property_changes(old.get(key, _ABSENT), new.get(key, _ABSENT), sub)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from property_changes(a, b, f"{path}[{i}]")
        return
    if old != new and not (old is _ABSENT and new is None) and not (old is None and new is _ABSENT):
        yield PropertyChange(path, old, new)


def _replace_keys(type_token: str) -> tuple[str, ...]:
    if type_token.startswith("kubernetes:"):
        return KUBERNETES_REPLACE_ON
    keys = REPLACE_ON.get(type_token, ())
    return (*keys, "region") if type_token.startswith("aws:") else keys


def _forces_replace(type_token: str, prop_path: str) -> bool:
    return any(prop_path == k or prop_path.startswith(k + ".") or prop_path.startswith(k + "[")
               for k in _replace_keys(type_token))


def _key(entry: dict[str, Any]) -> str:
    return str(entry.get("urn") or f"{entry['type']}::{entry['name']}")


def _index(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = doc.get("resources")
    if not isinstance(resources, list):
        raise DiffError("not an offline plan: expected a JSON object with a 'resources' list "
                        "(build/<stack>/plan.json written by `make plan`)")
    with_urns = all("urn" in r for r in resources)
    # Plans written before URNs were recorded are matched by type and name.
    return {(_key(r) if with_urns else f"{r['type']}::{r['name']}"): r for r in resources}


def _comparable(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    if all("::" in k and not k.startswith("urn:") for k in old) and any(k.startswith("urn:") for k in new):
        new = {f"{r['type']}::{r['name']}": r for r in new.values()}
    return old, new


def _physical_name(entry: dict[str, Any]) -> Any:
    if entry["type"].startswith("kubernetes:"):
        return (entry.get("inputs", {}).get("metadata") or {}).get("name")
    key = PHYSICAL_NAME.get(entry["type"])
    return entry.get("inputs", {}).get(key) if key else None


def _fixed_name_warning(before: dict[str, Any], entry: dict[str, Any], reasons: list[str]) -> str | None:
    name = _physical_name(entry)
    if not isinstance(name, str) or not name:
        return None
    dbr = bool((entry.get("options") or {}).get("deleteBeforeReplace"))
    if not dbr and name != _physical_name(before):
        return None  # a new name: the replacement is created beside the old one, no clash
    consequence = ("deleteBeforeReplace is set: the old one is deleted first, so expect downtime until the new "
                   "one exists" if dbr else
                   "the new one is created before the old one is deleted and AWS refuses the duplicate name; "
                   "set deleteBeforeReplace (accepting downtime) or change the name")
    return (f"{entry['type']} {entry['name']}: replaced ({', '.join(reasons)} changed) with the fixed physical "
            f"name '{name}': {consequence}")


def _moved(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """New key -> old key, for a resource whose URN changed and whose aliases name its old URN (the engine moves
    it in the state: no create, no delete; an update when its inputs changed too)."""
    out: dict[str, str] = {}
    for key, entry in new.items():
        if key in old:
            continue
        for alias in (entry.get("options") or {}).get("aliases", []):
            if alias in old and alias not in new and alias not in out.values():
                out[key] = alias
                break
    return out


def diff_plans(old_doc: dict[str, Any], new_doc: dict[str, Any], *, base: str = "base") -> PlanDiff:
    old, new = _comparable(_index(old_doc), _index(new_doc))
    moved = _moved(old, new)
    gone = set(moved.values())
    changes: list[ResourceChange] = []
    for key in sorted((set(old) - gone) | set(new)):
        before, after = old.get(moved.get(key, key)), new.get(key)
        if before is None and after is not None:
            changes.append(ResourceChange("create", key, after["type"], after["name"]))
            continue
        if after is None and before is not None:
            changes.append(ResourceChange("delete", key, before["type"], before["name"]))
            continue
        assert before is not None and after is not None
        props = list(property_changes(before.get("inputs", {}), after.get("inputs", {})))
        if before.get("region") != after.get("region") and after["type"].startswith("aws:"):
            props.append(PropertyChange("region", before.get("region"), after.get("region")))
        if not props:
            continue
        for p in props:
            p.replaces = _forces_replace(after["type"], p.path)
        reasons = sorted({p.path for p in props if p.replaces})
        op = "replace" if reasons else "update"
        change = ResourceChange(op, key, after["type"], after["name"], props)
        if op == "replace":
            change.warning = _fixed_name_warning(before, after, reasons)
        changes.append(change)
    return PlanDiff(stack=str(new_doc.get("stack", "?")), base=base, changes=changes, moved=moved)


def render(diff: PlanDiff) -> str:
    lines = [f"Plan diff of stack '{diff.stack}' against {diff.base} (offline plans; what `pulumi preview --diff` "
             "shows for the program's inputs)", ""]
    if not diff.changes:
        lines.append("No changes.")
    for c in diff.changes:
        lines.append(f"{_SYMBOL[c.op]} {c.type} {c.name}  ({c.op})")
        for p in c.properties:
            lines.append(f"      {p.line()}{'  [forces replacement]' if p.replaces else ''}")
    if diff.warnings:
        lines += ["", f"{len(diff.warnings)} warning(s):"] + [f"  ! {w}" for w in diff.warnings]
    if diff.moved:
        lines += ["", f"{len(diff.moved)} resource(s) moved by their aliases (new URN, same identity: no create, no "
                      "delete)"]
    counts = diff.counts
    lines += ["", "Resources: " + ", ".join(f"{n} to {op}" for op, n in counts.items() if n) if any(
        counts.values()) else "Resources: unchanged"]
    return "\n".join(lines)


def comment_marker(stack: str) -> str:
    """The hidden line the PR workflow looks for to edit its previous comment instead of adding one."""
    return f"<!-- akidb-plan-diff:{stack} -->"


def render_markdown(diff: PlanDiff) -> str:
    counts = ", ".join(f"{n} to {op}" for op, n in diff.counts.items() if n) or "no changes"
    body = render(diff)
    # GitHub rejects comments over 65,536 characters.
    if len(body) > 60000:
        body = body[:60000] + "\n... (truncated: run `make plan-diff STACK=" + diff.stack + "` for the rest)"
    warn = f" · **{len(diff.warnings)} replacement warning(s)**" if diff.warnings else ""
    return (f"{comment_marker(diff.stack)}\n### Offline plan diff: `{diff.stack}` ({counts}{warn})\n\n"
            f"```diff\n{body}\n```\n")


# ---------------------------------------------------------------------------------------------- base plans
def _git(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DiffError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def default_base_ref() -> str:
    for main in ("main", "origin/main"):
        try:
            return _git("merge-base", "HEAD", main)
        except DiffError:
            continue
    raise DiffError("no merge base with main or origin/main: pass --against REF or --plan FILE")


def plan_at_ref(ref: str, stack: str, *, offline_secrets: bool = False) -> dict[str, Any]:
    """Compute the plan of `ref` in a temporary git worktree (removed afterwards)."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    tmp = Path(tempfile.mkdtemp(prefix="plan-diff-"))
    tree = tmp / "tree"
    _git("worktree", "add", "--detach", str(tree), commit)
    try:
        (tree / "build").mkdir(exist_ok=True)
        for cache in ("models", "cache"):  # the ONNX export and wheel downloads do not depend on the ref
            if (BUILD_DIR / cache).is_dir() and not (tree / "build" / cache).exists():
                os.symlink(BUILD_DIR / cache, tree / "build" / cache)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG")}
        command = [sys.executable, "-m", "infra.offline.plan", "--stack", stack,
                   *(["--offline-secrets"] if offline_secrets else [])]
        proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        plan_file = tree / "build" / stack / "plan.json"
        if proc.returncode not in (0, 1) or not plan_file.exists():
            raise DiffError(f"the plan of {ref} ({commit[:12]}) failed (exit {proc.returncode}):\n"
                            f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        return dict(json.loads(plan_file.read_text()))
    finally:
        _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)


def read_plan(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DiffError(f"no plan file {path} (write one with `make plan STACK=<stack>`)") from None
    except json.JSONDecodeError as err:
        raise DiffError(f"{path} is not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise DiffError(f"{path}: expected a JSON object (an offline plan)")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What `pulumi preview --diff` would show, from offline plans.")
    parser.add_argument("--stack", default="staging", help="stack name (Pulumi.<stack>.yaml), default staging")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--against", metavar="REF", help="git ref to compare with (default: merge base with main)")
    base.add_argument("--plan", type=Path, metavar="FILE", help="saved plan.json to compare with")
    parser.add_argument("--new", type=Path, metavar="FILE", help="saved plan.json to use as the new side "
                        "(default: plan the working tree now)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the PR comment body here")
    parser.add_argument("--offline-secrets", action="store_true",
                        help="plan both sides with stand-ins for the secrets the stack file does not hold (as "
                             "`make plan`; the stand-ins are the same on both sides and masked in the diff)")
    args = parser.parse_args(argv)
    try:
        if args.plan is not None:
            old_doc, label = read_plan(args.plan), str(args.plan)
        else:
            ref = args.against or default_base_ref()
            old_doc = plan_at_ref(ref, args.stack, offline_secrets=args.offline_secrets)
            label = args.against or f"merge base {ref[:12]}"
        if args.new is not None:
            new_doc = read_plan(args.new)
        else:
            result = run_plan(args.stack, quiet=True, offline_secrets=args.offline_secrets)
            if result.config_problems:
                raise DiffError("invalid stack config: " + "; ".join(result.config_problems))
            new_doc = plan_document(result)
        if old_doc.get("stack") not in (None, args.stack) or new_doc.get("stack") not in (None, args.stack):
            raise DiffError(f"the plans are of stacks {old_doc.get('stack')!r} and {new_doc.get('stack')!r}, "
                            f"not '{args.stack}'")
        diff = diff_plans(old_doc, new_doc, base=label)
    except DiffError as err:
        print(f"plan-diff: {err}", file=sys.stderr)
        return 2
    print(render(diff))
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(diff))
    return 0


if __name__ == "__main__":
    sys.exit(main())
