"""`make package` and `make edge-model`: the build steps as commands.

`python -m infra.offline.package [--stack S] [--rebuild]` builds every Lambda package exactly as the stack's plan
builds it and prints the sizes against the AWS limits; `python -m infra.offline.package --model-only [--force]`
fetches the weights, writes and quantises the edge model once (while every function's wheels are vendored, in
parallel) and prints its sizes; `--zip-levels` measures size and time of each deflate level on the packages with
vendored wheels.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from infra.artifacts.edge_model import ensure_model, source_dir
from infra.artifacts.packaging import ZIP_LEVEL, MiB, size_table, vendor_all, zip_level_table
from infra.core.files import exclusive
from infra.core.paths import BUILD_DIR, LAMBDAS_DIR


def _model(force: bool) -> int:
    """The slow first-run steps at once: the weights fetch and model build overlap the wheel downloads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        vendored = pool.submit(vendor_all)
        model = ensure_model(force=force)
        vendored.result()
    print(f"edge model and vendored wheels ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for f in (model.onnx_fp32, model.onnx_int8, model.tokenizer):
        print(f"{f.name:<18} {f.stat().st_size / 1024 / 1024:7.2f} MiB")
    print(f"{'weights (fp32)':<18} {(source_dir() / 'model.safetensors').stat().st_size / 1024 / 1024:7.2f} MiB")
    print(f"cache: {model.folder}")
    return 0


def _zip_levels() -> int:
    functions = sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/requirements.txt"))
    print(f"{'function':<20} {'level':>5} {'MiB':>8} {'wall s':>8} {'CPU s':>8}")
    for function, level, size, seconds, cpu in zip_level_table(functions):
        chosen = "  <- ZIP_LEVEL" if level == ZIP_LEVEL else ""
        print(f"{function:<20} {level:>5} {size / MiB:>8.2f} {seconds:>8.2f} {cpu:>8.2f}{chosen}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="staging")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild every zip (each replaced whole; dependency downloads stay cached)")
    parser.add_argument("--model-only", action="store_true",
                        help="export and quantise the edge model and vendor the wheels (in parallel), nothing else")
    parser.add_argument("--force", action="store_true", help="with --model-only: rebuild even when cached")
    parser.add_argument("--zip-levels", action="store_true",
                        help="zip each function with vendored wheels at deflate levels 1..9: size and time")
    args = parser.parse_args(argv)
    if args.zip_levels:
        return _zip_levels()
    if args.model_only:
        return _model(args.force)
    if args.rebuild:
        # Forget each zip's content key, under the zip's own lock, instead of deleting the zip: the build then
        # rebuilds and replaces it whole, while a plan or test reading the old one (same bytes) never finds it
        # missing (a deleted zip read as "no edge function in this plan" by a concurrent plan's rules).
        for key in (BUILD_DIR / "lambdas").glob("*.key"):
            with exclusive(key.with_name(f".{key.with_suffix('.zip').name}.lock")):
                key.unlink(missing_ok=True)
    from infra.offline.plan import run_plan  # imports the Pulumi SDKs (~2 s): only what needs the program

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
