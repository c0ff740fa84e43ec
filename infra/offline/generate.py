"""`make generate`: rewrite every checked-in generated artifact from its one definition; `--check` only compares.

- rules/prometheus, rules/tests, rules/alertmanager  <- rules/slos.yaml + rules/symptoms.yaml (infra/slo/generate.py)
- dashboards/                                       <- every stack's offline plan (infra/offline/dashboard_files.py)
- docs/configuration.md (config reference)         <- the config schema (infra/config/reference.py)
- docs/architecture.md module map                 <- the modules' docstrings (infra/offline/docs_site.py)
- docs/runbooks/*.md generated parts, mkdocs.yml nav <- rules/runbooks.yaml, the SLO and symptom definitions and
                                                    the plans (infra/slo/runbook_pages.py, infra/offline/docs_site.py)

`python -m infra.offline.generate [rules|dashboards|docs|runbooks ...] [--check]`: no argument means all four.
Exit codes: 0 current (or written), 1 drift found with --check, 2 invalid definitions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from infra.config import reference
from infra.core.paths import DASHBOARDS_DIR, ROOT, RULES_DIR
from infra.offline import dashboard_files as render
from infra.offline import docs_site
from infra.offline.plan import run_plan
from infra.offline.runbook_facts import stack_facts
from infra.plan.model import Plan
from infra.slo import generate as slo_generate
from infra.slo import runbook_pages
from infra.slo.runbooks import RunbookCatalogueError, load_runbooks
from infra.slo.spec import SloSpecError, load_slos
from infra.slo.symptoms import load_symptoms

STACKS = ("staging", "prod")
TARGETS = ("rules", "dashboards", "docs", "runbooks")
_PLANS: dict[str, Plan] = {}


def plans_of(stacks: Sequence[str]) -> dict[str, Plan]:
    """The plans of `stacks`, each run once per process (dashboards and runbooks both read them)."""
    plans: dict[str, Plan] = {}
    for stack in stacks:
        if stack in _PLANS:
            plans[stack] = _PLANS[stack]
            continue
        result = run_plan(stack, quiet=True, write=False, offline_secrets=True)  # the plans of the checked-in stacks
        if result.plan is None:
            raise SystemExit(f"stack {stack}: invalid config:\n  " + "\n  ".join(result.config_problems))
        plans[stack] = _PLANS[stack] = result.plan
    return plans


def _rules(check: bool) -> list[str]:
    slos = load_slos()
    files = slo_generate.generated_files(slos, load_symptoms(slos))
    if check:
        on_disk = {str(p.relative_to(RULES_DIR)): p.read_text(encoding="utf-8")
                   for sub in ("prometheus", "alertmanager", "tests") for p in sorted((RULES_DIR / sub).glob("*.yml"))}
        return render.drift(files, on_disk, folder="rules")
    for path in slo_generate.write(slos, load_symptoms(slos)):
        print(path.relative_to(ROOT))
    return []


def _dashboards(check: bool) -> list[str]:
    expected = render.expected_files(plans_of(STACKS))
    if check:
        return render.drift(expected, render.on_disk())
    for name in render.write(expected):
        print(f"{DASHBOARDS_DIR.name}/{name}")
    return []


def expected_doc_pages() -> dict[Path, str]:
    """The config reference page and the architecture page with its generated module map."""
    arch = docs_site.ARCHITECTURE_PAGE
    return {ROOT / reference.PAGE: reference.render_page(),
            arch: docs_site.updated_architecture(arch.read_text(encoding="utf-8"))}


def _docs(check: bool) -> list[str]:
    files = expected_doc_pages()
    if check:
        return [f"differs: {p.relative_to(ROOT)}" for p, text in files.items()
                if not p.exists() or p.read_text(encoding="utf-8") != text]
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        print(path.relative_to(ROOT))
    return []


def expected_runbook_files(plans: dict[str, Plan]) -> dict[Path, str]:
    """Every runbook page (generated part + its hand-written part) and mkdocs.yml with its generated nav."""
    runbooks = load_runbooks()
    slos = load_slos()
    facts = [stack_facts(stack, plan) for stack, plan in plans.items()]
    files = runbook_pages.expected_pages(runbooks, slos, load_symptoms(slos), facts)
    files[docs_site.MKDOCS_FILE] = docs_site.updated_mkdocs(docs_site.MKDOCS_FILE.read_text(encoding="utf-8"),
                                                            runbooks, pending=files)
    return files


def _runbooks(check: bool) -> list[str]:
    files = expected_runbook_files(plans_of(STACKS))
    if check:
        return [f"differs: {p.relative_to(ROOT)}" for p, text in files.items()
                if not p.exists() or p.read_text(encoding="utf-8") != text]
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        print(path.relative_to(ROOT))
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"one of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a file drifted")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; allowed: {', '.join(TARGETS)}")
    steps = {"rules": _rules, "dashboards": _dashboards, "docs": _docs, "runbooks": _runbooks}
    problems: list[str] = []
    try:
        for target in args.targets or TARGETS:
            problems += steps[target](args.check)
    except (SloSpecError, RunbookCatalogueError, runbook_pages.RunbookPageError, docs_site.DocsSiteError) as err:
        print(err, file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print("run `make generate` to regenerate")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
