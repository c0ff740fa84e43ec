"""The docs site (MkDocs, `mkdocs.yml` at the root): its navigation is generated from the pages under docs/.

Every Markdown page under docs/ is in the navigation, so MkDocs' strict build (`validation.nav.omitted_files:
warn`) only fails on a page someone added without `make generate`; the drift check says so first. Order: the home
page (docs/index.md), the other top-level pages by file name, then one section per folder (its index.md first;
the runbooks in catalogue order). A page's title in the navigation is its first `# ` heading.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from infra.core.paths import ROOT
from infra.slo.runbooks import RUNBOOK_PAGES_DIR, Runbook

DOCS_DIR = ROOT / "docs"
MKDOCS_FILE = ROOT / "mkdocs.yml"
NAV_BEGIN = "# BEGIN GENERATED nav (make generate: infra/offline/docs_site.py; every page under docs/)"
NAV_END = "# END GENERATED nav"


class DocsSiteError(ValueError):
    """mkdocs.yml or docs/ cannot give a navigation (markers missing, a page without a title)."""


class _Tree:
    """The Markdown pages under docs/: those on disk, and those `make generate` is about to write (`pending`)."""

    def __init__(self, docs: Path, pending: Mapping[Path, str]) -> None:
        self.docs = docs
        self.pending = {p: t for p, t in pending.items() if p.suffix == ".md" and docs in p.parents}
        self.pages = sorted(set(docs.rglob("*.md")) | set(self.pending))

    def title(self, path: Path) -> str:
        text = self.pending[path] if path in self.pending else path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        raise DocsSiteError(f"docs/{path.relative_to(self.docs).as_posix()}: a page needs a `# ` title (its name "
                            "in the navigation)")

    def in_folder(self, folder: Path) -> list[Path]:
        return [p for p in self.pages if p.parent == folder]

    def subfolders(self, folder: Path) -> list[Path]:
        return sorted({folder / p.relative_to(folder).parts[0]
                       for p in self.pages if folder in p.parents and p.parent != folder})

    def section(self, folder: Path, order: list[str]) -> dict[str, object]:
        pages = sorted(self.in_folder(folder), key=lambda p: (
            p.name != "index.md", order.index(p.stem) if p.stem in order else len(order), p.name))
        index = folder / "index.md"
        title = self.title(index) if index in self.pages else folder.name.capitalize()
        entries: list[object] = [
            {("Overview" if p.name == "index.md" else self.title(p)): p.relative_to(self.docs).as_posix()}
            for p in pages]
        entries += [self.section(sub, order) for sub in self.subfolders(folder)]
        return {title: entries}


def nav(runbooks: Mapping[str, Runbook], docs: Path = DOCS_DIR,
        pending: Mapping[Path, str] | None = None) -> list[object]:
    tree = _Tree(docs, pending or {})
    if docs / "index.md" not in tree.pages:
        raise DocsSiteError("docs/index.md is missing (the site's home page)")
    out: list[object] = [{"Home": "index.md"}]
    out += [{tree.title(p): p.name} for p in tree.in_folder(docs) if p.name != "index.md"]
    out += [tree.section(d, list(runbooks) if d == docs / RUNBOOK_PAGES_DIR.name else [])
            for d in tree.subfolders(docs)]
    return out


def updated_mkdocs(text: str, runbooks: Mapping[str, Runbook], docs: Path = DOCS_DIR,
                   pending: Mapping[Path, str] | None = None) -> str:
    """mkdocs.yml with its generated `nav:` between the markers replaced (`pending`: pages about to be written)."""
    begin, end = text.find(NAV_BEGIN), text.find(NAV_END)
    if begin < 0 or end < begin:
        raise DocsSiteError(f"mkdocs.yml: the navigation goes between `{NAV_BEGIN}` and `{NAV_END}`")
    block = yaml.safe_dump({"nav": nav(runbooks, docs, pending)}, sort_keys=False, allow_unicode=True, width=120)
    return text[:begin] + NAV_BEGIN + "\n" + block + text[end:]


# The module map of docs/architecture.md: one row per Python module of infra/ and lambdas/, its docstring's first
# sentence, so a module added, renamed or removed shows up at `make generate` (and `make test` fails until then).
ARCHITECTURE_PAGE = DOCS_DIR / "architecture.md"
LAYOUT_BEGIN = "<!-- BEGIN GENERATED layout (make generate: infra/offline/docs_site.py; module docstrings) -->"
LAYOUT_END = "<!-- END GENERATED layout -->"
LAYOUT_ROOTS = ("infra", "lambdas")
_SUMMARY_CHARS = 220


def summary(source: str, where: str) -> str:
    """The first sentence of a module's docstring (up to the first `.` ending a word), cut at ~220 characters."""
    doc = ast.get_docstring(ast.parse(source))
    if not doc:
        raise DocsSiteError(f"{where}: a module needs a docstring (its line in docs/architecture.md)")
    para = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", para)
    text = match.group(1) if match else para
    if len(text) > _SUMMARY_CHARS:
        text = text[:_SUMMARY_CHARS].rsplit(" ", 1)[0] + " ..."
    return text.replace("|", "\\|")


def layout(root: Path = ROOT) -> str:
    """Markdown: per folder holding Python modules, its package docstring and one row per module."""
    out: list[str] = []
    for top in LAYOUT_ROOTS:
        folders = sorted({p.parent for p in (root / top).rglob("*.py")})
        for folder in folders:
            rel = folder.relative_to(root).as_posix()
            init = folder / "__init__.py"
            head = f"### `{rel}/`"
            out += [head, ""]
            package_doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) if init.exists() else None
            if package_doc and len(package_doc.split()) > 1:  # a one-word docstring says nothing the path does not
                out += [summary(init.read_text(encoding="utf-8"), f"{rel}/__init__.py"), ""]
            out += ["| module | what |", "|---|---|"]
            for mod in sorted(p for p in folder.glob("*.py") if p.name != "__init__.py"):
                out.append(f"| `{mod.name}` | {summary(mod.read_text(encoding='utf-8'), f'{rel}/{mod.name}')} |")
            out.append("")
    return "\n".join(out)


def updated_architecture(text: str, root: Path = ROOT) -> str:
    """docs/architecture.md with its generated module map replaced."""
    begin, end = text.find(LAYOUT_BEGIN), text.find(LAYOUT_END)
    if begin < 0 or end < begin:
        raise DocsSiteError(f"docs/architecture.md: the module map goes between `{LAYOUT_BEGIN}` and `{LAYOUT_END}`")
    return text[:begin] + LAYOUT_BEGIN + "\n\n" + layout(root) + "\n" + text[end:]
