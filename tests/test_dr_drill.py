"""Backups and the restore drill: the real trainer and detector against moto lose their objects, get them back
from S3 versions, and resume; the plan's stores are restorable (versioning, PITR)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.tools import dr_drill
from infra.validation.restore import stores_restorable


def test_drill_restores_and_the_detector_resumes() -> None:
    result = dr_drill.run_drill()
    assert result.errors_while_lost == 1  # the loss is seen (DetectorErrors alarm), never silently scored
    assert result.errors_after_restore == 0
    assert result.resumed, result.report()
    steps = [s for s, _, _ in result.steps]
    assert "restore from versions" in steps and "corrupt state, restore previous version" in steps


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="drill-b")
        client.put_bucket_versioning(Bucket="drill-b", VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_restore_key_undoes_a_delete_and_a_bad_write(s3: Any) -> None:
    s3.put_object(Bucket="drill-b", Key="state/x.json", Body=b"good")
    s3.delete_object(Bucket="drill-b", Key="state/x.json")
    assert "delete marker" in dr_drill.restore_key(s3, "drill-b", "state/x.json")
    assert s3.get_object(Bucket="drill-b", Key="state/x.json")["Body"].read() == b"good"
    s3.put_object(Bucket="drill-b", Key="state/x.json", Body=b"bad")
    assert "copied back" in dr_drill.restore_key(s3, "drill-b", "state/x.json")
    assert s3.get_object(Bucket="drill-b", Key="state/x.json")["Body"].read() == b"good"


def test_restore_key_without_history_says_so(s3: Any) -> None:
    s3.put_object(Bucket="drill-b", Key="only.json", Body=b"1")
    with pytest.raises(LookupError, match="no earlier version"):
        dr_drill.restore_key(s3, "drill-b", "only.json")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_plan_stores_are_restorable(planned: dict[str, Any], stack: str) -> None:
    assert list(stores_restorable(planned[stack].plan)) == []


@pytest.mark.parametrize(("token", "field", "value", "message"), [
    ("aws:s3/bucketVersioning:BucketVersioning", "versioningConfiguration", {"status": "Suspended"}, "versioning"),
    ("aws:dynamodb/table:Table", "pointInTimeRecovery", {"enabled": False}, "point-in-time recovery"),
])
def test_rule_fails_without_versions_or_pitr(planned: dict[str, Any], token: str, field: str, value: Any,
                                            message: str) -> None:
    plan = planned["prod"].plan
    # A store the rule guards (run-artifact buckets are disposable by design and exempt).
    target = next(r for r in plan.of_type(token) if "probe-artifacts" not in str(r.inputs.get("bucket", "")))
    changed = dataclasses.replace(target, inputs={**target.inputs, field: value})
    found = list(stores_restorable(dataclasses.replace(
        plan, resources=[changed if r is target else r for r in plan.resources])))
    assert found and all(message in v.message for v in found)


# ------------------------------------------------------------------------------------------ the incident store

def test_incident_drill_restores_the_store_and_the_timeline_resumes() -> None:
    result = dr_drill.run_incident_drill()
    assert result.resumed, result.report()
    # The restore mattered: without it the resolution would have published other figures and a second page.
    lost = result.without_restore
    assert lost["TimeToDetect"] is None and lost["TimeToAcknowledge"] is None and lost["page counted again"]
    assert lost["service"] != "akidb-rest"
    assert result.published == {"TimeToDetect": dr_drill.CONDITION_LEAD_S,
                                "TimeToAcknowledge": dr_drill.ACK_AFTER_S, "TimeToResolve": dr_drill.RESOLVE_AFTER_S}
    assert result.pages_published == 1 and result.records_restored == result.records_lost > 0


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for name in ("live", "restored"):
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                      {"AttributeName": "sk", "AttributeType": "S"}],
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                           {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield client


def _item(incident: str, sk: str, note: str) -> dict[str, Any]:
    return {"pk": {"S": f"incident#{incident}"}, "sk": {"S": sk}, "note": {"S": note}}


def test_copy_back_restores_one_incident_and_never_overwrites_newer_records(ddb: Any) -> None:
    for item in (_item("P1", "event#1", "old"), _item("P1", "summary", "old summary"), _item("P2", "event#1", "x")):
        ddb.put_item(TableName="restored", Item=item)
    ddb.put_item(TableName="live", Item=_item("P1", "summary", "rewritten after the restore point"))
    assert dr_drill.restore_incident(ddb, "restored", "live", "P1") == 1
    live = {(i["pk"]["S"], i["sk"]["S"]): i["note"]["S"] for i in ddb.scan(TableName="live")["Items"]}
    assert live == {("incident#P1", "event#1"): "old", ("incident#P1", "summary"): "rewritten after the restore point"}


def test_restore_table_takes_a_backup_or_a_point_in_time(ddb: Any) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dr_drill.restore_table(ddb, "live", "x")
    ddb.update_continuous_backups(TableName="live",
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ddb.put_item(TableName="live", Item=_item("P1", "event#1", "kept"))
    assert "point in time" in dr_drill.restore_table(ddb, "live", "pitr", restore_time=datetime.now(UTC))
    assert ddb.scan(TableName="pitr")["Items"][0]["note"]["S"] == "kept"
