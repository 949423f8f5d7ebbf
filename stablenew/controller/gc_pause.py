"""CollectorPause: Python's cycle collector held off while the user drags through a big list.

With 100,000 images listed, a full (oldest-generation) collection walks every tracked object and
takes 20-40 ms on the Qt thread, whichever thread's allocation set it off: a visible hitch in a
drag (measured with `gc.callbacks` in bench/gallery.py). Reference counting still frees almost
all garbage at once; only cycles wait until the drag settles.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("stablenew.controller")


class CollectorPause:
    """Holds automatic collection off between `hold()` and `release()`; leaves it alone when
    something else had already turned it off."""

    def __init__(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def hold(self) -> None:
        if not self._held and gc.isenabled():
            gc.disable()
            self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            gc.enable()
