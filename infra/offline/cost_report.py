"""`make cost` / `make plan`: print the monthly estimate of a planned stack; exit 1 above the ceiling.

Reads the plan `make plan` just wrote (`build/<stack>/plan.json`) and the stack's config, so the estimate is of
exactly that plan without running the program a second time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.config import ConfigError, parse_stack_config
from infra.core.paths import BUILD_DIR
from infra.offline.stackfile import StackFileError, read_stack_file, with_offline_secrets
from infra.plan.cost import estimate, report
from infra.plan.model import Plan, PlannedResource


def load_plan(stack: str, path: Path) -> Plan:
    doc = json.loads(path.read_text())
    resources = [PlannedResource(urn=f"{r['type']}::{r['name']}", type=r["type"], name=r["name"],
                                 parent=r.get("parent"), region=r.get("region"), inputs=r.get("inputs") or {},
                                 custom=bool(r.get("custom")), provider=r.get("provider"))
                 for r in doc["resources"]]
    # The estimate reads sizes and counts, never secrets: stand-ins keep it working before they are set.
    stack_file, _ = with_offline_secrets(read_stack_file(stack))
    cfg = parse_stack_config(stack_file.values, set(stack_file.secret_keys))
    return Plan(resources=resources, config=cfg, outputs=doc.get("outputs") or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Monthly cost estimate of the offline plan of a stack.")
    parser.add_argument("--stack", default="staging", help="stack name (Pulumi.<stack>.yaml)")
    parser.add_argument("--plan", type=Path, help="plan.json to read (default build/<stack>/plan.json)")
    args = parser.parse_args(argv)
    path = args.plan or BUILD_DIR / args.stack / "plan.json"
    if not path.exists():
        print(f"{path} does not exist: run `make plan STACK={args.stack}` first", file=sys.stderr)
        return 2
    try:
        plan = load_plan(args.stack, path)
    except (ConfigError, StackFileError) as err:
        print(f"invalid stack config for '{args.stack}':\n{err}", file=sys.stderr)
        return 2
    ceiling = plan.config.cost_watch.ceiling_usd
    est = estimate(plan, stack=args.stack)
    print(report(est, ceiling))
    return 0 if est.total <= ceiling else 1


if __name__ == "__main__":
    sys.exit(main())
