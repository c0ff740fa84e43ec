"""Project paths, derived from this file (the real CLI may run the program from another directory)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = ROOT / "lambdas"
RULES_DIR = ROOT / "rules"
DASHBOARDS_DIR = ROOT / "dashboards"
BUILD_DIR = ROOT / "build"
