"""The session wires the rooms together: a profile's bias reaches every run's randomizer."""

from __future__ import annotations

import asyncio

from stablenew.controller.app_controller import start_up
from stablenew.controller.session import Session
from stablenew.randomizer.profiles import RandomizerBias


def test_profile_bias_reaches_the_randomizer_and_clears(qtbot, qloop):
    session = Session(start_up())
    try:
        session.open_rooms()
        assert session.library is not None and session.randomizer is not None
        session.library.preset_actions.bias_changed.emit(
            RandomizerBias(wildcard_weights={"hair": {"red": 3.0}}))
        assert session.randomizer.spec.wildcard_weights == {"hair": {"red": 3.0}}
        session.library.preset_actions.clear_bias()
        assert session.randomizer.spec.wildcard_weights == {}
    finally:
        closing = asyncio.ensure_future(session.aclose())
        qtbot.waitUntil(closing.done, timeout=5000)
