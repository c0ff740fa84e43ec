"""requirements.txt for `pulumi install` (Pulumi.yaml `toolchain: pip`), generated from pyproject.toml.

    python -m infra.offline.requirements          # rewrite requirements.txt
    python -m infra.offline.requirements --check  # exit 1 when it drifted from pyproject.toml

The program's dependencies plus the `model-build` extra: a cold `pulumi up` writes the edge model's graph from its
weights (onnx, safetensors; no torch), so `pulumi install` must give it those too.
"""

from __future__ import annotations

import argparse
import sys
import tomllib

from infra.core.paths import ROOT

REQUIREMENTS = ROOT / "requirements.txt"
PROGRAM_EXTRAS = ("model-build",)


def render() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = ["# Generated from pyproject.toml by `python -m infra.offline.requirements`: do not edit by hand.",
             "# Read by `pulumi install` (Pulumi.yaml runtime.options.toolchain: pip)."]
    lines += list(project["dependencies"])
    for extra in PROGRAM_EXTRAS:
        lines += list(project["optional-dependencies"][extra])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate requirements.txt from pyproject.toml.")
    parser.add_argument("--check", action="store_true", help="exit 1 if requirements.txt is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not REQUIREMENTS.exists() or REQUIREMENTS.read_text() != text:
            print("requirements.txt is out of date: run `python -m infra.offline.requirements`", file=sys.stderr)
            return 1
        return 0
    REQUIREMENTS.write_text(text)
    print(f"wrote {REQUIREMENTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
