"""`make bench-detector`: one full 5-minute cycle of the fanned-out detector at 10,000 metrics against moto (issue 28).

The dispatcher and the detector run from their built zips (infra/tools/anomaly_fleet.py), the detector as its SQS
event source mapping runs it: one batch of `anomaly.detectBatchMetrics` metrics per invocation, up to
`anomaly.detectMaxConcurrency` warm containers at once (infra/tools/lambda_pool.py: one interpreter each). A moto
server in its own process holds, per metric, the band's day object, a week-old state and a source point.
Printed: the cycle's wall time (dispatcher + every detector invocation), the number of invocations, per invocation
its wall and CPU time and the container's peak RSS (what the function's 256 MB limit applies to), and the
monthly AWS cost at 1,000 and 10,000 metrics from the cost report's price table (infra/plan/prices.yaml) with the
invocation time measured here. Figures, not assertions; moto's latencies are not AWS's (each S3 call against
moto costs the moto process CPU on this machine's shared cores).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.components.anomaly import DETECTOR_TIMEOUT_S, DISPATCHER_TIMEOUT_S
from infra.config.anomaly import AnomalyConfig
from infra.plan.cost import _price, runs_per_month
from infra.tools import anomaly_fleet as fleet
from infra.tools import daemons
from infra.tools.lambda_pool import drain, lambda_pool
from lambdas.anomaly_core import metrics as contract

DETECTOR_MEMORY_GB = 256 / 1024
# Lambda's CPU is proportional to memory, one vCPU at 1,769 MB (AWS Lambda developer guide, "Configuring Lambda
# function memory"): the detector's CPU time measured here, spread at that share, is its duration on Lambda.
DETECTOR_VCPU = 256 / 1769
DISPATCHER_MEMORY_GB = 128 / 1024
# Datums per metric per run: the per-metric series (IsAnomaly ... LowerBound) and ForecastAge.
DATUMS_PER_METRIC = len(contract.PER_METRIC) + 1
CUSTOM_METRICS_PER_METRIC = DATUMS_PER_METRIC  # each (name, Metric=<id>) pair is one custom metric
# Each metric, each run: the band's day object and the state read, the state written (a new point every cycle).
S3_GETS_PER_METRIC, S3_PUTS_PER_METRIC = 2, 1
# SQS per batch: its share of a SendMessageBatch (10 a call), the mapping's ReceiveMessage and DeleteMessage; KMS:
# at most one data-key call per message sent and one per message received (SQS reuses data keys for 5 minutes by
# default, so this is an upper bound).
SQS_REQUESTS_PER_BATCH = 0.1 + 1 + 1
KMS_REQUESTS_PER_BATCH = 2


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cycle(n: int, batch: int, concurrency: int, workdir: Path, source: str) -> dict[str, Any]:
    with daemons.moto_server(workdir=workdir / "moto") as moto, fleet.prometheus_stand_in() as prom_url:
        os.environ.update(daemons.aws_env(moto.url))
        world = fleet.create_world()
        names = [fleet.metric_name(i) for i in range(n)]
        t0 = time.perf_counter()
        now = time.time()
        fleet.seed(world, names, now)
        seeded_s = time.perf_counter() - t0
        pkgs = fleet.packages(fleet.fleet_config(n, prom_url if source == "prometheus" else None), workdir)
        env = daemons.aws_env(moto.url) | fleet.function_env(world, batch)
        with lambda_pool(pkgs["anomaly_dispatcher"].path, "anomaly_dispatcher.handler.handler", workers=1,
                         timeout_s=DISPATCHER_TIMEOUT_S, env=env, workdir=workdir) as dispatcher, \
                lambda_pool(pkgs["anomaly_detector"].path, "anomaly_detector.handler.consume", workers=concurrency,
                            timeout_s=DETECTOR_TIMEOUT_S, env=env, workdir=workdir) as detector:
            t1, moto0 = time.perf_counter(), cpu_seconds(moto.process.pid)
            sent = dispatcher.invoke({"job": "detect"})
            done = drain(detector, world.sqs, world.detect_queue_url)
            wall, moto_cpu = time.perf_counter() - t1, cpu_seconds(moto.process.pid) - moto0
        log_bytes = sum(p.stat().st_size for p in workdir.glob("anomaly_detector*.log"))
    runs = done.invocations
    return {"n": n, "batch": batch, "concurrency": concurrency, "seeded_s": seeded_s, "wall_s": wall,
            "moto_cpu_s": moto_cpu, "source": source,
            "dispatch": sent, "invocations": runs, "redelivered": done.redelivered, "log_bytes": log_bytes,
            "scored": sum((r.get("ok") or {}).get("scored", 0) for r in runs),
            "errors": sum((r.get("ok") or {}).get("errors", 0) for r in runs),
            "failed": sum(1 for r in runs if "ok" not in r or r["ok"]["batchItemFailures"])}


def monthly_cost(n: int, batch: int, invocation_s: float, dispatch_s: float, log_bytes_per_metric: float,
                 schedule: str, source: str) -> list[tuple[str, float]]:
    """Per line (USD a month) for `n` metrics: what one cycle costs, times the cycles of a month."""
    cycles = runs_per_month(schedule)
    batches = math.ceil(n / batch)
    gb_s = _price("lambda", "gb_second_x86")
    return [
        ("lambda requests", cycles * (1 + batches) / 1e6 * _price("lambda", "request_million")),
        ("lambda duration", cycles * (batches * invocation_s * DETECTOR_MEMORY_GB
                                      + dispatch_s * DISPATCHER_MEMORY_GB) * gb_s),
        ("sqs requests", cycles * batches * SQS_REQUESTS_PER_BATCH / 1e6 * _price("sqs", "request_million")),
        ("kms requests (upper bound)", cycles * batches * KMS_REQUESTS_PER_BATCH / 1e4 * _price("kms", "request_10k")),
        ("s3 requests", cycles * n * (S3_GETS_PER_METRIC * _price("s3", "get_1k")
                                      + S3_PUTS_PER_METRIC * _price("s3", "put_1k")) / 1e3),
        # A CloudWatch source is billed per metric requested; Prometheus (AMP) queries per sample processed, which
        # the price table does not hold (a few samples a query: cents at 10,000 metrics).
        ("cloudwatch GetMetricData", cycles * n / 1e3 * _price("cloudwatch", "get_metric_data_1k_metrics")
         if source == "cloudwatch" else 0.0),
        ("cloudwatch PutMetricData", cycles * batches * math.ceil((DATUMS_PER_METRIC * batch + 1) / 1000) / 1e3
         * _price("cloudwatch", "api_request_1k")),
        ("cloudwatch custom metrics", n * CUSTOM_METRICS_PER_METRIC * _price("cloudwatch", "custom_metric")),
        ("cloudwatch logs ingested", cycles * n * log_bytes_per_metric / 1e9 * _price("cloudwatch", "logs_ingest_gb")),
    ]


def report(r: dict[str, Any], cfg: AnomalyConfig) -> None:
    runs = [x for x in r["invocations"] if "wall_s" in x]
    walls, cpus = [x["wall_s"] for x in runs], [x["cpu_s"] for x in runs]
    rss = [x["max_rss_mb"] for x in runs]
    print(f"metrics {r['n']:,} ({r['source']} source)  batch {r['batch']}  max concurrency {r['concurrency']}  "
          f"(seeding moto took {r['seeded_s']:.0f} s, not counted); load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"cycle wall time: {r['wall_s']:.1f} s (dispatcher {r['dispatch'].get('wall_s', 0):.2f} s + "
          f"{len(runs)} detector invocations, {r['concurrency']} at once; a cycle is 300 s)")
    print(f"invocations: 1 dispatcher + {len(runs)} detector ({r['dispatch'].get('ok', {}).get('batches')} "
          f"batches queued, {r['redelivered']} redelivered, {r['failed']} failed); metrics scored "
          f"{r['scored']:,}, not scored {r['errors']}")
    print(f"per detector invocation: wall median {statistics.median(walls):.2f} s, max {max(walls):.2f} s "
          f"(timeout {DETECTOR_TIMEOUT_S} s); CPU median {statistics.median(cpus):.2f} s, max {max(cpus):.2f} s; "
          f"{1000 * sum(walls) / max(1, r['scored']):.1f} ms wall, {1000 * sum(cpus) / max(1, r['scored']):.1f} ms "
          f"CPU per metric")
    print(f"peak RSS per container: max {max(rss):.1f} MB, median {statistics.median(rss):.1f} MB "
          f"(limit 256 MB)")
    per_metric_ms = 1000 * r["moto_cpu_s"] / max(1, r["scored"])
    print(f"moto server CPU during the cycle: {r['moto_cpu_s']:.1f} s ({per_metric_ms:.1f} ms a metric; one "
          f"process: AWS answers in parallel)")
    lambda_s = statistics.mean(cpus) / DETECTOR_VCPU
    slowest = max(cpus) / DETECTOR_VCPU
    waves = math.ceil(len(runs) / r["concurrency"])
    print(f"on Lambda (the CPU measured here at 256 MB's {DETECTOR_VCPU:.2f} vCPU, S3/source waits overlapped): "
          f"~{lambda_s:.1f} s an invocation (slowest {slowest:.1f} s of the {DETECTOR_TIMEOUT_S} s timeout), "
          f"{waves} waves of {r['concurrency']}: a cycle of ~{waves * slowest:.0f} s")
    log_per_metric = r["log_bytes"] / max(1, r["scored"])
    cycles = runs_per_month(cfg.detect_schedule)
    print(f"\nmonthly AWS cost (price table: infra/plan/prices.yaml; {cycles:,.0f} cycles a month; each "
          f"invocation billed at the {lambda_s:.1f} s above, {log_per_metric:.0f} log bytes a metric):")
    header = f"  {'line':<28}" + "".join(f"{n:>14,}" for n in (1_000, 10_000))
    print(header + "   metrics")
    table = {n: monthly_cost(n, r["batch"], lambda_s, r["dispatch"].get("wall_s", 0.0), log_per_metric,
                             cfg.detect_schedule, r["source"]) for n in (1_000, 10_000)}
    for i, (line, _) in enumerate(table[1_000]):
        print(f"  {line:<28}" + "".join(f"{table[n][i][1]:>14,.2f}" for n in table))
    totals = {n: sum(v for _, v in rows) for n, rows in table.items()}
    print(f"  {'total USD/month':<28}" + "".join(f"{totals[n]:>14,.2f}" for n in totals))
    print(f"  {'per metric USD/month':<28}" + "".join(f"{totals[n] / n:>14,.4f}" for n in totals))
    no_custom = {n: totals[n] - dict(table[n])["cloudwatch custom metrics"] for n in totals}
    print(f"  {'per metric, w/o custom met.':<28}" + "".join(f"{no_custom[n] / n:>14,.4f}" for n in no_custom))
    print("  (custom metrics at the table's first-tier price: AWS bills metrics beyond 10,000 less; the trainer's "
          "weekly fits are not in this cycle)")


def main(argv: list[str] | None = None) -> int:
    cfg = AnomalyConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=cfg.detect_batch_metrics, help="metrics per batch")
    parser.add_argument("--concurrency", type=int, default=cfg.detect_max_concurrency,
                        help="detector containers at once (the mapping's maximum concurrency)")
    parser.add_argument("--source", choices=("prometheus", "cloudwatch"), default="prometheus",
                        help="where the latest values come from: a Prometheus API stand-in (the shipped metrics' "
                             "source), or moto's CloudWatch (its GetMetricData scans every datum per query)")
    args = parser.parse_args(argv)
    for flag in ("metrics", "batch", "concurrency"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    with tempfile.TemporaryDirectory(prefix="bench-detector-") as tmp:
        report(cycle(args.metrics, args.batch, args.concurrency, Path(tmp), args.source), cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
