"""Pulumi archives and assets as a plan records them: by what they point at, never by their bytes.

One form for both runners of the rules: the offline plan records what the program registered
(infra/offline/mocks.py), the policy pack what the engine hands it (infra.validation.engine_plan).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi


def recorded_archive(value: Any, plain: Callable[[Any], Any]) -> dict[str, Any] | None:
    """`{"path"}`, `{"text"}`, `{"uri"}` or `{"assets": {name: plain(member)}}` for an archive or asset; None for
    any other value."""
    if isinstance(value, (pulumi.FileArchive, pulumi.FileAsset)):
        return {"path": str(value.path)}
    if isinstance(value, pulumi.StringAsset):
        return {"text": value.text}
    if isinstance(value, (pulumi.RemoteArchive, pulumi.RemoteAsset)):
        return {"uri": str(value.uri)}
    if isinstance(value, pulumi.AssetArchive):
        return {"assets": {k: plain(v) for k, v in value.assets.items()}}
    return None
