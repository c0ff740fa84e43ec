"""mypy --strict on infra/ and lambdas/ (settings: pyproject.toml [tool.mypy]), in the two runs described there:
infra/ as configured, then each Lambda folder as the top-level package it is in its zip, with the tools that
import the Lambda packages that way (the files the first run excludes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infra.core.paths import BUILD_DIR, LAMBDAS_DIR, ROOT

# Kept between runs (build/ is not checked in): a warm cache makes a rerun take seconds instead of minutes. One
# folder for both runs (one after the other: the tests of a module run in one worker): what they share, the
# standard library's and the dependencies' stubs and the infra modules the second run follows, is checked once.
CACHE_DIR = BUILD_DIR / "mypy-cache"


def _mypy_settings() -> dict[str, object]:
    settings: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    return settings


def _module_of_pattern(pattern: str) -> str:
    """`^infra/tools/anomaly_cli\\.py$` -> `infra.tools.anomaly_cli` (the exclude patterns name single files)."""
    path = pattern.removeprefix("^").removesuffix("$").replace("\\.", ".")
    if not re.fullmatch(r"[\w/]+\.py", path):
        raise ValueError(f"[tool.mypy] exclude pattern {pattern!r} is not one file's path (^dir/module\\.py$)")
    return path.removesuffix(".py").replace("/", ".")


def lambda_packages() -> list[str]:
    return sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/__init__.py"))


def lambda_run_targets() -> list[str]:
    """The second run's command line: every Lambda package, and the modules the first run excludes."""
    excluded = _mypy_settings().get("exclude", [])
    assert isinstance(excluded, list)
    targets = [arg for pkg in lambda_packages() for arg in ("-p", pkg)]
    return targets + [arg for pattern in excluded for arg in ("-m", _module_of_pattern(str(pattern)))]


def _mypy(args: list[str], cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, check=False)


def test_lambda_run_covers_every_lambda_package_and_excluded_tool() -> None:
    targets = lambda_run_targets()
    packages = {targets[i + 1] for i in range(0, len(targets), 2) if targets[i] == "-p"}
    modules = {targets[i + 1] for i in range(0, len(targets), 2) if targets[i] == "-m"}
    assert packages == {p.name for p in LAMBDAS_DIR.iterdir() if (p / "__init__.py").is_file()}
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{module} is excluded but does not exist"


@pytest.mark.slow
def test_infra_is_strictly_typed() -> None:
    proc = _mypy([], CACHE_DIR)
    assert proc.returncode == 0, f"mypy (infra/, pyproject settings) failed:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow
def test_lambda_packages_are_strictly_typed() -> None:
    env = {**os.environ, "MYPYPATH": str(LAMBDAS_DIR)}
    proc = _mypy(lambda_run_targets(), CACHE_DIR, env)
    assert proc.returncode == 0, (f"mypy (Lambda packages as top-level packages, MYPYPATH=lambdas) failed:\n"
                                  f"{proc.stdout}{proc.stderr}")
