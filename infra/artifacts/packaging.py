"""Deterministic Lambda packaging: one zip per function in `lambdas/`, byte-identical across builds.

Layout of a function folder `lambdas/<name>/`:
- the Python package itself (`handler.py` with `handler(event, context)`, siblings imported relatively);
- `requirements.txt` (optional): third-party code vendored into the zip, from manylinux x86_64 wheels for the
  Lambda runtime's Python (not the host's), downloaded once into `build/cache/deps/<hash>`;
- `include.txt` (optional): other folders under `lambdas/` copied beside it (shared code), one per line;
- `exclude.txt` (optional): glob patterns of vendored files to drop (tests, docs) to stay within limits.

The zip holds `<name>/...` plus vendored packages at the root; the handler is `<name>.handler.handler`.
Timestamps are fixed, entries sorted, permissions normalised and the source tree's bytecode left out (a package
may carry the runtime's own instead: `bytecode=True`), so the same sources give the same bytes, the same
`source_code_hash`, and `pulumi preview` shows no spurious diff. Settings that Lambda@Edge cannot read from
environment variables are baked in as files (`baked=`), which makes the zip per-stack: its name carries a hash
of them.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from infra.core.files import exclusive, write_atomic
from infra.core.paths import BUILD_DIR, LAMBDAS_DIR

RUNTIME = "python3.12"
RUNTIME_PYTHON = "3.12"
ARCHITECTURE = "x86_64"  # the only architecture WHEEL_PLATFORMS fetch wheels for (and Lambda@Edge's only one)
# python3.12 runs on Amazon Linux 2023 (glibc 2.34): wheels up to manylinux_2_34 are loadable there.
_MANYLINUX_TAGS = ("manylinux_2_28", "manylinux_2_17", "manylinux2014")  # newest first
WHEEL_PLATFORMS = tuple(f"{tag}_{ARCHITECTURE}" for tag in _MANYLINUX_TAGS)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Deflate level, chosen by measurement (`python -m infra.offline.package --zip-levels`, table in docs/performance.md):
# level 9 costs ~5x the CPU of level 1 for 13% smaller zips, and both zips stay far below their limits.
ZIP_LEVEL = 1
MiB = 1024 * 1024

# AWS limits (Lambda quotas; CloudFront "Restrictions on Lambda@Edge").
LIMITS: dict[str, dict[str, int]] = {
    # zip uploaded directly through the API; the unpacked size counts code and layers.
    "lambda": {"compressed": 50 * MiB, "unpacked": 250 * MiB},
    # zip uploaded from S3: only the unpacked size is limited.
    "lambda-s3": {"compressed": 0, "unpacked": 250 * MiB},
    "edge-origin": {"compressed": 50 * MiB, "unpacked": 250 * MiB},
    "edge-viewer": {"compressed": 1 * MiB, "unpacked": 250 * MiB},
}
_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
# Bytecode a package may carry (`build_lambda(bytecode=True)`): compiled by the runtime's Python, hash-based and
# unchecked (PEP 552), so the import never reads the source's timestamp nor hashes it, and the same sources give
# the same bytes. Lambda's /var/task is read-only: without these, every cold start compiles every module it
# imports (numpy's ~150 among them) and throws the result away.
BYTECODE_MODE = "unchecked-hash"
BYTECODE_ROOT = "/var/task"  # the path Lambda unpacks the zip to (LAMBDA_TASK_ROOT): what tracebacks show


@dataclass(frozen=True)
class LambdaPackage:
    function: str
    kind: str
    path: Path
    sha256: str
    compressed_bytes: int
    unpacked_bytes: int

    @property
    def source_code_hash(self) -> str:
        """Base64 SHA-256, the form Lambda reports as CodeSha256."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def handler(self) -> str:
        return f"{self.function}.handler.handler"

    @property
    def runtime(self) -> str:
        """The Lambda runtime whose Python the vendored wheels were fetched for."""
        return RUNTIME

    @property
    def architecture(self) -> str:
        """The CPU architecture of the vendored wheels: a function must run on this one."""
        return ARCHITECTURE

    @property
    def limits(self) -> dict[str, int]:
        return LIMITS[self.kind]

    def problems(self) -> list[str]:
        out = []
        lim = self.limits
        if lim["compressed"] and self.compressed_bytes > lim["compressed"]:
            out.append(f"{self.path.name}: {self.compressed_bytes / MiB:.1f} MiB compressed exceeds the "
                       f"{lim['compressed'] / MiB:.0f} MiB limit for {self.kind}")
        if self.unpacked_bytes > lim["unpacked"]:
            out.append(f"{self.path.name}: {self.unpacked_bytes / MiB:.1f} MiB unpacked exceeds the "
                       f"{lim['unpacked'] / MiB:.0f} MiB limit for {self.kind}")
        return out


class RuntimeMissing(RuntimeError):
    """No interpreter of the runtime's Python on this machine."""


@functools.cache
def runtime_python() -> str:
    """An interpreter of the Lambda runtime's Python (the vendored wheels are built for it, not for the host's):
    python3.12 on PATH, else pyenv's, else one uv finds; each candidate is asked its version (a pyenv shim on
    PATH may name a version it does not run)."""
    candidates = [shutil.which(f"python{RUNTIME_PYTHON}") or ""]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv.glob(f"versions/{RUNTIME_PYTHON}*/bin/python{RUNTIME_PYTHON}"))
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        found = subprocess.run([str(uv), "python", "find", RUNTIME_PYTHON], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
        candidates.append(found.stdout.strip() if found.returncode == 0 else "")
    for candidate in filter(None, candidates):
        asked = subprocess.run([candidate, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if asked.returncode == 0 and asked.stdout.strip() == RUNTIME_PYTHON:
            return candidate
    raise RuntimeMissing(f"no Python {RUNTIME_PYTHON} interpreter (the Lambda runtime's) found: install one "
                         f"(e.g. `uv python install {RUNTIME_PYTHON}`) so the functions' zips can run as in Lambda")


def compile_bytecode(entries: list[tuple[str, Path | bytes]]) -> dict[str, bytes]:
    """`<dir>/__pycache__/<module>.cpython-312.pyc` for every `.py` entry, compiled by the runtime's Python.

    compileall with a fixed hash seed and a fixed source root: the same sources give byte-identical files."""
    sources = [(name, src) for name, src in entries if name.endswith(".py")]
    if not sources:
        return {}
    try:
        python = runtime_python()
    except RuntimeMissing as exc:
        raise RuntimeMissing(f"{exc}; it also compiles the bytecode some zips carry (the edge function's)") from exc
    with tempfile.TemporaryDirectory(prefix="bytecode-") as tmp:
        root = Path(tmp) / "task"
        for name, src in sources:
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, bytes):
                target.write_bytes(src)
            else:
                shutil.copyfile(src, target)
        result = subprocess.run(
            [python, "-S", "-s", "-m", "compileall", "-q", "--invalidation-mode", BYTECODE_MODE,
             "-d", BYTECODE_ROOT, str(root)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, "PYTHONHASHSEED": "0"})
        if result.returncode != 0:
            raise RuntimeError(f"python{RUNTIME_PYTHON} could not compile the package's modules:\n"
                               f"{(result.stdout + result.stderr).strip()[-2000:]}")
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def manifest_path(zip_path: Path | str) -> Path:
    """Where the build step records a package's kind and sizes, beside the zip the plan references."""
    return Path(zip_path).with_suffix(".json")


def read_package(zip_path: Path | str | None) -> LambdaPackage | None:
    """The package built at `zip_path` (read from its manifest), or None when the path is not a built package.

    Validation finds packages through the plan (the `code`/`source` path of a resource), never through state
    kept by this process, so the same rules can run in the engine's policy pack.
    """
    if not zip_path:
        return None
    manifest = manifest_path(zip_path)
    if not manifest.exists() or not Path(zip_path).exists():
        return None
    raw = json.loads(manifest.read_text())
    return LambdaPackage(function=raw["function"], kind=raw["kind"], path=Path(zip_path), sha256=raw["sha256"],
                         compressed_bytes=raw["compressed_bytes"], unpacked_bytes=raw["unpacked_bytes"])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fn in sorted(filenames):
            if not fn.endswith(_SKIP_SUFFIXES):
                files.append(Path(dirpath) / fn)
    return files


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def installer() -> str:
    """The wheel installer the build steps use: uv when the venv has it (`make plan` installs it), else pip.

    uv resolves, downloads and unpacks in parallel and writes no bytecode: the plan set of wheels installed in
    5 s where pip took 75 s, prophet for the Lambda runtime in 5 s instead of 10 (docs/performance.md)."""
    uv = Path(sys.executable).with_name("uv")
    return str(uv) if uv.exists() else "pip"


def install_target(requirements: list[str], target: Path, *, runtime: bool, no_deps: bool = False) -> None:
    """Install wheels for `requirements` (requirements-file lines, `--hash=` allowed) into the folder `target`.

    `runtime`: for the Lambda runtime's Python and platform (RUNTIME, WHEEL_PLATFORMS), not the host's. Binary
    wheels only; a line with a hash makes every requirement need one (pip and uv check them)."""
    tool = installer()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=target.parent, delete=False) as f:
        f.write("\n".join(requirements) + "\n")
        req_file = Path(f.name)
    if tool == "pip":
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
               "--target", str(target), "--only-binary=:all:", "-r", str(req_file)]
        if runtime:
            cmd += ["--implementation", "cp", "--python-version", RUNTIME_PYTHON,
                    *[a for p in WHEEL_PLATFORMS for a in ("--platform", p)]]
    else:
        cmd = [tool, "pip", "install", "--quiet", "--python", sys.executable, "--target", str(target),
               "--only-binary", ":all:", "-r", str(req_file)]
        if runtime:
            # The newest manylinux tag the runtime loads; uv accepts every older tag for it (pip needs the list).
            cmd += ["--python-version", RUNTIME_PYTHON, "--python-platform", f"{ARCHITECTURE}-{_MANYLINUX_TAGS[0]}"]
    if no_deps:
        cmd.append("--no-deps")
    if any("--hash=" in line for line in requirements):
        cmd.append("--require-hashes")
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    finally:
        req_file.unlink(missing_ok=True)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} could not install {', '.join(requirements)} into {target}:\n"
                           f"{result.stderr.strip()[-2000:]}")


def vendor_dependencies(requirements: Path, cache_root: Path | None = None) -> Path | None:
    """Install `requirements` for the Lambda runtime into a cache folder keyed by its content; reuse it."""
    reqs = _read_lines(requirements)
    if not reqs:
        return None
    tool = Path(installer()).name
    # uv and pip write different metadata files: one cache folder each (pip's key is the one it always had).
    key = _sha256(json.dumps([reqs, RUNTIME_PYTHON, WHEEL_PLATFORMS, *([tool] if tool != "pip" else [])])
                  .encode())[:16]
    target = (cache_root or BUILD_DIR / "cache" / "deps") / key
    if (target / ".complete").exists():
        return target
    # One installer per folder: a second process waits, then finds it complete. The install goes to a private
    # folder renamed into place, so a reader never sees half of one.
    with exclusive(target.with_name(f".{key}.lock")):
        if (target / ".complete").exists():
            return target
        started = time.perf_counter()
        _progress(f"vendoring {requirements.parent.name}: {tool} installs {', '.join(reqs)} for {RUNTIME} "
                  "(first run only, cached by content)...")
        tmp = target.with_name(f".{key}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            install_target(reqs, tmp, runtime=True)
        except RuntimeError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / ".complete").write_text("\n".join(reqs))
        shutil.rmtree(target, ignore_errors=True)  # an unfinished folder of an older layout
        tmp.rename(target)
        _progress(f"vendoring {requirements.parent.name}: done in {time.perf_counter() - started:.1f} s")
    return target


def vendor_all(lambdas_dir: Path = LAMBDAS_DIR) -> list[Path]:
    """Vendor every function's requirements at once: the pip runs wait on the network, so they overlap."""
    files = sorted(lambdas_dir.glob("*/requirements.txt"))
    with ThreadPoolExecutor(max_workers=max(1, len(files))) as pool:
        return [p for p in pool.map(vendor_dependencies, files) if p is not None]


def _progress(message: str) -> None:
    """What a slow first-run step is doing and how long it took (stderr: the plan's stdout stays its own)."""
    print(message, file=sys.stderr, flush=True)


def _entries(function: str, function_dir: Path, deps: Path | None,
             baked: dict[str, bytes], lambdas_dir: Path) -> list[tuple[str, Path | bytes]]:
    entries: dict[str, Path | bytes] = {}
    for f in _walk(function_dir):
        rel_path = f.relative_to(function_dir)
        if rel_path.parts[0] in {"requirements.txt", "include.txt", "exclude.txt"}:
            continue
        entries[f"{function}/{rel_path.as_posix()}"] = f
    for extra in _read_lines(function_dir / "include.txt"):
        src = lambdas_dir / extra
        if not src.is_dir():
            raise FileNotFoundError(f"{function_dir / 'include.txt'} names {extra}, which is not a folder of lambdas/")
        for f in _walk(src):
            entries[f"{extra}/{f.relative_to(src).as_posix()}"] = f
    if deps is not None:
        names, _digest = vendored_selection(deps, _read_lines(function_dir / "exclude.txt"))
        entries.update((name, deps / name) for name in names)
    for rel, data in baked.items():
        entries[f"{function}/{rel}"] = data
    return sorted(entries.items())


def _zip_bytes(entries: list[tuple[str, Path | bytes]], level: int = ZIP_LEVEL) -> tuple[bytes, int]:
    buf = io.BytesIO()
    unpacked = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, src in entries:
            data = src if isinstance(src, bytes) else src.read_bytes()
            # A file keeps its exec bit as git or the wheel gave it (e.g. prophet's compiled Stan model
            # `prophet_model.bin`, run by cmdstanpy as a subprocess): modes are normalised to 0755 or 0644 only,
            # so the zip stays deterministic without a list of which suffixes may be programs.
            executable = not isinstance(src, bytes) and os.access(src, os.X_OK)
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=level)
            unpacked += len(data)
    return buf.getvalue(), unpacked


def build_lambda(function: str, *, kind: str = "lambda", baked: dict[str, bytes] | None = None,
                 out_dir: Path | None = None, use_cache: bool = True,
                 lambdas_dir: Path = LAMBDAS_DIR, bytecode: bool = False) -> LambdaPackage:
    """Build `lambdas/<function>` into a deterministic zip and return its path, hash and sizes.

    `bytecode`: the zip also carries the runtime's bytecode of every module (BYTECODE_MODE)."""
    if kind not in LIMITS:
        raise ValueError(f"unknown package kind {kind!r}; allowed: {', '.join(LIMITS)}")
    function_dir = lambdas_dir / function
    if not (function_dir / "handler.py").exists():
        raise FileNotFoundError(f"{function_dir}/handler.py is missing: every function needs a handler module")
    baked = dict(baked or {})
    deps = vendor_dependencies(function_dir / "requirements.txt")
    entries = _entries(function, function_dir, deps, baked, lambdas_dir)
    digest = hashlib.sha256(f"deflate-level={ZIP_LEVEL}".encode())
    if bytecode:  # the compiled files follow from the sources: the key only needs to say they are there
        digest.update(f"bytecode={RUNTIME_PYTHON}:{BYTECODE_MODE}:{BYTECODE_ROOT}".encode())
    for name, src in entries:
        if deps is not None and isinstance(src, Path) and src.is_relative_to(deps):
            continue  # keyed below by the folder's recorded digest, not re-read
        digest.update(name.encode())
        digest.update(src if isinstance(src, bytes) else src.read_bytes())
    if deps is not None:
        digest.update(vendored_selection(deps, _read_lines(function_dir / "exclude.txt"))[1].encode())
    content_key = digest.hexdigest()
    suffix = f"-{_sha256(json.dumps(sorted((k, _sha256(v)) for k, v in baked.items())).encode())[:8]}" if baked else ""
    out = (out_dir or BUILD_DIR / "lambdas") / f"{function}{suffix}.zip"
    key_file = out.with_suffix(".key")
    # One writer per zip (the plan and the first preview of `make plan` run side by side): the second process
    # waits, then finds the first one's zip current. Each file is replaced whole.
    with exclusive(out.with_name(f".{out.name}.lock")):
        if use_cache and out.exists() and key_file.exists() and key_file.read_text() == content_key:
            cached = read_package(out)
            # The manifest of this very zip (same key, same size): its hash and sizes need no re-read of 35 MB.
            if cached is not None and cached.kind == kind and cached.compressed_bytes == out.stat().st_size \
                    and json.loads(manifest_path(out).read_text()).get("content_key") == content_key:
                return cached
        else:
            started = time.perf_counter()
            if bytecode:
                entries = sorted([*entries, *compile_bytecode(entries).items()], key=lambda e: e[0])
            data, _ = _zip_bytes(entries)
            if deps is not None:  # only the packages with vendored wheels take long enough to mention
                _progress(f"zipped {out.name}: {len(data) / MiB:.1f} MiB at deflate level {ZIP_LEVEL} in "
                          f"{time.perf_counter() - started:.1f} s")
            write_atomic(out, data)
            write_atomic(key_file, content_key)
        data = out.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
        pkg = LambdaPackage(function=function, kind=kind, path=out, sha256=_sha256(data),
                            compressed_bytes=len(data), unpacked_bytes=unpacked)
        write_atomic(manifest_path(out), json.dumps({
            "function": pkg.function, "kind": pkg.kind, "sha256": pkg.sha256,
            "compressed_bytes": pkg.compressed_bytes, "unpacked_bytes": pkg.unpacked_bytes,
            "content_key": content_key}, indent=2) + "\n")
    return pkg


def vendored_selection(deps: Path, excludes: list[str]) -> tuple[list[str], str]:
    """The files of a deps folder that go into a zip (those no `excludes` pattern matches) and their SHA-256.

    A finished deps folder never changes (it is keyed by its requirements), so walking, matching and hashing its
    ~10,000 files (~200 MB) on every plan and preview would only repeat the first answer (2 s of each run): the
    answer is recorded beside the files, per exclude list."""
    record = deps / f".selection-{_sha256(json.dumps(excludes).encode())[:16]}.json"
    if record.exists():
        saved = json.loads(record.read_text())
        return list(saved["names"]), str(saved["sha256"])
    names = []
    for f in _walk(deps):
        rel = f.relative_to(deps).as_posix()
        if rel == ".complete" or rel.startswith((".selection-", "bin/")):
            continue
        if not any(fnmatch.fnmatch(rel, pat) for pat in excludes):
            names.append(rel)
    names.sort()
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update((deps / name).read_bytes())
    write_atomic(record, json.dumps({"names": names, "sha256": digest.hexdigest()}))
    return names, digest.hexdigest()


def zip_level_table(functions: list[str], levels: range = range(1, 10),
                    lambdas_dir: Path = LAMBDAS_DIR) -> list[tuple[str, int, int, float, float]]:
    """(function, level, compressed bytes, wall s, CPU s) per deflate level: the measurement behind ZIP_LEVEL.

    CPU seconds are the robust figure on a shared machine (deflate is one thread of pure CPU work)."""
    rows = []
    for function in functions:
        function_dir = lambdas_dir / function
        entries = _entries(function, function_dir, vendor_dependencies(function_dir / "requirements.txt"), {},
                           lambdas_dir)
        for level in levels:
            started, cpu = time.perf_counter(), time.process_time()
            data, _ = _zip_bytes(entries, level)
            rows.append((function, level, len(data), time.perf_counter() - started, time.process_time() - cpu))
    return rows


def size_table(packages: list[LambdaPackage]) -> str:
    lines = [f"{'package':<44} {'kind':<12} {'compressed':>12} {'unpacked':>12}  sha256",]
    for p in sorted(packages, key=lambda p: p.path.name):
        lim = p.limits
        comp_lim = f"/{lim['compressed'] / MiB:.0f}" if lim["compressed"] else "/-"
        lines.append(f"{p.path.name:<44} {p.kind:<12} {p.compressed_bytes / MiB:>6.2f}{comp_lim:>5} MiB "
                     f"{p.unpacked_bytes / MiB:>6.2f}/{lim['unpacked'] / MiB:.0f} MiB  {p.sha256[:16]}")
    return "\n".join(lines)
