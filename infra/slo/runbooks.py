"""The runbook catalogue (rules/runbooks.yaml): every runbook id a signal may name, how it is handled, its page.

One list for every consumer: the SLO and symptom definitions may name only these ids, the automation must
dispatch exactly the automated ones (lambdas/runbook_automation/runbook_ids.py), and every id has a page under
docs/runbooks/. Bad input raises `RunbookCatalogueError` naming the entry and what is allowed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.core import yamldoc
from infra.core.paths import ROOT, RULES_DIR

RUNBOOKS_FILE = RULES_DIR / "runbooks.yaml"
RUNBOOK_PAGES_DIR = ROOT / "docs" / "runbooks"
AUTOMATIONS = ("scale-out", "notify", "manual")
AUTOMATED = ("scale-out", "notify")
RUNBOOK_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# How a signal names its runbook in text a person and the automation both read (alert summaries, CloudWatch alarm
# descriptions): `[runbook:<id>]`.
RUNBOOK_MARK = re.compile(r"\[runbook:([a-z0-9][a-z0-9-]*)\]")


def runbook_mark(runbook_id: str) -> str:
    if not RUNBOOK_ID.match(runbook_id):
        raise ValueError(f"runbook id {runbook_id!r} must match {RUNBOOK_ID.pattern} (an id of rules/runbooks.yaml)")
    return f"[runbook:{runbook_id}]"


def marked_runbook(text: str | None) -> str | None:
    """The runbook id a text names with `[runbook:<id>]`, or None."""
    found = RUNBOOK_MARK.search(text or "")
    return found.group(1) if found else None


class RunbookCatalogueError(ValueError):
    """rules/runbooks.yaml is unreadable or holds an entry that is not allowed."""


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    automation: str  # one of AUTOMATIONS

    @property
    def automated(self) -> bool:
        return self.automation in AUTOMATED

    @property
    def page(self) -> Path:
        """The runbook's page in the repository (what `runbookBaseUrl/<id>` serves)."""
        return RUNBOOK_PAGES_DIR / f"{self.id}.md"


def load_runbooks(path: Path = RUNBOOKS_FILE) -> dict[str, Runbook]:
    """The catalogue, by id, in file order."""
    try:
        text = path.read_text()
    except OSError as err:
        raise RunbookCatalogueError(f"{path.name}: cannot read the runbook catalogue: {err}") from None
    return dict(_parse_catalogue(path.name, text))


# Every SLO and symptom checks its runbook against the catalogue (13 reads per stack-config parse): the same text
# is parsed once. Keyed by the text itself, so an edited file is parsed again; errors are not cached.
@functools.lru_cache(maxsize=8)
def _parse_catalogue(name: str, text: str) -> dict[str, Runbook]:
    try:
        doc = yamldoc.safe_load(text)
    except yaml.YAMLError as err:
        raise RunbookCatalogueError(f"{name}: cannot read the runbook catalogue: {err}") from None
    entries = doc.get("runbooks") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise RunbookCatalogueError(f"{name}: expected a mapping `runbooks: {{<id>: {{title, automation}}}}`")
    out: dict[str, Runbook] = {}
    problems = []
    for rid, entry in entries.items():
        where = f"{name}: runbooks.{rid}"
        if not isinstance(rid, str) or not RUNBOOK_ID.match(rid):
            problems.append(f"{where}: a runbook id matches {RUNBOOK_ID.pattern}")
            continue
        if not isinstance(entry, dict) or set(entry) - {"title", "automation"}:
            problems.append(f"{where}: an entry has exactly the keys title and automation")
            continue
        title, automation = entry.get("title"), entry.get("automation")
        if not isinstance(title, str) or not title.strip():
            problems.append(f"{where}.title: a non-empty string")
        if automation not in AUTOMATIONS:
            problems.append(f"{where}.automation: {automation!r} is not one of {', '.join(AUTOMATIONS)}")
        if not problems:
            out[rid] = Runbook(rid, str(title).strip(), str(automation))
    if problems:
        raise RunbookCatalogueError("; ".join(problems))
    return out
