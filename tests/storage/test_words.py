"""Counted nouns and lengths of time, the one way every message and table writes them."""

from __future__ import annotations

import pytest

from stablenew.storage.words import duration, plural


@pytest.mark.parametrize(("count", "text"), [(0, "0 images"), (1, "1 image"), (2, "2 images"),
                                             (12000, "12,000 images")])
def test_plural(count, text):
    assert plural(count, "image") == text


def test_irregular_plurals():
    assert plural(2, "batch") == "2 batches" and plural(1, "entry") == "1 entry"


@pytest.mark.parametrize(("seconds", "words", "table", "precise"), [
    (4.24, "4 s", "4s", "4.2 s"),
    (42, "42 s", "42s", "42.0 s"),
    (59.97, "1 min", "1m00s", "1 min"),
    (7200, "2 h", "2h00m", "2 h"),
    (125, "2 min 05 s", "2m05s", "2 min 05 s"),
    (7260, "2 h 01 min", "2h01m", "2 h 01 min"),
])
def test_durations(seconds, words, table, precise):
    assert duration(seconds) == words
    assert duration(seconds, compact=True) == table
    assert duration(seconds, tenths=True) == precise
