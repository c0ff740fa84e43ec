"""A moto server and its clients for the tests that run functions from their built zips
(infra/tools/drill/zip_runtime.py): the test's own boto3 talks to the server through explicit clients, never
through this process's environment, so the functions' processes get exactly the environment a test gives them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest

from infra.tools import daemons

REGION = "us-east-1"
# `make exactly-once` sets EXACTLY_ONCE_ALL=1: a fault before every AWS call of a run. The suite injects a subset
# (fault_positions, or test_exactly_once.suite_indexes).
EXHAUSTIVE = os.environ.get("EXACTLY_ONCE_ALL") == "1"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with daemons.moto_server() as m:
        yield m.url


def client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")  # pragma: allowlist secret (moto's fake credentials)


def function_env(url: str, **variables: str) -> dict[str, str]:
    """A function's environment: boto3 pointed at the moto server, plus its configuration variables."""
    return {**daemons.aws_env(url, REGION), **variables}


def copy_of(url: str, topic: str, name: str | None = None) -> str:
    """An SQS queue subscribed to `topic` (raw delivery): what the topic published, to read back."""
    sqs = client(url, "sqs")
    queue = sqs.create_queue(QueueName=name or f"{topic.rsplit(':', 1)[-1]}-copy")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client(url, "sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                                 Attributes={"RawMessageDelivery": "true"})
    return str(queue)


def drain(url: str, queue: str) -> list[str]:
    """Every message body on `queue`, consumed."""
    sqs, out = client(url, "sqs"), []
    while msgs := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        out += [m["Body"] for m in msgs]
        sqs.delete_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                          for i, m in enumerate(msgs)])
    return out


def state_table(url: str, name: str, *, sort_key: bool = False) -> None:
    """A DynamoDB table keyed as the runbook functions' tables are (pk, and sk for the timeline's)."""
    ddb = client(url, "dynamodb")
    if name in ddb.list_tables()["TableNames"]:
        return
    attrs = [("pk", "HASH")] + ([("sk", "RANGE")] if sort_key else [])
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in attrs],
                     KeySchema=[{"AttributeName": a, "KeyType": k} for a, k in attrs])


def loads(bodies: list[str]) -> list[dict[str, Any]]:
    return [json.loads(b) for b in bodies]


def fault_positions(calls: Sequence[str], *always: int) -> list[int]:
    """Where the suite injects a fault into a run of `calls`: at the first and the last call of each kind and at the
    call right after each of them (every kind of step, and the seams between kinds), plus `always`; a repeat of the
    same step in the middle (the fifth of eight band days written) is left to `make exactly-once`, which injects
    at every call."""
    if EXHAUSTIVE:
        return list(range(len(calls)))
    picked = set(always)
    for name in set(calls):
        at = [i for i, c in enumerate(calls) if c == name]
        picked |= {at[0], at[0] + 1, at[-1], at[-1] + 1}
    return sorted(i for i in picked if 0 <= i < len(calls))
