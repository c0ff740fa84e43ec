"""The edge function's model download (lambdas/edge_inference/s3get.py): SigV4 as botocore signs, a real GET.

The signature is compared with botocore's own S3 signer for the same request and instant; the download runs
against a moto server over HTTP; retries against a local HTTP server that answers 503 first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from edge_inference.s3get import EMPTY_BODY_SHA256, S3Error, S3Http, object_url, sign

from infra.tools import daemons

ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLE//token=="])
@pytest.mark.parametrize("key", ["models/all-minilm-l6-v2/0123456789abcdef/model.int8.onnx",
                                 "models/a b/ü+x~y.onnx"])
def test_signature_is_botocores(token, key):
    env = {**ENV, **({"AWS_SESSION_TOKEN": token} if token else {})}
    scheme, host, path = object_url("akidb-prod-edge-models-us-east-1", key, "eu-west-2", env)
    assert (scheme, host) == ("https", "akidb-prod-edge-models-us-east-1.s3.eu-west-2.amazonaws.com")
    request = AWSRequest(method="GET", url=f"{scheme}://{host}{path}")
    S3SigV4Auth(Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], token), "s3",
                "eu-west-2").add_auth(request)
    now = datetime.strptime(request.headers["X-Amz-Date"] + "+0000", "%Y%m%dT%H%M%SZ%z")
    ours = sign("GET", host, path, "eu-west-2", env, now)
    assert request.headers["X-Amz-Content-SHA256"] == ours["x-amz-content-sha256"] == EMPTY_BODY_SHA256
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_missing_credentials_are_named():
    with pytest.raises(S3Error, match=r"no AWS credentials in the environment \(AWS_ACCESS_KEY_ID, "
                                      r"AWS_SECRET_ACCESS_KEY\)"):
        S3Http("us-east-1", env={"AWS_ACCESS_KEY_ID": "x"}).download_file(Bucket="b", Key="k", Filename="/dev/null")


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with daemons.moto_server() as server:
        yield server.url


def test_downloads_the_object_from_s3(moto, tmp_path):
    env = daemons.aws_env(moto)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket="models")
    payload = bytes(range(256)) * 12_289  # ~3 MB: several reads of the stream
    client.put_object(Bucket="models", Key="m/model.int8.onnx", Body=payload)
    sleeps: list[float] = []
    S3Http("us-east-1", env=env, sleep=sleeps.append).download_file(Bucket="models", Key="m/model.int8.onnx",
                                                                      Filename=str(tmp_path / "m"))
    assert (tmp_path / "m").read_bytes() == payload and sleeps == []
    with pytest.raises(S3Error, match=r"HTTP 404 NoSuchKey"):
        S3Http("us-east-1", env=env, sleep=sleeps.append).download_file(Bucket="models", Key="absent",
                                                                          Filename=str(tmp_path / "n"))
    assert sleeps == []  # a missing object is not retried


class _Flaky(BaseHTTPRequestHandler):
    failures = 0
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            body = b"<Error><Code>SlowDown</Code></Error>"
            self.send_response(503)
        else:
            body = b"model bytes"
            self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("failures", [2, 3])
def test_throttling_is_retried_then_reported(tmp_path, failures):
    handler = type("Flaky", (_Flaky,), {"failures": failures, "seen": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}"}
        sleeps: list[float] = []
        getter = S3Http("us-east-1", env=env, sleep=sleeps.append)
        if failures < 3:
            getter.download_file(Bucket="b", Key="k", Filename=str(tmp_path / "m"))
            assert (tmp_path / "m").read_bytes() == b"model bytes"
        else:
            with pytest.raises(S3Error, match=r"GET s3://b/k failed 3 times: HTTP 503 SlowDown"):
                getter.download_file(Bucket="b", Key="k", Filename=str(tmp_path / "m"))
        assert sleeps == [0.2, 0.4][:failures] and handler.seen == min(failures + 1, 3)
    finally:
        server.shutdown()
        server.server_close()
