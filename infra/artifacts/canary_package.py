"""Synthetics canary packages: the zip layout the Python runtimes expect (`python/<file>.py`, handler
`<file>.handler`), built with the same deterministic zip writer and manifest as the Lambda packages.

`lambdas/<folder>/` is copied as the package `python/<folder>/`, and a one-line entry module
`python/<ENTRY>.py` re-exports its `handler`, because a Synthetics handler names a top-level file.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.artifacts.packaging import LambdaPackage, _read_lines, _sha256, _walk, _zip_bytes, manifest_path
from infra.core.files import write_atomic
from infra.core.paths import BUILD_DIR, LAMBDAS_DIR

ENTRY = "akidb_canary"
HANDLER = f"{ENTRY}.handler"


def build_canary(folder: str = "canary", *, out_dir: Path | None = None,
                 lambdas_dir: Path = LAMBDAS_DIR) -> LambdaPackage:
    source = lambdas_dir / folder
    if not (source / "handler.py").exists():
        raise FileNotFoundError(f"{source}/handler.py is missing: the canary needs a handler module")
    entries: list[tuple[str, Path | bytes]] = [
        (f"python/{folder}/{f.relative_to(source).as_posix()}", f) for f in _walk(source)]
    for extra in _read_lines(source / "include.txt"):  # shared code beside it, as build_lambda copies it
        shared = lambdas_dir / extra
        if not shared.is_dir():
            raise FileNotFoundError(f"{source / 'include.txt'} names {extra}, which is not a folder of lambdas/")
        entries += [(f"python/{extra}/{f.relative_to(shared).as_posix()}", f) for f in _walk(shared)]
    entries = [(name, f) for name, f in entries if not name.endswith("/include.txt")]
    entries.append((f"python/{ENTRY}.py", f"from {folder}.handler import handler  # noqa: F401\n".encode()))
    data, unpacked = _zip_bytes(sorted(entries))
    # The content hash is in the name: a canary's zip_file has no source-code hash, so a new path is what makes
    # the provider see new code.
    out = (out_dir or BUILD_DIR / "canaries") / f"{folder}-{_sha256(data)[:12]}.zip"
    if not out.exists() or out.read_bytes() != data:
        write_atomic(out, data)  # the plan and the first preview of `make plan` build it side by side
    pkg = LambdaPackage(function=folder, kind="lambda", path=out, sha256=_sha256(data),
                        compressed_bytes=len(data), unpacked_bytes=unpacked)
    write_atomic(manifest_path(out), json.dumps({
        "function": pkg.function, "kind": pkg.kind, "sha256": pkg.sha256, "handler": HANDLER,
        "compressed_bytes": pkg.compressed_bytes, "unpacked_bytes": pkg.unpacked_bytes}, indent=2) + "\n")
    return pkg
