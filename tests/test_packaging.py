"""Deterministic Lambda packaging: byte-identical rebuilds, runtime wheels, limits."""

from __future__ import annotations

import multiprocessing
import time
import zipfile

import pytest

from infra.artifacts import packaging
from infra.artifacts.packaging import LIMITS, LambdaPackage, MiB, build_lambda, read_package, vendor_dependencies

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers


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



def test_bytecode_is_the_runtimes_hash_based_unchecked_and_byte_identical(tmp_path):
    """`bytecode=True`: each module's pyc as the runtime's Python names it, PEP 552's unchecked-hash flags (the
    import neither stats nor hashes the source), compiled from the zip's sources (not the junk pyc beside them)."""
    import json
    import subprocess

    lambdas = _function(tmp_path)
    a = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "a", use_cache=False, bytecode=True)
    b = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "b", use_cache=False, bytecode=True)
    plain = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "c", use_cache=False)
    assert a.path.read_bytes() == b.path.read_bytes() and a.sha256 != plain.sha256
    tag = f"cpython-{packaging.RUNTIME_PYTHON.replace('.', '')}"
    with zipfile.ZipFile(a.path) as zf:
        names = zf.namelist()
        pycs = {n: zf.read(n) for n in names if n.endswith(".pyc")}
    sources = [n for n in names if n.endswith(".py")]
    assert sorted(pycs) == sorted(f"{n.rsplit('/', 1)[0]}/__pycache__/{n.rsplit('/', 1)[1][:-3]}.{tag}.pyc"
                                  for n in sources)
    python = packaging.runtime_python()  # the magic number is the runtime's, not the host's (3.11 here)
    magic = subprocess.run([python, "-I", "-S", "-c", "import importlib.util, sys; "
                            "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                           capture_output=True, text=True, check=True).stdout
    for name, data in pycs.items():
        assert data[:4].hex() == magic, name
        assert int.from_bytes(data[4:8], "little") == 0b01, f"{name}: not hash-based unchecked (PEP 552 flags)"
    handler_pyc = pycs[f"demo_fn/__pycache__/handler.{tag}.pyc"]
    code = subprocess.run([python, "-I", "-S", "-c", "import marshal, sys, json; c = marshal.loads(sys.stdin.buffer"
                           ".read()[16:]); print(json.dumps([c.co_filename, c.co_names]))"],
                          input=handler_pyc.decode("latin-1"), capture_output=True, text=True, encoding="latin-1",
                          check=True).stdout
    filename, co_names = json.loads(code)
    assert filename == f"{packaging.BYTECODE_ROOT}/demo_fn/handler.py" and co_names == ["handler"]


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
    """`make package --rebuild` (every zip rebuilt, replaced whole) prints the hashes `make package` printed before
    it: those of the zips already built in this checkout (by the plans of other tests, in other processes and at
    another time), or built by that first run where none were."""
    import subprocess
    import sys

    from infra.core.paths import ROOT

    def run(*flags: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "infra.offline.package", "--stack", "staging", *flags],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if flags:
            assert "zipped edge_inference" in proc.stderr, proc.stderr  # rebuilt, not the cached zip
        rows = proc.stdout.splitlines()[1:]
        assert {r.split()[0].split("-")[0].removesuffix(".zip") for r in rows} >= {
            "edge_inference", "anomaly_detector", "anomaly_trainer", "runbook_automation"}
        return rows

    assert run() == run("--rebuild")


def _in_processes(count, target, *args):
    """Run `target(*args)` in `count` forked processes at once; their exit codes."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for _ in range(count)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    return [p.exitcode for p in procs]


def _build_and_check(lambdas, out_dir):
    pkg = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=out_dir)
    with zipfile.ZipFile(pkg.path) as zf:
        assert zf.testzip() is None
    raise SystemExit(0 if read_package(pkg.path) == pkg else 3)


def test_processes_building_one_zip_at_once_all_get_it_whole(tmp_path):
    # `make plan` builds in its plan and its forked preview at the same time; test sessions may overlap it.
    lambdas = _function(tmp_path)
    (lambdas / "demo_fn" / "big.bin").write_bytes(bytes(range(256)) * 40_000)  # slow enough to overlap
    out_dir = tmp_path / "out"
    assert _in_processes(4, _build_and_check, lambdas, out_dir) == [0, 0, 0, 0]
    expected = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "alone", use_cache=False)
    assert (out_dir / "demo_fn.zip").read_bytes() == expected.path.read_bytes()
    assert sorted(p.name for p in out_dir.iterdir() if not p.name.endswith(".lock")) == [
        "demo_fn.json", "demo_fn.key", "demo_fn.zip"]  # no temporary file left behind


def _vendor(requirements, cache_root, log):
    def slow_install(reqs, target, *, runtime, no_deps=False):
        with open(log, "a") as f:
            f.write(f"{target.name}\n")
        target.mkdir(parents=True)
        time.sleep(0.3)  # a reader arriving now must wait, not see a folder without its wheels
        (target / "wheel.py").write_text("x = 1\n")

    packaging.install_target = slow_install
    deps = vendor_dependencies(requirements, cache_root)
    raise SystemExit(0 if deps is not None and (deps / "wheel.py").read_text() == "x = 1\n" else 3)


def test_processes_vendoring_one_requirements_file_at_once_install_it_once(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("demo-wheel==1.0\n")
    log = tmp_path / "installs.log"
    assert _in_processes(3, _vendor, requirements, tmp_path / "deps", log) == [0, 0, 0]
    assert len(log.read_text().splitlines()) == 1
    (folder,) = [p for p in (tmp_path / "deps").iterdir() if not p.name.startswith(".")]
    assert (folder / ".complete").exists() and (folder / "wheel.py").exists()
