"""The edge function's model download (lambdas/edge_inference/s3get.py): SigV4 as botocore signs, a real GET.

The signature is compared with botocore's own S3 signer for the same request and instant; the download runs
against a moto server over HTTP; retries against a local HTTP server that answers 503 first; the TLS trust store
against the roots Amazon Trust Services publishes, and against a local HTTPS server outside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from edge_inference import s3get
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


# SHA-256 of each root's SubjectPublicKeyInfo as https://www.amazontrust.com/repository/ publishes them: Amazon Root
# CA 1-4 and Starfield Services Root Certificate Authority - G2, the five it recommends for custom trust stores.
# (Public key hashes, not secrets: detect-secrets reads hex this long as one, hence the pragmas.)
AMAZON_TRUST_SERVICES_ROOTS = {
    "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2",  # pragma: allowlist secret
    "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461",  # pragma: allowlist secret
    "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9",  # pragma: allowlist secret
    "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5",  # pragma: allowlist secret
    "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92",  # pragma: allowlist secret
}


# Starfield Services Root G2 (2009) has serial number 0, which cryptography warns about (RFC 5280 wants it positive).
@pytest.mark.filterwarnings("ignore:Parsed a serial number")
def test_trust_store_is_the_five_amazon_trust_services_roots():
    certs = x509.load_pem_x509_certificates(s3get.TRUST_ROOTS.read_bytes())
    spki = {hashlib.sha256(c.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
            for c in certs}
    assert len(certs) == 5 and spki == AMAZON_TRUST_SERVICES_ROOTS
    context = S3Http("us-east-1", env=ENV).tls_context()
    assert context.cert_store_stats()["x509_ca"] == 5
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def _certificate(tmp_path):
    """A CA and a server certificate for 127.0.0.1 it signed (PEM files)."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject, issuer, key, signer, ca):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = cert(ca_name, ca_name, ca_key, ca_key, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key, ca_key, False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "server.pem"


def test_https_is_verified_against_the_trust_store_only(tmp_path, monkeypatch):
    """A server whose certificate chains to a root outside the store is refused (the system's CA store is not
    consulted); the same server is accepted once its CA is the store."""
    ca, server_pem = _certificate(tmp_path)
    handler = type("Ok", (_Flaky,), {"failures": 0, "seen": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(server_pem)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**ENV, "AWS_ENDPOINT_URL": f"https://127.0.0.1:{server.server_port}"}
        with pytest.raises(S3Error, match=r"CERTIFICATE_VERIFY_FAILED"):
            S3Http("us-east-1", env=env, sleep=lambda _s: None).download_file(Bucket="b", Key="k",
                                                                              Filename=str(tmp_path / "m"))
        monkeypatch.setattr(s3get, "TRUST_ROOTS", ca)
        S3Http("us-east-1", env=env, sleep=lambda _s: None).download_file(Bucket="b", Key="k",
                                                                          Filename=str(tmp_path / "m"))
        assert (tmp_path / "m").read_bytes() == b"model bytes"
    finally:
        server.shutdown()
        server.server_close()


class _Framed(BaseHTTPRequestHandler):
    """Answers 200 with `body` framed as `framing` says: chunked, content-length, the connection's end, or a
    content-length larger than what is sent (the connection then closes)."""
    protocol_version = "HTTP/1.1"
    framing = "chunked"
    body = b""

    def do_GET(self) -> None:
        body = type(self).body
        self.send_response(200)
        if self.framing == "chunked":
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7000):
                piece = body[i:i + 7000]
                self.wfile.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\nx-trailer: 1\r\n\r\n")
        elif self.framing == "length":
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.framing == "close":
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(body)
        else:  # "short": announces more than it sends
            self.send_header("content-length", str(len(body) + 10))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("framing", ["chunked", "length", "close", "short"])
def test_the_body_is_read_as_its_framing_says(tmp_path, framing):
    """The function reads the response itself (no http.client): each way HTTP/1.1 frames a body gives the exact
    bytes, and a body cut short fails (retried, then reported), never a shorter file."""
    payload = bytes(range(256)) * 97 + b"end"
    handler = type("Framed", (_Framed,), {"framing": framing, "body": payload})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}"}
        getter = S3Http("us-east-1", env=env, sleep=lambda _s: None)
        if framing == "short":
            with pytest.raises(S3Error, match=rf"failed 3 times: body cut short: {len(payload)} of "
                                              rf"{len(payload) + 10} bytes"):
                getter.download_file(Bucket="b", Key="k", Filename=str(tmp_path / "m"))
        else:
            getter.download_file(Bucket="b", Key="k", Filename=str(tmp_path / "m"))
            assert (tmp_path / "m").read_bytes() == payload
    finally:
        server.shutdown()
        server.server_close()


def test_importing_the_handler_imports_no_http_client():
    """What the cold start no longer pays for: http.client and the email package it parses headers with."""
    import subprocess
    import sys

    from infra.core.paths import LAMBDAS_DIR

    script = ("import sys; sys.path.insert(0, sys.argv[1]); import edge_inference.handler; "
              "print(sorted(m for m in sys.modules if m == 'http.client' or m.split('.')[0] == 'email'))")
    proc = subprocess.run([sys.executable, "-I", "-c", script, str(LAMBDAS_DIR)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
