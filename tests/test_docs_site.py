"""The docs site: MkDocs builds docs/ strictly (a broken link, a missing page or a page outside the navigation
fails), and every runbook URL the rules and the automation write maps to a built page."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.core.paths import ROOT
from infra.offline import docs_site, generate
from infra.slo.runbook_pages import runbook_urls
from infra.slo.runbooks import load_runbooks
from infra.slo.spec import DEFAULT_LINKS, LinkSettings, load_slos
from infra.slo.symptoms import load_symptoms


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` as `make docs-site` runs it (the venv's mkdocs, the checkout's mkdocs.yml)."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(root / "mkdocs.yml"), "-d", str(site)],
                          capture_output=True, text=True, timeout=120, cwd=root)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    started = time.perf_counter()
    done = build(ROOT, out)
    print(f"\nmkdocs build --strict: {time.perf_counter() - started:.2f} s")
    assert done.returncode == 0, done.stderr
    return out


def _page_of(url: str, base: str, site: Path) -> Path:
    """Where `<base>/<id>` lands in the built site: base serves the site's runbooks/ folder, MkDocs directory
    URLs put <id>.md at runbooks/<id>/index.html."""
    assert url.startswith(base.rstrip("/") + "/") and not url.endswith("/"), url
    return site / "runbooks" / url[len(base.rstrip("/")) + 1:] / "index.html"


def test_the_docs_build_strictly_with_every_runbook_page(site: Path) -> None:
    for rid in load_runbooks():
        assert (site / "runbooks" / rid / "index.html").exists(), rid
    assert (site / "index.html").exists() and (site / "runbooks" / "index.html").exists()


def test_every_runbook_url_of_the_rules_maps_to_a_built_page(site: Path, planned) -> None:  # type: ignore[no-untyped-def]
    slos = load_slos()
    bases = {DEFAULT_LINKS.runbook_base_url} | {r.plan.config.slo_alerting.runbook_base_url for r in planned.values()}
    urls = runbook_urls(slos, load_symptoms(slos))
    assert urls
    for url in urls:
        assert _page_of(url, DEFAULT_LINKS.runbook_base_url, site).exists(), url
    # The automation writes the same form for every catalogued id, with each stack's base.
    for base in bases:
        for rid in load_runbooks():
            assert _page_of(LinkSettings(runbook_base_url=base).runbook(rid), base, site).exists()


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    return root


def test_a_strict_build_fails_on_a_stray_page_a_broken_link_and_a_missing_page(tmp_path: Path) -> None:
    """One build with the three defects (a strict build reports every warning before it aborts): each is named."""
    root = _copy(tmp_path)
    (root / "docs" / "stray.md").write_text("# Stray\n")
    index = root / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[gone](runbooks/no-such-runbook.md)\n")
    (root / "docs" / "runbooks" / "memory-leak.md").unlink()
    done = build(root, tmp_path / "site")
    assert done.returncode != 0, done.stderr
    for expected in ("- stray.md", "not included in the \"nav\" configuration",
                     "contains a link 'runbooks/no-such-runbook.md'",
                     "A reference to 'runbooks/memory-leak.md' is included in the 'nav'"):
        assert expected in done.stderr, (expected, done.stderr)


def test_the_generated_nav_takes_every_page_and_a_page_needs_a_title(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "docs" / "operations.md").write_text("# Operations\n\nDeploy, roll back.\n")
    (root / "docs" / "components").mkdir(exist_ok=True)
    (root / "docs" / "components" / "edge.md").write_text("# Edge inference\n")
    text = docs_site.updated_mkdocs((root / "mkdocs.yml").read_text(), load_runbooks(), root / "docs")
    assert "- Operations: operations.md" in text and "  - Edge inference: components/edge.md" in text
    (root / "mkdocs.yml").write_text(text)
    assert build(root, tmp_path / "site").returncode == 0
    (root / "docs" / "untitled.md").write_text("no title\n")
    with pytest.raises(docs_site.DocsSiteError, match=r"untitled\.md: a page needs a `# ` title"):
        docs_site.updated_mkdocs(text, load_runbooks(), root / "docs")


def test_the_generated_doc_pages_are_current() -> None:
    """docs/configuration.md and the module map of docs/architecture.md are what `make generate` writes."""
    for path, text in generate.expected_doc_pages().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.relative_to(ROOT)} is stale: run `make generate`"


def test_the_module_map_follows_the_modules(tmp_path: Path) -> None:
    """A module added (or renamed) appears with its docstring's first sentence; one without a docstring is refused."""
    root = tmp_path / "repo"
    for top in docs_site.LAYOUT_ROOTS:
        shutil.copytree(ROOT / top, root / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert docs_site.updated_architecture(page, root) == page
    (root / "infra" / "components" / "gravity.py").write_text('"""Gravity watched. Second sentence."""\n')
    assert "| `gravity.py` | Gravity watched. |" in docs_site.updated_architecture(page, root)
    (root / "infra" / "components" / "gravity.py").write_text("X = 1\n")
    with pytest.raises(docs_site.DocsSiteError, match=r"infra/components/gravity\.py: a module needs a docstring"):
        docs_site.updated_architecture(page, root)


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slugs(markdown: str) -> set[str]:
    """Heading anchors as MkDocs' toc extension makes them (lower case, punctuation dropped, spaces -> '-')."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = re.sub(r"[^\w\s-]", "", line.lstrip("#").strip().lower())
            out.add(re.sub(r"[\s]+", "-", title).strip("-"))
    return out


def readme_link_problems(root: Path) -> list[str]:
    """Links of README.md (which MkDocs does not build) that lead nowhere: a missing file or heading."""
    problems = []
    for target in _LINK.findall((root / "README.md").read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        file = root / path if path else root / "README.md"
        if not file.exists():
            problems.append(f"README.md links to {target}: no such file")
        elif anchor and anchor not in _slugs(file.read_text(encoding="utf-8")):
            problems.append(f"README.md links to {target}: no heading #{anchor} in {path or 'README.md'}")
    return problems


def test_every_readme_link_resolves(tmp_path: Path) -> None:
    assert readme_link_problems(ROOT) == []
    readme = (ROOT / "README.md").read_text()
    assert len(_LINK.findall(readme)) >= 10  # the map links the docs; a README without links proves nothing
    root = _copy(tmp_path)
    (root / "README.md").write_text(readme + "\n[gone](docs/no-such-page.md) [here](docs/plan.md#no-such-heading)\n")
    assert readme_link_problems(root) == ["README.md links to docs/no-such-page.md: no such file",
                                          "README.md links to docs/plan.md#no-such-heading: no heading "
                                          "#no-such-heading in docs/plan.md"]
