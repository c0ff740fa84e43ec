"""Anyone's SLOs: every spec the strategy draws (tests/slo_specs.py) compiles to rules promtool accepts, promtool
tests that pass and test every alert firing and not firing, and dashboards whose queries parse and read only
recorded or input metrics. `make slo-properties` runs a larger budget (SLO_PROPERTY_EXAMPLES) of full specs.

The suite's budget is one example of one SLO (promtool's run time grows with the square of the SLOs: each test
evaluates every SLO's rules): Hypothesis' first, derandomized draw is an availability SLO at 90% over 7 days, the
edge where only the 6-hour page is reachable (empty quick/fast tier files, the slow gap test). The classes of the
suite before (availability at 90%/7d and at 94%/28d, one SLO each) keep the first; several SLOs and services,
latency SLOs sharing a histogram and every target/window are the make target's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from slo_specs import slo_specs, spec_problems

from infra.slo.spec import Slo

EXAMPLES = int(os.environ.get("SLO_PROPERTY_EXAMPLES", "1"))
FULL = "SLO_PROPERTY_EXAMPLES" in os.environ


@settings(max_examples=EXAMPLES, deadline=None, derandomize="SLO_PROPERTY_SEED" not in os.environ,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(slo_specs() if FULL else slo_specs(max_services=1, max_slos=1))
def test_any_slo_spec_generates_valid_tested_rules_and_boards(slos: list[Slo]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert spec_problems(slos, Path(tmp)) == []
