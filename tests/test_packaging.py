"""Deterministic Lambda packaging: byte-identical rebuilds, runtime wheels, limits."""

from __future__ import annotations

import zipfile

import pytest

from infra.artifacts.packaging import LIMITS, LambdaPackage, MiB, build_lambda


def _function(tmp_path, requirements: str = ""):
    fn = tmp_path / "lambdas" / "demo_fn"
    fn.mkdir(parents=True)
    (fn / "__init__.py").write_text("")
    (fn / "handler.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
    (fn / "__pycache__").mkdir()
    (fn / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"junk")
    if requirements:
        (fn / "requirements.txt").write_text(requirements)
    return tmp_path / "lambdas"


def test_two_builds_are_byte_identical(tmp_path):
    lambdas = _function(tmp_path)
    a = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "a", use_cache=False)
    # touch the sources: timestamps must not reach the zip
    for f in (lambdas / "demo_fn").iterdir():
        if f.is_file():
            f.touch()
    b = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "b", use_cache=False)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.sha256 == b.sha256 and len(a.source_code_hash) == 44


def test_zip_layout_is_normalised(tmp_path):
    lambdas = _function(tmp_path)
    pkg = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path, baked={"settings.json": b"{}"})
    with zipfile.ZipFile(pkg.path) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert "demo_fn/handler.py" in names and "demo_fn/settings.json" in names
        assert not any(n.endswith(".pyc") for n in names)
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert (info.external_attr >> 16) & 0o777 in (0o644, 0o755)
    assert pkg.handler == "demo_fn.handler.handler"
    assert "-" in pkg.path.stem, "baked settings make a per-stack package name"


def test_baked_settings_change_the_hash(tmp_path):
    lambdas = _function(tmp_path)
    a = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path, baked={"settings.json": b'{"a":1}'})
    b = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path, baked={"settings.json": b'{"a":2}'})
    assert a.sha256 != b.sha256


def test_dependencies_are_vendored_from_runtime_wheels_not_the_hosts(tmp_path):
    lambdas = _function(tmp_path, requirements="markupsafe==3.0.2\n")
    pkg = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path)
    with zipfile.ZipFile(pkg.path) as zf:
        natives = [n for n in zf.namelist() if n.endswith(".so")]
    assert natives and all("cpython-312-x86_64-linux-gnu" in n for n in natives), natives


def test_limits_are_reported(tmp_path):
    big = LambdaPackage("f", "edge-viewer", tmp_path / "f.zip", "00", 2 * MiB, 3 * MiB)
    assert any("1 MiB limit for edge-viewer" in p for p in big.problems())
    ok = LambdaPackage("f", "lambda", tmp_path / "f.zip", "00", 2 * MiB, 3 * MiB)
    assert ok.problems() == []
    assert LIMITS["lambda"]["unpacked"] == 250 * MiB


def test_missing_handler_is_a_clear_error(tmp_path):
    (tmp_path / "lambdas" / "empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"handler\.py is missing"):
        build_lambda("empty", lambdas_dir=tmp_path / "lambdas", out_dir=tmp_path)


def test_make_package_rebuilds_every_function_to_the_same_bytes():
    """Two `make package` runs (zips deleted and rebuilt each time) print identical hashes."""
    import subprocess
    import sys

    from infra.core.paths import ROOT

    def run() -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "infra.offline.package", "--stack", "staging", "--rebuild"],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rows = proc.stdout.splitlines()[1:]
        assert {r.split()[0].split("-")[0].removesuffix(".zip") for r in rows} >= {
            "edge_inference", "anomaly_detector", "anomaly_trainer", "runbook_automation"}
        return rows

    assert run() == run()
