"""The one writer of rules/: SLO definitions -> Prometheus rule files, promtool unit tests, Alertmanager configs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infra.core.paths import RULES_DIR
from infra.slo.alertmanager import alertmanager_config
from infra.slo.render import dump
from infra.slo.rules import rule_files
from infra.slo.spec import DEFAULT_LINKS, Slo
from infra.slo.symptom_tests import burst_test_files, symptom_test_files
from infra.slo.symptoms import SymptomSpec
from infra.slo.unit_tests import unit_test_files


def generated_files(slos: Sequence[Slo], symptoms: SymptomSpec) -> dict[str, str]:
    """Path relative to rules/ -> text, for every generated file."""
    files = {f"prometheus/{name}": dump(doc) for name, doc in rule_files(slos, symptoms=symptoms).items()}
    for name, paging in (("paging", True), ("tickets-only", False)):
        files[f"alertmanager/alertmanager-{name}.yml"] = dump(alertmanager_config(slos, paging=paging,
                                                                                  symptoms=symptoms))
    files |= {f"tests/{name}": dump(doc) for name, doc in unit_test_files(slos).items()}
    files |= {f"tests/{name}": dump(doc) for name, doc in symptom_test_files(symptoms, DEFAULT_LINKS).items()}
    files |= {f"tests/{name}": dump(doc) for name, doc in burst_test_files(slos, DEFAULT_LINKS).items()}
    return files


def write(slos: Sequence[Slo], symptoms: SymptomSpec, root: Path = RULES_DIR) -> list[Path]:
    written = []
    files = generated_files(slos, symptoms)
    for sub in ("prometheus", "alertmanager", "tests"):
        for old in (root / sub).glob("*.yml"):
            if f"{sub}/{old.name}" not in files:
                old.unlink()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
