"""Settings baked into the package at build time (Lambda@Edge has no environment variables).

`infra/components/emf_edge.py` writes `settings.json` into the zip from the stack config; it is read once per container.
A missing or invalid file is a deployment fault: it raises, and the handler answers 5xx.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

SETTINGS_FILE = Path(__file__).resolve().parent / "settings.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class SettingsError(Exception):
    """The baked settings are missing or wrong (a build fault, never the caller's)."""


@dataclass(frozen=True)
class Settings:
    bucket: str  # S3 bucket holding the ONNX model
    bucket_region: str  # its region (replicas in other regions fetch across regions)
    model_key: str  # object key of the ONNX model
    model_sha256: str  # expected SHA-256 of that object: a corrupt or swapped file is refused
    model_name: str  # value of the EMF `Model` dimension and of the response's "model"
    namespace: str  # EMF namespace
    tokenizer_file: str  # tokenizer.json, relative to the settings file
    max_tokens: int  # truncation length: sentence-transformers' max_seq_length (256), not tokenizer.json's 128
    dimension: int  # embedding size (384)
    normalize: bool  # L2-normalise after mean pooling (the model's Normalize module)
    base_dir: str = ""  # folder of the settings file (filled by load())

    @property
    def tokenizer_path(self) -> Path:
        return Path(self.base_dir) / self.tokenizer_file


def load(path: Path = SETTINGS_FILE) -> Settings:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read baked settings {path.name}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{path.name} must hold a JSON object")
    names = {f.name for f in fields(Settings)} - {"base_dir"}
    missing = sorted(names - raw.keys())
    unknown = sorted(raw.keys() - names)
    if missing or unknown:
        raise SettingsError(f"{path.name}: missing keys {missing}, unknown keys {unknown}")
    expected = {f.name: f.type for f in fields(Settings)}
    for name in names:
        kind = {"str": str, "int": int, "bool": bool}[str(expected[name])]
        if type(raw[name]) is not kind:
            raise SettingsError(f"{path.name}: {name} must be {kind.__name__}, got {type(raw[name]).__name__}")
    if not _SHA256.match(raw["model_sha256"]):
        raise SettingsError(f"{path.name}: model_sha256 must be 64 lowercase hex digits")
    if raw["max_tokens"] < 8 or raw["dimension"] < 1:
        raise SettingsError(f"{path.name}: max_tokens must be >= 8 and dimension >= 1")
    return Settings(**raw, base_dir=str(path.resolve().parent))
