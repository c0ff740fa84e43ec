"""Maintenance windows: the stack check and Alertmanager agree (issue 30). Every window of a generated set
(all 49 weekday ranges x times at the edges of a day) goes through the stack check
(infra/config/time_intervals.window_problems, what rules.py applies to sloAlerting.maintenanceWindows) and
through `amtool check-config` on the Alertmanager config the stack generates from it: a window the check
accepts must give a config amtool accepts, and a window it refuses one amtool refuses. One amtool run checks
all the files."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import yaml

from infra.config.time_intervals import WEEKDAYS, window_problems
from infra.slo.alertmanager import Maintenance, alertmanager_config
from infra.slo.spec import load_slos

TIMES = [("00:00", "24:00"), ("02:00", "03:00"), ("23:59", "24:00"), ("03:00", "03:00"), ("04:00", "03:00"),
         ("23:00", "24:30"), ("22:00", "23:60"), ("00:00", "00:01")]
# Every weekday range (ascending or not) with two good time ranges, and every time range on a few single days.
CASES = ([(f"{a}:{b}", start, end) for a, b in itertools.product(WEEKDAYS, WEEKDAYS) for start, end in TIMES[:2]]
         + [(day, start, end) for day in (*WEEKDAYS[:2], "Saturday") for start, end in TIMES])


def _amtool_verdicts(paths: list[Path]) -> dict[str, bool]:
    proc = subprocess.run(["amtool", "check-config", *map(str, paths)], capture_output=True, text=True,
                          timeout=120, check=False)
    verdicts = dict(re.findall(r"Checking '([^']+)'\s+(SUCCESS|FAILED)", proc.stdout + proc.stderr))
    assert len(verdicts) == len(paths), proc.stdout[-2000:] + proc.stderr[-2000:]
    return {path: verdict == "SUCCESS" for path, verdict in verdicts.items()}


def test_the_stack_check_and_amtool_agree_on_every_window(tmp_path) -> None:
    slos = load_slos()
    paths, accepted = [], {}
    for i, (weekday, start, end) in enumerate(CASES):
        path = tmp_path / f"window-{i}.yml"
        config = alertmanager_config(slos, paging=True, maintenance=[Maintenance("akidb-rest", (weekday,), start,
                                                                                 end)])
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        paths.append(path)
        accepted[str(path)] = not window_problems([weekday], start, end)
    amtool = _amtool_verdicts(paths)
    disagree = [(CASES[paths.index(Path(p))], accepted[p], ok) for p, ok in amtool.items() if accepted[p] != ok]
    print(f"{len(CASES)} windows: {sum(accepted.values())} accepted by both, "
          f"{len(CASES) - sum(accepted.values())} refused by both")
    assert disagree == []
    # Both verdicts occur: the comparison can fail either way.
    assert 0 < sum(accepted.values()) < len(CASES)
