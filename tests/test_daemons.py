"""The loopback daemon launcher (infra/tools/daemons.py) starts the real binaries, reports a refused config with
the daemon's own words, and leaves nothing running."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from infra.tools import daemons


def test_prometheus_and_alertmanager_start_answer_and_stop(tmp_path: Path) -> None:
    prom_cfg = tmp_path / "prometheus.yml"
    prom_cfg.write_text("global: {scrape_interval: 15s}\n")
    am_cfg = tmp_path / "alertmanager.yml"
    am_cfg.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    with daemons.prometheus(prom_cfg) as prom, daemons.alertmanager(am_cfg) as am:
        assert prom.url.startswith("http://127.0.0.1:") and am.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{prom.url}/api/v1/query?query=vector(1)", timeout=5) as r:
            assert json.loads(r.read())["data"]["result"][0]["value"][1] == "1"
        with urllib.request.urlopen(f"{am.url}/api/v2/status", timeout=5) as r:
            assert json.loads(r.read())["config"]["original"]
        procs = (prom.process, am.process)
    assert all(p.poll() is not None for p in procs)


def test_a_refused_config_raises_with_the_daemons_message(tmp_path: Path) -> None:
    bad = tmp_path / "alertmanager.yml"
    bad.write_text("route: {receiver: missing}\nreceivers: [{name: other}]\n")
    with pytest.raises(daemons.DaemonError, match="undefined receiver"), daemons.alertmanager(bad):
        pass
