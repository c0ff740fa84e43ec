"""Rules of the synthetic probes: canaries on a current runtime, on a schedule the alarms can follow, with code from
the packaging and encrypted, expiring artifacts in their own region."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from infra.artifacts.packaging import read_package
from infra.config.synthetics import CANARY_RUNTIMES, CANARY_SCHEDULE_PATTERN, schedule_minutes
from infra.plan.model import PlannedResource
from infra.validation import Plan, Violation, rule


def _by_bucket(plan: Plan, token: str) -> dict[str, PlannedResource]:
    return {str(r.inputs.get("bucket")): r for r in plan.of_type(token)}


@rule
def canary_runtime_and_schedule(plan: Plan) -> Iterator[Violation]:
    """A current Python runtime, a schedule the alarms can follow, code from the packaging, encrypted expiring
    artifacts in the canary's own region."""
    name = "canary_runtime_and_schedule"
    buckets = {str(b.inputs.get("bucket")): b for b in plan.of_type("aws:s3/bucket:Bucket")}
    lifecycles = _by_bucket(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    for c in plan.of_type("aws:synthetics/canary:Canary"):
        i = c.inputs
        if i.get("runtimeVersion") not in CANARY_RUNTIMES:
            yield Violation(name, c.label, f"runtimeVersion {i.get('runtimeVersion')!r}; allowed: "
                                           f"{', '.join(CANARY_RUNTIMES)}")
        expr = str(c.get("schedule.expression") or "")
        if not re.match(CANARY_SCHEDULE_PATTERN, expr):
            yield Violation(name, c.label, f"schedule {expr!r}: rate(N minutes) up to rate(1 hour)")
        else:
            if c.get("schedule.durationInSeconds") not in (0, 0.0):
                yield Violation(name, c.label, "schedule.durationInSeconds must be 0 (run until stopped)")
            if float(c.get("runConfig.timeoutInSeconds") or 0) > schedule_minutes(expr) * 60:
                yield Violation(name, c.label, "runConfig.timeoutInSeconds exceeds the schedule's period")
        if float(c.get("runConfig.memoryInMb") or 960) < 960:
            yield Violation(name, c.label, "runConfig.memoryInMb below the Synthetics minimum 960")
        path = i.get("zipFile")
        pkg = read_package(path)
        if pkg is None:
            yield Violation(name, c.label, f"zipFile {path!r} was not built by infra.artifacts (no manifest)")
        else:
            module = str(i.get("handler") or "").rsplit(".", 1)[0]
            with zipfile.ZipFile(Path(str(path))) as zf:
                if f"python/{module}.py" not in zf.namelist():
                    yield Violation(name, c.label, f"handler {i.get('handler')!r}: no python/{module}.py in the zip")
            for msg in pkg.problems():
                yield Violation(name, c.label, msg)
        m = re.match(r"^s3://([^/]+)/", str(i.get("artifactS3Location") or ""))
        bucket = buckets.get(m.group(1)) if m else None
        if bucket is None:
            yield Violation(name, c.label, "artifactS3Location is not a bucket of this stack")
        else:
            if bucket.region != c.region:
                yield Violation(name, c.label, f"artifact bucket in {bucket.region}, canary in {c.region}")
            life = lifecycles.get(str(bucket.inputs.get("bucket")))
            if life is None or not any(r.get("expiration") for r in life.inputs.get("rules") or []):
                yield Violation(name, c.label, "artifact bucket has no expiring lifecycle rule")
        if not c.get("artifactConfig.s3Encryption.encryptionMode"):
            yield Violation(name, c.label, "artifactConfig.s3Encryption is not set (artifacts unencrypted)")
