"""The README and docs/ link only to files that exist (pictures included), so a fresh clone shows what it promises."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_local_links_resolve(page: Path):
    missing = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+://|^mailto:|^#", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def _package_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "pgpis").rglob("__init__.py") if p.parent != ROOT / "pgpis")


@pytest.mark.parametrize("package", _package_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_architecture_page_names_every_package(package: Path):
    """docs/architecture.md's "Where the code lives" lists every package (as ``name/`` in the tree)."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert re.search(rf"(^|[\s`/]){re.escape(package.name)}/", page, re.M), (
        f"docs/architecture.md does not name the package {package.relative_to(ROOT)}/: add it to 'Where the code lives'")


# a design file beside the checkout that a clone does not have; the name is built so this file does not match
OUTSIDE = re.compile("DESIGN" + r"(\.md|\s+(section\s+)?\d)|\.\./shared/|/work/(shared|\.library)")
SCANNED = {".py", ".md", ".yaml", ".yml", ".cfg", ".toml", ".ini", ".txt", ".sh", ".ipynb", ".json"}
TOP_LEVEL_SKIPPED = {"outputs", "data", "build", "dist"}  # run outputs and user data, not the repository's text


def _repository_files() -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(ROOT):
        top = Path(folder) == ROOT
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")
                   and not d.endswith(".egg-info") and not (top and d in TOP_LEVEL_SKIPPED)]
        files += [Path(folder, n) for n in names if Path(n).suffix in SCANNED or n in ("Makefile", "Dockerfile")]
    return files


def test_nothing_cites_a_file_outside_the_repository():
    """Code, tests, docs, experiments and the Makefile cite docs/ pages, never a design file beside the checkout."""
    hits = []
    for path in _repository_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not hits, ("these lines cite a file outside the repository; write the facts into docs/ "
                      "(e.g. docs/data-formats.md, docs/methods.md) and cite that page:\n" + "\n".join(hits))
