"""The one-way layers of setup.cfg's import-linter contracts: they hold, they cover every library module, and a
violation fails naming the import chain (docs/architecture.md, "Layers")."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _contract(name: str) -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg[f"importlinter:contract:{name}"]


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(REPO / "setup.cfg")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_contracts_hold():
    run = _lint(REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_every_library_module_is_under_the_applications_contract():
    """A new top-level module or package is either an application (forbidden to the library) or a library
    source of the contract: none escapes it unchecked."""
    contract = _contract("applications")
    sources = set(contract["source_modules"].split())
    applications = set(contract["forbidden_modules"].split())
    found = {f"pgpis.{p.stem}" for p in (REPO / "pgpis").glob("*.py") if p.stem != "__init__"}
    found |= {f"pgpis.{p.parent.name}" for p in (REPO / "pgpis").glob("*/__init__.py")}
    assert found - sources - applications == set(), "add these to setup.cfg's [importlinter:contract:applications]"
    assert (sources | applications) - found == set(), "setup.cfg names modules that no longer exist"


def test_a_library_import_of_an_application_fails_with_its_chain(tmp_path):
    shutil.copytree(REPO / "pgpis", tmp_path / "pgpis", ignore=shutil.ignore_patterns("__pycache__"))
    layout = tmp_path / "pgpis" / "data" / "parsing.py"
    layout.write_text(layout.read_text() + "\n\ndef _bad():\n    from pgpis.commands import show  # noqa: F401\n")
    run = _lint(tmp_path)
    assert run.returncode == 1
    assert "pgpis.data is not allowed to import pgpis.commands" in run.stdout
    assert "pgpis.data.parsing -> pgpis.commands.show" in run.stdout
