"""PromQL in the stack config (anomaly metrics with source 'prometheus'), parsed by promtool before the deploy:
an expression Prometheus cannot parse would only fail at the detector's first run, as a 400 from the API.

The parsing is Prometheus' own (`promtool check rules` on a temporary rules file, the dashboards' checker in
infra/core/promql.py): one promtool run for all the config's expressions, cached by their content,
so an unchanged config starts no process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from infra.core.promql import PromtoolMissing, check_expressions


def promql_problems(queries: Mapping[int, str]) -> dict[int, str]:
    """{index: why} for every query that does not parse; index -1 when promtool itself is missing."""
    if not queries:
        return {}
    try:
        errors = check_expressions(list(queries.values()))
    except PromtoolMissing as err:
        return {-1: f"PromQL cannot be checked: {err}"}
    except (OSError, subprocess.SubprocessError) as err:  # no process, or over its time bound
        return {-1: f"PromQL cannot be checked: promtool failed ({type(err).__name__})"}
    out: dict[int, str] = {}
    for i, query in queries.items():
        if query in errors:
            detail = errors[query].splitlines()[-1].split("could not parse expression: ")[-1]
            out[i] = f"PromQL that Prometheus cannot parse: {detail[:300]}"
    if errors and not out:
        out[-1] = "PromQL that Prometheus cannot parse: " + next(iter(errors.values()))[:300]
    return out
