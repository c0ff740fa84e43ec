"""YAML documents read with libyaml's parser when PyYAML was built with it, else PyYAML's pure-Python one.

The definitions (rules/slos.yaml, rules/symptoms.yaml, rules/runbooks.yaml) are read on every config parse, plan
and generation: with the pure-Python parser that was ~0.3 s per stack config parse, most of a property test's
time. CSafeLoader is SafeLoader's schema on libyaml's C parser (PyYAML documentation, "Installation" and
`yaml.CSafeLoader`): the same tags and the same YAMLError classes, a fraction of the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """One document, as yaml.safe_load reads it."""
    return yaml.load(text, Loader=SafeLoader)


def safe_load_all(text: str) -> Iterator[Any]:
    """Every document of a stream, as yaml.safe_load_all reads them."""
    return yaml.load_all(text, Loader=SafeLoader)
