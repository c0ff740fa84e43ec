"""`make package` and `make edge-model`: the build steps as commands.

`python -m infra.offline.package [--stack S] [--rebuild]` builds every Lambda package exactly as the stack's plan
builds it and prints the sizes against the AWS limits; `python -m infra.offline.package --model-only [--force]`
exports and quantises the edge model once and prints its sizes.
"""

from __future__ import annotations

import argparse
import sys

from infra.artifacts.edge_model import ensure_model, source_dir
from infra.artifacts.packaging import size_table
from infra.core.paths import BUILD_DIR
from infra.offline.plan import run_plan


def _model(force: bool) -> int:
    model = ensure_model(force=force)
    for f in (model.onnx_fp32, model.onnx_int8, model.tokenizer):
        print(f"{f.name:<18} {f.stat().st_size / 1024 / 1024:7.2f} MiB")
    print(f"{'weights (fp32)':<18} {(source_dir() / 'model.safetensors').stat().st_size / 1024 / 1024:7.2f} MiB")
    print(f"cache: {model.folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="staging")
    parser.add_argument("--rebuild", action="store_true",
                        help="delete the built zips first (dependency downloads stay cached)")
    parser.add_argument("--model-only", action="store_true", help="only export and quantise the edge model")
    parser.add_argument("--force", action="store_true", help="with --model-only: rebuild even when cached")
    args = parser.parse_args(argv)
    if args.model_only:
        return _model(args.force)
    if args.rebuild:
        for old in (BUILD_DIR / "lambdas").glob("*.zip"):
            old.unlink()
    result = run_plan(args.stack, quiet=True, offline_secrets=True)  # zips do not depend on secrets
    if result.config_problems:
        print("\n".join(result.config_problems), file=sys.stderr)
        return 2
    packages = result.packages
    if not packages:
        print(f"no Lambda package is built by the {args.stack} stack's program", file=sys.stderr)
        return 1
    print(size_table(packages))
    problems = [msg for p in packages for msg in p.problems()]
    for msg in problems:
        print(f"LIMIT: {msg}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
