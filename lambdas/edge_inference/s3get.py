"""The model download: one signed S3 GET with the standard library, instead of boto3.

Importing boto3 and making an S3 client cost 250 ms CPU of a cold start on the benchmark host (more than the
rest of the init together); this module, with http.client, ssl and hmac, costs ~25 ms. It signs the request
with AWS Signature Version 4 ("Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)",
Amazon S3 API Reference) from the credentials the Lambda runtime puts in the environment for the function's role
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: "Defined runtime environment variables", Lambda
Developer Guide), the same ones boto3 would read first. tests/test_edge_s3get.py checks the signature against
botocore's own signer and the download against a moto server.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import re
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()  # a GET's payload hash, as botocore signs it
ATTEMPTS = 3  # transient failures (connection errors, 5xx, 429) are retried, with 0.2 s then 0.4 s between
TIMEOUT_S = 10.0  # per socket operation; Lambda@Edge origin-request functions may run 30 s
CHUNK = 1 << 20
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# The trust store of the GET: the five Amazon Trust Services roots, which S3's default certificates chain to since
# June 2022 ("Amazon S3 and Amazon CloudFront service certificates migrating to Amazon Trust Services", AWS Storage
# Blog), all five as Amazon Trust Services recommends for custom trust stores (https://www.amazontrust.com/repository/,
# which publishes the SHA-256 of each root's public key: tests/test_edge_s3get.py checks the file against them).
# Loading the system's whole CA store instead (ssl.create_default_context()) parses ~140 certificates: ~20-30 ms
# CPU of a cold start (docs/performance.md); these five: ~1 ms.
TRUST_ROOTS = Path(__file__).with_name("ats_roots.pem")


class S3Error(Exception):
    """The object could not be fetched; the message names the status and S3's error code, never a secret."""


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method: str, host: str, path: str, region: str, env: Mapping[str, str], now: datetime,
         service: str = "s3") -> dict[str, str]:
    """The headers of a SigV4-signed request without query string or body (AWS's documented algorithm)."""
    access_key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret:
        raise S3Error("no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): the "
                      "Lambda runtime sets them for the function's role")
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": EMPTY_BODY_SHA256, "x-amz-date": amz_date}
    if env.get("AWS_SESSION_TOKEN"):
        headers["x-amz-security-token"] = env["AWS_SESSION_TOKEN"]
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join([method, path, "", *(f"{n}:{headers[n].strip()}" for n in names), "", signed,
                           EMPTY_BODY_SHA256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
                                f"Signature={signature}")
    return headers


def object_url(bucket: str, key: str, region: str, env: Mapping[str, str]) -> tuple[str, str, str]:
    """(scheme, host, path): virtual-hosted style on AWS; path style on an endpoint override (a moto server),
    which boto3 also honours (AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL)."""
    path_key = quote(key, safe="/~")  # S3 canonical URIs encode each segment once, '/' kept
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        return parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}/{bucket}/{path_key}"
    return "https", f"{bucket}.s3.{region}.amazonaws.com", f"/{path_key}"


class S3Http:
    """Satisfies the handler's `S3Getter` (download_file) with one streamed GET per attempt."""

    def __init__(self, region: str, env: Mapping[str, str] | None = None,
                 sleep: Any = time.sleep) -> None:
        self.region = region
        self.env = os.environ if env is None else env
        self.sleep = sleep
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name checked (create_default_context's defaults), against TRUST_ROOTS only."""
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=str(TRUST_ROOTS))
        return self._tls

    def download_file(self, Bucket: str, Key: str, Filename: str) -> None:
        scheme, host, path = object_url(Bucket, Key, self.region, self.env)
        for attempt in range(ATTEMPTS):
            try:
                self._get(scheme, host, path, Path(Filename))
                return
            except (OSError, http.client.HTTPException, _Transient) as exc:
                if attempt == ATTEMPTS - 1:
                    raise S3Error(f"GET s3://{Bucket}/{Key} failed {ATTEMPTS} times: {exc}") from exc
                self.sleep(0.2 * 2 ** attempt)

    def _get(self, scheme: str, host: str, path: str, target: Path) -> None:
        headers = sign("GET", host, path, self.region, self.env, datetime.now(UTC))
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, timeout=TIMEOUT_S, context=self.tls_context())
        else:
            conn = http.client.HTTPConnection(host, timeout=TIMEOUT_S)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read(4096).decode("utf-8", "replace")
                code = re.search(r"<Code>([^<]{1,64})</Code>", body)
                message = f"HTTP {resp.status} {code.group(1) if code else resp.reason}"
                if resp.status in _RETRY_STATUS:
                    raise _Transient(message)
                raise S3Error(message)
            with target.open("wb") as out:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
        finally:
            conn.close()


class _Transient(Exception):
    pass
