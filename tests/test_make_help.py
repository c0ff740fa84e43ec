"""`make help` is generated from the Makefile: every target has one line, the text after `## ` on its rule line.
A target without one fails here, so the list cannot fall behind the Makefile."""

from __future__ import annotations

import re
import subprocess

from infra.core.paths import ROOT

RULE = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9_.-]*(?: [a-zA-Z0-9][a-zA-Z0-9_.-]*)*):(?!=)(.*)$")


def targets(makefile: str) -> dict[str, list[str]]:
    """Each named target (file targets with a path or a variable are not commands) -> its `## ` help texts."""
    found: dict[str, list[str]] = {}
    for line in makefile.splitlines():
        m = RULE.match(line)
        if not m or m.group(1).startswith("."):
            continue
        helps = [m.group(2).split("## ", 1)[1].strip()] if "## " in m.group(2) else []
        for name in m.group(1).split():
            found.setdefault(name, []).extend(helps)
    return found


def undocumented(makefile: str) -> list[str]:
    return sorted(t for t, helps in targets(makefile).items() if len(helps) != 1)


def test_every_target_has_exactly_one_help_line() -> None:
    assert undocumented((ROOT / "Makefile").read_text(encoding="utf-8")) == []


def test_the_checker_finds_a_target_without_help() -> None:
    text = "a: b  ## does a\nb:\n\techo b\nc d: a\nc:  ## does c\nd:  ## does d\nd:  ## twice\n"
    assert undocumented(text) == ["b", "d"]


def test_make_help_lists_every_target_once() -> None:
    names = targets((ROOT / "Makefile").read_text(encoding="utf-8"))
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert sorted(listed) == sorted(names) and len(listed) == len(set(listed))
    assert all(len(line.split(None, 1)) == 2 for line in out.splitlines()[1:])
