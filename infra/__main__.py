"""Entry point of the Pulumi program (Pulumi.yaml `main: infra/`), run by `pulumi preview` / `pulumi up`."""

import sys
from pathlib import Path

# The CLI runs this file from infra/; the project root must be importable for `infra.*` and `lambdas/`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.config import ConfigError, load_stack_config
from infra.program import build, export_all

try:
    config = load_stack_config()
except ConfigError as err:
    for problem in err.problems:
        pulumi.log.error(str(problem))
    # RunError ends the program without a Python traceback.
    raise pulumi.RunError(f"invalid stack config: {len(err.problems)} problem(s), listed above") from None

export_all(build(config))
