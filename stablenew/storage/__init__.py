"""Files on disk: atomic writes, safe YAML documents, app folders, settings.

The lowest room: imports nothing else of StableNew, so every other room may use it.
"""

from stablenew.storage.atomic import atomic_write_bytes, atomic_write_text
from stablenew.storage.documents import DocumentError, dump_yaml, load_yaml_model, parse_yaml_model
from stablenew.storage.paths import AppPaths

__all__ = [
    "AppPaths",
    "DocumentError",
    "atomic_write_bytes",
    "atomic_write_text",
    "dump_yaml",
    "load_yaml_model",
    "parse_yaml_model",
]
