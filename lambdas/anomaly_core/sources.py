"""Where the history (trainer) and the latest value (detector) come from: CloudWatch or Prometheus.

- CloudWatch: GetMetricData on `Namespace|MetricName|Stat|Dim=Value,...` at a 300 s period (paginated).
- Prometheus HTTP API: `query_range` (history, in chunks under Prometheus' 11,000-points-per-query limit) and
  `query` (latest value). An Amazon Managed Prometheus workspace URL (aps-workspaces.<region>.amazonaws.com)
  is signed with SigV4 (service "aps") using the function's role; any other URL (in-VPC Prometheus) is not.
Every failure becomes a `SourceError` with the metric and the reason: the detector counts it, never pages.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .settings import MetricSpec

STEP_S = 300
PROM_MAX_POINTS = 10_000  # Prometheus rejects query_range above 11,000 points per series
HTTP_TIMEOUT_S = 20
LATEST_LOOKBACK_S = 900  # the detector accepts a value at most 15 minutes old
AMP_HOST = re.compile(r"^aps-workspaces\.([a-z0-9-]+)\.amazonaws\.com$")


class SourceError(RuntimeError):
    """The source could not give data (API error, bad query, empty answer)."""


@dataclass(frozen=True)
class CloudWatchQuery:
    namespace: str
    metric_name: str
    stat: str
    dimensions: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> CloudWatchQuery:
        parts = text.split("|")
        if len(parts) not in (3, 4) or not all(p.strip() for p in parts[:3]):
            raise SourceError(f"CloudWatch query {text!r} must be 'Namespace|MetricName|Stat|Dim=Value,...'")
        dims: list[tuple[str, str]] = []
        if len(parts) == 4 and parts[3].strip():
            for item in parts[3].split(","):
                key, sep, value = item.partition("=")
                if not sep or not key.strip() or not value.strip():
                    raise SourceError(f"CloudWatch dimension {item!r} in {text!r} must be Name=Value")
                dims.append((key.strip(), value.strip()))
        return cls(parts[0].strip(), parts[1].strip(), parts[2].strip(), tuple(dims))

    def data_query(self) -> dict[str, Any]:
        return {"Id": "m", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": self.namespace, "MetricName": self.metric_name,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions]},
            "Period": STEP_S, "Stat": self.stat}}


def cloudwatch_series(client: Any, query: str, start: float, end: float) -> list[tuple[float, float]]:
    q = CloudWatchQuery.parse(query)
    points: dict[float, float] = {}
    kwargs: dict[str, Any] = {"MetricDataQueries": [q.data_query()], "ScanBy": "TimestampAscending",
                              "StartTime": datetime.fromtimestamp(start, UTC),
                              "EndTime": datetime.fromtimestamp(end, UTC)}
    try:
        while True:
            resp = client.get_metric_data(**kwargs)
            for result in resp.get("MetricDataResults", []):
                for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    points[ts.timestamp()] = float(value)
            token = resp.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    except Exception as e:  # botocore ClientError, EndpointConnectionError...: all are "the source failed"
        raise SourceError(f"CloudWatch GetMetricData for {query!r} failed: {e}") from e
    return sorted(points.items())


CW_MAX_QUERIES = 500  # GetMetricData accepts up to 500 MetricDataQueries per call


def cloudwatch_latest_batch(client: Any, metrics: Sequence[MetricSpec], now: float
                            ) -> dict[str, tuple[float, float] | SourceError | None]:
    """The newest point of each metric within LATEST_LOOKBACK_S, in one paginated GetMetricData call."""
    out: dict[str, tuple[float, float] | SourceError | None] = {}
    queries, ids = [], {}
    for i, metric in enumerate(metrics):
        try:
            q = CloudWatchQuery.parse(metric.query)
        except SourceError as e:
            out[metric.name] = e
            continue
        qid = f"m{i}"
        ids[qid] = metric.name
        queries.append({**q.data_query(), "Id": qid})
        out[metric.name] = None
    if not queries:
        return out
    # The start on the period grid: CloudWatch buckets points from StartTime, so an unaligned start would stamp the
    # same point differently from one run to the next, and the detector (which admits each timestamp once to a
    # metric's state) would take it for a new one.
    start = (now - LATEST_LOOKBACK_S) // STEP_S * STEP_S
    kwargs: dict[str, Any] = {"MetricDataQueries": queries, "ScanBy": "TimestampAscending",
                              "StartTime": datetime.fromtimestamp(start, UTC),
                              "EndTime": datetime.fromtimestamp(now, UTC)}
    try:
        while True:
            resp = client.get_metric_data(**kwargs)
            for result in resp.get("MetricDataResults", []):
                name = ids.get(result.get("Id"))
                pairs = sorted(zip(result.get("Timestamps", []), result.get("Values", []), strict=False))
                if name is not None and pairs:
                    out[name] = (pairs[-1][0].timestamp(), float(pairs[-1][1]))
            token = resp.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    except Exception as e:  # the whole batch failed: each of its metrics is counted
        err = SourceError(f"CloudWatch GetMetricData failed: {e}")
        return {**{n: out[n] for n in out if isinstance(out[n], SourceError)}, **{n: err for n in ids.values()}}
    return out


Signer = Callable[[urllib.request.Request], None]


def sigv4_signer(region: str, credentials: Any) -> Signer:
    """Sign a request for Amazon Managed Prometheus with the function's credentials (botocore SigV4Auth)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    def sign(req: urllib.request.Request) -> None:
        aws_req = AWSRequest(method=req.get_method(), url=req.full_url, data=req.data)
        SigV4Auth(credentials, "aps", region).add_auth(aws_req)
        for key, value in aws_req.headers.items():
            req.add_header(key, value)

    return sign


def amp_region(url: str) -> str | None:
    m = AMP_HOST.match(urllib.parse.urlparse(url).hostname or "")
    return m.group(1) if m else None


def _prom_get(base_url: str, path: str, params: dict[str, str], signer: Signer | None) -> Any:
    url = f"{base_url.rstrip('/')}{path}?{urllib.parse.urlencode(sorted(params.items()))}"
    req = urllib.request.Request(url, method="GET")
    if signer is not None:
        signer(req)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            body = json.loads(resp.read().decode())
    except urllib.error.HTTPError as e:
        raise SourceError(f"Prometheus {path} answered HTTP {e.code}: {e.read()[:300]!r}") from e
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise SourceError(f"Prometheus {path} unreachable: {e}") from e
    except json.JSONDecodeError as e:
        raise SourceError(f"Prometheus {path} answered non-JSON: {e}") from e
    if not isinstance(body, dict) or body.get("status") != "success":
        raise SourceError(f"Prometheus {path} error: {body.get('error') if isinstance(body, dict) else body}")
    return body.get("data", {})


def _single_series(data: Any, query: str) -> list[Any]:
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        raise SourceError(f"Prometheus answer for {query!r} has no result list")
    if len(result) > 1:
        raise SourceError(f"PromQL {query!r} returned {len(result)} series; aggregate it to exactly one (sum/avg)")
    return result


def _finite(value: Any) -> float:
    x = float(value)
    return x if math.isfinite(x) else math.nan


def _malformed(query: str, what: Exception) -> SourceError:
    return SourceError(f"Prometheus answer for {query!r} is malformed ({type(what).__name__}: {what})")


def prometheus_series(base_url: str, query: str, start: float, end: float,
                      signer: Signer | None) -> list[tuple[float, float]]:
    points: dict[float, float] = {}
    chunk = PROM_MAX_POINTS * STEP_S
    t = start
    while t < end:
        stop = min(end, t + chunk)
        data = _prom_get(base_url, "/api/v1/query_range",
                         {"query": query, "start": f"{t:.0f}", "end": f"{stop:.0f}", "step": str(STEP_S)}, signer)
        try:
            for series in _single_series(data, query):
                for ts, value in series.get("values", []):
                    points[float(ts)] = _finite(value)
        except (TypeError, ValueError, AttributeError, OverflowError) as e:
            raise _malformed(query, e) from e
        t = stop + STEP_S
    return sorted(points.items())


def prometheus_latest(base_url: str, query: str, at: float, signer: Signer | None) -> tuple[float, float] | None:
    data = _prom_get(base_url, "/api/v1/query", {"query": query, "time": f"{at:.0f}"}, signer)
    result = _single_series(data, query)
    if not result:
        return None
    try:
        ts, value = result[0].get("value", [None, None])
        stamp = float(ts)
    except (TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _malformed(query, e) from e
    if not math.isfinite(stamp):
        raise SourceError(f"Prometheus answer for {query!r} has a non-finite timestamp {ts!r}")
    try:
        return stamp, _finite(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise _malformed(query, e) from e


@dataclass
class Sources:
    """The two sources behind one interface; clients injected (boto3 in Lambda, moto in tests)."""

    cloudwatch: Any
    prometheus_url: str | None = None
    signer: Signer | None = None

    def history(self, metric: MetricSpec, start: float, end: float) -> list[tuple[float, float]]:
        if metric.source == "cloudwatch":
            return cloudwatch_series(self.cloudwatch, metric.query, start, end)
        return prometheus_series(self._url(), metric.query, start, end, self.signer)

    def latest(self, metric: MetricSpec, now: float) -> tuple[float, float] | None:
        """(timestamp, value) of the newest point within the last 15 minutes, or None when there is none."""
        if metric.source == "cloudwatch":
            points = cloudwatch_series(self.cloudwatch, metric.query, now - LATEST_LOOKBACK_S, now)
            return points[-1] if points else None
        found = prometheus_latest(self._url(), metric.query, now, self.signer)
        if found is None or now - found[0] > LATEST_LOOKBACK_S:
            return None
        return found

    def latest_many(self, metrics: Sequence[MetricSpec], now: float,
                    workers: int = 8) -> dict[str, tuple[float, float] | SourceError | None]:
        """`latest` for many metrics at once: CloudWatch in GetMetricData calls of up to 500 queries, Prometheus
        queries in parallel. A failure is returned (not raised) for the metric it concerns."""
        out: dict[str, tuple[float, float] | SourceError | None] = {}
        cw = [m for m in metrics if m.source == "cloudwatch"]
        for i in range(0, len(cw), CW_MAX_QUERIES):
            out.update(cloudwatch_latest_batch(self.cloudwatch, cw[i:i + CW_MAX_QUERIES], now))
        prom = [m for m in metrics if m.source != "cloudwatch"]

        def one(metric: MetricSpec) -> tuple[float, float] | SourceError | None:
            try:
                return self.latest(metric, now)
            except SourceError as e:
                return e
            except Exception as e:  # an unexpected answer is this metric's failure, never the run's
                return SourceError(f"reading {metric.name} failed unexpectedly: {type(e).__name__}: {e}")

        if prom:
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(prom)))) as pool:
                out.update(zip((m.name for m in prom), pool.map(one, prom), strict=True))
        return out

    def _url(self) -> str:
        if not self.prometheus_url:
            raise SourceError("no prometheusUrl configured for a prometheus metric")
        return self.prometheus_url


def default_sources(prometheus_url: str | None, session: Any) -> Sources:
    """Boto3 clients from the function's session; SigV4 signing when the URL is an AMP workspace."""
    signer = None
    if prometheus_url and (region := amp_region(prometheus_url)):
        signer = sigv4_signer(region, session.get_credentials().get_frozen_credentials())
    return Sources(cloudwatch=session.client("cloudwatch"), prometheus_url=prometheus_url, signer=signer)
