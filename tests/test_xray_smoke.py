"""The smoke command: real UDP to a local socket in the daemon protocol, X-Ray lookup against moto."""

from __future__ import annotations

import json
import socket
import threading
import time

import boto3
import pytest
from moto import mock_aws

from infra.tools import xray_smoke as smoke

REGION = "us-east-1"


@pytest.fixture
def udp_server():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def _split(packet: bytes) -> tuple[dict, dict]:
    header, _, body = packet.partition(b"\n")
    return json.loads(header), json.loads(body)


def test_packet_received_on_a_real_udp_socket_is_the_daemon_protocol(udp_server):
    host, port = udp_server.getsockname()
    now = time.time()
    seg = smoke.build_segment("akidb-xray-smoke", 1000, now)
    smoke.send_udp(smoke.daemon_packet(seg.document), host, port)
    packet, _ = udp_server.recvfrom(65536)
    assert packet.startswith(b'{"format": "json", "version": 1}\n')
    assert packet.count(b"\n") == 1, "the segment JSON must be on one line after the header"
    header, body = _split(packet)
    assert header == {"format": "json", "version": 1}
    assert body["trace_id"] == seg.trace_id and smoke.TRACE_ID.match(body["trace_id"])
    assert int(body["trace_id"].split("-")[1], 16) == int(body["start_time"])  # epoch of the trace's start
    assert smoke.SEGMENT_ID.match(body["id"]) and body["name"] == "akidb-xray-smoke"
    assert body["end_time"] - body["start_time"] == pytest.approx(1.0, abs=1e-3)
    assert body["end_time"] == pytest.approx(now, abs=1e-3)
    assert body["http"]["response"]["status"] == 200 and "fault" not in body
    assert "in_progress" not in body  # a complete segment


def test_error_segment_is_a_fault():
    seg = smoke.build_segment("svc", 50, time.time(), error=True)
    assert seg.document["fault"] is True and seg.document["http"]["response"]["status"] == 500


def test_trace_ids_are_unique_and_well_formed():
    ids = {smoke.new_trace_id(1_700_000_000) for _ in range(200)}
    assert len(ids) == 200 and all(smoke.TRACE_ID.match(i) for i in ids)
    assert all(i.startswith("1-6553f100-") for i in ids)


def test_oversized_segment_is_refused():
    with pytest.raises(ValueError, match="at most 65536"):
        smoke.daemon_packet({"name": "x", "blob": "a" * 70_000})


@pytest.mark.parametrize("address", ["nohost", "host:", ":2000", "host:99999", "host:port", "a b:2000", ""])
def test_bad_daemon_address_is_a_clear_error(address):
    with pytest.raises(smoke.UsageError, match="--daemon"):
        smoke.parse_daemon(address)


def test_daemon_address_forms():
    assert smoke.parse_daemon("xray-daemon.observability.svc.cluster.local:2000") == (
        "xray-daemon.observability.svc.cluster.local", 2000)
    assert smoke.parse_daemon("[::1]:2000") == ("::1", 2000)


@pytest.mark.parametrize("argv, message", [
    (["--daemon", "127.0.0.1:2000", "--region", "moon-1"], "--region"),
    (["--daemon", "127.0.0.1", "--region", REGION], "--daemon"),
    (["--daemon", "127.0.0.1:2000", "--region", REGION, "--duration-ms", "0"], "--duration-ms"),
    (["--daemon", "127.0.0.1:2000", "--region", REGION, "--timeout", "-1"], "--timeout"),
    (["--region", REGION], "--daemon"),
])
def test_main_rejects_bad_arguments_with_exit_2(argv, message, capsys):
    assert smoke.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


class FakeDaemon:
    """A minimal X-Ray daemon: reads daemon-protocol datagrams and forwards segments with PutTraceSegments."""

    def __init__(self, client) -> None:
        self.client = client
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def _serve_one(self) -> None:
        packet, _ = self.sock.recvfrom(65536)
        self.received.append(packet)
        header, _, body = packet.partition(b"\n")
        if json.loads(header) == {"format": "json", "version": 1}:
            self.client.put_trace_segments(TraceSegmentDocuments=[body.decode()])

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.sock.close()


@mock_aws
def test_smoke_end_to_end_through_udp_and_x_ray(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("xray", region_name=REGION)
    daemon = FakeDaemon(client)
    try:
        code = smoke.main(["--daemon", daemon.address, "--region", REGION, "--timeout", "5", "--interval", "0.2"],
                          client_factory=lambda region: boto3.client("xray", region_name=region))
    finally:
        daemon.close()
    out = capsys.readouterr()
    assert code == 0, out.err
    sent = json.loads(daemon.received[0].partition(b"\n")[2])
    assert f"found trace {sent['trace_id']}" in out.out


@mock_aws
def test_lookup_finds_only_its_own_trace_and_times_out_otherwise(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("xray", region_name=REGION)
    now = time.time()
    mine = smoke.build_segment("svc", 500, now)
    other = smoke.build_segment("svc", 500, now)
    client.put_trace_segments(TraceSegmentDocuments=[json.dumps(other.document)])
    ticks = iter(range(1000))
    sleeps: list[float] = []
    missing = smoke.find_trace(client, mine.trace_id, mine.start, mine.end, timeout_s=3, interval_s=1,
                               sleep=sleeps.append, clock=lambda: float(next(ticks)))
    assert missing is None and sleeps == [1, 1]  # polled until the deadline, then gave up
    client.put_trace_segments(TraceSegmentDocuments=[json.dumps(mine.document)])
    found = smoke.find_trace(client, mine.trace_id, mine.start, mine.end, timeout_s=3, interval_s=1,
                             sleep=sleeps.append)
    assert found is not None and found["Id"] == mine.trace_id


@mock_aws
def test_trace_not_found_is_exit_1_with_a_hint(capsys, monkeypatch, udp_server):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    host, port = udp_server.getsockname()  # receives, but nothing forwards to X-Ray
    code = smoke.main(["--daemon", f"{host}:{port}", "--region", REGION, "--timeout", "0.3", "--interval", "0.1"])
    err = capsys.readouterr().err
    assert code == 1 and "not in X-Ray" in err and "IRSA" in err
