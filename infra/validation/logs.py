"""Logs (issue 32): every log group is archived; the archive is encrypted, expires, and is written by Firehose.

Retention and the KMS key of a log group are foundation.py's `log_retention` and `encryption_at_rest`; this
module adds the archive (infra/components/logs.py) and the redaction settings the functions will read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from infra.dashboard_defs.cloudwatch import widget_parts
from infra.plan.model import Plan, Violation
from infra.plan.types import DASHBOARD, LOG_GROUP, QUERY_DEFINITION
from infra.plan.types import FIREHOSE_STREAM as STREAM
from infra.plan.types import LOG_SUBSCRIPTION as SUBSCRIPTION
from infra.validation import rule

_STREAM_ARN = re.compile(r"^arn:[\w-]+:firehose:([\w-]+):[^:]*:deliverystream/(.+)$")


@rule
def log_groups_archived(plan: Plan) -> Iterator[Violation]:
    """Every log group has a subscription to a KMS-encrypted Firehose stream of its Region writing to a bucket
    with SSE-KMS and an expiry (the log archive)."""
    name = "log_groups_archived"
    streams = {(s.region, s.inputs.get("name")): s for s in plan.of_type(STREAM)}
    buckets = {b.outputs.get("bucket") or b.inputs.get("bucket") for b in plan.of_type("aws:s3/bucket:Bucket")}
    sse = {r.inputs.get("bucket"): r.inputs for r in plan.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")}
    lifecycles = {r.inputs.get("bucket"): r.inputs for r in plan.of_type(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")}
    archived: set[tuple[str | None, str]] = set()
    for sub in plan.of_type(SUBSCRIPTION):
        m = _STREAM_ARN.match(str(sub.inputs.get("destinationArn") or ""))
        stream = streams.get((m.group(1), m.group(2))) if m else None
        if stream is None or m is None or m.group(1) != sub.region:
            yield Violation(name, sub.label, f"destination {sub.inputs.get('destinationArn')!r} is not a Firehose "
                                             f"stream of this plan in {sub.region}")
            continue
        archived.add((sub.region, str(sub.inputs.get("logGroup"))))
    for stream in streams.values():
        enc = stream.inputs.get("serverSideEncryption") or {}
        if not enc.get("enabled") or enc.get("keyType") != "CUSTOMER_MANAGED_CMK" or not enc.get("keyArn"):
            yield Violation(name, stream.label, "stream is not encrypted with the stack's key (serverSideEncryption "
                                                "CUSTOMER_MANAGED_CMK)")
        s3 = stream.inputs.get("extendedS3Configuration") or {}
        bucket = str(s3.get("bucketArn") or "").rpartition(":")[2]
        if bucket not in buckets:
            yield Violation(name, stream.label, f"writes to {bucket or 'no bucket'}, not a bucket of this plan")
            continue
        default = ((sse.get(bucket) or {}).get("rules") or [{}])[0].get("applyServerSideEncryptionByDefault") or {}
        if default.get("sseAlgorithm") != "aws:kms" or not s3.get("kmsKeyArn"):
            yield Violation(name, stream.label, f"archive bucket {bucket} is not SSE-KMS with the stack's key")
        rules = (lifecycles.get(bucket) or {}).get("rules") or []
        if not any((r.get("expiration") or {}).get("days") for r in rules):
            yield Violation(name, stream.label, f"archive bucket {bucket} has no expiry (lifecycle expiration)")
    for lg in plan.of_type(LOG_GROUP):
        if (lg.region, str(lg.inputs.get("name"))) not in archived:
            yield Violation(name, lg.label, f"log group {lg.inputs.get('name')} is not archived: no subscription "
                                            "to the log archive (logs.enabled; infra/components/logs.py)")


@rule
def log_redaction_patterns(plan: Plan) -> Iterator[Violation]:
    """logs.redactPatterns are regular expressions the functions can compile (lambdas/logshape)."""
    for pattern in plan.config.logs.redact_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            yield Violation("log_redaction_patterns", "config logs.redactPatterns",
                            f"{pattern!r} is not a regular expression ({exc}); the functions would refuse to start")


@rule
def log_widgets_are_saved_queries(plan: Plan) -> Iterator[Violation]:
    """A dashboard's log widget shows a saved query of the plan: the text and log groups of a QueryDefinition of its
    region (one definition, two uses: infra/dashboard_defs/log_queries.py)."""
    saved = {(q.region, tuple(q.inputs.get("logGroupNames") or ()), str(q.inputs.get("queryString") or ""))
             for q in plan.of_type(QUERY_DEFINITION)}
    for dash in plan.of_type(DASHBOARD):
        try:
            widgets = json.loads(str(dash.inputs.get("dashboardBody") or "{}")).get("widgets") or []
        except ValueError:
            continue  # dashboards_valid names a body that is not JSON
        for w in widgets:
            props = w.get("properties") or {}
            if w.get("type") != "log":
                continue
            groups, text = widget_parts(str(props.get("query") or ""))
            if (props.get("region"), groups, text) not in saved:
                yield Violation("log_widgets_are_saved_queries", dash.label,
                                f"log widget '{props.get('title')}' in {props.get('region')} shows no saved query of "
                                f"the plan on {', '.join(groups) or 'no log group'}: build it with "
                                "infra/dashboard_defs/log_queries.py log_tables")
