"""PromQL checks for dashboard queries: parse with promtool, and list the metric names a query reads.

promtool has no "check expression" command, but `promtool check rules` parses every `expr` of a rules file
(Prometheus "Recording rules", "Syntax-checking rules"), so the expressions are written as recording rules into
a temporary file. The verdict is cached per content hash under build/cache/promql, so a plan with unchanged
dashboards does not start promtool.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from infra.core.files import write_atomic
from infra.core.paths import BUILD_DIR

CACHE_DIR = BUILD_DIR / "cache" / "promql"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR_BRACES = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "Inf", "NaN", "atan2", "start", "end"}


class PromtoolMissing(RuntimeError):
    pass


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (function names, keywords and label names excluded)."""
    text = _STRING.sub('""', expr)
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = _GROUPING.sub(" ", text)
    text = _SELECTOR_BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers and durations, not digits inside names
    for ident, call in _IDENT.findall(text):
        if call or ident in _KEYWORDS:
            continue
        names.add(ident)
    return names


def _digest(exprs: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(sorted(set(exprs))).encode()).hexdigest()


def check_expressions(exprs: Sequence[str]) -> dict[str, str]:
    """{expression: promtool's error} for every expression that does not parse; {} when all parse."""
    unique = sorted(set(exprs))
    if not unique:
        return {}
    cached = CACHE_DIR / f"{_digest(unique)}.json"
    if cached.exists():
        return dict(json.loads(cached.read_text()))
    if shutil.which("promtool") is None:
        raise PromtoolMissing("promtool is not installed (make tools installs it from Debian)")
    errors = _run_promtool(unique)
    if errors and len(unique) > 1:
        # Name the culprits: re-check each expression on its own (only on failure, so rarely).
        errors = {e: msg for e in unique for msg in _run_promtool([e]).values()}
    write_atomic(cached, json.dumps(errors, sort_keys=True))
    return errors


def _run_promtool(exprs: Sequence[str]) -> dict[str, str]:
    rules = [{"record": f"dashboard:expression_{i}:check", "expr": e} for i, e in enumerate(exprs)]
    doc = {"groups": [{"name": "dashboard-expressions", "rules": rules}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-expressions.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                              timeout=60, check=False)
    if proc.returncode == 0:
        return {}
    message = (proc.stderr or proc.stdout).strip().replace(str(path), "<rules>")
    return {e: message for e in exprs} if len(exprs) == 1 else {"": message}
