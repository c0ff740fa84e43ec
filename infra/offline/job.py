"""`make plan` (the main job): the offline plan, the first preview and the cost estimate of a stack.

    python -m infra.offline.job --stack staging --offline-secrets
    python -m infra.offline.job --stack staging --stack prod --offline-secrets   # `make plan-all`

Each step is the module's own `main` (`infra.offline.plan`, `infra.offline.preview`, `infra.offline.cost_report`),
so the output and the exit codes are theirs: printed in that order, and the job ends with the code of the first
step that fails, as when they were three commands. One process imports the Pulumi SDKs and the program once
(each command used to spend ~2 s on that: plan 3.6 s + preview 3.1 s + cost 0.3 s as three processes); the
preview, which needs nothing from the plan, then runs in a forked copy of it on the other core while the plan
runs here, its output held back until the plan's is printed. The cost estimate reads the plan, so it comes last.
The two runs share the build cache, whose writers lock and replace files whole (infra/core/files.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from infra.core.collector import collect_less
from infra.offline import cost_report, plan, preview

Step = Callable[[list[str]], int]


@dataclass
class Forked:
    """A step running in a forked child; its stdout and stderr go to files the parent prints later."""

    pid: int
    out: IO[bytes]
    err: IO[bytes]

    def result(self) -> int:
        """Wait for the child, print what it wrote (stdout, then stderr), return its exit code."""
        _, status = os.waitpid(self.pid, 0)
        for captured, stream in ((self.out, sys.stdout), (self.err, sys.stderr)):
            captured.seek(0)
            stream.write(captured.read().decode(errors="replace"))
            stream.flush()
            captured.close()
        return os.waitstatus_to_exitcode(status)

    def cancel(self) -> None:
        """Stop the child and drop its output (the job ends before this step would have run)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)
        self.out.close()
        self.err.close()


def fork_step(step: Step, argv: list[str]) -> Forked:
    """Run `step(argv)` in a forked child. The program holds no threads or open channels at this point (the
    mock runtime and its event loop are made per run), so the child starts from a clean copy."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed by Forked)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return Forked(pid, out, err)
    code = 1
    try:  # the child: both the file descriptors (tools it runs) and Python's streams go to the files
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (lives until os._exit)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        code = step(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_stack(stack: str, common: list[str], secrets: list[str]) -> int:
    """Plan, preview (forked, side by side with the plan) and cost of one stack; the first failing code."""
    previewing = fork_step(preview.main, [*common, *secrets])
    try:
        code = plan.main([*common, *secrets])
    except BaseException:
        previewing.cancel()
        raise
    sys.stdout.flush()
    if code != 0:
        previewing.cancel()
        return code
    code = previewing.result()
    if code != 0:
        return code
    return cost_report.main(["--stack", stack])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Offline plan, first preview and cost estimate of stacks.")
    parser.add_argument("--stack", action="append", dest="stacks", metavar="STACK",
                        help="stack name (Pulumi.<stack>.yaml); repeat for several; default staging")
    parser.add_argument("--config", type=Path, help="use this stack file instead of Pulumi.<stack>.yaml (one stack)")
    parser.add_argument("--offline-secrets", action="store_true",
                        help="stand in for the secrets the config needs (missing or encrypted); lists them")
    args = parser.parse_args(argv)
    stacks: list[str] = args.stacks or ["staging"]
    if args.config is not None and len(stacks) > 1:
        parser.error("--config names one stack file: give a single --stack with it")
    for stack in stacks:
        common = ["--stack", stack, *(["--config", str(args.config)] if args.config else [])]
        code = run_stack(stack, common, ["--offline-secrets"] if args.offline_secrets else [])
        sys.stdout.flush()
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    collect_less()  # `make plan` 2.7-3.6 s instead of 3.6-5.2 s (13 alternating pairs, quiet machine)
    sys.exit(main())
