"""The docs site: MkDocs builds docs/ strictly (a broken link, a missing page or a page outside the navigation
fails), and every runbook URL the rules and the automation write maps to a built page."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.core.paths import ROOT
from infra.offline import docs_site
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


@pytest.mark.parametrize(("change", "expected"), [
    ("stray", "not included in the \"nav\" configuration"),
    ("broken-link", "contains a link 'runbooks/no-such-runbook.md'"),
    ("missing-page", "A reference to 'runbooks/memory-leak.md' is included in the 'nav'"),
])
def test_a_strict_build_fails_on_a_stray_page_a_broken_link_or_a_missing_page(tmp_path: Path, change: str,
                                                                              expected: str) -> None:
    root = _copy(tmp_path)
    if change == "stray":
        (root / "docs" / "stray.md").write_text("# Stray\n")
    elif change == "broken-link":
        index = root / "docs" / "index.md"
        index.write_text(index.read_text() + "\n[gone](runbooks/no-such-runbook.md)\n")
    else:
        (root / "docs" / "runbooks" / "memory-leak.md").unlink()
    done = build(root, tmp_path / "site")
    assert done.returncode != 0 and expected in done.stderr, done.stderr


def test_the_generated_nav_takes_every_page_and_a_page_needs_a_title(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "docs" / "operations.md").write_text("# Operations\n\nDeploy, roll back.\n")
    (root / "docs" / "components").mkdir()
    (root / "docs" / "components" / "edge.md").write_text("# Edge inference\n")
    text = docs_site.updated_mkdocs((root / "mkdocs.yml").read_text(), load_runbooks(), root / "docs")
    assert "- Operations: operations.md" in text and "  - Edge inference: components/edge.md" in text
    (root / "mkdocs.yml").write_text(text)
    assert build(root, tmp_path / "site").returncode == 0
    (root / "docs" / "untitled.md").write_text("no title\n")
    with pytest.raises(docs_site.DocsSiteError, match=r"untitled\.md: a page needs a `# ` title"):
        docs_site.updated_mkdocs(text, load_runbooks(), root / "docs")
