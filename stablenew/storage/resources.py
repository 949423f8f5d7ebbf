"""Files shipped with StableNew (resources/ in the source tree, stablenew.resources when installed)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. resource_path("presets") or ("workflows", "txt2img.json")."""
    root = resources.files("stablenew.resources")
    return Path(str(root.joinpath(*parts)))
