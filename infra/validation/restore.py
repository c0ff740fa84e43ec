"""Rules of restoring what the stack stores: versioned buckets with a noncurrent-version lifecycle, DynamoDB tables
with point-in-time recovery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.plan.model import PlannedResource
from infra.validation import Plan, Violation, rule


def _by_bucket(plan: Plan, token: str) -> dict[str, PlannedResource]:
    return {str(r.inputs.get("bucket")): r for r in plan.of_type(token)}


def _versioned(plan: Plan) -> dict[str, Any]:
    return {str(v.inputs.get("bucket")): v.get("versioningConfiguration.status") for v in
            plan.of_type("aws:s3/bucketVersioning:BucketVersioning")}


@rule
def stores_restorable(plan: Plan) -> Iterator[Violation]:
    """What the stack stores can be restored: state buckets versioned with a noncurrent-version lifecycle,
    DynamoDB tables with point-in-time recovery (the RPO/RTO table of the README)."""
    name = "stores_restorable"
    versioned = _versioned(plan)
    lifecycles = _by_bucket(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    for b in plan.of_type("aws:s3/bucket:Bucket"):
        bucket = str(b.inputs.get("bucket"))
        if versioned.get(bucket) != "Enabled":
            yield Violation(name, b.label, "bucket holds state but versioning is not Enabled")
        life = lifecycles.get(bucket)
        if life is not None and not any(r.get("noncurrentVersionExpiration") for r in life.inputs.get("rules") or []):
            yield Violation(name, b.label, "versioned bucket without a noncurrentVersionExpiration rule")
    for t in plan.of_type("aws:dynamodb/table:Table"):
        if not t.get("pointInTimeRecovery.enabled"):
            yield Violation(name, t.label, "no point-in-time recovery")
