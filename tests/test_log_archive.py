"""The log archive's restore path (infra/tools/log_archive.py) and the DR drill's part 3 (issue 32)."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest
from moto import mock_aws

from infra.tools.dr_drill import run_log_drill
from infra.tools.log_archive import ArchiveFormatError, archive_object, archived_events


def test_drill_restores_the_lost_log_group_from_the_archive() -> None:
    result = run_log_drill()
    assert result.resumed, result.report()
    assert len(result.written) == 3 and result.restored_group == "/restored/aws/lambda/akidb-drill-runbook-webhook"
    assert [json.loads(m)["decision"] for m in result.restored] == ["accepted", "dry-run", "refused"]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    for k, v in (("AWS_ACCESS_KEY_ID", "t"), ("AWS_SECRET_ACCESS_KEY", "t"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="archive")
        yield client


def test_archive_reads_concatenated_records_and_skips_control_and_error_objects(s3) -> None:
    control = gzip.compress(json.dumps({"messageType": "CONTROL_MESSAGE", "logEvents": [
        {"id": "c", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination"}]}).encode())
    body = archive_object("/g/a", "s1", [(10, "one"), (30, "three")]) + control + \
        archive_object("/g/b", "s2", [(20, "two")])
    s3.put_object(Bucket="archive", Key="logs/2026/12/07/x", Body=body)
    s3.put_object(Bucket="archive", Key="logs/errors/processing-failed/2026/12/07/y", Body=b"not gzip")
    assert [e.message for e in archived_events(s3, "archive")] == ["one", "two", "three"]
    assert [e.message for e in archived_events(s3, "archive", log_group="/g/a", since_ms=20)] == ["three"]


def test_an_object_that_is_not_an_archive_is_named(s3) -> None:
    s3.put_object(Bucket="archive", Key="logs/2026/12/07/bad", Body=b"plain text")
    with pytest.raises(ArchiveFormatError, match="logs/2026/12/07/bad: not gzip records of CloudWatch Logs"):
        archived_events(s3, "archive")
