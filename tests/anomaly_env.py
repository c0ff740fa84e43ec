"""The AWS side of the anomaly Lambdas under moto, shared by the handler and property tests: a bucket, the anomaly
topic with an SQS inbox subscribed (to read what was notified), CloudWatch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws


@contextmanager
def anomaly_aws(region: str, bucket: str) -> Iterator[dict[str, Any]]:
    with mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                        "AWS_DEFAULT_REGION": region}), mock_aws():
        s3 = boto3.client("s3", region_name=region)
        s3.create_bucket(Bucket=bucket)
        sns = boto3.client("sns", region_name=region)
        sqs = boto3.client("sqs", region_name=region)
        topic = sns.create_topic(Name="anomaly")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield {"s3": s3, "sns": sns, "sqs": sqs, "cloudwatch": boto3.client("cloudwatch", region_name=region),
               "topic": topic, "queue": queue}
