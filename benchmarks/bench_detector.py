"""`make bench-detector`: one detector invocation for 1, 20, 100 and 1,000 metrics against moto.

A moto server runs in its own process (so its memory is not the detector's); each metric has a band (8 days on
the 5-minute grid, like the trainer's), a full-size state (a week of memory) and a CloudWatch latest value. Each
size runs in a fresh process: wall time of `run()` and the process's peak RSS (what Lambda's 256 MB limits),
then a linear fit tells where the 60 s timeout and 256 MB would be reached. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

from infra.core.paths import LAMBDAS_DIR

if str(LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDAS_DIR))

BUCKET = "bench-detector"
REGION = "us-east-1"
STEP = 300
SIZES = (1, 20, 100, 1000)
LAMBDA_TIMEOUT_S = 60
LAMBDA_MEMORY_MB = 256
NAMESPACE = "Bench/Source"


def _env(endpoint: str) -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": endpoint})


def _now() -> float:
    return float(int(time.time()) // STEP * STEP)


def full_state(now: float) -> dict[str, Any]:
    """A state as the detector holds it after a week: every memory list at its full length."""
    from anomaly_core.scoring import WEEK_POINTS, BandPoint, ConfidenceState, assess

    state = ConfidenceState()
    for i in range(WEEK_POINTS + 300):
        t = now - (WEEK_POINTS + 300 - i) * STEP
        base = 100 + 20 * math.sin(2 * math.pi * (t % 86400) / 86400)
        _, state = assess(base + 3 * math.sin(i * 1.7), BandPoint(t, base, base - 10, base + 10), state, t)
    return {"confidence": state.to_json(), "episode": {}, "pending": [], "last_ts": now - STEP}


def seed(endpoint: str, n: int, now: float) -> None:
    import boto3

    _env(endpoint)
    s3, cw = boto3.client("s3"), boto3.client("cloudwatch")
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    state = json.dumps(full_state(now)).encode()
    rows = []
    for i in range(8 * 288):
        t = now - 3600 + i * STEP
        base = 100 + 20 * math.sin(2 * math.pi * (t % 86400) / 86400)
        rows.append([t, round(base, 4), round(base - 10, 4), round(base + 10, 4)])
    band = json.dumps({"metric": "m", "trained_at_epoch": now - 3600, "flagged": False,
                       "seed_residuals": [0.3] * 576, "band": rows}).encode()
    data = []
    for i in range(n):
        name = f"m{i:04d}"
        s3.put_object(Bucket=BUCKET, Key=f"bands/{name}/latest.json", Body=band)
        s3.put_object(Bucket=BUCKET, Key=f"state/{name}.json", Body=state)
        data.append({"MetricName": "Value", "Dimensions": [{"Name": "Id", "Value": name}],
                     "Timestamp": datetime.fromtimestamp(now - 60, UTC), "Value": 100.0 + i % 7})
    for i in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=data[i:i + 1000])


def one(endpoint: str, n: int, now: float) -> dict[str, Any]:
    """Runs in a fresh process: one invocation over n metrics; wall time and peak RSS."""
    import boto3
    from anomaly_core.settings import MetricSpec, Settings
    from anomaly_core.sources import Sources
    from anomaly_detector import handler as detector

    _env(endpoint)
    cfg = Settings(metrics=tuple(MetricSpec(name=f"m{i:04d}", source="cloudwatch",
                                            query=f"{NAMESPACE}|Value|Average|Id=m{i:04d}") for i in range(n)),
                   confidence_threshold=0.7)
    session = boto3.session.Session()
    sns = session.client("sns")
    topic = sns.create_topic(Name="bench")["TopicArn"]
    cw = session.client("cloudwatch")
    clients = detector.Clients(s3=session.client("s3"), cloudwatch=cw, sns=sns, sources=Sources(cloudwatch=cw))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, cpu0 = time.perf_counter(), time.process_time()
    out = detector.run(cfg, clients, detector.Targets(BUCKET, topic), now)
    took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "seconds": took, "cpu_seconds": cpu, "peak_rss_mb": rss, "rss_before_mb": rss_before,
            "errors": out["errors"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--now", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.endpoint, args.one, args.now)))
        return 0
    port = _free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rows = []
        print(f"{'metrics':>7} {'seconds':>8} {'ms/metric':>9} {'detector CPU s':>14} {'peak RSS MB':>11} "
              f"{'RSS at start MB':>15} {'errors':>6}")
        for n in args.sizes:
            now = _now()
            seed(endpoint, n, now)
            got = subprocess.run([sys.executable, "-m", "benchmarks.bench_detector", "--one", str(n),
                                  "--endpoint", endpoint, "--now", str(now)], check=True, capture_output=True,
                                 text=True)
            row = json.loads(got.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{n:>7} {row['seconds']:>8.2f} {1000 * row['seconds'] / n:>9.1f} {row['cpu_seconds']:>14.2f} "
                  f"{row['peak_rss_mb']:>11.1f} "
                  f"{row['rss_before_mb']:>15.1f} {row['errors']:>6}")
            # A clean moto for the next size (moto's reset endpoint).
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30)
        if len(rows) >= 2:
            xs = [float(r["n"]) for r in rows]
            t0, t_slope = _fit(xs, [r["seconds"] for r in rows])
            m0, m_slope = _fit(xs, [r["peak_rss_mb"] for r in rows])
            print(f"linear fit: time {t0:.2f} s + {1000 * t_slope:.2f} ms/metric; peak RSS {m0:.1f} MB + "
                  f"{1000 * m_slope:.1f} kB/metric")
            if t_slope > 0:
                at = (LAMBDA_TIMEOUT_S - t0) / t_slope
                print(f"  the {LAMBDA_TIMEOUT_S} s timeout would be reached near {at:,.0f} metrics "
                      f"(against moto on this machine; real S3/CloudWatch latencies differ)")
            if m_slope > 0:
                print(f"  {LAMBDA_MEMORY_MB} MB would be reached near {(LAMBDA_MEMORY_MB - m0) / m_slope:,.0f} metrics")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
