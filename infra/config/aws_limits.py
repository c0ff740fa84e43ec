"""What the AWS APIs this stack calls accept, in one place, for every section's checks (formats.py, rules.py).

Values that botocore's service models carry (min/max/pattern/enum of a shape) are copied here, because botocore
is a test dependency, not one of the program's: tests/test_config_limits.py compares each against
`botocore.session.get_session().get_service_model(...)` so a model change fails a test. The rest are the
documented quotas, cited where they are set.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------- CloudWatch
# botocore cloudwatch: shape Statistic (enum).
CLOUDWATCH_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
# botocore cloudwatch: shapes Namespace (min 1, max 255, pattern '[^:].*'), MetricName, DimensionName (1-255),
# DimensionValue (1-1024), Dimensions (max 30).
NAMESPACE_MIN, NAMESPACE_MAX, NAMESPACE_PATTERN = 1, 255, "[^:].*"
METRIC_NAME_MAX = 255
DIMENSION_NAME_MAX = 255
DIMENSION_VALUE_MAX = 1024
MAX_DIMENSIONS = 30
# PutMetricData: "Namespaces that begin with AWS/ are reserved for use by Amazon Web Services products"
# (CloudWatch API Reference, PutMetricData, Namespace).
RESERVED_NAMESPACE_PREFIX = "AWS/"
# PutMetricAlarm: "The maximum value for EvaluationPeriods x Period is one week (604,800 seconds)"; alarms with a
# period below an hour evaluate at most one day (86,400 s) of data (CloudWatch API Reference, PutMetricAlarm).
MAX_ALARM_WINDOW_S = 604_800
MAX_SHORT_PERIOD_ALARM_WINDOW_S = 86_400

# Percentile-style statistics (CloudWatch User Guide, "CloudWatch statistics definitions"): pNN, tmNN, wmNN,
# tcNN, tsNN with NN in 0..100 (up to 10 decimals), the range forms TM(a%:b%) etc., PR(a:b), and IQM.
_PERCENT = r"(?:100(?:\.0{1,10})?|[0-9]{1,2}(?:\.[0-9]{1,10})?)"
_BOUND = rf"(?:{_PERCENT}%|[0-9]+(?:\.[0-9]+)?)?"
EXTENDED_STATISTIC_PATTERN = (rf"(?:[pP]|[tT][mM]|[wW][mM]|[tT][cC]|[tT][sS]){_PERCENT}"
                              rf"|(?:TM|WM|TC|TS|PR|tm|wm|tc|ts|pr)\({_BOUND}:{_BOUND}\)|IQM|iqm")


def statistic_problem(stat: str) -> str | None:
    if stat in CLOUDWATCH_STATISTICS or re.fullmatch(EXTENDED_STATISTIC_PATTERN, stat, re.ASCII):
        return None
    return (f"statistic {stat!r} is not one CloudWatch accepts: {', '.join(CLOUDWATCH_STATISTICS)}, or a "
            f"percentile such as p95, p99.9, tm90, TM(10%:90%), IQM (0 to 100)")


def namespace_problem(namespace: str, *, publishing: bool) -> str | None:
    """Why CloudWatch refuses a metric namespace (`publishing`: written with PutMetricData/EMF, where AWS/ is
    reserved; reading AWS/Lambda metrics is fine)."""
    if not NAMESPACE_MIN <= len(namespace) <= NAMESPACE_MAX or not re.fullmatch(NAMESPACE_PATTERN, namespace):
        return f"namespace {namespace!r} must be 1-{NAMESPACE_MAX} characters, not starting with ':'"
    if not re.fullmatch(r"[ -~]+", namespace, re.ASCII):
        return f"namespace {namespace!r} must be printable ASCII"
    if publishing and namespace.startswith(RESERVED_NAMESPACE_PREFIX):
        return f"namespace {namespace!r}: namespaces starting {RESERVED_NAMESPACE_PREFIX} are reserved for AWS"
    return None


def cloudwatch_query_problems(query: str) -> list[str]:
    """A `Namespace|MetricName|Stat[|Dim=Value,...]` query (lambdas/anomaly_core/sources.CloudWatchQuery) that
    GetMetricData would refuse, or that the function's parser refuses."""
    parts = query.split("|")
    if len(parts) not in (3, 4) or not all(p.strip() for p in parts[:3]):
        return ["a CloudWatch query is 'Namespace|MetricName|Stat[|Dim=Value,...]'"]
    namespace, metric, stat = (p.strip() for p in parts[:3])
    out = [p for p in (namespace_problem(namespace, publishing=False), statistic_problem(stat)) if p]
    if len(metric) > METRIC_NAME_MAX:
        out.append(f"metric name must be 1-{METRIC_NAME_MAX} characters")
    if len(parts) == 4 and parts[3].strip():
        items = parts[3].split(",")
        if len(items) > MAX_DIMENSIONS:
            out.append(f"at most {MAX_DIMENSIONS} dimensions")
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or not name.strip() or not value.strip():
                out.append(f"dimension {item!r} must be Name=Value")
            elif len(name.strip()) > DIMENSION_NAME_MAX or len(value.strip()) > DIMENSION_VALUE_MAX:
                out.append(f"dimension {item!r}: name 1-{DIMENSION_NAME_MAX}, value 1-{DIMENSION_VALUE_MAX} "
                           "characters")
    return out


def alarm_window_problem(period_s: int, evaluation_periods: int) -> str | None:
    window = period_s * evaluation_periods
    if window > MAX_ALARM_WINDOW_S:
        return (f"period x evaluation periods is {window} s: CloudWatch alarms look at most one week "
                f"({MAX_ALARM_WINDOW_S} s) back")
    if period_s < 3600 and window > MAX_SHORT_PERIOD_ALARM_WINDOW_S:
        return (f"period x evaluation periods is {window} s: with a period under an hour CloudWatch looks at most "
                f"one day ({MAX_SHORT_PERIOD_ALARM_WINDOW_S} s) back")
    return None


# ---------------------------------------------------------------------------------------------- Prometheus
# botocore amp: shape WorkspaceId (min 1, max 64); the console and API give `ws-<uuid>`.
AMP_WORKSPACE_ID_MAX = 64
AMP_HOST_PATTERN = r"aps-workspaces\.([a-z0-9-]+)\.amazonaws\.com"
AMP_PATH_PATTERN = r"/workspaces/([-.0-9A-Za-z_]{1,64})/?"

# ---------------------------------------------------------------------------------------------- S3
# S3 general purpose bucket naming rules (S3 User Guide, "General purpose bucket naming rules"): names must not
# start with these prefixes (nor end with -s3alias, --ol-s3, .mrap, --x-s3, --table-s3).
S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def s3_prefix_problem(prefix: str) -> str | None:
    """Why S3 refuses every bucket name that starts with `prefix` (e.g. `<service>-<environment>-`), or None."""
    for reserved in S3_RESERVED_PREFIXES:
        if prefix.startswith(reserved):
            return f"bucket names built from it start with {reserved!r}, a prefix S3 reserves"
    return None
