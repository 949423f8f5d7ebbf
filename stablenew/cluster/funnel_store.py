"""The funnel's file in the data folder (`funnel.json`): the funnel under way and the settings a
new one starts with. Written atomically; a file that cannot be read is set aside, never
overwritten, and the funnel starts afresh with a notice."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stablenew.cluster.funnel import Funnel, FunnelSettings
from stablenew.storage.atomic import atomic_write_text

FUNNEL_FILE = "funnel.json"
FUNNEL_VERSION = 1


class FunnelFile(BaseModel):
    """What `funnel.json` holds."""

    model_config = ConfigDict(extra="forbid")

    version: int = FUNNEL_VERSION
    settings: FunnelSettings = Field(default_factory=FunnelSettings)
    funnel: Funnel | None = None


class FunnelStore:
    """Reads and writes `funnel.json`; blocking (file I/O): call it off the Qt thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Why the last load started afresh (a broken file set aside), for the user; "" if not.
        self.problem = ""

    def load(self) -> FunnelFile:
        self.problem = ""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return FunnelFile()
        except OSError as exc:
            self.problem = f"The funnel file could not be read ({exc.strerror or exc})."
            return FunnelFile()
        try:
            data = json.loads(text)
            if isinstance(data, dict) and int(data.get("version", 1)) > FUNNEL_VERSION:
                raise ValueError("written by a newer StableNew")
            return FunnelFile.model_validate(data)
        except (ValueError, ValidationError):
            aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.replace(aside)
            self.problem = (f"The funnel file could not be read, so the funnel starts afresh; "
                            f"the old file is kept as {aside.name}.")
            return FunnelFile()

    def save(self, data: FunnelFile) -> Path:
        return atomic_write_text(self.path, data.model_dump_json(indent=1))
