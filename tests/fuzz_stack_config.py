"""Fuzz pass over the stack config: N mutated stack files through `infra.offline.stackfile` + the config parser,
each judged as accepted / clean rejection naming the key / finding (crash, silent drop, nonsense accepted).

    .venv/bin/python tests/fuzz_stack_config.py --cases 600 [--root DIR] [--seed 12]

`--root` runs another checkout's code and stack files (e.g. main, for the figures before a change)."""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    parser.add_argument("--show", type=int, default=5, help="findings shown per verdict")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root.resolve()))
    sys.path.insert(1, str(HERE))
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import stack_mutations as sm

    stackfile = importlib.import_module("infra.offline.stackfile")
    config = importlib.import_module("infra.config")
    stand_in = getattr(stackfile, "with_offline_secrets", None)

    def run(path: Path) -> tuple[int, str]:
        try:
            stack = sm.stack_of(path)
            sf = stackfile.read_stack_file(stack, path)
            if stand_in is not None:
                sf, _ = stand_in(sf)
            config.parse_stack_config(sf.values, set(sf.secret_keys), stack=stack)
        except (config.ConfigError, stackfile.StackFileError) as err:
            return 2, str(err)
        except Exception as err:  # what `python -m infra.offline.plan` reports as exit 3
            return 3, f"{type(err).__name__}: {err}"
        return 0, ""

    rnd = random.Random(args.seed)
    originals = {s: sm.load_original(args.root, s) for s in ("staging", "prod")}
    verdicts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    kind_findings: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.cases):
            stack = rnd.choice(("staging", "prod"))
            mutation = sm.mutate(originals[stack], rnd)
            outcome = sm.judge(mutation, run, Path(tmp), stack)
            kinds[mutation.kind] += 1
            if outcome.verdict not in ("accepted", "rejected"):
                kind_findings[mutation.kind] += 1
            verdicts[outcome.verdict] += 1
            examples.setdefault(outcome.verdict, []).append(f"[{mutation.kind}] {outcome.detail}")
    clean = verdicts["rejected"]
    findings = args.cases - clean - verdicts["accepted"]
    print(f"root {args.root}: {args.cases} cases, {clean} clean rejections, {verdicts['accepted']} accepted, "
          f"{findings} findings")
    for verdict, n in sorted(verdicts.items()):
        print(f"  {verdict:<18} {n}")
    print("  findings by mutation kind: " + ", ".join(f"{k} {kind_findings[k]}/{kinds[k]}" for k in sorted(kinds)))
    for verdict in ("crash", "silent_drop", "nonsense_accepted", "rejected_unnamed"):
        for line in examples.get(verdict, [])[:args.show]:
            print(f"  {verdict}: {line[:240]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
