"""The funnel's file in the data folder (`funnel.json`): the funnel under way, the earlier funnels
the user may reopen, and the settings a new one starts with. Written atomically; a file that
cannot be read is set aside, never overwritten, and the funnel starts afresh with a notice."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stablenew.cluster.funnel import Funnel, FunnelSettings
from stablenew.storage.atomic import atomic_write_text

FUNNEL_FILE = "funnel.json"
#: 2 added the earlier funnels (`past`); a version 1 file reads as one with none.
FUNNEL_VERSION = 2
#: How many earlier funnels are kept to reopen; older ones leave the list (their images stay in
#: the gallery, and the pictures they started from may be cleaned away).
PAST_FUNNELS = 20


class FunnelFile(BaseModel):
    """What `funnel.json` holds."""

    model_config = ConfigDict(extra="forbid")

    version: int = FUNNEL_VERSION
    settings: FunnelSettings = Field(default_factory=FunnelSettings)
    funnel: Funnel | None = None
    #: The earlier funnels, the most recently left first.
    past: list[Funnel] = Field(default_factory=list)

    def started(self, funnel: Funnel) -> FunnelFile:
        """*funnel* under way; the one it replaces goes first in the earlier funnels."""
        return self._with(funnel, self.funnel)

    def reopened(self, funnel_id: str) -> FunnelFile:
        """The earlier funnel *funnel_id* under way again; the one it replaces goes first in the
        earlier funnels (KeyError if there is no such earlier funnel)."""
        chosen = next((f for f in self.past if f.id == funnel_id), None)
        if chosen is None:
            raise KeyError(funnel_id)
        return self._with(chosen, self.funnel)

    def _with(self, funnel: Funnel, left: Funnel | None) -> FunnelFile:
        past = [f for f in self.past if f.id != funnel.id]
        if left is not None and left.id != funnel.id:
            past.insert(0, left)
        return self.model_copy(update={"funnel": funnel, "past": past[:PAST_FUNNELS]})


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
            if isinstance(data, dict):
                data = {**data, "version": FUNNEL_VERSION}  # saved back in today's form
            return FunnelFile.model_validate(data)
        except (ValueError, ValidationError):
            aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.replace(aside)
            self.problem = (f"The funnel file could not be read, so the funnel starts afresh; "
                            f"the old file is kept as {aside.name}.")
            return FunnelFile()

    def save(self, data: FunnelFile) -> Path:
        return atomic_write_text(self.path, data.model_dump_json(indent=1))
