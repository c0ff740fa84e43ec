"""`make checkov STACK=<stack>`: the plan's Kubernetes objects written out as manifests, for scanners that read
YAML (checkov's Kubernetes framework). One file per object, named by kind and name, from the offline plan."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

from infra.core.paths import BUILD_DIR
from infra.offline.plan import run_plan
from infra.plan.model import Plan
from infra.validation.kubernetes import k8s_objects


def write_manifests(plan: Plan, out: Path) -> list[Path]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written = []
    for obj in k8s_objects(plan):
        meta = obj.inputs.get("metadata") or {}
        path = out / f"{obj.inputs['kind']}-{meta.get('name', obj.name)}.yaml".lower()
        path.write_text(yaml.safe_dump(obj.inputs, sort_keys=True))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="staging")
    parser.add_argument("--out", type=Path, help="folder (default build/<stack>/manifests)")
    args = parser.parse_args(argv)
    out = args.out or BUILD_DIR / args.stack / "manifests"
    result = run_plan(args.stack, quiet=True, write=False, offline_secrets=True)
    if result.config_problems or result.plan is None:
        print("invalid stack config:\n  " + "\n  ".join(result.config_problems), file=sys.stderr)
        return 2
    written = write_manifests(result.plan, out)
    print(f"{len(written)} Kubernetes manifests of stack '{args.stack}' in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
