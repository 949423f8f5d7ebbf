"""Files on disk: atomic writes, safe YAML documents, app folders, settings.

The lowest room: imports nothing else of StableNew, so every other room may use it.
Its names load on first use: the window's first paint needs `storage.paths` alone, and
`storage.documents` would bring PyYAML and pydantic with it (see controller/startup.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stablenew.storage.atomic import atomic_write_bytes, atomic_write_text
    from stablenew.storage.documents import DocumentError, dump_yaml, load_yaml_model, parse_yaml_model
    from stablenew.storage.paths import AppPaths

_HOMES = {
    "AppPaths": "paths",
    "DocumentError": "documents",
    "atomic_write_bytes": "atomic",
    "atomic_write_text": "atomic",
    "dump_yaml": "documents",
    "load_yaml_model": "documents",
    "parse_yaml_model": "documents",
}
__all__ = [
    "AppPaths",
    "DocumentError",
    "atomic_write_bytes",
    "atomic_write_text",
    "dump_yaml",
    "load_yaml_model",
    "parse_yaml_model",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
