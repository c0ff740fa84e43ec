"""The edge zip: within the Lambda@Edge limit, cp312 manylinux wheels, nothing the handler does not import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import boto3
import pytest

from infra.artifacts.edge_model import ensure_model
from infra.artifacts.packaging import (
    RUNTIME_PYTHON,
    MiB,
    build_lambda,
    install_target,
    manifest_path,
    runtime_python,
    vendored_selection,
)
from infra.components.emf_edge import build_package
from infra.config import EmfEdgeConfig
from infra.core.paths import LAMBDAS_DIR, ROOT
from infra.tools import daemons

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
    for module in ("handler", "emf", "model", "pooling", "events", "settings", "trace", "s3get"):
        assert f"edge_inference/{module}.py" in names
    assert {"edge_inference/settings.json", "edge_inference/tokenizer.json"} <= names
    assert not any(n.endswith(".onnx") for n in names)
    # The runtime's bytecode of every module and nothing else under __pycache__ (tests/test_packaging.py checks
    # its format): /var/task is read-only, so what the zip lacks is compiled again at every cold start.
    tag = f"cpython-{RUNTIME_PYTHON.replace('.', '')}"
    expected = {f"{n.rsplit('/', 1)[0]}/__pycache__/{n.rsplit('/', 1)[1][:-3]}.{tag}.pyc" if "/" in n
                else f"__pycache__/{n[:-3]}.{tag}.pyc" for n in names if n.endswith(".py")}
    assert {n for n in names if "__pycache__" in n or n.endswith(".pyc")} == expected
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
from infra.artifacts.edge_probe import LocalModelStore, origin_request_event, unpack_baked
from infra.artifacts.edge_model import ensure_model
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


def test_packaged_function_initialises_at_import_and_serves(package, tmp_path):
    """The zip's own layout and baked settings: import with the Lambda runtime's variables set loads the model
    from S3 (a moto server, over HTTP, with the function's own signed GET) during init, without importing boto3,
    then `handler.handler` serves a CloudFront event warm."""
    shared = [line.strip() for line in (LAMBDAS_DIR / "edge_inference" / "include.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    with zipfile.ZipFile(package.path) as zf:  # the function and the shared code at the zip's root; wheels: venv's
        for name in zf.namelist():
            if name.startswith(tuple(f"{top}/" for top in ("edge_inference", *shared))):
                zf.extract(name, tmp_path / "task")
        settings = json.loads(zf.read("edge_inference/settings.json"))
    script = f"""
import json, os, sys
sys.path.insert(0, {str(tmp_path / "task")!r})
sys.path.insert(1, {str(ROOT)!r})
import edge_inference.model as model_module
from pathlib import Path
model_module.TMP_DIR = Path({str(tmp_path)!r})  # /tmp of the test, not the machine's
edge_inference_handler = __import__("edge_inference.handler", fromlist=["handler"])
assert edge_inference_handler._APP.encoder is not None, "model not loaded at init"
print("BOTO", sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore")))
import boto3
boto3.client("s3").delete_object(Bucket={settings["bucket"]!r}, Key={settings["model_key"]!r})  # no 2nd download
from infra.artifacts.edge_probe import origin_request_event
resp = edge_inference_handler.handler(origin_request_event({{"text": "served by the packaged code"}}), None)
print("STATUS", resp["status"], len(json.loads(resp["body"])["embedding"]))
"""
    with daemons.moto_server() as moto:
        env = daemons.aws_env(moto.url, region=settings["bucket_region"])
        s3 = boto3.client("s3", region_name=settings["bucket_region"], endpoint_url=moto.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=settings["bucket"])
        s3.upload_file(str(ensure_model(quiet=True).onnx_int8), settings["bucket"], settings["model_key"])
        env.update(AWS_LAMBDA_FUNCTION_NAME="us-east-1.akidb-test-edge-inference", AWS_REGION="ap-southeast-1")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STATUS 200 384" in proc.stdout and "BOTO []" in proc.stdout, proc.stdout
    emf_lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith('{"_aws"')]
    assert len(emf_lines) == 1 and emf_lines[0]["EdgeRegion"] == "ap-southeast-1"
    assert emf_lines[0]["CacheHit"] == 0 and emf_lines[0]["ModelLoadTime"] > 0



def test_the_runtime_imports_the_zip_without_compiling_a_module(package, tmp_path):
    """As Lambda runs it (the runtime's Python, only the zip on its path, no bytecode written: /var/task is
    read-only), importing the handler with numpy, onnxruntime and tokenizers reads the zip's bytecode: no module
    of the zip is compiled from source. The same import with the zip's __pycache__ folders removed compiles
    them, so the probe sees compilation when there is some."""
    from infra.tools.drill.zip_runtime import extract

    script = """
import importlib._bootstrap_external as ext, sys
root = sys.argv[1]
compiled = []
original = ext.SourceLoader.source_to_code
def source_to_code(self, data, path, **kw):
    if str(path).startswith(root):
        compiled.append(str(path)[len(root) + 1:])
    return original(self, data, path, **kw)
ext.SourceLoader.source_to_code = source_to_code
sys.path.insert(0, root)
import edge_inference.handler
print("COMPILED", len(compiled), sorted(compiled)[:5])
"""

    def compiled(root) -> str:
        proc = subprocess.run([runtime_python(), "-I", "-S", "-B", "-c", script, str(root)], capture_output=True,
                              text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.strip().splitlines()[-1]

    root = extract(package.path, tmp_path / "task")
    assert compiled(root) == "COMPILED 0 []"
    for cache in sorted(root.rglob("__pycache__")):
        shutil.rmtree(cache)
    count = int(compiled(root).split()[1])
    assert count > 100, count  # numpy's modules, onnxruntime's, the function's own


# ---- the build steps behind the edge zip and model: caches and installer (infra/artifacts/packaging.py) ----

def _demo_function(tmp_path):
    fn = tmp_path / "lambdas" / "demo_fn"
    fn.mkdir(parents=True)
    (fn / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    return tmp_path / "lambdas"


def test_cached_zip_is_reused_from_its_manifest_and_rebuilt_when_a_source_changes(tmp_path):
    lambdas = _demo_function(tmp_path)
    first = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "out")
    stamp = first.path.stat().st_mtime_ns
    again = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "out")
    assert again == first and first.path.stat().st_mtime_ns == stamp  # neither rezipped nor rewritten
    manifest = json.loads(manifest_path(first.path).read_text())
    assert manifest["content_key"] == first.path.with_suffix(".key").read_text()
    manifest_path(first.path).write_text(json.dumps({**manifest, "sha256": "0" * 64, "content_key": "stale"}))
    assert build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "out").sha256 == first.sha256
    (lambdas / "demo_fn" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    changed = build_lambda("demo_fn", lambdas_dir=lambdas, out_dir=tmp_path / "out")
    assert changed.sha256 != first.sha256 and changed.path == first.path


def test_vendored_selection_is_recorded_once_per_exclude_list(tmp_path):
    deps = tmp_path / "deps"
    (deps / "pkg").mkdir(parents=True)
    for name in ("a.py", "b.py"):
        (deps / "pkg" / name).write_text(name)
    (deps / ".complete").write_text("done")
    names, digest = vendored_selection(deps, [])
    assert names == ["pkg/a.py", "pkg/b.py"] and len(list(deps.glob(".selection-*"))) == 1
    assert vendored_selection(deps, ["pkg/b.*"]) == (["pkg/a.py"], vendored_selection(deps, ["pkg/b.*"])[1])
    assert vendored_selection(deps, ["pkg/b.*"])[1] != digest
    (deps / "pkg" / "a.py").write_text("changed")  # a finished deps folder never changes: the record answers
    assert vendored_selection(deps, []) == (names, digest)


def test_installer_failure_names_the_tool_and_the_requirement(tmp_path):
    with pytest.raises(RuntimeError, match=r"could not install /nonexistent/demo-1\.0-py3-none-any\.whl"):
        install_target(["/nonexistent/demo-1.0-py3-none-any.whl"], tmp_path / "target", runtime=False)
    assert not list(tmp_path.glob("*.txt")), "the temporary requirements file is removed"
