"""The model download: one signed S3 GET with the standard library, instead of boto3.

Importing boto3 and making an S3 client cost 250 ms CPU of a cold start on the benchmark host (more than the
rest of the init together); this module, with ssl and hmac, a tenth of that. It signs the request
with AWS Signature Version 4 ("Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)",
Amazon S3 API Reference) from the credentials the Lambda runtime puts in the environment for the function's role
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: "Defined runtime environment variables", Lambda
Developer Guide), the same ones boto3 would read first. tests/test_edge_s3get.py checks the signature against
botocore's own signer and the download against a moto server.

The response is read here, not by http.client: importing http.client (and the email package it parses headers
with) cost 15-21 ms CPU of a cold start at load 4 (docs/performance.md). The GET needs little of HTTP/1.1
(RFC 9112): one request with `connection: close`, a status line, header fields, then a body framed by
content-length, chunked transfer coding, or the end of the connection. A body cut short is an error, never a
shorter file (the caller checks the model's SHA-256 as well).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()  # a GET's payload hash, as botocore signs it
ATTEMPTS = 3  # transient failures (connection errors, 5xx, 429) are retried, with 0.2 s then 0.4 s between
TIMEOUT_S = 10.0  # per socket operation; Lambda@Edge origin-request functions may run 30 s
CHUNK = 1 << 20
MAX_LINE = 65536  # longest status or header line accepted
MAX_FIELDS = 100  # most header fields accepted
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
            except (OSError, _Transient) as exc:
                if attempt == ATTEMPTS - 1:
                    raise S3Error(f"GET s3://{Bucket}/{Key} failed {ATTEMPTS} times: {exc}") from exc
                self.sleep(0.2 * 2 ** attempt)

    def _get(self, scheme: str, host: str, path: str, target: Path) -> None:
        headers = sign("GET", host, path, self.region, self.env, datetime.now(UTC))
        where = urlsplit(f"//{host}")
        hostname = where.hostname or host
        sock = socket.create_connection((hostname, where.port or (443 if scheme == "https" else 80)),
                                        timeout=TIMEOUT_S)
        try:
            if scheme == "https":
                sock = self.tls_context().wrap_socket(sock, server_hostname=hostname)
            request = "".join([f"GET {path} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()),
                               "accept-encoding: identity\r\nconnection: close\r\n\r\n"])
            sock.sendall(request.encode())
            with sock.makefile("rb") as reader:
                status, reason, fields = _read_head(reader)
                if status != 200:
                    # The error document's first bytes (S3 may send it chunked: the code is found in them anyway).
                    body = reader.read1(4096).decode("utf-8", "replace")
                    code = re.search(r"<Code>([^<]{1,64})</Code>", body)
                    message = f"HTTP {status} {code.group(1) if code else reason}"
                    if status in _RETRY_STATUS:
                        raise _Transient(message)
                    raise S3Error(message)
                with target.open("wb") as out:
                    _copy_body(reader, fields, out)
        finally:
            sock.close()


def _read_head(reader: IO[bytes]) -> tuple[int, str, dict[str, str]]:
    """Status code, reason phrase and header fields (names lowercased) of an HTTP/1.x response."""
    line = reader.readline(MAX_LINE + 1)
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise _Transient(f"not an HTTP/1.x response: {line[:80]!r}")
    fields: dict[str, str] = {}
    for _ in range(MAX_FIELDS):
        line = reader.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise _Transient("response header cut short or too long")
        if line in (b"\r\n", b"\n"):
            return int(code), reason, fields
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _Transient(f"malformed header field: {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    raise _Transient(f"more than {MAX_FIELDS} header fields")


def _copy_body(reader: IO[bytes], fields: dict[str, str], out: IO[bytes]) -> None:
    """The response body into `out`, as its framing says (RFC 9112, section 6.3)."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size_line = reader.readline(MAX_LINE + 1)
            digits = size_line.split(b";")[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):
                raise _Transient(f"malformed chunk size: {size_line[:80]!r}")
            size = int(digits, 16)
            if size == 0:
                while reader.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):  # trailer fields
                    pass
                return
            _copy_exactly(reader, size, out)
            if reader.readline(MAX_LINE + 1) not in (b"\r\n", b"\n"):
                raise _Transient("chunk not followed by CRLF")
    elif "content-length" in fields:
        length = fields["content-length"]
        if not length.isdigit():
            raise _Transient(f"malformed content-length: {length[:40]!r}")
        _copy_exactly(reader, int(length), out)
    else:  # the end of the connection ends the body
        while chunk := reader.read(CHUNK):
            out.write(chunk)


def _copy_exactly(reader: IO[bytes], size: int, out: IO[bytes]) -> None:
    left = size
    while left:
        chunk = reader.read(min(left, CHUNK))
        if not chunk:
            raise _Transient(f"body cut short: {size - left} of {size} bytes")
        out.write(chunk)
        left -= len(chunk)


class _Transient(Exception):
    pass
