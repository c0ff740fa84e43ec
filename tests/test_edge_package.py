"""The edge zip: within the Lambda@Edge limit, cp312 manylinux wheels, nothing the handler does not import."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from infra.config import EmfEdgeConfig
from infra.edge_model import ensure_model
from infra.emf_edge import build_package
from infra.packaging import MiB
from infra.paths import LAMBDAS_DIR, ROOT

EXCLUDED_PACKAGES = sorted({line.split("/")[0] for line in (LAMBDAS_DIR / "edge_inference" / "exclude.txt")
                            .read_text().splitlines()
                            if line.strip() and not line.startswith("#") and ".dist-info" not in line
                            and not line.startswith(("onnxruntime/", "numpy/"))})


@pytest.fixture(scope="module")
def package():
    return build_package(EmfEdgeConfig(), "bucket", "us-east-1", ensure_model(quiet=True))


def test_zip_is_within_the_edge_origin_limit(package):
    print(f"\nedge zip: {package.compressed_bytes / MiB:.1f} MiB compressed, {package.unpacked_bytes / MiB:.1f} MiB "
          "unpacked")
    assert package.kind == "edge-origin" and package.problems() == []
    assert package.compressed_bytes <= 50 * MiB and package.unpacked_bytes <= 250 * MiB


def test_zip_holds_cp312_manylinux_binaries_and_the_function(package):
    with zipfile.ZipFile(package.path) as zf:
        names = set(zf.namelist())
        settings = json.loads(zf.read("edge_inference/settings.json"))
    assert "onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-x86_64-linux-gnu.so" in names
    assert any(n.startswith("numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu") for n in names)
    assert "tokenizers/tokenizers.abi3.so" in names
    for module in ("handler", "emf", "model", "pooling", "events", "settings", "trace"):
        assert f"edge_inference/{module}.py" in names
    assert {"edge_inference/settings.json", "edge_inference/tokenizer.json"} <= names
    assert not any(n.endswith((".onnx", ".pyc")) or "__pycache__" in n for n in names)
    assert settings["bucket"] == "bucket" and settings["namespace"] == "AkiDB/Edge"


def test_excluded_files_are_not_in_the_zip(package):
    with zipfile.ZipFile(package.path) as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
        names = set(zf.namelist())
    assert not tops & set(EXCLUDED_PACKAGES)
    assert not any(n.startswith("onnxruntime/capi/libonnxruntime.so") for n in names)
    assert not any(n.startswith(("onnxruntime/transformers/", "onnxruntime/quantization/")) for n in names)


def test_handler_runs_with_the_excluded_packages_blocked(package, tmp_path):
    """What exclude.txt drops must never be imported: run the handler with those imports made impossible."""
    script = f"""
import importlib.abc, io, json, sys
BLOCKED = {EXCLUDED_PACKAGES!r} + ["onnxruntime.transformers", "onnxruntime.quantization", "onnxruntime.tools"]
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("excluded from the edge zip: " + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from infra.edge_probe import LocalModelStore, origin_request_event, unpack_baked
from infra.edge_model import ensure_model
from lambdas.edge_inference.handler import App
tmp = Path({str(tmp_path)!r})
unpacked = unpack_baked(Path({str(package.path)!r}), tmp)
store = LocalModelStore(ensure_model(quiet=True).onnx_int8)
app = App(settings_path=unpacked.settings_path, s3_factory=lambda s: store, tmp_dir=tmp, out=io.StringIO())
resp = app.handle(origin_request_event({{"text": "blocked imports"}}), None)
print(resp["status"], len(json.loads(resp["body"])["embedding"]))
leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
print("leaked", leaked)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "200 384" in proc.stdout and "leaked []" in proc.stdout, proc.stdout + proc.stderr[-2000:]
