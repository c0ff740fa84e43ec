"""Read each SLO's recorded error budget from Prometheus (Amazon Managed Prometheus signed with SigV4).

One instant query per SLO of the shipped recording rule (infra.slo.budget_policy.budget_remaining_query); the
HTTP client, its timeout and the SigV4 signer (botocore SigV4Auth, service "aps") are the anomaly detector's
(lambdas/anomaly_core/sources.py), so both read Prometheus the same way. Every failure is a `BudgetReadError`
saying what failed: the URL unreachable, authentication refused, no credentials, or the SLOs without a series.
"""

from __future__ import annotations

import math
import time
import urllib.error
from collections.abc import Sequence

from infra.slo.budget_policy import BudgetReading, budget_remaining_query, spent_from_remaining
from infra.slo.spec import Slo
from lambdas.anomaly_core.sources import (
    HTTP_TIMEOUT_S,
    Signer,
    SourceError,
    amp_region,
    prometheus_latest,
    sigv4_signer,
)

__all__ = ["HTTP_TIMEOUT_S", "BudgetReadError", "aws_signer", "read_budgets"]


class BudgetReadError(RuntimeError):
    """The budgets could not be read; the message names what failed (the deploy is held)."""


def aws_signer(region: str) -> Signer:
    """SigV4 with the default credential chain (environment, e.g. the workflow's OIDC role; profile; IMDS)."""
    try:
        import botocore.session
    except ImportError:
        raise BudgetReadError("auth: botocore is not installed (the dev extra has it), so the request cannot be "
                              "signed with SigV4") from None
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise BudgetReadError(f"auth: no AWS credentials found by the default chain (environment, profile, "
                              f"instance role) to sign the query with SigV4 for region {region}")
    return sigv4_signer(region, credentials.get_frozen_credentials())


def _failure(url: str, err: SourceError, signed: bool) -> BudgetReadError:
    cause = err.__cause__
    if isinstance(cause, urllib.error.HTTPError) and cause.code in (401, 403):
        region = amp_region(url)
        hint = (f"an Amazon Managed Prometheus workspace needs --sigv4-region {region}" if region and not signed
                else "check the SigV4 region and that the role may call aps:QueryMetrics")
        return BudgetReadError(f"auth: Prometheus at {url} refused the query with HTTP {cause.code} ({hint}): "
                               f"{err}")
    if isinstance(cause, urllib.error.HTTPError):
        return BudgetReadError(f"Prometheus at {url} answered HTTP {cause.code}: {err}")
    if isinstance(cause, (urllib.error.URLError, OSError)):
        return BudgetReadError(f"unreachable: Prometheus at {url} did not answer (timeout {HTTP_TIMEOUT_S} s "
                               f"per query): {err}")
    return BudgetReadError(f"Prometheus at {url}: {err}")


def read_budgets(url: str, slos: Sequence[Slo], signer: Signer | None = None,
                 at: float | None = None) -> list[BudgetReading]:
    """Budget spent of every SLO at `at` (default now); BudgetReadError when any is missing or unreadable."""
    when = time.time() if at is None else at
    readings: list[BudgetReading] = []
    missing: list[str] = []
    for slo in slos:
        query = budget_remaining_query(slo)
        try:
            found = prometheus_latest(url, query, when, signer)
        except SourceError as err:
            raise _failure(url, err, signer is not None) from None
        if found is None:
            missing.append(f"{slo.service}/{slo.name} ({query})")
            continue
        remaining = found[1]
        if not math.isfinite(remaining):
            raise BudgetReadError(f"{slo.service}/{slo.name}: {query} is {remaining} at {url}, not a number")
        readings.append(BudgetReading(slo=slo, spent=spent_from_remaining(remaining)))
    if missing:
        raise BudgetReadError(
            f"no series at {url} for {len(missing)} SLO(s): {'; '.join(missing)}. The budget rules "
            f"(rules/prometheus/slo-budget.rules.yml) are not evaluated there, or the SLO saw no request in its "
            f"window; a budget that cannot be read holds the deploy")
    return readings
