"""Post-deploy smoke test of the tracing pipeline: send one X-Ray segment the way akidb-rest does, find it in X-Ray.

    python -m infra.tools.xray_smoke --daemon xray-daemon.observability.svc.cluster.local:2000 --region us-east-1

It builds a real segment (new trace ID `1-<8 hex epoch>-<24 hex>`), sends it as one UDP datagram in the
daemon protocol (`{"format": "json", "version": 1}\\n<segment JSON>`), then polls `GetTraceSummaries` over the
segment's own time window until the trace appears. The segment is slow on purpose (`--duration-ms`, default
1000, above the 100 ms latency threshold), so the tail sampler keeps it deterministically: a healthy fast trace
would be kept only `samplingFraction` of the time. Run it from a pod in the cluster (`kubectl port-forward`
cannot carry UDP) with credentials allowed `xray:GetTraceSummaries`.

Exit codes: 0 found, 1 not found in time or an AWS error, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from infra.config import AWS_REGION_PATTERN

HEADER = b'{"format": "json", "version": 1}\n'
MAX_DATAGRAM = 64 * 1024  # the daemon reads at most 64 KiB per packet
TRACE_ID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
SEGMENT_ID = re.compile(r"^[0-9a-f]{16}$")


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


def parse_daemon(address: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:2000`) -> (host, port), or a UsageError saying what is allowed."""
    m = re.match(r"^(?:\[([0-9a-fA-F:]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$", address or "")
    if not m:
        raise UsageError(f"--daemon {address!r}: expected host:port, e.g. "
                         "xray-daemon.observability.svc.cluster.local:2000 or 127.0.0.1:2000")
    port = int(m.group(3))
    if not 1 <= port <= 65535:
        raise UsageError(f"--daemon {address!r}: port must be in 1..65535")
    return m.group(1) or m.group(2), port


def new_trace_id(epoch: float) -> str:
    return f"1-{int(epoch):08x}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class SmokeSegment:
    trace_id: str
    segment_id: str
    run_id: str
    document: dict[str, Any]

    @property
    def start(self) -> float:
        return float(self.document["start_time"])

    @property
    def end(self) -> float:
        return float(self.document["end_time"])


def build_segment(service: str, duration_ms: int, now: float, error: bool = False) -> SmokeSegment:
    """A complete (not in-progress) segment that ended at `now` and lasted `duration_ms`."""
    start = now - duration_ms / 1000
    trace_id = new_trace_id(start)
    segment_id = secrets.token_hex(8)
    run_id = uuid.uuid4().hex
    status = 500 if error else 200
    doc: dict[str, Any] = {
        "name": service,
        "id": segment_id,
        "trace_id": trace_id,
        "start_time": round(start, 6),
        "end_time": round(now, 6),
        "http": {"request": {"method": "GET", "url": "https://smoke.akidb.internal/xray-smoke"},
                 "response": {"status": status}},
        "annotations": {"smoke_test": True, "smoke_run": run_id},
    }
    if error:
        doc["fault"] = True
    return SmokeSegment(trace_id=trace_id, segment_id=segment_id, run_id=run_id, document=doc)


def daemon_packet(segment: dict[str, Any]) -> bytes:
    """Exactly the daemon protocol: the JSON header line, a newline, then the segment JSON."""
    body = json.dumps(segment, separators=(",", ":")).encode()
    packet = HEADER + body
    if len(packet) > MAX_DATAGRAM:
        raise ValueError(f"segment is {len(packet)} bytes; the daemon accepts at most {MAX_DATAGRAM} per packet")
    return packet


def send_udp(packet: bytes, host: str, port: int) -> None:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, sockaddr)


def find_trace(client: Any, trace_id: str, start: float, end: float, *, timeout_s: float, interval_s: float,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> dict[str, Any] | None:
    """Poll GetTraceSummaries over [start-60 s, end+60 s] until `trace_id` shows up or `timeout_s` passes.

    No filter expression: the window is the segment's own minute, so paging through it is cheap, and it works
    the same against every X-Ray endpoint."""
    deadline = clock() + timeout_s
    while True:
        token = None
        while True:
            kwargs: dict[str, Any] = {"StartTime": start - 60, "EndTime": end + 60}
            if token:
                kwargs["NextToken"] = token
            page = client.get_trace_summaries(**kwargs)
            for summary in page.get("TraceSummaries", []):
                if summary.get("Id") == trace_id:
                    return cast(dict[str, Any], summary)  # boto3 is untyped: the response is Any
            token = page.get("NextToken")
            if not token:
                break
        if clock() + interval_s > deadline:
            return None
        sleep(interval_s)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.tools.xray_smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemon", required=True, help="host:port of the daemon (the xray-daemon Service)")
    parser.add_argument("--region", required=True, help="AWS region the gateway exports to (the stack's home)")
    parser.add_argument("--service-name", default="akidb-xray-smoke", help="segment name (X-Ray service)")
    parser.add_argument("--duration-ms", type=int, default=1000,
                        help="segment duration; keep it above xray.latencyThresholdMs so it is always kept")
    parser.add_argument("--error", action="store_true", help="send a fault (HTTP 500) segment instead")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the trace")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between lookups")
    parser.add_argument("--send-only", action="store_true", help="send the segment, skip the lookup")
    return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> tuple[str, int]:
    host, port = parse_daemon(args.daemon)
    if not re.match(AWS_REGION_PATTERN, args.region):
        raise UsageError(f"--region {args.region!r}: expected an AWS region such as us-east-1")
    if not 1 <= args.duration_ms <= 60_000:
        raise UsageError(f"--duration-ms {args.duration_ms}: must be in 1..60000")
    if not re.match(r"^[\w.:/%&#=+\\@ -]{1,200}$", args.service_name):
        raise UsageError(f"--service-name {args.service_name!r}: 1..200 of letters, digits, spaces, _.:/%&#=+\\-@")
    if args.timeout <= 0 or args.interval <= 0:
        raise UsageError("--timeout and --interval must be positive")
    return host, port


def main(argv: list[str] | None = None, client_factory: Callable[[str], Any] | None = None) -> int:
    try:
        args = _args(argv)
        host, port = _check(args)
    except UsageError as err:
        print(f"xray_smoke: {err}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # argparse already printed what is missing
        return 2 if exit_.code else 0
    segment = build_segment(args.service_name, args.duration_ms, time.time(), error=args.error)
    try:
        send_udp(daemon_packet(segment.document), host, port)
    except OSError as err:
        print(f"xray_smoke: cannot send to {host}:{port}: {err}", file=sys.stderr)
        return 1
    print(f"sent segment {segment.segment_id} of trace {segment.trace_id} to {host}:{port}/udp")
    if args.send_only:
        return 0
    import boto3
    import botocore.exceptions

    client = (client_factory or (lambda region: boto3.client("xray", region_name=region)))(args.region)
    try:
        found = find_trace(client, segment.trace_id, segment.start, segment.end,
                           timeout_s=args.timeout, interval_s=args.interval)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        print(f"xray_smoke: X-Ray lookup failed: {err}", file=sys.stderr)
        return 1
    if found is None:
        print(f"xray_smoke: trace {segment.trace_id} not in X-Ray after {args.timeout:g} s "
              "(check the agent and gateway logs, and the gateway's IRSA role)", file=sys.stderr)
        return 1
    print(f"found trace {segment.trace_id} in X-Ray ({args.region}): duration {found.get('Duration')} s, "
          f"fault {found.get('HasFault')}, error {found.get('HasError')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
