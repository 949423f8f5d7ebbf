"""A wildcards folder that reads as if from a very slow disk, to prove who reads it, and when."""

from __future__ import annotations

import threading
from pathlib import Path

from dynamicprompts.wildcards import WildcardManager


class SlowWildcards(WildcardManager):
    """A real wildcards folder read as if from a very slow disk: each read on a worker waits
    until the test opens the gate; a read on the Qt thread is recorded and does not wait."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.reading = threading.Event()
        self.readers: list[threading.Thread] = []

    def get_values(self, wildcard):
        self.readers.append(threading.current_thread())
        if threading.current_thread() is not threading.main_thread():
            self.reading.set()
            self.gate.wait(timeout=60)
        return super().get_values(wildcard)
